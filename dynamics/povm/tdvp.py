"""POVM-TDVP (Reh, Schmitt, Gärttner, PRL 127, 230501 (2021)): the time-dependent variational principle for P_θ.

The least-squares fit of d log P_θ/dt = L_loc gives, for real parameters, with O_k(a) = ∂ log P_θ(a)/∂θ_k,

    S θ̇ = F,   S_kk' = Cov_P(O_k, O_k'),   F_k = Cov_P(O_k, L_loc),

solved with a regularised inverse (`dynamics.povm.solvers`) and integrated with NetKet's Runge–Kutta integrators
(`dynamics.integrators`: fixed Euler/Heun/RK4 or adaptive RK23/RK45). In full summation
F_k = Σ_a (O_k(a) − ⟨O_k⟩)(L P_θ)(a), which needs no division by P. The relative residual
Var(L_loc − O·θ̇)/Var(L_loc) is recorded (in-sample when sampled: it underestimates the error of a noisy fit;
``heldout_samples`` adds the residual of θ̇ on independent samples). A product start can first be re-parametrised by
`tangent_start` so that its tangent space holds the first step (`dynamics.tangent_start`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, Unpack

import jax
import jax.numpy as jnp
import netket.experimental as nkx
import numpy as np
from jax.flatten_util import ravel_pytree
from tqdm.auto import tqdm

from dynamics.integrators import ADAPTIVE, check_integrator, make_integrator
from dynamics.povm.context import PovmContext, apply_lindbladian, as_jit_output, make_context, set_parameters
from dynamics.povm.recorder import PovmOutcome, Recorder, record_evolution
from dynamics.povm.settings import RecordingSettings, check_time_grid, save_times
from dynamics.povm.solvers import TDVP_SOLVERS, solve_tdvp
from dynamics.tangent_start import HEAD, TangentStartReport, fit_tangent_start
from nqs.povm import POVM
from nqs.run import Run, RunOptions
from nqs.system import System

MAX_FULL_SUM_JACOBIAN_BYTES = 8 * 2**30  # full-sum POVM-TDVP stores the (4^N, n_params) Jacobian


@dataclasses.dataclass(frozen=True)
class PovmTDVPSettings(RecordingSettings):
    """POVM-TDVP (stored as /method attributes).

    Attributes:
        t_end, dt, n_save: final time, integrator step (initial step when adaptive), save points.
        integrator: "Euler", "Heun", "RK4" (fixed step), "RK23" or "RK45" (adaptive, tolerances rtol/atol
            on the parameters in the Euclidean norm). NetKet 3.23's adaptive step runs its `lax.cond`s
            outside jit and compiles them anew on every step: a fixed cost per step, negligible for large
            models, dominant for tiny ones.
        solver: "pinv_smooth" (NetKet's eigen-decomposition pseudo-inverse with the smooth cut-off
            1/(1 + (pinv_rtol_smooth λ_max/λ)⁶), eigenvalues below pinv_rtol λ_max dropped), "shift"
            (Cholesky solve of S + diag_shift·1) or "snr" (the same pseudo-inverse times the signal-to-noise
            filter 1/(1 + (snr_tol/SNR_k)⁶) of `snr_solve`; sampled states only, full sums use pinv_smooth) or "cv"
            (the smooth cut-off chosen from `cv_cutoffs` at every evaluation by cross-validation, `cv_solve`; sampled
            states only, full sums use pinv_smooth).
        pinv_rtol, pinv_rtol_smooth, diag_shift, snr_tol, cv_cutoffs: the cut-offs of those solvers.
        heldout_samples: at every save time of a sampled run, also evaluate the relative residual of a fresh θ̇ on
            this many independent samples (``tdvp_residual_heldout``; 0: off). The in-sample residual falls when the
            fit absorbs sample noise; the held-out one rises.
        n_obs_samples, purity_max_sites, seed: `RecordingSettings`.
    """

    t_end: float = 1.0
    dt: float = 0.01
    n_save: int = 11
    integrator: str = "RK4"
    rtol: float = 1e-5
    atol: float = 1e-5
    solver: str = "pinv_smooth"
    pinv_rtol: float = 1e-12
    pinv_rtol_smooth: float = 1e-8
    diag_shift: float = 1e-6
    snr_tol: float = 2.0
    cv_cutoffs: tuple[float, ...] = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8)
    heldout_samples: int = 0

    def __post_init__(self):
        check_time_grid(self.t_end, self.dt, self.n_save)
        if self.heldout_samples < 0:
            raise ValueError(f"heldout_samples must be >= 0, got {self.heldout_samples}")
        check_integrator(self.integrator)
        if self.solver not in TDVP_SOLVERS:
            raise ValueError(f"unknown solver {self.solver!r}; choose one of {TDVP_SOLVERS}")
        if self.diag_shift < 0:
            raise ValueError(f"diag_shift must be >= 0, got {self.diag_shift}")
        if not self.snr_tol >= 0:
            raise ValueError(f"snr_tol must be >= 0, got {self.snr_tol}")
        if not self.cv_cutoffs or not all(c > 0 for c in self.cv_cutoffs):
            raise ValueError(f"cv_cutoffs must be a non-empty tuple of positive cut-offs, got {self.cv_cutoffs}")

    @property
    def times(self) -> np.ndarray:
        return save_times(self.t_end, self.n_save)

    def make_solver(self, dt: float | None = None) -> nkx.dynamics.AbstractSolver:
        """The NetKet Runge–Kutta solver object for `nkx.dynamics.Integrator` (initial step `dt`, default self.dt;
        fixed-step integrators always use self.dt)."""
        step = dt if dt is not None and self.integrator in ADAPTIVE else self.dt
        return make_integrator(self.integrator, step, rtol=self.rtol, atol=self.atol)


# -- the right-hand side θ̇ = S⁻¹F ------------------------------------------------------------------
class _Moments(NamedTuple):
    """Centred log-derivatives Oc, weights of the rows (P or 1/N_s), L_loc, S, F and ‖L P_θ‖₁ (estimate)."""

    Oc: jax.Array
    weights: jax.Array
    L_loc: jax.Array
    S: jax.Array
    F: jax.Array
    l1: jax.Array


def _log_derivatives(ctx: PovmContext, unravel: Callable) -> Callable:
    """(flat θ, a) ↦ rows ∂ log P(a_i)/∂θ as a vmap of per-string gradients: `jax.jacrev` of the batched log P pulls
    every one of the B cotangents back through the whole batch, O(B²) work instead of O(B)."""
    def log_p_one(flat, x):
        return ctx.log_prob(unravel(flat), x[None])[0]

    return jax.vmap(jax.grad(log_p_one), in_axes=(None, 0))


def _full_sum_moments(ctx: PovmContext, jacobian: Callable, unravel: Callable, flat: jax.Array) -> _Moments:
    """The exact sums over all 4^N outcomes, weighted by P_θ."""
    a = jnp.asarray(ctx.outcomes)
    P = ctx.probabilities(unravel(flat))
    O = jacobian(flat, a)  # (4^N, n_params)
    Oc = O - P @ O
    LP = apply_lindbladian(ctx.lindbladian, P)
    S = Oc.T @ (P[:, None] * Oc)
    F = Oc.T @ LP  # Σ_a (O − ⟨O⟩)(L P)(a) = Cov(O, L_loc)
    return _Moments(Oc, P, LP / jnp.maximum(P, 1e-300), S, F, jnp.sum(jnp.abs(LP)))


def _sampled_rows(ctx: PovmContext, jacobian: Callable, unravel: Callable, flat: jax.Array, key: jax.Array,
                  n: int) -> tuple[jax.Array, jax.Array]:
    """Centred log-derivatives and L_loc on n samples of P_θ."""
    a = ctx.sample(unravel(flat), key, n)
    log_pa = ctx.log_prob(unravel(flat), a)
    O = jacobian(flat, a)
    return O - O.mean(0), ctx.lp_ratios(unravel(flat), a, log_pa, log_p_a=log_pa)


def _sampled_moments(ctx: PovmContext, jacobian: Callable, unravel: Callable, flat: jax.Array,
                     key: jax.Array) -> _Moments:
    """Sample means over `ctx.n_samples` exact samples."""
    Oc, L_loc = _sampled_rows(ctx, jacobian, unravel, flat, key, ctx.n_samples)
    n = L_loc.shape[0]
    S = Oc.T @ Oc / n
    F = Oc.T @ (L_loc - L_loc.mean()) / n
    return _Moments(Oc, jnp.full(n, 1.0 / n), L_loc, S, F, jnp.mean(jnp.abs(L_loc)))


def make_tdvp_rhs(ctx: PovmContext, settings: PovmTDVPSettings, unravel: Callable) -> tuple[Callable, Callable]:
    """(rhs, heldout), jitted. rhs(θ, key) = (θ̇ = S⁻¹F regularised, relative residual Var(L_loc − O·θ̇)/Var(L_loc)
    on the samples of the fit, the smooth cut-off used, ‖L P_θ‖₁ = E|L_loc| on those samples or exact);
    heldout(θ, θ̇, key) = the relative residual of θ̇ on `settings.heldout_samples` fresh samples (sampled states
    only)."""
    jacobian = _log_derivatives(ctx, unravel)

    @jax.jit
    def rhs(flat, key):
        if ctx.full_sum:
            m = _full_sum_moments(ctx, jacobian, unravel, flat)
        else:
            m = _sampled_moments(ctx, jacobian, unravel, flat, key)
        centred = m.L_loc - m.weights @ m.L_loc
        theta_dot, cutoff = solve_tdvp(m.S, m.F, m.Oc, centred, settings, ctx.full_sum)
        residual = centred - m.Oc @ theta_dot
        rel = (m.weights @ residual**2) / jnp.maximum(m.weights @ centred**2, 1e-300)
        # solved in the promoted precision, returned in the parameters' (NetKet's RK stages store θ̇ in y's dtype)
        return theta_dot.astype(flat.dtype), rel, cutoff, m.l1

    @jax.jit
    def heldout(flat, theta_dot, key):
        Oc, L_loc = _sampled_rows(ctx, jacobian, unravel, flat, key, settings.heldout_samples)
        centred = L_loc - L_loc.mean()
        return jnp.mean((centred - Oc @ theta_dot) ** 2) / jnp.maximum(jnp.mean(centred**2), 1e-300)

    return rhs, heldout


class _Flow:
    """θ̇(t, θ) for NetKet's integrator: the jitted `rhs` with a fresh sampling key per evaluation, keeping the
    residual and cut-off of the last evaluation for the rows."""

    def __init__(self, rhs: Callable, key: jax.Array):
        self.rhs, self.key = rhs, key
        self.residual = self.cutoff = float("nan")

    def next_key(self) -> jax.Array:
        self.key, sub = jax.random.split(self.key)
        return sub

    def __call__(self, t, y, *, stage=0):
        theta_dot, residual, cutoff, _ = self.rhs(y, self.next_key())
        self.residual, self.cutoff = float(residual), float(cutoff)
        return theta_dot


# -- the driver -------------------------------------------------------------------------------------
def evolve_povm_tdvp(system: System, vstate: Any, settings: PovmTDVPSettings | None = None, *, povm: POVM | None = None,
                     rho0: np.ndarray | None = None, seed: int = 0, ansatz: Mapping[str, Any] | None = None,
                     exact: bool = True, **run: Unpack[RunOptions]) -> PovmOutcome:
    """Lindblad dynamics of the POVM distribution by TDVP (Reh, Schmitt, Gärttner, PRL 127, 230501 (2021)):
    Cov(O, O) θ̇ = Cov(O, L_loc), O_k = ∂ log P_θ/∂θ_k, integrated with NetKet's Runge–Kutta integrators.

    Arguments as in `evolve_trapezoid`. Rows add ``tdvp_residual`` (relative residual of the fit at the
    last evaluation), ``tdvp_cutoff`` (the smooth cut-off of that evaluation), ``integrator_steps``, ``dt`` and,
    with ``settings.heldout_samples``, ``tdvp_residual_heldout`` (the residual of a fresh θ̇ at the save time on
    independent samples).
    """
    settings = settings or PovmTDVPSettings()
    povm = povm or POVM.tetrahedral()
    ctx = make_context(system, vstate, povm)
    flat0, unravel = ravel_pytree(vstate.parameters)
    _check_full_sum_jacobian(ctx, flat0)
    params = as_jit_output(vstate.parameters)

    def steps(recorder: Recorder, recording: Run, state: dict[str, Any], first: int):
        return unravel(_integrate(ctx, settings, unravel, recorder, recording, state, first))

    return record_evolution("dynamics.povm_tdvp", system, vstate, settings, povm, ctx,
                            {"initial": params, "params": params, "t": 0.0, "dt": settings.dt, "steps": 0,
                             "key": jax.random.PRNGKey(settings.seed)}, steps,
                            rho0=rho0, seed=seed, ansatz=ansatz, exact=exact, **run)


def _check_full_sum_jacobian(ctx: PovmContext, flat: jax.Array) -> None:
    """ValueError when the full-sum (4^N, n_params) Jacobian would exceed `MAX_FULL_SUM_JACOBIAN_BYTES`."""
    if ctx.full_sum:
        jacobian_bytes = 4**ctx.n_sites * flat.size * flat.dtype.itemsize
        if jacobian_bytes > MAX_FULL_SUM_JACOBIAN_BYTES:
            raise ValueError(
                f"full-sum POVM-TDVP stores the (4^{ctx.n_sites}, {flat.size}) Jacobian, "
                f"{jacobian_bytes / 2**30:.1f} GiB > {MAX_FULL_SUM_JACOBIAN_BYTES / 2**30:.0f} GiB: "
                "use a smaller model, fewer sites or sampling")


def _integrate(ctx: PovmContext, settings: PovmTDVPSettings, unravel: Callable, recorder: Recorder,
               run: Run, state: dict[str, Any], first: int) -> jax.Array:
    """Integrate from the state of save point `first` (−1: a fresh start, which records save point 0 first) to t_end,
    with a row and a checkpoint at every save point; returns the final flat parameters."""
    times = settings.times
    rhs, heldout = make_tdvp_rhs(ctx, settings, unravel)
    flow = _Flow(rhs, state["key"])
    solver = settings.make_solver(float(state["dt"]))  # a resumed adaptive run continues with its last step
    integrator = nkx.dynamics.Integrator(flow, solver, float(state["t"]),
                                         as_jit_output(ravel_pytree(state["params"])[0]),
                                         use_adaptive=solver.adaptive, parameters=solver.integrator_params)
    n_steps = int(state["steps"])

    def save_point(index: int, diagnostics: dict[str, float] | None = None) -> None:
        params = unravel(integrator.y)
        recorder.record(index, float(times[index]), params, flow.next_key(), diagnostics, exact_index=index)
        run.checkpoint(index, params, {"initial": state["initial"], "t": float(integrator.t),
                                       "dt": float(integrator.dt), "steps": n_steps, "key": flow.key})

    if first < 0:
        save_point(0)
        first = 0
    bar = run.progress_bar(float(times[-1]), "POVM-TDVP", initial=float(state["t"]), unit="time",
                           bar_format="{l_bar}{bar}| t={n:.4g}/{total:.4g} [{elapsed}<{remaining}{postfix}]")
    for index in range(first + 1, len(times)):
        n_steps = _advance(integrator, times[index], n_steps, bar)
        diagnostics = {"tdvp_residual": flow.residual, "tdvp_cutoff": flow.cutoff,
                       "integrator_steps": float(n_steps), "dt": float(integrator.dt)}
        if settings.heldout_samples and not ctx.full_sum:
            theta_dot, *_ = rhs(integrator.y, flow.next_key())
            diagnostics["tdvp_residual_heldout"] = float(heldout(integrator.y, theta_dot, flow.next_key()))
        save_point(index, diagnostics)
    bar.close()
    return integrator.y


def _advance(integrator: nkx.dynamics.Integrator, t_save: float, n_steps: int, bar: tqdm) -> int:
    """Integrator steps up to `t_save` (the last one shortened to land on it); returns the step count."""
    while float(integrator.t) < t_save - 1e-12 * max(1.0, t_save):
        t_before = float(integrator.t)
        integrator.step(max_dt=t_save - float(integrator.t))
        n_steps += 1
        bar.update(float(integrator.t) - t_before)
        if integrator.errors:
            raise RuntimeError(f"POVM-TDVP integrator at t = {float(integrator.t):.6g}: {integrator.errors.message()}")
        if not bool(jnp.all(jnp.isfinite(integrator.y))):
            raise FloatingPointError(f"POVM-TDVP: non-finite parameters at t = {float(integrator.t):.6g}")
    return n_steps


def tangent_start(
    system: System,
    vstate: Any,
    *,
    povm: POVM | None = None,
    n_samples: int = 8192,
    n_iter: int = 1000,
    learning_rate: float = 3e-3,
    head: tuple[str, ...] = HEAD,
    seed: int = 0,
    progress: bool = False,
) -> TangentStartReport:
    """Re-parametrise a product-start POVM model so that its tangent space holds L_loc (`dynamics.tangent_start`):
    the state is unchanged, `vstate`'s parameters are replaced. Fits on `n_samples` exact samples, reports r²
    on `n_samples` more (drawn from P_θ by the sampler, or from the full vector for a `FullSumState`)."""
    ctx = make_context(system, vstate, povm)
    params = vstate.parameters
    key = jax.random.PRNGKey(seed)
    if ctx.full_sum:
        index = jax.random.choice(key, 4**ctx.n_sites, (2 * n_samples,), p=ctx.probabilities(params))
        a = jnp.asarray(ctx.outcomes)[index]
    else:
        a = ctx.sample(params, key, 2 * n_samples)
    log_pa = ctx.log_prob(params, a)
    target = ctx.lp_ratios(params, a, log_pa, log_p_a=log_pa)
    new, report = fit_tangent_start(ctx.log_prob, params, (a[:n_samples], target[:n_samples]),
                                    (a[n_samples:], target[n_samples:]), head=head, n_iter=n_iter,
                                    learning_rate=learning_rate, seed=seed, progress=progress)
    set_parameters(vstate, new)
    return report
