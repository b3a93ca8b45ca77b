"""Exact Jordan–Wigner translation of fermionic operators and systems into spin-1/2 `LocalOperator`s.

The spin methods (the POVM stack, `nqs.povm`, takes NetKet `LocalOperator`s on qubits) see the 2L modes of
`hamiltonians.fermions` as 2L qubits, mode m ↦ qubit m, with the basis map

    occupation n_m = 0 ↔ local index 0 = σᶻ = +1 (|↑⟩),   n_m = 1 ↔ σᶻ = −1 (|↓⟩),   n_m = (1 − Z_m)/2,
    c_m = Z_0 ⋯ Z_{m−1} σ⁺_m,   σ⁺ = |↑⟩⟨↓|            (Jordan & Wigner, Z. Phys. 47, 631 (1928)),

which is NetKet's own sign convention (`FermionOperator2nd`: c_m carries (−1)^{Σ_{m'<m} n_m'}). Both Hilbert spaces
order the basis with mode 0 most significant and local index 0 first, so the matrix of the translated operator equals
the fermionic operator's matrix entry by entry: no permutation, no sign.

A product of k ladder operators is one tensor product Π_m F_m (F_m = the ordered product of the per-operator factors
Z, σ⁺ or σ⁻ on qubit m), so each term becomes one local term on the qubits where F_m is not a multiple of the identity
(strings of an even number of Z cancel): c†_i c_j acts on the qubits i..j, a jump c_m on 0..m.
"""

from __future__ import annotations

import dataclasses
from functools import reduce

import netket as nk
import numpy as np

from nqs.system import System

_IDENTITY = np.eye(2, dtype=complex)
_Z = np.diag([1.0, -1.0]).astype(complex)
_CREATE = np.array([[0, 0], [1, 0]], dtype=complex)  # c† = |n=1⟩⟨n=0| = |↓⟩⟨↑| = σ⁻
_DESTROY = _CREATE.T.copy()  # c = σ⁺
# The rotation R with R s_a = t_a from the tetrahedron of `nqs.povm.POVM.tetrahedral` (s_0 = ẑ) to the cube vertices
# t_a = (1, 1, 1), (1, −1, −1), (−1, 1, −1), (−1, −1, 1) (/√3): R = ¾ Σ_a t_a s_aᵀ (Σ_a s_a s_aᵀ = (4/3)·1). An
# occupied mode is σᶻ = −1, where the standard tetrahedron gives P(a = 0) = (1 − s_0^z)/4 = 0 and log P = −∞; on the
# cube vertices |s_a^z| = 1/√3 and every outcome of an empty or occupied mode has P ∈ [0.106, 0.394].
_S = np.array([[0.0, 0.0, 1.0], [2 * np.sqrt(2) / 3, 0.0, -1 / 3], [-np.sqrt(2) / 3, np.sqrt(2 / 3), -1 / 3],
               [-np.sqrt(2) / 3, -np.sqrt(2 / 3), -1 / 3]])
_T = np.array([[1.0, 1.0, 1.0], [1.0, -1.0, -1.0], [-1.0, 1.0, -1.0], [-1.0, -1.0, 1.0]]) / np.sqrt(3)
BALANCED_TETRAHEDRON_ROTATION = 0.75 * _T.T @ _S
SPIN_MAP = ("Jordan-Wigner qubits: mode m -> qubit m; n_m = 0 <-> sigma^z = +1 (local index 0), n_m = 1 <-> "
            "sigma^z = -1; c_m = Z_0...Z_{m-1} sigma^+_m; n_m = (1 - Z_m)/2")


def _term_factors(n_modes: int, product) -> list[np.ndarray]:
    """The per-qubit factors F_m of one product of ladder operators (read left to right)."""
    factors = [_IDENTITY] * n_modes
    for m, dagger in product:
        for k in range(m):
            factors[k] = factors[k] @ _Z
        factors[m] = factors[m] @ (_CREATE if dagger else _DESTROY)
    return factors


