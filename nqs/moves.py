"""A local operator as a diagonal plus a static list of merged moves: the connected configurations of a batch with
static shapes, and for every move the sites it changes.

An operator O = Σ_t O_t with terms O_t acting on site tuples S_t (k_t sites, local dimensions d_s) has the matrix
elements ⟨x|O|x′⟩ = Σ_t ⟨x_S|O_t|x′_S⟩ δ(x_rest, x′_rest). Every x′ ≠ x that a term reaches changes a subset U ⊆ S_t
by fixed *shifts* of the local indices, x′_u = (x_u + δ_u) mod d_u with δ_u ∈ {1, …, d_u − 1}: a *move*. Moves are
merged across terms (a single-site move reached by a field term and by every bond through the site is listed once,
with the summed element), and moves whose element vanishes for every x are dropped. Then

    Σ_x′ ⟨x|O|x′⟩ f(x′) = O_diag(x) f(x) + Σ_m O_m(x) f(x + δ_m),

with O_diag(x) = Σ_t ⟨x_S|O_t|x_S⟩ + c and O_m(x) read off per-term tables indexed by the local configuration x_S
(mixed radix, first site most significant: NetKet's `LocalOperator` convention, and the POVM blocks'). The shapes
are static — (B,) and (B, M) — which is what a jitted local estimator needs, and the sites a move changes are known
before any configuration is seen, which is what prefix reuse needs (`nqs.prefix_reuse`): the connected configuration
of move m agrees with x at every site outside U_m.

NetKet's `get_conn_padded` gives the same sum (its connected configurations are the moves with a nonzero element,
packed per x); this module exists because the packed order hides which sites changed. Fermionic operators (Jordan–
Wigner strings) are not local in this sense: `local_moves` returns None for them.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import netket as nk
import numpy as np

ZERO_ELEMENT = 1e-14


@dataclasses.dataclass(frozen=True, eq=False)
class LocalMoves:
    """The diagonal and merged moves of a local operator (module docstring).

    Attributes:
        local_sizes: d_s of every site, (N,).
        shifts: δ of every move, (M, N) (0 on the sites a move leaves alone).
        terms: per term (sites (k,), diagonal table (Π d,), move indices (m_t,), element table (Π d, m_t)).
        constant: c, added to the diagonal.
    """

    local_sizes: np.ndarray
    shifts: np.ndarray
    terms: tuple[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], ...]
    constant: complex = 0.0

    @classmethod
    def from_terms(cls, local_sizes: Sequence[int], terms: Sequence[tuple[Sequence[int], np.ndarray]],
                   constant: complex = 0.0) -> LocalMoves:
        """Moves of Σ_t O_t for (sites, dense matrix) pairs; a matrix is indexed by the local configuration of its
        sites in mixed radix, the first site most significant."""
        local_sizes = np.asarray(local_sizes, dtype=int)
        index_of: dict[tuple[tuple[int, int], ...], int] = {}
        per_term = []
        for sites, matrix in terms:
            sites = np.asarray(sites, dtype=int)
            sizes = local_sizes[sites]
            matrix = np.asarray(matrix)
            if matrix.shape != (np.prod(sizes),) * 2:
                raise ValueError(f"a term on sites {tuple(sites)} has a {matrix.shape} matrix, expected "
                                 f"{(int(np.prod(sizes)),) * 2}")
            digits = np.array(list(itertools.product(*(range(d) for d in sizes)))).reshape(-1, len(sites))
            place = np.concatenate([np.cumprod(sizes[:0:-1])[::-1], [1]]).astype(int)
            moves, table = [], []
            for delta in itertools.product(*(range(d) for d in sizes)):
                if not any(delta):
                    continue
                elements = matrix[np.arange(len(digits)), ((digits + delta) % sizes) @ place]
                if np.abs(elements).max() <= ZERO_ELEMENT:
                    continue
                key = tuple((int(s), int(x)) for s, x in zip(sites, delta) if x)
                moves.append(index_of.setdefault(key, len(index_of)))
                table.append(elements)
            table = np.stack(table, axis=1) if table else np.zeros((len(digits), 0), dtype=matrix.dtype)
            per_term.append((sites, np.diagonal(matrix).copy(), np.asarray(moves, dtype=np.int32), table))
        shifts = np.zeros((len(index_of), len(local_sizes)), dtype=np.int32)
        for key, m in index_of.items():
            for s, x in key:
                shifts[m, s] = x
        return cls(local_sizes, shifts, tuple(per_term), constant)

    @property
    def n_moves(self) -> int:
        return self.shifts.shape[0]

    @functools.cached_property
    def changed_sites(self) -> tuple[np.ndarray, ...]:
        """The sites U_m each move changes."""
        return tuple(np.flatnonzero(row) for row in self.shifts)

    @functools.cached_property
    def is_real(self) -> bool:
        return all(np.isrealobj(t[1]) and np.isrealobj(t[3]) for t in self.terms) and np.imag(self.constant) == 0

    def elements(self, indices: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(O_diag (B,), O_m (B, M)) for configurations given by their local indices (B, N)."""
        indices = jnp.asarray(indices, dtype=jnp.int32)
        dtype = jnp.float64 if self.is_real else jnp.complex128
        dtype = jax.dtypes.canonicalize_dtype(dtype)
        diagonal = jnp.full(indices.shape[:1], self.constant, dtype=dtype)
        mels = jnp.zeros((indices.shape[0], self.n_moves), dtype=dtype)
        for sites, diag, moves, table in self.terms:
            sizes = self.local_sizes[sites]
            place = np.concatenate([np.cumprod(sizes[:0:-1])[::-1], [1]]).astype(np.int32)
            row = indices[:, sites] @ jnp.asarray(place)
            diagonal = diagonal + jnp.asarray(diag, dtype=dtype)[row]
            if len(moves):
                mels = mels.at[:, moves].add(jnp.asarray(table, dtype=dtype)[row])
        return diagonal, mels

    def apply_moves(self, indices: jax.Array, moves: np.ndarray | None = None) -> jax.Array:
        """The local indices (B, m, N) of the configurations reached by `moves` (default: all) from (B, N)."""
        shifts = self.shifts if moves is None else self.shifts[np.asarray(moves, dtype=int)]
        return (jnp.asarray(indices)[:, None, :] + jnp.asarray(shifts)[None]) % jnp.asarray(self.local_sizes)

    def connected(self, indices: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """(O_diag (B,), connected local indices (B, M, N), O_m (B, M))."""
        diagonal, mels = self.elements(indices)
        return diagonal, self.apply_moves(indices), mels


def local_moves(operator, hilbert=None) -> LocalMoves | None:
    """The `LocalMoves` of a NetKet operator that is a sum of local terms (LocalOperator, PauliStrings, Ising and
    their jax versions, on any discrete space with a fixed local dimension per site), or None when it is not (a
    fermionic operator, a space without a local basis)."""
    hilbert = hilbert or operator.hilbert
    if isinstance(operator, (nk.operator.PauliStrings, nk.operator.PauliStringsJax)):
        operator = _pauli_strings_as_local(operator)
    if not _is_local_operator(operator):
        convert = getattr(operator, "to_local_operator", None)
        if convert is None:
            return None
        operator = convert()
    if not _is_local_operator(operator) or operator.hilbert != hilbert:
        return None
    dense = [m.toarray() if hasattr(m, "toarray") else np.asarray(m) for m in operator.operators]
    terms = [(tuple(int(s) for s in sites), m) for sites, m in zip(operator.acting_on, dense)]
    constant = complex(operator.constant)
    return LocalMoves.from_terms(np.asarray(hilbert.shape, dtype=int), terms,
                                 constant if constant.imag else constant.real)


def _is_local_operator(operator) -> bool:
    """NetKet's LocalOperator and LocalOperatorJax (both `LocalOperatorBase`): dense terms on site tuples."""
    return all(hasattr(operator, name) for name in ("operators", "acting_on", "constant"))


def _pauli_strings_as_local(operator) -> nk.operator.LocalOperator:
    """Σ_s w_s P_s as a LocalOperator (products of NetKet's σ^α, so the basis convention is NetKet's)."""
    hilbert = operator.hilbert
    sigma = {"X": nk.operator.spin.sigmax, "Y": nk.operator.spin.sigmay, "Z": nk.operator.spin.sigmaz}
    total = nk.operator.LocalOperator(hilbert, dtype=complex)
    for string, weight in zip(operator.operators, operator.weights):
        term = nk.operator.LocalOperator(hilbert, constant=complex(weight), dtype=complex)
        for site, letter in enumerate(string):
            if letter != "I":
                term = term @ sigma[letter](hilbert, site, dtype=complex)
        total = total + term
    return total
