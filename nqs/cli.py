"""The `nqs` command line: inspect, plot and list result files.

    nqs inspect FILE                          metadata, final values with error bars, exact reference, errors
    nqs plot FILE [--out PNG] [--quantity Q]  PNG of the history with the exact reference dashed
    nqs list DIR [--recursive]                one line per result file in a folder

Errors (missing, corrupt or foreign files, unknown quantities, no matplotlib) are reported in one
line on stderr with exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from nqs import results


class CliError(Exception):
    """An error reported as one line on stderr (exit status 2)."""


# -- inspect -------------------------------------------------------------------------------------


def _inspect(path: Path) -> int:
    res = results.load(path)
    attrs, system = res.attrs, res.system
    print(f"{path}: {res.kind} run, created {attrs.get('created')}, seed {attrs.get('seed')}, "
          f"format_version {attrs.get('format_version')}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in sorted((attrs.get("versions") or {}).items())))
    print(f"config: {attrs.get('config')}")
    print(f"system: {system.get('builder', '(none recorded)')} {system.get('params', {})}")
    for key in ("conventions", "constraint", "n_sites", "observables"):
        if key in system:
            print(f"  {key}: {system[key]}")
    print(f"ansatz: { {k: v for k, v in res.ansatz.items() if k != 'recipe'} }")
    print(f"method: {res.method}")
    print(f"history: {res.n_rows} rows, last step {_last_step(res)}, checkpoint step {res.checkpoint_step}")
    rows = results.summary_rows(res)
    print(results.format_table(rows) if rows else "(no history)")
    if rows and all(row["exact"] is None for row in rows):
        print("(no exact reference stored)")
    return 0


def _last_step(res: results.Result) -> int | None:
    steps = res.history.get("step")
    return None if steps is None or not len(steps) else int(steps[-1])


# -- plot ----------------------------------------------------------------------------------------


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as err:
        raise CliError(f"nqs plot needs matplotlib: pip install 'nqs[plot]' ({err})") from err
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _default_quantities(res: results.Result) -> list[str]:
    """Energy for ground-state runs; for runs with a "time" column the quantities with an exact series."""
    names = list(results.final_values(res))
    if "time" in res.history:
        with_exact = [n for n in names if results.exact_on_history(res, n) is not None]
        return with_exact or names[:4]
    return ["energy"] if "energy" in names else names[:4]


def _draw_quantity(ax: Any, res: results.Result, x: np.ndarray, name: str) -> None:
    y = res.history[name]
    ok = np.isfinite(y)
    err = res.history.get(f"{name}_error")
    yerr = None if err is None else np.nan_to_num(err[ok])
    ax.errorbar(x[ok], y[ok], yerr=yerr, fmt=".-", ms=3, lw=0.8, label="variational")
    fullsum = res.history.get(f"{name}_fullsum")  # exact expectation of a Monte Carlo state
    if fullsum is not None and np.isfinite(fullsum).any():
        ax.plot(x, fullsum, "s", ms=3, mfc="none", label="variational, full sum")
    ref = res.exact.get(name)
    if ref is not None and np.ndim(ref) == 0:
        ax.axhline(float(np.real(ref)), color="k", ls="--", lw=1, label="exact")
    elif (series := results.exact_on_history(res, name)) is not None:
        ax.plot(x, series, "k--", lw=1, label="exact")
    ax.set_ylabel(name)
    ax.legend(loc="best", fontsize=8)


def _draw_relative_error(ax: Any, x: np.ndarray, energy: np.ndarray, exact: np.ndarray) -> None:
    rel = np.abs(energy - exact) / np.abs(exact)
    ok = np.isfinite(rel) & (rel > 0)
    ax.semilogy(x[ok], rel[ok], ".-", ms=3, lw=0.8)
    ax.set_ylabel("|E - E_exact| / |E_exact|")


def _plot(path: Path, out: Path | None, quantities: list[str] | None) -> int:
    res = results.load(path)
    names = quantities or _default_quantities(res)
    if not names:
        raise CliError(f"{path} has no history to plot")
    missing = [n for n in names if n not in res.history]
    if missing:
        raise CliError(f"{path} has no history column {missing[0]!r}; it has {sorted(res.history)}")
    plt = _pyplot()
    x_name = "time" if "time" in res.history and np.isfinite(res.history["time"]).any() else "step"
    x = res.history[x_name]
    exact_energy = results.exact_on_history(res, "energy") if "energy" in names else None
    n_panels = len(names) + (exact_energy is not None)
    fig, axes = plt.subplots(n_panels, 1, figsize=(7, 2.6 * n_panels), sharex=True, squeeze=False)
    for ax, name in zip(axes[:, 0], names, strict=False):
        _draw_quantity(ax, res, x, name)
    if exact_energy is not None:
        _draw_relative_error(axes[-1, 0], x, res.history["energy"], exact_energy)
    axes[-1, 0].set_xlabel(x_name)
    fig.suptitle(", ".join(filter(None, (f"{path.name}: {res.kind}", res.system.get("builder")))), fontsize=10)
    fig.tight_layout()
    out = out or path.with_suffix(".png")
    fig.savefig(out, dpi=120)
    plt.close(fig)
    print(f"wrote {out}")
    return 0


# -- list ----------------------------------------------------------------------------------------

_LIST_COLUMNS = (("file", 40), ("kind", 13), ("builder", 26), ("N", 4), ("ansatz", 16), ("steps", 6),
                 ("energy", 26), ("exact", 16), ("rel. err", 9))


def _list_row(res: results.Result) -> list[str]:
    energy = next((row for row in results.summary_rows(res) if row["name"] == "energy"), None)
    value = "" if energy is None else f"{energy['value']:.8f}"
    if energy is not None and energy["error"] is not None:
        value += f" ± {energy['error']:.1e}"
    exact = "" if energy is None or energy["exact"] is None else f"{energy['exact']:.8f}"
    rel = "" if not exact else f"{energy['rel_err']:.2e}"
    step = _last_step(res)
    return [res.kind, str(res.system.get("builder", "")), str(res.system.get("n_sites", "")),
            str(res.ansatz.get("name", "")), "" if step is None else str(step), value, exact, rel]


def _format_list_line(cells: list[str]) -> str:
    return " ".join(cell.ljust(w) if i in (0, 1, 2, 4) else cell.rjust(w)
                    for i, (cell, (_, w)) in enumerate(zip(cells, _LIST_COLUMNS, strict=False))).rstrip()


def _list(folder: Path, recursive: bool) -> int:
    if not folder.is_dir():
        raise CliError(f"{folder} is not a folder")
    print(_format_list_line([name for name, _ in _LIST_COLUMNS]))
    for path in sorted(folder.rglob("*.h5") if recursive else folder.glob("*.h5")):
        name = str(path.relative_to(folder))
        try:
            cells = _list_row(results.load(path))
        except (results.ResultFileError, OSError):
            cells = ["(not an nqs result)"]
        print(_format_list_line([name, *cells]))
    return 0


# -- entry point ---------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nqs", description="Inspect, plot and list nqs result files.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("inspect", help="print a run's metadata and its comparison with the exact reference")
    p.add_argument("file", type=Path)
    p = sub.add_parser("plot", help="write a PNG of the history with the exact reference")
    p.add_argument("file", type=Path)
    p.add_argument("--out", type=Path, default=None, help="PNG path (default: FILE with suffix .png)")
    p.add_argument("--quantity", action="append", default=None, metavar="NAME",
                   help="history column to plot (repeatable; default: energy, or the observables of a time series)")
    p = sub.add_parser("list", help="tabulate the result files (*.h5) in a folder")
    p.add_argument("folder", type=Path)
    p.add_argument("-r", "--recursive", action="store_true", help="also look in sub-folders")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the `nqs` command line with `argv` (default: sys.argv[1:]); returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "inspect":
            return _inspect(args.file)
        if args.command == "plot":
            return _plot(args.file, args.out, args.quantity)
        return _list(args.folder, args.recursive)
    except (results.ResultFileError, FileNotFoundError) as err:
        print(f"nqs {args.command}: {args.file} is not an nqs result file: {err}", file=sys.stderr)
    except CliError as err:
        print(f"nqs {args.command}: {err}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
