"""System: tokens, validation, the sector enumerated by the constraint, and NetKet's constrained space of it.

`sector_states()` is built from the constraint's enumeration; here it is compared with the whole space filtered by
`is_satisfied`, and `sector_hilbert()` (NetKet's own `total_sz` / `n_particles` spaces, or our constraint wrapped for
NetKet) with both, for spins, bosons and spin orbitals grouped into tokens.
"""

import dataclasses

import netket as nk
import numpy as np
import pytest

from hamiltonians import heisenberg, tfim
from nqs import System, TokenMap, U1Constraint, exact
from nqs.sectors import SectorConstraint


def _filtered(system):
    """The sector by brute force: every state of the whole space whose token values satisfy the constraint."""
    states = np.asarray(system.hilbert.all_states())
    values = system.token_map.encode(np.asarray(system.hilbert.states_to_local_indices(states)))
    return states[np.asarray(system.constraint.is_satisfied(values))]


def _rows(states):
    return sorted(map(tuple, np.asarray(states).tolist()))


def _diagonal_system(hilbert, constraint=None, tokens=None, graph=None):
    """A System whose Hamiltonian is Σ_i n_i (any discrete space; the physics is irrelevant here)."""
    h = sum(nk.operator.LocalOperator(hilbert, np.diag(np.arange(d, dtype=float)), [i])
            for i, d in enumerate(hilbert.shape))
    return System(builder="test", hilbert=hilbert, hamiltonian=h, constraint=constraint, tokens=tokens, graph=graph)


def test_one_token_per_site_by_default():
    s = heisenberg(6)
    assert s.tokens is None and s.token_map.is_identity and s.n_tokens == s.n_sites == 6
    assert "tokens" not in s.describe() and s.describe()["local_size"] == 2
    states = s.sector_states()
    expected = _filtered(s)
    np.testing.assert_array_equal(states, expected)  # NetKet's basis order
    assert states.dtype == expected.dtype
    t = tfim(4)
    assert t.sector_hilbert() is t.hilbert
    np.testing.assert_array_equal(t.sector_states(), t.hilbert.all_states())


def test_validation_errors():
    s = heisenberg(4)
    with pytest.raises(ValueError, match="graph has 8 nodes, the system has 4 tokens"):
        dataclasses.replace(s, graph=nk.graph.Chain(8))
    with pytest.raises(ValueError, match="constraint is for 6 sites, the system has 4 tokens"):
        dataclasses.replace(s, constraint=U1Constraint(6))
    with pytest.raises(ValueError, match="constraint has 3 local values, the largest token has 2"):
        dataclasses.replace(s, constraint=U1Constraint(4, charges=(2, 0, -2)))
    with pytest.raises(ValueError, match="acts on"):
        dataclasses.replace(s, hamiltonian=heisenberg(6).hamiltonian)
    with pytest.raises(ValueError, match="acts on"):
        dataclasses.replace(s, observables={"z": tfim(6).observables["magnetization_z"]})
    with pytest.raises(ValueError, match="token map is for modes of sizes"):
        dataclasses.replace(s, tokens=TokenMap(((0, 1), (2, 3)), (3, 3, 3, 3)))
    # tokens are the graph's nodes and the constraint's sites: pairs of spins
    pairs = TokenMap.of_hilbert(s.hilbert, [[0, 1], [2, 3]])
    with pytest.raises(ValueError, match="constraint is for 4 sites, the system has 2 tokens"):
        dataclasses.replace(s, tokens=pairs)
    with pytest.raises(ValueError, match="must be unconstrained"):
        _diagonal_system(nk.hilbert.Spin(0.5, 4, total_sz=0))


@pytest.mark.parametrize("hilbert,charges,total", [
    (nk.hilbert.Spin(0.5, 6), (1, -1), 0),       # NetKet's Spin(total_sz=0): values 1 = up (index 0), −1 = down
    (nk.hilbert.Spin(0.5, 5), (1, -1), 3),
    (nk.hilbert.Spin(1, 4), (2, 0, -2), -2),     # spin-1 values 2m in NetKet: total_sz = −1
    (nk.hilbert.Fock(n_max=2, N=4), (0, 1, 2), 3),  # Fock(n_particles=3)
    (nk.hilbert.Spin(0.5, 6), (1, 0), 2),        # two up spins, charges are not the values: the wrapped constraint
    (nk.hilbert.Fock(n_max=2, N=4), (0, 1, 0), 2),  # singly occupied modes: wrapped
])
def test_sector_hilbert_agrees_with_the_enumeration(hilbert, charges, total):
    s = _diagonal_system(hilbert, U1Constraint(hilbert.size, charges=charges, total=total))
    sector = s.sector_hilbert()
    states = s.sector_states()
    np.testing.assert_array_equal(states, _filtered(s))
    assert sector.constrained and sector.size == hilbert.size
    assert sector.n_states == len(states) == exact.sector_dimension(s)
    assert _rows(sector.all_states()) == _rows(states)
    native = tuple(float(v) for v in np.asarray(hilbert.local_states)) == charges
    assert isinstance(sector.constraint, SectorConstraint) != native


@pytest.mark.slow  # suite time; tests/test_hubbard.py covers orbital tokens
def test_spin_orbitals_as_tokens():
    """SpinOrbitalFermions (down block first): orbital i is the token of modes (i, L + i), value 2 n_down + n_up;
    the total particle number is a U(1) over token values, NetKet's own `n_fermions` space the reference."""
    L, n = 4, 3
    hilbert = nk.hilbert.SpinOrbitalFermions(L, s=0.5)
    tokens = TokenMap.of_hilbert(hilbert, [[i, L + i] for i in range(L)])
    s = _diagonal_system(hilbert, U1Constraint(L, charges=(0, 1, 1, 2), total=n), tokens, graph=nk.graph.Chain(L))
    assert s.n_tokens == L and s.n_sites == 2 * L and s.describe()["tokens"] == tokens.describe()
    states = s.sector_states()
    np.testing.assert_array_equal(states, _filtered(s))  # basis order although the tokens regroup the modes
    reference = nk.hilbert.SpinOrbitalFermions(L, s=0.5, n_fermions=n)
    assert len(states) == reference.n_states == exact.sector_dimension(s) == 56
    assert _rows(s.sector_hilbert().all_states()) == _rows(reference.all_states()) == _rows(states)


def test_netket_constraint_is_hashable_and_compares_by_value():
    c = U1Constraint(4, charges=(1, 0), total=2)
    tokens = TokenMap.sites((2,) * 4)
    a, b = SectorConstraint(c, tokens, (1, -1)), SectorConstraint(U1Constraint(4, (1, 0), 2), tokens, (1.0, -1.0))
    assert a == b and hash(a) == hash(b) and a != SectorConstraint(U1Constraint(4, (1, 0), 1), tokens, (1, -1))
    np.testing.assert_array_equal(a(np.array([[1, 1, -1, -1], [1, -1, -1, -1]])), [True, False])
