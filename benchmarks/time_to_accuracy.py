"""Benchmark: wall time to a given accuracy of the Heisenberg ground state, our ansätze against NetKet's.

The race users choose on is not the cost of a step at equal parameters but the wall time to an error. For every
system, model and setting of a small fixed grid, one VMC run (`nqs.vmc.ground_state`: the same method for every
model) records after each step its wall time since the run began (model initialisation and compilation included)
and its energy; the run stops when it reaches the smallest threshold or its time budget.

Systems: H = Σ_<ij> σ_i·σ_j (Pauli units), periodic, Marshall-rotated (the ground state is positive, so every model
is real and positive): chain L = 20 (Bethe ansatz), square 4×4 (ED, computed once outside the clocks) and 6×6
(varbench ED, −97.7575896 in these units). Our models impose the zero-magnetisation sector in their conditionals
(`system.constraint`); NetKet's autoregressive models cannot and sample the full space; `RBMSymm` (translations) is
sampled by Metropolis exchange moves inside the sector, the most common user choice.

| name              | model                                                                           | size knob |
|-------------------|---------------------------------------------------------------------------------|-----------|
| transformer       | `ansatze.ARTransformer(layers=2, heads=2, phase=False)`, sector mask             | features  |
| transformer_patch | the same over 2×2 patches in raster order (square lattices)                      | features  |
| rnn               | `ansatze.ARRNN(cell="gru")`, snake order on squares, sector mask                 | hidden    |
| arnn_dense        | `nk.models.ARNNDense(layers=2)`                                                  | features  |
| arnn_conv         | `nk.models.FastARNNConv1D(layers=3, kernel L/2)` / `FastARNNConv2D(layers=3, 3×3)` | features  |
| gru               | `nkx.models.FastGRUNet1D(layers=2)`, snake order on squares                      | features  |
| rbm_symm          | `nk.models.RBMSymm(translations)`, Metropolis exchange in the sector, 16 chains  | alpha     |

Grid: the autoregressive models at the width whose parameter count is closest to each of `--params` (default
1 500 and 6 000), RBMSymm at α ∈ {4, 16}; each at learning rates `--lrs` (default 0.005 and 0.02, constant); minSR
(`VMC_SR`, diag_shift 1e-3), 1 024 samples per step. 6×6: one setting per model — its best on 4×4 when that row
is in the output file, else the larger size at the smaller learning rate.

Error of a step: |Ē − E_0| / |E_0| with Ē the mean of the last `WINDOW` step energies (single Monte Carlo
estimates scatter by ~1e-4 near convergence). t(ε): the first wall time at which that error is ≤ ε. The final
energy uses 4 096 fresh samples (not on the clock).

Each run is its own process pinned to one core (`taskset`, one thread per library: `NQS_THREADS=1`), `--jobs` of
them at a time (default 2 on this 2-core machine): every model gets one core. The output file is rewritten after
every run and a rerun skips the runs already in it (`--fresh` starts over), so an interrupted grid resumes.

    python benchmarks/time_to_accuracy.py                   # the whole grid (~3 h on 2 cores), writes the json
    python benchmarks/time_to_accuracy.py --systems chain20 --models transformer,rbm_symm --budget 120
    python benchmarks/time_to_accuracy.py --quick --out /tmp/q.json
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import _common  # noqa: F401  (first: switches NetKet's sharding off before NetKet loads)
import numpy as np
from _common import REPO, closest_width, count_parameters, machine, table, write_json

THRESHOLDS = (1e-2, 1e-3, 1e-4)
WINDOW = 10
SYSTEMS = ("chain20", "square4", "square6")
MODELS = ("transformer", "transformer_patch", "rnn", "arnn_dense", "arnn_conv", "gru", "rbm_symm")
OURS = ("transformer", "transformer_patch", "rnn")
SQUARE_ONLY = ("transformer_patch",)
RBM_ALPHAS = (4, 16)
LARGE = {"square6"}  # one setting per model, a longer budget


def parse_system(spec: str) -> tuple[str, int]:
    for lattice in ("chain", "square"):
        if spec.startswith(lattice) and spec[len(lattice):].isdigit():
            return lattice, int(spec[len(lattice):])
    raise argparse.ArgumentTypeError(f"system {spec!r} is not chainL or squareL (e.g. chain20, square4)")


def make_system(spec: str, model: str):
    """The Marshall-rotated periodic Heisenberg system for `model`: with the zero-magnetisation sector for ours and
    RBMSymm, on the full space for NetKet's autoregressive models (they cannot mask)."""
    import dataclasses

    from hamiltonians import heisenberg

    lattice, L = parse_system(spec)
    system = heisenberg(L, lattice=lattice, pbc=True, marshall=True,
                        zero_magnetization=model in OURS or model == "rbm_symm")
    return dataclasses.replace(system, observables={})


