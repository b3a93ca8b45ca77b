"""Autoregressive recurrent wave functions (1D GRU/LSTM stacks and the 2D RNN) with O(1)-per-token sampling.

The conditional networks of `ansatze.autoregressive.AutoregressiveModel` (which defines ψ, the masks, the heads,
tokens and orders) of the RNN wave functions of Hibat-Allah, Ganahl, Hayward, Melko & Carrasquilla, PRR 2, 023358
(2020): h_k is the hidden state of a recurrent network that has read the tokens v_0, …, v_{k−1} only, and the phase
head is φ_k(v) = π softsign(W_φ h_k + b_φ)_v.

Generation paths (field `order`; `ansatze.token_layout`): tokens keep the numbering of the graph they come from
(site (x, y) of an Lx×Ly lattice has index x·Ly + y, the `nk.graph.Grid(extent=[Lx, Ly])` numbering); "chain" is
π(k) = k, "snake" the boustrophedon path of `ansatze.lattice.snake_order`. For `ARRNN` only the previous token on
the path feeds the recurrence; `AR2DRNN` also reads the vertical neighbour.

Evaluation paths: `hidden_states` scans the recurrent step once along the path (`nn.scan`) and keeps the recurrent
state after every position (the trace of the prefix-cache hook); `step` reads the recurrent state from the linen
collection ``"cache"`` and performs one step on the previous token, i.e. O(1) work per new token.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ansatze.autoregressive import AutoregressiveModel
from nqs.constraint import carry_typed_as_body

_CELLS = ("gru", "lstm")


class _RecurrentModel(AutoregressiveModel):
    """What the recurrent models share: the hidden size and the phase π softsign(W_φ h + b_φ)."""

    hidden: int

    def __post_init__(self):
        super().__post_init__()
        if int(self.hidden) < 1:
            raise ValueError(f"hidden must be >= 1, got {self.hidden}")

    def phase_angle(self, raw):
        return jnp.pi * nn.soft_sign(raw)

    def _scan(self, body, init, xs) -> tuple[jax.Array, Any]:
        """(h (B, T, H), states (B, T, …)) of the recurrence `body(module, state, x) -> (state, h)` scanned over
        xs (leading axis: positions) from `init`."""

        def traced(module, state, x):
            state, h = body(module, state, x)
            return state, (h, state)

        x0 = jax.tree_util.tree_map(lambda a: a[0], xs)
        init = carry_typed_as_body(lambda s, x: body(self, s, x), init, x0)
        scan = nn.scan(traced, variable_broadcast=True, split_rngs={"params": False}, out_axes=1)
        return scan(self, init, xs)[1]


class _CellStack(nn.Module):
    """`layers` stacked Flax cells; one step maps (carries, input) → (carries, output of the top cell)."""

    cell: str
    hidden: int
    layers: int
    param_dtype: Any

    def setup(self):
        make = nn.GRUCell if self.cell == "gru" else nn.OptimizedLSTMCell
        self.cells = [make(self.hidden, param_dtype=self.param_dtype, name=f"cell_{l}") for l in range(self.layers)]

    def __call__(self, carry, x):
        """(c_l, h_l) = Cell_l((c_l, h_l), h_{l−1}) for l = 1..layers, with h_0 = x; returns (carries, h_layers)."""
        new = []
        for c, cell in zip(carry, self.cells):
            c, x = cell(c, x)
            new.append(c)
        return tuple(new), x


class ARRNN(_RecurrentModel):
    """Autoregressive RNN ψ(x) = s(x) Π_k √q_k e^{iφ_k} along a 1D path through the tokens (module docstring).

    The recurrence (the 1D RNN wave function of Hibat-Allah et al. with a GRU/LSTM cell):

        (c_k, h_k) = Cell((c_{k−1}, h_{k−1}), onehot(v_{k−1})),   onehot(start) at k = 0,

    per stacked layer, the input of layer l > 0 being the output h_k of layer l − 1.

    Attributes (and those of `AutoregressiveModel`: constraint, phase, param_dtype, machine_pow,
    initial_distribution, sign_sites, order "chain"/"snake"/permutation, shape, patch, tokens):
        hidden: hidden units of each cell.
        cell: "gru" (`nn.GRUCell`) or "lstm" (`nn.OptimizedLSTMCell`).
        layers: number of stacked cells.
    """

    cell: str = "gru"
    layers: int = 1

    orders = ("chain", "snake")

    def __post_init__(self):
        if self.cell not in _CELLS:
            raise ValueError(f"cell must be one of {_CELLS}, got {self.cell!r}")
        if self.layers < 1:
            raise ValueError(f"layers must be >= 1, got {self.layers}")
        super().__post_init__()

    def hyperparameters(self) -> dict:
        return {"cell": self.cell, "hidden": self.hidden, "layers": self.layers}

    def setup_network(self):
        self.stack = _CellStack(self.cell, self.hidden, self.layers, self.param_dtype)

    def init_state(self, batch):
        h = jnp.zeros((batch, self.hidden), dtype=self.param_dtype)
        return {"carry": tuple(h if self.cell == "gru" else (h, h) for _ in range(self.layers))}

    def _onehot(self, tokens):
        """onehot over V + 1 channels; channel V is the start token of position 0."""
        return jax.nn.one_hot(tokens, self.start_token() + 1, dtype=self.param_dtype)

    @staticmethod
    def _cell_step(model, state, x):
        carry, h = model.stack(state["carry"], x)
        return {"carry": carry}, h

    def hidden_states(self, tokens):
        xs = jnp.moveaxis(self._onehot(self.shifted(tokens)), 1, 0)
        return self._scan(ARRNN._cell_step, self.init_state(tokens.shape[0]), xs)

    def step(self, state, read, k):
        return ARRNN._cell_step(self, state, self._onehot(self.input_token(read, k)))


class _GRU2DCell(nn.Module):
    """Gated 2D recurrent cell of the horizontal (h_h, σ_h) and vertical (h_v, σ_v) neighbours.

    With h̃ = [h_h; h_v] and σ̃ = [σ_h; σ_v] (one-hots, zero for a missing neighbour):

        r = sigmoid(W_r σ̃ + U_r h̃ + b_r),  u = sigmoid(W_u σ̃ + U_u h̃ + b_u),
        ĥ = tanh(W_c σ̃ + U_c (r ⊙ h̃) + b_c),  h = u ⊙ ĥ + (1 − u) ⊙ M h̃.
    """

    hidden: int
    param_dtype: Any

    @nn.compact
    def __call__(self, h_h, h_v, s_h, s_v):
        dense = functools.partial(nn.Dense, param_dtype=self.param_dtype)
        h_cat = jnp.concatenate([h_h, h_v], axis=-1)
        inp = jnp.concatenate([s_h, s_v, h_cat], axis=-1)
        r = nn.sigmoid(dense(2 * self.hidden, name="reset")(inp))
        u = nn.sigmoid(dense(self.hidden, name="update")(inp))
        cand = jnp.concatenate([s_h, s_v, r * h_cat], axis=-1)
        h_new = jnp.tanh(dense(self.hidden, name="candidate")(cand))
        merged = dense(self.hidden, use_bias=False, name="merge")(h_cat)
        return u * h_new + (1.0 - u) * merged


@functools.cache
def _neighbour_tables(coords_key: tuple[tuple[int, int], ...]) -> dict[str, np.ndarray]:
    """Per generation position k of a snake path with grid positions `coords_key`: column y_k, generation position
    and column of the horizontal predecessor (the previous position when in the same row), generation position of
    the vertical neighbour (x_k − 1, y_k); positions −1 where the neighbour does not exist."""
    coords = np.asarray(coords_key)
    x, y = coords[:, 0], coords[:, 1]
    where = {(int(a), int(b)): k for k, (a, b) in enumerate(coords)}
    same_row = np.concatenate([[False], x[1:] == x[:-1]])
    return {
        "col": y,
        "hcol": np.where(same_row, np.roll(y, 1), 0),
        "hpos": np.where(same_row, np.arange(len(x)) - 1, -1),
        "vpos": np.asarray([where.get((int(a) - 1, int(b)), -1) for a, b in coords]),
    }


class AR2DRNN(_RecurrentModel):
    """2D autoregressive RNN on a lattice of tokens in snake order (Hibat-Allah et al., PRR 2, 023358 (2020)).

    Token (x, y) of the Lx×Ly lattice `shape` (index x·Ly + y, `nk.graph.Grid(extent=[Lx, Ly])` numbering; with
    patches, the patch grid) is generated along the snake path of `ansatze.lattice.snake_order`. The hidden state
    at (x, y) is

        h_{x,y} = Cell2D(h_{x,y∓1}, σ_{x,y∓1}; h_{x−1,y}, σ_{x−1,y}),

    from the horizontal predecessor in the current row's direction (y − 1 in even rows, y + 1 in odd rows) and the
    vertical neighbour in the previous row; missing neighbours contribute zeros, σ is the one-hot token value. The
    paper's 2D vanilla RNN is h = F(W_h[h_{x,y∓1}; σ_{x,y∓1}] + W_v[h_{x−1,y}; σ_{x−1,y}] + b); here F is gated as
    in a GRU (`_GRU2DCell`, a concatenation-based variant of the tensorised 2D GRU of Hibat-Allah et al.,
    arXiv:2207.14314).

    The state is one hidden state per column (the previous row's states, overwritten column by column by the current
    row), so each new token costs one cell evaluation.

    Attributes (and those of `AutoregressiveModel`: constraint, phase, param_dtype, machine_pow,
    initial_distribution, sign_sites, patch, tokens):
        hidden: hidden units of the cell.
        shape: (Lx, Ly) of the lattice (required, keyword).
        order: "snake" (the only path).
    """

    shape: tuple[int, int] = dataclasses.field(kw_only=True)
    order: str = dataclasses.field(default="snake", kw_only=True)

    orders = ("snake",)
    permutations = False  # the vertical neighbour must come earlier on the path

    def hyperparameters(self) -> dict:
        return {"hidden": self.hidden}

    def setup_network(self):
        self.cell = _GRU2DCell(self.hidden, self.param_dtype)

    def _tables(self) -> dict[str, jax.Array]:
        coords = tuple(tuple(int(v) for v in c) for c in self.layout().coords)
        return {name: jnp.asarray(v) for name, v in _neighbour_tables(coords).items()}

    def init_state(self, batch):
        return {"columns": jnp.zeros((batch, self.layout().grid[1], self.hidden), self.param_dtype)}

    def _onehot(self, value, exists):
        """One-hot token values (B, V), zeros for a missing neighbour."""
        return jax.nn.one_hot(value, self.start_token(), dtype=self.param_dtype) * exists[..., None]

    @staticmethod
    def _cell_step(model, state, xs):
        """h = Cell2D(columns[y∓1], σ_h; columns[y], σ_v); then columns[y] ← h."""
        s_h, s_v, col, hcol, has_h, has_v = xs
        columns = state["columns"]
        h_h = jnp.where(has_h, columns[:, hcol], 0.0)
        h_v = jnp.where(has_v, columns[:, col], 0.0)
        h = model.cell(h_h, h_v, s_h, s_v)
        return {"columns": columns.at[:, col].set(h)}, h

    def hidden_states(self, tokens):
        t = self._tables()
        has_h, has_v = t["hpos"] >= 0, t["vpos"] >= 0
        s_h = self._onehot(jnp.take(tokens, jnp.maximum(t["hpos"], 0), axis=1), has_h)
        s_v = self._onehot(jnp.take(tokens, jnp.maximum(t["vpos"], 0), axis=1), has_v)
        xs = (jnp.moveaxis(s_h, 1, 0), jnp.moveaxis(s_v, 1, 0), t["col"], t["hcol"], has_h, has_v)
        return self._scan(AR2DRNN._cell_step, self.init_state(tokens.shape[0]), xs)

    def step(self, state, read, k):
        t = {name: v[k] for name, v in self._tables().items()}
        has_h, has_v = t["hpos"] >= 0, t["vpos"] >= 0
        s_h = self._onehot(read(jnp.maximum(t["hpos"], 0)), has_h)
        s_v = self._onehot(read(jnp.maximum(t["vpos"], 0)), has_v)
        return AR2DRNN._cell_step(self, state, (s_h, s_v, t["col"], t["hcol"], has_h, has_v))
