r"""Lindblad dynamics of the dissipative Hubbard chain: POVM Transformer on the Jordan–Wigner qubits (POVM-TDVP or
the forward–backward trapezoid) beside the exact QuTiP `mesolve` reference.

H = −t Σ_⟨ij⟩σ (c†_iσ c_jσ + h.c.) + U Σ_i n_i↑ n_i↓ − μ Σ_iσ n_iσ on the open chain of L sites
(`hamiltonians.dissipative_hubbard`), jumps √γ c_iσ (``--loss``), √γ c_i↓ c_i↑ (``--pair-loss``), √γ n_iσ
(``--dephasing``), √γ c†_iσ (``--pump``). ρ(0) = Π_i c†_{i,σ_i}|0⟩ with σ_i = ↑ on even and ↓ on odd sites (for L = 2:
c†_0↑ c†_1↓|0⟩). The 2L modes become 2L qubits by the exact Jordan–Wigner map (`hamiltonians.fermions_jw`), the POVM
is the tetrahedron on cube vertices (no zero probability for an empty or occupied mode), and the autoregressive
Transformer starts in the exact product distribution of ρ(0). /exact holds QuTiP's `mesolve` of the fermionic
operators (2L ≤ 9 qubits) on the save times: N (particle number), n_doublons (Σ_i n_i↑ n_i↓), density_<i>. With one-body
loss alone ⟨N⟩(t) = N(0) e^{−γt} exactly, which the script prints as a check of the reference.

    python runs/dissipative_hubbard.py --L 2 --U 4 --loss 0.5 --T 2               # trapezoid, full sum
    python runs/dissipative_hubbard.py --loss 0 --dephasing 0.5 --T 4 --out runs/out/dh_dephasing.h5
    python runs/dissipative_hubbard.py --loss 0 --pair-loss 1 --method tdvp --tangent-start 500 --out /tmp/pairs.h5
    python runs/dissipative_hubbard.py --quick --out /tmp/dh.h5
"""

from __future__ import annotations

import argparse

