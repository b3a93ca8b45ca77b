"""The result file: one HDF5 file per run, written as the run goes, with the exact reference beside it.

Layout (format_version 1)::

    /                attrs: format_version, kind, created, versions (JSON), seed, config (JSON)
    /system          attrs: builder, one attribute per builder argument, conventions (JSON and one
                     "convention_<key>" attribute each), constraint (JSON)
    /ansatz          attrs: name, hyper-parameters, n_parameters
    /method          attrs: name, hyper-parameters
    /history/<name>  1-D resizable float64 datasets, one row per step (missing values are NaN)
    /exact/<name>    exact reference values (scalars or arrays)
    /checkpoint      dataset "state" (opaque bytes) with attribute "step"

Every row is flushed when appended, so a killed run keeps every finished step. Mode ``"resume"``
reopens a file, checks that it is a result of the same kind and configuration, and drops history
rows written after the last checkpoint (they are recomputed). Complex values are stored as their
real part under the name and the imaginary part under ``<name>_imag``.

Files use HDF5's default (earliest) format: with ``libver="latest"`` a writer killed mid-run leaves
the file-consistency flag set and HDF5 refuses to reopen the file until `h5clear` is run.
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
from typing import Any

import h5py
import numpy as np

FORMAT_VERSION = 1
MODES = ("fail", "overwrite", "resume")
IGNORE_ON_RESUME = ("n_steps", "steps", "quiet", "progress", "out", "mode", "resume")


class ResultFileError(ValueError):
    """A file that is not a readable nqs result file, or one that cannot be resumed."""


def versions() -> dict[str, str]:
    """Versions of the packages that determine a run's numbers."""
    out = {"python": platform.python_version()}
    for pkg in ("nqs", "netket", "jax", "jaxlib", "flax", "optax", "qutip", "h5py", "numpy", "scipy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _json_default(obj: Any):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (Path, type)):
        return str(obj)
    if isinstance(obj, complex):
        return [obj.real, obj.imag]
    return repr(obj)


def to_json(obj: Any) -> str:
    return json.dumps(obj, default=_json_default, sort_keys=True)


def _attr_value(value: Any):
    """A value h5py can store as an attribute: numbers and strings as such, everything else as JSON."""
    if value is None:
        return "null"
    if isinstance(value, (bool, np.bool_, int, float, str, np.integer, np.floating)):
        return value
    return to_json(value)


def _write_attrs(group: h5py.Group, attrs: Mapping[str, Any]) -> None:
    for key, value in attrs.items():
        group.attrs[key] = _attr_value(value)


def _decode(value: Any):
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, np.generic):
        return value.item()
    return value


