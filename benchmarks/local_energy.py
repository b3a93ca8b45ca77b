"""Benchmark: local energies by prefix reuse against NetKet's generic path, same model, samples and process.

For every size and model, E_loc(σ) = Σ_σ' H_σσ' ψ(σ')/ψ(σ) of the same `--samples` configurations is computed
twice under `jax.jit`:

* generic  `nqs.local_energy.LocalEnergy` without a plan: NetKet's `get_conn_padded` of the jax operator and one
           full forward pass per connected configuration (what `MCState.local_estimators` does);
* reuse    the prefix-reuse plan (`nqs.prefix_reuse`, `--buckets` start positions): the connected configurations
           continue from the cached network state of their sample after the first changed token.

Reported per row: medians of `--repeats` steady calls (after a warm-up that compiles), the speed-up generic/reuse,
the planned work fraction of the plan, XLA's planned temporary memory of each compiled function, and the largest
relative difference of the two results (it must be round-off). Models: the Transformer (2 layers, 2 heads,
`--features`), the same with 2×2 patches on square lattices, the GRU, and a String State over the four horizontal
snakes of a POVM Transformer on the dissipative XYZ model (its Lindbladian's connected strings, `--povm-samples`).

    python benchmarks/local_energy.py                       # writes benchmarks/out/local_energy.json
    python benchmarks/local_energy.py --quick --out /tmp/le.json
"""

from __future__ import annotations

import argparse
import functools

import jax
import jax.numpy as jnp
import netket as nk
import numpy as np
from _common import machine, summary, table, timed, write_json

from ansatze import ARRNN, ARTransformer
from ansatze.string_states import StringStates, StringStatesSampler, string_paths
from dynamics.povm.context import make_context
from hamiltonians import dissipative_xyz, heisenberg
from nqs.local_energy import LocalEnergy
from nqs.states import mc_state

DEFAULT_SIZES = "chain20,chain40,chain80,square10"
DEFAULT_MODELS = "transformer,transformer_patch,rnn"


def build(name: str, hilbert, lattice: str, L: int, features: int):
    shape = (L, L) if lattice == "square" else None
    order = "snake" if lattice == "square" else "chain"
    if name == "transformer":
        return ARTransformer(hilbert, layers=2, features=features, heads=2, phase=False, order=order, shape=shape)
    if name == "transformer_patch":
        return ARTransformer(hilbert, layers=2, features=features, heads=2, phase=False, order="raster",
                             shape=shape, patch=(2, 2))
    return ARRNN(hilbert, hidden=features, cell="gru", phase=False, order=order, shape=shape)


def memory(fn, *args) -> int:
    """XLA's planned temporary bytes of the compiled fn(*args)."""
    return int(jax.jit(fn).lower(*args).compile().memory_analysis().temp_size_in_bytes)


def compare(generic, reuse, args, repeats: int) -> dict:
    """Warm-up (compile) and `repeats` steady calls of both jitted functions on the same arguments."""
    out = {}
    for name, fn in (("generic", generic), ("reuse", reuse)):
        call = functools.partial(jax.jit(fn), *args)
        first, value = timed(call)
        times = [timed(call)[0] for _ in range(repeats)]
        out[name] = {"time_s": summary(times), "compile_s": first - min(times), "value": np.asarray(value),
                     "temp_bytes": memory(fn, *args)}
    g, r = out["generic"].pop("value"), out["reuse"].pop("value")
    out["max_rel_diff"] = float(np.abs(g - r).max() / max(1.0, np.abs(g).max()))
    out["speedup"] = out["generic"]["time_s"]["median"] / out["reuse"]["time_s"]["median"]
    return out


