"""The run layer: what every method does with its result file, in one place.

A method opens a `Run` before it builds its exact reference, and inside ``with Run(...) as run:``

    checkpoint = run.restore(params, state)        # mode "resume": the validated checkpoint (rows after it dropped)
    run.write_exact({"energy": e0, ...})           # the exact reference beside the history
    run.append({"step": k, "energy": e, ...})      # one history row, flushed
    run.checkpoint(k, params, state)               # atomically replaces the checkpoint taken after row k

and the file is closed on every exit path. With ``out=None`` nothing is written and the same calls keep the rows in
memory (`Run.rows`, `Run.series`), so a method has no branch for "no file". Methods that run inside NetKet's driver
loop (VMC, NDM steady state) record through `DriverCallback`.

**Checkpoints** hold everything a bit-identical continuation needs, in one layout for every method: the
parameter tree (`/checkpoint/params`, where `nqs.results.load_parameters` reads it for every kind of result), the
other model variables, and the method's own state (optimiser state, sampler state and random key, integrator
state, counters; for a NetKet driver the driver itself, serialised by flax).

**Resume** (mode "resume" of an existing file) continues only the same run: /system, /ansatz and /method (and the
configuration when one is given) must agree with the new run's, apart from `IGNORE_ON_RESUME` (a longer run is a
continuation); a mismatch is refused with the differing keys before anything is written. The checkpoint is
validated against the new run's templates (tree structure and shapes) *before* the history rows after it are
dropped, so a failed resume leaves the file as it was. Mode "resume" of a missing file starts afresh.

**Several JAX processes** (`jax.distributed`, docs/reference.md#several-processes-gpus-or-nodes): every process runs
the same method with the same `out`, and process 0 alone opens and writes the file. The others keep the rows in
memory, take part in serialising each checkpoint (NetKet gathers sharded arrays with a collective), on resume
receive process 0's decision and checkpoint (`_from_process_0`), and leave a finished run only once process 0 has
closed its file (a script may read it back).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Self, TypedDict

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
from netket.callbacks import AbstractCallback, StopRun
from netket.utils import struct
from tqdm.auto import tqdm

from nqs import netket_compat
from nqs.result_file import (
    MODES,
    CheckpointBlobs,
    ResultFile,
    ResultFileError,
    check_format,
    decode_attr,
    normalised_attrs,
    open_for_reading,
)
from nqs.system import System

IGNORE_ON_RESUME = ("n_steps", "steps", "quiet", "progress", "out", "mode", "resume", "prefix_reuse")
SYSTEM_RESERVED = ("builder", "params", "conventions", "constraint", "tokens", "n_sites", "local_size",
                   "observables", "n_jump_operators")


class NonFiniteError(FloatingPointError):
    """Raised when the loss, its variance or the parameters become NaN or infinite."""


class RunOptions(TypedDict, total=False):
    """Where and how a method records its run: the keyword arguments every method takes (``**run``) and hands to
    `Run`.

    Keys:
        out: path of the HDF5 result file, or None (the default) to write nothing.
        mode: "fail" (the default: refuse an existing file), "overwrite" (replace it once the new run has a row)
            or "resume" (continue it from its checkpoint; a missing file starts afresh).
        config: the full experiment configuration, stored in the file (and compared on resume when given).
        progress: show a progress bar (default True; False is quiet).
    """

    out: str | Path | None
    mode: str
    config: Mapping[str, Any] | None
    progress: bool


def system_attrs(system: System) -> dict[str, Any]:
    """/system attributes: builder, builder arguments (one attribute each and all of them as "params"),
    conventions (JSON and one "convention_<key>" each), constraint, sizes and the other entries of `describe()`."""
    desc = dict(system.describe())
    params = desc.pop("params")
    conventions = desc["conventions"]
    clash = sorted(k for k in params if k in SYSTEM_RESERVED or k in desc or k.startswith("convention_"))
    if clash:
        raise ValueError(f"builder arguments {clash} clash with the reserved /system attributes")
    return {**params, **desc, "params": params, **{f"convention_{k}": v for k, v in conventions.items()}}


def check_output(kind: str, out: str | Path | None = None, mode: str = "fail", **_: Any) -> None:
    """Fail fast, before any model or exact reference is built, when `out` cannot be written in `mode`: an existing
    file in mode "fail", or in mode "resume" a file that is not an nqs result of this kind and format. Takes a
    method's run options as they are (``check_output(kind, **run)``)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {MODES}")
    if out is None or not Path(out).exists():
        return
    path = Path(out)
    if mode == "fail":  # every process raises (a shared file system), before any collective
        raise FileExistsError(f"{path} exists; pass mode='overwrite' to replace it or mode='resume' to continue it")
    if mode == "resume" and jax.process_index() == 0:  # another process's read lock would block process 0's writer
        with open_for_reading(path) as file:
            check_format(file, path)
            found = decode_attr(file.attrs.get("kind"))
        if found != kind:
            raise ResultFileError(f"cannot resume {path}: it holds a {found!r} run, not {kind!r}")


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A restored checkpoint: the history step it follows, the parameters, the method state, the model state."""

    step: int
    params: Any
    state: Any
    model_state: Any


def _check_fits(template: Any, restored: Any, what: str) -> None:
    """ValueError unless `restored` has the tree structure and leaf shapes of `template`."""
    t_leaves, t_tree = jax.tree_util.tree_flatten(template)
    r_leaves, r_tree = jax.tree_util.tree_flatten(restored)
    if t_tree != r_tree:
        raise ValueError(f"the {what} have another structure")
    for a, b in zip(t_leaves, r_leaves):
        if np.shape(a) != np.shape(b):
            raise ValueError(f"the {what} have shape {np.shape(b)} where the model has {np.shape(a)}")


def _holds_driver(state: Any) -> bool:
    """True for a method state holding a NetKet driver (validated by flax's own restore instead)."""
    if isinstance(state, struct.Pytree):
        return True
    return isinstance(state, Mapping) and any(isinstance(v, struct.Pytree) for v in state.values())


class Rows:
    """Recorded history rows (`rows`) and their columns (`series`); runs and method outcomes share it."""

    rows: list[dict[str, float]]

    def series(self, name: str) -> np.ndarray:
        """Column `name` over the rows (NaN where a row lacks it)."""
        return np.array([r.get(name, np.nan) for r in self.rows], dtype=float)


class Run(Rows):
    """One run of a method: its result file (or none), history rows, exact reference and checkpoints.

    Args:
        out, mode, config, progress: the `RunOptions`.
        kind: "ground_state", "dynamics", "steady_state".
        system: the System (stored under /system).
        ansatz, method: the /ansatz and /method attributes (`nqs.recipes.describe_ansatz`, the settings).
        seed: the run's seed.
        ignore_on_resume: /method and config keys that may differ when resuming.
    """

    def __init__(self, out: str | Path | None = None, mode: str = "fail", *, kind: str, system: System | None,
                 ansatz: Mapping[str, Any], method: Mapping[str, Any], config: Mapping[str, Any] | None = None,
                 seed: int = 0, progress: bool = True, ignore_on_resume: Iterable[str] = IGNORE_ON_RESUME):
        check_output(kind, out, mode)
        self.rows: list[dict[str, float]] = []
        self.exact: dict[str, Any] = {}
        self.method = str(method.get("name", ""))
        self.progress = progress
        self.t0 = time.perf_counter()
        self._file: ResultFile | None = None
        self._out, self._resumed = (None if out is None else Path(out)), False
        if out is None:
            return
        metadata = {"system": system_attrs(system) if system is not None else {}, "ansatz": dict(ansatz),
                    "method": dict(method)}
        if jax.process_index() == 0:  # the one writer (module docstring)
            try:
                self._file = ResultFile(out, mode, kind=kind, metadata=metadata, config=config, seed=seed)
                if self._file.resumed:
                    self._check_same_run(metadata, config, set(ignore_on_resume))
            except Exception:
                if self._file is not None:
                    self._file.close()
                _from_process_0(np.int64(-1))  # the other processes stop as well
                raise
        decision = int(_from_process_0(np.int64(self._file is not None and self._file.resumed)))
        if decision < 0:
            raise ResultFileError(f"process 0 could not open {out} (its error says why)")
        self._resumed = bool(decision)

    def _check_same_run(self, metadata: Mapping[str, Mapping[str, Any]], config: Mapping[str, Any] | None,
                        ignore: set[str]) -> None:
        stored = self._file.stored()
        groups = dict(metadata)
        if config is not None:
            groups["config"] = config
        differ = []
        for group, attrs in groups.items():
            new, old = normalised_attrs(attrs), stored[group]
            keys = sorted(set(old) | set(new))
            differ += [f"{group}.{k}" for k in keys if k not in ignore and old.get(k) != new.get(k)]
        if differ:
            raise ResultFileError(f"cannot resume {self._file.path}: it holds another run; it differs in {differ}")

    # -- the file --------------------------------------------------------------------------------
    @property
    def path(self) -> Path | None:
        return self._out

    @property
    def resumed(self) -> bool:
        """True when this run continues an existing result file."""
        return self._resumed

    def restore(self, params: Any, state: Any = None, model_state: Any = None) -> Checkpoint | None:
        """The checkpoint of a resumed run, restored into the given templates, or None for a fresh start.

        The checkpoint is validated first (structure and shapes of the parameters and the state); only then are the
        history rows after it dropped. A resumed file without a checkpoint drops all its rows.

        Raises:
            ResultFileError: the checkpoint does not fit the templates (the file is left unchanged).
        """
        if not self.resumed:
            return None
        blobs = _checkpoint_from_process_0(None if self._file is None else self._file.read_checkpoint())
        if blobs is None:
            if self._file is not None:
                self._file.truncate_after(-1)
            return None
        try:
            restored = flax.serialization.from_bytes(params, blobs.params)
            _check_fits(params, restored, "parameters")
            method_state = None if state is None else flax.serialization.from_bytes(state, blobs.state)
            if state is not None and not _holds_driver(state):
                _check_fits(state, method_state, "method state")
            models = model_state
            if model_state is not None and blobs.model_state:
                models = flax.serialization.from_bytes(model_state, blobs.model_state)
        except (ValueError, KeyError, TypeError) as err:
            raise ResultFileError(
                f"cannot resume {self._out}: its checkpoint (step {blobs.step}, written by "
                f"{blobs.method or 'an unnamed method'}) does not fit this run ({err}); the file is unchanged"
            ) from err
        if self._file is not None:
            self._file.truncate_after(blobs.step)
        self.rows = []
        return Checkpoint(blobs.step, restored, method_state, models)

    def progress_bar(self, total: float, desc: str, *, initial: float = 0, **kwargs: Any) -> tqdm:
        """A progress bar over `total` (steps, iterations or time), quiet when the run's `progress` is False."""
        return tqdm(total=total, initial=initial, disable=not self.progress, desc=desc, **kwargs)

    def write_exact(self, values: Mapping[str, Any]) -> None:
        """Store exact reference values (scalars, or series on the history grid) under /exact."""
        for name, value in values.items():
            self.exact[name] = value
            if self._file is not None:
                self._file.write_exact(name, value)

    def append(self, row: Mapping[str, Any]) -> dict[str, float]:
        """Append one history row (a "wall_time" since the run opened is added when missing) and flush it."""
        row = {**row}
        row.setdefault("wall_time", time.perf_counter() - self.t0)
        if self._file is not None:
            self._file.append(row)
        self.rows.append(row)
        return row

    def checkpoint(self, step: int, params: Any, state: Any = None, model_state: Any = None) -> None:
        """Atomically replace the checkpoint by the one taken after history step `step` (module docstring)."""
        if self._out is None:
            return
        blob = flax.serialization.to_bytes  # on every process: NetKet gathers sharded leaves with a collective
        blobs = {"params": blob(params), "state": b"" if state is None else blob(state),
                 "model_state": b"" if model_state is None else blob(model_state)}
        if self._file is not None:
            self._file.write_checkpoint(step, **blobs, method=self.method)

    def close(self, *, failed: bool = False) -> None:
        if self._file is not None:
            self._file.close(failed=failed)
        if self._out is not None and not failed and jax.process_count() > 1:  # the file is complete on every process
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices(f"nqs.run closed {self._out}")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(failed=exc_type is not None)


def _from_process_0(value: Any) -> Any:
    """Process 0's `value` (a pytree of numpy arrays of the same shapes everywhere) on every JAX process; `value`
    itself with one process. Every process must call it at the same point."""
    if jax.process_count() == 1:
        return value
    from jax.experimental import multihost_utils

    return multihost_utils.broadcast_one_to_all(value)


def _checkpoint_from_process_0(blobs: CheckpointBlobs | None) -> CheckpointBlobs | None:
    """The checkpoint process 0 read from the file, on every JAX process (the others read nothing)."""
    if jax.process_count() == 1:
        return blobs
    parts = [b"", b"", b""] if blobs is None else [blobs.params, blobs.model_state, blobs.state]
    head = _from_process_0(np.array([blobs is not None, 0 if blobs is None else blobs.step, *map(len, parts)]))
    if not head[0]:
        return None
    data = np.frombuffer(b"".join(parts), np.uint8) if blobs is not None else np.zeros(int(sum(head[2:])), np.uint8)
    data = _from_process_0(data).tobytes()
    ends = np.cumsum(head[2:])
    params, model_state, state = data[:ends[0]], data[ends[0]:ends[1]], data[ends[1]:]
    return CheckpointBlobs(int(head[1]), "" if blobs is None else blobs.method, params, model_state, state)


def check_finite_parameters(params: Any, where: str, hint: str) -> None:
    """NonFiniteError naming `where` when a leaf of `params` is NaN or infinite."""
    if not all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree_util.tree_leaves(params)):
        raise NonFiniteError(f"{where}: the parameters became NaN or infinite. {hint}")


