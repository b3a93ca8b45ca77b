r"""Lindblad dynamics of the 2D dissipative XYZ model from all-up: POVM Transformer, optionally a String State,
evolved by the forward–backward trapezoid or by POVM-TDVP, checked against QuTiP's `mesolve` (L×L ≤ 3×3).

H = Σ_<ij> (Jx X_iX_j + Jy Y_iY_j + Jz Z_iZ_j), jumps √γ σ⁻_i, Pauli units, periodic L×L square lattice
(`hamiltonians.dissipative_xyz`, each bond once); Jx = 0.9, Jy = 1.6, Jz = 1, γ = 1 as in Luo et al.,
PRL 128, 090501 (2022). ρ(0) = |↑…↑⟩⟨↑…↑| is represented exactly: the autoregressive model starts in the
product distribution P(a) = Π_i Tr[M^{a_i} |↑⟩⟨↑|] (`initial_distribution`). ``--strings`` wraps the
Transformer (raster order) in a uniform mixture over 2D snake orderings (`ansatze.string_states`).

    python runs/dissipative_xyz_dynamics.py                                  # 3×3, trapezoid, vs exact
    python runs/dissipative_xyz_dynamics.py --strings snakes                 # String State over 8 snakes
    python runs/dissipative_xyz_dynamics.py --method tdvp --dt 0.005
    # POVM-TDVP with a String State over the 8 snakes: 3×3 within 1.8–2.5e-2 of exact (two seeds); 6×6
    python runs/dissipative_xyz_dynamics.py --method tdvp --dt 0.05 --samples 256 --features 8 --strings snakes \
        --dtype float32
    python runs/dissipative_xyz_dynamics.py --L 6 --method tdvp --dt 0.05 --samples 256 --features 8 --strings snakes \
        --dtype float32
    python runs/dissipative_xyz_dynamics.py --quick --out /tmp/dxyz.h5
"""

from __future__ import annotations

import numpy as np
from _common import (
    add_povm_dynamics_options,
    at_least,
    build_povm_state,
    check_output,
    config_of,
    experiment_parser,
    finite_float,
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
    print_dynamics_comparison,
    script,
)

from ansatze.string_states import FAMILIES_2D, string_paths
from dynamics.povm import (
    TDVP_SOLVERS,
    PovmTDVPSettings,
    TrapezoidSettings,
    evolve_povm_tdvp,
    evolve_trapezoid,
    tangent_start,
)
from hamiltonians import dissipative_xyz
from nqs import exact, results
from nqs.povm import POVM


@script
def main(argv: list[str] | None = None) -> results.Result:
    parser = experiment_parser(__doc__.splitlines()[0], "runs/out/dissipative_xyz_dynamics.h5")
    parser.add_argument("--L", type=at_least(2), default=3, help="L×L periodic square lattice")
    parser.add_argument("--Jx", type=finite_float, default=0.9)
    parser.add_argument("--Jy", type=finite_float, default=1.6)
    parser.add_argument("--Jz", type=finite_float, default=1.0)
    parser.add_argument("--gamma", type=nonnegative_float, default=1.0)
    model_opts = add_povm_dynamics_options(parser, T=1.0, dt=0.016, samples=1024)
    model_opts.add_argument("--strings", choices=("none",) + FAMILIES_2D, default="none",
                            help="String-State orderings (none: one raster path)")
    model_opts.add_argument("--tangent-start", type=nonnegative_int, default=0, metavar="ITER",
                            help="Adam iterations of the tangent-space start (dynamics.tangent_start; 0: off)")
    trap_opts = parser.add_argument_group("trapezoid")
    trap_opts.add_argument("--iterations", type=positive_int, default=120, help="Adam iterations per step")
    trap_opts.add_argument("--lr", type=positive_float, default=1e-2)
    tdvp_opts = parser.add_argument_group("POVM-TDVP")
    tdvp_opts.add_argument("--integrator", default="RK4", help="Euler, Heun, RK4 (fixed step), RK23 or RK45")
    tdvp_opts.add_argument("--rtol-smooth", type=nonnegative_float, default=None,
                           help="smooth pseudo-inverse cut-off relative to the largest eigenvalue of S (default 1e-4 "
                                "when sampled: smaller cut-offs fit the sample noise; 1e-8 for the exact sum)")
    tdvp_opts.add_argument("--solver", choices=TDVP_SOLVERS, default="pinv_smooth",
                           help="linear solver of S θ̇ = F (snr: pseudo-inverse with the signal-to-noise filter)")
    tdvp_opts.add_argument("--snr-tol", type=positive_float, default=2.0, help="ε_SNR of --solver snr")
    tdvp_opts.add_argument("--heldout-samples", type=nonnegative_int, default=0,
                           help="also record the residual of θ̇ on this many independent samples at every save time")
    args = parser.parse(argv, quick=dict(L=2, T=0.1, dt=0.05, n_save=3, samples=256, features=8, iterations=20,
                                         obs_samples=2000))
    check_output(args.out, args.mode, "dynamics")

    if args.rtol_smooth is None:
        args.rtol_smooth = 1e-8 if args.samples == 0 else 1e-4
    shape = (args.L, args.L)
    system = dissipative_xyz(args.L, lattice="square", Jx=args.Jx, Jy=args.Jy, Jz=args.Jz, gamma=args.gamma)
    povm = POVM.tetrahedral()
    paths = None if args.strings == "none" else string_paths(args.strings, shape)
    vstate = build_povm_state(system.n_sites, np.diag([1.0, 0.0]), layers=args.layers, features=args.features,
                              heads=args.heads, samples=args.samples, seed=args.seed, dtype=args.dtype,
                              paths=paths)  # |↑⟩⟨↑| on every site
    config = config_of(args)
    if args.tangent_start:
        report = tangent_start(system, vstate, povm=povm, n_iter=args.tangent_start, seed=args.seed,
                               progress=not args.quiet)
        print(f"tangent start: residual r² {report.residual_before:.3g} -> {report.residual_after:.3g} "
              f"({report.wall_time:.0f} s)")
        config.update(report.as_dict())
    n = system.n_sites
    rho0 = None
    if n <= exact.MAX_OPEN_SITES:
        up = np.zeros(2**n, dtype=complex)
        up[0] = 1.0  # |↑…↑⟩, ↑ = Z = +1 = QuTiP basis(2, 0)
        rho0 = np.outer(up, up)
    common = {"t_end": args.T, "dt": args.dt, "n_save": args.n_save, "n_obs_samples": args.obs_samples,
              "seed": args.seed}
    if args.method == "trapezoid":
        settings = TrapezoidSettings(n_iter=args.iterations, learning_rate=args.lr, **common)
        evolve = evolve_trapezoid
    else:
        settings = PovmTDVPSettings(integrator=args.integrator, pinv_rtol_smooth=args.rtol_smooth,
                                    solver=args.solver, snr_tol=args.snr_tol, heldout_samples=args.heldout_samples,
                                    **common)
        evolve = evolve_povm_tdvp
    outcome = evolve(system, vstate, settings, povm=povm, rho0=rho0, out=str(args.out), mode=args.mode,
                     config=config, seed=args.seed, progress=not args.quiet)
    result = results.load(args.out)
    print_dynamics_comparison(result, f"\ndissipative XYZ {args.L}x{args.L} Jx={args.Jx} Jy={args.Jy} Jz={args.Jz} "
                              f"gamma={args.gamma}, {args.method}, strings={args.strings}, "
                              f"n_parameters={result.ansatz.get('n_parameters')}, {outcome.wall_time:.1f} s",
                              strict=args.strict)
    return result


if __name__ == "__main__":
    main()
