"""Benchmark: exact-sampling time of the ARTransformer versus N, with and without the key/value cache.

* cached: NetKet's `ARDirectSampler` through `MCState.sample()`, which calls `ARTransformer.conditional`
  once per site; each call embeds the new token, appends its keys/values to the per-layer cache and
  computes one attention row. The cache has a fixed length N (masked beyond the current site), so one
  step costs O(D² + N·D) and a sample O(N·D² + N²·D).
* uncached (reference, implemented here): for each site i the full parallel pass
  `conditionals_log_psi` is re-evaluated on the partially generated configurations and only row i
  is used, i.e. what sampling costs without a cache: O(N) passes of O(N·D² + N²·D) each, O(N²·D² + N³·D)
  per sample.

Both draw `--samples` configurations in one batch, are timed with `jax.block_until_ready` after a
warm-up call (compile time reported separately), and a power law t = a·N^b is fitted by least squares
on log t versus log N, over all N and over N ≥ `--fit-min` (small N are dominated by per-step overhead).
A correctness check compares the empirical distribution of both samplers with |ψ|² on a 4-site model
(total-variation distance).

    python benchmarks/sampling_scaling.py                 # writes benchmarks/out/sampling_scaling.json
    python benchmarks/sampling_scaling.py --quick --out /tmp/s.json
    python benchmarks/sampling_scaling.py --sizes 8,16,32 --samples 512 --features 32
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from typing import Any

import _common  # noqa: F401  (first: switches NetKet's sharding off before NetKet loads)
import jax
import jax.numpy as jnp
import netket as nk
import numpy as np
from _common import machine, summary, table, timed, write_json

from ansatze import ARTransformer


def make_model(n: int, args) -> ARTransformer:
    hilbert = nk.hilbert.Spin(0.5, n)
    return ARTransformer(hilbert, layers=args.layers, features=args.features, heads=args.heads, phase=False)


@functools.partial(jax.jit, static_argnums=(0, 1))
def uncached_sample(model, n_samples: int, variables, key):
    """Exact ancestral sampling that recomputes the full parallel pass for every new site (no cache)."""
    hilbert = model.hilbert
    n = hilbert.size
    local_states = jnp.asarray(hilbert.local_states)
    order = model.reorder(jnp.arange(n))  # generation order, as ARDirectSampler uses it
    sigma = jnp.full((n_samples, n), local_states[0], dtype=jnp.float64)

    def body(k, carry):
        sigma, key = carry
        i = order[k]
        log_psi = model.apply(variables, sigma, method=model.conditionals_log_psi)  # (B, N, d)
        log_p = model.machine_pow * log_psi[:, i, :].real
        key, sub = jax.random.split(key)
        s = jax.random.categorical(sub, log_p, axis=-1)
        return sigma.at[:, i].set(local_states[s]), key

    sigma, _ = jax.lax.fori_loop(0, n, body, (sigma, key))
    return sigma


def cached_state(model, n_samples: int, seed: int = 0) -> nk.vqs.MCState:
    return nk.vqs.MCState(
        nk.sampler.ARDirectSampler(model.hilbert), model, n_samples=n_samples, n_discard_per_chain=0,
        seed=seed, sampler_seed=seed + 1,
    )


def check_distributions(args, n: int = 4, n_samples: int = 8192) -> dict[str, float]:
    """Total-variation distance of both samplers' empirical distributions from |ψ|² on n sites."""
    model = make_model(n, args)
    vs = cached_state(model, n_samples)
    states = model.hilbert.all_states()
    p = np.exp(2 * np.real(np.asarray(vs.log_value(states))))
    index = {tuple(s): k for k, s in enumerate(np.asarray(states))}

    def tv(samples):
        counts = np.zeros(len(p))
        for s in np.asarray(samples).reshape(-1, n):
            counts[index[tuple(s)]] += 1
        return 0.5 * float(np.abs(counts / counts.sum() - p).sum())

    cached = vs.sample()
    uncached = uncached_sample(model, n_samples, vs.variables, jax.random.PRNGKey(7))
    return {
        "n_sites": n,
        "n_samples": n_samples,
        "norm": float(p.sum()),
        "tv_cached": tv(cached),
        "tv_uncached": tv(uncached),
        "tv_expected_noise": float(np.sqrt(len(p) / (2 * np.pi * n_samples))),
    }


