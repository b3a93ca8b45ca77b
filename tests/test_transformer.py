"""ARTransformer: exact normalisation, exact sampling, cached == parallel conditionals, constraint masks."""


import jax
import netket as nk
import numpy as np
import pytest
from ar_checks import assert_born_distribution, assert_normalised

import nqs
from ansatze import ARTransformer


def _perturbed(model, x, seed=0, scale=3.0):
    """Initial parameters scaled up so the distribution is far from uniform."""
    params = model.init(jax.random.PRNGKey(seed), x)
    return jax.tree_util.tree_map(lambda a: scale * a, params)


def _model(n, constrained, **kw):
    hi = nk.hilbert.Spin(0.5, n)
    c = nqs.zero_magnetization(n) if constrained else None
    return hi, ARTransformer(hi, layers=kw.pop("layers", 2), features=8, heads=2, constraint=c, **kw)


@pytest.mark.parametrize("n", [6, 10])
@pytest.mark.parametrize("constrained", [False, True])
def test_normalisation_by_enumeration(n, constrained):
    hi, model = _model(n, constrained)
    x = hi.all_states()
    params = _perturbed(model, x)
    assert_normalised(x, model.apply(params, x), constrained)


@pytest.mark.parametrize("constrained", [False, True])
def test_ardirect_sampler_matches_born_distribution(constrained):
    hi, model = _model(6, constrained, layers=1)
    sampler = nk.sampler.ARDirectSampler(hi)
    vs = nk.vqs.MCState(sampler, model, n_samples=20000, seed=1, sampler_seed=2)
    vs.variables = _perturbed(model, hi.all_states(), seed=3)
    assert_born_distribution(hi, vs.samples, np.asarray(vs.log_value(hi.all_states())), constrained)


@pytest.mark.parametrize(("positional", "constrained"), [
    ("learned", True), ("sinusoidal", False), ("sinusoidal", True),
    pytest.param("learned", False, marks=pytest.mark.slow)])  # slow: suite time
def test_cached_conditionals_equal_parallel(positional, constrained):
    hi, model = _model(8, constrained, positional=positional)
    x = hi.all_states()[::7]
    params = _perturbed(model, x)
    parallel = model.apply(params, x, method=model.conditionals)
    cache = model.init(jax.random.PRNGKey(1), x, 0, method=model.conditional)["cache"]
    cached = []
    for i in range(hi.size):
        p_i, mutated = model.apply({**params, "cache": cache}, x, i, method=model.conditional, mutable=["cache"])
        cache = mutated["cache"]
        cached.append(p_i)
    np.testing.assert_allclose(np.stack(cached, axis=1), parallel, atol=1e-12)


def test_log_psi_is_sum_of_selected_conditionals_and_accepts_batches():
    hi, model = _model(6, False)
    x = hi.all_states()
    params = _perturbed(model, x)
    log_cond = model.apply(params, x, method=model.conditionals_log_psi)
    idx = np.asarray(hi.states_to_local_indices(x))
    manual = np.take_along_axis(np.asarray(log_cond), idx[..., None], axis=-1)[..., 0].sum(-1)
    np.testing.assert_allclose(model.apply(params, x), manual, atol=1e-12)
    assert model.apply(params, x.reshape(4, 16, 6)).shape == (4, 16)


def test_energy_gradient_is_finite():
    hi, model = _model(6, True)
    H = nk.operator.Heisenberg(hi, nk.graph.Chain(6), sign_rule=False)
    vs = nk.vqs.MCState(nk.sampler.ARDirectSampler(hi), model, n_samples=256, seed=0)
    energy, grad = vs.expect_and_grad(H)
    assert np.isfinite(energy.mean)
    assert all(np.all(np.isfinite(g)) for g in jax.tree_util.tree_leaves(grad))


def test_bad_hyper_parameters_are_refused():
    hi = nk.hilbert.Spin(0.5, 6)
    with pytest.raises(ValueError, match="constraint is for 8 sites"):
        ARTransformer(hi, constraint=nqs.zero_magnetization(8))
    with pytest.raises(ValueError, match="must divide"):
        ARTransformer(hi, features=10, heads=4)
