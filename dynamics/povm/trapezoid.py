"""Forward–backward trapezoid dynamics of the POVM distribution (Luo, Chen, Carrasquilla, Clark, PRL 128, 090501
(2022)).

The step t → t + dt solves (1 − (dt/2) L) P_θ' = (1 + (dt/2) L) P_θ variationally, by minimising over θ' (θ frozen,
warm start θ' = θ, a fresh Adam for a fixed number of iterations)

    C(θ') = Σ_a |P_θ'(a) − (dt/2)(L P_θ')(a) − P_θ(a) − (dt/2)(L P_θ)(a)|                      (L1)
          = E_{a∼P_θ'} |1 − (dt/2) L_loc,θ'(a) − [P_θ(a) + (dt/2)(L P_θ)(a)] / P_θ'(a)|.

In Luo et al.'s notation dt = 2τ (their code: τ = 0.008, 120 Adam iterations, lr 1e-2 halved at iteration 80).
Sampled, the density P_θ'(a) in the denominator is held fixed (stop-gradient), which makes the sample-mean gradient an
unbiased estimate of ∇C = Σ_a sign(r_a) ∇r_a. In exact arithmetic the scheme is Crank–Nicolson: second order and
A-stable (`exact_trapezoid` is the linear-algebra reference); in practice the per-step optimisation error adds
(t/dt)·ε_fit to the O(dt²) error.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any, Unpack

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.linalg

from dynamics.povm.context import PovmContext, apply_lindbladian, as_jit_output, make_context
from dynamics.povm.recorder import PovmOutcome, Recorder, record_evolution
from dynamics.povm.settings import AdamSettings, RecordingSettings, check_time_grid, save_times
from nqs.povm import POVM
from nqs.run import Run, RunOptions
from nqs.system import System


@dataclasses.dataclass(frozen=True)
class TrapezoidSettings(AdamSettings, RecordingSettings):
    """Forward–backward trapezoid dynamics (stored as /method attributes).

    Attributes:
        t_end: final time (> 0; the run starts at t = 0).
        dt: largest time step. The step used, `step_size`, is the largest one ≤ dt that divides the
            interval between save points, t_end/(n_save − 1). Luo et al.'s τ is step_size/2.
        n_save: number of save points in [0, t_end], both ends included.
        n_iter: Adam iterations per step (Adam is re-initialised every step, warm start θ' = θ).
        learning_rate, …, lr_final: Adam and its schedule (`AdamSettings`).
        n_obs_samples, purity_max_sites, seed: `RecordingSettings`.
    """

    t_end: float = 1.0
    dt: float = 0.016
    n_save: int = 11
    n_iter: int = 120

    def __post_init__(self):
        super().__post_init__()
        check_time_grid(self.t_end, self.dt, self.n_save)
        if not self.t_end > 0:
            raise ValueError(f"t_end must be > 0 for the trapezoid, got {self.t_end}")
        if self.n_iter < 1:
            raise ValueError(f"n_iter must be >= 1, got {self.n_iter}")

    @property
    def steps_per_save(self) -> int:
        """Trapezoid steps between consecutive save points."""
        return max(1, math.ceil(self.t_end / (self.n_save - 1) / self.dt - 1e-9))

    @property
    def step_size(self) -> float:
        """The time step used (≤ dt)."""
        return self.t_end / (self.n_save - 1) / self.steps_per_save

    @property
    def n_steps(self) -> int:
        return self.steps_per_save * (self.n_save - 1)

    @property
    def times(self) -> np.ndarray:
        return save_times(self.t_end, self.n_save)


def exact_trapezoid(L: np.ndarray, P0: np.ndarray, dt: float, n_steps: int) -> np.ndarray:
    """Crank–Nicolson (1 − (dt/2) L) P_{n+1} = (1 + (dt/2) L) P_n with a dense L: rows P_0 … P_{n_steps}.

    The exact-arithmetic limit of the forward–backward trapezoid of Luo et al. (PRL 128, 090501 (2022));
    its global error is O(dt²).
    """
    L = np.asarray(L, dtype=float)
    eye = np.eye(L.shape[0])
    lu = scipy.linalg.lu_factor(eye - 0.5 * dt * L)
    forward = eye + 0.5 * dt * L
    out = [np.asarray(P0, dtype=float)]
    for _ in range(n_steps):
        out.append(scipy.linalg.lu_solve(lu, forward @ out[-1]))
    return np.array(out)


def trapezoid_loss(ctx: PovmContext, dt: float) -> tuple[Callable, Callable]:
    """(prepare, C): C(θ', prepare(θ), key) is the L1 trapezoid residual, exact (full sum) or estimated on
    a ∼ P_θ'. `prepare` runs once per step: in full summation it returns the fixed target
    P_θ + (dt/2) L P_θ, so the Adam iterations evaluate only the new model; sampled, it returns θ itself,
    because the old model is evaluated on each iteration's fresh samples."""
    half = 0.5 * dt
    if ctx.full_sum:
        def prepare(p_old):
            P_old = ctx.probabilities(p_old)
            return P_old + half * apply_lindbladian(ctx.lindbladian, P_old)

        def loss(p_new, target, key):
            P_new = ctx.probabilities(p_new)
            return jnp.sum(jnp.abs(P_new - half * apply_lindbladian(ctx.lindbladian, P_new) - target))
        return prepare, loss

    def loss(p_new, p_old, key):
        a = ctx.sample(jax.lax.stop_gradient(p_new), key, ctx.n_samples)
        log_new = ctx.log_prob(p_new, a)
        ref = jax.lax.stop_gradient(log_new)  # the sampling density, held fixed
        new = jnp.exp(log_new - ref) - half * ctx.lp_ratios(p_new, a, ref, log_p_a=log_new)
        log_old = ctx.log_prob(p_old, a)
        old = jnp.exp(log_old - ref) + half * ctx.lp_ratios(p_old, a, ref, log_p_a=log_old)
        return jnp.mean(jnp.abs(new - old))
    return (lambda p_old: p_old), loss


def make_trapezoid_step(ctx: PovmContext, settings: TrapezoidSettings) -> Callable:
    """The jitted step (θ, key) ↦ (θ', residual of the warm start θ' = θ, final residual) of `settings.n_iter` Adam
    iterations."""
    prepare, loss = trapezoid_loss(ctx, settings.step_size)
    opt = settings.make_optimizer(settings.n_iter)
    value_and_grad = jax.value_and_grad(loss)

    @jax.jit
    def step(p_old, key):
        old = prepare(p_old)

        def body(carry, _):
            p, opt_state, key = carry
            key, sub = jax.random.split(key)
            value, grad = value_and_grad(p, old, sub)
            updates, opt_state = opt.update(grad, opt_state, p)
            return (optax.apply_updates(p, updates), opt_state, key), value

        (p, _, key), losses = jax.lax.scan(body, (p_old, opt.init(p_old), key), None, length=settings.n_iter)
        return p, losses[0], loss(p, old, key)

    return step


def evolve_trapezoid(system: System, vstate: Any, settings: TrapezoidSettings | None = None, *,
                     povm: POVM | None = None,
                     rho0: np.ndarray | None = None, seed: int = 0, ansatz: Mapping[str, Any] | None = None,
                     exact: bool = True, **run: Unpack[RunOptions]) -> PovmOutcome:
    """Lindblad dynamics of the POVM distribution by the forward–backward trapezoid (Luo et al., PRL 128,
    090501 (2022)): per step, min_θ' Σ_a |P_θ' − (dt/2) L P_θ' − P_θ − (dt/2) L P_θ| by Adam (module docstring).

    Args:
        system: open system (H and jump operators on qubits).
        vstate: `FullSumState` (full summation, N ≤ 9) or `MCState` with `ARDirectSampler` on
            Fock(n_max=3, N), model with machine_pow = 1; its parameters are updated in place.
        settings: time grid and optimiser.
        povm: the POVM (default tetrahedral).
        rho0: initial density matrix of the exact reference (default ρ(P_θ(0)), N ≤ 9, the 3×3 lattice).
        seed, ansatz: metadata of the result file (kind "dynamics"). A checkpoint (current parameters; initial
            parameters and random key, for TDVP also t, dt and the step count) is written at every save time, and
            mode "resume" continues an interrupted run from it.
        exact: compute the exact `mesolve` reference (N ≤ 9).
        run: `out`, `mode`, `config`, `progress` (`nqs.run.RunOptions`; the bar runs over the time steps).

    Rows per save time: observables, purity, reduced-ρ minimum eigenvalues, exact comparisons, and
    ``step_loss`` (final L1 residual of the last step), ``max_step_loss`` and ``mean_step_loss`` since
    the previous save, ``initial_step_loss`` (residual of the warm start, ≈ dt‖(L P)‖₁).
    """
    settings = settings or TrapezoidSettings()
    povm = povm or POVM.tetrahedral()
    ctx = make_context(system, vstate, povm)
    params = as_jit_output(vstate.parameters)

    def steps(recorder: Recorder, recording: Run, state: dict[str, Any], index: int):
        return _run_steps(ctx, settings, recorder, recording, state, index)

    return record_evolution("dynamics.povm_trapezoid", system, vstate, settings, povm, ctx,
                            {"initial": params, "params": params, "key": jax.random.PRNGKey(settings.seed)}, steps,
                            rho0=rho0, seed=seed, ansatz=ansatz, exact=exact, **run)


def _run_steps(ctx: PovmContext, settings: TrapezoidSettings, recorder: Recorder, run: Run,
               state: dict[str, Any], index: int):
    """The trapezoid steps after save point `index` (−1: a fresh start, which records save point 0 first), with a row
    and a checkpoint at every save point; returns the final parameters."""
    params, key, initial = state["params"], state["key"], state["initial"]

    def save_point(i: int, diagnostics: dict[str, float] | None = None) -> None:
        nonlocal key
        key, sub = jax.random.split(key)
        recorder.record(i, float(settings.times[i]), params, sub, diagnostics, exact_index=i)
        run.checkpoint(i, params, {"initial": initial, "key": key})

    if index < 0:
        save_point(0)
        index = 0
    step = make_trapezoid_step(ctx, settings)
    save_every, h = settings.steps_per_save, settings.step_size
    losses, first = [], []
    bar = run.progress_bar(settings.n_steps, "POVM trapezoid", initial=index * save_every)
    for n in range(index * save_every + 1, settings.n_steps + 1):
        key, sub = jax.random.split(key)
        params, initial_loss, final = step(params, sub)
        final = float(final)
        bar.update(1)
        bar.set_postfix(t=f"{n * h:.4g}", loss=f"{final:.2e}", refresh=False)
        if not math.isfinite(final):
            raise FloatingPointError(f"trapezoid step {n}: the residual is {final}; the optimisation diverged")
        losses.append(final)
        first.append(float(initial_loss))
        if n % save_every == 0:
            save_point(n // save_every, {
                "step_loss": final, "max_step_loss": max(losses), "mean_step_loss": float(np.mean(losses)),
                "initial_step_loss": float(np.mean(first)), "trapezoid_steps": float(n), "dt": h,
            })
            losses, first = [], []
    bar.close()
    return params
