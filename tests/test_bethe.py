"""Bethe-ansatz ground-state energies of the Heisenberg chain against exact diagonalisation and known limits."""


import netket as nk
import numpy as np
import pytest

import nqs
from hamiltonians import heisenberg
from nqs import exact
from nqs.exact import bethe_ground_state_energy

E_INF_SPIN = 0.25 - np.log(2)  # Hulthén: E/L → J (1/4 − ln 2) in S·S units

# ED costs a few seconds per system (mostly JAX compilation of the operators, not the sector size), so
# the default suite checks L = 6 (M = 3, integer I_j) and L = 16 (M = 8, half-integer I_j); the rest of
# L = 4, ..., 16 runs with `-m slow`.
FAST_SIZES = (6, 16)
ED_CASES = [
    pytest.param(L, pbc, marks=() if L in FAST_SIZES else pytest.mark.slow, id=f"L{L}-{'pbc' if pbc else 'obc'}")
    for L in (4, 6, 8, 10, 12, 14, 16)
    for pbc in (True, False)
]


@pytest.mark.parametrize("L,pbc", ED_CASES)
def test_bethe_equals_exact_diagonalisation(L, pbc):
    J = 1.0 if pbc else 0.7  # the open chains also check the linear scaling in J
    ed = exact.ground_state(heisenberg(L, pbc=pbc, J=J, zero_magnetization=True)).energy
    bethe = bethe_ground_state_energy(L, pbc=pbc, J=J)
    assert bethe == pytest.approx(ed, rel=1e-9)
    assert bethe_ground_state_energy(L, pbc=pbc, J=J, units="spin") == pytest.approx(ed / 4, rel=1e-12)


def test_small_chains_in_closed_form():
    # two sites: open chain = one singlet bond (−3J Pauli); the 2-site ring counts the bond twice
    assert bethe_ground_state_energy(2, pbc=False, units="spin") == pytest.approx(-0.75, abs=1e-14)
    assert bethe_ground_state_energy(2, pbc=True, units="spin") == pytest.approx(-1.5, abs=1e-14)
    # four sites (S·S units): ring E = −2J, open chain E = −(3/4 + √3/2) J
    assert bethe_ground_state_energy(4, units="spin") == pytest.approx(-2.0, abs=1e-13)
    assert bethe_ground_state_energy(4, pbc=False, units="spin") == pytest.approx(-0.75 - np.sqrt(3) / 2, abs=1e-13)


def test_published_values():
    # per-site energies of L = 20 (S·S units)
    assert bethe_ground_state_energy(20, units="spin") / 20 == pytest.approx(-0.4452193265, abs=1e-10)
    assert bethe_ground_state_energy(20, pbc=False, units="spin") / 20 == pytest.approx(-0.4341236667, abs=1e-10)


def test_thermodynamic_limit():
    e100 = bethe_ground_state_energy(100, units="spin") / 100
    assert abs(e100 - E_INF_SPIN) < 1e-3
    # the ring approaches from below as −π²/(12 L²) (up to logarithmic corrections)
    assert e100 - E_INF_SPIN == pytest.approx(-(np.pi**2) / 12 / 100**2, rel=0.05)
    assert bethe_ground_state_energy(100, units="pauli") == pytest.approx(4 * 100 * e100, rel=1e-14)
    # the open chain lies above, with an O(1/L) surface energy that shrinks with L
    o100 = bethe_ground_state_energy(100, pbc=False, units="spin") / 100
    o200 = bethe_ground_state_energy(200, pbc=False, units="spin") / 200
    assert E_INF_SPIN < o200 < o100 < E_INF_SPIN + 0.01


def test_large_chain_converges():
    e = bethe_ground_state_energy(1000, units="spin") / 1000
    assert abs(e - E_INF_SPIN) < 1e-6


@pytest.mark.parametrize(
    "kwargs",
    [
        {"L": 7},
        {"L": 0},
        {"L": -2},
        {"L": 1},
        {"L": 4.0},
        {"L": 4, "J": 0.0},
        {"L": 4, "J": -1.0},
        {"L": 4, "units": "kelvin"},
    ],
)
def test_bad_input_raises(kwargs):
    L = kwargs.pop("L")
    with pytest.raises(ValueError):
        bethe_ground_state_energy(L, **kwargs)


# Published Lanczos ED ground-state energies of the 6×6 square lattice, typed here from the source (not taken from
# nqs, so that a wrong digit in nqs/reference_energies.py fails): varbench (Wu et al., Science 386, 296 (2024)),
# github.com/varbench/varbench, Heisenberg/square_36_P.md, Heisenberg/square_36_O.md and J1J2/square_36_P_0.5.md,
# "Exact diagonalization" rows. varbench writes H = Σ σ·σ (Pauli matrices, J1 = 1): totals in nqs' Pauli units.
# The library stores 7 decimals (of the total for J2 = 0, of E/N in S·S units for J2 = 0.5): the tolerance is half a
# unit of that last digit, so any wrong stored digit fails.
VARBENCH_6X6 = [  # (pbc, J2, E total in Pauli units, tolerance on the total)
    (True, 0.0, -97.7575895972357, 5e-8),
    (False, 0.0, -86.9071441699763, 5e-8),
    (True, 0.5, -72.548590160286, 4 * 36 * 5e-8),
]


def test_reference_energies_beyond_exact_diagonalisation():
    value, source = exact.reference_ground_state_energy("chain", 100, pbc=False)
    assert value == bethe_ground_state_energy(100, pbc=False) and "Bethe" in source
    for pbc, J2, published, tol in VARBENCH_6X6:
        value, source = exact.reference_ground_state_energy("square", 6, pbc=pbc, J2=J2)
        assert value == pytest.approx(published, abs=tol) and "ED" in source, (pbc, J2)
        spin, _ = exact.reference_ground_state_energy("square", 6, pbc=pbc, J2=J2, units="spin")
        assert spin == pytest.approx(published / 4, abs=tol / 4)  # S = σ/2: S·S = σ·σ/4
        scaled, _ = exact.reference_ground_state_energy("square", 6, pbc=pbc, J=0.5, J2=0.5 * J2)
        assert scaled == pytest.approx(0.5 * published, abs=tol)  # linear in J at fixed J2/J
    assert exact.reference_ground_state_energy("square", 8, pbc=True) is None
    assert exact.reference_ground_state_energy("chain", 20, J2=0.5) is None
    big = nqs.System(builder="test.spins", hilbert=nk.hilbert.Spin(0.5, 100),
                     hamiltonian=nk.operator.spin.sigmaz(nk.hilbert.Spin(0.5, 100), 0))
    assert exact.sector_dimension(big) == 2**100  # beyond NetKet's n_states (int64)
