"""Transfer of trained parameters from a model on a small lattice to the same architecture on a larger one.

Transformer and RNN weights do not depend on the number of sites, except for tables indexed by site or
token along their first axis: learned positions (N, D), the row/column tables (Lx, D), (Ly, D) of
"learned2d" positions, per-site logits (N, V) or per-token logits (T, V) of a product start. Every leaf of
equal shape is copied; a site-indexed leaf is carried over along its first axis in one of two ways:

* "interpolate" (default): resampled by linear interpolation of the fractional position,
  p_large(i) = p_small(i (n_s − 1)/(n_l − 1)), which keeps "near the start" and "near the end" of the
  path (a chain's two open ends; the first and last rows of a lattice);
* "prefix": copied into the first n_s rows, the remaining rows keep the large model's initial values;
  then the first sites of a raster path on a lattice with the same row length see exactly the same
  context as on the small lattice.

The result is an initialisation to be optimised further (e.g. Heisenberg L = 20 → 40, or 4×4 → 6×6
with 2D position tables), not an exact map. NetKet has no such utility.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

_MODES = ("interpolate", "prefix")


def _interpolate_rows(small: np.ndarray, n_large: int) -> np.ndarray:
    n_small = small.shape[0]
    if n_small == 1:
        return np.repeat(small, n_large, axis=0)
    x = np.linspace(0.0, n_small - 1.0, n_large)
    lo = np.floor(x).astype(int).clip(0, n_small - 2)
    frac = (x - lo).reshape((-1,) + (1,) * (small.ndim - 1))
    return (1 - frac) * small[lo] + frac * small[lo + 1]


def transfer_parameters(small: Any, large: Any, mode: str = "interpolate") -> Any:
    """Parameters (or variable dicts) with the structure of `large` (e.g. `model_large.init(...)`) taken
    from `small`, site-indexed first axes carried over by `mode` ("interpolate" or "prefix").

    Raises ValueError when the trees differ in structure, a leaf differs in any axis but the first (then
    the architectures are not the same up to the number of sites), or "prefix" would have to shrink a table.
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    small_leaves, small_def = jax.tree_util.tree_flatten_with_path(small)
    large_leaves, large_def = jax.tree_util.tree_flatten_with_path(large)
    if [p for p, _ in small_leaves] != [p for p, _ in large_leaves]:
        raise ValueError(
            "the two parameter trees differ in structure: the models are not the same architecture "
            f"({small_def} vs {large_def})"
        )
    out = []
    for (path, a), (_, b) in zip(small_leaves, large_leaves):
        a, b = np.asarray(a), np.asarray(b)
        name = jax.tree_util.keystr(path)
        if a.shape == b.shape:
            out.append(a.astype(b.dtype))
        elif a.ndim == b.ndim and a.ndim >= 1 and a.shape[1:] == b.shape[1:]:
            if mode == "interpolate":
                out.append(_interpolate_rows(a, b.shape[0]).astype(b.dtype))
            elif a.shape[0] <= b.shape[0]:
                out.append(np.concatenate([a.astype(b.dtype), b[a.shape[0]:]], axis=0))
            else:
                raise ValueError(f"parameter {name}: mode 'prefix' cannot shrink {a.shape} to {b.shape}")
        else:
            raise ValueError(f"parameter {name} has shape {a.shape} in the small and {b.shape} in the large "
                             "model; only a site-indexed first axis may differ")
    return jax.tree_util.tree_unflatten(large_def, out)
