"""Recording of a variational time evolution next to the exact one, shared by every dynamics method.

At each save time the recorder estimates the energy and every observable of the system on the
variational state, and, when the Hilbert space (for a constrained system: its sector) is small enough to hold a
state vector, the fidelity |⟨ψ_exact(t)|ψ_θ(t)⟩|² with the exact trajectory that starts from the *variational*
initial state and the Loschmidt return rate r(t) = −(1/N) ln|⟨ψ_θ(0)|ψ_θ(t)⟩|² (N tokens: sites, gauge blocks);
given a `manifold` of orthonormal states φ_a (e.g. the degenerate vacua of the pre-quench Hamiltonian) also the rate
into it, r_M(t) = −(1/N) ln Σ_a |⟨φ_a|ψ(t)⟩|² (``manifold_return_rate``), for the variational and the exact state.
The exact series are computed up front on the same grid and written to /exact, so an interrupted
run still has its reference. The result file, resume and checkpoints are the run layer's (`nqs.run.Run`): a
checkpoint holds the current parameters, and as method state the initial parameters (the exact trajectory starts
from them), the method's counters and, for Monte Carlo states, the sampler state, so a resumed run continues with
the same random numbers.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, Unpack

import netket as nk
import numpy as np

from nqs import exact
from nqs.recipes import describe_ansatz
from nqs.run import Rows, Run, RunOptions
from nqs.sector_state import SectorFullSumState
from nqs.system import System

MAX_EXACT_STATES = 2**16


@dataclasses.dataclass
class DynamicsOutcome(Rows):
    """A finished time evolution: the final state, the recorded rows and the exact trajectory (or None)."""

    state: Any
    times: np.ndarray
    rows: list[dict[str, float]]
    exact: Any
    wall_time: float


def open_run(system: System, vstate: Any, method: Mapping[str, Any], seed: int, ansatz: Mapping[str, Any] | None,
             **run: Unpack[RunOptions]) -> Run:
    """The run of a dynamics method (kind "dynamics"), with the ansatz described from the state."""
    return Run(kind="dynamics", system=system, ansatz=describe_ansatz(vstate, ansatz, system), method=method,
               seed=seed, **run)


def check_hilbert(system: System, vstate: Any) -> None:
    """ValueError unless the variational state lives on the system's Hilbert space."""
    if vstate.hilbert != system.hilbert:
        raise ValueError(f"the variational state lives on {vstate.hilbert}, the system on {system.hilbert}")


