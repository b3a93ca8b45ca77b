"""Autoregressive decoder-only Transformer wave function with a key/value cache for exact sampling.

The conditional network of an `ansatze.autoregressive.AutoregressiveModel` (which defines ψ, the masks, the heads,
tokens, orders and patches; Zhang & Di Ventra, PRB 107, 075147 (2023) for the Transformer wave function): a causal
Transformer (Vaswani et al. 2017; pre-LayerNorm blocks) whose input at generation position k is the embedding of
token k − 1 (a start token at k = 0) plus a position encoding, so the hidden state h_k depends on v_<k only. The
heads read LayerNorm(h_k); the phase head is linear, φ_k = W_φ LN(h_k) + b_φ.

Three evaluation paths share the weights:
* `hidden_states(tokens)`: one parallel causal pass over all T positions (ψ on samples and connected
  configurations); its trace is the per-layer keys/values (B, L, T, H, D/H);
* `step(state, read, k)`: what sampling calls; it embeds only the new token, writes its keys/values into the
  per-layer cache and computes one attention row, i.e. O(k·D) work per new token instead of a full O(k²·D) pass;
* `suffix_hidden(state, tokens, first)`: positions first … T − 1 in one pass that attends to the cached keys/values of
  the positions before `first` (the suffix evaluation of the prefix-cache hook).

Position encodings (field `positional`): "learned" / "sinusoidal" over the token index (1D; the default for
order="chain"), or on a lattice of tokens "learned2d" (a learned row embedding plus a learned column embedding, the
default on a lattice; the tables keep their lattice meaning, so a model trained on a small lattice can be carried
over to a larger one with `ansatze.transfer.transfer_parameters`) and "sinusoidal2d" (half of the features encode
the row, the other half the column). With patches the positions are those of the patch grid.

NetKet ships no autoregressive Transformer; this one runs on NetKet's exact sampler, `MCState` and SR unchanged.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ansatze.autoregressive import AutoregressiveModel

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
    param_dtype: jnp.dtype

    def setup(self):
        dh = self.features // self.heads
        self.ln_attn = nn.LayerNorm(param_dtype=self.param_dtype)
        self.qkv = nn.DenseGeneral((3, self.heads, dh), param_dtype=self.param_dtype)
        self.proj = nn.DenseGeneral(self.features, axis=(-2, -1), param_dtype=self.param_dtype)
        self.ln_mlp = nn.LayerNorm(param_dtype=self.param_dtype)
        self.mlp_in = nn.Dense(self.ff_features, param_dtype=self.param_dtype)
        self.mlp_out = nn.Dense(self.features, param_dtype=self.param_dtype)

    def _attend(self, h, q, keys, values, visible):
        """h + Attn + MLP for queries q (B, S, H, dh) over keys/values (B, T, H, dh) where `visible` (S, T)."""
        scores = jnp.einsum("bqhd,bkhd->bhqk", q, keys) / math.sqrt(q.shape[-1])
        weights = jax.nn.softmax(jnp.where(visible, scores, -jnp.inf), axis=-1)
        h = h + self.proj(jnp.einsum("bhqk,bkhd->bqhd", weights, values))
        return h + self.mlp_out(nn.gelu(self.mlp_in(self.ln_mlp(h))))

    def __call__(self, h, cached=None, first: int = 0):
        """Causal pass over the positions first … first + S − 1, h (B, S, D); `cached` = (keys, values) (B, T, H, dh)
        holds the positions < first. Returns (h, keys, values), keys/values of positions 0 … first + S − 1."""
        qkv = self.qkv(self.ln_attn(h))  # (B, S, 3, H, dh)
        q, keys, values = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        if cached is not None:
            keys = jnp.concatenate([cached[0][:, :first], keys], axis=1)
            values = jnp.concatenate([cached[1][:, :first], values], axis=1)
        visible = jnp.arange(keys.shape[1])[None, :] <= first + jnp.arange(h.shape[1])[:, None]
        return self._attend(h, q, keys, values, visible), keys, values

    def step(self, h_k, k, keys, values):
        """Cached pass for position k: h_k (B, D); keys/values (B, T, H, dh) hold the positions < k. Returns
        (h_k, keys, values) with position k written."""
        qkv = self.qkv(self.ln_attn(h_k))  # (B, 3, H, dh)
        keys = keys.at[:, k].set(qkv[:, 1])
        values = values.at[:, k].set(qkv[:, 2])
        visible = (jnp.arange(keys.shape[1]) <= k)[None, :]
        return self._attend(h_k[:, None], qkv[:, None, 0], keys, values, visible)[:, 0], keys, values


class ARTransformer(AutoregressiveModel):
    """Autoregressive Transformer ψ(x) = s(x) Π_k √q_k e^{iφ_k} (`ansatze.autoregressive` and module docstring).

    Attributes (and those of `AutoregressiveModel`: constraint, phase, param_dtype, machine_pow,
    initial_distribution, sign_sites, order "chain"/"raster"/"snake"/permutation, shape, patch, tokens):
        layers: number of Transformer blocks.
        features: model width D (divisible by `heads`).
        heads: attention heads.
        ff_features: hidden width of the MLPs (default 4D).
        positional: "learned" or "sinusoidal" (1D, over the token index), "learned2d" (learned row plus column
            embeddings) or "sinusoidal2d" (half the features for the row, half for the column); the 2D ones need a
            lattice order. None (default): "learned" for order="chain" or without a lattice, "learned2d" otherwise.
    """

    layers: int = 2
    features: int = 32
    heads: int = 4
    ff_features: int | None = None
    positional: str | None = None

    def __post_init__(self):
        if self.positional is None:
            self.positional = "learned" if self.order == "chain" or self.shape is None else "learned2d"
        super().__post_init__()
        if self.features % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide features ({self.features})")
        if self.positional not in _POSITIONALS:
            raise ValueError(f"positional must be one of {_POSITIONALS}, got {self.positional!r}")
        if self.layers < 1:
            raise ValueError(f"layers must be >= 1, got {self.layers}")
        if self.positional.endswith("2d") and (self.order == "chain" or self.layout().grid is None):
            raise ValueError(
                f"positional={self.positional!r} needs a lattice path: order='raster' or 'snake' with shape=(Lx, Ly)"
            )

    def hyperparameters(self) -> dict:
        return {"layers": self.layers, "features": self.features, "heads": self.heads,
                "ff_features": self.ff_features or 4 * self.features, "positional": self.positional}

    def setup_network(self):
        layout, D = self.layout(), self.features
        self.embed = nn.Embed(layout.n_values + 1, D, param_dtype=self.param_dtype)  # the last one: start token
        self.positions = self._make_positions(layout.n_tokens, D)
        self.blocks = [
            _Block(D, self.heads, self.ff_features or 4 * D, self.param_dtype, name=f"block_{l}")
            for l in range(self.layers)
        ]
        self.ln_out = nn.LayerNorm(param_dtype=self.param_dtype)

    def _make_positions(self, T: int, D: int):
        """Position encodings of the T tokens in generation order, (T, D)."""
        if self.positional == "learned":
            return self.param("positions", nn.initializers.normal(0.02), (T, D), self.param_dtype)
        if self.positional == "sinusoidal":
            return jnp.asarray(sinusoidal_positions(T, D), dtype=self.param_dtype)
        layout = self.layout()
        (gx, gy), coords = layout.grid, layout.coords
        if self.positional == "learned2d":
            rows = self.param("row_positions", nn.initializers.normal(0.02), (gx, D), self.param_dtype)
            cols = self.param("col_positions", nn.initializers.normal(0.02), (gy, D), self.param_dtype)
            return rows[coords[:, 0]] + cols[coords[:, 1]]
        half = D // 2
        pe = np.concatenate(
            [sinusoidal_positions(gx, half)[coords[:, 0]], sinusoidal_positions(gy, D - half)[coords[:, 1]]], axis=1
        )
        return jnp.asarray(pe, dtype=self.param_dtype)

    def output_features(self, h):
        return self.ln_out(h)

    def hidden_states(self, tokens):
        h = self.embed(self.shifted(tokens)) + self.positions
        keys, values = [], []
        for block in self.blocks:
            h, k, v = block(h)
            keys.append(k)
            values.append(v)
        return h, {"keys": jnp.stack(keys, axis=1), "values": jnp.stack(values, axis=1)}

    def init_state(self, batch):
        dh = self.features // self.heads
        shape = (batch, self.layers, self.layout().n_tokens, self.heads, dh)
        return {"keys": jnp.zeros(shape, self.param_dtype), "values": jnp.zeros(shape, self.param_dtype)}

    def step(self, state, read, k):
        h = self.embed(self.input_token(read, k)) + self.positions[k]
        keys, values = state["keys"], state["values"]
        for l, block in enumerate(self.blocks):
            h, k_l, v_l = block.step(h, k, keys[:, l], values[:, l])
            keys, values = keys.at[:, l].set(k_l), values.at[:, l].set(v_l)
        return {"keys": keys, "values": values}, h

    def state_after(self, trace, k):
        """The keys/values of all positions: those > k are never read before the suffix overwrites them."""
        return trace

    def suffix_hidden(self, state, tokens, first):
        h = self.embed(self.shifted(tokens)[:, first:]) + self.positions[first:]
        for l, block in enumerate(self.blocks):
            h, _, _ = block(h, (state["keys"][:, l], state["values"][:, l]), first)
        return h
