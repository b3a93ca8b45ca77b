"""The rows of a POVM run: observables and physicality diagnostics of P_θ next to the exact ρ, and the outcome.

One row per save point (dynamics) or at the end (steady state): the observables of `diagnostics` with standard
errors when sampled, the purity (full sum, or paired samples for N ≤ `purity_max_sites`), the smallest eigenvalues
of the 1-site and bond reduced density matrices and, for N ≤ `MAX_FULL_SUM_SITES` with an exact reference, the
classical fidelity Σ_a √(P_θ(a) P_exact(a)), ‖P_θ − P_exact‖₁ and the trace distance of ρ(P_θ) to the exact ρ.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from typing import Any, Unpack

import jax
import numpy as np

from dynamics.povm.context import MAX_FULL_SUM_SITES, PovmContext, set_parameters
from dynamics.povm.diagnostics import (
    exact_dynamics,
    exact_row,
    lattice_bonds,
    povm_observables,
    purity_full,
    purity_sampled,
    reduced_min_eigenvalues,
)
from nqs import exact
from nqs.povm import POVM, density_matrix, probabilities
from nqs.recipes import describe_ansatz
from nqs.run import Rows, Run, RunOptions
from nqs.system import System


class Recorder:
    """One row per save point: observables, physicality diagnostics, comparison with the exact ρ.

    Args:
        ctx: the POVM context of the run.
        povm: its POVM.
        run: the run (`nqs.run.Run`) the rows and the exact reference go to.
        exact_rhos: the exact ρ at the save times (steady state: one ρ), or None.
        n_obs_samples: samples for the observables (sampled mode).
        purity_max_sites: estimate the purity from paired samples only up to this N.
        times: the save times (dynamics), or None (steady state: the exact reference is scalars).
    """

    def __init__(self, ctx: PovmContext, povm: POVM, run: Run, exact_rhos: list[np.ndarray] | None,
                 n_obs_samples: int, purity_max_sites: int, times: np.ndarray | None = None):
        self.ctx, self.povm, self.run = ctx, povm, run
        self.n_obs_samples, self.purity_max_sites = n_obs_samples, purity_max_sites
        self.obs, dense = povm_observables(ctx.system, povm)
        self.bonds = lattice_bonds(ctx.system)
        self.exact_rhos = exact_rhos
        self.t0 = time.perf_counter()
        self.exact: dict[str, Any] = {}
        self._sample = jax.jit(ctx.sample, static_argnums=2) if not ctx.full_sum else None
        self._probs = jax.jit(ctx.probabilities)
        if exact_rhos is not None:
            rows = [exact_row(r, self.obs, dense, self.bonds, ctx.n_sites) for r in exact_rhos]
            self.exact = {k: np.array([r[k] for r in rows]) for k in rows[0]}
            if times is None:
                self.exact = {k: float(v[0]) for k, v in self.exact.items()}
            else:
                self.exact["time"] = np.asarray(times, dtype=float)
            run.write_exact(self.exact)

    def append(self, row: dict[str, float]) -> dict[str, float]:
        """Append `row` to the run."""
        return self.run.append(row)

    @property
    def rows(self) -> list[dict[str, float]]:
        """The rows recorded in this call."""
        return self.run.rows

    def record(self, index: int, t: float | None, params, key, diagnostics: Mapping[str, float] | None = None,
               exact_index: int | None = None) -> dict[str, float]:
        """Measure P_θ(params) (samples drawn with `key`), compare with exact ρ number `exact_index`, add the method's
        `diagnostics` and append the row (step `index`, time `t`)."""
        ctx, n = self.ctx, self.ctx.n_sites
        row = {"step": float(index), "wall_time": time.perf_counter() - self.t0}
        if t is not None:
            row["time"] = float(t)
        P_model = None
        if ctx.full_sum:
            a = ctx.outcomes
            P_model = np.asarray(self._probs(params))
            weights = P_model
        else:
            a = np.asarray(self._sample(params, key, self.n_obs_samples))
            weights = np.full(len(a), 1.0 / len(a))
        for o in self.obs:
            q = o.values(a)
            if ctx.full_sum:
                row[o.name] = float(np.sum(weights * q))
            else:
                row[o.name] = float(q.mean())
                row[f"{o.name}_error"] = float(q.std(ddof=1) / math.sqrt(len(q)))
        if not all(math.isfinite(row[o.name]) for o in self.obs):
            raise FloatingPointError(f"step {index}: non-finite observables; the evolution diverged")
        if ctx.full_sum:
            row["purity"] = purity_full(P_model, self.povm, n)
        elif n <= self.purity_max_sites:
            row["purity"], row["purity_error"] = purity_sampled(a, self.povm)
        row.update(reduced_min_eigenvalues(a, weights, self.povm, self.bonds))
        if self.exact_rhos is not None and n <= MAX_FULL_SUM_SITES:
            if P_model is None:
                P_model = np.asarray(self._probs(params))
            row.update(self._exact_comparison(P_model, self.exact_rhos[exact_index or 0]))
        row.update(diagnostics or {})
        return self.append(row)

    def _exact_comparison(self, P_model: np.ndarray, rho: np.ndarray) -> dict[str, float]:
        """Classical fidelity, ‖P_θ − P_exact‖₁ and the trace distance of ρ(P_θ) to the exact ρ."""
        n = self.ctx.n_sites
        P_exact = probabilities(rho, self.povm, n)
        return {"classical_fidelity": exact.classical_fidelity(P_model, P_exact),
                "l1_distance": float(np.sum(np.abs(P_model - P_exact))),
                "trace_distance": exact.trace_distance(density_matrix(P_model, self.povm, n), rho)}


@dataclasses.dataclass
class PovmOutcome(Rows):
    """A finished POVM run.

    Attributes:
        state: the variational state, holding the final parameters (steady state: the best checkpoint).
        times: save times (dynamics) or None (steady state).
        rows: the recorded rows (also the /history of the result file).
        exact: exact reference: name -> series on `times` (dynamics) or scalar (steady state); empty
            when the system is too large.
        wall_time: seconds.
        info: method-specific results (steady state: best_step, best_loss).
    """

    state: Any
    times: np.ndarray | None
    rows: list[dict[str, float]]
    exact: dict[str, Any]
    wall_time: float
    info: dict[str, Any] = dataclasses.field(default_factory=dict)


def method_attributes(name: str, settings: Any, povm: POVM, ctx: PovmContext) -> dict[str, Any]:
    """The /method attributes: the method's name, its settings, the POVM and the mode."""
    return {"name": name, **dataclasses.asdict(settings), "povm": povm.name,
            "mode": "full_sum" if ctx.full_sum else "sampled", "n_samples": ctx.n_samples}


