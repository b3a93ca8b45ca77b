"""Open spinful-fermion systems: the dissipative Hubbard model and the auxiliary impurity of the auxiliary master
equation approach (AMEA).

Lindblad convention (as everywhere in nqs and in QuTiP's `mesolve`):

    dρ/dt = −i[H, ρ] + Σ_k (L_k ρ L_k† − ½{L_k† L_k, ρ}),   rates folded into L_k = √γ A_k.

Modes, Jordan–Wigner order and tokens are those of `hamiltonians.fermions` (spin-down block first, one 4-valued token
per site). Jumps such as c_iσ and c†_iσ change the particle number, so these systems are unconstrained: the initial
state fixes the sector where a number is conserved. Every operator is built twice from the same second-quantised terms,
as a NetKet `FermionOperator2nd` and from QuTiP's `fdestroy` (`nqs.exact.check_operators` compares them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import netket as nk
import numpy as np

from hamiltonians import fermions as fm
from hamiltonians.hubbard import hubbard_terms
from hamiltonians.lindblad import LINDBLAD_FORM
from nqs.keldysh import check_auxiliary_matrices
from nqs.system import System

SPINS = (fm.UP, fm.DOWN)
EIGENVALUE_CUTOFF = 1e-12  # eigenvalues of Γ below this (relative to max(1, ‖Γ‖)) give no jump operator


def _ladder(n_orbitals: int, site: int, spin: int, dagger: bool, coefficient: complex) -> fm.FermionTerm:
    return coefficient, ((fm.mode(n_orbitals, site, spin), dagger),)


def _number_observables(L: int) -> dict[str, list[fm.FermionTerm]]:
    """N = Σ_iσ n_iσ, n_doublons = Σ_i n_i↑ n_i↓ and density_i = n_i↑ + n_i↓."""
    out = {
        "N": [t for i in range(L) for s in SPINS for t in fm.number(L, i, s)],
        "n_doublons": [t for i in range(L) for t in fm.double_occupancy(L, i)],
    }
    out.update({f"density_{i}": [t for s in SPINS for t in fm.number(L, i, s)] for i in range(L)})
    return out


def _open_system(builder: str, L: int, hamiltonian: list[fm.FermionTerm], constant: float,
                 jumps: Sequence[list[fm.FermionTerm]], observables: dict[str, list[fm.FermionTerm]], *,
                 graph: nk.graph.AbstractGraph | None, conventions: dict, params: dict) -> System:
    """The unconstrained open System of second-quantised terms, with its independent QuTiP form."""
    hilbert = fm.spinful_hilbert(L)
    n_modes = 2 * L

    def qutip_factory():
        return {"H": fm.to_qutip(n_modes, hamiltonian, constant),
                "c_ops": [fm.to_qutip(n_modes, jump) for jump in jumps],
                "observables": {k: fm.to_qutip(n_modes, v) for k, v in observables.items()}}

    return System(
        builder=builder,
        hilbert=hilbert,
        hamiltonian=fm.to_netket(hilbert, hamiltonian, constant),
        graph=graph,
        observables={k: fm.to_netket(hilbert, v) for k, v in observables.items()},
        jump_operators=tuple(fm.to_netket(hilbert, jump) for jump in jumps),
        conventions={**conventions, "lindblad": LINDBLAD_FORM,
                     "sector": "unconstrained (jumps may change the particle number; the initial state fixes any "
                               "conserved number)"},
        params=params,
        qutip_factory=qutip_factory,
        tokens=fm.orbital_tokens(L),
    )


def dissipative_hubbard(
    shape: int | tuple[int, int],
    *,
    t: float = 1.0,
    U: float,
    mu: float = 0.0,
    boundary: str = "obc",
    form: str = "standard",
    loss: float = 0.0,
    pair_loss: float = 0.0,
    dephasing: float = 0.0,
    pump: float = 0.0,
) -> System:
    """The Fermi–Hubbard model of `hamiltonians.hubbard` (same H, `shape`, `t`, `U`, `mu`, `boundary`, `form`) with
    on-site Lindblad jumps (rates γ ≥ 0 folded into L):

        one-body loss  L_iσ = √γ_loss c_iσ        (⟨N⟩(t) = N_0 e^{−γt} for any number-conserving H),
        pair loss      L_i  = √γ_pair c_i↓ c_i↑   (doublon loss; Nakagawa, Tsuji, Kawakami, Ueda,
                                                   PRL 124, 147203 (2020)),
        dephasing      L_iσ = √γ_deph n_iσ         (heating to infinite temperature in the initial (N↑, N↓) sector),
        pump           L_iσ = √γ_pump c†_iσ,

    in the Lindblad form of the module docstring, jumps ordered loss (i, ↑), (i, ↓) over sites i, then pair loss,
    dephasing, pump. The space is unconstrained: loss and pump change N; with dephasing alone N↑ and N↓ are conserved
    and the initial state fixes them. Observables: ``N`` (total particle number), ``n_doublons`` (Σ_i n_i↑ n_i↓, the
    number of doubly occupied sites, not a per-site mean) and ``density_<i>`` (n_i↑ + n_i↓). ValueError for a negative
    or non-finite rate, or when every rate is 0 (use `hamiltonians.hubbard.hubbard` for the closed model).
    """
    rates = {"loss": loss, "pair_loss": pair_loss, "dephasing": dephasing, "pump": pump}
    for name, rate in rates.items():
        if not (math.isfinite(rate) and rate >= 0):
            raise ValueError(f"the {name} rate must be finite and >= 0, got {rate}")
    if not any(rate > 0 for rate in rates.values()):
        raise ValueError("every jump rate is 0: pass loss, pair_loss, dephasing or pump > 0 (or use hubbard())")
    lat, kinetic, interaction, constant = hubbard_terms(shape, t=t, U=U, mu=mu, boundary=boundary, form=form)
    L = lat.n_sites
    jumps: list[list[fm.FermionTerm]] = []
    if loss > 0:
        jumps += [[_ladder(L, i, s, False, math.sqrt(loss))] for i in range(L) for s in SPINS]
    if pair_loss > 0:
        down, up = (fm.mode(L, i, fm.DOWN) for i in range(L)), (fm.mode(L, i, fm.UP) for i in range(L))
        jumps += [[(math.sqrt(pair_loss), ((d, False), (u, False)))] for d, u in zip(down, up)]
    if dephasing > 0:
        jumps += [fm.number(L, i, s, math.sqrt(dephasing)) for i in range(L) for s in SPINS]
    if pump > 0:
        jumps += [[_ladder(L, i, s, True, math.sqrt(pump))] for i in range(L) for s in SPINS]
    hamiltonian = "-t sum_<ij>,s s_ij (c+_is c_js + h.c.) + U sum_i " + (
        "(n_iu - 1/2)(n_id - 1/2)" if form == "particle_hole" else "n_iu n_id") + " - mu sum_is n_is"
    jump_text = ("loss sqrt(g) c_is; pair_loss sqrt(g) c_id c_iu; dephasing sqrt(g) n_is; pump sqrt(g) c+_is; order: "
                 "loss (i, up), (i, down) over i, pair loss, dephasing, pump")
    params = {"shape": shape if isinstance(shape, (int, np.integer)) else list(shape), "t": t, "U": U, "mu": mu,
              "boundary": boundary, "form": form, **rates}
    return _open_system("hamiltonians.dissipative_hubbard", L, kinetic + interaction, constant, jumps,
                        _number_observables(L), graph=lat.graph, params=params,
                        conventions=fm.conventions(boundary, lattice=lat.site_order, hamiltonian=hamiltonian,
                                                   units="t", jumps=jump_text))


def _matrix_param(m: np.ndarray) -> list | dict:
    """A matrix as JSON data: nested lists, or {"real", "imag"} when complex."""
    if np.all(m.imag == 0):
        return m.real.tolist()
    return {"real": m.real.tolist(), "imag": m.imag.tolist()}


def _bath_jumps(L: int, gamma: np.ndarray, gain: bool) -> list[list[fm.FermionTerm]]:
    """Jumps of Γ = Σ_a λ_a v_a v_a†: loss L_aσ = √(2λ_a) Σ_j v*_aj c_jσ, gain L'_aσ = √(2λ_a) Σ_j v_aj c†_jσ."""
    lam, vecs = np.linalg.eigh(gamma)
    keep = lam > EIGENVALUE_CUTOFF * max(1.0, float(np.abs(lam).max()))
    jumps = []
    for s in SPINS:
        for a in np.flatnonzero(keep):
            v = vecs[:, a] if gain else vecs[:, a].conj()
            jumps.append([_ladder(L, j, s, gain, math.sqrt(2 * lam[a]) * v[j]) for j in range(L) if v[j] != 0])
    return jumps


