"""Exact impurity Green's functions of small fermion systems by sector-wise full diagonalisation.

The system is a spinful-fermion `System` on its whole Fock space (no constraint, e.g.
``hamiltonians.anderson_impurity(..., n_per_spin=None)``). Its Hamiltonian conserves N↑ and N↓, so the sparse full
operator is cut into (N↑, N↓) blocks, each diagonalised densely; d†_σ connects block (N↑, N↓) to (N↑ + 1, N↓) (σ = ↑)
or (N↑, N↓ + 1) (σ = ↓). Only the blocks holding a populated state and their neighbours are diagonalised completely;
the others only to their lowest level. Up to `MAX_ORBITALS` orbitals (7: blocks ≤ 35² = 1225 states).

The matrices are the System's QuTiP form (`System.to_qutip`, NetKet's basis order), which
`nqs.exact.check_operators` verifies against its NetKet operators: NetKet's JAX `FermionOperator2nd.to_sparse`
compiles anew for every new operator structure (seconds), the QuTiP form is built in milliseconds.

The Green's function G(τ) = −⟨T d_σ(τ) d†_σ⟩ is returned as a sum of poles, G(z) = Σ_p r_p/(z − ε_p),

    G(z) = Σ_i p_i [Σ_f |⟨f|d†|i⟩|²/(z − (E_f − E_i)) + Σ_f |⟨f|d|i⟩|²/(z + (E_f − E_i))],

with p_i the Boltzmann weights e^{−βE_i}/Z (the Lehmann form Z⁻¹ Σ_mn |⟨m|d†|n⟩|² (e^{−βE_n} + e^{−βE_m})/(z − (E_m −
E_n)), written per initial state), or at T = 0 (β = None) the uniform weights of the degenerate ground states over
all sectors ("degeneracy-averaged"; the lowest sector is found by comparing the lowest level of every block).
Fetter & Walecka, Quantum Theory of Many-Particle Systems §31; Georges et al., Rev. Mod. Phys. 68, 13 (1996) §VI.A.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import netket as nk
import numpy as np
import qutip
import scipy.sparse as sp

from hamiltonians import fermions as fm
from nqs.system import System

Sector = tuple[int, int]
MAX_ORBITALS = 7
BOLTZMANN_CUTOFF = 40.0  # states with β(E − E_0) above this (weight < 5e-18) are not populated
DEGENERACY_TOL = 1e-9  # T = 0: states within this of E_0 form the ground multiplet
RESIDUE_CUTOFF = 1e-16  # poles of smaller residue are dropped (Σ r_p = 1: |δG(z)| ≤ n_dropped · 1e-16/|Im z|)


def matsubara_frequencies(beta: float, n: int) -> np.ndarray:
    """The first `n` positive fermionic Matsubara frequencies ω_n = (2n + 1)π/β."""
    if not beta > 0 or n < 1:
        raise ValueError(f"need beta > 0 and n >= 1, got beta = {beta}, n = {n}")
    return (2 * np.arange(n) + 1) * np.pi / beta


def hybridisation(z: np.ndarray | complex, eps_k: np.ndarray, V_k: np.ndarray) -> np.ndarray:
    """Δ(z) = Σ_k V_k²/(z − ε_k), the hybridisation function of a discrete bath (Anderson, Phys. Rev. 124, 41
    (1961))."""
    z = np.asarray(z, dtype=complex)
    eps, hyb = np.asarray(eps_k, dtype=float), np.asarray(V_k, dtype=float)
    return np.sum(hyb**2 / (z[..., None] - eps), axis=-1)


def noninteracting_green(z: np.ndarray | complex, eps_d: float, eps_k: np.ndarray, V_k: np.ndarray) -> np.ndarray:
    """G_0(z) = 1/(z − ε_d − Δ(z)), the impurity Green's function at U = 0."""
    return 1.0 / (np.asarray(z, dtype=complex) - eps_d - hybridisation(z, eps_k, V_k))


def self_energy(z: np.ndarray | complex, green: np.ndarray, eps_d: float, eps_k: np.ndarray, V_k: np.ndarray
                ) -> np.ndarray:
    """Σ(z) = G_0⁻¹(z) − G⁻¹(z) = z − ε_d − Δ(z) − G⁻¹(z) (Dyson equation; includes the Hartree shift U⟨n_σ̄⟩)."""
    return 1.0 / noninteracting_green(z, eps_d, eps_k, V_k) - 1.0 / np.asarray(green)


