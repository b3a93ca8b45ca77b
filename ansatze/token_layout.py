"""Generation layout of an autoregressive model: which Hilbert modes each generated token holds, and in what order.

A model generates *physical tokens* (`nqs.tokens.TokenMap`: sites, orbitals, gauge blocks; one per Hilbert mode by
default), the unit its `Constraint` acts on, along a path π (π(k) = index of the k-th generated physical token):

* "chain": π(k) = k;
* "raster" / "snake" on a lattice `shape` = (Lx, Ly) of physical tokens, token (x, y) having index x·Ly + y
  (`nk.graph.Grid(extent=[Lx, Ly])` numbering; `ansatze.lattice.generation_path`);
* a custom permutation (π(0), …, π(n−1)).

With patches (px, py) on a raster/snake lattice path, the p = px·py physical tokens of a patch, generated
consecutively, form one *model token*; otherwise p = 1. Model token t holds the modes of the physical tokens
π(tp), …, π(tp + p − 1) in that order, and its value is the mixed-radix number of its modes' local indices, the first
mode most significant (`TokenMap.grouped`),

    v_t = Σ_j u_j Π_{l>j} D_{π(tp+l)},      u_j ∈ {0, …, D_{π(tp+j)} − 1} the value of its j-th physical token,

because mixed radix composes. Model tokens may have different sizes V_t = Π_j D_{π(tp+j)}; the model works with
V = max_t V_t values and masks the values v ≥ V_t (`valid`).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

from ansatze.lattice import check_patch, check_shape, generation_path, patch_order
from nqs.tokens import TokenMap

ORDERS = ("chain", "raster", "snake")


@dataclasses.dataclass(frozen=True, eq=False)
class TokenLayout:
    """The static tables of a generation layout (module docstring).

    Attributes:
        physical: the physical tokens (the constraint's units), in their own numbering.
        path: π, the physical tokens in generation order, (n_physical,).
        patch_size: p, physical tokens per model token.
        tokens: the model tokens in generation order (a `TokenMap` over the Hilbert modes).
        grid: (gx, gy), the lattice of model tokens, when a lattice `shape` was given; else None.
        coords: (T, 2) grid positions of the model tokens in generation order (with `grid`), else None.
    """

    physical: TokenMap
    path: np.ndarray
    patch_size: int
    tokens: TokenMap
    grid: tuple[int, int] | None
    coords: np.ndarray | None

    @property
    def n_tokens(self) -> int:
        """T, the number of generation steps."""
        return self.tokens.n_tokens

    @property
    def n_values(self) -> int:
        """V = max_t V_t, the width of the model's conditionals."""
        return self.tokens.max_token_size

    @functools.cached_property
    def valid(self) -> np.ndarray:
        """(T, V) bool: v < V_t."""
        return np.arange(self.n_values)[None, :] < np.asarray(self.tokens.token_sizes)[:, None]

    @functools.cached_property
    def physical_values(self) -> np.ndarray:
        """(T, V, p): the values u_j of the p physical tokens of every value v of every model token (mixed radix)."""
        sizes = np.asarray(self.physical.token_sizes)[self.path.reshape(self.n_tokens, self.patch_size)]  # (T, p)
        place = np.concatenate([np.cumprod(sizes[:, :0:-1], axis=1)[:, ::-1], np.ones((len(sizes), 1), int)], axis=1)
        v = np.arange(self.n_values)[None, :, None]
        return (v // place[:, None, :]) % sizes[:, None, :]

    @functools.cached_property
    def mode_path(self) -> np.ndarray:
        """(N,) the Hilbert modes in generation order (the `reorder` indices of NetKet's site interface)."""
        return np.asarray([m for token in self.tokens.modes for m in token])

    @property
    def in_hilbert_order(self) -> bool:
        """The modes are generated in Hilbert order (`reorder` is the identity)."""
        return bool(np.array_equal(self.mode_path, np.arange(len(self.mode_path))))

    @property
    def in_token_order(self) -> bool:
        """The physical tokens are generated in their own order (the constraint needs no `permuted`)."""
        return bool(np.array_equal(self.path, np.arange(len(self.path))))

    @property
    def modes_per_token(self) -> int | None:
        """q when every model token holds q modes, else None."""
        counts = {len(token) for token in self.tokens.modes}
        return counts.pop() if len(counts) == 1 else None

    @functools.cached_property
    def mode_table(self) -> tuple[np.ndarray, np.ndarray]:
        """(modes, places), both (T, q_max): the modes of every model token (padded with mode 0) and their
        place values Π_{l>j} d_l (0 for padding), so v_t = Σ_j s[modes[t, j]] · places[t, j]."""
        q = max(len(token) for token in self.tokens.modes)
        modes = np.zeros((self.n_tokens, q), int)
        places = np.zeros((self.n_tokens, q), int)
        for t, token in enumerate(self.tokens.modes):
            sizes = [self.tokens.mode_sizes[m] for m in token]
            modes[t, : len(token)] = token
            places[t, : len(token)] = [math.prod(sizes[j + 1:]) for j in range(len(token))]
        return modes, places


def _check_order(order, n: int, orders: tuple[str, ...], permutations: bool) -> None:
    allowed = f"one of {orders}" + (f" or a permutation of range({n})" if permutations else "")
    if isinstance(order, str) and order not in orders:
        raise ValueError(f"order must be {allowed}, got {order!r}")
    if not isinstance(order, str) and (not permutations or sorted(order) != list(range(n))):
        raise ValueError(f"order must be {allowed}, got {order!r}")


@functools.cache
def token_layout(
    hilbert, tokens: TokenMap | None, order, shape: tuple[int, int] | None, patch: tuple[int, int] | None,
    orders: tuple[str, ...] = ORDERS, permutations: bool = True,
) -> TokenLayout:
    """The layout of a model on `hilbert` (module docstring); validates the arguments.

    Args:
        hilbert: the NetKet Hilbert space of modes.
        tokens: the physical tokens, or None for one token per mode.
        order: a name in `orders` or a permutation of the physical tokens (a tuple).
        shape: (Lx, Ly) of the lattice of physical tokens, needed by "raster", "snake" and `patch`.
        patch: (px, py) physical tokens per model token (dividing `shape`), or None.
        orders: the named orders the model supports.
        permutations: whether the model supports custom permutations.

    Raises:
        ValueError: tokens that do not cover the Hilbert space, an unknown order, a shape or patch that does not fit.
    """
    physical = TokenMap.of_hilbert(hilbert) if tokens is None else tokens
    if tuple(int(d) for d in hilbert.shape) != physical.mode_sizes:
        raise ValueError(f"the tokens are for modes of sizes {physical.mode_sizes}, but the Hilbert space has "
                         f"{tuple(int(d) for d in hilbert.shape)}")
    n = physical.n_tokens
    _check_order(order, n, orders, permutations)
    named = isinstance(order, str)
    if patch is not None and shape is None:
        raise ValueError(f"patch={patch!r} needs the lattice shape=(Lx, Ly)")
    lattice = None
    if (named and order != "chain") or shape is not None:
        lattice = check_shape(shape, n, f"order={order!r}")
    px, py = 1, 1
    if patch is not None:
        if order not in ("raster", "snake"):
            raise ValueError("patch needs a lattice path: order='raster' or 'snake' with shape=(Lx, Ly)")
        px, py = check_patch(patch, lattice)
    path = generation_path(order, n, lattice, (px, py)) if named else np.asarray(order, dtype=np.int64)
    p = px * py
    grid = coords = None
    if lattice is not None:
        grid = (lattice[0] // px, lattice[1] // py)
        if p > 1:
            coords = patch_order(order, lattice, (px, py))
        else:
            coords = np.stack([path // lattice[1], path % lattice[1]], axis=1)
    model_tokens = physical.grouped(path.reshape(-1, p).tolist())
    return TokenLayout(physical, path, p, model_tokens, grid, coords)
