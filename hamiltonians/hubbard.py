"""The Fermi–Hubbard model on the chain and the square lattice (spinful fermions, `hamiltonians.fermions`)."""

from __future__ import annotations

import netket as nk
import numpy as np

from hamiltonians import fermions as fm
from hamiltonians.lattices import Lattice, make_lattice
from nqs.system import System

BOUNDARIES = ("pbc", "apbc", "obc")
FORMS = ("standard", "particle_hole")


def _wraps(graph: nk.graph.AbstractGraph, i: int, j: int) -> int:
    """How many periodic boundaries the bond (i, j) crosses (coordinates differing by more than one step)."""
    pos = np.asarray(graph.positions)
    return int(np.sum(np.abs(pos[i] - pos[j]) > 1.5))


def _check(t: float, U: float, mu: float, boundary: str, form: str) -> None:
    if boundary not in BOUNDARIES:
        raise ValueError(f"unknown boundary {boundary!r}; choose one of {BOUNDARIES}")
    if form not in FORMS:
        raise ValueError(f"unknown form {form!r}; choose one of {FORMS}")
    for name, value in (("t", t), ("U", U), ("mu", mu)):
        if not np.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value}")


def hubbard(
    shape: int | tuple[int, int],
    *,
    t: float = 1.0,
    U: float,
    mu: float = 0.0,
    boundary: str = "pbc",
    n_per_spin: tuple[int, int] | None = None,
    form: str = "standard",
) -> System:
    """The Fermi–Hubbard model on the chain (``shape = L``) or the Lx×Ly square lattice (``shape = (Lx, Ly)``):

        H = −t Σ_⟨ij⟩σ s_ij (c†_iσ c_jσ + h.c.) + U Σ_i n_i↑ n_i↓ − μ Σ_iσ n_iσ          (form "standard")
        H = −t Σ_⟨ij⟩σ s_ij (c†_iσ c_jσ + h.c.) + U Σ_i (n_i↑ − ½)(n_i↓ − ½) − μ Σ_iσ n_iσ   (form "particle_hole")

    (Hubbard, Proc. R. Soc. A 276, 238 (1963)). Bonds are NetKet's graph edges, each once (a length-2 periodic
    direction is not doubled). Boundary: "obc" drops the wrapping bonds; "pbc" keeps them with s_ij = +1, i.e. the
    fermion operators themselves are periodic, c_{L} ≡ c_0 (note: the naive Jordan–Wigner spin-chain PBC is the
    fermionic APBC for an even particle number); "apbc" has s_ij = −1 on every bond that crosses a boundary
    (in 2D, along both directions). Half filling is μ = U/2 in the standard form, μ = 0 in the particle-hole form.

    Modes, Jordan–Wigner order and tokens: `hamiltonians.fermions` (spin-down block first, one 4-valued token
    2 n↓ + n↑ per site). The system carries the sector N↑, N↓ = ``n_per_spin`` (``(n_up, n_down)``) as a
    `MultiU1Constraint`; None is half filling N↑ = N↓ = N_sites / 2 (an even number of sites).

    Observables (per site): ``density`` ⟨n_i↑ + n_i↓⟩, ``double_occupancy`` ⟨n_i↑ n_i↓⟩, ``kinetic_energy``
    (the hopping term / N_sites); ``spin_correlation_zz_nn`` the mean over bonds of ⟨S^z_i S^z_j⟩ (S^z = (n↑ − n↓)/2).
    """
    lat, kinetic, interaction, constant = hubbard_terms(shape, t=t, U=U, mu=mu, boundary=boundary, form=form)
    L = lat.n_sites
    if n_per_spin is None:
        if L % 2:
            raise ValueError(f"half filling with N_up = N_down needs an even number of sites, got {L}: pass n_per_spin")
        n_per_spin = (L // 2, L // 2)
    n_up, n_down = (int(n) for n in n_per_spin)
    constraint = fm.spin_sector(L, n_up, n_down)
    observables = _observables(L, lat.nn, kinetic)

    hilbert = fm.spinful_hilbert(L)
    n_modes = 2 * L

    def qutip_factory():
        return {"H": fm.to_qutip(n_modes, kinetic + interaction, constant), "c_ops": [],
                "observables": {k: fm.to_qutip(n_modes, v) for k, v in observables.items()}}

    hamiltonian = "-t sum_<ij>,s s_ij (c+_is c_js + h.c.) + U sum_i " + (
        "(n_iu - 1/2)(n_id - 1/2)" if form == "particle_hole" else "n_iu n_id") + " - mu sum_is n_is"
    return System(
        builder="hamiltonians.hubbard",
        hilbert=hilbert,
        hamiltonian=fm.to_netket(hilbert, kinetic + interaction, constant),
        graph=lat.graph,
        constraint=constraint,
        observables={k: fm.to_netket(hilbert, v) for k, v in observables.items()},
        conventions=fm.conventions(boundary, lattice=lat.site_order, hamiltonian=hamiltonian, units="t",
                                   apbc_sign="s_ij = -1 on bonds crossing a boundary" if boundary == "apbc" else
                                   "s_ij = +1"),
        params={"shape": shape if isinstance(shape, (int, np.integer)) else list(shape), "t": t, "U": U, "mu": mu,
                "boundary": boundary, "n_per_spin": [n_up, n_down], "form": form},
        qutip_factory=qutip_factory,
        tokens=fm.orbital_tokens(L),
    )


def hubbard_terms(
    shape: int | tuple[int, int], *, t: float, U: float, mu: float, boundary: str, form: str
) -> tuple[Lattice, list[fm.FermionTerm], list[fm.FermionTerm], float]:
    """The lattice and the terms of the Hubbard Hamiltonian of `hubbard` (same arguments, same equation):

        kinetic = −t Σ_⟨ij⟩σ s_ij (c†_iσ c_jσ + h.c.),
        interaction = U Σ_i n_i↑ n_i↓ − (μ + δ U/2) Σ_iσ n_iσ,   constant = δ U L/4,

    δ = 1 for the particle-hole form, 0 for the standard one (Hubbard, Proc. R. Soc. A 276, 238 (1963)). Returns
    (lattice, kinetic terms, interaction terms, constant); ValueError for an unknown boundary or form or a
    non-finite coupling.
    """
    _check(t, U, mu, boundary, form)
    lattice = "chain" if isinstance(shape, (int, np.integer)) else "square"
    lat = make_lattice(lattice, shape if lattice == "chain" else tuple(shape), pbc=boundary != "obc")
    L = lat.n_sites
    kinetic: list[fm.FermionTerm] = []
    for i, j in lat.nn:
        sign = (-1.0) ** _wraps(lat.graph, i, j) if boundary == "apbc" else 1.0
        for spin in (fm.UP, fm.DOWN):
            kinetic += fm.hopping(L, i, j, -t * sign, spin)
    shift = 0.5 if form == "particle_hole" else 0.0
    interaction: list[fm.FermionTerm] = []
    for i in range(L):
        interaction += fm.double_occupancy(L, i, U)
        for spin in (fm.UP, fm.DOWN):
            interaction += fm.number(L, i, spin, -shift * U - mu)
    constant = U * L / 4 if form == "particle_hole" else 0.0
    return lat, kinetic, interaction, constant


def _observables(L: int, bonds, kinetic: list[fm.FermionTerm]) -> dict[str, list[fm.FermionTerm]]:
    density = [term for i in range(L) for spin in (fm.UP, fm.DOWN) for term in fm.number(L, i, spin, 1.0 / L)]
    double = [term for i in range(L) for term in fm.double_occupancy(L, i, 1.0 / L)]
    spin_zz: list[fm.FermionTerm] = []
    for i, j in bonds:
        for si in (fm.UP, fm.DOWN):
            for sj in (fm.UP, fm.DOWN):
                a, b = fm.mode(L, i, si), fm.mode(L, j, sj)
                spin_zz.append((si * sj / (4.0 * len(bonds)), ((a, True), (a, False), (b, True), (b, False))))
    return {
        "density": density,
        "double_occupancy": double,
        "kinetic_energy": [(c / L, ops) for c, ops in kinetic],
        "spin_correlation_zz_nn": spin_zz,
    }
