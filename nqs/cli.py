"""The `nqs` command line: inspect, plot, list, compare result files and measure saved states.

    nqs inspect FILE                          metadata, final values with error bars, exact reference, errors
    nqs plot FILE [--out PNG] [--quantity Q]  PNG of the history with the exact reference dashed
    nqs list DIR [--recursive]                one line per result file in a folder
    nqs compare FILE... [--plot PNG]          one table of every run's error against its exact reference
    nqs measure FILE [--samples N] ...        C(r), S(q) and the Rényi-2 entropy of the saved state

Errors (missing, corrupt, malformed or foreign files, unknown quantities, an output path that cannot be written,
no matplotlib) are reported in one line on stderr with exit status 2 (`NQS_TRACEBACK=1` shows the traceback
instead); `list` notes a file it cannot read on its line and goes on, `compare` skips it with a note (exit status 2
after the table of the others).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nqs import results


class CliError(Exception):
    """An error reported as one line on stderr (exit status 2)."""


class NotAResult(CliError):
    """A missing file, or one that is not an nqs result file of this format (not HDF5, foreign HDF5, old format)."""


class MalformedResult(CliError):
    """A file that looks like an nqs result file but whose content cannot be read as one."""


# what reading a damaged result file raises beyond ResultFileError: missing attributes or groups (KeyError), a group
# where a dataset belongs (AttributeError, TypeError), arrays of the wrong shape or type (IndexError, ValueError)
_MALFORMED = (KeyError, AttributeError, TypeError, IndexError, ValueError, OSError)


def _one_line(err: BaseException, limit: int = 160) -> str:
    """`err` as "Type: message" on one line, cut at `limit` characters."""
    text = " ".join(str(err).split())
    text = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Turn what reading (and tabulating) result file `path` raises into a one-line `CliError` naming the file."""
    try:
        yield
    except (results.ResultFileError, FileNotFoundError) as err:
        raise NotAResult(f"{path} is not an nqs result file: {' '.join(str(err).split())}") from err
    except CliError:
        raise
    except _MALFORMED as err:
        raise MalformedResult(f"{path} is a malformed nqs result file ({_one_line(err)})") from err


def _writable(out: Path) -> None:
    """CliError naming `out` unless a file can be created there (checked before any work is done)."""
    if out.is_dir():
        raise CliError(f"cannot write {out}: it is a folder")
    if not out.parent.is_dir():
        raise CliError(f"cannot write {out}: the folder {out.parent} does not exist")


def _save(fig: Any, out: Path) -> None:
    try:
        fig.savefig(out, dpi=120)
    except OSError as err:
        raise CliError(f"cannot write {out}: {_one_line(err)}") from err


# -- inspect -------------------------------------------------------------------------------------


def _inspect(path: Path) -> int:
    with _reading(path):
        text = _inspection(path, results.load(path))  # all of it before printing: no half report of a bad file
    print(text)
    return 0


def _inspection(path: Path, res: results.Result) -> str:
    attrs, system = res.attrs, res.system
    lines = [f"{path}: {res.kind} run, created {attrs.get('created')}, seed {attrs.get('seed')}, "
             f"format_version {attrs.get('format_version')}",
             "versions: " + ", ".join(f"{k} {v}" for k, v in sorted((attrs.get("versions") or {}).items())),
             f"config: {attrs.get('config')}",
             f"system: {system.get('builder', '(none recorded)')} {system.get('params', {})}"]
    lines += [f"  {key}: {system[key]}" for key in ("conventions", "constraint", "n_sites", "observables")
              if key in system]
    lines += [f"ansatz: { {k: v for k, v in res.ansatz.items() if k != 'recipe'} }", f"method: {res.method}",
              f"history: {res.n_rows} rows, last step {_last_step(res)}, checkpoint step {res.checkpoint_step}"]
    rows = results.summary_rows(res)
    lines.append(results.format_table(rows) if rows else "(no history)")
    if rows and all(row["exact"] is None for row in rows):
        lines.append("(no exact reference stored)")
    return "\n".join(lines)


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
    out = out or path.with_suffix(".png")
    with _reading(path):
        res = results.load(path)
        names = quantities or _default_quantities(res)
        if not names:
            raise CliError(f"{path} has no history to plot")
        missing = [n for n in names if n not in res.history]
        if missing:
            raise CliError(f"{path} has no history column {missing[0]!r}; it has {sorted(res.history)}")
        _writable(out)
        plt = _pyplot()
        fig = _history_figure(plt, path, res, names)
    try:
        _save(fig, out)
    finally:
        plt.close(fig)
    print(f"wrote {out}")
    return 0


