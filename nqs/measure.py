"""Measurements of a saved variational state: spin correlations C(r), structure factors S(q), Rényi-2 entropy.

The state is rebuilt from its result file by `nqs.results.load_state` (System, ansatz, checkpointed parameters),
and each quantity is estimated from samples of ψ (exact samples for autoregressive models, Metropolis chains
otherwise; `n_samples=0` sums over the whole basis instead) and, where the basis is small enough, also computed
exactly for the same variational state (``full sum``) and for the exact ground state of a ground-state run
(``exact``), so that the sampling error and the variational error can be read apart.

Conventions (spin-1/2 systems, Pauli matrices σ^α with eigenvalues ±1, operators in the System's own basis: for a
Marshall-rotated builder the xx and yy components are the rotated ones, the physical ones carry an extra
(−1)^{[i∈B]+[j∈B]}; zz is unchanged):

* correlation function at graph distance r (shortest path on `System.graph`; |i − j| without a graph), averaged
  over the n_r unordered pairs i < j at that distance,

      C^αα(r) = (1/n_r) Σ_{i<j, d(i,j)=r} ⟨σ^α_i σ^α_j⟩,
      C^αα_conn(r) = (1/n_r) Σ_{i<j, d(i,j)=r} (⟨σ^α_i σ^α_j⟩ − ⟨σ^α_i⟩⟨σ^α_j⟩);

  the connected one is estimated by the plug-in C − Σ ⟨σ_i⟩⟨σ_j⟩ with the means from the same samples, its error
  bar by the delta method (per-sample linearisation, `estimate`), so it carries the errors of the one-site means;
* static structure factor on the allowed momenta of the lattice, q = 2π Σ_k (n_k / L_k) b*_k (b*_k the reciprocal
  basis of `graph.basis_vectors`, L_k its extent; q = 2πn/N on a graph without positions), one of each pair ±q,

      S^αα(q) = (1/N) Σ_{i,j} e^{i q·(x_i − x_j)} ⟨σ^α_i σ^α_j⟩ = 1 + (2/N) Σ_{i<j} cos(q·(x_i − x_j)) ⟨σ^α_i σ^α_j⟩;

* Rényi-2 entropy of a region A of Hilbert modes (default: the modes of the first half of the tokens),
  S₂(A) = −ln Tr ρ_A², by the swap estimator with two independent replicas σ = (a, b), σ' = (a', b') drawn from
  |ψ|² (Hastings, González, Kallin, Melko, PRL 104, 157201 (2010)):

      Tr ρ_A² = E_{σ,σ' ~ |ψ|²} [ ψ(a', b) ψ(a, b') / (ψ(a, b) ψ(a', b')) ],

  whose real part is averaged (its imaginary part averages to zero); S₂ = −ln of the mean, with error δTr/Tr. A
  swapped configuration outside a sector has ψ = 0 and contributes 0. The exact value is −ln Σ_k λ_k² from the
  Schmidt decomposition of the state vector.

Sampled values come from NetKet: the per-sample local estimators (`MCState.local_estimators`) of the operators
σ^α_i σ^α_j and σ^α_i of `nk.operator.spin`, combined sample by sample into each quantity, whose mean and error bar are
`nk.stats.statistics` of that combination (so the correlations between the pairs are in the error bar); the swap
estimator uses `MCState.log_value` on the swapped configurations. The `full sum` and `exact` columns apply the Pauli
matrices to the normalised state vector (dense numpy; the tests check them against QuTiP).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import netket as nk
import numpy as np

from nqs import results

MAX_EXACT_STATES = 2**16  # full-space vectors for the "full sum" and "exact" columns up to this dimension
COMPONENTS = ("x", "y", "z")


class MeasureError(ValueError):
    """A state or request that `nqs.measure` cannot measure (not a pure spin-1/2 state, a bad region, ...)."""


@dataclasses.dataclass(frozen=True)
class Measurement:
    """One measured quantity.

    Attributes:
        name: e.g. "C_zz(r=1)", "C_zz,conn(r=1)", "S_zz(q/π=1)", "S2(A=0,1,2)".
        value: the estimate from samples (the full-sum value when the state is a full-sum state).
        error: its Monte Carlo standard error (None for full sums).
        full_sum: the same quantity of the variational state summed over the basis (None for a large basis).
        exact: the quantity in the exact ground state (ground-state runs with a small basis; else None).
    """

    name: str
    value: float
    error: float | None
    full_sum: float | None = None
    exact: float | None = None


# -- geometry -------------------------------------------------------------------------------------


def is_spin_half(system: Any) -> bool:
    """Whether the system is a chain, lattice or graph of spins 1/2, one per token."""
    hilbert = system.hilbert
    return isinstance(hilbert, nk.hilbert.Spin) and int(hilbert.local_size) == 2 and system.n_sites == system.n_tokens


def check_spin_half(system: Any) -> None:
    """MeasureError unless `is_spin_half(system)`."""
    hilbert = system.hilbert
    if not is_spin_half(system):
        raise MeasureError("spin correlations and structure factors are defined for spin-1/2 systems (one spin per "
                           f"site); this system has {type(hilbert).__name__} modes")


def distances(system: Any) -> np.ndarray:
    """Graph distances between the sites (shortest paths on `System.graph`; |i − j| without a graph)."""
    n = system.n_sites
    if system.graph is None:
        return np.abs(np.subtract.outer(np.arange(n), np.arange(n)))
    return np.asarray(system.graph.distances(), dtype=int)


def pairs_by_distance(system: Any) -> dict[int, list[tuple[int, int]]]:
    """{r: the pairs i < j at graph distance r}, r ≥ 1 in increasing order."""
    dist = distances(system)
    out: dict[int, list[tuple[int, int]]] = {}
    for i, j in zip(*np.triu_indices(system.n_sites, k=1), strict=True):
        if dist[i, j] > 0:
            out.setdefault(int(dist[i, j]), []).append((int(i), int(j)))
    return dict(sorted(out.items()))


def positions_and_momenta(system: Any) -> tuple[np.ndarray, list[tuple[str, np.ndarray]]]:
    """Site positions x_i and the allowed momenta (label in units of π, q), one of each pair ±q."""
    graph = system.graph
    if graph is not None and hasattr(graph, "positions") and hasattr(graph, "extent"):
        positions = np.asarray(graph.positions, dtype=float)
        extent = np.asarray(graph.extent, dtype=int)
        reciprocal = 2 * np.pi * np.linalg.inv(np.asarray(graph.basis_vectors, dtype=float)).T
    else:
        positions = np.arange(system.n_sites, dtype=float)[:, None]
        extent, reciprocal = np.array([system.n_sites]), 2 * np.pi * np.eye(1)
    momenta, seen = [], set()
    for n in np.ndindex(*extent):
        canonical = min(tuple(n), tuple(int(v) for v in (-np.asarray(n)) % extent))
        if canonical in seen:
            continue
        seen.add(canonical)
        reduced = np.where(np.asarray(canonical) > extent // 2, np.asarray(canonical) - extent, canonical)
        q = (reduced / extent) @ reciprocal  # in the first Brillouin zone of a simple lattice: q_k/π in (−1, 1]
        scaled = [f"{v / np.pi:.4g}" for v in q]
        momenta.append((scaled[0] if len(scaled) == 1 else f"({','.join(scaled)})", q))
    return positions, momenta


# -- the quantities as functionals of the pair correlations ---------------------------------------


@dataclasses.dataclass(frozen=True)
class PairFunctional:
    """A quantity linear in the pair correlations: c + Σ_{i<j} w_ij ⟨σ^α_i σ^α_j⟩, minus Σ_{i<j} w_ij ⟨σ^α_i⟩⟨σ^α_j⟩
    when `connected`; `weights` is an (N, N) upper-triangular array."""

    name: str
    component: str
    weights: np.ndarray
    constant: float = 0.0
    connected: bool = False

    def evaluate(self, pairs: np.ndarray, sites: np.ndarray) -> float:
        """The value for exact pair correlations `pairs` (N, N) and one-site means `sites` (N,)."""
        value = self.constant + np.sum(self.weights * pairs)
        if self.connected:
            value -= np.sum(self.weights * np.outer(sites, sites))
        return float(np.real(value))


def correlation_functionals(system: Any, component: str, connected: bool = False) -> list[PairFunctional]:
    """C^αα(r) (or C^αα_conn(r)) for every distance r ≥ 1 (module docstring)."""
    out = []
    for r, pairs in pairs_by_distance(system).items():
        weights = np.zeros((system.n_sites, system.n_sites))
        for i, j in pairs:
            weights[i, j] = 1 / len(pairs)
        name = f"C_{component * 2}{',conn' if connected else ''}(r={r})"
        out.append(PairFunctional(name, component, weights, connected=connected))
    return out


def structure_factor_functionals(system: Any, component: str) -> list[PairFunctional]:
    """S^αα(q) on the allowed momenta, one of each pair ±q (module docstring)."""
    positions, momenta = positions_and_momenta(system)
    n = system.n_sites
    out = []
    for label, q in momenta:
        phases = np.cos((positions @ q)[:, None] - (positions @ q)[None, :])
        out.append(PairFunctional(f"S_{component * 2}(q/π={label})", component, np.triu(2 / n * phases, k=1), 1.0))
    return out


# -- sampled estimates (NetKet operators and local estimators) ------------------------------------


def pauli(hilbert: Any, site: int, component: str) -> Any:
    """σ^α on `site` as a NetKet operator."""
    if component not in COMPONENTS:
        raise MeasureError(f"unknown spin component {component!r}; choose one of {COMPONENTS}")
    return getattr(nk.operator.spin, f"sigma{component}")(hilbert, site)


def local_values(vstate: Any, component: str, needed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample local estimators of σ^α_i σ^α_j (the pairs where `needed` (N, N) is True; zero elsewhere) and of
    σ^α_i, shapes (N, N, *samples) and (N, *samples), from `MCState.local_estimators` of NetKet's operators (every
    pair operator has the same structure, so the estimator is compiled once)."""
    hilbert = vstate.hilbert
    n = hilbert.size
    shape = vstate.samples.shape[:-1]
    pairs = np.zeros((n, n, *shape), dtype=complex)
    for i, j in zip(*np.nonzero(needed), strict=True):
        op = pauli(hilbert, int(i), component) @ pauli(hilbert, int(j), component)
        pairs[i, j] = np.asarray(vstate.local_estimators(op).data)
    sites = np.stack([np.asarray(vstate.local_estimators(pauli(hilbert, i, component)).data) for i in range(n)])
    return pairs, sites


