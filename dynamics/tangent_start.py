"""Tangent-space start: re-parametrise a product-state start so that its tangent space holds the first step.

An autoregressive model started in a product state (`initial_distribution`: zero kernel of the output
head, the logits in its bias) gives the same state for *every* value of the parameters β of its body
(embedding, attention, MLPs): log P_θ(a) = Σ_i log p(a_i) whatever β is. Hence ∂ log P/∂β = 0, and at
t = 0 the tangent space of TDVP is spanned by the head directions alone,

    ∂_v log P(a) = Σ_i [(v h_i)_{a_i} − Σ_s p(s) (v h_i)_s],     h_i = h_i(a_<i; β) the features at site i,

whose reach depends on the random features h_i. The first TDVP step projects the target g(a) = d log P/dt
(for POVM dynamics the local Lindbladian L_loc(a) = (L P)(a)/P(a)) onto that span; with random attention
the features mix all earlier sites alike and miss the nearest-neighbour terms of g: the relative residual

    r²(β) = min_v E_P[(∂_v log P − g)_c²] / Var_P(g)                                              (c: centred)

was 0.41 for the 3×3 dissipative XYZ model (1-layer Transformer, D = 8), and the run drifted from the exact
trajectory early (`docs/results.md`). This module chooses β — which does not change the state — to minimise r²:
Adam on r² over (β, v) jointly, on samples a ∼ P drawn once (the state and therefore the samples and
targets stay fixed), then the head is left at its start value. The returned parameters describe
exactly the same state (checked on the samples), with a tangent space that contains the first-order motion
(r² 0.41 → 1.2e-3 on held-out samples for that model, 1 000 iterations). It fixes the
start only: later the body directions carry weight ∝ |head kernel| ∝ t, which a noise cut-off suppresses
(`docs/results.md`).

This is the autoregressive counterpart of the shift-register start of `ansatze.mps` (whose tangent space
holds every window function by construction). NetKet and jVMC have no such step; it is our own code.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import traverse_util
from flax.core import unfreeze
from tqdm.auto import tqdm

from dynamics.tdvp import least_squares_residual

LogProb = Callable[[Any, jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True)
class TangentStartReport:
    """Relative residuals r² of the head tangent space on held-out samples, before and after the fit."""

    residual_before: float
    residual_after: float
    n_iter: int
    n_samples: int
    wall_time: float

    def as_dict(self) -> dict[str, float]:
        """The reproducible fields (not the wall time), prefixed for a result file's configuration."""
        fields = dataclasses.asdict(self)
        del fields["wall_time"]
        return {f"tangent_start_{k}": v for k, v in fields.items()}


HEAD = ("amplitude_head", "site_logits", "token_logits")  # the output layer of `ansatze` models and its bias tables


def _split(params: Any, head: tuple[str, ...]) -> tuple[dict, dict]:
    """The flattened parameters (path tuples as keys) inside and outside every subtree named in `head`."""
    flat = traverse_util.flatten_dict(unfreeze(params))
    inside = {k: v for k, v in flat.items() if set(head) & set(k)}
    if not inside:
        raise ValueError(f"no parameter subtree named {' or '.join(map(repr, head))} in the model (its "
                         f"parameters: {sorted({'/'.join(map(str, k)) for k in flat})})")
    return inside, {k: v for k, v in flat.items() if k not in inside}


def _join(inside: dict, outside: dict) -> dict:
    return traverse_util.unflatten_dict({**inside, **outside})


def head_residual(log_prob: LogProb, params: Any, samples: jax.Array, target: jax.Array,
                  head: tuple[str, ...] = HEAD) -> float:
    """r² of the least-squares fit of the centred target by the centred head directions ∂ log P/∂(head)
    on `samples` (a ∼ P); at a product start this is the relative TDVP residual at t = 0 (no regularisation)."""
    inside, outside = _split(params, head)
    keys = list(inside)

    def log_p(head_values):
        return log_prob(_join(dict(zip(keys, head_values)), outside), samples)

    jac = jax.jacfwd(log_p)([inside[k] for k in keys])
    O = np.concatenate([np.asarray(j).reshape(samples.shape[0], -1) for j in jac], axis=1)
    g = np.asarray(target) - np.mean(np.asarray(target))
    weights = np.full(samples.shape[0], 1.0 / samples.shape[0])
    return least_squares_residual(O, weights, g, g=-1.0, real_parameters=True)[0]


