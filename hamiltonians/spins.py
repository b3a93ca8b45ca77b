"""Spin-1/2 lattice models: Heisenberg (J1-J2), transverse-field Ising, XYZ with fields.

Every builder returns an `nqs.System` on the unconstrained `nk.hilbert.Spin(0.5, N)` (local index 0 =
σᶻ = +1, site 0 most significant: the same basis as QuTiP's `tensor`). Couplings multiply Pauli
matrices (``units="pauli"``, default) or spin-1/2 operators S = σ/2 (``units="spin"``); energies are in
that unit. Boundary conditions are open or periodic; each bond is counted once on every lattice size.
The zero-magnetisation sector of the Heisenberg model is a `Constraint`, not a constrained Hilbert
space (NetKet's `ARDirectSampler` refuses constrained spaces).
"""

from __future__ import annotations

from collections.abc import Sequence

import netket as nk

from hamiltonians.lattices import Lattice, make_lattice
from hamiltonians.pauli import Term, scaled, to_netket, to_qutip
from nqs.constraint import zero_magnetization as zero_magnetization_constraint
from nqs.system import System

_UNITS = {"pauli": 1.0, "spin": 0.5}
_BASIS = "NetKet Spin(1/2): local index 0 = sigma_z=+1; site 0 most significant (same as QuTiP tensor order)"


def _unit(units: str) -> float:
    if units not in _UNITS:
        raise ValueError(f"unknown units {units!r}; choose 'pauli' (sigma matrices) or 'spin' (S = sigma/2)")
    return _UNITS[units]


def bond(i: int, j: int, p: str) -> tuple[tuple[int, str], ...]:
    return ((i, p), (j, p))


def spin_observables(lat: Lattice, unit: float) -> dict[str, list[Term]]:
    """Intensive observables in the builder's unit: magnetisations, staggered magnetisation, NN correlators."""
    n, nb = lat.n_sites, max(len(lat.nn), 1)
    sign = [1.0 - 2.0 * s for s in lat.sublattice]
    stag = [(sign[i] / n, ((i, "Z"),)) for i in range(n)]
    stag_sq = [(sign[i] * sign[j] / n**2, ((i, "Z"), (j, "Z"))) for i in range(n) for j in range(n) if i != j]
    stag_sq.append((1.0 / n, ()))  # the i == j terms: (σᶻ_i)² = 1
    obs = {
        "magnetization_x": [(1.0 / n, ((i, "X"),)) for i in range(n)],
        "magnetization_z": [(1.0 / n, ((i, "Z"),)) for i in range(n)],
        "staggered_magnetization_z": stag,
        "staggered_magnetization_z_squared": stag_sq,
        "nn_correlation_zz": [(1.0 / nb, bond(i, j, "Z")) for i, j in lat.nn],
        "nn_correlation_xx": [(1.0 / nb, bond(i, j, "X")) for i, j in lat.nn],
    }
    return {k: scaled(v, unit) for k, v in obs.items()}


def spin_conventions(units: str, pbc: bool, lattice: str, hamiltonian: str, sign_rule: str = "none") -> dict:
    """The conventions every spin System records (units, boundary, sign rule, lattice, formula)."""
    return {"units": units, "boundary": "pbc" if pbc else "obc", "sign_rule": sign_rule, "lattice": lattice,
            "hamiltonian": hamiltonian}


def make_system(
    builder: str,
    lat: Lattice,
    terms: Sequence[Term],
    observables: dict[str, list[Term]],
    *,
    params: dict,
    conventions: dict,
    constraint=None,
) -> System:
    hilbert = nk.hilbert.Spin(0.5, lat.n_sites)
    n = lat.n_sites

    def qutip_factory():
        return {
            "H": to_qutip(n, terms),
            "c_ops": [],
            "observables": {k: to_qutip(n, v) for k, v in observables.items()},
        }

    return System(
        builder=builder,
        hilbert=hilbert,
        hamiltonian=to_netket(hilbert, terms),
        graph=lat.graph,
        constraint=constraint,
        observables={k: to_netket(hilbert, v) for k, v in observables.items()},
        conventions={"basis": _BASIS, "site_order": lat.site_order, **conventions},
        params=params,
        qutip_factory=qutip_factory,
    )


