"""Ground-state energies without diagonalisation: the Bethe ansatz for the Heisenberg chain (any even length), the
Lieb–Wu energy of the half-filled Hubbard chain, and published exact energies of clusters beyond exact
diagonalisation here."""

from __future__ import annotations

import numpy as np
from scipy import integrate, special


def _bethe_residual_jacobian(lam: np.ndarray, I: np.ndarray, L: int, pbc: bool) -> tuple[np.ndarray, np.ndarray]:
    """Residual F(λ) of the logarithmic Bethe equations (θ(x) = 2 arctan x) and its Jacobian ∂F_j/∂λ_k."""
    diff = lam[:, None] - lam[None, :]
    k_diff = 2 / (1 + diff**2)  # θ'(λ_j − λ_k); the k = j diagonal is removed below
    np.fill_diagonal(k_diff, 0.0)
    theta_diff = 2 * np.arctan(diff)  # zero on the diagonal
    if pbc:  # F_j = L θ(2λ_j) − 2π I_j − Σ_{k≠j} θ(λ_j − λ_k)
        F = 2 * L * np.arctan(2 * lam) - 2 * np.pi * I - theta_diff.sum(1)
        jac = k_diff.copy()
        np.fill_diagonal(jac, 4 * L / (1 + 4 * lam**2) - k_diff.sum(1))
        return F, jac
    # F_j = 2L θ(2λ_j) − 2π I_j − Σ_{k≠j} [θ(λ_j − λ_k) + θ(λ_j + λ_k)]
    plus = lam[:, None] + lam[None, :]
    theta_plus = 2 * np.arctan(plus)
    k_plus = 2 / (1 + plus**2)
    np.fill_diagonal(theta_plus, 0.0)
    np.fill_diagonal(k_plus, 0.0)
    F = 4 * L * np.arctan(2 * lam) - 2 * np.pi * I - theta_diff.sum(1) - theta_plus.sum(1)
    jac = k_diff - k_plus
    np.fill_diagonal(jac, 8 * L / (1 + 4 * lam**2) - k_diff.sum(1) - k_plus.sum(1))
    return F, jac


