"""Open-system dynamics and steady states in the POVM representation with normalised autoregressive models.

The state of N qubits is the distribution P_θ(a) = Tr[ρ M^(a)] over 4^N outcome strings of an
informationally complete POVM (`nqs.povm`), given by an autoregressive model with ``machine_pow = 1``
(its output is log P_θ(a), normalised by construction) and sampled exactly by NetKet's
`ARDirectSampler`. The Lindblad equation becomes the real linear equation

    dP(a)/dt = (L P)(a) = Σ_b L_ab P(b),   L_ab = Tr[M^a 𝓛(N^b)]   (`nqs.povm.PovmLindbladian`),

and the local Lindbladian on an outcome string is L_loc(a) = (L P_θ)(a)/P_θ(a) = Σ_b L_ab P_θ(b)/P_θ(a),
with the b from `PovmLindbladian.connected(a)`. Three methods move the parameters:

1. **Forward–backward trapezoid** (Luo, Chen, Carrasquilla, Clark, PRL 128, 090501 (2022)): the step
   t → t + dt solves (1 − (dt/2) L) P_θ' = (1 + (dt/2) L) P_θ variationally, by minimising over θ'
   (θ frozen, warm start θ' = θ, a fresh Adam for a fixed number of iterations)

       C(θ') = Σ_a |P_θ'(a) − (dt/2)(L P_θ')(a) − P_θ(a) − (dt/2)(L P_θ)(a)|                      (L1)
             = E_{a∼P_θ'} |1 − (dt/2) L_loc,θ'(a) − [P_θ(a) + (dt/2)(L P_θ)(a)] / P_θ'(a)|.

   In Luo et al.'s notation dt = 2τ (their code: τ = 0.008, 120 Adam iterations, lr 1e-2 halved at
   iteration 80). Sampled, the density P_θ'(a) in the denominator is held fixed (stop-gradient), which
   makes the sample-mean gradient an unbiased estimate of ∇C = Σ_a sign(r_a) ∇r_a. In exact arithmetic
   the scheme is Crank–Nicolson: second order and A-stable (`exact_trapezoid` is the linear-algebra
   reference); in practice the per-step optimisation error adds (t/dt)·ε_fit to the O(dt²) error.

2. **POVM-TDVP** (Reh, Schmitt, Gärttner, PRL 127, 230501 (2021)): the least-squares fit of
   d log P_θ/dt = L_loc gives, for real parameters, with O_k(a) = ∂ log P_θ(a)/∂θ_k,

       S θ̇ = F,   S_kk' = Cov_P(O_k, O_k'),   F_k = Cov_P(O_k, L_loc),

   solved with a regularised inverse (NetKet's smooth pseudo-inverse, S + ε1, or the pseudo-inverse with the
   signal-to-noise filter of Schmitt & Heyl that jVMC applies, `snr_solve`, or the smooth cut-off chosen by
   cross-validation between two halves of the samples, `cv_solve`) and integrated with
   NetKet's `netket.experimental.dynamics` Runge–Kutta integrators (fixed Euler/Heun/RK4 or adaptive
   RK23/RK45). In full summation F_k = Σ_a (O_k(a) − ⟨O_k⟩)(L P_θ)(a), which needs no division by P.
   The relative residual Var(L_loc − O·θ̇)/Var(L_loc) is recorded (in-sample when sampled: it
   underestimates the error of a noisy fit; ``heldout_samples`` adds the residual of θ̇ on independent
   samples). A product start can first be re-parametrised by `tangent_start` so that its tangent space
   holds the first step (`dynamics.tangent_start`).

3. **Variational steady state** (Luo et al. 2022): minimise ‖L P_θ‖₁ = Σ_a |(L P_θ)(a)|
   = E_{a∼P_θ} |L_loc(a)| (density held fixed in the gradient) with Adam, or relax along the POVM-TDVP flow of 2.
   by RK4 steps (``optimizer="natural"``; its fixed point F = 0 is the steady state within the model's tangent
   space), keeping the checkpoint with the lowest large-sample (or, in full summation, exact) loss after
   `eval_after` iterations. Runs checkpoint their whole state at every history row and resume exactly.

**Modes.** A `netket.vqs.FullSumState` selects full summation over all 4^N outcomes (N ≤ 9: the sums are
exact, L P is applied blockwise to the whole vector, and an autoregressive model yields all 4^N log P from one
pass over 4^(N−1) strings, `_Povm.log_probabilities`); an `MCState` with `ARDirectSampler` selects
sampling, with `vstate.n_samples` samples per Adam iteration or TDVP evaluation. The variational state
lives on a local-dimension-4 space, ``netket.hilbert.Fock(n_max=3, N=N)``; the `System` supplies H and
the jump operators on the qubit space.

**Recording.** At every save time (dynamics) or at the end (steady state): per-site averages
⟨σˣ⟩, ⟨σʸ⟩, ⟨σᶻ⟩ (``sigma_x``, ``sigma_y``, ``sigma_z``), the nearest-neighbour average ⟨σᶻσᶻ⟩ (``zz_nn``,
bonds of `system.graph`) and every Hermitian `LocalOperator` observable of the system, as averages of
Q_O(a) = Tr[O N^(a)] (`nqs.povm.observable_table`), with standard errors when sampled; physicality
diagnostics: the purity Tr ρ² = Σ_{a,b} P(a) P(b) Π_k T⁻¹_{a_k b_k} (full sum, or paired samples for
N ≤ `purity_max_sites`), and the smallest eigenvalue of the 1- and 2-site (bond) reduced density matrices
ρ_S = Σ_{a_S} P_S(a_S) N^(a_S) rebuilt from the marginals of P (empirical marginals when sampled). The
exact reference (QuTiP `mesolve` from ρ(P_θ(0)), or `steadystate`) is computed by an independent path
(Tr ρ O) on the same grid and written to /exact; for N ≤ 9 the classical fidelity, ‖P_θ − P_exact‖₁ and
the trace distance of ρ(P_θ) to the exact ρ are recorded too.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import flax.serialization
import jax
import jax.numpy as jnp
import netket as nk
import netket.experimental as nkx
import numpy as np
import optax
import scipy.linalg
from jax.flatten_util import ravel_pytree
from tqdm.auto import tqdm

from dynamics.tangent_start import HEAD, TangentStartReport, fit_tangent_start
from nqs import exact
from nqs.exact import MAX_OPEN_SITES
from nqs.povm import (
    POVM,
    PovmLindbladian,
    density_matrix,
    observable_table,
    povm_lindbladian,
    probabilities,
)
from nqs.results import ResultFile, describe_ansatz
from nqs.system import System

MAX_FULL_SUM_SITES = 9  # 4^9 = 262 144 outcomes (the 3×3 lattice): one pass over 4^8 strings, L P by blocks
MAX_FULL_SUM_JACOBIAN_BYTES = 8 * 2**30  # full-sum POVM-TDVP stores the (4^N, n_params) Jacobian
SCHEDULES = ("constant", "step", "cosine", "exponential")
LP_CHUNK_CONFIGS = 16384  # connected strings per model evaluation in `_Povm.lp_ratios`
INTEGRATORS = {"Euler": nkx.dynamics.Euler, "Heun": nkx.dynamics.Heun, "RK4": nkx.dynamics.RK4,
               "RK23": nkx.dynamics.RK23, "RK45": nkx.dynamics.RK45}
ADAPTIVE = ("RK23", "RK45")
TDVP_SOLVERS = ("pinv_smooth", "shift", "snr", "cv")
_PAULI = {
    "X": np.array([[0, 1], [1, 0]], dtype=complex),
    "Y": np.array([[0, -1j], [1j, 0]], dtype=complex),
    "Z": np.array([[1, 0], [0, -1]], dtype=complex),
}


# -- settings --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class AdamSettings:
    """Adam (optax) and its learning-rate schedule, shared by the trapezoid and steady-state methods.

    Attributes:
        learning_rate: initial learning rate.
        b1, b2, eps: Adam moments and regulariser (Luo et al.: 0.9, 0.98, 1e-9).
        schedule: "constant"; "step" (× `drop_factor` from iteration `drop_at`, Luo et al.);
            "cosine" or "exponential" decay to `final_fraction` × learning_rate at the last iteration.
        drop_at, drop_factor: the "step" schedule.
        final_fraction: the end point of the "cosine" and "exponential" schedules.
    """

    learning_rate: float = 1e-2
    b1: float = 0.9
    b2: float = 0.98
    eps: float = 1e-9
    schedule: str = "step"
    drop_at: int = 80
    drop_factor: float = 0.5
    final_fraction: float = 1e-3

    def __post_init__(self):
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose one of {SCHEDULES}")
        if not 0 < self.final_fraction <= 1 or not self.drop_factor > 0:
            raise ValueError("final_fraction must be in (0, 1] and drop_factor > 0")

    def make_schedule(self, n_iter: int) -> optax.Schedule:
        """Learning rate as a function of the iteration (0-based) of an `n_iter`-iteration run."""
        lr = self.learning_rate
        if self.schedule == "constant":
            return optax.constant_schedule(lr)
        if self.schedule == "step":
            return optax.piecewise_constant_schedule(lr, {int(self.drop_at): float(self.drop_factor)})
        if self.schedule == "cosine":
            return optax.cosine_decay_schedule(lr, max(n_iter - 1, 1), alpha=self.final_fraction)
        return optax.exponential_decay(lr, max(n_iter - 1, 1), self.final_fraction)

    def make_optimizer(self, n_iter: int) -> optax.GradientTransformation:
        """optax Adam with the schedule of an `n_iter`-iteration run."""
        return optax.adam(self.make_schedule(n_iter), b1=self.b1, b2=self.b2, eps=self.eps)


def _check_grid(t_end: float, dt: float, n_save: int) -> None:
    if not dt > 0:
        raise ValueError(f"dt must be > 0, got {dt}")
    if not t_end >= 0:
        raise ValueError(f"t_end must be >= 0, got {t_end}")
    if n_save < 2:
        raise ValueError(f"n_save must be >= 2, got {n_save}")


@dataclasses.dataclass(frozen=True)
class TrapezoidSettings(AdamSettings):
    """Forward–backward trapezoid dynamics (stored as /method attributes).

    Attributes:
        t_end: final time (> 0; the run starts at t = 0).
        dt: largest time step. The step used, `step_size`, is the largest one ≤ dt that divides the
            interval between save points, t_end/(n_save − 1). Luo et al.'s τ is step_size/2.
        n_save: number of save points in [0, t_end], both ends included.
        n_iter: Adam iterations per step (Adam is re-initialised every step, warm start θ' = θ).
        n_obs_samples: samples for observables at save points (sampled mode).
        purity_max_sites: estimate the purity from paired samples only up to this N (its variance grows
            exponentially with N).
        seed: seed of the sampling keys.
    """

    t_end: float = 1.0
    dt: float = 0.016
    n_save: int = 11
    n_iter: int = 120
    n_obs_samples: int = 20000
    purity_max_sites: int = 8
    seed: int = 0

    def __post_init__(self):
        super().__post_init__()
        _check_grid(self.t_end, self.dt, self.n_save)
        if not self.t_end > 0:
            raise ValueError(f"t_end must be > 0 for the trapezoid, got {self.t_end}")
        if self.n_iter < 1:
            raise ValueError(f"n_iter must be >= 1, got {self.n_iter}")

    @property
    def steps_per_save(self) -> int:
        """Trapezoid steps between consecutive save points."""
        return max(1, math.ceil(self.t_end / (self.n_save - 1) / self.dt - 1e-9))

    @property
    def step_size(self) -> float:
        """The time step used (≤ dt)."""
        return self.t_end / (self.n_save - 1) / self.steps_per_save

    @property
    def n_steps(self) -> int:
        return self.steps_per_save * (self.n_save - 1)

    @property
    def times(self) -> np.ndarray:
        return np.linspace(0.0, self.t_end, self.n_save)


@dataclasses.dataclass(frozen=True)
class PovmTDVPSettings:
    """POVM-TDVP (stored as /method attributes).

    Attributes:
        t_end, dt, n_save: final time, integrator step (initial step when adaptive), save points.
        integrator: "Euler", "Heun", "RK4" (fixed step), "RK23" or "RK45" (adaptive, tolerances rtol/atol
            on the parameters in the Euclidean norm). NetKet 3.23's adaptive step runs its `lax.cond`s
            outside jit and compiles them anew on every step (~0.1–0.2 s per step on a CPU): negligible
            for large models, dominant for tiny ones.
        solver: "pinv_smooth" (NetKet's eigen-decomposition pseudo-inverse with the smooth cut-off
            1/(1 + (pinv_rtol_smooth λ_max/λ)⁶), eigenvalues below pinv_rtol λ_max dropped), "shift"
            (Cholesky solve of S + diag_shift·1) or "snr" (the same pseudo-inverse times the signal-to-noise
            filter 1/(1 + (snr_tol/SNR_k)⁶) of `snr_solve`; sampled states only, full sums use pinv_smooth) or "cv"
            (the smooth cut-off chosen from `cv_cutoffs` at every evaluation by cross-validation, `cv_solve`; sampled
            states only, full sums use pinv_smooth).
        pinv_rtol, pinv_rtol_smooth, diag_shift, snr_tol, cv_cutoffs: the cut-offs of those solvers.
        heldout_samples: at every save time of a sampled run, also evaluate the relative residual of a fresh θ̇ on
            this many independent samples (``tdvp_residual_heldout``; 0: off). The in-sample residual falls when the
            fit absorbs sample noise; the held-out one rises.
        n_obs_samples, purity_max_sites, seed: as in `TrapezoidSettings`.
    """

    t_end: float = 1.0
    dt: float = 0.01
    n_save: int = 11
    integrator: str = "RK4"
    rtol: float = 1e-5
    atol: float = 1e-5
    solver: str = "pinv_smooth"
    pinv_rtol: float = 1e-12
    pinv_rtol_smooth: float = 1e-8
    diag_shift: float = 1e-6
    snr_tol: float = 2.0
    cv_cutoffs: tuple[float, ...] = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8)
    heldout_samples: int = 0
    n_obs_samples: int = 20000
    purity_max_sites: int = 8
    seed: int = 0

    def __post_init__(self):
        _check_grid(self.t_end, self.dt, self.n_save)
        if self.heldout_samples < 0:
            raise ValueError(f"heldout_samples must be >= 0, got {self.heldout_samples}")
        if self.integrator not in INTEGRATORS:
            raise ValueError(f"unknown integrator {self.integrator!r}; choose one of {sorted(INTEGRATORS)}")
        if self.solver not in TDVP_SOLVERS:
            raise ValueError(f"unknown solver {self.solver!r}; choose one of {TDVP_SOLVERS}")
        if self.diag_shift < 0:
            raise ValueError(f"diag_shift must be >= 0, got {self.diag_shift}")
        if not self.snr_tol >= 0:
            raise ValueError(f"snr_tol must be >= 0, got {self.snr_tol}")
        if not self.cv_cutoffs or not all(c > 0 for c in self.cv_cutoffs):
            raise ValueError(f"cv_cutoffs must be a non-empty tuple of positive cut-offs, got {self.cv_cutoffs}")

    @property
    def times(self) -> np.ndarray:
        return np.linspace(0.0, self.t_end, self.n_save)

    def make_solver(self, dt: float | None = None) -> nkx.dynamics.AbstractSolver:
        """The NetKet Runge–Kutta solver object for `nkx.dynamics.Integrator` (initial step `dt`, default self.dt;
        fixed-step integrators always use self.dt)."""
        cls = INTEGRATORS[self.integrator]
        if self.integrator in ADAPTIVE:
            return cls(dt=self.dt if dt is None else dt, adaptive=True, rtol=self.rtol, atol=self.atol)
        return cls(dt=self.dt)


STEADY_OPTIMIZERS = ("adam", "natural")


@dataclasses.dataclass(frozen=True)
class SteadyStateSettings(AdamSettings):
    """Variational steady state ‖L P_θ‖₁ → min (stored as /method attributes).

    Attributes:
        optimizer: "adam" (Luo et al.: Adam on the gradient of ‖L P_θ‖₁) or "natural" (relaxation along the POVM-TDVP
            flow θ̇ = S⁻¹F by RK4 steps of length τ_k, the learning-rate schedule, S⁻¹ the smooth pseudo-inverse with
            cut-offs `pinv_rtol`, `pinv_rtol_smooth`; its fixed points are those of the TDVP flow, F = 0).
        n_iter: iterations (Luo et al.: 500 with 10⁴ samples each, lr 1e-2, halved at 600).
        eval_after: consider checkpoints only from this iteration on.
        eval_every: evaluate the loss every this many iterations (a history row and a resumable checkpoint each
            time); in full summation the exact loss of every iteration after `eval_after` is compared.
        n_eval_samples: samples of the checkpoint-selection loss estimate (sampled mode).
        pinv_rtol, pinv_rtol_smooth: the cut-offs of the "natural" optimizer (as in `PovmTDVPSettings`).
        n_obs_samples, purity_max_sites, seed: as in `TrapezoidSettings`.
    """

    optimizer: str = "adam"
    n_iter: int = 500
    eval_after: int = 400
    eval_every: int = 5
    n_eval_samples: int = 40000
    pinv_rtol: float = 1e-12
    pinv_rtol_smooth: float = 1e-4
    n_obs_samples: int = 100000
    purity_max_sites: int = 8
    seed: int = 0
    drop_at: int = 600

    def __post_init__(self):
        super().__post_init__()
        if self.optimizer not in STEADY_OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose one of {STEADY_OPTIMIZERS}")
        if self.n_iter < 1 or self.eval_every < 1:
            raise ValueError("n_iter and eval_every must be >= 1")
        if not 0 <= self.eval_after < self.n_iter:
            raise ValueError(f"eval_after must be in [0, n_iter), got {self.eval_after}")

    def make_optimizer(self, n_iter: int) -> optax.GradientTransformation:
        """Adam, or for "natural" plain steps of the scheduled size along the update passed as −θ̇."""
        if self.optimizer == "natural":
            return optax.sgd(self.make_schedule(n_iter))
        return super().make_optimizer(n_iter)


# -- the model as a probability distribution --------------------------------------------------------
def all_outcomes(n_sites: int) -> np.ndarray:
    """All 4^N outcome strings (4^N, N), a_0 most significant (the order of `nqs.povm.probabilities`)."""
    return np.stack(np.unravel_index(np.arange(4**n_sites), (4,) * n_sites), axis=1).astype(np.int32)


def apply_lindbladian(lindbladian: PovmLindbladian, P: jax.Array) -> jax.Array:
    """(L P) for a full vector P (4^N,) in jax.numpy (differentiable), block by block."""
    n = lindbladian.n_sites
    t = P.reshape((4,) * n)
    out = jnp.zeros_like(t)
    for sites, block in lindbladian.terms:
        k = len(sites)
        b = jnp.asarray(block.reshape((4,) * (2 * k)))
        moved = jnp.tensordot(b, t, axes=(list(range(k, 2 * k)), list(sites)))
        out = out + jnp.moveaxis(moved, list(range(k)), list(sites))
    return out.reshape(-1)


@dataclasses.dataclass(eq=False)
class _Povm:
    """An autoregressive probability model on POVM outcomes with the POVM Lindbladian of a system."""

    system: System
    lindbladian: PovmLindbladian
    model: Any
    model_state: dict
    sampler: Any
    n_samples: int
    full_sum: bool

    @property
    def n_sites(self) -> int:
        return self.system.n_sites

    @functools.cached_property
    def outcomes(self) -> np.ndarray:
        return all_outcomes(self.n_sites)

    def log_prob(self, params, a):
        return self.model.apply({"params": params, **self.model_state}, a)

    @functools.cached_property
    def _shared_prefix_layout(self) -> tuple[int, np.ndarray, np.ndarray] | None:
        """For a NetKet `AbstractARNN`: (last generated site, the 4^(N−1) strings with that site at 0, the
        gather index from their (string, value of the last site) table to the `outcomes` order); else None."""
        if not isinstance(self.model, nk.models.AbstractARNN):
            return None
        n = self.n_sites
        with jax.ensure_compile_time_eval():  # first use may be inside a jit trace
            last = int(np.asarray(self.model.reorder(jnp.arange(n)[None], axis=1))[0, -1])
        base = self.outcomes[self.outcomes[:, last] == 0]
        weights = 4 ** np.arange(n - 1, -1, -1)
        table_index = (base @ weights)[:, None] + np.arange(4)[None, :] * weights[last]  # (4^(N−1), 4)
        gather = np.empty(4**n, dtype=np.int64)
        gather[table_index.reshape(-1)] = np.arange(4**n)
        return last, base, gather

    def log_probabilities(self, params) -> jax.Array:
        """log P_θ(a) for all 4^N outcomes, in the order of `outcomes`.

        For an autoregressive model (NetKet `AbstractARNN`) the conditional of a site depends only on the
        sites generated before it, so one parallel pass over the 4^(N−1) strings whose last generated site is
        0 yields every conditional: log P(a) = Σ_{i ≠ last} log q_i(a_i | a_<i) + log q_last(a_last | a_<last),
        the last factor read off for all four values. That is 4× fewer model evaluations than evaluating the
        4^N outcomes one by one (the path of other models, e.g. String States).
        """
        layout = self._shared_prefix_layout
        if layout is None:
            return self.log_prob(params, jnp.asarray(self.outcomes))
        last, base, gather = layout
        variables = {"params": params, **self.model_state}
        log_q = self.model.apply(variables, jnp.asarray(base), method=self.model.conditionals_log_psi)
        log_q = log_q * self.model.machine_pow  # log q from log ψ_i = log q_i / machine_pow (= 1 here)
        taken = jnp.take_along_axis(log_q, jnp.asarray(base)[..., None], axis=-1)[..., 0]  # (4^(N−1), N)
        prefix = jnp.sum(taken, axis=1) - taken[:, last]
        return (prefix[:, None] + log_q[:, last, :]).reshape(-1)[jnp.asarray(gather)]

    def probabilities(self, params) -> jax.Array:
        return jnp.exp(self.log_probabilities(params))

    def sample(self, params, key, n: int) -> jax.Array:
        variables = {"params": params, **self.model_state}
        state = self.sampler.init_state(self.model, variables, seed=key)
        chain = -(-n // self.sampler.n_batches)
        x, _ = self.sampler.sample(self.model, variables, state=state, chain_length=chain)
        return x.reshape(-1, self.n_sites)[:n].astype(jnp.int32)

    def lp_ratios(self, params, a, log_p_ref, max_configs: int = LP_CHUNK_CONFIGS, log_p_a=None):
        """Σ_b L_ab P_θ(b) / exp(log_p_ref(a)) for outcome strings a (B, N).

        The diagonal b = a needs log P_θ(a) only (`log_p_a` when the caller has it). The B·n_moves
        off-diagonal strings go through the model in chunks of about `max_configs` under
        `jax.checkpoint`, so a gradient stores one chunk's activations instead of all of them (at N = 8
        with 2048 samples the unchunked gradient of a 2-layer Transformer needed > 16 GB).
        """
        diagonal, conns, mels = self.lindbladian.connected(a)
        if log_p_a is None:
            log_p_a = self.log_prob(params, a)
        b, c = mels.shape
        n = self.n_sites

        def ratios(args):
            conns_k, mels_k, ref_k = args
            log_pb = self.log_prob(params, conns_k.reshape(-1, n)).reshape(mels_k.shape)
            return jnp.sum(mels_k * jnp.exp(log_pb - ref_k[:, None]), axis=1)

        per_chunk = max(1, max_configs // max(c, 1))
        if b <= per_chunk:
            off = ratios((conns, mels, log_p_ref))
        else:
            n_chunks = -(-b // per_chunk)
            pad = n_chunks * per_chunk - b

            def chunks(x):
                x = jnp.concatenate([x, jnp.repeat(x[:1], pad, axis=0)]) if pad else x
                return x.reshape((n_chunks, per_chunk) + x.shape[1:])

            off = jax.lax.map(jax.checkpoint(ratios), (chunks(conns), chunks(mels), chunks(log_p_ref)))
            off = off.reshape(-1)[:b]
        return diagonal * jnp.exp(log_p_a - log_p_ref) + off


def _make_context(system: System, vstate: Any, povm: POVM | None) -> _Povm:
    if not system.is_open:
        raise ValueError("POVM dynamics needs an open system (with jump operators)")
    hi = vstate.hilbert
    if hi.size != system.n_sites or hi.local_size != 4 or list(np.asarray(hi.local_states)) != [0, 1, 2, 3]:
        raise ValueError(
            f"the variational state must live on {system.n_sites} sites with local values 0..3 "
            f"(netket.hilbert.Fock(n_max=3, N={system.n_sites})), got {hi}"
        )
    model = vstate.model
    if getattr(model, "machine_pow", 1) != 1:
        raise ValueError("the model must return log P (machine_pow = 1), a normalised distribution over outcomes")
    leaves = jax.tree_util.tree_leaves(vstate.parameters)
    if any(jnp.iscomplexobj(x) for x in leaves):
        raise ValueError("POVM methods need real parameters (P_θ is a real distribution)")
    model_state = dict(vstate.model_state or {})
    lindbladian = povm_lindbladian(system, povm or POVM.tetrahedral())
    if isinstance(vstate, nk.vqs.FullSumState):
        if system.n_sites > MAX_FULL_SUM_SITES:
            raise ValueError(f"full summation needs N <= {MAX_FULL_SUM_SITES}, got {system.n_sites}")
        ctx = _Povm(system, lindbladian, model, model_state, None, 0, True)
        P = ctx.probabilities(vstate.parameters)
        total = float(jnp.sum(P.astype(jnp.float64)))
        if abs(total - 1) > (1e-8 if P.dtype == jnp.float64 else 1e-5):  # float32 models (--dtype) round at 1e-7
            raise ValueError(f"the model is not normalised (Σ_a P(a) = {total}); use an autoregressive model")
        return ctx
    if isinstance(vstate, nk.vqs.MCState):
        sampler = vstate.sampler
        if not isinstance(sampler, nk.sampler.ARDirectSampler):
            raise TypeError("sampled POVM methods need the exact autoregressive sampler nk.sampler.ARDirectSampler")
        return _Povm(system, lindbladian, model, model_state, sampler, int(vstate.n_samples), False)
    raise TypeError(f"expected a netket FullSumState or MCState, got {type(vstate).__name__}")


@jax.jit
def _as_jit_output(tree):
    """A copy laid out like the outputs of jitted functions (the same sharding), so that feeding the
    initial parameters and later the updated ones to a jitted step does not compile it twice."""
    return jax.tree_util.tree_map(jnp.copy, tree)


def _set_parameters(vstate: Any, params) -> None:
    vstate.parameters = params
    if isinstance(vstate, nk.vqs.MCState):
        vstate.reset()


def tangent_start(
    system: System,
    vstate: Any,
    *,
    povm: POVM | None = None,
    n_samples: int = 8192,
    n_iter: int = 1000,
    learning_rate: float = 3e-3,
    head: tuple[str, ...] = HEAD,
    seed: int = 0,
    progress: bool = False,
) -> TangentStartReport:
    """Re-parametrise a product-start POVM model so that its tangent space holds L_loc (`dynamics.tangent_start`):
    the state is unchanged, `vstate`'s parameters are replaced. Fits on `n_samples` exact samples, reports r²
    on `n_samples` more (drawn from P_θ by the sampler, or from the full vector for a `FullSumState`)."""
    ctx = _make_context(system, vstate, povm)
    params = vstate.parameters
    key = jax.random.PRNGKey(seed)
    if ctx.full_sum:
        index = jax.random.choice(key, 4**ctx.n_sites, (2 * n_samples,), p=ctx.probabilities(params))
        a = jnp.asarray(ctx.outcomes)[index]
    else:
        a = ctx.sample(params, key, 2 * n_samples)
    log_pa = ctx.log_prob(params, a)
    target = ctx.lp_ratios(params, a, log_pa, log_p_a=log_pa)
    new, report = fit_tangent_start(ctx.log_prob, params, (a[:n_samples], target[:n_samples]),
                                    (a[n_samples:], target[n_samples:]), head=head, n_iter=n_iter,
                                    learning_rate=learning_rate, seed=seed, progress=progress)
    _set_parameters(vstate, new)
    return report


# -- observables and physicality diagnostics -------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Observable:
    """⟨O⟩ = c + Σ_t E_P[Q_t(a_{S_t})] with the tables Q_t = Tr[O_t N^(a_{S_t})] of the local terms O_t."""

    name: str
    constant: float
    terms: tuple[tuple[np.ndarray, np.ndarray], ...]

    def values(self, a: np.ndarray) -> np.ndarray:
        out = np.full(len(a), self.constant, dtype=float)
        for sites, table in self.terms:
            index = a[:, sites] @ (4 ** np.arange(len(sites) - 1, -1, -1))
            out += table[index]
        return out


def _bonds(system: System) -> list[tuple[int, int]]:
    if system.graph is not None:
        return sorted({(min(i, j), max(i, j)) for i, j in system.graph.edges() if i != j})
    return [(i, i + 1) for i in range(system.n_sites - 1)]


def _observables(system: System, povm: POVM) -> tuple[list[_Observable], dict[str, np.ndarray | None]]:
    """The POVM observables and, per name, the dense operator for the exact side (None: built from ρ_S)."""
    n = system.n_sites
    obs = []
    for p in "XYZ":
        q = observable_table(_PAULI[p], povm) / n
        obs.append(_Observable(f"sigma_{p.lower()}", 0.0, tuple((np.array([i]), q) for i in range(n))))
    bonds = _bonds(system)
    if bonds:
        q = observable_table(np.kron(_PAULI["Z"], _PAULI["Z"]), povm) / len(bonds)
        obs.append(_Observable("zz_nn", 0.0, tuple((np.array(b), q) for b in bonds)))
    dense: dict[str, np.ndarray | None] = {o.name: None for o in obs}
    qutip_obs = system.to_qutip()["observables"] if system.observables and n <= MAX_OPEN_SITES else {}
    for name, op in system.observables.items():
        if name in dense or not hasattr(op, "acting_on"):
            continue
        try:
            terms = tuple(
                (np.asarray(s, dtype=int), observable_table(m.toarray() if hasattr(m, "toarray") else np.asarray(m), povm))
                for s, m in zip(op.acting_on, op.operators)
            )
        except ValueError:  # a non-Hermitian observable has complex Q: not recorded
            continue
        obs.append(_Observable(name, float(np.real(complex(op.constant))), terms))
        dense[name] = qutip_obs[name].full() if name in qutip_obs else None
    return obs, dense


def _marginal(a: np.ndarray, weights: np.ndarray, sites) -> np.ndarray:
    index = a[:, list(sites)] @ (4 ** np.arange(len(sites) - 1, -1, -1))
    return np.bincount(index, weights=weights, minlength=4 ** len(sites))


def _min_eigs(a: np.ndarray, weights: np.ndarray, povm: POVM, bonds) -> dict[str, float]:
    """Smallest eigenvalue of the 1-site and bond reduced ρ_S = Σ P_S(a_S) N^(a_S) rebuilt from marginals."""
    n = a.shape[1]
    one = min(np.linalg.eigvalsh(density_matrix(_marginal(a, weights, [i]), povm, 1)).min() for i in range(n))
    out = {"min_eig_1site": float(one)}
    if bonds:
        two = min(np.linalg.eigvalsh(density_matrix(_marginal(a, weights, b), povm, 2)).min() for b in bonds)
        out["min_eig_2site"] = float(two)
    return out


def _purity_full(P: np.ndarray, povm: POVM, n: int) -> float:
    """Tr ρ² = Σ_{a,b} P(a) P(b) Π_k T⁻¹_{a_k b_k} (exact contraction)."""
    t = np.asarray(P, dtype=float).reshape((4,) * n)
    for k in range(n):
        t = np.moveaxis(np.tensordot(povm.T_inv, t, axes=([1], [k])), 0, k)
    return float(np.sum(np.asarray(P).reshape((4,) * n) * t))


def _purity_sampled(a: np.ndarray, povm: POVM) -> tuple[float, float]:
    """Tr ρ² from independent pairs (first half, second half) of exact samples: mean and standard error."""
    half = len(a) // 2
    values = np.prod(povm.T_inv[a[:half], a[half : 2 * half]], axis=1)
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(max(half, 1)))


def _partial_trace(rho: np.ndarray, keep, n: int) -> np.ndarray:
    t = rho.reshape((2,) * (2 * n))
    letters = "abcdefghijklmnopqrstuvwxyz"
    ket = list(letters[:n])
    bra = [letters[n + i] if i in keep else ket[i] for i in range(n)]
    out = "".join(ket[i] for i in keep) + "".join(bra[i] for i in keep)
    k = len(keep)
    return np.einsum("".join(ket) + "".join(bra) + "->" + out, t).reshape(2**k, 2**k)


def _exact_row(rho: np.ndarray, obs: list[_Observable], dense: Mapping[str, Any], bonds, n: int) -> dict[str, float]:
    """The recorded quantities of the exact ρ, by Tr[ρ O] on reduced density matrices (independent of the POVM)."""
    singles = [_partial_trace(rho, [i], n) for i in range(n)]
    pairs = [_partial_trace(rho, list(b), n) for b in bonds]
    row = {f"sigma_{p.lower()}": float(np.mean([np.trace(r @ _PAULI[p]).real for r in singles])) for p in "XYZ"}
    if pairs:
        zz = np.kron(_PAULI["Z"], _PAULI["Z"])
        row["zz_nn"] = float(np.mean([np.trace(r @ zz).real for r in pairs]))
    for o in obs:
        if dense.get(o.name) is not None:
            row[o.name] = float(np.trace(rho @ dense[o.name]).real)
    row["purity"] = exact.purity(rho)
    row["min_eig_1site"] = float(min(np.linalg.eigvalsh(r).min() for r in singles))
    if pairs:
        row["min_eig_2site"] = float(min(np.linalg.eigvalsh(r).min() for r in pairs))
    return row


class _Recorder:
    """One row per save point: observables, physicality diagnostics, comparison with the exact ρ."""

    def __init__(self, ctx: _Povm, povm: POVM, result: ResultFile | None, exact_rhos: list[np.ndarray] | None,
                 n_obs_samples: int, purity_max_sites: int, times: np.ndarray | None = None):
        self.ctx, self.povm, self.result = ctx, povm, result
        self.n_obs_samples, self.purity_max_sites = n_obs_samples, purity_max_sites
        self.obs, dense = _observables(ctx.system, povm)
        self.bonds = _bonds(ctx.system)
        self.rows: list[dict[str, float]] = []
        self.exact_rhos = exact_rhos
        self.t0 = time.perf_counter()
        self.exact: dict[str, Any] = {}
        self._sample = jax.jit(ctx.sample, static_argnums=2) if not ctx.full_sum else None
        self._probs = jax.jit(ctx.probabilities)
        if exact_rhos is not None:
            n = ctx.n_sites
            rows = [_exact_row(r, self.obs, dense, self.bonds, n) for r in exact_rhos]
            self.exact = {k: np.array([r[k] for r in rows]) for k in rows[0]}
            if times is None:
                self.exact = {k: float(v[0]) for k, v in self.exact.items()}
            else:
                self.exact["time"] = np.asarray(times, dtype=float)
            if result is not None:
                result.write_exact_values(self.exact)

    def record(self, index: int, t: float | None, params, key, diagnostics: Mapping[str, float] | None = None,
               exact_index: int | None = None) -> dict[str, float]:
        ctx, n = self.ctx, self.ctx.n_sites
        row = {"step": float(index), "wall_time": time.perf_counter() - self.t0}
        if t is not None:
            row["time"] = float(t)
        P_model = None
        if ctx.full_sum:
            a = ctx.outcomes
            P_model = np.asarray(self._probs(params))
            weights = P_model
        else:
            a = np.asarray(self._sample(params, key, self.n_obs_samples))
            weights = np.full(len(a), 1.0 / len(a))
        for o in self.obs:
            q = o.values(a)
            if ctx.full_sum:
                row[o.name] = float(np.sum(weights * q))
            else:
                row[o.name] = float(q.mean())
                row[f"{o.name}_error"] = float(q.std(ddof=1) / math.sqrt(len(q)))
        if not all(math.isfinite(row[o.name]) for o in self.obs):
            raise FloatingPointError(f"step {index}: non-finite observables; the evolution diverged")
        if ctx.full_sum:
            row["purity"] = _purity_full(P_model, self.povm, n)
        elif n <= self.purity_max_sites:
            row["purity"], row["purity_error"] = _purity_sampled(a, self.povm)
        row.update(_min_eigs(a, weights, self.povm, self.bonds))
        if self.exact_rhos is not None and n <= MAX_FULL_SUM_SITES:
            if P_model is None:
                P_model = np.asarray(self._probs(params))
            rho = self.exact_rhos[exact_index if exact_index is not None else 0]
            P_exact = probabilities(rho, self.povm, n)
            row["classical_fidelity"] = exact.classical_fidelity(P_model, P_exact)
            row["l1_distance"] = float(np.sum(np.abs(P_model - P_exact)))
            row["trace_distance"] = exact.trace_distance(density_matrix(P_model, self.povm, n), rho)
        row.update(diagnostics or {})
        self.rows.append(row)
        if self.result is not None:
            self.result.append(row)
        return row


# -- outcome and result file -----------------------------------------------------------------------
@dataclasses.dataclass
class PovmOutcome:
    """A finished POVM run.

    Attributes:
        state: the variational state, holding the final parameters (steady state: the best checkpoint).
        times: save times (dynamics) or None (steady state).
        rows: the recorded rows (also the /history of the result file).
        exact: exact reference: name -> series on `times` (dynamics) or scalar (steady state); empty
            when the system is too large.
        wall_time: seconds.
        info: method-specific results (steady state: best_step, best_loss).
    """

    state: Any
    times: np.ndarray | None
    rows: list[dict[str, float]]
    exact: dict[str, Any]
    wall_time: float
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    def series(self, name: str) -> np.ndarray:
        """Column `name` of the rows that have it (NaN where missing)."""
        return np.array([r.get(name, np.nan) for r in self.rows])


def _open(out, mode, kind, system, vstate, method, config, seed, ansatz) -> ResultFile | None:
    if out is None:
        return None
    return ResultFile(out, mode, kind=kind, config=dict(config or {}), seed=seed, system=system,
                      ansatz=describe_ansatz(vstate, ansatz), method=method)


def _run_state(result: ResultFile | None, mode: str, fresh: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """(run state, step of its checkpoint) of a POVM run: the result file's checkpoint with mode "resume", else
    `fresh` at step 0. Dynamics states are {"initial": parameters at t = 0, "params": current parameters, ...} (the
    exact reference starts from "initial"), steady states {"params", "finished", ...}: layouts that
    `nqs.results.load_parameters` reads."""
    if result is not None and mode == "resume" and (checkpoint := result.load_checkpoint()) is not None:
        return flax.serialization.from_bytes(fresh, checkpoint[0]), checkpoint[1]
    return fresh, 0


def _checkpoint(result: ResultFile | None, state: dict[str, Any], index: int) -> None:
    if result is not None:
        result.save_checkpoint(flax.serialization.to_bytes(state), index)


def _initial_rho(ctx: _Povm, params, povm: POVM, rho0: np.ndarray | None) -> np.ndarray | None:
    n = ctx.n_sites
    if rho0 is not None:
        rho0 = np.asarray(rho0, dtype=complex)
        if rho0.shape != (2**n, 2**n):
            raise ValueError(f"rho0 has shape {rho0.shape}, expected {(2**n, 2**n)}")
        return rho0
    if n > MAX_OPEN_SITES:
        return None
    return density_matrix(np.asarray(jax.jit(ctx.probabilities)(params)), povm, n)


def _exact_dynamics(ctx: _Povm, params, povm: POVM, rho0, times, with_exact: bool) -> list[np.ndarray] | None:
    if not with_exact or ctx.n_sites > MAX_OPEN_SITES:
        return None
    rho = _initial_rho(ctx, params, povm, rho0)
    return exact.mesolve_system(ctx.system, rho, times, store_states=True)["states"]


def _method(name: str, settings: Any, povm: POVM, ctx: _Povm) -> dict[str, Any]:
    return {"name": name, **dataclasses.asdict(settings), "povm": povm.name,
            "mode": "full_sum" if ctx.full_sum else "sampled", "n_samples": ctx.n_samples}


# -- exact linear-algebra trapezoid (reference) -----------------------------------------------------
def exact_trapezoid(L: np.ndarray, P0: np.ndarray, dt: float, n_steps: int) -> np.ndarray:
    """Crank–Nicolson (1 − (dt/2) L) P_{n+1} = (1 + (dt/2) L) P_n with a dense L: rows P_0 … P_{n_steps}.

    The exact-arithmetic limit of the forward–backward trapezoid of Luo et al. (PRL 128, 090501 (2022));
    its global error is O(dt²).
    """
    L = np.asarray(L, dtype=float)
    eye = np.eye(L.shape[0])
    lu = scipy.linalg.lu_factor(eye - 0.5 * dt * L)
    forward = eye + 0.5 * dt * L
    out = [np.asarray(P0, dtype=float)]
    for _ in range(n_steps):
        out.append(scipy.linalg.lu_solve(lu, forward @ out[-1]))
    return np.array(out)


# -- (a) forward–backward trapezoid ----------------------------------------------------------------
def _trapezoid_loss(ctx: _Povm, dt: float):
    """(prepare, C): C(θ', prepare(θ), key) is the L1 trapezoid residual, exact (full sum) or estimated on
    a ∼ P_θ'. `prepare` runs once per step: in full summation it returns the fixed target
    P_θ + (dt/2) L P_θ, so the Adam iterations evaluate only the new model; sampled, it returns θ itself,
    because the old model is evaluated on each iteration's fresh samples."""
    half = 0.5 * dt
    if ctx.full_sum:
        def prepare(p_old):
            P_old = ctx.probabilities(p_old)
            return P_old + half * apply_lindbladian(ctx.lindbladian, P_old)

        def loss(p_new, target, key):
            P_new = ctx.probabilities(p_new)
            return jnp.sum(jnp.abs(P_new - half * apply_lindbladian(ctx.lindbladian, P_new) - target))
        return prepare, loss

    def loss(p_new, p_old, key):
        a = ctx.sample(jax.lax.stop_gradient(p_new), key, ctx.n_samples)
        log_new = ctx.log_prob(p_new, a)
        ref = jax.lax.stop_gradient(log_new)  # the sampling density, held fixed
        new = jnp.exp(log_new - ref) - half * ctx.lp_ratios(p_new, a, ref, log_p_a=log_new)
        log_old = ctx.log_prob(p_old, a)
        old = jnp.exp(log_old - ref) + half * ctx.lp_ratios(p_old, a, ref, log_p_a=log_old)
        return jnp.mean(jnp.abs(new - old))
    return (lambda p_old: p_old), loss


def _make_trapezoid_step(ctx: _Povm, settings: TrapezoidSettings):
    prepare, loss = _trapezoid_loss(ctx, settings.step_size)
    opt = settings.make_optimizer(settings.n_iter)
    value_and_grad = jax.value_and_grad(loss)

    @jax.jit
    def step(p_old, key):
        old = prepare(p_old)

        def body(carry, _):
            p, opt_state, key = carry
            key, sub = jax.random.split(key)
            value, grad = value_and_grad(p, old, sub)
            updates, opt_state = opt.update(grad, opt_state, p)
            return (optax.apply_updates(p, updates), opt_state, key), value

        (p, _, key), losses = jax.lax.scan(body, (p_old, opt.init(p_old), key), None, length=settings.n_iter)
        return p, losses[0], loss(p, old, key)

    return step


def evolve_trapezoid(
    system: System,
    vstate: Any,
    settings: TrapezoidSettings | None = None,
    *,
    povm: POVM | None = None,
    rho0: np.ndarray | None = None,
    out: str | None = None,
    mode: str = "fail",
    config: Mapping[str, Any] | None = None,
    seed: int = 0,
    ansatz: Mapping[str, Any] | None = None,
    exact: bool = True,
    progress: bool = True,
) -> PovmOutcome:
    """Lindblad dynamics of the POVM distribution by the forward–backward trapezoid (Luo et al., PRL 128,
    090501 (2022)): per step, min_θ' Σ_a |P_θ' − (dt/2) L P_θ' − P_θ − (dt/2) L P_θ| by Adam (module docstring).

    Args:
        system: open system (H and jump operators on qubits).
        vstate: `FullSumState` (full summation, N ≤ 9) or `MCState` with `ARDirectSampler` on
            Fock(n_max=3, N), model with machine_pow = 1; its parameters are updated in place.
        settings: time grid and optimiser.
        povm: the POVM (default tetrahedral).
        rho0: initial density matrix of the exact reference (default ρ(P_θ(0)), N ≤ 9, the 3×3 lattice).
        out, mode, config, seed, ansatz: result file (kind "dynamics") and its metadata. A checkpoint (initial and
            current parameters, random key; for TDVP also t, dt and the step count) is written at every save time,
            and mode "resume" continues an interrupted run from it.
        exact: compute the exact `mesolve` reference (N ≤ 9).
        progress: show a progress bar over the time steps.

    Rows per save time: observables, purity, reduced-ρ minimum eigenvalues, exact comparisons, and
    ``step_loss`` (final L1 residual of the last step), ``max_step_loss`` and ``mean_step_loss`` since
    the previous save, ``initial_step_loss`` (residual of the warm start, ≈ dt‖(L P)‖₁).
    """
    settings = settings or TrapezoidSettings()
    povm = povm or POVM.tetrahedral()
    ctx = _make_context(system, vstate, povm)
    t_start = time.perf_counter()
    result = _open(out, mode, "dynamics", system, vstate, _method("dynamics.povm_trapezoid", settings, povm, ctx),
                   config, seed, ansatz)
    try:
        times = settings.times
        params = _as_jit_output(vstate.parameters)
        state, index = _run_state(result, mode, {"initial": params, "params": params,
                                                 "key": jax.random.PRNGKey(settings.seed)})
        params, key = state["params"], state["key"]
        rhos = _exact_dynamics(ctx, state["initial"], povm, rho0, times, exact)
        recorder = _Recorder(ctx, povm, result, rhos, settings.n_obs_samples, settings.purity_max_sites, times)
        if index == 0:
            key, sub = jax.random.split(key)
            recorder.record(0, 0.0, params, sub, exact_index=0)
            _checkpoint(result, {**state, "key": key}, 0)
        step = _make_trapezoid_step(ctx, settings)
        save_every, h = settings.steps_per_save, settings.step_size
        losses, first = [], []
        bar = tqdm(range(index * save_every + 1, settings.n_steps + 1), disable=not progress, desc="POVM trapezoid")
        for n in bar:
            key, sub = jax.random.split(key)
            params, initial, final = step(params, sub)
            final = float(final)
            bar.set_postfix(t=f"{n * h:.4g}", loss=f"{final:.2e}", refresh=False)
            if not math.isfinite(final):
                raise FloatingPointError(f"trapezoid step {n}: the residual is {final}; the optimisation diverged")
            losses.append(final)
            first.append(float(initial))
            if n % save_every == 0:
                key, sub = jax.random.split(key)
                recorder.record(n // save_every, float(times[n // save_every]), params, sub, {
                    "step_loss": final, "max_step_loss": max(losses), "mean_step_loss": float(np.mean(losses)),
                    "initial_step_loss": float(np.mean(first)), "trapezoid_steps": float(n), "dt": h,
                }, exact_index=n // save_every)
                _checkpoint(result, {"initial": state["initial"], "params": params, "key": key}, n // save_every)
                losses, first = [], []
        _set_parameters(vstate, params)
    finally:
        if result is not None:
            result.close()
    return PovmOutcome(vstate, times, recorder.rows, recorder.exact, time.perf_counter() - t_start)


# -- (b) POVM-TDVP ----------------------------------------------------------------------------------
def snr_solve(Oc: jax.Array, centred: jax.Array, *, rtol: float, rtol_smooth: float, snr_tol: float) -> jax.Array:
    """θ̇ = Σ_k v_k ρ_k/λ_k · [1 + (rtol_smooth λ_max/λ_k)⁶]⁻¹ [1 + (snr_tol/SNR_k)⁶]⁻¹ (λ_k ≥ rtol λ_max), the
    signal-to-noise filter of Schmitt & Heyl, PRL 125, 100503 (2020), as used for POVM-TDVP by Reh et al. (jVMC).

    S = OcᵀOc/N_s = V Λ Vᵀ; ρ_k = (Vᵀ F)_k = mean_s ρ_k(s) with ρ_k(s) = (Oc(s)·v_k) · centred(s) for the N_s samples
    s (rows of the centred Jacobian `Oc`, centred local values `centred`); SNR_k = |ρ_k| √N_s / std_s ρ_k(s).
    A mode whose force the samples cannot resolve is damped. Our code: NetKet's `TDVPSchmitt` is a driver for
    wave functions (complex S, F from E_loc), not a solver for a real POVM distribution.
    """
    n = Oc.shape[0]

    def snr_damping(modes, rho):
        per_sample = math.sqrt(n) * modes * centred[:, None]  # (Oc(s)·v_k) centred(s), modes = A V = Oc V/√n
        spread = jnp.std(per_sample, axis=0)
        snr = jnp.where(spread > 0, jnp.abs(rho) * math.sqrt(n) / jnp.where(spread > 0, spread, 1.0), jnp.inf)
        return 1.0 / (1.0 + (snr_tol / snr) ** 6)

    return _smooth_pinv_solve(Oc / math.sqrt(n), centred / math.sqrt(n), rtol, jnp.asarray([rtol_smooth]),
                              snr_damping)[0]


def _smooth_pinv_solve(A: jax.Array, b: jax.Array, rtol: float, cutoffs: jax.Array,
                       extra_damping: Callable[[jax.Array, jax.Array], jax.Array] | None = None) -> jax.Array:
    """NetKet's `pinv_smooth` solution of S x = F, S = AᵀA, F = Aᵀb, for several smooth cut-offs at once, from one
    eigendecomposition: rows x_c = Σ_k v_k ρ_k/λ_k · [1 + (c λ_max/λ_k)⁶]⁻¹ · d_k, ρ = Vᵀ F, λ_k ≥ rtol λ_max, with the
    extra per-mode damping d = extra_damping(A V, ρ) (1 without it).

    With fewer rows than columns (samples < parameters) the spectrum comes from the (rows × rows) matrix AAᵀ = U Λ Uᵀ
    instead (the minSR / neural-tangent-kernel form of Chen & Heyl, Nat. Phys. 20, 1476 (2024)): S and AAᵀ share
    their non-zero eigenvalues, v_k = Aᵀu_k/√λ_k, A v_k = √λ_k u_k and ρ_k = √λ_k u_kᵀb, so x = Aᵀ U diag(d_k/λ_k) Uᵀ b
    is the same pseudo-inverse at O(rows³) instead of O(columns³) cost (7 000 parameters and 256 samples: one POVM-TDVP
    evaluation at N = 16 takes 2.2 s instead of 25 s).
    """
    dual = A.shape[0] < A.shape[1]
    if dual:
        lam, U = jnp.linalg.eigh(A @ A.T)
        root = jnp.sqrt(jnp.maximum(lam, 0.0))
        projection = U.T @ b
        rho, modes = root * projection, U * root[None, :]
    else:
        lam, V = jnp.linalg.eigh(A.T @ A)
        rho = V.T @ (A.T @ b)
        modes = A @ V if extra_damping is not None else None
    keep = lam > rtol * lam[-1]
    safe = jnp.where(keep, lam, 1.0)
    damping = 1.0 / (1.0 + (cutoffs[:, None] * lam[-1] / safe[None, :]) ** 6)
    if extra_damping is not None:
        damping = damping * extra_damping(modes, rho)
    if dual:
        return (jnp.where(keep, damping * projection / safe, 0.0) @ U.T) @ A
    return (jnp.where(keep, damping * rho / safe, 0.0)) @ V.T


def cv_solve(Oc: jax.Array, centred: jax.Array, *, rtol: float,
             cutoffs: tuple[float, ...]) -> tuple[jax.Array, jax.Array]:
    """θ̇ with the smooth cut-off chosen by two-fold cross-validation (jVMC's `crossValidation` idea).

    The samples are split into halves A and B. For every cut-off c the smooth pseudo-inverse θ̇_c is fitted on A,
    and the relative residual mean_B (L_loc − O·θ̇_c)²/mean_B L_loc² (each half centred with its own means) is scored
    on B.
    The cut-off with the smallest held-out residual then solves S θ̇ = F on all samples. A cut-off small enough to
    fit the sample noise scores badly on B, and one that also cuts needed directions does too.
    Returns (θ̇, chosen cut-off).

    Measured limit: the residual is a one-step criterion. On the 3×3 dissipative XYZ (D = 8, 4 096 samples) it chose
    1e-8 at every evaluation. The independent held-out residual agreed (0.063 against 0.096 for 1e-4 at t = 0.04),
    yet that run lost the state by t = 0.06, while 1e-4 stayed at fidelity 0.995 to t = 0.1. Large θ̇ components along
    poorly determined directions are not penalised by the linear residual.
    """
    half = Oc.shape[0] // 2
    grid = jnp.asarray(cutoffs)

    def centre(o, c):
        """Rows scaled so that S = AᵀA and F = Aᵀb are the sample covariances."""
        n = math.sqrt(o.shape[0])
        return (o - o.mean(0)) / n, (c - c.mean()) / n

    candidates = _smooth_pinv_solve(*centre(Oc[:half], centred[:half]), rtol, grid)  # (n_cutoffs, n_params)
    o_b, c_b = centre(Oc[half:], centred[half:])
    scores = jnp.sum((c_b[:, None] - o_b @ candidates.T) ** 2, axis=0) / jnp.maximum(jnp.sum(c_b**2), 1e-300)
    best = grid[jnp.argmin(scores)]
    return _smooth_pinv_solve(*centre(Oc, centred), rtol, best[None])[0], best


def _make_tdvp_rhs(ctx: _Povm, settings: PovmTDVPSettings, unravel):
    """(rhs, heldout), jitted. rhs(θ, key) = (θ̇ = S⁻¹F regularised, relative residual Var(L_loc − O·θ̇)/Var(L_loc)
    on the samples of the fit, the smooth cut-off used, ‖L P_θ‖₁ = E|L_loc| on those samples or exact);
    heldout(θ, θ̇, key) = the relative residual of θ̇ on `settings.heldout_samples` fresh samples (sampled states
    only)."""

    def log_p(flat, a):
        return ctx.log_prob(unravel(flat), a)

    def jacobian(flat, a):
        """Rows ∂ log P(a_i)/∂θ as a vmap of per-string gradients: `jax.jacrev` of the batched log P pulls
        every one of the B cotangents back through the whole batch, O(B²) work (28 s instead of 0.09 s
        for 1024 samples of a 3×3 POVM Transformer with 3604 parameters)."""
        return jax.vmap(jax.grad(lambda f, x: log_p(f, x[None])[0]), in_axes=(None, 0))(flat, a)

    def solve(S, F, Oc, centred):
        """(θ̇, the smooth cut-off used)."""
        cutoff = jnp.asarray(settings.pinv_rtol_smooth)
        if settings.solver == "snr" and not ctx.full_sum:  # exact sums have no noise to filter
            return snr_solve(Oc, centred, rtol=settings.pinv_rtol, rtol_smooth=settings.pinv_rtol_smooth,
                             snr_tol=settings.snr_tol), cutoff
        if settings.solver == "cv" and not ctx.full_sum:
            return cv_solve(Oc, centred, rtol=settings.pinv_rtol, cutoffs=settings.cv_cutoffs)
        if settings.solver in ("pinv_smooth", "snr", "cv"):
            if not ctx.full_sum and Oc.shape[0] < Oc.shape[1]:  # fewer samples than parameters: minSR form
                n = math.sqrt(Oc.shape[0])
                return _smooth_pinv_solve(Oc / n, centred / n, settings.pinv_rtol, cutoff[None])[0], cutoff
            x, _ = nk.optimizer.solver.pinv_smooth(S, F, rtol=settings.pinv_rtol, rtol_smooth=settings.pinv_rtol_smooth)
            return x, cutoff
        factor = jax.scipy.linalg.cho_factor(S + settings.diag_shift * jnp.eye(S.shape[0]))
        return jax.scipy.linalg.cho_solve(factor, F), jnp.asarray(jnp.nan)

    def sampled(flat, key, n):
        """Centred log-derivatives and L_loc on n samples of P_θ."""
        a = ctx.sample(unravel(flat), key, n)
        log_pa = log_p(flat, a)
        O = jacobian(flat, a)
        return O - O.mean(0), ctx.lp_ratios(unravel(flat), a, log_pa, log_p_a=log_pa)

    @jax.jit
    def rhs(flat, key):
        if ctx.full_sum:
            a = jnp.asarray(ctx.outcomes)
            P = ctx.probabilities(unravel(flat))
            O = jacobian(flat, a)  # (4^N, n_params)
            Oc = O - P @ O
            LP = apply_lindbladian(ctx.lindbladian, P)
            S = Oc.T @ (P[:, None] * Oc)
            F = Oc.T @ LP  # Σ_a (O − ⟨O⟩)(L P)(a) = Cov(O, L_loc)
            weights = P
            L_loc = LP / jnp.maximum(P, 1e-300)
            l1 = jnp.sum(jnp.abs(LP))
        else:
            Oc, L_loc = sampled(flat, key, ctx.n_samples)
            weights = jnp.full(L_loc.shape[0], 1.0 / L_loc.shape[0])
            S = Oc.T @ Oc / L_loc.shape[0]
            F = Oc.T @ (L_loc - L_loc.mean()) / L_loc.shape[0]
            l1 = jnp.mean(jnp.abs(L_loc))
        centred = L_loc - weights @ L_loc
        theta_dot, cutoff = solve(S, F, Oc, centred)
        residual = centred - Oc @ theta_dot
        rel = (weights @ residual**2) / jnp.maximum(weights @ centred**2, 1e-300)
        # solved in the promoted precision, returned in the parameters' (NetKet's RK stages store θ̇ in y's dtype)
        return theta_dot.astype(flat.dtype), rel, cutoff, l1

    @jax.jit
    def heldout(flat, theta_dot, key):
        Oc, L_loc = sampled(flat, key, settings.heldout_samples)
        centred = L_loc - L_loc.mean()
        return jnp.mean((centred - Oc @ theta_dot) ** 2) / jnp.maximum(jnp.mean(centred**2), 1e-300)

    return rhs, heldout


def evolve_povm_tdvp(
    system: System,
    vstate: Any,
    settings: PovmTDVPSettings | None = None,
    *,
    povm: POVM | None = None,
    rho0: np.ndarray | None = None,
    out: str | None = None,
    mode: str = "fail",
    config: Mapping[str, Any] | None = None,
    seed: int = 0,
    ansatz: Mapping[str, Any] | None = None,
    exact: bool = True,
    progress: bool = True,
) -> PovmOutcome:
    """Lindblad dynamics of the POVM distribution by TDVP (Reh, Schmitt, Gärttner, PRL 127, 230501 (2021)):
    Cov(O, O) θ̇ = Cov(O, L_loc), O_k = ∂ log P_θ/∂θ_k, integrated with NetKet's Runge–Kutta integrators.

    Arguments as in `evolve_trapezoid`. Rows add ``tdvp_residual`` (relative residual of the fit at the
    last evaluation), ``tdvp_cutoff`` (the smooth cut-off of that evaluation), ``integrator_steps``, ``dt`` and,
    with ``settings.heldout_samples``, ``tdvp_residual_heldout`` (the residual of a fresh θ̇ at the save time on
    independent samples).
    """
    settings = settings or PovmTDVPSettings()
    povm = povm or POVM.tetrahedral()
    ctx = _make_context(system, vstate, povm)
    flat0, unravel = ravel_pytree(vstate.parameters)
    if ctx.full_sum:
        jacobian_bytes = 4**ctx.n_sites * flat0.size * flat0.dtype.itemsize
        if jacobian_bytes > MAX_FULL_SUM_JACOBIAN_BYTES:
            raise ValueError(
                f"full-sum POVM-TDVP stores the (4^{ctx.n_sites}, {flat0.size}) Jacobian, "
                f"{jacobian_bytes / 2**30:.1f} GiB > {MAX_FULL_SUM_JACOBIAN_BYTES / 2**30:.0f} GiB: "
                "use a smaller model, fewer sites or sampling")
    t_start = time.perf_counter()
    result = _open(out, mode, "dynamics", system, vstate, _method("dynamics.povm_tdvp", settings, povm, ctx),
                   config, seed, ansatz)
    try:
        times = settings.times
        params = _as_jit_output(vstate.parameters)
        state, first = _run_state(result, mode, {"initial": params, "params": params, "t": 0.0, "dt": settings.dt,
                                                 "steps": 0, "key": jax.random.PRNGKey(settings.seed)})
        flat0 = _as_jit_output(ravel_pytree(state["params"])[0])
        rhos = _exact_dynamics(ctx, state["initial"], povm, rho0, times, exact)
        recorder = _Recorder(ctx, povm, result, rhos, settings.n_obs_samples, settings.purity_max_sites, times)
        rhs, heldout = _make_tdvp_rhs(ctx, settings, unravel)
        keys = {"key": state["key"]}
        last = {"residual": float("nan"), "cutoff": float("nan")}

        def next_key():
            keys["key"], sub = jax.random.split(keys["key"])
            return sub

        def f(t, y, *, stage=0):
            theta_dot, residual, cutoff, _ = rhs(y, next_key())
            last["residual"], last["cutoff"] = float(residual), float(cutoff)
            return theta_dot

        def save(index, integrator, n_steps):
            _checkpoint(result, {"initial": state["initial"], "params": unravel(integrator.y), "t": float(integrator.t),
                                 "dt": float(integrator.dt), "steps": n_steps, "key": keys["key"]}, index)

        solver = settings.make_solver(float(state["dt"]))  # a resumed adaptive run continues with its last step
        integrator = nkx.dynamics.Integrator(
            f, solver, float(state["t"]), flat0, use_adaptive=solver.adaptive, parameters=solver.integrator_params,
        )
        n_steps = int(state["steps"])
        if first == 0:
            recorder.record(0, 0.0, unravel(flat0), next_key(), exact_index=0)
            save(0, integrator, n_steps)
        bar = tqdm(total=float(times[-1]), initial=float(state["t"]), disable=not progress, desc="POVM-TDVP",
                   unit="time", bar_format="{l_bar}{bar}| t={n:.4g}/{total:.4g} [{elapsed}<{remaining}{postfix}]")
        for index, t_save in enumerate(times[first + 1:], start=first + 1):
            while float(integrator.t) < t_save - 1e-12 * max(1.0, t_save):
                t_before = float(integrator.t)
                integrator.step(max_dt=t_save - float(integrator.t))
                n_steps += 1
                bar.update(float(integrator.t) - t_before)
                if integrator.errors:
                    raise RuntimeError(f"POVM-TDVP integrator at t = {float(integrator.t):.6g}: {integrator.errors.message()}")
                if not bool(jnp.all(jnp.isfinite(integrator.y))):
                    raise FloatingPointError(f"POVM-TDVP: non-finite parameters at t = {float(integrator.t):.6g}")
            diagnostics = {"tdvp_residual": last["residual"], "tdvp_cutoff": last["cutoff"],
                           "integrator_steps": float(n_steps), "dt": float(integrator.dt)}
            if settings.heldout_samples and not ctx.full_sum:
                theta_dot, *_ = rhs(integrator.y, next_key())
                diagnostics["tdvp_residual_heldout"] = float(heldout(integrator.y, theta_dot, next_key()))
            recorder.record(index, float(t_save), unravel(integrator.y), next_key(), diagnostics, exact_index=index)
            save(index, integrator, n_steps)
        bar.close()
        _set_parameters(vstate, unravel(integrator.y))
    finally:
        if result is not None:
            result.close()
    return PovmOutcome(vstate, times, recorder.rows, recorder.exact, time.perf_counter() - t_start)


# -- (c) variational steady state ------------------------------------------------------------------
def _steady_loss(ctx: _Povm, n_samples: int):
    """‖L P_θ‖₁: exact (full sum) or E_{a∼P_θ}|L_loc(a)| with the density held fixed (per-sample values too)."""
    if ctx.full_sum:
        def loss(p, key):
            values = jnp.abs(apply_lindbladian(ctx.lindbladian, ctx.probabilities(p)))
            return jnp.sum(values), values
        return loss

    def loss(p, key):
        a = ctx.sample(jax.lax.stop_gradient(p), key, n_samples)
        log_p = ctx.log_prob(p, a)
        values = jnp.abs(ctx.lp_ratios(p, a, jax.lax.stop_gradient(log_p), log_p_a=log_p))
        return jnp.mean(values), values
    return loss


def _steady_update(ctx: _Povm, settings: SteadyStateSettings, params):
    """direction(p, key, τ) = (loss of this iteration, the update direction as a parameter tree): the gradient of
    ‖L P_θ‖₁ (Adam), or −θ̇ of one classical Runge–Kutta step of length τ along the POVM-TDVP flow, with ‖L P_θ‖₁ from
    the first stage's samples ("natural"). RK4's stability region holds the imaginary axis up to |ωτ| = 2√2, where
    Euler's does not: on the 3-site chain Euler steps of τ = 0.2 circle at ‖L P‖₁ ≈ 0.35 and RK4 steps converge."""
    if settings.optimizer == "adam":
        value_and_grad = jax.value_and_grad(_steady_loss(ctx, ctx.n_samples), has_aux=True)

        def direction(p, key, tau):
            (value, _), grad = value_and_grad(p, key)
            return value, grad
        return direction

    _, unravel = ravel_pytree(params)
    rhs, _ = _make_tdvp_rhs(ctx, PovmTDVPSettings(solver="pinv_smooth", pinv_rtol=settings.pinv_rtol,
                                                  pinv_rtol_smooth=settings.pinv_rtol_smooth), unravel)

    def direction(p, key, tau):
        keys = jax.random.split(key, 4)
        flat = ravel_pytree(p)[0]
        k1, _, _, value = rhs(flat, keys[0])
        k2 = rhs(flat + 0.5 * tau * k1, keys[1])[0]
        k3 = rhs(flat + 0.5 * tau * k2, keys[2])[0]
        k4 = rhs(flat + tau * k3, keys[3])[0]
        return value, unravel(-(k1 + 2 * k2 + 2 * k3 + k4) / 6)
    return direction


def find_steady_state(
    system: System,
    vstate: Any,
    settings: SteadyStateSettings | None = None,
    *,
    povm: POVM | None = None,
    out: str | None = None,
    mode: str = "fail",
    config: Mapping[str, Any] | None = None,
    seed: int = 0,
    ansatz: Mapping[str, Any] | None = None,
    exact: bool = True,
    progress: bool = True,
) -> PovmOutcome:
    """Variational steady state (Luo et al., PRL 128, 090501 (2022)): min_θ ‖L P_θ‖₁ = E_{a∼P_θ}|L_loc(a)|
    by Adam, or by relaxation along the POVM-TDVP flow (``settings.optimizer = "natural"``), keeping the best
    checkpoint by a large-sample (full sum: exact) loss after `eval_after`.

    The natural-gradient relaxation integrates dP/dt = L P projected on the model's tangent space (S θ̇ = F, RK4 steps
    of the scheduled length τ). It needs no derivative of the connected strings' log P (Adam's gradient of ‖L P_θ‖₁
    does), and with fewer samples than parameters S⁻¹F is solved in sample space (`_smooth_pinv_solve`): at N = 16 one
    evaluation of θ̇ costs 2.2 s against 6.8 s for an Adam iteration (256 samples, 7 000 parameters, one core), and
    each RK4 step advances the relaxation by τ (0.1–0.2) where Adam needs hundreds of iterations in all.

    Args as in `evolve_trapezoid` (result file kind "steady_state"; /exact holds the QuTiP steady-state
    values, N ≤ 9). History rows every `eval_every` iterations: ``loss`` (mean mini-batch loss since the
    previous row), ``learning_rate``, and from `eval_after` on ``eval_loss`` (± ``eval_loss_error``); the
    last row (step n_iter + 1) holds the observables and diagnostics of the best checkpoint. Every row is followed by
    a checkpoint of the whole run state (parameters, optimizer state, random key, best so far), so ``mode="resume"``
    continues an interrupted run exactly; the final checkpoint holds the best parameters, which are also the final
    parameters of `vstate` (`nqs.results.load_parameters` reads either).
    """
    settings = settings or SteadyStateSettings()
    povm = povm or POVM.tetrahedral()
    ctx = _make_context(system, vstate, povm)
    t_start = time.perf_counter()
    result = _open(out, mode, "steady_state", system, vstate,
                   _method("dynamics.povm_steady_state", settings, povm, ctx), config, seed, ansatz)
    try:
        rhos = None
        if exact and ctx.n_sites <= MAX_OPEN_SITES:
            rhos = [exact_steady_state(system)]
        recorder = _Recorder(ctx, povm, result, rhos, settings.n_obs_samples, settings.purity_max_sites)
        eval_loss = jax.jit(_steady_loss(ctx, settings.n_eval_samples))
        opt = settings.make_optimizer(settings.n_iter)
        lr_at = settings.make_schedule(settings.n_iter)
        direction = _steady_update(ctx, settings, vstate.parameters)

        @functools.partial(jax.jit, static_argnums=3)
        def chunk(p, opt_state, key, length, start, best):
            def body(carry, it):
                p, opt_state, key, best = carry
                key, sub = jax.random.split(key)
                value, grad = direction(p, sub, lr_at(it))
                if ctx.full_sum:  # exact loss of the current parameters: keep the best one
                    better = (it >= settings.eval_after) & (value < best[0])
                    best = (jnp.where(better, value, best[0]), jnp.where(better, it, best[1]),
                            jax.tree_util.tree_map(lambda x, y: jnp.where(better, x, y), p, best[2]))
                updates, opt_state = opt.update(grad, opt_state, p)
                return (optax.apply_updates(p, updates), opt_state, key, best), value

            (p, opt_state, key, best), values = jax.lax.scan(body, (p, opt_state, key, best), start + jnp.arange(length))
            return p, opt_state, key, best, values

        params = _as_jit_output(vstate.parameters)
        # full sum: the exact loss of every iteration is compared inside the scan ("best", carried);
        # sampled: only the large-sample estimates at the evaluation points ("evaluated"). A finished run's state
        # holds the best parameters as "params" and the winner of the two as "evaluated".
        run, _ = _run_state(result, mode, {
            "params": params, "opt_state": opt.init(params), "key": jax.random.PRNGKey(settings.seed), "iteration": 0,
            "best": _as_jit_output((jnp.asarray(jnp.inf), jnp.asarray(-1), params)),
            "evaluated": (jnp.asarray(jnp.inf), jnp.asarray(-1), params), "finished": 0})
        it, finished = int(run["iteration"]), bool(run["finished"])
        params, opt_state, key, best, evaluated = (run[k] for k in ("params", "opt_state", "key", "best", "evaluated"))

        def save(params, evaluated, finished):
            _checkpoint(result, {"params": params, "opt_state": opt_state, "key": key, "iteration": it, "best": best,
                                 "evaluated": evaluated, "finished": int(finished)}, it)

        bar = tqdm(total=settings.n_iter, initial=it, disable=not progress or finished, desc="POVM steady state")
        while it < settings.n_iter:
            length = min(settings.eval_every, settings.n_iter - it)
            params, opt_state, key, best, values = chunk(params, opt_state, key, length, it, best)
            it += length
            bar.update(length)
            row = {"step": float(it), "loss": float(jnp.mean(values)), "learning_rate": float(lr_at(it - 1))}
            bar.set_postfix(loss=f"{row['loss']:.3e}", refresh=False)
            if not math.isfinite(row["loss"]):
                raise FloatingPointError(f"steady state, iteration {it}: the loss is {row['loss']}")
            if it > settings.eval_after or it == settings.n_iter:
                key, sub = jax.random.split(key)
                value, per_sample = eval_loss(params, sub)
                row["eval_loss"] = float(value)
                if not ctx.full_sum:
                    row["eval_loss_error"] = float(jnp.std(per_sample) / math.sqrt(per_sample.shape[0]))
                if float(value) < float(evaluated[0]):
                    evaluated = (jnp.asarray(float(value)), jnp.asarray(it), params)
            recorder.rows.append(row)
            if result is not None:
                result.append(row)
            if it < settings.n_iter:
                save(params, evaluated, False)
        bar.close()
        if not finished:
            if float(best[0]) < float(evaluated[0]):
                evaluated = best
            save(evaluated[2], evaluated, True)
        best_loss, best_step, params = float(evaluated[0]), int(evaluated[1]), evaluated[2]
        key, sub = jax.random.split(key)
        recorder.record(settings.n_iter + 1, None, params, sub, {"best_loss": best_loss, "best_step": float(best_step)})
        _set_parameters(vstate, params)
    finally:
        if result is not None:
            result.close()
    return PovmOutcome(vstate, None, recorder.rows, recorder.exact, time.perf_counter() - t_start,
                       {"best_loss": best_loss, "best_step": best_step})


def exact_steady_state(system: System) -> np.ndarray:
    """ρ_ss of `system` from `nqs.exact.steady_state` (QuTiP `steadystate`)."""
    rho, _ = exact.steady_state(system)
    return np.asarray(rho)