def estimate(functional: PairFunctional, pairs: np.ndarray, sites: np.ndarray) -> tuple[float, float]:
    """Mean and standard error (NetKet's, over chains) of a functional from per-sample local values. A connected
    functional uses the delta-method per-sample value Σ w_ij (L_ij − m̄_i l_j − m̄_j l_i) + Σ w_ij m̄_i m̄_j, whose
    mean is the plug-in estimate C − Σ w m̄_i m̄_j and whose spread carries the errors of the one-site means m̄."""
    w = functional.weights.reshape(*functional.weights.shape, *([1] * (pairs.ndim - 2)))
    values = functional.constant + np.sum(w * pairs, axis=(0, 1))
    if functional.connected:
        means = np.mean(sites.reshape(len(sites), -1), axis=1)
        m = means.reshape(-1, *([1] * (sites.ndim - 1)))
        values = values - np.sum(w * (m[:, None] * sites[None, :] + m[None, :] * sites[:, None]), axis=(0, 1))
        values = values + np.sum(functional.weights * np.outer(means, means))
    stats = nk.stats.statistics(np.real(values))
    error = float(stats.error_of_mean)
    return float(stats.mean), 0.0 if not math.isfinite(error) and float(stats.variance) == 0 else error


# -- exact values (dense numpy on the state vector) -----------------------------------------------

