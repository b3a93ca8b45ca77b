"""Infidelity between a network and a lazily applied target, its estimator, and the Gauss–Newton step.

Both sides of a projected time step are functions on configurations: the model χ_θ = (1 + bΛ)ψ_θ
and the target φ = Σ_m (α_m + β_m Λ)ψ_m (see `dynamics.product_expansions`), with
(Λψ)(x) = ζ ψ(x) E_loc(x), E_loc(x) = Σ_x' H_xx' ψ(x')/ψ(x) (`nqs.local_energy.LocalEnergy`: by prefix reuse
for autoregressive models). The loss is the infidelity

    I(θ) = 1 − |⟨χ_θ|φ⟩|² / (⟨χ_θ|χ_θ⟩⟨φ|φ⟩) = 1 − E_{x∼|χ|²}[r(x)] · E_{y∼|φ|²}[1/r(y)],  r = φ/χ.

Estimator ("CMC" of Sinibaldi et al., Quantum 7, 1131 (2023), with control variate c = −½): with
E = E_y[1/r], E₂ = E_y[|1/r|²],

    Î = 1 − E_x[Re(r(x) E) + c(|r(x)|² E₂ − 1)];

the control variate has zero mean (E_x|r|² · E_y|1/r|² = 1) and cancels the leading fluctuations.
Configurations come with the log-density ℓ they were drawn from (2 Re log ψ of the sampled network,
or 0 for a full sum over all states); expectations are self-normalised importance-weighted means with
weights ∝ |χ(x)|² e^{−ℓ(x)} and |φ(y)|² e^{−ℓ(y)}. With full summation Î is the exact infidelity.

Gauss–Newton step (TENG, Chen et al. arXiv:2404.10771, for quantum states): to first order in δθ,
χ_{θ+δθ}/χ_θ = 1 + Σ_k O_k δθ_k, O_k = ∂ log χ/∂θ_k, so χ_{θ+δθ} ∝ φ asks for Ō δθ = r/⟨r⟩ − 1 (Ō
centred, the free complex factor absorbs the mean). The least-squares solution with Levenberg–
Marquardt damping λ, over *real* parameters (complex leaves are split into real and imaginary parts,
which covers holomorphic and non-holomorphic networks alike), is

    δθ = (XᵀX + λ s̄)⁻¹ Xᵀ g = Xᵀ (XXᵀ + λ s̄)⁻¹ g,   X = √w [Re Ō; Im Ō],  g = √w [Re f; Im f],

f = r/⟨r⟩ − 1 and s̄ = tr(XᵀX)/P (damping relative to the mean diagonal of the QGT). The first form
is the QGT (S-matrix) solve, the second the sample-space (NTK/minSR) solve used when parameters
outnumber samples; both are computed from one eigendecomposition so that a rejected step is retried
with a larger λ at no extra cost.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from dynamics.product_expansions import Stage
from nqs.local_energy import LocalEnergy

RCOND = 1e-14
LogPsi = Callable[[Any, jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True)
class RealView:
    """A parameter pytree as one real vector: complex leaves are stored as (real, imaginary) pairs."""

    treedef: Any
    is_complex: tuple[bool, ...]
    unravel_real: Callable

    @classmethod
    def of(cls, params: Any) -> tuple[RealView, jax.Array]:
        leaves, treedef = jax.tree_util.tree_flatten(params)
        is_complex = tuple(bool(jnp.iscomplexobj(leaf)) for leaf in leaves)
        split = [(leaf.real, leaf.imag) if c else leaf for leaf, c in zip(leaves, is_complex)]
        vec, unravel = ravel_pytree(split)
        return cls(treedef, is_complex, unravel), vec

    def params(self, vec: jax.Array) -> Any:
        split = self.unravel_real(vec)
        leaves = [leaf[0] + 1j * leaf[1] if c else leaf for leaf, c in zip(split, self.is_complex)]
        return jax.tree_util.tree_unflatten(self.treedef, leaves)


def support_states(vstate: Any, logpsi: LogPsi) -> jax.Array:
    """Every configuration where |ψ|² > 0 of a full-sum state, for exact sums over the model's support: the sector of
    a `SectorFullSumState`, else the configurations of `vstate.hilbert` where the model with the state's parameters
    is non-zero.

    Configurations outside a constraint's sector have |ψ|² = 0 exactly (masked conditionals give log ψ of
    about −1e30); in a full sum they contribute only 0·∞ terms, so exact sums run over the support."""
    configurations = getattr(vstate, "configurations", None)
    if configurations is not None:
        return jnp.asarray(configurations)
    states = np.asarray(vstate.hilbert.all_states())
    log_psi = np.asarray(jax.jit(logpsi)(vstate.parameters, jnp.asarray(states)))
    return jnp.asarray(states[np.exp(2 * log_psi.real) > 0])


def log_model(logpsi: LogPsi, params: Any, b: complex, zeta: complex, local_energy: LocalEnergy,
              x: jax.Array) -> jax.Array:
    """log χ(x) for χ = (1 + bΛ)ψ_θ, i.e. log ψ(x) + log(1 + b ζ E_loc(x))."""
    if b == 0:
        return logpsi(params, x)
    log_x, eloc = local_energy(logpsi, params, x)
    return log_x + jnp.log(1 + b * zeta * eloc)


def log_target(
    logpsi: LogPsi, sources: Sequence[Any], log_scales: jax.Array, stage: Stage, zeta: complex,
    local_energy: LocalEnergy, x: jax.Array,
) -> jax.Array:
    """log φ(x) for φ = Σ_m (α_m + β_m Λ) c_m ψ_{src_m}, relative to the first term to avoid overflow.

    A fitted network only matches its target up to a complex factor; `log_scales[src]` = log c_src
    restores it, which matters whenever a target adds several networks (TENG-Heun).
    """
    logs, factors = [], []
    for src, alpha, beta in stage.terms:
        if beta == 0:
            log_x, factor = logpsi(sources[src], x), jnp.full(x.shape[:1], alpha, dtype=complex)
        else:
            log_x, eloc = local_energy(logpsi, sources[src], x)
            factor = alpha + beta * zeta * eloc
        logs.append(log_x + log_scales[src])
        factors.append(factor)
    ref = logs[0]
    total = sum(f * jnp.exp(lg - ref) for f, lg in zip(factors, logs))
    return ref + jnp.log(total.astype(complex))


def log_overlap_ratio(log_chi_x: jax.Array, log_phi_x: jax.Array, log_density_x: jax.Array) -> jax.Array:
    """log c with c = ⟨χ|φ⟩/⟨χ|χ⟩ = E_{x∼|χ|²}[φ(x)/χ(x)]: the factor that makes c·χ the best match of φ."""
    w = _weights(log_chi_x, log_density_x)
    return jnp.log(jnp.sum(jnp.where(w > 0, w * jnp.exp(log_phi_x - log_chi_x), 0.0)))


def _weights(log_amp: jax.Array, log_density: jax.Array) -> jax.Array:
    """Self-normalised importance weights ∝ |amp|² e^{−ℓ}."""
    return jax.nn.softmax(2 * log_amp.real - log_density)


def infidelity(
    log_chi_x: jax.Array,
    log_phi_x: jax.Array,
    log_density_x: jax.Array,
    log_chi_y: jax.Array,
    log_phi_y: jax.Array,
    log_density_y: jax.Array,
    control_variate: float = -0.5,
) -> jax.Array:
    """The CMC infidelity estimator Î of the module docstring (exact for full sums)."""
    wx = _weights(log_chi_x, log_density_x)
    wy = _weights(log_phi_y, log_density_y)
    r = jnp.exp(log_phi_x - log_chi_x)
    inv = jnp.where(wy > 0, jnp.exp(log_chi_y - log_phi_y), 0.0)
    e1 = jnp.sum(wy * inv)
    e2 = jnp.sum(wy * jnp.abs(inv) ** 2)
    r = jnp.where(wx > 0, r, 0.0)
    local = (r * e1).real + control_variate * (jnp.abs(r) ** 2 * e2 - 1)
    return 1 - jnp.sum(wx * local)


@dataclasses.dataclass(frozen=True)
class GaussNewtonSystem:
    """Eigendecomposition of the damped least-squares problem; `step(λ)` solves it for any damping."""

    basis: jax.Array  # V (P×K) for the QGT form, Xᵀ U (P×K) for the NTK form
    eigenvalues: jax.Array  # K
    projection: jax.Array  # Vᵀ Xᵀ g or Uᵀ g (K)
    scale: jax.Array  # tr(XᵀX)/P

    def step(self, damping: float) -> jax.Array:
        return _solve(self.basis, self.eigenvalues, self.projection, self.scale, damping)


jax.tree_util.register_dataclass(
    GaussNewtonSystem, data_fields=["basis", "eigenvalues", "projection", "scale"], meta_fields=[]
)


@jax.jit
def _solve(basis, eigenvalues, projection, scale, damping):
    kept = eigenvalues > RCOND * eigenvalues[-1]  # hard cut of numerically null directions
    return basis @ jnp.where(kept, projection / (jnp.where(kept, eigenvalues, 1.0) + damping * scale), 0.0)


def gauss_newton_system(
    log_chi: Callable[[jax.Array, jax.Array], jax.Array],
    vec: jax.Array,
    x: jax.Array,
    log_phi_x: jax.Array,
    log_density_x: jax.Array,
    form: str = "auto",
) -> GaussNewtonSystem:
    """Set up δθ(λ) for the model log χ(vec, x) on the batch x (see module docstring).

    Args:
        log_chi: (vec, x) ↦ log χ(x) for a batch x (B, N), vec the real parameter vector.
        vec: current real parameters (P,).
        x, log_phi_x, log_density_x: configurations, target log-amplitudes and sampling log-density.
        form: "qgt" (P×P eigenproblem), "ntk" (2B×2B) or "auto" (the smaller one).
    """
    lc = log_chi(vec, x)

    def per_sample(xi):  # Jacobian row by row: a batched jacrev would cost O(B²) memory
        return jax.jacrev(lambda v: jnp.stack([log_chi(v, xi[None])[0].real, log_chi(v, xi[None])[0].imag]))(vec)

    jac = jax.vmap(per_sample)(x)  # (B, 2, P)
    jac = jac[:, 0] + 1j * jac[:, 1]
    w = _weights(lc, log_density_x)
    r = jnp.where(w > 0, jnp.exp(log_phi_x - lc), 0.0)
    f = r / jnp.sum(w * r) - 1
    jac = jnp.where(w[:, None] > 0, jac, 0.0)  # zero-weight rows (e.g. masked configurations) may hold inf/NaN
    centred = jnp.where(w[:, None] > 0, jac - jnp.sum(w[:, None] * jac, axis=0), 0.0)
    sw = jnp.sqrt(w)[:, None]
    x_mat = jnp.concatenate([sw * centred.real, sw * centred.imag])  # (2B, P)
    g = jnp.concatenate([sw[:, 0] * f.real, sw[:, 0] * f.imag])
    n_params = x_mat.shape[1]
    scale = jnp.sum(x_mat**2) / n_params
    use_qgt = form == "qgt" or (form == "auto" and n_params <= x_mat.shape[0])
    if use_qgt:
        eigenvalues, v = jnp.linalg.eigh(x_mat.T @ x_mat)
        return GaussNewtonSystem(v, eigenvalues, v.T @ (x_mat.T @ g), scale)
    eigenvalues, u = jnp.linalg.eigh(x_mat @ x_mat.T)
    return GaussNewtonSystem(x_mat.T @ u, eigenvalues, u.T @ g, scale)