def fit_power_law(ns, ts) -> dict[str, float] | None:
    """Least-squares fit of log t = log a + b log N; returns {'exponent': b, 'prefactor': a}."""
    if len(ns) < 2:
        return None
    b, log_a = np.polyfit(np.log(ns), np.log(ts), 1)
    return {"exponent": float(b), "prefactor": float(np.exp(log_a)), "n_min": int(min(ns)), "n_max": int(max(ns))}


def bench_size(n: int, args) -> dict[str, Any]:
    model = make_model(n, args)
    vs = cached_state(model, args.samples)
    key = jax.random.PRNGKey(0)

    def run_cached():
        return vs.sample()

    def run_uncached():
        return uncached_sample(model, args.samples, vs.variables, key)

    out: dict[str, Any] = {"n_sites": n, "n_parameters": int(vs.n_parameters)}
    for name, fn in (("cached", run_cached), ("uncached", run_uncached)):
        first, _ = timed(fn)
        times = [timed(fn)[0] for _ in range(args.repeats)]
        s = summary(times)
        out[name] = {"time_s": s, "first_call_s": first, "compile_s": max(first - s["median"], 0.0)}
    out["speedup"] = out["uncached"]["time_s"]["median"] / out["cached"]["time_s"]["median"]
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="8,16,32,64,128", help="comma-separated N, default %(default)s")
    parser.add_argument("--samples", type=int, default=256, help="samples drawn in one batch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--fit-min", type=int, default=32, help="smallest N of the tail fit")
    parser.add_argument("--out", default="benchmarks/out/sampling_scaling.json", help="JSON output path")
    parser.add_argument("--quick", action="store_true", help="tiny smoke-test configuration")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.samples, args.repeats, args.fit_min = "4,8,16", 32, 1, 8
    sizes = sorted(int(s) for s in args.sizes.split(",") if s)

    data: dict[str, Any] = {
        "benchmark": "sampling_scaling",
        "machine": machine(),
        "settings": {
            "sizes": sizes, "samples": args.samples, "repeats": args.repeats, "quick": args.quick,
            "model": {"name": "ARTransformer", "layers": args.layers, "features": args.features,
                      "heads": args.heads, "phase": False},
            "fit_min": args.fit_min,
        },
    }
    t_start = time.perf_counter()
    data["check"] = check_distributions(args, n_samples=1024 if args.quick else 8192)
    data["results"] = []
    for n in sizes:
        t0 = time.perf_counter()
        res = bench_size(n, args)
        data["results"].append(res)
        print(f"[N={n}] cached {res['cached']['time_s']['median']:.4f} s, uncached "
              f"{res['uncached']['time_s']['median']:.4f} s (wall {time.perf_counter() - t0:.0f} s)",
              file=sys.stderr, flush=True)
    data["fits"] = {}
    for name in ("cached", "uncached"):
        ns = [r["n_sites"] for r in data["results"]]
        ts = [r[name]["time_s"]["median"] for r in data["results"]]
        tail = [(n_, t) for n_, t in zip(ns, ts) if n_ >= args.fit_min]
        data["fits"][name] = {
            "all": fit_power_law(ns, ts),
            "tail": fit_power_law([n_ for n_, _ in tail], [t for _, t in tail]),
        }
    data["wall_s"] = time.perf_counter() - t_start
    path = write_json(args.out, data)

    rows = [[r["n_sites"], r["n_parameters"], r["cached"]["time_s"]["median"], r["uncached"]["time_s"]["median"],
             r["speedup"], r["cached"]["compile_s"], r["uncached"]["compile_s"]] for r in data["results"]]
    print(table(rows, ["N", "params", "cached s", "uncached s", "uncached/cached", "compile cached s",
                       "compile uncached s"]))
    print()
    rows = []
    for name, fits in data["fits"].items():
        for which, f in fits.items():
            if f is not None:
                rows.append([name, which, f"{f['n_min']}-{f['n_max']}", f["exponent"]])
    print(table(rows, ["sampler", "fit", "N range", "exponent b (t ~ N^b)"]))
    c = data["check"]
    print(f"\ncheck (N={c['n_sites']}, {c['n_samples']} samples): TV distance from |psi|^2 cached "
          f"{c['tv_cached']:.3f}, uncached {c['tv_uncached']:.3f} (sampling noise ~{c['tv_expected_noise']:.3f})")
    print(f"wrote {path} (wall {data['wall_s']:.0f} s, load average {data['machine']['load_average_end']})")
    return data


if __name__ == "__main__":
    main()
