"""Recording of a variational time evolution next to the exact one, shared by every dynamics method.

At each save time the recorder estimates the energy and every observable of the system on the
variational state, and, when the Hilbert space is small enough to hold a state vector, the fidelity
|⟨ψ_exact(t)|ψ_θ(t)⟩|² with the exact trajectory that starts from the *variational* initial state.
The exact series are computed up front on the same grid and written to /exact, so an interrupted
run still has its reference.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping
from typing import Any

import flax.serialization
import netket as nk
import numpy as np

from nqs import exact
from nqs.results import ResultFile, describe_ansatz
from nqs.system import System

MAX_EXACT_STATES = 2**16


@dataclasses.dataclass
class DynamicsOutcome:
    """A finished time evolution: the final state, the recorded rows and the exact trajectory (or None)."""

    state: Any
    times: np.ndarray
    rows: list[dict[str, float]]
    exact: Any
    wall_time: float

    def series(self, name: str) -> np.ndarray:
        return np.array([r.get(name, np.nan) for r in self.rows])


def open_result(
    out: str | None,
    mode: str,
    system: System,
    vstate: Any,
    method: Mapping[str, Any],
    config: Mapping[str, Any] | None,
    seed: int,
    ansatz: Mapping[str, Any] | None,
) -> ResultFile | None:
    """The result file of a dynamics run (None when `out` is None), with ansatz size and method stored."""
    if out is None:
        return None
    return ResultFile(
        out, mode, kind="dynamics", config=dict(config or {}), seed=seed, system=system,
        ansatz=describe_ansatz(vstate, ansatz),
        method=method,
    )


def check_hilbert(system: System, vstate: Any) -> None:
    """ValueError unless the variational state lives on the system's Hilbert space."""
    if vstate.hilbert != system.hilbert:
        raise ValueError(f"the variational state lives on {vstate.hilbert}, the system on {system.hilbert}")


class DynamicsRecorder:
    """Collects one row per save time; writes it to the result file (if any) as it goes.

    `resume` builds the recorder for a run that starts fresh or continues from the result file's
    checkpoint, and `checkpoint` writes the run state at a save point; every method shares them.
    """

    @classmethod
    def resume(
        cls, system: System, vstate: Any, times: np.ndarray, result: ResultFile | None, with_exact: bool, **extra: Any
    ) -> tuple[DynamicsRecorder, dict[str, Any], int]:
        """(recorder, run state, index of the last save point reached).

        The run state is {"initial": parameters at t = 0, "params": current parameters, **extra} (extra:
        method state such as a damping or a step counter, given with its fresh value): the checkpoint's if
        the result file holds one, else fresh. The exact trajectory starts from the *initial* variational
        state; on return `vstate` holds the current parameters.
        """
        state = {"initial": vstate.parameters, "params": vstate.parameters, **extra}
        checkpoint = result.load_checkpoint() if result is not None else None
        first = 0
        if checkpoint is not None:
            state, first = flax.serialization.from_bytes(state, checkpoint[0]), checkpoint[1]
        vstate.parameters = state["initial"]
        recorder = cls(system, vstate, times, result, with_exact)
        vstate.parameters = state["params"]
        return recorder, state, first

    def checkpoint(self, state: dict[str, Any], index: int) -> None:
        """Write the run state (see `resume`) reached at save point `index` to the result file, if any."""
        if self.result is not None:
            self.result.save_checkpoint(flax.serialization.to_bytes(state), index)

    def __init__(self, system: System, vstate: Any, times: np.ndarray, result: ResultFile | None, with_exact: bool):
        self.system = system
        self.times = np.asarray(times, dtype=float)
        self.result = result
        self.rows: list[dict[str, float]] = []
        self.trajectory = None
        self.t0 = time.perf_counter()
        if with_exact and system.hilbert.n_states <= MAX_EXACT_STATES:
            psi0 = np.asarray(vstate.to_array(normalize=True))
            self.trajectory = exact.evolve(system, psi0, self.times)
            if result is not None:
                result.write_exact("time", self.times)
                result.write_exact("energy", self.trajectory.energy)
                result.write_exact("entropy", self.trajectory.entropy)
                for name, series in self.trajectory.observables.items():
                    result.write_exact(name, series)

    def _state_expectations(self, psi: np.ndarray) -> dict[str, tuple[complex, float, float]]:
        """(⟨ψ|O|ψ⟩, 0, variance) of H (key "energy") and every observable from a normalised state vector,
        with the cached sparse matrices (NetKet would rebuild the sparse matrix at every call)."""
        out = {}
        for name, matrix in exact.sparse_operators(self.system).items():
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
            psi = np.asarray(vstate.to_array(normalize=True))
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
        row = {"step": float(index), "time": float(t), "wall_time": time.perf_counter() - self.t0}
        row.update({"energy": mean.real, "energy_error": error, "energy_variance": variance})
        for name, (mean, error, _) in values.items():
            row[name] = mean.real
            row[f"{name}_error"] = error
        for name, (mean, _, _) in fullsum.items():
            row[f"{name}_fullsum"] = mean.real
        if self.trajectory is not None:
            row["fidelity"] = float(abs(np.vdot(self.trajectory.states[index], psi)) ** 2)
            row["infidelity"] = 1.0 - row["fidelity"]
        row.update(diagnostics or {})
        self.rows.append(row)
        if self.result is not None:
            self.result.append(row)
        return row

    def series(self, name: str) -> np.ndarray:
        return np.array([r.get(name, np.nan) for r in self.rows])
