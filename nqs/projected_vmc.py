"""Ground state of a coherently symmetry-projected ansatz by exact (full-sum) natural-gradient descent, evaluated
once per orbit of the sector.

The state is the projection (`nqs.symmetry`, eq. (1)) of any ansatz ψ_θ onto a one-dimensional irreducible
representation χ of a group G of site permutations (optionally times the spin flip),

    ψ_G(x) = Σ_g χ_g ψ_θ(g x).

Unlike the evaluation-time symmetrisation of `ansatze.symmetrized` (|ψ_G|² = mean_g |ψ_θ(g x)|², exactly samplable)
the amplitudes interfere, so ψ_G can carry a sign structure that ψ_θ does not have: the coherent projection is how
group-equivariant networks reach the frustrated J1-J2 ground state (Roth & MacDonald, arXiv:2104.05085; NetKet's
`nk.nn.blocks.SymmExpSum`). ψ_G is not autoregressive any more, so this driver sums over the whole sector instead of
sampling, which limits it to sectors of at most 2^20 configurations (4×4, 6-leg ladders, chains up to ~24 sites).

With the orbit decomposition of the sector (representatives r, orbit sizes |Gr|, coefficients c_j; `SymmetrySector`)
every quantity is a sum over the R orbits, and ψ_θ is needed once on each of the D configurations:

    ψ_G(r) = Σ_{j ∈ Gr} c_j ψ_θ(j),       w_r = |Gr| |ψ_G(r)|² / Σ_r' |Gr'| |ψ_G(r')|²,
    E_loc(r) = (H ψ_G)(r) / ψ_G(r),        E = Σ_r w_r E_loc(r),
    O_k(r) = ∂_k log ψ_G(r) = Σ_{j ∈ Gr} c_j ψ_θ(j) ∂_k log ψ_θ(j) / ψ_G(r).

The update is minSR (Chen & Heyl, Nat. Phys. 20, 1476 (2024)) with the R orbits as "samples", for real parameters
θ (complex ones are split into real and imaginary parts, `nk.jax.tree_to_real`):

    X = √w (O − Σ_r w_r O(r)),   ε = √w (E_loc − E),   X̃ = [Re X; Im X],   ε̃ = [Re ε; Im ε],
    δθ = X̃ᵀ (X̃ X̃ᵀ + λ m 1)⁻¹ ε̃,    θ ← θ − η δθ,

where m is the mean diagonal of X̃ X̃ᵀ (λ is relative, unlike NetKet's absolute `diag_shift`). X̃ᵀ ε̃ = ½ ∂E/∂θ,
and for λ → 0 the step is the SR step (S = X̃ᵀ X̃) of minimal norm. S has rank ≤ 2R, a few hundred at 4×4 under
the space group, so the solve is a (2R)² system whatever the parameter count, and when the tangent space spans
the projected sector the iteration is imaginary-time evolution inside it.

What is ours: the orbit reduction and the loop (NetKet's `FullSumState` would evaluate the projected model on all D
configurations, i.e. |G|·D evaluations of ψ_θ, and its QGT is P × P). NetKet supplies the per-sample Jacobian
(`nk.jax.jacobian`) and the exact sector matrix comes from `nqs.exact.sector_matrix`. The result file has the
layout of `nqs.vmc.ground_state` (kind "ground_state"); its energies are exact (energy_error = 0), and the
fidelity |⟨ψ_0|ψ_G⟩|² with the exact ground state is recorded with the observables.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from typing import Any, Unpack

import flax.serialization
import jax
import jax.numpy as jnp
import netket as nk
import numpy as np
from jax.experimental import sparse as jsparse

from nqs import exact as exact_module
from nqs.recipes import describe_ansatz
from nqs.run import NonFiniteError, Run, RunOptions, check_finite_parameters, check_output
from nqs.schedules import check_schedule, learning_rate_schedule
from nqs.states import check_model_matches
from nqs.symmetry import SymmetrySector
from nqs.system import System

MAX_SECTOR_STATES = 2**20


@dataclasses.dataclass(frozen=True)
class ProjectedSettings:
    """Hyper-parameters of `projected_ground_state` (stored as the result file's /method attributes).

    Attributes:
        n_steps: maximum number of steps.
        learning_rate: η (the imaginary-time step when the tangent space spans the projected sector).
        lr_schedule: "constant", "cosine" or "exponential" to `lr_final` at `n_steps` (`nqs.schedules`).
        lr_final: final learning rate of the schedules.
        diag_shift: λ, relative to the mean diagonal of X̃ X̃ᵀ.
        chunk_size: configurations per batch of the per-configuration Jacobian (memory: chunk × parameters).
        energy_tol: stop when |E − E_exact| / |E_exact| < energy_tol (needs the exact energy).
        checkpoint_every: write a checkpoint every this many steps (and at the end).
        observables_every: record the observables and the fidelity every this many steps (and at the end).
    """

    n_steps: int = 200
    learning_rate: float = 0.05
    lr_schedule: str = "constant"
    lr_final: float = 0.005
    diag_shift: float = 1e-4
    chunk_size: int = 1024
    energy_tol: float | None = None
    checkpoint_every: int = 10
    observables_every: int = 25

    def __post_init__(self):
        if self.n_steps < 0 or self.chunk_size < 1 or self.checkpoint_every < 1 or self.observables_every < 1:
            raise ValueError("n_steps must be >= 0 and chunk_size, checkpoint_every, observables_every >= 1")
        check_schedule(self.lr_schedule, self.learning_rate, self.lr_final)
        if not (math.isfinite(self.diag_shift) and self.diag_shift > 0):
            raise ValueError(f"diag_shift must be finite and positive, got {self.diag_shift}")


@dataclasses.dataclass
class ProjectedOutcome:
    """What `projected_ground_state` returns.

    Attributes:
        parameters: the optimised parameters of ψ_θ (the "params" collection).
        amplitudes: ψ_G on the sector's configurations (`sector.states`), normalised.
        sector: the orbit decomposition used.
        energy: exact energy of ψ_G; energy_variance: its exact variance ⟨H²⟩ − ⟨H⟩².
        observables: exact ⟨O⟩ in ψ_G for every observable of the system.
        exact_energy, relative_error, fidelity: the ED reference, |E − E_0|/|E_0| and |⟨ψ_0|ψ_G⟩|² (None without ED).
        steps: completed steps; stop_reason: "n_steps" or "energy_tol"; wall_time: seconds in this call.
    """

    parameters: Any
    amplitudes: np.ndarray
    sector: SymmetrySector
    energy: float
    energy_variance: float
    observables: dict[str, float]
    exact_energy: float | None
    relative_error: float | None
    fidelity: float | None
    steps: int
    stop_reason: str
    wall_time: float


class OrbitSums:
    """The orbit sums of the module docstring for a model ψ_θ on a `SymmetrySector`, jitted: `evaluate(θ)` gives ψ_θ on
    every configuration and (ψ_G(r), ψ_G on the sector, w_r, E_loc(r), E, Var E); `orbit_log_derivatives` gives
    O(r); `natural_gradient` gives (δθ, ½ ∂E/∂θ). θ are the real parameters of `nk.jax.tree_to_real`, `restore`
    maps them back. Used by `projected_ground_state`, the tests and `benchmarks/projected_fullsum.py`.
    """

    def __init__(self, hamiltonian_matrix, model: Any, sector: SymmetrySector, chunk_size: int, model_state: Mapping,
                 real_params: Any, restore: Callable):
        self.model, self.model_state, self.restore = model, dict(model_state), restore
        self.sector, self.chunk = sector, min(chunk_size, len(sector.states))
        n_orbits = sector.n_orbits
        kept = sector.orbit >= 0
        # dropped orbits go to an extra segment that is never read
        self.segment = jnp.asarray(np.where(kept, sector.orbit, n_orbits))
        self.coefficients = jnp.asarray(sector.coefficients)
        self.phases = jnp.asarray(sector.phases)
        self.sizes = jnp.asarray(sector.orbit_sizes, dtype=float)
        rows = hamiltonian_matrix[sector.representatives]  # (H ψ_G)(r) needs the representatives' rows only
        self.h_rows = jsparse.BCOO.from_scipy_sparse(rows.tocoo())
        self.n_orbits = n_orbits
        self.states = jnp.asarray(sector.states)
        complex_output = jnp.iscomplexobj(self.log_psi(real_params, self.states[:1]))
        self.mode = "complex" if complex_output else "real"  # nk.jax.jacobian's mode
        self._amplitudes = jax.jit(self._amplitudes_impl)
        self._statistics = jax.jit(self._statistics_impl)
        self._orbit_jacobian_chunk = jax.jit(self._orbit_jacobian_chunk_impl)
        self.natural_gradient = jax.jit(self._natural_gradient_impl)

    def log_psi(self, real_params, x):
        return self.model.apply({**self.model_state, "params": self.restore(real_params)}, x)

    def _amplitudes_impl(self, real_params):
        """ψ_θ on every configuration, scaled so that max |ψ_θ| = 1."""
        log_psi = self.log_psi(real_params, self.states)
        return jnp.exp(log_psi - jnp.max(log_psi.real))

    def _statistics_impl(self, amplitudes):
        """ψ_G at the representatives, the orbit weights w_r, E_loc(r), E and Var E."""
        psi_r = jax.ops.segment_sum(self.coefficients * amplitudes, self.segment, self.n_orbits + 1)[:-1]
        psi_all = self.phases * jnp.append(psi_r, 0.0)[self.segment]
        weights = self.sizes * jnp.abs(psi_r) ** 2
        weights = weights / jnp.sum(weights)
        local = (self.h_rows @ psi_all) / psi_r
        energy = jnp.sum(weights * local)
        variance = jnp.sum(weights * jnp.abs(local - energy) ** 2)
        return psi_r, psi_all, weights, local, energy, variance

    def _orbit_jacobian_chunk_impl(self, real_params, x, weight, segment):
        """Σ_{j in chunk} c_j ψ_θ(j) ∂ log ψ_θ(j), summed per orbit: (R + 1, P) complex."""
        jac = nk.jax.jacobian(lambda v, s: self.log_psi(v["params"], s), real_params, x, None,
                              mode=self.mode, dense=True)
        jac = jac[:, 0] + 1j * jac[:, 1] if self.mode == "complex" else jac
        return jax.ops.segment_sum(weight[:, None] * jac, segment, self.n_orbits + 1)

    def orbit_log_derivatives(self, real_params, amplitudes, psi_r):
        """O(r) = ∂ log ψ_G(r): (R, P) complex, by chunks of configurations (the last one padded)."""
        weight = self.coefficients * amplitudes
        n, total = self.chunk, len(self.sector.states)
        acc = None
        for start in range(0, total, n):
            stop = min(start + n, total)
            pad = n - (stop - start)
            x = jnp.concatenate([self.states[start:stop], jnp.repeat(self.states[:1], pad, axis=0)])
            w = jnp.concatenate([weight[start:stop], jnp.zeros(pad, weight.dtype)])
            seg = jnp.concatenate([self.segment[start:stop], jnp.full(pad, self.n_orbits)])
            part = self._orbit_jacobian_chunk(real_params, x, w, seg)
            acc = part if acc is None else acc + part
        return acc[:-1] / psi_r[:, None]

    def _natural_gradient_impl(self, log_derivatives, weights, local, energy, diag_shift):
        """δθ = X̃ᵀ (X̃ X̃ᵀ + λ m 1)⁻¹ ε̃ and the gradient X̃ᵀ ε̃ (= ½ ∂E/∂θ)."""
        root = jnp.sqrt(weights)
        x = root[:, None] * (log_derivatives - weights @ log_derivatives)
        eps = root * (local - energy)
        x_real = jnp.concatenate([x.real, x.imag])
        eps_real = jnp.concatenate([eps.real, eps.imag])
        kernel = x_real @ x_real.T
        shift = diag_shift * jnp.trace(kernel) / kernel.shape[0]
        step = x_real.T @ jnp.linalg.solve(kernel + shift * jnp.eye(kernel.shape[0]), eps_real)
        return step, x_real.T @ eps_real

    def evaluate(self, real_params):
        amplitudes = self._amplitudes(real_params)
        return amplitudes, self._statistics(amplitudes)


def _full_vector(system: System, sector: SymmetrySector, psi_all: np.ndarray) -> np.ndarray:
    full = np.zeros(system.hilbert.n_states, dtype=complex)
    full[np.asarray(system.hilbert.states_to_numbers(sector.states))] = psi_all
    return full / np.linalg.norm(full)


def _check_commutes(sector: SymmetrySector, hamiltonian_matrix, seed: int) -> None:
    """Refuse a Hamiltonian that does not map the projected sector into itself: P(Hv) = M·Hv for v = P(random)."""
    rng = np.random.default_rng(seed)
    v = sector.project(rng.normal(size=len(sector.states)) + 1j * rng.normal(size=len(sector.states)))
    hv = hamiltonian_matrix @ v
    deviation = np.linalg.norm(sector.project(hv) - sector.group_order * hv)
    if deviation > 1e-8 * sector.group_order * max(np.linalg.norm(hv), 1e-300):
        raise ValueError("the Hamiltonian does not commute with the symmetry group (or the characters are not "
                         "those of a representation it conserves): the projected state cannot be its eigenstate")


def projected_ground_state(
    system: System,
    model: Any,
    permutations: Any,
    settings: ProjectedSettings | None = None,
    *,
    characters: Any = None,
    spin_flip: int | None = None,
    seed: int = 0,
    exact: bool = True,
    initial_parameters: Callable[[Any], Any] | None = None,
    **run: Unpack[RunOptions],
) -> ProjectedOutcome:
    """Minimise the exact energy of ψ_G = Σ_g χ_g ψ_θ(g ·) over θ (module docstring).

    Args:
        system: a closed system whose Hamiltonian commutes with the group; its constraint's sector (at most 2^20
            configurations) must be closed under the group.
        model: any Flax module returning log ψ_θ on `system.hilbert` (autoregressive or not).
        permutations: (|G|, N) site permutations forming a group (`nqs.symmetry.symmetry_group`).
        settings: `ProjectedSettings()` if None.
        characters: χ_g per permutation (default: all 1); with `spin_flip` = ±1 the flip joins the group with that
            character. The 4×4 J1-J2 ground state (Marshall-rotated H) has all χ = 1 and spin_flip = +1.
        seed: seeds the parameter initialisation.
        exact: compute the ED ground state for the relative error and the fidelity.
        initial_parameters: maps the initial parameters to the starting ones (e.g. a transfer); ignored on resume.
        run: `out`, `mode`, `config`, `progress` (`nqs.run.RunOptions`).

    Raises ValueError for a sector that is too large or not closed under the group, characters that are not a
    one-dimensional representation, a representation that no configuration carries, a Hamiltonian that does not
    commute with the group, or an open system; `NonFiniteError` when the energy or the parameters stop being finite.
    """
    settings = settings or ProjectedSettings()
    system.check_closed("projected VMC for a ground state")
    t_start = time.perf_counter()
    check_output("ground_state", **run)
    search = _Search.build(system, model, permutations, settings, characters, spin_flip, seed, initial_parameters)
    ansatz = describe_ansatz(_Described(model, search.flat.size), system=system)
    ansatz["projection"] = {"group_order": search.sector.group_order, "spin_flip": spin_flip,
                            "characters": "trivial" if characters is None else np.asarray(characters).tolist(),
                            "n_orbits": search.sector.n_orbits}
    method = {"name": "nqs.projected_vmc.projected_ground_state", **dataclasses.asdict(settings)}
    with Run(kind="ground_state", system=system, ansatz=ansatz, method=method, seed=seed, **run) as recording:
        checkpoint = recording.restore(search.parameters(search.flat), model_state=search.model_state)
        flat, step = search.flat, 0
        if checkpoint is not None:
            flat, step = search.flatten(checkpoint.params), checkpoint.step + 1
        reference = exact_module.ground_state(system) if exact else None
        if reference is not None:
            recording.write_exact({"energy": reference.energy, "fidelity": 1.0, **reference.observables})
        fidelity = _fidelity_to(None if reference is None else reference.state[
            np.asarray(system.hilbert.states_to_numbers(search.sector.states))])
        flat, step, stop_reason = _descend(recording, search, flat, step, reference, fidelity)
        _, (_, psi_all, _, _, energy, variance) = search.orbits.evaluate(search.unravel(flat))
        final = _observables_row(system, search.sector, psi_all, fidelity)
        energy_value = float(jnp.real(energy))
        recording.append({"step": float(step), "energy": energy_value, "energy_error": 0.0,
                    "energy_variance": float(variance), **final})
    psi = np.asarray(psi_all)
    exact_energy = None if reference is None else reference.energy
    return ProjectedOutcome(
        parameters=search.parameters(flat),
        amplitudes=psi / np.linalg.norm(psi),
        sector=search.sector,
        energy=energy_value,
        energy_variance=float(variance),
        observables={k: v for k, v in final.items() if not k.endswith("_error") and k != "fidelity"},
        exact_energy=exact_energy,
        relative_error=None if exact_energy is None else abs(energy_value - exact_energy) / abs(exact_energy),
        fidelity=final.get("fidelity"),
        steps=step,
        stop_reason=stop_reason,
        wall_time=time.perf_counter() - t_start,
    )


@dataclasses.dataclass
class _Search:
    """The pieces of one projected search: sector, orbit sums, settings and the real flat parameters θ with the maps
    to and from the model's parameter tree."""

    system: System
    sector: SymmetrySector
    orbits: OrbitSums
    settings: ProjectedSettings
    flat: jax.Array
    unravel: Callable
    restore: Callable
    model_state: dict

    @classmethod
    def build(cls, system, model, permutations, settings, characters, spin_flip, seed, initial_parameters) -> _Search:
        check_model_matches(system, model)
        n_states = exact_module.sector_dimension(system)
        if n_states > MAX_SECTOR_STATES:
            raise ValueError(f"the sector has {n_states} configurations; the full-sum projected search handles at "
                             f"most {MAX_SECTOR_STATES}: use nqs.vmc.ground_state with a sampled ansatz")
        sector = SymmetrySector.build(system.sector_states(), permutations, spin_flip=spin_flip,
                                      characters=characters)
        hamiltonian_matrix = exact_module.sector_matrix(system.hamiltonian, sector.states)
        _check_commutes(sector, hamiltonian_matrix, seed)
        variables = model.init(jax.random.PRNGKey(seed), jnp.asarray(sector.states[:2]))
        model_state, params = flax.core.pop(flax.core.unfreeze(variables), "params")
        if initial_parameters is not None:
            params = initial_parameters(params)
        real_params, restore = nk.jax.tree_to_real(params)
        orbits = OrbitSums(hamiltonian_matrix, model, sector, settings.chunk_size, model_state, real_params, restore)
        flat, unravel = jax.flatten_util.ravel_pytree(real_params)
        return cls(system, sector, orbits, settings, flat, unravel, restore, dict(model_state))

    def parameters(self, flat: jax.Array) -> Any:
        """The model's parameter tree of the flat real parameters."""
        return self.restore(self.unravel(flat))

    def flatten(self, params: Any) -> jax.Array:
        """The flat real parameters of a parameter tree."""
        return jax.flatten_util.ravel_pytree(nk.jax.tree_to_real(params)[0])[0]


