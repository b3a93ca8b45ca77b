"""Non-interacting (U = 0) references of the auxiliary master equation: Keldysh Green's functions and the exact
steady-state single-particle correlation matrix.

The auxiliary system of the AMEA (Arrigoni, Knap, von der Linden, PRL 110, 086403 (2013); Dorda, Nuss, von der Linden,
Arrigoni, PRB 89, 165105 (2014)) has, per spin, the quadratic Lindbladian

    𝓛ρ = −i[H, ρ] + Σ_ij 2Γ⁽¹⁾_ij (c_j ρ c†_i − ½{c†_i c_j, ρ}) + Σ_ij 2Γ⁽²⁾_ij (c†_i ρ c_j − ½{c_j c†_i, ρ}),
    H = Σ_ij E_ij c†_i c_j,

with E Hermitian and Γ⁽¹⁾ (loss), Γ⁽²⁾ (gain) Hermitian positive semi-definite. At U = 0 it is solved exactly:

    G^R(ω) = [ω − E + iΓ]⁻¹,  Γ = Γ⁽¹⁾ + Γ⁽²⁾,  G^A = (G^R)†,  G^K = 2i G^R (Γ⁽²⁾ − Γ⁽¹⁾) G^A,
    G^< = (G^K − G^R + G^A)/2 = 2i G^R Γ⁽²⁾ G^A,   ⟨c†_i c_j⟩ = −i ∫ dω/2π G^<_ji(ω),

and the correlation matrix C_ij = ⟨c†_i c_j⟩ obeys the linear equation of motion (adjoint Lindbladian applied to
c†_i c_j)

    dC/dt = −(A C + C A†) + 2 Γ⁽²⁾ᵀ,   A = −i Eᵀ + Γᵀ,

whose fixed point is the continuous Lyapunov equation A C + C A† = 2 Γ⁽²⁾ᵀ (`steady_state_correlation`). It has a
unique solution when every eigenvalue of A has a positive real part (every mode is damped).
"""

from __future__ import annotations

import numpy as np
import scipy.integrate
import scipy.linalg


def _hermitian(name: str, matrix, n: int | None, atol: float) -> np.ndarray:
    m = np.asarray(matrix, dtype=complex)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] < 1:
        raise ValueError(f"{name} must be a non-empty square matrix, got shape {m.shape}")
    if n is not None and m.shape[0] != n:
        raise ValueError(f"{name} has shape {m.shape}, E has {(n, n)}: all matrices must have the same size")
    if not np.all(np.isfinite(m)):
        raise ValueError(f"{name} has non-finite entries")
    scale = max(1.0, float(np.abs(m).max()))
    if np.abs(m - m.conj().T).max() > atol * scale:
        raise ValueError(f"{name} must be Hermitian (max |{name} - {name}^dag| = {np.abs(m - m.conj().T).max():.2e})")
    return 0.5 * (m + m.conj().T)


