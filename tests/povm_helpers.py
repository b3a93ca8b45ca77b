"""Shared pieces of the POVM tests: a complete autoregressive table model, its states and the references.

The model is a fully expressive autoregressive table (`TableAR`), so that every distribution over 4^N outcomes is
representable and the tests measure the methods, not the ansatz.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import netket as nk
import numpy as np
import pytest

from dynamics.povm import PovmOutcome
from nqs import System
from nqs.povm import POVM, probabilities
from nqs.run import Run

W = np.sqrt(35.0)
UP = (0.5, 1 / 6, 1 / 6, 1 / 6)  # tetrahedral POVM image of |up>


class TableAR(nk.models.AbstractARNN):
    """p(a_i | a_<i) = softmax(W[offset_i + index(a_<i)]): any distribution over d^N outcomes (d^N − 1 rows)."""

    machine_pow: int = 1
    initial_distribution: tuple[float, ...] | None = None

    @nn.compact
    def conditionals_log_psi(self, inputs):
        n, d = self.hilbert.size, self.hilbert.local_size
        p = self.initial_distribution or (1 / d,) * d
        rows = (d**n - 1) // (d - 1)
        table = self.param("logits", lambda *_: jnp.tile(jnp.log(jnp.asarray(p)), (rows, 1)))
        idx = self.hilbert.states_to_local_indices(inputs).astype(jnp.int32)
        prefix, offset, out = jnp.zeros(idx.shape[0], dtype=jnp.int32), 0, []
        for i in range(n):
            out.append(jax.nn.log_softmax(table[offset + prefix], axis=-1))
            offset += d**i
            prefix = prefix * d + idx[:, i]
        return jnp.stack(out, axis=1) / self.machine_pow


def full_sum_state(n, p1):
    hi = nk.hilbert.Fock(n_max=3, N=n)
    return nk.vqs.FullSumState(hi, TableAR(hi, initial_distribution=tuple(p1)))


def sampled_state(n, p1, n_samples):
    hi = nk.hilbert.Fock(n_max=3, N=n)
    return nk.vqs.MCState(nk.sampler.ARDirectSampler(hi), TableAR(hi, initial_distribution=tuple(p1)),
                          n_samples=n_samples, seed=0, sampler_seed=1)


def single_qubit():
    """H = 3σˣ, L = σᶻ (γ = 1), ρ₀ = |y+⟩: ⟨σʸ⟩ = e^{−t}(w cos wt − sin wt)/w, ⟨σᶻ⟩ = (6/w) e^{−t} sin wt."""
    hi = nk.hilbert.Spin(0.5, 1)
    system = System(builder="test.single_qubit", hilbert=hi, hamiltonian=3.0 * nk.operator.spin.sigmax(hi, 0),
                    jump_operators=(nk.operator.spin.sigmaz(hi, 0),))
    P0 = probabilities(0.5 * np.array([[1, -1j], [1j, 1]]), POVM.tetrahedral(), 1)
    return system, P0


def check_analytic(out: PovmOutcome, atol: float) -> None:
    t = out.times
    y = np.exp(-t) * (W * np.cos(W * t) - np.sin(W * t)) / W
    z = 6 / W * np.exp(-t) * np.sin(W * t)
    np.testing.assert_allclose(out.exact["sigma_y"], y, atol=1e-6)  # the mesolve reference on the grid
    np.testing.assert_allclose(out.exact["sigma_z"], z, atol=1e-6)
    np.testing.assert_allclose(out.series("sigma_y"), y, atol=atol)
    np.testing.assert_allclose(out.series("sigma_z"), z, atol=atol)
    np.testing.assert_allclose(out.series("sigma_x"), 0.0, atol=atol)


def killed_at_row(monkeypatch, row: int, run) -> None:
    """Run `run()` with the run layer's `append` raising KeyboardInterrupt at history row number `row` (1-based)."""
    append = Run.append
    calls = {"n": 0}

    def interrupted(self, values):
        calls["n"] += 1
        if calls["n"] == row:
            raise KeyboardInterrupt
        return append(self, values)

    with monkeypatch.context() as m:
        m.setattr(Run, "append", interrupted)
        with pytest.raises(KeyboardInterrupt):
            run()


def assert_same_parameters(state_a, state_b) -> None:
    for a, b in zip(jax.tree_util.tree_leaves(state_a.parameters), jax.tree_util.tree_leaves(state_b.parameters),
                    strict=True):
        np.testing.assert_array_equal(a, b)
