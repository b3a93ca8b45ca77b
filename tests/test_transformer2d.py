"""ARTransformer on 2D lattices: raster/snake paths, 2D position encodings, patches of sites as tokens.

Exact normalisation by enumeration, cached (sampling) conditionals equal to the parallel pass (exact patch
marginals), ARDirectSampler samples follow |ψ|², constraints along the snake and on patches (whole tokens masked),
product starts with patches."""

import functools

import jax
import netket as nk
import numpy as np
import pytest
from ar_checks import ardirect_samples, assert_born_distribution, cached_conditionals, stale_cache

import nqs
from ansatze import ARTransformer
from ansatze.lattice import generation_path
from ansatze.transfer import transfer_parameters

KINDS = {  # name: (lattice shape, fields)
    "raster": ((2, 3), {"order": "raster", "positional": "learned2d"}),
    "snake": ((2, 3), {"order": "snake", "positional": "sinusoidal2d"}),
    "patch12-snake": ((2, 4), {"order": "snake", "patch": (1, 2)}),  # default positional: learned2d
    "patch22-raster": ((2, 4), {"order": "raster", "patch": (2, 2), "positional": "learned"}),
}
CASES = [("raster", False), ("snake", True), ("patch12-snake", False), ("patch22-raster", False),
         ("patch12-snake", True), ("patch22-raster", True)]


def _model(kind, constrained=False, **kw):
    shape, fields = KINDS[kind]
    n = shape[0] * shape[1]
    hi = nk.hilbert.Spin(0.5, n)
    c = nqs.zero_magnetization(n) if constrained else None
    fields = {**fields, **kw}
    return hi, ARTransformer(hi, layers=1, features=8, heads=2, constraint=c, shape=shape, **fields)


@functools.cache
def _setup(kind, constrained):
    """Model, all states, parameters scaled up (distribution far from uniform), log ψ and the parallel
    conditionals on all states (one compilation shared by the tests of a case)."""
    hi, model = _model(kind, constrained)
    x = hi.all_states()
    params = jax.jit(model.init)(jax.random.PRNGKey(0), x)
    params = jax.tree_util.tree_map(lambda a: 3.0 * a + 0.2, params)
    log_psi, log_cond = jax.jit(
        lambda v, s: (model.apply(v, s), model.apply(v, s, method=model.conditionals_log_psi))
    )(params, x)
    return hi, model, x, params, np.asarray(log_psi), np.asarray(log_cond)


@pytest.mark.parametrize("kind,constrained", CASES)
def test_normalisation_and_log_psi_is_the_sum_of_selected_conditionals(kind, constrained):
    hi, _, x, _, log_psi, log_cond = _setup(kind, constrained)
    prob = np.exp(2 * log_psi.real)
    assert prob.sum() == pytest.approx(1.0, abs=1e-10)
    assert prob.max() > 4.0 / len(prob)  # far from uniform
    assert np.abs(log_psi.imag).max() > 0.1  # the phase head is active
    idx = np.asarray(hi.states_to_local_indices(x))
    selected = np.take_along_axis(log_cond, idx[..., None], axis=-1)[..., 0].sum(axis=-1)
    in_sector = np.asarray(x).sum(axis=1) == 0 if constrained else np.ones(len(x), bool)
    np.testing.assert_allclose(selected.real[in_sector], log_psi.real[in_sector], atol=1e-10)
    np.testing.assert_allclose(np.exp(1j * selected.imag[in_sector]), np.exp(1j * log_psi.imag[in_sector]), atol=1e-10)
    assert np.all(selected.real[~in_sector] < -1e20)  # "log 0" on both paths outside the sector
    np.testing.assert_allclose(np.exp(2 * log_cond[in_sector].real).sum(axis=-1), 1.0, atol=1e-12)
    if constrained:
        assert prob[~in_sector].max() < 1e-30
        assert prob[in_sector].sum() == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize("kind,constrained", CASES)
def test_cached_conditionals_equal_parallel_without_reading_ungenerated_sites(kind, constrained):
    _, model, x, params, _, log_cond = _setup(kind, constrained)
    parallel = np.exp(2 * log_cond.real)
    cached = cached_conditionals(model, params, x, stale_cache(model, x), parallel.shape)
    np.testing.assert_allclose(cached, parallel, atol=1e-12)


@pytest.mark.parametrize("kind,constrained", [("snake", True), ("patch12-snake", False), ("patch22-raster", False),
                                              ("patch12-snake", True)])
def test_ardirect_sampler_matches_born_distribution(kind, constrained):
    hi, model, _, params, log_psi, _ = _setup(kind, constrained)
    assert_born_distribution(hi, ardirect_samples(hi, model, params), log_psi, constrained)


def test_paths_follow_the_grid_numbering():
    # 2×4 lattice, 1×2 patches: patch grid 2×2 in snake order, sites of a patch consecutive
    np.testing.assert_array_equal(generation_path("snake", 8, (2, 4), (1, 2)), [0, 1, 2, 3, 6, 7, 4, 5])
    np.testing.assert_array_equal(generation_path("raster", 8, (2, 4), (2, 2)), [0, 1, 4, 5, 2, 3, 6, 7])
    np.testing.assert_array_equal(generation_path("snake", 6, (2, 3)), [0, 1, 2, 5, 4, 3])
    np.testing.assert_array_equal(generation_path("raster", 6, (2, 3)), np.arange(6))
    _, model = _model("patch12-snake")
    order = np.asarray(model.apply({}, np.arange(8), method=model.reorder))
    np.testing.assert_array_equal(order, [0, 1, 2, 3, 6, 7, 4, 5])
    np.testing.assert_array_equal(model.apply({}, order, method=model.inverse_reorder), np.arange(8))


