"""Benchmark: the two pieces that make full-sum TDVP over a gauge sector affordable, each against NetKet in the same
process.

1. Sums: energy and forces (`expect_and_forces`) of a gauge-invariant RNN on the spin-½ quantum link ring, summed
   over the Gauss-law sector (`nqs.sector_state.SectorFullSumState`) against NetKet's `FullSumState` over the whole
   space (N = 8: 47 of 65 536 states). The two forces are checked to agree before anything is timed.
2. Solve: the smooth pseudo-inverse of the QGT from the Jacobian's SVD (`dynamics.linear_solvers.pinv_smooth`)
   against NetKet's dense `pinv_smooth` (eigh of the P × P matrix), on the same QGT of the N = 12 sector (S = ½:
   322 states, 644 real rows, RNNs of growing P; S = 1: 1 186 states, 2 372 rows); the solutions are checked to
   agree.

    python benchmarks/sector_tdvp.py                 # writes benchmarks/out/sector_tdvp.json
    python benchmarks/sector_tdvp.py --quick --out /tmp/s.json
"""

from __future__ import annotations

import argparse
import functools

import _common  # noqa: F401  (first: switches NetKet's sharding off before NetKet loads)
import jax
import netket as nk
import numpy as np
from _common import REPO, report, summary, table, timed

from ansatze import ARRNN
from dynamics.linear_solvers import pinv_smooth
from hamiltonians.quantum_link import quantum_link
from nqs.states import make_state


def _flat(tree) -> np.ndarray:
    return np.concatenate([np.ravel(np.asarray(x)) for x in jax.tree.leaves(tree)])


def sums(N: int, hidden: int, repeats: int) -> dict:
    system = quantum_link(N, m=0.5)
    model = ARRNN(system.hilbert, hidden=hidden, tokens=system.token_map, constraint=system.constraint)
    sector = make_state(system, model, n_samples=0, seed=0)
    full = nk.vqs.FullSumState(system.hilbert, model, variables=sector.variables)
    forces = {}
    times = {}
    for name, vs in (("sector", sector), ("netket", full)):
        def step(vs=vs):
            vs.reset()
            return vs.expect_and_forces(system.hamiltonian)[1]
        forces[name] = _flat(step())
        times[name] = summary([timed(step)[0] for _ in range(repeats)])
    if not np.allclose(forces["sector"], forces["netket"], atol=1e-10):
        raise RuntimeError("the sector and full-space forces differ")
    return {"case": f"sums N={N}", "states": [len(sector.configurations), system.hilbert.n_states],
            "ours_s": times["sector"]["median"], "netket_s": times["netket"]["median"],
            "ratio": times["netket"]["median"] / times["sector"]["median"], "times": times}


def solve(N: int, hidden: int, repeats: int, S: float = 0.5) -> dict:
    system = quantum_link(N, S=S, m=0.0, **({} if S == 0.5 else {"kappa": "normalised", "g2": 0.5}))
    model = ARRNN(system.hilbert, hidden=hidden, tokens=system.token_map, constraint=system.constraint)
    vs = make_state(system, model, n_samples=0, seed=0)
    qgt = vs.quantum_geometric_tensor(nk.optimizer.qgt.QGTJacobianDense(holomorphic=False))
    rhs = jax.tree.map(lambda f: f.imag, vs.expect_and_forces(system.hamiltonian)[1])
    solvers = {"ours": functools.partial(pinv_smooth, rtol=1e-12, rtol_smooth=1e-10),
               "netket": functools.partial(nk.optimizer.solver.pinv_smooth, rtol=1e-12, rtol_smooth=1e-10)}
    solutions, times = {}, {}
    for name, solver in solvers.items():
        solutions[name] = _flat(qgt.solve(solver, rhs)[0])
        times[name] = summary([timed(lambda solver=solver: qgt.solve(solver, rhs)[0])[0] for _ in range(repeats)])
    scale = np.abs(solutions["netket"]).max()
    if not np.allclose(solutions["ours"], solutions["netket"], atol=1e-6 * scale):
        raise RuntimeError("the two pseudo-inverse solutions differ")
    rows = qgt.O.reshape(-1, qgt.O.shape[-1]).shape
    return {"case": f"solve N={N} S={S:g} P={rows[1]}", "states": [len(vs.configurations), rows[0]],
            "ours_s": times["ours"]["median"], "netket_s": times["netket"]["median"],
            "ratio": times["netket"]["median"] / times["ours"]["median"], "times": times}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(REPO / "benchmarks/out/sector_tdvp.json"))
    args = parser.parse_args(argv)
    if args.quick:
        rows = [sums(4, 4, 2), solve(6, 8, 2), solve(4, 4, 2, S=1.0)]
    else:
        rows = [sums(8, 16, args.repeats)] + [solve(12, h, args.repeats) for h in (16, 32)] + [
            solve(12, 16, args.repeats, S=1.0)]
    text = table([[r["case"], f"{r['states'][0]} / {r['states'][1]}", r["ours_s"], r["netket_s"], r["ratio"]]
                  for r in rows], ["case", "sector / space (sums); states / rows (solve)", "ours (s)", "NetKet (s)",
                                   "NetKet / ours"])
    return report(rows, args, text)


if __name__ == "__main__":
    main()
