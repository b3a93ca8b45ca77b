"""Variational steady state of the POVM distribution (Luo, Chen, Carrasquilla, Clark, PRL 128, 090501 (2022)).

Minimise ‖L P_θ‖₁ = Σ_a |(L P_θ)(a)| = E_{a∼P_θ} |L_loc(a)| (density held fixed in the gradient) with Adam, or relax
along the POVM-TDVP flow S θ̇ = F (`dynamics.povm.tdvp`) by RK4 steps (``optimizer="natural"``; its fixed point F = 0
is the steady state within the model's tangent space), keeping the checkpoint with the lowest large-sample (or, in
full summation, exact) loss after `eval_after` iterations. ‖L P‖₁ = 0 iff P is the unique steady state; positivity of
ρ(P) is not enforced. Runs checkpoint their whole state at every history row and resume exactly.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable, Mapping
from typing import Any, Unpack

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from dynamics.povm.context import PovmContext, apply_lindbladian, as_jit_output, make_context, set_parameters
from dynamics.povm.recorder import PovmOutcome, Recorder, open_povm_run, restore
from dynamics.povm.settings import AdamSettings, RecordingSettings
from dynamics.povm.tdvp import PovmTDVPSettings, make_tdvp_rhs
from nqs import exact
from nqs.exact import MAX_OPEN_SITES
from nqs.povm import POVM
from nqs.run import Run, RunOptions
from nqs.system import System

STEADY_OPTIMIZERS = ("adam", "natural")


@dataclasses.dataclass(frozen=True)
class SteadyStateSettings(AdamSettings, RecordingSettings):
    """Variational steady state ‖L P_θ‖₁ → min (stored as /method attributes).

    Attributes:
        optimizer: "adam" (Luo et al.: Adam on the gradient of ‖L P_θ‖₁) or "natural" (relaxation along the POVM-TDVP
            flow θ̇ = S⁻¹F by RK4 steps of length τ_k, the learning-rate schedule, S⁻¹ the smooth pseudo-inverse with
            cut-offs `pinv_rtol`, `pinv_rtol_smooth`; its fixed points are those of the TDVP flow, F = 0).
        n_iter: iterations (Luo et al.: 500 with 10⁴ samples each, lr 1e-2, halved at 600).
        eval_after: consider checkpoints only from this iteration on.
        eval_every: evaluate the loss every this many iterations (a history row and a resumable checkpoint each
            time); in full summation the exact loss of every iteration after `eval_after` is compared.
        n_eval_samples: samples of the checkpoint-selection loss estimate (sampled mode).
        pinv_rtol, pinv_rtol_smooth: the cut-offs of the "natural" optimizer (as in `PovmTDVPSettings`).
        learning_rate, …, lr_final: the optimiser and its schedule (`AdamSettings`; the "step" drop at 600 comes
            after the default run).
        n_obs_samples (default 10⁵), purity_max_sites, seed: `RecordingSettings`.
    """

    optimizer: str = "adam"
    n_iter: int = 500
    eval_after: int = 400
    eval_every: int = 5
    n_eval_samples: int = 40000
    pinv_rtol: float = 1e-12
    pinv_rtol_smooth: float = 1e-4
    n_obs_samples: int = 100000
    drop_at: int = 600

    def __post_init__(self):
        super().__post_init__()
        if self.optimizer not in STEADY_OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose one of {STEADY_OPTIMIZERS}")
        if self.n_iter < 1 or self.eval_every < 1:
            raise ValueError("n_iter and eval_every must be >= 1")
        if not 0 <= self.eval_after < self.n_iter:
            raise ValueError(f"eval_after must be in [0, n_iter), got {self.eval_after}")

    def make_optimizer(self, n_iter: int) -> optax.GradientTransformation:
        """Adam, or for "natural" plain steps of the scheduled size along the update passed as −θ̇."""
        if self.optimizer == "natural":
            return optax.sgd(self.make_schedule(n_iter))
        return super().make_optimizer(n_iter)


def exact_steady_state(system: System) -> np.ndarray:
    """ρ_ss of `system` from `nqs.exact.steady_state` (QuTiP `steadystate`)."""
    rho, _ = exact.steady_state(system)
    return np.asarray(rho)


def steady_state_loss(ctx: PovmContext, n_samples: int) -> Callable:
    """(θ, key) ↦ (‖L P_θ‖₁, per-outcome values): exact (full sum, |(L P_θ)(a)| for every a) or E_{a∼P_θ}|L_loc(a)|
    on `n_samples` samples with the density held fixed (|L_loc(a)| per sample)."""
    if ctx.full_sum:
        def loss(p, key):
            values = jnp.abs(apply_lindbladian(ctx.lindbladian, ctx.probabilities(p)))
            return jnp.sum(values), values
        return loss

    def loss(p, key):
        a = ctx.sample(jax.lax.stop_gradient(p), key, n_samples)
        log_p = ctx.log_prob(p, a)
        values = jnp.abs(ctx.lp_ratios(p, a, jax.lax.stop_gradient(log_p), log_p_a=log_p))
        return jnp.mean(values), values
    return loss


def steady_state_direction(ctx: PovmContext, settings: SteadyStateSettings, params) -> Callable:
    """direction(p, key, τ) = (loss of this iteration, the update direction as a parameter tree): the gradient of
    ‖L P_θ‖₁ (Adam), or −θ̇ of one classical Runge–Kutta step of length τ along the POVM-TDVP flow, with ‖L P_θ‖₁ from
    the first stage's samples ("natural"). RK4's stability region holds the imaginary axis up to |ωτ| = 2√2, where
    Euler's does not: on the 3-site chain Euler steps of τ = 0.2 circle at ‖L P‖₁ ≈ 0.35 and RK4 steps converge."""
    if settings.optimizer == "adam":
        value_and_grad = jax.value_and_grad(steady_state_loss(ctx, ctx.n_samples), has_aux=True)

        def direction(p, key, tau):
            (value, _), grad = value_and_grad(p, key)
            return value, grad
        return direction

    _, unravel = ravel_pytree(params)
    rhs, _ = make_tdvp_rhs(ctx, PovmTDVPSettings(solver="pinv_smooth", pinv_rtol=settings.pinv_rtol,
                                                 pinv_rtol_smooth=settings.pinv_rtol_smooth), unravel)

    def direction(p, key, tau):
        keys = jax.random.split(key, 4)
        flat = ravel_pytree(p)[0]
        k1, _, _, value = rhs(flat, keys[0])
        k2 = rhs(flat + 0.5 * tau * k1, keys[1])[0]
        k3 = rhs(flat + 0.5 * tau * k2, keys[2])[0]
        k4 = rhs(flat + tau * k3, keys[3])[0]
        return value, unravel(-(k1 + 2 * k2 + 2 * k3 + k4) / 6)
    return direction


