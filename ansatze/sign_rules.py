"""Sign rules built into an ansatz, as an alternative to rotating the Hamiltonian.

The Marshall rule (Marshall, Proc. R. Soc. A 232, 48 (1955)): on a bipartite lattice with sublattices
A and B, the ground state of the nearest-neighbour Heisenberg antiferromagnet has
sign ψ(x) = (−1)^{N_↑^B(x)}, N_↑^B the number of up spins (σᶻ = +1) on sublattice B. A model with
``sign_sites`` = the sites of B multiplies its amplitude by that factor, log ψ(x) += iπ N_↑^B(x). |ψ|² and
hence the autoregressive conditionals and exact sampling are unchanged; the factor enters every log ψ
used for local energies. This is equivalent to `hamiltonians.heisenberg(..., marshall=True)`, which
rotates the Hamiltonian instead (tested to agree).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import netket as nk
import numpy as np


def check_sign_sites(hilbert, sites: Sequence[int] | None) -> tuple[int, ...] | None:
    """Validated, hashable site indices of the sign rule (None: no sign rule).

    Raises ValueError for a Hilbert space that is not spin-½, or indices outside [0, N) or repeated.
    """
    if sites is None:
        return None
    sites = tuple(int(i) for i in sites)
    if not isinstance(hilbert, nk.hilbert.Spin) or hilbert.local_size != 2:
        raise ValueError(f"a Marshall sign rule needs a spin-1/2 Hilbert space, got {hilbert}")
    if len(set(sites)) != len(sites) or any(i < 0 or i >= hilbert.size for i in sites):
        raise ValueError(f"sign_sites must be distinct indices in [0, {hilbert.size}), got {sites}")
    return sites


def marshall_phase(x: jax.Array, sites: tuple[int, ...]) -> jax.Array:
    """π N_↑(x) over `sites`, for configurations x (..., N) with values ±1."""
    return jnp.pi * jnp.sum(x[..., np.asarray(sites, dtype=int)] > 0, axis=-1)


def sublattice_b(graph: nk.graph.AbstractGraph) -> tuple[int, ...]:
    """Sites of the second sublattice of a bipartite NetKet graph (site 0 is on sublattice A).

    Raises ValueError if the nearest-neighbour bonds do not join the two colours of a 2-colouring.
    """
    colour = np.full(graph.n_nodes, -1)
    colour[0] = 0
    adjacency = graph.adjacency_list()
    stack = [0]
    while stack:
        i = stack.pop()
        for j in adjacency[i]:
            if colour[j] < 0:
                colour[j] = 1 - colour[i]
                stack.append(j)
            elif colour[j] == colour[i]:
                raise ValueError("the graph is not bipartite (odd cycle, e.g. an odd periodic length)")
    if (colour < 0).any():
        raise ValueError("the graph is not connected")
    return tuple(int(i) for i in np.flatnonzero(colour == 1))
