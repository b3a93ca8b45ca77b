"""Spinful fermions: mode order, orbital tokens, number sectors, and second-quantised terms built into NetKet and
QuTiP operators by two independent code paths.

Modes follow NetKet's `SpinOrbitalFermions(n_orbitals, s=1/2)`: the spin-down block first,

    mode(i, ↓) = i,   mode(i, ↑) = L + i        (L = n_orbitals),

and the Jordan–Wigner order is the mode order: c_m |n_0 … n_{2L−1}⟩ = (−1)^{Σ_{m'<m} n_m'} n_m |… n_m − 1 …⟩ (NetKet's
`FermionOperator2nd`, QuTiP's `fdestroy(2L, m)`; equal signs are tested). The token of orbital i is its two modes
(↓, ↑), value v = 2 n_i↓ + n_i↑ ∈ {0 (empty), 1 (↑), 2 (↓), 3 (↑↓)}; the N↑, N↓ sector is a
`nqs.multi_u1.MultiU1Constraint` on these tokens (`spin_sector`; both from `nqs.fermion_sectors`).

A term is (coefficient, ((mode, dagger), ...)), the product of c†_m (dagger True) and c_m read left to right, e.g.
(−t, ((0, True), (1, False))) = −t c†_0 c_1.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from functools import reduce

import netket as nk
import numpy as np
import qutip

from nqs.fermion_sectors import DOWN_CHARGE, UP_CHARGE, orbital_tokens, spin_sector

__all__ = ["DOWN", "DOWN_CHARGE", "UP", "UP_CHARGE", "FermionTerm", "conventions", "double_occupancy", "hopping",
           "mode", "number", "orbital_tokens", "spin_sector", "spinful_hilbert", "to_netket", "to_qutip"]

# NetKet 3.23 advises, at an operator's first use, a number-conserving operator class "for a Hilbert space with a fixed
# number of fermions" even on the unconstrained space these builders use (where that class does not apply)
warnings.filterwarnings("ignore", message=r"\s*WARNING: Initializing `netket.operator.FermionOperator2nd` for")

FermionTerm = tuple[complex, tuple[tuple[int, bool], ...]]

UP, DOWN = 1, -1
MODE_ORDER = ("NetKet SpinOrbitalFermions(n_orbitals=L, s=1/2): mode i = orbital i spin down, mode L + i = orbital i "
              "spin up (spin-down block first); occupation 0/1 per mode")
JORDAN_WIGNER = "Jordan-Wigner string over all modes before m in mode order: c_m carries (-1)^(sum_{m'<m} n_m')"
TOKENS = "one token per orbital: modes (i down, i up), value 2*n_down + n_up (0 empty, 1 up, 2 down, 3 double)"


def spinful_hilbert(n_orbitals: int) -> nk.hilbert.SpinOrbitalFermions:
    """NetKet's unconstrained spin-1/2 orbital space (number sectors are `Constraint`s, see the module docstring)."""
    if int(n_orbitals) < 1:
        raise ValueError(f"need at least one orbital, got {n_orbitals}")
    return nk.hilbert.SpinOrbitalFermions(int(n_orbitals), s=0.5)


def mode(n_orbitals: int, orbital: int, spin: int) -> int:
    """The Hilbert mode of (orbital, spin) with spin = +1 (↑) or −1 (↓): orbital + L·[spin = ↑]."""
    if spin not in (UP, DOWN):
        raise ValueError(f"spin must be +1 (up) or -1 (down), got {spin}")
    if not 0 <= orbital < n_orbitals:
        raise ValueError(f"orbital {orbital} outside 0..{n_orbitals - 1}")
    return orbital + (n_orbitals if spin == UP else 0)


def hopping(n_orbitals: int, i: int, j: int, amplitude: complex, spin: int) -> list[FermionTerm]:
    """amplitude c†_iσ c_jσ + h.c. (i ≠ j)."""
    a, b = mode(n_orbitals, i, spin), mode(n_orbitals, j, spin)
    return [(amplitude, ((a, True), (b, False))), (np.conj(amplitude), ((b, True), (a, False)))]


def number(n_orbitals: int, i: int, spin: int, coefficient: float = 1.0) -> list[FermionTerm]:
    """coefficient · n_iσ."""
    m = mode(n_orbitals, i, spin)
    return [(coefficient, ((m, True), (m, False)))]


def double_occupancy(n_orbitals: int, i: int, coefficient: float = 1.0) -> list[FermionTerm]:
    """coefficient · n_i↑ n_i↓."""
    u, d = mode(n_orbitals, i, UP), mode(n_orbitals, i, DOWN)
    return [(coefficient, ((u, True), (u, False), (d, True), (d, False)))]


def _is_real(terms: Sequence[FermionTerm]) -> bool:
    return all(np.imag(c) == 0 for c, _ in terms)


def to_netket(hilbert: nk.hilbert.SpinOrbitalFermions, terms: Sequence[FermionTerm], constant: float = 0.0):
    """Σ_terms c Π ops as one NetKet `FermionOperator2nd` (real dtype when every coefficient is real)."""
    dtype = np.float64 if _is_real(terms) and np.imag(constant) == 0 else np.complex128
    ops = [[[int(m), int(dag)] for m, dag in product] for _, product in terms]
    weights = [complex(c) if dtype == np.complex128 else float(np.real(c)) for c, _ in terms]
    return nk.operator.FermionOperator2nd(hilbert, ops, weights, constant=constant, dtype=dtype)


def to_qutip(n_modes: int, terms: Sequence[FermionTerm], constant: float = 0.0) -> qutip.Qobj:
    """The same sum from QuTiP's Jordan–Wigner `fdestroy`/`fcreate` (mode 0 most significant, as NetKet's basis)."""
    destroy = [qutip.fdestroy(n_modes, m) for m in range(n_modes)]
    total = constant * qutip.qeye([2] * n_modes)
    for coeff, product in terms:
        factors = [destroy[m].dag() if dag else destroy[m] for m, dag in product]
        total = total + coeff * reduce(lambda a, b: a * b, factors)
    return total


def conventions(boundary: str | None, **extra) -> dict:
    """The conventions every spinful-fermion System records."""
    out = {"mode_order": MODE_ORDER, "jordan_wigner": JORDAN_WIGNER, "tokens": TOKENS,
           "token_values": "2*n_down + n_up"}
    if boundary is not None:
        out["boundary"] = boundary
    return {**out, **extra}