def open_povm_run(kind: str, name: str, system: System, vstate: Any, settings: Any, povm: POVM, ctx: PovmContext,
                  seed: int, ansatz: Mapping[str, Any] | None, **run: Unpack[RunOptions]) -> Run:
    """The run of POVM method `name` (kind "dynamics" or "steady_state") with its metadata."""
    return Run(kind=kind, system=system, ansatz=describe_ansatz(vstate, ansatz, system),
               method=method_attributes(name, settings, povm, ctx), seed=seed, **run)


def restore(run: Run, fresh: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """(run state, step of its checkpoint): the checkpoint of a resumed run, else `fresh` at step −1 (nothing recorded
    yet; a checkpoint taken at save point 0 has step 0, and its row must not be recorded twice). A run state is the
    parameters "params" and the method's own state, which the checkpoint stores apart."""
    params, state = fresh["params"], {k: v for k, v in fresh.items() if k != "params"}
    checkpoint = run.restore(params, state)
    if checkpoint is None:
        return fresh, -1
    return {**checkpoint.state, "params": checkpoint.params}, checkpoint.step


def record_evolution(name: str, system: System, vstate: Any, settings: Any, povm: POVM, ctx: PovmContext,
                     fresh: dict[str, Any], steps: Callable[[Recorder, Run, dict[str, Any], int], Any], *,
                     rho0: np.ndarray | None, seed: int, ansatz: Mapping[str, Any] | None, exact: bool,
                     **run: Unpack[RunOptions]) -> PovmOutcome:
    """The frame of a POVM time evolution `name`: the run (kind "dynamics"), the run state restored from its
    checkpoint or `fresh` ({"initial": parameters at t = 0, "params", ...}), the exact reference from "initial" on
    `settings.times` (`diagnostics.exact_dynamics`) and the recorder. `steps(recorder, run, state, index)` moves the
    run state from save point `index` to the end and returns the final parameters, which `vstate` receives; `index` is
    −1 for a fresh start, which records save point 0 first (a run resumed from its checkpoint at save point 0 has
    recorded it, and recording it again would add a row and draw another random key)."""
    t_start = time.perf_counter()
    with open_povm_run("dynamics", name, system, vstate, settings, povm, ctx, seed, ansatz, **run) as recording:
        state, index = restore(recording, fresh)
        rhos = exact_dynamics(ctx, state["initial"], povm, rho0, settings.times, exact)
        recorder = Recorder(ctx, povm, recording, rhos, settings.n_obs_samples, settings.purity_max_sites,
                            settings.times)
        set_parameters(vstate, steps(recorder, recording, state, index))
    return PovmOutcome(vstate, settings.times, recording.rows, recorder.exact, time.perf_counter() - t_start)
