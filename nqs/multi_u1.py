"""Several U(1) charges conserved at once: Σ_i q^(c)(s_i) = N_c for every charge c.

The sector of spinful fermions with fixed N↑ and N↓ is the example: one token per orbital whose value
v = 2 n↓ + n↑ (`hamiltonians.fermions.orbital_tokens`) carries the charges q^↑ = (0, 1, 0, 1) and q^↓ = (0, 0, 1, 1).
A single total (N = N↑ + N↓, or S^z alone) is a `nqs.constraint.U1Constraint`; two or more need this class, because
the per-charge masks of two `U1Constraint`s do not compose (a value allowed by each charge's look-ahead separately can
leave no joint completion).

The mask allows value s at step i iff the vector still needed, N − (Σ_{j<i} q(s_j) + q(s)), is a sum of N − i − 1
charge vectors; reachability is a table over (remaining sites, needed vector) built once by dynamic programming, so the
look-ahead is exact for any integer charges.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import jax.numpy as jnp
import numpy as np

from nqs.constraint import Constraint, as_permutation

MAX_REACH_ENTRIES = 2**27  # the reach table's size limit (booleans)


@dataclass(frozen=True)
class MultiU1Constraint(Constraint):
    """Fixed totals of several integer charges, Σ_i charges[c][s_i] = totals[c] for every c.

    Attributes:
        n_sites: the number of tokens.
        charges: one tuple per conserved charge, giving the charge of every local value (all of equal length, the
            number of local values).
        totals: the required total of every charge.
        names: optional names of the charges (e.g. ``("n_up", "n_down")``), stored in `describe()`.

    ValueError at construction when no configuration reaches the totals.
    """

    n_sites: int
    charges: tuple[tuple[int, ...], ...]
    totals: tuple[int, ...]
    names: tuple[str, ...] = ()
    _reach: np.ndarray = field(init=False, repr=False, compare=False, hash=False)
    _offset: int = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self):
        charges = tuple(tuple(int(q) for q in row) for row in self.charges)
        totals = tuple(int(t) for t in self.totals)
        object.__setattr__(self, "n_sites", int(self.n_sites))
        object.__setattr__(self, "charges", charges)
        object.__setattr__(self, "totals", totals)
        object.__setattr__(self, "names", tuple(str(n) for n in self.names))
        if self.n_sites < 1:
            raise ValueError(f"MultiU1Constraint needs n_sites >= 1, got {self.n_sites}")
        if not charges or len({len(row) for row in charges}) != 1 or len(charges[0]) < 1:
            raise ValueError(f"charges must be one non-empty tuple per charge, all of equal length; got {charges}")
        if len(totals) != len(charges):
            raise ValueError(f"{len(charges)} charges but {len(totals)} totals")
        if self.names and len(self.names) != len(charges):
            raise ValueError(f"{len(charges)} charges but {len(self.names)} names")
        offset = max(abs(q) for row in charges for q in row) * self.n_sites
        width = 2 * offset + 1
        if (self.n_sites + 1) * width ** len(charges) > MAX_REACH_ENTRIES:
            raise ValueError(f"the reach table of {len(charges)} charges on {self.n_sites} sites is too large")
        vectors = np.asarray(charges).T  # (local values, charges)
        reach = np.zeros((self.n_sites + 1,) + (width,) * len(charges), dtype=bool)
        reach[(0,) + (offset,) * len(charges)] = True
        for k in range(1, self.n_sites + 1):
            for q in vectors:  # no wrap-around: |partial sums| <= offset
                reach[k] |= np.roll(reach[k - 1], tuple(q), axis=tuple(range(len(charges))))
        object.__setattr__(self, "_reach", reach)
        object.__setattr__(self, "_offset", offset)
        need = tuple(t + offset for t in totals)
        if any(not 0 <= n < width for n in need) or not reach[(self.n_sites,) + need]:
            raise ValueError(f"no configuration of {self.n_sites} sites with charges {charges} has totals {totals}")

    @property
    def local_size(self) -> int:  # type: ignore[override]
        return len(self.charges[0])

    @property
    def _vectors(self) -> jnp.ndarray:
        return jnp.asarray(np.asarray(self.charges).T, jnp.int32)  # (local values, charges)

    def _allowed(self, partial, remaining):
        """partial (..., charges), remaining (...) -> allowed (..., local values)."""
        need = jnp.asarray(self.totals, jnp.int32) - (partial[..., None, :] + self._vectors)
        inside = jnp.all(jnp.abs(need) <= self._offset, axis=-1)
        idx = jnp.clip(need + self._offset, 0, 2 * self._offset)
        table = jnp.asarray(self._reach)
        index = (jnp.broadcast_to(remaining[..., None], need.shape[:-1]),) + tuple(idx[..., c] for c in
                                                                                  range(len(self.charges)))
        return table[index] & inside

    def init_carry(self, batch: int):
        return jnp.zeros((batch, len(self.charges)), dtype=jnp.int32)

    def mask(self, carry, i):
        remaining = jnp.broadcast_to(self.n_sites - 1 - jnp.asarray(i, jnp.int32), carry.shape[:-1])
        return self._allowed(carry, remaining)

    def update(self, carry, s, i):
        return carry + self._vectors[jnp.asarray(s, jnp.int32)]

    def masks(self, s):
        q = self._vectors[jnp.asarray(s, jnp.int32)]  # (batch, N, charges)
        partial = jnp.cumsum(q, axis=-2) - q
        remaining = jnp.broadcast_to(self.n_sites - 1 - jnp.arange(self.n_sites), partial.shape[:-1])
        return self._allowed(partial, remaining)

    def is_satisfied(self, s):
        q = self._vectors[jnp.asarray(s, jnp.int32)]
        return jnp.all(jnp.sum(q, axis=-2) == jnp.asarray(self.totals, jnp.int32), axis=-1)

    def count(self, token_sizes: Sequence[int] | None = None) -> int:
        """The exact number of configurations: the coefficient of Π_c x_c^{N_c} in Π_t Σ_{s<D_t} Π_c x_c^{q_c(s)},
        by dynamic programming over the partial-sum vectors with integer multiplicities."""
        sizes = self._token_sizes(token_sizes)
        axes = tuple(range(len(self.charges)))
        ways = np.zeros(self._reach.shape[1:], dtype=object)
        ways[(self._offset,) * len(axes)] = 1
        vectors = np.asarray(self.charges).T
        for size in sizes:
            ways = sum(np.roll(ways, tuple(q), axis=axes) for q in vectors[:size])
        return int(ways[tuple(t + self._offset for t in self.totals)])

    def permuted(self, order) -> MultiU1Constraint:
        as_permutation(order, self.n_sites)
        return self

    def describe(self) -> dict:
        desc = {"type": "MultiU1Constraint", "n_sites": self.n_sites, "charges": [list(r) for r in self.charges],
                "totals": list(self.totals)}
        if self.names:
            desc["names"] = list(self.names)
        return desc
