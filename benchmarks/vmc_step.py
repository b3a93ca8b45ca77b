"""Benchmark: one VMC + SR step, split into phases, for our autoregressive ansätze versus NetKet's.

For every system size and model, in one process:

* sample       ``vstate.sample()``: n exact samples from `nk.sampler.ARDirectSampler` (NetKet calls the
               model's `conditional` once per site; cached models reuse their per-site cache);
* local_energy ``vstate.local_estimators(H)``: E_loc(σ) = Σ_σ' H_σσ' ψ(σ')/ψ(σ), chunked by `chunk_size`
               samples: NetKet's kernel for NetKet's models (log ψ on every connected element), prefix reuse
               for ours (`nqs.local_energy.PrefixReuseMCState`; `--no-prefix-reuse`: NetKet's kernel too; the
               memory figure always uses NetKet's kernel);
* gradient     the force F = vjp(log ψ)(conj(E_loc − Ē)/n) turned into the real gradient, i.e. the second
               half of NetKet's `expect_and_forces` + `force_to_grad` on the same samples;
* sr_build / sr_solve  `nk.optimizer.SR(diag_shift=1e-3)` as in `nqs.vmc`: `lhs_constructor` (QGTAuto
               picks the QGT representation; a Jacobian QGT computes the per-sample Jacobian here) and
               `qgt.solve(cg, F)`.

Each phase is timed with `jax.block_until_ready` after a warm-up call; the warm-up (compile + one run)
is reported separately as ``compile_s`` = first call − median steady call. The memory figure is XLA's
planned peak of the compiled step (`step_memory`).

Models (real parameters, positive ψ, on the Marshall-rotated Heisenberg Hamiltonian, no U(1) mask, so
ours and NetKet's compute the same kind of object):

| name            | module                                                        | width knob |
|-----------------|---------------------------------------------------------------|------------|
| transformer     | `ansatze.ARTransformer(layers=2, heads=2, phase=False)`       | features D |
| transformer_patch | the same on a square lattice, raster order, 2×2 patches as tokens (N/4 tokens)  | features D |
| rnn             | `ansatze.ARRNN(cell="gru", layers=1, phase=False)` (snake 2D) | hidden H   |
| arnn_dense      | `nk.models.ARNNDense(layers=2)`                               | features f |
| fast_arnn_dense | `nk.models.FastARNNDense(layers=2)`                           | features f |
| gru             | `nkx.models.GRUNet1D(layers=2)` = GRU(H) → GRU(2) (snake 2D)  | features H |
| fast_gru        | `nkx.models.FastGRUNet1D(layers=2)`                           | features H |

Each model's width is the one whose parameter count (as `MCState.n_parameters` counts it: masked
kernel entries included) is closest to ``--params``; the ratio to the target is printed. ARNNDense
cannot go below ≈ 4N² parameters (its first and last masked layers are N·d × N·f), so for large N it is
larger than the target and the comparison row is flagged.

Ratios ours/NetKet are reported for transformer/arnn_dense, transformer/fast_arnn_dense,
transformer_patch/arnn_dense, rnn/gru and rnn/fast_gru. transformer_patch runs on square sizes only.

    python benchmarks/vmc_step.py                          # full run, writes benchmarks/out/vmc_step.json
    python benchmarks/vmc_step.py --quick --out /tmp/q.json
    python benchmarks/vmc_step.py --sizes chain20 --models transformer,arnn_dense --repeats 5
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
import time
from typing import Any

import _common  # noqa: F401  (first: switches NetKet's sharding off before NetKet loads)
import jax
import jax.flatten_util
import jax.numpy as jnp
import jax.scipy.sparse.linalg
import netket as nk
import netket.experimental as nkx
import numpy as np
from _common import closest_width, count_parameters, machine, summary, table, timed, write_json
from netket.utils import HashableArray
from netket.vqs.mc.common import force_to_grad

from ansatze import ARRNN, ARTransformer, snake_order
from hamiltonians import heisenberg
from nqs.states import mc_state

PHASES = ("sample", "local_energy", "gradient", "sr_build", "sr_solve")
DEFAULT_SIZES = ("chain20", "chain40", "chain80", "square10")
DEFAULT_MODELS = ("transformer", "transformer_patch", "arnn_dense", "fast_arnn_dense", "rnn", "gru", "fast_gru")
SQUARE_ONLY = ("transformer_patch",)
PAIRS = (
    ("transformer", "arnn_dense"),
    ("transformer", "fast_arnn_dense"),
    ("transformer_patch", "arnn_dense"),
    ("rnn", "gru"),
    ("rnn", "fast_gru"),
)
FAMILY = {
    "transformer": "ours",
    "transformer_patch": "ours",
    "rnn": "ours",
    "arnn_dense": "netket",
    "fast_arnn_dense": "netket",
    "gru": "netket",
    "fast_gru": "netket",
}


# -- systems ---------------------------------------------------------------------------------------
def parse_size(spec: str) -> tuple[str, int]:
    """'chain40' -> ('chain', 40); 'square10' -> ('square', 10) (a 10×10 lattice)."""
    for lattice in ("chain", "square"):
        if spec.startswith(lattice) and spec[len(lattice):].isdigit():
            return lattice, int(spec[len(lattice):])
    raise argparse.ArgumentTypeError(f"size {spec!r} is not chainL or squareL (e.g. chain40, square10)")


def make_system(spec: str):
    lattice, L = parse_size(spec)
    return heisenberg(L, lattice=lattice, pbc=True, marshall=True, zero_magnetization=False), lattice, L


# -- models ----------------------------------------------------------------------------------------
def _snake(lattice: str, L: int, n: int) -> np.ndarray | None:
    if lattice != "square":
        return None
    pos = snake_order(L, L)
    return pos[:, 0] * L + pos[:, 1]


def build_model(name: str, hilbert, lattice: str, L: int, width: int):
    """The module `name` at width `width` on `hilbert` (see the module docstring's table)."""
    n = hilbert.size
    if name == "transformer":
        return ARTransformer(hilbert, layers=2, features=2 * width, heads=2, phase=False)
    if name == "transformer_patch":
        if lattice != "square" or L % 2:
            raise ValueError("transformer_patch needs a square lattice of even side (2×2 patches)")
        return ARTransformer(hilbert, layers=2, features=2 * width, heads=2, phase=False, order="raster",
                             shape=(L, L), patch=(2, 2))
    if name == "rnn":
        if lattice == "square":
            return ARRNN(hilbert, hidden=width, cell="gru", layers=1, order="snake", shape=(L, L), phase=False)
        return ARRNN(hilbert, hidden=width, cell="gru", layers=1, phase=False)
    if name in ("arnn_dense", "fast_arnn_dense"):
        cls = nk.models.ARNNDense if name == "arnn_dense" else nk.models.FastARNNDense
        return cls(hilbert, layers=2, features=width)
    if name in ("gru", "fast_gru"):
        cls = nkx.models.GRUNet1D if name == "gru" else nkx.models.FastGRUNet1D
        path = _snake(lattice, L, n)
        if path is None:
            return cls(hilbert, layers=2, features=width)
        prev = np.full((n, 1), -1, dtype=np.intp)  # the previous site on the snake path feeds the recurrence
        prev[path[1:], 0] = path[:-1]
        return cls(
            hilbert,
            layers=2,
            features=width,
            reorder_idx=HashableArray(path.astype(np.intp)),
            prev_neighbors=HashableArray(prev),
        )
    raise ValueError(f"unknown model {name!r}; choose from {', '.join(DEFAULT_MODELS)}")


def hyper_parameters(name: str, width: int) -> dict[str, Any]:
    return {
        "transformer": {"layers": 2, "features": 2 * width, "heads": 2, "ff_features": 8 * width},
        "transformer_patch": {"layers": 2, "features": 2 * width, "heads": 2, "ff_features": 8 * width,
                              "order": "raster", "patch": [2, 2]},
        "rnn": {"cell": "gru", "layers": 1, "hidden": width},
        "arnn_dense": {"layers": 2, "features": [width, 2]},
        "fast_arnn_dense": {"layers": 2, "features": [width, 2]},
        "gru": {"layers": 2, "features": [width, 2]},
        "fast_gru": {"layers": 2, "features": [width, 2]},
    }[name]


def match_width(name: str, hilbert, lattice: str, L: int, target: int, max_width: int = 512) -> tuple[int, int]:
    """(width, n_parameters) with n_parameters closest to `target`."""
    return closest_width(lambda w: count_parameters(build_model(name, hilbert, lattice, L, w), hilbert.size), target,
                         max_width)


# -- phases ----------------------------------------------------------------------------------------
@functools.partial(jax.jit, static_argnums=0)
def _gradient(apply_fun, parameters, model_state, samples, e_loc):
    """Real gradient of E: the vjp half of NetKet's `expect_and_forces` + `force_to_grad`."""
    n = samples.shape[0]
    e_loc = e_loc - jnp.mean(e_loc)
    _, vjp = nk.jax.vjp(lambda w: apply_fun({"params": w, **model_state}, samples), parameters, conjugate=True)
    force = vjp(jnp.conjugate(e_loc) / n)[0]
    return force_to_grad(force, parameters)


def auto_chunk(n_samples: int, max_conn: int, budget: int = 16384) -> int:
    """Largest power-of-two chunk (≤ n_samples) with chunk × max_conn ≤ budget configurations."""
    chunk = 1
    while chunk * 2 <= n_samples and chunk * 2 * max_conn <= budget:
        chunk *= 2
    return chunk


def step_memory(vstate, hamiltonian, chunk: int, diag_shift: float = 1e-3) -> dict[str, Any]:
    """XLA's planned memory of one step (local energies + gradient + SR solve by CG on a dense Jacobian), in bytes.

    The step is written as one jitted function of the parameters and the samples, with the local energies
    and the Jacobian chunked by `chunk` samples as in the timed phases, and compiled (not run);
    `Compiled.memory_analysis()` then gives the buffers XLA's assignment keeps live at its peak
    (``temp``) besides the arguments and outputs. Unlike an RSS delta this is deterministic and does not
    vanish when the allocator reuses memory from the warm-up. Sampling is not included.
    """
    from netket.vqs.mc.kernels import local_value_kernel_jax

    H = hamiltonian.to_jax_operator()
    apply_fun, model_state = vstate._apply_fun, vstate.model_state
    samples = vstate.samples.reshape(-1, vstate.hilbert.size)
    n = samples.shape[0]

    def step(params, samples):
        variables = {"params": params, **model_state}
        e_loc = nk.jax.vmap_chunked(
            lambda s: local_value_kernel_jax(apply_fun, variables, s, H), chunk_size=chunk
        )(samples[:, None, :])[:, 0]
        grad = _gradient(apply_fun, params, model_state, samples, e_loc)
        jac = nk.jax.jacobian(apply_fun, params, samples, model_state, mode="real", dense=True, center=True,
                              chunk_size=chunk) / math.sqrt(n)
        jac = jac.reshape(-1, jac.shape[-1])  # (n or 2n, P): S = JᵀJ is never formed, as in QGTJacobianDense
        flat, _ = jax.flatten_util.ravel_pytree(grad)
        update, _ = jax.scipy.sparse.linalg.cg(lambda v: jac.T @ (jac @ v) + diag_shift * v, flat)
        return update

    analysis = jax.jit(step).lower(vstate.parameters, samples).compile().memory_analysis()
    if analysis is None:
        return {"method": "XLA memory_analysis unavailable on this backend"}
    out = {k: int(getattr(analysis, f"{k}_size_in_bytes")) for k in ("temp", "argument", "output", "alias")}
    out["peak_bytes"] = out["temp"] + out["argument"] + out["output"] - out["alias"]
    out["method"] = ("XLA memory_analysis of the jitted step (local energies, gradient, CG solve of SR on the dense "
                     "Jacobian; no sampling)")
    return out


class Step:
    """The phases of one VMC + SR step on `vstate`, each a zero-argument callable."""

    def __init__(self, vstate, hamiltonian, diag_shift: float = 1e-3):
        self.vstate = vstate
        self.hamiltonian = hamiltonian
        self.sr = nk.optimizer.SR(diag_shift=diag_shift)
        self.e_loc = self.grad = self.qgt = None

    def sample(self):
        return self.vstate.sample()

    def local_energy(self):
        le = self.vstate.local_estimators(self.hamiltonian)
        self.e_loc = jax.tree_util.tree_leaves(le)[0].reshape(-1)
        return self.e_loc

    def gradient(self):
        s = self.vstate.samples
        s = s.reshape(-1, s.shape[-1])
        self.grad = _gradient(self.vstate._apply_fun, self.vstate.parameters, self.vstate.model_state, s, self.e_loc)
        return self.grad

    def sr_build(self):
        self.qgt = self.sr.lhs_constructor(self.vstate, 0)
        return self.qgt

    def sr_solve(self):
        update, _ = self.qgt.solve(self.sr.solver, self.grad)
        return update


def bench_model(spec: str, name: str, system, lattice: str, L: int, args) -> dict[str, Any]:
    hilbert, n = system.hilbert, system.hilbert.size
    width, n_params = match_width(name, hilbert, lattice, L, args.params)
    model = build_model(name, hilbert, lattice, L, width)
    chunk = args.chunk_size or auto_chunk(args.samples, system.hamiltonian.max_conn_size)
    vstate = mc_state(  # our models: local energies by prefix reuse (nqs.local_energy) unless --no-prefix-reuse
        nk.sampler.ARDirectSampler(hilbert),
        model,
        prefix_reuse=not args.no_prefix_reuse,
        n_samples=args.samples,
        n_discard_per_chain=0,
        chunk_size=chunk,
        seed=0,
        sampler_seed=1,
    )
    assert vstate.n_parameters == n_params, (vstate.n_parameters, n_params)
    step = Step(vstate, system.hamiltonian)
    first = {}
    for phase in PHASES:
        first[phase], _ = timed(getattr(step, phase))
    times = {phase: [] for phase in PHASES}
    for _ in range(args.repeats):
        for phase in PHASES:
            t, _ = timed(getattr(step, phase))
            times[phase].append(t)
    memory = None if args.no_memory else step_memory(vstate, system.hamiltonian, chunk)
    energy = float(np.real(np.mean(np.asarray(step.e_loc)))) / n
    med = {p: summary(times[p]) for p in PHASES}
    return {
        "size": spec,
        "lattice": lattice,
        "L": L,
        "n_sites": n,
        "max_conn": int(system.hamiltonian.max_conn_size),
        "model": name,
        "family": FAMILY[name],
        "module": type(model).__module__ + "." + type(model).__name__,
        "hyper_parameters": hyper_parameters(name, width),
        "n_parameters": n_params,
        "param_target": args.params,
        "param_ratio_to_target": n_params / args.params,
        "chunk_size": chunk,
        "qgt": type(step.qgt).__name__,
        "energy_per_site_pauli": energy,
        "first_call_s": first,
        "compile_s": {p: max(first[p] - med[p]["median"], 0.0) for p in PHASES},
        "time_s": med,
        "step_s": sum(med[p]["median"] for p in PHASES),
        "memory": memory,
    }


def ratios(results: list[dict]) -> list[dict]:
    by = {(r["size"], r["model"]): r for r in results}
    out = []
    for spec in dict.fromkeys(r["size"] for r in results):
        for ours, theirs in PAIRS:
            a, b = by.get((spec, ours)), by.get((spec, theirs))
            if a is None or b is None:
                continue
            p_ratio = a["n_parameters"] / b["n_parameters"]
            row = {
                "size": spec,
                "ours": ours,
                "netket": theirs,
                "param_ratio": p_ratio,
                "params_matched": abs(p_ratio - 1) <= 0.2,
                "step": a["step_s"] / b["step_s"],
            }
            for p in PHASES:
                row[p] = a["time_s"][p]["median"] / b["time_s"][p]["median"]
            row["compile"] = sum(a["compile_s"].values()) / max(sum(b["compile_s"].values()), 1e-9)
            ma, mb = a["memory"] or {}, b["memory"] or {}
            if ma.get("peak_bytes") and mb.get("peak_bytes"):
                row["memory"] = ma["peak_bytes"] / mb["peak_bytes"]
            out.append(row)
    return out


def print_tables(data: dict) -> None:
    rows = []
    for r in data["results"]:
        t = r["time_s"]
        mem_mb = (r["memory"] or {}).get("peak_bytes")
        mem_mb = None if mem_mb is None else mem_mb / 2**20
        rows.append(
            [r["size"], r["model"], r["n_parameters"], f"{r['param_ratio_to_target']:.2f}",
             *(t[p]["median"] for p in PHASES), r["step_s"], sum(r["compile_s"].values()),
             "-" if mem_mb is None else f"{mem_mb:.0f}", r["qgt"].replace("QGT", "")]
        )
    print(table(rows, ["size", "model", "params", "p/target", *[f"{p} s" for p in PHASES], "step s",
                       "compile s", "peak MB", "QGT"]))
    print()
    rows = [
        [r["size"], f"{r['ours']}/{r['netket']}", f"{r['param_ratio']:.2f}" + ("" if r["params_matched"] else " *"),
         *(r[p] for p in PHASES), r["step"], r["compile"], r.get("memory", "-")]
        for r in data["ratios"]
    ]
    print(table(rows, ["size", "ours/netket", "param ratio", *PHASES, "step", "compile", "memory"]))
    for f in data["failures"]:
        print(f"FAILED {f['size']} {f['model']}: {f['error']}")
    if any(not r["params_matched"] for r in data["ratios"]):
        print("* parameter counts differ by more than 20% (ARNNDense has at least ~4N^2 parameters)")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(DEFAULT_SIZES),
                        help="comma-separated chainL / squareL (L×L) sizes, default %(default)s")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated, default %(default)s")
    parser.add_argument("--samples", type=int, default=1024, help="exact samples per step")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps after the warm-up")
    parser.add_argument("--repeats-large", type=int, default=None,
                        help="timed steps for sizes with more than 64 sites (default: --repeats)")
    parser.add_argument("--params", type=int, default=4000, help="target parameter count of every model")
    parser.add_argument("--chunk-size", type=int, default=None,
                        help="samples per chunk of the local energies / QGT (default: chunk × max_conn ≤ 16384)")
    parser.add_argument("--no-memory", action="store_true", help="skip the compiled-step memory analysis")
    parser.add_argument("--no-prefix-reuse", action="store_true", help="NetKet's generic local energies for ours too")
    parser.add_argument("--out", default="benchmarks/out/vmc_step.json", help="JSON output path")
    parser.add_argument("--quick", action="store_true", help="tiny smoke-test configuration")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.samples, args.repeats, args.params = "chain8", 64, 1, 500
        args.repeats_large = 1
        if args.models == ",".join(DEFAULT_MODELS):
            args.models = "transformer,arnn_dense,rnn,gru"
    sizes = [s for s in args.sizes.split(",") if s]
    for s in sizes:
        parse_size(s)
    models = [m for m in args.models.split(",") if m]
    for m in models:
        if m not in FAMILY:
            parser.error(f"unknown model {m!r}; choose from {', '.join(DEFAULT_MODELS)}")

    data: dict[str, Any] = {
        "benchmark": "vmc_step",
        "machine": machine(),
        "settings": {
            "sizes": sizes, "models": models, "samples": args.samples, "repeats": args.repeats,
            "repeats_large": args.repeats_large, "param_target": args.params, "chunk_size": args.chunk_size,
            "quick": args.quick, "hamiltonian": "Heisenberg, Pauli units, PBC, Marshall-rotated, no U(1) mask",
            "diag_shift": 1e-3, "phases": list(PHASES),
        },
        "results": [],
        "failures": [],
    }
    t_start = time.perf_counter()
    for spec in sizes:
        system, lattice, L = make_system(spec)
        repeats = args.repeats
        if args.repeats_large is not None and system.hilbert.size > 64:
            repeats = args.repeats_large
        for name in models:
            if name in SQUARE_ONLY and lattice != "square":
                continue
            t0 = time.perf_counter()
            sub = argparse.Namespace(**{**vars(args), "repeats": repeats})
            try:
                res = bench_model(spec, name, system, lattice, L, sub)
            except Exception as exc:  # a model that cannot run here is reported, not fatal
                msg = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
                data["failures"].append({"size": spec, "model": name, "error": msg})
                print(f"[{spec} {name}] FAILED {msg}", file=sys.stderr, flush=True)
                continue
            data["results"].append(res)
            print(f"[{spec} {name}] params {res['n_parameters']} step {res['step_s']:.3f} s "
                  f"(wall {time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    data["ratios"] = ratios(data["results"])
    data["wall_s"] = time.perf_counter() - t_start
    path = write_json(args.out, data)
    print_tables(data)
    print(f"\nwrote {path} (wall {data['wall_s']:.0f} s, load average {data['machine']['load_average_end']})")
    return data


if __name__ == "__main__":
    main()
