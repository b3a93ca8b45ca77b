"""The autoregressive base: gauge-block tokens of modes with different sizes (normalisation on the Gauss-law sector,
exact token sampling inside MCState), the token sampler on a homogeneous model, grouped tokens for the RNN, and the
prefix-cache / suffix-evaluation hook equal to a full evaluation for every start position."""

import dataclasses
import functools
import itertools

import jax
import jax.numpy as jnp
import netket as nk
import numpy as np
import pytest
from scipy.stats import chisquare

import nqs
from ansatze import AR2DRNN, ARRNN, ARTransformer, TokenSampler
from nqs.constraint import Constraint
from nqs.tokens import TokenMap

BLOCKS = 4  # gauge blocks (matter n_j ∈ {0, 1}, link E_j ∈ {−1, 0, 1}): 8 modes


@dataclasses.dataclass(frozen=True)
class GaussLaw(Constraint):
    """1D Gauss law on blocks (n_j, E_j), token value v = 3 n_j + (E_j + 1): E_j − E_{j−1} = (−1)^j n_j with
    E_{−1} = 0, |E_j| ≤ 1 and, if `right` is given, E_{M−1} = right. Carry: E_{j−1}. Look-ahead: E_j must still
    reach `right` (a table computed backwards), so no reachable prefix has an empty mask."""

    n_sites: int
    right: int | None = None
    _reach: np.ndarray = dataclasses.field(init=False, repr=False, compare=False, hash=False)

    local_size = 6

    def __post_init__(self):
        reach = np.zeros((self.n_sites, 3), bool)  # reach[j, E + 1]: E_j = E can be completed
        reach[-1] = True if self.right is None else np.arange(-1, 2) == self.right
        for j in range(self.n_sites - 2, -1, -1):
            s = (-1) ** (j + 1)
            reach[j] = [any(abs(E + s * n) <= 1 and reach[j + 1, E + s * n + 1] for n in (0, 1)) for E in (-1, 0, 1)]
        object.__setattr__(self, "_reach", reach)

    def init_carry(self, batch):
        return jnp.zeros((batch,), jnp.int32)

    def mask(self, carry, i):
        v = jnp.arange(6)
        n, E = v // 3, v % 3 - 1
        sign = 1 - 2 * (jnp.asarray(i) % 2)
        ok = (E[None, :] - carry[:, None] == sign * n[None, :]) & jnp.asarray(self._reach)[i][E + 1][None, :]
        return ok

    def update(self, carry, s, i):
        return jnp.asarray(s, jnp.int32) % 3 - 1

    def describe(self):
        return {"type": "GaussLaw", "n_sites": self.n_sites, "right": self.right}


def _gauge_hilbert():
    return functools.reduce(lambda a, b: a * b, [nk.hilbert.Fock(n_max=1) * nk.hilbert.Spin(1)] * BLOCKS)


def _gauge_model(kind, right=None):
    hi = _gauge_hilbert()
    fields = {"tokens": TokenMap.of_hilbert(hi, [(2 * j, 2 * j + 1) for j in range(BLOCKS)]),
              "constraint": GaussLaw(BLOCKS, right)}
    if kind == "transformer":
        return hi, ARTransformer(hi, layers=1, features=8, heads=2, **fields)
    return hi, ARRNN(hi, hidden=8, cell="gru", **fields)


def _sector(hi, model):
    """All configurations by brute force over the modes' local indices (itertools.product), their Hilbert values, and
    whether each satisfies the constraint (`is_satisfied` on the token values)."""
    idx = np.asarray(list(itertools.product(*[range(int(d)) for d in hi.shape])))
    x = np.stack([np.asarray(hi.states_at_index(m))[idx[:, m]] for m in range(hi.size)], axis=1)
    ok = np.asarray(model.constraint.is_satisfied(model.tokens.encode(idx)))
    return x, ok


@functools.cache
def _gauge_setup(kind, right):
    hi, model = _gauge_model(kind, right)
    x, in_sector = _sector(hi, model)
    variables = jax.tree_util.tree_map(lambda a: 3.0 * a + 0.1, jax.jit(model.init)(jax.random.PRNGKey(0), x[:1]))
    log_psi = np.asarray(jax.jit(model.apply)(variables, x))
    return hi, model, x, in_sector, variables, log_psi


