"""Autoregressive recurrent wave functions (1D GRU/LSTM stacks and the 2D RNN) with O(1)-per-site sampling.

The wave function is a product of normalised conditionals (Hibat-Allah, Ganahl, Hayward, Melko &
Carrasquilla, PRR 2, 023358 (2020)):

    ψ(x) = Π_k √q_k(x_{π(k)} | x_{π(<k)}) · exp(i φ_k(x_{π(k)} | x_{π(<k)})),

    q_k(s | ·) = m_k(s) softmax(W_a h_k + b_a)_s / Σ_s' m_k(s') softmax(W_a h_k + b_a)_s',
    φ_k(s | ·) = π softsign(W_φ h_k + b_φ)_s,

where π is the generation path (π(k) = Hilbert index of the k-th generated site) and h_k is the
hidden state of a recurrent network that has read x_{π(0)}, ..., x_{π(k−1)} only. m is the 0/1 mask of
a `Constraint` (e.g. zero magnetisation; App. D.2 of the same paper), applied identically when
sampling and when evaluating ψ, so Σ_x |ψ(x)|² = 1 exactly on the constrained set. With
machine_pow = 1 the model is a normalised probability P(x) = Π_k q_k (used for POVM distributions).

Site numbering and paths. Hilbert sites keep the numbering of the graph they come from: on an
Lx×Ly lattice site (x, y) has Hilbert index x·Ly + y, which is the numbering of
`nk.graph.Grid(extent=[Lx, Ly])` and `nk.graph.Square(L)`. The generation path π is a permutation
of these indices, declared to NetKet through `reorder` / `inverse_reorder`: `ARDirectSampler` asks
for the conditionals of the sites reorder(0..N−1) = π(0), π(1), ..., so samples and ψ are exact for
any path, and Hamiltonians are built on the usual graph without renumbering.
* "chain": π(k) = k (Hilbert order);
* "snake" (boustrophedon): row x is traversed with increasing y for even x and decreasing y for odd
  x, π(k) = x_k·Ly + y_k with (x_k, y_k) = `snake_order(Lx, Ly)[k]`. For `ARRNN` only the previous
  site on the path feeds the recurrence; `AR2DRNN` also reads the vertical neighbour.

Two evaluation paths share the weights:
* `conditionals_log_psi(x)`: a `nn.scan` of the recurrent step over the N path positions (used for
  ψ on samples and on connected configurations);
* `conditional(x, i)`: what `ARDirectSampler` calls for i = π(0), π(1), ...; it reads the recurrent
  state from the linen collection ``"cache"``, performs one recurrent step on the value of the
  previous path site and stores the new state, i.e. O(1) work per new site. The constraint's carry
  (e.g. the partial magnetisation) is kept in the same cache.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import netket as nk
import numpy as np

from ansatze.lattice import check_shape as _check_shape
from ansatze.lattice import generation_path as _path
from ansatze.lattice import snake_order
from ansatze.product_start import (
    Distribution,
    as_hashable,
    is_site_dependent,
    product_log_p,
)
from ansatze.sign_rules import check_sign_sites, marshall_phase
from nqs.constraint import Constraint, carry_typed_as_body

_MASKED = -1e30  # finite "log 0": keeps gradients NaN-free
_CELLS = ("gru", "lstm")
_ORDERS = ("chain", "snake")


def _check_common(model) -> None:
    """Checks shared by both recurrent models: hidden size, initial distribution, constraint size."""
    if int(model.hidden) < 1:
        raise ValueError(f"hidden must be >= 1, got {model.hidden}")
    d = model.hilbert.local_size
    product_log_p(model.initial_distribution, model.hilbert.size, d)  # validates
    c = model.constraint
    if c is not None and (c.n_sites != model.hilbert.size or c.local_size != d):
        raise ValueError(
            f"the constraint is for {c.n_sites} sites with {c.local_size} local values, but the Hilbert "
            f"space has {model.hilbert.size} sites with {d} local values"
        )


def _heads(
    n: int, d: int, param_dtype: Any, initial_distribution, phase: bool
) -> tuple[nn.Dense, nn.Dense | None, np.ndarray | None]:
    """Amplitude and phase heads; zero kernels (bias log p, resp. 0) for a product-state start. The third
    entry is the initial per-site logit table (Hilbert order) when the distribution is site dependent."""
    log_p = product_log_p(initial_distribution, n, d)
    if log_p is None:
        amplitude = nn.Dense(d, param_dtype=param_dtype, name="amplitude_head")
    else:
        bias = np.zeros(d) if is_site_dependent(log_p) else log_p[0]
        amplitude = nn.Dense(
            d,
            param_dtype=param_dtype,
            kernel_init=nn.initializers.zeros,
            bias_init=lambda *_: jnp.asarray(bias, dtype=param_dtype),
            name="amplitude_head",
        )
    site_log_p = log_p if is_site_dependent(log_p) else None
    if not phase:
        return amplitude, None, site_log_p
    zero = initial_distribution is not None
    phase_head = nn.Dense(
        d,
        param_dtype=param_dtype,
        name="phase_head",
        **({"kernel_init": nn.initializers.zeros, "bias_init": nn.initializers.zeros} if zero else {}),
    )
    return amplitude, phase_head, site_log_p


class _RecurrentARNN(nk.models.AbstractARNN):
    """Shared pieces of the recurrent models: heads, masks, ψ from conditionals, path reordering.

    Subclasses define the fields `constraint`, `phase`, `machine_pow` and the method `_path()`.
    """

    def _make_heads(self) -> None:
        """Amplitude/phase heads and, for a site-dependent product start, the bias table `site_logits`."""
        n, d = self.hilbert.size, self.hilbert.local_size
        self.amplitude_head, self.phase_head, site_log_p = _heads(
            n, d, self.param_dtype, self.initial_distribution, self.phase
        )
        self.site_logits = (
            None if site_log_p is None
            else self.param("site_logits", lambda *_: jnp.asarray(site_log_p, self.param_dtype))
        )

    def _log_conditional(self, h, mask, site_logits=None):
        """log q / machine_pow + i φ from hidden states h (..., H), the mask (..., d) and per-site logits."""
        logits = self.amplitude_head(h)
        if site_logits is not None:
            logits = logits + site_logits
        if mask is not None:
            logits = jnp.where(mask, logits, _MASKED)
        log_q = jax.nn.log_softmax(logits, axis=-1)
        if mask is not None:
            log_q = jnp.where(mask, log_q, _MASKED)
        log_psi = log_q / self.machine_pow
        if self.phase:
            log_psi = log_psi + 1j * jnp.pi * nn.soft_sign(self.phase_head(h))
        return log_psi

    def _generation_constraint(self) -> Constraint | None:
        """The constraint re-expressed for values in path order (identity path: unchanged)."""
        if self.constraint is None:
            return None
        path = self._path()
        if np.array_equal(path, np.arange(len(path))):
            return self.constraint
        return self.constraint.permuted(path)

    def _constraint_mask(self, prev, k, batch):
        """Cached constraint carry: advance it with the previous value, return the mask of step k."""
        c = self._generation_constraint()
        if c is None:
            return None
        init = c.init_carry(batch)
        carry = self.get_variable("cache", "constraint", init)
        updated = c.update(carry, prev, k - 1)
        carry = jax.tree_util.tree_map(lambda start, new: jnp.where(k == 0, start, new), init, updated)
        self.put_variable("cache", "constraint", carry)
        return c.mask(carry, k)

    def _finish_parallel(self, h, ordered):
        """Conditionals from path-ordered hidden states h (B, N, H), back in Hilbert layout (B, N, d)."""
        c = self._generation_constraint()
        mask = None if c is None else c.masks(ordered)
        site_logits = None if self.site_logits is None else self.reorder(self.site_logits, axis=0)
        log_psi = self._log_conditional(h, mask, site_logits)
        return self.inverse_reorder(log_psi, axis=1)

    def __call__(self, inputs: jax.Array) -> jax.Array:
        """log ψ(x) = Σ_k log ψ_k(x_{π(k)} | x_{π(<k)}) for configurations of any leading shape (..., N)."""
        batch_shape = inputs.shape[:-1]
        x = inputs.reshape((-1, inputs.shape[-1]))
        idx = self.hilbert.states_to_local_indices(x).astype(jnp.int32)
        log_psi = jnp.take_along_axis(self.conditionals_log_psi(x), idx[..., None], axis=-1)[..., 0]
        log_psi = log_psi.sum(axis=-1)
        if self.sign_sites is not None:
            log_psi = log_psi + 1j * marshall_phase(x, self.sign_sites)
        return log_psi.reshape(batch_shape)

    def reorder(self, inputs: jax.Array, axis: int = 0) -> jax.Array:
        """Hilbert layout → path layout: out[k] = inputs[π(k)] along `axis` (NetKet's AbstractARNN.reorder)."""
        return jnp.take(inputs, jnp.asarray(self._path()), axis=axis)

    def inverse_reorder(self, inputs: jax.Array, axis: int = 0) -> jax.Array:
        """Path layout → Hilbert layout: out[π(k)] = inputs[k] along `axis`."""
        return jnp.take(inputs, jnp.asarray(np.argsort(self._path())), axis=axis)


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


class ARRNN(_RecurrentARNN):
    """Autoregressive RNN ψ(x) = Π_k √q_k e^{iφ_k} along a 1D path through the sites (see module docstring).

    The recurrence (the 1D RNN wave function of Hibat-Allah et al., PRR 2, 023358 (2020), with a GRU/LSTM cell):

        (c_k, h_k) = Cell((c_{k−1}, h_{k−1}), onehot(x_{π(k−1)})),   (c_0, h_0) from a start token,

    per stacked layer, the input of layer l > 0 being the output h_k of layer l − 1.

    Attributes:
        hilbert: homogeneous NetKet Hilbert space (unconstrained; sectors come from `constraint`).
        hidden: hidden units of each cell.
        cell: "gru" (`nn.GRUCell`) or "lstm" (`nn.OptimizedLSTMCell`).
        layers: number of stacked cells.
        order: "chain" (Hilbert order) or "snake" (boustrophedon path on the lattice `shape`, with
            Hilbert index x·Ly + y for site (x, y); see `snake_order`).
        shape: (Lx, Ly) of the lattice, required by order="snake".
        constraint: a `Constraint` on the Hilbert-ordered sites masking the conditionals, or None; for
            a non-trivial path it is re-expressed with `constraint.permuted(path)`.
        phase: phase head φ = π softsign(W_φ h + b_φ) (True) or a positive real ψ (False).
        param_dtype: dtype of the (real) parameters.
        machine_pow: |ψ|^machine_pow is the sampled distribution (2 for |ψ|²; 1 makes the model a
            normalised probability P(x) = exp(log ψ(x)), as used for POVM distributions).
        initial_distribution: single-site distribution p(s) or one per site p_i(s); when given, the
            amplitude head starts with zero weights and logits log p_i (shared bias, or a per-site table
            `site_logits` when the p_i differ) and the phase head with zeros, so the initial model is
            exactly the product state ψ(x) = Π_i √p_i(x_i) (renormalised by the constraint mask, if any).
        sign_sites: sites of sublattice B for a built-in Marshall sign (−1)^{N_↑^B(x)} (see
            `ansatze.sign_rules`; e.g. `sign_rules.sublattice_b(graph)`), or None.
    """

    hidden: int
    cell: str = "gru"
    layers: int = 1
    order: str = "chain"
    shape: tuple[int, int] | None = None
    constraint: Constraint | None = None
    phase: bool = True
    param_dtype: Any = jnp.float64
    machine_pow: int = 2
    initial_distribution: Distribution | None = None
    sign_sites: tuple[int, ...] | None = None

    def __post_init__(self):
        if isinstance(self.shape, list):
            self.shape = tuple(self.shape)  # module fields must be hashable
        self.initial_distribution = as_hashable(self.initial_distribution)
        self.sign_sites = check_sign_sites(self.hilbert, self.sign_sites)
        super().__post_init__()
        if self.cell not in _CELLS:
            raise ValueError(f"cell must be one of {_CELLS}, got {self.cell!r}")
        if self.order not in _ORDERS:
            raise ValueError(f"order must be one of {_ORDERS}, got {self.order!r}")
        if self.layers < 1:
            raise ValueError(f"layers must be >= 1, got {self.layers}")
        if self.order == "snake" or self.shape is not None:
            _check_shape(self.shape, self.hilbert.size, f"order={self.order!r}")
        _check_common(self)
        if self.constraint is not None:
            self._generation_constraint()  # fails now if the constraint cannot follow the path

    def _path(self) -> np.ndarray:
        shape = None if self.shape is None else tuple(int(v) for v in self.shape)
        return _path(self.order, self.hilbert.size, shape)

    def setup(self):
        self.stack = _CellStack(self.cell, self.hidden, self.layers, self.param_dtype)
        self._make_heads()

    def _zero_carry(self, batch: int):
        h = jnp.zeros((batch, self.hidden), dtype=self.param_dtype)
        return tuple(h if self.cell == "gru" else (h, h) for _ in range(self.layers))

    def _onehot(self, tokens):
        """onehot over d + 1 channels; channel d is the start token of path position 0."""
        return jax.nn.one_hot(tokens, self.hilbert.local_size + 1, dtype=self.param_dtype)

    # -- parallel path ---------------------------------------------------------------------------
    def conditionals_log_psi(self, inputs: jax.Array) -> jax.Array:
        """log ψ_i(s | ·) = ½ log q_k(s | x_{π(<k)}) + i φ_k(s | x_{π(<k)}) at k = π⁻¹(i), for all Hilbert
        sites i and values s: (batch, N, local_size); the cells are scanned once along the path."""
        d = self.hilbert.local_size
        ordered = self.reorder(self.hilbert.states_to_local_indices(inputs).astype(jnp.int32), axis=1)
        start = jnp.full((ordered.shape[0], 1), d, dtype=jnp.int32)
        tokens = jnp.concatenate([start, ordered[:, :-1]], axis=1)
        scan = nn.scan(
            lambda stack, carry, x: stack(carry, x),
            variable_broadcast="params",
            split_rngs={"params": False},
            in_axes=1,
            out_axes=1,
        )
        xs = self._onehot(tokens)
        init = carry_typed_as_body(self.stack, self._zero_carry(ordered.shape[0]), xs[:, 0])
        _, h = scan(self.stack, init, xs)
        return self._finish_parallel(h, ordered)

    # -- cached path (sampling) ------------------------------------------------------------------
    def conditional(self, inputs: jax.Array, index: jax.Array) -> jax.Array:
        """q(· | x_{π(<k)}) of Hilbert site `index` = π(k): (batch, local_size); one cell step per layer."""
        if inputs.ndim == 1:
            inputs = inputs[None]
        d, batch = self.hilbert.local_size, inputs.shape[0]
        path = jnp.asarray(self._path())
        k = jnp.asarray(np.argsort(self._path()))[index]
        prev = self.hilbert.states_to_local_indices(inputs[:, path[jnp.maximum(k - 1, 0)]]).astype(jnp.int32)
        token = jnp.where(k == 0, d, prev)
        zero = self._zero_carry(batch)
        carry = self.get_variable("cache", "carry", zero)
        carry = jax.tree_util.tree_map(lambda z, c: jnp.where(k == 0, z, c), zero, carry)
        carry, h = self.stack(carry, self._onehot(token))
        self.put_variable("cache", "carry", carry)
        mask = self._constraint_mask(prev, k, batch)
        site_logits = None if self.site_logits is None else self.site_logits[index]
        return jnp.exp(self.machine_pow * self._log_conditional(h, mask, site_logits).real)

    def describe(self) -> dict:
        """Name and hyper-parameters, stored in result files."""
        return {
            "name": "ARRNN",
            "cell": self.cell,
            "hidden": self.hidden,
            "layers": self.layers,
            "order": self.order,
            "shape": None if self.shape is None else [int(v) for v in self.shape],
            "phase": self.phase,
            "constraint": None if self.constraint is None else self.constraint.describe(),
            "param_dtype": str(jnp.dtype(self.param_dtype)),
            "machine_pow": self.machine_pow,
            "initial_distribution": self.initial_distribution,
            "sign_sites": self.sign_sites,
        }


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
def _neighbour_tables(Lx: int, Ly: int) -> dict[str, np.ndarray]:
    """Per path position k: column y_k, Hilbert index and column of the horizontal predecessor, Hilbert
    index of the vertical neighbour (x_k − 1, y_k); −1 where the neighbour does not exist."""
    pos = snake_order(Lx, Ly)
    x, y = pos[:, 0], pos[:, 1]
    step = np.where(x % 2 == 0, -1, 1)  # the horizontal predecessor is at y − 1 (even rows) or y + 1 (odd)
    hy = y + step
    has_h = (hy >= 0) & (hy < Ly)
    return {
        "col": y,
        "hcol": np.where(has_h, hy, 0),
        "hsite": np.where(has_h, x * Ly + hy, -1),
        "vsite": np.where(x > 0, (x - 1) * Ly + y, -1),
    }


def _step_2d(cell: _GRU2DCell, columns: jax.Array, xs: tuple) -> tuple[jax.Array, jax.Array]:
    """One site of the 2D RNN: h = Cell2D(columns[y∓1], σ_h; columns[y], σ_v); then columns[y] ← h.

    `columns` (batch, Ly, H) holds, for every column, the state of the latest generated site in it:
    the current row up to the horizontal predecessor, the previous row beyond it.
    """
    s_h, s_v, col, hcol, has_h, has_v = xs
    h_h = jnp.where(has_h, columns[:, hcol], 0.0)
    h_v = jnp.where(has_v, columns[:, col], 0.0)
    h = cell(h_h, h_v, s_h, s_v)
    return columns.at[:, col].set(h), h


class AR2DRNN(_RecurrentARNN):
    """2D autoregressive RNN on an Lx×Ly lattice in snake order (Hibat-Allah et al., PRR 2, 023358 (2020)).

    Site (x, y) has Hilbert index x·Ly + y (`nk.graph.Grid(extent=[Lx, Ly])` numbering); the sites are
    generated along the snake path of `snake_order(Lx, Ly)` (declared through `reorder`, so
    `ARDirectSampler` samples exactly). The hidden state at (x, y) is

        h_{x,y} = Cell2D(h_{x,y∓1}, σ_{x,y∓1}; h_{x−1,y}, σ_{x−1,y}),

    from the horizontal predecessor in the current row's direction (y − 1 in even rows, y + 1 in odd
    rows) and the vertical neighbour in the previous row; missing neighbours contribute zeros. The
    paper's 2D vanilla RNN is h = F(W_h[h_{x,y∓1}; σ_{x,y∓1}] + W_v[h_{x−1,y}; σ_{x−1,y}] + b); here F
    is gated as in a GRU (the cell of `_GRU2DCell`, a concatenation-based variant of the tensorised 2D
    GRU of Hibat-Allah et al., arXiv:2207.14314). ψ and q_k follow the module docstring with h_k = h_{π(k)}.

    Sampling caches one hidden state per column (the previous row's states, overwritten column by
    column by the current row), so each new site costs one cell evaluation.

    Attributes:
        hilbert: homogeneous NetKet Hilbert space with Lx·Ly sites (unconstrained).
        hidden: hidden units of the cell.
        shape: (Lx, Ly) of the lattice.
        constraint: a `Constraint` on the Hilbert-ordered sites, re-expressed for the snake path with
            `constraint.permuted(path)`, or None.
        phase: phase head φ = π softsign(W_φ h + b_φ) (True) or a positive real ψ (False).
        param_dtype: dtype of the (real) parameters.
        machine_pow: |ψ|^machine_pow is the sampled distribution (2 for |ψ|², 1 for a probability model).
        initial_distribution: single-site distribution p(s) or one per site p_i(s); the initial model is
            then exactly the product state ψ(x) = Π_i √p_i(x_i) (renormalised by the constraint mask, if any).
        sign_sites: sites of sublattice B for a built-in Marshall sign (−1)^{N_↑^B(x)} (see
            `ansatze.sign_rules`; e.g. `sign_rules.sublattice_b(graph)`), or None.
    """

    hidden: int
    shape: tuple[int, int]
    constraint: Constraint | None = None
    phase: bool = True
    param_dtype: Any = jnp.float64
    machine_pow: int = 2
    initial_distribution: Distribution | None = None
    sign_sites: tuple[int, ...] | None = None

    def __post_init__(self):
        if isinstance(self.shape, list):
            self.shape = tuple(self.shape)  # module fields must be hashable
        self.initial_distribution = as_hashable(self.initial_distribution)
        self.sign_sites = check_sign_sites(self.hilbert, self.sign_sites)
        super().__post_init__()
        _check_shape(self.shape, self.hilbert.size, "AR2DRNN")
        _check_common(self)
        if self.constraint is not None:
            self._generation_constraint()

    def _lattice(self) -> tuple[int, int]:
        return int(self.shape[0]), int(self.shape[1])

    def _path(self) -> np.ndarray:
        return _path("snake", self.hilbert.size, self._lattice())

    def setup(self):
        self.cell = _GRU2DCell(self.hidden, self.param_dtype)
        self._make_heads()

    def _neighbour_values(self, inputs, site):
        """One-hot local values (batch, ..., d) of the Hilbert sites `site` (zeros where site = −1)."""
        value = self.hilbert.states_to_local_indices(jnp.take(inputs, jnp.maximum(site, 0), axis=1))
        onehot = jax.nn.one_hot(value.astype(jnp.int32), self.hilbert.local_size, dtype=self.param_dtype)
        return onehot * (site >= 0)[..., None]

    # -- parallel path ---------------------------------------------------------------------------
    def conditionals_log_psi(self, inputs: jax.Array) -> jax.Array:
        """log ψ_i(s | ·) = ½ log q_k(s | x_{π(<k)}) + i φ_k(s | x_{π(<k)}) at k = π⁻¹(i), for all Hilbert
        sites i and values s: (batch, N, local_size); the 2D cell is scanned once along the snake."""
        Lx, Ly = self._lattice()
        t = _neighbour_tables(Lx, Ly)
        xs = (  # time axis first
            jnp.swapaxes(self._neighbour_values(inputs, jnp.asarray(t["hsite"])), 0, 1),
            jnp.swapaxes(self._neighbour_values(inputs, jnp.asarray(t["vsite"])), 0, 1),
            jnp.asarray(t["col"]),
            jnp.asarray(t["hcol"]),
            jnp.asarray(t["hsite"] >= 0),
            jnp.asarray(t["vsite"] >= 0),
        )
        scan = nn.scan(_step_2d, variable_broadcast="params", split_rngs={"params": False}, out_axes=1)
        columns = jnp.zeros((inputs.shape[0], Ly, self.hidden), dtype=self.param_dtype)
        columns = carry_typed_as_body(lambda c, x: _step_2d(self.cell, c, x), columns,
                                       jax.tree_util.tree_map(lambda a: a[0], xs))
        _, h = scan(self.cell, columns, xs)
        ordered = self.reorder(self.hilbert.states_to_local_indices(inputs).astype(jnp.int32), axis=1)
        return self._finish_parallel(h, ordered)

    # -- cached path (sampling) ------------------------------------------------------------------
    def conditional(self, inputs: jax.Array, index: jax.Array) -> jax.Array:
        """q(· | x_{π(<k)}) of Hilbert site `index` = π(k): (batch, local_size); one cell evaluation."""
        if inputs.ndim == 1:
            inputs = inputs[None]
        Lx, Ly = self._lattice()
        t = {name: jnp.asarray(v) for name, v in _neighbour_tables(Lx, Ly).items()}
        batch = inputs.shape[0]
        path = jnp.asarray(self._path())
        k = jnp.asarray(np.argsort(self._path()))[index]
        xs = (
            self._neighbour_values(inputs, t["hsite"][k]),
            self._neighbour_values(inputs, t["vsite"][k]),
            t["col"][k],
            t["hcol"][k],
            t["hsite"][k] >= 0,
            t["vsite"][k] >= 0,
        )
        columns = self.get_variable("cache", "columns", jnp.zeros((batch, Ly, self.hidden), self.param_dtype))
        columns, h = _step_2d(self.cell, columns, xs)
        self.put_variable("cache", "columns", columns)
        prev = self.hilbert.states_to_local_indices(inputs[:, path[jnp.maximum(k - 1, 0)]]).astype(jnp.int32)
        mask = self._constraint_mask(prev, k, batch)
        site_logits = None if self.site_logits is None else self.site_logits[index]
        return jnp.exp(self.machine_pow * self._log_conditional(h, mask, site_logits).real)

    def describe(self) -> dict:
        """Name and hyper-parameters, stored in result files."""
        return {
            "name": "AR2DRNN",
            "hidden": self.hidden,
            "shape": [int(v) for v in self.shape],
            "order": "snake",
            "phase": self.phase,
            "constraint": None if self.constraint is None else self.constraint.describe(),
            "param_dtype": str(jnp.dtype(self.param_dtype)),
            "machine_pow": self.machine_pow,
            "initial_distribution": self.initial_distribution,
            "sign_sites": self.sign_sites,
        }