PAULI = {"x": np.array([[0, 1], [1, 0]], dtype=complex), "y": np.array([[0, -1j], [1j, 0]]),
         "z": np.array([[1, 0], [0, -1]], dtype=complex)}  # basis (σᶻ = +1, σᶻ = −1): NetKet's local index order


def _apply(psi: np.ndarray, site: int, component: str) -> np.ndarray:
    return np.moveaxis(np.tensordot(PAULI[component], psi, axes=([1], [site])), 0, site)


def exact_correlations(vector: np.ndarray, n_sites: int, component: str) -> tuple[np.ndarray, np.ndarray]:
    """⟨σ^α_i σ^α_j⟩ (upper triangle of an (N, N) array) and ⟨σ^α_i⟩ of a normalised full-space vector of spins 1/2
    (site 0 most significant), by applying the Pauli matrices to the state tensor."""
    psi = np.asarray(vector, dtype=complex).reshape([2] * n_sites)
    flipped = [_apply(psi, i, component) for i in range(n_sites)]
    sites = np.array([np.vdot(psi, f).real for f in flipped])
    pairs = np.zeros((n_sites, n_sites))
    for i in range(n_sites):
        for j in range(i + 1, n_sites):
            pairs[i, j] = np.vdot(psi, _apply(flipped[j], i, component)).real  # ⟨ψ|σ_i σ_j|ψ⟩
    return pairs, sites


