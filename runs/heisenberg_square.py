r"""Ground state of the Heisenberg (J1-J2) model on the L×L square lattice with an autoregressive ansatz,
checked against exact numbers.

H = J Σ_<ij> σ_i·σ_j + J2 Σ_<<ij>> σ_i·σ_j, Pauli units, periodic by default, zero magnetisation by
masking. For J2 = 0 the Marshall rotation makes the ground state positive (``--sign``); for J2 ≠ 0 the
ansatz also learns a phase. The Transformer follows a raster (or ``--order snake``) path with 2D
position encodings, optionally with ``--patch PX PY`` tokens; ``--ansatz rnn2d`` is the 2D RNN.
The reference is ED for L ≤ 4 and published ED energies for 6×6 (`nqs.exact.reference_ground_state_energy`).

    python runs/heisenberg_square.py                                  # 4×4 PBC
    python runs/heisenberg_square.py --J2 0.5 --symmetry space --spin-flip --steps 1500
    python runs/heisenberg_square.py --J2 0.5 --symmetry space --spin-flip --coherent --steps 150 --lr 0.05 \
        --diag-shift 1e-4
    python runs/heisenberg_square.py --L 6 --ansatz rnn2d --features 32
"""

from __future__ import annotations

from _common import check_output, script
from _heisenberg import heisenberg_parser, run

from nqs import results


@script
def main(argv: list[str] | None = None) -> results.Result:
    parser = heisenberg_parser(__doc__.splitlines()[0], "runs/out/heisenberg_square.h5", L=4, steps=300)
    args = parser.parse(argv, quick=dict(L=4, layers=1, features=8, heads=2, steps=15, samples=128))
    check_output(args.out, args.mode, "ground_state")
    return run(args, "square")


if __name__ == "__main__":
    main()
