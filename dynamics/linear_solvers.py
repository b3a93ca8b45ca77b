"""The smooth pseudo-inverse of the quantum geometric tensor from the SVD of its Jacobian, for P > samples.

NetKet's `pinv_smooth` diagonalises the dense QGT S = O†O (P × P for P parameters, O the centred, normalised
Jacobian of the M samples or basis states; M × P, or 2M × P with its real and imaginary rows for real parameters):
O(P³) work, which dominates a TDVP step once P reaches a few thousand. S has rank ≤ M; with the thin SVD
O = U Σ Vᵀ (O(M² P) work) its non-zero eigenpairs are (σ_k², v_k), and the rest of the spectrum is the diagonal
shift δ alone. The same filtered inverse as NetKet's (Medvidovic & Sels, arXiv:2212.11289),

    x = Σ_k v_k f(σ_k² + δ) v_k† b + f(δ) (b − V V† b),   f(λ) = θ(λ/λ_max > rtol) / [λ (1 + (rtol_smooth λ_max/λ)^6)],

is then exact (f(0) = 0: without a shift the complement is dropped, as the dense cut-off drops it). Our own code:
NetKet's solvers see the dense S only. `pinv_smooth` takes this path when the Jacobian has fewer rows than columns
and falls back to NetKet's dense solver otherwise (or for a QGT that is not `QGTJacobianDense`).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import netket as nk
from jax.flatten_util import ravel_pytree


def pinv_smooth(A: Any, b: Any, *, rtol: float = 1e-14, rtol_smooth: float = 1e-14, x0: Any = None
                ) -> tuple[Any, dict]:
    """Solve S x = b with the smooth pseudo-inverse of S (module docstring); the signature of NetKet's solvers."""
    O = getattr(A, "O", None)
    rows = None if O is None else O.reshape(-1, O.shape[-1])
    if rows is None or getattr(A, "mode", None) == "imag" or getattr(A, "scale", None) is not None \
            or rows.shape[0] >= rows.shape[1]:
        return nk.optimizer.solver.pinv_smooth(A, b, rtol=rtol, rtol_smooth=rtol_smooth, x0=x0)
    b_flat, unravel = ravel_pytree(b)
    _, sigma, vh = jnp.linalg.svd(rows, full_matrices=False)
    shift = A.diag_shift
    lam = sigma**2 + shift
    lam_max = jnp.maximum(jnp.max(lam), shift)

    def inverse(value):
        ratio = jnp.abs(value / lam_max)
        keep = ratio > rtol
        safe = jnp.where(keep, value, 1.0)
        return jnp.where(keep, 1.0 / safe / (1.0 + (rtol_smooth / jnp.where(keep, ratio, 1.0)) ** 6), 0.0)

    projected = vh @ b_flat  # S = Vh† Σ² Vh
    x = vh.conj().T @ (inverse(lam) * projected)
    x = x + inverse(jnp.asarray(shift, dtype=lam.dtype)) * (b_flat - vh.conj().T @ projected)
    info = {"eval_max": lam_max, "rank": jnp.sum(lam > rtol * lam_max)}
    return unravel(x.astype(b_flat.dtype)), info

