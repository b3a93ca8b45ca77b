"""Evaluation-time symmetrisation of an autoregressive wave function over a user-given symmetry group.

The autoregressive order breaks the lattice symmetries of the state it represents. For a group G of site
permutations g (translations, point group; (g x)_j = x_{π_g(j)}), optionally times the global spin flip
x ↦ −x, the symmetrised state is (amplitude symmetrisation, Hibat-Allah et al., PRR 2, 023358 (2020);
notes `ansatze.md` §4)

    |ψ_G(x)|² = (1/|G|) Σ_{g∈G} |ψ_θ(g x)|²,    arg ψ_G(x) = arg ψ_θ(x),

    log ψ_G(x) = ½ [logsumexp_g 2 Re log ψ_θ(g x) − log |G|] + i Im log ψ_θ(x).

* The modulus is invariant under G (when G is closed, which the constructor checks) and normalised:
  Σ_x |ψ_G(x)|² = (1/|G|) Σ_g Σ_x |ψ_θ(g x)|² = 1, because each x ↦ g x is a bijection.
* |ψ_G|² is a uniform mixture of the exactly samplable |ψ_θ(g ·)|², so sampling stays exact: draw g
  uniformly, x' ∼ |ψ_θ|² by the base model's autoregressive sampler, return x = g⁻¹ x'. This is the String
  States construction (`ansatze.string_states`) with the group's permutations as "paths", and
  `StringStatesSampler` samples both.
* The phase is the base model's phase at x itself, so a built-in sign rule (`sign_sites`, Marshall) or a
  phase head keeps its meaning. For a sign-rule-rotated Hamiltonian with a positive base (phase=False)
  ψ_G is positive and G-invariant; with the Marshall sign it is a G-eigenstate of the ground-state
  momentum whenever the sign changes by a global factor under G (translations of a bipartite lattice).
* Local energies use log ψ_G (the module's output), so E_loc(x) = Σ_x' H_xx' ψ_G(x')/ψ_G(x) costs |G| base
  evaluations per connected configuration.

Divergence from NetKet: `nk.nn.blocks.SymmExpSum` symmetrises the amplitude, ψ_G = Σ_g χ_g ψ(g x); its
|ψ_G|² is not a mixture of exactly samplable terms, so it cannot keep exact autoregressive sampling. On
sectors small enough to sum over, `nqs.projected_vmc` optimises that coherent projection exactly.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import netket as nk
import numpy as np

from ansatze.string_states import StringStates
from nqs.symmetry import check_group


class Symmetrized(StringStates):
    """ψ_G: the base autoregressive wave function symmetrised over a permutation group, optionally times
    the global spin flip (module docstring). Sample it with `ansatze.string_states.StringStatesSampler`.

    Attributes:
        base: autoregressive model of a wave function (machine_pow = 2), e.g. `ARTransformer`, `ARRNN`;
            its parameters live under ``params["base"]``.
        paths: the group's site permutations (|G|, N) (e.g. `nqs.symmetry.symmetry_group(graph, "space")`), identity
            included and closed under composition.
        spin_flip: also average over the global spin flip x ↦ −x (spin-½ Hilbert spaces only); a
            magnetisation-zero constraint of the base is preserved by the flip.
    """

    spin_flip: bool = False

    def __post_init__(self):
        n = self.base.hilbert.size
        self.paths = check_group(self.paths, n)
        if self.spin_flip:
            hi = self.base.hilbert
            if not isinstance(hi, nk.hilbert.Spin) or hi.local_size != 2:
                raise ValueError(f"spin_flip needs a spin-1/2 Hilbert space, got {hi}")
        if getattr(self.base, "machine_pow", 2) != 2:
            raise ValueError("Symmetrized is for wave functions (base machine_pow = 2); "
                             "for probability mixtures use StringStates")
        super().__post_init__()

    @property
    def n_terms(self) -> int:
        """|G| (times 2 with the spin flip)."""
        return self.n_paths * (2 if self.spin_flip else 1)

    @nn.nowrap
    def _images(self, x: jax.Array) -> jax.Array:
        """g x for every group element: (B, n_terms, N); terms k ≥ |G| are flipped."""
        images = x[:, jnp.asarray(self.paths)]
        return jnp.concatenate([images, -images], axis=1) if self.spin_flip else images

    @nn.nowrap
    def from_base_samples(self, generated: jax.Array, term: jax.Array) -> jax.Array:
        """x = g⁻¹ x' for the group elements g = `term` (B,): undo the flip, then the permutation."""
        k = term % self.n_paths
        flip = term >= self.n_paths
        generated = jnp.where(flip[:, None], -generated, generated)
        return super().from_base_samples(generated, k)

    @nn.nowrap
    def generation_steps(self) -> None:
        """No prefix reuse: the phase is the base model's at x itself and the images may be spin-flipped, which
        the String States' per-path combination does not describe (local energies take NetKet's generic path)."""
        return None

    def _base_log_psi(self, x: jax.Array) -> jax.Array:
        """log ψ_θ(g x) for configurations x (B, N) and every group element: (B, n_terms)."""
        n = self.hilbert.size
        return self.base(self._images(x).reshape((-1, n))).reshape((x.shape[0], self.n_terms))

    def log_prob_per_path(self, inputs: jax.Array) -> jax.Array:
        """2 Re log ψ_θ(g x) for every group element: shape (..., n_terms)."""
        x = inputs.reshape((-1, self.hilbert.size))
        return (2 * self._base_log_psi(x).real).reshape(inputs.shape[:-1] + (self.n_terms,))

    def __call__(self, inputs: jax.Array) -> jax.Array:
        """log ψ_G(x) = ½ [logsumexp_g 2 Re log ψ_θ(g x) − log |G|] + i Im log ψ_θ(x)."""
        n = self.hilbert.size
        batch_shape = inputs.shape[:-1]
        x = inputs.reshape((-1, n))
        log_psi = self._base_log_psi(x)
        modulus = 0.5 * (jax.nn.logsumexp(2 * log_psi.real, axis=-1) - np.log(self.n_terms))
        identity = int(np.flatnonzero((np.asarray(self.paths) == np.arange(n)).all(axis=1))[0])
        out = modulus + 1j * log_psi[:, identity].imag if jnp.iscomplexobj(log_psi) else modulus
        return out.reshape(batch_shape)

    def describe(self) -> dict:
        """Name and hyper-parameters, stored in result files."""
        describe = getattr(self.base, "describe", None)
        return {
            "name": "Symmetrized",
            "group_order": self.n_terms,
            "spin_flip": self.spin_flip,
            "base": describe() if callable(describe) else {"name": type(self.base).__name__},
        }
