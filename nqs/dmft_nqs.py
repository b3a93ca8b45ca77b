"""A neural-quantum-state impurity solver for the DMFT loop (`nqs.dmft`): the ground state by VMC, the Green's
function from it with the exact Hamiltonian.

For the half-filled impurity model of `nqs.dmft` (an even number of orbitals, ground state in the N↑ = N↓ = L/2
sector) the solver

1. finds the ground state |ψ⟩ of `hamiltonians.anderson_impurity` (Wilson-chain geometry by default, whose couplings
   are local along the autoregressive order) in the (L/2, L/2) sector by VMC (`nqs.vmc.ground_state`) with any
   ansatz of `ansatze.choice`, warm-started from the previous call's parameters (successive DMFT iterations change
   the bath little);
2. evaluates ψ on the whole sector (exact normalisation) and takes E_0 = ⟨ψ|H|ψ⟩;
3. returns the T = 0 Lehmann form with |ψ⟩ in place of the exact ground state,

       G(iω) = ⟨ψ| d (iω − (H − E_0))⁻¹ d† |ψ⟩ + ⟨ψ| d† (iω + (H − E_0))⁻¹ d |ψ⟩,

   with the exact H diagonalised in the N ± 1 sectors (the whole Krylov space of d†|ψ⟩ and d|ψ⟩ at these sizes).

What is approximate: only |ψ⟩ and E_0 (the variational ground state); the excitations are exact. So the solver is a
T = 0 solver — it follows the metallic branch, not the insulating one, which needs the thermal exact solver
(notes D.4) — and is exact when VMC reaches the ground state. The ground state is sampled or summed
(`VMCSettings.n_samples`); the Green's function needs ψ over the whole sector, which bounds the bath size
(`MAX_SECTOR_STATES`). This is the construction of notes G ("NQS ground state + Lanczos/continued fraction in a
restricted excitation space on the chain geometry"), with the restricted space taken complete.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ansatze.choice import AnsatzChoice, build_ansatz
from hamiltonians import fermions as fm
from hamiltonians.anderson import anderson_impurity
from nqs import exact, green
from nqs.dmft import ImpurityProblem, ImpuritySolution
from nqs.vmc import VMCSettings, ground_state

MAX_SECTOR_STATES = 2**14


@dataclasses.dataclass
class NQSSolver:
    """VMC ground state + exact excitations (module docstring). Callable as an `nqs.dmft.Solver`.

    Attributes:
        choice: the ansatz (default: a one-layer Transformer of width 16, with a phase head).
        settings: the VMC settings of the first call (default: 1 500 full-sum steps, SR, lr 0.1 cosine, shift 1e-4:
            relative energy error 5e-10 and |ΔG| 6e-4 at N_b = 3, U = 2D, `tests/test_dmft_nqs.py`).
        geometry: "chain" (Wilson chain, default) or "star".
        seed: seed of the first call's parameters.
        warm_start: start each call from the previous call's parameters.
        warm_steps: VMC steps of a warm-started call (None: those of `settings`).
        last_energy_error: |E_VMC − E_exact|/|E_exact| of the last call in its sector (diagnostic; the exact energy is
            computed because the sector is small).
    """

    choice: AnsatzChoice = dataclasses.field(default_factory=lambda: AnsatzChoice("transformer", features=16))
    settings: VMCSettings = dataclasses.field(default_factory=lambda: VMCSettings(
        n_steps=1500, n_samples=0, learning_rate=0.1, lr_schedule="cosine", lr_final=0.01, solver="sr",
        diag_shift=1e-4))
    geometry: str = "chain"
    seed: int = 0
    warm_start: bool = True
    warm_steps: int | None = 300
    last_energy_error: float | None = dataclasses.field(default=None, repr=False)
    _parameters: Any = dataclasses.field(default=None, repr=False)

    def __call__(self, problem: ImpurityProblem, omega: np.ndarray) -> ImpuritySolution:
        L = len(problem.bath.eps) + 1
        if L % 2:
            raise ValueError(f"the NQS solver works at half filling N_up = N_down = L/2: it needs an even number of "
                             f"orbitals (an odd number of bath sites), got {L}")
        args = {"eps_d": problem.eps_d, "U": problem.U, "eps_k": problem.bath.eps, "V_k": problem.bath.V,
                "geometry": self.geometry}
        sector = anderson_impurity(**args, n_per_spin=(L // 2, L // 2))
        if exact.sector_dimension(sector) > MAX_SECTOR_STATES:
            raise ValueError(f"the (L/2, L/2) sector has more than {MAX_SECTOR_STATES} states: too large for the "
                             "Green's function from the whole sector")
        psi = self._ground_state(sector)
        whole = anderson_impurity(**args)
        operators = whole.to_qutip()
        hamiltonian = operators["H"].data.as_scipy().tocsr()
        energy = float(np.real(np.vdot(psi, hamiltonian @ psi)))
        reference = exact.ground_state(sector).energy
        self.last_energy_error = abs(energy - reference) / abs(reference)
        values = _lehmann(hamiltonian, psi, energy, L, 1j * np.asarray(omega))
        double = float(np.real(np.vdot(psi, operators["observables"]["double_occupancy"].data.as_scipy() @ psi)))
        return ImpuritySolution(values, double)

    def _ground_state(self, system) -> np.ndarray:
        """VMC in the sector, then ψ over the sector, normalised and embedded in the Fock space."""
        model = build_ansatz(self.choice, system)
        previous = self._parameters if self.warm_start else None
        settings = self.settings
        if previous is not None and self.warm_steps is not None:
            settings = dataclasses.replace(settings, n_steps=self.warm_steps)
        outcome = ground_state(system, model, settings, seed=self.seed, progress=False,
                               initial_parameters=None if previous is None else (lambda fresh: previous))
        self._parameters = outcome.state.parameters
        configurations = system.sector_states()
        log_psi = np.asarray(outcome.state.log_value(configurations))
        amplitudes = np.exp(log_psi - log_psi.real.max())
        amplitudes /= np.linalg.norm(amplitudes)
        return exact.embed(system.hilbert, configurations, amplitudes)


def _lehmann(hamiltonian, psi: np.ndarray, energy: float, L: int, z: np.ndarray) -> np.ndarray:
    """⟨ψ|d (z − (H − E))⁻¹ d†|ψ⟩ + ⟨ψ|d† (z + (H − E))⁻¹ d|ψ⟩ for d = d_↑, with H diagonalised in the sectors of
    d†|ψ⟩ and d|ψ⟩ (`nqs.green.sector_indices`)."""
    create = fm.to_qutip(2 * L, [(1.0, ((fm.mode(L, 0, fm.UP), True),))]).data.as_scipy().tocsr()
    indices = green.sector_indices(L)
    out = np.zeros(z.shape, dtype=complex)
    for vector, sign in ((create @ psi, 1.0), (create.conj().T @ psi, -1.0)):
        support = np.flatnonzero(np.abs(vector) > 0)
        if support.size == 0:
            continue
        block_index = next(idx for idx in indices.values() if np.isin(support, idx).all())
        block = hamiltonian[block_index][:, block_index].toarray()
        levels, states = np.linalg.eigh(block)
        weights = np.abs(states.conj().T @ vector[block_index]) ** 2
        out += np.sum(weights / (z[..., None] - sign * (levels - energy)), axis=-1)
    return out
