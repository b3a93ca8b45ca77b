"""The `nqs` command line: inspect, plot and list result files.

    nqs inspect FILE        metadata, final values with error bars, exact reference, relative error
    nqs plot FILE [--out]   PNG of the history with the exact reference as a dashed line
    nqs list DIR            one line per result file in a folder
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from nqs import results


def _inspect(path: Path) -> int:
    res = results.load(path)
    a = res.attrs
    print(f"{path}: {res.kind} run, created {a.get('created')}, seed {a.get('seed')}")
    versions = a.get("versions") or {}
    print("versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())))
    print(f"config: {a.get('config')}")
    system = {k: v for k, v in res.system.items() if not k.startswith("convention_")}
    print(f"system: {system}")
    print(f"ansatz: {res.ansatz}")
    print(f"method: {res.method}")
    steps = res.history.get("step")
    n_steps = 0 if steps is None or len(steps) == 0 else int(np.nanmax(steps))
    print(f"history: {len(steps) if steps is not None else 0} rows, last step {n_steps}, checkpoint step {res.checkpoint_step}")
    rows = results.compare_with_exact(res)
    if rows:
        print(results.format_table(rows))
    else:
        for name, (value, err) in results.final_values(res).items():
            print(f"{name:36s} {value:16.10f}" + ("" if err is None else f" ± {err:.2e}"))
        print("(no exact reference stored)")
    return 0


def _plot(path: Path, out: Path | None, quantities: list[str] | None) -> int:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise SystemExit(f"nqs plot needs matplotlib: pip install 'nqs[plot]' ({err})")
    res = results.load(path)
    hist = res.history
    x_name = "time" if "time" in hist and np.isfinite(hist["time"]).any() else "step"
    x = hist[x_name]
    names = quantities or [n for n in ("energy",) if n in hist] or list(results.final_values(res))[:4]
    rel_energy = "energy" in names and np.ndim(res.exact.get("energy", np.nan)) == 0 and "energy" in res.exact
    n_panels = len(names) + int(rel_energy)
    fig, axes = plt.subplots(n_panels, 1, figsize=(7, 2.6 * n_panels), sharex=True, squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        if name not in hist:
            raise SystemExit(f"nqs plot: {path} has no history column {name!r}")
        y, ok = hist[name], np.isfinite(hist[name])
        err = hist.get(f"{name}_error")
        if err is not None:
            ax.errorbar(x[ok], y[ok], yerr=np.nan_to_num(err[ok]), fmt=".-", ms=3, lw=0.8, label="variational")
        else:
            ax.plot(x[ok], y[ok], ".-", ms=3, lw=0.8, label="variational")
        ref = res.exact.get(name)
        if ref is not None and np.ndim(ref) == 0:
            ax.axhline(float(ref), color="k", ls="--", lw=1, label="exact")
        elif ref is not None and np.shape(ref) == np.shape(x):
            ax.plot(x, ref, "k--", lw=1, label="exact")
        ax.set_ylabel(name)
        ax.legend(loc="best", fontsize=8)
    if rel_energy:
        ax = axes[-1, 0]
        e, ref = hist["energy"], float(res.exact["energy"])
        ok = np.isfinite(e)
        ax.semilogy(x[ok], np.abs(e[ok] - ref) / abs(ref), ".-", ms=3, lw=0.8)
        ax.set_ylabel("|E - E_exact| / |E_exact|")
    axes[-1, 0].set_xlabel(x_name)
    fig.suptitle(f"{path.name}: {res.system.get('builder', '')}", fontsize=10)
    fig.tight_layout()
    out = out or path.with_suffix(".png")
    fig.savefig(out, dpi=120)
    plt.close(fig)
    print(f"wrote {out}")
    return 0


def _list(folder: Path) -> int:
    files = sorted(folder.rglob("*.h5"))
    header = f"{'file':40s} {'kind':13s} {'builder':26s} {'N':>4s} {'ansatz':16s} {'steps':>6s} {'energy':>24s} {'exact':>14s} {'rel.err':>9s}"
    print(header)
    for f in files:
        name = str(f.relative_to(folder))
        try:
            res = results.load(f)
        except (results.ResultFileError, OSError):
            print(f"{name:40s} (not an nqs result)")
            continue
        final = results.final_values(res)
        e = final.get("energy")
        energy = "" if e is None else f"{e[0]:.8f}" + ("" if e[1] is None else f" ± {e[1]:.1e}")
        ref = res.exact.get("energy")
        exact = "" if ref is None or np.ndim(ref) else f"{float(ref):.8f}"
        rel = "" if not exact or e is None else f"{abs(e[0] - float(ref)) / abs(float(ref)):.2e}"
        steps = res.history.get("step")
        n = "" if steps is None or not len(steps) else str(int(np.nanmax(steps)))
        print(
            f"{name:40s} {res.kind:13s} {str(res.system.get('builder', '')):26s} {str(res.system.get('n_sites', '')):>4s} "
            f"{str(res.ansatz.get('name', '')):16s} {n:>6s} {energy:>24s} {exact:>14s} {rel:>9s}"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nqs", description="Inspect, plot and list nqs result files.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("inspect", help="print a run's metadata and its comparison with the exact reference")
    p.add_argument("file", type=Path)
    p = sub.add_parser("plot", help="write a PNG of the history with the exact reference")
    p.add_argument("file", type=Path)
    p.add_argument("--out", type=Path, default=None, help="PNG path (default: FILE with .png)")
    p.add_argument("--quantity", action="append", default=None, help="history column to plot (repeatable)")
    p = sub.add_parser("list", help="tabulate the result files in a folder")
    p.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "inspect":
            return _inspect(args.file)
        if args.command == "plot":
            return _plot(args.file, args.out, args.quantity)
        if not args.folder.is_dir():
            raise FileNotFoundError(f"{args.folder} is not a folder")
        return _list(args.folder)
    except (results.ResultFileError, FileNotFoundError) as err:
        target = getattr(args, "file", None) or getattr(args, "folder", None)
        print(f"nqs {args.command}: {target} is not an nqs result file: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
