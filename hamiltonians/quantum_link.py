"""The 1+1D U(1) quantum link model with staggered matter (``../shared/notes/models.md`` A.2–A.3).

    H = −Jκ Σ_j (ψ_j† U_j ψ_{j+1} + h.c.) + m Σ_j (−1)^j ψ_j†ψ_j + (g²/2) Σ_j (E_j + ε_bg)²,

N matter sites j = 0 … N−1 (N even), link j = (j, j+1) a spin S with E_j = S^z_j and U_j = S^+_j; κ = 1 ("bare":
Banerjee et al., PRL 109, 175302 (2012)) or κ = 1/√(S(S+1)) ("normalised": Zache et al., PRD 106, L091502 (2022);
Halimeh et al., Quantum 6, 878 (2022)). Staggered charge q_j = n_j − (1 − (−1)^j)/2; Gauss law
G_j = E_j − E_{j−1} − q_j = Q_j (static charges Q_j, zero by default), imposed as the constraint
`nqs.gauss_law.GaussLaw1D`, so ansätze and exact references live in the Gauss-law sector only.

Modes and tokens: the Hilbert space is Fock(1) ⊗ Spin(S) ⊗ Fock(1) ⊗ … (matter j is mode 2j, link j mode 2j+1);
the gauge block j = (n_j, E_j) is one token of 2(2S+1) values, matter most significant. Local indices: matter
index = occupation; link index k ↔ E = S − k (NetKet's Spin order, QuTiP's ``jmat``).

Boundaries. Periodic: link N−1 joins sites N−1 and 0. Open: N links (link j right of site j), a fixed left field
E_{−1} = E_L (``boundary_field``: ½ for half-integer S, 0 for integer S by default), no hop across link N−1.

Matter. Hard-core bosons (ψ = σ⁻) or fermions by Jordan–Wigner over the sites; nearest-neighbour hops carry no
string, the periodic hop c†_{N−1}c_0 carries (−1)^{N_f−1}. The Gauss law on a ring fixes N_f = N/2 − Σ_j Q_j, so
that sign is a constant of the sector and the NetKet operator applies it as one (exact on every Gauss-law state;
``tests/test_quantum_link.py`` checks it against genuine fermion operators with strings). In 1D both matter types
have the same spectrum (a link rotation e^{iπS^z} absorbs any bond sign, models.md A.3).

Frames. ``frame="particle_hole"`` relabels the local bases (models.md A.3.2): matter on odd sites n → 1 − n, and
E → −E on even links; then H = Σ_j [−Jκ(σ⁻_j S⁺_j σ⁻_{j+1} + h.c.) + (m/2)σᶻ_j + (g²/2)(S^z_j)²] (ε_bg = 0),
G'_j = S^z_{j−1} + S^z_j + (σᶻ_j + 1)/2 and the bare vacuum is every matter index 0. Observables are always those
of the original frame.

Observables (intensive unless said): ``electric_field`` (1/N)Σ E_j, ``electric_field_squared`` (1/N)Σ E_j²,
``chiral_condensate`` Σ = (1/N)Σ (−1)^j n_j (−½ in the bare vacuum), ``charge_density`` (1/N)Σ|q_j|, and the total
``gauss_law_violation`` Σ_j (G_j − Q_j)² (zero on every state of the sector).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Sequence

import netket as nk
import numpy as np
import qutip

from nqs.gauss_law import GaussLaw1D
from nqs.system import System
from nqs.tokens import TokenMap

Physical = tuple  # physical values of the modes an operator acts on (occupations n, fields E)
Action = Callable[[Physical], list[tuple[Physical, float]]]


@functools.cache
def _hilbert(N: int, S: float) -> nk.hilbert.DiscreteHilbert:
    return functools.reduce(lambda a, b: a * b, [nk.hilbert.Fock(n_max=1) * nk.hilbert.Spin(S)] * N)


class _Frame:
    """Local index ↔ physical value of every mode (see the module docstring)."""

    def __init__(self, N: int, S: float, particle_hole: bool):
        self.N, self.S, self.n_link = N, S, round(2 * S + 1)
        self.flip = [particle_hole and j % 2 == 1 for j in range(N)]  # matter j: n = 1 − index
        self.sign = [-1 if particle_hole and j % 2 == 0 else 1 for j in range(N)]  # link j: E = sign (S − index)

    def sizes(self, modes: Sequence[int]) -> list[int]:
        return [2 if m % 2 == 0 else self.n_link for m in modes]

    def value(self, mode: int, index: int) -> float:
        j = mode // 2
        return (index ^ int(self.flip[j])) if mode % 2 == 0 else self.sign[j] * (self.S - index)

    def index(self, mode: int, value: float) -> int | None:
        j = mode // 2
        if mode % 2 == 0:
            return int(value) ^ int(self.flip[j])
        k = self.S - self.sign[j] * value
        return round(k) if -1e-9 < k < self.n_link - 1 + 1e-9 else None

    def operator(self, hilbert, modes: Sequence[int], action: Action) -> nk.operator.LocalOperator:
        """The LocalOperator on `modes` whose physical action is `action` (physical values → [(values, amplitude)])."""
        sizes = self.sizes(modes)
        matrix = np.zeros((math.prod(sizes), math.prod(sizes)))
        for column, idx in enumerate(itertools.product(*[range(d) for d in sizes])):
            for out, amplitude in action(tuple(self.value(m, k) for m, k in zip(modes, idx, strict=True))):
                target = [self.index(m, v) for m, v in zip(modes, out, strict=True)]
                if None not in target:
                    matrix[np.ravel_multi_index(target, sizes), column] += amplitude
        return nk.operator.LocalOperator(hilbert, [matrix], [list(modes)], dtype=float)


def _raise(S: float, E: float) -> float:
    """⟨E+1|S⁺|E⟩."""
    return math.sqrt(S * (S + 1) - E * (E + 1))


def _hop(S: float, coefficient: float) -> Action:
    """coefficient · (ψ_j† U_j ψ_{j+1} + h.c.) on (n_j, E_j, n_{j+1})."""

    def action(x):
        n_a, E, n_b = x
        if n_a == 0 and n_b == 1 and E < S:
            return [((1, E + 1, 0), coefficient * _raise(S, E))]
        if n_a == 1 and n_b == 0 and E > -S:
            return [((0, E - 1, 1), coefficient * _raise(S, E - 1))]
        return []

    return action


def _diagonal(f: Callable[..., float]) -> Action:
    return lambda x: [(x, f(*x))]


def _check(N: int, S: float, kappa: str, matter: str, frame: str, pbc: bool, boundary_field, static_charges):
    if N < 2 or N % 2:
        raise ValueError(f"the staggered chain needs an even number of sites N >= 2, got N={N}")
    if S <= 0 or abs(2 * S - round(2 * S)) > 1e-12:
        raise ValueError(f"the link spin S must be a positive multiple of 1/2, got S={S}")
    choices = {"kappa": (kappa, ("bare", "normalised")), "matter": (matter, ("fermion", "hardcore_boson")),
               "frame": (frame, ("original", "particle_hole"))}
    for name, (value, allowed) in choices.items():
        if value not in allowed:
            raise ValueError(f"unknown {name} {value!r}; choose one of {allowed}")
    if pbc and boundary_field is not None:
        raise ValueError("boundary_field is the fixed left field of an open chain; a ring (pbc=True) has none")
    if static_charges is not None and (len(static_charges) != N or any(q != int(q) for q in static_charges)):
        raise ValueError(f"static_charges must be {N} integers, one per site, got {static_charges}")


def quantum_link(
    N: int,
    *,
    S: float = 0.5,
    J: float = 1.0,
    m: float = 0.0,
    g2: float = 0.0,
    eps_bg: float = 0.0,
    kappa: str = "bare",
    matter: str = "fermion",
    pbc: bool = True,
    boundary_field: float | None = None,
    static_charges: Sequence[int] | None = None,
    frame: str = "original",
) -> System:
    """The 1+1D U(1) quantum link model on N sites (module docstring: Hamiltonian, Gauss law, conventions).

    Raises ValueError for odd N, S not a positive multiple of ½, unknown ``kappa``/``matter``/``frame``, a boundary
    field on a ring or one that is not S modulo 1, static charges of the wrong length or not integers, and (from
    the constraint) a static-charge pattern or boundary field that no configuration satisfies.
    """
    _check(N, S, kappa, matter, frame, pbc, boundary_field, static_charges)
    Q = [0] * N if static_charges is None else [int(q) for q in static_charges]
    E_L = None if pbc else (boundary_field if boundary_field is not None else (S % 1.0))
    if E_L is not None and abs((E_L - S) - round(E_L - S)) > 1e-12:
        raise ValueError(f"the boundary field E_L = {E_L} must differ from S = {S} by an integer")
    k = 1.0 if kappa == "bare" else 1.0 / math.sqrt(S * (S + 1))
    n_fermions = N // 2 - sum(Q)
    boundary_sign = (-1) ** (n_fermions - 1) if (pbc and matter == "fermion") else 1
    frame_map = _Frame(N, S, frame == "particle_hole")
    hilbert = _hilbert(N, S)
    op = functools.partial(frame_map.operator, hilbert)

    bonds = range(N) if pbc else range(N - 1)
    terms = [op((2 * j, 2 * j + 1, (2 * j + 2) % (2 * N)),
                _hop(S, -J * k * (boundary_sign if j == N - 1 else 1))) for j in bonds]
    terms += [op((2 * j,), _diagonal(lambda n, j=j: m * (-1) ** j * n)) for j in range(N)]
    terms += [op((2 * j + 1,), _diagonal(lambda E: 0.5 * g2 * (E + eps_bg) ** 2)) for j in range(N)]
    observables = _observables(N, Q, E_L, op)

    levels, sources = _gauss_tables(N, S, Q, frame_map)
    constraint = GaussLaw1D(levels, sources, round(2 * S + 1), None if E_L is None else round(E_L + S))
    params = {"N": N, "S": S, "J": J, "m": m, "g2": g2, "eps_bg": eps_bg, "kappa": kappa, "matter": matter,
              "pbc": pbc, "boundary_field": boundary_field, "static_charges": None if static_charges is None else Q,
              "frame": frame}
    return System(
        builder="hamiltonians.quantum_link",
        hilbert=hilbert,
        hamiltonian=sum(terms[1:], terms[0]),
        graph=nk.graph.Chain(N, pbc=pbc),
        constraint=constraint,
        observables=observables,
        conventions=_conventions(N, S, k, pbc, E_L, boundary_sign, matter, frame),
        params=params,
        qutip_factory=functools.partial(_qutip_operators, N, S, J * k, m, g2, eps_bg, pbc, Q, E_L, boundary_sign,
                                        frame == "particle_hole"),
        tokens=TokenMap.of_hilbert(hilbert, [(2 * j, 2 * j + 1) for j in range(N)]),
    )


def _charge(j: int, n: float) -> float:
    """q_j = n_j − (1 − (−1)^j)/2."""
    return n - (j % 2)


def _observables(N: int, Q: list[int], E_L: float | None, op) -> dict:
    def total(ops):
        return sum(ops[1:], ops[0])

    def violation(j):
        if j == 0 and E_L is not None:
            return op((0, 1), _diagonal(lambda n, E: (E - E_L - _charge(0, n) - Q[0]) ** 2))
        left = 2 * ((j - 1) % N) + 1
        return op((left, 2 * j, 2 * j + 1),
                  _diagonal(lambda Em, n, E, j=j: (E - Em - _charge(j, n) - Q[j]) ** 2))

    return {
        "electric_field": total([op((2 * j + 1,), _diagonal(lambda E: E / N)) for j in range(N)]),
        "electric_field_squared": total([op((2 * j + 1,), _diagonal(lambda E: E**2 / N)) for j in range(N)]),
        "chiral_condensate": total([op((2 * j,), _diagonal(lambda n, j=j: (-1) ** j * n / N)) for j in range(N)]),
        "charge_density": total([op((2 * j,), _diagonal(lambda n, j=j: abs(_charge(j, n)) / N)) for j in range(N)]),
        "gauss_law_violation": total([violation(j) for j in range(N)]),
    }


def _gauss_tables(N: int, S: float, Q: list[int], frame: _Frame) -> tuple[list[list[int]], list[list[int]]]:
    """Per block j and token value v = n_index (2S+1) + link_index: the link level E_j + S and the source q_j + Q_j."""
    levels, sources = [], []
    for j in range(N):
        values = [(frame.value(2 * j, a), frame.value(2 * j + 1, b)) for a in range(2) for b in range(frame.n_link)]
        levels.append([round(E + S) for _, E in values])
        sources.append([round(_charge(j, n)) + Q[j] for n, _ in values])
    return levels, sources


def _conventions(N, S, kappa, pbc, E_L, boundary_sign, matter, frame) -> dict:
    return {
        "units": "J (energies in units of the couplings as given)",
        "boundary": "pbc" if pbc else "obc",
        "lattice": "chain",
        "hamiltonian": "-J kappa sum_j (psi_j^dag S^+_j psi_{j+1} + h.c.) + m sum_j (-1)^j n_j "
                       "+ (g2/2) sum_j (E_j + eps_bg)^2",
        "kappa": kappa,
        "gauss_law": "G_j = E_j - E_{j-1} - q_j = Q_j, q_j = n_j - (1 - (-1)^j)/2",
        "matter": matter,
        "jordan_wigner": f"periodic hop sign (-1)^(N_f-1) = {boundary_sign} at N_f fixed by the Gauss law"
                         if matter == "fermion" and pbc else "none",
        "left_boundary_field": E_L,
        "frame": frame,
        "basis": "modes (n_0, E_0, n_1, E_1, ...): matter Fock index = n; link Spin index k <-> E = S - k; "
                 "particle_hole frame: n -> 1 - n on odd sites, E -> -E on even links",
        "tokens": "gauge block j = (matter j, link j -> j+1), matter most significant",
        "site_order": "0 ... N-1",
    }


def _qutip_operators(N, S, Jk, m, g2, eps_bg, pbc, Q, E_L, boundary_sign, particle_hole) -> dict:
    """H and the observables as QuTiP tensor products over the 2N modes, built from ``destroy`` and ``jmat`` in the
    original frame and rotated into the particle-hole frame by the relabelling unitary (independent of the NetKet
    path above). Full tensor space: small N only."""
    d = round(2 * S + 1)
    dims = [2, d] * N
    eye = [qutip.qeye(x) for x in dims]

    def on(ops: dict[int, qutip.Qobj]) -> qutip.Qobj:
        return qutip.tensor([ops.get(i, eye[i]) for i in range(2 * N)])

    a, Sz, Sp = qutip.destroy(2), qutip.jmat(S, "z"), qutip.jmat(S, "+")
    n = [on({2 * j: a.dag() * a}) for j in range(N)]
    E = [on({2 * j + 1: Sz}) for j in range(N)]
    hops = [(j, (j + 1) % N) for j in (range(N) if pbc else range(N - 1))]
    H = 0
    for j, k in hops:
        sign = boundary_sign if k == 0 else 1
        term = on({2 * j: a.dag(), 2 * j + 1: Sp, 2 * k: a})
        H += -Jk * sign * (term + term.dag())
    H += sum(m * (-1) ** j * n[j] + 0.5 * g2 * (E[j] + eps_bg) ** 2 for j in range(N))
    one = on({})
    q = [n[j] - (j % 2) * one for j in range(N)]
    left = [E[j - 1] if (j > 0 or pbc) else E_L * one for j in range(N)]
    obs = {
        "electric_field": sum(E) / N,
        "electric_field_squared": sum(e * e for e in E) / N,
        "chiral_condensate": sum((-1) ** j * n[j] for j in range(N)) / N,
        "charge_density": sum((1 - 2 * (j % 2)) * q[j] for j in range(N)) / N,  # |q_j| = ±q_j on its two values
        "gauss_law_violation": sum((E[j] - left[j] - q[j] - Q[j] * one) ** 2 for j in range(N)),
    }
    if particle_hole:
        flip_link = qutip.Qobj(np.fliplr(np.eye(d)))
        W = on({**{2 * j: qutip.sigmax() for j in range(1, N, 2)}, **{2 * j + 1: flip_link for j in range(0, N, 2)}})
        H, obs = W * H * W, {name: W * o * W for name, o in obs.items()}
    return {"H": H, "c_ops": [], "observables": obs}
