"""The result file on disk: one HDF5 file per run, written as the run goes (the writer; `nqs.results` reads).

Layout (format_version 2)::

    /                attrs: format_version, kind, created (UTC, ISO 8601), versions (JSON), seed, config (JSON)
    /system          attrs: builder, one attribute per builder argument, conventions (JSON and one
                     "convention_<key>" attribute each), constraint (JSON), tokens, n_sites, local_size,
                     observables (JSON), n_jump_operators
    /ansatz          attrs: name, hyper-parameters, n_parameters, recipe (JSON: how `load_state` rebuilds it)
    /method          attrs: name, hyper-parameters
    /history/<name>  1-D resizable float64 datasets, one row per step (missing values are NaN)
    /exact/<name>    exact reference values: scalars, or arrays on the history grid (time series)
    /checkpoint      attrs: step (the history step after which it was taken), method; datasets
                     params (the parameter tree), model_state (other model variables), state (the method's own
                     state: optimiser, sampler key, integrator, counters), each flax msgpack bytes

Attributes: numbers, booleans and strings are stored as such; everything else (lists, dicts, None,
complex numbers) as a JSON string, which `decode_attr` decodes again.

Design decisions:

* Every row is flushed when appended, so a killed run keeps every finished step, and a reader can open the
  file of a running job (without HDF5's file lock when the writer holds it).
* A new run (modes "fail" and "overwrite", or "resume" of a missing file) writes aside, to a hidden file in the
  same folder, and renames it onto `path` when it has its first row or checkpoint: an existing file is never
  destroyed before there is something to replace it with, and a run that fails before its first row leaves
  no file behind.
* A checkpoint is written atomically: the new one goes to /checkpoint_next, which is marked complete, and
  only then replaces /checkpoint; a reader that finds no /checkpoint takes a complete /checkpoint_next.
* Complex values are split: the real part is stored under the name, the imaginary part under
  ``<name>_imag``; all history datasets stay float64.
* Files use HDF5's default (earliest) format: with ``libver="latest"`` a writer killed mid-run leaves
  the file-consistency flag set and HDF5 refuses to reopen the file until ``h5clear`` is run.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any, Self

import h5py
import numpy as np

FORMAT_VERSION = 2
MODES = ("fail", "overwrite", "resume")
_CHECKPOINT, _NEXT = "checkpoint", "checkpoint_next"
_BLOBS = ("params", "model_state", "state")


class ResultFileError(ValueError):
    """A file that is not a readable nqs result file, or one that cannot be resumed."""


# -- encoding --------------------------------------------------------------------------------------
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


def encode_attr(value: Any) -> Any:
    """A value h5py can store as an attribute: numbers, booleans and strings as such, everything else as JSON."""
    if isinstance(value, (bool, int, float, str, np.bool_, np.integer, np.floating)):
        return value
    encoded = to_json(value)
    decoded = json.loads(encoded)
    return decoded if isinstance(decoded, str) else encoded


def decode_attr(value: Any) -> Any:
    """Inverse of `encode_attr`: JSON strings (objects, arrays, null) are parsed, numpy scalars become Python's."""
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


def normalised_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """`attrs` as they read back from a file (encoded, then decoded): the form resume checks compare."""
    return {key: decode_attr(encode_attr(value)) for key, value in attrs.items()}


def decoded_attrs(obj: h5py.HLObject) -> dict[str, Any]:
    return {key: decode_attr(value) for key, value in obj.attrs.items()}


def _write_attrs(group: h5py.Group, attrs: Mapping[str, Any]) -> None:
    for key, value in attrs.items():
        group.attrs[key] = encode_attr(value)


# -- reading helpers shared with nqs.results --------------------------------------------------------
def open_for_reading(path: Path) -> h5py.File:
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


def check_format(file: h5py.File, path: Path) -> None:
    """ResultFileError unless `file` is an nqs result file of the current format_version."""
    version = decode_attr(file.attrs.get("format_version"))
    if version is None or "history" not in file:
        raise ResultFileError(f"{path} is an HDF5 file but not an nqs result file (no format_version or /history)")
    kind = decode_attr(file.attrs.get("kind", ""))
    if not isinstance(kind, str):
        raise ResultFileError(f"{path} is not an nqs result file: its kind is {kind!r}, not the name of a run")
    if version != FORMAT_VERSION:
        older = isinstance(version, int) and version < FORMAT_VERSION
        raise ResultFileError(
            f"{path} has format_version {version!r}; this nqs reads format_version {FORMAT_VERSION} only"
            + (" (version 1 stored its checkpoint as one opaque blob: rerun the experiment, or read it with the"
               " nqs release that wrote it)" if older else "")
        )


@dataclasses.dataclass(frozen=True)
class CheckpointBlobs:
    """A checkpoint as stored: the history step it follows, the method that wrote it, and its msgpack parts."""

    step: int
    method: str
    params: bytes
    model_state: bytes
    state: bytes


def read_checkpoint(file: h5py.File) -> CheckpointBlobs | None:
    """The last complete checkpoint of an open result file, or None."""
    group = file.get(_CHECKPOINT)
    if group is None:
        group = file.get(_NEXT)
        if group is None or not group.attrs.get("complete", False):
            return None
    blobs = {name: group[name][()].tobytes() if name in group else b"" for name in _BLOBS}
    return CheckpointBlobs(int(group.attrs["step"]), str(decode_attr(group.attrs.get("method", ""))), **blobs)


# -- writing ---------------------------------------------------------------------------------------
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