import netket as nk
import numpy as np
from _common import (
    add_povm_dynamics_options,
    at_least,
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

from ansatze import ARTransformer
from ansatze.choice import param_dtype
from dynamics.povm import (
    TDVP_SOLVERS,
    PovmTDVPSettings,
    TrapezoidSettings,
    evolve_povm_tdvp,
    evolve_trapezoid,
    tangent_start,
)
from hamiltonians import dissipative_hubbard
from hamiltonians import fermions as fm
from hamiltonians.fermions_jw import BALANCED_TETRAHEDRON_ROTATION, jordan_wigner_system
from nqs import results
from nqs.povm import POVM, probabilities
from nqs.states import mc_state


def _parser() -> argparse.ArgumentParser:
    parser = experiment_parser(__doc__.splitlines()[0], "runs/out/dissipative_hubbard.h5")
    parser.add_argument("--L", type=at_least(2), default=2, help="sites of the open chain (2L qubits)")
    parser.add_argument("--t", type=finite_float, default=1.0)
    parser.add_argument("--U", type=finite_float, default=4.0)
    parser.add_argument("--mu", type=finite_float, default=0.0)
    parser.add_argument("--loss", type=nonnegative_float, default=0.5, help="one-body loss rate (jumps √γ c_iσ)")
    parser.add_argument("--pair-loss", type=nonnegative_float, default=0.0,
                        help="doublon loss rate (jumps √γ c_i↓ c_i↑)")
    parser.add_argument("--dephasing", type=nonnegative_float, default=0.0, help="dephasing rate (jumps √γ n_iσ)")
    parser.add_argument("--pump", type=nonnegative_float, default=0.0, help="pump rate (jumps √γ c†_iσ)")
    add_povm_dynamics_options(parser, T=2.0, dt=0.02, samples=0)
    method = parser.add_argument_group("methods")
    method.add_argument("--iterations", type=positive_int, default=120, help="Adam iterations per trapezoid step")
    method.add_argument("--lr", type=positive_float, default=1e-2, help="trapezoid Adam learning rate")
    method.add_argument("--lr-schedule", choices=("step", "cosine"), default="step",
                        help="trapezoid: Luo et al.'s ×0.5 drop at iteration 80, or cosine decay to --lr-final")
    method.add_argument("--lr-final", type=positive_float, default=1e-5,
                        help="trapezoid: final rate of --lr-schedule cosine")
    method.add_argument("--integrator", default="RK4", help="POVM-TDVP: Euler, Heun, RK4, RK23 or RK45")
    method.add_argument("--tangent-start", type=nonnegative_int, default=0, metavar="ITER",
                        help="POVM-TDVP: Adam iterations re-parametrising the product start so that its tangent space "
                        "holds the first step (dynamics.povm.tangent_start; the bare product start of the Transformer "
                        "misses ~80%% of L P and TDVP diverges)")
    method.add_argument("--solver", choices=TDVP_SOLVERS, default="pinv_smooth",
                        help="POVM-TDVP linear solver (shift: Cholesky of S + diag_shift, cheaper than the "
                        "eigen-decomposition of pinv_smooth for thousands of parameters)")
    method.add_argument("--diag-shift", type=nonnegative_float, default=1e-8,
                        help="POVM-TDVP: the shift of --solver shift")
    method.add_argument("--rtol-smooth", type=nonnegative_float, default=None,
                        help="POVM-TDVP smooth pseudo-inverse cut-off (default 1e-8 exact sum, 1e-4 sampled)")
    return parser


def initial_occupations(L: int) -> np.ndarray:
    """Mode occupations (mode order of `hamiltonians.fermions`) of Π_i c†_{i,σ_i}|0⟩, σ_i = ↑ (i even), ↓ (i odd)."""
    n = np.zeros(2 * L, dtype=int)
    for i in range(L):
        n[fm.mode(L, i, fm.UP if i % 2 == 0 else fm.DOWN)] = 1
    return n


def _povm_state(occupations: np.ndarray, povm: POVM, args: argparse.Namespace):
    """The Transformer over POVM outcomes (log P) started in the product distribution of |n⟩⟨n|: empty mode = |↑⟩,
    occupied = |↓⟩ on its qubit."""
    rows = tuple(tuple(float(p) for p in probabilities(np.diag([1.0 - n, float(n)]), povm, 1)) for n in occupations)
    hi = nk.hilbert.Fock(n_max=3, N=len(occupations))
    model = ARTransformer(hi, layers=args.layers, features=args.features, heads=args.heads, phase=False,
                          machine_pow=1, initial_distribution=rows, param_dtype=param_dtype(args.dtype))
    if args.samples == 0:
        return nk.vqs.FullSumState(hi, model, seed=args.seed)
    return mc_state(nk.sampler.ARDirectSampler(hi), model, n_samples=args.samples, seed=args.seed,
                    sampler_seed=args.seed + 1)


@script
def main(argv: list[str] | None = None) -> results.Result:
    args = _parser().parse(argv, quick=dict(L=2, T=0.4, dt=0.05, n_save=3, features=8, heads=1, iterations=20))
    check_output(args.out, args.mode, "dynamics")

    fermionic = dissipative_hubbard(args.L, t=args.t, U=args.U, mu=args.mu, loss=args.loss,
                                    pair_loss=args.pair_loss, dephasing=args.dephasing, pump=args.pump)
    system = jordan_wigner_system(fermionic)
    povm = POVM.tetrahedral(rotation=BALANCED_TETRAHEDRON_ROTATION)
    occupations = initial_occupations(args.L)
    vstate = _povm_state(occupations, povm, args)
    index = int(occupations @ (2 ** np.arange(2 * args.L - 1, -1, -1)))  # mode 0 most significant
    rho0 = np.zeros((2 ** (2 * args.L),) * 2)
    rho0[index, index] = 1.0
    common = {"t_end": args.T, "dt": args.dt, "n_save": args.n_save, "n_obs_samples": args.obs_samples,
              "seed": args.seed}
    if args.method == "trapezoid":
        settings = TrapezoidSettings(n_iter=args.iterations, learning_rate=args.lr, lr_schedule=args.lr_schedule,
                                     lr_final=args.lr_final, **common)
        evolve = evolve_trapezoid
    else:
        cutoff = args.rtol_smooth or (1e-8 if args.samples == 0 else 1e-4)
        settings = PovmTDVPSettings(integrator=args.integrator, pinv_rtol_smooth=cutoff, solver=args.solver,
                                    diag_shift=args.diag_shift, **common)
        evolve = evolve_povm_tdvp
        if args.tangent_start:
            report = tangent_start(system, vstate, povm=povm, n_iter=args.tangent_start, seed=args.seed,
                                   progress=not args.quiet)
            print(f"tangent start: residual r² {report.residual_before:.3g} -> {report.residual_after:.3g}")
    outcome = evolve(system, vstate, settings, povm=povm, rho0=rho0, out=str(args.out), mode=args.mode,
                     config=config_of(args), seed=args.seed, progress=not args.quiet)
    result = results.load(args.out)
    print_dynamics_comparison(result, f"\ndissipative Hubbard L={args.L} t={args.t} U={args.U} mu={args.mu} "
                              f"loss={args.loss} pair_loss={args.pair_loss} dephasing={args.dephasing} "
                              f"pump={args.pump}, POVM {args.method}, "
                              f"n_parameters={result.ansatz.get('n_parameters')}, {outcome.wall_time:.1f} s",
                              strict=args.strict)
    if outcome.exact and args.loss > 0 and args.pair_loss == 0 and args.pump == 0:
        law = occupations.sum() * np.exp(-args.loss * outcome.times)
        print(f"exact N(t) vs N(0) exp(-gamma t): max |Δ| = {np.abs(outcome.exact['N'] - law).max():.2e}")
    return result


if __name__ == "__main__":
    main()
