"""Constraints on configurations, applied by autoregressive ansätze as masks on the conditionals.

A `Constraint` answers one question: given the local values already generated, x_<i, which values
may site i take? An autoregressive model multiplies its conditional q̃_i(s | x_<i) by the 0/1 mask
m_i(s | x_<i) and renormalises,

    q_i(s | x_<i) = m_i(s) q̃_i(s | x_<i) / Σ_s' m_i(s') q̃_i(s' | x_<i),

which keeps ψ exactly normalised on the constrained set and exactly samplable
(Hibat-Allah et al., PRR 2, 023358 (2020), App. D.2). The same mask must be used when sampling and
when evaluating ψ on connected configurations; both paths call the methods below.

Values are *token values* s ∈ {0, ..., local_size-1}: the local indices of the Hilbert modes (NetKet's
`hilbert.states_to_local_indices`) when every mode is a token, the mixed-radix value of a token's modes
otherwise (`nqs.tokens.TokenMap`: a gauge block, a spin orbital); "sites" are tokens, `local_size` is the
largest token size. Values come in the order in which the model generates them. A constraint that
depends on the site identity (Gauss's law) must be re-expressed for another order with `permuted(order)`.

Masks are computed from a small carry so that sampling costs O(1) per site:

    carry = init_carry(batch); for i: m = mask(carry, i); s ~ q_i; carry = update(carry, s, i)

`masks(s)` is the parallel version used when evaluating ψ. A prefix with no allowed continuation is
a bug: every constraint checks feasibility at construction and raises `ValueError` if no
configuration satisfies it.

A constraint also defines its sector, the configurations whose every value its masks allow. `sector`
enumerates them breadth first over the masks, `count` counts them exactly without enumerating: prefixes
with equal carries have the same completions, so one representative per distinct carry and its
multiplicity suffice (a transfer-matrix count; for U(1) the coefficient of a generating polynomial).
Both take the number of values D_t of every token (`nqs.tokens.TokenMap.token_sizes`): values ≥ D_t of a
token smaller than `local_size` are excluded, as an autoregressive model excludes them, and a prefix left
with no value is reported as a broken look-ahead.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

MAX_SECTOR_STATES = 2**24  # `Constraint.sector` refuses larger sectors; `count` keeps at most this many carries


def carry_typed_as_body(step, carry, x0):
    """`carry`'s values, typed as the output carry of one scan step `step(carry, x0)`.

    Inside NetKet's `shard_map` (sharded samples, minSR's on-the-fly NTK) the inputs, the parameters or
    both can be "varying" over the sample axis, and `lax.scan` demands an initial carry of exactly the
    type its body returns. Selecting the values of `carry` against one body output gives that type by
    construction (the cost is one extra scan step per evaluation)."""
    out, _ = step(carry, x0)
    return jax.tree_util.tree_map(lambda c, o: jnp.where(jnp.zeros(o.shape, bool), o, c).astype(o.dtype), carry, out)


@partial(jax.jit, static_argnums=0)
def _jit_mask(constraint: Constraint, carry, i):
    return constraint.mask(carry, i)


@partial(jax.jit, static_argnums=0)
def _jit_update(constraint: Constraint, carry, s, i):
    return constraint.update(carry, s, i)


def _padded(index: np.ndarray) -> np.ndarray:
    """`index` padded to the next power of two (at least 2^10) by repeating its first entry: the batch shapes of a
    sector walk, hence its compilations, are O(log D) and shared between walks of equal constraints."""
    size = max(1 << max(len(index) - 1, 0).bit_length(), 2**10)
    return np.concatenate([index, np.full(size - len(index), index[0], index.dtype)])


def _distinct_carries(carry, multiplicity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row of the first occurrence of every distinct carry among the first len(multiplicity) rows (compared by the
    bytes of every leaf), and the summed multiplicity of each."""
    n = len(multiplicity)
    leaves = [np.ascontiguousarray(leaf[:n]).reshape(n, -1).view(np.uint8) for leaf in jax.tree_util.tree_leaves(carry)]
    _, first, inverse = np.unique(np.concatenate(leaves, axis=1), axis=0, return_index=True, return_inverse=True)
    merged = np.zeros(len(first), dtype=object)
    np.add.at(merged, inverse.reshape(-1), multiplicity)
    return first, merged


