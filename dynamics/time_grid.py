"""The time grid every time-evolution method shares: save points t_k = k t_end/(n_save − 1), k = 0 … n_save − 1, and
an integrator step dt (the initial step of an adaptive integrator)."""

from __future__ import annotations

import dataclasses

import numpy as np

PROPAGATIONS = ("real", "imag")


@dataclasses.dataclass(frozen=True)
class TimeGrid:
    """Base of the settings of a time evolution (stored with them as /method attributes).

    Attributes:
        t_end: final time (the run starts at t = 0).
        dt: integrator step (the initial step of an adaptive integrator).
        n_save: number of save points in [0, t_end], both ends included.
    """

    t_end: float = 1.0
    dt: float = 0.01
    n_save: int = 11

    def __post_init__(self):
        if not self.dt > 0:
            raise ValueError(f"dt must be > 0, got {self.dt}")
        if not self.t_end >= 0:
            raise ValueError(f"t_end must be >= 0, got {self.t_end}")
        if self.n_save < 2:
            raise ValueError(f"n_save must be >= 2, got {self.n_save}")

    @property
    def times(self) -> np.ndarray:
        """The save times."""
        return np.linspace(0.0, self.t_end, self.n_save)


def check_propagation(propagation: str) -> None:
    """ValueError unless `propagation` is "real" (e^{−iHt}) or "imag" (e^{−Hτ})."""
    if propagation not in PROPAGATIONS:
        raise ValueError(f"propagation must be 'real' or 'imag', got {propagation!r}")