def state_vector(system: Any, vstate: Any) -> np.ndarray:
    """The normalised vector of a variational state over the full basis (NetKet order): log ψ on the sector's
    configurations (all configurations without a constraint), zeros elsewhere."""
    from nqs import exact

    configurations = np.asarray(system.sector_states())
    log_psi = np.concatenate([np.asarray(vstate.log_value(configurations[k: k + 4096]))
                              for k in range(0, len(configurations), 4096)])
    amplitudes = np.exp(log_psi - np.max(log_psi.real))
    amplitudes /= np.linalg.norm(amplitudes)
    return exact.embed(system.hilbert, configurations, amplitudes)


def renyi2_exact(vector: np.ndarray, local_sizes: Sequence[int], region: Sequence[int]) -> float:
    """S₂(A) = −ln Tr ρ_A² = −ln Σ_k λ_k² of a pure state (full-space vector, site 0 most significant)."""
    n = len(local_sizes)
    rest = [m for m in range(n) if m not in set(region)]
    psi = np.asarray(vector).reshape([int(d) for d in local_sizes]).transpose([*region, *rest])
    matrix = psi.reshape(math.prod(int(local_sizes[m]) for m in region), -1)
    weights = np.linalg.svd(matrix, compute_uv=False) ** 2
    weights = weights / weights.sum()
    return float(-np.log(np.sum(weights**2)))


def n_states(system: Any) -> int:
    """The dimension of the system's full (unconstrained) basis."""
    return math.prod(int(d) for d in system.hilbert.shape)


def is_wave_function(system: Any, vstate: Any) -> bool:
    """Whether `vstate` is a wave function of the system's modes: on its Hilbert space or on its sector's."""
    hilbert = getattr(vstate, "hilbert", None)
    if hilbert == system.hilbert:
        return True
    try:
        return system.constraint is not None and hilbert == system.sector_hilbert()
    except TypeError:  # a constraint NetKet cannot express (gauge blocks)
        return False


def exact_ground_state_vector(loaded: results.LoadedState) -> np.ndarray | None:
    """The exact ground state (full-space vector) of a closed ground-state run with a small basis, else None."""
    from nqs import exact

    system = loaded.system
    if loaded.result.kind != "ground_state" or system.is_open or n_states(system) > MAX_EXACT_STATES:
        return None
    lowest = exact.lowest_states(system, 1)  # sector ED, without the observables of `exact.ground_state`
    return exact.embed(system.hilbert, lowest.configurations, lowest.vectors[0])


# -- the swap estimator ---------------------------------------------------------------------------


def swap_ratios(log_psi: Any, x1: np.ndarray, x2: np.ndarray, region: Sequence[int]) -> np.ndarray:
    """ψ(a', b) ψ(a, b') / (ψ(a, b) ψ(a', b')) for each pair of configurations x1 = (a, b), x2 = (a', b'),
    `log_psi` mapping configurations (n, N) to log ψ (n,)."""
    mask = np.zeros(x1.shape[-1], dtype=bool)
    mask[list(region)] = True
    y1, y2 = np.where(mask, x2, x1), np.where(mask, x1, x2)
    log_ratio = (np.asarray(log_psi(y1)) + np.asarray(log_psi(y2))
                 - np.asarray(log_psi(x1)) - np.asarray(log_psi(x2)))
    return np.exp(log_ratio)