def heisenberg(
    L: int | tuple[int, int],
    *,
    lattice: str = "chain",
    J: float = 1.0,
    J2: float = 0.0,
    pbc: bool = True,
    marshall: bool = False,
    units: str = "pauli",
    zero_magnetization: bool = True,
    h_staggered: float = 0.0,
) -> System:
    """Heisenberg (J1-J2) model on the chain (N = L) or the L×L square lattice (Lx×Ly for L = (Lx, Ly)).

        H = J Σ_<ij> (X_i X_j + Y_i Y_j + Z_i Z_j) + J2 Σ_<<ij>> (X_i X_j + Y_i Y_j + Z_i Z_j) − h_s Σ_i (−1)^i Z_i

    in Pauli units (σ·σ = 4 S·S: with ``units="spin"`` every σ is replaced by S = σ/2 and all energies
    are 1/4 of the Pauli ones). J > 0 is antiferromagnetic.

    ``marshall=True`` applies the Marshall sublattice rotation (rotation by π about z on sublattice B;
    Marshall, Proc. R. Soc. A 232, 48 (1955)): on nearest-neighbour bonds X X + Y Y → −(X X + Y Y); J2
    bonds join sites of one sublattice and keep their sign. For J2 = 0 the rotated ground state has
    non-negative amplitudes. The spectrum is unchanged; off-diagonal observables are the rotated ones
    (the stored ``nn_correlation_xx`` is minus the physical one). Needs a bipartite lattice.

    With ``zero_magnetization`` (default) the system carries the constraint Σ_i σᶻ_i = 0 (N even).

    ``h_staggered`` = h_s adds a staggered field, (−1)^i = +1 on sublattice A (site 0) and −1 on B; for
    h_s > 0 it favours the Néel state ↑↓↑↓… and its ground state is the usual starting point of a Néel
    quench (switch h_s off). It commutes with the Marshall rotation and needs a bipartite lattice.

    Raises ValueError for an unknown lattice, L ≤ 1, J2 ≠ 0 on a lattice without next-nearest
    neighbours, Marshall rotation on a non-bipartite lattice, odd N with zero magnetisation, unknown units.
    """
    unit = _unit(units)
    lat = make_lattice(lattice, L, pbc=pbc, next_nearest=J2 != 0.0)
    if J2 != 0.0 and not lat.nnn:
        raise ValueError(
            f"J2 = {J2} given, but the {lattice} lattice with L={L} ({'PBC' if pbc else 'OBC'}) has no "
            "next-nearest-neighbour bonds distinct from its nearest-neighbour bonds"
        )
    if (marshall or h_staggered != 0.0) and not lat.bipartite:
        raise ValueError(
            f"the Marshall rotation and the staggered field need a bipartite lattice; the {lattice} with L={L} "
            f"({'PBC' if pbc else 'OBC'}) is not (odd periodic length?)"
        )
    constraint = None
    if zero_magnetization:
        if lat.n_sites % 2:
            raise ValueError(f"zero magnetisation needs an even number of sites, the lattice has {lat.n_sites}")
        constraint = zero_magnetization_constraint(lat.n_sites)
    sxy = -1.0 if marshall else 1.0
    terms: list[Term] = []
    for i, j in lat.nn:
        terms += [(sxy * J, bond(i, j, "X")), (sxy * J, bond(i, j, "Y")), (J, bond(i, j, "Z"))]
    for i, j in lat.nnn:
        terms += [(J2, bond(i, j, p)) for p in "XYZ"]
    if h_staggered != 0.0:
        terms += [(-h_staggered * (1.0 - 2.0 * lat.sublattice[i]), ((i, "Z"),)) for i in range(lat.n_sites)]
    observables = spin_observables(lat, unit)
    return make_system(
        "hamiltonians.heisenberg",
        lat,
        scaled(terms, unit),
        observables,
        params=dict(L=L, lattice=lattice, J=J, J2=J2, pbc=pbc, marshall=marshall, units=units,
                    zero_magnetization=zero_magnetization, h_staggered=h_staggered),
        conventions=spin_conventions(
            units, pbc, lattice,
            "H = J sum_<ij> s_i.s_j + J2 sum_<<ij>> s_i.s_j - h_s sum_i (-1)^i s^z_i, s = sigma (pauli) or S = "
            "sigma/2 (spin)"
            + ("; Marshall-rotated: XX+YY sign flipped on nearest-neighbour bonds" if marshall else ""),
            sign_rule="marshall" if marshall else "none",
        ),
        constraint=constraint,
    )


