r"""Gauge-invariant autoregressive ground states of the 2D Z2 lattice gauge theory across g, against sector ED.

H = −Σ_p B_p − g Σ_l σˣ_l on the links of an L×L torus, B_p = Π_{l∈∂p} σᶻ_l, in the Gauss-law sector
A_v = Π_{l∋v} σˣ_l = +1 and the trivial topological sector W_x = W_y = +1 (``--sector all``: the four sectors)
(`hamiltonians.z2_gauge`; basis, lattice and loop conventions in its docstring and in the result file). Wegner
duality maps it to the 2D transverse-field Ising model on the dual torus: the deconfined phase (perimeter law of
the Wilson loops) at g < g_c ≈ 0.3285 (3D Ising) gives way to the confined one (area law, Creutz ratio χ → string
tension). ``--model toric`` is H = −J_v Σ_v A_v − J_p Σ_p B_p − h_x Σ_l σˣ_l − h_z Σ_l σᶻ_l
(`hamiltonians.toric_code`: the constraint A_v = +1 in all topological sectors at h_z = 0, the full space
otherwise), scanned in h_x.

The ansatz generates gauge blocks (the two links a vertex owns) with the Gauss law as a mask, so every sample is
gauge invariant and the sector is sampled exactly. In this σˣ basis H is stoquastic (off-diagonal elements −1 from
B_p; for the toric code −J_p and −h_z, ≤ 0 for J_p, h_z ≥ 0): its ground state is positive, so the ansatz is built
without a phase head there (``build_ansatz(..., phase=False)``; ``--phase`` puts it back).

Compared with ED in the sector (up to `nqs.exact.MAX_ED_STATES` states; the 4×4 trivial sector has 2^15): E/N_p,
the plaquette ⟨B_p⟩, the largest Wilson loop W(R, R) (R = L//2), the Creutz ratio χ(R, R) =
−ln[W(R,R) W(R−1,R−1) / W(R,R−1)²] (W(0, ·) = 1) and the number of violated stars (zero by construction); beyond
ED (8×8) the variational numbers alone. ``--couplings`` scans g (h_x for the toric code), one result file per value
(``_g<value>`` / ``_hx<value>`` added to the name), and prints one table at the end.

    python runs/z2_gauge.py --L 4 --g 0.3                                  # writes runs/out/z2_gauge.h5
    python runs/z2_gauge.py --L 4 --couplings 0.1 0.2 0.3 0.35 0.4 0.5 0.7 --steps 200 --samples 512 \
        --out /tmp/z2/L4.h5                                                 # one file per g: /tmp/z2/L4_g0.1.h5 ...
    python runs/z2_gauge.py --L 8 --couplings 0.2 0.33 0.5 --steps 50 --samples 128 --final-samples 512 \
        --chunk-size 64 --loops creutz --out /tmp/z2/L8.h5                 # beyond ED
    python runs/z2_gauge.py --model toric --L 3 --hz 0.1 --couplings 0.2 0.4      # full space at h_z != 0
    python runs/z2_gauge.py --quick --out /tmp/z2.h5
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path

from _common import (
    add_ansatz_options,
    add_init_options,
    ansatz_choice,
    at_least,
    check_output,
    config_of,
    experiment_parser,
    finite_float,
    initial_parameters,
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
    sample_count,
    script,
)

from ansatze.choice import build_ansatz
from hamiltonians import toric_code, z2_gauge
from nqs import exact, results
from nqs.system import System
from nqs.vmc import VMCSettings, ground_state


def _parser() -> argparse.ArgumentParser:
    parser = experiment_parser(__doc__.splitlines()[0], "runs/out/z2_gauge.h5")
    model = parser.add_argument_group("model")
    model.add_argument("--model", choices=("z2", "toric"), default="z2",
                       help="pure Z2 gauge theory or toric code in fields")
    model.add_argument("--L", type=at_least(2), default=4, help="linear size of the torus (2L² links)")
    model.add_argument("--g", type=finite_float, default=0.3, help="electric coupling of the Z2 gauge theory")
    model.add_argument("--couplings", type=finite_float, nargs="+", default=None,
                       help="scan these couplings instead of --g (--hx for the toric code)")
    model.add_argument("--sector", choices=("trivial", "all"), default="trivial",
                       help="topological sector of the Z2 gauge theory")
    model.add_argument("--Jv", type=finite_float, default=1.0, help="star coupling (toric code)")
    model.add_argument("--Jp", type=finite_float, default=1.0, help="plaquette coupling (toric code)")
    model.add_argument("--hx", type=finite_float, default=0.0, help="σˣ field (toric code)")
    model.add_argument("--hz", type=finite_float, default=0.0, help="σᶻ field (toric code; breaks the Gauss law)")
    model.add_argument("--loops", choices=("all", "creutz"), default="all",
                       help="measure every Wilson loop R×T (R ≤ T ≤ L//2) or only those of χ(L//2, L//2) (about "
                       "3× cheaper observables on 8×8)")
    method = parser.add_argument_group("VMC")
    method.add_argument("--steps", type=nonnegative_int, default=300)
    method.add_argument("--samples", type=sample_count, default=1024)
    method.add_argument("--lr", type=positive_float, default=0.05)
    method.add_argument("--diag-shift", type=nonnegative_float, default=1e-4)
    method.add_argument("--final-samples", type=positive_int, default=None,
                        help="samples of the final energy and observables (default 8 × --samples; on 8×8 the "
                        "Wilson loops cost ~1 000 forward passes per sample)")
    method.add_argument("--chunk-size", type=positive_int, default=None,
                        help="samples per forward-pass chunk (8×8: 64; unchunked, the final Wilson loops of 512 "
                        "samples take > 20 GB)")
    add_ansatz_options(parser, layers=2, features=16)
    add_init_options(parser)
    parser.add_argument("--phase", action="store_true",
                        help="give the ansatz a phase head (by default none where H is stoquastic)")
    return parser


@script
def main(argv: list[str] | None = None) -> results.Result:
    args = _parser().parse(argv, quick=dict(L=3, layers=1, features=8, steps=30, samples=256))
    if args.quick and args.final_samples is None:
        args.final_samples = args.samples  # the observables stay compiled for one sample count: ~10 s less
    name = "g" if args.model == "z2" else "hx"
    couplings = args.couplings or [args.g if args.model == "z2" else args.hx]
    outs = [args.out if len(couplings) == 1 else
            args.out.with_name(f"{args.out.stem}_{name}{c:g}{args.out.suffix}") for c in couplings]
    for out in outs:
        check_output(Path(out), args.mode, "ground_state")
    scan = [_one_coupling(args, c, out) for c, out in zip(couplings, outs, strict=True)]
    print(f"\n{_model_line(args)}: scan of {name}")
    print(scan_table(scan, name, args.L))
    return scan[-1]


def _system(args: argparse.Namespace, coupling: float) -> System:
    """The model at `coupling`; with ``--loops creutz`` only the Wilson loops of χ(R, R), R = L//2, are measured."""
    if args.model == "z2":
        system = z2_gauge(args.L, g=coupling, sector=args.sector)
    else:
        system = toric_code(args.L, Jv=args.Jv, Jp=args.Jp, hx=coupling, hz=args.hz)
    if args.loops == "all":
        return system
    R = args.L // 2
    keep = {f"wilson_loop_{a}x{b}" for a, b in ((R, R), (R - 1, R), (R - 1, R - 1)) if a > 0}
    observables = {k: op for k, op in system.observables.items() if not k.startswith("wilson_loop_") or k in keep}
    return dataclasses.replace(system, observables=observables)