def _history_figure(plt: Any, path: Path, res: results.Result, names: list[str]) -> Any:
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
    return fig


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
    return [str(res.kind), str(res.system.get("builder", "")), str(res.system.get("n_sites", "")),
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
            with _reading(path):
                line = _format_list_line([name, *_list_row(results.load(path))])
        except NotAResult:
            line = _format_list_line([name, "(not an nqs result)"])
        except MalformedResult as err:  # noted on its line; the listing goes on
            line = _format_list_line([name, f"(malformed nqs result: {_one_line(err.__cause__, 100)})"])
        print(line)
    return 0


# -- compare -------------------------------------------------------------------------------------


def _compare(paths: Sequence[Path], quantities: list[str] | None, plot: Path | None) -> int:
    from nqs import compare

    if plot is not None:
        _writable(plot)
    runs, skipped = [], 0
    for path in paths:
        try:
            with _reading(path):
                run = results.load(path)
                compare.run_rows(run, path.name, quantities)  # reads all that the table needs from this file
            runs.append(run)
        except CliError as err:
            if len(paths) == 1:
                raise
            print(f"nqs compare: skipped {err}", file=sys.stderr)
            skipped += 1
    if not runs:
        raise CliError("no result file to compare")
    rows, keys = compare.compare(runs, quantities)
    print(compare.format_comparison(rows, keys))
    if not any(row.abs_err is not None for row in rows):
        print("(no run has an exact reference" + (f" for {', '.join(quantities)})" if quantities else ")"))
    if plot is not None:
        plt = _pyplot()
        fig = plt.figure()
        try:
            compare.draw(fig, rows, keys)
        except ValueError as err:
            plt.close(fig)
            raise CliError(f"nothing to plot: {err}") from err
        fig.set_size_inches(7, 1.0 + 2.4 * len(fig.axes))
        fig.tight_layout(rect=(0, 0, 1, 0.97))
        try:
            _save(fig, plot)
        finally:
            plt.close(fig)
        print(f"wrote {plot}")
    return 2 if skipped else 0


# -- measure -------------------------------------------------------------------------------------


def _region(spec: str | None) -> list[int] | None:
    """"0,1,2", "0:3" or "0:2,5" as a list of mode indices (None: the default region)."""
    if spec is None:
        return None
    modes: list[int] = []
    try:
        for part in filter(None, (p.strip() for p in spec.split(","))):
            start, colon, stop = part.partition(":")
            modes += list(range(int(start), int(stop))) if colon else [int(part)]
    except ValueError as err:
        raise CliError(f"--region {spec!r}: expected site indices such as 0,1,2 or 0:3") from err
    return modes


def _measure(args: argparse.Namespace) -> int:
    from nqs import measure

    if args.samples < 0 or (args.renyi_samples is not None and args.renyi_samples <= 0):
        raise CliError(f"--samples must be ≥ 0 and --renyi-samples > 0 (got {args.samples}, {args.renyi_samples})")
    with _reading(args.file):
        results.load(args.file)
        try:
            loaded = results.load_state(args.file, n_samples=args.samples, seed=args.seed)
        except results.ResultFileError as err:  # no checkpoint, or no recipe to rebuild the state from
            raise CliError(" ".join(str(err).split())) from err
    spins = bool(args.component) or measure.is_spin_half(loaded.system)  # otherwise only the entropy by default
    try:
        rows = measure.measure_state(
            loaded, components=args.component or ["z"], correlations=spins and not args.no_correlations,
            connected=not args.no_connected, structure_factor=spins and not args.no_structure_factor,
            renyi=not args.no_renyi, region=_region(args.region), renyi_samples=args.renyi_samples,
            seed=None if args.seed is None else args.seed + 1000, exact=not args.no_exact)
    except measure.MeasureError as err:
        raise CliError(f"{args.file}: {err}") from err
    res, vstate = loaded.result, loaded.vstate
    how = (f"{args.samples} samples ({type(vstate.sampler).__name__})" if args.samples else "full sum")
    print(f"{args.file}: {res.kind} run of {res.system.get('builder')} {res.system.get('params', {})}, "
          f"ansatz {res.ansatz.get('name')}, checkpoint step {res.checkpoint_step}; {how}")
    print(measure.format_measurements(rows))
    if not spins:
        print("(not a system of spins 1/2: no spin correlations; ask for them with --component)")
    print("C(r): mean of <s_i s_j> over the pairs i<j at graph distance r (Pauli s), conn: minus <s_i><s_j>;\n"
          "S(q) = (1/N) sum_ij exp(iq.(x_i-x_j)) <s_i s_j>; S2 = -ln Tr rho_A^2 (swap estimator, two replicas);\n"
          "full sum: the same state summed over the basis; exact: the exact ground state (see nqs.measure)")
    return 0


# -- entry point ---------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nqs", description="Inspect, plot, list and compare nqs result files; measure saved states.")
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
    p = sub.add_parser("compare", help="one table of several runs' errors against their exact references")
    p.add_argument("files", type=Path, nargs="+", metavar="FILE")
    p.add_argument("--quantity", action="append", default=None, metavar="NAME",
                   help="history column to compare (repeatable; default: a ground state's energy, otherwise every "
                        "quantity with an exact reference)")
    p.add_argument("--plot", type=Path, default=None, metavar="PNG", help="also plot the errors into this PNG")
    p = sub.add_parser("measure", help="spin correlations, structure factor and Rényi-2 entropy of the saved state")
    p.add_argument("file", type=Path)
    p.add_argument("--samples", type=int, default=4096, help="samples (default 4096; 0: sum over the basis)")
    p.add_argument("--seed", type=int, default=None, help="sampler seed (default: the run's)")
    p.add_argument("--component", action="append", choices=("x", "y", "z"), default=None,
                   help="spin component of C(r) and S(q) (repeatable; default z)")
    p.add_argument("--region", default=None, metavar="SITES",
                   help="region A of the Rényi entropy, e.g. 0,1,2 or 0:3 (default: the first half of the sites)")
    p.add_argument("--renyi-samples", type=int, default=None, metavar="N",
                   help="samples per replica of the swap estimator (default: --samples)")
    p.add_argument("--no-correlations", action="store_true", help="skip C(r)")
    p.add_argument("--no-connected", action="store_true", help="skip the connected C(r)")
    p.add_argument("--no-structure-factor", action="store_true", help="skip S(q)")
    p.add_argument("--no-renyi", action="store_true", help="skip the Rényi-2 entropy")
    p.add_argument("--no-exact", action="store_true", help="skip the full-sum and exact-ground-state columns")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the `nqs` command line with `argv` (default: sys.argv[1:]); returns the exit status."""
    args = _parser().parse_args(argv)
    commands = {
        "inspect": lambda: _inspect(args.file),
        "plot": lambda: _plot(args.file, args.out, args.quantity),
        "list": lambda: _list(args.folder, args.recursive),
        "compare": lambda: _compare(args.files, args.quantity, args.plot),
        "measure": lambda: _measure(args),
    }
    try:
        return commands[args.command]()
    except CliError as err:
        if os.environ.get("NQS_TRACEBACK"):  # as for the scripts: the traceback instead of the one line
            raise
        print(f"nqs {args.command}: {err}", file=sys.stderr)
    return 2

if __name__ == "__main__":
    raise SystemExit(main())
