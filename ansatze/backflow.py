"""Neural backflow: Slater determinants whose orbitals depend on the configuration (Luo & Clark, PRL 122, 226401
(2019)); NetKet has Slater determinants (`Slater2nd`, `MultiSlater2nd`) but no backflow.

On spinful fermions with fixed N↓, N↑ (NetKet's `SpinOrbitalFermions(L, 1/2, n_fermions_per_spin=(N↓, N↑))`, the
spin-down block first), each spin sector σ has an orbital matrix Φ_σ(n) ∈ ℝ^{L×N_σ} (or ℂ) that depends on the whole
occupation string n:

    Φ_σ(n) = M_σ + F_σ(n),      ψ(n) = Π_σ det Φ_σ(n)[R_σ(n), :],

where R_σ(n) are the occupied orbitals of spin σ in increasing order (the Jordan–Wigner order of the modes, as in
`Slater2nd`) and F is a multilayer perceptron of n (tanh layers, last layer initialised at zero). At F = 0 this is
NetKet's unrestricted `Slater2nd` with orbitals M_σ (tested), so a backflow run can start from a Hartree–Fock fit.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
import netket as nk
from netket import jax as nkjax


class NeuralBackflow(nn.Module):
    """ψ(n) = Π_σ det[M_σ + F_σ(n)]_{R_σ(n)} (module docstring).

    Attributes:
        hilbert: spinful `SpinOrbitalFermions` with fixed `n_fermions_per_spin`.
        hidden: width of the backflow network's hidden layers.
        layers: number of hidden layers.
        param_dtype: parameter type (float for real orbitals, complex for complex ones).
    """

    hilbert: nk.hilbert.SpinOrbitalFermions
    hidden: int = 16
    layers: int = 1
    param_dtype: type = float

    def setup(self):
        numbers = getattr(self.hilbert, "n_fermions_per_spin", None)
        if numbers is None or any(n is None for n in numbers):
            raise ValueError(f"the backflow needs fixed particle numbers per spin, got {self.hilbert} (build it on "
                             "system.sector_hilbert())")
        if self.hidden < 1 or self.layers < 0:
            raise ValueError(f"hidden must be >= 1 and layers >= 0, got {self.hidden}, {self.layers}")
        self.numbers = tuple(int(n) for n in numbers)
        init = nn.initializers.variance_scaling(1.0, "fan_in", "normal")
        self.orbitals = [self.param(f"M_{i}", init, (self.hilbert.n_orbitals, n), self.param_dtype)
                         for i, n in enumerate(self.numbers)]
        self.hidden_layers = [nn.Dense(self.hidden, param_dtype=self.param_dtype, name=f"hidden_{k}")
                              for k in range(self.layers)]
        self.backflow = nn.Dense(self.hilbert.n_orbitals * sum(self.numbers), param_dtype=self.param_dtype,
                                 kernel_init=nn.initializers.zeros, name="backflow")

    def __call__(self, n: jnp.ndarray) -> jnp.ndarray:
        if n.shape[-1] != self.hilbert.size:
            raise ValueError(f"expected configurations of {self.hilbert.size} modes, got shape {n.shape}")
        occupied = jnp.isclose(n, 1)
        h = 2.0 * occupied.astype(jnp.float64) - 1.0
        for layer in self.hidden_layers:
            h = jnp.tanh(layer(h))
        corrections = self.backflow(h)  # (..., L * N)
        L, total = self.hilbert.n_orbitals, sum(self.numbers)

        def log_det(occ, correction):
            rows = occ.nonzero(size=total)[0]
            out, start, column = 0.0, 0, 0
            for sector, (count, base) in enumerate(zip(self.numbers, self.orbitals)):
                if count == 0:
                    continue
                block = correction[column * L:(column + count) * L].reshape(L, count)
                phi = base + block
                local = rows[start:start + count] - sector * L
                out = out + nkjax.logdet_cmplx(phi[local])
                start, column = start + count, column + count
            return out

        flat_occ = occupied.reshape(-1, occupied.shape[-1])
        flat_corr = corrections.reshape(-1, corrections.shape[-1])
        return jnp.vectorize(log_det, signature="(m),(k)->()")(flat_occ, flat_corr).reshape(n.shape[:-1])
