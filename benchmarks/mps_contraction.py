"""Benchmark: evaluation and per-sample Jacobian of the translation-invariant MPS, ours (`ansatze.mps.BlockMPS`,
blocks of 4 sites from a table of products) against NetKet's `MPSPeriodic(symperiod=1)` (site by site), with the
same parameters, in the same process.

For each chain length N and bond dimension χ: log ψ of `--samples` random configurations (the cost of Metropolis
sampling and local energies, which evaluate the model ~N + 1 times per sample) and the dense holomorphic Jacobian
(`nk.jax.jacobian`, what TDVP and SR build once per step), median of `--repeats` timings after a warm-up call, the
ratio NetKet/ours, and the largest difference of log ψ (up to the 2πi branch of the logarithm).

    python benchmarks/mps_contraction.py                  # writes benchmarks/out/mps_contraction.json
    python benchmarks/mps_contraction.py --quick --out /tmp/m.json
"""

from __future__ import annotations

import argparse

import _common  # noqa: F401  (first: switches NetKet's sharding off before NetKet loads)
import jax
import netket as nk
import numpy as np
from _common import REPO, report, summary, table, timed

from ansatze.mps import BlockMPS


def measure(n: int, chi: int, n_samples: int, repeats: int, seed: int) -> dict:
    hilbert = nk.hilbert.Spin(0.5, n)
    x = hilbert.random_state(jax.random.PRNGKey(seed), n_samples)
    netket = nk.models.tensor_networks.MPSPeriodic(hilbert, bond_dim=chi, symperiod=1, param_dtype=complex,
                                                   kernel_init=jax.nn.initializers.normal(0.1))
    ours = BlockMPS(hilbert, bond_dim=chi)
    variables = netket.init(jax.random.PRNGKey(seed + 1), x[:1])
    row: dict = {"N": n, "chi": chi, "samples": n_samples, "n_parameters": 2 * chi * chi}
    values = {}
    for name, model in (("netket", netket), ("ours", ours)):
        forward = jax.jit(model.apply)
        jacobian = jax.jit(lambda v, s, m=model: nk.jax.jacobian(m.apply, v["params"], s, mode="holomorphic",
                                                                 dense=True))
        values[name] = np.asarray(forward(variables, x))
        jacobian(variables, x)  # compile
        row[f"forward_{name}_s"] = summary([timed(lambda f=forward: f(variables, x))[0] for _ in range(repeats)])
        row[f"jacobian_{name}_s"] = summary([timed(lambda j=jacobian: j(variables, x))[0] for _ in range(repeats)])
    for phase in ("forward", "jacobian"):
        row[f"{phase}_ratio"] = row[f"{phase}_netket_s"]["median"] / row[f"{phase}_ours_s"]["median"]
    diff = values["ours"] - values["netket"]
    row["max_abs_diff"] = float(np.max(np.abs(diff.real) + np.abs(np.sin(diff.imag))))
    return row


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "benchmarks/out/mps_contraction.json"))
    parser.add_argument("--sizes", default="16,32", help="chain lengths N (comma separated)")
    parser.add_argument("--bond-dims", default="8,16,32", help="bond dimensions χ (comma separated)")
    parser.add_argument("--samples", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="N = 8, χ = 4, 64 samples, 2 repeats")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.bond_dims, args.samples, args.repeats = "8", "4", 64, 2
    rows = [measure(int(n), int(chi), args.samples, args.repeats, args.seed)
            for n in args.sizes.split(",") for chi in args.bond_dims.split(",")]
    return report(rows, args, table(
        [[r["N"], r["chi"], r["forward_netket_s"]["median"], r["forward_ours_s"]["median"], r["forward_ratio"],
          r["jacobian_netket_s"]["median"], r["jacobian_ours_s"]["median"], r["jacobian_ratio"], r["max_abs_diff"]]
         for r in rows],
        ["N", "χ", "forward NetKet s", "forward ours s", "ratio", "Jacobian NetKet s", "Jacobian ours s", "ratio",
         "max |Δ log ψ|"]))


if __name__ == "__main__":
    main()
