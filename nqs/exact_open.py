"""Exact references for open systems (QuTiP): Lindblad evolution, steady states, and distances between states.

Lindblad convention (everywhere in nqs and in QuTiP's `mesolve`): dρ/dt = −i[H, ρ] + Σ_k (L_k ρ L_k† − ½{L_k†L_k, ρ}),
rates folded into L_k = √γ A_k. Density matrices are in NetKet's basis order (site 0 most significant, local index 0
first), which is QuTiP's `tensor` order.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import qutip

from nqs.system import System

MAX_OPEN_SITES = 9  # exact Lindblad references (mesolve, steady state) up to the 3×3 lattice: ρ is 512×512
MESOLVE_OPTIONS = {"atol": 1e-10, "rtol": 1e-8, "nsteps": 100000}


def mesolve_system(
    system: System, rho0: np.ndarray, times: np.ndarray, *, options: dict | None = None, store_states: bool = False
) -> dict[str, Any]:
    """Lindblad evolution of `system` from the density matrix `rho0` with QuTiP `mesolve`.

    Returns {"times", <observable>: array over times, "states": list of matrices (if store_states)}.
    """
    q = system.to_qutip()
    dims = [list(system.hilbert.shape), list(system.hilbert.shape)]
    rho = qutip.Qobj(np.asarray(rho0), dims=dims)
    opts = {**MESOLVE_OPTIONS, "store_states": store_states, **(options or {})}
    res = qutip.mesolve(q["H"], rho, np.asarray(times), c_ops=q["c_ops"], e_ops=q["observables"], options=opts)
    out: dict[str, Any] = {"times": np.asarray(times)}
    out.update({k: np.real(np.asarray(v)) for k, v in res.e_data.items()})
    if store_states:
        out["states"] = [s.full() for s in res.states]
    return out


def steady_state(
    system: System,
    *,
    method: str = "auto",
    solver: str | None = None,
    tol: float = 1e-10,
    t_chunk: float = 4.0,
    t_max: float = 2000.0,
) -> tuple[np.ndarray, dict[str, float]]:
    """Steady state ρ_ss (𝓛ρ_ss = 0) of an open system, and its observables.

    Methods:
        "propagate": long-time evolution ρ ← exp(𝓛 t_chunk) ρ from the maximally mixed state (scipy's
            `expm_multiply` on QuTiP's sparse `liouvillian`) until ‖𝓛ρ‖₂/‖ρ‖₂ < `tol`; RuntimeError if
            that takes longer than `t_max` (no unique steady state, or a very small Liouvillian gap).
        "auto" (default): QuTiP's direct solver up to 4 sites, "propagate" above: QuTiP's direct (SuperLU
            fill-in) and ILU-preconditioned iterative solvers do not finish at N = 8 where propagation does, and
            propagation agrees with them where they do (`docs/benchmarks.md`, "Exact references").
        any other string: passed to `qutip.steadystate(method=..., solver=...)`.
    """
    if not system.is_open:
        raise ValueError("steady_state needs a system with jump operators")
    q = system.to_qutip()
    if method == "auto":
        method = "direct" if system.n_sites <= 4 else "propagate"
    if method == "propagate":
        rho = _steady_state_by_propagation(q["H"], q["c_ops"], tol=tol, t_chunk=t_chunk, t_max=t_max)
    else:
        kwargs = {} if solver is None else {"solver": solver}
        rho = qutip.steadystate(q["H"], q["c_ops"], method=method, **kwargs)
    values = {k: float(qutip.expect(o, rho).real) for k, o in q["observables"].items()}
    return rho.full(), values


def _steady_state_by_propagation(H: qutip.Qobj, c_ops: list, *, tol: float, t_chunk: float, t_max: float) -> qutip.Qobj:
    """ρ(t) = exp(𝓛t) 1/d in chunks of t_chunk until the relative residual ‖𝓛ρ‖/‖ρ‖ < tol (QuTiP's
    column-stacking vectorisation of ρ)."""
    from scipy.sparse.linalg import expm_multiply

    L = qutip.liouvillian(H, c_ops).data.as_scipy().tocsr()
    d = H.shape[0]
    vec = (np.eye(d, dtype=complex) / d).reshape(-1, order="F")
    t, residual = 0.0, np.inf
    while t < t_max:
        vec = expm_multiply(L * t_chunk, vec)
        t += t_chunk
        residual = float(np.linalg.norm(L @ vec) / np.linalg.norm(vec))
        if residual < tol:
            rho = vec.reshape(d, d, order="F")
            rho = 0.5 * (rho + rho.conj().T)
            return qutip.Qobj(rho / np.trace(rho).real, dims=H.dims)
    raise RuntimeError(f"the steady state did not converge by t = {t_max}: residual ‖𝓛ρ‖/‖ρ‖ = {residual:.2e} > {tol}")


def classical_fidelity(P: np.ndarray, Q: np.ndarray) -> float:
    """F(P, Q) = (Σ_a √(P(a) Q(a)))² for two probability distributions (e.g. POVM images)."""
    P, Q = np.asarray(P, dtype=float), np.asarray(Q, dtype=float)
    if P.shape != Q.shape:
        raise ValueError(f"distributions have different shapes {P.shape} and {Q.shape}")
    return float(np.sum(np.sqrt(np.clip(P, 0, None) * np.clip(Q, 0, None))) ** 2)


def trace_distance(rho: np.ndarray, sigma: np.ndarray) -> float:
    """D(ρ, σ) = ½ Tr|ρ − σ| for Hermitian matrices."""
    return float(0.5 * np.sum(np.abs(np.linalg.eigvalsh(np.asarray(rho) - np.asarray(sigma)))))


def purity(rho: np.ndarray) -> float:
    """Tr ρ²."""
    rho = np.asarray(rho)
    return float(np.real(np.einsum("ij,ji->", rho, rho)))
