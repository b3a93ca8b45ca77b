"""Regularised solutions of the POVM-TDVP equation S θ̇ = F (Reh, Schmitt, Gärttner, PRL 127, 230501 (2021)).

With the centred log-derivatives Oc (N_s × n_params, rows O(a_s) − ⟨O⟩) and the centred local Lindbladian values
c = L_loc − ⟨L_loc⟩, S = OcᵀOc/N_s and F = Oc c/N_s (sampled; weighted by P in full sums). The solvers:

* "pinv_smooth": NetKet's eigendecomposition pseudo-inverse, x = Σ_k v_k ρ_k/λ_k · [1 + (c λ_max/λ_k)⁶]⁻¹ over the
  eigenvalues λ_k ≥ rtol λ_max of S, ρ = Vᵀ F; with fewer samples than parameters the same pseudo-inverse from the
  sample-space matrix (`_smooth_pinv_solve`);
* "shift": Cholesky solve of S + ε1;
* "snr": the pseudo-inverse times the signal-to-noise filter of Schmitt & Heyl (`snr_solve`), as jVMC applies it;
* "cv": the smooth cut-off chosen by two-fold cross-validation (`cv_solve`).

"snr" and "cv" act on sampled states only; full sums have no sample noise and use "pinv_smooth".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import netket as nk

if TYPE_CHECKING:
    from dynamics.povm.tdvp import PovmTDVPSettings

TDVP_SOLVERS = ("pinv_smooth", "shift", "snr", "cv")


def snr_solve(Oc: jax.Array, centred: jax.Array, *, rtol: float, rtol_smooth: float, snr_tol: float) -> jax.Array:
    """θ̇ = Σ_k v_k ρ_k/λ_k · [1 + (rtol_smooth λ_max/λ_k)⁶]⁻¹ [1 + (snr_tol/SNR_k)⁶]⁻¹ (λ_k ≥ rtol λ_max), the
    signal-to-noise filter of Schmitt & Heyl, PRL 125, 100503 (2020), as used for POVM-TDVP by Reh et al. (jVMC).

    S = OcᵀOc/N_s = V Λ Vᵀ; ρ_k = (Vᵀ F)_k = mean_s ρ_k(s) with ρ_k(s) = (Oc(s)·v_k) · centred(s) for the N_s samples
    s (rows of the centred Jacobian `Oc`, centred local values `centred`); SNR_k = |ρ_k| √N_s / std_s ρ_k(s).
    A mode whose force the samples cannot resolve is damped. Our code: NetKet's `TDVPSchmitt` is a driver for
    wave functions (complex S, F from E_loc), not a solver for a real POVM distribution.
    """
    n = Oc.shape[0]

    def snr_damping(modes, rho):
        per_sample = math.sqrt(n) * modes * centred[:, None]  # (Oc(s)·v_k) centred(s), modes = A V = Oc V/√n
        spread = jnp.std(per_sample, axis=0)
        snr = jnp.where(spread > 0, jnp.abs(rho) * math.sqrt(n) / jnp.where(spread > 0, spread, 1.0), jnp.inf)
        return 1.0 / (1.0 + (snr_tol / snr) ** 6)

    return _smooth_pinv_solve(Oc / math.sqrt(n), centred / math.sqrt(n), rtol, jnp.asarray([rtol_smooth]),
                              snr_damping)[0]


def _smooth_pinv_solve(A: jax.Array, b: jax.Array, rtol: float, cutoffs: jax.Array,
                       extra_damping: Callable[[jax.Array, jax.Array], jax.Array] | None = None) -> jax.Array:
    """NetKet's `pinv_smooth` solution of S x = F, S = AᵀA, F = Aᵀb, for several smooth cut-offs at once, from one
    eigendecomposition: rows x_c = Σ_k v_k ρ_k/λ_k · [1 + (c λ_max/λ_k)⁶]⁻¹ · d_k, ρ = Vᵀ F, λ_k ≥ rtol λ_max, with the
    extra per-mode damping d = extra_damping(A V, ρ) (1 without it).

    With fewer rows than columns (samples < parameters) the spectrum comes from the (rows × rows) matrix AAᵀ = U Λ Uᵀ
    instead (the minSR / neural-tangent-kernel form of Chen & Heyl, Nat. Phys. 20, 1476 (2024)): S and AAᵀ share
    their non-zero eigenvalues, v_k = Aᵀu_k/√λ_k, A v_k = √λ_k u_k and ρ_k = √λ_k u_kᵀb, so x = Aᵀ U diag(d_k/λ_k) Uᵀ b
    is the same pseudo-inverse at O(rows³) instead of O(columns³) cost.
    """
    dual = A.shape[0] < A.shape[1]
    if dual:
        lam, U = jnp.linalg.eigh(A @ A.T)
        root = jnp.sqrt(jnp.maximum(lam, 0.0))
        projection = U.T @ b
        rho, modes = root * projection, U * root[None, :]
    else:
        lam, V = jnp.linalg.eigh(A.T @ A)
        rho = V.T @ (A.T @ b)
        modes = A @ V if extra_damping is not None else None
    keep = lam > rtol * lam[-1]
    safe = jnp.where(keep, lam, 1.0)
    damping = 1.0 / (1.0 + (cutoffs[:, None] * lam[-1] / safe[None, :]) ** 6)
    if extra_damping is not None:
        damping = damping * extra_damping(modes, rho)
    if dual:
        return (jnp.where(keep, damping * projection / safe, 0.0) @ U.T) @ A
    return (jnp.where(keep, damping * rho / safe, 0.0)) @ V.T


def cv_solve(Oc: jax.Array, centred: jax.Array, *, rtol: float,
             cutoffs: tuple[float, ...]) -> tuple[jax.Array, jax.Array]:
    """θ̇ with the smooth cut-off chosen by two-fold cross-validation (jVMC's `crossValidation` idea).

    The samples are split into halves A and B. For every cut-off c the smooth pseudo-inverse θ̇_c is fitted on A,
    and the relative residual mean_B (L_loc − O·θ̇_c)²/mean_B L_loc² (each half centred with its own means) is scored
    on B. The cut-off with the smallest held-out residual then solves S θ̇ = F on all samples. A cut-off small enough
    to fit the sample noise scores badly on B, and one that also cuts needed directions does too.
    Returns (θ̇, chosen cut-off).

    Limit: the residual is a one-step criterion. Large θ̇ components along poorly determined directions are not
    penalised by the linear residual, so the smallest cut-off can win every evaluation and still lose the state a few
    steps later where a larger fixed cut-off does not (observed on the 3×3 dissipative XYZ model; docs).
    """
    half = Oc.shape[0] // 2
    grid = jnp.asarray(cutoffs)

    def centre(o, c):
        """Rows scaled so that S = AᵀA and F = Aᵀb are the sample covariances."""
        n = math.sqrt(o.shape[0])
        return (o - o.mean(0)) / n, (c - c.mean()) / n

    candidates = _smooth_pinv_solve(*centre(Oc[:half], centred[:half]), rtol, grid)  # (n_cutoffs, n_params)
    o_b, c_b = centre(Oc[half:], centred[half:])
    scores = jnp.sum((c_b[:, None] - o_b @ candidates.T) ** 2, axis=0) / jnp.maximum(jnp.sum(c_b**2), 1e-300)
    best = grid[jnp.argmin(scores)]
    return _smooth_pinv_solve(*centre(Oc, centred), rtol, best[None])[0], best


def solve_tdvp(S: jax.Array, F: jax.Array, Oc: jax.Array, centred: jax.Array, settings: PovmTDVPSettings,
               full_sum: bool) -> tuple[jax.Array, jax.Array]:
    """(θ̇, the smooth cut-off used; NaN for "shift") by `settings.solver` (module docstring)."""
    cutoff = jnp.asarray(settings.pinv_rtol_smooth)
    if settings.solver == "snr" and not full_sum:  # exact sums have no noise to filter
        return snr_solve(Oc, centred, rtol=settings.pinv_rtol, rtol_smooth=settings.pinv_rtol_smooth,
                         snr_tol=settings.snr_tol), cutoff
    if settings.solver == "cv" and not full_sum:
        return cv_solve(Oc, centred, rtol=settings.pinv_rtol, cutoffs=settings.cv_cutoffs)
    if settings.solver in ("pinv_smooth", "snr", "cv"):
        if not full_sum and Oc.shape[0] < Oc.shape[1]:  # fewer samples than parameters: minSR form
            n = math.sqrt(Oc.shape[0])
            return _smooth_pinv_solve(Oc / n, centred / n, settings.pinv_rtol, cutoff[None])[0], cutoff
        x, _ = nk.optimizer.solver.pinv_smooth(S, F, rtol=settings.pinv_rtol, rtol_smooth=settings.pinv_rtol_smooth)
        return x, cutoff
    factor = jax.scipy.linalg.cho_factor(S + settings.diag_shift * jnp.eye(S.shape[0]))
    return jax.scipy.linalg.cho_solve(factor, F), jnp.asarray(jnp.nan)
