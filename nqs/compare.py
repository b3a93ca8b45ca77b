"""One table across runs: each run's error against its own exact reference (`nqs compare FILE...`).

A parameter scan (the same experiment at several couplings or sizes) or several ansätze on one system are
compared by the error each run makes against the exact reference stored beside its history (`/exact`):

* ground and steady states: the **final row** (the last finite value of each quantity, as `nqs inspect` shows it):
  abs. err = |x − x_exact|, rel. err = |x − x_exact| / |x_exact| (`nqs.results.compare_with_exact`);
* dynamics: the **maximum over time**, max_t |x(t) − x_exact(t)| over the rows written (`nqs.results.max_deviation`),
  with the value, the exact value and the time t* at the maximum; no relative error (an observable crosses zero).
  A run that records its infidelity 1 − |⟨ψ_exact(t)|ψ(t)⟩|² with the exact trajectory also gets the row
  "infidelity" (exact value 0, max over time).

Columns name the run (file), its kind, and every setting that differs between the runs: the builder's arguments
(``h``, ``L``, …), the ansatz (``ansatz``, ``ansatz.<field>``) and the method (``method.<setting>``). With a single
numeric setting that varies (a scan) the rows are sorted by it and `draw` plots the error against it; otherwise the
runs are plotted side by side.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nqs import results

MAX_OVER_TIME = "dynamics"  # the kind whose error is a maximum over the time window


@dataclasses.dataclass(frozen=True)
class ComparisonRow:
    """One quantity of one run against its exact reference.

    Attributes:
        label: the run's name in the table (its file name, or the path when names clash).
        kind: the run's kind ("ground_state", "dynamics", "steady_state", ...).
        settings: the run's settings (builder arguments, ``ansatz``, ``ansatz.<field>``, ``method.<setting>``).
        quantity: the history column.
        value: the final value (ground and steady states) or the value at `time` (dynamics).
        error: its error bar (None when the method records none).
        exact: the exact reference at that row (None when the file stores none).
        abs_err: |value − exact|: at the final row, or max over time for dynamics.
        rel_err: abs_err / |exact| at the final row (None for dynamics and for a zero or missing reference).
        time: t* of the largest deviation (dynamics), else None.
    """

    label: str
    kind: str
    settings: Mapping[str, Any]
    quantity: str
    value: float
    error: float | None
    exact: float | None
    abs_err: float | None
    rel_err: float | None
    time: float | None = None

    @property
    def where(self) -> str:
        """"final", or "max, t=…" for the maximum over time of a dynamics run."""
        return "final" if self.time is None else f"max, t={self.time:.4g}"


# -- settings of a run ----------------------------------------------------------------------------


def settings_of(result: results.Result) -> dict[str, Any]:
    """The builder's arguments, the ansatz (name and hyper-parameters) and the method's settings of a run, flat."""
    params = result.system.get("params")
    out: dict[str, Any] = dict(params) if isinstance(params, Mapping) else {}
    if result.system.get("builder"):
        out["builder"] = result.system["builder"]
    skip = ("name", "recipe", "n_parameters")
    out["ansatz"] = result.ansatz.get("name")
    out.update({f"ansatz.{k}": v for k, v in result.ansatz.items() if k not in skip})
    out.update({f"method.{k}": v for k, v in result.method.items() if k != "name"})
    return out


def varying_settings(all_settings: Sequence[Mapping[str, Any]]) -> list[str]:
    """The keys whose values differ between the runs (a key missing from a run counts as a different value)."""
    keys = list(dict.fromkeys(k for s in all_settings for k in s))
    return [k for k in keys if len({repr(s.get(k)) for s in all_settings}) > 1]


def scan_key(rows: Sequence[ComparisonRow], keys: Sequence[str]) -> str | None:
    """The setting that the runs scan: the only varying key, when all its values are real numbers."""
    if len(keys) != 1:
        return None
    values = [row.settings.get(keys[0]) for row in rows]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)
    return keys[0] if numeric else None


# -- the rows of one run --------------------------------------------------------------------------


def _dynamics_rows(result: results.Result, base: dict[str, Any]) -> list[ComparisonRow]:
    """max_t |x(t) − x_exact(t)| per column with an exact series (`results.max_deviation`), at its time t*."""
    rows = []
    times = result.history.get("time")
    for name, worst in results.max_deviation(result).items():
        ref = results.exact_on_history(result, name)
        diff = np.abs(np.asarray(result.history[name], dtype=float) - ref)
        index = int(np.nanargmax(diff))
        errors = result.history.get(f"{name}_error")
        err = None if errors is None or not np.isfinite(errors[index]) else float(errors[index])
        rows.append(ComparisonRow(quantity=name, value=float(result.history[name][index]), error=err,
                                  exact=float(ref[index]), abs_err=worst, rel_err=None,
                                  time=None if times is None else float(times[index]), **base))
    infidelity = result.history.get("infidelity")
    if infidelity is not None and "infidelity" not in result.exact and np.isfinite(infidelity).any():
        index = int(np.nanargmax(np.abs(infidelity)))
        rows.append(ComparisonRow(quantity="infidelity", value=float(infidelity[index]), error=None, exact=0.0,
                                  abs_err=abs(float(infidelity[index])), rel_err=None,
                                  time=None if times is None else float(times[index]), **base))
    return rows


def _final_rows(result: results.Result, base: dict[str, Any]) -> list[ComparisonRow]:
    """The final row of every quantity with an exact reference (`results.compare_with_exact`)."""
    rows = []
    for row in results.compare_with_exact(result):
        rel = row["rel_err"]
        rows.append(ComparisonRow(quantity=row["name"], value=row["value"], error=row["error"], exact=row["exact"],
                                  abs_err=row["abs_err"], rel_err=None if rel is None or math.isnan(rel) else rel,
                                  **base))
    return rows


def run_rows(result: results.Result, label: str, quantities: Sequence[str] | None = None) -> list[ComparisonRow]:
    """The comparison rows of one run: for `quantities` (None: the energy of a ground state when it has a reference,
    otherwise every quantity with one). A requested quantity without a reference gets a row with its final value
    and blank errors; one that the run does not record gets no row."""
    base = {"label": label, "kind": result.kind, "settings": settings_of(result)}
    rows = _dynamics_rows(result, base) if result.kind == MAX_OVER_TIME else _final_rows(result, base)
    if quantities is None:
        energy = [row for row in rows if row.quantity == "energy"]
        return energy if result.kind == "ground_state" and energy else rows
    by_name = {row.quantity: row for row in rows}
    finals = results.final_values(result)
    out = []
    for name in quantities:
        if name in by_name:
            out.append(by_name[name])
        elif name in finals:
            value, err = finals[name]
            out.append(ComparisonRow(quantity=name, value=value, error=err, exact=None, abs_err=None, rel_err=None,
                                     **base))
    return out


def labels_for(paths: Sequence[Any]) -> list[str]:
    """File names, or the paths as given where two runs share a name."""
    names = [str(getattr(p, "name", p)) for p in paths]
    return names if len(set(names)) == len(names) else [str(p) for p in paths]


def compare(runs: Sequence[results.Result], quantities: Sequence[str] | None = None,
            labels: Sequence[str] | None = None) -> tuple[list[ComparisonRow], list[str]]:
    """The rows of all `runs` and the settings that vary between them (sorted by the scanned setting, if any)."""
    labels = labels or labels_for([r.path for r in runs])
    rows = [row for result, label in zip(runs, labels, strict=True) for row in run_rows(result, label, quantities)]
    keys = varying_settings([settings_of(r) for r in runs])
    key = scan_key(rows, keys)
    if key is not None:
        rows.sort(key=lambda row: row.settings[key])  # stable: the quantities of one run keep their order
    return rows, keys


# -- output ---------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _number(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def format_comparison(rows: Sequence[ComparisonRow], keys: Sequence[str]) -> str:
    """A fixed-width table: run, kind, the varying settings, quantity, value, ± error, exact, abs. err, rel. err and
    where the error was taken (final row, or max over time at t*)."""
    header = ["run", "kind", *keys, "quantity", "value", "± error", "exact", "abs. err", "rel. err", "at"]
    body = [[row.label, row.kind, *(_text(row.settings.get(k)) for k in keys), row.quantity,
             _number(row.value, ".10f"), _number(row.error, ".2e"), _number(row.exact, ".10f"),
             _number(row.abs_err, ".2e"), _number(row.rel_err, ".2e"), row.where] for row in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    numeric = set(range(len(header) - 6, len(header) - 1))
    lines = [" ".join(cell.rjust(w) if i in numeric else cell.ljust(w)
                      for i, (cell, w) in enumerate(zip(line, widths, strict=True))).rstrip()
             for line in [header, *body]]
    return "\n".join(lines)


def plotted_error(row: ComparisonRow) -> tuple[str, float | None]:
    """The error a plot shows: the relative error of a ground-state energy, the absolute error otherwise."""
    if row.quantity == "energy" and row.kind == "ground_state" and row.rel_err is not None:
        return "|E − E_exact| / |E_exact|", row.rel_err
    return ("max_t |Δ" if row.time is not None else "|Δ") + f" {row.quantity}|", row.abs_err


def draw(fig: Any, rows: Sequence[ComparisonRow], keys: Sequence[str]) -> None:
    """One panel per quantity on the matplotlib figure `fig`: the error (`plotted_error`, log scale) against the
    scanned setting, or per run when the runs differ in more than one setting."""
    key = scan_key(rows, keys)
    panels: dict[str, list[ComparisonRow]] = {}
    for row in rows:
        if plotted_error(row)[1] is not None:
            panels.setdefault(plotted_error(row)[0], []).append(row)
    if not panels:
        raise ValueError("no run has an exact reference to plot an error against")
    labels = list(dict.fromkeys(row.label for row in rows))
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (name, panel) in zip(axes, panels.items(), strict=True):
        errors = np.array([max(plotted_error(row)[1], 1e-300) for row in panel])
        if key is not None:
            ax.semilogy([row.settings[key] for row in panel], errors, "o-", ms=4)
        else:
            ax.semilogy([labels.index(row.label) for row in panel], errors, "o", ms=5)
        ax.set_ylabel(name, fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
    if key is not None:
        axes[-1].set_xlabel(key)
    else:
        axes[-1].set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=7)
    fig.suptitle(f"error against the exact reference ({len(labels)} runs)", fontsize=10)

