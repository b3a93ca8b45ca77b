"""Lindbladian builders against QuTiP operators written from the formulas; exact open-system references."""

from collections import Counter

import numpy as np
import pytest
import qutip
from test_hamiltonians import chain_bonds, op, square_bonds

from hamiltonians import dissipative_tfi, dissipative_xyz, heisenberg, with_jumps
from nqs import exact

X, Y, Z, SM = qutip.sigmax(), qutip.sigmay(), qutip.sigmaz(), qutip.sigmam()


def assert_same_lindbladian(system, H, c_ops):
    q = system.to_qutip()
    assert (q["H"] - H).norm() < 1e-12
    assert len(q["c_ops"]) == len(c_ops)
    for a, b in zip(q["c_ops"], c_ops):
        assert (a - b).norm() < 1e-12
    assert exact.check_operators(system) < 1e-12  # NetKet H, observables and jump operators agree too


@pytest.mark.parametrize("pbc", [pytest.param(True, marks=pytest.mark.slow), False])  # slow: suite time
def test_dissipative_tfi_chain_and_square(pbc):
    V, g, gamma = 2.0, 1.3, 0.7
    for lattice, L, n, bonds in [("chain", 4, 4, chain_bonds(4, pbc)), ("square", 3, 9, square_bonds(3, pbc))]:
        H = sum(V / 4 * op(n, {i: Z, j: Z}) for i, j in bonds) + sum(g / 2 * op(n, {i: X}) for i in range(n))
        c_ops = [np.sqrt(gamma) * op(n, {i: SM}) for i in range(n)]
        assert_same_lindbladian(dissipative_tfi(L, lattice=lattice, V=V, g=g, gamma=gamma, pbc=pbc), H, c_ops)


@pytest.mark.parametrize("pbc", [True, False])
def test_dissipative_xyz(pbc):
    n, bonds = 4, chain_bonds(4, pbc)
    H = sum(0.9 * op(n, {i: X, j: X}) + 1.6 * op(n, {i: Y, j: Y}) + op(n, {i: Z, j: Z}) for i, j in bonds)
    assert_same_lindbladian(dissipative_xyz(4, pbc=pbc), H, [op(n, {i: SM}) for i in range(n)])


def periodic_bonds(Lx, Ly):
    """Nearest-neighbour bonds of the periodic Lx×Ly lattice (site x*Ly + y; Ly = 1: the chain), each once: a periodic
    direction of length 2 joins its two sites by one bond (the wrap-around bond is the same pair), not two."""
    site = lambda x, y: (x % Lx) * Ly + (y % Ly)
    steps = [(1, 0)] * (Lx > 1) + [(0, 1)] * (Ly > 1)
    return sorted({tuple(sorted((site(x, y), site(x + dx, y + dy))))
                   for x in range(Lx) for y in range(Ly) for dx, dy in steps})


@pytest.mark.parametrize("lattice,L,n_bonds", [
    ("chain", 2, 1), ("chain", 3, 3), ("square", 2, 4), ("square", (2, 3), 9)])
def test_each_bond_once_on_small_lattices(lattice, L, n_bonds):
    """Periodic lattices with a side of 2 or 3, where a wrap-around bond coincides with (2) or closes on (3) a bulk
    one: the graph lists every bond exactly once, and H (QuTiP and NetKet forms) carries each bond's coupling once. A
    doubled bond adds (V/4) Z_i Z_j, whose matrix elements are ±V/4 = ±0.5: eleven orders of magnitude above the
    1e-12 round-off allowed in the comparison."""
    Lx, Ly = (L, 1) if lattice == "chain" else (L, L) if isinstance(L, int) else L
    bonds = periodic_bonds(Lx, Ly)
    assert len(bonds) == n_bonds  # counted by hand: 1, 3, 4 and 2·3 + 3·1 (the 2×3 torus)
    n, V, g = Lx * Ly, 2.0, 1.3
    tfi = dissipative_tfi(L, lattice=lattice, V=V, g=g, pbc=True)
    for system in (tfi, dissipative_xyz(L, lattice=lattice, pbc=True)):
        assert Counter(tuple(sorted(e)) for e in system.graph.edges()) == Counter(bonds)  # each bond, once
    H = sum(V / 4 * op(n, {i: Z, j: Z}) for i, j in bonds) + sum(g / 2 * op(n, {i: X}) for i in range(n))
    assert (tfi.to_qutip()["H"] - H).norm() < 1e-12
    # the NetKet operator, embedded term by term with QuTiP (exact.check_operators' to_sparse compiles for seconds)
    local = tfi.hamiltonian
    H_netket = sum(qutip.expand_operator(qutip.Qobj(m.toarray(), dims=[[2] * len(s), [2] * len(s)]), dims=[2] * n,
                                         targets=[int(i) for i in s]) for m, s in zip(local.operators, local.acting_on))
    assert (H_netket + local.constant - H).norm() < 1e-12


def test_with_jumps_on_any_system_and_bad_rates():
    s = with_jumps(heisenberg(4), dephasing=0.5, pumping=0.2)
    assert len(s.jump_operators) == 8 and s.is_open
    n = 4
    c_ops = [np.sqrt(0.5) * op(n, {i: Z}) for i in range(n)]
    c_ops += [np.sqrt(0.2) * op(n, {i: qutip.sigmap()}) for i in range(n)]
    assert_same_lindbladian(s, heisenberg(4).to_qutip()["H"], c_ops)
    with pytest.raises(ValueError, match="rate"):
        with_jumps(heisenberg(4), decay=-1.0)


def test_steady_state_agrees_with_long_time_evolution():
    s = dissipative_tfi(4, g=1.0)
    rho_ss, values = exact.steady_state(s)
    rho0 = np.zeros((16, 16))
    rho0[0, 0] = 1.0
    late = exact.mesolve_system(s, rho0, np.array([0.0, 40.0]), store_states=True)
    assert np.abs(late["states"][-1] - rho_ss).max() < 1e-6
    for name, value in values.items():
        assert late[name][-1] == pytest.approx(value, abs=1e-6)


def test_steady_state_by_propagation_equals_the_direct_solver():
    s = dissipative_xyz(5, Jx=0.9, Jy=1.6, Jz=1.0, gamma=1.0)
    direct, values = exact.steady_state(s, method="direct")
    propagated, values_p = exact.steady_state(s, method="propagate", tol=1e-11)
    assert np.abs(direct - propagated).max() < 1e-9
    for name, value in values.items():
        assert values_p[name] == pytest.approx(value, abs=1e-9)
    assert np.trace(propagated).real == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(RuntimeError, match="did not converge"):
        exact.steady_state(s, method="propagate", t_chunk=0.1, t_max=0.2)
