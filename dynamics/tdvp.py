"""Time-dependent variational principle for any NetKet variational state, recorded against QuTiP.

McLachlan's principle gives, with O_k = ∂ log ψ/∂θ_k, S_kk' = ⟨O_k* O_k'⟩ − ⟨O_k*⟩⟨O_k'⟩ and
F_k = ⟨O_k* E_loc⟩ − ⟨O_k*⟩⟨E_loc⟩:

    real time:       S θ̇ = −i F   (holomorphic θ);   Re[S] θ̇ = Im[F]   (real θ)
    imaginary time:  S θ̇ = −F     (Re[S] θ̇ = −Re[F] for real θ)

(Carleo & Troyer, Science 355, 602 (2017); Yuan et al., Quantum 3, 191 (2019)). The equations, the QGT,
the regularised solvers and the Runge–Kutta integrators (fixed Euler/Heun/RK4 and adaptive RK23/RK45 with
Bogacki–Shampine / Dormand–Prince error control) are NetKet's `netket.experimental.TDVP` used as is. The
QGT is always built from the dense Jacobian (`QGTJacobianDense`, real or holomorphic mode): every solver
here factorises the dense matrix, and the on-the-fly form that `QGTAuto` picks for some models costs one
Jacobian-vector product per parameter to densify (an order of magnitude slower per step for a symmetric RBM;
`docs/benchmarks.md`).
What this module adds: the exact QuTiP trajectory from the variational initial state on the same
grid, fidelity with it, observables and diagnostics per save point in the nqs result file, input
checks, a clear error when the evolution diverges, and the local TDVP residual at every save point

    r² = E|Σ_k θ̇_k Ō_k(x) + g (E_loc(x) − ⟨H⟩)|² / Var(E_loc),    g = i (real time), 1 (imaginary time),

the relative distance between the variational and the exact (projected) time derivative (Schmitt &
Heyl, PRL 125, 100503 (2020); 0 = exact, 1 = no progress), evaluated from θ̇ of the current state by
one Jacobian-vector product. With ``exact_residual=True`` (Hilbert spaces of at most 2^20 states) two
more numbers are recorded from sums over the whole basis: ``tdvp_residual_exact``, the r² of the Monte Carlo
θ̇ weighted by the exact |ψ|² (noise + regularisation + ansatz), and ``tdvp_residual_min``, the least-squares
floor min_θ̇ r² (the ansatz alone: what no number of samples can remove). ``solver="schmitt"`` switches to NetKet's
`nkx.driver.TDVPSchmitt`: the
QGT is diagonalised and each mode k is damped by [1 + (ε_SVD σ_max/σ_k)⁶]⁻¹[1 + (ε_SNR/SNR_k)⁶]⁻¹,
SNR_k = |ρ_k|√N_s/std(ρ_k(x)), ρ_k the force in the eigenbasis (Monte Carlo states only); the
minimum and median SNR are recorded. The filter is a bias, not a noise cure: it drops modes whose force is small
but needed (measured with `benchmarks/tdvp_noise.py`, `docs/benchmarks.md`). With more samples than parameters
the sample noise of the plain smooth pseudo-inverse is small (a least-squares fit: its excess residual is
≈ (P/N_s) × the irreducible one), so prefer "pinv_smooth" with a small cut-off.
A checkpoint (current parameters; initial parameters, integrator steps and step, sampler state) is written at every
save point through the run layer; mode "resume" continues an interrupted run from it (NetKet's TDVP started at
t0 = the checkpoint's time).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Mapping
from typing import Any, Unpack

import jax
import jax.numpy as jnp
import netket as nk
import netket.experimental as nkx
import numpy as np
from netket.utils import struct

from dynamics.infidelity import support_states
from dynamics.integrators import check_integrator, make_integrator
from dynamics.linear_solvers import pinv_smooth
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

SOLVERS = ("pinv_smooth", "cholesky", "svd", "schmitt")
ERROR_NORMS = ("euclidean", "qgt", "maximum")
MAX_EXACT_RESIDUAL_STATES = 2**20


@dataclasses.dataclass(frozen=True)
class TDVPSettings(TimeGrid):
    """Hyper-parameters of a TDVP run (stored as /method attributes), on the time grid of `TimeGrid`.

    Attributes:
        integrator: "Euler", "Heun", "RK4", "RK23" or "RK45".
        propagation: "real" or "imag".
        rtol, atol: tolerances of the adaptive integrators.
        solver: "pinv_smooth" (smooth pseudo-inverse; from the Jacobian's SVD when P exceeds its rows,
            `dynamics.linear_solvers`), "cholesky", "svd", or "schmitt" (NetKet's Schmitt–Heyl
            signal-to-noise filter with the smooth SVD cut-off pinv_rtol_smooth, Monte Carlo states only).
        snr_atol: ε_SNR of the SNR filter.
        error_norm: norm of the adaptive step control: "euclidean", "maximum" or "qgt" (√(δθ† S δθ),
            parameterisation invariant).
        pinv_rtol, pinv_rtol_smooth: cut-offs of the smooth pseudo-inverse (relative to the largest eigenvalue).
        diag_shift: diagonal shift added to the QGT (biases real-time dynamics: keep it small).
        holomorphic: pass True for holomorphic complex-parameter models (None: let NetKet decide).
        exact_residual: also record, at every save point, the r² of θ̇ and its least-squares floor from sums
            over the whole basis (see the module docstring; costs one full Jacobian per save point).
    """

    integrator: str = "RK4"
    propagation: str = "real"
    rtol: float = 1e-6
    atol: float = 1e-6
    solver: str = "pinv_smooth"
    pinv_rtol: float = 1e-12
    pinv_rtol_smooth: float = 1e-10
    diag_shift: float = 0.0
    holomorphic: bool | None = None
    snr_atol: float = 1.0
    error_norm: str = "euclidean"
    exact_residual: bool = False

    def __post_init__(self):
        super().__post_init__()
        check_integrator(self.integrator)
        check_propagation(self.propagation)
        if self.solver not in SOLVERS:
            raise ValueError(f"unknown solver {self.solver!r}; choose one of {SOLVERS}")
        if self.error_norm not in ERROR_NORMS:
            raise ValueError(f"unknown error_norm {self.error_norm!r}; choose one of {ERROR_NORMS}")
        if self.diag_shift < 0:
            raise ValueError(f"diag_shift must be >= 0, got {self.diag_shift}")

    def make_integrator(self, dt: float | None = None):
        """NetKet's integrator, with initial step `dt` (default `self.dt`; a resumed adaptive run continues with its
        last step)."""
        return make_integrator(self.integrator, self.dt if dt is None else dt, rtol=self.rtol, atol=self.atol)

    def make_solver(self):
        if self.solver == "pinv_smooth":
            return functools.partial(pinv_smooth, rtol=self.pinv_rtol, rtol_smooth=self.pinv_rtol_smooth)
        return {"cholesky": nk.optimizer.solver.cholesky, "svd": nk.optimizer.solver.svd}[self.solver]


def _make_driver(system: System, vstate: Any, settings: TDVPSettings, t0: float = 0.0, dt: float | None = None):
    """NetKet's TDVP driver (or TDVPSchmitt for the SNR filter) configured from `settings`, starting at t0."""
    if settings.solver == "schmitt":
        if not isinstance(vstate, nk.vqs.MCState):
            raise ValueError("the SNR filter needs a Monte Carlo state (nk.vqs.MCState); use pinv_smooth for full sums")
        return nkx.driver.TDVPSchmitt(
            system.hamiltonian, vstate, settings.make_integrator(dt), t0=t0, propagation_type=settings.propagation,
            holomorphic=settings.holomorphic, diag_shift=settings.diag_shift, rcond=settings.pinv_rtol,
            rcond_smooth=settings.pinv_rtol_smooth, snr_atol=settings.snr_atol, error_norm=settings.error_norm,
        )
    qgt = functools.partial(nk.optimizer.qgt.QGTJacobianDense, diag_shift=settings.diag_shift,
                            holomorphic=settings.holomorphic)
    return nkx.TDVP(
        system.hamiltonian, vstate, settings.make_integrator(dt), t0=t0, propagation_type=settings.propagation,
        qgt=qgt, linear_solver=settings.make_solver(), error_norm=settings.error_norm,
    )