@pytest.mark.parametrize("kind", ["transformer", "rnn"])
@pytest.mark.parametrize("right", [None, 0])
def test_gauge_blocks_are_normalised_on_the_gauss_law_sector(kind, right):
    hi, model, x, in_sector, variables, log_psi = _gauge_setup(kind, right)
    assert not isinstance(hi, nk.hilbert.HomogeneousHilbert) and model.layout().n_values == 6
    prob = np.exp(2 * log_psi.real)
    assert in_sector.sum() == (13 if right is None else 6)
    assert prob[in_sector].sum() == pytest.approx(1.0, abs=1e-12)
    assert prob[~in_sector].max() < 1e-30
    assert prob[in_sector].max() > 2.0 / in_sector.sum()  # not uniform
    assert isinstance(model.exact_sampler(), TokenSampler)
    with pytest.raises(TypeError, match="token_sampler"):
        model.apply(variables, x[:2], method=model.conditionals_log_psi)


def _pair_creation(hi):
    """Σ_j (ψ†_j U_j ψ†_{j+1} + h.c.) + Σ_j E_j²: the Gauss-law-preserving move (n_j, n_{j+1}) = (0, 0) → (1, 1)
    with E_j → E_j + (−1)^j, on the modes (n_j, E_j, n_{j+1}), plus a diagonal electric energy."""
    ops = []
    for j in range(BLOCKS - 1):
        m = np.zeros((12, 12))
        s = (-1) ** j
        for link in range(3):
            if 0 <= link + s < 3:
                a, b = 0 * 6 + link * 2 + 0, 1 * 6 + (link + s) * 2 + 1
                m[a, b] = m[b, a] = 1.0
        ops.append(nk.operator.LocalOperator(hi, [m], [[2 * j, 2 * j + 1, 2 * j + 2]]))
    electric = np.diag([1.0, 0.0, 1.0])
    ops += [nk.operator.LocalOperator(hi, [electric], [[2 * j + 1]]) for j in range(BLOCKS)]
    return sum(ops[1:], ops[0])


@pytest.mark.parametrize("kind", ["transformer", "rnn"])
def test_token_sampler_samples_gauge_blocks_exactly_inside_mcstate(kind):
    hi, model, x, in_sector, variables, log_psi = _gauge_setup(kind, None)
    vs = nk.vqs.MCState(model.exact_sampler(), model, n_samples=16384, variables=variables, sampler_seed=3)
    samples = np.asarray(vs.samples).reshape(-1, hi.size)
    index = {tuple(row): i for i, row in enumerate(x)}
    which = np.asarray([index[tuple(row)] for row in samples])
    assert in_sector[which].all(), "a sample violates the Gauss law"
    counts = np.bincount(which, minlength=len(x))[in_sector]
    prob = np.exp(2 * log_psi.real)[in_sector]
    assert chisquare(counts, prob * len(samples)).pvalue > 1e-3
    assert 0.5 * np.abs(counts / len(samples) - prob).sum() < 0.03
    wrong = np.roll(prob, 1)  # the test has the power to see a wrong distribution
    assert chisquare(counts, wrong * len(samples)).pvalue < 1e-6
    # expect and expect_and_grad on connected configurations inside and outside the sector
    H = _pair_creation(hi)
    exact = nk.vqs.FullSumState(hi, model, variables=variables).expect(H).mean.real
    energy, grad = vs.expect_and_grad(H)
    assert abs(energy.mean.real - exact) < 5 * energy.error_of_mean + 1e-12
    assert all(np.all(np.isfinite(g)) for g in jax.tree_util.tree_leaves(grad))


@functools.cache
def _patched_rnn():
    hi = nk.hilbert.Spin(0.5, 6)
    model = ARRNN(hi, hidden=6, order="snake", shape=(2, 3), patch=(2, 1), constraint=nqs.zero_magnetization(6))
    x = np.asarray(hi.all_states())
    variables = jax.tree_util.tree_map(lambda a: 3.0 * a, jax.jit(model.init)(jax.random.PRNGKey(2), x[:1]))
    return hi, model, x, variables, np.asarray(jax.jit(model.apply)(variables, x))


