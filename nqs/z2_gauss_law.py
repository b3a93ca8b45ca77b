"""Gauss's law of the 2D Z2 lattice gauge theory (the star constraint of the toric code) as a `Constraint` over
vertex blocks.

Lattice and blocks. An Lx×Ly torus; vertex v = (x, y) has the raster index v = y·Lx + x and owns its two outgoing
links (v, x̂) → Hilbert mode 2v and (v, ŷ) → mode 2v + 1. Block v is one token of 4 values u = 2a + b (a, b the
local indices of its x- and y-link, the first mode most significant: `nqs.tokens.TokenMap`). In the σˣ basis local
index 0 ↔ σˣ = +1 and 1 ↔ σˣ = −1, so a link carries the bit n_l with σˣ_l = (−1)^{n_l}.

Laws. The star A_v = Π_{l∋v} σˣ_l = σˣ_{v,x̂} σˣ_{v,ŷ} σˣ_{v−x̂,x̂} σˣ_{v−ŷ,ŷ} with target g_v = ±1 reads, over GF(2),

    n_{v,x̂} ⊕ n_{v,ŷ} ⊕ n_{v−x̂,x̂} ⊕ n_{v−ŷ,ŷ} = (1 − g_v)/2.

Optionally the topological sector is fixed too: the winding parities of the σˣ = −1 loops,

    W_x = Π_y σˣ_{(0,y),x̂}  (the x-links crossing the vertical cut between columns 0 and 1),
    W_y = Π_x σˣ_{(x,0),ŷ}  (the y-links crossing the horizontal cut between rows 0 and 1),

which, on configurations with every A_v fixed, do not depend on the cut (a star moves a cut by one column or row).
Every product of stars is a product of σˣ over the coboundary of a vertex set, and Π_v A_v = 1 identically (every
link belongs to two stars), so the targets are consistent iff Π_v g_v = +1; the windings are independent of the
stars. Sector sizes: 2^(2N) / 2^(N−1) = 2^(N+1) configurations with every A_v fixed (all four topological sectors)
and 2^(N−1) in one topological sector, N = Lx·Ly.

Masks and look-ahead. The laws are affine over GF(2): A n = t with A (n_laws × 2N) and targets t. The carry is the
vector of pending parities r = t ⊕ A n_prefix, what the links still to come must supply to every law (zero for
every law whose support is complete). A prefix has a completion iff r lies in the column space of the blocks still
to come, i.e. y·r = 0 for every y in the left null space K_i of those columns. K_{i−1} ⊆ K_i and dim K_i − dim
K_{i−1} ≤ 2 (block i has two columns), so step i checks at most two new parities y_{i,k}·(r ⊕ A_i u) = 0, tables
computed once at construction by Gaussian elimination over GF(2) backwards through the generation order. These
checks include every law that closes at step i (its support complete: with PBC the first row and column close on
later blocks) and the global identities (Π_v A_v = 1 makes the last star automatic), so the mask allows exactly the
values that keep a completion: no reachable prefix is a dead end, in any generation order (`permuted`). Every
consistent prefix has the same number of completions (an affine space), so uniform conditionals over the allowed
values sample the sector uniformly: the exact toric-code ground state (``../shared/notes/ansatze.md`` §7).
Construction raises ValueError for a target pattern no configuration satisfies (Π_v g_v = −1).

References: Kitaev, Ann. Phys. 303, 2 (2003) (toric code); the gauge-block masking of Luo, Chen, Hu, Zhao, Hur,
Clark, PRR 5, 013216 (2023); ``../shared/notes/models.md`` A.8.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import jax.numpy as jnp
import numpy as np

from nqs.constraint import Constraint, as_permutation

BITS = 2  # links per vertex block: (v, x̂) and (v, ŷ)


def star_modes(Lx: int, Ly: int, v: int) -> tuple[int, int, int, int]:
    """The Hilbert modes of the four links of the star at vertex v: (v, x̂), (v, ŷ), (v − x̂, x̂), (v − ŷ, ŷ)."""
    x, y = v % Lx, v // Lx
    left, down = (x - 1) % Lx + y * Lx, x + ((y - 1) % Ly) * Lx
    return 2 * v, 2 * v + 1, 2 * left, 2 * down + 1


def winding_modes(Lx: int, Ly: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The modes of W_x (x-links of column 0, crossing the cut between columns 0 and 1) and of W_y (y-links of row 0,
    crossing the cut between rows 0 and 1)."""
    return tuple(2 * y * Lx for y in range(Ly)), tuple(2 * x + 1 for x in range(Lx))


