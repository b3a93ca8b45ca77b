"""Informationally complete POVMs and the Lindbladian in the POVM (probability) representation.

A single-qubit IC-POVM {M^a}, a = 0..3, M^a ≥ 0, Σ_a M^a = 1, turns a density matrix of N qubits into
a probability distribution over 4^N outcomes (Carrasquilla et al., Nat. Mach. Intell. 1, 155 (2019)):

    P(a) = Tr[ρ M^(a)],  M^(a) = ⊗_i M^(a_i),    ρ = Σ_a P(a) N^(a),  N^a = Σ_b T⁻¹_ab M^b,  T_ab = Tr[M^a M^b].

The Lindblad equation dρ/dt = 𝓛ρ becomes a linear equation for P (Luo, Chen, Carrasquilla, Clark,
PRL 128, 090501 (2022); Reh, Schmitt, Gärttner, PRL 127, 230501 (2021)):

    dP(a)/dt = Σ_b L_ab P(b),  L_ab = Tr[M^a 𝓛(N^b)],

and a k-local term of 𝓛 gives a real 4^k × 4^k block acting on its sites (identity elsewhere, since
Tr[M^a N^b] = δ_ab). Σ_a L_ab = 0 expresses trace preservation. Observables are averages of
Q_O(a) = Tr[O N^(a)] over P.

Outcome strings a = (a_0, ..., a_{N-1}) are flattened with a_0 most significant, like NetKet and QuTiP.
Lindblad convention: 𝓛ρ = −i[H, ρ] + Σ_k (L_k ρ L_k† − ½{L_k†L_k, ρ}), rates folded into L_k.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from functools import reduce

import numpy as np

from nqs.moves import LocalMoves

_PAULI = {
    "I": np.eye(2, dtype=complex),
    "X": np.array([[0, 1], [1, 0]], dtype=complex),
    "Y": np.array([[0, -1j], [1j, 0]], dtype=complex),
    "Z": np.array([[1, 0], [0, -1]], dtype=complex),
}


@dataclasses.dataclass(frozen=True, eq=False)
class POVM:
    """A single-qubit informationally complete POVM with 4 outcomes.

    Attributes:
        name: "tetrahedral" or "pauli4".
        M: (4, 2, 2) POVM elements in the basis (|↑⟩ = σᶻ=+1, |↓⟩).
        T: (4, 4) overlap matrix Tr[M^a M^b].
        T_inv: its inverse.
        N: (4, 2, 2) dual frame N^a = Σ_b T⁻¹_ab M^b.
    """

    name: str
    M: np.ndarray
    T: np.ndarray
    T_inv: np.ndarray
    N: np.ndarray

    @classmethod
    def from_elements(cls, name: str, M: np.ndarray) -> POVM:
        M = np.asarray(M, dtype=complex)
        if M.shape != (4, 2, 2):
            raise ValueError(f"a single-qubit POVM here has 4 elements of shape (2, 2), got {M.shape}")
        if not np.allclose(M.sum(0), np.eye(2), atol=1e-12):
            raise ValueError("POVM elements do not sum to the identity")
        if min(np.linalg.eigvalsh(m).min() for m in M) < -1e-12:
            raise ValueError("POVM elements must be positive semi-definite")
        T = np.einsum("aij,bji->ab", M, M).real
        if np.linalg.cond(T) > 1e8:
            raise ValueError("POVM is not informationally complete (singular overlap matrix)")
        T_inv = np.linalg.inv(T)
        N = np.einsum("ab,bij->aij", T_inv, M)
        return cls(name, M, T, T_inv, N)

    @classmethod
    def tetrahedral(cls, rotation: np.ndarray | None = None) -> POVM:
        """SIC POVM M^a = ¼(1 + s_a·σ) with s_0 = ẑ, s_1 = (2√2/3, 0, −1/3), s_2,3 = (−√2/3, ±√(2/3), −1/3)
        (jVMC's 'SIC'). `rotation` (3×3 orthogonal) rotates the tetrahedron: s_a → R s_a."""
        s = np.array(
            [
                [0.0, 0.0, 1.0],
                [2 * np.sqrt(2) / 3, 0.0, -1 / 3],
                [-np.sqrt(2) / 3, np.sqrt(2 / 3), -1 / 3],
                [-np.sqrt(2) / 3, -np.sqrt(2 / 3), -1 / 3],
            ]
        )
        if rotation is not None:
            R = np.asarray(rotation, dtype=float)
            if R.shape != (3, 3) or not np.allclose(R @ R.T, np.eye(3), atol=1e-10):
                raise ValueError("rotation must be a 3x3 orthogonal matrix")
            s = s @ R.T
        M = np.array([(_PAULI["I"] + v[0] * _PAULI["X"] + v[1] * _PAULI["Y"] + v[2] * _PAULI["Z"]) / 4 for v in s])
        return cls.from_elements("tetrahedral", M)

    @classmethod
    def pauli4(cls) -> POVM:
        """M⁰ = ⅓|↑⟩⟨↑|, M¹ = ⅓|+⟩⟨+|, M² = ⅓|r⟩⟨r| (|r⟩ = (|↑⟩ + i|↓⟩)/√2), M³ = 1 − M⁰ − M¹ − M²
        (the default of Luo et al.'s code)."""
        up = np.array([1, 0], dtype=complex)
        plus = np.array([1, 1], dtype=complex) / np.sqrt(2)
        right = np.array([1, 1j], dtype=complex) / np.sqrt(2)
        first = [np.outer(v, v.conj()) / 3 for v in (up, plus, right)]
        return cls.from_elements("pauli4", np.array(first + [np.eye(2) - sum(first)]))

    def describe(self) -> dict:
        return {"name": self.name, "elements": repr(np.round(self.M, 15).tolist())}


def _product(mats: Sequence[np.ndarray]) -> np.ndarray:
    return reduce(np.kron, mats)


def _site_frame(frame: np.ndarray, k: int) -> np.ndarray:
    """(4^k, 2^k, 2^k): k-site products of a single-site frame, outcome of the first site most significant."""
    out = frame
    for _ in range(k - 1):
        out = np.einsum("aij,bkl->abikjl", out, frame).reshape(out.shape[0] * 4, out.shape[1] * 2, out.shape[2] * 2)
    return out


def probabilities(rho: np.ndarray, povm: POVM, n_sites: int) -> np.ndarray:
    """P(a) = Tr[ρ M^(a)] for all 4^N outcome strings (N ≤ 10), contracting one site at a time."""
    if np.shape(rho) != (2**n_sites, 2**n_sites):
        raise ValueError(f"rho has shape {np.shape(rho)}, expected {(2**n_sites, 2**n_sites)}")
    t = np.asarray(rho, dtype=complex).reshape((2,) * (2 * n_sites))
    for k in range(n_sites):
        # axes: kets of sites k.., bras of sites k.., outcomes of sites <k; Σ_ij ρ_ij M^a_ji
        t = np.tensordot(t, povm.M, axes=([0, n_sites - k], [2, 1]))
    return t.reshape(-1).real


def density_matrix(P: np.ndarray, povm: POVM, n_sites: int) -> np.ndarray:
    """ρ = Σ_a P(a) N^(a) for a distribution over 4^N outcomes (N ≤ 10)."""
    if np.shape(P) != (4**n_sites,):
        raise ValueError(f"P has shape {np.shape(P)}, expected ({4**n_sites},)")
    t = np.asarray(P, dtype=complex).reshape((4,) * n_sites)
    for _ in range(n_sites):
        t = np.tensordot(t, povm.N, axes=([0], [0]))  # appends (ket, bra) of the contracted site
    order = list(range(0, 2 * n_sites, 2)) + list(range(1, 2 * n_sites, 2))
    return t.transpose(order).reshape(2**n_sites, 2**n_sites)


def observable_table(op: np.ndarray, povm: POVM) -> np.ndarray:
    """Q_O(a) = Tr[O N^(a)] for a k-site operator O (2^k × 2^k): shape (4^k,), outcomes flattened."""
    op = np.asarray(op, dtype=complex)
    k = round(np.log2(op.shape[0]))
    if op.shape != (2**k, 2**k):
        raise ValueError(f"operator must be 2^k x 2^k, got {op.shape}")
    q = np.einsum("ij,aji->a", op, _site_frame(povm.N, k))
    if np.abs(q.imag).max() > 1e-10:
        raise ValueError("Q_O is complex: the operator is not Hermitian")
    return q.real


def superoperator_block(povm: POVM, hamiltonian: np.ndarray | None = None,
                        jump: np.ndarray | None = None) -> np.ndarray:
    """Real 4^k × 4^k block L_ab = Tr[M^a 𝓛(N^b)] of one k-local Hamiltonian term h or jump operator Γ:

    𝓛(X) = −i[h, X]  or  𝓛(X) = Γ X Γ† − ½{Γ†Γ, X}.
    """
    op = hamiltonian if hamiltonian is not None else jump
    k = round(np.log2(np.shape(op)[0]))
    Mk, Nk = _site_frame(povm.M, k), _site_frame(povm.N, k)
    if hamiltonian is not None:
        h = np.asarray(hamiltonian, dtype=complex)
        image = -1j * (np.einsum("ij,bjk->bik", h, Nk) - np.einsum("bij,jk->bik", Nk, h))
    else:
        g = np.asarray(jump, dtype=complex)
        gg = g.conj().T @ g
        image = np.einsum("ij,bjk,lk->bil", g, Nk, g.conj())
        image -= 0.5 * (np.einsum("ij,bjk->bik", gg, Nk) + np.einsum("bij,jk->bik", Nk, gg))
    block = np.einsum("aij,bji->ab", Mk, image)
    if np.abs(block.imag).max() > 1e-12:
        raise ValueError("the POVM Lindbladian block is not real: is the Hamiltonian term Hermitian?")
    return block.real


@dataclasses.dataclass(frozen=True, eq=False)
class PovmLindbladian:
    """L_P = Σ_t B_t ⊗ 1 as a sum of real blocks B_t (4^k × 4^k) on site tuples S_t.

    `apply(P)` computes (L_P P) exactly for small N; `connected(a)` gives, for outcome strings a, the
    diagonal L_aa and every other b with a nonzero L_ab, so (L_P P)(a) = Σ_b L_ab P(b) can be estimated on
    samples as Σ_b L_ab P(b)/P(a). `connected` is pure jax.numpy with static shapes (`nqs.moves.LocalMoves`).

    The connected strings are merged across terms. A "move" changes the sites U ⊆ S_t of a by fixed
    shifts d ∈ {1, 2, 3}^|U| (b_u = a_u + d_u mod 4), so every b ≠ a a term reaches is one move, and a move
    shared by several terms (a single-site change reached by the site's jump term and by every bond
    through the site) is listed once with the summed element. The diagonal b = a of all terms is one
    number. On a 2D lattice with PBC this halves the strings the model must evaluate (3×3 XYZ: 189
    moves instead of 18·16 + 9·4 = 324 per-term strings).
    """

    n_sites: int
    povm: POVM
    terms: tuple[tuple[tuple[int, ...], np.ndarray], ...]

    def apply(self, P: np.ndarray) -> np.ndarray:
        """(L_P P) for P of shape (4^N,) or (4^N, batch)."""
        P = np.asarray(P)
        batch = P.shape[1:]
        t = P.reshape((4,) * self.n_sites + batch)
        out = np.zeros_like(t)
        for sites, block in self.terms:
            k = len(sites)
            b = block.reshape((4,) * (2 * k))
            moved = np.tensordot(b, t, axes=(list(range(k, 2 * k)), list(sites)))  # new axes first
            out += np.moveaxis(moved, list(range(k)), list(sites))
        return out.reshape(P.shape)

    def to_dense(self) -> np.ndarray:
        """The full 4^N × 4^N matrix (N ≤ 6)."""
        if self.n_sites > 6:
            raise ValueError(f"to_dense needs N <= 6, got {self.n_sites}")
        return self.apply(np.eye(4**self.n_sites))

    @functools.cached_property
    def moves(self) -> LocalMoves:
        """The diagonal and the merged moves of L_P (`nqs.moves.LocalMoves`, local dimension 4)."""
        return LocalMoves.from_terms([4] * self.n_sites, self.terms)

    @property
    def max_conn_size(self) -> int:
        """The number of off-diagonal connected strings per outcome string (merged moves)."""
        return self.moves.n_moves

    def connected(self, a):
        """(L_aa, b, L_ab) for outcome strings a (batch, N): shapes (batch,), (batch, n_moves, N), (batch, n_moves).

        b runs over the merged off-diagonal moves; an element is zero where a move does not connect a.
        """
        return self.moves.connected(a)


def _local_terms(operator) -> list[tuple[tuple[int, ...], np.ndarray]]:
    """(sites, dense matrix) of each term of a NetKet LocalOperator (local basis: index 0 = σᶻ=+1)."""
    if not hasattr(operator, "operators") or not hasattr(operator, "acting_on"):
        raise TypeError(f"the POVM Lindbladian needs NetKet LocalOperators, got {type(operator).__name__}")
    if operator.hilbert.local_size != 2:
        raise ValueError("the POVM formulation here is for qubits (local dimension 2)")
    # a constant c·1 in H commutes with ρ and drops out of −i[H, ρ]
    dense = lambda m: m.toarray() if hasattr(m, "toarray") else np.asarray(m)  # some terms are scipy.sparse
    return [(tuple(int(s) for s in sites), dense(m)) for sites, m in zip(operator.acting_on, operator.operators)]


def povm_lindbladian(system, povm: POVM | None = None) -> PovmLindbladian:
    """The POVM Lindbladian L_ab = Tr[M^a 𝓛(N^b)] of an open `nqs.System` (its Hamiltonian and jump operators)."""
    povm = povm or POVM.tetrahedral()
    blocks: dict[tuple[int, ...], np.ndarray] = {}
    for sites, h in _local_terms(system.hamiltonian):
        blocks[sites] = blocks.get(sites, 0) + superoperator_block(povm, hamiltonian=h)
    for jump in system.jump_operators:
        jump_terms = _local_terms(jump)
        if len(jump_terms) != 1 or complex(getattr(jump, "constant", 0.0)) != 0:
            raise ValueError("each jump operator must be a single local term (a product acting on a few sites)")
        sites, g = jump_terms[0]
        blocks[sites] = blocks.get(sites, 0) + superoperator_block(povm, jump=g)
    return PovmLindbladian(system.n_sites, povm, tuple(sorted(blocks.items())))