def tfim(
    L: int,
    *,
    lattice: str = "chain",
    J: float = 1.0,
    h: float = 1.0,
    pbc: bool = True,
    units: str = "pauli",
) -> System:
    """Transverse-field Ising model H = −J Σ_<ij> Z_i Z_j − h Σ_i X_i (ferromagnetic for J > 0).

    Pauli units by default (critical point h/J = 1 in 1D and 3.04438 on the square lattice); with
    ``units="spin"`` every σ becomes S = σ/2. Equals NetKet's `Ising(h=h, J=-J)` in Pauli units.
    """
    unit = _unit(units)
    lat = make_lattice(lattice, L, pbc=pbc)
    terms: list[Term] = [(-J, bond(i, j, "Z")) for i, j in lat.nn]
    terms += [(-h, ((i, "X"),)) for i in range(lat.n_sites)]
    return make_system(
        "hamiltonians.tfim",
        lat,
        scaled(terms, unit),
        spin_observables(lat, unit),
        params=dict(L=L, lattice=lattice, J=J, h=h, pbc=pbc, units=units),
        conventions=spin_conventions(units, pbc, lattice, "H = -J sum_<ij> Z_i Z_j - h sum_i X_i"),
    )


def xyz(
    L: int,
    *,
    lattice: str = "chain",
    Jx: float = 1.0,
    Jy: float = 1.0,
    Jz: float = 1.0,
    hx: float = 0.0,
    hy: float = 0.0,
    hz: float = 0.0,
    pbc: bool = True,
    units: str = "pauli",
) -> System:
    """XYZ model with uniform fields H = Σ_<ij> (Jx X_i X_j + Jy Y_i Y_j + Jz Z_i Z_j) + Σ_i (hx X_i + hy Y_i + hz Z_i).

    Pauli units by default; ``units="spin"`` replaces σ by S = σ/2. No constraint (the model conserves
    no magnetisation in general). The operator is complex only when hy ≠ 0.
    """
    unit = _unit(units)
    lat = make_lattice(lattice, L, pbc=pbc)
    terms: list[Term] = []
    for i, j in lat.nn:
        terms += [(c, bond(i, j, p)) for c, p in ((Jx, "X"), (Jy, "Y"), (Jz, "Z")) if c != 0.0]
    for i in range(lat.n_sites):
        terms += [(c, ((i, p),)) for c, p in ((hx, "X"), (hy, "Y"), (hz, "Z")) if c != 0.0]
    observables = spin_observables(lat, unit)
    observables["magnetization_y"] = scaled([(1.0 / lat.n_sites, ((i, "Y"),)) for i in range(lat.n_sites)], unit)
    return make_system(
        "hamiltonians.xyz",
        lat,
        scaled(terms, unit),
        observables,
        params=dict(L=L, lattice=lattice, Jx=Jx, Jy=Jy, Jz=Jz, hx=hx, hy=hy, hz=hz, pbc=pbc, units=units),
        conventions=spin_conventions(
            units, pbc, lattice, "H = sum_<ij> (Jx XX + Jy YY + Jz ZZ) + sum_i (hx X + hy Y + hz Z)"
        ),
    )