def _make_chunk(ctx: PovmContext, settings: SteadyStateSettings, direction: Callable,
                opt: optax.GradientTransformation, lr_at: optax.Schedule) -> Callable:
    """chunk(θ, opt_state, key, length, start, best), jitted: `length` iterations from iteration `start`, returning
    (θ, opt_state, key, best, per-iteration losses). In full summation the exact loss of every iteration from
    `eval_after` on is compared inside the scan and best = (loss, iteration, parameters) carried."""

    @functools.partial(jax.jit, static_argnums=3)
    def chunk(p, opt_state, key, length, start, best):
        def body(carry, it):
            p, opt_state, key, best = carry
            key, sub = jax.random.split(key)
            value, grad = direction(p, sub, lr_at(it))
            if ctx.full_sum:  # exact loss of the current parameters: keep the best one
                better = (it >= settings.eval_after) & (value < best[0])
                best = (jnp.where(better, value, best[0]), jnp.where(better, it, best[1]),
                        jax.tree_util.tree_map(lambda x, y: jnp.where(better, x, y), p, best[2]))
            updates, opt_state = opt.update(grad, opt_state, p)
            return (optax.apply_updates(p, updates), opt_state, key, best), value

        (p, opt_state, key, best), values = jax.lax.scan(body, (p, opt_state, key, best), start + jnp.arange(length))
        return p, opt_state, key, best, values

    return chunk