def _stoquastic(args: argparse.Namespace) -> bool:
    """H has off-diagonal elements ≤ 0 in the σˣ basis (−J_p from B_p, −h_z from σᶻ), so a positive ground state."""
    return args.model == "z2" or (args.Jp >= 0 and args.hz >= 0)


def _model_line(args: argparse.Namespace) -> str:
    if args.model == "z2":
        return f"Z2 gauge theory L={args.L} (sector {args.sector})"
    return f"toric code L={args.L} Jv={args.Jv:g} Jp={args.Jp:g} hz={args.hz:g}"


def _one_coupling(args: argparse.Namespace, coupling: float, out: Path) -> results.Result:
    system = _system(args, coupling)
    model = build_ansatz(ansatz_choice(args), system, phase=args.phase or not _stoquastic(args))
    settings = VMCSettings(n_steps=args.steps, n_samples=args.samples, chunk_size=args.chunk_size,
                           learning_rate=args.lr, lr_schedule="cosine", lr_final=args.lr / 10,
                           diag_shift=args.diag_shift, solver="minsr", observables_every=50,
                           n_samples_final=args.final_samples or 8 * args.samples)
    dimension = exact.sector_dimension(system)
    name = "g" if args.model == "z2" else "hx"
    outcome = ground_state(system, model, settings, seed=args.seed, out=str(out), mode=args.mode,
                           config={**config_of(args), name: coupling}, exact=dimension <= exact.MAX_ED_STATES,
                           progress=not args.quiet,
                           initial_parameters=initial_parameters(args.init_from, args.init_mode))
    n_p = args.L**2
    e, err = outcome.energy.mean.real, outcome.energy.error_of_mean
    print(f"\n{_model_line(args)} {name}={coupling:g}, sector {dimension} states, {outcome.steps} steps, "
          f"{outcome.wall_time:.1f} s: E/N_p = {e / n_p:.7f} ± {err / n_p:.7f}" + (
              f", exact {outcome.exact_energy / n_p:.7f}, relative error {outcome.relative_error:.2e}"
              if outcome.exact_energy is not None else ""))
    result = results.load(out)
    print(results.format_table(results.compare_with_exact(result)))
    return result


