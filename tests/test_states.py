"""make_state: the sampler each model gets; a model without the system's constraint never leaves the sector."""

import dataclasses

import jax
import netket as nk
import numpy as np
import pytest

from ansatze import ARTransformer
from hamiltonians import heisenberg, tfim
from nqs import TokenMap, U1Constraint, exact
from nqs.states import SectorExchangeRule, make_state


def test_netket_refuses_operators_of_the_unconstrained_space():
    """Why make_state keeps every state on system.hilbert: a state on NetKet's constrained space cannot take the
    expectation value of the System's operators."""
    s = heisenberg(4)
    vs = nk.vqs.MCState(nk.sampler.MetropolisExchange(s.sector_hilbert(), graph=s.graph), nk.models.RBM(alpha=1),
                        n_samples=16, seed=0)
    with pytest.raises(NotImplementedError, match="Non matching hilbert spaces"):
        vs.expect(s.hamiltonian)


def test_rbm_on_a_constrained_chain_samples_the_sector():
    """NetKet's RBM carries no constraint: Metropolis exchanges along the graph's edges from chains started in the
    sector. The energy estimate is that of the projected state P ψ (the Hamiltonian keeps the sector)."""
    s = heisenberg(6)
    vs = make_state(s, nk.models.RBM(alpha=1, param_dtype=complex), n_samples=4096, seed=0)
    assert isinstance(vs.sampler.rule, SectorExchangeRule) and vs.hilbert == s.hilbert
    assert len(vs.sampler.rule.clusters) == s.graph.n_edges
    vs.parameters = jax.tree_util.tree_map(lambda p: 60 * p, vs.parameters)  # far from the uniform state
    samples = np.asarray(vs.samples).reshape(-1, 6)
    assert np.all(samples.sum(axis=-1) == 0)
    states = s.sector_states()
    psi = np.exp(np.asarray(vs.log_value(states)))
    projected = np.vdot(psi, exact.sector_matrix(s.hamiltonian, states) @ psi).real / np.vdot(psi, psi).real
    energy = vs.expect(s.hamiltonian)
    assert abs(float(energy.mean.real) - projected) < 5 * float(energy.error_of_mean) + 1e-3


def test_what_would_leave_the_sector_is_refused():
    s = heisenberg(6)
    rbm = nk.models.RBM(alpha=1)
    with pytest.raises(ValueError, match="a full sum over system.hilbert would leave the sector"):
        make_state(s, rbm, n_samples=0, seed=0)
    with pytest.raises(ValueError, match="enumerated sampling over system.hilbert would leave the sector"):
        make_state(s, rbm, n_samples=16, seed=0, enumerate_samples=True)
    unmasked = ARTransformer(s.hilbert, layers=1, features=8, heads=2)  # autoregressive, built without the constraint
    with pytest.raises(ValueError, match="its exact sampler over system.hilbert would leave the sector"):
        make_state(s, unmasked, n_samples=16, seed=0)
    # a charge that does not add up over the modes of a token (1 for "both up", 0 otherwise): no exchange of two
    # modes is known to keep it
    pairs = dataclasses.replace(s, tokens=TokenMap.of_hilbert(s.hilbert, [[0, 1], [2, 3], [4, 5]]), graph=None,
                                constraint=U1Constraint(3, charges=(1, 0, 0, 0), total=1))
    with pytest.raises(ValueError, match="no Metropolis rule that keeps the sector"):
        make_state(pairs, rbm, n_samples=16, seed=0)


def test_an_additive_charge_over_grouped_modes_is_sampled_inside_its_sector():
    """S^z over tokens of two spins adds up over the modes, so exchanges of equal-charge modes keep it (the same
    rule is the same-spin fermion hop of `tests/test_hubbard.py`); chains start inside the sector."""
    s = heisenberg(6)
    pairs = dataclasses.replace(s, tokens=TokenMap.of_hilbert(s.hilbert, [[0, 1], [2, 3], [4, 5]]), graph=None,
                                constraint=U1Constraint(3, charges=(2, 0, 0, -2), total=0))
    state = make_state(pairs, nk.models.RBM(alpha=1), n_samples=512, seed=0)
    assert "SectorExchangeRule" in repr(state.sampler.rule)
    assert np.all(np.asarray(state.samples).reshape(-1, 6).sum(axis=1) == 0)


def test_the_samplers_of_unconstrained_and_constraint_carrying_models_are_unchanged():
    s = heisenberg(6)
    masked = ARTransformer(s.hilbert, layers=1, features=8, heads=2, constraint=s.constraint)
    assert isinstance(make_state(s, masked, n_samples=16, seed=0).sampler, nk.sampler.ARDirectSampler)
    assert isinstance(make_state(s, masked, n_samples=0, seed=0), nk.vqs.FullSumState)
    free = make_state(tfim(4), nk.models.RBM(alpha=1), n_samples=16, seed=0)
    assert isinstance(free.sampler.rule, nk.sampler.rules.LocalRule)
    with pytest.raises(ValueError, match="the ansatz was built for"):
        make_state(s, ARTransformer(tfim(4).hilbert, layers=1, features=8, heads=2), n_samples=16, seed=0)