def _reduce_factors(factors: list[np.ndarray]) -> tuple[complex, tuple[int, ...]]:
    """(c, support): the product of the multiples c_m of the identity among the F_m (0 when a factor vanishes) and the
    qubits whose factor is not a multiple of the identity."""
    coefficient, support = 1.0 + 0j, []
    for m, f in enumerate(factors):
        if abs(f[0, 1]) == 0 and abs(f[1, 0]) == 0 and f[0, 0] == f[1, 1]:
            coefficient *= f[0, 0]
        else:
            support.append(m)
    return coefficient, tuple(support)


def jordan_wigner_spin_operator(operator, hilbert: nk.hilbert.Spin | None = None, *,
                                single_term: bool = False) -> nk.operator.LocalOperator:
    """The exact Jordan–Wigner image of a NetKet `FermionOperator2nd` on `Spin(1/2, n_modes)` (module docstring):

        c_m ↦ Z_0 ⋯ Z_{m−1} σ⁺_m,   c†_m ↦ Z_0 ⋯ Z_{m−1} σ⁻_m,   its dense matrix equal to the fermionic one.

    Each product of ladder operators becomes one local term; with `single_term` all of them are embedded in one dense
    term on the union of their qubits (the POVM Lindbladian takes a jump operator only as one local term; keep it off
    for Hamiltonians, whose terms should stay few-body). Real coefficients give a float operator.
    """
    n_modes = operator.hilbert.size
    if operator.hilbert.local_size != 2:
        raise ValueError(f"expected a fermionic operator on occupation modes (local size 2), got {operator.hilbert}")
    hilbert = hilbert or nk.hilbert.Spin(0.5, n_modes)
    if hilbert.size != n_modes or hilbert.local_size != 2:
        raise ValueError(f"the spin space {hilbert} does not have the operator's {n_modes} two-level modes")
    constant, terms = 0j, []
    for product, weight in operator.operators.items():
        factors = _term_factors(n_modes, product)
        c, support = _reduce_factors(factors)
        if c == 0:
            continue
        if not support:
            constant += complex(weight) * c
        else:
            terms.append((complex(weight) * c, factors, support))
    if single_term and terms:
        union = tuple(sorted(set().union(*(s for _, _, s in terms))))
        matrix = sum(w * reduce(np.kron, [f[m] for m in union]) for w, f, _ in terms)
        matrices = [(union, matrix)]
    else:
        matrices = [(s, w * reduce(np.kron, [f[m] for m in s])) for w, f, s in terms]
    real = all(np.isreal(m).all() for _, m in matrices) and np.imag(constant) == 0
    dtype = np.float64 if real else np.complex128
    cast = (lambda x: np.real(x)) if real else (lambda x: x)
    return nk.operator.LocalOperator(hilbert, [cast(m) for _, m in matrices], [list(s) for s, _ in matrices],
                                     constant=cast(constant), dtype=dtype)


def jordan_wigner_system(system: System) -> System:
    """The spinful-fermion `system` on `Spin(1/2, 2L)` qubits: Hamiltonian, observables and jump operators translated by
    `jordan_wigner_spin_operator` (each jump as one local term, as the POVM stack needs), the QuTiP form unchanged
    (the same matrices in the same basis, so `nqs.exact.check_operators` compares the translation with QuTiP's
    `fdestroy`). The qubits are the Hilbert modes in the fermionic mode order (module docstring); the result has no
    lattice graph and no token map (one token per qubit). ValueError for a system with a constraint (a number sector
    on orbital tokens has no meaning on the qubits; the open fermion systems are unconstrained).
    """
    if system.constraint is not None:
        raise ValueError("jordan_wigner_system translates unconstrained systems (open systems change the particle "
                         f"number); {system.builder} carries the constraint {system.constraint.describe()}")
    hilbert = nk.hilbert.Spin(0.5, system.n_sites)
    return dataclasses.replace(
        system,
        builder=f"{system.builder}+hamiltonians.jordan_wigner_system",
        hilbert=hilbert,
        hamiltonian=jordan_wigner_spin_operator(system.hamiltonian, hilbert),
        observables={k: jordan_wigner_spin_operator(o, hilbert) for k, o in system.observables.items()},
        jump_operators=tuple(jordan_wigner_spin_operator(o, hilbert, single_term=True)
                             for o in system.jump_operators),
        graph=None,
        tokens=None,
        conventions={**system.conventions, "spin_map": SPIN_MAP},
    )
