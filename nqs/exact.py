"""Exact references for closed systems built on QuTiP: ground states in the system's sector, expectation values,
time evolution, and a check that a System's NetKet and QuTiP operators agree.

Basis: NetKet's (site 0 most significant, local index 0 first), which is QuTiP's `tensor` order.
When the system has a `Constraint`, the Hamiltonian is diagonalised inside the constrained sector
only: the sector states are enumerated by the constraint itself (`System.sector_states`, never by
filtering the whole space), the sector matrix is assembled from NetKet's connected elements
(`get_conn_padded`), wrapped in a `qutip.Qobj` and diagonalised by QuTiP's sparse eigensolver. This
makes the 20-site Heisenberg chain (sector dimension 184 756) cheap. The returned state is embedded
back into the full space, so it can be compared with any variational state. Sector dimensions are
counted by the constraint (`Constraint.count`), exactly, at any size.

Results are cached per system description (builder, parameters, conventions, constraint) within a
process; `clear_cache()` empties the cache.

Open-system references live in `nqs.exact_open`, energies known without diagonalisation (Bethe ansatz,
published values) in `nqs.reference_energies`; both are re-exported here under their old names.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from functools import reduce
from typing import Any

import numpy as np
import qutip
import scipy.sparse as sp

from nqs.exact_open import (  # noqa: F401  (re-exported: callers import them from nqs.exact)
    MAX_OPEN_SITES,
    MESOLVE_OPTIONS,
    classical_fidelity,
    mesolve_system,
    purity,
    steady_state,
    trace_distance,
)
from nqs.reference_energies import (  # noqa: F401
    bethe_ground_state_energy,
    hubbard_reference_energy,
    lieb_wu_energy,
    reference_ground_state_energy,
)
from nqs.system import System

_CACHE: dict[Any, Any] = {}
MAX_CHECK_SITES = 14
MAX_ED_STATES = 2**22  # ground_state diagonalises sectors up to this dimension
MAX_FULL_STATES = 2**26  # full-space vectors (embeddings of sector states) up to this dimension


@dataclasses.dataclass(frozen=True)
class ExactGroundState:
    """Exact ground state of a System.

    Attributes:
        energy: lowest eigenvalue of H in the sector (in the builder's units).
        vector: the normalised eigenvector in the sector basis, one amplitude per row of `configurations`.
        configurations: the sector's configurations (NetKet state values, (D, n_sites)), in NetKet's basis order.
        observables: ⟨O⟩ for every observable of the system.
        sector_dim: dimension of the space that was diagonalised.
        gap: E_1 − E_0 inside the sector (None when not computed).
        hilbert: the system's Hilbert space, for the full-space `state`.
    """

    energy: float
    vector: np.ndarray
    configurations: np.ndarray
    observables: dict[str, float]
    sector_dim: int
    gap: float | None
    hilbert: Any = dataclasses.field(default=None, repr=False, compare=False)

    @functools.cached_property
    def state(self) -> np.ndarray:
        """The ground state in the full Hilbert space (NetKet basis order, zeros off the sector). ValueError above
        `MAX_FULL_STATES` basis states (a gauge sector can be small in a huge space): use `vector` there."""
        return embed(self.hilbert, self.configurations, self.vector)


def embed(hilbert: Any, configurations: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """`vector` (amplitudes of `configurations`) as a full-space vector in NetKet's basis order, zeros elsewhere."""
    n_states = math.prod(int(d) for d in hilbert.shape)
    if n_states > MAX_FULL_STATES:
        raise ValueError(f"the full Hilbert space has {n_states} basis states (> {MAX_FULL_STATES}): work with the "
                         f"sector vector and its configurations instead")
    full = np.zeros(n_states, dtype=np.asarray(vector).dtype)
    full[basis_numbers(hilbert, configurations)] = vector
    return full


def clear_cache() -> None:
    """Forget all cached exact results."""
    _CACHE.clear()


def _key(system: System) -> str:
    return json.dumps(system.describe(), sort_keys=True, default=str)


def sparse_operators(system: System) -> dict[str, sp.csr_matrix]:
    """The Hamiltonian (key "hamiltonian") and every observable as scipy sparse matrices, cached per system."""
    key = ("sparse", _key(system))
    if key not in _CACHE:
        ops = {"hamiltonian": system.hamiltonian, **system.observables}
        _CACHE[key] = {name: sp.csr_matrix(op.to_sparse()) for name, op in ops.items()}
    return _CACHE[key]


def sector_dimension(system: System) -> int:
    """Number of configurations in the system's sector, counted exactly by the constraint (`Constraint.count` over
    the system's token sizes; no enumeration), or of the whole space when unconstrained: a Python int at any size
    (NetKet's `n_states` refuses more than 2^63)."""
    if system.constraint is None:
        return math.prod(int(d) for d in system.hilbert.shape)
    return system.constraint.count(system.token_map.token_sizes)


def _connected(operator: Any, configs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Connected configurations and matrix elements, flattened: ((B*C, N), (B*C,)); padding has mel 0."""
    conn, mels = operator.get_conn_padded(configs)
    conn, mels = np.asarray(conn), np.asarray(mels)
    return conn.reshape(-1, conn.shape[-1]), mels.reshape(-1)


def basis_numbers(hilbert: Any, states: np.ndarray) -> np.ndarray:
    """Index of every configuration in NetKet's basis order (mode 0 most significant, local index 0 first) as int64,
    for spaces of up to 2^63 states: NetKet's `states_to_numbers` refuses spaces too large to index, although a
    gauge sector in them can be small."""
    sizes = [int(d) for d in hilbert.shape]
    if math.prod(sizes) >= 2**63:
        raise ValueError(f"a Hilbert space of {math.prod(sizes)} states cannot be numbered in 64 bits")
    place = np.asarray([math.prod(sizes[m + 1:]) for m in range(len(sizes))], dtype=np.int64)
    return np.asarray(hilbert.states_to_local_indices(np.asarray(states)), dtype=np.int64) @ place


def _positions(numbers: np.ndarray, sorted_numbers: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Index in `states` of every basis number (−1 where it is not among them): binary search, O(D) memory."""
    at = np.minimum(np.searchsorted(sorted_numbers, numbers), len(sorted_numbers) - 1)
    return np.where(sorted_numbers[at] == numbers, order[at], -1)


def sector_matrix(operator: Any, states: np.ndarray, *, batch: int = 16384, projected: bool = False
                  ) -> sp.csr_matrix:
    """The matrix ⟨x|O|x'⟩ restricted to the configurations `states`, in their order. They must be closed under O
    (ValueError otherwise) unless `projected`, which keeps the block P O P inside them: exact for expectation values
    of states of the sector."""
    hilbert = operator.hilbert
    numbers = basis_numbers(hilbert, states)
    order = np.argsort(numbers)
    sorted_numbers = numbers[order]
    rows, cols, vals = [], [], []
    for start in range(0, len(states), batch):
        chunk = states[start : start + batch]
        conn, mels = _connected(operator, chunk)
        col = _positions(basis_numbers(hilbert, conn), sorted_numbers, order)
        if not projected and np.any(col[np.abs(mels) > 0] < 0):
            raise ValueError("the operator leaves the constrained sector; its exact sector matrix is undefined")
        row = np.repeat(np.arange(start, start + len(chunk)), mels.size // len(chunk))
        keep = (np.abs(mels) > 0) & (col >= 0)
        rows.append(row[keep])
        cols.append(col[keep])
        vals.append(mels[keep])
    n = len(states)
    values = np.concatenate(vals)
    dtype = np.float64 if np.all(np.imag(values) == 0) else np.complex128
    return sp.csr_matrix((values.astype(dtype), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))


@dataclasses.dataclass(frozen=True)
class LowSpectrum:
    """The lowest eigenpairs of a System's Hamiltonian in its sector.

    Attributes:
        energies: the k lowest eigenvalues, ascending.
        vectors: (k, D) orthonormal eigenvectors, one amplitude per row of `configurations`.
        configurations: the sector's configurations (`System.sector_states()`; the full space without a constraint).
    """

    energies: np.ndarray
    vectors: np.ndarray
    configurations: np.ndarray

    @property
    def gaps(self) -> np.ndarray:
        """E_n − E_0 for n = 1 … k − 1 (in a gauge sector of a confining model: vacuum splitting, meson masses)."""
        return self.energies[1:] - self.energies[0]


def lowest_states(system: System, k: int = 1) -> LowSpectrum:
    """The `k` lowest eigenpairs of `system.hamiltonian` inside `system.constraint`'s sector (dense `eigh` up to 64
    states, QuTiP's sparse eigensolver above). Every symmetry sector the constraint does not fix (momentum, parity)
    is mixed in: a degenerate level appears once per state. Cached per system and k."""
    key = _key(system) + f"|k={k}"
    if key in _CACHE:
        return _CACHE[key]
    if system.is_open:
        raise ValueError("lowest_states is for closed systems; use the steady state of an open system")
    dimension = sector_dimension(system)
    if dimension > MAX_ED_STATES:
        raise ValueError(f"the sector has {dimension} states: too large for exact diagonalisation here (> "
                         f"{MAX_ED_STATES})")
    if not 1 <= k < max(dimension, 2):
        raise ValueError(f"k must be in 1 … {max(dimension - 1, 1)} for a sector of {dimension} states, got {k}")
    states = system.sector_states()
    matrix = sector_matrix(system.hamiltonian, states)
    herm = abs(matrix - matrix.conj().T).max() if matrix.nnz else 0.0
    if herm > 1e-10:
        raise ValueError(f"the Hamiltonian is not Hermitian in the sector (max |H - H^dag| = {herm:.2e})")
    if len(states) <= 64:
        energies, vectors = np.linalg.eigh(matrix.toarray())
        energies, vectors = energies[:k], vectors[:, :k]
    else:
        qobj = qutip.Qobj(matrix, dims=[[len(states)], [len(states)]], isherm=True)
        _, kets = qobj.eigenstates(sparse=True, eigvals=k, tol=1e-12, maxiter=100000)
        # Rayleigh–Ritz in the span: the sparse solver's vectors of a quasi-degenerate pair (the two vacua of a
        # ring, split by 1e-8) need not be orthogonal
        basis, _ = np.linalg.qr(np.stack([ket.full()[:, 0] for ket in kets], axis=1))
        energies, rotation = np.linalg.eigh(basis.conj().T @ (matrix @ basis))
        vectors = basis @ rotation
    result = LowSpectrum(np.asarray(energies, dtype=float), np.ascontiguousarray(vectors.T), states)
    _CACHE[key] = result
    return result


def ground_state(system: System, *, with_gap: bool = False) -> ExactGroundState:
    """Exact ground state of `system.hamiltonian`, inside `system.constraint`'s sector when there is one."""
    key = _key(system) + f"|gap={with_gap}"
    if key in _CACHE:
        return _CACHE[key]
    spectrum = lowest_states(system, 2 if with_gap else 1)
    vector, states = spectrum.vectors[0], spectrum.configurations
    gap = float(spectrum.gaps[0]) if with_gap else None
    observables = expectation_values(system, vector, configurations=states)
    result = ExactGroundState(float(spectrum.energies[0]), vector, states, observables, len(states), gap,
                              system.hilbert)
    _CACHE[key] = result
    return result


def loschmidt_rate(states: np.ndarray, references: np.ndarray, n: int) -> np.ndarray:
    """r = −(1/n) ln Σ_a |⟨φ_a|ψ⟩|² of each row ψ of `states` (normalised) into the span of the orthonormal rows φ_a
    of `references`: one row gives the return rate of a single state, several the rate into a degenerate manifold
    (Heyl, Polkovnikov, Kehrein, PRL 110, 135704 (2013); Heyl, Rep. Prog. Phys. 81, 054001 (2018))."""
    weight = np.sum(np.abs(np.atleast_2d(states) @ np.atleast_2d(references).conj().T) ** 2, axis=1)
    return -np.log(np.maximum(weight, 1e-300)) / n


def expectation_values(system: System, state: np.ndarray, *, configurations: np.ndarray | None = None
                       ) -> dict[str, float]:
    """⟨ψ|O|ψ⟩/⟨ψ|ψ⟩ for every observable of the system (real parts; raises if the imaginary part is not tiny).

    `state` is a full-space vector (NetKet basis order), or with `configurations` the amplitudes of those
    configurations (a sector vector; amplitudes elsewhere are zero, so an observable that leaves the sector
    contributes only its elements inside it)."""
    state = np.asarray(state)
    if configurations is None:
        n_states = math.prod(int(d) for d in system.hilbert.shape)
        if state.shape != (n_states,):
            raise ValueError(f"state has shape {state.shape}, expected ({n_states},)")
        nz = np.flatnonzero(np.abs(state) > 0)
        configurations, state = np.asarray(system.hilbert.numbers_to_states(nz)), state[nz]
    elif state.shape != (len(configurations),):
        raise ValueError(f"state has shape {state.shape}, expected ({len(configurations)},): one amplitude per "
                         "configuration")
    numbers = basis_numbers(system.hilbert, configurations)
    order = np.argsort(numbers)
    norm = np.vdot(state, state).real
    values = {}
    for name, op in system.observables.items():
        conn, mels = _connected(op, configurations)
        rows = np.repeat(np.arange(len(configurations)), mels.size // len(configurations))
        at = _positions(basis_numbers(system.hilbert, conn), numbers[order], order)
        psi_conn = np.where(at >= 0, state[np.maximum(at, 0)], 0.0)
        value = np.sum(np.conj(state[rows]) * mels * psi_conn) / norm  # Σ ψ*(x) O(x,x') ψ(x')
        if abs(value.imag) > 1e-8 * max(1.0, abs(value.real)):
            raise ValueError(f"observable {name!r} has a complex expectation value {value}; is it Hermitian?")
        values[name] = float(value.real)
    return values


def check_operators(system: System, *, atol: float = 1e-10) -> float:
    """Compare the System's NetKet operators with its independently built QuTiP operators.

    Checks the Hamiltonian, every observable and every jump operator; raises AssertionError naming
    the first operator that differs by more than `atol`. Returns the largest difference found.
    """
    if system.n_sites > MAX_CHECK_SITES:
        raise ValueError(f"check_operators builds full matrices: N = {system.n_sites} > {MAX_CHECK_SITES}")
    q = system.to_qutip()
    pairs = [("hamiltonian", system.hamiltonian, q["H"])]
    pairs += [(f"observable {k!r}", system.observables[k], q["observables"][k]) for k in system.observables]
    pairs += [(f"jump operator {i}", op, c) for i, (op, c) in enumerate(zip(system.jump_operators, q["c_ops"]))]
    if len(q["c_ops"]) != len(system.jump_operators):
        raise AssertionError(f"{len(system.jump_operators)} NetKet jump operators but {len(q['c_ops'])} QuTiP c_ops")
    worst = 0.0
    for name, nk_op, qobj in pairs:
        if qobj.dims != [list(system.hilbert.shape), list(system.hilbert.shape)]:
            raise AssertionError(f"{name}: QuTiP dims {qobj.dims} do not match the Hilbert space "
                                 f"{system.hilbert.shape}")
        diff = nk_op.to_sparse() - qobj.data.as_scipy()
        err = float(abs(diff).max()) if diff.nnz else 0.0
        if err > atol:
            raise AssertionError(f"{name}: NetKet and QuTiP operators differ by {err:.3e} > {atol:.1e}")
        worst = max(worst, err)
    return worst


# -- closed-system dynamics -----------------------------------------------------------------------
SESOLVE_OPTIONS = {"atol": 1e-12, "rtol": 1e-10, "nsteps": 100000}
_LOCAL_STATES = {
    "up": np.array([1.0, 0.0]),
    "down": np.array([0.0, 1.0]),
    "x+": np.array([1.0, 1.0]) / np.sqrt(2),
    "x-": np.array([1.0, -1.0]) / np.sqrt(2),
    "y+": np.array([1.0, 1.0j]) / np.sqrt(2),
}


def product_state(hilbert: Any, local_state: str | np.ndarray) -> np.ndarray:
    """⊗_i |φ_i⟩ in NetKet order for spin-1/2: "up", "down", "x+" (|→⟩), "x-", "y+", "neel" (site 0 up),
    or an explicit single-site vector (local index 0 = σᶻ = +1)."""
    n = hilbert.size
    if isinstance(local_state, str):
        if local_state == "neel":
            sites = [_LOCAL_STATES["up" if i % 2 == 0 else "down"] for i in range(n)]
        elif local_state in _LOCAL_STATES:
            sites = [_LOCAL_STATES[local_state]] * n
        else:
            raise ValueError(f"unknown product state {local_state!r}; choose one of {sorted(_LOCAL_STATES) + ['neel']}")
    else:
        v = np.asarray(local_state, dtype=complex)
        if v.shape != (hilbert.local_size,):
            raise ValueError(f"single-site state must have shape ({hilbert.local_size},), got {v.shape}")
        sites = [v] * n
    psi = reduce(np.kron, [np.asarray(s, dtype=complex) for s in sites])
    return psi / np.linalg.norm(psi)


@dataclasses.dataclass(frozen=True)
class ExactTrajectory:
    """Exact closed-system evolution on a time grid (NetKet basis order).

    Attributes:
        times, energy, norm: arrays over the grid.
        observables: name -> ⟨O⟩(t).
        entropy: half-chain von Neumann entropy S(t) (cut after site N//2 - 1).
        loschmidt: |⟨ψ(0)|ψ(t)⟩|²; return_rate: −log(loschmidt)/N.
        fidelity: |⟨ψ_exact(t)|ψ_var(t)⟩|² when variational states were given, else None.
        states: the state vectors (len(times), dim).
    """

    times: np.ndarray
    energy: np.ndarray
    norm: np.ndarray
    observables: dict[str, np.ndarray]
    entropy: np.ndarray
    loschmidt: np.ndarray
    return_rate: np.ndarray
    fidelity: np.ndarray | None
    states: np.ndarray


def half_chain_entropy(psi: np.ndarray, n_sites: int, local_size: int = 2) -> float:
    """Von Neumann entropy of the first N//2 sites of a pure state (natural log)."""
    cut = n_sites // 2
    return _entropy(np.asarray(psi).reshape(local_size**cut, -1))


def _entropy(schmidt_matrix: np.ndarray) -> float:
    s = np.linalg.svd(schmidt_matrix, compute_uv=False)
    p = s**2 / np.sum(s**2)
    p = p[p > 1e-300]
    return float(-np.sum(p * np.log(p)))


def sector_half_chain_entropy(system: System, configurations: np.ndarray, vector: np.ndarray) -> float:
    """Von Neumann entropy of the modes of the first n_tokens//2 tokens (sites, gauge blocks) of a sector vector:
    the Schmidt matrix is indexed by the distinct configurations of the two halves."""
    tokens = system.token_map.modes
    left = sorted(m for token in tokens[: len(tokens) // 2] for m in token)
    right = sorted(set(range(system.n_sites)) - set(left))
    x = np.asarray(configurations)
    _, row = np.unique(x[:, left], axis=0, return_inverse=True)
    _, col = np.unique(x[:, right], axis=0, return_inverse=True)
    matrix = np.zeros((row.max() + 1, col.max() + 1), dtype=complex)
    matrix[row.reshape(-1), col.reshape(-1)] = vector
    return _entropy(matrix)


def evolve(
    system: System,
    psi0: np.ndarray,
    times: np.ndarray,
    *,
    configurations: np.ndarray | None = None,
    variational_states: np.ndarray | None = None,
    method: str = "auto",
) -> ExactTrajectory:
    """|ψ(t)⟩ = e^{−iHt}|ψ0⟩ on `times` with QuTiP `sesolve` or scipy `expm_multiply`.

    Full space (default): `psi0` in NetKet's basis order; sesolve on the builder's QuTiP Hamiltonian up to 12
    modes, expm_multiply on NetKet's sparse H above. With `configurations` (a sector, e.g. `System.sector_states()`)
    `psi0`, the returned states and `variational_states` are sector vectors and H is the sector matrix: a gauge
    sector evolves without the full space (sesolve up to 4 096 states, expm_multiply above). expm_multiply needs an
    evenly spaced grid.
    """
    if method not in ("auto", "sesolve", "expm"):
        raise ValueError(f"method must be 'auto', 'sesolve' or 'expm', got {method!r}")
    times = np.asarray(times, dtype=float)
    psi0 = np.asarray(psi0, dtype=complex)
    dim = math.prod(int(d) for d in system.hilbert.shape) if configurations is None else len(configurations)
    if psi0.shape != (dim,):
        raise ValueError(f"psi0 has shape {psi0.shape}, expected ({dim},)")
    psi0 = psi0 / np.linalg.norm(psi0)
    H, observables = _evolution_operators(system, configurations)
    small = system.n_sites <= 12 if configurations is None else dim <= 4096
    if method == "sesolve" or (method == "auto" and small):
        if configurations is None:
            H_q, dims = system.to_qutip()["H"], [list(system.hilbert.shape), [1] * system.n_sites]
        else:
            H_q, dims = qutip.Qobj(H, dims=[[dim], [dim]]), [[dim], [1]]
        res = qutip.sesolve(H_q, qutip.Qobj(psi0, dims=dims), times, options=SESOLVE_OPTIONS)
        states = np.stack([s.full()[:, 0] for s in res.states])
    else:
        if not np.allclose(np.linspace(times[0], times[-1], len(times)), times):
            raise ValueError("the expm_multiply path needs an evenly spaced time grid")
        states = sp.linalg.expm_multiply(-1j * H, psi0, start=times[0], stop=times[-1], num=len(times), endpoint=True)
    if configurations is None:
        entropy = [half_chain_entropy(s, system.n_sites, system.hilbert.local_size) for s in states]
    else:
        entropy = [sector_half_chain_entropy(system, configurations, s) for s in states]
    overlap0 = np.abs(states @ psi0.conj()) ** 2
    fidelity = None
    if variational_states is not None:
        v = np.asarray(variational_states)
        v = v / np.linalg.norm(v, axis=1, keepdims=True)
        fidelity = np.abs(np.einsum("ti,ti->t", states.conj(), v)) ** 2
    return ExactTrajectory(
        times=times,
        energy=_expectations(H, states),
        norm=np.linalg.norm(states, axis=1),
        observables={name: _expectations(o, states) for name, o in observables.items()},
        entropy=np.asarray(entropy),
        loschmidt=overlap0,
        return_rate=loschmidt_rate(states, psi0, system.n_tokens),
        fidelity=fidelity,
        states=states,
    )


def _expectations(matrix: sp.spmatrix, states: np.ndarray) -> np.ndarray:
    return np.einsum("ti,ti->t", states.conj(), (matrix @ states.T).T).real


def _evolution_operators(system: System, configurations: np.ndarray | None
                         ) -> tuple[sp.csr_matrix, dict[str, sp.csr_matrix]]:
    """H and the observables as sparse matrices: full space (cached), or inside `configurations` (observables
    projected on the sector, exact for its states)."""
    if configurations is None:
        matrices = dict(sparse_operators(system))
        return matrices.pop("hamiltonian"), matrices
    return sector_operators(system, configurations)


def sector_operators(system: System, configurations: np.ndarray) -> tuple[sp.csr_matrix, dict[str, sp.csr_matrix]]:
    """H and every observable as sector matrices over `configurations` (observables projected), cached per system."""
    key = ("sector_operators", _key(system), len(configurations))
    if key not in _CACHE:
        _CACHE[key] = (sector_matrix(system.hamiltonian, configurations),
                       {name: sector_matrix(op, configurations, projected=True)
                        for name, op in system.observables.items()})
    return _CACHE[key]