class ResultFile:
    """Writer of one run's result file (a context manager); see the module docstring for the layout and modes.

    `nqs.run.Run` is what methods use; this class is the HDF5 side of it.

    Args:
        path: file to write; parent folders are created.
        mode: "fail" (refuse an existing file), "overwrite" (replace it once the new run has a row) or "resume"
            (continue an existing file; a missing one is created).
        kind: "ground_state", "dynamics", "steady_state", ...
        metadata: the groups' attributes {"system": ..., "ansatz": ..., "method": ...} of a new file, and what a
            resumed file must hold (`check`), e.g. from `nqs.run.Run`.
        config, seed: the root attributes of a new file.

    Raises:
        FileExistsError: mode "fail" and the file exists.
        ResultFileError: mode "resume" and the file is not an nqs result file of this kind, or another process
            has it open.
        ValueError: unknown mode.
    """

    def __init__(self, path: str | Path, mode: str = "fail", *, kind: str,
                 metadata: Mapping[str, Mapping[str, Any]] | None = None,
                 config: Mapping[str, Any] | None = None, seed: int = 0):
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {MODES}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._aside: Path | None = None
        if self.path.exists() and mode == "fail":
            raise FileExistsError(
                f"{self.path} exists; pass mode='overwrite' to replace it or mode='resume' to continue it"
            )
        self.resumed = self.path.exists() and mode == "resume"
        if self.resumed:
            self._file = self._open_for_resume(kind)
        else:
            self._aside = self.path.with_name(f".{self.path.name}.{os.getpid()}.partial")
            self._file = h5py.File(self._aside, "w")
            self._write_metadata(kind, dict(config or {}), seed, metadata or {})
            self._file.flush()

    # -- opening ---------------------------------------------------------------------------------
    def _open_for_resume(self, kind: str) -> h5py.File:
        try:
            file = h5py.File(self.path, "a")
        except BlockingIOError as err:
            raise ResultFileError(
                f"cannot resume {self.path}: another process has it open (is that run still going?)"
            ) from err
        except OSError as err:
            raise ResultFileError(f"cannot resume {self.path}: not a readable HDF5 file ({err})") from err
        try:
            check_format(file, self.path)
            found = decode_attr(file.attrs.get("kind"))
            if found != kind:
                raise ResultFileError(f"cannot resume {self.path}: it holds a {found!r} run, not {kind!r}")
        except ResultFileError:
            file.close()
            raise
        return file

    def _write_metadata(self, kind: str, config: Mapping[str, Any], seed: int,
                        metadata: Mapping[str, Mapping[str, Any]]) -> None:
        file = self._file
        file.attrs["format_version"] = FORMAT_VERSION
        file.attrs["kind"] = kind
        file.attrs["created"] = datetime.datetime.now(datetime.UTC).isoformat()
        file.attrs["versions"] = to_json(versions())
        file.attrs["seed"] = int(seed)
        file.attrs["config"] = to_json(dict(config))
        for group in ("system", "ansatz", "method"):
            _write_attrs(file.create_group(group), metadata.get(group, {}))
        file.create_group("history")
        file.create_group("exact")

    def stored(self) -> dict[str, dict[str, Any]]:
        """The decoded attributes of /system, /ansatz, /method and the root config of the open file."""
        out = {group: decoded_attrs(self._file[group]) for group in ("system", "ansatz", "method")}
        out["config"] = decode_attr(self._file.attrs.get("config")) or {}
        return out

    # -- writing ---------------------------------------------------------------------------------
    def _publish(self) -> None:
        """Move the file written aside onto `path` (its first row or checkpoint is there)."""
        if self._aside is not None:
            self._file.flush()
            os.replace(self._aside, self.path)
            self._aside = None

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
        self._publish()

    def write_exact(self, name: str, value: Any) -> None:
        """Store an exact reference value (scalar or array) under /exact/<name>, replacing any old one."""
        group = self._file["exact"]
        if name in group:
            del group[name]
        group.create_dataset(name, data=np.asarray(value))
        self._file.flush()

    def write_checkpoint(self, step: int, *, params: bytes, state: bytes = b"", model_state: bytes = b"",
                         method: str = "") -> None:
        """Replace the checkpoint atomically by the given msgpack parts, taken after history step `step`."""
        file = self._file
        if _NEXT in file:
            del file[_NEXT]
        group = file.create_group(_NEXT)
        for name, blob in (("params", params), ("model_state", model_state), ("state", state)):
            if blob:  # an empty part is left out (HDF5 has no zero-length opaque type)
                group.create_dataset(name, data=np.void(blob))
        group.attrs["step"] = int(step)
        group.attrs["method"] = method
        file.flush()
        group.attrs["complete"] = True
        file.flush()
        if _CHECKPOINT in file:
            del file[_CHECKPOINT]
        file.move(_NEXT, _CHECKPOINT)
        file.flush()
        self._publish()

    def read_checkpoint(self) -> CheckpointBlobs | None:
        """The last complete checkpoint, or None."""
        return read_checkpoint(self._file)

    def truncate_after(self, step: int) -> None:
        """Drop the history rows from the first one whose step is after `step` onwards (a resumed run recomputes
        them from its checkpoint)."""
        history = self._file["history"]
        if "step" not in history:
            return
        later = np.flatnonzero(history["step"][()] > step)
        if len(later):
            for dataset in history.values():
                dataset.resize((int(later[0]),))
        self._file.flush()

    def close(self, *, failed: bool = False) -> None:
        """Flush and close the file (idempotent). A new file that never got a row or checkpoint is published when
        the run finished and deleted when it `failed`, so an existing file at `path` stays as it was."""
        if not self._file.id.valid:
            return
        self._file.flush()
        self._file.close()
        if self._aside is not None:
            if failed:
                self._aside.unlink(missing_ok=True)
            else:
                os.replace(self._aside, self.path)
            self._aside = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(failed=exc_type is not None)
