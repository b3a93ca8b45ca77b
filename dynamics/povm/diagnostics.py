"""Observables as POVM averages, physicality diagnostics and the exact references of the POVM methods.

* Observables: ⟨O⟩ = Σ_a P(a) Q_O(a), Q_O(a) = Tr[O N^(a)] (`nqs.povm.observable_table`), for the per-site averages
  ⟨σˣ⟩, ⟨σʸ⟩, ⟨σᶻ⟩ (``sigma_x``, ``sigma_y``, ``sigma_z``), the nearest-neighbour average ⟨σᶻσᶻ⟩ (``zz_nn``, bonds
  of `system.graph`) and every Hermitian `LocalOperator` observable of the system.
* Purity: Tr ρ² = Σ_{a,b} P(a) P(b) Π_k T⁻¹_{a_k b_k}, by exact contraction, or from pairs of independent samples
  (its variance grows exponentially with N).
* Reduced density matrices ρ_S = Σ_{a_S} P_S(a_S) N^(a_S) rebuilt from the 1-site and bond marginals of P
  (empirical marginals when sampled): their smallest eigenvalues flag an unphysical P (dual-frame operators are
  indefinite, so a normalised P need not be a state).
* Exact side: QuTiP `mesolve` from ρ(P_θ(0)) (or a given ρ₀), the same quantities by Tr ρ O on reduced density
  matrices, a path independent of the POVM.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from dynamics.povm.context import PovmContext
from nqs import exact
from nqs.exact import MAX_OPEN_SITES
from nqs.povm import POVM, density_matrix, observable_table
from nqs.system import System

PAULI = {
    "X": np.array([[0, 1], [1, 0]], dtype=complex),
    "Y": np.array([[0, -1j], [1j, 0]], dtype=complex),
    "Z": np.array([[1, 0], [0, -1]], dtype=complex),
}


@dataclasses.dataclass(frozen=True)
class PovmObservable:
    """⟨O⟩ = c + Σ_t E_P[Q_t(a_{S_t})] with the tables Q_t = Tr[O_t N^(a_{S_t})] of the local terms O_t."""

    name: str
    constant: float
    terms: tuple[tuple[np.ndarray, np.ndarray], ...]

    def values(self, a: np.ndarray) -> np.ndarray:
        """The estimator c + Σ_t Q_t(a_{S_t}) on each outcome string of `a` (B, N)."""
        out = np.full(len(a), self.constant, dtype=float)
        for sites, table in self.terms:
            index = a[:, sites] @ (4 ** np.arange(len(sites) - 1, -1, -1))
            out += table[index]
        return out


def lattice_bonds(system: System) -> list[tuple[int, int]]:
    """The bonds (i < j) of the system's graph, each once (an open chain without a graph)."""
    if system.graph is not None:
        return sorted({(min(i, j), max(i, j)) for i, j in system.graph.edges() if i != j})
    return [(i, i + 1) for i in range(system.n_sites - 1)]


def povm_observables(system: System, povm: POVM) -> tuple[list[PovmObservable], dict[str, np.ndarray | None]]:
    """The POVM observables and, per name, the dense operator for the exact side (None: built from ρ_S)."""
    n = system.n_sites
    obs = []
    for p in "XYZ":
        q = observable_table(PAULI[p], povm) / n
        obs.append(PovmObservable(f"sigma_{p.lower()}", 0.0, tuple((np.array([i]), q) for i in range(n))))
    bonds = lattice_bonds(system)
    if bonds:
        q = observable_table(np.kron(PAULI["Z"], PAULI["Z"]), povm) / len(bonds)
        obs.append(PovmObservable("zz_nn", 0.0, tuple((np.array(b), q) for b in bonds)))
    dense: dict[str, np.ndarray | None] = {o.name: None for o in obs}
    qutip_obs = system.to_qutip()["observables"] if system.observables and n <= MAX_OPEN_SITES else {}
    for name, op in system.observables.items():
        if name in dense or not hasattr(op, "acting_on"):
            continue
        try:
            terms = tuple(
                (np.asarray(s, dtype=int), observable_table(m.toarray() if hasattr(m, "toarray") else np.asarray(m),
                                                            povm))
                for s, m in zip(op.acting_on, op.operators)
            )
        except ValueError:  # a non-Hermitian observable has complex Q: not recorded
            continue
        obs.append(PovmObservable(name, float(np.real(complex(op.constant))), terms))
        dense[name] = qutip_obs[name].full() if name in qutip_obs else None
    return obs, dense


def marginal(a: np.ndarray, weights: np.ndarray, sites) -> np.ndarray:
    """P_S(a_S) = Σ_a weights(a) δ(a_S) on the sites S (weights: P, or 1/B for B samples)."""
    index = a[:, list(sites)] @ (4 ** np.arange(len(sites) - 1, -1, -1))
    return np.bincount(index, weights=weights, minlength=4 ** len(sites))