def test_grouped_tokens_for_the_rnn_are_normalised_with_exact_site_marginals():
    hi, model, x, variables, log_psi = _patched_rnn()
    prob = np.exp(2 * log_psi.real)
    in_sector = x.sum(axis=1) == 0
    assert prob[in_sector].sum() == pytest.approx(1.0, abs=1e-12) and prob[~in_sector].max() < 1e-30
    log_cond = np.asarray(model.apply(variables, x, method=model.conditionals_log_psi))
    idx = np.asarray(hi.states_to_local_indices(x))
    selected = np.take_along_axis(log_cond, idx[..., None], axis=-1)[..., 0].sum(-1)
    np.testing.assert_allclose(np.exp(1j * selected.imag + selected.real)[in_sector],
                               np.exp(log_psi)[in_sector], atol=1e-12)
    assert isinstance(model.exact_sampler(), nk.sampler.ARDirectSampler)
    assert not isinstance(model.exact_sampler(), TokenSampler)


def test_token_sampler_on_a_homogeneous_model_draws_the_born_distribution():
    hi, model, _, variables, log_psi = _patched_rnn()
    sampler = TokenSampler(hi)
    assert sampler.is_exact
    state = sampler.init_state(model, variables, seed=4)
    (samples, log_p), _ = sampler.sample(model, variables, state=state, chain_length=20000 // sampler.n_batches,
                                         return_log_probabilities=True)
    samples, log_p = np.asarray(samples).reshape(-1, hi.size), np.asarray(log_p).reshape(-1)
    number = np.asarray(hi.states_to_numbers(samples))
    np.testing.assert_allclose(log_p, 2 * log_psi.real[number], atol=1e-10)
    prob = np.exp(2 * log_psi.real)
    counts = np.bincount(number, minlength=hi.n_states)
    support = prob > 1e-12
    assert counts[~support].sum() == 0
    assert chisquare(counts[support], prob[support] / prob[support].sum() * len(samples)).pvalue > 1e-3
    assert 0.5 * np.abs(counts / len(samples) - prob).sum() < 0.05


POVM = nk.hilbert.Fock(n_max=3, N=4)
POVM_MODELS = {
    "transformer": lambda **kw: ARTransformer(POVM, layers=1, features=8, heads=2, **kw),
    "gru-chain": lambda **kw: ARRNN(POVM, hidden=4, **kw),
    "2d": lambda **kw: AR2DRNN(POVM, hidden=4, shape=(2, 2), **kw),
}


@pytest.mark.parametrize("kind", sorted(POVM_MODELS))
def test_probability_model_over_povm_outcomes_with_product_initialisation(kind):
    """machine_pow=1 turns the model into a normalised P(a) over 4 outcomes per site (POVM use)."""
    p1 = (0.5, 1 / 6, 1 / 6, 1 / 6)  # tetrahedral POVM image of |up>
    model = POVM_MODELS[kind](phase=False, machine_pow=1, initial_distribution=p1)
    a = POVM.all_states()
    params = model.init(jax.random.PRNGKey(0), a)
    log_p = np.asarray(model.apply(params, a))
    expected = np.prod(np.asarray(p1)[np.asarray(a, dtype=int)], axis=1)
    np.testing.assert_allclose(np.exp(log_p), expected, atol=1e-14)
    trained_like = jax.tree_util.tree_map(lambda v: v + 0.3, params)
    assert np.exp(np.asarray(model.apply(trained_like, a))).sum() == pytest.approx(1.0, abs=1e-10)
    with pytest.raises(ValueError, match="initial_distribution"):
        POVM_MODELS[kind](initial_distribution=(0.5, 0.5))


# -- prefix cache and suffix evaluation ----------------------------------------------------------------------------
SPIN = nk.hilbert.Spin(0.5, 6)
SUFFIX_MODELS = {
    "transformer-chain": lambda **kw: ARTransformer(SPIN, layers=2, features=8, heads=2, **kw),
    "transformer-raster": lambda **kw: ARTransformer(SPIN, layers=1, features=8, heads=2, order="raster",
                                                     shape=(2, 3), **kw),
    "transformer-snake": lambda **kw: ARTransformer(SPIN, layers=1, features=8, heads=2, order="snake", shape=(2, 3),
                                                    positional="sinusoidal2d", **kw),
    "transformer-patch": lambda **kw: ARTransformer(SPIN, layers=1, features=8, heads=2, order="snake", shape=(2, 3),
                                                    patch=(2, 1), **kw),
    "gru-chain": lambda **kw: ARRNN(SPIN, hidden=6, cell="gru", **kw),
    "lstm-snake": lambda **kw: ARRNN(SPIN, hidden=6, cell="lstm", layers=2, order="snake", shape=(2, 3), **kw),
    "2d": lambda **kw: AR2DRNN(SPIN, hidden=6, shape=(2, 3), **kw),
}


