"""Exact site-by-site conditionals of a token distribution (NetKet's site interface for tokens of q modes).

A token of q modes with d local values each takes the values v = Σ_j s_j d^{q−1−j} (first mode most significant)
with probability q(v). Mode j gets the exact marginal conditional given the token's modes before it,

    Q_j(s | s_<j) = Σ_{v: v_<j = s_<j, v_j = s} q(v) / Σ_{v: v_<j = s_<j} q(v),

so Π_j Q_j(s_j | s_<j) = q(v) and sampling mode by mode (NetKet's `ARDirectSampler`) is exact. The token's phase
φ(v) is carried by its last mode.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np


@functools.cache
def digits(d: int, q: int) -> np.ndarray:
    """Base-d digits of every token value, (d^q, q); digit j = value of the token's j-th mode."""
    v = np.arange(d**q)[:, None]
    return (v // d ** np.arange(q - 1, -1, -1)[None, :]) % d


def site_marginals(log_q: jax.Array, phi: jax.Array | None, token_digits: jax.Array, d: int,
                   machine_pow: int) -> jax.Array:
    """log ψ of every mode (B, T·q, d) in generation order: log Q_j / machine_pow (+ i φ on the last mode), from the
    token log q and phase (B, T, d^q) and the configurations' digits (B, T, q)."""
    B, T, q = token_digits.shape
    out = []
    for j in range(q):
        joint = jax.nn.logsumexp(log_q.reshape(B, T, d ** (j + 1), d ** (q - 1 - j)), axis=-1)
        prefix = sum(token_digits[..., l] * d ** (j - 1 - l) for l in range(j)) if j else jnp.zeros((B, T), jnp.int32)
        joint = jnp.take_along_axis(joint.reshape(B, T, d**j, d), prefix[..., None, None], axis=2)[:, :, 0]
        log_psi = (joint - jax.nn.logsumexp(joint, axis=-1, keepdims=True)) / machine_pow
        if phi is not None:
            if j == q - 1:
                ph = jnp.take_along_axis(phi.reshape(B, T, d**j, d), prefix[..., None, None], axis=2)[:, :, 0]
            else:
                ph = jnp.zeros_like(log_psi)
            log_psi = log_psi + 1j * ph
        out.append(log_psi)
    return jnp.stack(out, axis=2).reshape(B, T * q, d)


def cached_site_marginal(log_q: jax.Array, current: jax.Array, j, d: int, q: int) -> jax.Array:
    """Q_j(· | s_<j) (B, d) of mode j (traced) of a token with log q (B, d^q), given the token's current local
    indices (B, q) (modes ≥ j are ignored)."""
    table = jnp.asarray(digits(d, q))  # (d^q, q)
    known = (table[None] == current[:, None, :]) | (jnp.arange(q) >= j)
    select = jnp.all(known, axis=-1)[:, :, None] & (jnp.take(table, j, axis=1)[:, None] == jnp.arange(d))
    joint = jax.nn.logsumexp(jnp.where(select, log_q[:, :, None], -jnp.inf), axis=1)  # (B, d)
    return jnp.exp(joint - jax.nn.logsumexp(joint, axis=-1, keepdims=True))
