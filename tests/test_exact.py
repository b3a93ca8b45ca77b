"""Exact references: published energies, sector vs full space, free fermions, caching, checks, sector dimensions
counted exactly, sector matrices in any order."""

import math

import netket as nk
import numpy as np
import pytest

import nqs
from hamiltonians import heisenberg, tfim
from nqs import exact


@pytest.mark.parametrize("pbc,per_site", [(True, -0.4515446354), (False, -0.4258035207)])
def test_heisenberg_chain_l10_published_energy(pbc, per_site):
    g = exact.ground_state(heisenberg(10, pbc=pbc, units="spin"))
    assert g.energy / 10 == pytest.approx(per_site, abs=1e-9)
    assert g.sector_dim == 252
    assert np.linalg.norm(g.state) == pytest.approx(1.0)


def test_sector_equals_full_space():
    in_sector = exact.ground_state(heisenberg(8)).energy
    full = exact.ground_state(heisenberg(8, zero_magnetization=False)).energy
    assert in_sector == pytest.approx(full, abs=1e-10)


@pytest.mark.parametrize("h", [0.5, 1.0])
def test_tfim_free_fermion_energy(h):
    """PBC chain, even-parity sector: E0 = -Σ_k sqrt(1 + h² + 2h cos k), k = (2n+1)π/L (Pauli units, J=1)."""
    L = 8
    k = (2 * np.arange(L) + 1) * np.pi / L
    e0 = -np.sum(np.sqrt(1 + h**2 + 2 * h * np.cos(k)))
    assert exact.ground_state(tfim(L, h=h)).energy == pytest.approx(e0, abs=1e-10)


@pytest.mark.slow  # suite time (the default set must stay under 15 min on 2 cores)
def test_cache_returns_same_object_and_observables_match_dense():
    s = tfim(6, h=0.7)
    g = exact.ground_state(s)
    assert exact.ground_state(tfim(6, h=0.7)) is g
    psi = g.state
    for name, op in s.observables.items():
        dense = np.vdot(psi, op.to_dense() @ psi).real
        assert g.observables[name] == pytest.approx(dense, abs=1e-10)


def test_check_operators_detects_a_mismatch():
    s = tfim(4)
    assert exact.check_operators(s) < 1e-12
    broken = type(s)(**{**s.__dict__, "hamiltonian": tfim(4, h=1.1).hamiltonian})
    with pytest.raises(AssertionError, match="hamiltonian"):
        exact.check_operators(broken)




def test_sector_dimension_is_counted_exactly_at_any_size():
    """Counted by the constraint, never estimated: C(N, N/2) beyond 2^21 (the old upper-bound regime) and beyond
    NetKet's int64 `n_states`, and ground_state refuses sectors above its limit before enumerating them."""
    for n in (24, 100):
        hilbert = nk.hilbert.Spin(0.5, n)
        system = nqs.System(builder="test.spins", hilbert=hilbert, hamiltonian=nk.operator.spin.sigmaz(hilbert, 0),
                            constraint=nqs.zero_magnetization(n))
        assert exact.sector_dimension(system) == math.comb(n, n // 2)
    with pytest.raises(ValueError, match="too large for exact diagonalisation"):
        exact.ground_state(system)
    assert exact.sector_dimension(heisenberg(10)) == len(heisenberg(10).sector_states()) == 252


def test_sector_matrix_follows_the_order_of_the_given_states():
    s = heisenberg(6, J2=0.3)
    states = s.sector_states()
    order = np.random.default_rng(0).permutation(len(states))
    full = exact.sector_matrix(s.hamiltonian, states).toarray()
    np.testing.assert_array_equal(exact.sector_matrix(s.hamiltonian, states[order]).toarray(), full[np.ix_(order,
                                                                                                           order)])
    with pytest.raises(ValueError, match="leaves the constrained sector"):
        exact.sector_matrix(s.observables["nn_correlation_xx"], states)
