"""A periodic matrix product state started at the product state |→⟩ through a shift register of the last spins,
so that its tangent space holds every local correlation from the first step.

    ψ(σ_1 … σ_N) = Tr[A_1(σ_1) A_2(σ_2) ⋯ A_N(σ_N)] ,   A_j(s) ∈ ℂ^{χ×χ},  A_j = A_{j mod c}

(a unit cell of c sites: c = 1 is translation invariant; or one tensor per site, NetKet's `MPSPeriodic`).

Start (``shift_register_tensors``): with d local states and the register size R = d^k ≤ χ (the largest such),
A_j(s)_{ab} = δ_{b, (d·a + s) mod R} for a < R, all other entries zero (plus optional noise). The bond state then
holds the last k site values: for every configuration exactly one closed path of bond states exists, so
ψ(σ) = 1 for all σ, i.e. exactly |→⟩ = ⊗(|↑⟩+|↓⟩)/√2 for spins 1/2. Its tangent space is rich: the derivative
along A(s)_{ab} on the path multiplies ψ by a function of the k + 1 consecutive spins it encodes, so every
(k+1)-site window function (Σ_j σ_jσ_{j+1} included) is a first-order direction with weight O(1), and entries off the
register
give further ones (a wrong register content is shifted out after k sites). NetKet's default start
A = 1 + 0.01·noise reaches neighbour correlations only through distance-independent pair terms, and the product
state padded with zeros (plus noise ε) only at O(ε): their tangent space at t = 0 misses the direction −iHψ needs.
Measured on the TFIM quench L = 12, h = 0.5, χ = 8, full sums, RK4 Δt = 0.02: NetKet's start has a TDVP residual
r² = 0.29 at t = 0 and loses the state by t = 0.2 (infidelity 0.999); the padded product state with ε = 0.01 jumps to
1.4e-3 in the first steps (4e-11 with the slower adaptive RK45 steps, `docs/benchmarks.md`); this start gives
r² ~ 1e-29 and 4e-10.

Why an MPS: the 1D quench states of `runs/tfim_quench.py` carry little entanglement (half-chain entropy 1.4 nats
at t = 1, 2.3 at t = 3 for L = 16), so an MPS of modest χ holds them (two cuts of a ring: Schmidt rank ≤ χ²),
while the RBM's tangent space fails there (`docs/results.md`). It is evaluated and sampled like any other NetKet model
(Metropolis), and it is holomorphic in its complex tensors. Divergence from NetKet: the start, and for one tensor
on all sites the block contraction of `BlockMPS` (same parameter A − 1 and values as NetKet's `MPSPeriodic`).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import netket as nk
from jax.nn.initializers import normal


def shift_register_tensors(local_size: int, bond_dim: int) -> jnp.ndarray:
    """A(s)_{ab} = δ_{b,(d·a+s) mod R} for a < R = the largest power of d = local_size not above bond_dim, shape
    (d, χ, χ): the MPS tensors of the uniform state ψ(σ) = 1 with a register of the last log_d R values."""
    if local_size < 2 or bond_dim < 1:
        raise ValueError(f"need local_size >= 2 and bond_dim >= 1, got {local_size} and {bond_dim}")
    register = 1
    while register * local_size <= bond_dim:
        register *= local_size
    a = jnp.arange(register)
    tensors = jnp.zeros((local_size, bond_dim, bond_dim))
    for s in range(local_size):
        tensors = tensors.at[s, a, (a * local_size + s) % register].set(1.0)
    return tensors


def product_start_mps(
    hilbert: nk.hilbert.DiscreteHilbert, bond_dim: int, *, cell: int | None = 1, noise: float = 0.0,
    param_dtype: Any = jnp.complex128,
) -> nn.Module:
    """A periodic MPS of bond dimension `bond_dim` on `hilbert`, started at ψ = 1 (`shift_register_tensors`) plus
    complex Gaussian noise of standard deviation `noise`: `BlockMPS` with a unit cell of `cell` tensors (ψ is then
    invariant under the cyclic shift of the site order by `cell`, a translation of a ring; 1: one tensor for all
    sites), or with ``cell=None`` NetKet's `MPSPeriodic` with a tensor per site."""
    if bond_dim < 1:
        raise ValueError(f"bond_dim must be >= 1, got {bond_dim}")
    if not hilbert.is_finite or not hasattr(hilbert, "local_size"):
        raise ValueError(f"an MPS needs a Hilbert space with one local dimension, got {hilbert}")
    if cell is not None and (cell < 1 or hilbert.size % cell):
        raise ValueError(f"the unit cell ({cell} sites) must divide the number of sites ({hilbert.size})")
    start = shift_register_tensors(hilbert.local_size, bond_dim)

    def init(key: jax.Array, shape: tuple[int, ...], dtype: Any) -> jnp.ndarray:
        tensors = jnp.broadcast_to(start, shape).astype(dtype)
        return tensors - jnp.eye(bond_dim, dtype=dtype) + noise * normal(1.0)(key, shape, dtype)

    if cell is not None:
        return BlockMPS(hilbert, bond_dim=bond_dim, cell=cell, kernel_init=init, param_dtype=param_dtype)
    return nk.models.tensor_networks.MPSPeriodic(hilbert, bond_dim=bond_dim, kernel_init=init,
                                                 param_dtype=param_dtype)


