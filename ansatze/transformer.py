"""Autoregressive decoder-only Transformer wave function with a key/value cache for exact sampling.

The wave function is a product of normalised conditionals (Sharir et al., PRL 124, 020503 (2020);
Zhang & Di Ventra, PRB 107, 075147 (2023) for the Transformer form):

    ψ(x) = Π_i √q_i(x_i | x_<i) · exp(i φ_i(x_i | x_<i)),

    q_i(s | x_<i) = m_i(s | x_<i) softmax(W_a h_i)_s / Σ_s' m_i(s' | x_<i) softmax(W_a h_i)_s',

where h_i is the output of a causal Transformer (Vaswani et al. 2017; pre-LayerNorm blocks) whose
input at position i is the local value of site i−1 (a start token at position 0), so h_i depends on
x_<i only. φ_i = W_φ h_i is a separate phase head. m is the mask of a `Constraint` (0/1, e.g. zero
magnetisation; Hibat-Allah et al., PRR 2, 023358 (2020), App. D.2), applied identically when sampling
and when evaluating ψ, so Σ_x |ψ(x)|² = 1 exactly on the constrained set.

Two evaluation paths share the weights:
* `conditionals_log_psi(x)`: one parallel causal pass over all N positions (used for ψ on samples and
  on connected configurations);
* `conditional(x, i)`: what NetKet's `ARDirectSampler` calls for i = 0, 1, ...; it embeds only the
  new token, appends its keys/values to a per-layer cache (linen collection ``"cache"``) and computes
  one attention row, i.e. O(i·D) work per new site instead of a full O(i²·D) re-evaluation. The
  constraint's carry (e.g. the partial magnetisation) is kept in the same cache.

NetKet ships no autoregressive Transformer; this module implements one on `nk.models.AbstractARNN`
so NetKet's exact sampler, `MCState` and SR work unchanged.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import netket as nk
import numpy as np

from ansatze.product_start import (
    Distribution,
    as_hashable,
    is_site_dependent,
    product_log_p,
)
from ansatze.sign_rules import check_sign_sites, marshall_phase
from nqs.constraint import Constraint

_MASKED = -1e30  # finite "log 0": keeps gradients NaN-free


def sinusoidal_positions(n: int, features: int) -> np.ndarray:
    """PE(i, 2k) = sin(i / 10000^{2k/D}), PE(i, 2k+1) = cos(i / 10000^{2k/D}) (Vaswani et al. 2017)."""
    pos = np.arange(n)[:, None]
    freq = 1.0 / 10000 ** (np.arange(0, features, 2) / features)
    pe = np.zeros((n, features))
    pe[:, 0::2] = np.sin(pos * freq)
    pe[:, 1::2] = np.cos(pos * freq)[:, : features // 2]
    return pe


class _Block(nn.Module):
    """Pre-LayerNorm Transformer block: h ← h + Attn(LN(h)); h ← h + MLP(LN(h))."""

    features: int
    heads: int
    ff_features: int
    param_dtype: Any

    def setup(self):
        dh = self.features // self.heads
        self.ln_attn = nn.LayerNorm(param_dtype=self.param_dtype)
        self.qkv = nn.DenseGeneral((3, self.heads, dh), param_dtype=self.param_dtype)
        self.proj = nn.DenseGeneral(self.features, axis=(-2, -1), param_dtype=self.param_dtype)
        self.ln_mlp = nn.LayerNorm(param_dtype=self.param_dtype)
        self.mlp_in = nn.Dense(self.ff_features, param_dtype=self.param_dtype)
        self.mlp_out = nn.Dense(self.features, param_dtype=self.param_dtype)

    def _mlp(self, h):
        return h + self.mlp_out(nn.gelu(self.mlp_in(self.ln_mlp(h))))

    def __call__(self, h):
        """Parallel causal pass. h: (B, N, D)."""
        qkv = self.qkv(self.ln_attn(h))  # (B, N, 3, H, dh)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        n = h.shape[1]
        scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(q.shape[-1])
        causal = jnp.tril(jnp.ones((n, n), dtype=bool))
        weights = jax.nn.softmax(jnp.where(causal, scores, -jnp.inf), axis=-1)
        h = h + self.proj(jnp.einsum("bhqk,bkhd->bqhd", weights, v))
        return self._mlp(h)

    def step(self, h_i, i, n_sites: int):
        """Cached pass for position i. h_i: (B, D); keys/values of positions < i are in the cache."""
        qkv = self.qkv(self.ln_attn(h_i))  # (B, 3, H, dh)
        q, k, v = qkv[:, 0], qkv[:, 1], qkv[:, 2]
        empty = jnp.zeros((h_i.shape[0], n_sites) + k.shape[1:], k.dtype)
        keys = self.get_variable("cache", "keys", empty).at[:, i].set(k)
        values = self.get_variable("cache", "values", empty).at[:, i].set(v)
        self.put_variable("cache", "keys", keys)
        self.put_variable("cache", "values", values)
        scores = jnp.einsum("bhd,bkhd->bhk", q, keys) / math.sqrt(q.shape[-1])
        visible = jnp.arange(n_sites) <= i
        weights = jax.nn.softmax(jnp.where(visible, scores, -jnp.inf), axis=-1)
        h_i = h_i + self.proj(jnp.einsum("bhk,bkhd->bhd", weights, values))
        return self._mlp(h_i)


class ARTransformer(nk.models.AbstractARNN):
    """Autoregressive Transformer ψ(x) = Π_i √q_i e^{iφ_i} over the sites of `hilbert` (see module docstring).

    Attributes:
        hilbert: homogeneous NetKet Hilbert space (unconstrained; sectors come from `constraint`).
        layers: number of Transformer blocks.
        features: model width D (divisible by `heads`).
        heads: attention heads.
        ff_features: hidden width of the MLPs (default 4D).
        positional: "learned" or "sinusoidal" position encodings.
        constraint: a `Constraint` masking the conditionals, or None.
        phase: separate phase head (True) or a positive real ψ (False, for sign-rule-rotated Hamiltonians).
        param_dtype: dtype of the (real) parameters.
        machine_pow: |ψ|^machine_pow is the sampled distribution (2 for |ψ|²; 1 makes the model a
            normalised probability P(x) = exp(log ψ(x)), as used for POVM distributions).
        initial_distribution: single-site distribution p(s), or one per site p_i(s); when given, the
            amplitude head starts with zero weights and the logits log p_i (a shared bias, or a per-site
            bias table `site_logits` for site-dependent p_i) and the phase head with zeros, so the initial
            model is exactly the product state ψ(x) = Π_i √p_i(x_i) (renormalised by the constraint mask,
            if any), e.g. |→⟩ for p = (½, ½), a regularised Néel state from
            `product_start.basis_state_distribution`, or Π_i p_i(x_i) when machine_pow = 1.
        sign_sites: sites of sublattice B for a built-in Marshall sign (−1)^{N_↑^B(x)} (see
            `ansatze.sign_rules`; e.g. `sign_rules.sublattice_b(graph)`), or None.
    """

    layers: int = 2
    features: int = 32
    heads: int = 4
    ff_features: int | None = None
    positional: str = "learned"
    constraint: Constraint | None = None
    phase: bool = True
    param_dtype: Any = jnp.float64
    machine_pow: int = 2
    initial_distribution: Distribution | None = None
    sign_sites: tuple[int, ...] | None = None

    def __post_init__(self):
        self.initial_distribution = as_hashable(self.initial_distribution)
        self.sign_sites = check_sign_sites(self.hilbert, self.sign_sites)
        super().__post_init__()
        if self.features % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide features ({self.features})")
        if self.positional not in ("learned", "sinusoidal"):
            raise ValueError(f"positional must be 'learned' or 'sinusoidal', got {self.positional!r}")
        if self.layers < 1:
            raise ValueError(f"layers must be >= 1, got {self.layers}")
        product_log_p(self.initial_distribution, self.hilbert.size, self.hilbert.local_size)  # validates
        c = self.constraint
        if c is not None and (c.n_sites != self.hilbert.size or c.local_size != self.hilbert.local_size):
            raise ValueError(
                f"the constraint is for {c.n_sites} sites with {c.local_size} local values, but the Hilbert "
                f"space has {self.hilbert.size} sites with {self.hilbert.local_size} local values"
            )

    def setup(self):
        n, d, D = self.hilbert.size, self.hilbert.local_size, self.features
        self.embed = nn.Embed(d + 1, D, param_dtype=self.param_dtype)  # token d = start
        if self.positional == "learned":
            self.positions = self.param("positions", nn.initializers.normal(0.02), (n, D), self.param_dtype)
        else:
            self.positions = jnp.asarray(sinusoidal_positions(n, D), dtype=self.param_dtype)
        self.blocks = [
            _Block(D, self.heads, self.ff_features or 4 * D, self.param_dtype, name=f"block_{l}")
            for l in range(self.layers)
        ]
        self.ln_out = nn.LayerNorm(param_dtype=self.param_dtype)
        log_p = product_log_p(self.initial_distribution, n, d)
        self.site_logits = (
            self.param("site_logits", lambda *_: jnp.asarray(log_p, self.param_dtype))
            if is_site_dependent(log_p) else None
        )
        if log_p is None:
            self.amplitude_head = nn.Dense(d, param_dtype=self.param_dtype)
        else:
            bias = np.zeros(d) if is_site_dependent(log_p) else log_p[0]
            self.amplitude_head = nn.Dense(
                d,
                param_dtype=self.param_dtype,
                kernel_init=nn.initializers.zeros,
                bias_init=lambda *_: jnp.asarray(bias, dtype=self.param_dtype),
            )
        if self.phase:
            zero = self.initial_distribution is not None
            self.phase_head = nn.Dense(
                d,
                param_dtype=self.param_dtype,
                **({"kernel_init": nn.initializers.zeros, "bias_init": nn.initializers.zeros} if zero else {}),
            )

    # -- shared pieces ---------------------------------------------------------------------------
    def _log_conditional(self, h, mask, site_logits=None):
        """½ log q + i φ from the final hidden state h (..., D), the mask (..., d) and the per-site bias."""
        logits = self.amplitude_head(self.ln_out(h))
        if site_logits is not None:
            logits = logits + site_logits
        if mask is not None:
            logits = jnp.where(mask, logits, _MASKED)
        log_q = jax.nn.log_softmax(logits, axis=-1)
        if mask is not None:
            log_q = jnp.where(mask, log_q, _MASKED)
        log_psi = log_q / self.machine_pow
        if self.phase:
            log_psi = log_psi + 1j * self.phase_head(self.ln_out(h))
        return log_psi

    # -- parallel path ---------------------------------------------------------------------------
    def conditionals_log_psi(self, inputs: jax.Array) -> jax.Array:
        """log ψ_i(s | x_<i) for all sites and values: (batch, N, local_size)."""
        idx = self.hilbert.states_to_local_indices(inputs).astype(jnp.int32)  # (B, N)
        start = jnp.full((idx.shape[0], 1), self.hilbert.local_size, dtype=jnp.int32)
        tokens = jnp.concatenate([start, idx[:, :-1]], axis=1)
        h = self.embed(tokens) + self.positions
        for block in self.blocks:
            h = block(h)
        mask = None if self.constraint is None else self.constraint.masks(idx)
        return self._log_conditional(h, mask, self.site_logits)

    def __call__(self, inputs: jax.Array) -> jax.Array:
        """log ψ(x) for configurations of any leading shape (..., N)."""
        batch_shape = inputs.shape[:-1]
        x = inputs.reshape((-1, inputs.shape[-1]))
        idx = self.hilbert.states_to_local_indices(x).astype(jnp.int32)
        log_psi = jnp.take_along_axis(self.conditionals_log_psi(x), idx[..., None], axis=-1)[..., 0]
        log_psi = log_psi.sum(axis=-1)
        if self.sign_sites is not None:
            log_psi = log_psi + 1j * marshall_phase(x, self.sign_sites)
        return log_psi.reshape(batch_shape)

    # -- cached path (sampling) ------------------------------------------------------------------
    def conditional(self, inputs: jax.Array, index: jax.Array) -> jax.Array:
        """q_index(· | x_<index): (batch, local_size), using and extending the key/value cache."""
        if inputs.ndim == 1:
            inputs = inputs[None]
        n, d = self.hilbert.size, self.hilbert.local_size
        batch = inputs.shape[0]
        prev = self.hilbert.states_to_local_indices(inputs[:, jnp.maximum(index - 1, 0)]).astype(jnp.int32)
        token = jnp.where(index == 0, d, prev)
        h = self.embed(token) + self.positions[index]
        for block in self.blocks:
            h = block.step(h, index, n)
        mask = None
        if self.constraint is not None:
            carry = self.get_variable("cache", "constraint", self.constraint.init_carry(batch))
            updated = self.constraint.update(carry, prev, index - 1)
            carry = jax.tree_util.tree_map(lambda new, old: jnp.where(index == 0, old, new), updated, carry)
            self.put_variable("cache", "constraint", carry)
            mask = self.constraint.mask(carry, index)
        site_logits = None if self.site_logits is None else self.site_logits[index]
        log_psi = self._log_conditional(h, mask, site_logits)
        return jnp.exp(self.machine_pow * log_psi.real)

    def describe(self) -> dict:
        """Name and hyper-parameters, stored in result files."""
        return {
            "name": "ARTransformer",
            "layers": self.layers,
            "features": self.features,
            "heads": self.heads,
            "ff_features": self.ff_features or 4 * self.features,
            "positional": self.positional,
            "phase": self.phase,
            "constraint": None if self.constraint is None else self.constraint.describe(),
            "param_dtype": str(jnp.dtype(self.param_dtype)),
            "machine_pow": self.machine_pow,
            "initial_distribution": self.initial_distribution,
            "sign_sites": self.sign_sites,
        }