def reduced_min_eigenvalues(a: np.ndarray, weights: np.ndarray, povm: POVM, bonds) -> dict[str, float]:
    """Smallest eigenvalue of the 1-site and bond reduced ρ_S = Σ P_S(a_S) N^(a_S) rebuilt from marginals."""
    n = a.shape[1]
    one = min(np.linalg.eigvalsh(density_matrix(marginal(a, weights, [i]), povm, 1)).min() for i in range(n))
    out = {"min_eig_1site": float(one)}
    if bonds:
        two = min(np.linalg.eigvalsh(density_matrix(marginal(a, weights, b), povm, 2)).min() for b in bonds)
        out["min_eig_2site"] = float(two)
    return out


def purity_full(P: np.ndarray, povm: POVM, n: int) -> float:
    """Tr ρ² = Σ_{a,b} P(a) P(b) Π_k T⁻¹_{a_k b_k} (exact contraction)."""
    t = np.asarray(P, dtype=float).reshape((4,) * n)
    for k in range(n):
        t = np.moveaxis(np.tensordot(povm.T_inv, t, axes=([1], [k])), 0, k)
    return float(np.sum(np.asarray(P).reshape((4,) * n) * t))


def purity_sampled(a: np.ndarray, povm: POVM) -> tuple[float, float]:
    """Tr ρ² from independent pairs (first half, second half) of exact samples: mean and standard error."""
    half = len(a) // 2
    values = np.prod(povm.T_inv[a[:half], a[half : 2 * half]], axis=1)
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(max(half, 1)))


def partial_trace(rho: np.ndarray, keep, n: int) -> np.ndarray:
    """The reduced density matrix of the qubits `keep` (in that order) of an n-qubit ρ."""
    t = rho.reshape((2,) * (2 * n))
    letters = "abcdefghijklmnopqrstuvwxyz"
    ket = list(letters[:n])
    bra = [letters[n + i] if i in keep else ket[i] for i in range(n)]
    out = "".join(ket[i] for i in keep) + "".join(bra[i] for i in keep)
    k = len(keep)
    return np.einsum("".join(ket) + "".join(bra) + "->" + out, t).reshape(2**k, 2**k)


def exact_row(rho: np.ndarray, obs: list[PovmObservable], dense: Mapping[str, Any], bonds, n: int) -> dict[str, float]:
    """The recorded quantities of the exact ρ, by Tr[ρ O] on reduced density matrices (independent of the POVM)."""
    singles = [partial_trace(rho, [i], n) for i in range(n)]
    pairs = [partial_trace(rho, list(b), n) for b in bonds]
    row = {f"sigma_{p.lower()}": float(np.mean([np.trace(r @ PAULI[p]).real for r in singles])) for p in "XYZ"}
    if pairs:
        zz = np.kron(PAULI["Z"], PAULI["Z"])
        row["zz_nn"] = float(np.mean([np.trace(r @ zz).real for r in pairs]))
    for o in obs:
        if dense.get(o.name) is not None:
            row[o.name] = float(np.trace(rho @ dense[o.name]).real)
    row["purity"] = exact.purity(rho)
    row["min_eig_1site"] = float(min(np.linalg.eigvalsh(r).min() for r in singles))
    if pairs:
        row["min_eig_2site"] = float(min(np.linalg.eigvalsh(r).min() for r in pairs))
    return row


def initial_rho(ctx: PovmContext, params, povm: POVM, rho0: np.ndarray | None) -> np.ndarray | None:
    """ρ(0) of the exact reference: `rho0` (shape-checked), else ρ(P_θ) for N ≤ MAX_OPEN_SITES, else None."""
    n = ctx.n_sites
    if rho0 is not None:
        rho0 = np.asarray(rho0, dtype=complex)
        if rho0.shape != (2**n, 2**n):
            raise ValueError(f"rho0 has shape {rho0.shape}, expected {(2**n, 2**n)}")
        return rho0
    if n > MAX_OPEN_SITES:
        return None
    return density_matrix(np.asarray(jax.jit(ctx.probabilities)(params)), povm, n)


def exact_dynamics(ctx: PovmContext, params, povm: POVM, rho0, times, with_exact: bool) -> list[np.ndarray] | None:
    """The exact ρ(t) on `times` by QuTiP `mesolve` from `initial_rho` (None when off or N > MAX_OPEN_SITES)."""
    if not with_exact or ctx.n_sites > MAX_OPEN_SITES:
        return None
    rho = initial_rho(ctx, params, povm, rho0)
    return exact.mesolve_system(ctx.system, rho, times, store_states=True)["states"]