def build_model(name: str, system, spec: str, width: int):
    """The module `name` at size knob `width` (module docstring's table)."""
    import netket as nk
    import netket.experimental as nkx
    from netket.utils import HashableArray

    from ansatze import ARRNN, ARTransformer, snake_order

    lattice, L = parse_system(spec)
    hilbert, square = system.hilbert, lattice == "square"
    if name == "transformer":
        return ARTransformer(hilbert, layers=2, features=2 * width, heads=2, phase=False, constraint=system.constraint)
    if name == "transformer_patch":
        return ARTransformer(hilbert, layers=2, features=2 * width, heads=2, phase=False, order="raster",
                             shape=(L, L), patch=(2, 2), constraint=system.constraint)
    if name == "rnn":
        order = {"order": "snake", "shape": (L, L)} if square else {}
        return ARRNN(hilbert, hidden=width, cell="gru", phase=False, constraint=system.constraint, **order)
    if name == "arnn_dense":
        return nk.models.ARNNDense(hilbert, layers=2, features=width)
    if name == "arnn_conv":
        if square:
            return nk.models.FastARNNConv2D(hilbert, layers=3, features=width, kernel_size=(3, 3))
        return nk.models.FastARNNConv1D(hilbert, layers=3, features=width, kernel_size=L // 2)
    if name == "gru":
        if not square:
            return nkx.models.FastGRUNet1D(hilbert, layers=2, features=width)
        pos = snake_order(L, L)
        path = pos[:, 0] * L + pos[:, 1]
        prev = np.full((L * L, 1), -1, dtype=np.intp)  # the previous site on the snake feeds the recurrence
        prev[path[1:], 0] = path[:-1]
        return nkx.models.FastGRUNet1D(hilbert, layers=2, features=width, reorder_idx=HashableArray(path),
                                       prev_neighbors=HashableArray(prev))
    if name == "rbm_symm":
        return nk.models.RBMSymm(symmetries=system.graph.translation_group(), alpha=width)
    raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")


def match_width(name: str, spec: str, target: int) -> int:
    """The size knob whose parameter count is closest to `target`."""
    system = make_system(spec, name)
    return closest_width(lambda w: count_parameters(build_model(name, system, spec, w), system.n_sites), target)[0]


def reference_energy(spec: str) -> tuple[float, str]:
    """E_0 of the system (Bethe ansatz, published ED, else ED here)."""
    from nqs import exact
    from nqs.reference_energies import reference_ground_state_energy

    lattice, L = parse_system(spec)
    known = reference_ground_state_energy(lattice, L, pbc=True)
    if known is not None:
        return known
    return float(exact.ground_state(make_system(spec, "transformer")).energy), "ED (nqs.exact.ground_state)"


def windowed_errors(energies: list[float], e0: float) -> np.ndarray:
    """|mean of the last WINDOW energies − E_0| / |E_0| after each step (fewer at the start)."""
    e = np.asarray(energies, dtype=float)
    cumulative = np.concatenate([[0.0], np.cumsum(e)])
    idx = np.arange(1, len(e) + 1)
    start = np.maximum(0, idx - WINDOW)
    return np.abs((cumulative[idx] - cumulative[start]) / (idx - start) - e0) / abs(e0)


def run_one(spec: dict) -> dict:
    """One VMC run of the grid (in this process): its trajectory and threshold times."""
    import jax

    from nqs.vmc import VMCSettings, ground_state

    system = make_system(spec["system"], spec["model"])
    t0 = time.perf_counter()
    model = build_model(spec["model"], system, spec["system"], spec["width"])
    times, energies = [], []

    def record(step, row, driver):
        times.append(time.perf_counter() - t0)
        energies.append(row["energy"])
        if not math.isfinite(row["energy"]):
            return False
        err = windowed_errors(energies[-WINDOW:], spec["e0"])[-1]
        return not (len(energies) >= WINDOW and err <= min(THRESHOLDS)) and times[-1] < spec["budget"]

    settings = VMCSettings(n_steps=10**6, n_samples=spec["samples"], learning_rate=spec["lr"], solver="minsr",
                           diag_shift=1e-3, n_samples_final=4096, checkpoint_every=10**6, observables_every=0)
    outcome = ground_state(system, model, settings, seed=spec["seed"], exact=False, reference_energy=spec["e0"],
                           callbacks=[record], progress=False)
    errors = windowed_errors(energies, spec["e0"])
    reached = {f"{eps:g}": next((times[i] for i in range(WINDOW - 1, len(errors)) if errors[i] <= eps), None)
               for eps in THRESHOLDS}
    steps = np.diff(times)
    return {**spec, "n_params": int(outcome.state.n_parameters), "steps": len(times), "wall_s": times[-1],
            "first_step_s": times[0], "step_s": float(np.median(steps)) if len(steps) else None,
            "time_to": reached, "best_error": float(errors[WINDOW - 1:].min()) if len(errors) >= WINDOW else None,
            "final_energy": float(np.real(outcome.energy.mean)),
            "final_error_of_mean": float(outcome.energy.error_of_mean),
            "final_relative_error": outcome.relative_error, "stop": "budget" if times[-1] >= spec["budget"] else
            ("threshold" if reached[f"{min(THRESHOLDS):g}"] is not None else outcome.stop_reason),
            "trajectory": {"time_s": times, "energy": energies}, "devices": str(jax.devices())}


def key(spec: dict) -> str:
    return f"{spec['system']}/{spec['model']}/w{spec['width']}/lr{spec['lr']:g}"


def grid(args, done: list[dict]) -> list[dict]:
    """The run specifications of the grid (module docstring), in the order they run."""
    specs = []
    for system in args.systems.split(","):
        lattice, _ = parse_system(system)
        e0, source = reference_energy(system)
        budget = args.large_budget if system in LARGE else args.budget
        for model in args.models.split(","):
            if model in SQUARE_ONLY and lattice != "square":
                continue
            widths = (RBM_ALPHAS if model == "rbm_symm" else
                      tuple(match_width(model, system, int(p)) for p in args.params.split(",")))
            settings = list(dict.fromkeys((w, float(lr)) for w in widths for lr in args.lrs.split(",")))
            if system in LARGE:
                settings = [best_setting(done, model, "square4") or (widths[-1], min(s[1] for s in settings))]
            specs += [{"system": system, "model": model, "width": w, "lr": lr, "e0": e0, "e0_source": source,
                       "budget": budget, "samples": args.samples, "seed": args.seed} for w, lr in settings]
    return specs


def best_setting(rows: list[dict], model: str, system: str) -> tuple[int, float] | None:
    """(width, lr) of `model`'s best row on `system`: the smallest threshold reached soonest, else the best error."""
    rows = [r for r in rows if r["model"] == model and r["system"] == system and r.get("best_error") is not None]
    if not rows:
        return None

    def score(r):
        for eps in sorted(THRESHOLDS):
            if r["time_to"][f"{eps:g}"] is not None:
                return (eps, r["time_to"][f"{eps:g}"])
        return (math.inf, r["best_error"])

    best = min(rows, key=score)
    return best["width"], best["lr"]


def launch(spec: dict, core: int, quiet: bool) -> dict:
    """Run `spec` in a fresh process pinned to `core`; its result row."""
    env = {**os.environ, "NQS_THREADS": "1"}
    cmd = ["taskset", "-c", str(core), sys.executable, __file__, "--one", json.dumps(spec)]
    limit = 2 * spec["budget"] + 600  # the budget is checked between steps: a model whose step takes minutes
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, check=False, timeout=limit)
    except subprocess.TimeoutExpired:
        row = {**spec, "failed": f"no result within {limit:.0f} s (a step, or the final evaluation, took minutes)"}
    else:
        row = (json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else
               {**spec, "failed": proc.stderr[-2000:]})
    if not quiet:
        print(f"{key(row)}: {describe(row)}", flush=True)
    return row


