"""Baseline steady state of an open system with NetKet's neural density matrix (NDM) and `SteadyState` driver.

This is the "RBM density matrix + Monte Carlo" method that the POVM steady state
(`dynamics.povm.find_steady_state`) is compared with; NetKet's pieces are used as they are:

* Liouvillian: `nk.operator.LocalLiouvillian(H, [L_k])` on the doubled space ℋ⊗ℋ, with the nqs convention

      dρ/dt = 𝓛ρ = −i[H, ρ] + Σ_k (L_k ρ L_k† − ½{L_k†L_k, ρ}),   rates folded into L_k = √γ_k A_k

  (NetKet stores H_nh = H − (i/2) Σ_k L_k†L_k and 𝓛ρ = −i H_nh ρ + i ρ H_nh† + Σ_k L_k ρ L_k†; its docstring
  prints the anticommutator without the ½, the matrix has it: `to_qobj()` equals `qutip.liouvillian`).
* Ansatz: `nk.models.NDM(alpha, beta)`, the purified RBM of Torlai & Melko (PRL 120, 240503 (2018)):
  ρ(σ, η) = Σ_a ψ(σ, a) ψ*(η, a) with α·N hidden and β·N ancilla units, real parameters, Hermitian and
  positive semi-definite by construction (unnormalised; NetKet normalises where needed).
* State: `nk.vqs.MCMixedState`: configurations (σ, η) of the vectorised ρ sampled from |ρ(σ, η)|² by
  `MetropolisLocal` on `DoubledHilbert`, and a separate diagonal state sampling ρ(σ, σ)/Tr ρ for
  observables. The diagonal sampler is passed explicitly (NetKet issue #878: the default one derived by
  swapping the Hilbert space is wrong for some rules).
* Cost, minimised by `nk.driver.SteadyState` (Hartmann & Carleo, PRL 122, 250502 (2019);
  Vicentini, Biella, Regnault & Ciuti, PRL 122, 250503 (2019); Nagy & Savona, PRL 122, 250501 (2019)):

      C(θ) = ⟨⟨ρ|𝓛†𝓛|ρ⟩⟩ / ⟨⟨ρ|ρ⟩⟩ = Tr[ρ† 𝓛†𝓛 ρ] / Tr[ρ†ρ] = ‖𝓛ρ‖² / ‖ρ‖²  (Hilbert–Schmidt norms)
           = E_{(σ,η) ∼ |ρ(σ,η)|²/‖ρ‖²} |C_loc(σ, η)|²,   C_loc(σ, η) = Σ_{σ'η'} 𝓛_{ση,σ'η'} ρ(σ', η') / ρ(σ, η),

  C ≥ 0 with C = 0 iff 𝓛ρ = 0 (the steady state, when it is unique). Its gradient is preconditioned by
  stochastic reconfiguration on the doubled space, θ ← θ − η (S + ε1)⁻¹ ∇C (`nk.optimizer.SR`), and
  applied by SGD (`optax.sgd`) with a constant, cosine or exponential learning-rate schedule.
* Observables: ⟨O⟩ = Tr[ρO]/Tr ρ = E_{σ ∼ ρ(σ,σ)/Tr ρ} Σ_σ' O_σσ' ρ(σ', σ)/ρ(σ, σ) (`MCMixedState.expect`
  on the diagonal samples).

**Recording** (nqs result file, kind "steady_state", method "dynamics.ndm_steady_state"): one history row
per step with ``ldagl`` (the sampled cost C, ``ldagl_error``, ``ldagl_variance``, ``ldagl_r_hat``),
``learning_rate`` and ``wall_time``; every `observables_every` steps and at the end also every observable of
the system (± ``_error``, from `n_samples_diag` diagonal samples). While ρ fits in memory
(N ≤ `full_sum_max_sites`) those rows add the exact values of the *variational* ρ = `to_matrix()`:
``<observable>_fullsum``, ``purity`` (Tr ρ²), ``trace_distance`` to the exact steady state, which separate
the optimisation error from the sampling noise. The last row (step = n_steps) is the final evaluation
with `n_samples_diag_final` diagonal samples. /exact holds the QuTiP steady-state values (`nqs.exact.steady_state`,
N ≤ `nqs.MAX_OPEN_SITES`) of every observable and the purity. /checkpoint is NetKet's driver state
(parameters, optimiser and sampler state), so ``mode="resume"`` continues a killed run.

**Known limitations** (netket/netket): #850 (NDM may not converge to the exact steady state), #1813 (no
`VMC_SR`/minSR for steady states). The Liouvillian is a Numba operator, compiled at the first step of a
process (`docs/benchmarks.md`). Small chains already show the plateau of #850: the dissipative TFI
with N = 2 converges to 1e-4 in 200 steps (lr 0.1), N = 3, g = 1 stalls near C ≈ 6e-4 with
observable errors ≈ 0.035 for α = β = 1 and 2 alike.

Errors: ValueError for a closed system (no jump operators), for a Hamiltonian, jump or observable operator
on another Hilbert space than the system's, for a constrained system (the NDM has no sector masks) and
for a non-discrete Hilbert space; `NonFiniteError` when the cost or the parameters stop being finite.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any, Unpack

import netket as nk
import numpy as np
import optax

from nqs import exact
from nqs.exact import MAX_OPEN_SITES
from nqs.run import (
    DriverCallback,
    NonFiniteError,
    Rows,
    Run,
    RunOptions,
    check_output,
    resume_driver,
)
from nqs.schedules import check_schedule, learning_rate_schedule
from nqs.system import System
from nqs.vmc import observables_row

METHOD_NAME = "dynamics.ndm_steady_state"


@dataclasses.dataclass(frozen=True)
class NDMSettings:
    """Hyper-parameters of the NDM steady state (stored as the result file's /method attributes).

    Attributes:
        n_steps: optimisation steps.
        alpha, beta: hidden (α·N) and ancilla (β·N) unit densities of `nk.models.NDM`.
        n_samples: samples of (σ, η) per step for the cost and its gradient.
        n_chains: Metropolis chains of both samplers.
        n_discard_per_chain: thermalisation sweeps discarded per chain and step (None: NetKet's default).
        n_samples_diag: diagonal samples σ for the observables during the run.
        n_samples_diag_final: diagonal samples for the final observables.
        learning_rate: initial SGD learning rate η.
        lr_schedule: "constant", "cosine" (to `lr_final` at n_steps) or "exponential" (η (lr_final/η)^{k/n_steps}).
        lr_final: final learning rate of the schedules.
        diag_shift: diagonal shift ε of the SR matrix.
        observables_every: observables every this many steps (0: only at the end).
        checkpoint_every: a checkpoint every this many steps (and at the end).
        full_sum_max_sites: record exact values of the variational ρ (``<name>_fullsum``, purity, trace
            distance) up to this N (ρ is 2^N × 2^N).
    """

    n_steps: int = 300
    alpha: int = 1
    beta: int = 1
    n_samples: int = 2000
    n_chains: int = 16
    n_discard_per_chain: int | None = None
    n_samples_diag: int = 1024
    n_samples_diag_final: int = 16384
    learning_rate: float = 0.05
    lr_schedule: str = "constant"
    lr_final: float = 0.005
    diag_shift: float = 0.01
    observables_every: int = 25
    checkpoint_every: int = 25
    full_sum_max_sites: int = 8

    def __post_init__(self):
        if self.n_steps < 0:
            raise ValueError(f"n_steps must be >= 0, got {self.n_steps}")
        for name in ("alpha", "beta", "n_samples", "n_chains", "n_samples_diag", "n_samples_diag_final",
                     "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.observables_every < 0:
            raise ValueError(f"observables_every must be >= 0, got {self.observables_every}")
        check_schedule(self.lr_schedule, self.learning_rate, self.lr_final)
        if not (math.isfinite(self.diag_shift) and self.diag_shift > 0):
            raise ValueError(f"diag_shift must be finite and positive, got {self.diag_shift}")

    def learning_rate_schedule(self) -> optax.Schedule:
        return learning_rate_schedule(self.lr_schedule, self.learning_rate, self.lr_final, self.n_steps)


@dataclasses.dataclass
class NDMOutcome(Rows):
    """A finished NDM steady-state search.

    Attributes:
        state: the `nk.vqs.MCMixedState` with the final parameters.
        ldagl: the sampled cost C of the last step (`nk.stats.Stats`), None when no step was run.
        observables: final estimates {name: (mean, error of the mean)} with `n_samples_diag_final` samples.
        fullsum: exact values of the final variational ρ (observables, purity, trace_distance), or {}.
        exact: exact steady-state values {name: value} (observables, purity), or {} when too large.
        rows: the history rows written (also the /history of the result file).
        steps: completed optimisation steps.
        wall_time: seconds spent in the call (including compilation and the exact reference).
    """

    state: Any
    ldagl: Any
    observables: dict[str, tuple[float, float]]
    fullsum: dict[str, float]
    exact: dict[str, float]
    rows: list[dict[str, float]]
    steps: int
    wall_time: float

    def max_abs_error(self, names=None) -> float | None:
        """max |⟨O⟩ − ⟨O⟩_exact| over `names` (default: every observable with a reference), or None."""
        names = [n for n in (names or self.observables) if n in self.exact and n in self.observables]
        if not names:
            return None
        return max(abs(self.observables[n][0] - self.exact[n]) for n in names)


# -- building ---------------------------------------------------------------------------------------
def _as_discrete(op: Any, what: str, hilbert) -> Any:
    if op.hilbert != hilbert:
        raise ValueError(f"{what} acts on {op.hilbert}, not on the system's Hilbert space {hilbert}")
    if not isinstance(op, nk.operator.DiscreteOperator):
        raise TypeError(f"{what} is a {type(op).__name__}, not a NetKet DiscreteOperator")
    if not isinstance(op, (nk.operator.LocalOperator, nk.operator.DiscreteJaxOperator)) and hasattr(
        op, "to_local_operator"
    ):
        op = op.to_local_operator()  # LocalLiouvillian builds H_nh with LocalOperator algebra
    return op


def check_system(system: System) -> None:
    """Raise ValueError when `system` cannot be treated by the NDM steady state (see the module docstring)."""
    if not system.is_open:
        raise ValueError(
            "the NDM steady state needs an open system: it has no jump operators (a closed system has no "
            "unique steady state; use nqs.vmc.ground_state)"
        )
    if not isinstance(system.hilbert, nk.hilbert.DiscreteHilbert) or not system.hilbert.is_finite:
        raise ValueError(f"the NDM steady state needs a finite discrete Hilbert space, got {system.hilbert}")
    if system.constraint is not None:
        raise ValueError("the NDM has no sector masks: a constrained system is not supported")
    _as_discrete(system.hamiltonian, "the Hamiltonian", system.hilbert)
    for i, op in enumerate(system.jump_operators):
        _as_discrete(op, f"jump operator {i}", system.hilbert)
    for name, op in system.observables.items():
        _as_discrete(op, f"observable {name!r}", system.hilbert)


def liouvillian(system: System) -> nk.operator.LocalLiouvillian:
    """NetKet's `LocalLiouvillian` of `system` (H and jump operators), complex128."""
    check_system(system)
    H = _as_discrete(system.hamiltonian, "the Hamiltonian", system.hilbert)
    jumps = [_as_discrete(op, f"jump operator {i}", system.hilbert) for i, op in enumerate(system.jump_operators)]
    return nk.operator.LocalLiouvillian(H, jumps, dtype=np.complex128)


def make_mixed_state(lind: nk.operator.LocalLiouvillian, settings: NDMSettings, *,
                     seed: int = 0) -> nk.vqs.MCMixedState:
    """`MCMixedState` of `nk.models.NDM(alpha, beta)`, MetropolisLocal on the doubled and on the physical space."""
    sampler = nk.sampler.MetropolisLocal(lind.hilbert, n_chains=settings.n_chains)
    sampler_diag = nk.sampler.MetropolisLocal(lind.hilbert.physical, n_chains=settings.n_chains)
    return nk.vqs.MCMixedState(
        sampler,
        nk.models.NDM(alpha=settings.alpha, beta=settings.beta),
        sampler_diag=sampler_diag,
        n_samples=settings.n_samples,
        n_samples_diag=settings.n_samples_diag,
        n_discard_per_chain=settings.n_discard_per_chain,
        n_discard_per_chain_diag=settings.n_discard_per_chain,
        seed=seed,
        sampler_seed=seed + 1,
    )


# -- recording --------------------------------------------------------------------------------------
class _FullSum:
    """Exact values of the variational ρ = to_matrix() (normalised): observables, purity, trace distance."""

    def __init__(self, system: System, rho_exact: np.ndarray | None):
        self.operators = {name: op.to_sparse() for name, op in system.observables.items()}
        self.rho_exact = rho_exact

    def __call__(self, vstate) -> dict[str, float]:
        rho = np.asarray(vstate.to_matrix(normalize=True))
        rho = 0.5 * (rho + rho.conj().T)
        row = {f"{name}_fullsum": float(np.real(np.sum(op.T.multiply(rho)))) for name, op in self.operators.items()}
        row["purity"] = exact.purity(rho)
        if self.rho_exact is not None:
            row["trace_distance"] = exact.trace_distance(rho, self.rho_exact)
        return row


# -- the method -------------------------------------------------------------------------------------
def find_ndm_steady_state(
    system: System,
    settings: NDMSettings | None = None,
    *,
    seed: int = 0,
    exact_reference: bool | None = None,
    initial_parameters: Callable[[Any], Any] | None = None,
    **run: Unpack[RunOptions],
) -> NDMOutcome:
    """Steady state of `system` by minimising C = Tr[ρ†𝓛†𝓛ρ]/Tr[ρ†ρ] over `nk.models.NDM` with NetKet's
    `SteadyState` driver and SR (module docstring).

    Args:
        system: an open system (H and jump operators, observables) on a finite discrete Hilbert space.
        settings: hyper-parameters (`NDMSettings()` if None).
        out: path of the HDF5 result file (kind "steady_state"), or None to write nothing.
        mode: "fail", "overwrite" or "resume" (continue from the file's checkpoint).
        config: the experiment configuration stored in the file.
        seed: parameters (`seed`) and samplers (`seed + 1`).
        progress: show NetKet's progress bar.
        exact_reference: compute the QuTiP steady state (default: N ≤ MAX_OPEN_SITES).
        initial_parameters: maps the fresh parameters to the starting ones (e.g. those of another run,
            `nqs.results.load_parameters`); a resumed run starts from its checkpoint.

    Raises:
        ValueError: closed system, operators on another Hilbert space, constrained system.
        NonFiniteError: the cost or the parameters stopped being finite.
    """
    settings = settings or NDMSettings()
    t_start = time.perf_counter()
    check_output("steady_state", **run)
    lind = liouvillian(system)  # validates the system
    vstate = make_mixed_state(lind, settings, seed=seed)
    if initial_parameters is not None:
        vstate.parameters = initial_parameters(vstate.parameters)
    driver = nk.driver.SteadyState(lind, optax.sgd(settings.learning_rate_schedule()), variational_state=vstate,
                                   preconditioner=nk.optimizer.SR(diag_shift=settings.diag_shift))
    ansatz = {"name": "netket.models.NDM", "alpha": settings.alpha, "beta": settings.beta,
              "n_parameters": int(vstate.n_parameters)}
    method = {"name": METHOD_NAME, **dataclasses.asdict(settings), "sampler": "MetropolisLocal", "optimizer": "sgd",
              "preconditioner": "SR", "liouvillian": "netket.operator.LocalLiouvillian"}
    with Run(kind="steady_state", system=system, ansatz=ansatz, method=method, seed=seed, **run) as recording:
        driver = resume_driver(recording, driver)
        if exact_reference is None:
            exact_reference = system.n_sites <= MAX_OPEN_SITES
        rho_exact, reference = _exact_reference(system) if exact_reference else (None, {})
        recording.write_exact(reference)
        fullsum = _FullSum(system, rho_exact) if system.n_sites <= settings.full_sum_max_sites else None
        recorder = DriverCallback(recording, loss="ldagl", n_steps=settings.n_steps,
                                  checkpoint_every=settings.checkpoint_every, extra_row=_extra_row(system, settings,
                                                                                                   fullsum),
                                  hint="Lower the learning rate, raise diag_shift or use more samples.")
        remaining = settings.n_steps - driver.step_count
        if remaining > 0:
            driver.run(remaining, callback=recorder, show_progress=recording.progress)
        vstate, steps = driver.state, max(driver.step_count, recorder.completed)
        observables, full = _final_row(recording, system, settings, vstate, fullsum, steps)
    ldagl = driver.ldagl if remaining > 0 else None
    return NDMOutcome(vstate, ldagl, observables, full, dict(reference), recording.rows, steps,
                      time.perf_counter() - t_start)


def _exact_reference(system: System) -> tuple[np.ndarray, dict[str, float]]:
    """The QuTiP steady state and its observables and purity."""
    rho_exact, values = exact.steady_state(system)
    reference = {name: values[name] for name in system.observables if name in values}
    reference["purity"] = exact.purity(rho_exact)
    return rho_exact, reference


def _extra_row(system: System, settings: NDMSettings, fullsum: _FullSum | None):
    """The learning rate of every row; every `observables_every` steps the observables (and the exact values of
    the variational ρ)."""
    schedule = settings.learning_rate_schedule()

    def extra(step, driver) -> dict[str, float]:
        row = {"learning_rate": float(schedule(step))}
        every = settings.observables_every
        if every and step % every == 0:
            row.update(observables_row(driver.state, system.observables))
            if fullsum is not None:
                row.update(fullsum(driver.state))
        return row
    return extra


def _final_row(run: Run, system: System, settings: NDMSettings, vstate, fullsum, steps: int):
    """The final evaluation with `n_samples_diag_final` diagonal samples, appended as the last row."""
    vstate.n_samples_diag = settings.n_samples_diag_final
    observables = {}
    row = {"step": float(steps)}
    for name, op in system.observables.items():
        stats = vstate.expect(op)
        observables[name] = (float(np.real(stats.mean)), float(stats.error_of_mean))
        row[name], row[f"{name}_error"] = observables[name]
    full = fullsum(vstate) if fullsum is not None else {}
    row.update(full)
    if not all(math.isfinite(v) for v in row.values()):
        raise NonFiniteError(f"the final observables are not finite: {row}")
    vstate.n_samples_diag = settings.n_samples_diag
    run.append(row)
    return observables, full
