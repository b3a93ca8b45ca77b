"""DMFT of the half-filled Hubbard model on the Bethe lattice with the exact impurity solver (ED, Caffarel–Krauth).

Units of the half bandwidth D = 2t. For every U of the sweep: the DMFT loop (`nqs.dmft.solve_dmft`) with an N_b-level
particle–hole-symmetric bath fitted on the fictitious Matsubara grid of --beta, starting from the previous U's bath;
``--sweep up`` goes up in U from the metal, ``--sweep down`` down from the insulator (the hysteresis between them is
the coexistence region U_c1 < U < U_c2). The solver is exact diagonalisation, thermal at T = 1/β_f (``--solver
exact``, notes D.4) or T = 0 averaged over degenerate ground states (``--solver exact-t0``). One history row per U
(U, Z, double occupancy, iterations, converged, bath); the exact reference is the second-order weak-coupling
coefficient c of Z⁻¹ = 1 + c U² + O(U⁴), printed beside Z. ``--mode resume`` continues after the last finished U.

    python runs/dmft_bethe.py --U 0.5 1 1.5 2 2.5 3 --bath-sites 5 --sweep up --out runs/out/dmft_up.h5
    python runs/dmft_bethe.py --U 3.2 3 2.8 2.6 2.4 2.2 --sweep down --out runs/out/dmft_down.h5
    python runs/dmft_bethe.py --quick --out /tmp/q.h5
"""

from __future__ import annotations

from _common import (
    check_output,
    config_of,
    experiment_parser,
    finite_float,
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
    script,
)

from nqs import results
from nqs.dmft import DIRECTIONS, WEIGHTS, DMFTSettings, ExactSolver, sweep

SOLVERS = ("exact", "exact-t0", "nqs")


def _parser():
    parser = experiment_parser(__doc__.splitlines()[0], "runs/out/dmft_bethe.h5")
    parser.add_argument("--U", type=finite_float, nargs="+", default=[0.5, 1.0, 1.5, 2.0, 2.5, 3.0],
                        help="interactions (units of D), run in the order of --sweep")
    parser.add_argument("--bath-sites", type=positive_int, default=5, help="N_b, bath levels (one at 0 when odd)")
    parser.add_argument("--sweep", choices=DIRECTIONS, default="up",
                        help="up: increasing U from the metallic bath; down: decreasing U from the insulating one")
    parser.add_argument("--solver", choices=SOLVERS, default="exact",
                        help="exact: thermal ED at T = 1/beta; exact-t0: T = 0, degeneracy-averaged ground state; nqs: "
                        "VMC ground state (Transformer) + exact excitations, T = 0 (nqs.dmft_nqs; metallic side)")
    parser.add_argument("--nqs-steps", type=nonnegative_int, default=1500,
                        help="VMC steps of the first impurity solve (--solver nqs; later ones: 300, warm-started)")
    parser.add_argument("--nqs-lr", type=positive_float, default=0.1,
                        help="VMC learning rate (--solver nqs, full-sum SR)")
    parser.add_argument("--nqs-features", type=positive_int, default=16, help="Transformer width (--solver nqs)")
    parser.add_argument("--beta", type=positive_float, default=200.0,
                        help="fictitious inverse temperature β_f (units 1/D)")
    parser.add_argument("--n-fit", type=positive_int, default=128, help="Matsubara frequencies in the bath fit")
    parser.add_argument("--weights", choices=WEIGHTS, default="uniform", help="fit weights W_n (1 or 1/ω_n)")
    parser.add_argument("--mixing", type=nonnegative_float, default=0.5, help="weight α of the new hybridisation")
    parser.add_argument("--tol", type=positive_float, default=1e-7,
                        help="convergence: max |ΔΔ(iω_n)| between iterations")
    parser.add_argument("--max-iterations", type=positive_int, default=300)
    return parser


def _table(result: results.Result) -> str:
    """U, Z, the second-order Z = 1/(1 + c U²), double occupancy, iterations, convergence and the bath."""
    history, c = result.history, float(result.exact["weak_coupling_c"])
    n_bath = sum(name.startswith("eps_") for name in history)
    lines = [f"exact weak-coupling coefficient c = {c:.6f}: Z_2 = 1/(1 + c U^2)",
             f"{'U':>6s} {'Z':>9s} {'Z_2':>9s} {'docc':>8s} {'iter':>5s} {'conv':>5s} {'time/s':>7s}  bath levels"
             " (V)"]
    for i, U in enumerate(history["U"]):
        bath = " ".join(f"{history[f'eps_{k}'][i]:+.3f}({history[f'V_{k}'][i]:.3f})" for k in range(n_bath))
        lines.append(f"{U:6.3f} {history['Z'][i]:9.5f} {1 / (1 + c * U**2):9.5f} "
                     f"{history['double_occupancy'][i]:8.5f} {int(history['iterations'][i]):5d} "
                     f"{'yes' if history['converged'][i] else 'no':>5s} {history['solve_time'][i]:7.1f}  {bath}")
    return "\n".join(lines)


def _solver(args):
    if args.solver != "nqs":
        return ExactSolver(args.beta if args.solver == "exact" else None)
    from ansatze.choice import AnsatzChoice
    from nqs.dmft_nqs import NQSSolver
    from nqs.vmc import VMCSettings

    vmc = VMCSettings(n_steps=args.nqs_steps, n_samples=0, learning_rate=args.nqs_lr, lr_schedule="cosine",
                      lr_final=args.nqs_lr / 10, solver="sr", diag_shift=1e-4)
    return NQSSolver(choice=AnsatzChoice("transformer", features=args.nqs_features), settings=vmc, seed=args.seed)


@script
def main(argv: list[str] | None = None) -> results.Result:
    args = _parser().parse(argv, quick=dict(U=[1.0, 2.0], bath_sites=3))
    check_output(args.out, args.mode, "dmft")
    settings = DMFTSettings(n_bath=args.bath_sites, beta=args.beta, n_fit=args.n_fit, weights=args.weights,
                            mixing=args.mixing, tol=args.tol, max_iterations=args.max_iterations)
    solver = _solver(args)
    sweep(args.U, settings, direction=args.sweep, solver=solver, out=args.out, mode=args.mode,
          config=config_of(args), progress=not args.quiet)
    result = results.load(args.out)
    print(f"\nDMFT Bethe lattice (D = 1), N_b = {args.bath_sites}, beta_f = {args.beta}, {args.solver} solver, "
          f"sweep {args.sweep}")
    print(_table(result))
    return result


if __name__ == "__main__":
    main()