def describe(row: dict) -> str:
    """One line on a finished run."""
    if "failed" in row:
        return "failed: " + row["failed"].strip().splitlines()[-1]
    reached = ", ".join(f"{k}: {v:.0f} s" if v is not None else f"{k}: -" for k, v in row["time_to"].items())
    best = "-" if row["best_error"] is None else f"{row['best_error']:.2e}"
    return f"{row['n_params']} params, {row['steps']} steps, best {best}; {reached}"


def summary_table(rows: list[dict]) -> str:
    """One row per (system, model): its best setting (`best_setting`)."""
    out = []
    for system in dict.fromkeys(r["system"] for r in rows):
        for model in dict.fromkeys(r["model"] for r in rows if r["system"] == system):
            width, lr = best_setting(rows, model, system) or (None, None)
            r = next((r for r in rows if (r["system"], r["model"], r["width"], r["lr"]) == (system, model, width, lr)),
                     None)
            if r is None:
                continue
            out.append([system, model, "ours" if model in OURS else "netket", r["n_params"], lr, r["step_s"],
                        *[r["time_to"][f"{eps:g}"] or "-" for eps in THRESHOLDS], r["best_error"], r["steps"]])
    return table(out, ["system", "model", "from", "params", "lr", "step s", *[f"t({eps:g}) s" for eps in THRESHOLDS],
                       "best error", "steps"])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--params", default="1500,6000", help="parameter targets of the autoregressive models")
    parser.add_argument("--lrs", default="0.005,0.02")
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--budget", type=float, default=240.0, help="seconds per run (chain, 4×4)")
    parser.add_argument("--large-budget", type=float, default=1200.0, help="seconds per run (6×6)")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time, each pinned to its own core")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fresh", action="store_true", help="ignore the runs already in the output file")
    parser.add_argument("--quick", action="store_true", help="chain 8, two models, 20 s budgets")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one spec in this process, print its row
    parser.add_argument("--out", default="benchmarks/out/time_to_accuracy.json")
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(json.loads(args.one))))
        return {}
    if args.quick:
        args.systems, args.models, args.params, args.lrs = "chain8", "transformer,rbm_symm", "300", "0.02"
        args.samples, args.budget, args.large_budget = 256, 20.0, 20.0
    out = Path(args.out)
    done = [] if args.fresh or not out.exists() else json.loads(out.read_text())["results"]
    done = [r for r in done if "failed" not in r]
    rows = list(done)
    pending = [s for s in grid(args, done) if key(s) not in {key(r) for r in done}]
    cores = sorted(os.sched_getaffinity(0))
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        free = list(cores[: args.jobs])
        futures = {}
        for spec in pending:
            if len(futures) == args.jobs:
                finished, _ = concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_COMPLETED)
                for f in finished:
                    free.append(futures.pop(f))
                    rows.append(f.result())
                    write_json(out, {"results": rows, "config": vars(args), "machine": machine()})
            core = free.pop(0)
            futures[pool.submit(launch, spec, core, args.quiet)] = core
        for f in concurrent.futures.as_completed(futures):
            rows.append(f.result())
            write_json(out, {"results": rows, "config": vars(args), "machine": machine()})
    failures = [f"{key(r)}: {r['failed'].splitlines()[-1]}" for r in rows if "failed" in r]
    text = summary_table([r for r in rows if "failed" not in r])
    print(text + ("\nfailed: " + "; ".join(failures) if failures else ""))
    data = {"results": rows, "config": vars(args), "machine": machine(), "failures": failures}
    print(f"written {write_json(out, data)}")
    return data


if __name__ == "__main__":
    main()