def wilson_loop(values: Mapping[str, float], R: int, T: int) -> float:
    """W(R, T) from recorded ``wilson_loop_RxT`` values (W(T, R) = W(R, T): both orientations are averaged;
    W(0, T) = 1)."""
    return 1.0 if min(R, T) == 0 else float(values[f"wilson_loop_{min(R, T)}x{max(R, T)}"])


def creutz_ratio(values: Mapping[str, float], R: int, T: int) -> float:
    """χ(R, T) = −ln[W(R,T) W(R−1,T−1) / (W(R,T−1) W(R−1,T))] from recorded Wilson loops (NaN for a non-positive
    ratio, where noise swamps the loops)."""
    ratio = (wilson_loop(values, R, T) * wilson_loop(values, R - 1, T - 1)
             / (wilson_loop(values, R, T - 1) * wilson_loop(values, R - 1, T)))
    return -math.log(ratio) if ratio > 0 else math.nan


def creutz_error(values: Mapping[str, float], errors: Mapping[str, float], R: int, T: int) -> float:
    """Error of `creutz_ratio` from the Wilson loops' errors of the mean, propagated as if independent."""
    loops = {(R, T), (R - 1, T - 1), (R, T - 1), (R - 1, T)}
    return math.sqrt(sum((float(errors[f"wilson_loop_{min(r, t)}x{max(r, t)}"]) / wilson_loop(values, r, t)) ** 2
                         for r, t in loops if min(r, t) > 0))


def _row(result: results.Result, name: str, L: int) -> dict[str, float]:
    """The scan-table numbers of one result: variational (final row) and exact (NaN without ED)."""
    final = results.final_values(result)
    value = {k: v for k, (v, _) in final.items()}
    error = {k: (e if e is not None else math.nan) for k, (_, e) in final.items()}
    ref = {k: float(v) for k, v in result.exact.items()}
    R, n_p, nan = L // 2, L * L, math.nan
    has_exact = "plaquette" in ref
    return {
        name: float(result.attrs["config"][name]), "E": value["energy"] / n_p, "dE": error["energy"] / n_p,
        "E_ex": ref.get("energy", nan) / n_p,
        "rel": abs(value["energy"] - ref["energy"]) / abs(ref["energy"]) if "energy" in ref else nan,
        "B": value["plaquette"], "dB": error["plaquette"], "B_ex": ref.get("plaquette", nan),
        "W": wilson_loop(value, R, R), "dW": error[f"wilson_loop_{R}x{R}"],
        "W_ex": wilson_loop(ref, R, R) if has_exact else nan,
        "chi": creutz_ratio(value, R, R), "dchi": creutz_error(value, error, R, R),
        "chi_ex": creutz_ratio(ref, R, R) if has_exact else nan,
        "gauss": value["gauss_law_violation"],
    }


def scan_table(scan: list[results.Result], name: str, L: int) -> str:
    """One line per coupling (`name`: "g" or "hx") on the L×L torus: E/N_p ± error, exact, relative error, ⟨B_p⟩,
    W(R,R) and χ(R,R) (R = L//2) variational vs exact, and the Gauss-law violation."""
    rows = [_row(result, name, L) for result in scan]
    R = L // 2
    lines = [f"{name:>6s} {'E/N_p':>12s} {'± err':>8s} {'exact E/N_p':>12s} {'rel. err':>8s} {'<B_p>':>9s} "
             f"{'± err':>7s} {'exact':>9s} {f'W({R},{R})':>9s} {'± err':>7s} {'exact':>9s} "
             f"{f'chi({R},{R})':>9s} {'± err':>7s} {'exact':>9s} {'Gauss':>7s}"]
    for r in rows:
        lines.append(
            f"{r[name]:6.3g} {r['E']:12.7f} {r['dE']:8.1e} {r['E_ex']:12.7f} {r['rel']:8.1e} {r['B']:9.5f} "
            f"{r['dB']:7.1e} {r['B_ex']:9.5f} {r['W']:9.5f} {r['dW']:7.1e} {r['W_ex']:9.5f} {r['chi']:9.4f} "
            f"{r['dchi']:7.1e} {r['chi_ex']:9.4f} {r['gauss']:7.1e}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
