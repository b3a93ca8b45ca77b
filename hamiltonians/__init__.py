"""Builders of physical systems. Each returns an `nqs.System`; none knows anything about ansätze."""

from hamiltonians.lindblad import dissipative_tfi, dissipative_xyz, with_jumps
from hamiltonians.quantum_link import quantum_link
from hamiltonians.quantum_link_2d import quantum_link_2d
from hamiltonians.spins import heisenberg, tfim, xyz
from hamiltonians.z2_gauge import toric_code, z2_gauge

__all__ = ["dissipative_tfi", "dissipative_xyz", "heisenberg", "quantum_link", "quantum_link_2d", "tfim", "toric_code",
           "with_jumps", "xyz", "z2_gauge"]