class DriverCallback(AbstractCallback):
    """Records a method that runs inside NetKet's driver loop (`nk.driver.VMC`, `VMC_SR`, `SteadyState`).

    Before each update: a history row with the loss statistics under `loss` (mean, ``_error``, ``_variance``,
    ``_imag``, ``_r_hat``) and `extra_row(step, driver)`; a non-finite loss raises `NonFiniteError` with `hint`;
    `stop(step, row)` may name a stop reason. After each update: a finiteness check of the parameters and a
    checkpoint (parameters, model state and the driver itself) every `checkpoint_every` steps, at step `n_steps`
    and when stopping, after which the run stops.
    """

    run: Run = struct.field(pytree_node=False, serialize=False)
    loss: str = struct.field(pytree_node=False, serialize=False)
    n_steps: int = struct.field(pytree_node=False, serialize=False)
    checkpoint_every: int = struct.field(pytree_node=False, serialize=False)
    extra_row: Callable = struct.field(pytree_node=False, serialize=False)
    stop: Callable | None = struct.field(pytree_node=False, serialize=False)
    hint: str = struct.field(pytree_node=False, serialize=False)
    stop_reason: str = struct.field(pytree_node=False, serialize=False)
    completed: int = struct.field(pytree_node=False, serialize=False)

    def __init__(self, run: Run, *, loss: str, n_steps: int, checkpoint_every: int,
                 extra_row: Callable[[int, Any], Mapping[str, float]] = lambda step, driver: {},
                 stop: Callable[[int, Mapping[str, float]], str | None] | None = None, hint: str = ""):
        self.run, self.loss, self.n_steps, self.checkpoint_every = run, loss, n_steps, max(checkpoint_every, 1)
        self.extra_row, self.stop, self.hint = extra_row, stop, hint
        self.stop_reason, self.completed = "n_steps", 0

    @property
    def callback_order(self) -> int:
        return 100  # after loggers: this callback may stop the run

    def before_parameter_update(self, step, log_data, driver):
        stats = netket_compat.loss_stats(driver, log_data)
        mean, variance = complex(stats.mean), float(stats.variance)
        if not (math.isfinite(mean.real) and math.isfinite(variance)):
            raise NonFiniteError(f"step {step}: the {self.loss} estimate is {mean.real} with variance {variance}; "
                                 f"the optimisation diverged. {self.hint}")
        name = self.loss
        row = {"step": float(step), name: mean.real, f"{name}_error": float(stats.error_of_mean),
               f"{name}_variance": variance, f"{name}_imag": mean.imag,
               f"{name}_r_hat": float(getattr(stats, "R_hat", np.nan))}
        row.update(self.extra_row(step, driver))
        row = self.run.append(row)
        reason = None if self.stop is None else self.stop(step, row)
        if reason is not None:
            self.stop_reason = reason

    def on_step_end(self, step, log_data, driver):
        check_finite_parameters(driver.state.parameters, f"step {step}", self.hint)
        self.completed = step + 1
        stopping = self.stop_reason != "n_steps"
        if (step + 1) % self.checkpoint_every == 0 or step + 1 >= self.n_steps or stopping:
            self.run.checkpoint(step, driver.state.parameters, _driver_state(driver), driver.state.model_state)
        if stopping:
            raise StopRun(f"{self.stop_reason} reached at step {step}")


