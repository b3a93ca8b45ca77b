"""Variational Monte Carlo ground-state search on NetKet's `MCState` with stochastic reconfiguration.

The energy E(θ) = ⟨ψ_θ|H|ψ_θ⟩/⟨ψ_θ|ψ_θ⟩ is minimised by natural-gradient steps

    θ ← θ - η (S + ε 1)⁻¹ F,   S_kl = ⟨O_k* O_l⟩ - ⟨O_k*⟩⟨O_l⟩,   F_k = ⟨O_k* E_loc⟩ - ⟨O_k*⟩⟨E_loc⟩,

with O_k = ∂ log ψ/∂θ_k (Sorella, PRL 80, 4558 (1998); Amari, Neural Comput. 10, 251 (1998)).
Two NetKet back-ends are exposed: ``solver="sr"`` is `nk.driver.VMC` with the `nk.optimizer.SR`
preconditioner (QGT in parameter space, QGTAuto picks the representation) and ``solver="minsr"`` is
`nk.driver.VMC_SR` in its sample-space (NTK/minSR) form, cheaper when parameters outnumber samples
(Chen & Heyl, Nat. Phys. 20, 1476 (2024)).

What this module adds on top of NetKet: stop criteria (steps, relative energy tolerance against a
target, relative variance), detection of non-finite energies or parameters with a clear error, the
nqs result file (one row per step, flushed as written, exact reference beside it) and resumable
checkpoints built on NetKet's own driver serialisation (`flax.serialization.to_bytes(driver)`, which
stores parameters, optimizer state, sampler RNG state and the step count).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Unpack

import jax.numpy as jnp
import netket as nk
import numpy as np
import optax

from nqs import exact as exact_module
from nqs.recipes import describe_ansatz
from nqs.run import DriverCallback, NonFiniteError, Run, RunOptions, check_output, resume_driver
from nqs.schedules import check_schedule, learning_rate_schedule
from nqs.states import make_state
from nqs.system import System

MIN_SAMPLES = 32  # NetKet's blocked error of the mean is NaN below 32 samples


@dataclasses.dataclass(frozen=True)
class VMCSettings:
    """Hyper-parameters of a VMC ground-state search (stored as the result file's /method attributes).

    Attributes:
        n_steps: maximum number of optimisation steps.
        n_samples: samples per step (exact samples for autoregressive models); 0 sums over the whole Hilbert
            space (`nk.vqs.FullSumState`, small systems; with the "sr" solver): the gradient then sees every
            configuration, which matters near product states, where all samples coincide and the sampled
            gradient vanishes.
        chunk_size: forward-pass chunk size (None: no chunking).
        learning_rate: initial learning rate η.
        lr_schedule: "constant", "cosine" (to `lr_final` at `n_steps`) or "exponential"
            (η_k = η (lr_final/η)^{k/n_steps}).
        lr_final: final learning rate for the schedules.
        diag_shift: diagonal shift ε of the S matrix (ε can decay exponentially to
            `diag_shift_final` over the run when that is given).
        diag_shift_final: final ε of an exponentially decaying shift, or None for a constant one.
        solver: "sr" (VMC + SR preconditioner) or "minsr" (VMC_SR in sample space).
        holomorphic: True for a holomorphic complex-parameter model (NetKet's `RBM`, `RBMSymm`): the S matrix /
            NTK is built from the complex Jacobian (n_params complex columns instead of 2 n_params real ones).
            None lets NetKet treat complex parameters as pairs of real ones, which is right for any model. A
            speed hint for the "sr" solver only: NetKet's `VMC_SR` ("minsr") has no holomorphic mode.
        energy_tol: stop when |E - target| / |target| < energy_tol (needs a target energy).
        variance_tol: stop when Var(E_loc)/E² < variance_tol.
        checkpoint_every: write a checkpoint every this many steps (and at the end).
        observables_every: evaluate the system's observables every this many steps (and at the end).
        n_samples_final: samples for the final evaluation of energy and observables.
        prefix_reuse: local energies of sampled autoregressive models by prefix reuse (`nqs.local_energy`; the
            same numbers as NetKet's generic path to round-off, less work); False takes NetKet's path.
    """

    n_steps: int = 300
    n_samples: int = 1024
    chunk_size: int | None = None
    learning_rate: float = 0.01
    lr_schedule: str = "constant"
    lr_final: float = 1e-3
    diag_shift: float = 1e-3
    diag_shift_final: float | None = None
    solver: str = "sr"
    holomorphic: bool | None = None
    energy_tol: float | None = None
    variance_tol: float | None = None
    checkpoint_every: int = 10
    observables_every: int = 50
    n_samples_final: int = 4096
    prefix_reuse: bool = True

    def __post_init__(self):
        if self.n_steps < 0 or self.n_samples < 0:
            raise ValueError(f"n_steps and n_samples must be >= 0, got {self.n_steps}, {self.n_samples}")
        if self.n_samples == 0 and self.solver == "minsr":
            raise ValueError("solver='minsr' works in sample space: use solver='sr' with n_samples=0 (full sum)")
        check_schedule(self.lr_schedule, self.learning_rate, self.lr_final)
        if self.lr_schedule == "step":
            raise ValueError("lr_schedule must be 'constant', 'cosine' or 'exponential'")
        if self.solver not in ("sr", "minsr"):
            raise ValueError(f"solver must be 'sr' or 'minsr', got {self.solver!r}")
        if 0 < self.n_samples < MIN_SAMPLES or 0 < self.n_samples_final < MIN_SAMPLES:
            raise ValueError(f"n_samples and n_samples_final must be 0 (full sum) or >= {MIN_SAMPLES} (NetKet's "
                             f"error of the mean needs {MIN_SAMPLES} samples), got {self.n_samples}, "
                             f"{self.n_samples_final}")
        if not (math.isfinite(self.diag_shift) and self.diag_shift > 0):
            raise ValueError(f"diag_shift must be finite and positive, got {self.diag_shift}")

    def learning_rate_schedule(self) -> optax.Schedule:
        return learning_rate_schedule(self.lr_schedule, self.learning_rate, self.lr_final, self.n_steps)

    def diag_shift_schedule(self) -> float | optax.Schedule:
        if self.diag_shift_final is None:
            return self.diag_shift
        return optax.exponential_decay(self.diag_shift, max(self.n_steps, 1), self.diag_shift_final / self.diag_shift)


@dataclasses.dataclass
class VMCOutcome:
    """What a ground-state search returns.

    Attributes:
        state: the optimised `nk.vqs.MCState`.
        energy: final energy estimate (mean, error of the mean, variance) with `n_samples_final` samples.
        observables: final estimates {name: (mean, error of the mean)}.
        exact_energy: exact ground-state energy, or None when the system was too large.
        relative_error: |E - E_exact| / |E_exact|, or None.
        steps: number of completed optimisation steps.
        stop_reason: "n_steps", "energy_tol", "variance_tol".
        wall_time: seconds spent in this call.
    """

    state: nk.vqs.MCState | nk.vqs.FullSumState
    energy: nk.stats.Stats
    observables: dict[str, tuple[float, float]]
    exact_energy: float | None
    relative_error: float | None
    steps: int
    stop_reason: str
    wall_time: float


def _make_driver(system: System, vstate, settings: VMCSettings):
    optimizer = optax.sgd(settings.learning_rate_schedule())
    if settings.solver == "minsr":
        return nk.driver.VMC_SR(
            system.hamiltonian,
            optimizer,
            diag_shift=settings.diag_shift_schedule(),
            variational_state=vstate,
            use_ntk=True,
        )
    return nk.driver.VMC(
        system.hamiltonian,
        optimizer,
        variational_state=vstate,
        preconditioner=nk.optimizer.SR(diag_shift=settings.diag_shift_schedule(), holomorphic=settings.holomorphic),
    )


def _stats_row(prefix: str, stats) -> dict[str, float]:
    return {
        prefix: float(np.real(stats.mean)),
        f"{prefix}_error": float(stats.error_of_mean),
        f"{prefix}_variance": float(stats.variance),
    }


def observables_row(vstate, observables: Mapping[str, Any]) -> dict[str, float]:
    """⟨O⟩ and its standard error for every named operator: {name: mean, name_error: error}."""
    row: dict[str, float] = {}
    for name, op in observables.items():
        stats = vstate.expect(op)
        row[name] = float(np.real(stats.mean))
        row[f"{name}_error"] = float(stats.error_of_mean)
    return row


_HINT = ("Lower the learning rate, raise diag_shift or use more samples; restart from the last checkpoint "
         "with mode='resume'.")


def _stop_rule(settings: VMCSettings, target: float | None, callbacks: tuple, driver: Any):
    """stop(step, row): the reason to stop after this row ("energy_tol", "variance_tol", "callback") or None."""
    def stop(step: int, row: Mapping[str, float]) -> str | None:
        reason = None
        for callback in callbacks:
            if callback(step, dict(row), driver) is False:
                reason = "callback"
        energy, variance = row["energy"], row["energy_variance"]
        if (settings.energy_tol is not None and target is not None
                and abs(energy - target) / abs(target) < settings.energy_tol):
            reason = "energy_tol"
        if settings.variance_tol is not None and variance / max(energy**2, 1e-300) < settings.variance_tol:
            reason = "variance_tol"
        return reason
    return stop


def _reference(system: System, exact: bool | None, reference_energy: float | None):
    """(ED ground state or None, the known energy: ED's, else `reference_energy`)."""
    if exact is None:
        exact = exact_module.sector_dimension(system) <= 2**20
    reference = exact_module.ground_state(system) if exact else None
    return reference, (reference.energy if reference is not None else reference_energy)


def ground_state(
    system: System,
    model: Any,
    settings: VMCSettings | None = None,
    *,
    seed: int = 0,
    target_energy: float | None = None,
    exact: bool | None = None,
    reference_energy: float | None = None,
    callbacks: Iterable[Callable[[int, dict, Any], bool | None]] = (),
    initial_parameters: Callable[[Any], Any] | None = None,
    **run: Unpack[RunOptions],
) -> VMCOutcome:
    """Find the ground state of `system` with the ansatz `model` by VMC + SR.

    Args:
        system: the physical system (its Hamiltonian, observables and constraint are used).
        model: a Flax module on `system.hilbert`; autoregressive models are sampled exactly.
        settings: optimisation hyper-parameters (`VMCSettings()` if None).
        seed: seeds the parameter initialisation (`seed`) and the sampler (`seed + 1`).
        target_energy: energy used by `energy_tol`; defaults to the exact energy when it is computed.
        exact: compute the exact reference (default: when the sector has at most 2**20 states).
        reference_energy: a known ground-state energy (Bethe ansatz, literature) stored as /exact/energy and
            used for the relative error when no exact diagonalisation is done (say where it comes from in
            `config`).
        callbacks: functions `f(step, row, driver)` called after each step; returning False stops the run.
        initial_parameters: maps the freshly initialised parameters to the starting ones, e.g. a transfer of
            a trained model (`ansatze.transfer.transfer_parameters`); a resumed run starts from its checkpoint.
        run: `out`, `mode`, `config`, `progress` (`nqs.run.RunOptions`).
    """
    settings = settings or VMCSettings()
    system.check_closed("VMC for a ground state")
    t_start = time.perf_counter()
    check_output("ground_state", **run)
    vstate = make_state(system, model, n_samples=settings.n_samples, seed=seed, chunk_size=settings.chunk_size,
                        prefix_reuse=settings.prefix_reuse)
    if initial_parameters is not None:
        vstate.parameters = initial_parameters(vstate.parameters)
    driver = _make_driver(system, vstate, settings)
    method = {"name": "nqs.vmc.ground_state", **dataclasses.asdict(settings)}
    with Run(kind="ground_state", system=system, ansatz=describe_ansatz(vstate, system=system), method=method,
             seed=seed, **run) as recording:
        driver = resume_driver(recording, driver)
        reference, known_energy = _reference(system, exact, reference_energy)
        recording.write_exact({**({} if known_energy is None else {"energy": known_energy}),
                         **({} if reference is None else reference.observables)})
        every = settings.observables_every
        recorder = DriverCallback(
            recording, loss="energy", n_steps=settings.n_steps, checkpoint_every=settings.checkpoint_every, hint=_HINT,
            extra_row=lambda step, drv: observables_row(drv.state, system.observables) if every and step % every == 0
            else {},
            stop=_stop_rule(settings, known_energy if target_energy is None else target_energy, tuple(callbacks),
                            driver),
        )
        remaining = settings.n_steps - driver.step_count
        if remaining > 0:
            driver.run(remaining, callback=recorder, show_progress=recording.progress)
        steps = max(driver.step_count, recorder.completed)  # a stop after the last update leaves the counter short
        outcome = _final_evaluation(system, driver.state, settings, known_energy, steps, recorder.stop_reason)
        recording.append({"step": float(steps), **_stats_row("energy", outcome.energy),
                    **{k: v for name, (mean, err) in outcome.observables.items()
                       for k, v in ((name, mean), (f"{name}_error", err))}})
    outcome.wall_time = time.perf_counter() - t_start
    return outcome


def _batched_expectations(vstate: nk.vqs.MCState, operators: dict[str, Any], n_total: int) -> dict[str, Any]:
    """Statistics of every operator from at least `n_total` fresh samples, drawn in batches of the training sample
    count: the memory (and the compiled functions) of a training step, however many samples the estimate uses."""
    local = {name: [] for name in operators}
    for _ in range(max(1, math.ceil(n_total / vstate.n_samples))):
        vstate.reset()
        for name, op in operators.items():
            local[name].append(jnp.asarray(vstate.local_estimators(op)))  # sharded: several processes hold parts
    return {name: nk.stats.statistics(jnp.concatenate(values, axis=-1)) for name, values in local.items()}


def _final_evaluation(system, vstate, settings, exact_energy, steps, stop_reason) -> VMCOutcome:
    operators = {"hamiltonian": system.hamiltonian, **system.observables}
    if isinstance(vstate, nk.vqs.MCState):
        stats = _batched_expectations(vstate, operators, settings.n_samples_final)
    else:
        stats = {name: vstate.expect(op) for name, op in operators.items()}
    energy = stats.pop("hamiltonian")
    if not math.isfinite(float(np.real(energy.mean))):
        raise NonFiniteError(f"the final energy estimate is {energy.mean}")
    observables = {name: (float(np.real(s.mean)), float(s.error_of_mean)) for name, s in stats.items()}
    rel = None if exact_energy is None else abs(float(np.real(energy.mean)) - exact_energy) / abs(exact_energy)
    return VMCOutcome(vstate, energy, observables, exact_energy, rel, steps, stop_reason, 0.0)
