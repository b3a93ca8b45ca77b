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

2D lattices (fields `order`, `shape`, `patch`, `positional`). Sites keep the numbering of their
graph, x·Ly + y for site (x, y) (`nk.graph.Grid(extent=[Lx, Ly])`); the model generates them along a
path π (`ansatze.lattice.generation_path`) declared through `reorder` / `inverse_reorder`, as the
recurrent models do, so `ARDirectSampler` stays exact and Hamiltonians need no renumbering.
* order: "chain" (default, 1D Hilbert order), "raster" (row by row: π is the identity on Grid
  numbering, but the positions are 2D) or "snake" (boustrophedon, `ansatze.lattice.snake_order`).
* positional: "learned" / "sinusoidal" over the token index (1D; the default for "chain"), or
  "learned2d" (a learned row embedding plus a learned column embedding, the default on a lattice;
  the tables keep their lattice meaning, so a model trained on a small lattice can be carried over
  to a larger one with `ansatze.transfer.transfer_parameters`) and "sinusoidal2d" (half of the features encode the
  row, the other half the column).
* patch=(px, py): the p = px·py sites of a px×py patch form one token v ∈ {0..d^p−1} (the first
  site of the patch is the most significant base-d digit). The Transformer runs over the T = N/p
  tokens and models q_t(v | v_<t) over the d^p token values, with

      ψ(x) = Π_t √q_t(v_t | v_<t) · exp(i φ_t(v_t | v_<t)).

  The site path visits the patches in raster/snake order and the sites of each patch consecutively,
  row-major inside the patch. For NetKet's site-by-site interface, site j of patch t gets the exact
  marginal conditional of the token distribution,

      Q_{t,j}(s | v_<t, s_<j) = Σ_{v: v_<j = s_<j, v_j = s} q_t(v) / Σ_{v: v_<j = s_<j} q_t(v),

  so Π_j Q_{t,j} = q_t(v_t) and sampling site by site is exact; the token phase φ_t is carried by
  the last site of the patch. `conditional` runs the Transformer step only at the first site of a
  patch (under `nn.cond`) and caches log q_t; the other sites of the patch marginalise the cached
  distribution (O(d^(p+1)) work). A constraint masks whole tokens: value v is allowed at token t iff
  each of its digits is allowed by the site masks when the constraint's carry is stepped through the
  patch, m_t(v) = Π_j m_{tp+j}(v_j | x_<tp, v_<j); the masked q_t is renormalised over the allowed
  values, so the site marginals never leave the constrained set (O(d^p·p) constraint work per token).

NetKet ships no autoregressive Transformer; this module implements one on `nk.models.AbstractARNN`
so NetKet's exact sampler, `MCState` and SR work unchanged.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import netket as nk
import numpy as np

from ansatze.lattice import check_patch, check_shape, generation_path, patch_order
from ansatze.product_start import (
    Distribution,
    as_hashable,
    is_site_dependent,
    product_log_p,
)
from ansatze.sign_rules import check_sign_sites, marshall_phase
from nqs.constraint import Constraint, carry_typed_as_body

_MASKED = -1e30  # finite "log 0": keeps gradients NaN-free
_ORDERS = ("chain", "raster", "snake")
_POSITIONALS = ("learned", "sinusoidal", "learned2d", "sinusoidal2d")


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