def bethe_ground_state_energy(L: int, *, pbc: bool = True, J: float = 1.0, units: str = "pauli") -> float:
    """Exact ground-state energy of the spin-1/2 Heisenberg antiferromagnetic chain from the Bethe ansatz.

        H = J Σ_<ij> (X_i X_j + Y_i Y_j + Z_i Z_j)   (Pauli units, the convention of `hamiltonians.heisenberg`)

    with J > 0, even L ≥ 2, on the ring (``pbc=True``, L bonds) or the open chain with free ends (L − 1
    bonds). ``units="spin"`` returns the energy of J Σ_<ij> S_i·S_j, 1/4 of the Pauli one. The ground
    state is the singlet in the S^z = 0 sector: M = L/2 flipped spins with real rapidities λ_j. With
    θ(x) = 2 arctan x, the logarithmic Bethe equations are

        periodic (Bethe, Z. Phys. 71, 205 (1931)):
            L θ(2λ_j) = 2π I_j + Σ_{k≠j} θ(λ_j − λ_k),                        I_j = −(M−1)/2, ..., (M−1)/2
        open (Alcaraz, Barber, Batchelor, Baxter, Quispel, J. Phys. A 20, 6397 (1987)):
            2L θ(2λ_j) = 2π I_j + Σ_{k≠j} [θ(λ_j − λ_k) + θ(λ_j + λ_k)],     λ_j > 0, I_j = 1, ..., M

    and each magnon lowers the ferromagnetic energy J N_bonds/4 by 2J/(1 + 4λ_j²):

        E = J (N_bonds/4 − Σ_j 2/(1 + 4λ_j²))   (S·S units),   N_bonds = L (periodic) or L − 1 (open).

    The equations are solved by Newton's method with backtracking, started from the thermodynamic
    counting function z(λ) = arctan(sinh πλ)/(2π) (root density ρ(λ) = 1/(2 cosh πλ)):
    λ_j = arsinh(tan(2π I_j/L))/π (periodic) or arsinh(tan(π I_j/(L + 1)))/π (open). It converges
    quadratically, to max_j |F_j| < 1e-13 L (F_j: left minus right side) or a Newton step below 1e-12, in
    4–5 iterations for any L (dense M × M Jacobian).

    Thermodynamic limit (Hulthén, Ark. Mat. Astron. Fys. 26A, 1 (1938)): E/L → J (1/4 − ln 2) ≈ −0.4431 J
    in S·S units, J (1 − 4 ln 2) ≈ −1.7726 J in Pauli units; the periodic chain approaches it from below
    as −J π²/(12 L²) (S·S units, up to logarithmic corrections), the open chain from above with an O(1/L)
    surface term.

    L = 2 periodic counts the bond twice (the ring 1–2–1, E = −6J in Pauli units), whereas
    `hamiltonians.heisenberg(2, pbc=True)` has a single bond (−3J).

    Raises ValueError for odd L, L < 2, J ≤ 0 or unknown units; RuntimeError if Newton does not converge.
    """
    if isinstance(L, bool) or not isinstance(L, (int, np.integer)) or L < 2 or L % 2:
        raise ValueError(f"the Bethe-ansatz ground state needs an even integer chain length L >= 2, got {L!r}")
    if not J > 0:
        raise ValueError(f"J must be > 0 (antiferromagnet), got {J!r}")
    if units not in ("spin", "pauli"):
        raise ValueError(f"units must be 'spin' or 'pauli', got {units!r}")
    L = int(L)
    M = L // 2
    if pbc:
        I = np.arange(M) - (M - 1) / 2
        lam = np.arcsinh(np.tan(2 * np.pi * I / L)) / np.pi
    else:
        I = np.arange(1, M + 1, dtype=float)
        lam = np.arcsinh(np.tan(np.pi * I / (L + 1))) / np.pi
    F, jac = _bethe_residual_jacobian(lam, I, L, pbc)
    norm = np.max(np.abs(F))
    for _ in range(100):
        step = np.linalg.solve(jac, -F)
        for _ in range(40):  # backtrack until the residual decreases (and open-chain roots stay positive)
            trial = lam + step
            if pbc or np.all(trial > 0):
                F_new, jac_new = _bethe_residual_jacobian(trial, I, L, pbc)
                norm_new = np.max(np.abs(F_new))
                if norm_new < norm or np.max(np.abs(step)) < 1e-12:
                    break
            step = step / 2
        else:
            raise RuntimeError(f"Bethe equations (L={L}, pbc={pbc}): line search failed at residual {norm:.2e}")
        lam, F, jac, norm = trial, F_new, jac_new, norm_new
        if np.max(np.abs(step)) < 1e-12 * max(1.0, float(np.max(np.abs(lam)))) or norm < 1e-13 * L:
            break
    else:
        raise RuntimeError(f"Bethe equations (L={L}, pbc={pbc}) did not converge: residual {norm:.2e}")
    if norm > 1e-9 * L:
        raise RuntimeError(f"Bethe equations (L={L}, pbc={pbc}) converged to a large residual {norm:.2e}")
    bonds = L if pbc else L - 1
    energy = J * (bonds / 4 - np.sum(2 / (1 + 4 * lam**2)))
    return float(4 * energy if units == "pauli" else energy)


# Published exact energies per site of the square-lattice Heisenberg J1-J2 model (J1 = 1, S·S units) at
# sizes beyond exact diagonalisation here; key (L, pbc, J2). Source: Lanczos ED collected by varbench
# (Wu et al., Science 386, 296 (2024); notes `ansatze.md` §8.2–8.3).
_PUBLISHED_SQUARE = {
    (6, True, 0.0): (-97.7575896 / 144, "ED, varbench (-97.7575896 / 144, S·S units)"),
    (6, False, 0.0): (-86.9071442 / 144, "ED, varbench (-86.9071442 / 144, S·S units)"),
    (6, True, 0.5): (-0.5038097, "ED, varbench (S·S units)"),
}


