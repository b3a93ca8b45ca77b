"""Exact references built on QuTiP: ground states in the system's sector, expectation values, and a
check that a System's NetKet and QuTiP operators agree.

Basis: NetKet's (site 0 most significant, local index 0 first), which is QuTiP's `tensor` order.
When the system has a `Constraint`, the Hamiltonian is diagonalised inside the constrained sector
only: the sector states are enumerated, the sector matrix is assembled from NetKet's connected
elements (`get_conn_flattened`), wrapped in a `qutip.Qobj` and diagonalised by QuTiP's sparse
eigensolver. This makes the 20-site Heisenberg chain (sector dimension 184 756) cheap. The returned
state is embedded back into the full space, so it can be compared with any variational state.

Results are cached per system description (builder, parameters, conventions, constraint) within a
process; `clear_cache()` empties the cache.
"""

from __future__ import annotations

import dataclasses
import json
import math
from functools import reduce
from typing import Any

import numpy as np
import qutip
import scipy.sparse as sp

from nqs.system import System

_CACHE: dict[Any, Any] = {}
MAX_CHECK_SITES = 14
MAX_OPEN_SITES = 9  # exact Lindblad references (mesolve, steady state) up to the 3×3 lattice: ρ is 512×512


@dataclasses.dataclass(frozen=True)
class ExactGroundState:
    """Exact ground state of a System.

    Attributes:
        energy: lowest eigenvalue of H in the sector (in the builder's units).
        state: normalised eigenvector in the full Hilbert space (NetKet basis order, zeros off-sector).
        observables: ⟨O⟩ for every observable of the system.
        sector_dim: dimension of the space that was diagonalised.
        gap: E_1 − E_0 inside the sector (None when not computed).
    """

    energy: float
    state: np.ndarray
    observables: dict[str, float]
    sector_dim: int
    gap: float | None


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
    """Number of configurations in the system's sector (the whole space when unconstrained)."""
    full = math.prod(int(d) for d in system.hilbert.shape)  # exact Python int (NetKet refuses n_states > 2^63)
    if system.constraint is None or full > 2**21:
        return full  # (with a constraint: an upper bound; enumerating would need gigabytes)
    return len(system.sector_states())


