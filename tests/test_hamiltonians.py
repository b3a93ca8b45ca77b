"""Spin builders against QuTiP operators written here from the formulas, for both boundary conditions."""

import itertools

import numpy as np
import pytest
import qutip

from hamiltonians import heisenberg, tfim, xyz
from nqs import exact

P = {"X": qutip.sigmax(), "Y": qutip.sigmay(), "Z": qutip.sigmaz()}


def op(n, factors):
    """Tensor product with the given {site: 2x2} factors and identities elsewhere."""
    return qutip.tensor([factors.get(i, qutip.qeye(2)) for i in range(n)])


def chain_bonds(L, pbc):
    bonds = [(i, i + 1) for i in range(L - 1)]
    return bonds + [(L - 1, 0)] if pbc and L > 2 else bonds


def square_bonds(L, pbc, diagonal=False):
    """Nearest (or diagonal next-nearest) bonds of the L×L lattice, site x*L + y, each once."""
    site = lambda x, y: (x % L) * L + (y % L)
    steps = [(1, 1), (1, -1)] if diagonal else [(1, 0), (0, 1)]
    bonds = set()
    for x, y in itertools.product(range(L), repeat=2):
        for dx, dy in steps:
            if not pbc and not (0 <= x + dx < L and 0 <= y + dy < L):
                continue
            i, j = site(x, y), site(x + dx, y + dy)
            if i != j:
                bonds.add((min(i, j), max(i, j)))
    return sorted(bonds)


def heisenberg_qutip(n, bonds, nnn=(), J=1.0, J2=0.0, marshall=False, h_staggered=0.0, sublattice=None):
    s = -1.0 if marshall else 1.0
    H = 0
    for i in range(n) if h_staggered else ():
        H += -h_staggered * (1 - 2 * sublattice[i]) * op(n, {i: P["Z"]})
    for i, j in bonds:
        H += J * (s * op(n, {i: P["X"], j: P["X"]}) + s * op(n, {i: P["Y"], j: P["Y"]}) + op(n, {i: P["Z"], j: P["Z"]}))
    for i, j in nnn:
        H += J2 * sum(op(n, {i: P[a], j: P[a]}) for a in "XYZ")
    return H


def assert_same(system, reference):
    diff = system.hamiltonian.to_sparse() - reference.data.as_scipy()
    assert (abs(diff).max() if diff.nnz else 0.0) < 1e-12
    assert exact.check_operators(system) < 1e-12


@pytest.mark.parametrize("pbc", [True, False])
def test_heisenberg_chain(pbc):
    assert_same(heisenberg(6, pbc=pbc, J=0.7), heisenberg_qutip(6, chain_bonds(6, pbc), J=0.7))
    assert_same(heisenberg(6, pbc=pbc, marshall=True), heisenberg_qutip(6, chain_bonds(6, pbc), marshall=True))
    nnn = [(i, (i + 2) % 6) for i in range(6 if pbc else 4)]
    nnn = sorted({(min(b), max(b)) for b in nnn})
    assert_same(heisenberg(6, pbc=pbc, J2=0.4), heisenberg_qutip(6, chain_bonds(6, pbc), nnn, J2=0.4))
    sub = [i % 2 for i in range(6)]
    assert_same(heisenberg(6, pbc=pbc, h_staggered=1.3, zero_magnetization=False),
                heisenberg_qutip(6, chain_bonds(6, pbc), h_staggered=1.3, sublattice=sub))


@pytest.mark.parametrize("pbc", [True, False])
def test_heisenberg_square_j1j2(pbc):
    L = 3
    sys_ = heisenberg(L, lattice="square", pbc=pbc, J2=0.5, zero_magnetization=False)
    ref = heisenberg_qutip(9, square_bonds(L, pbc), square_bonds(L, pbc, diagonal=True), J2=0.5)
    assert_same(sys_, ref)


@pytest.mark.parametrize("pbc", [True, False])
def test_tfim_chain_and_square(pbc):
    for lattice, n, bonds in [("chain", 5, chain_bonds(5, pbc)), ("square", 9, square_bonds(3, pbc))]:
        H = sum(-0.8 * op(n, {i: P["Z"], j: P["Z"]}) for i, j in bonds) + sum(-1.3 * op(n,
                                                                                        {i: P["X"]}) for i in range(n))
        assert_same(tfim(3 if lattice == "square" else 5, lattice=lattice, J=0.8, h=1.3, pbc=pbc), H)