def _partners(tokens: np.ndarray, start: int, rng) -> np.ndarray:
    """For every configuration, a random configuration (index) with the same tokens before `start`."""
    keys = [tuple(t[:start]) for t in tokens]
    groups: dict = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    return np.asarray([rng.choice(groups[key]) for key in keys])


def _check_suffix(model, x, variables) -> np.ndarray:
    """Asserts suffix_log_psi(x′, prefix_cache(x), start) = log ψ(x′) for every start, x′ a random configuration
    with the tokens of x before `start`; returns log ψ(x)."""
    T = model.layout().n_tokens
    tokens = np.asarray(model.token_values(jnp.asarray(x)))
    rng = np.random.default_rng(0)
    partners = [_partners(tokens, start, rng) for start in range(T + 1)]

    @jax.jit
    def run(variables, x, partners):
        cache = model.apply(variables, x, method=model.prefix_cache)
        full = model.apply(variables, x[partners])  # (T + 1, B) in one pass
        suffix = [model.apply(variables, x[p], cache, start, method=model.suffix_log_psi)
                  for start, p in enumerate(partners)]
        return full, jnp.stack(suffix)

    full, suffix = run(variables, jnp.asarray(x), jnp.asarray(np.stack(partners)))
    assert (tokens[partners[0]] != tokens).any(axis=1).mean() > 0.5  # the partners really differ
    for start in range(T + 1):
        np.testing.assert_allclose(np.asarray(suffix[start]), np.asarray(full[start]), rtol=0, atol=1e-12,
                                   err_msg=f"start={start}")
    return np.asarray(full[T])  # partners at start = T are the configurations themselves


SUFFIX_CASES = [(kind, True) for kind in sorted(SUFFIX_MODELS)] + [("transformer-chain", False), ("gru-chain", False)]


@pytest.mark.parametrize(("kind", "constrained"), SUFFIX_CASES)  # every model with the constraint carry in the cache
def test_suffix_evaluation_from_the_prefix_cache_equals_the_full_evaluation(kind, constrained):
    constraint = nqs.zero_magnetization(6) if constrained else None
    model = SUFFIX_MODELS[kind](constraint=constraint)
    x = np.asarray(SPIN.all_states())
    if constrained:
        x = x[x.sum(axis=1) == 0]  # x′ in the sector
    variables = jax.tree_util.tree_map(lambda a: 3.0 * a + 0.1, jax.jit(model.init)(jax.random.PRNGKey(5), x[:1]))
    log_psi = _check_suffix(model, x, variables)
    assert np.abs(log_psi.imag).max() > 0.1  # the phase head is active


@pytest.mark.parametrize("kind", ["transformer", "rnn"])
def test_suffix_evaluation_on_gauge_blocks(kind):
    _, model, x, in_sector, variables, _ = _gauge_setup(kind, 0)
    _check_suffix(model, x[in_sector], variables)


def test_describe_and_bad_tokens():
    hi, model = _gauge_model("rnn")
    d = model.describe()
    assert d["name"] == "ARRNN" and d["tokens"]["modes"][1] == [2, 3] and d["constraint"]["type"] == "GaussLaw"
    with pytest.raises(ValueError, match="Hilbert space has"):
        ARRNN(hi, hidden=4, tokens=TokenMap.sites((2, 2)))
    with pytest.raises(ValueError, match="constraint is for 3 sites"):
        ARRNN(hi, hidden=4, tokens=model.tokens, constraint=GaussLaw(3))
    with pytest.raises(ValueError, match="permutation"):
        ARTransformer(SPIN, order=(0, 1, 2, 3, 4, 4))
    with pytest.raises(ValueError, match="order must be one of"):  # the 2D RNN reads its vertical neighbour
        AR2DRNN(SPIN, hidden=4, shape=(2, 3), order=(0, 1, 2, 5, 4, 3))
    custom = ARTransformer(SPIN, layers=1, features=8, heads=2, order=(5, 0, 4, 1, 3, 2))
    np.testing.assert_array_equal(custom.reorder(jnp.arange(6)), [5, 0, 4, 1, 3, 2])
    assert custom.describe()["order"] == [5, 0, 4, 1, 3, 2]
