"""Settings every POVM method shares: what is recorded, the optimiser with its learning-rate schedule, the time grid.

The schedule is `nqs.schedules.learning_rate_schedule` (one vocabulary for the project): "constant"; "step"
(× `drop_factor` from iteration `drop_at`, Luo et al., PRL 128, 090501 (2022)); "cosine" or "exponential" decay from
`learning_rate` to the absolute rate `lr_final` at the last iteration n_iter − 1.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import optax

from nqs.schedules import check_schedule, learning_rate_schedule

DECAYING = ("cosine", "exponential")


@dataclasses.dataclass(frozen=True)
class RecordingSettings:
    """The recording of every POVM method (stored as /method attributes with the method's own settings).

    Attributes:
        n_obs_samples: samples for the observables at save points (sampled mode).
        purity_max_sites: estimate the purity from paired samples only up to this N (its variance grows
            exponentially with N).
        seed: seed of the sampling keys.
    """

    n_obs_samples: int = 20000
    purity_max_sites: int = 8
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class AdamSettings:
    """Adam (optax) and its learning-rate schedule, shared by the trapezoid and steady-state methods.

    Attributes:
        learning_rate: initial learning rate η.
        b1, b2, eps: Adam moments and regulariser (Luo et al.: 0.9, 0.98, 1e-9).
        lr_schedule: "constant", "step", "cosine" or "exponential" (module docstring).
        drop_at, drop_factor: the "step" schedule.
        lr_final: the learning rate that "cosine" and "exponential" reach at the last iteration (≤ learning_rate).
    """

    learning_rate: float = 1e-2
    b1: float = 0.9
    b2: float = 0.98
    eps: float = 1e-9
    lr_schedule: str = "step"
    drop_at: int = 80
    drop_factor: float = 0.5
    lr_final: float = 1e-5

    def __post_init__(self):
        check_schedule(self.lr_schedule, self.learning_rate, self.lr_final)
        if self.lr_schedule in DECAYING and not self.lr_final <= self.learning_rate:
            raise ValueError(f"lr_final ({self.lr_final}) must not exceed learning_rate ({self.learning_rate}) "
                             f"for the decaying schedule {self.lr_schedule!r}")
        if not self.drop_factor > 0:
            raise ValueError(f"drop_factor must be > 0, got {self.drop_factor}")

    def make_schedule(self, n_iter: int) -> optax.Schedule:
        """Learning rate as a function of the iteration (0-based) of an `n_iter`-iteration run."""
        return learning_rate_schedule(self.lr_schedule, self.learning_rate, self.lr_final, n_iter - 1,
                                      drop_at=self.drop_at, drop_factor=self.drop_factor)

    def make_optimizer(self, n_iter: int) -> optax.GradientTransformation:
        """optax Adam with the schedule of an `n_iter`-iteration run."""
        return optax.adam(self.make_schedule(n_iter), b1=self.b1, b2=self.b2, eps=self.eps)


def check_time_grid(t_end: float, dt: float, n_save: int) -> None:
    """ValueError unless dt > 0, t_end ≥ 0 and n_save ≥ 2 (save points in [0, t_end], both ends included)."""
    if not dt > 0:
        raise ValueError(f"dt must be > 0, got {dt}")
    if not t_end >= 0:
        raise ValueError(f"t_end must be >= 0, got {t_end}")
    if n_save < 2:
        raise ValueError(f"n_save must be >= 2, got {n_save}")


def save_times(t_end: float, n_save: int) -> np.ndarray:
    """The `n_save` equally spaced save times in [0, t_end]."""
    return np.linspace(0.0, t_end, n_save)
