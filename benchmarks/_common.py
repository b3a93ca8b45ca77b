"""Shared helpers of the benchmark scripts: environment set-up, timing, machine description, output.

Imported by `benchmarks/vmc_step.py` and `benchmarks/sampling_scaling.py` (run as scripts from the
repository root, so this module is found next to them on `sys.path`).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# NetKet 3.23 turns on its shard_map-based sharding by default. Under JAX 0.10 every recurrent model
# (ours and NetKet's GRUNet1D/LSTMNet alike) then fails as soon as a chunk_size is set ("scan body function
# carry input and carry output must have equal types ... manual axis types do not match"). On a single
# device sharding buys nothing, so the benchmarks switch it off for every model, before NetKet is imported.
os.environ.setdefault("NETKET_SHARDING", "0")

import jax

import nqs

REPO = Path(__file__).resolve().parent.parent


def block(tree: Any) -> Any:
    """Wait for every JAX array in `tree` (jax.block_until_ready on the leaves)."""
    for leaf in jax.tree_util.tree_leaves(tree):
        if hasattr(leaf, "block_until_ready"):
            leaf.block_until_ready()
    return tree


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(wall seconds, result) of fn(), waiting for the result's arrays."""
    t0 = time.perf_counter()
    out = block(fn())
    return time.perf_counter() - t0, out


def summary(times: list[float]) -> dict[str, Any]:
    """median / min / max / all of a list of timings in seconds."""
    return {
        "median": statistics.median(times),
        "min": min(times),
        "max": max(times),
        "all": list(times),
    }


def machine() -> dict[str, Any]:
    """Where and under which load the figures were taken."""
    import flax
    import netket

    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in open("/proc/cpuinfo")
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        cpu = platform.processor()
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "load_average_start": os.getloadavg(),
        "jax_backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "versions": {
            "python": platform.python_version(),
            "jax": jax.__version__,
            "netket": netket.__version__,
            "flax": flax.__version__,
            "nqs": nqs.__version__,
        },
        "netket_sharding": os.environ.get("NETKET_SHARDING"),
    }


def count_parameters(model: Any, n_sites: int) -> int:
    """Parameters of a Flax model on configurations of `n_sites` sites (shapes only, nothing is initialised)."""
    import math

    import jax.numpy as jnp

    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, n_sites)))
    return int(sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(shapes.get("params", {}))))


def closest_width(count: Callable[[int], int], target: int, max_width: int = 512) -> tuple[int, int]:
    """(width, count(width)) with count(width) closest to `target`, for a parameter count that grows with the width
    (bisection for the crossing)."""
    counts: dict[int, int] = {}

    def cached(w: int) -> int:
        if w not in counts:
            counts[w] = count(w)
        return counts[w]

    lo, hi = 1, max_width
    if cached(lo) >= target:
        return lo, cached(lo)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if cached(mid) < target else (lo, mid)
    best = min((lo, hi), key=lambda w: abs(cached(w) - target))
    return best, cached(best)


def write_json(path: str | Path, data: dict) -> Path:
    data.setdefault("machine", {})["load_average_end"] = os.getloadavg()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=_jsonable))
    return path


def report(rows: list[dict], args: Any, text: str) -> dict:
    """Print the table `text`, write {"results": rows, "config": args, "machine": ...} to args.out, return it."""
    print(text)
    data = {"results": rows, "config": vars(args), "machine": machine()}
    print(f"written {write_json(args.out, data)}")
    return data


def _jsonable(obj):
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover
        pass
    return str(obj)


def table(rows: list[list[Any]], header: list[str]) -> str:
    """A plain-text (Markdown-compatible) table."""
    cells = [[str(c) for c in header]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _fmt(x) -> str:
    if isinstance(x, float):
        if x == 0:
            return "0"
        if abs(x) >= 100:
            return f"{x:.0f}"
        if abs(x) >= 1:
            return f"{x:.2f}"
        return f"{x:.3g}"
    return str(x)
