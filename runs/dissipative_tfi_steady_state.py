"""Steady state of the dissipative transverse-field Ising chain: POVM Transformer (Luo et al., PRL 128, 090501
(2022)) or NetKet's neural density matrix (baseline), each checked against QuTiP's steady state.

H = (V/4) Σ_i Z_i Z_{i+1} + (g/2) Σ_i X_i, jumps √γ σ⁻_i, Pauli units, periodic chain (`dissipative_tfi`).

* ``--method povm`` (default): P_θ(a) over the 4^N tetrahedral-POVM outcomes by an autoregressive Transformer
  (machine_pow = 1, started in the product state of 0.99|↓⟩⟨↓| + 0.01|↑⟩⟨↑| per site, near the γ-only
  steady state), optionally a String State
  over ``--strings`` orderings; min_θ ‖L P_θ‖₁ by Adam (``--optimizer adam``) or relaxation along the POVM-TDVP
  flow θ ← θ + τ S⁻¹F (``--optimizer natural``, τ = ``--lr``, smooth cut-off ``--cutoff``), with the best checkpoint
  chosen on a large-sample loss (`dynamics.povm.find_steady_state`); ``--samples 0`` sums over all outcomes
  exactly (N ≤ 9). Runs checkpoint at every history row and continue with ``--mode resume``.
* ``--method ndm``: `nk.models.NDM` + `MCMixedState` + `SteadyState` (`dynamics.ndm_steady_state`).

Both write a result file (kind "steady_state") whose /exact holds the QuTiP values for N ≤ 9; a g-scan is
one run per g:

    for g in 0.5 1 2 3 4; do python runs/dissipative_tfi_steady_state.py --g $g --out runs/out/dtfi_g$g.h5; done
    python runs/dissipative_tfi_steady_state.py --method ndm --g 1 --out runs/out/dtfi_ndm_g1.h5
"""

from __future__ import annotations

import numpy as np
from _common import (
    add_dtype_option,
    add_init_options,
    at_least,
    build_povm_state,
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

from ansatze.string_states import FAMILIES_1D, string_paths
from dynamics.ndm_steady_state import NDMSettings, find_ndm_steady_state
from dynamics.povm import SteadyStateSettings, find_steady_state
from hamiltonians import dissipative_tfi
from nqs import results
from nqs.povm import POVM


@script
def main(argv: list[str] | None = None) -> None:
    parser = experiment_parser(__doc__.splitlines()[0], "runs/out/dissipative_tfi_steady_state.h5")
    parser.add_argument("--N", type=at_least(2), default=8, help="number of sites")
    parser.add_argument("--V", type=finite_float, default=2.0)
    parser.add_argument("--g", type=finite_float, default=1.0)
    parser.add_argument("--gamma", type=nonnegative_float, default=1.0)
    parser.add_argument("--method", choices=("povm", "ndm"), default="povm")
    povm_opts = parser.add_argument_group("POVM Transformer")
    povm_opts.add_argument("--layers", type=positive_int, default=2)
    povm_opts.add_argument("--features", type=positive_int, default=16)
    povm_opts.add_argument("--heads", type=positive_int, default=2)
    add_dtype_option(povm_opts)
    povm_opts.add_argument("--strings", choices=FAMILIES_1D, default="chain", help="String-State orderings")
    povm_opts.add_argument("--samples", type=sample_count, default=4096, help="samples per iteration (0: exact sum)")
    povm_opts.add_argument("--iterations", type=positive_int, default=1500)
    povm_opts.add_argument("--optimizer", choices=("adam", "natural"), default="adam",
                           help="Adam on ‖L P‖₁ (Luo et al.) or relaxation along the POVM-TDVP flow")
    povm_opts.add_argument("--lr", type=positive_float, default=None,
                           help="Adam learning rate (default 1e-2) or natural-gradient time step τ (default 0.1)")
    povm_opts.add_argument("--cutoff", type=positive_float, default=1e-4,
                           help="smooth pseudo-inverse cut-off of --optimizer natural")
    povm_opts.add_argument("--eval-samples", type=positive_int, default=None,
                           help="samples of the loss estimate that picks the best checkpoint "
                           "(default max(4·samples, 4096))")
    add_init_options(parser)
    ndm_opts = parser.add_argument_group("NDM baseline")
    ndm_opts.add_argument("--steps", type=nonnegative_int, default=500)
    ndm_opts.add_argument("--alpha", type=positive_int, default=1)
    ndm_opts.add_argument("--ndm-samples", type=positive_int, default=2000)
    ndm_opts.add_argument("--ndm-lr", type=positive_float, default=0.05)
    args = parser.parse(argv, quick=dict(N=3, layers=1, features=8, samples=512, iterations=40, steps=20,
                                         ndm_samples=500))
    if args.init_from is not None and args.method != "povm":
        parser.error("--init-from starts the POVM Transformer; the NDM baseline always starts fresh")
    check_output(args.out, args.mode, "steady_state")

    system = dissipative_tfi(args.N, V=args.V, g=args.g, gamma=args.gamma)
    if args.method == "povm":
        povm = POVM.tetrahedral()
        site_rho = np.diag([0.01, 0.99])  # |↓⟩⟨↓| mixed with 2 % of 1/2: every outcome has P > 0
        paths = None if args.strings == "chain" else string_paths(args.strings, args.N)
        vstate = build_povm_state(args.N, site_rho, layers=args.layers, features=args.features, heads=args.heads,
                                  samples=args.samples, seed=args.seed, dtype=args.dtype, paths=paths)
        start = initial_parameters(args.init_from, args.init_mode)
        if start is not None:
            vstate.parameters = start(vstate.parameters)
        eval_after = max(args.iterations * 3 // 4, 1)
        lr = args.lr if args.lr is not None else (0.1 if args.optimizer == "natural" else 1e-2)
        settings = SteadyStateSettings(
            optimizer=args.optimizer, pinv_rtol_smooth=args.cutoff,
            n_iter=args.iterations, learning_rate=lr, lr_schedule="cosine", lr_final=lr * 1e-2,
            eval_after=min(eval_after, args.iterations - 1), eval_every=max(args.iterations // 50, 1),
            n_eval_samples=args.eval_samples or max(4 * args.samples, 4096),
            n_obs_samples=max(16 * args.samples, 16384),
            seed=args.seed,
        )
        outcome = find_steady_state(system, vstate, settings, povm=povm, out=str(args.out), mode=args.mode,
                                    config=config_of(args), seed=args.seed, progress=not args.quiet)
    else:
        settings = NDMSettings(n_steps=args.steps, alpha=args.alpha, beta=args.alpha, n_samples=args.ndm_samples,
                               learning_rate=args.ndm_lr, lr_schedule="cosine", lr_final=args.ndm_lr / 10,
                               observables_every=max(args.steps // 10, 1))
        outcome = find_ndm_steady_state(system, settings, out=str(args.out), mode=args.mode,
                                        config=config_of(args), seed=args.seed, progress=not args.quiet)
    result = results.load(args.out)
    print(f"\ndissipative TFI N={args.N} V={args.V} g={args.g} gamma={args.gamma}, method {args.method}, "
          f"n_parameters={result.ansatz.get('n_parameters')}, {outcome.wall_time:.1f} s")
    print(results.format_table(results.compare_with_exact(result)))


if __name__ == "__main__":
    main()
