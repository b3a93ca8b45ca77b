"""ARRNN and AR2DRNN: exact normalisation, exact sampling along chain/snake paths, cached == parallel conditionals,
constraint masks, product-state initialisation."""

import functools

import jax
import netket as nk
import numpy as np
import pytest
from ar_checks import ardirect_samples, assert_born_distribution, assert_normalised, cached_conditionals, stale_cache

import nqs
from ansatze import AR2DRNN, ARRNN, snake_order

SHAPE = (2, 3)
N = SHAPE[0] * SHAPE[1]
KINDS = {
    "gru-chain": (ARRNN, {"cell": "gru"}),
    "lstm-chain": (ARRNN, {"cell": "lstm", "layers": 2}),
    "gru-snake": (ARRNN, {"cell": "gru", "order": "snake", "shape": SHAPE}),
    "lstm-snake": (ARRNN, {"cell": "lstm", "order": "snake", "shape": SHAPE}),
    "2d": (AR2DRNN, {"shape": SHAPE}),
}
CASES = [
    ("gru-chain", False),
    ("lstm-chain", True),
    ("gru-snake", True),
    ("lstm-snake", False),
    ("2d", False),
    ("2d", True),
]


def _model(kind, constrained, hi=None, **kw):
    hi = hi or nk.hilbert.Spin(0.5, N)
    cls, fields = KINDS[kind]
    c = nqs.zero_magnetization(hi.size) if constrained else None
    return hi, cls(hi, hidden=kw.pop("hidden", 4), constraint=c, **fields, **kw)


@functools.cache
def _setup(kind, constrained):
    """Model, all states, parameters scaled up so the distribution is far from uniform, and on all states
    log ψ and the parallel conditionals (one compilation shared by the tests of a case)."""
    hi, model = _model(kind, constrained)
    x = hi.all_states()
    params = jax.jit(model.init)(jax.random.PRNGKey(0), x)
    params = jax.tree_util.tree_map(lambda a: 3.0 * a, params)
    log_psi, conditionals = jax.jit(
        lambda v, s: (model.apply(v, s), model.apply(v, s, method=model.conditionals))
    )(params, x)
    return hi, model, x, params, np.asarray(log_psi), np.asarray(conditionals)


@pytest.mark.parametrize("kind,constrained", CASES)
def test_normalisation_by_enumeration(kind, constrained):
    _, _, x, _, log_psi, _ = _setup(kind, constrained)
    assert_normalised(x, log_psi, constrained)


@pytest.mark.parametrize("kind,constrained", CASES)
def test_cached_conditionals_equal_parallel_without_reading_ungenerated_sites(kind, constrained):
    _, model, x, params, _, parallel = _setup(kind, constrained)
    cache = stale_cache(model, x)
    # O(1) state per site: one hidden state per layer (ARRNN) or per lattice column (AR2DRNN)
    width = SHAPE[1] if kind == "2d" else 1
    for leaf in jax.tree_util.tree_leaves(cache.get("carry", cache.get("columns"))):
        assert leaf.size == len(x) * width * model.hidden
    cached = cached_conditionals(model, params, x, cache, parallel.shape)
    np.testing.assert_allclose(cached, parallel, atol=1e-12)


@pytest.mark.parametrize("kind,constrained", [("gru-snake", False), ("lstm-chain", True), ("2d", True)])
def test_ardirect_sampler_matches_born_distribution(kind, constrained):
    hi, model, _, params, log_psi, _ = _setup(kind, constrained)
    assert_born_distribution(hi, ardirect_samples(hi, model, params), log_psi, constrained)


def test_snake_path_and_reorder_follow_the_grid_numbering():
    np.testing.assert_array_equal(snake_order(2, 3), [[0, 0], [0, 1], [0, 2], [1, 2], [1, 1], [1, 0]])
    g = nk.graph.Grid(extent=list(SHAPE), pbc=False)
    pos = snake_order(*SHAPE)
    np.testing.assert_array_equal(g.positions[pos[:, 0] * SHAPE[1] + pos[:, 1]], pos)
    for kind in ("gru-snake", "2d"):
        _, model = _model(kind, False)
        order = np.asarray(model.apply({}, np.arange(N), method=model.reorder))
        np.testing.assert_array_equal(order, [0, 1, 2, 5, 4, 3])
        np.testing.assert_array_equal(model.apply({}, order, method=model.inverse_reorder), np.arange(N))
    _, chain = _model("gru-chain", False)
    np.testing.assert_array_equal(chain.apply({}, np.arange(N), method=chain.reorder), np.arange(N))