def _replica_samples(vstate: Any, n_samples: int, seed: int) -> np.ndarray:
    """(n_chains, n_per_chain, N) samples of a fresh copy of `vstate` whose sampler is seeded with `seed`."""
    replica = nk.vqs.MCState(vstate.sampler, vstate.model, variables=vstate.variables, n_samples=n_samples,
                             n_discard_per_chain=vstate.n_discard_per_chain, sampler_seed=seed,
                             chunk_size=vstate.chunk_size)
    return np.asarray(replica.samples)


def renyi2_swap(vstate: Any, region: Sequence[int], n_samples: int, seed: int) -> tuple[float, float]:
    """S₂(A) and its standard error by the swap estimator (module docstring) from two replicas of `n_samples`
    samples each, their samplers seeded with `seed` and `seed + 1` (independent chains, or independent exact
    samples of an autoregressive model); the error of Tr ρ_A² is NetKet's error of the mean over chains."""
    x1 = _replica_samples(vstate, n_samples, seed)
    x2 = _replica_samples(vstate, n_samples, seed + 1)
    n = x1.shape[-1]
    ratios = swap_ratios(vstate.log_value, x1.reshape(-1, n), x2.reshape(-1, n), region)
    stats = nk.stats.statistics(np.real(ratios).reshape(x1.shape[:-1]))
    purity, error = float(stats.mean), float(stats.error_of_mean)
    if not purity > 0:
        raise MeasureError(f"the swap estimate of Tr ρ_A² is {purity:.3g} ± {error:.1g} (not positive): the region is "
                           "too entangled for this number of samples; take more samples or a smaller region")
    return -math.log(purity), error / purity


# -- measuring a state ----------------------------------------------------------------------------


def _spin_measurements(vstate: Any, system: Any, functionals: Sequence[PairFunctional],
                       vectors: Mapping[str, np.ndarray]) -> list[Measurement]:
    """Estimate each functional (sampled for an MCState, else its full-sum value) with its exact references."""
    out = []
    for component in dict.fromkeys(f.component for f in functionals):
        group = [f for f in functionals if f.component == component]
        refs = {k: exact_correlations(v, system.n_sites, component) for k, v in vectors.items()}
        if isinstance(vstate, nk.vqs.MCState):
            needed = np.any([f.weights != 0 for f in group], axis=0)
            pairs, sites = local_values(vstate, component, needed)
        for f in group:
            exact = {k: f.evaluate(*ref) for k, ref in refs.items()}
            if isinstance(vstate, nk.vqs.MCState):
                value, error = estimate(f, pairs, sites)
            else:
                value = exact["full_sum"] if "full_sum" in exact else f.evaluate(
                    *exact_correlations(state_vector(system, vstate), system.n_sites, component))
                error = None
            out.append(Measurement(f.name, value, error, exact.get("full_sum"), exact.get("exact")))
    return out


