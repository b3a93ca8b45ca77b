"""Recording of a variational time evolution next to the exact one, shared by every dynamics method.

At each save time the recorder estimates the energy and every observable of the system on the
variational state, and, when the Hilbert space is small enough to hold a state vector, the fidelity
|⟨ψ_exact(t)|ψ_θ(t)⟩|² with the exact trajectory that starts from the *variational* initial state.
The exact series are computed up front on the same grid and written to /exact, so an interrupted
run still has its reference.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from nqs import exact
from nqs.results import ResultFile
from nqs.system import System

MAX_EXACT_STATES = 2**16


class DynamicsRecorder:
    """Collects one row per save time; writes it to the result file (if any) as it goes."""

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

    def record(self, index: int, t: float, vstate: Any, diagnostics: dict[str, float] | None = None) -> dict:
        """Estimate energy and observables at save point `index` (time `t`) and append the row."""
        energy = vstate.expect(self.system.hamiltonian)
        mean = complex(energy.mean)
        if not math.isfinite(mean.real):
            raise FloatingPointError(f"t = {t:.6g}: the energy estimate is {mean}; the time evolution diverged")
        row = {"step": float(index), "time": float(t), "wall_time": time.perf_counter() - self.t0}
        row.update({"energy": mean.real, "energy_error": float(energy.error_of_mean), "energy_variance": float(energy.variance)})
        for name, op in self.system.observables.items():
            stats = vstate.expect(op)
            row[name] = float(np.real(stats.mean))
            row[f"{name}_error"] = float(stats.error_of_mean)
        if self.trajectory is not None:
            psi = np.asarray(vstate.to_array(normalize=True))
            row["fidelity"] = float(abs(np.vdot(self.trajectory.states[index], psi)) ** 2)
            row["infidelity"] = 1.0 - row["fidelity"]
        row.update(diagnostics or {})
        self.rows.append(row)
        if self.result is not None:
            self.result.append(row)
        return row

    def series(self, name: str) -> np.ndarray:
        return np.array([r.get(name, np.nan) for r in self.rows])
