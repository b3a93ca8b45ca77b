r"""J1-J2 ground states on the square lattice: the ANTN (both variants) started from DMRG, against its two limits —
the DMRG MPS at the same bond dimension and the plain autoregressive network — and exact numbers.

H = Σ_<ij> σ_i·σ_j + J2 Σ_<<ij>> σ_i·σ_j (Pauli units, periodic), Marshall-rotated (the sign rule in the
Hamiltonian; every ansatz also learns a phase), zero magnetisation by masking (DMRG conserves S^z). The ANTN and the
Transformer generate along the snake path, the path of the DMRG MPS. For each J2 the script runs DMRG once
(`ansatze.dmrg`, TeNPy) and then VMC + SR for every ``--models`` entry: ``antn-blockwise`` and ``antn-elementwise``
start from the DMRG MPS, ``transformer`` from its random initialisation. One result file per (J2, model) under
``--out`` (a folder): ``L4x4_J2=0.5_antn-blockwise.h5``, ``..._dmrg.h5`` (the DMRG baseline row). The reference is
ED up to 2^20 sector states (4×4), else the published energy (6×6, `nqs.exact.reference_ground_state_energy`).

    python runs/j1j2_antn.py                                    # 4×4 at J2 = 0.2, 0.5, 0.8
    python runs/j1j2_antn.py --L 6 --J2 0.5 --bond-dim 16 --samples 2048 --steps 400
    python runs/j1j2_antn.py --quick --out /tmp/antn
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from _common import (
    add_dtype_option,
    at_least,
    check_output,
    config_of,
    experiment_parser,
    finite_float,
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
    sample_count,
    script,
)

from ansatze.choice import AnsatzChoice, build_ansatz
from hamiltonians import heisenberg
from nqs import exact, results
from nqs.run import Run
from nqs.system import System
from nqs.vmc import VMCSettings, ground_state

MODELS = ("dmrg", "antn-blockwise", "antn-elementwise", "transformer")


def parser() -> argparse.ArgumentParser:
    p = experiment_parser(__doc__.splitlines()[0], "runs/out/j1j2_antn")
    p.add_argument("--L", type=at_least(2), default=4, help="sites per side (Lx)")
    p.add_argument("--Ly", type=positive_int, default=None, help="sites along y (default: L)")
    p.add_argument("--J2", type=finite_float, nargs="+", default=[0.2, 0.5, 0.8])
    p.add_argument("--models", choices=MODELS, nargs="+", default=list(MODELS))
    p.add_argument("--bond-dim", type=positive_int, default=8, help="χ of the ANTN and of the DMRG baseline")
    p.add_argument("--network", choices=("transformer", "rnn"), default="transformer",
                   help="the autoregressive network of the ANTN and of the plain-network row")
    p.add_argument("--layers", type=positive_int, default=1)
    p.add_argument("--features", type=positive_int, default=16)
    p.add_argument("--heads", type=positive_int, default=2)
    add_dtype_option(p)
    p.add_argument("--steps", type=nonnegative_int, default=300)
    p.add_argument("--samples", type=sample_count, default=1024)
    p.add_argument("--lr", type=positive_float, default=0.01)
    p.add_argument("--diag-shift", type=nonnegative_float, default=1e-3)
    p.add_argument("--chunk-size", type=positive_int, default=None, help="samples per batch of local energies")
    p.add_argument("--dmrg-sweeps", type=positive_int, default=30)
    return p


def _file(args: argparse.Namespace, J2: float, model: str) -> Path:
    return args.out / f"L{args.L}x{args.Ly}_J2={J2:g}_{model}.h5"


def _choice(args: argparse.Namespace, model: str) -> AnsatzChoice:
    common = dict(layers=args.layers, features=args.features, heads=args.heads, order="snake", dtype=args.dtype)
    if model == "transformer":
        return AnsatzChoice(kind="rnn" if args.network == "rnn" else "transformer", **common)
    return AnsatzChoice(kind="antn", network=args.network, variant=model.removeprefix("antn-"),
                        bond_dim=args.bond_dim, **common)


def _reference(system: System, args: argparse.Namespace, J2: float) -> tuple[float | None, str | None]:
    """(exact energy, its source): ED when the sector is small, else a published value, else None."""
    if exact.sector_dimension(system) <= 2**20:
        return exact.ground_state(system).energy, "ED"
    if args.L == args.Ly:
        found = exact.reference_ground_state_energy("square", args.L, pbc=True, J=1.0, J2=J2)
        if found is not None:
            return found
    return None, None


def _dmrg_row(args, system, J2, dmrg, seconds, reference) -> dict:
    """Store the DMRG baseline as a ground-state result file (one row) and return its table row."""
    path = _file(args, J2, "dmrg")
    ansatz = {"name": "DMRG MPS (TeNPy)", "bond_dim": args.bond_dim, "bond_dims": list(dmrg.bond_dims),
              "path": list(dmrg.path), "n_parameters": int(sum(b.size for b in dmrg.tensors))}
    method = {"name": "ansatze.dmrg.dmrg_ground_state", "max_sweeps": args.dmrg_sweeps,
              "conserved": None if dmrg.conserved is None else list(dmrg.conserved)}
    with Run(path, args.mode if args.mode != "resume" else "overwrite", kind="ground_state", system=system,
             ansatz=ansatz, method=method, config=config_of(args), seed=args.seed, progress=False) as run:
        if reference[0] is not None:
            run.write_exact({"energy": reference[0]})
        run.append({"step": float(dmrg.sweeps), "energy": dmrg.energy, "energy_error": 0.0,
                    "truncation_error": dmrg.truncation_error, "wall_time": seconds})
    return {"model": f"DMRG χ={args.bond_dim}", "parameters": ansatz["n_parameters"], "energy": dmrg.energy,
            "error": 0.0, "seconds": seconds}


def _vmc_row(args, system, J2, model_name, dmrg, reference) -> dict:
    from ansatze.dmrg import antn_parameters

    model = build_ansatz(_choice(args, model_name), system, phase=True)
    start = (lambda fresh: antn_parameters(model, fresh, dmrg)) if model_name.startswith("antn") else None
    settings = VMCSettings(n_steps=args.steps, n_samples=args.samples, learning_rate=args.lr, lr_schedule="cosine",
                           lr_final=args.lr / 10, diag_shift=args.diag_shift, solver="minsr", observables_every=0,
                           n_samples_final=4 * args.samples, chunk_size=args.chunk_size)
    config = {**config_of(args), "model": model_name, "J2_value": J2}
    if reference[1] not in (None, "ED"):
        config["reference"] = reference[1]
    outcome = ground_state(system, model, settings, seed=args.seed, out=str(_file(args, J2, model_name)),
                           mode=args.mode, config=config, progress=not args.quiet, initial_parameters=start,
                           exact=False, reference_energy=reference[0])
    result = results.load(_file(args, J2, model_name))
    return {"model": model_name, "parameters": result.ansatz.get("n_parameters"),
            "energy": float(outcome.energy.mean.real), "error": float(outcome.energy.error_of_mean),
            "seconds": outcome.wall_time}


def _print_table(rows: list[dict], n: int) -> None:
    print(f"{'J2':>5} {'model':<18} {'params':>7} {'E/N':>12} {'± (E/N)':>9} {'exact E/N':>11} {'rel. error':>10} "
          f"{'time (s)':>9}")
    for r in rows:
        ref = r["reference"]
        rel = f"{abs(r['energy'] - ref) / abs(ref):10.2e}" if ref is not None else f"{'—':>10}"
        exact_text = f"{ref / n:11.7f}" if ref is not None else f"{'—':>11}"
        print(f"{r['J2']:5.2f} {r['model']:<18} {r['parameters'] or 0:7d} {r['energy'] / n:12.7f} "
              f"{r['error'] / n:9.1e} {exact_text} {rel} {r['seconds']:9.1f}")


@script
def main(argv: list[str] | None = None) -> list[dict]:
    args = parser().parse(argv, quick=dict(L=4, Ly=2, J2=[0.5], bond_dim=4, layers=1, features=8, heads=2, steps=10,
                                           samples=128))
    args.Ly = args.Ly or args.L
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} is a file: this script writes one result file per (J2, model) into a "
                         "folder; choose a folder")
    args.out.mkdir(parents=True, exist_ok=True)
    for J2 in args.J2:
        for model in args.models:
            check_output(_file(args, J2, model), args.mode, "ground_state")
    from ansatze.dmrg import dmrg_ground_state

    rows = []
    for J2 in args.J2:
        system = heisenberg((args.L, args.Ly), lattice="square", J2=J2, pbc=True, marshall=True)
        reference = _reference(system, args, J2)
        path = build_ansatz(_choice(args, "antn-blockwise"), system).layout().path
        t0 = time.perf_counter()
        dmrg = dmrg_ground_state(system, args.bond_dim, path=path, max_sweeps=args.dmrg_sweeps)
        seconds = time.perf_counter() - t0
        for model in args.models:
            row = (_dmrg_row(args, system, J2, dmrg, seconds, reference) if model == "dmrg"
                   else _vmc_row(args, system, J2, model, dmrg, reference))
            rows.append({**row, "J2": J2, "reference": reference[0]})
    print(f"\nJ1-J2 {args.L}x{args.Ly} PBC (Marshall-rotated, S^z = 0), χ = {args.bond_dim}, {args.network} "
          f"{args.layers}x{args.features}, {args.samples} samples, {args.steps} steps")
    _print_table(rows, args.L * args.Ly)
    return [dataclasses.asdict(r) if dataclasses.is_dataclass(r) else r for r in rows]


if __name__ == "__main__":
    main()