def _fidelity_to(ground_vector: np.ndarray | None) -> Callable[[Any], float | None]:
    """|⟨ψ_0|ψ_G⟩|²/⟨ψ_G|ψ_G⟩ with the ED ground state on the sector's configurations (None without one)."""
    def fidelity(psi_all) -> float | None:
        if ground_vector is None:
            return None
        psi = np.asarray(psi_all)
        return float(abs(np.vdot(ground_vector, psi)) ** 2 / np.vdot(psi, psi).real)
    return fidelity


def _descend(run: Run, search: _Search, flat, step: int, reference, fidelity):
    """The natural-gradient steps from `step` to `settings.n_steps` (or the energy tolerance): a history row per
    step, a checkpoint every `checkpoint_every` steps. Returns (θ, steps done, stop reason)."""
    settings, orbits, unravel = search.settings, search.orbits, search.unravel
    schedule = learning_rate_schedule(settings.lr_schedule, settings.learning_rate, settings.lr_final,
                                      settings.n_steps)
    bar = run.progress_bar(settings.n_steps, "projected VMC", initial=step)
    stop_reason = "n_steps"
    while step < settings.n_steps:
        amplitudes, (psi_r, psi_all, weights, local, energy, variance) = orbits.evaluate(unravel(flat))
        e, var = complex(energy), float(variance)
        if not (math.isfinite(e.real) and math.isfinite(var)):
            raise NonFiniteError(f"step {step}: the energy is {e.real} with variance {var}; lower the "
                                 "learning rate or raise diag_shift, and resume from the last checkpoint")
        row = {"step": float(step), "energy": e.real, "energy_error": 0.0, "energy_variance": var,
               "energy_imag": e.imag}
        if step % settings.observables_every == 0:
            row.update(_observables_row(search.system, search.sector, psi_all, fidelity))
        run.append(row)
        if (settings.energy_tol is not None and reference is not None
                and abs(e.real - reference.energy) / abs(reference.energy) < settings.energy_tol):
            stop_reason = "energy_tol"
            break
        log_derivatives = orbits.orbit_log_derivatives(unravel(flat), amplitudes, psi_r)
        delta, _ = orbits.natural_gradient(log_derivatives, weights, local, energy, settings.diag_shift)
        flat = flat - schedule(step) * delta
        check_finite_parameters(flat, f"step {step}", "Lower the learning rate or raise diag_shift.")
        if (step + 1) % settings.checkpoint_every == 0 or step + 1 == settings.n_steps:
            run.checkpoint(step, search.parameters(flat), model_state=search.model_state)
        bar.update(1)
        bar.set_postfix(energy=f"{e.real:.6f}")
        step += 1
    bar.close()
    return flat, step, stop_reason


@dataclasses.dataclass
class _Described:
    """The two attributes `describe_ansatz` reads from a variational state."""

    model: Any
    n_parameters: int


def _observables_row(system: System, sector: SymmetrySector, psi_all, fidelity) -> dict[str, float]:
    """Exact ⟨O⟩ in ψ_G (errors 0) and the fidelity with the ED ground state when there is one."""
    values = exact_module.expectation_values(system, _full_vector(system, sector, np.asarray(psi_all)))
    row: dict[str, float] = {}
    for name, value in values.items():
        row[name], row[f"{name}_error"] = float(value), 0.0
    f = fidelity(psi_all)
    if f is not None:
        row["fidelity"] = f
    return row
