"""Product-state initialisation with site-dependent distributions (e.g. a regularised Néel state):
exact log ψ on every configuration, the sampler draws from the same product distribution, bad input refused."""

import jax
import netket as nk
import numpy as np
import pytest

import nqs
from ansatze import AR2DRNN, ARRNN, ARTransformer
from ansatze.product_start import basis_state_distribution, product_log_p

SHAPE = (2, 3)
N = 6
HI = nk.hilbert.Spin(0.5, N)
NEEL = [1, -1, 1, -1, 1, -1]
MODELS = {
    "transformer": lambda p, **kw: ARTransformer(HI, layers=1, features=8, heads=2, initial_distribution=p, **kw),
    "gru-snake": lambda p, **kw: ARRNN(HI, hidden=4, order="snake", shape=SHAPE, initial_distribution=p, **kw),
    "2d": lambda p, **kw: AR2DRNN(HI, hidden=4, shape=SHAPE, initial_distribution=p, **kw),
}


@pytest.mark.parametrize("kind", [pytest.param(k, marks=pytest.mark.slow) if k in ("2d", "transformer") else k
                                  for k in sorted(MODELS)])  # slow: suite time
def test_site_dependent_start_is_exactly_the_product_state_and_samples_it(kind):
    p = np.array([[0.9, 0.1], [0.3, 0.7], [0.5, 0.5], [0.2, 0.8], [0.6, 0.4], [0.05, 0.95]])
    model = MODELS[kind](p.tolist())  # lists are accepted (and stored as tuples)
    x = HI.all_states()
    params = model.init(jax.random.PRNGKey(0), x)
    assert "site_logits" in params["params"]
    log_psi = np.asarray(model.apply(params, x))
    idx = np.asarray(HI.states_to_local_indices(x))
    expected = 0.5 * np.log(p)[np.arange(N), idx].sum(axis=1)
    np.testing.assert_allclose(log_psi.real, expected, atol=1e-13)
    np.testing.assert_allclose(log_psi.imag, 0.0, atol=1e-14)
    # the cached (sampling) path sees the same per-site logits: site marginals of 20000 exact samples
    sampler = nk.sampler.ARDirectSampler(HI)
    samples, _ = sampler.sample(model, params, state=sampler.init_state(model, params, seed=1), chain_length=20000)
    up = (np.asarray(samples).reshape(-1, N) == 1).mean(axis=0)
    p_up = p[np.arange(N), np.asarray(HI.states_to_local_indices(np.ones((1, N))))[0]]
    assert np.abs(up - p_up).max() < 5 * np.sqrt(0.25 / 20000)


def test_regularised_neel_state_in_the_zero_magnetisation_sector():
    p = basis_state_distribution(HI, NEEL, 1e-4)
    model = ARTransformer(HI, layers=1, features=8, heads=2, initial_distribution=p,
                          constraint=nqs.zero_magnetization(N))
    psi = np.asarray(nk.vqs.FullSumState(HI, model, seed=0).to_array())
    neel = int(np.asarray(HI.states_to_numbers(np.array([NEEL])))[0])
    # the mask renormalises the conditionals: the last site is forced, the others keep 1 − ε
    assert abs(psi[neel]) ** 2 == pytest.approx((1 - 1e-4) ** (N - 1), rel=1e-12)
    assert np.sum(np.abs(psi) ** 2) == pytest.approx(1.0, abs=1e-12)
    assert np.abs(psi[np.asarray(HI.all_states()).sum(axis=1) != 0]).max() == 0.0


def test_uniform_distribution_keeps_the_shared_bias_and_bad_input_is_refused():
    params = MODELS["transformer"]((0.5, 0.5)).init(jax.random.PRNGKey(0), HI.all_states())
    assert "site_logits" not in params["params"]
    with pytest.raises(ValueError, match="rows"):
        product_log_p([[0.5, 0.5]] * 5, N, 2)
    with pytest.raises(ValueError, match="positive"):
        product_log_p([[1.0, 0.0]] * N, N, 2)
    with pytest.raises(ValueError, match="epsilon"):
        basis_state_distribution(HI, NEEL, 0.0)
    with pytest.raises(ValueError, match="outside"):
        basis_state_distribution(HI, [2] * N, 1e-3)
    with pytest.raises(ValueError, match="entries"):
        basis_state_distribution(HI, NEEL[:4], 1e-3)
