"""TENG: time-evolving natural gradient for quantum states, with product-expansion targets.

Chen, McCarran, Vizcaino, Soljačić, Luo, "TENG: Time-Evolving Natural Gradient for Solving PDEs
With Deep Neural Nets Toward Machine Precision", ICML 2024 (arXiv:2404.10771), transferred to
quantum states as in projected t-VMC (Sinibaldi et al., Quantum 7, 1131 (2023); Gravina et al.,
arXiv:2410.10720). Each time step Δt runs the stages of a `Scheme`; stage k builds the lazy target
φ_k from networks already fitted (e.g. φ = (1 − iΔtH)ψ_n for TENG-Euler) and fits the network by
repeated Gauss–Newton (natural-gradient) steps on the infidelity

    I(θ) = 1 − |⟨χ_θ|φ_k⟩|² / (⟨χ_θ|χ_θ⟩⟨φ_k|φ_k⟩),    χ_θ = (1 + b_k Λ) ψ_θ,

each step δθ = (S + λ s̄)⁻¹ ⟨Ō*(r − ⟨r⟩)⟩/⟨r⟩ (QGT form) or its sample-space form (see
`dynamics.infidelity`). Deliberate departures from the PDE paper: full steps with Levenberg–Marquardt
damping instead of a random parameter subset, and step rejection: a step that does not lower the loss
(evaluated on the same configurations) is retried with λ ← λ·`damping_up`; an accepted one lowers λ
by `damping_down`. A stage stops when the loss is below `tol`, when an iteration improves it by less
than the fraction `min_improvement`, or after `max_iterations`.

Sampling: with `nk.vqs.FullSumState` every estimate is an exact sum over the Hilbert space (per-step
losses reach ~1e-12); with `nk.vqs.MCState` the model side is re-sampled from |ψ_θ|² at every
iteration and the target side once per stage from |ψ_src|², both reweighted to |χ|² and |φ|². With
exact autoregressive samplers (`ARDirectSampler`) the samples are independent. NetKet has no
projected/infidelity time stepper, so the stepping loop is ours; sampling, operators and states are
NetKet's.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping
from typing import Any, Unpack

import jax
import jax.numpy as jnp
import netket as nk
import numpy as np

from dynamics.infidelity import (
    RealView,
    gauss_newton_system,
    infidelity,
    log_model,
    log_overlap_ratio,
    log_target,
    support_states,
)
from dynamics.product_expansions import SCHEMES, Scheme, Stage, get_scheme
from dynamics.recording import (
    DynamicsOutcome,
    DynamicsRecorder,
    check_hilbert,
    open_run,
)
from dynamics.time_grid import TimeGrid, check_propagation
from nqs import netket_compat
from nqs.local_energy import LocalEnergy
from nqs.run import RunOptions
from nqs.system import System


@dataclasses.dataclass(frozen=True)
class TENGSettings(TimeGrid):
    """Hyper-parameters of a TENG run (stored as /method attributes), on the time grid of `TimeGrid`: t_end/dt and
    the save spacing must be whole numbers of steps.

    Attributes:
        scheme: "euler", "heun", "lpe2", "lpe3", "lpe4", "ppe2" or "ppe4" (`dynamics.product_expansions`).
        propagation: "real" (Λ = −iHΔt) or "imag" (Λ = −HΔt).
        max_iterations: Gauss–Newton iterations per stage at most.
        tol: a stage stops once its infidelity is below this.
        min_improvement, patience: a stage stops after `patience` consecutive iterations that each
            lower the loss by less than the fraction `min_improvement`.
        damping: initial Levenberg–Marquardt λ (relative to the mean QGT diagonal); it is adapted
            within [damping_min, damping_max] and carried from stage to stage.
        damping_up, damping_down: factors applied after a rejected and an accepted step.
        max_rejections: retries with larger damping before a stage gives up.
        form: linear solve "qgt", "ntk" (sample space) or "auto".
        control_variate: coefficient c of the control variate of the infidelity estimator.
    """

    scheme: str = "heun"
    propagation: str = "real"
    max_iterations: int = 20
    tol: float = 1e-12
    min_improvement: float = 0.05
    patience: int = 2
    damping: float = 1e-6
    damping_min: float = 1e-12
    damping_max: float = 1e3
    damping_up: float = 10.0
    damping_down: float = 3.0
    max_rejections: int = 10
    form: str = "auto"
    control_variate: float = -0.5

    def __post_init__(self):
        super().__post_init__()
        get_scheme(self.scheme)
        check_propagation(self.propagation)
        if self.form not in ("auto", "qgt", "ntk"):
            raise ValueError(f"form must be 'auto', 'qgt' or 'ntk', got {self.form!r}")
        if self.max_iterations < 1 or self.max_rejections < 0 or self.patience < 1:
            raise ValueError("max_iterations and patience must be >= 1, max_rejections >= 0")
        if not 0 < self.damping_min <= self.damping <= self.damping_max:
            raise ValueError("need 0 < damping_min <= damping <= damping_max")
        if self.damping_up <= 1 or self.damping_down < 1:
            raise ValueError("need damping_up > 1 and damping_down >= 1")
        n_steps, every = self.n_steps, self.n_steps / (self.n_save - 1)
        if not math.isclose(n_steps * self.dt, self.t_end, rel_tol=1e-9, abs_tol=1e-12) or every != int(every):
            raise ValueError(
                f"t_end = {self.t_end} must be a whole number of steps dt = {self.dt}, and those steps must "
                f"split evenly into the {self.n_save - 1} save intervals"
            )

    @property
    def n_steps(self) -> int:
        return round(self.t_end / self.dt)

    @property
    def zeta(self) -> complex:
        """ζ in Λ = ζ H."""
        return -1j * self.dt if self.propagation == "real" else -self.dt + 0j


@dataclasses.dataclass
class StageReport:
    """What one stage fit did: its loss after every accepted iteration, rejections and final damping."""

    losses: list[float]
    rejections: int
    damping: float


class _Fitter:
    """Fits ψ_θ to the stage targets of one variational state (full sum or Monte Carlo)."""

    def __init__(self, system: System, vstate: Any, settings: TENGSettings):
        self.settings = settings
        self.vstate = vstate
        self.local_energy = LocalEnergy.for_state(vstate, system.hamiltonian)
        self.full_sum = isinstance(vstate, nk.vqs.FullSumState)
        self.view, _ = RealView.of(vstate.parameters)
        model_state = vstate.model_state
        apply = netket_compat.apply_fun(vstate)

        def logpsi(params, x):
            return apply({"params": params, **model_state}, x)

        self.logpsi = logpsi
        self._jit = {}
        if self.full_sum:
            self.all_states = support_states(vstate, logpsi)
            self.zero_density = jnp.zeros(self.all_states.shape[0])

    # -- configurations ----------------------------------------------------------------------------
    def draw(self, params: Any) -> tuple[jax.Array, jax.Array]:
        """Configurations and their sampling log-density for the network with `params`."""
        if self.full_sum:
            return self.all_states, self.zero_density
        self.vstate.parameters = params
        x = self.vstate.sample().reshape(-1, self.vstate.hilbert.size)
        return x, 2 * self._compiled("logpsi", lambda p, x: self.logpsi(p, x))(params, x).real

    def _compiled(self, key, fun):
        if key not in self._jit:
            self._jit[key] = jax.jit(fun)
        return self._jit[key]

    # -- one stage ---------------------------------------------------------------------------------
    def fit(
        self, stage_index: int, stage: Stage, sources: list[Any], log_scales: list[complex], damping: float
    ) -> tuple[Any, complex, StageReport]:
        """Fit stage `stage_index`; returns its parameters θ_k, log c_k (ψ_k = c_k ψ_θk) and the report."""
        s, zeta, op = self.settings, self.settings.zeta, self.local_energy
        scales = jnp.asarray(log_scales, dtype=complex)
        fn = self._compiled(
            ("target", stage_index), lambda src, sc, x: log_target(self.logpsi, src, sc, stage, zeta, op, x)
        )

        def target(src, x):
            return fn(src, scales, x)

        model = self._compiled(
            ("model", stage.b), lambda vec, x: log_model(self.logpsi, self.view.params(vec), stage.b, zeta, op, x)
        )
        loss_fn = self._compiled(
            "loss",
            lambda lcx, lpx, dx, lcy, lpy, dy: infidelity(lcx, lpx, dx, lcy, lpy, dy, s.control_variate),
        )
        system_fn = self._compiled(
            ("gn", stage.b),
            lambda vec, x, lpx, dx: gauss_newton_system(
                lambda v, xs: log_model(self.logpsi, self.view.params(v), stage.b, zeta, op, xs),
                vec, x, lpx, dx, s.form
            ),
        )
        y, dy = self.draw(sources[stage.terms[0][0]])
        lpy = target(sources, y)
        _, vec = RealView.of(sources[stage.warm_start])

        def evaluate(vec, x, dx, lpx):
            return float(loss_fn(model(vec, x), lpx, dx, model(vec, y), lpy, dy))

        x, dx = self.draw(self.view.params(vec))
        lpx = target(sources, x)
        loss = evaluate(vec, x, dx, lpx)
        losses, rejections, stalled = [loss], 0, 0
        for _ in range(s.max_iterations):
            if loss < s.tol:
                break
            gn = system_fn(vec, x, lpx, dx)
            for _attempt in range(s.max_rejections + 1):
                trial = vec + gn.step(damping)
                trial_loss = evaluate(trial, x, dx, lpx)
                if math.isfinite(trial_loss) and trial_loss < loss:
                    damping = max(damping / s.damping_down, s.damping_min)
                    break
                rejections += 1
                damping = min(damping * s.damping_up, s.damping_max)
            else:
                break  # no damping lowers the loss: the fit has converged to its noise/representability floor
            vec, previous = trial, loss
            if self.full_sum:
                loss = trial_loss
            else:
                x, dx = self.draw(self.view.params(vec))
                lpx = target(sources, x)
                loss = evaluate(vec, x, dx, lpx)
            losses.append(loss)
            stalled = stalled + 1 if loss > (1 - s.min_improvement) * previous else 0
            if stalled >= s.patience:
                break
        ratio = self._compiled("ratio", log_overlap_ratio)
        log_c = complex(ratio(model(vec, x), lpx, dx))
        return self.view.params(vec), log_c, StageReport(losses, rejections, damping)


def teng_step(fitter: _Fitter, scheme: Scheme, params: Any, damping: float) -> tuple[Any, list[StageReport], float]:
    """Advance the parameters by one time step Δt through every stage of `scheme`."""
    sources, log_scales, reports = [params], [0j], []
    for k, stage in enumerate(scheme.stages):
        new, log_c, report = fitter.fit(k, stage, sources, log_scales, damping)
        damping = report.damping
        sources.append(new)
        log_scales.append(log_c)
        reports.append(report)
    return sources[-1], reports, damping


def evolve_teng(
    system: System,
    vstate: Any,
    settings: TENGSettings | None = None,
    *,
    seed: int = 0,
    ansatz: Mapping[str, Any] | None = None,
    exact: bool = True,
    manifold: np.ndarray | None = None,
    **run: Unpack[RunOptions],
) -> DynamicsOutcome:
    """Evolve `vstate` under `system.hamiltonian` with TENG and record it at `settings.n_save` times.

    Each saved row holds energy, observables, fidelity with the exact trajectory (from the same
    initial parameters), and the fit diagnostics of the steps since the previous save: the largest
    and the mean final stage loss, Gauss–Newton iterations, rejected steps and the damping. A
    checkpoint (initial and current parameters, damping) is written at every save point; mode
    "resume" continues an interrupted run from it.

    Args:
        system: the closed system whose Hamiltonian generates the evolution.
        vstate: `nk.vqs.FullSumState` (exact sums) or `nk.vqs.MCState` on `system.hilbert`; changed in place.
        settings: time grid, scheme and fit settings.
        seed, ansatz: metadata of the result file (the ansatz description defaults to the model's own).
        exact: compute the exact trajectory (when the Hilbert space has at most 2^16 states).
        manifold: orthonormal rows φ_a (sector vectors over `system.sector_states()` for a constrained system, else
            full-space vectors): record the return rate into their span (`dynamics.recording`); needs `exact`.
        run: `out`, `mode`, `config`, `progress` (`nqs.run.RunOptions`; the bar runs over the time steps).
    """
    settings = settings or TENGSettings()
    system.check_closed("TENG (Schrödinger evolution)")
    check_hilbert(system, vstate)
    t_start = time.perf_counter()
    scheme = get_scheme(settings.scheme)
    method = {"name": "dynamics.teng", "scheme_order": scheme.order, **dataclasses.asdict(settings)}
    with open_run(system, vstate, method, seed, ansatz, **run) as recording:
        times = settings.times
        with_exact = exact and settings.propagation == "real"
        recorder, state, first = DynamicsRecorder.start(system, vstate, times, recording, with_exact, manifold=manifold,
                                                        damping=settings.damping)
        if first == 0:
            recorder.record(0, 0.0, vstate)
        fitter = _Fitter(system, vstate, settings)
        every = settings.n_steps // (settings.n_save - 1)
        damping = float(state["damping"])
        bar = recording.progress_bar(settings.n_steps, "TENG", initial=first * every)
        for index in range(first + 1, settings.n_save):
            reports, damping = _advance(fitter, scheme, vstate, every, damping, float(times[index]), bar)
            final = [r.losses[-1] for r in reports]
            recorder.record(index, float(times[index]), vstate, {
                "loss_max": float(np.max(final)),
                "loss_mean": float(np.mean(final)),
                "iterations": float(sum(len(r.losses) - 1 for r in reports)),
                "rejections": float(sum(r.rejections for r in reports)),
                "damping": damping,
            })
            recorder.checkpoint(index, vstate, {**state, "damping": damping})
        bar.close()
    return DynamicsOutcome(vstate, times, recording.rows, recorder.trajectory, time.perf_counter() - t_start)


def _advance(fitter: _Fitter, scheme: Scheme, vstate: Any, n_steps: int, damping: float, t_next: float,
             bar: Any) -> tuple[list[StageReport], float]:
    """`n_steps` TENG steps from the state's parameters, which then hold the result; (stage reports, damping)."""
    params, reports = vstate.parameters, []
    for _ in range(n_steps):
        params, step_reports, damping = teng_step(fitter, scheme, params, damping)
        if not all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree_util.tree_leaves(params)):
            raise FloatingPointError(f"non-finite parameters before t = {t_next:.6g}")
        reports += step_reports
        bar.update()
    vstate.parameters = params
    return reports, damping


__all__ = ["SCHEMES", "StageReport", "TENGSettings", "evolve_teng", "teng_step"]