@pytest.mark.parametrize("kind", ["lstm-snake", "2d"])
def test_initial_distribution_is_exactly_the_product_state(kind):
    p1 = (0.2, 0.8)
    hi, model = _model(kind, False, initial_distribution=p1)
    x = hi.all_states()
    log_psi = np.asarray(model.apply(model.init(jax.random.PRNGKey(0), x), x))
    expected = 0.5 * np.log(np.asarray(p1))[np.asarray(hi.states_to_local_indices(x))].sum(axis=1)
    np.testing.assert_allclose(log_psi.real, expected, atol=1e-14)
    np.testing.assert_allclose(log_psi.imag, 0.0, atol=1e-14)


def test_energy_gradient_of_2d_heisenberg_is_finite_with_masked_conditionals():
    """E(θ) = ψ† H ψ on all states (ψ normalised); the −1e30 masks must not produce NaN gradients."""
    hi, model, x, params, _, _ = _setup("2d", True)
    H = nk.operator.Heisenberg(hi, nk.graph.Grid(extent=list(SHAPE), pbc=False), sign_rule=False).to_dense()

    def energy(v):
        psi = jax.numpy.exp(model.apply(v, x))
        return (psi.conj() @ H @ psi).real

    e, grad = jax.jit(jax.value_and_grad(energy))(params)
    assert np.isfinite(e) and e >= np.linalg.eigvalsh(H)[0] - 1e-10
    leaves = jax.tree_util.tree_leaves(grad)
    assert all(np.all(np.isfinite(g)) for g in leaves)
    assert max(np.abs(g).max() for g in leaves) > 0


def test_describe_lists_the_hyper_parameters():
    _, model = _model("lstm-snake", True)
    d = model.describe()
    assert d["name"] == "ARRNN" and d["cell"] == "lstm" and d["order"] == "snake" and d["shape"] == [2, 3]
    assert d["hidden"] == 4 and d["layers"] == 1 and d["constraint"]["type"] == "U1Constraint"
    d2 = _model("2d", False)[1].describe()
    assert d2["name"] == "AR2DRNN" and d2["shape"] == [2, 3] and d2["constraint"] is None


def test_bad_hyper_parameters_are_refused():
    hi = nk.hilbert.Spin(0.5, N)
    with pytest.raises(ValueError, match="hidden must be >= 1"):
        ARRNN(hi, hidden=0)
    with pytest.raises(ValueError, match="hidden must be >= 1"):
        AR2DRNN(hi, hidden=0, shape=SHAPE)
    with pytest.raises(ValueError, match="cell must be one of"):
        ARRNN(hi, hidden=4, cell="rnn")
    with pytest.raises(ValueError, match="order must be one of"):
        ARRNN(hi, hidden=4, order="raster")
    with pytest.raises(ValueError, match="needs shape"):
        ARRNN(hi, hidden=4, order="snake")
    with pytest.raises(ValueError, match="does not match the 6 sites"):
        ARRNN(hi, hidden=4, order="snake", shape=(2, 2))
    with pytest.raises(ValueError, match="does not match the 6 sites"):
        AR2DRNN(hi, hidden=4, shape=(3, 3))
    with pytest.raises(ValueError, match="layers must be >= 1"):
        ARRNN(hi, hidden=4, layers=0)
    with pytest.raises(ValueError, match="constraint is for 8 sites"):
        AR2DRNN(hi, hidden=4, shape=SHAPE, constraint=nqs.zero_magnetization(8))
    with pytest.raises(ValueError, match="initial_distribution"):
        ARRNN(hi, hidden=4, initial_distribution=(0.5, 0.25, 0.25))
