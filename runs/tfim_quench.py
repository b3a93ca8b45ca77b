"""Quench of the 1D transverse-field Ising chain, evolved by TDVP or TENG, checked against QuTiP.

H = −Σ_i Z_i Z_{i+1} − h Σ_i X_i (Pauli units, PBC). ψ(0) = |→⟩^N, represented exactly by the
autoregressive ansätze's product-state initialisation and by the MPS's shift-register start (`ansatze.mps`; the
RBM is fitted to it by VMC on −Σ X from a generic random start, which keeps its QGT well conditioned), or (with
--h0) the VMC ground state at field h0.
Exact autoregressive samples, Metropolis for the RBM (``--samples 0``: full sum). The exact trajectory
starts from the same variational initial state and is stored on the same time grid; for Monte Carlo runs the file also
holds the exact expectation values
of the variational state (``magnetization_x_fullsum``), which separate the dynamics error from sampling noise.

The default is the best measured row (docs/results.md): a translation-invariant MPS with χ = 16, 4 096 Metropolis
samples, TDVP + RK4 with Δt = 0.02 and the smooth pseudo-inverse cut at 1e-8. The Transformer from |→⟩ needs a
smaller Δt and a larger cut-off (a run that loses the exact state says so under its table; ``--strict`` exits 3).

    python runs/tfim_quench.py --h 0.5 --T 3                         # L = 16, TDVP + RK4, MPS χ = 16
    python runs/tfim_quench.py --ansatz transformer --features 16 --h 1 --dt 0.005 --rtol-smooth 1e-6
    python runs/tfim_quench.py --ansatz rbm --alpha 4 --samples 8192 --symmetry none  # Metropolis sampling
    python runs/tfim_quench.py --method teng --scheme heun --dt 0.02
    python runs/tfim_quench.py --L 8 --h0 2 --h 0.5 --samples 0     # from the ground state at h = 2
    python runs/tfim_quench.py --quick --out /tmp/q.h5
"""

from __future__ import annotations

from _common import add_ansatz_options, at_least, check_output, experiment_parser, finite_float, nonnegative_int, script
from _quench import add_dynamics_options, ground_state_variables, quench_of, run_quench

from ansatze.choice import build_ansatz
from hamiltonians import tfim
from nqs import results


@script
def main(argv: list[str] | None = None) -> results.Result:
    parser = experiment_parser(__doc__.splitlines()[0], "runs/out/tfim_quench.h5")
    parser.add_argument("--L", type=at_least(2), default=16)
    parser.add_argument("--h", type=finite_float, default=0.5, help="transverse field after the quench")
    parser.add_argument("--h0", type=finite_float, default=None, help="start from the VMC ground state at this field")
    parser.add_argument("--h0-steps", type=nonnegative_int, default=300, help="VMC steps for the --h0 ground state")
    add_dynamics_options(parser, T=3.0, dt=0.02, n_save=31, samples=4096)
    add_ansatz_options(parser, ansatz="mps")
    parser.set_defaults(bond_dim=16, symmetry="translations")
    args = parser.parse(argv, quick=dict(L=6, T=0.2, n_save=3, samples=1024, bond_dim=8, features=8, h0_steps=20))
    check_output(args.out, args.mode, "dynamics")
    quench = quench_of(args)

    system = tfim(args.L, h=args.h)
    model = build_ansatz(quench.ansatz, system, initial_distribution=(0.5, 0.5))
    initial = None
    if args.h0 is not None:
        initial = ground_state_variables(tfim(args.L, h=args.h0), model, quench, steps=args.h0_steps)
    elif args.ansatz == "rbm":  # no exact product start: fit |→⟩, the ground state of −Σ X
        initial = ground_state_variables(tfim(args.L, J=0.0, h=1.0), model, quench, steps=args.h0_steps)
    run_quench(system, model, quench, observable="magnetization_x", initial=initial,
               title=f"TFIM quench L={args.L}, h={args.h}" + ("" if args.h0 is None else f" from h0={args.h0}"))
    return results.load(args.out)


if __name__ == "__main__":
    main()