def fit_tangent_start(
    log_prob: LogProb,
    params: Any,
    fit: tuple[jax.Array, jax.Array],
    check: tuple[jax.Array, jax.Array],
    *,
    head: tuple[str, ...] = HEAD,
    n_iter: int = 1000,
    learning_rate: float = 3e-3,
    seed: int = 0,
    progress: bool = False,
) -> tuple[Any, TangentStartReport]:
    """Minimise r²(β) over the parameters outside `head`, keeping the state fixed (module docstring).

    Args:
        log_prob: (params, a) ↦ log P_θ(a) (real; for a wave function use its log-modulus and target).
        params: parameters at which the model does not depend on anything outside `head`.
        fit, check: (samples a ∼ P_θ, target g(a)) for the fit and for the held-out residuals.
        head: names of the parameter subtrees that pin the state (every subtree with one of these names;
            default: the output head and the per-site bias tables of `ansatze`' autoregressive models).
        n_iter, learning_rate: Adam iterations and step size.
        seed: seed of the probe that checks the precondition.
        progress: show a progress bar with the current r².

    Returns the new parameters (head unchanged) and the residuals before and after.

    Raises ValueError when the model depends on the other parameters (not a product start) or when the
    fit changed log P (which would mean the same).
    """
    t0 = time.perf_counter()
    x_fit, g_fit = fit
    inside, outside = _split(params, head)
    log_p0 = log_prob(params, x_fit)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(outside))
    probe = {k: v + 0.1 * jax.random.normal(key, v.shape, v.dtype) for (k, v), key in zip(outside.items(), keys)}
    _check_unchanged(log_p0, log_prob(_join(inside, probe), x_fit),
                     f"log P depends on the parameters outside {head}: the tangent start needs a product-state "
                     "start (zero head kernel, `initial_distribution`)")
    g_c = g_fit - jnp.mean(g_fit)
    variance = jnp.mean(g_c**2)
    if not variance > 0:  # a stationary start: nothing to capture
        return params, TangentStartReport(0.0, 0.0, 0, int(x_fit.shape[0]), time.perf_counter() - t0)
    before = head_residual(log_prob, params, *check, head=head)

    def loss(trainable):
        body, v = trainable
        y = jax.jvp(lambda h: log_prob(_join(h, body), x_fit), (inside,), (v,))[1]
        return jnp.mean(((y - jnp.mean(y)) - g_c) ** 2) / variance

    optimizer = optax.adam(learning_rate)
    trainable = (outside, jax.tree_util.tree_map(jnp.zeros_like, inside))
    opt_state = optimizer.init(trainable)

    @jax.jit
    def step(trainable, opt_state):
        value, grads = jax.value_and_grad(loss)(trainable)
        updates, opt_state = optimizer.update(grads, opt_state, trainable)
        return optax.apply_updates(trainable, updates), opt_state, value

    bar = tqdm(range(n_iter), disable=not progress, desc="tangent start")
    for i in bar:
        trainable, opt_state, value = step(trainable, opt_state)
        if progress and i % 50 == 0:
            bar.set_postfix(r2=f"{float(value):.3g}")
    bar.close()
    new = _join(inside, trainable[0])
    _check_unchanged(log_p0, log_prob(new, x_fit), "the tangent start changed the state")
    after = head_residual(log_prob, new, *check, head=head)
    return new, TangentStartReport(before, after, n_iter, int(x_fit.shape[0]), time.perf_counter() - t0)


def _check_unchanged(reference: jax.Array, value: jax.Array, message: str) -> None:
    tol = 1e-10 if reference.dtype == jnp.float64 else 1e-4
    change = float(jnp.max(jnp.abs(value - reference) / (1 + jnp.abs(reference))))
    if not change <= tol:
        raise ValueError(f"{message} (max relative change of log P {change:.2e})")