def least_squares_residual(jac: np.ndarray, w: np.ndarray, delta_e: np.ndarray, g: complex = 1j, *,
                           real_parameters: bool = False) -> tuple[float, np.ndarray]:
    """The floor of the TDVP residual over a basis with weights w = |ψ|²/Σ|ψ|² and its θ̇:

        min_θ̇ Σ_x w |Σ_k Ō_k(x) θ̇_k + g ΔE(x)|² / Σ_x w |ΔE(x)|²,   Ō = O − Σ_x w O,

    for jac = ∂ log ψ/∂θ (configurations × parameters) and ΔE = E_loc − ⟨H⟩; θ̇ real when real_parameters."""
    sw = np.sqrt(w)[:, None]
    a = sw * (jac - w @ jac)
    b = g * sw[:, 0] * delta_e
    if real_parameters:
        a, b = np.concatenate([a.real, a.imag]), np.concatenate([b.real, b.imag])
    theta_dot, *_ = np.linalg.lstsq(a, -b, rcond=1e-12)
    return float(np.sum(np.abs(a @ theta_dot + b) ** 2) / np.sum(w * np.abs(delta_e) ** 2)), theta_dot


class _ResidualEstimator:
    """The TDVP residual r² of the module docstring, for MC samples or exact sums; with `exact` also the
    r² of the same θ̇ and the least-squares floor, both summed over the whole basis."""

    def __init__(self, system: System, vstate: Any, propagation: str, *, exact: bool = False,
                 holomorphic: bool | None = None):
        self.vstate = vstate
        local_energy = LocalEnergy.for_state(vstate, system.hamiltonian)
        apply, model_state = netket_compat.apply_fun(vstate), vstate.model_state
        g = 1j if propagation == "real" else 1.0
        if exact and not (vstate.hilbert.is_indexable and vstate.hilbert.n_states <= MAX_EXACT_RESIDUAL_STATES):
            raise ValueError(f"exact_residual sums over the basis: at most {MAX_EXACT_RESIDUAL_STATES} states")
        self.exact, self.holomorphic, self.g = exact, holomorphic, g

        def logpsi(params, x):
            return apply({"params": params, **model_state}, x)

        self.logpsi = logpsi

        def weights_and_deviation(params, x, log_density):
            log_x, eloc = local_energy(logpsi, params, x)
            w = jax.nn.softmax(2 * log_x.real - log_density)
            return w, eloc - jnp.sum(w * eloc)

        @jax.jit
        def r2(params, theta_dot, x, log_density):
            w, delta_e = weights_and_deviation(params, x, log_density)
            _, tangent = jax.jvp(lambda p: logpsi(p, x), (params,), (theta_dot,))
            residual = tangent - jnp.sum(w * tangent) + g * delta_e
            return jnp.sum(w * jnp.abs(residual) ** 2) / jnp.sum(w * jnp.abs(delta_e) ** 2)

        self._r2 = r2
        self._weights_and_deviation = jax.jit(weights_and_deviation)

    def _minimal_r2(self, params: Any, x: jax.Array) -> float:
        vs = self.vstate
        w, delta_e = (np.asarray(a) for a in self._weights_and_deviation(params, x, jnp.zeros(x.shape[0])))
        mode = "holomorphic" if self.holomorphic else "complex"
        jac = np.asarray(nk.jax.jacobian(netket_compat.apply_fun(vs), params, x, vs.model_state, mode=mode, dense=True,
                                         center=False))
        if jac.ndim == 3:  # (N, 2, P): real and imaginary parts of ∂ log ψ for real parameters
            jac = jac[:, 0] + 1j * jac[:, 1]
        return least_squares_residual(jac, w, delta_e, self.g, real_parameters=not self.holomorphic)[0]

    def diagnostics(self, driver: Any) -> dict[str, float]:
        theta_dot = driver.ode()
        vs = self.vstate
        full_sum = isinstance(vs, nk.vqs.FullSumState)
        if full_sum or self.exact:
            support = support_states(vs, self.logpsi)
        if full_sum:
            x, density = support, jnp.zeros(support.shape[0])
        else:
            x = vs.samples.reshape(-1, vs.hilbert.size)
            density = 2 * vs.log_value(x).real  # samples are drawn from |ψ|²: uniform weights
        out = {"tdvp_residual": float(self._r2(vs.parameters, theta_dot, x, density))}
        if self.exact:
            if not full_sum:
                out["tdvp_residual_exact"] = float(self._r2(vs.parameters, theta_dot, support,
                                                            jnp.zeros(support.shape[0])))
            out["tdvp_residual_min"] = self._minimal_r2(vs.parameters, support)
        snr = netket_compat.tdvp_snr(driver)
        if snr is not None:
            snr = np.asarray(snr)
            out.update({"snr_min": float(snr.min()), "snr_median": float(np.median(snr))})
        return out