class DynamicsRecorder:
    """Records one row per save time through the run; `start` restores or starts the run state, `checkpoint`
    saves it at a save point; every dynamics method shares them."""

    @classmethod
    def start(cls, system: System, vstate: Any, times: np.ndarray, run: Run, with_exact: bool, *,
              manifold: np.ndarray | None = None, **extra: Any) -> tuple[DynamicsRecorder, dict[str, Any], int]:
        """(recorder, method state, index of the last save point reached).

        The method state is {"initial": parameters at t = 0, **extra} (extra: counters such as a damping or a step
        count, given with their fresh values) plus, for a Monte Carlo state, its sampler state: the checkpoint's
        when the run resumes, else fresh. The exact trajectory starts from the *initial* variational state; on
        return `vstate` holds the current parameters (and sampler state).
        """
        fresh = {"initial": vstate.parameters, **extra}
        if isinstance(vstate, nk.vqs.MCState):
            fresh["sampler"] = vstate.sampler_state
        checkpoint = run.restore(vstate.parameters, fresh)
        state, params, first = fresh, vstate.parameters, 0
        if checkpoint is not None:
            state, params, first = checkpoint.state, checkpoint.params, checkpoint.step
        vstate.parameters = state["initial"]
        recorder = cls(system, vstate, times, run, with_exact, manifold)
        vstate.parameters = params
        if "sampler" in state:
            vstate.sampler_state = state["sampler"]
        return recorder, state, first

    def checkpoint(self, index: int, vstate: Any, state: dict[str, Any]) -> None:
        """Save the run state (see `start`) reached at save point `index`."""
        if "sampler" in state:
            state = {**state, "sampler": vstate.sampler_state}
        self.run.checkpoint(index, vstate.parameters, state)

    def __init__(self, system: System, vstate: Any, times: np.ndarray, run: Run, with_exact: bool,
                 manifold: np.ndarray | None = None):
        self.system = system
        self.times = np.asarray(times, dtype=float)
        self.run = run
        self.trajectory, self.configurations, self.manifold = None, None, None
        if system.constraint is None:
            dimension = math.prod(int(d) for d in system.hilbert.shape)
        else:  # vectors over the sector: a gauge sector of a huge space
            dimension = exact.sector_dimension(system)
            if isinstance(vstate, SectorFullSumState):
                self.configurations = vstate.configurations
            elif dimension <= MAX_EXACT_STATES:
                self.configurations = system.sector_states()
        with_exact = with_exact and dimension <= MAX_EXACT_STATES
        if with_exact:
            self.psi0 = self.vector(vstate)
            self.trajectory = exact.evolve(system, self.psi0, self.times, configurations=self.configurations)
            series = {"time": self.times, "energy": self.trajectory.energy, "entropy": self.trajectory.entropy,
                      "return_rate": self.trajectory.return_rate, **self.trajectory.observables}
            if manifold is not None:
                self.manifold = self._check_manifold(manifold)
                series["manifold_return_rate"] = self._manifold_rate(self.trajectory.states)
            run.write_exact(series)
        elif manifold is not None:
            raise ValueError("a Loschmidt manifold needs the exact state vectors: this system is too large for them "
                             "(or exact=False)")

    def _check_manifold(self, manifold: np.ndarray) -> np.ndarray:
        """The manifold's rows as an orthonormal array over the recorder's basis (ValueError otherwise)."""
        manifold = np.atleast_2d(np.asarray(manifold, dtype=complex))
        if manifold.shape[1] != len(self.psi0):
            raise ValueError(f"the manifold's states have {manifold.shape[1]} amplitudes, the recorder's basis has "
                             f"{len(self.psi0)} (the sector configurations of System.sector_states(), in that order)")
        if not np.allclose(manifold.conj() @ manifold.T, np.eye(len(manifold)), atol=1e-8):
            raise ValueError("the manifold's states must be orthonormal")
        return manifold

    def _manifold_rate(self, states: np.ndarray) -> np.ndarray:
        return exact.loschmidt_rate(states, self.manifold, self.system.n_tokens)

    def vector(self, vstate: Any) -> np.ndarray:
        """The normalised state vector of `vstate`: over the sector's configurations for a constrained system, else
        over the full space."""
        if self.configurations is None:
            return np.asarray(vstate.to_array(normalize=True))
        log_psi = np.concatenate([np.asarray(vstate.log_value(self.configurations[i: i + 4096]))
                                  for i in range(0, len(self.configurations), 4096)])
        psi = np.exp(log_psi - log_psi.real.max())
        return psi / np.linalg.norm(psi)

    def _state_expectations(self, psi: np.ndarray) -> dict[str, tuple[complex, float, float]]:
        """(⟨ψ|O|ψ⟩, 0, variance) of H (key "energy") and every observable from a normalised state vector,
        with the cached sparse matrices (NetKet would rebuild the sparse matrix at every call)."""
        if self.configurations is None:
            matrices = exact.sparse_operators(self.system)
        else:
            H, observables = exact.sector_operators(self.system, self.configurations)
            matrices = {"hamiltonian": H, **observables}
        out = {}
        for name, matrix in matrices.items():
            o_psi = matrix @ psi
            mean = complex(np.vdot(psi, o_psi))
            variance = float(np.vdot(o_psi, o_psi).real - abs(mean) ** 2)
            out["energy" if name == "hamiltonian" else name] = (mean, 0.0, variance)
        return out

    def record(self, index: int, t: float, vstate: Any, diagnostics: dict[str, float] | None = None) -> dict:
        """Estimate energy and observables at save point `index` (time `t`) and append the row.

        A `FullSumState` is evaluated exactly. A Monte Carlo state gets its sample estimates (with error
        bars) and, where the exact reference exists, also the exact expectation values of the same
        variational state as ``<name>_fullsum``: these separate the error of the dynamics from the
        sampling noise of the estimator.
        """
        psi = None
        if isinstance(vstate, nk.vqs.FullSumState) or self.trajectory is not None:
            psi = self.vector(vstate)
        if isinstance(vstate, nk.vqs.FullSumState):
            values, fullsum = self._state_expectations(psi), {}
        else:
            ops = {"energy": self.system.hamiltonian, **self.system.observables}
            stats = {name: vstate.expect(op) for name, op in ops.items()}
            values = {name: (complex(s.mean), float(s.error_of_mean), float(s.variance)) for name, s in stats.items()}
            fullsum = {} if psi is None else self._state_expectations(psi)
        mean, error, variance = values.pop("energy")
        if not math.isfinite(mean.real):
            raise FloatingPointError(f"t = {t:.6g}: the energy estimate is {mean}; the time evolution diverged")
        row = {"step": float(index), "time": float(t)}
        row.update({"energy": mean.real, "energy_error": error, "energy_variance": variance})
        for name, (mean, error, _) in values.items():
            row[name] = mean.real
            row[f"{name}_error"] = error
        for name, (mean, _, _) in fullsum.items():
            row[f"{name}_fullsum"] = mean.real
        if self.trajectory is not None:
            row["fidelity"] = float(abs(np.vdot(self.trajectory.states[index], psi)) ** 2)
            row["infidelity"] = 1.0 - row["fidelity"]
            row["return_rate"] = float(exact.loschmidt_rate(psi, self.psi0, self.system.n_tokens)[0])
            if self.manifold is not None:
                row["manifold_return_rate"] = float(self._manifold_rate(psi)[0])
        row.update(diagnostics or {})
        return self.run.append(row)