def check_auxiliary_matrices(E, gamma_loss, gamma_gain, *, zero_impurity: bool = False,
                             atol: float = 1e-12) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate the auxiliary-system matrices (E, Γ⁽¹⁾, Γ⁽²⁾) of the Lindbladian in the module docstring.

    E, Γ⁽¹⁾ and Γ⁽²⁾ must be square, of one size, finite and Hermitian; Γ⁽¹⁾ and Γ⁽²⁾ positive semi-definite (smallest
    eigenvalue ≥ −atol·scale); with `zero_impurity`, Γ⁽¹⁾ and Γ⁽²⁾ vanish on row and column 0 (the impurity couples to
    the Markovian environment only through the auxiliary sites, Dorda et al., PRB 89, 165105 (2014)). Returns the
    three matrices as complex arrays, symmetrised; ValueError naming the offending matrix otherwise.
    """
    E = _hermitian("E", E, None, atol)
    n = E.shape[0]
    out = [E]
    for name, gamma in (("gamma_loss", gamma_loss), ("gamma_gain", gamma_gain)):
        g = _hermitian(name, gamma, n, atol)
        scale = max(1.0, float(np.abs(g).max()))
        smallest = float(np.linalg.eigvalsh(g).min())
        if smallest < -atol * scale:
            raise ValueError(f"{name} must be positive semi-definite, its smallest eigenvalue is {smallest:.3e}")
        if zero_impurity and (np.abs(g[0]).max() > atol * scale or np.abs(g[:, 0]).max() > atol * scale):
            raise ValueError(f"{name} must vanish on the impurity row and column (index 0), got row {g[0]}")
        out.append(g)
    return out[0], out[1], out[2]


def retarded_green(omega, E, gamma_loss, gamma_gain) -> np.ndarray:
    """G^R(ω) = [ω − E + i(Γ⁽¹⁾ + Γ⁽²⁾)]⁻¹ (Dorda et al., PRB 89, 165105 (2014)) for real ω (scalar or array):
    shape (..., n, n)."""
    E, g1, g2 = check_auxiliary_matrices(E, gamma_loss, gamma_gain)
    w = np.asarray(omega, dtype=float)[..., None, None]
    return np.linalg.inv(w * np.eye(E.shape[0]) - E + 1j * (g1 + g2))


def keldysh_green(omega, E, gamma_loss, gamma_gain) -> np.ndarray:
    """G^K(ω) = 2i G^R(ω) (Γ⁽²⁾ − Γ⁽¹⁾) G^A(ω), G^A = (G^R)† (Dorda et al., PRB 89, 165105 (2014))."""
    _, g1, g2 = check_auxiliary_matrices(E, gamma_loss, gamma_gain)
    gr = retarded_green(omega, E, gamma_loss, gamma_gain)
    return 2j * gr @ (g2 - g1) @ np.swapaxes(gr.conj(), -1, -2)


def lesser_green(omega, E, gamma_loss, gamma_gain) -> np.ndarray:
    """G^<(ω) = 2i G^R(ω) Γ⁽²⁾ G^A(ω), which equals (G^K − G^R + G^A)/2 since G^R − G^A = −2i G^R (Γ⁽¹⁾ + Γ⁽²⁾) G^A;
    ⟨c†_i c_j⟩ = −i ∫ dω/2π G^<_ji(ω) (Dorda et al., PRB 89, 165105 (2014))."""
    _, _, g2 = check_auxiliary_matrices(E, gamma_loss, gamma_gain)
    gr = retarded_green(omega, E, gamma_loss, gamma_gain)
    return 2j * gr @ g2 @ np.swapaxes(gr.conj(), -1, -2)


def steady_state_correlation(E, gamma_loss, gamma_gain) -> np.ndarray:
    """The exact U = 0 steady-state correlation matrix C_ij = ⟨c†_i c_j⟩ (per spin) from the Lyapunov equation

        A C + C A† = 2 Γ⁽²⁾ᵀ,   A = −i Eᵀ + (Γ⁽¹⁾ + Γ⁽²⁾)ᵀ          (module docstring),

    solved by `scipy.linalg.solve_continuous_lyapunov`. A single site gives n = Γ⁽²⁾/(Γ⁽¹⁾ + Γ⁽²⁾). ValueError when a
    mode is undamped (an eigenvalue of A with real part ≤ 1e-12: no unique steady state).
    """
    E, g1, g2 = check_auxiliary_matrices(E, gamma_loss, gamma_gain)
    A = -1j * E.T + (g1 + g2).T
    slowest = float(np.linalg.eigvals(A).real.min())
    if slowest <= 1e-12:
        raise ValueError(f"a mode is not damped (smallest decay rate {slowest:.2e}): no unique steady state")
    C = scipy.linalg.solve_continuous_lyapunov(A, 2 * g2.T)
    return 0.5 * (C + C.conj().T)


def correlation_from_green(E, gamma_loss, gamma_gain, *, epsabs: float = 1e-12) -> np.ndarray:
    """C_ij = ⟨c†_i c_j⟩ = −i ∫ dω/2π G^<_ji(ω) by adaptive quadrature over the real axis (`scipy.integrate.quad_vec`;
    the integrand decays as ω⁻²): an independent check of `steady_state_correlation`."""
    check_auxiliary_matrices(E, gamma_loss, gamma_gain)

    def integrand(w):
        return (-1j / (2 * np.pi) * lesser_green(w, E, gamma_loss, gamma_gain)).T

    value, _ = scipy.integrate.quad_vec(integrand, -np.inf, np.inf, epsabs=epsabs, epsrel=1e-12, limit=20000)
    return 0.5 * (value + value.conj().T)
