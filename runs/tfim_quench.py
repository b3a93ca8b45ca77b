"""Quench of the 1D transverse-field Ising chain, evolved by TDVP or TENG, checked against QuTiP.

H = −Σ_i Z_i Z_{i+1} − h Σ_i X_i (Pauli units, PBC). ψ(0) = |→⟩^N, represented exactly by the
autoregressive ansätze's product-state initialisation and by the MPS's shift-register start (`ansatze.mps`; the
RBM is fitted to it by VMC on −Σ X from a generic random start, which keeps its QGT well conditioned), or (with
--h0) the VMC ground state at field h0.
Exact autoregressive samples, Metropolis for the RBM (``--samples 0``: full sum). The exact trajectory
starts from the same variational initial state and is stored on the same time grid; for Monte Carlo runs the file also
holds the exact expectation values
of the variational state (``magnetization_x_fullsum``), which separate the dynamics error from sampling noise.

    python runs/tfim_quench.py --h 0.5 --T 3                         # L = 16, TDVP + RK4, Transformer
    python runs/tfim_quench.py --ansatz rnn --features 16 --h 1
    python runs/tfim_quench.py --ansatz rbm --alpha 4 --samples 8192  # Metropolis sampling
    python runs/tfim_quench.py --ansatz mps --bond-dim 8 --symmetry translations --samples 4096 --dt 0.02 \
        --rtol-smooth 1e-8                                            # translation-invariant MPS, Metropolis
    python runs/tfim_quench.py --method teng --scheme heun --dt 0.02
    python runs/tfim_quench.py --L 8 --h0 2 --h 0.5 --samples 0     # from the ground state at h = 2
    python runs/tfim_quench.py --quick --out /tmp/q.h5
"""

from __future__ import annotations

from _common import add_ansatz_options, check_output, experiment_parser
from _quench import add_dynamics_options, ground_state_variables, quench_of, run_quench

from ansatze.choice import build_ansatz
from hamiltonians import tfim
from nqs import results


def main(argv: list[str] | None = None) -> results.Result:
    parser = experiment_parser(__doc__.splitlines()[0], "runs/out/tfim_quench.h5")
    parser.add_argument("--L", type=int, default=16)
    parser.add_argument("--h", type=float, default=0.5, help="transverse field after the quench")
    parser.add_argument("--h0", type=float, default=None, help="start from the VMC ground state at this field")
    parser.add_argument("--h0-steps", type=int, default=300, help="VMC steps for the --h0 ground state")
    add_dynamics_options(parser, T=3.0, dt=0.01, n_save=31, samples=2048)
    add_ansatz_options(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.L, args.T, args.dt, args.n_save, args.samples, args.features = 6, 0.2, 0.02, 3, 1024, 8
        args.h0_steps = 20
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
