"""The 2D Z2 lattice gauge theory and the toric code in fields, in the σˣ basis (``../shared/notes/models.md`` A.8).

Lattice. An L×L torus (L ≥ 2) of vertices v = (x, y), raster index v = y·L + x. Vertex v owns its two outgoing
links (v, x̂) = Hilbert mode 2v and (v, ŷ) = mode 2v + 1 (2L² spin-½ modes, `nk.hilbert.Spin(0.5, 2L²)`); its gauge
block is the token (2v, 2v + 1) of 4 values u = 2a + b (a, b the local indices of the x- and y-link). Plaquette p =
(x, y), index y·L + x, has its lower-left corner at vertex p and the boundary ∂p = {(p, x̂), (p + x̂, ŷ), (p + ŷ, x̂),
(p, ŷ)}; the star of v is {(v, x̂), (v, ŷ), (v − x̂, x̂), (v − ŷ, ŷ)}; coordinates mod L (at L = 2 two plaquettes
share links "around the back"). N_v = N_p = L², N_l = 2L². The graph is the torus of vertices
(`nk.graph.Square(L, pbc=True)`: its node n, at NetKet position (n // L, n % L), is vertex v = n).

Basis. The σˣ basis: local index 0 ↔ σˣ_l = +1, index 1 ↔ σˣ_l = −1 (the Hadamard image of the usual σᶻ basis).
σˣ_l and the stars A_v = Π_{l∋v} σˣ_l are diagonal; σᶻ_l flips link l and B_p = Π_{l∈∂p} σᶻ_l flips the four
links of p with matrix element +1. (On NetKet's Spin(½) the physical σˣ is the matrix `sigmaz`, the physical σᶻ the
matrix `sigmax`: the operators are `nk.operator.PauliStrings` with the labels exchanged.)

Models.
* Z2 LGT (Wegner, J. Math. Phys. 12, 2259 (1971); Kogut, RMP 51, 659 (1979)): H = −Σ_p B_p − g Σ_l σˣ_l in the
  Gauss-law sector A_v = g_v (g_v = +1 except at static charges), imposed as the constraint
  `nqs.z2_gauss_law.Z2GaussLaw`. Topological sector: the winding parities W_x = Π_y σˣ_{(0,y),x̂} (x-links crossing
  a vertical cut) and W_y = Π_x σˣ_{(x,0),ŷ} (y-links crossing a horizontal cut) of the σˣ = −1 loops; "trivial"
  fixes W_x = W_y = +1 (dimension 2^(L²−1)), "all" keeps the four sectors (2^(L²+1)). Wegner duality: the trivial
  sector is the untwisted, Z2-even 2D TFIM −Σ_p τˣ_p − g Σ_⟨pp'⟩ τᶻ_p τᶻ_p' on the dual torus (τˣ_p = B_p,
  σˣ_l = τᶻ_p τᶻ_p' for the two plaquettes of l); g_c = 1/3.04438 = 0.328474 (3D Ising; Blöte & Deng, PRE 66, 066110
  (2002)) separates the deconfined (g < g_c) from the confined phase.
* Toric code (Kitaev, Ann. Phys. 303, 2 (2003)) in fields: H = −J_v Σ_v A_v − J_p Σ_p B_p − h_x Σ_l σˣ_l −
  h_z Σ_l σᶻ_l. With h_z = 0 the stars commute with H and the system carries the constraint A_v = +1 (all
  topological sectors); then E0_toric(L, h_x) = −J_v L² + E0_LGT(L, g = h_x) for J_p = 1. With h_z ≠ 0 there is
  no constraint (full space; exact references at L ≤ 3). At h = 0, E0 = −(J_v N_v + J_p N_p) = −2L², four-fold
  degenerate on the torus.

Observables (intensive unless said): ``plaquette`` (1/N_p) Σ_p B_p, ``star`` (1/N_v) Σ_v A_v, ``electric_field``
(1/N_l) Σ_l σˣ_l, ``sigma_z`` (1/N_l) Σ_l σᶻ_l (toric code only), ``wilson_loop_RxT`` for 1 ≤ R ≤ T ≤ L//2: the
average over the N_v positions of the lower-left corner and, for R ≠ T, the two orientations (R×T and T×R) of
W = Π_{l∈∂(R×T)} σᶻ_l around the rectangle (``wilson_loop_1x1`` = ``plaquette``); Creutz ratios
χ(R, T) = −ln[W(R,T) W(R−1,T−1) / (W(R,T−1) W(R−1,T))]. ``gauss_law_violation`` (total, not intensive):
Σ_v (1 − g_v A_v)/2 = Σ_v (A_v − g_v)²/4, the number of violated stars (zero on every state of the sector; the
number of e-anyons of the toric code with h_z ≠ 0).
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence

import netket as nk
import numpy as np
import qutip

from nqs.system import System
from nqs.tokens import TokenMap
from nqs.z2_gauss_law import Z2GaussLaw, star_modes

PHYSICAL_TO_NETKET = {"X": "Z", "Z": "X"}  # in the σˣ basis the physical σˣ is NetKet's sigmaz, σᶻ its sigmax
Term = tuple[float, tuple[tuple[int, str], ...]]  # (coefficient, ((mode, "X"|"Z"), ...)) in physical Paulis

_BASIS = ("sigma^x basis: NetKet Spin(1/2) local index 0 <-> sigma^x_l = +1, index 1 <-> sigma^x_l = -1; A_v and "
          "sigma^x diagonal, sigma^z_l flips link l, B_p flips the four links of p (matrix elements +1)")
_LATTICE = ("LxL torus; vertex v = (x, y) = y*L + x owns link (v,x) = mode 2v and (v,y) = mode 2v+1; plaquette "
            "p = (x, y) = y*L + x with lower-left corner v = p, boundary (p,x), (p+x,y), (p+y,x), (p,y); star(v) = "
            "(v,x), (v,y), (v-x,x), (v-y,y); coordinates mod L; graph nk.graph.Square(L, pbc=True) node n = vertex n")


# -- the lattice ----------------------------------------------------------------------------------------------------
def _check_size(L) -> int:
    if isinstance(L, bool) or int(L) != L or int(L) < 2:
        raise ValueError(f"the Z2 gauge torus needs an integer L >= 2 (an L×L torus of vertices), got L={L}")
    return int(L)


def vertex(L: int, x: int, y: int) -> int:
    """The raster index y·L + x of vertex (x, y), coordinates mod L."""
    return (y % L) * L + (x % L)


def plaquette_modes(L: int, p: int) -> tuple[int, int, int, int]:
    """The modes of ∂p: (p, x̂), (p + x̂, ŷ), (p + ŷ, x̂), (p, ŷ)."""
    x, y = p % L, p // L
    return 2 * p, 2 * vertex(L, x + 1, y) + 1, 2 * vertex(L, x, y + 1), 2 * p + 1


def loop_modes(L: int, x: int, y: int, R: int, T: int) -> tuple[int, ...]:
    """The 2(R + T) modes around the R×T rectangle (R along x̂, T along ŷ) with lower-left corner (x, y)."""
    bottom = [2 * vertex(L, x + i, y) for i in range(R)]
    top = [2 * vertex(L, x + i, y + T) for i in range(R)]
    left = [2 * vertex(L, x, y + j) + 1 for j in range(T)]
    right = [2 * vertex(L, x + R, y + j) + 1 for j in range(T)]
    return tuple(bottom + top + left + right)


def wilson_loops(L: int) -> dict[str, list[tuple[int, ...]]]:
    """name → the link sets of its loops (module docstring: positions, and both orientations for R ≠ T)."""
    loops = {}
    for R in range(1, L // 2 + 1):
        for T in range(R, L // 2 + 1):
            shapes = [(R, T)] if R == T else [(R, T), (T, R)]
            loops[f"wilson_loop_{R}x{T}"] = [loop_modes(L, v % L, v // L, a, b) for a, b in shapes
                                             for v in range(L * L)]
    return loops


# -- operators: NetKet path -----------------------------------------------------------------------------------------
def _netket(hilbert: nk.hilbert.Spin, terms: Sequence[Term]) -> nk.operator.PauliStrings:
    """Σ c Π (physical Paulis) as NetKet PauliStrings in the σˣ basis (labels exchanged, `PHYSICAL_TO_NETKET`)."""
    strings, weights = [], []
    for c, ops in terms:
        label = ["I"] * hilbert.size
        for mode, p in ops:
            label[mode] = PHYSICAL_TO_NETKET[p]
        strings.append("".join(label))
        weights.append(float(c))
    return nk.operator.PauliStrings(hilbert, strings, weights, dtype=np.float64)


def _product(c: float, modes: Sequence[int], p: str) -> Term:
    return (c, tuple((m, p) for m in modes))


def _observable_terms(L: int, g_v: np.ndarray, sigma_z: bool) -> dict[str, list[Term]]:
    n_v, n_l = L * L, 2 * L * L
    obs = {
        "plaquette": [_product(1 / n_v, plaquette_modes(L, p), "Z") for p in range(n_v)],
        "star": [_product(1 / n_v, star_modes(L, L, v), "X") for v in range(n_v)],
        "electric_field": [(1 / n_l, ((m, "X"),)) for m in range(n_l)],
    }
    if sigma_z:
        obs["sigma_z"] = [(1 / n_l, ((m, "Z"),)) for m in range(n_l)]
    for name, loops in wilson_loops(L).items():
        obs[name] = [_product(1 / len(loops), modes, "Z") for modes in loops]
    obs["gauss_law_violation"] = [(n_v / 2, ())] + [_product(-g_v[v] / 2, star_modes(L, L, v), "X")
                                                    for v in range(n_v)]
    return obs


# -- operators: QuTiP path (independent: tensor products in the σᶻ basis, rotated site by site) ----------------------
def _qutip_operators(L: int, hamiltonian: dict, g_v: Sequence[int], sigma_z: bool) -> dict:
    """H and the observables as QuTiP tensor products of `sigmax`/`sigmaz` (σᶻ basis), rotated into the σˣ basis by
    a Hadamard on every link: local X' = h σˣ h, Z' = h σᶻ h. Full tensor space: L = 2 (8 links) in practice."""
    n_v, n_l = L * L, 2 * L * L
    h = qutip.Qobj(np.array([[1.0, 1.0], [1.0, -1.0]]) / math.sqrt(2))
    local = {"X": h * qutip.sigmax() * h, "Z": h * qutip.sigmaz() * h}
    one = qutip.tensor([qutip.qeye(2)] * n_l)

    def product(modes, p):
        return qutip.tensor([local[p] if m in modes else qutip.qeye(2) for m in range(n_l)])

    stars = [product(set(star_modes(L, L, v)), "X") for v in range(n_v)]
    plaquettes = [product(set(plaquette_modes(L, p)), "Z") for p in range(n_v)]
    sx = [product({m}, "X") for m in range(n_l)]
    sz = [product({m}, "Z") for m in range(n_l)]
    H = (-hamiltonian["Jv"] * sum(stars) - hamiltonian["Jp"] * sum(plaquettes) - hamiltonian["hx"] * sum(sx)
         - hamiltonian["hz"] * sum(sz))
    obs = {"plaquette": sum(plaquettes) / n_v, "star": sum(stars) / n_v, "electric_field": sum(sx) / n_l}
    if sigma_z:
        obs["sigma_z"] = sum(sz) / n_l
    for name, loops in wilson_loops(L).items():
        obs[name] = sum(product(set(modes), "Z") for modes in loops) / len(loops)
    obs["gauss_law_violation"] = sum((one - g * A) / 2 for g, A in zip(g_v, stars))
    return {"H": H, "c_ops": [], "observables": obs}


# -- builders -------------------------------------------------------------------------------------------------------
def _system(builder: str, L: int, terms: list[Term], constraint: Z2GaussLaw | None, g_v: np.ndarray,
            couplings: dict, params: dict, conventions: dict) -> System:
    hilbert = nk.hilbert.Spin(0.5, 2 * L * L)
    sigma_z = builder == "hamiltonians.toric_code"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NetKet warns that a length-2 periodic direction doubles no bond
        graph = nk.graph.Square(L, pbc=True)
    return System(
        builder=builder,
        hilbert=hilbert,
        hamiltonian=_netket(hilbert, terms),
        graph=graph,
        constraint=constraint,
        observables={k: _netket(hilbert, v) for k, v in _observable_terms(L, g_v, sigma_z).items()},
        conventions={"units": "couplings as given (Pauli operators)", "boundary": "pbc (torus)", "basis": _BASIS,
                     "lattice": _LATTICE, "site_order": "modes 2v, 2v+1 = links (v,x), (v,y) of vertex v = y*L + x",
                     "tokens": "gauge block v = (link (v,x), link (v,y)), x-link most significant; raster order",
                     "wilson_loops": "W(R,T): average over positions (and both orientations for R != T) of "
                                     "prod sigma^z around the RxT rectangle",
                     "gauss_law_violation": "sum_v (1 - g_v A_v)/2 = sum_v (A_v - g_v)^2/4 (number of violated stars)",
                     **conventions},
        params=params,
        qutip_factory=functools.partial(_qutip_operators, L, couplings, tuple(int(g) for g in g_v), sigma_z),
        tokens=TokenMap.of_hilbert(hilbert, [(2 * v, 2 * v + 1) for v in range(L * L)]),
    )


def _winding(sector) -> tuple[int, int] | None:
    if isinstance(sector, str):
        if sector not in ("trivial", "all"):
            raise ValueError(f"unknown sector {sector!r}; choose 'trivial', 'all' or a pair (W_x, W_y) of ±1")
        return (1, 1) if sector == "trivial" else None
    winding = tuple(sector)
    if len(winding) != 2 or any(w not in (1, -1) for w in winding):
        raise ValueError(f"a topological sector is a pair (W_x, W_y) of ±1, got {sector!r}")
    return (int(winding[0]), int(winding[1]))


def z2_gauge(L: int, *, g: float, sector: str | Sequence[int] = "trivial", charges: Sequence[int] = ()) -> System:
    """The pure Z2 lattice gauge theory H = −Σ_p B_p − g Σ_l σˣ_l on the L×L torus (module docstring).

    Gauss law A_v = g_v with g_v = −1 at the vertices in ``charges`` (static Z2 charges; their number must be even)
    and +1 elsewhere. ``sector``: "trivial" (W_x = W_y = +1, default), "all" (the four topological sectors) or a pair
    (W_x, W_y) of ±1. Raises ValueError for L < 2, an unknown sector, charges outside 0 … L² − 1 or repeated, and (from
    the constraint) an odd number of charges (Π_v A_v = 1 on the torus).
    """
    L = _check_size(L)
    winding = _winding(sector)
    charges = [int(c) for c in charges]
    if len(set(charges)) != len(charges) or any(not 0 <= c < L * L for c in charges):
        raise ValueError(f"charges must be distinct vertices in 0 … {L * L - 1}, got {charges}")
    g_v = np.ones(L * L, np.int64)
    g_v[charges] = -1
    constraint = Z2GaussLaw(L, targets=tuple(g_v), winding=winding)
    n_l = 2 * L * L
    terms = [_product(-1.0, plaquette_modes(L, p), "Z") for p in range(L * L)]
    terms += [(-g, ((m, "X"),)) for m in range(n_l)] if g != 0 else []
    return _system(
        "hamiltonians.z2_gauge", L, terms, constraint, g_v, {"Jv": 0.0, "Jp": 1.0, "hx": g, "hz": 0.0},
        params={"L": L, "g": g, "sector": sector if isinstance(sector, str) else list(winding), "charges": charges},
        conventions={"hamiltonian": "H = -sum_p B_p - g sum_l sigma^x_l, B_p = prod_{l in dp} sigma^z_l",
                     "gauss_law": f"A_v = prod_{{l in star(v)}} sigma^x_l = g_v; g_v = -1 at vertices {charges}",
                     "sector": "all topological sectors" if winding is None else
                               f"(W_x, W_y) = {winding}: W_x = prod_y sigma^x_((0,y),x), "
                               "W_y = prod_x sigma^x_((x,0),y)"},
    )


def toric_code(L: int, *, Jv: float = 1.0, Jp: float = 1.0, hx: float = 0.0, hz: float = 0.0) -> System:
    """The toric code in fields H = −J_v Σ_v A_v − J_p Σ_p B_p − h_x Σ_l σˣ_l − h_z Σ_l σᶻ_l on the L×L torus, in
    the σˣ basis (module docstring). With h_z = 0 the stars are conserved and the system carries the constraint
    A_v = +1 in all four topological sectors; with h_z ≠ 0 it lives in the full 2^(2L²)-dimensional space (exact
    references at L ≤ 3). Raises ValueError for L < 2.
    """
    L = _check_size(L)
    n_v, n_l = L * L, 2 * L * L
    terms = [_product(-Jv, star_modes(L, L, v), "X") for v in range(n_v)] if Jv != 0 else []
    terms += [_product(-Jp, plaquette_modes(L, p), "Z") for p in range(n_v)] if Jp != 0 else []
    terms += [(-hx, ((m, "X"),)) for m in range(n_l)] if hx != 0 else []
    terms += [(-hz, ((m, "Z"),)) for m in range(n_l)] if hz != 0 else []
    constraint = Z2GaussLaw(L) if hz == 0 else None
    return _system(
        "hamiltonians.toric_code", L, terms or [(0.0, ())], constraint, np.ones(n_v, np.int64),
        {"Jv": Jv, "Jp": Jp, "hx": hx, "hz": hz},
        params={"L": L, "Jv": Jv, "Jp": Jp, "hx": hx, "hz": hz},
        conventions={"hamiltonian": "H = -Jv sum_v A_v - Jp sum_p B_p - hx sum_l sigma^x_l - hz sum_l sigma^z_l",
                     "gauss_law": "A_v = +1 (constraint; all topological sectors)" if hz == 0 else
                                  "none: hz != 0 breaks the star symmetry (full space)",
                     "sector": "all topological sectors"},
    )