def as_permutation(order: Sequence[int], n_sites: int) -> tuple[int, ...]:
    """`order` as a tuple of ints after checking that it is a permutation of range(n_sites) (ValueError otherwise):
    the generation orders of `Constraint.permuted`."""
    order = tuple(int(i) for i in np.asarray(order).reshape(-1).tolist())
    if sorted(order) != list(range(n_sites)):
        raise ValueError(f"order must be a permutation of range({n_sites}), got {list(order)}")
    return order


class Constraint(abc.ABC):
    """Abstract constraint on the token values of an N-token configuration (local indices for one token per mode)."""

    n_sites: int
    local_size: int

    @abc.abstractmethod
    def init_carry(self, batch: int):
        """The carry before any site is generated, for `batch` configurations."""

    @abc.abstractmethod
    def mask(self, carry, i) -> jax.Array:
        """Boolean mask (batch, local_size) of the values allowed at generation step `i`."""

    @abc.abstractmethod
    def update(self, carry, s: jax.Array, i):
        """The carry after the values `s` (batch,) were chosen at step `i`."""

    def masks(self, s: jax.Array) -> jax.Array:
        """Masks for every step of the complete configurations `s` (batch, N): (batch, N, local_size).

        The default scans `mask`/`update`; subclasses override it with a vectorised form.
        """
        s = jnp.asarray(s)

        def step(carry, inp):
            i, s_i = inp
            m = self.mask(carry, i)
            return self.update(carry, s_i, i), m

        xs = (jnp.arange(self.n_sites), s.T)
        init = carry_typed_as_body(step, self.init_carry(s.shape[0]), (xs[0][0], xs[1][0]))
        _, ms = jax.lax.scan(step, init, xs)
        return jnp.moveaxis(ms, 0, 1)

    def is_satisfied(self, s: jax.Array) -> jax.Array:
        """Boolean (batch,): whether each complete configuration satisfies the constraint."""
        s = jnp.asarray(s)
        m = self.masks(s)
        ok = jnp.take_along_axis(m, s[..., None].astype(jnp.int32), axis=-1)[..., 0]
        return jnp.all(ok, axis=-1)

    def _token_sizes(self, token_sizes: Sequence[int] | None = None) -> tuple[int, ...]:
        """The number of values of every token: `token_sizes` checked against this constraint, or `local_size` for
        every token when None."""
        if token_sizes is None:
            return (self.local_size,) * self.n_sites
        sizes = tuple(int(d) for d in token_sizes)
        if len(sizes) != self.n_sites or not all(1 <= d <= self.local_size for d in sizes):
            raise ValueError(
                f"token sizes {sizes} do not fit a constraint on {self.n_sites} tokens of at most {self.local_size} "
                f"values"
            )
        return sizes

    def _initial_carry(self):
        """The empty prefix as the first row of a padded numpy carry (see `_extend`)."""
        try:
            hash(self)
        except TypeError as err:
            raise TypeError(f"{type(self).__name__} must be hashable (a frozen dataclass) to walk its sector") from err
        return jax.tree_util.tree_map(lambda c: np.asarray(c)[_padded(np.zeros(1, np.int64))], self.init_carry(1))

    def _extend(self, carry, n: int, i: int, size: int) -> tuple[Any, np.ndarray, np.ndarray]:
        """Every allowed extension by token i (of `size` values) of the first `n` prefixes of `carry` (numpy leaves,
        padded rows after n): (carry of the extensions, parent row, value). Parents come in order and values ascending
        within a parent (row-major `np.nonzero`), so lexicographic order is kept. ValueError on a dead end."""
        mask = np.asarray(_jit_mask(self, carry, np.int32(i)))[:n, :size]
        if not mask.any(axis=1).all():
            raise ValueError(
                f"{type(self).__name__}: a reachable prefix of {i} tokens allows no value of token {i} (of {size} "
                "values): the mask's look-ahead is broken"
            )
        parents, values = np.nonzero(mask)
        rows = _padded(parents)
        carry = jax.tree_util.tree_map(lambda c: c[rows], carry)
        carry = _jit_update(self, carry, _padded(values).astype(np.int32), np.int32(i))
        return jax.tree_util.tree_map(np.asarray, carry), parents, values

    def count(self, token_sizes: Sequence[int] | None = None) -> int:
        """The exact number of configurations of the sector (a Python integer, never an estimate).

        Walks the masks keeping one representative per distinct carry with its multiplicity: the masks depend on
        the carry and the step only, so prefixes with equal carries have equal numbers of completions. Refuses
        (ValueError) a carry with more than `MAX_SECTOR_STATES` distinct values at one step."""
        carry, multiplicity = self._initial_carry(), np.ones(1, dtype=object)
        for i, size in enumerate(self._token_sizes(token_sizes)):
            carry, parents, _ = self._extend(carry, len(multiplicity), i, size)
            first, multiplicity = _distinct_carries(carry, multiplicity[parents])
            carry = jax.tree_util.tree_map(partial(np.take, indices=_padded(first), axis=0), carry)
            if len(multiplicity) > MAX_SECTOR_STATES:
                raise ValueError(
                    f"{type(self).__name__} reaches {len(multiplicity)} distinct carries at token {i}: too many to "
                    f"count"
                )
        return int(multiplicity.sum())

    def sector(self, token_sizes: Sequence[int] | None = None, *, max_states: int = MAX_SECTOR_STATES) -> np.ndarray:
        """Every token-value configuration the constraint allows, (D, n_sites), in lexicographic order (token 0
        most significant).

        Breadth first over the masks, one vectorised step per token. The look-ahead contract (no reachable prefix
        has an empty mask, checked here) makes every kept prefix extend to a configuration, so no step holds more
        than D prefixes; the configurations are assembled from the per-step parent indices at the end. Refuses
        (ValueError) sectors larger than `max_states`, counted first (`count`)."""
        sizes = self._token_sizes(token_sizes)
        n_states = self.count(sizes)
        if n_states > max_states:
            raise ValueError(f"the sector has {n_states} configurations, more than {max_states} to enumerate")
        carry, n, steps = self._initial_carry(), 1, []
        for i, size in enumerate(sizes):
            carry, parents, values = self._extend(carry, n, i, size)
            n = len(parents)
            steps.append((parents, values))
        out = np.empty((n_states, self.n_sites), dtype=np.min_scalar_type(max(sizes) - 1))
        row = np.arange(n_states)
        for i in range(self.n_sites - 1, -1, -1):
            parents, values = steps[i]
            out[:, i] = values[row]
            row = parents[row]
        return out

    def permuted(self, order) -> Constraint:
        """The same constraint for values generated in the site order `order` (a permutation)."""
        raise NotImplementedError(f"{type(self).__name__} does not support reordering")

    @abc.abstractmethod
    def describe(self) -> dict:
        """JSON-serialisable description, stored in result files."""


