"""Time-step schemes of projected (infidelity-fitting) dynamics: TENG targets and product expansions.

One step of length Δt approximates e^{Λ}, Λ = −iHΔt (real time) or −HΔt (imaginary time), by a
sequence of stages. Stage k fits the network ψ_θ so that V_k ψ_θ ∝ φ_k with the target

    φ_k = Σ_m (α_m + β_m Λ) ψ_{θ_{src(m)}},       V_k = 1 + b_k Λ,

where ψ_{θ_0} is the state at the start of the step and ψ_{θ_j} the fitted result of stage j. The
targets are applied lazily on configurations, (Λψ)(x) = ζ ψ(x) E_loc(x) with ζ = −iΔt or −Δt.

Schemes (coefficients from Gravina, Savona, Vicentini, arXiv:2410.10720, Table 1, and Chen et al.,
"TENG: Time-Evolving Natural Gradient", ICML 2024, arXiv:2404.10771):

* ``euler`` = LPE-1 = TENG-Euler: φ = (1 + Λ)ψ_n (first order);
* ``heun`` = TENG-Heun: stage 1 as Euler → ψ_1; stage 2 φ = ψ_n + ½Λψ_n + ½Λψ_1, i.e. the trapezoid
  with H applied to the *fitted* intermediate network (second order);
* ``lpe2/3/4``: Π_k (1 + a_k Λ) with a_k the roots that make the product e^Λ + O(Λ^{o+1});
* ``ppe2`` (Crank–Nicolson) and ``ppe4``: Π_k (1 + b_k Λ)⁻¹(1 + a_k Λ) with the [o/2, o/2] Padé factors.

`amplification(scheme, z)` applies a scheme to the scalar equation y' = z y (one step, y_0 = 1);
a scheme of order p satisfies amplification(z) = e^z + O(z^{p+1}), which the tests check.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np


@dataclasses.dataclass(frozen=True)
class Stage:
    """One fit: target Σ_m (α_m + β_m Λ) ψ_{src_m} for the model (1 + b Λ) ψ_θ.

    Attributes:
        terms: tuples (src, α, β); src 0 is the state at the start of the step, src j ≥ 1 the
            result of stage j.
        b: coefficient of the operator applied to the model (0 for linear product expansions).
    """

    terms: tuple[tuple[int, complex, complex], ...]
    b: complex = 0.0

    @property
    def warm_start(self) -> int:
        """The source whose parameters start the fit (the latest one)."""
        return max(src for src, _, _ in self.terms)


@dataclasses.dataclass(frozen=True)
class Scheme:
    """A named sequence of stages with its order of accuracy."""

    name: str
    order: int
    stages: tuple[Stage, ...]

    def __post_init__(self):
        for k, stage in enumerate(self.stages, start=1):
            if any(not 0 <= src < k for src, _, _ in stage.terms):
                raise ValueError(f"stage {k} of {self.name} uses a source that is not yet available")


def _chain(name: str, order: int, a: list[complex], b: list[complex] | None = None) -> Scheme:
    """Product Π_k (1 + b_k Λ)⁻¹ (1 + a_k Λ): stage k maps the result of stage k−1."""
    b = b or [0.0] * len(a)
    return Scheme(name, order, tuple(Stage(((k, 1.0, ak),), bk) for k, (ak, bk) in enumerate(zip(a, b))))


_S3 = math.sqrt(3.0)
SCHEMES: dict[str, Scheme] = {
    "euler": _chain("euler", 1, [1.0]),
    "heun": Scheme("heun", 2, (Stage(((0, 1.0, 1.0),)), Stage(((0, 1.0, 0.5), (1, 0.0, 0.5))))),
    "lpe2": _chain("lpe2", 2, [(1 - 1j) / 2, (1 + 1j) / 2]),
    "lpe3": _chain(
        "lpe3", 3, [0.6265382932707997, 0.1867308533646001 - 0.4807738845503311j,
                    0.1867308533646001 + 0.4807738845503311j]
    ),
    "lpe4": _chain(
        "lpe4",
        4,
        [
            0.0426266565027024 - 0.3946329531721134j,
            0.0426266565027024 + 0.3946329531721134j,
            0.4573733434972976 + 0.2351004879985427j,
            0.4573733434972976 - 0.2351004879985427j,
        ],
    ),
    "ppe2": _chain("ppe2", 2, [0.5], [-0.5]),
    "ppe4": _chain("ppe4", 4, [(3 - 1j * _S3) / 12, (3 + 1j * _S3) / 12], [-(3 + 1j * _S3) / 12, -(3 - 1j * _S3) / 12]),
}


def get_scheme(name: str) -> Scheme:
    """The scheme called `name` (case-insensitive); ValueError for an unknown one."""
    try:
        return SCHEMES[name.lower()]
    except KeyError:
        raise ValueError(f"unknown scheme {name!r}; choose one of {sorted(SCHEMES)}") from None


def amplification(scheme: Scheme, z: complex | np.ndarray) -> complex | np.ndarray:
    """One step of `scheme` on y' = z y from y = 1 (exact stage fits): the scheme's R(z) ≈ e^z."""
    values = [np.ones_like(np.asarray(z, dtype=complex))]
    for stage in scheme.stages:
        target = sum((alpha + beta * z) * values[src] for src, alpha, beta in stage.terms)
        values.append(target / (1 + stage.b * z))
    return values[-1]
