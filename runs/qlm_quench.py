"""Mass quench of the 1+1D U(1) quantum link model with a gauge-invariant autoregressive ansatz (TDVP or TENG),
against the exact evolution in the Gauss-law sector.

H = −Jκ Σ_j (ψ_j† U_j ψ_{j+1} + h.c.) + m Σ_j (−1)^j n_j + (g²/2) Σ_j (E_j + ε_bg)² on N sites with spin-S links
(`hamiltonians.quantum_link`; conventions in its docstring and in the result file). ψ(0) is the VMC ground state of
the pre-quench Hamiltonian at mass m0 (same N, S, κ, matter, boundary; g²₀ and ε_bg,0 when given): m0 ≫ J gives the
dressed bare vacuum (Σ ≈ −½), m0 ≪ −J the dressed charge-proliferated state. For half-integer S the two vacua
E = ±½ are degenerate at m0 > m_c ≈ 0.655 J; ``--g2-0 1 --eps-bg0 -0.25`` selects E = +½. A quench straight from the
bare product state does not work with autoregressive networks (the Néel quench of `runs/heisenberg_neel_quench.py`
shows why), hence the pre-quench ground state. The exact reference starts from the same variational ψ(0). By
default every expectation value is an exact sum over the Gauss-law sector (`nqs.sector_state`: 322 states at N = 12,
S = ½; 1 186 at S = 1), so the table shows the error of the method alone; ``--samples 2048`` samples the gauge-
invariant ansatz exactly instead.

Recorded at every save time, variational and exact: the chiral condensate Σ(t) = (1/N) Σ_j (−1)^j ⟨n_j⟩, the electric
field, the charge density, the Gauss-law violation Σ_j ⟨(G_j − Q_j)²⟩ (zero by construction), the fidelity with the
exact state, the Loschmidt return rate r(t) = −(1/N) ln|⟨ψ(0)|ψ(t)⟩|² and the rate into the vacuum manifold
r_M(t) = −(1/N) ln Σ_a |⟨φ_a|ψ(t)⟩|², φ_a the ``--manifold`` lowest exact eigenstates of the pre-quench Hamiltonian
without its background field (two for half-integer S at m0 > 0 on a ring, else one).

    python runs/qlm_quench.py --N 12 --S 0.5 --m0 4 --m 0 --g2-0 1 --eps-bg0 -0.25   # vacuum → m = 0 (scar quench)
    python runs/qlm_quench.py --N 12 --S 0.5 --m0 4 --m -1 --g2-0 1 --eps-bg0 -0.25  # across m_c
    python runs/qlm_quench.py --N 12 --S 1 --kappa normalised --g2 0.5 --m0 4 --m 0 --method teng
    python runs/qlm_quench.py --quick --out /tmp/q.h5
"""

from __future__ import annotations

import numpy as np
from _common import (
    add_ansatz_options,
    check_output,
    experiment_parser,
    finite_float,
    nonnegative_int,
    positive_int,
    script,
)
from _quantum_link import add_model_options, build_system
from _quench import add_dynamics_options, ground_state_variables, quench_of, run_quench

from ansatze.choice import build_ansatz
from nqs import exact, results

COMPARED = ("return_rate", "manifold_return_rate", "chiral_condensate", "electric_field", "energy")


def _parser():
    parser = experiment_parser(__doc__.splitlines()[0], "runs/out/qlm_quench.h5")
    add_model_options(parser, m=0.0, when="after the quench")
    start = parser.add_argument_group("initial state (VMC ground state of the pre-quench Hamiltonian)")
    start.add_argument("--m0", type=finite_float, default=4.0, help="pre-quench mass (≫ J: vacuum, ≪ −J: charges)")
    start.add_argument("--g2-0", type=finite_float, default=None, help="pre-quench g² (default: --g2)")
    start.add_argument("--eps-bg0", type=finite_float, default=None, help="pre-quench ε_bg (default: --eps-bg)")
    start.add_argument("--m0-steps", type=nonnegative_int, default=300,
                       help="VMC steps for the pre-quench ground state")
    start.add_argument("--manifold", type=positive_int, default=None,
                       help="lowest pre-quench eigenstates spanning the vacuum manifold (default: 2 for half-integer "
                            "S, m0 > 0 and a ring, else 1)")
    add_dynamics_options(parser, T=3.0, dt=0.02, n_save=31, samples=0)
    add_ansatz_options(parser, layers=2, features=16)
    return parser


@script
def main(argv: list[str] | None = None) -> results.Result:
    args = _parser().parse(argv, quick=dict(N=4, T=0.1, dt=0.02, n_save=3, layers=1, features=8, m0_steps=20))
    check_output(args.out, args.mode, "dynamics")
    quench = quench_of(args)
    system = build_system(args)
    g2_0 = args.g2 if args.g2_0 is None else args.g2_0
    eps_0 = args.eps_bg if args.eps_bg0 is None else args.eps_bg0
    pre_quench = build_system(args, m=args.m0, g2=g2_0, eps_bg=eps_0)
    half_integer = round(2 * args.S) % 2 == 1
    k = args.manifold or (2 if half_integer and args.m0 > 0 and not args.obc else 1)
    manifold = exact.lowest_states(build_system(args, m=args.m0, g2=g2_0, eps_bg=0.0), k).vectors

    model = build_ansatz(quench.ansatz, system)
    initial = ground_state_variables(pre_quench, model, quench, steps=args.m0_steps)
    title = (f"QLM quench N={args.N} S={args.S} m0={args.m0:g} -> m={args.m:g}, g2={args.g2:g} "
             f"({'OBC' if args.obc else 'PBC'}, {exact.sector_dimension(system)} sector states)")
    run_quench(system, model, quench, observable="chiral_condensate", initial=initial, title=title,
               manifold=manifold)
    result = results.load(args.out)
    print_deviations(result)
    return result


def print_deviations(result: results.Result) -> None:
    """The largest |variational − exact| over the run of the return rates, Σ(t), E(t) and the energy, the smallest
    fidelity and the largest Gauss-law violation (Monte Carlo runs: the exact values of the variational state)."""
    history, reference = result.history, result.exact
    grid = np.abs(reference["time"][None, :] - history["time"][:, None]).argmin(axis=1)
    parts = []
    for name in COMPARED:
        values = history.get(f"{name}_fullsum", history.get(name))
        if values is not None and name in reference:
            parts.append(f"max |Δ {name}| = {np.max(np.abs(values - reference[name][grid])):.2e}")
    violation = history.get("gauss_law_violation_fullsum", history["gauss_law_violation"])
    print(", ".join(parts) + f"; min fidelity {np.min(history['fidelity']):.5f}, max Gauss-law violation "
          f"{np.max(np.abs(violation)):.1e}, over t ∈ [0, {history['time'][-1]:g}] (exact: sector evolution)")


if __name__ == "__main__":
    main()
