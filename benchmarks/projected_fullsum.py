"""Benchmark: one full-sum step of a coherently projected ansatz, ours (`nqs.projected_vmc`: ψ_θ once per
configuration, sums per orbit, minSR on the orbits) against NetKet (`FullSumState` of `nk.nn.blocks.SymmExpSum`
around the same model: ψ_θ at every group image of every configuration), same parameters, same process.

Cases: J1-J2 chains (J2 = 0.3) and the 4×4 J1-J2 lattice (J2 = 0.5), Marshall-rotated (NetKet's
`Heisenberg(sign_rule=[True, False])`), S^z = 0, space group without the flip (SymmExpSum has none), trivial
characters, AR Transformer 2 layers × 16 with a phase head. NetKet is timed for energy + gradient only
(`expect_and_grad`); ours for a whole step (energy, orbit Jacobian and minSR solve), so the ratio
NetKet/ours is a lower bound on the speed-up of a natural-gradient step. The energies of the two at the same
parameters are compared (|ΔE|), and both ED energies are checked to agree before anything is timed.

NetKet's `FullSumState.expect_and_grad` differentiates the whole sum at once (its chunk_size does not reach the
backward pass), so its memory grows as |G| × D: the L = 16 chain and the 4×4 lattice (12 870 configurations × 32 or
128 images) ask for 80 GB and do not run on a 24 GiB machine; the default cases are the chains L = 10 and 12.

    python benchmarks/projected_fullsum.py                # writes benchmarks/out/projected_fullsum.json
    python benchmarks/projected_fullsum.py --quick --out /tmp/p.json
"""

from __future__ import annotations

import argparse

import _common  # noqa: F401  (first: switches NetKet's sharding off before NetKet loads)
import jax
import jax.numpy as jnp
import netket as nk
import numpy as np
from _common import REPO, report, summary, table, timed

from ansatze import ARTransformer
from hamiltonians import heisenberg
from nqs import exact
from nqs.projected_vmc import OrbitSums
from nqs.symmetry import SymmetrySector, symmetry_group


def measure(lattice: str, L: int, J2: float, repeats: int, chunk: int, seed: int) -> dict:
    system = heisenberg(L, lattice=lattice, J2=J2, marshall=True)
    n = system.hilbert.size
    shape = {"order": "raster", "shape": (L, L)} if lattice == "square" else {}
    base = ARTransformer(system.hilbert, layers=2, features=16, heads=2, constraint=system.constraint, phase=True,
                         **shape)
    graph = (nk.graph.Square(L, max_neighbor_order=2) if lattice == "square"
             else nk.graph.Chain(L, max_neighbor_order=2))
    group = graph.space_group()
    hilbert = nk.hilbert.Spin(0.5, n, total_sz=0)
    operator = nk.operator.Heisenberg(hilbert, graph, J=[1.0, J2], sign_rule=[True, False])
    e_netket_ed = float(np.linalg.eigvalsh(operator.to_dense())[0]) if hilbert.n_states <= 4096 else float(
        nk.exact.lanczos_ed(operator)[0])
    e_ours_ed = exact.ground_state(system).energy
    if abs(e_netket_ed - e_ours_ed) > 1e-8 * abs(e_ours_ed):
        raise RuntimeError(f"the two Hamiltonians differ: ED {e_netket_ed} (NetKet) vs {e_ours_ed} (ours)")

    vstate = nk.vqs.FullSumState(hilbert, nk.nn.blocks.SymmExpSum(module=base, symm_group=group), seed=seed,
                                 chunk_size=chunk)
    params = vstate.parameters["module"]
    sector = SymmetrySector.build(system.sector_states(), symmetry_group(system.graph, "space"))
    real_params, restore = nk.jax.tree_to_real(params)
    orbits = OrbitSums(exact.sector_matrix(system.hamiltonian, sector.states), base, sector, chunk, {},
                         real_params, restore)

    def ours_step():
        amplitudes, (psi_r, _, weights, local, energy, _) = orbits.evaluate(real_params)
        log_derivatives = orbits.orbit_log_derivatives(real_params, amplitudes, psi_r)
        return energy, orbits.natural_gradient(log_derivatives, weights, local, energy, 1e-4)

    def netket_step():
        stats, gradient = vstate.expect_and_grad(operator)
        return stats.mean, gradient

    row = {"case": f"{lattice} L={L} J2={J2}", "configurations": len(sector.states), "group_order": len(group),
           "n_orbits": sector.n_orbits, "n_parameters": int(sum(p.size for p in jax.tree_util.tree_leaves(params))),
           "exact_energy": e_ours_ed}
    energies = {}
    for name, step in (("ours", ours_step), ("netket", netket_step)):
        energies[name] = float(jnp.real(step()[0]))  # warm-up: compilation
        row[f"{name}_s"] = summary([timed(step)[0] for _ in range(repeats)])
    row["ratio"] = row["netket_s"]["median"] / row["ours_s"]["median"]
    row["energy_ours"], row["energy_netket"] = energies["ours"], energies["netket"]
    row["energy_abs_diff"] = abs(energies["ours"] - energies["netket"])
    return row


CASES = {"chain8": ("chain", 8, 0.3), "chain10": ("chain", 10, 0.3), "chain12": ("chain", 12, 0.3),
         "chain16": ("chain", 16, 0.3), "square4": ("square", 4, 0.5)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "benchmarks/out/projected_fullsum.json"))
    parser.add_argument("--cases", default="chain10,chain12", help=f"comma separated, from {sorted(CASES)}")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk-size", type=int, default=512, help="configurations per batch (both codes)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="the 8-site chain, one repeat")
    args = parser.parse_args(argv)
    if args.quick:
        args.cases, args.repeats = "chain8", 1
    rows = [measure(*CASES[c], args.repeats, args.chunk_size, args.seed) for c in args.cases.split(",")]
    return report(rows, args, table(
        [[r["case"], r["configurations"], r["group_order"], r["n_orbits"], r["n_parameters"], r["netket_s"]["median"],
          r["ours_s"]["median"], r["ratio"], r["energy_abs_diff"]] for r in rows],
        ["case", "configurations", "|G|", "orbits", "parameters", "NetKet E+grad s", "ours minSR step s", "ratio",
         "|ΔE|"]))


if __name__ == "__main__":
    main()