class BlockMPS(nn.Module):
    """The periodic MPS ψ(σ) = Tr[A_1(σ_1) ⋯ A_N(σ_N)] with a unit cell of c tensors, A_j = A_{j mod c} (translation
    invariant by c sites), as NetKet's `MPSPeriodic(symperiod=c)`, with the same parameter (``tensors`` = A − 1,
    shape (c, d, χ, χ)), contracted by blocks of k sites.

    Divergence from NetKet, for speed: `MPSPeriodic` multiplies N − 1 matrices per configuration. Here the d^k
    products A_1(s_1)⋯A_k(s_k) are tabulated once per call (shared by the whole batch), each configuration looks
    up its N/k block products and multiplies them pairwise (a tree of N/k − 2 products, then Tr(XY) = Σ X ∘ Yᵀ):
    at N = 16, k = 4 that is 2 matrix products and one elementwise sum per configuration instead of 15 products.
    k is the largest multiple of c that divides N and is not above max(`block`, c). Values equal `MPSPeriodic`'s
    to rounding (tested).
    """

    hilbert: nk.hilbert.DiscreteHilbert
    bond_dim: int
    cell: int = 1
    block: int = 4
    kernel_init: Any = normal(0.01)
    param_dtype: Any = jnp.complex128

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        n, d, chi, c = self.hilbert.size, self.hilbert.local_size, self.bond_dim, self.cell
        if c < 1 or n % c:
            raise ValueError(f"the unit cell ({c} sites) must divide the number of sites ({n})")
        k = max(b for b in range(c, max(self.block, c) + 1, c) if n % b == 0)
        tensors = self.param("tensors", self.kernel_init, (c, d, chi, chi), self.param_dtype)
        a = tensors + jnp.eye(chi, dtype=self.param_dtype)
        table = a[0]
        for j in range(1, k):  # table[p] = A_1(s_1)⋯A_j(s_j) with p = Σ_i s_i d^(j−i)
            table = jnp.einsum("pij,sjk->psik", table, a[j % c]).reshape(-1, chi, chi)
        batch_shape = x.shape[:-1]
        digits = self.hilbert.states_to_local_indices(x.reshape(-1, n)).reshape(-1, n // k, k)
        index = jnp.sum(digits * d ** jnp.arange(k - 1, -1, -1), axis=-1)
        blocks = table[index]  # (batch, N/k, χ, χ)
        while blocks.shape[1] > 2:
            odd = blocks[:, -1:] if blocks.shape[1] % 2 else blocks[:, :0]
            blocks = jnp.concatenate([blocks[:, 0:-1:2] @ blocks[:, 1::2], odd], axis=1)
        if blocks.shape[1] == 2:
            trace = jnp.sum(blocks[:, 0] * jnp.swapaxes(blocks[:, 1], -1, -2), axis=(-1, -2))
        else:
            trace = jnp.trace(blocks[:, 0], axis1=-2, axis2=-1)
        return jnp.log(trace.astype(jnp.result_type(self.param_dtype, 1j))).reshape(batch_shape)
