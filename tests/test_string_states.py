"""String States: path families, exact normalisation and log P, exact sampling, MCState and POVM dynamics."""

import itertools

import jax
import jax.flatten_util
import netket as nk
import numpy as np
import pytest
from scipy.stats import chisquare

import nqs  # noqa: F401  (64-bit floats)
from ansatze.lattice import snake_order
from ansatze.string_states import StringStates, StringStatesSampler, string_paths
from ansatze.transformer import ARTransformer

UP = (0.5, 1 / 6, 1 / 6, 1 / 6)  # tetrahedral POVM image of |up>


def _povm_model(n, kind, size, **kw):
    hi = nk.hilbert.Fock(n_max=3, N=n)
    base = ARTransformer(hi, layers=1, features=8, heads=2, phase=False, machine_pow=1, **kw)
    return hi, StringStates(base, string_paths(kind, size))


def _scaled(model, x, seed=0, scale=3.0):
    """Initial parameters scaled up so the distribution is far from uniform, and the model's output on x
    (one compilation for both)."""

    @jax.jit
    def init_and_apply(key, x):
        variables = jax.tree_util.tree_map(lambda a: scale * a, model.init(key, x))
        return variables, model.apply(variables, x)

    variables, out = init_and_apply(jax.random.PRNGKey(seed), x)
    return variables, np.asarray(out)


def _edges(graph):
    return {frozenset(e) for e in graph.edges()}


# -- paths -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 5])
def test_1d_families(n):
    expected = {"chain": 1, "bidirectional": min(2, n), "translations": n,
                "translations_bidirectional": 2 * n if n > 2 else n}
    ring = _edges(nk.graph.Chain(n, pbc=True)) if n > 2 else {frozenset((0, 1))}
    for kind, k in expected.items():
        paths = string_paths(kind, n)
        assert paths.shape == (k, n), kind
        assert len({tuple(p) for p in paths}) == k  # no duplicates
        for p in paths:
            assert sorted(p) == list(range(n))
            assert all(frozenset((int(a), int(b))) in ring for a, b in itertools.pairwise(p)), (kind, p)
    np.testing.assert_array_equal(string_paths("chain", n)[0], np.arange(n))
    if n == 5:
        assert string_paths("translations", 5)[2].tolist() == [2, 3, 4, 0, 1]
        assert string_paths("bidirectional", 5)[1].tolist() == [4, 3, 2, 1, 0]


@pytest.mark.parametrize("shape", [(2, 2), (2, 3), (3, 4), (1, 4)])
def test_2d_snakes_are_hamiltonian_paths(shape):
    Lx, Ly = shape
    n = Lx * Ly
    edges = _edges(nk.graph.Grid(extent=[Lx, Ly], pbc=False))  # site (x, y) = x·Ly + y
    line = 1 in shape
    expected = {"snake": 1, "horizontal_snakes": 2 if line else 4, "vertical_snakes": 2 if line else 4,
                "snakes": 2 if line else 8}
    for kind, k in expected.items():
        paths = string_paths(kind, shape)
        assert paths.shape == (k, n), kind
        assert len({tuple(p) for p in paths}) == k
        for p in paths:
            assert sorted(p) == list(range(n))
            assert all(frozenset((int(a), int(b))) in edges for a, b in itertools.pairwise(p)), (kind, p)
        starts = {int(p[0]) for p in paths}
        assert starts <= {0, Ly - 1, (Lx - 1) * Ly, n - 1}  # every path starts at a corner
    order = snake_order(Lx, Ly)
    np.testing.assert_array_equal(string_paths("snake", shape)[0], order[:, 0] * Ly + order[:, 1])
    if not line:  # horizontal snakes first step along y (±1), vertical ones along x (±Ly)
        assert all(abs(int(p[1]) - int(p[0])) == 1 for p in string_paths("horizontal_snakes", shape))
        assert all(abs(int(p[1]) - int(p[0])) == Ly for p in string_paths("vertical_snakes", shape))
        assert {int(p[0]) for p in string_paths("snakes", shape)} == {0, Ly - 1, (Lx - 1) * Ly, n - 1}


