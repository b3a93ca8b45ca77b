"""Checks shared by the tests of the autoregressive models (`ansatze.autoregressive` and its subclasses)."""

import jax
import netket as nk
import numpy as np
import pytest
from scipy.stats import chisquare


def assert_normalised(x, log_psi, constrained: bool) -> None:
    """Σ_x |ψ(x)|² = 1 over all configurations x, far from uniform; with the S^z = 0 constraint, zero outside."""
    prob = np.exp(2 * np.asarray(log_psi).real)
    assert prob.sum() == pytest.approx(1.0, abs=1e-10)
    assert prob.max() > 2.0 / len(prob)  # not the uniform distribution
    if constrained:
        in_sector = np.asarray(x).sum(axis=1) == 0
        assert prob[~in_sector].max() < 1e-30
        assert prob[in_sector].sum() == pytest.approx(1.0, abs=1e-10)


def stale_cache(model, x):
    """The sampling cache of `model` for configurations x, filled with garbage (a stale cache, as left by the
    sampler's init call, must not matter)."""
    shapes = jax.eval_shape(lambda s: model.init(jax.random.PRNGKey(1), s, 0, method=model.conditional), x)["cache"]
    rng = np.random.default_rng(0)
    return jax.tree_util.tree_map(lambda a: rng.integers(-3, 4, a.shape).astype(a.dtype), shapes)


def cached_conditionals(model, params, x, cache, shape):
    """q_i(· | ·) (B, N, d) of every site from NetKet's cached `conditional`, called along `reorder` with the sites
    not generated yet replaced by garbage."""
    n = x.shape[1]
    step = jax.jit(lambda v, s, i: model.apply(v, s, i, method=model.conditional, mutable=["cache"]))
    garbage = np.asarray(x)[::-1]  # stands in for the sites the sampler has not generated yet
    order = np.asarray(model.apply({}, np.arange(n), method=model.reorder))
    cached = np.zeros(shape)
    for k, i in enumerate(order):
        seen = np.isin(np.arange(n), order[:k])
        p_i, mutated = step({**params, "cache": cache}, np.where(seen, x, garbage), i)
        cache = mutated["cache"]
        cached[:, i] = p_i
    return cached


def assert_born_distribution(hi, samples, log_psi, constrained: bool) -> None:
    """20000-ish samples (…, N) follow |ψ|² (χ² and total-variation distance); none leaves the S^z = 0 sector."""
    samples = np.asarray(samples).reshape(-1, hi.size)
    if constrained:
        assert np.all(samples.sum(axis=1) == 0), "a sample left the zero-magnetisation sector"
    prob = np.exp(2 * log_psi.real)
    counts = np.bincount(np.asarray(hi.states_to_numbers(samples)), minlength=hi.n_states)
    support = prob > 1e-12
    assert counts[~support].sum() == 0
    expected = prob[support] / prob[support].sum() * len(samples)
    assert chisquare(counts[support], expected).pvalue > 1e-3
    assert 0.5 * np.abs(counts / len(samples) - prob).sum() < 0.05  # total-variation distance


def ardirect_samples(hi, model, params, n: int = 20000):
    sampler = nk.sampler.ARDirectSampler(hi)
    state = sampler.init_state(model, params, seed=2)
    return sampler.sample(model, params, state=state, chain_length=n)[0]