def default_region(system: Any) -> list[int]:
    """The Hilbert modes of the first half of the tokens (sites, orbitals, gauge blocks)."""
    tokens = system.token_map.modes
    return sorted(m for token in tokens[: len(tokens) // 2] for m in token)


def check_region(system: Any, region: Sequence[int] | None) -> list[int]:
    """`region` (default `default_region`) as sorted mode indices; MeasureError for an empty, full or bad one."""
    modes = default_region(system) if region is None else sorted({int(m) for m in region})
    if not modes or len(modes) >= system.n_sites or modes[0] < 0 or modes[-1] >= system.n_sites:
        raise MeasureError(f"region {list(region or [])} must be a proper non-empty subset of the modes "
                           f"0..{system.n_sites - 1}")
    return modes


def _renyi(vstate: Any, system: Any, region: list[int], n_samples: int | None, seed: int,
           vectors: Mapping[str, np.ndarray]) -> Measurement:
    sizes = [int(d) for d in system.hilbert.shape]
    refs = {k: renyi2_exact(v, sizes, region) for k, v in vectors.items()}
    name = f"S2(A={','.join(map(str, region))})"
    if isinstance(vstate, nk.vqs.MCState):
        value, error = renyi2_swap(vstate, region, n_samples or vstate.n_samples, seed)
    else:
        value = refs["full_sum"] if "full_sum" in refs else renyi2_exact(state_vector(system, vstate), sizes, region)
        error = None
    return Measurement(name, value, error, refs.get("full_sum"), refs.get("exact"))


def measure_state(loaded: results.LoadedState, *, components: Sequence[str] = ("z",), correlations: bool = True,
                  connected: bool = True, structure_factor: bool = True, renyi: bool = True,
                  region: Sequence[int] | None = None, renyi_samples: int | None = None, seed: int | None = None,
                  exact: bool = True) -> list[Measurement]:
    """Measure a state rebuilt by `nqs.results.load_state` (module docstring for the definitions).

    Args:
        loaded: the state, its System and its result file.
        components: spin components α of C^αα(r) and S^αα(q).
        correlations, connected, structure_factor, renyi: which quantities to measure.
        region: the modes of region A for S₂ (default: the modes of the first half of the tokens).
        renyi_samples: samples per replica of the swap estimator (default: the state's sample count).
        seed: seeds the two replicas (`seed`, `seed + 1`; default: the run's seed + 1000).
        exact: add the full-sum and exact-ground-state columns where the basis has ≤ `MAX_EXACT_STATES` states.

    Raises:
        MeasureError: a state on another space than the System's (a POVM distribution, a density matrix), a
            correlation of a system that is not made of spins 1/2, an unknown component or a bad region.
    """
    system, vstate = loaded.system, loaded.vstate
    if not is_wave_function(system, vstate):
        raise MeasureError(f"{loaded.result.path} holds a state on {vstate.hilbert}, not a wave function on the "
                           "system's Hilbert space (a POVM distribution or a density matrix): nothing to measure here")
    if (correlations or structure_factor) and components:
        check_spin_half(system)
    unknown = [c for c in components if c not in COMPONENTS]
    if unknown:
        raise MeasureError(f"unknown spin component {unknown[0]!r}; choose from {COMPONENTS}")
    modes = check_region(system, region) if renyi else []
    vectors: dict[str, np.ndarray] = {}
    if exact and n_states(system) <= MAX_EXACT_STATES:
        vectors["full_sum"] = state_vector(system, vstate)
        ground = exact_ground_state_vector(loaded)
        if ground is not None:
            vectors["exact"] = ground
    functionals: list[PairFunctional] = []
    for component in components:
        if correlations:
            functionals += correlation_functionals(system, component)
            functionals += correlation_functionals(system, component, connected=True) if connected else []
        functionals += structure_factor_functionals(system, component) if structure_factor else []
    out = _spin_measurements(vstate, system, functionals, vectors)
    if renyi:
        seed = int(loaded.result.attrs.get("seed", 0)) + 1000 if seed is None else seed
        out.append(_renyi(vstate, system, modes, renyi_samples, seed, vectors))
    return out


def measure(path: str | Path, *, n_samples: int | None = 4096, seed: int | None = None,
            **options: Any) -> list[Measurement]:
    """Rebuild the state of result file `path` (`nqs.results.load_state` with `n_samples` samples, 0 for a
    full-sum state, None for the run's own count) and measure it (`measure_state` with `options`)."""
    loaded = results.load_state(path, n_samples=n_samples, seed=seed)
    return measure_state(loaded, seed=None if seed is None else seed + 1000, **options)


def format_measurements(rows: Sequence[Measurement]) -> str:
    """A fixed-width table: quantity, estimate, ± error, full sum (same state), exact (ground state), and the
    deviation of the estimate from the full sum in units of its error."""
    header = f"{'quantity':24s} {'estimate':>14s} {'± error':>9s} {'full sum':>14s} {'exact':>14s} {'dev/σ':>6s}"
    lines = [header]
    for m in rows:
        dev = None if m.error is None or m.full_sum is None or m.error == 0 else abs(m.value - m.full_sum) / m.error
        cells = [f"{m.name:24s}", f"{m.value:14.8f}", _cell(m.error, "9.2e"), _cell(m.full_sum, "14.8f"),
                 _cell(m.exact, "14.8f"), _cell(dev, "6.2f")]
        lines.append(" ".join(cells).rstrip())
    return "\n".join(lines)


def _cell(value: float | None, spec: str) -> str:
    return format(value, spec) if value is not None else " " * int(spec.split(".")[0])
