"""Ground state of the 1+1D U(1) quantum link model with a gauge-invariant autoregressive ansatz, against exact
diagonalisation in the Gauss-law sector.

H = −Jκ Σ_j (ψ_j† U_j ψ_{j+1} + h.c.) + m Σ_j (−1)^j n_j + (g²/2) Σ_j (E_j + ε_bg)² on N sites with spin-S links
(`hamiltonians.quantum_link`; conventions in its docstring and in the result file). The ansatz generates gauge blocks
(matter site, link) with the Gauss law as a mask, so every sample is gauge invariant and the sector is sampled
exactly. The exact reference is ED in the sector (up to 2^22 states: N = 12 has 322 states at S = ½ and 1 186 at
S = 1), with the lowest gaps (``--levels``: the splitting of the two vacua for half-integer S at m > m_c, then
meson masses); beyond it the run reports E/N alone. ``--masses`` scans m (one result file per mass, ``_m<value>``
added to the name).

    python runs/qlm_ground_state.py --N 12 --S 0.5 --m 0.5                  # writes runs/out/qlm_ground_state.h5
    python runs/qlm_ground_state.py --N 12 --S 1 --kappa normalised --g2 0.5 --masses -1 0 1
    python runs/qlm_ground_state.py --N 32 --S 0.5 --m 0.5 --steps 600      # beyond ED
    python runs/qlm_ground_state.py --quick --out /tmp/q.h5
"""

from __future__ import annotations

from pathlib import Path

from _common import (
    add_ansatz_options,
    add_init_options,
    ansatz_choice,
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
from _quantum_link import add_model_options, build_system

from ansatze.choice import build_ansatz
from nqs import exact, results
from nqs.vmc import VMCSettings, ground_state


def _parser():
    parser = experiment_parser(__doc__.splitlines()[0], "runs/out/qlm_ground_state.h5")
    model = add_model_options(parser, m=0.5)
    model.add_argument("--masses", type=finite_float, nargs="+", default=None, help="scan these masses instead of --m")
    model.add_argument("--levels", type=positive_int, default=3,
                       help="exact levels to print above the ground state (gaps: vacuum splitting, meson masses)")
    method = parser.add_argument_group("VMC")
    method.add_argument("--steps", type=nonnegative_int, default=400)
    method.add_argument("--samples", type=sample_count, default=1024)
    method.add_argument("--lr", type=positive_float, default=0.05)
    method.add_argument("--diag-shift", type=nonnegative_float, default=1e-3)
    add_ansatz_options(parser, layers=2, features=16)
    add_init_options(parser)
    return parser


@script
def main(argv: list[str] | None = None) -> results.Result:
    args = _parser().parse(argv, quick=dict(N=6, layers=1, features=8, steps=30, samples=256))
    masses = args.masses or [args.m]
    outs = [args.out if len(masses) == 1 else args.out.with_name(f"{args.out.stem}_m{m:g}{args.out.suffix}")
            for m in masses]
    for out in outs:
        check_output(Path(out), args.mode, "ground_state")
    for m, out in zip(masses, outs, strict=True):
        result = _one_mass(args, m, out)
    return result


def _one_mass(args, m: float, out: Path) -> results.Result:
    system = build_system(args, m=m)
    model = build_ansatz(ansatz_choice(args), system)
    settings = VMCSettings(n_steps=args.steps, n_samples=args.samples, learning_rate=args.lr, lr_schedule="cosine",
                           lr_final=args.lr / 10, diag_shift=args.diag_shift, solver="minsr", observables_every=50,
                           n_samples_final=8 * args.samples)
    with_exact = exact.sector_dimension(system) <= exact.MAX_ED_STATES
    outcome = ground_state(system, model, settings, seed=args.seed, out=str(out), mode=args.mode,
                           config={**config_of(args), "m": m}, exact=with_exact, progress=not args.quiet,
                           initial_parameters=initial_parameters(args.init_from, args.init_mode))
    e, err = outcome.energy.mean.real, outcome.energy.error_of_mean
    print(f"\nQLM N={args.N} S={args.S} m={m:g} g2={args.g2} ({'OBC' if args.obc else 'PBC'}), sector "
          f"{exact.sector_dimension(system)} states, {outcome.steps} steps, {outcome.wall_time:.1f} s: "
          f"E/N = {e / args.N:.7f} ± {err / args.N:.7f}" + (
              f", exact {outcome.exact_energy / args.N:.7f}, relative error {outcome.relative_error:.2e}"
              if outcome.exact_energy is not None else ""))
    if with_exact and args.levels > 0:
        low = exact.lowest_states(system, args.levels + 1)
        print("exact gaps E_n − E_0 in the sector (all momenta): " + ", ".join(f"{g:.6f}" for g in low.gaps))
    result = results.load(out)
    print(results.format_table(results.compare_with_exact(result)))
    return result


if __name__ == "__main__":
    main()