@functools.cache
def _digits(d: int, p: int) -> np.ndarray:
    """Base-d digits of every token value, (d^p, p); digit j = value of the j-th site of the patch."""
    v = np.arange(d**p)[:, None]
    return (v // d ** np.arange(p - 1, -1, -1)[None, :]) % d


class ARTransformer(nk.models.AbstractARNN):
    """Autoregressive Transformer ψ(x) = Π_i √q_i e^{iφ_i} over the sites of `hilbert` (see module docstring).

    Attributes:
        hilbert: homogeneous NetKet Hilbert space (unconstrained; sectors come from `constraint`).
        layers: number of Transformer blocks.
        features: model width D (divisible by `heads`).
        heads: attention heads.
        ff_features: hidden width of the MLPs (default 4D).
        positional: "learned" or "sinusoidal" (1D, over the token index), "learned2d" (learned row plus
            column embeddings) or "sinusoidal2d" (half the features for the row, half for the column);
            the 2D ones need a lattice order. None (default): "learned" for order="chain", "learned2d"
            otherwise.
        constraint: a `Constraint` masking the conditionals, or None; for a non-trivial path it is
            re-expressed with `constraint.permuted(path)`; with `patch` it masks whole tokens.
        phase: separate phase head (True) or a positive real ψ (False, for sign-rule-rotated Hamiltonians).
        param_dtype: dtype of the (real) parameters.
        machine_pow: |ψ|^machine_pow is the sampled distribution (2 for |ψ|²; 1 makes the model a
            normalised probability P(x) = exp(log ψ(x)), as used for POVM distributions).
        initial_distribution: single-site distribution p(s), or one per site p_i(s); when given, the
            amplitude head starts with zero weights and the logits log p_i (a shared bias, or a per-site
            bias table `site_logits` for site-dependent p_i; with patches the token logits
            Σ_{i ∈ patch} log p_i(v_i), as a shared bias or a per-token table `token_logits`) and the phase
            head with zeros, so the initial model is exactly the product state ψ(x) = Π_i √p_i(x_i)
            (renormalised by the constraint mask, if any), e.g. |→⟩ for p = (½, ½), a regularised Néel
            state from `product_start.basis_state_distribution`, or Π_i p_i(x_i) when machine_pow = 1.
        sign_sites: sites of sublattice B for a built-in Marshall sign (−1)^{N_↑^B(x)} (see
            `ansatze.sign_rules`; e.g. `sign_rules.sublattice_b(graph)`), or None.
        order: generation path, "chain" (Hilbert order), "raster" or "snake" (on the lattice `shape`).
        shape: (Lx, Ly) of the lattice (site (x, y) has Hilbert index x·Ly + y); needed by "raster",
            "snake", the 2D positional encodings and `patch`.
        patch: (px, py) sites per token (dividing `shape`; local dimension d^(px·py)), or None for
            one site per token.
    """

    layers: int = 2
    features: int = 32
    heads: int = 4
    ff_features: int | None = None
    positional: str | None = None
    constraint: Constraint | None = None
    phase: bool = True
    param_dtype: Any = jnp.float64
    machine_pow: int = 2
    initial_distribution: Distribution | None = None
    sign_sites: tuple[int, ...] | None = None
    order: str = "chain"
    shape: tuple[int, int] | None = None
    patch: tuple[int, int] | None = None

    def __post_init__(self):
        if isinstance(self.shape, list):
            self.shape = tuple(self.shape)  # module fields must be hashable
        if isinstance(self.patch, list):
            self.patch = tuple(self.patch)
        if self.positional is None:
            self.positional = "learned" if self.order == "chain" else "learned2d"
        self.initial_distribution = as_hashable(self.initial_distribution)
        self.sign_sites = check_sign_sites(self.hilbert, self.sign_sites)
        super().__post_init__()
        n = self.hilbert.size
        if self.features % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide features ({self.features})")
        if self.order not in _ORDERS:
            raise ValueError(f"order must be one of {_ORDERS}, got {self.order!r}")
        if self.positional not in _POSITIONALS:
            raise ValueError(f"positional must be one of {_POSITIONALS}, got {self.positional!r}")
        if self.layers < 1:
            raise ValueError(f"layers must be >= 1, got {self.layers}")
        if self.patch is not None and self.shape is None:
            raise ValueError(f"patch={self.patch!r} needs the lattice shape=(Lx, Ly)")
        if self.order != "chain" or self.shape is not None:
            lattice = check_shape(self.shape, n, f"order={self.order!r}")
        if self.order == "chain" and self.positional.endswith("2d"):
            raise ValueError(
                f"positional={self.positional!r} needs a lattice path: order='raster' or 'snake' with shape=(Lx, Ly)"
            )
        if self.patch is not None:
            if self.order == "chain":
                raise ValueError("patch needs a lattice path: order='raster' or 'snake' with shape=(Lx, Ly)")
            check_patch(self.patch, lattice)
        product_log_p(self.initial_distribution, n, self.hilbert.local_size)  # validates
        c = self.constraint
        if c is not None and (c.n_sites != n or c.local_size != self.hilbert.local_size):
            raise ValueError(
                f"the constraint is for {c.n_sites} sites with {c.local_size} local values, but the Hilbert "
                f"space has {n} sites with {self.hilbert.local_size} local values"
            )
        if c is not None:
            self._generation_constraint()  # fails now if the constraint cannot follow the path

    # -- lattice, path and tokens (static; nowrap: no setup, no parameters needed) ---------------
    @nn.nowrap
    def _lattice(self) -> tuple[int, int] | None:
        return None if self.shape is None else (int(self.shape[0]), int(self.shape[1]))

    @nn.nowrap
    def _patch_shape(self) -> tuple[int, int]:
        return (1, 1) if self.patch is None else (int(self.patch[0]), int(self.patch[1]))

    @nn.nowrap
    def _p(self) -> int:
        """Sites per token."""
        px, py = self._patch_shape()
        return px * py

    @nn.nowrap
    def _path(self) -> np.ndarray:
        """π: Hilbert index of each path position (patches in order, sites of a patch consecutive)."""
        lattice = None if self.order == "chain" else self._lattice()
        return generation_path(self.order, self.hilbert.size, lattice, self._patch_shape())

    @nn.nowrap
    def _identity_path(self) -> bool:
        path = self._path()
        return bool(np.array_equal(path, np.arange(len(path))))

    @nn.nowrap
    def _generation_constraint(self) -> Constraint | None:
        """The constraint re-expressed for values in path order (identity path: unchanged)."""
        if self.constraint is None:
            return None
        return self.constraint if self._identity_path() else self.constraint.permuted(self._path())

    @nn.nowrap
    def reorder(self, inputs: jax.Array, axis: int = 0) -> jax.Array:
        """Hilbert layout → path layout: out[k] = inputs[π(k)] along `axis` (NetKet's AbstractARNN.reorder)."""
        if self._identity_path():
            return inputs
        return jnp.take(inputs, jnp.asarray(self._path()), axis=axis)

    @nn.nowrap
    def inverse_reorder(self, inputs: jax.Array, axis: int = 0) -> jax.Array:
        """Path layout → Hilbert layout: out[π(k)] = inputs[k] along `axis`."""
        if self._identity_path():
            return inputs
        return jnp.take(inputs, jnp.asarray(np.argsort(self._path())), axis=axis)

    @nn.nowrap
    def _token_values(self, ordered: jax.Array) -> jax.Array:
        """Token values (..., T) from local indices in path order (..., N) (identity for one site per token)."""
        p, d = self._p(), self.hilbert.local_size
        if p == 1:
            return ordered
        digits = ordered.reshape(ordered.shape[:-1] + (-1, p))
        return jnp.sum(digits * jnp.asarray(d ** np.arange(p - 1, -1, -1), dtype=ordered.dtype), axis=-1)

    @nn.nowrap
    def _token_mask(self, c: Constraint, carry, t) -> jax.Array:
        """(batch, d^p) mask of the values of token t, given the constraint's carry before the token."""
        d, p = self.hilbert.local_size, self._p()
        V = d**p
        batch = jax.tree_util.tree_leaves(carry)[0].shape[0]
        values = jnp.tile(jnp.asarray(_digits(d, p)), (batch, 1))  # (batch·V, p)
        carry = jax.tree_util.tree_map(lambda a: jnp.repeat(a, V, axis=0), carry)
        allowed = jnp.ones((batch * V,), dtype=bool)
        for j in range(p):
            site = t * p + j
            allowed &= jnp.take_along_axis(c.mask(carry, site), values[:, j : j + 1], axis=1)[:, 0]
            carry = c.update(carry, values[:, j], site)
        return allowed.reshape(batch, V)

    @nn.nowrap
    def _step_carry(self, c: Constraint, carry, digits: jax.Array, t):
        """The constraint's carry after token t with local indices `digits` (batch, p)."""
        for j in range(self._p()):
            carry = c.update(carry, digits[:, j], t * self._p() + j)
        return carry

    @nn.nowrap
    def _token_masks(self, ordered: jax.Array) -> jax.Array | None:
        """Token masks (B, T, d^p) of the path-ordered local indices (B, N); None without a constraint."""
        c = self._generation_constraint()
        if c is None:
            return None
        p = self._p()
        digits = jnp.moveaxis(ordered.reshape(ordered.shape[0], -1, p), 1, 0)  # (T, B, p)

        def step(carry, inp):
            t, token_digits = inp
            return self._step_carry(c, carry, token_digits, t), self._token_mask(c, carry, t)

        xs = (jnp.arange(digits.shape[0]), digits)
        init = carry_typed_as_body(step, c.init_carry(ordered.shape[0]), (xs[0][0], digits[0]))
        _, masks = jax.lax.scan(step, init, xs)
        return jnp.moveaxis(masks, 0, 1)

    # -- modules ---------------------------------------------------------------------------------
    def setup(self):
        n, d, D, p = self.hilbert.size, self.hilbert.local_size, self.features, self._p()
        V, T = d**p, n // p  # token values, tokens
        self.embed = nn.Embed(V + 1, D, param_dtype=self.param_dtype)  # token V = start
        self.positions = self._make_positions(T, D)
        self.blocks = [
            _Block(D, self.heads, self.ff_features or 4 * D, self.param_dtype, name=f"block_{l}")
            for l in range(self.layers)
        ]
        self.ln_out = nn.LayerNorm(param_dtype=self.param_dtype)
        log_p = self._start_log_p()
        table = (
            self.param("site_logits" if p == 1 else "token_logits", lambda *_: jnp.asarray(log_p, self.param_dtype))
            if is_site_dependent(log_p) else None
        )
        self.site_logits = table if p == 1 else None  # (N, V) in Hilbert order
        self.token_logits = table if p > 1 else None  # (T, V) in token order
        if log_p is None:
            self.amplitude_head = nn.Dense(V, param_dtype=self.param_dtype)
        else:
            bias = np.zeros(V) if is_site_dependent(log_p) else log_p[0]
            self.amplitude_head = nn.Dense(
                V,
                param_dtype=self.param_dtype,
                kernel_init=nn.initializers.zeros,
                bias_init=lambda *_: jnp.asarray(bias, dtype=self.param_dtype),
            )
        if self.phase:
            zero = self.initial_distribution is not None
            self.phase_head = nn.Dense(
                V,
                param_dtype=self.param_dtype,
                **({"kernel_init": nn.initializers.zeros, "bias_init": nn.initializers.zeros} if zero else {}),
            )

    def _make_positions(self, T: int, D: int):
        """Position encodings of the T tokens in generation order, (T, D)."""
        if self.positional == "learned":
            return self.param("positions", nn.initializers.normal(0.02), (T, D), self.param_dtype)
        if self.positional == "sinusoidal":
            return jnp.asarray(sinusoidal_positions(T, D), dtype=self.param_dtype)
        lattice, (px, py) = self._lattice(), self._patch_shape()
        gx, gy = lattice[0] // px, lattice[1] // py  # grid of tokens
        coords = patch_order(self.order, lattice, (px, py))  # (T, 2) token positions in generation order
        if self.positional == "learned2d":
            rows = self.param("row_positions", nn.initializers.normal(0.02), (gx, D), self.param_dtype)
            cols = self.param("col_positions", nn.initializers.normal(0.02), (gy, D), self.param_dtype)
            return rows[coords[:, 0]] + cols[coords[:, 1]]
        half = D // 2
        pe = np.concatenate(
            [sinusoidal_positions(gx, half)[coords[:, 0]], sinusoidal_positions(gy, D - half)[coords[:, 1]]], axis=1
        )
        return jnp.asarray(pe, dtype=self.param_dtype)

    def _start_log_p(self) -> np.ndarray | None:
        """Initial logits of the product start: log p_i(s) (N, d) in Hilbert order for one site per token;
        with patches Σ_j log p_{site_j}(v_j) (T, d^p) in token order (the product of the site distributions)."""
        n, d, p = self.hilbert.size, self.hilbert.local_size, self._p()
        log_p = product_log_p(self.initial_distribution, n, d)
        if log_p is None or p == 1:
            return log_p
        sites = self._path().reshape(-1, p)  # (T, p) Hilbert indices of each token's sites
        return log_p[sites[:, None, :], _digits(d, p)[None, :, :]].sum(axis=-1)

    # -- shared pieces ---------------------------------------------------------------------------
    def _log_q(self, h, mask, logits_bias=None):
        """Normalised log q over the token values from the final hidden state h (..., D) and the mask (..., V)."""
        logits = self.amplitude_head(self.ln_out(h))
        if logits_bias is not None:
            logits = logits + logits_bias
        if mask is not None:
            logits = jnp.where(mask, logits, _MASKED)
        log_q = jax.nn.log_softmax(logits, axis=-1)
        if mask is not None:
            log_q = jnp.where(mask, log_q, _MASKED)
        return log_q

    def _log_conditional(self, h, mask, site_logits=None):
        """½ log q + i φ from the final hidden state h (..., D), the mask (..., d) and the per-site bias."""
        log_psi = self._log_q(h, mask, site_logits) / self.machine_pow
        if self.phase:
            log_psi = log_psi + 1j * self.phase_head(self.ln_out(h))
        return log_psi

    def _hidden(self, ordered: jax.Array):
        """Parallel causal pass over the tokens of the path-ordered local indices (B, N): (tokens, h (B, T, D))."""
        tokens = self._token_values(ordered)
        start = jnp.full((tokens.shape[0], 1), self.hilbert.local_size ** self._p(), dtype=tokens.dtype)
        h = self.embed(jnp.concatenate([start, tokens[:, :-1]], axis=1)) + self.positions
        for block in self.blocks:
            h = block(h)
        return tokens, h

    def _patch_marginals(self, log_q, phi, ordered):
        """Per-site log ψ (B, N, d) in path order from the token log q and phase (B, T, d^p): site j of a
        patch gets the exact marginal conditional of q given the patch's sites < j; φ goes to site p − 1."""
        B, T, _ = log_q.shape
        d, p = self.hilbert.local_size, self._p()
        digits = ordered.reshape(B, T, p)
        out = []
        for j in range(p):
            joint = jax.nn.logsumexp(log_q.reshape(B, T, d ** (j + 1), d ** (p - 1 - j)), axis=-1)
            prefix = sum(digits[..., l] * d ** (j - 1 - l) for l in range(j)) if j else jnp.zeros((B, T), jnp.int32)
            joint = jnp.take_along_axis(joint.reshape(B, T, d**j, d), prefix[..., None, None], axis=2)[:, :, 0]
            log_psi = (joint - jax.nn.logsumexp(joint, axis=-1, keepdims=True)) / self.machine_pow
            if phi is not None:
                if j == p - 1:
                    ph = jnp.take_along_axis(phi.reshape(B, T, d**j, d), prefix[..., None, None], axis=2)[:, :, 0]
                else:
                    ph = jnp.zeros_like(log_psi)
                log_psi = log_psi + 1j * ph
            out.append(log_psi)
        return jnp.stack(out, axis=2).reshape(B, T * p, d)

    # -- parallel path ---------------------------------------------------------------------------
    def conditionals_log_psi(self, inputs: jax.Array) -> jax.Array:
        """log ψ_i(s | x_<i) for all sites and values: (batch, N, local_size), Hilbert layout (x_<i: the
        sites before i on the path; with patches the exact marginal conditionals of the token distribution)."""
        ordered = self.reorder(self.hilbert.states_to_local_indices(inputs).astype(jnp.int32), axis=1)
        _, h = self._hidden(ordered)
        if self._p() == 1:
            c = self._generation_constraint()
            mask = None if c is None else c.masks(ordered)
            site_logits = None if self.site_logits is None else self.reorder(self.site_logits, axis=0)
            return self.inverse_reorder(self._log_conditional(h, mask, site_logits), axis=1)
        log_q = self._log_q(h, self._token_masks(ordered), self.token_logits)
        phi = self.phase_head(self.ln_out(h)) if self.phase else None
        return self.inverse_reorder(self._patch_marginals(log_q, phi, ordered), axis=1)

    def __call__(self, inputs: jax.Array) -> jax.Array:
        """log ψ(x) for configurations of any leading shape (..., N)."""
        batch_shape = inputs.shape[:-1]
        x = inputs.reshape((-1, inputs.shape[-1]))
        idx = self.hilbert.states_to_local_indices(x).astype(jnp.int32)
        if self._p() == 1:
            log_psi = jnp.take_along_axis(self.conditionals_log_psi(x), idx[..., None], axis=-1)[..., 0]
            log_psi = log_psi.sum(axis=-1)
        else:  # Σ_t log ψ_t(v_t | v_<t) directly from the token distributions
            ordered = self.reorder(idx, axis=1)
            tokens, h = self._hidden(ordered)
            log_q = self._log_q(h, self._token_masks(ordered), self.token_logits)
            log_psi = jnp.take_along_axis(log_q, tokens[..., None], axis=-1)[..., 0].sum(axis=-1) / self.machine_pow
            if self.phase:
                phi = self.phase_head(self.ln_out(h))
                log_psi = log_psi + 1j * jnp.take_along_axis(phi, tokens[..., None], axis=-1)[..., 0].sum(axis=-1)
        if self.sign_sites is not None:
            log_psi = log_psi + 1j * marshall_phase(x, self.sign_sites)
        return log_psi.reshape(batch_shape)

    # -- cached path (sampling) ------------------------------------------------------------------
    def conditional(self, inputs: jax.Array, index: jax.Array) -> jax.Array:
        """q(· | x_<k) of Hilbert site `index` = π(k): (batch, local_size), using and extending the cache."""
        if inputs.ndim == 1:
            inputs = inputs[None]
        if self._p() == 1:
            return self._site_conditional(inputs, index)
        return self._patch_conditional(inputs, index)

    def _site_conditional(self, inputs, index):
        """One site per token: embed the previous site's value, one cached attention row per layer."""
        n, d = self.hilbert.size, self.hilbert.local_size
        batch = inputs.shape[0]
        path = self._path()
        k = jnp.asarray(np.argsort(path))[index]
        prev_site = jnp.asarray(path)[jnp.maximum(k - 1, 0)]
        prev = self.hilbert.states_to_local_indices(inputs[:, prev_site]).astype(jnp.int32)
        token = jnp.where(k == 0, d, prev)
        h = self.embed(token) + self.positions[k]
        for block in self.blocks:
            h = block.step(h, k, n)
        mask = None
        c = self._generation_constraint()
        if c is not None:
            init = c.init_carry(batch)
            carry = self.get_variable("cache", "constraint", init)
            updated = c.update(carry, prev, k - 1)
            carry = jax.tree_util.tree_map(lambda start, new: jnp.where(k == 0, start, new), init, updated)
            self.put_variable("cache", "constraint", carry)
            mask = c.mask(carry, k)
        site_logits = None if self.site_logits is None else self.site_logits[index]
        log_psi = self._log_conditional(h, mask, site_logits)
        return jnp.exp(self.machine_pow * log_psi.real)

    def _token_step(self, inputs, t):
        """Cached Transformer step for token t: stores log q_t(·) (batch, d^p) in the cache (and the
        constraint's carry before token t, from which the token mask follows)."""
        n, d, p = self.hilbert.size, self.hilbert.local_size, self._p()
        sites = jnp.asarray(self._path().reshape(-1, p))  # (T, p)
        prev = self.hilbert.states_to_local_indices(inputs[:, sites[jnp.maximum(t - 1, 0)]]).astype(jnp.int32)
        token = jnp.where(t == 0, d**p, self._token_values(prev)[:, 0])
        h = self.embed(token) + self.positions[t]
        for block in self.blocks:
            h = block.step(h, t, n // p)
        mask = None
        c = self._generation_constraint()
        if c is not None:
            init = c.init_carry(inputs.shape[0])
            carry = self.get_variable("cache", "constraint", init)
            updated = self._step_carry(c, carry, prev, t - 1)
            carry = jax.tree_util.tree_map(lambda start, new: jnp.where(t == 0, start, new), init, updated)
            self.put_variable("cache", "constraint", carry)
            mask = self._token_mask(c, carry, t)
        bias = None if self.token_logits is None else self.token_logits[t]
        self.put_variable("cache", "token_log_q", self._log_q(h, mask, bias))

    def _patch_conditional(self, inputs, index):
        """Site j of patch t: at j = 0 one Transformer step (cached log q_t); then the exact marginal of
        q_t over the patch's sites > j, conditioned on its sites < j."""
        d, p = self.hilbert.local_size, self._p()
        path = self._path()
        k = jnp.asarray(np.argsort(path))[index]
        t, j = k // p, k % p
        if self.is_initializing() or not self.has_variable("cache", "token_log_q"):
            self._token_step(inputs, t)
        else:
            nn.cond(j == 0, ARTransformer._token_step, lambda *_: None, self, inputs, t)
        log_q = self.get_variable("cache", "token_log_q")  # (batch, d^p)
        sites = jnp.asarray(path.reshape(-1, p))[t]
        current = self.hilbert.states_to_local_indices(inputs[:, sites]).astype(jnp.int32)  # (batch, p)
        digits = jnp.asarray(_digits(d, p))  # (d^p, p)
        known = (digits[None] == current[:, None, :]) | (jnp.arange(p) >= j)  # sites ≥ j are free
        select = jnp.all(known, axis=-1)[:, :, None] & (jnp.take(digits, j, axis=1)[:, None] == jnp.arange(d))
        joint = jax.nn.logsumexp(jnp.where(select, log_q[:, :, None], -jnp.inf), axis=1)  # (batch, d)
        return jnp.exp(joint - jax.nn.logsumexp(joint, axis=-1, keepdims=True))

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
            "order": self.order,
            "shape": None if self.shape is None else [int(v) for v in self.shape],
            "patch": None if self.patch is None else [int(v) for v in self.patch],
        }
