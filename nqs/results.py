"""Reading result files back: history, exact reference, comparison tables, parameters and whole variational states.

The file layout is described in `nqs.result_file` (the writer) and `docs/reference.md`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import flax.serialization
import h5py
import numpy as np

from nqs.result_file import (
    ResultFileError,
    check_format,
    decoded_attrs,
    open_for_reading,
    read_checkpoint,
)

NOT_A_QUANTITY = ("step", "time", "wall_time")
NOT_A_QUANTITY_SUFFIXES = ("_error", "_imag", "_variance", "_r_hat")


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


def _read_exact(file: h5py.File) -> dict[str, Any]:
    group = file.get("exact", {})
    return {name: (ds[()].item() if ds.shape == () else ds[()]) for name, ds in group.items()}


def load(path: str | Path) -> Result:
    """Read a result file (also one that a running job is writing: its rows flushed so far).

    Raises:
        FileNotFoundError: the file does not exist.
        ResultFileError: it is not HDF5, it is HDF5 but not an nqs result file, or its format_version is unsupported.
    """
    path = Path(path)
    with _opened(path) as file:
        checkpoint = read_checkpoint(file)
        step = None if checkpoint is None else checkpoint.step
        return Result(
            path=path,
            attrs=decoded_attrs(file),
            system=decoded_attrs(file["system"]) if "system" in file else {},
            ansatz=decoded_attrs(file["ansatz"]) if "ansatz" in file else {},
            method=decoded_attrs(file["method"]) if "method" in file else {},
            history={name: ds[()] for name, ds in file["history"].items()},
            exact=_read_exact(file),
            checkpoint_step=None if step is None else int(step),
        )


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[h5py.File]:
    """A result file of the current format, open for reading (FileNotFoundError, ResultFileError otherwise)."""
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    with open_for_reading(path) as file:
        check_format(file, path)
        yield file


def _checkpoint_of(path: str | Path):
    path = Path(path)
    with _opened(path) as file:
        checkpoint = read_checkpoint(file)
    if checkpoint is None:
        raise ResultFileError(f"{path} has no checkpoint, so no parameters to load")
    return checkpoint


def load_parameters(path: str | Path) -> dict[str, Any]:
    """The variational parameters of a result file's checkpoint (a nested dict of numpy arrays), for every kind of
    result: /checkpoint/params holds the current parameters of a running or interrupted run and the final ones of a
    finished run (the best ones of a steady-state search).
    Use with `ansatze.transfer.transfer_parameters` to start another run (another size, coupling or dtype).

    Raises:
        FileNotFoundError, ResultFileError: no such file, not a result file of this format, or no checkpoint.
    """
    return flax.serialization.msgpack_restore(_checkpoint_of(path).params)


def _state_for(system: Any, model: Any, n_samples: int, seed: int) -> Any:
    """A variational state of `model`: `make_state` on the system's space, or, for a model on another space (the
    POVM outcome distributions of open systems), a state on the model's own space with its exact sampler."""
    import netket as nk

    from nqs.states import make_state, mc_state

    hilbert = getattr(model, "hilbert", None)
    if hilbert is None or hilbert == system.hilbert:
        return make_state(system, model, n_samples=n_samples, seed=seed)
    if n_samples == 0:
        return nk.vqs.FullSumState(hilbert, model, seed=seed)
    own = getattr(model, "exact_sampler", None)
    sampler = own() if callable(own) else nk.sampler.ARDirectSampler(hilbert)
    return mc_state(sampler, model, n_samples=n_samples, seed=seed, sampler_seed=seed + 1)


@dataclasses.dataclass
class LoadedState:
    """What `load_state` rebuilds: the System, the ansatz, the variational state holding the checkpointed
    parameters, and the result file read back."""

    system: Any
    model: Any
    vstate: Any
    result: Result


def load_state(path: str | Path, *, n_samples: int | None = None, seed: int | None = None) -> LoadedState:
    """Rebuild the System (its builder called with the stored arguments), the ansatz (its recorded recipe,
    `nqs.recipes`) and a variational state holding the checkpointed parameters, e.g. to measure new observables on a
    finished run. `n_samples` = 0 gives a `FullSumState`; the default is the sample count the method used (4096 when
    it recorded none); `seed` defaults to the run's.

    Raises:
        ResultFileError: the file has no checkpoint, or does not record how to rebuild its System or ansatz.
    """
    from nqs.recipes import NoRecipe, build_module, rebuild_system

    result = load(path)
    checkpoint = _checkpoint_of(path)
    recipe = result.ansatz.get("recipe")
    try:
        if not recipe:
            raise NoRecipe("the file records no recipe for its ansatz")
        system = rebuild_system(result.system["builder"], result.system.get("params", {}))
        model = build_module(recipe, system)
    except NoRecipe as err:
        raise ResultFileError(f"cannot rebuild the state of {path}: {err}") from err
    if n_samples is None:
        n_samples = int(result.method.get("n_samples", 4096) or 0)
    vstate = _state_for(system, model, n_samples=n_samples, seed=result.attrs["seed"] if seed is None else seed)
    variables = {"params": flax.serialization.msgpack_restore(checkpoint.params)}
    if checkpoint.model_state:
        variables.update(flax.serialization.msgpack_restore(checkpoint.model_state))
    vstate.variables = variables
    return LoadedState(system, model, vstate, result)


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