def bench_hamiltonian(spec: str, name: str, args) -> dict:
    lattice, L = ("square", int(spec[6:])) if spec.startswith("square") else ("chain", int(spec[5:]))
    system = heisenberg(L, lattice=lattice, pbc=True, marshall=True, zero_magnetization=False)
    model = build(name, system.hilbert, lattice, L, args.features)
    x = jnp.asarray(system.hilbert.random_state(jax.random.PRNGKey(0), args.samples))
    variables = model.init(jax.random.PRNGKey(1), x[:1])
    generic = LocalEnergy.of(model, system.hamiltonian, prefix_reuse=False, chunk_size=args.chunk_size)
    reuse = LocalEnergy.of(model, system.hamiltonian, n_buckets=args.buckets, chunk_size=args.chunk_size)
    logpsi = functools.partial(lambda v, p, s: model.apply({**v, "params": p}, s), variables)
    row = compare(lambda p, s: generic(logpsi, p, s)[1], lambda p, s: reuse(logpsi, p, s)[1],
                  (variables["params"], x), args.repeats)
    n_params = sum(a.size for a in jax.tree_util.tree_leaves(variables["params"]))
    return {"size": spec, "model": name, "n_sites": system.n_sites, "n_params": int(n_params),
            "n_moves": reuse.plan.moves.n_moves, "work_fraction": reuse.plan.work_fraction(), **row}


def bench_string_state(L: int, args) -> dict:
    system = dissipative_xyz((L, L), lattice="square")
    hi = nk.hilbert.Fock(n_max=3, N=L * L)
    base = ARTransformer(hi, layers=2, features=args.features, heads=2, phase=False, machine_pow=1)
    model = StringStates(base, string_paths("horizontal_snakes", (L, L)))
    contexts = {reuse: make_context(system, mc_state(StringStatesSampler(hi), model, prefix_reuse=reuse,
                                                     n_buckets=args.buckets, n_samples=args.povm_samples, seed=0),
                                            None)
                for reuse in (False, True)}
    a = jnp.asarray(np.random.default_rng(0).integers(0, 4, (args.povm_samples, L * L)))
    params = model.init(jax.random.PRNGKey(1), a[:1])["params"]
    ref = contexts[False].log_prob(params, a)
    row = compare(lambda p, s: contexts[False].lp_ratios(p, s, ref), lambda p, s: contexts[True].lp_ratios(p, s, ref),
                  (params, a), args.repeats)
    plan = contexts[True].reuse_plan
    return {"size": f"povm{L}x{L}", "model": "string_states", "n_sites": L * L, "n_moves": plan.moves.n_moves,
            "n_params": int(sum(x.size for x in jax.tree_util.tree_leaves(params))),
            "work_fraction": plan.work_fraction(), **row}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES)
    parser.add_argument("--models", default=DEFAULT_MODELS)
    parser.add_argument("--povm-size", type=int, default=6, help="String State on the L×L POVM problem (0: none)")
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--povm-samples", type=int, default=32)
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--buckets", type=int, default=8)
    parser.add_argument("--chunk-size", type=int, default=64, help="samples per chunk, both paths (spin models)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="chain 8 and a 2×2 POVM String State, 2 repeats")
    parser.add_argument("--out", default="benchmarks/out/local_energy.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.povm_size, args.samples, args.povm_samples, args.repeats = "chain8", 2, 32, 16, 2
        args.features = 8
    rows = []
    for spec in args.sizes.split(","):
        for name in args.models.split(","):
            if name == "transformer_patch" and not spec.startswith("square"):
                continue
            rows.append(bench_hamiltonian(spec, name, args))
            print(f"{spec} {name}: ×{rows[-1]['speedup']:.2f}", flush=True)
    if args.povm_size:
        rows.append(bench_string_state(args.povm_size, args))
    text = table([[r["size"], r["model"], r["n_params"], r["n_moves"], r["work_fraction"],
                   r["generic"]["time_s"]["median"], r["reuse"]["time_s"]["median"], r["speedup"],
                   r["generic"]["temp_bytes"] / 2**20, r["reuse"]["temp_bytes"] / 2**20, r["max_rel_diff"]]
                  for r in rows],
                 ["size", "model", "params", "moves", "work", "generic s", "reuse s", "speed-up", "generic MiB",
                  "reuse MiB", "max rel diff"])
    print(text)
    data = {"results": rows, "config": vars(args), "machine": machine()}
    print(f"written {write_json(args.out, data)}")
    return data


if __name__ == "__main__":
    main()
