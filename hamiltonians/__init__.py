"""Builders of physical systems. Each returns an `nqs.System`; none knows anything about ansätze."""

from hamiltonians.lindblad import dissipative_tfi, dissipative_xyz, with_jumps
from hamiltonians.spins import heisenberg, tfim, xyz

__all__ = ["dissipative_tfi", "dissipative_xyz", "heisenberg", "tfim", "with_jumps", "xyz"]
