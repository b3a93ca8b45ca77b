"""Generation paths of autoregressive models on an Lx×Ly lattice (used by `ansatze.token_layout`).

Sites keep the numbering of their graph: site (x, y) has Hilbert index x·Ly + y, the numbering of
`nk.graph.Grid(extent=[Lx, Ly])` and `nk.graph.Square(L)`. A model generates the sites along a path
π (π(k) = Hilbert index of the k-th generated site), declared to NetKet through `reorder` /
`inverse_reorder`, so Hamiltonians need no renumbering.

* "chain": π(k) = k (Hilbert order, no lattice needed);
* "raster": rows x = 0..Lx−1 in turn, each left to right; on Grid numbering this is π(k) = k;
* "snake" (boustrophedon): even rows left to right, odd rows right to left (`snake_order`).

With patches of px×py sites (a model token of several sites, field `patch`), the lattice is cut into a
(Lx/px)×(Ly/py) grid of patches; the patches are visited in raster or snake order and the sites of
each patch consecutively, row-major inside the patch: site (X·px + a, Y·py + b) for a = 0..px−1,
b = 0..py−1.
"""

from __future__ import annotations

import functools

import numpy as np


def snake_order(Lx: int, Ly: int) -> np.ndarray:
    """Positions (x, y) of the snake (boustrophedon) path on an Lx×Ly lattice, shape (Lx·Ly, 2).

    Path position k = x·Ly + (y if x is even else Ly − 1 − y): rows x = 0..Lx−1 in turn, even rows
    left to right (increasing y), odd rows right to left (the zigzag path of the 2D RNN of
    Hibat-Allah et al., PRR 2, 023358 (2020)). The Hilbert index of (x, y) is x·Ly + y (the
    `nk.graph.Grid(extent=[Lx, Ly])` numbering), so the Hilbert index of path position k is
    ``order[k, 0] * Ly + order[k, 1]``.
    """
    if int(Lx) < 1 or int(Ly) < 1:
        raise ValueError(f"the lattice needs Lx, Ly >= 1, got ({Lx}, {Ly})")
    pos = []
    for x in range(int(Lx)):
        ys = range(int(Ly)) if x % 2 == 0 else range(int(Ly) - 1, -1, -1)
        pos.extend((x, y) for y in ys)
    return np.asarray(pos, dtype=np.int64)


def raster_order(Lx: int, Ly: int) -> np.ndarray:
    """Positions (x, y) of the raster path (row by row, each left to right), shape (Lx·Ly, 2)."""
    if int(Lx) < 1 or int(Ly) < 1:
        raise ValueError(f"the lattice needs Lx, Ly >= 1, got ({Lx}, {Ly})")
    x, y = np.meshgrid(np.arange(int(Lx)), np.arange(int(Ly)), indexing="ij")
    return np.stack([x.ravel(), y.ravel()], axis=1).astype(np.int64)


def check_shape(shape, n: int, what: str) -> tuple[int, int]:
    """Validates an (Lx, Ly) lattice shape against the number of sites n."""
    if shape is None or len(tuple(shape)) != 2:
        raise ValueError(f"{what} needs shape=(Lx, Ly), got {shape!r}")
    Lx, Ly = (int(v) for v in shape)
    if Lx < 1 or Ly < 1 or Lx * Ly != n:
        raise ValueError(f"shape {tuple(shape)} does not match the {n} sites of the Hilbert space")
    return Lx, Ly


def check_patch(patch, shape: tuple[int, int]) -> tuple[int, int]:
    """Validates a (px, py) patch against the lattice shape (Lx, Ly): positive and dividing it."""
    if len(tuple(patch)) != 2:
        raise ValueError(f"patch must be (px, py), got {patch!r}")
    px, py = (int(v) for v in patch)
    if px < 1 or py < 1:
        raise ValueError(f"patch sizes must be >= 1, got {tuple(patch)}")
    if shape[0] % px or shape[1] % py:
        raise ValueError(f"patch {(px, py)} does not divide the lattice shape {tuple(shape)}")
    return px, py


def patch_order(order: str, shape: tuple[int, int], patch: tuple[int, int] = (1, 1)) -> np.ndarray:
    """Patch-grid positions (X, Y) of the patches in the order they are generated, shape (T, 2), on the
    (Lx/px)×(Ly/py) grid of patches ("raster" or "snake"; a 1×1 patch is a site)."""
    grid = (shape[0] // patch[0], shape[1] // patch[1])
    if order == "raster":
        return raster_order(*grid)
    if order == "snake":
        return snake_order(*grid)
    raise ValueError(f"order must be 'raster' or 'snake' on a lattice, got {order!r}")


@functools.cache
def generation_path(
    order: str, n: int, shape: tuple[int, int] | None = None, patch: tuple[int, int] | None = None
) -> np.ndarray:
    """π: Hilbert index of each path position k (the `reorder` indices), shape (n,).

    "chain" is the identity; "raster"/"snake" visit the patches (default 1×1, i.e. sites) of the
    lattice `shape` in that order and the sites of each patch consecutively, row-major in the patch.
    """
    if order == "chain":
        return np.arange(n)
    Lx, Ly = shape
    px, py = patch or (1, 1)
    within = raster_order(px, py)  # (p, 2), row-major inside a patch
    tokens = patch_order(order, (Lx, Ly), (px, py))  # (T, 2)
    x = tokens[:, None, 0] * px + within[None, :, 0]
    y = tokens[:, None, 1] * py + within[None, :, 1]
    path = (x * Ly + y).reshape(-1)
    assert sorted(path.tolist()) == list(range(n))
    return path