def test_raster_with_1d_positions_is_the_chain_model():
    hi = nk.hilbert.Spin(0.5, 6)
    chain = ARTransformer(hi, layers=1, features=8, heads=2)
    raster = ARTransformer(hi, layers=1, features=8, heads=2, order="raster", shape=(2, 3), positional="learned")
    x = hi.all_states()
    params = jax.jit(chain.init)(jax.random.PRNGKey(0), x[:1])
    np.testing.assert_array_equal(jax.jit(raster.apply)(params, x), jax.jit(chain.apply)(params, x))
    assert set(jax.eval_shape(raster.init, jax.random.PRNGKey(0), x[:1])["params"]) == set(params["params"])


@pytest.mark.parametrize("site_dependent", [False, True])
def test_product_start_with_patches_is_exactly_the_product_state(site_dependent):
    hi, model = _model("patch22-raster")
    rng = np.random.default_rng(1)
    p = rng.uniform(0.1, 0.9, size=(hi.size, 1)) if site_dependent else np.full((hi.size, 1), 0.3)
    p = np.concatenate([p, 1 - p], axis=1)
    model = model.clone(initial_distribution=p.tolist())
    x = hi.all_states()
    params = jax.jit(model.init)(jax.random.PRNGKey(0), x[:1])
    assert ("token_logits" in params["params"]) == site_dependent
    idx = np.asarray(hi.states_to_local_indices(x))
    expected = 0.5 * np.log(p)[np.arange(hi.size), idx].sum(axis=1)
    log_psi, conditionals = jax.jit(
        lambda v, s: (model.apply(v, s), model.apply(v, s, method=model.conditionals))
    )(params, x)
    log_psi, conditionals = np.asarray(log_psi), np.asarray(conditionals)
    np.testing.assert_allclose(log_psi.real, expected, atol=1e-13)
    np.testing.assert_allclose(log_psi.imag, 0.0, atol=1e-14)
    # every site conditional (exact marginal of the token distribution) is the site distribution p_i
    np.testing.assert_allclose(conditionals, np.broadcast_to(p, conditionals.shape), atol=1e-13)


def test_learned2d_tables_transfer_to_a_larger_lattice():
    small_hi = nk.hilbert.Spin(0.5, 4)
    small = ARTransformer(small_hi, layers=1, features=8, heads=2, order="raster", shape=(2, 2))
    big_hi = nk.hilbert.Spin(0.5, 8)
    big = ARTransformer(big_hi, layers=1, features=8, heads=2, order="raster", shape=(2, 4))
    xs = small_hi.all_states()
    small_vars = jax.tree_util.tree_map(lambda a: 3.0 * a, jax.jit(small.init)(jax.random.PRNGKey(0), xs[:1]))
    big_vars = transfer_parameters(
        small_vars, jax.jit(big.init)(jax.random.PRNGKey(1), big_hi.all_states()[:1]), mode="prefix"
    )
    np.testing.assert_array_equal(big_vars["params"]["col_positions"][:2], small_vars["params"]["col_positions"])
    # the first row's first two sites see the same context on both lattices
    xb = np.concatenate([xs[:, :2], np.ones((len(xs), 6))], axis=1)
    cs = np.asarray(jax.jit(lambda v, s: small.apply(v, s, method=small.conditionals))(small_vars, xs))
    cb = np.asarray(jax.jit(lambda v, s: big.apply(v, s, method=big.conditionals))(big_vars, xb))
    np.testing.assert_allclose(cb[:, :2], cs[:, :2], atol=1e-13)
    with pytest.raises(ValueError, match="cannot shrink"):
        transfer_parameters(big_vars, small_vars, mode="prefix")


def test_describe_lists_the_lattice_fields():
    _, model = _model("patch12-snake")
    d = model.describe()
    assert d["order"] == "snake" and d["shape"] == [2, 4] and d["patch"] == [1, 2]
    assert d["positional"] == "learned2d"  # the default on a lattice
    chain = ARTransformer(nk.hilbert.Spin(0.5, 4), layers=1, features=8, heads=2).describe()
    assert chain["order"] == "chain" and chain["positional"] == "learned" and chain["patch"] is None


def test_bad_lattice_inputs_are_refused():
    hi = nk.hilbert.Spin(0.5, 8)
    kw = {"layers": 1, "features": 8, "heads": 2}
    bad = [
        ({"order": "spiral", "shape": (2, 4)}, "order must be one of"),
        ({"order": "snake"}, "needs shape"),
        ({"order": "raster", "shape": (3, 3)}, "does not match the 8 sites"),
        ({"order": "raster", "shape": (2, 4), "positional": "rotary"}, "positional must be one of"),
        ({"positional": "learned2d"}, "needs a lattice path"),
        ({"patch": (2, 2)}, "patch=.* needs the lattice shape"),
        ({"shape": (2, 4), "patch": (2, 2)}, "patch needs a lattice path"),
        ({"order": "raster", "shape": (2, 4), "patch": (2, 3)}, "does not divide"),
        ({"order": "raster", "shape": (2, 4), "patch": (0, 2)}, ">= 1"),
    ]
    for fields, match in bad:
        with pytest.raises(ValueError, match=match):
            ARTransformer(hi, **kw, **fields)