@dataclass(frozen=True)
class U1Constraint(Constraint):
    """Fixed total charge Σ_i q(s_i) = total, with an integer charge per local value.

    The zero-magnetisation sector of spin-1/2 in NetKet's default ordering (index 0 = σᶻ=+1) is
    `U1Constraint(N, charges=(1, -1), total=0)`; spin-1 uses charges (2, 0, -2) in units of ħ/2.

    The mask allows value s at step i iff the remaining total, total - (Σ_{j<i} q_j + q_s), can be
    reached by the N-i-1 sites still to come. Reachability is a table computed once by dynamic
    programming, so the mask is exact for any integer charges (including parity restrictions).
    A constraint no configuration satisfies (e.g. zero magnetisation on an odd number of spin-1/2
    sites) raises `ValueError` at construction.
    """

    n_sites: int
    charges: tuple[int, ...] = (1, -1)
    total: int = 0
    _reach: np.ndarray = field(init=False, repr=False, compare=False, hash=False)
    _offset: int = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self):
        if int(self.n_sites) < 1:
            raise ValueError(f"U1Constraint needs n_sites >= 1, got {self.n_sites}")
        charges = tuple(int(q) for q in self.charges)
        if len(charges) < 1:
            raise ValueError("U1Constraint needs at least one local value")
        object.__setattr__(self, "charges", charges)
        object.__setattr__(self, "n_sites", int(self.n_sites))
        object.__setattr__(self, "total", int(self.total))
        qmax = max(abs(q) for q in charges)
        offset = qmax * self.n_sites
        width = 2 * offset + 1
        # reach[k, t + offset]: can k sites add up to t?
        reach = np.zeros((self.n_sites + 1, width), dtype=bool)
        reach[0, offset] = True
        for k in range(1, self.n_sites + 1):
            for q in charges:
                reach[k] |= np.roll(reach[k - 1], q)  # no wrap-around: |sums| <= qmax*k
        object.__setattr__(self, "_reach", reach)
        object.__setattr__(self, "_offset", offset)
        if abs(self.total) > offset or not reach[self.n_sites, self.total + offset]:
            raise ValueError(
                f"no configuration of {self.n_sites} sites with charges {charges} has total {self.total}"
                " (e.g. zero magnetisation needs an even number of spin-1/2 sites)"
            )

    @property
    def local_size(self) -> int:  # type: ignore[override]
        return len(self.charges)

    def _allowed(self, partial, remaining):
        q = jnp.asarray(self.charges)
        need = self.total - (partial[..., None] + q)  # charge the remaining sites must supply
        idx = jnp.clip(need + self._offset, 0, self._reach.shape[1] - 1)
        inside = jnp.abs(need) <= self._offset
        return jnp.asarray(self._reach)[remaining[..., None], idx] & inside

    def init_carry(self, batch: int):
        return jnp.zeros((batch,), dtype=jnp.int32)

    def mask(self, carry, i):
        remaining = jnp.broadcast_to(self.n_sites - 1 - jnp.asarray(i, jnp.int32), carry.shape)
        return self._allowed(carry, remaining)

    def update(self, carry, s, i):
        return carry + jnp.asarray(self.charges, jnp.int32)[jnp.asarray(s, jnp.int32)]

    def masks(self, s):
        s = jnp.asarray(s, jnp.int32)
        q = jnp.asarray(self.charges, jnp.int32)[s]
        partial = jnp.cumsum(q, axis=-1) - q  # exclusive prefix sums
        remaining = jnp.broadcast_to(self.n_sites - 1 - jnp.arange(self.n_sites), partial.shape)
        return self._allowed(partial, remaining)

    def is_satisfied(self, s):
        s = jnp.asarray(s, jnp.int32)
        return jnp.sum(jnp.asarray(self.charges, jnp.int32)[s], axis=-1) == self.total

    def count(self, token_sizes: Sequence[int] | None = None) -> int:
        """Σ_i q(s_i) = total counted exactly: the coefficient of x^total in Π_t Σ_{s<D_t} x^{q_s}, by the same dynamic
        programming over partial sums as the reach table, with integer multiplicities (e.g. C(N, N/2) for zero
        magnetisation) — huge sectors are counted without enumeration."""
        sizes = self._token_sizes(token_sizes)
        ways = np.zeros(self._reach.shape[1], dtype=object)
        ways[self._offset] = 1
        for size in sizes:
            ways = sum(np.roll(ways, q) for q in self.charges[:size])  # no wrap-around: |sums| <= qmax * N
        return int(ways[self.total + self._offset])

    def permuted(self, order) -> U1Constraint:
        as_permutation(order, self.n_sites)
        return self

    def describe(self) -> dict:
        return {"type": "U1Constraint", "n_sites": self.n_sites, "charges": list(self.charges), "total": self.total}


def zero_magnetization(n_sites: int) -> U1Constraint:
    """Σ_i σᶻ_i = 0 for spin-1/2 in NetKet's default local ordering (index 0 = up, 1 = down)."""
    return U1Constraint(n_sites, charges=(1, -1), total=0)
