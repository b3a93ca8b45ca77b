"""Gauss's law of a 1+1D lattice gauge theory as a `Constraint` over gauge blocks.

Block j is one token: the matter site j and the link j → j+1 it owns (`nqs.tokens.TokenMap`). With the link level
ℓ_j = E_j + S ∈ {0, …, 2S} (an integer for every spin S) the Gauss law G_j = Q_j of site j reads

    ℓ_j − ℓ_{j−1} = ρ_j,     ρ_j = q_j + Q_j        (q_j the dynamical charge, Q_j a static one),

so block j is checked at the step that generates it: its level must follow from the previous one. The constraint
is given by two tables over the token values v of every block: the level ℓ_j(v) of the link it holds and the source
ρ_j(v) its matter value puts in site j's Gauss law. The builder fills them for its frame and matter encoding
(`hamiltonians.quantum_link`); the constraint knows nothing else of the model.

Boundaries. *Open*: ℓ_{−1} = ℓ_L is a fixed c-number (the left boundary field) and the last link is free.
*Periodic*: ℓ_{−1} = ℓ_{N−1}; the first block fixes the implied ℓ_{−1} = ℓ_0 − ρ_0 (kept in the carry) and the ring
must close on it.

Look-ahead. A prefix ending with level a at block j may continue only if some completion keeps every level inside
{0, …, 2S} and (periodic) returns to ℓ_{−1}: reach[j, a, t] says whether blocks j+1 … N−1 lead from ℓ_j = a to
ℓ_{N−1} = t, a table computed backwards once at construction (t is the closing level on a ring, a single "any"
column when open). The mask of block j allows v iff its Gauss law holds and reach[j, ℓ_j(v), t] is true, so no
reachable prefix is a dead end (spin-S truncation and the periodic closure included), and sampling stays exact.
Construction raises ValueError when no configuration satisfies the law (e.g. static charges the matter cannot
screen, or a boundary field that no link level can follow).

Reference: the gauge-block masking of Luo, Chen, Hu, Zhao, Hur, Clark, PRR 5, 013216 (2023), with the look-ahead
of ``../shared/notes/ansatze.md`` §7.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jax.numpy as jnp
import numpy as np

from nqs.constraint import Constraint, as_permutation


@dataclass(frozen=True)
class GaussLaw1D(Constraint):
    """ℓ_j − ℓ_{j−1} = ρ_j on a chain of gauge blocks (see the module docstring).

    Attributes:
        levels: levels[j][v] = ℓ_j(v) ∈ {0, …, n_levels − 1}, the link level of token value v of block j.
        sources: sources[j][v] = ρ_j(v), the integer charge (dynamical plus static) site j's Gauss law balances.
        n_levels: 2S + 1, the number of link values.
        left: the level ℓ_L = E_L + S of the fixed left field of an open chain (any integer); None on a ring.
    """

    levels: tuple[tuple[int, ...], ...]
    sources: tuple[tuple[int, ...], ...]
    n_levels: int
    left: int | None = None
    _reach: np.ndarray = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self):
        levels = tuple(tuple(int(a) for a in row) for row in self.levels)
        sources = tuple(tuple(int(r) for r in row) for row in self.sources)
        object.__setattr__(self, "levels", levels)
        object.__setattr__(self, "sources", sources)
        object.__setattr__(self, "n_levels", int(self.n_levels))
        if self.left is not None:
            object.__setattr__(self, "left", int(self.left))
        widths = {len(row) for row in levels + sources}
        if len(levels) < 2 or len(sources) != len(levels) or len(widths) != 1:
            raise ValueError(
                f"GaussLaw1D needs at least two blocks and level and source tables of one width for every block; got "
                f"{len(levels)} level rows, {len(sources)} source rows of widths {sorted(widths)}"
            )
        table = np.asarray(levels)
        if table.min() < 0 or table.max() >= self.n_levels:
            raise ValueError(f"link levels must lie in 0 … {self.n_levels - 1}, got {table.min()} … {table.max()}")
        object.__setattr__(self, "_reach", self._reach_table())
        if not np.asarray(self.mask(self.init_carry(1), 0)).any():
            where = "on the ring" if self.left is None else f"from the left boundary level {self.left}"
            raise ValueError(
                f"no configuration of the {self.n_sites} blocks satisfies the Gauss law {where}: check the static "
                f"charges (the matter must be able to screen them with every link inside its range) and the boundary "
                f"field"
            )

    @property
    def n_sites(self) -> int:  # type: ignore[override]
        return len(self.levels)

    @property
    def local_size(self) -> int:  # type: ignore[override]
        return len(self.levels[0])

    def _reach_table(self) -> np.ndarray:
        """reach[j, a, t]: blocks j+1 … N−1 lead from ℓ_j = a to ℓ_{N−1} = t (t = 0 only, meaning any, when open)."""
        n, L = self.n_sites, self.n_levels
        reach = np.zeros((n, L, L if self.left is None else 1), bool)
        reach[-1] = np.eye(L, dtype=bool) if self.left is None else True
        for j in range(n - 2, -1, -1):
            for a, r in zip(self.levels[j + 1], self.sources[j + 1], strict=True):
                prev = a - r  # the level of link j that block j+1's value a follows
                if 0 <= prev < L:
                    reach[j, prev] |= reach[j + 1, a]
        return reach

    def init_carry(self, batch: int):
        """(ℓ_{j−1}, the closing level ℓ_{−1} on a ring or 0 when open), one row per configuration."""
        previous = 0 if self.left is None else self.left
        return jnp.full((batch,), previous, jnp.int32), jnp.zeros((batch,), jnp.int32)

    def _tables(self, i):
        return jnp.asarray(self.levels, jnp.int32)[i], jnp.asarray(self.sources, jnp.int32)[i]

    def mask(self, carry, i):
        previous, closing = carry
        level, source = self._tables(i)
        reach = jnp.asarray(self._reach)[i]  # (L, T)
        follows = level[None, :] - previous[:, None] == source[None, :]
        if self.left is None:
            implied = level - source  # block 0 fixes ℓ_{−1} = ℓ_{N−1}
            inside = (implied >= 0) & (implied < self.n_levels)
            first = inside & reach[level, jnp.clip(implied, 0, self.n_levels - 1)]
            later = follows & reach[level[None, :], closing[:, None]]
            return jnp.where(jnp.asarray(i) == 0, jnp.broadcast_to(first, later.shape), later)
        return follows & reach[level, 0][None, :]

    def update(self, carry, s, i):
        _, closing = carry
        level, source = self._tables(i)
        s = jnp.asarray(s, jnp.int32)
        if self.left is None:
            closing = jnp.where(jnp.asarray(i) == 0, level[s] - source[s], closing)
        return level[s], closing

    def permuted(self, order) -> GaussLaw1D:
        order = as_permutation(order, self.n_sites)
        if order != tuple(range(self.n_sites)):
            raise ValueError(
                "GaussLaw1D checks block j's law when block j is generated: generate the blocks left to right "
                f"(order 0 … {self.n_sites - 1}), got {list(order)}"
            )
        return self

    def describe(self) -> dict:
        return {"type": "GaussLaw1D", "n_sites": self.n_sites, "n_levels": self.n_levels, "left": self.left,
                "levels": [list(r) for r in self.levels], "sources": [list(r) for r in self.sources]}