def _sampler_states(vstate: Any) -> dict[str, Any]:
    """The current sampler states of a variational state (and of the diagonal of a mixed state). NetKet's own
    serialisation of an `MCMixedState` keeps the sampler state from *before* the last sampling, which replays
    that sampling after a restore; a bit-identical continuation needs the current ones."""
    out = {}
    if getattr(vstate, "sampler_state", None) is not None:
        out["main"] = vstate.sampler_state
    diagonal = getattr(vstate, "diagonal", None)
    if diagonal is not None:
        out["diagonal"] = diagonal.sampler_state
    return out


def _driver_state(driver: Any) -> dict[str, Any]:
    """A NetKet driver's checkpoint state: the driver itself (flax serialisation: variational state, optimiser
    state, step count) and the current sampler states."""
    return {"driver": driver, "samplers": _sampler_states(driver.state)}


def resume_driver(run: Run, driver: Any) -> Any:
    """The NetKet driver restored from the run's checkpoint (its step counter after the checkpointed step, its
    samplers where they were), or `driver` itself for a fresh start."""
    checkpoint = run.restore(driver.state.parameters, _driver_state(driver))
    if checkpoint is None:
        return driver
    restored, samplers = checkpoint.state["driver"], checkpoint.state["samplers"]
    netket_compat.set_step_count(restored, checkpoint.step + 1)
    if "main" in samplers:
        restored.state.sampler_state = samplers["main"]
    if "diagonal" in samplers:
        restored.state.diagonal.sampler_state = samplers["diagonal"]
    return restored
