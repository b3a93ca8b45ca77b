"""Exact references: published energies, sector vs full space, free fermions, caching, checks."""

import numpy as np
import pytest

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


@pytest.mark.parametrize("pbc", [True, False])
@pytest.mark.parametrize("L", [4, 8, 12])
def test_bethe_ansatz_equals_exact_diagonalisation(L, pbc):
    ed = exact.ground_state(heisenberg(L, pbc=pbc, units="spin")).energy
    assert exact.bethe_ansatz_energy(L, pbc=pbc) == pytest.approx(ed, abs=1e-10)
    assert exact.bethe_ansatz_energy(L, pbc=pbc, units="pauli") == pytest.approx(4 * ed, abs=1e-9)


def test_bethe_ansatz_published_values_and_bad_length():
    assert exact.bethe_ansatz_energy(20) / 20 == pytest.approx(-0.4452193265, abs=1e-10)
    assert exact.bethe_ansatz_energy(20, pbc=False) / 20 == pytest.approx(-0.4341236667, abs=1e-10)
    e100 = exact.bethe_ansatz_energy(100) / 100
    assert -0.4433 < e100 < 1 / 4 - np.log(2)  # even periodic chains lie below the Hulthén limit, close to it
    with pytest.raises(ValueError, match="even chain length"):
        exact.bethe_ansatz_energy(7)