def auxiliary_impurity(E, gamma_loss, gamma_gain, U: float, *, eps_f: float | None = None) -> System:
    """The auxiliary open system of the AMEA (Arrigoni, Knap, von der Linden, PRL 110, 086403 (2013); Dorda, Nuss,
    von der Linden, Arrigoni, PRB 89, 165105 (2014)): impurity f = site 0 and auxiliary sites 1..N_B,

        H = Σ_ijσ E_ij c†_iσ c_jσ + U n_f↑ n_f↓,
        𝓛ρ = −i[H, ρ] + Σ_σ Σ_ij [2Γ⁽¹⁾_ij (c_jσ ρ c†_iσ − ½{c†_iσ c_jσ, ρ})
                                 + 2Γ⁽²⁾_ij (c†_iσ ρ c_jσ − ½{c_jσ c†_iσ, ρ})],

    with E Hermitian and the loss Γ⁽¹⁾ = `gamma_loss` and gain Γ⁽²⁾ = `gamma_gain` Hermitian positive semi-definite and
    zero on the impurity row and column (`nqs.keldysh.check_auxiliary_matrices`; ValueError otherwise). `eps_f`, when
    given, replaces E_00 (ε_f = −U/2 is the particle-hole symmetric impurity). The Lindblad form of the module
    docstring follows from Γ = Σ_a λ_a v_a v_a† (eigen-decomposition, λ_a > 0; (v v†)_ij = v_i v*_j):

        loss  L_aσ  = √(2λ_a)  Σ_j v*_aj  c_jσ,     gain  L'_aσ = √(2λ'_a) Σ_j v'_aj c†_jσ,

    since Σ_ij Γ_ij c_j ρ c†_i = Σ_a λ_a (Σ_j v*_aj c_j) ρ (Σ_i v_ai c†_i). (The notes' L_a = √(2λ_a) Σ_j v_aj c_j and
    L'_a = √(2λ'_a) Σ_j v'*_aj c†_j agree for real Γ only.) Jumps are ordered loss then gain, spin ↑ then ↓ within each.
    The space is unconstrained (gain and loss change N). Observables: ``n_f`` (n_f↑ + n_f↓), ``double_occupancy_f``
    (n_f↑ n_f↓), ``N`` and ``density_<i>`` (n_i↑ + n_i↓).
    """
    E, g1, g2 = check_auxiliary_matrices(E, gamma_loss, gamma_gain, zero_impurity=True)
    if not math.isfinite(U) or (eps_f is not None and not math.isfinite(eps_f)):
        raise ValueError(f"U and eps_f must be finite, got U = {U}, eps_f = {eps_f}")
    if eps_f is not None:
        E[0, 0] = eps_f
    L = E.shape[0]
    hamiltonian = [(E[i, j], ((fm.mode(L, i, s), True), (fm.mode(L, j, s), False)))
                   for s in SPINS for i in range(L) for j in range(L) if E[i, j] != 0]
    hamiltonian = [(c.real if c.imag == 0 else c, ops) for c, ops in hamiltonian] + fm.double_occupancy(L, 0, U)
    jumps = _bath_jumps(L, g1, gain=False) + _bath_jumps(L, g2, gain=True)
    observables = {"n_f": [t for s in SPINS for t in fm.number(L, 0, s)],
                   "double_occupancy_f": fm.double_occupancy(L, 0),
                   **{k: v for k, v in _number_observables(L).items() if k != "n_doublons"}}
    params = {"E": _matrix_param(E), "gamma_loss": _matrix_param(g1), "gamma_gain": _matrix_param(g2), "U": U,
              "eps_f": eps_f}
    return _open_system("hamiltonians.auxiliary_impurity", L, hamiltonian, 0.0, jumps, observables, graph=None,
                        params=params,
                        conventions=fm.conventions(None, hamiltonian="sum_ijs E_ij c+_is c_js + U n_fu n_fd (f = 0)",
                                                   units="those of E", jumps=(
                                                       "Gamma = sum_a lam_a v_a v_a^dag; loss sqrt(2 lam_a) sum_j "
                                                       "conj(v_aj) c_js, gain sqrt(2 lam'_a) sum_j v'_aj c+_js; "
                                                       "order: loss (up, down), gain (up, down)")))