def test_bad_input_raises():
    with pytest.raises(ValueError, match="unknown path family"):
        string_paths("spiral", (2, 2))
    with pytest.raises(ValueError, match="Lx, Ly"):
        string_paths("snakes", 4)
    with pytest.raises(ValueError, match="Lx, Ly"):
        string_paths("snakes", (2, 0))
    with pytest.raises(ValueError, match="Lx, Ly"):
        string_paths("snakes", (2, 2, 2))
    with pytest.raises(ValueError, match="number of sites"):
        string_paths("translations", (2, 2))
    with pytest.raises(ValueError, match="number of sites"):
        string_paths("translations", 0)
    hi = nk.hilbert.Fock(n_max=3, N=4)
    base = ARTransformer(hi, layers=1, features=4, heads=1, phase=False, machine_pow=1)
    with pytest.raises(ValueError, match="shape"):
        StringStates(base, string_paths("snakes", (2, 3)))  # 6 sites for a 4-site model
    with pytest.raises(ValueError, match="shape"):
        StringStates(base, np.arange(4))  # one path must still be (1, N)
    with pytest.raises(ValueError, match="permutation"):
        StringStates(base, [[0, 1, 2, 3], [0, 1, 1, 3]])
    with pytest.raises(ValueError, match="integer"):
        StringStates(base, [[0.0, 1.0, 2.0, 3.0]])
    neel = ((0.7, 0.1, 0.1, 0.1), (0.1, 0.7, 0.1, 0.1)) * 2
    site_dependent = ARTransformer(hi, layers=1, features=4, heads=1, phase=False, machine_pow=1,
                                   initial_distribution=neel)
    with pytest.raises(ValueError, match="initial_distribution"):
        StringStates(site_dependent, string_paths("snakes", (2, 2)))
    mixture = StringStates(base, string_paths("bidirectional", 4))
    with pytest.raises(TypeError, match="StringStatesSampler"):  # what ARDirectSampler would call first
        mixture.init(jax.random.PRNGKey(0), hi.all_states()[:2], 0, method=mixture.conditional)


# -- exact log P -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind,size", [("translations_bidirectional", 4), ("snakes", (2, 2))])
def test_normalised_and_equal_to_the_average_over_paths(kind, size):
    hi, model = _povm_model(4, kind, size)
    x = hi.all_states()
    variables, log_p = _scaled(model, x)
    P = np.exp(log_p)
    assert P.sum() == pytest.approx(1.0, abs=1e-10)
    assert P.max() > 4.0 / len(P)  # far from uniform
    # by hand: the base model on every permuted configuration, averaged in probability space
    base_vars = {"params": variables["params"]["base"]}
    paths = string_paths(kind, size)
    base_apply = jax.jit(model.base.apply)
    per_path = np.stack([np.exp(np.asarray(base_apply(base_vars, x[:, p]))) for p in paths])
    assert per_path.shape == (model.n_paths, 256)
    np.testing.assert_allclose(P, per_path.mean(axis=0), rtol=1e-12, atol=0)
    np.testing.assert_allclose(per_path.sum(axis=1), 1.0, atol=1e-10)
    # the orderings really differ (otherwise the mixture would be trivial)
    assert np.abs(per_path[0] - per_path[1]).max() > 1e-3
    terms = jax.jit(model.apply, static_argnames="method")(variables, x, method=StringStates.log_prob_per_path)
    np.testing.assert_allclose(terms, np.log(per_path).T, rtol=1e-12)


def test_product_start_carries_over():
    hi, model = _povm_model(4, "snakes", (2, 2), initial_distribution=UP)
    x = hi.all_states()
    _, log_p = _scaled(model, x, scale=1.0)
    expected = np.prod(np.asarray(UP)[np.asarray(x, dtype=int)], axis=1)
    np.testing.assert_allclose(np.exp(log_p), expected, rtol=1e-12)
    # a site-dependent start survives the paths that map it onto itself (a palindrome, both directions)
    table = ((0.7, 0.1, 0.1, 0.1), (0.1, 0.7, 0.1, 0.1), (0.1, 0.7, 0.1, 0.1), (0.7, 0.1, 0.1, 0.1))
    hi, model = _povm_model(4, "bidirectional", 4, initial_distribution=table)
    _, log_p = _scaled(model, x, scale=1.0)
    expected = np.prod(np.asarray(table)[np.arange(4), np.asarray(x, dtype=int)], axis=1)
    np.testing.assert_allclose(np.exp(log_p), expected, rtol=1e-12)