class ResultFile:
    """Writer of one run's result file (a context manager).

    Args:
        path: file to write; parent folders are created.
        mode: "fail" (refuse an existing file), "overwrite" or "resume".
        kind: "ground_state", "dynamics", "steady_state", ...
        config: the full experiment configuration (stored as JSON).
        seed: the run's seed.
        system: the `nqs.System`, or None.
        ansatz: name and hyper-parameters of the ansatz.
        method: name and hyper-parameters of the method.
    """

    def __init__(
        self,
        path: str | Path,
        mode: str = "fail",
        *,
        kind: str,
        config: Mapping[str, Any],
        seed: int,
        system: Any = None,
        ansatz: Mapping[str, Any] | None = None,
        method: Mapping[str, Any] | None = None,
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
            self._file = self._open_for_resume(kind, config)
        else:
            self._file = h5py.File(self.path, "w")
            self._write_metadata(kind, config, seed, system, ansatz or {}, method or {})
        self._file.flush()

    # -- opening ---------------------------------------------------------------------------------
    def _open_for_resume(self, kind: str, config: Mapping[str, Any]) -> h5py.File:
        try:
            f = h5py.File(self.path, "a")
        except OSError as err:
            raise ResultFileError(f"cannot resume {self.path}: not a readable HDF5 file ({err})") from err
        if f.attrs.get("format_version") is None or "history" not in f:
            f.close()
            raise ResultFileError(f"cannot resume {self.path}: it is not an nqs result file")
        if _decode(f.attrs["kind"]) != kind:
            found = _decode(f.attrs["kind"])
            f.close()
            raise ResultFileError(f"cannot resume {self.path}: it holds a {found!r} run, not {kind!r}")
        old = _decode(f.attrs["config"]) or {}
        new = json.loads(to_json(dict(config)))
        differ = sorted(k for k in set(old) | set(new) if k not in IGNORE_ON_RESUME and old.get(k) != new.get(k))
        if differ:
            f.close()
            raise ResultFileError(f"cannot resume {self.path}: the configuration differs in {differ}")
        step = f["checkpoint"].attrs["step"] if "checkpoint" in f else -1
        self._truncate(f, lambda steps: steps <= step)
        return f

    def _write_metadata(self, kind, config, seed, system, ansatz, method) -> None:
        f = self._file
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["kind"] = kind
        f.attrs["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat()
        f.attrs["versions"] = to_json(versions())
        f.attrs["seed"] = int(seed)
        f.attrs["config"] = to_json(dict(config))
        g = f.create_group("system")
        if system is not None:
            desc = system.describe()
            _write_attrs(g, {"builder": desc["builder"], **desc["params"]})
            g.attrs["conventions"] = to_json(desc["conventions"])
            _write_attrs(g, {f"convention_{k}": v for k, v in desc["conventions"].items()})
            g.attrs["constraint"] = to_json(desc["constraint"])
            g.attrs["n_sites"] = desc["n_sites"]
            g.attrs["observables"] = to_json(desc["observables"])
        _write_attrs(f.create_group("ansatz"), ansatz)
        _write_attrs(f.create_group("method"), method)
        f.create_group("history")
        f.create_group("exact")

    @staticmethod
    def _truncate(f: h5py.File, keep) -> None:
        hist = f["history"]
        if "step" not in hist:
            return
        n = int(np.count_nonzero(keep(hist["step"][()])))
        for ds in hist.values():
            ds.resize((n,))

    # -- writing ---------------------------------------------------------------------------------
    @property
    def n_rows(self) -> int:
        hist = self._file["history"]
        return hist["step"].shape[0] if "step" in hist else 0

    @property
    def last_step(self) -> int | None:
        n = self.n_rows
        return int(self._file["history/step"][n - 1]) if n else None

    def append(self, row: Mapping[str, Any]) -> None:
        """Append one history row (needs a "step" entry) and flush. Columns appear lazily; gaps are NaN."""
        if "step" not in row:
            raise ValueError("a history row needs a 'step' entry")
        values: dict[str, float] = {}
        for key, value in row.items():
            value = complex(value) if np.iscomplexobj(value) else float(value)
            if isinstance(value, complex):
                values[key], values[f"{key}_imag"] = value.real, value.imag
            else:
                values[key] = value
        hist = self._file["history"]
        n = self.n_rows
        for key in values:
            if key not in hist:
                hist.create_dataset(key, data=np.full(n, np.nan), maxshape=(None,), chunks=(256,), dtype="f8")
        for key, ds in hist.items():
            ds.resize((n + 1,))
            ds[n] = values.get(key, np.nan)
        self._file.flush()

    def write_exact(self, name: str, value: Any) -> None:
        """Store an exact reference value (scalar or array) under /exact/<name>, replacing any old one."""
        group = self._file["exact"]
        if name in group:
            del group[name]
        group.create_dataset(name, data=np.asarray(value))
        self._file.flush()

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
        if "checkpoint" not in self._file or "state" not in self._file["checkpoint"]:
            return None
        group = self._file["checkpoint"]
        return group["state"][()].tobytes(), int(group.attrs["step"])

    def close(self) -> None:
        if self._file.id.valid:
            self._file.flush()
            self._file.close()

    def __enter__(self) -> "ResultFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


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


def load(path: str | Path) -> Result:
    """Read a result file. Raises FileNotFoundError, or ResultFileError for corrupt or foreign files."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise ResultFileError(f"{path} is not a readable HDF5 file ({err})") from err
    with f:
        version = f.attrs.get("format_version")
        if version is None or "history" not in f:
            raise ResultFileError(f"{path} is an HDF5 file but not an nqs result file (no format_version/history)")
        if int(version) > FORMAT_VERSION:
            raise ResultFileError(f"{path} has format_version {version}; this nqs reads up to {FORMAT_VERSION}")
        group_attrs = lambda name: {k: _decode(v) for k, v in f[name].attrs.items()} if name in f else {}
        exact = {k: (v[()].item() if v.shape == () else v[()]) for k, v in f["exact"].items()} if "exact" in f else {}
        ckpt = f["checkpoint"].attrs.get("step") if "checkpoint" in f else None
        return Result(
            path=path,
            attrs={k: _decode(v) for k, v in f.attrs.items()},
            system=group_attrs("system"),
            ansatz=group_attrs("ansatz"),
            method=group_attrs("method"),
            history={k: v[()] for k, v in f["history"].items()},
            exact=exact,
            checkpoint_step=None if ckpt is None else int(ckpt),
        )


def _last_finite(values: np.ndarray) -> tuple[float, int] | None:
    idx = np.flatnonzero(np.isfinite(values))
    return (float(values[idx[-1]]), int(idx[-1])) if len(idx) else None


def final_values(result: Result) -> dict[str, tuple[float, float | None]]:
    """Last finite value of each history quantity (not errors or bookkeeping) with its error bar."""
    skip = {"step", "time", "wall_time"}
    out = {}
    for name, values in result.history.items():
        if name in skip or name.endswith(("_error", "_imag", "_variance", "_r_hat")):
            continue
        last = _last_finite(values)
        if last is None:
            continue
        value, idx = last
        err = result.history.get(f"{name}_error")
        out[name] = (value, None if err is None or not math.isfinite(err[idx]) else float(err[idx]))
    return out


def compare_with_exact(result: Result) -> list[dict[str, Any]]:
    """Rows (name, value, error, exact, abs_err, rel_err) for every final value that has a scalar exact reference."""
    rows = []
    for name, (value, err) in final_values(result).items():
        ref = result.exact.get(name)
        if ref is None or np.ndim(ref) != 0:
            continue
        ref = float(ref)
        abs_err = abs(value - ref)
        rows.append({
            "name": name, "value": value, "error": err, "exact": ref, "abs_err": abs_err,
            "rel_err": abs_err / abs(ref) if abs(ref) > 1e-12 else float("nan"),
        })
    return rows


def format_table(rows: Iterable[Mapping[str, Any]]) -> str:
    """A fixed-width text table of `compare_with_exact` rows."""
    lines = [f"{'quantity':36s} {'value':>16s} {'± error':>11s} {'exact':>16s} {'abs. err':>10s} {'rel. err':>10s}"]
    for r in rows:
        err = "" if r["error"] is None else f"{r['error']:.2e}"
        lines.append(
            f"{r['name']:36s} {r['value']:16.10f} {err:>11s} {r['exact']:16.10f} {r['abs_err']:10.2e} {r['rel_err']:10.2e}"
        )
    return "\n".join(lines)