def evolve_tdvp(
    system: System,
    vstate: Any,
    settings: TDVPSettings | None = None,
    *,
    seed: int = 0,
    ansatz: Mapping[str, Any] | None = None,
    exact: bool = True,
    manifold: np.ndarray | None = None,
    **run: Unpack[RunOptions],
) -> DynamicsOutcome:
    """Evolve `vstate` under `system.hamiltonian` with TDVP and record it at `settings.n_save` times.

    Args:
        system: the closed system whose Hamiltonian generates the evolution.
        vstate: a NetKet `MCState` or `FullSumState` on `system.hilbert` (modified in place).
        settings: integration and regularisation settings.
        seed, ansatz: metadata of the result file (the ansatz description defaults to the model's own).
        exact: compute the exact trajectory (when the Hilbert space has at most 2^16 states).
        manifold: orthonormal rows φ_a (sector vectors over `system.sector_states()` for a constrained system, else
            full-space vectors): record the return rate into their span (`dynamics.recording`); needs `exact`.
        run: `out`, `mode`, `config`, `progress` (`nqs.run.RunOptions`).
    """
    settings = settings or TDVPSettings()
    system.check_closed("TDVP (Schrödinger evolution)")
    check_hilbert(system, vstate)
    t_start = time.perf_counter()
    method = {"name": "dynamics.tdvp", **dataclasses.asdict(settings)}
    with open_run(system, vstate, method, seed, ansatz, **run) as recording:
        times = settings.times
        with_exact = exact and settings.propagation == "real"
        recorder, state, first = DynamicsRecorder.start(system, vstate, times, recording, with_exact, manifold=manifold,
                                                        steps=0, dt=settings.dt)
        driver = _make_driver(system, vstate, settings, t0=float(times[first]), dt=float(state["dt"]))
        residual = _ResidualEstimator(system, vstate, settings.propagation, exact=settings.exact_residual,
                                      holomorphic=settings.holomorphic)
        if first == 0:
            recorder.record(0, 0.0, vstate, residual.diagnostics(driver))
        callbacks = _SavePoints(recorder, residual, times, state, first)
        remaining = settings.t_end - float(times[first])
        if remaining > 0:
            driver.run(remaining, tstops=times[first + 1:], callback=[callbacks], show_progress=recording.progress)
    return DynamicsOutcome(vstate, times, recording.rows, recorder.trajectory, time.perf_counter() - t_start)