def find_steady_state(system: System, vstate: Any, settings: SteadyStateSettings | None = None, *,
                      povm: POVM | None = None, seed: int = 0, ansatz: Mapping[str, Any] | None = None,
                      exact: bool = True, **run: Unpack[RunOptions]) -> PovmOutcome:
    """Variational steady state (Luo et al., PRL 128, 090501 (2022)): min_θ ‖L P_θ‖₁ = E_{a∼P_θ}|L_loc(a)|
    by Adam, or by relaxation along the POVM-TDVP flow (``settings.optimizer = "natural"``), keeping the best
    checkpoint by a large-sample (full sum: exact) loss after `eval_after`.

    The natural-gradient relaxation integrates dP/dt = L P projected on the model's tangent space (S θ̇ = F, RK4 steps
    of the scheduled length τ). It needs no derivative of the connected strings' log P (Adam's gradient of ‖L P_θ‖₁
    does), and with fewer samples than parameters S⁻¹F is solved in sample space (`solvers._smooth_pinv_solve`), so
    that one evaluation of θ̇ costs less than an Adam iteration, and each RK4 step advances the relaxation by τ
    (0.1–0.2) where Adam needs hundreds of iterations in all.

    Args as in `evolve_trapezoid` (result file kind "steady_state"; /exact holds the QuTiP steady-state
    values, N ≤ 9). History rows every `eval_every` iterations: ``loss`` (mean mini-batch loss since the
    previous row), ``learning_rate``, and from `eval_after` on ``eval_loss`` (± ``eval_loss_error``); the
    last row (step n_iter + 1) holds the observables and diagnostics of the best checkpoint. Every row is followed by
    a checkpoint of the whole run state (parameters, optimizer state, random key, best so far), so ``mode="resume"``
    continues an interrupted run exactly; the final checkpoint holds the best parameters, which are also the final
    parameters of `vstate` (`nqs.results.load_parameters` reads either).
    """
    settings = settings or SteadyStateSettings()
    povm = povm or POVM.tetrahedral()
    ctx = make_context(system, vstate, povm)
    t_start = time.perf_counter()
    with open_povm_run("steady_state", "dynamics.povm_steady_state", system, vstate, settings, povm, ctx, seed, ansatz,
                       **run) as recording:
        rhos = [exact_steady_state(system)] if exact and ctx.n_sites <= MAX_OPEN_SITES else None
        recorder = Recorder(ctx, povm, recording, rhos, settings.n_obs_samples, settings.purity_max_sites)
        opt = settings.make_optimizer(settings.n_iter)
        params = as_jit_output(vstate.parameters)
        # full sum: the exact loss of every iteration is compared inside the scan ("best", carried);
        # sampled: only the large-sample estimates at the evaluation points ("evaluated"). A finished run's state
        # holds the best parameters as "params" and the winner of the two as "evaluated".
        state, _ = restore(recording, {
            "params": params, "opt_state": opt.init(params), "key": jax.random.PRNGKey(settings.seed), "iteration": 0,
            "best": as_jit_output((jnp.asarray(jnp.inf), jnp.asarray(-1), params)),
            "evaluated": (jnp.asarray(jnp.inf), jnp.asarray(-1), params), "finished": 0})
        state = _optimise(ctx, settings, opt, recorder, recording, state)
        loss, step, params = state["evaluated"]
        best_loss, best_step = float(loss), int(step)
        _, sub = jax.random.split(state["key"])
        recorder.record(settings.n_iter + 1, None, params, sub, {"best_loss": best_loss, "best_step": float(best_step)})
        set_parameters(vstate, params)
    return PovmOutcome(vstate, None, recording.rows, recorder.exact, time.perf_counter() - t_start,
                       {"best_loss": best_loss, "best_step": best_step})


def _checkpoint(run: Run, state: dict[str, Any]) -> None:
    """The run state as a checkpoint after its iteration: the parameters apart from the rest of the run state."""
    run.checkpoint(int(state["iteration"]), state["params"], {k: v for k, v in state.items() if k != "params"})


def _optimise(ctx: PovmContext, settings: SteadyStateSettings, opt: optax.GradientTransformation, recorder: Recorder,
              run: Run, state: dict[str, Any]) -> dict[str, Any]:
    """Iterate from the run state to `n_iter`, a history row and a checkpoint every `eval_every` iterations; returns
    the finished state, whose "params" are the best parameters and "evaluated" = (loss, iteration, parameters) of the
    best."""
    lr_at = settings.make_schedule(settings.n_iter)
    chunk = _make_chunk(ctx, settings, steady_state_direction(ctx, settings, state["params"]), opt, lr_at)
    eval_loss = jax.jit(steady_state_loss(ctx, settings.n_eval_samples))
    it, finished = int(state["iteration"]), bool(state["finished"])
    params, opt_state, key, best, evaluated = (state[k] for k in ("params", "opt_state", "key", "best", "evaluated"))
    bar = run.progress_bar(settings.n_iter, "POVM steady state", initial=it)
    while it < settings.n_iter:
        length = min(settings.eval_every, settings.n_iter - it)
        params, opt_state, key, best, values = chunk(params, opt_state, key, length, it, best)
        it += length
        bar.update(length)
        row = {"step": float(it), "loss": float(jnp.mean(values)), "learning_rate": float(lr_at(it - 1))}
        bar.set_postfix(loss=f"{row['loss']:.3e}", refresh=False)
        if not math.isfinite(row["loss"]):
            raise FloatingPointError(f"steady state, iteration {it}: the loss is {row['loss']}")
        if it > settings.eval_after or it == settings.n_iter:
            key, sub = jax.random.split(key)
            value, per_sample = eval_loss(params, sub)
            row["eval_loss"] = float(value)
            if not ctx.full_sum:
                row["eval_loss_error"] = float(jnp.std(per_sample) / math.sqrt(per_sample.shape[0]))
            if float(value) < float(evaluated[0]):
                evaluated = (jnp.asarray(float(value)), jnp.asarray(it), params)
        recorder.append(row)
        state = {"params": params, "opt_state": opt_state, "key": key, "iteration": it, "best": best,
                 "evaluated": evaluated, "finished": 0}
        if it < settings.n_iter:
            _checkpoint(run, state)
    bar.close()
    if not finished:
        if float(best[0]) < float(evaluated[0]):
            evaluated = best
        state = {**state, "params": evaluated[2], "evaluated": evaluated, "finished": 1}
        _checkpoint(run, state)
    return state