@dataclasses.dataclass(frozen=True)
class PoleSum:
    """G(z) = Σ_p r_p/(z − ε_p): residues r_p ≥ 0 and real poles ε_p (Lehmann representation)."""

    residues: np.ndarray
    poles: np.ndarray

    def __call__(self, z: np.ndarray | complex) -> np.ndarray:
        """G at the complex frequencies `z` (any shape)."""
        z = np.asarray(z, dtype=complex)
        return np.sum(self.residues / (z[..., None] - self.poles), axis=-1)

    @property
    def weight(self) -> float:
        """Σ_p r_p, the spectral weight: 1 for ⟨{d, d†}⟩ = 1."""
        return float(np.sum(self.residues))


@dataclasses.dataclass(frozen=True)
class ImpurityGreen:
    """An impurity Green's function and what the same diagonalisation gives.

    Attributes:
        green: G_σ(z) as a `PoleSum`.
        energy: E_0, the lowest energy over all (N↑, N↓) sectors.
        ground_sectors: the sectors holding the ground multiplet (states within `DEGENERACY_TOL` of E_0).
        observables: the thermal (β) or ground-multiplet average of every observable of the system.
        beta: the inverse temperature, None for T = 0.
    """

    green: PoleSum
    energy: float
    ground_sectors: tuple[Sector, ...]
    observables: dict[str, float]
    beta: float | None


class LowestSector(NamedTuple):
    """The (N↑, N↓) sector of the lowest level and that energy."""

    sector: Sector
    energy: float


@functools.lru_cache(maxsize=8)
def sector_indices(n_orbitals: int) -> dict[Sector, np.ndarray]:
    """For every (N↑, N↓), the indices of its configurations in the basis order of `fm.spinful_hilbert` (NetKet's
    and QuTiP's: mode 0 most significant; modes 0 … L−1 spin down, L … 2L−1 spin up)."""
    n_modes = 2 * n_orbitals
    occupations = (np.arange(2**n_modes)[:, None] >> np.arange(n_modes - 1, -1, -1)) & 1
    n_down, n_up = occupations[:, :n_orbitals].sum(axis=1), occupations[:, n_orbitals:].sum(axis=1)
    return {(a, b): np.flatnonzero((n_up == a) & (n_down == b))
            for a in range(n_orbitals + 1) for b in range(n_orbitals + 1)}


@functools.lru_cache(maxsize=32)
def _creation(n_orbitals: int, orbital: int, spin: int) -> sp.csr_matrix:
    """d†_σ of (orbital, spin) as a sparse matrix (QuTiP's Jordan–Wigner `fcreate` in the same mode order)."""
    return sp.csr_matrix(qutip.fcreate(2 * n_orbitals, fm.mode(n_orbitals, orbital, spin)).data.as_scipy())


def _real_if_real(matrix: sp.spmatrix) -> sp.csr_matrix:
    """The matrix with real dtype when its imaginary part vanishes (halves the cost of the dense eigensolver)."""
    csr = sp.csr_matrix(matrix)
    return sp.csr_matrix(csr.real) if not np.any(csr.imag.data) else csr


def _orbitals(system: System) -> int:
    """The number of orbitals of a spinful-fermion system on its whole Fock space (ValueError otherwise)."""
    if system.constraint is not None:
        raise ValueError("impurity Green's functions need the whole Fock space: build the system without a "
                         "particle-number sector (n_per_spin=None)")
    hilbert = system.hilbert
    if not isinstance(hilbert, nk.hilbert.SpinOrbitalFermions) or hilbert.n_spin_subsectors != 2:
        raise ValueError(f"expected a spin-1/2 SpinOrbitalFermions space, got {hilbert}")
    n_orbitals = hilbert.size // 2
    if n_orbitals > MAX_ORBITALS:
        raise ValueError(f"{n_orbitals} orbitals: full diagonalisation of the sectors is limited to {MAX_ORBITALS}")
    return n_orbitals


def _blocks(matrix: sp.spmatrix, indices: dict[Sector, np.ndarray]) -> dict[Sector, np.ndarray]:
    """The dense diagonal blocks of a number-conserving operator; ValueError when it connects two sectors."""
    csr = _real_if_real(matrix)
    inside = sum(sp.csr_matrix(csr[idx][:, idx]).nnz for idx in indices.values())
    if inside != csr.nnz:
        raise ValueError("the Hamiltonian does not conserve N_up and N_down")
    return {s: csr[idx][:, idx].toarray() for s, idx in indices.items()}


def _lowest_levels(blocks: dict[Sector, np.ndarray]) -> dict[Sector, float]:
    """The lowest eigenvalue of every block."""
    return {s: float(np.linalg.eigvalsh(h)[0]) for s, h in blocks.items()}


def lowest_sector(system: System) -> LowestSector:
    """The (N↑, N↓) sector holding the lowest level of `system` over its whole Fock space (ties: the first in
    lexicographic order), by the lowest eigenvalue of every sector block."""
    levels = _lowest_levels(_blocks(system.to_qutip()["H"].data.as_scipy(), sector_indices(_orbitals(system))))
    best = min(levels, key=lambda s: (levels[s], s))
    return LowestSector(best, levels[best])