def reference_ground_state_energy(
    lattice: str, L: int, *, pbc: bool = True, J: float = 1.0, J2: float = 0.0, units: str = "pauli"
) -> tuple[float, str] | None:
    """A ground-state energy of `hamiltonians.heisenberg(L, lattice=..., J=J, J2=J2, pbc=pbc)` that needs no
    diagonalisation here, with its source: the Bethe ansatz for chains with J2 = 0 (any even L), published
    ED values for a few square lattices (6×6). None when neither applies."""
    if units not in ("spin", "pauli"):
        raise ValueError(f"units must be 'spin' or 'pauli', got {units!r}")
    scale = 4.0 if units == "pauli" else 1.0
    if lattice == "chain" and J2 == 0.0 and J > 0 and L % 2 == 0:
        energy = bethe_ground_state_energy(L, pbc=pbc, J=J, units=units)
        return energy, "Bethe ansatz (nqs.exact.bethe_ground_state_energy)"
    if lattice == "square" and J > 0:
        entry = _PUBLISHED_SQUARE.get((int(L), bool(pbc), float(J2) / J))
        if entry is not None:
            per_site, source = entry
            return scale * J * per_site * L * L, source
    return None


def lieb_wu_energy(U: float, t: float = 1.0) -> float:
    """Ground-state energy per site of the half-filled 1D Hubbard model in the thermodynamic limit (Lieb & Wu,
    PRL 20, 1445 (1968)),

        E/L = −4t ∫_0^∞ dω J_0(ω) J_1(ω) / {ω [1 + exp(ωU/(2t))]},

    by quadrature over periods of π (the integrand decays like e^{−ωU/2t}); U = 0 is the closed form −4t/π.
    Large U approaches the Heisenberg limit −4 ln2 · t²/U."""
    if not (np.isfinite(U) and np.isfinite(t)) or U < 0 or t <= 0:
        raise ValueError(f"Lieb-Wu needs finite U >= 0 and t > 0, got U={U}, t={t}")
    if U == 0:
        return -4.0 * t / np.pi

    def integrand(w):
        return special.j0(w) * special.j1(w) / (w * (1.0 + np.exp(min(w * U / (2.0 * t), 700.0))))

    total, a = 0.0, 0.0
    while a * U / (2.0 * t) < 80.0:  # the remaining tail is below e^{-80}
        total += integrate.quad(integrand, a, a + np.pi, limit=200)[0]
        a += np.pi
    return float(-4.0 * t * total)


# Published ground-state energies of the half-filled Hubbard model beyond ED here; key (shape, boundary, U/t),
# value E/site in units of t. Source: notes `models.md` B.2 (4×4 PBC, U = 4t: E0 ≈ −13.622 t, exact diagonalisation
# in the literature).
_PUBLISHED_HUBBARD = {
    ((4, 4), "pbc", 4.0): (-13.622 / 16, "exact diagonalisation, literature (notes models.md B.2: E0 = -13.622 t)"),
}


def hubbard_reference_energy(shape: int | tuple[int, int], U: float, *, t: float = 1.0,
                             boundary: str = "pbc") -> tuple[float, str] | None:
    """A reference ground-state energy (total, units of t) of `hamiltonians.hubbard(shape, t=t, U=U, boundary=...)`
    at half filling that needs no diagonalisation here, with its source: the Lieb–Wu thermodynamic limit × L for
    chains (not the finite-L energy: the difference is the finite-size correction a run reports), published values
    for a few clusters. None when neither applies."""
    if isinstance(shape, (int, np.integer)):
        return lieb_wu_energy(U, t) * int(shape), "Lieb-Wu thermodynamic limit x L (nqs.exact.lieb_wu_energy)"
    entry = _PUBLISHED_HUBBARD.get((tuple(int(s) for s in shape), boundary, float(U) / t))
    if entry is None:
        return None
    per_site, source = entry
    return t * per_site * int(np.prod(shape)), source
