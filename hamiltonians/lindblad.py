"""Open systems: jump operators on top of any closed spin System, and the standard dissipative models.

Lindblad convention (used everywhere in nqs and by QuTiP's `mesolve`):

    dρ/dt = −i[H, ρ] + Σ_k (L_k ρ L_k† − ½{L_k† L_k, ρ}),   rates folded into L_k = √γ A_k.

σ⁻ = |↓⟩⟨↑| lowers σᶻ (QuTiP `sigmam()`); "decay" drives every spin towards σᶻ = −1.
"""

from __future__ import annotations

import dataclasses
import math

from hamiltonians.lattices import make_lattice
from hamiltonians.pauli import Term, to_netket, to_qutip
from hamiltonians.spins import bond, make_system, spin_conventions, spin_observables
from nqs.system import System

_JUMPS = {"decay": "-", "pumping": "+", "dephasing": "Z"}
LINDBLAD_FORM = "d rho/dt = -i[H,rho] + sum_k (L_k rho L_k^dag - 1/2 {L_k^dag L_k, rho}), L_k = sqrt(gamma) A_k"


def with_jumps(system: System, *, decay: float = 0.0, dephasing: float = 0.0, pumping: float = 0.0) -> System:
    """`system` with single-site jump operators on every site: √decay σ⁻_i, √dephasing σᶻ_i, √pumping σ⁺_i.

    Rates must be non-negative; a zero rate adds nothing. The QuTiP form gets the same c_ops built
    from QuTiP's own operators.
    """
    rates = {"decay": decay, "dephasing": dephasing, "pumping": pumping}
    for name, rate in rates.items():
        if not (math.isfinite(rate) and rate >= 0):
            raise ValueError(f"the {name} rate must be finite and >= 0, got {rate}")
    if system.hilbert.local_size != 2:
        raise ValueError("with_jumps adds spin-1/2 jump operators; the system's local dimension is not 2")
    jumps: list[Term] = [
        (math.sqrt(rate), ((i, _JUMPS[name]),))
        for name, rate in rates.items() if rate > 0 for i in range(system.n_sites)
    ]
    closed = system.to_qutip

    def qutip_factory():
        q = closed()
        return {**q, "c_ops": list(q["c_ops"]) + [to_qutip(system.n_sites, [t]) for t in jumps]}

    return dataclasses.replace(
        system,
        builder=f"{system.builder}+hamiltonians.with_jumps",
        jump_operators=tuple(system.jump_operators) + tuple(to_netket(system.hilbert, [t]) for t in jumps),
        params={**system.params, **{f"gamma_{k}": v for k, v in rates.items()}},
        conventions={**system.conventions, "lindblad": LINDBLAD_FORM, "jumps": "decay: sigma^- = |down><up|"},
        qutip_factory=qutip_factory,
    )


def _dissipative(builder: str, L: int, lattice: str, pbc: bool, terms: list[Term], gamma: float, params: dict,
                 hamiltonian: str) -> System:
    lat = make_lattice(lattice, L, pbc=pbc)
    observables = spin_observables(lat, 1.0)
    observables["magnetization_y"] = [(1.0 / lat.n_sites, ((i, "Y"),)) for i in range(lat.n_sites)]
    closed = make_system(
        builder, lat, terms(lat), observables, params=params,
        conventions=spin_conventions("pauli", pbc, lattice, hamiltonian),
    )
    open_ = with_jumps(closed, decay=gamma)
    return dataclasses.replace(open_, builder=builder, params=params)


def dissipative_tfi(L: int, *, lattice: str = "chain", V: float = 2.0, g: float = 1.0, gamma: float = 1.0,
                    pbc: bool = True) -> System:
    """Dissipative transverse-field Ising model (Luo et al., PRL 128, 090501 (2022)), Pauli units:

        H = (V/4) Σ_<ij> Z_i Z_j + (g/2) Σ_i X_i,   L_i = √γ σ⁻_i.
    """
    def terms(lat):
        return [(V / 4, bond(i, j, "Z")) for i, j in lat.nn] + [(g / 2, ((i, "X"),)) for i in range(lat.n_sites)]

    params = dict(L=L, lattice=lattice, V=V, g=g, gamma=gamma, pbc=pbc)
    return _dissipative("hamiltonians.dissipative_tfi", L, lattice, pbc, terms, gamma, params,
                        "H = (V/4) sum_<ij> Z_i Z_j + (g/2) sum_i X_i; L_i = sqrt(gamma) sigma^-_i")


def dissipative_xyz(L: int, *, lattice: str = "chain", Jx: float = 0.9, Jy: float = 1.6, Jz: float = 1.0,
                    gamma: float = 1.0, pbc: bool = True) -> System:
    """Dissipative XYZ model (Weimer, PRL 114, 040402 (2015); Luo et al. 2022), Pauli units:

        H = Σ_<ij> (Jx X_i X_j + Jy Y_i Y_j + Jz Z_i Z_j),   L_i = √γ σ⁻_i.
    """
    def terms(lat):
        return [(c, bond(i, j, p)) for i, j in lat.nn for c, p in ((Jx, "X"), (Jy, "Y"), (Jz, "Z"))]

    params = dict(L=L, lattice=lattice, Jx=Jx, Jy=Jy, Jz=Jz, gamma=gamma, pbc=pbc)
    return _dissipative("hamiltonians.dissipative_xyz", L, lattice, pbc, terms, gamma, params,
                        "H = sum_<ij> (Jx XX + Jy YY + Jz ZZ); L_i = sqrt(gamma) sigma^-_i")
