"""The single-impurity Anderson model (SIAM) with a discrete bath, in the star or the Wilson-chain geometry.

Orbital 0 is the impurity d, orbitals 1 … N_b the bath; modes, Jordan–Wigner order and tokens are those of
`hamiltonians.fermions` (spin-down block first, one 4-valued token 2 n↓ + n↑ per orbital).
"""

from __future__ import annotations

from collections.abc import Sequence

import netket as nk
import numpy as np

from hamiltonians import fermions as fm
from nqs.system import System

GEOMETRIES = ("star", "chain")
STAR = ("eps_d sum_s n_ds + U n_du n_dd + sum_ks eps_k n_ks + sum_ks V_k (d+_s c_ks + h.c.)   (bath orbital k = k, "
        "k = 1..N_b)")
CHAIN = ("eps_d sum_s n_ds + U n_du n_dd + sum_ns e_n n_ns + t_0 sum_s (d+_s c_1s + h.c.) + sum_ns t_n (c+_ns "
         "c_(n+1)s + h.c.)   (chain site n = orbital n, n = 1..N_b; (e_n, t_n) = star_to_chain(eps_k, V_k))")


def _as_bath(eps_k: Sequence[float], V_k: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The bath as two float arrays; ValueError for mismatched lengths, an empty bath or non-finite values."""
    eps, hyb = np.asarray(eps_k, dtype=float).reshape(-1), np.asarray(V_k, dtype=float).reshape(-1)
    if len(eps) != len(hyb):
        raise ValueError(f"eps_k and V_k must have one entry per bath orbital: got {len(eps)} energies and "
                         f"{len(hyb)} hybridisations")
    if len(eps) == 0:
        raise ValueError("the bath needs at least one orbital (eps_k and V_k are empty)")
    for name, values in (("eps_k", eps), ("V_k", hyb)):
        if not np.all(np.isfinite(values)):
            raise ValueError(f"{name} must be finite, got {values.tolist()}")
    return eps, hyb


def _restart_vector(basis: list[np.ndarray], n: int) -> np.ndarray:
    """A unit vector orthogonal to `basis`: the standard basis vector with the largest orthogonal part."""
    q = np.array(basis).T if basis else np.zeros((n, 0))
    rest = np.eye(n) - q @ q.T
    column = rest[:, int(np.argmax(np.linalg.norm(rest, axis=0)))]
    return column / np.linalg.norm(column)


def star_to_chain(eps_k: Sequence[float], V_k: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The exact star → chain (Lanczos/Wilson) map of a discrete bath.

    Tridiagonalises A = diag(ε_k) in the Krylov basis started from |v_0⟩ = Σ_k V_k |k⟩/‖V‖ (Lanczos with full
    re-orthogonalisation): e_n = ⟨v_n|A|v_n⟩, t_{n+1} = ⟨v_{n+1}|A|v_n⟩, and t_0 = ‖V‖ = (Σ_k V_k²)^{1/2} couples the
    impurity to chain site 1 (|v_0⟩). The map is a one-body unitary of the bath, so the hybridisation is the same
    continued fraction,

        Δ(z) = Σ_k V_k²/(z − ε_k) = t_0²/(z − e_0 − t_1²/(z − e_1 − …)),

    and the many-body spectrum and impurity Green's function are identical (Wilson, Rev. Mod. Phys. 47, 773 (1975);
    Bulla, Costi, Pruschke, Rev. Mod. Phys. 80, 395 (2008) §II). When the Krylov space closes early (degenerate or
    decoupled levels) the chain continues with a new orthogonal vector and a zero hopping, so the map stays a full
    unitary of the N_b bath orbitals.

    Returns:
        (e_n, t_n): N_b chain energies and N_b hoppings, t_n[0] = t_0 (impurity–site 1) and t_n[n] between chain
        sites n and n + 1 (all ≥ 0).
    """
    eps, hyb = _as_bath(eps_k, V_k)
    n_bath = len(eps)
    norm = float(np.linalg.norm(hyb))
    scale = max(norm, float(np.max(np.abs(eps))), 1.0)
    v = hyb / norm if norm > 1e-14 * scale else _restart_vector([], n_bath)
    basis, energies, hoppings = [v], [], [norm]
    for n in range(n_bath):
        w = eps * basis[n]
        energies.append(float(basis[n] @ w))
        if n == n_bath - 1:
            break
        q = np.array(basis).T
        w = w - q @ (q.T @ w)
        w = w - q @ (q.T @ w)  # twice is enough (Kahan–Parlett)
        beta = float(np.linalg.norm(w))
        if beta > 1e-12 * scale:
            basis.append(w / beta)
            hoppings.append(beta)
        else:
            basis.append(_restart_vector(basis, n_bath))
            hoppings.append(0.0)
    return np.asarray(energies), np.asarray(hoppings)


def _bath_terms(L: int, geometry: str, eps: np.ndarray, hyb: np.ndarray) -> list[fm.FermionTerm]:
    """The one-body bath terms (levels and hybridisation) of `geometry`."""
    if geometry == "star":
        energies, links = eps, [(0, k + 1, v) for k, v in enumerate(hyb)]
    else:
        energies, hoppings = star_to_chain(eps, hyb)
        links = [(n, n + 1, t) for n, t in enumerate(hoppings)]
    terms: list[fm.FermionTerm] = []
    for spin in (fm.UP, fm.DOWN):
        for k, e in enumerate(energies):
            terms += fm.number(L, k + 1, spin, float(e))
        for i, j, amplitude in links:
            terms += fm.hopping(L, i, j, float(amplitude), spin)
    return terms


def anderson_impurity(
    *,
    eps_d: float,
    U: float,
    eps_k: Sequence[float],
    V_k: Sequence[float],
    geometry: str = "star",
    n_per_spin: tuple[int, int] | None = None,
) -> System:
    """The single-impurity Anderson model (Anderson, Phys. Rev. 124, 41 (1961)) with N_b = len(eps_k) bath orbitals:

        star:   H = Σ_σ ε_d n_dσ + U n_d↑ n_d↓ + Σ_kσ ε_k n_kσ + Σ_kσ V_k (d†_σ c_kσ + h.c.)
        chain:  H = Σ_σ ε_d n_dσ + U n_d↑ n_d↓ + Σ_nσ e_n n_nσ + t_0 Σ_σ (d†_σ c_1σ + h.c.)
                    + Σ_nσ t_n (c†_nσ c_{n+1,σ} + h.c.),

    the chain being the exact Lanczos (Wilson) map of the star bath, `star_to_chain`: both geometries have the same
    spectrum and impurity Green's function G_d(z)⁻¹ = z − ε_d − Δ(z) − Σ(z), Δ(z) = Σ_k V_k²/(z − ε_k).
    Particle–hole symmetry: ε_d = −U/2, {ε_k} symmetric with equal V on ±ε pairs.

    Orbital 0 is the impurity, orbitals 1 … N_b the bath (star levels in the given order, or chain sites from the
    impurity outwards). `n_per_spin` = (N↑, N↓) restricts to that sector (a `MultiU1Constraint` on the orbital tokens);
    None keeps the whole Fock space (no constraint), as the impurity Green's functions of `nqs.green` need.
    Observables: ``double_occupancy`` ⟨n_d↑ n_d↓⟩ and ``impurity_occupation`` ⟨n_d↑ + n_d↓⟩.

    Raises:
        ValueError: mismatched or empty eps_k/V_k, non-finite parameters, unknown geometry, N_σ out of range.
    """
    if geometry not in GEOMETRIES:
        raise ValueError(f"unknown geometry {geometry!r}; choose one of {GEOMETRIES}")
    for name, value in (("eps_d", eps_d), ("U", U)):
        if not np.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value}")
    eps, hyb = _as_bath(eps_k, V_k)
    L = len(eps) + 1
    constraint = None if n_per_spin is None else fm.spin_sector(L, *n_per_spin)
    one_body = fm.number(L, 0, fm.UP, eps_d) + fm.number(L, 0, fm.DOWN, eps_d) + _bath_terms(L, geometry, eps, hyb)
    terms = one_body + fm.double_occupancy(L, 0, U)
    observables = {"double_occupancy": fm.double_occupancy(L, 0),
                   "impurity_occupation": fm.number(L, 0, fm.UP) + fm.number(L, 0, fm.DOWN)}
    hilbert = fm.spinful_hilbert(L)

    def qutip_factory():
        return {"H": fm.to_qutip(2 * L, terms), "c_ops": [],
                "observables": {k: fm.to_qutip(2 * L, v) for k, v in observables.items()}}

    edges = [(0, k) for k in range(1, L)] if geometry == "star" else [(n, n + 1) for n in range(L - 1)]
    return System(
        builder="hamiltonians.anderson_impurity",
        hilbert=hilbert,
        hamiltonian=fm.to_netket(hilbert, terms),
        graph=nk.graph.Graph(edges=edges),
        constraint=constraint,
        observables={k: fm.to_netket(hilbert, v) for k, v in observables.items()},
        conventions=fm.conventions(None, geometry=geometry, hamiltonian=STAR if geometry == "star" else CHAIN,
                                   orbitals="orbital 0 = impurity d, orbitals 1..N_b = bath",
                                   units="energy units of eps_d, U, eps_k, V_k"),
        params={"eps_d": float(eps_d), "U": float(U), "eps_k": eps.tolist(), "V_k": hyb.tolist(),
                "geometry": geometry, "n_per_spin": None if n_per_spin is None else [int(n) for n in n_per_spin]},
        qutip_factory=qutip_factory,
        tokens=fm.orbital_tokens(L),
    )
