"""Builders of physical systems. Each returns an `nqs.System`; none knows anything about ansätze."""

from hamiltonians.anderson import anderson_impurity, star_to_chain
from hamiltonians.fermion_lindblad import auxiliary_impurity, dissipative_hubbard
from hamiltonians.hubbard import hubbard
from hamiltonians.lindblad import dissipative_tfi, dissipative_xyz, with_jumps
from hamiltonians.quantum_link import quantum_link
from hamiltonians.quantum_link_2d import quantum_link_2d
from hamiltonians.spins import heisenberg, tfim, xyz
from hamiltonians.z2_gauge import toric_code, z2_gauge

__all__ = ["anderson_impurity", "auxiliary_impurity", "dissipative_hubbard", "dissipative_tfi", "dissipative_xyz",
           "heisenberg", "hubbard", "quantum_link", "quantum_link_2d", "star_to_chain", "tfim", "toric_code",
           "with_jumps", "xyz", "z2_gauge"]