def _window(beta: float | None) -> float:
    """How far above E_0 a state is populated: β(E − E_0) < `BOLTZMANN_CUTOFF`, or the ground multiplet at T = 0."""
    return BOLTZMANN_CUTOFF / beta if beta is not None else DEGENERACY_TOL


def _populations(spectra: dict[Sector, tuple[np.ndarray, np.ndarray]], e0: float, beta: float | None
                 ) -> dict[Sector, np.ndarray]:
    """Normalised weights of the populated eigenstates of every sector (Boltzmann, or uniform over the ground
    multiplet at T = 0), lowest first; sectors without populated states are left out."""
    weights = {}
    for s, (energies, _) in spectra.items():
        excess = energies[energies - e0 < _window(beta)] - e0
        w = np.exp(-beta * excess) if beta is not None else np.ones_like(excess)
        if len(w):
            weights[s] = w
    total = sum(float(np.sum(w)) for w in weights.values())
    return {s: w / total for s, w in weights.items()}


def _neighbour(sector: Sector, spin: int, step: int) -> Sector:
    a, b = sector
    return (a + step, b) if spin == fm.UP else (a, b + step)


def _poles(spectra, populations, create: sp.csr_matrix, indices, spin: int) -> PoleSum:
    """Residues and poles of G_σ from the populated states (module docstring): d† adds, d removes a σ particle."""
    residues, poles = [], []
    for s, weights in populations.items():
        energies, vectors = spectra[s]
        initial, e_i = vectors[:, : len(weights)], energies[: len(weights)]
        for step in (1, -1):
            f = _neighbour(s, spin, step)
            if f not in spectra:
                continue
            e_f, v_f = spectra[f]
            block = create[indices[f]][:, indices[s]] if step == 1 else create[indices[s]][:, indices[f]].T
            amplitude = v_f.conj().T @ (block @ initial)  # ⟨f|d†|i⟩ or ⟨f|d|i⟩
            residues.append((np.abs(amplitude) ** 2 * weights).ravel())
            poles.append((step * (e_f[:, None] - e_i[None, :])).ravel())
    residues, poles = np.concatenate(residues), np.concatenate(poles)
    keep = residues > RESIDUE_CUTOFF
    return PoleSum(residues[keep], poles[keep])


def _averages(observables: dict[str, qutip.Qobj], spectra, populations, indices) -> dict[str, float]:
    """Σ_i p_i ⟨i|O|i⟩ for every observable (number-conserving observables)."""
    out = {}
    for name, op in observables.items():
        matrix = sp.csr_matrix(op.data.as_scipy())
        total = 0.0
        for s, weights in populations.items():
            vectors = spectra[s][1][:, : len(weights)]
            block = matrix[indices[s]][:, indices[s]]
            total += float(np.real(np.sum(weights * np.sum(vectors.conj() * (block @ vectors), axis=0))))
        out[name] = total
    return out


def impurity_green(system: System, *, beta: float | None = None, orbital: int = 0, spin: int = fm.UP
                   ) -> ImpurityGreen:
    """The Green's function of (orbital, spin) of `system` at inverse temperature `beta` (None: T = 0, averaged over
    the degenerate ground states of all sectors), as poles and residues: see the module docstring.

    Raises:
        ValueError: the system is not a spinful-fermion system on its whole Fock space of at most `MAX_ORBITALS`
            orbitals, its Hamiltonian does not conserve N↑ and N↓, or beta ≤ 0.
    """
    if beta is not None and not beta > 0:
        raise ValueError(f"beta must be positive (or None for T = 0), got {beta}")
    n_orbitals = _orbitals(system)
    indices = sector_indices(n_orbitals)
    operators = system.to_qutip()
    blocks = _blocks(operators["H"].data.as_scipy(), indices)
    levels = _lowest_levels(blocks)
    e0 = min(levels.values())
    populated = [s for s, e in levels.items() if e - e0 < _window(beta)]
    needed = {n for s in populated for n in (s, _neighbour(s, spin, 1), _neighbour(s, spin, -1)) if n in blocks}
    spectra = {s: np.linalg.eigh(blocks[s]) for s in needed}
    populations = _populations({s: spectra[s] for s in populated}, e0, beta)
    create = _creation(n_orbitals, orbital, spin)
    ground = tuple(sorted(s for s, e in levels.items() if e - e0 < DEGENERACY_TOL))
    return ImpurityGreen(
        green=_poles(spectra, populations, create, indices, spin),
        energy=e0,
        ground_sectors=ground,
        observables=_averages(operators["observables"], spectra, populations, indices),
        beta=beta,
    )
