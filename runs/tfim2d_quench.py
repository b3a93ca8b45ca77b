"""Quench of the 2D transverse-field Ising model on the L×L square lattice from |→⟩ to h = 2 h_c, by TDVP
or TENG, checked against QuTiP.

H = −Σ_<ij> Z_i Z_j − h Σ_i X_i (Pauli units, PBC, each bond once), h_c = 3.04438 (Blöte & Deng,
PRE 66, 066110 (2002)); default h = 2 h_c = 6.0888, T = 1 on 3×3. ψ(0) = |→⟩^N exactly (product-state
initialisation; ``--ansatz rbm`` is fitted to it by VMC on −Σ X). Sites follow NetKet's Grid numbering x·L + y; the RNN
takes the snake path and
``--ansatz rnn2d`` the 2D recurrent network. Full sum by default at 3×3 (512 states); ``--samples N``
uses exact autoregressive samples (Metropolis for the RBM).

    python runs/tfim2d_quench.py                                   # 3×3, TENG-Heun, full sum
    python runs/tfim2d_quench.py --method tdvp --samples 4096
    python runs/tfim2d_quench.py --quick --out /tmp/q.h5
"""

from __future__ import annotations

from _common import add_ansatz_options, at_least, check_output, experiment_parser, finite_float, nonnegative_int, script
from _quench import add_dynamics_options, ground_state_variables, quench_of, run_quench

from ansatze.choice import build_ansatz
from hamiltonians import tfim
from nqs import results

H_CRITICAL = 3.04438


@script
def main(argv: list[str] | None = None) -> results.Result:
    parser = experiment_parser(__doc__.splitlines()[0], "runs/out/tfim2d_quench.h5")
    parser.add_argument("--L", type=at_least(2), default=3, help="linear size (N = L²)")
    parser.add_argument("--h", type=finite_float, default=2 * H_CRITICAL, help="transverse field after the quench")
    parser.add_argument("--fit-steps", type=nonnegative_int, default=300, help="VMC steps fitting the RBM to |→⟩")
    add_dynamics_options(parser, T=1.0, dt=0.005, n_save=21, samples=0, method="teng")
    add_ansatz_options(parser)
    args = parser.parse(argv, quick=dict(L=2, T=0.04, dt=0.01, n_save=3, features=8, fit_steps=20))
    check_output(args.out, args.mode, "dynamics")
    quench = quench_of(args)

    system = tfim(args.L, lattice="square", h=args.h)
    model = build_ansatz(quench.ansatz, system, initial_distribution=(0.5, 0.5))
    initial = None
    if args.ansatz == "rbm":  # no exact product start: fit |→⟩, the ground state of −Σ X
        initial = ground_state_variables(tfim(args.L, lattice="square", J=0.0, h=1.0), model, quench,
                                         steps=args.fit_steps)
    run_quench(system, model, quench, observable="magnetization_x", initial=initial,
               title=f"2D TFIM quench {args.L}x{args.L}, h={args.h:.4f}")
    return results.load(args.out)


if __name__ == "__main__":
    main()