def _connected(operator: Any, configs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Connected configurations and matrix elements, flattened: ((B*C, N), (B*C,)); padding has mel 0."""
    conn, mels = operator.get_conn_padded(configs)
    conn, mels = np.asarray(conn), np.asarray(mels)
    return conn.reshape(-1, conn.shape[-1]), mels.reshape(-1)


def sector_matrix(operator: Any, states: np.ndarray, *, batch: int = 16384) -> sp.csr_matrix:
    """The matrix ⟨x|O|x'⟩ restricted to the configurations `states` (must be closed under O)."""
    hilbert = operator.hilbert
    numbers = np.asarray(hilbert.states_to_numbers(states))
    lookup = np.full(hilbert.n_states, -1, dtype=np.int64)
    lookup[numbers] = np.arange(len(states))
    rows, cols, vals = [], [], []
    for start in range(0, len(states), batch):
        chunk = states[start : start + batch]
        conn, mels = _connected(operator, chunk)
        col = lookup[np.asarray(hilbert.states_to_numbers(conn))]
        if np.any(col[np.abs(mels) > 0] < 0):
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


def ground_state(system: System, *, with_gap: bool = False) -> ExactGroundState:
    """Exact ground state of `system.hamiltonian`, inside `system.constraint`'s sector when there is one."""
    key = _key(system) + f"|gap={with_gap}"
    if key in _CACHE:
        return _CACHE[key]
    if system.is_open:
        raise ValueError("ground_state is for closed systems; use the steady state of an open system")
    states = system.sector_states()
    if len(states) > 2**22:
        raise ValueError(f"the sector has {len(states)} states: too large for exact diagonalisation here")
    matrix = sector_matrix(system.hamiltonian, states)
    herm = abs(matrix - matrix.conj().T).max() if matrix.nnz else 0.0
    if herm > 1e-10:
        raise ValueError(f"the Hamiltonian is not Hermitian in the sector (max |H - H^dag| = {herm:.2e})")
    qobj = qutip.Qobj(matrix, dims=[[len(states)], [len(states)]], isherm=True)
    n_eig = 2 if with_gap else 1
    if len(states) <= 64:
        energies, vectors = np.linalg.eigh(matrix.toarray())
        energies, vectors = energies[:n_eig], vectors[:, :n_eig]
    else:
        evals, kets = qobj.eigenstates(sparse=True, eigvals=n_eig, tol=1e-12, maxiter=100000)
        energies, vectors = np.asarray(evals), np.stack([k.full()[:, 0] for k in kets], axis=1)
    full = np.zeros(system.hilbert.n_states, dtype=vectors.dtype)
    full[np.asarray(system.hilbert.states_to_numbers(states))] = vectors[:, 0]
    full /= np.linalg.norm(full)
    gap = float(energies[1] - energies[0]) if with_gap else None
    result = ExactGroundState(float(energies[0]), full, expectation_values(system, full), len(states), gap)
    _CACHE[key] = result
    return result


def expectation_values(system: System, state: np.ndarray) -> dict[str, float]:
    """⟨ψ|O|ψ⟩/⟨ψ|ψ⟩ for every observable of the system (real parts; raises if the imaginary part is not tiny)."""
    state = np.asarray(state)
    if state.shape != (system.hilbert.n_states,):
        raise ValueError(f"state has shape {state.shape}, expected ({system.hilbert.n_states},)")
    nz = np.flatnonzero(np.abs(state) > 0)
    configs = np.asarray(system.hilbert.numbers_to_states(nz))
    norm = np.vdot(state, state).real
    values = {}
    for name, op in system.observables.items():
        conn, mels = _connected(op, configs)
        rows = np.repeat(nz, mels.size // len(configs))
        psi_conn = state[np.asarray(system.hilbert.states_to_numbers(conn))]
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
            raise AssertionError(f"{name}: QuTiP dims {qobj.dims} do not match the Hilbert space {system.hilbert.shape}")
        diff = nk_op.to_sparse() - qobj.data.as_scipy()
        err = float(abs(diff).max()) if diff.nnz else 0.0
        if err > atol:
            raise AssertionError(f"{name}: NetKet and QuTiP operators differ by {err:.3e} > {atol:.1e}")
        worst = max(worst, err)
    return worst


# -- open systems ---------------------------------------------------------------------------------
MESOLVE_OPTIONS = {"atol": 1e-10, "rtol": 1e-8, "nsteps": 100000}


def mesolve_system(
    system: System, rho0: np.ndarray, times: np.ndarray, *, options: dict | None = None, store_states: bool = False
) -> dict[str, Any]:
    """Lindblad evolution of `system` from the density matrix `rho0` with QuTiP `mesolve`.

    Returns {"times", <observable>: array over times, "states": list of matrices (if store_states)}.
    """
    q = system.to_qutip()
    dims = [list(system.hilbert.shape), list(system.hilbert.shape)]
    rho = qutip.Qobj(np.asarray(rho0), dims=dims)
    opts = {**MESOLVE_OPTIONS, "store_states": store_states, **(options or {})}
    res = qutip.mesolve(q["H"], rho, np.asarray(times), c_ops=q["c_ops"], e_ops=q["observables"], options=opts)
    out: dict[str, Any] = {"times": np.asarray(times)}
    out.update({k: np.real(np.asarray(v)) for k, v in res.e_data.items()})
    if store_states:
        out["states"] = [s.full() for s in res.states]
    return out


def steady_state(
    system: System,
    *,
    method: str = "auto",
    solver: str | None = None,
    tol: float = 1e-10,
    t_chunk: float = 4.0,
    t_max: float = 2000.0,
) -> tuple[np.ndarray, dict[str, float]]:
    """Steady state ρ_ss (𝓛ρ_ss = 0) of an open system, and its observables.

    Methods:
        "propagate": long-time evolution ρ ← exp(𝓛 t_chunk) ρ from the maximally mixed state (scipy's
            `expm_multiply` on QuTiP's sparse `liouvillian`) until ‖𝓛ρ‖₂/‖ρ‖₂ < `tol`; RuntimeError if
            that takes longer than `t_max` (no unique steady state, or a very small Liouvillian gap).
        "auto" (default): QuTiP's direct solver up to 4 sites, "propagate" above. Measured for the
            dissipative TFI (V = 2, g = 1, γ = 1) on 2 busy cores: QuTiP "direct" (SuperLU, fill-in) takes
            50 s at N = 6 and did not finish in 6 min at N = 8; ILU-preconditioned "iterative-lgmres" 2.8 s
            at N = 6 and not in 400 s at N = 8; "propagate" 0.2 s at N = 6 (equal to lgmres to 3e-11 in
            ⟨X⟩) and 34 s at N = 8 (converged at t = 44).
        any other string: passed to `qutip.steadystate(method=..., solver=...)`.
    """
    if not system.is_open:
        raise ValueError("steady_state needs a system with jump operators")
    q = system.to_qutip()
    if method == "auto":
        method = "direct" if system.n_sites <= 4 else "propagate"
    if method == "propagate":
        rho = _steady_state_by_propagation(q["H"], q["c_ops"], tol=tol, t_chunk=t_chunk, t_max=t_max)
    else:
        kwargs = {} if solver is None else {"solver": solver}
        rho = qutip.steadystate(q["H"], q["c_ops"], method=method, **kwargs)
    values = {k: float(qutip.expect(o, rho).real) for k, o in q["observables"].items()}
    return rho.full(), values


def _steady_state_by_propagation(H: qutip.Qobj, c_ops: list, *, tol: float, t_chunk: float, t_max: float) -> qutip.Qobj:
    """ρ(t) = exp(𝓛t) 1/d in chunks of t_chunk until the relative residual ‖𝓛ρ‖/‖ρ‖ < tol (QuTiP's
    column-stacking vectorisation of ρ)."""
    from scipy.sparse.linalg import expm_multiply

    L = qutip.liouvillian(H, c_ops).data.as_scipy().tocsr()
    d = H.shape[0]
    vec = (np.eye(d, dtype=complex) / d).reshape(-1, order="F")
    t, residual = 0.0, np.inf
    while t < t_max:
        vec = expm_multiply(L * t_chunk, vec)
        t += t_chunk
        residual = float(np.linalg.norm(L @ vec) / np.linalg.norm(vec))
        if residual < tol:
            rho = vec.reshape(d, d, order="F")
            rho = 0.5 * (rho + rho.conj().T)
            return qutip.Qobj(rho / np.trace(rho).real, dims=H.dims)
    raise RuntimeError(f"the steady state did not converge by t = {t_max}: residual ‖𝓛ρ‖/‖ρ‖ = {residual:.2e} > {tol}")


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
    s = np.linalg.svd(np.asarray(psi).reshape(local_size**cut, -1), compute_uv=False)
    p = s**2 / np.sum(s**2)
    p = p[p > 1e-300]
    return float(-np.sum(p * np.log(p)))


def evolve(
    system: System,
    psi0: np.ndarray,
    times: np.ndarray,
    *,
    variational_states: np.ndarray | None = None,
    method: str = "auto",
) -> ExactTrajectory:
    """|ψ(t)⟩ = e^{−iHt}|ψ0⟩ on `times` with QuTiP `sesolve` or scipy `expm_multiply` on NetKet's sparse H.

    ``method="auto"`` uses sesolve up to N = 12 and expm_multiply (evenly spaced grids) above.
    """
    if method not in ("auto", "sesolve", "expm"):
        raise ValueError(f"method must be 'auto', 'sesolve' or 'expm', got {method!r}")
    times = np.asarray(times, dtype=float)
    psi0 = np.asarray(psi0, dtype=complex)
    if psi0.shape != (system.hilbert.n_states,):
        raise ValueError(f"psi0 has shape {psi0.shape}, expected ({system.hilbert.n_states},)")
    psi0 = psi0 / np.linalg.norm(psi0)
    matrices = sparse_operators(system)
    H = matrices["hamiltonian"]
    if method == "sesolve" or (method == "auto" and system.n_sites <= 12):
        dims = [list(system.hilbert.shape), [1] * system.n_sites]
        res = qutip.sesolve(system.to_qutip()["H"], qutip.Qobj(psi0, dims=dims), times, options=SESOLVE_OPTIONS)
        states = np.stack([s.full()[:, 0] for s in res.states])
    else:
        states = sp.linalg.expm_multiply(-1j * H, psi0, start=times[0], stop=times[-1], num=len(times), endpoint=True)
        if not np.allclose(np.linspace(times[0], times[-1], len(times)), times):
            raise ValueError("the expm_multiply path (N > 12) needs an evenly spaced time grid")
    h_psi = (H @ states.T).T
    energy = np.einsum("ti,ti->t", states.conj(), h_psi).real
    observables = {}
    for name in system.observables:
        o = matrices[name]
        observables[name] = np.einsum("ti,ti->t", states.conj(), (o @ states.T).T).real
    overlap0 = np.abs(states @ psi0.conj()) ** 2
    fidelity = None
    if variational_states is not None:
        v = np.asarray(variational_states)
        v = v / np.linalg.norm(v, axis=1, keepdims=True)
        fidelity = np.abs(np.einsum("ti,ti->t", states.conj(), v)) ** 2
    return ExactTrajectory(
        times=times,
        energy=energy,
        norm=np.linalg.norm(states, axis=1),
        observables=observables,
        entropy=np.array([half_chain_entropy(s, system.n_sites, system.hilbert.local_size) for s in states]),
        loschmidt=overlap0,
        return_rate=-np.log(np.maximum(overlap0, 1e-300)) / system.n_sites,
        fidelity=fidelity,
        states=states,
    )


def classical_fidelity(P: np.ndarray, Q: np.ndarray) -> float:
    """F(P, Q) = (Σ_a √(P(a) Q(a)))² for two probability distributions (e.g. POVM images)."""
    P, Q = np.asarray(P, dtype=float), np.asarray(Q, dtype=float)
    if P.shape != Q.shape:
        raise ValueError(f"distributions have different shapes {P.shape} and {Q.shape}")
    return float(np.sum(np.sqrt(np.clip(P, 0, None) * np.clip(Q, 0, None))) ** 2)


def trace_distance(rho: np.ndarray, sigma: np.ndarray) -> float:
    """D(ρ, σ) = ½ Tr|ρ − σ| for Hermitian matrices."""
    return float(0.5 * np.sum(np.abs(np.linalg.eigvalsh(np.asarray(rho) - np.asarray(sigma)))))


def purity(rho: np.ndarray) -> float:
    """Tr ρ²."""
    rho = np.asarray(rho)
    return float(np.real(np.einsum("ij,ji->", rho, rho)))


# -- Bethe ansatz ---------------------------------------------------------------------------------
def _bethe_residual_jacobian(lam: np.ndarray, I: np.ndarray, L: int, pbc: bool) -> tuple[np.ndarray, np.ndarray]:
    """Residual F(λ) of the logarithmic Bethe equations (θ(x) = 2 arctan x) and its Jacobian ∂F_j/∂λ_k."""
    diff = lam[:, None] - lam[None, :]
    k_diff = 2 / (1 + diff**2)  # θ'(λ_j − λ_k); the k = j diagonal is removed below
    np.fill_diagonal(k_diff, 0.0)
    theta_diff = 2 * np.arctan(diff)  # zero on the diagonal
    if pbc:  # F_j = L θ(2λ_j) − 2π I_j − Σ_{k≠j} θ(λ_j − λ_k)
        F = 2 * L * np.arctan(2 * lam) - 2 * np.pi * I - theta_diff.sum(1)
        jac = k_diff.copy()
        np.fill_diagonal(jac, 4 * L / (1 + 4 * lam**2) - k_diff.sum(1))
        return F, jac
    # F_j = 2L θ(2λ_j) − 2π I_j − Σ_{k≠j} [θ(λ_j − λ_k) + θ(λ_j + λ_k)]
    plus = lam[:, None] + lam[None, :]
    theta_plus = 2 * np.arctan(plus)
    k_plus = 2 / (1 + plus**2)
    np.fill_diagonal(theta_plus, 0.0)
    np.fill_diagonal(k_plus, 0.0)
    F = 4 * L * np.arctan(2 * lam) - 2 * np.pi * I - theta_diff.sum(1) - theta_plus.sum(1)
    jac = k_diff - k_plus
    np.fill_diagonal(jac, 8 * L / (1 + 4 * lam**2) - k_diff.sum(1) - k_plus.sum(1))
    return F, jac


def bethe_ground_state_energy(L: int, *, pbc: bool = True, J: float = 1.0, units: str = "pauli") -> float:
    """Exact ground-state energy of the spin-1/2 Heisenberg antiferromagnetic chain from the Bethe ansatz.

        H = J Σ_<ij> (X_i X_j + Y_i Y_j + Z_i Z_j)   (Pauli units, the convention of `hamiltonians.heisenberg`)

    with J > 0, even L ≥ 2, on the ring (``pbc=True``, L bonds) or the open chain with free ends (L − 1
    bonds). ``units="spin"`` returns the energy of J Σ_<ij> S_i·S_j, 1/4 of the Pauli one. The ground
    state is the singlet in the S^z = 0 sector: M = L/2 flipped spins with real rapidities λ_j. With
    θ(x) = 2 arctan x, the logarithmic Bethe equations are

        periodic (Bethe, Z. Phys. 71, 205 (1931)):
            L θ(2λ_j) = 2π I_j + Σ_{k≠j} θ(λ_j − λ_k),                        I_j = −(M−1)/2, ..., (M−1)/2
        open (Alcaraz, Barber, Batchelor, Baxter, Quispel, J. Phys. A 20, 6397 (1987)):
            2L θ(2λ_j) = 2π I_j + Σ_{k≠j} [θ(λ_j − λ_k) + θ(λ_j + λ_k)],     λ_j > 0, I_j = 1, ..., M

    and each magnon lowers the ferromagnetic energy J N_bonds/4 by 2J/(1 + 4λ_j²):

        E = J (N_bonds/4 − Σ_j 2/(1 + 4λ_j²))   (S·S units),   N_bonds = L (periodic) or L − 1 (open).

    The equations are solved by Newton's method with backtracking, started from the thermodynamic
    counting function z(λ) = arctan(sinh πλ)/(2π) (root density ρ(λ) = 1/(2 cosh πλ)):
    λ_j = arsinh(tan(2π I_j/L))/π (periodic) or arsinh(tan(π I_j/(L + 1)))/π (open). It converges
    quadratically, to max_j |F_j| < 1e-13 L (F_j: left minus right side) or a Newton step below 1e-12, in
    4–5 iterations for any L; L = 1000 takes a fraction of a second (dense M × M Jacobian).

    Thermodynamic limit (Hulthén, Ark. Mat. Astron. Fys. 26A, 1 (1938)): E/L → J (1/4 − ln 2) ≈ −0.4431 J
    in S·S units, J (1 − 4 ln 2) ≈ −1.7726 J in Pauli units; the periodic chain approaches it from below
    as −J π²/(12 L²) (S·S units, up to logarithmic corrections), the open chain from above with an O(1/L)
    surface term.

    L = 2 periodic counts the bond twice (the ring 1–2–1, E = −6J in Pauli units), whereas
    `hamiltonians.heisenberg(2, pbc=True)` has a single bond (−3J).

    Raises ValueError for odd L, L < 2, J ≤ 0 or unknown units; RuntimeError if Newton does not converge.
    """
    if isinstance(L, bool) or not isinstance(L, (int, np.integer)) or L < 2 or L % 2:
        raise ValueError(f"the Bethe-ansatz ground state needs an even integer chain length L >= 2, got {L!r}")
    if not J > 0:
        raise ValueError(f"J must be > 0 (antiferromagnet), got {J!r}")
    if units not in ("spin", "pauli"):
        raise ValueError(f"units must be 'spin' or 'pauli', got {units!r}")
    L = int(L)
    M = L // 2
    if pbc:
        I = np.arange(M) - (M - 1) / 2
        lam = np.arcsinh(np.tan(2 * np.pi * I / L)) / np.pi
    else:
        I = np.arange(1, M + 1, dtype=float)
        lam = np.arcsinh(np.tan(np.pi * I / (L + 1))) / np.pi
    F, jac = _bethe_residual_jacobian(lam, I, L, pbc)
    norm = np.max(np.abs(F))
    for _ in range(100):
        step = np.linalg.solve(jac, -F)
        for _ in range(40):  # backtrack until the residual decreases (and open-chain roots stay positive)
            trial = lam + step
            if pbc or np.all(trial > 0):
                F_new, jac_new = _bethe_residual_jacobian(trial, I, L, pbc)
                norm_new = np.max(np.abs(F_new))
                if norm_new < norm or np.max(np.abs(step)) < 1e-12:
                    break
            step = step / 2
        else:
            raise RuntimeError(f"Bethe equations (L={L}, pbc={pbc}): line search failed at residual {norm:.2e}")
        lam, F, jac, norm = trial, F_new, jac_new, norm_new
        if np.max(np.abs(step)) < 1e-12 * max(1.0, float(np.max(np.abs(lam)))) or norm < 1e-13 * L:
            break
    else:
        raise RuntimeError(f"Bethe equations (L={L}, pbc={pbc}) did not converge: residual {norm:.2e}")
    if norm > 1e-9 * L:
        raise RuntimeError(f"Bethe equations (L={L}, pbc={pbc}) converged to a large residual {norm:.2e}")
    bonds = L if pbc else L - 1
    energy = J * (bonds / 4 - np.sum(2 / (1 + 4 * lam**2)))
    return float(4 * energy if units == "pauli" else energy)


# Published exact energies per site of the square-lattice Heisenberg J1-J2 model (J1 = 1, S·S units) at
# sizes beyond exact diagonalisation here; key (L, pbc, J2). Source: Lanczos ED collected by varbench
# (Wu et al., Science 386, 296 (2024); notes `ansatze.md` §8.2–8.3).
_PUBLISHED_SQUARE = {
    (6, True, 0.0): (-97.7575896 / 144, "ED, varbench (-97.7575896 / 144, S·S units)"),
    (6, False, 0.0): (-86.9071442 / 144, "ED, varbench (-86.9071442 / 144, S·S units)"),
    (6, True, 0.5): (-0.5038097, "ED, varbench (S·S units)"),
}


def reference_ground_state_energy(
    lattice: str, L: int, *, pbc: bool = True, J: float = 1.0, J2: float = 0.0, units: str = "pauli"
) -> tuple[float, str] | None:
    """A ground-state energy of `hamiltonians.heisenberg(L, lattice=..., J=J, J2=J2, pbc=pbc)` that needs no
    diagonalisation here, with its source: the Bethe ansatz for chains with J2 = 0 (any even L), published
    ED values for a few square lattices (6×6). None when neither applies."""
    if units not in ("spin", "pauli"):
        raise ValueError(f"units must be 'spin' or 'pauli', got {units!r}")
    scale = 4.0 if units == "pauli" else 1.0
    if lattice == "chain" and J2 == 0.0 and J > 0 and L % 2 == 0:
        return bethe_ground_state_energy(L, pbc=pbc, J=J, units=units), "Bethe ansatz (nqs.exact.bethe_ground_state_energy)"
    if lattice == "square" and J > 0:
        entry = _PUBLISHED_SQUARE.get((int(L), bool(pbc), float(J2) / J))
        if entry is not None:
            per_site, source = entry
            return scale * J * per_site * L * L, source
    return None
