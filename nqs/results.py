"""The result file: one HDF5 file per run, written as the run goes, with the exact reference beside it.

Layout (format_version 1)::

    /                attrs: format_version, kind, created (UTC, ISO 8601), versions (JSON), seed, config (JSON)
    /system          attrs: builder, one attribute per builder argument, conventions (JSON and one
                     "convention_<key>" attribute each), constraint (JSON), n_sites, local_size,
                     observables (JSON), n_jump_operators
    /ansatz          attrs: name, hyper-parameters, n_parameters
    /method          attrs: name, hyper-parameters
    /history/<name>  1-D resizable float64 datasets, one row per step (missing values are NaN)
    /exact/<name>    exact reference values: scalars, or arrays on the history grid (time series)
    /checkpoint      dataset "state" (opaque bytes) with attribute "step"

Attributes: numbers, booleans and strings are stored as such; everything else (lists, dicts, None,
complex numbers) as a JSON string, which `load` decodes again.

Design decisions:

* Every row is flushed when appended, so a killed run keeps every finished step, and `load` can
  read the file of a running job (it opens it without HDF5's file lock when the writer holds it).
* Complex values are split: the real part is stored under the name, the imaginary part under
  ``<name>_imag``; all history datasets stay float64.
* Mode ``"resume"`` reopens a file, checks that it is a result of the same kind and configuration,
  and drops the history rows whose step is after the last checkpoint (all rows when there is no
  checkpoint): the resumed run recomputes them from the checkpointed state.
* Files use HDF5's default (earliest) format: with ``libver="latest"`` a writer killed mid-run leaves
  the file-consistency flag set and HDF5 refuses to reopen the file until ``h5clear`` is run.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import platform
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import h5py
import numpy as np

if TYPE_CHECKING:
    from nqs.system import System

FORMAT_VERSION = 1
MODES = ("fail", "overwrite", "resume")
IGNORE_ON_RESUME = ("n_steps", "steps", "quiet", "progress", "out", "mode", "resume")
SYSTEM_RESERVED = ("builder", "conventions", "constraint", "n_sites", "local_size", "observables", "n_jump_operators")
NOT_A_QUANTITY = ("step", "time", "wall_time")
NOT_A_QUANTITY_SUFFIXES = ("_error", "_imag", "_variance", "_r_hat")


class ResultFileError(ValueError):
    """A file that is not a readable nqs result file, or one that cannot be resumed."""


# -- encoding ------------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    """Versions of Python and of the packages that determine a run's numbers."""
    out = {"python": platform.python_version()}
    for pkg in ("nqs", "netket", "jax", "jaxlib", "flax", "optax", "qutip", "h5py", "numpy", "scipy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _json_default(obj: Any) -> Any:
    """JSON form of numpy scalars and arrays, complex numbers, paths, sets, dataclasses; repr otherwise."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, complex):
        return [obj.real, obj.imag]
    if isinstance(obj, (Path, type)):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=str)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    return repr(obj)


def to_json(obj: Any) -> str:
    """`json.dumps` with sorted keys that also accepts numpy values, tuples, paths and complex numbers."""
    return json.dumps(obj, default=_json_default, sort_keys=True)


def _attr_value(value: Any) -> Any:
    """A value h5py can store as an attribute: numbers, booleans and strings as such, everything else as JSON."""
    if isinstance(value, (bool, int, float, str, np.bool_, np.integer, np.floating)):
        return value
    encoded = to_json(value)
    decoded = json.loads(encoded)
    return decoded if isinstance(decoded, str) else encoded


def _write_attrs(group: h5py.Group, attrs: Mapping[str, Any]) -> None:
    for key, value in attrs.items():
        group.attrs[key] = _attr_value(value)


def _decode(value: Any) -> Any:
    """Inverse of `_attr_value`: JSON strings (objects, arrays, null) are parsed, numpy scalars become Python's."""
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        if value == "null" or value[:1] in ("[", "{"):
            try:
                return json.loads(value)
            except json.JSONDecodeError:
                return value
        return value
    if isinstance(value, np.generic):
        return value.item()
    return value


def _decoded_attrs(obj: h5py.HLObject) -> dict[str, Any]:
    return {key: _decode(value) for key, value in obj.attrs.items()}


# -- writing -------------------------------------------------------------------------------------


def _row_values(row: Mapping[str, Any]) -> dict[str, float]:
    """Flatten one history row to floats, splitting complex values into `name` and `name_imag`."""
    if "step" not in row:
        raise ValueError("a history row needs a 'step' entry")
    values: dict[str, float] = {}
    for key, value in row.items():
        if not isinstance(key, str) or not key or "/" in key:
            raise ValueError(f"history names must be non-empty strings without '/', got {key!r}")
        array = np.asarray(value)
        if array.ndim != 0:
            raise ValueError(f"history entry {key!r} must be a scalar, got shape {array.shape}")
        values[key] = float(array.real)
        if np.iscomplexobj(array):
            if f"{key}_imag" in row:
                raise ValueError(f"history entry {key!r} is complex and {key + '_imag'!r} is also given")
            values[f"{key}_imag"] = float(array.imag)
    return values


def _truncate_after(file: h5py.File, step: int) -> None:
    """Drop the history rows from the first one whose step is after `step` onwards."""
    history = file["history"]
    if "step" not in history:
        return
    later = np.flatnonzero(history["step"][()] > step)
    if len(later):
        for dataset in history.values():
            dataset.resize((int(later[0]),))


class ResultFile:
    """Writer of one run's result file (a context manager); see the module docstring for the layout.

    Args:
        path: file to write; parent folders are created.
        mode: "fail" (refuse an existing file), "overwrite" (start afresh) or "resume" (continue an
            existing file from its checkpoint; a missing file is created).
        kind: "ground_state", "dynamics", "steady_state", ...
        config: the full experiment configuration (stored as JSON).
        seed: the run's seed.
        system: the `nqs.System` (its `describe()` is stored under /system), or None.
        ansatz: name and hyper-parameters of the ansatz (and n_parameters).
        method: name and hyper-parameters of the method.
        ignore_on_resume: configuration keys that may differ when resuming.

    Raises:
        FileExistsError: mode "fail" and the file exists.
        ResultFileError: mode "resume" and the file is not a result of this kind and configuration,
            or another process has it open.
        ValueError: unknown mode.
    """

    def __init__(
        self,
        path: str | Path,
        mode: str = "fail",
        *,
        kind: str,
        config: Mapping[str, Any],
        seed: int,
        system: System | None = None,
        ansatz: Mapping[str, Any] | None = None,
        method: Mapping[str, Any] | None = None,
        ignore_on_resume: Iterable[str] = IGNORE_ON_RESUME,
    ):
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {MODES}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        exists = self.path.exists()
        if exists and mode == "fail":
            raise FileExistsError(
                f"{self.path} exists; pass mode='overwrite' to replace it or mode='resume' to continue it"
            )
        if exists and mode == "resume":
            self._file = self._open_for_resume(kind, config, set(ignore_on_resume))
        else:
            self._file = h5py.File(self.path, "w")
            self._write_metadata(kind, config, seed, system, ansatz or {}, method or {})
        self._file.flush()

    # -- opening ---------------------------------------------------------------------------------
    def _open_for_resume(self, kind: str, config: Mapping[str, Any], ignore: set[str]) -> h5py.File:
        try:
            file = h5py.File(self.path, "a")
        except BlockingIOError as err:
            raise ResultFileError(
                f"cannot resume {self.path}: another process has it open (is that run still going?)"
            ) from err
        except OSError as err:
            raise ResultFileError(f"cannot resume {self.path}: not a readable HDF5 file ({err})") from err
        try:
            self._check_resumable(file, kind, config, ignore)
        except ResultFileError:
            file.close()
            raise
        checkpoint = file.get("checkpoint")
        _truncate_after(file, int(checkpoint.attrs["step"]) if checkpoint is not None else -1)
        return file

    def _check_resumable(self, file: h5py.File, kind: str, config: Mapping[str, Any], ignore: set[str]) -> None:
        if file.attrs.get("format_version") is None or "history" not in file:
            raise ResultFileError(f"cannot resume {self.path}: it is not an nqs result file")
        found = _decode(file.attrs.get("kind"))
        if found != kind:
            raise ResultFileError(f"cannot resume {self.path}: it holds a {found!r} run, not {kind!r}")
        old = _decode(file.attrs["config"]) or {}
        new = json.loads(to_json(dict(config)))
        differ = sorted(k for k in set(old) | set(new) if k not in ignore and old.get(k) != new.get(k))
        if differ:
            raise ResultFileError(f"cannot resume {self.path}: the configuration differs in {differ}")

    def _write_metadata(self, kind, config, seed, system, ansatz, method) -> None:
        file = self._file
        file.attrs["format_version"] = FORMAT_VERSION
        file.attrs["kind"] = kind
        file.attrs["created"] = datetime.datetime.now(datetime.UTC).isoformat()
        file.attrs["versions"] = to_json(versions())
        file.attrs["seed"] = int(seed)
        file.attrs["config"] = to_json(dict(config))
        group = file.create_group("system")
        if system is not None:
            _write_attrs(group, _system_attrs(system))
        _write_attrs(file.create_group("ansatz"), ansatz)
        _write_attrs(file.create_group("method"), method)
        file.create_group("history")
        file.create_group("exact")

    # -- writing ---------------------------------------------------------------------------------
    @property
    def n_rows(self) -> int:
        """Number of history rows written (after a resume: those kept)."""
        history = self._file["history"]
        return history["step"].shape[0] if "step" in history else 0

    @property
    def last_step(self) -> int | None:
        """Step of the last history row, or None when there is none."""
        n = self.n_rows
        return int(self._file["history/step"][n - 1]) if n else None

    def append(self, row: Mapping[str, Any]) -> None:
        """Append one history row and flush the file.

        `row` maps names to real or complex scalars and needs a "step" entry. A name seen for the
        first time gets a new column, NaN in the earlier rows; columns missing from `row` get NaN.
        A complex value is stored as its real part under the name and its imaginary part under
        ``<name>_imag``.
        """
        values = _row_values(row)
        history = self._file["history"]
        n = self.n_rows
        for key in values:
            if key not in history:
                history.create_dataset(key, data=np.full(n, np.nan), maxshape=(None,), chunks=(256,), dtype="f8")
        for key, dataset in history.items():
            dataset.resize((n + 1,))
            dataset[n] = values.get(key, np.nan)
        self._file.flush()

    def write_exact(self, name: str, value: Any) -> None:
        """Store an exact reference value (scalar or array) under /exact/<name>, replacing any old one."""
        group = self._file["exact"]
        if name in group:
            del group[name]
        group.create_dataset(name, data=np.asarray(value))
        self._file.flush()

    def write_exact_values(self, values: Mapping[str, Any]) -> None:
        """`write_exact` for every (name, value) of a mapping (energy, observables, ...)."""
        for name, value in values.items():
            self.write_exact(name, value)

    def save_checkpoint(self, state: bytes, step: int) -> None:
        """Replace the checkpoint by `state` (opaque bytes) taken after step `step`, and flush."""
        group = self._file.require_group("checkpoint")
        if "state" in group:
            del group["state"]
        group.create_dataset("state", data=np.void(state))
        group.attrs["step"] = int(step)
        self._file.flush()

    def load_checkpoint(self) -> tuple[bytes, int] | None:
        """(state bytes, step) of the last checkpoint, or None."""
        group = self._file.get("checkpoint")
        if group is None or "state" not in group:
            return None
        return group["state"][()].tobytes(), int(group.attrs["step"])

    def close(self) -> None:
        """Flush and close the file (idempotent)."""
        if self._file.id.valid:
            self._file.flush()
            self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _system_attrs(system: System) -> dict[str, Any]:
    """/system attributes: builder, builder arguments, conventions (JSON and one per key), constraint, sizes."""
    desc = system.describe()
    clash = sorted(k for k in desc["params"] if k in SYSTEM_RESERVED or k.startswith("convention_"))
    if clash:
        raise ValueError(f"builder arguments {clash} clash with the reserved /system attributes {SYSTEM_RESERVED}")
    conventions = desc["conventions"]
    return {
        "builder": desc["builder"],
        **desc["params"],
        "conventions": to_json(conventions),
        **{f"convention_{k}": v for k, v in conventions.items()},
        "constraint": to_json(desc["constraint"]),
        "n_sites": desc["n_sites"],
        "local_size": desc["local_size"],
        "observables": desc["observables"],
        "n_jump_operators": desc["n_jump_operators"],
    }


# -- reading -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Result:
    """A result file read back: metadata, history, exact reference and checkpoint step."""

    path: Path
    attrs: dict[str, Any]
    system: dict[str, Any]
    ansatz: dict[str, Any]
    method: dict[str, Any]
    history: dict[str, np.ndarray]
    exact: dict[str, Any]
    checkpoint_step: int | None

    @property
    def kind(self) -> str:
        return self.attrs["kind"]

    @property
    def n_rows(self) -> int:
        """Number of history rows."""
        return len(self.history.get("step", ()))


def _check_format(file: h5py.File, path: Path) -> None:
    version = _decode(file.attrs.get("format_version"))
    if version is None or "history" not in file:
        raise ResultFileError(f"{path} is an HDF5 file but not an nqs result file (no format_version or /history)")
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise ResultFileError(f"{path} has format_version {version!r}; this nqs reads versions 1 to {FORMAT_VERSION}")


def _read_exact(file: h5py.File) -> dict[str, Any]:
    group = file.get("exact", {})
    return {name: (ds[()].item() if ds.shape == () else ds[()]) for name, ds in group.items()}


def _open_for_reading(path: Path) -> h5py.File:
    """Open read-only; a file locked by a running writer is opened without the lock (its flushed rows)."""
    try:
        return h5py.File(path, "r")
    except BlockingIOError:
        pass
    except OSError as err:
        raise ResultFileError(f"{path} is not a readable HDF5 file ({err})") from err
    try:
        return h5py.File(path, "r", locking=False)
    except OSError as err:
        raise ResultFileError(f"{path} is being written by another process and could not be read ({err})") from err


def load(path: str | Path) -> Result:
    """Read a result file (also one that a running job is writing: its rows flushed so far).

    Raises:
        FileNotFoundError: the file does not exist.
        ResultFileError: it is not HDF5, it is HDF5 but not an nqs result file, or its format_version is unsupported.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    with _open_for_reading(path) as file:
        _check_format(file, path)
        checkpoint = file.get("checkpoint")
        step = None if checkpoint is None else checkpoint.attrs.get("step")
        return Result(
            path=path,
            attrs=_decoded_attrs(file),
            system=_decoded_attrs(file["system"]) if "system" in file else {},
            ansatz=_decoded_attrs(file["ansatz"]) if "ansatz" in file else {},
            method=_decoded_attrs(file["method"]) if "method" in file else {},
            history={name: ds[()] for name, ds in file["history"].items()},
            exact=_read_exact(file),
            checkpoint_step=None if step is None else int(step),
        )


def load_parameters(path: str | Path) -> dict[str, Any]:
    """The variational parameters in the checkpoint of a result file (a nested dict of numpy arrays).

    Each method checkpoints its own Flax msgpack state; three layouts occur: a NetKet driver (VMC ground
    state, NDM steady state: ``state/variables/params``), a run state with ``params`` (time evolution
    ``{"initial", "params", ...}``: the current parameters; POVM steady state ``{"params", "finished", ...}``: the
    current parameters, the best ones once finished), and bare parameters (POVM steady-state files written before
    its run state existed).
    Use with `ansatze.transfer.transfer_parameters` to start another run (another size, coupling or dtype).

    Raises:
        ResultFileError: the file has no checkpoint.
    """
    import flax.serialization

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    with _open_for_reading(path) as file:
        _check_format(file, path)
        if "checkpoint" not in file or "state" not in file["checkpoint"]:
            raise ResultFileError(f"{path} has no checkpoint, so no parameters to load")
        state = flax.serialization.msgpack_restore(file["checkpoint"]["state"][()].tobytes())
    variables = state.get("state", {}).get("variables") if isinstance(state.get("state"), dict) else None
    if isinstance(variables, dict) and "params" in variables:
        return variables["params"]
    if "params" in state and ("initial" in state or "finished" in state):
        return state["params"]
    return state


# -- comparison ----------------------------------------------------------------------------------


def _last_finite(values: np.ndarray) -> int | None:
    index = np.flatnonzero(np.isfinite(values))
    return int(index[-1]) if len(index) else None


def _is_quantity(name: str) -> bool:
    return name not in NOT_A_QUANTITY and not name.endswith(NOT_A_QUANTITY_SUFFIXES)


def final_values(result: Result) -> dict[str, tuple[float, float | None]]:
    """Last finite value of each history quantity (not errors, step, time) with its error bar or None."""
    return {name: (value, err) for name, (value, err, _) in _final_rows(result).items()}


def _final_rows(result: Result) -> dict[str, tuple[float, float | None, int]]:
    """name -> (last finite value, its error or None, its row index)."""
    out = {}
    for name, values in result.history.items():
        index = _last_finite(values) if _is_quantity(name) else None
        if index is None:
            continue
        errors = result.history.get(f"{name}_error")
        err = None if errors is None or not math.isfinite(errors[index]) else float(errors[index])
        out[name] = (float(values[index]), err, index)
    return out


def exact_on_history(result: Result, name: str) -> np.ndarray | None:
    """The exact reference for history column `name`, one value per history row, or None.

    A scalar reference is repeated; a 1-D reference is a series on the history grid and is cut to
    the rows written (a run stopped early has fewer rows). When both /exact/time and the "time"
    column exist, they must agree on those rows, otherwise None is returned.
    """
    if name not in result.exact:
        return None
    ref = np.real(np.asarray(result.exact[name]))
    n = result.n_rows
    if ref.ndim == 0:
        return np.full(n, float(ref))
    if ref.ndim != 1 or len(ref) < n:
        return None
    t_exact, t_history = result.exact.get("time"), result.history.get("time")
    on_grid = t_exact is None or t_history is None or (
        np.ndim(t_exact) == 1 and len(t_exact) >= n and np.allclose(t_exact[:n], t_history)
    )
    return ref[:n].astype(float) if on_grid else None


def describe_ansatz(vstate: Any, ansatz: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The /ansatz attributes of a run: `ansatz` if given, else the model's own ``describe()`` (our ansätze),
    else its class name and the scalar fields of its Flax dataclass (NetKet models, e.g. RBM alpha and
    param_dtype); always with ``n_parameters``."""
    model = vstate.model
    describe = getattr(model, "describe", None)
    if ansatz is not None:
        info = dict(ansatz)
    elif callable(describe):
        info = dict(describe())
    else:
        info = {"name": type(model).__name__}
        for field in dataclasses.fields(model) if dataclasses.is_dataclass(model) else ():
            value = getattr(model, field.name, None)
            if field.name not in ("parent", "name") and isinstance(value, (bool, int, float, str)):
                info[field.name] = value
            elif field.name.endswith("dtype") and value is not None:
                info[field.name] = str(np.dtype(value))
    info.setdefault("name", type(model).__name__)
    info["n_parameters"] = int(vstate.n_parameters)
    return info


def max_deviation(result: Result) -> dict[str, float]:
    """max_t |value(t) − exact(t)| of every history column with an exact time series (rows where the column
    is NaN are skipped): the "max |Δ observable| over the window" of a dynamics run."""
    out = {}
    for name, column in result.history.items():
        if name == "time" or np.ndim(result.exact.get(name)) != 1:
            continue
        ref = exact_on_history(result, name)
        if ref is None:
            continue
        diff = np.abs(np.asarray(column, dtype=float) - ref)
        if np.isfinite(diff).any():
            out[name] = float(np.nanmax(diff))
    return out


def summary_rows(result: Result) -> list[dict[str, Any]]:
    """One row per final value: name, value, error, exact, abs_err, rel_err, time.

    `exact` is the reference at the row of the final value (None when there is none); `time` is that
    row's time when the reference is a time series, else None. `rel_err` is NaN for a zero reference.
    """
    times = result.history.get("time")
    rows = []
    for name, (value, err, index) in _final_rows(result).items():
        series = exact_on_history(result, name)
        ref = None if series is None else float(series[index])
        at_time = ref is not None and times is not None and np.ndim(result.exact[name]) == 1
        abs_err = None if ref is None else abs(value - ref)
        rows.append({
            "name": name, "value": value, "error": err, "exact": ref, "abs_err": abs_err,
            "rel_err": None if ref is None else (abs_err / abs(ref) if abs(ref) > 1e-12 else float("nan")),
            "time": float(times[index]) if at_time else None,
        })
    return rows


def compare_with_exact(result: Result) -> list[dict[str, Any]]:
    """The `summary_rows` that have an exact reference (scalar, or a time series at the final row)."""
    return [row for row in summary_rows(result) if row["exact"] is not None]


def _cell(value: float | None, spec: str, width: int) -> str:
    return " " * width if value is None else format(value, f"{width}{spec}")


def format_table(rows: Iterable[Mapping[str, Any]]) -> str:
    """A fixed-width text table of `summary_rows` / `compare_with_exact` rows (blank cells for None)."""
    lines = [f"{'quantity':36s} {'value':>16s} {'± error':>9s} {'exact':>16s} {'abs. err':>9s} {'rel. err':>9s}"]
    for r in rows:
        name = r["name"] if r.get("time") is None else f"{r['name']} (t={r['time']:.4g})"
        lines.append(
            f"{name:36s} {_cell(r['value'], '.10f', 16)} {_cell(r['error'], '.2e', 9)} "
            f"{_cell(r['exact'], '.10f', 16)} {_cell(r['abs_err'], '.2e', 9)} {_cell(r['rel_err'], '.2e', 9)}".rstrip()
        )
    return "\n".join(lines)
