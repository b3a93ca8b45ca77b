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
from typing import Any

import flax.serialization
import jax
import jax.numpy as jnp
import netket as nk
import numpy as np
import optax
from netket.callbacks import AbstractCallback, StopRun
from netket.utils import struct

from nqs import exact as exact_module
from nqs.results import ResultFile, describe_ansatz
from nqs.states import MAX_ENUMERATED_STATES, check_model_matches, make_state  # noqa: F401  (moved; re-exported)
from nqs.system import System


class NonFiniteError(FloatingPointError):
    """Raised when the energy, its variance or the parameters become NaN or infinite."""


class _Converged(StopRun):
    """A stop criterion was met."""


def learning_rate_schedule(kind: str, initial: float, final: float, n_steps: int) -> optax.Schedule:
    """"constant" (η), "cosine" (η → `final` over n_steps) or "exponential" (η (final/η)^{k/n_steps})."""
    steps = max(n_steps, 1)
    if kind == "cosine":
        return optax.cosine_decay_schedule(initial, steps, alpha=final / initial)
    if kind == "exponential":
        return optax.exponential_decay(initial, steps, final / initial)
    return optax.constant_schedule(initial)


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

    def __post_init__(self):
        if self.n_steps < 0 or self.n_samples < 0:
            raise ValueError(f"n_steps and n_samples must be >= 0, got {self.n_steps}, {self.n_samples}")
        if self.n_samples == 0 and self.solver == "minsr":
            raise ValueError("solver='minsr' works in sample space: use solver='sr' with n_samples=0 (full sum)")
        if self.lr_schedule not in ("constant", "cosine", "exponential"):
            raise ValueError(f"lr_schedule must be 'constant', 'cosine' or 'exponential', got {self.lr_schedule!r}")
        if self.solver not in ("sr", "minsr"):
            raise ValueError(f"solver must be 'sr' or 'minsr', got {self.solver!r}")
        for name in ("learning_rate", "diag_shift"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be finite and positive, got {value}")

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


def _all_finite(tree) -> bool:
    leaves = jax.tree_util.tree_leaves(tree)
    return bool(all(jnp.all(jnp.isfinite(leaf)) for leaf in leaves))


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


class _RecordAndStop(AbstractCallback):
    """Writes one history row per step, checkpoints, checks finiteness and stop criteria."""

    system: System = struct.field(pytree_node=False, serialize=False)
    settings: VMCSettings = struct.field(pytree_node=False, serialize=False)
    result: ResultFile | None = struct.field(pytree_node=False, serialize=False)
    target: float | None = struct.field(pytree_node=False, serialize=False)
    user_callbacks: tuple = struct.field(pytree_node=False, serialize=False)
    stop_reason: str = struct.field(pytree_node=False, serialize=False)
    completed: int = struct.field(pytree_node=False, serialize=False)
    t0: float = struct.field(pytree_node=False, serialize=False)

    def __init__(self, system, settings, result: ResultFile | None, target: float | None, user_callbacks):
        self.system = system
        self.settings = settings
        self.result = result
        self.target = target
        self.user_callbacks = tuple(user_callbacks)
        self.stop_reason = "n_steps"
        self.completed = 0
        self.t0 = time.perf_counter()

    @property
    def callback_order(self) -> int:
        return 100  # after loggers: this callback may stop the run

    def before_parameter_update(self, step, log_data, driver):
        stats = log_data[driver._loss_name]
        mean, var = complex(stats.mean), float(stats.variance)
        if not (math.isfinite(mean.real) and math.isfinite(var)):
            raise NonFiniteError(
                f"step {step}: the energy estimate is {mean.real} with variance {var}; the optimisation diverged. "
                "Lower the learning rate, raise diag_shift or use more samples; restart from the last checkpoint "
                "with mode='resume'."
            )
        row = {"step": float(step), "wall_time": time.perf_counter() - self.t0}
        row.update(_stats_row("energy", stats))
        row["energy_imag"] = mean.imag
        row["energy_r_hat"] = float(getattr(stats, "R_hat", np.nan))
        every = self.settings.observables_every
        if every and step % every == 0:
            row.update(observables_row(driver.state, self.system.observables))
        if self.result is not None:
            self.result.append(row)
        for cb in self.user_callbacks:
            if cb(step, row, driver) is False:
                self.stop_reason = "callback"
        self._check_stop(step, mean.real, var)

    def _check_stop(self, step, energy, variance):
        s = self.settings
        if (s.energy_tol is not None and self.target is not None
                and abs(energy - self.target) / abs(self.target) < s.energy_tol):
            self.stop_reason = "energy_tol"
        if s.variance_tol is not None and variance / max(energy**2, 1e-300) < s.variance_tol:
            self.stop_reason = "variance_tol"

    def on_step_end(self, step, log_data, driver):
        if not _all_finite(driver.state.parameters):
            raise NonFiniteError(
                f"step {step}: the parameters became NaN or infinite after the update. "
                "Lower the learning rate or raise diag_shift."
            )
        self.completed = step + 1
        last = step + 1 == driver._target_step
        stop = self.stop_reason != "n_steps"
        if self.result is not None and ((step + 1) % self.settings.checkpoint_every == 0 or last or stop):
            self.result.save_checkpoint(flax.serialization.to_bytes(driver), step)
        if stop:
            raise _Converged(f"{self.stop_reason} reached at step {step}")


def ground_state(
    system: System,
    model: Any,
    settings: VMCSettings | None = None,
    *,
    seed: int = 0,
    out: str | None = None,
    mode: str = "fail",
    config: Mapping[str, Any] | None = None,
    target_energy: float | None = None,
    exact: bool | None = None,
    reference_energy: float | None = None,
    callbacks: Iterable[Callable[[int, dict, Any], bool | None]] = (),
    progress: bool = True,
    initial_parameters: Callable[[Any], Any] | None = None,
) -> VMCOutcome:
    """Find the ground state of `system` with the ansatz `model` by VMC + SR.

    Args:
        system: the physical system (its Hamiltonian, observables and constraint are used).
        model: a Flax module on `system.hilbert`; autoregressive models are sampled exactly.
        settings: optimisation hyper-parameters (`VMCSettings()` if None).
        seed: seeds the parameter initialisation (`seed`) and the sampler (`seed + 1`).
        out: path of the HDF5 result file, or None to write nothing.
        mode: "fail" (refuse an existing file), "overwrite" or "resume" (continue from its checkpoint).
        config: the full experiment configuration, stored in the result file.
        target_energy: energy used by `energy_tol`; defaults to the exact energy when it is computed.
        exact: compute the exact reference (default: when the sector has at most 2**20 states).
        reference_energy: a known ground-state energy (Bethe ansatz, literature) stored as /exact/energy and
            used for the relative error when no exact diagonalisation is done (say where it comes from in
            `config`).
        callbacks: functions `f(step, row, driver)` called after each step; returning False stops the run.
        progress: show NetKet's progress bar.
        initial_parameters: maps the freshly initialised parameters to the starting ones, e.g. a transfer of
            a trained model (`nqs.scripting.initial_parameters`); a resumed run starts from its checkpoint.
    """
    settings = settings or VMCSettings()
    t_start = time.perf_counter()
    vstate = make_state(system, model, n_samples=settings.n_samples, seed=seed, chunk_size=settings.chunk_size)
    if initial_parameters is not None:
        vstate.parameters = initial_parameters(vstate.parameters)
    driver = _make_driver(system, vstate, settings)

    if exact is None:
        exact = exact_module.sector_dimension(system) <= 2**20
    reference = exact_module.ground_state(system) if exact else None
    known_energy = reference.energy if reference is not None else reference_energy
    if target_energy is None:
        target_energy = known_energy

    result = None
    if out is not None:
        result = ResultFile(
            out,
            mode,
            kind="ground_state",
            config=dict(config or {}),
            seed=seed,
            system=system,
            ansatz=describe_ansatz(vstate),
            method={"name": "nqs.vmc.ground_state", **dataclasses.asdict(settings)},
        )
    try:
        if result is not None:
            if known_energy is not None:
                result.write_exact("energy", known_energy)
            if reference is not None:
                result.write_exact_values(reference.observables)
            checkpoint = result.load_checkpoint()
            if checkpoint is not None:
                blob, last_step = checkpoint
                driver = flax.serialization.from_bytes(driver, blob)
                driver._step_count = last_step + 1
        recorder = _RecordAndStop(system, settings, result, target_energy, callbacks)
        remaining = settings.n_steps - driver.step_count
        if remaining > 0:
            driver.run(remaining, callback=recorder, show_progress=progress)
            # a stop raised after the last update leaves NetKet's counter one short of the finished steps
            driver._step_count = max(driver.step_count, recorder.completed)
        vstate = driver.state
        outcome = _final_evaluation(system, vstate, settings, known_energy, driver.step_count, recorder.stop_reason)
        if result is not None:
            row = {"step": float(driver.step_count), "wall_time": time.perf_counter() - recorder.t0}
            row.update(_stats_row("energy", outcome.energy))
            for name, (mean, err) in outcome.observables.items():
                row[name], row[f"{name}_error"] = mean, err
            result.append(row)
    finally:
        if result is not None:
            result.close()
    outcome.wall_time = time.perf_counter() - t_start
    return outcome


def _final_evaluation(system, vstate, settings, exact_energy, steps, stop_reason) -> VMCOutcome:
    sampled = isinstance(vstate, nk.vqs.MCState)
    if sampled:
        vstate.n_samples = max(settings.n_samples_final, vstate.sampler.n_chains)
    energy = vstate.expect(system.hamiltonian)
    if not math.isfinite(float(np.real(energy.mean))):
        raise NonFiniteError(f"the final energy estimate is {energy.mean}")
    observables = {}
    for name, op in system.observables.items():
        stats = vstate.expect(op)
        observables[name] = (float(np.real(stats.mean)), float(stats.error_of_mean))
    if sampled:
        vstate.n_samples = settings.n_samples
    rel = None if exact_energy is None else abs(float(np.real(energy.mean)) - exact_energy) / abs(exact_energy)
    return VMCOutcome(vstate, energy, observables, exact_energy, rel, steps, stop_reason, 0.0)
