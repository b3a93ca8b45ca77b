"""A two-body Jastrow factor on top of any non-autoregressive wave function, one parameter per orbit of site
pairs under a permutation group.

    log ψ(σ) = log ψ_base(σ) + Σ_{i<j} J_{o(i,j)} σ_i σ_j ,

where o(i, j) labels the orbit of the unordered pair {i, j} under the group G (translations of a ring: the
distance min(|i − j|, L − |i − j|); translations of a torus: the displacement up to sign). With J = 0 (the
initial value) ψ is the base model; ψ is G-invariant whenever ψ_base is, and even under the global spin flip
σ → −σ whenever ψ_base is, because σ_iσ_j is. The factor is linear, hence holomorphic, in complex J.

Why it matters for dynamics: the diagonal part of an Ising Hamiltonian, D = −Σ_<ij> Z_iZ_j, acts on a state
as a Jastrow factor, e^{−iDt} ψ(σ) = e^{it Σ σ_iσ_j} ψ(σ), so a quench from |→⟩ builds exactly these two-body
phases first; an RBM's hidden units reach them only approximately (notes `dynamics.md` §3.5, the "Jastrow
modifier" of the p-tVMC examples, there applied analytically instead of trained).

Divergence from NetKet: `nk.models.Jastrow` is a stand-alone model with one parameter per pair
(N(N − 1)/2) and no symmetry; this wrapper composes a symmetry-reduced Jastrow with any base model.
An autoregressive base is refused: the factor would break its normalisation and exact sampling.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import netket as nk
import numpy as np
from netket.utils import HashableArray


def pair_orbits(group: Any, n_sites: int) -> tuple[np.ndarray, np.ndarray]:
    """The unordered site pairs (n_pairs, 2) with i < j and the orbit index of each pair under the
    permutations `group` (|G|, N) (a group: identity included, closed under composition); orbits are
    numbered 0, 1, … in the order of their first pair."""
    perms = np.asarray(group, dtype=np.int64).reshape(-1, n_sites)
    i, j = np.triu_indices(n_sites, k=1)
    pairs = np.stack([i, j], axis=1)
    index = {(a, b): k for k, (a, b) in enumerate(pairs.tolist())}
    orbit = np.full(len(pairs), -1, dtype=np.int64)
    n_orbits = 0
    for k, (a, b) in enumerate(pairs.tolist()):
        if orbit[k] >= 0:
            continue
        for p in perms:
            u, v = sorted((int(p[a]), int(p[b])))
            orbit[index[(u, v)]] = n_orbits
        n_orbits += 1
    return pairs, orbit


class WithJastrow(nn.Module):
    """ψ_base(σ) · exp(Σ_{i<j} J_{o(i,j)} σ_iσ_j) with one (complex) parameter per pair orbit of `group`
    (module docstring).

    Attributes:
        base: a non-autoregressive model returning log ψ (e.g. `nk.models.RBMSymm`); its parameters live
            under ``params["base"]``.
        group: site permutations (|G|, N) whose pair orbits share a parameter; the identity alone gives
            one parameter per pair.
        param_dtype: dtype of J (complex for a holomorphic model).
    """

    base: nn.Module
    group: HashableArray
    param_dtype: Any = jnp.complex128

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        if isinstance(self.base, nk.models.AbstractARNN):
            raise ValueError("a Jastrow factor breaks the normalisation of an autoregressive model; "
                             f"use a non-autoregressive base, got {type(self.base).__name__}")
        n = x.shape[-1]
        pairs, orbit = pair_orbits(np.asarray(self.group), n)
        J = self.param("jastrow", nn.initializers.zeros, (int(orbit.max()) + 1,), self.param_dtype)
        s = x.astype(jnp.finfo(self.param_dtype).dtype)
        return self.base(x) + (s[..., pairs[:, 0]] * s[..., pairs[:, 1]]) @ J[orbit]