def parity_tables(laws: np.ndarray, order: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The mask tables of the affine GF(2) laws `laws` (n_laws, BITS·n_blocks) for blocks generated in `order`.

    Returns (columns, checks, expected, null):
        columns[i, u]: the laws flipped by value u of the block generated at step i, A_i u (n_blocks, 2^BITS, n_laws);
        checks[i, k]: the parity rows y_{i,k} new at step i (zero rows pad) (n_blocks, BITS, n_laws);
        expected[i, k, u]: y_{i,k}·A_i u, the value y_{i,k}·r must take for u to be allowed (n_blocks, BITS, 2^BITS);
        null: a basis of the left null space of `laws` (y·t = 0 for all of them iff the targets t are consistent).
    """
    n_laws, n_blocks = laws.shape[0], laws.shape[1] // BITS
    values = np.array([[(u >> (BITS - 1 - j)) & 1 for j in range(BITS)] for u in range(2**BITS)], np.int64)
    blocks = laws.reshape(n_laws, n_blocks, BITS).astype(np.int64)
    columns = np.zeros((n_blocks, 2**BITS, n_laws), bool)
    checks = np.zeros((n_blocks, BITS, n_laws), np.int8)
    expected = np.zeros((n_blocks, BITS, 2**BITS), bool)
    basis = np.eye(n_laws, dtype=np.int64)  # rows spanning K_{N−1}: no block left, every parity is checkable
    for i in range(n_blocks - 1, -1, -1):
        block = blocks[:, order[i], :]  # (n_laws, BITS)
        columns[i] = (values @ block.T) % 2
        syndrome = (basis @ block) % 2  # (rows, BITS)
        pivots: list[int] = []
        for c in range(BITS):
            candidates = [r for r in np.flatnonzero(syndrome[:, c]) if r not in pivots]
            if not candidates:
                continue
            p = candidates[0]
            others = np.array([r for r in np.flatnonzero(syndrome[:, c]) if r != p and r not in pivots], np.int64)
            if len(others):
                basis[others] ^= basis[p]
                syndrome[others] ^= syndrome[p]
            pivots.append(p)
        for k, p in enumerate(pivots):
            checks[i, k] = basis[p]
            expected[i, k] = (values @ syndrome[p]) % 2
        basis = np.delete(basis, pivots, axis=0)  # K_{i−1}: the rows blind to block i
    return columns, checks, expected, basis


@dataclass(frozen=True)
class Z2GaussLaw(Constraint):
    """A_v = g_v at every vertex of an L×Ly torus, optionally in one topological sector (module docstring).

    Attributes:
        L: the number of columns Lx (≥ 2).
        Ly: the number of rows (≥ 2); None for a square L×L torus.
        targets: g_v = ±1 for every vertex in raster order v = y·L + x; None for every g_v = +1.
        winding: (W_x, W_y) ∈ {±1}², the topological sector; None for every sector.
        order: the generation order of the vertex blocks (a permutation; step i generates block order[i]); None for
            the raster order 0 … N − 1. Set by `permuted`.
    """

    L: int
    Ly: int | None = None
    targets: tuple[int, ...] | None = None
    winding: tuple[int, int] | None = None
    order: tuple[int, ...] | None = None
    _columns: np.ndarray = field(init=False, repr=False, compare=False, hash=False)
    _checks: np.ndarray = field(init=False, repr=False, compare=False, hash=False)
    _expected: np.ndarray = field(init=False, repr=False, compare=False, hash=False)
    _start: np.ndarray = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self):
        for name in ("L", "Ly"):
            value = getattr(self, name)
            if value is not None and (int(value) != value or int(value) < 2):
                raise ValueError(f"Z2GaussLaw needs a torus of at least 2×2 vertices, got {name}={value}")
        object.__setattr__(self, "L", int(self.L))
        object.__setattr__(self, "Ly", None if self.Ly is None or int(self.Ly) == self.L else int(self.Ly))
        n = self.n_sites
        if self.targets is not None:
            targets = tuple(int(g) for g in self.targets)
            if len(targets) != n or any(g not in (1, -1) for g in targets):
                raise ValueError(f"targets must be {n} values ±1 (g_v for v = y·L + x), got {self.targets}")
            object.__setattr__(self, "targets", None if all(g == 1 for g in targets) else targets)
        if self.winding is not None:
            winding = tuple(int(w) for w in self.winding)
            if len(winding) != 2 or any(w not in (1, -1) for w in winding):
                raise ValueError(f"winding must be (W_x, W_y) with values ±1, or None for every sector; got "
                                 f"{self.winding}")
            object.__setattr__(self, "winding", winding)
        if self.order is not None:
            order = as_permutation(self.order, n)
            object.__setattr__(self, "order", None if order == tuple(range(n)) else order)
        laws, t = self.laws()
        columns, checks, expected, null = parity_tables(laws, self.generation_order)
        if np.any((null @ t) % 2):
            g = self.star_targets()
            raise ValueError(
                f"no configuration satisfies the Z2 Gauss law with targets {list(g)}: Π_v A_v = 1 identically on the "
                f"torus (every link is in two stars), but Π_v g_v = {int(np.prod(g))} (an odd number of Z2 charges)"
            )
        for name, value in (("_columns", columns), ("_checks", checks), ("_expected", expected), ("_start", t)):
            object.__setattr__(self, name, value)

    # -- structure -----------------------------------------------------------------------------------------------
    @property
    def Lx(self) -> int:
        return self.L

    @property
    def rows(self) -> int:
        return self.L if self.Ly is None else self.Ly

    @property
    def n_sites(self) -> int:  # type: ignore[override]
        return self.L * self.rows

    @property
    def local_size(self) -> int:  # type: ignore[override]
        return 2**BITS

    @property
    def generation_order(self) -> tuple[int, ...]:
        return tuple(range(self.n_sites)) if self.order is None else self.order

    def star_targets(self) -> np.ndarray:
        """g_v for every vertex (raster order)."""
        return np.ones(self.n_sites, np.int64) if self.targets is None else np.asarray(self.targets)

    def laws(self) -> tuple[np.ndarray, np.ndarray]:
        """(A, t): the 0/1 law matrix over the 2N link bits (mode order) and the target bits; rows 0 … N − 1 are the
        stars, rows N, N + 1 the windings W_x, W_y when `winding` is set."""
        Lx, Ly, n = self.Lx, self.rows, self.n_sites
        supports = [star_modes(Lx, Ly, v) for v in range(n)]
        signs = list(self.star_targets())
        if self.winding is not None:
            supports += list(winding_modes(Lx, Ly))
            signs += list(self.winding)
        laws = np.zeros((len(supports), 2 * n), np.int64)
        for row, modes in enumerate(supports):
            for m in modes:
                laws[row, m] ^= 1
        return laws, (1 - np.asarray(signs, np.int64)) // 2

    # -- the Constraint contract ---------------------------------------------------------------------------------
    def init_carry(self, batch: int):
        """The pending parities r = t (batch, n_laws): nothing generated yet."""
        return jnp.tile(jnp.asarray(self._start, bool)[None, :], (batch, 1))

    def mask(self, carry, i):
        checks = jnp.asarray(self._checks, jnp.int32)[i]  # (BITS, n_laws)
        parity = (carry.astype(jnp.int32) @ checks.T) % 2  # (B, BITS)
        expected = jnp.asarray(self._expected)[i]  # (BITS, 4)
        return jnp.all(parity[:, :, None].astype(bool) == expected[None], axis=1)

    def update(self, carry, s, i):
        return carry ^ jnp.asarray(self._columns)[i][jnp.asarray(s, jnp.int32)]

    def permuted(self, order) -> Z2GaussLaw:
        current = self.generation_order
        return dataclasses.replace(self, order=tuple(current[i] for i in as_permutation(order, self.n_sites)))

    def describe(self) -> dict:
        return {
            "type": "Z2GaussLaw",
            "L": self.Lx,
            "Ly": self.rows,
            "targets": None if self.targets is None else list(self.targets),
            "winding": None if self.winding is None else list(self.winding),
            "order": None if self.order is None else list(self.order),
            "law": "A_v = prod_{l in star(v)} sigma^x_l = g_v; star(v) = (v,x), (v,y), (v-x,x), (v-y,y)",
            "winding_cuts": "W_x = prod_y sigma^x_{(0,y),x}, W_y = prod_x sigma^x_{(x,0),y}",
            "blocks": "vertex v = y*L + x: token (mode 2v = link (v,x), mode 2v+1 = link (v,y)), x-link most "
                      "significant; local index 0 <-> sigma^x = +1",
        }
