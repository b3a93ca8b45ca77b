"""Symmetrised autoregressive wave functions: exact normalisation and invariance by enumeration, the base
phase kept, exact sampling against |ψ_G|², local energies equal to full summation, bad groups refused."""

import functools

import jax
import netket as nk
import numpy as np
import pytest
from scipy.stats import chisquare

import nqs
from ansatze import AR2DRNN, ARTransformer
from ansatze.sign_rules import sublattice_b
from ansatze.string_states import StringStatesSampler
from ansatze.symmetrized import Symmetrized
from nqs.symmetry import check_group, symmetry_group

CHAIN = nk.graph.Chain(6, pbc=True)
GRID = nk.graph.Grid(extent=[2, 3], pbc=True)


def _case(name):
    if name == "transformer-chain":  # Marshall sign built in, zero magnetisation, space group × flip
        hi = nk.hilbert.Spin(0.5, 6)
        base = ARTransformer(hi, layers=1, features=8, heads=2, constraint=nqs.zero_magnetization(6),
                             sign_sites=sublattice_b(CHAIN))
        return CHAIN, Symmetrized(base, symmetry_group(CHAIN, "space"), spin_flip=True)
    hi = nk.hilbert.Spin(0.5, 6)  # 2D RNN, translations only, no constraint
    return GRID, Symmetrized(AR2DRNN(hi, hidden=4, shape=(2, 3)), symmetry_group(GRID, "translations"))


@functools.cache
def _setup(name):
    graph, model = _case(name)
    x = np.asarray(model.hilbert.all_states())
    variables = jax.tree_util.tree_map(lambda a: 3.0 * a, jax.jit(model.init)(jax.random.PRNGKey(1), x[:1]))
    apply = jax.jit(model.apply)
    return graph, model, variables, apply, x, np.asarray(apply(variables, x))


NAMES = ["transformer-chain", "rnn2d-grid"]


@pytest.mark.parametrize("name", NAMES)
def test_normalised_and_invariant_with_the_base_phase(name):
    _, model, variables, apply, x, log_psi = _setup(name)
    assert np.sum(np.exp(2 * log_psi.real)) == pytest.approx(1.0, abs=1e-12)
    for perm in np.asarray(model.paths):
        np.testing.assert_allclose(np.asarray(apply(variables, x[:, perm])).real, log_psi.real, atol=1e-12)
    if model.spin_flip:
        np.testing.assert_allclose(np.asarray(apply(variables, -x)).real, log_psi.real, atol=1e-12)
    base_log_psi = np.asarray(model.base.apply({"params": variables["params"]["base"]}, x))
    allowed = base_log_psi.real > -100  # configurations outside the base's sector have no phase to keep
    np.testing.assert_allclose(np.exp(1j * log_psi.imag[allowed]), np.exp(1j * base_log_psi.imag[allowed]),
                               atol=1e-10)
    # the symmetrised modulus is the mean of the base's |ψ(g x)|² (never below 1/|G| of the base's)
    assert np.all(2 * log_psi.real >= 2 * base_log_psi.real - np.log(model.n_terms) - 1e-10)


@pytest.mark.parametrize("name", NAMES)
def test_sampler_follows_the_symmetrised_born_distribution(name):
    _, model, variables, _, x, log_psi = _setup(name)
    vs = nk.vqs.MCState(StringStatesSampler(model.hilbert), model, n_samples=8192, seed=3, variables=variables)
    samples = np.asarray(vs.samples).reshape(-1, 6)
    index = model.hilbert.states_to_numbers(samples)
    counts = np.bincount(np.asarray(index), minlength=len(x))
    p = np.exp(2 * log_psi.real)
    keep = p > 1e-12
    assert counts[~keep].sum() == 0  # no sample outside the support (e.g. the magnetisation sector)
    expected = p[keep] * counts.sum() / p[keep].sum()
    assert chisquare(counts[keep], expected).pvalue > 1e-3


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if "transformer" in n else n
                                  for n in NAMES])  # slow: suite time
def test_energy_from_samples_matches_full_summation(name):
    graph, model, variables, _, _, _ = _setup(name)
    H = nk.operator.Heisenberg(model.hilbert, graph, sign_rule=False)
    exact = nk.vqs.FullSumState(model.hilbert, model, variables=variables).expect(H)
    vs = nk.vqs.MCState(StringStatesSampler(model.hilbert), model, n_samples=4096, seed=5, variables=variables)
    sampled = vs.expect(H)
    assert abs(sampled.mean.real - exact.mean.real) < 5 * sampled.error_of_mean + 1e-10
    assert abs(sampled.mean.imag) < 5 * sampled.error_of_mean + 1e-10


def test_bad_groups_are_refused():
    with pytest.raises(ValueError, match="identity"):
        check_group([[1, 0, 2], [2, 1, 0]], 3)
    with pytest.raises(ValueError, match="closed"):
        check_group([[0, 1, 2, 3], [1, 2, 3, 0]], 4)  # a shift by one without its powers
    with pytest.raises(ValueError, match="shape"):
        check_group(np.arange(6)[None], 4)
    with pytest.raises(ValueError, match="twice"):
        check_group([[0, 1], [0, 1]], 2)
    with pytest.raises(ValueError, match="group must be one of"):
        symmetry_group(CHAIN, "rotations")
    fock = nk.hilbert.Fock(n_max=3, N=4)
    base = ARTransformer(fock, layers=1, features=8, heads=2)
    with pytest.raises(ValueError, match="spin-1/2"):
        Symmetrized(base, [list(range(4))], spin_flip=True)
    povm = ARTransformer(fock, layers=1, features=8, heads=2, machine_pow=1)
    with pytest.raises(ValueError, match="machine_pow"):
        Symmetrized(povm, [list(range(4))])


def test_vmc_uses_the_exact_mixture_sampler():
    from hamiltonians import heisenberg
    from nqs.states import make_state

    system = heisenberg(6, marshall=True)
    base = ARTransformer(system.hilbert, layers=1, features=8, heads=2, constraint=system.constraint, phase=False)
    model = Symmetrized(base, symmetry_group(system.graph, "translations"), spin_flip=True)
    vs = make_state(system, model, n_samples=64, seed=0)
    assert isinstance(vs.sampler, StringStatesSampler) and vs.n_discard_per_chain == 0
    assert np.all(np.asarray(vs.samples).reshape(-1, 6).sum(-1) == 0)
