"""Main job: ground state of the Heisenberg chain with an autoregressive ansatz, checked against exact numbers.

H = J Σ_i σ_i·σ_{i+1} (+ J2 Σ_i σ_i·σ_{i+2}), Pauli units, periodic by default. The Marshall sublattice
rotation is applied to the Hamiltonian (the rotated ground state is positive for J2 = 0), or with
``--sign ansatz`` built into the ansatz as the factor (−1)^{N_↑ on sublattice B}, so it runs without a
phase head by default; the zero-magnetisation sector is imposed by masking the conditionals.
``--symmetry translations|point|space`` (and ``--spin-flip``) symmetrises |ψ|² over the lattice group
with exact sampling kept (`ansatze.symmetrized`); with ``--coherent`` the amplitude is projected onto the
symmetric irrep instead and its exact energy, summed over the sector, is minimised (`nqs.projected_vmc`). The
exact reference is ED up to 24 sites and the Bethe-ansatz energy (`nqs.exact.bethe_ground_state_energy`) for
longer J2 = 0 chains. Energies are in Pauli units; divide by 4 for S·S units.

    python runs/heisenberg_chain.py                      # L=16 PBC, writes runs/out/heisenberg_chain.h5
    python runs/heisenberg_chain.py --L 20 --symmetry translations --spin-flip --steps 2000
    python runs/heisenberg_chain.py --L 100 --obc --ansatz rnn --features 32
    python runs/heisenberg_chain.py --quick --out /tmp/q.h5
"""

from __future__ import annotations

from _common import check_output, script
from _heisenberg import heisenberg_parser, run

from nqs import results


@script
def main(argv: list[str] | None = None) -> results.Result:
    parser = heisenberg_parser(__doc__.splitlines()[0], "runs/out/heisenberg_chain.h5", L=16, steps=150)
    args = parser.parse(argv, quick=dict(L=8, layers=1, features=16, heads=2, steps=40, samples=256))
    check_output(args.out, args.mode, "ground_state")
    return run(args, "chain")


if __name__ == "__main__":
    main()
