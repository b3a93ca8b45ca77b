"""Spinful-fermion sectors on orbital tokens: the ground-layer pieces that builders, samplers and NetKet's constrained
spaces share.

NetKet's `SpinOrbitalFermions(L, s=1/2)` stores the spin-down block first: mode i is orbital i spin down, mode L + i
orbital i spin up. The token of orbital i is its two modes (↓, ↑), value v = 2 n↓ + n↑ (`nqs.tokens.TokenMap`, first
mode most significant), so the charges of the four values are q↑ = (0, 1, 0, 1) and q↓ = (0, 0, 1, 1).
"""

from __future__ import annotations

from nqs.constraint import Constraint
from nqs.multi_u1 import MultiU1Constraint
from nqs.tokens import TokenMap

UP_CHARGE = (0, 1, 0, 1)
DOWN_CHARGE = (0, 0, 1, 1)


def orbital_tokens(n_orbitals: int) -> TokenMap:
    """One token per orbital, its modes (↓, ↑): value 2 n↓ + n↑."""
    return TokenMap(tuple((i, n_orbitals + i) for i in range(n_orbitals)), (2,) * (2 * n_orbitals))


def spin_sector(n_orbitals: int, n_up: int, n_down: int) -> MultiU1Constraint:
    """Fixed N↑ and N↓ on the orbital tokens; ValueError unless 0 ≤ N_σ ≤ L."""
    for name, n in (("n_up", n_up), ("n_down", n_down)):
        if not 0 <= int(n) <= n_orbitals:
            raise ValueError(f"{name} = {n} is outside 0..{n_orbitals} for {n_orbitals} orbitals")
    return MultiU1Constraint(n_orbitals, (UP_CHARGE, DOWN_CHARGE), (int(n_up), int(n_down)), names=("n_up", "n_down"))


def spin_sector_numbers(tokens: TokenMap, constraint: Constraint | None) -> tuple[int, int] | None:
    """(N↓, N↑) — NetKet's `n_fermions_per_spin` order — when `constraint` is `spin_sector` on `orbital_tokens`,
    else None."""
    if not isinstance(constraint, MultiU1Constraint) or constraint.charges != (UP_CHARGE, DOWN_CHARGE):
        return None
    if tokens != orbital_tokens(constraint.n_sites):
        return None
    n_up, n_down = constraint.totals
    return n_down, n_up