class _SavePoints(nk.callbacks.AbstractCallback):
    """Counts the integrator steps, and at every save time records a row (with the step count, dt and the residual
    diagnostics) and checkpoints (the current parameters, the initial ones, the step count and dt, and the sampler
    state of a Monte Carlo state).

    Both happen when the step from the save time starts (`on_step_start`, first attempt), before that step draws its
    samples, so that a resumed run, which starts with that step, draws the same samples as an uninterrupted one and
    continues bit for bit. (NetKet calls its stop-time callbacks only after the step from the stop time has been
    computed: a checkpoint taken there held the sampler state after that step's sampling, and a resumed Monte Carlo
    run drew other samples; `tests/test_kill.py`.)
    """

    recorder: DynamicsRecorder = struct.field(pytree_node=False, serialize=False)
    residual: _ResidualEstimator = struct.field(pytree_node=False, serialize=False)
    times: np.ndarray = struct.field(pytree_node=False, serialize=False)
    state: dict = struct.field(pytree_node=False, serialize=False)
    steps: int = struct.field(pytree_node=False, serialize=False)
    last: int = struct.field(pytree_node=False, serialize=False)

    def __init__(self, recorder: DynamicsRecorder, residual: _ResidualEstimator, times: np.ndarray,
                 state: dict[str, Any], first: int):
        self.recorder, self.residual, self.times, self.state = recorder, residual, times, state
        self.steps, self.last = int(state["steps"]), first  # save point `first` is recorded already

    def on_step_start(self, step, log_data, driver):
        t = float(driver.t)
        index = int(np.argmin(np.abs(self.times - t)))
        if index > self.last and np.isclose(self.times[index], t):
            self.last = index
            diagnostics = {"integrator_steps": float(self.steps), "dt": float(driver.dt)}
            self.recorder.record(index, t, driver.state, {**diagnostics, **self.residual.diagnostics(driver)})
            self.recorder.checkpoint(index, driver.state, {**self.state, "steps": self.steps, "dt": float(driver.dt)})

    def on_step_end(self, step, log_data, driver):
        self.steps += 1
