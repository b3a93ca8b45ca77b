"""The 2+1D pure-gauge U(1) quantum link model with spin-½ links and the Rokhsar–Kivelson term
(``../shared/notes/models.md`` A.6; Banerjee et al., J. Stat. Mech. (2013) P12010):

    H = −J Σ_□ (U_□ + U_□†) + λ Σ_□ (U_□ + U_□†)²,    U_□ = U_{x,x̂} U_{x+x̂,ŷ} U†_{x+ŷ,x̂} U†_{x,ŷ},

U_{x,μ} = S⁺_{x,μ} and E_{x,μ} = S^z_{x,μ} on every link. (U_□ + U_□†)² projects on the flippable plaquettes (the
four links circulating one way); at the Rokhsar–Kivelson point λ = J, H = J Σ_□ [(U_□ + U_□†)² − (U_□ + U_□†)] ≥ 0
and the equal-amplitude superposition of every connected component has E = 0: E0 = 0 exactly in every winding
sector (Rokhsar & Kivelson, PRL 61, 2376 (1988)).

Gauss law G_x = Σ_μ (E_{x,μ} − E_{x−μ̂,μ}) = 0 (2-in-2-out ice rule), imposed as the constraint `nqs.ice_rule.IceRule`,
optionally with fixed winding numbers W_x = Σ_y E_{(0,y),x̂}, W_y = Σ_x E_{(x,0),ŷ} (conserved on the torus). Sector
sizes (all windings / W = (0, 0)): 2×2: 18 / 6, 4×2: 114 / 38, 4×4: 2970 / 990.

Lattice and basis. An Lx×Ly torus of vertices v = (x, y), raster index v = y·Lx + x; vertex v owns the links
(v, x̂) = mode 2v and (v, ŷ) = mode 2v + 1; the gauge block of v is the token (2v, 2v + 1), x-link most significant.
Plaquette p = (x, y) = y·Lx + x has its lower-left corner at vertex p. NetKet Spin(½) order: local index 0 ↔ E = +½.
On a torus of side 2 the plaquettes share links around the back (coordinates mod L). Graph: `nk.graph.Grid([Ly, Lx],
pbc=True)`, node n = vertex n.

Observables: ``plaquette`` (1/N_p) Σ_□ (U_□ + U_□†), ``flippable`` (1/N_p) Σ_□ (U_□ + U_□†)² (density of flippable
plaquettes), ``winding_x``, ``winding_y`` (W_x, W_y), and the total ``gauss_law_violation`` Σ_v G_v² (zero in the
sector).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence

import netket as nk
import qutip

from nqs.ice_rule import IceRule
from nqs.system import System
from nqs.tokens import TokenMap


def _vertex(Lx: int, Ly: int, x: int, y: int) -> int:
    return (y % Ly) * Lx + (x % Lx)


def plaquette_links(Lx: int, Ly: int, p: int) -> tuple[int, int, int, int]:
    """(bottom (p, x̂), right (p + x̂, ŷ), top (p + ŷ, x̂), left (p, ŷ)): U_□ raises the first two, lowers the last two."""
    x, y = p % Lx, p // Lx
    return 2 * p, 2 * _vertex(Lx, Ly, x + 1, y) + 1, 2 * _vertex(Lx, Ly, x, y + 1), 2 * p + 1


def gauss_links(Lx: int, Ly: int, v: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """((out x-link, out y-link), (in x-link from v − x̂, in y-link from v − ŷ))."""
    x, y = v % Lx, v // Lx
    return (2 * v, 2 * v + 1), (2 * _vertex(Lx, Ly, x - 1, y), 2 * _vertex(Lx, Ly, x, y - 1) + 1)


def _netket_operators(hilbert, Lx: int, Ly: int, J: float, lam: float):
    sp, sm, sz = nk.operator.spin.sigmap, nk.operator.spin.sigmam, nk.operator.spin.sigmaz
    flips, projectors = [], []
    for p in range(Lx * Ly):
        b, r, t, l = plaquette_links(Lx, Ly, p)
        U = sp(hilbert, b) @ sp(hilbert, r) @ sm(hilbert, t) @ sm(hilbert, l)
        Ud = sm(hilbert, b) @ sm(hilbert, r) @ sp(hilbert, t) @ sp(hilbert, l)
        flips.append(U + Ud)
        projectors.append((U + Ud) @ (U + Ud))
    n = Lx * Ly
    H = sum((-J * f for f in flips[1:]), -J * flips[0])
    if lam != 0:
        H = H + lam * sum(projectors[1:], projectors[0])
    violation = []
    for v in range(n):
        (a, b), (c, d) = gauss_links(Lx, Ly, v)
        G = 0.5 * (sz(hilbert, a) + sz(hilbert, b) - sz(hilbert, c) - sz(hilbert, d))
        violation.append(G @ G)
    observables = {
        "plaquette": sum(flips[1:], flips[0]) * (1 / n),
        "flippable": sum(projectors[1:], projectors[0]) * (1 / n),
        "winding_x": sum(0.5 * sz(hilbert, 2 * _vertex(Lx, Ly, 0, y)) for y in range(Ly)),
        "winding_y": sum(0.5 * sz(hilbert, 2 * _vertex(Lx, Ly, x, 0) + 1) for x in range(Lx)),
        "gauss_law_violation": sum(violation[1:], violation[0]),
    }
    return H, observables


def _qutip_operators(Lx: int, Ly: int, J: float, lam: float) -> dict:
    """H and the observables from QuTiP `jmat(½)` tensor products (independent of the NetKet path; full space)."""
    n_l = 2 * Lx * Ly

    def on(ops: dict) -> qutip.Qobj:
        return qutip.tensor([ops.get(m, qutip.qeye(2)) for m in range(n_l)])

    Sp, Sm, Sz = qutip.jmat(0.5, "+"), qutip.jmat(0.5, "-"), qutip.jmat(0.5, "z")
    flips = []
    for p in range(Lx * Ly):
        b, r, t, l = plaquette_links(Lx, Ly, p)
        U = on({b: Sp, r: Sp, t: Sm, l: Sm})
        flips.append(U + U.dag())
    n = Lx * Ly
    G = [on({a: Sz}) + on({b: Sz}) - on({c: Sz}) - on({d: Sz})
         for (a, b), (c, d) in (gauss_links(Lx, Ly, v) for v in range(n))]
    return {
        "H": sum(-J * f + lam * f * f for f in flips),
        "c_ops": [],
        "observables": {
            "plaquette": sum(flips) / n,
            "flippable": sum(f * f for f in flips) / n,
            "winding_x": sum(on({2 * _vertex(Lx, Ly, 0, y): Sz}) for y in range(Ly)),
            "winding_y": sum(on({2 * _vertex(Lx, Ly, x, 0) + 1: Sz}) for x in range(Lx)),
            "gauss_law_violation": sum(g * g for g in G),
        },
    }


def quantum_link_2d(Lx: int, Ly: int, *, J: float = 1.0, lam: float = 0.0,
                    winding: Sequence[float] | None = (0, 0)) -> System:
    """The 2+1D spin-½ U(1) quantum link model on the Lx×Ly torus (module docstring), in the Gauss-law sector and,
    unless ``winding`` is None, at the winding numbers (W_x, W_y). Raises ValueError for a side < 2 and (from the
    constraint) windings that no configuration has."""
    constraint = IceRule(Lx, Ly, winding=None if winding is None else tuple(winding))
    Lx, Ly = constraint.Lx, constraint.Ly
    hilbert = nk.hilbert.Spin(0.5, 2 * Lx * Ly)
    H, observables = _netket_operators(hilbert, Lx, Ly, J, lam)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NetKet warns that a length-2 periodic direction doubles no bond
        graph = nk.graph.Grid([Ly, Lx], pbc=True)
    return System(
        builder="hamiltonians.quantum_link_2d",
        hilbert=hilbert,
        hamiltonian=H,
        graph=graph,
        constraint=constraint,
        observables=observables,
        conventions={
            "units": "J (couplings as given)",
            "boundary": "pbc (torus)",
            "hamiltonian": "H = -J sum_p (U_p + U_p^dag) + lam sum_p (U_p + U_p^dag)^2, "
                           "U_p = U_(x,x) U_(x+x,y) U^dag_(x+y,x) U^dag_(x,y), U = S^+",
            "gauss_law": "G_v = sum_mu (E_(v,mu) - E_(v-mu,mu)) = 0 (ice rule)",
            "sector": "all winding sectors" if winding is None else
                      f"(W_x, W_y) = {tuple(constraint.winding)}: W_x = sum_y E_((0,y),x), W_y = sum_x E_((x,0),y)",
            "basis": "NetKet Spin(1/2): local index 0 <-> E = S^z = +1/2",
            "lattice": "Lx x Ly torus; vertex v = (x, y) = y*Lx + x owns link (v,x) = mode 2v and (v,y) = mode 2v+1; "
                       "plaquette p = y*Lx + x with lower-left corner v = p; graph nk.graph.Grid([Ly, Lx]) node n = v",
            "site_order": "modes 2v, 2v+1 = links (v,x), (v,y) of vertex v = y*Lx + x",
            "tokens": "gauge block v = (link (v,x), link (v,y)), x-link most significant; raster order",
        },
        params={"Lx": Lx, "Ly": Ly, "J": J, "lam": lam, "winding": None if winding is None else list(winding)},
        qutip_factory=functools.partial(_qutip_operators, Lx, Ly, J, lam),
        tokens=TokenMap.of_hilbert(hilbert, [(2 * v, 2 * v + 1) for v in range(Lx * Ly)]),
    )
