"""The pair Jastrow factor: orbits of site pairs, the value it adds, symmetry and spin-flip parity kept."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import netket as nk
import numpy as np
import pytest
from netket.utils import HashableArray

from ansatze import ARTransformer
from ansatze.choice import AnsatzChoice, build_ansatz
from ansatze.jastrow import WithJastrow, pair_orbits
from hamiltonians import tfim
from nqs.symmetry import symmetry_group


def test_pair_orbits_of_a_ring_are_the_distances():
    ring = nk.graph.Chain(6, pbc=True)
    pairs, orbit = pair_orbits(symmetry_group(ring, "translations"), 6)
    assert len(pairs) == 15 and orbit.max() == 2
    distance = np.minimum(np.abs(pairs[:, 0] - pairs[:, 1]), 6 - np.abs(pairs[:, 0] - pairs[:, 1]))
    for d in (1, 2, 3):  # one orbit per distance, 6, 6 and 3 pairs
        assert len(set(orbit[distance == d])) == 1
    assert np.bincount(orbit).tolist() == [6, 6, 3]
    _, alone = pair_orbits(np.arange(6)[None], 6)  # identity only: one parameter per pair
    assert sorted(alone.tolist()) == list(range(15))


def test_jastrow_adds_the_pair_sum_and_keeps_symmetry_and_parity():
    ring = nk.graph.Chain(6, pbc=True)
    group = symmetry_group(ring, "translations")
    base = nk.models.RBMSymm(symmetries=HashableArray(group), alpha=2, param_dtype=complex,
                             use_visible_bias=False, use_hidden_bias=False)
    model = WithJastrow(base, HashableArray(group), param_dtype=complex)
    hi = nk.hilbert.Spin(0.5, 6)
    x = hi.all_states()
    params = model.init(jax.random.PRNGKey(0), x[:1])["params"]
    assert np.allclose(model.apply({"params": params}, x), base.apply({"params": params["base"]}, x))
    J = jnp.array([0.3 + 0.2j, -0.1 + 0.5j, 0.25 - 0.4j])
    params = {**params, "jastrow": J}
    log_psi = np.asarray(model.apply({"params": params}, x))
    expected = np.asarray(base.apply({"params": params["base"]}, x))
    for i in range(6):
        for j in range(i + 1, 6):
            d = min(j - i, 6 - (j - i))
            expected = expected + complex(J[d - 1]) * x[:, i] * x[:, j]
    np.testing.assert_allclose(log_psi, expected, atol=1e-12)
    for g in group:  # translation invariant, and even under σ → −σ with a bias-free base
        np.testing.assert_allclose(np.asarray(model.apply({"params": params}, x[:, g])), log_psi, atol=1e-12)
    np.testing.assert_allclose(np.asarray(model.apply({"params": params}, -x)), log_psi, atol=1e-12)


def test_jastrow_refuses_an_autoregressive_base():
    hi = nk.hilbert.Spin(0.5, 4)
    model = WithJastrow(ARTransformer(hi, layers=1, features=4, heads=1), HashableArray(np.arange(4)[None]))
    with pytest.raises(ValueError, match="normalisation"):
        model.init(jax.random.PRNGKey(0), hi.all_states()[:1])
    choice = AnsatzChoice(kind="transformer", jastrow=True, layers=1, features=4, heads=1)
    with pytest.raises(ValueError, match="Jastrow factor needs kind 'rbm'"):
        build_ansatz(choice, tfim(4, h=0.5))