# -- exact sampling --------------------------------------------------------------------------------
def test_sampler_matches_the_mixture():
    hi, model = _povm_model(4, "translations_bidirectional", 4)
    x = hi.all_states()
    variables, log_p_all = _scaled(model, x, seed=3)
    sampler = StringStatesSampler(hi)
    assert sampler.is_exact and isinstance(sampler, nk.sampler.ARDirectSampler)
    state = sampler.init_state(model, variables, seed=2)
    (samples, log_p), state = sampler.sample(model, variables, state=state, return_log_probabilities=True,
                                             chain_length=20000 // sampler.n_batches)
    samples, log_p = np.asarray(samples).reshape(-1, 4), np.asarray(log_p).reshape(-1)
    assert samples.shape == (20000, 4)
    P = np.exp(log_p_all)
    index = np.asarray(hi.states_to_numbers(samples))
    np.testing.assert_allclose(log_p, log_p_all[index], rtol=1e-12)  # the returned log-probabilities are log P
    counts = np.bincount(index, minlength=256)
    expected = P * len(samples)
    big = expected >= 5  # pool the rare outcomes so the chi-square approximation holds
    obs = np.append(counts[big], counts[~big].sum())
    exp = np.append(expected[big], expected[~big].sum())
    assert chisquare(obs, exp).pvalue > 1e-3
    tv = 0.5 * np.abs(counts / len(samples) - P).sum()
    assert tv < 0.05
    # the mixture differs from a single ordering by more than the sampling noise
    P0 = np.exp(np.asarray(jax.jit(model.base.apply)({"params": variables["params"]["base"]}, x)))
    assert 0.5 * np.abs(counts / len(samples) - P0).sum() > 2 * tv


def test_mcstate_samples_expect_and_grad():
    """machine_pow = 2 base: ψ = √mixture. MCState samples, expect and expect_and_grad match the full sum
    (NetKet's estimators assume samples from |ψ|², which holds here)."""
    hi = nk.hilbert.Spin(0.5, 4)
    H = nk.operator.Ising(hi, nk.graph.Chain(4), h=1.0, J=-1.0)
    base = ARTransformer(hi, layers=1, features=8, heads=2, phase=False, machine_pow=2)
    model = StringStates(base, string_paths("translations", 4))
    variables, _ = _scaled(model, hi.all_states(), seed=4, scale=2.0)
    full = nk.vqs.FullSumState(hi, model, variables=variables)
    vs = nk.vqs.MCState(StringStatesSampler(hi), model, n_samples=20000, variables=variables, sampler_seed=5)
    assert vs.samples.shape[-1] == 4 and vs.samples.reshape(-1, 4).shape[0] == 20000
    exact_e, exact_g = full.expect_and_grad(H)
    e, g = vs.expect_and_grad(H)
    assert abs(e.mean.real - exact_e.mean.real) < 5 * e.error_of_mean
    g, g0 = jax.flatten_util.ravel_pytree(g)[0], jax.flatten_util.ravel_pytree(exact_g)[0]
    assert np.linalg.norm(g - g0) < 0.15 * np.linalg.norm(g0)


@pytest.mark.slow  # suite time (the default set must stay under 15 min on 2 cores)
# -- POVM dynamics ---------------------------------------------------------------------------------
def test_povm_dynamics_with_string_states():
    """`dynamics.povm` takes String States unchanged: a FullSumState runs the steady-state driver,
    and an MCState with StringStatesSampler (an ARDirectSampler subclass) is accepted by the sampled mode,
    whose ‖L P‖₁ estimate from String-State samples agrees with the exact sum."""
    from dynamics import povm as pd
    from hamiltonians import dissipative_tfi

    system = dissipative_tfi(3, V=2.0, g=1.0, gamma=1.0)
    hi, model = _povm_model(3, "bidirectional", 3, initial_distribution=UP)
    variables = jax.jit(model.init)(jax.random.PRNGKey(0), hi.all_states()[:1])
    steady = pd.find_steady_state(system, nk.vqs.FullSumState(hi, model, variables=variables),
                                  pd.SteadyStateSettings(n_iter=20, eval_after=10, eval_every=10), exact=False)
    assert steady.info["best_loss"] < 0.9 * steady.rows[0]["loss"]
    params = steady.state.parameters
    sampled = nk.vqs.MCState(StringStatesSampler(hi), model, n_samples=4000, variables={"params": params},
                             sampler_seed=1)
    ctx_full = pd.make_context(system, steady.state, None)
    ctx = pd.make_context(system, sampled, None)
    exact, _ = jax.jit(pd.steady_state_loss(ctx_full, 0))(params, jax.random.PRNGKey(0))
    value, per_sample = jax.jit(pd.steady_state_loss(ctx, 4000))(params, jax.random.PRNGKey(1))
    error = float(np.std(per_sample) / np.sqrt(per_sample.shape[0]))
    assert abs(float(value) - float(exact)) < 5 * error
