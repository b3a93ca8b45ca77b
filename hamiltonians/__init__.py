"""Builders of physical systems. Each returns an `nqs.System`; none knows anything about ansätze."""

from hamiltonians.spins import heisenberg, tfim, xyz

__all__ = ["heisenberg", "tfim", "xyz"]