@pytest.mark.parametrize("pbc", [True, False])
def test_xyz_with_fields(pbc):
    n, bonds = 4, chain_bonds(4, pbc)
    J, h = {"X": 0.9, "Y": 1.6, "Z": 1.0}, {"X": 0.3, "Y": -0.2, "Z": 0.5}
    H = sum(J[a] * op(n, {i: P[a], j: P[a]}) for i, j in bonds for a in "XYZ")
    H += sum(h[a] * op(n, {i: P[a]}) for i in range(n) for a in "XYZ")
    assert_same(xyz(4, Jx=0.9, Jy=1.6, Jz=1.0, hx=0.3, hy=-0.2, hz=0.5, pbc=pbc), H)


def test_spin_units_are_a_quarter_of_pauli_units():
    e_pauli = exact.ground_state(heisenberg(8)).energy
    e_spin = exact.ground_state(heisenberg(8, units="spin")).energy
    assert e_spin == pytest.approx(e_pauli / 4, rel=1e-12)


def test_marshall_rotation_keeps_spectrum_and_makes_ground_state_positive():
    plain, rotated = heisenberg(6, zero_magnetization=False), heisenberg(6, marshall=True, zero_magnetization=False)
    np.testing.assert_allclose(
        np.linalg.eigvalsh(plain.hamiltonian.to_dense()), np.linalg.eigvalsh(rotated.hamiltonian.to_dense()), atol=1e-10
    )
    psi = exact.ground_state(heisenberg(6, marshall=True)).state
    psi = psi * np.sign(psi[np.argmax(np.abs(psi))])
    assert psi.min() > -1e-12


def test_observables_are_stated_and_consistent():
    s = heisenberg(4, pbc=False)
    assert set(s.observables) >= {"magnetization_x", "magnetization_z", "staggered_magnetization_z",
                                  "staggered_magnetization_z_squared", "nn_correlation_zz", "nn_correlation_xx"}
    assert s.conventions["units"] == "pauli" and s.conventions["boundary"] == "obc"
    assert s.params["L"] == 4 and s.builder == "hamiltonians.heisenberg"
    neel = np.zeros(16)
    neel[int("0101", 2)] = 1.0  # up, down, up, down
    values = exact.expectation_values(s, neel)
    assert values["staggered_magnetization_z"] == pytest.approx(1.0)
    assert values["staggered_magnetization_z_squared"] == pytest.approx(1.0)
    assert values["nn_correlation_zz"] == pytest.approx(-1.0)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: heisenberg(4, lattice="honeycomb"), "unknown lattice"),
        (lambda: tfim(1), "L must be an integer > 1"),
        (lambda: heisenberg(3, pbc=True, J2=0.5, zero_magnetization=False), "next-nearest"),
        (lambda: heisenberg(2, J2=0.5), "next-nearest"),
        (lambda: heisenberg(5), "even number of sites"),
        (lambda: heisenberg(5, marshall=True, zero_magnetization=False), "bipartite"),
        (lambda: xyz(4, units="atomic"), "unknown units"),
    ],
)
def test_bad_input_is_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_rectangular_square_lattice_bonds():
    """L = (4, 2): site (x, y) = 2x + y; 8 bonds along x (periodic), 4 along y (length 2: one bond, no double),
    8 diagonal next-nearest bonds; the J1-J2 builder records the rectangle."""
    from hamiltonians.lattices import make_lattice

    lat = make_lattice("square", (4, 2), pbc=True, next_nearest=True)
    assert lat.n_sites == 8 and lat.bipartite
    along_y = {(2 * x, 2 * x + 1) for x in range(4)}
    along_x = {tuple(sorted((2 * x + y, 2 * ((x + 1) % 4) + y))) for x in range(4) for y in range(2)}
    assert set(lat.nn) == along_y | along_x
    assert len(lat.nnn) == 8 and (0, 3) in lat.nnn
    system = heisenberg((4, 2), lattice="square", J2=0.5)
    assert system.params["L"] == (4, 2) and tuple(system.graph.extent) == (4, 2)
    with pytest.raises(ValueError, match="integer > 1"):
        make_lattice("chain", (4, 2), pbc=True)
