"""Exact-diagonalisation DMFT (Caffarel–Krauth) of the paramagnetic Hubbard model on the Bethe lattice.

Units of the half bandwidth D = 2t (semicircular density of states ρ(ε) = (2/(πD²))√(D² − ε²)). At half filling the
impurity has ε_d = −U/2 and a particle–hole-symmetric bath of N_b levels (one at 0 when N_b is odd, ± pairs with
equal V). One iteration (Georges, Kotliar, Krauth, Rozenberg, Rev. Mod. Phys. 68, 13 (1996) §VI.A; Caffarel &
Krauth, Phys. Rev. Lett. 72, 1545 (1994)):

    1. solve the impurity model (bath, U) for G(iω_n) on the fictitious grid ω_n = (2n + 1)π/β_f, n < N_fit;
    2. self-consistency Δ_new(iω_n) = t² G(iω_n) = (D²/4) G(iω_n), mixed: Δ_mix = α Δ_new + (1 − α) Δ_bath;
    3. fit the bath: minimise χ² = Σ_n W_n |Δ_mix(iω_n) − Σ_k V_k²/(iω_n − ε_k)|² (W_n = 1, or 1/ω_n);
    4. stop when max_n |Δ_bath,new − Δ_bath,old| < tol.

Then Σ(iω_n) = iω_n − ε_d − Δ(iω_n) − G⁻¹(iω_n) and Z ≈ [1 − Im Σ(iω_0)/ω_0]⁻¹. Sweeps over U reuse the previous
U's bath, upwards from the metal and downwards from the insulator, so the coexistence region shows as hysteresis.

The impurity solver is pluggable: any callable ``solver(problem: ImpurityProblem, omega) -> ImpuritySolution``
(G on the grid and the double occupancy). `ExactSolver` is the exact one (`nqs.green`): thermal at T = 1/β_f, which
follows the insulating branch down to U_c1, or T = 0 averaged over the degenerate ground states.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from scipy.integrate import quad
from scipy.optimize import least_squares

from hamiltonians.anderson import anderson_impurity
from nqs import green
from nqs.run import Run

WEIGHTS = ("uniform", "inverse_frequency")
DIRECTIONS = ("up", "down")


@dataclasses.dataclass(frozen=True)
class DMFTSettings:
    """The settings of the DMFT loop (defaults: notes D.2's working settings).

    Attributes:
        n_bath: N_b, bath levels of the particle–hole-symmetric bath.
        beta: β_f, the fictitious inverse temperature of the Matsubara grid (units 1/D).
        n_fit: N_fit, Matsubara frequencies in the fit (and in Δ, G).
        weights: "uniform" (W_n = 1, Caffarel–Krauth) or "inverse_frequency" (W_n = 1/ω_n).
        mixing: α, the weight of the new hybridisation.
        tol: convergence when max_n |ΔΔ(iω_n)| between successive baths is below this.
        max_iterations: iterations per U before giving up (the point is recorded as not converged).
        half_bandwidth: D.
    """

    n_bath: int = 5
    beta: float = 200.0
    n_fit: int = 128
    weights: str = "uniform"
    mixing: float = 0.5
    tol: float = 1e-7
    max_iterations: int = 300
    half_bandwidth: float = 1.0

    def __post_init__(self):
        if self.n_bath < 1 or self.n_fit < 1 or self.max_iterations < 1:
            raise ValueError(f"n_bath, n_fit and max_iterations must be >= 1, got {self.n_bath}, {self.n_fit}, "
                             f"{self.max_iterations}")
        if self.weights not in WEIGHTS:
            raise ValueError(f"unknown weights {self.weights!r}; choose one of {WEIGHTS}")
        if not 0 < self.mixing <= 1:
            raise ValueError(f"mixing must be in (0, 1], got {self.mixing}")
        for name in ("beta", "tol", "half_bandwidth"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    @property
    def omega(self) -> np.ndarray:
        """The fit grid ω_n = (2n + 1)π/β_f, n < N_fit."""
        return green.matsubara_frequencies(self.beta, self.n_fit)

    @property
    def fit_weights(self) -> np.ndarray:
        return np.ones(self.n_fit) if self.weights == "uniform" else 1.0 / self.omega


@dataclasses.dataclass(frozen=True)
class Bath:
    """A discrete bath: levels ε_k and hybridisations V_k."""

    eps: np.ndarray
    V: np.ndarray

    def hybridisation(self, z: np.ndarray | complex) -> np.ndarray:
        """Δ(z) = Σ_k V_k²/(z − ε_k)."""
        return green.hybridisation(z, self.eps, self.V)

    @classmethod
    def particle_hole(cls, parameters: np.ndarray, n_bath: int) -> Bath:
        """The particle–hole-symmetric bath of the fit parameters [V_0 (odd N_b), ε_1 … ε_p, V_1 … V_p] (p = ⌊N_b/2⌋):
        levels 0 (odd N_b) and ±|ε_j| with hybridisation |V_j| on both, sorted by level."""
        p = np.abs(np.asarray(parameters, dtype=float))
        odd, pairs = n_bath % 2, n_bath // 2
        eps_j, V_j = p[odd : odd + pairs], p[odd + pairs :]
        eps = np.concatenate([-eps_j, [0.0] * odd, eps_j])
        hyb = np.concatenate([V_j, p[:odd], V_j])
        order = np.argsort(eps, kind="stable")
        return cls(eps[order], hyb[order])

    def parameters(self) -> np.ndarray:
        """The fit parameters of a particle–hole-symmetric bath (inverse of `particle_hole`)."""
        n, odd = len(self.eps), len(self.eps) % 2
        positive = np.argsort(self.eps)[n // 2 + odd :]
        zero = [abs(self.V[np.argsort(np.abs(self.eps))[0]])] if odd else []
        return np.concatenate([zero, np.abs(self.eps[positive]), np.abs(self.V[positive])])


@dataclasses.dataclass(frozen=True)
class ImpurityProblem:
    """The impurity model a solver solves: level ε_d, interaction U and bath."""

    eps_d: float
    U: float
    bath: Bath


@dataclasses.dataclass(frozen=True)
class ImpuritySolution:
    """What a solver returns: G(iω_n) on the requested grid and the double occupancy ⟨n_d↑ n_d↓⟩."""

    green: np.ndarray
    double_occupancy: float


class Solver(Protocol):
    """An impurity solver: G(iω_n) at the given ω_n and the double occupancy of `problem`."""

    def __call__(self, problem: ImpurityProblem, omega: np.ndarray) -> ImpuritySolution: ...


@dataclasses.dataclass(frozen=True)
class ExactSolver:
    """The exact solver (`nqs.green.impurity_green` on `hamiltonians.anderson_impurity` in the star geometry):
    thermal at inverse temperature `beta`, or at T = 0 averaged over the degenerate ground states (beta None)."""

    beta: float | None

    def __call__(self, problem: ImpurityProblem, omega: np.ndarray) -> ImpuritySolution:
        system = anderson_impurity(eps_d=problem.eps_d, U=problem.U, eps_k=problem.bath.eps, V_k=problem.bath.V)
        result = green.impurity_green(system, beta=self.beta)
        return ImpuritySolution(result.green(1j * np.asarray(omega)), result.observables["double_occupancy"])


def bethe_green(z: np.ndarray | complex, half_bandwidth: float = 1.0) -> np.ndarray:
    """The local Green's function of the Bethe lattice (semicircular DOS), G(z) = 2(z − √(z² − D²))/D² = 2/(z +
    √(z² − D²)) (the second form without cancellation), on the branch G ~ 1/z (√(z − D)√(z + D)); on the Matsubara
    axis G(iω) = −(2i/D²)(√(ω² + D²) − |ω|) sgn ω (Economou, Green's Functions in Quantum Physics §5.3; Georges et
    al., Rev. Mod. Phys. 68, 13 (1996) eq. (26))."""
    z, d = np.asarray(z, dtype=complex), float(half_bandwidth)
    return 2.0 / (z + np.sqrt(z - d) * np.sqrt(z + d))


def atomic_green(z: np.ndarray | complex, U: float) -> np.ndarray:
    """The half-filled atomic limit G(z) = ½[1/(z − U/2) + 1/(z + U/2)] = z/(z² − U²/4) (Hubbard I without hopping)."""
    z = np.asarray(z, dtype=complex)
    return z / (z**2 - U**2 / 4)


def weak_coupling_coefficient() -> float:
    """c in Z⁻¹ = 1 + c (U/D)² + O(U⁴), the exact second order of the half-filled Bethe lattice at T = 0:

        c = 2 ∫∫∫_{[0,1]³} ρ(a)ρ(b)ρ(c') / (a + b + c')²,   ρ(ε) = (2/π)√(1 − ε²),

    evaluated as 2 ∫_0^∞ t f(t)³ dt with f(t) = ∫_0^1 ρ(a) e^{−ta} da (from 1/s² = ∫ t e^{−ts} dt) by adaptive
    quadrature: c = 0.326993 (Yamada, Prog. Theor. Phys. 53, 970 (1975); notes D.3)."""
    def f(t: float) -> float:  # a = sin θ
        return 2 / np.pi * quad(lambda th: np.cos(th) ** 2 * np.exp(-t * np.sin(th)), 0, np.pi / 2, epsabs=1e-14,
                                epsrel=1e-12, limit=200)[0]

    return 2 * quad(lambda t: t * f(t) ** 3, 0, np.inf, epsabs=1e-13, epsrel=1e-11, limit=400)[0]


def fit_bath(delta: np.ndarray, omega: np.ndarray, initial: Bath, weights: np.ndarray) -> tuple[Bath, float]:
    """The particle–hole-symmetric bath minimising χ² = Σ_n W_n |Δ(iω_n) − Σ_k V_k²/(iω_n − ε_k)|² (Caffarel & Krauth,
    Phys. Rev. Lett. 72, 1545 (1994)) by scipy's trust-region least squares from `initial`, and the weighted r.m.s.
    misfit (χ²/Σ_n W_n)^{1/2}."""
    n_bath, z, root_w = len(initial.eps), 1j * np.asarray(omega), np.sqrt(weights)

    def residual(p: np.ndarray) -> np.ndarray:
        diff = root_w * (Bath.particle_hole(p, n_bath).hybridisation(z) - delta)
        return np.concatenate([diff.real, diff.imag])

    fit = least_squares(residual, initial.parameters(), xtol=1e-15, ftol=1e-15, gtol=1e-15, max_nfev=2000)
    return Bath.particle_hole(fit.x, n_bath), float(np.sqrt(2 * fit.cost / np.sum(weights)))


def _default_bath(n_bath: int, half_bandwidth: float) -> Bath:
    """A fit start: levels spread over (−D, D), Σ V_k² = D²/4 (the weight of t²G)."""
    parameters = np.full(n_bath % 2 + 2 * (n_bath // 2), half_bandwidth / (2 * np.sqrt(n_bath)))
    pairs = n_bath // 2
    parameters[n_bath % 2 : n_bath % 2 + pairs] = half_bandwidth * np.arange(1, pairs + 1) / (pairs + 1)
    return Bath.particle_hole(parameters, n_bath)


def metallic_bath(settings: DMFTSettings) -> Bath:
    """The bath fitted to the non-interacting Δ = (D²/4) G_Bethe(iω_n): the start of an upward (metallic) sweep."""
    d, omega = settings.half_bandwidth, settings.omega
    target = d**2 / 4 * bethe_green(1j * omega, d)
    return fit_bath(target, omega, _default_bath(settings.n_bath, d), settings.fit_weights)[0]


def insulating_bath(U: float, settings: DMFTSettings) -> Bath:
    """The bath fitted to the atomic-limit Δ = (D²/4) G_atomic(iω_n) (poles at ±U/2, no weight at 0): the start of a
    downward (insulating) sweep."""
    d, omega = settings.half_bandwidth, settings.omega
    start = _default_bath(settings.n_bath, d)
    start = Bath(np.where(start.eps == 0, 0.0, np.sign(start.eps) * U / 2), np.where(start.eps == 0, 1e-3, start.V))
    return fit_bath(d**2 / 4 * atomic_green(1j * omega, U), omega, start, settings.fit_weights)[0]


@dataclasses.dataclass(frozen=True)
class DMFTPoint:
    """The DMFT solution at one U.

    Attributes:
        U: the interaction.
        bath: the converged (or last) bath.
        green: G(iω_n) of the impurity on the fit grid (from the last solve).
        self_energy: Σ(iω_n) = iω_n − ε_d − Δ(iω_n) − G⁻¹(iω_n) of that solve.
        Z: [1 − Im Σ(iω_0)/ω_0]⁻¹ (meaningless once Z·D < ω_0, notes D.4).
        double_occupancy: ⟨n_d↑ n_d↓⟩.
        iterations: DMFT iterations done.
        converged: max |ΔΔ| < tol was reached.
        change: the last max_n |Δ_bath,new − Δ_bath,old|.
        fit_residual: the last weighted r.m.s. misfit of the bath fit.
    """

    U: float
    bath: Bath
    green: np.ndarray
    self_energy: np.ndarray
    Z: float
    double_occupancy: float
    iterations: int
    converged: bool
    change: float
    fit_residual: float


def quasiparticle_weight(self_energy_0: complex, omega_0: float) -> float:
    """Z ≈ [1 − Im Σ(iω_0)/ω_0]⁻¹, the lowest-Matsubara estimate of [1 − ∂Re Σ/∂ω|_0]⁻¹ (Georges et al., Rev. Mod.
    Phys. 68, 13 (1996) §VII.A)."""
    return 1.0 / (1.0 - float(np.imag(self_energy_0)) / omega_0)


def solve_dmft(U: float, bath: Bath, settings: DMFTSettings, solver: Solver) -> DMFTPoint:
    """Iterate the Bethe-lattice self-consistency at interaction U (half filling, ε_d = −U/2) from `bath` until
    max_n |ΔΔ(iω_n)| < tol or `max_iterations` (the module docstring has the steps)."""
    if len(bath.eps) != settings.n_bath:
        raise ValueError(f"the bath has {len(bath.eps)} levels, the settings {settings.n_bath}")
    omega, weights = settings.omega, settings.fit_weights
    z, t2 = 1j * omega, settings.half_bandwidth**2 / 4
    delta_old = bath.hybridisation(z)
    change = residual = np.inf
    iterations = 0
    while iterations < settings.max_iterations and not change < settings.tol:
        iterations += 1
        problem = ImpurityProblem(-U / 2, U, bath)
        solution = solver(problem, omega)
        sigma = green.self_energy(z, solution.green, problem.eps_d, bath.eps, bath.V)
        target = settings.mixing * t2 * solution.green + (1 - settings.mixing) * delta_old
        bath, residual = fit_bath(target, omega, bath, weights)
        delta = bath.hybridisation(z)
        change, delta_old = float(np.max(np.abs(delta - delta_old))), delta
    return DMFTPoint(U=float(U), bath=bath, green=solution.green, self_energy=sigma,
                     Z=quasiparticle_weight(sigma[0], omega[0]), double_occupancy=solution.double_occupancy,
                     iterations=iterations, converged=change < settings.tol, change=change, fit_residual=residual)


def _row(step: int, point: DMFTPoint, seconds: float) -> dict[str, float]:
    """The history row of one U: the scalars and the bath levels/hybridisations as eps_k, V_k columns."""
    row = {"step": step, "U": point.U, "Z": point.Z, "double_occupancy": point.double_occupancy,
           "iterations": point.iterations, "converged": float(point.converged), "change": point.change,
           "fit_residual": point.fit_residual, "solve_time": seconds}
    row.update({f"eps_{k}": e for k, e in enumerate(point.bath.eps)})
    row.update({f"V_{k}": v for k, v in enumerate(point.bath.V)})
    return row


def _describe(solver: Solver) -> str:
    """A stable description of a solver for the result file (its repr when a dataclass, else its name)."""
    if dataclasses.is_dataclass(solver):
        return repr(solver)
    return getattr(solver, "__qualname__", type(solver).__qualname__)


def sweep(
    U_values: Sequence[float],
    settings: DMFTSettings = DMFTSettings(),
    *,
    direction: str = "up",
    solver: Solver | None = None,
    out: str | Path | None = None,
    mode: str = "fail",
    config: dict[str, Any] | None = None,
    progress: bool = True,
    on_point: Callable[[DMFTPoint], None] | None = None,
) -> list[DMFTPoint]:
    """DMFT at every U, in increasing order from the metallic bath (`direction` "up") or in decreasing order from the
    insulating one ("down"), each U starting from the previous U's bath (Georges et al., Rev. Mod. Phys. 68, 13
    (1996) §VII.C: the coexistence region U_c1 < U < U_c2 shows as hysteresis).

    Recording: a result file of kind "dmft" through the run layer (`nqs.run.Run`): one /history row per U (step =
    index in the sweep, U, Z, double_occupancy, iterations, converged, change, fit_residual, solve_time, wall_time,
    eps_k and V_k of the bath), /exact/weak_coupling_c, and after every U a checkpoint holding that U's bath. Mode
    "resume" continues an interrupted sweep after its last finished U with that bath (the same rows as an
    uninterrupted sweep: the loop is deterministic). `solver` defaults to the thermal `ExactSolver` at T = 1/β_f;
    `on_point` is called with every new point after it is recorded.

    Returns:
        The points computed by this call (after a resume: those after the checkpoint).
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}; choose one of {DIRECTIONS}")
    values = sorted((float(u) for u in U_values), reverse=direction == "down")
    if not values or not all(np.isfinite(values)) or min(values) < 0:
        raise ValueError(f"U_values must be finite and non-negative, got {list(U_values)}")
    solver = ExactSolver(settings.beta) if solver is None else solver
    method = {"name": "nqs.dmft.sweep", "lattice": "bethe", "self_consistency": "Delta = D^2/4 G",
              "direction": direction, "U_values": values, "solver": _describe(solver), **dataclasses.asdict(settings)}
    with Run(out, mode, kind="dmft", system=None, ansatz={}, method=method, config=config, progress=progress) as run:
        bath = metallic_bath(settings) if direction == "up" else insulating_bath(values[0], settings)
        checkpoint = run.restore({"eps": bath.eps, "V": bath.V})
        first = 0 if checkpoint is None else checkpoint.step + 1
        if checkpoint is not None:
            bath = Bath(np.asarray(checkpoint.params["eps"]), np.asarray(checkpoint.params["V"]))
        run.write_exact({"weak_coupling_c": weak_coupling_coefficient()})
        points = []
        with run.progress_bar(len(values), "DMFT", initial=first, unit="U") as bar:
            for step in range(first, len(values)):
                start = time.perf_counter()
                point = solve_dmft(values[step], bath, settings, solver)
                run.append(_row(step, point, time.perf_counter() - start))
                run.checkpoint(step, {"eps": point.bath.eps, "V": point.bath.V})
                points.append(point)
                bath = point.bath
                bar.update()
                if on_point is not None:
                    on_point(point)
    return points
