"""Lattices shared by the builders: NetKet graphs with nearest and next-nearest-neighbour bond lists.

Sites are numbered as NetKet numbers them: chain site i at x = i; square lattice site x*L + y at
(x, y). Each bond appears once on every lattice size (NetKet's graphs do not double edges; a length-2
direction with PBC behaves as OBC in that direction, and NetKet warns about it).
"""

from __future__ import annotations

import dataclasses
import warnings

import netket as nk
import numpy as np

LATTICES = ("chain", "square")


@dataclasses.dataclass(frozen=True)
class Lattice:
    """A NetKet graph with its bond lists.

    Attributes:
        graph: the NetKet graph (nearest neighbours, plus next-nearest ones when requested).
        nn: nearest-neighbour bonds (i, j), i < j, each once.
        nnn: next-nearest-neighbour bonds, each once, disjoint from `nn`.
        sublattice: 0/1 checkerboard label of each site (meaningful when `bipartite`).
        bipartite: whether the nearest-neighbour bonds join only sites of different sublattices.
        site_order: how lattice coordinates map to site indices.
    """

    graph: nk.graph.AbstractGraph
    nn: tuple[tuple[int, int], ...]
    nnn: tuple[tuple[int, int], ...]
    sublattice: np.ndarray
    bipartite: bool
    site_order: str

    @property
    def n_sites(self) -> int:
        return self.graph.n_nodes


def _bonds(edges) -> tuple[tuple[int, int], ...]:
    return tuple(sorted({(min(i, j), max(i, j)) for i, j in edges}))


def _graph(lattice: str, L: int | tuple[int, int], pbc: bool, order: int):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # length-2 PBC directions: NetKet falls back to OBC, documented above
        if lattice == "chain":
            graph = nk.graph.Chain(L, pbc=pbc, max_neighbor_order=order)
            return graph, np.arange(L)[:, None], "chain: site i at x = i"
        extent = [L, L] if isinstance(L, int) else list(L)
        graph = nk.graph.Grid(extent, pbc=pbc, max_neighbor_order=order)
        coords = np.asarray(graph.positions).round().astype(int)
        return graph, coords, f"square {extent[0]}x{extent[1]}: site x*Ly + y at (x, y), raster order"


def make_lattice(lattice: str, L: int | tuple[int, int], *, pbc: bool, next_nearest: bool = False) -> Lattice:
    """Build the chain (N = L) or the L×L square lattice (an Lx×Ly rectangle for L = (Lx, Ly)), open or periodic.

    Raises ValueError for an unknown lattice name, L ≤ 1, or next-nearest neighbours on a lattice
    too small to have them.
    """
    if lattice not in LATTICES:
        raise ValueError(f"unknown lattice {lattice!r}; choose one of {LATTICES}")
    sides = tuple(L) if isinstance(L, (tuple, list)) and lattice == "square" else (L,)
    if len(sides) not in (1, 2) or not all(isinstance(v, (int, np.integer)) and v > 1 for v in sides):
        raise ValueError(f"lattice size L must be an integer > 1 (or (Lx, Ly) for the square lattice), got {L!r}")
    size = int(sides[0]) if len(sides) == 1 else tuple(int(v) for v in sides)
    try:
        graph, coords, site_order = _graph(lattice, size, pbc, 2 if next_nearest else 1)
    except RuntimeError as err:  # NetKet refuses e.g. a 2-site ring with next-nearest neighbours
        raise ValueError(f"the {lattice} lattice with L={L} has no next-nearest-neighbour bonds ({err})") from err
    if next_nearest:
        nn, nnn = _bonds(graph.edges(filter_color=0)), _bonds(graph.edges(filter_color=1))
        nnn = tuple(b for b in nnn if b not in set(nn))
    else:
        nn, nnn = _bonds(graph.edges()), ()
    sublattice = coords.sum(axis=1) % 2
    bipartite = all(sublattice[i] != sublattice[j] for i, j in nn)
    return Lattice(graph, nn, nnn, sublattice, bipartite, site_order)
