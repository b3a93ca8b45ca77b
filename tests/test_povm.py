"""POVM core: frames, maps, the POVM Lindbladian against QuTiP, the analytic single-qubit case."""

import netket as nk
import numpy as np
import pytest
import scipy.linalg

from hamiltonians import dissipative_tfi
from nqs import System, exact
from nqs.povm import (
    POVM,
    density_matrix,
    observable_table,
    povm_lindbladian,
    probabilities,
)

POVMS = {"tetrahedral": POVM.tetrahedral(), "pauli4": POVM.pauli4()}


def test_stated_overlap_matrices():
    t = POVMS["tetrahedral"]
    np.testing.assert_allclose(t.T, (2 * np.eye(4) + np.ones((4, 4))) / 12, atol=1e-14)
    np.testing.assert_allclose(t.T_inv, 6 * np.eye(4) - np.ones((4, 4)), atol=1e-12)
    p = POVMS["pauli4"]
    T = np.array([[2, 1, 1, 2], [1, 2, 1, 2], [1, 1, 2, 2], [2, 2, 2, 12]]) / 18
    T_inv = np.array([[14, -4, -4, -1], [-4, 14, -4, -1], [-4, -4, 14, -1], [-1, -1, -1, 2]])
    np.testing.assert_allclose(p.T, T, atol=1e-14)
    np.testing.assert_allclose(p.T_inv, T_inv, atol=1e-11)
    np.testing.assert_allclose(observable_table(np.diag([1.0, -1.0]), t), [3, -1, -1, -1], atol=1e-12)
    np.testing.assert_allclose(observable_table(np.diag([1.0, -1.0]), p), [5, -1, -1, -1], atol=1e-12)
    with pytest.raises(ValueError, match="identity"):
        POVM.from_elements("bad", np.ones((4, 2, 2)))


@pytest.mark.parametrize("name", POVMS)
def test_density_matrix_round_trip_and_observables(name):
    povm = POVMS[name]
    rng = np.random.default_rng(1)
    a = rng.normal(size=(8, 8)) + 1j * rng.normal(size=(8, 8))
    rho = a @ a.conj().T
    rho /= np.trace(rho)
    P = probabilities(rho, povm, 3)
    assert P.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(density_matrix(P, povm, 3), rho, atol=1e-12)
    zz = np.kron(np.diag([1.0, -1.0]), np.diag([1.0, -1.0]))
    q = observable_table(zz, povm)  # sites 0,1 of 3: sum over the third outcome
    expected = np.trace(rho @ np.kron(zz, np.eye(2))).real
    assert np.sum(P.reshape(16, 4).sum(1) * q) == pytest.approx(expected, abs=1e-12)


@pytest.fixture(scope="module")
def tfi4():
    return dissipative_tfi(4, V=2.0, g=1.5, gamma=1.0)


@pytest.mark.parametrize("name", POVMS)
def test_lindbladian_conserves_probability_and_matches_mesolve(tfi4, name):
    povm = POVMS[name]
    lp = povm_lindbladian(tfi4, povm)
    for _, block in lp.terms:
        np.testing.assert_allclose(block.sum(axis=0), 0, atol=1e-12)
    dense = lp.to_dense()
    np.testing.assert_allclose(dense.sum(axis=0), 0, atol=1e-11)
    rho0 = np.zeros((16, 16))
    rho0[0, 0] = 1.0  # all up
    times = np.array([0.0, 0.5, 1.0])
    ref = exact.mesolve_system(tfi4, rho0, times, store_states=True)
    P0 = probabilities(rho0, povm, 4)
    for t, rho_t in zip(times, ref["states"]):
        np.testing.assert_allclose(scipy.linalg.expm(dense * t) @ P0, probabilities(rho_t, povm, 4), atol=1e-7)


@pytest.mark.parametrize("name", POVMS)
def test_connected_elements_reproduce_dense_action(tfi4, name):
    lp = povm_lindbladian(tfi4, POVMS[name])
    rng = np.random.default_rng(2)
    P = rng.random(4**4)
    a = rng.integers(0, 4, size=(50, 4))
    diagonal, conf, mels = lp.connected(a)
    flat = lambda c: np.asarray(c) @ (4 ** np.arange(3, -1, -1))
    assert not np.any(np.all(np.asarray(conf) == a[:, None, :], axis=-1))  # b = a only in the diagonal
    estimate = np.asarray(diagonal) * P[flat(a)] + np.sum(np.asarray(mels) * P[flat(conf)], axis=1)
    np.testing.assert_allclose(estimate, (lp.to_dense() @ P)[flat(a)], atol=1e-12)
    # each string b ≠ a is listed once: at most 4 single-site changes × 3 + 4 bonds' two-site changes × 9 (PBC
    # ring), all of them for the dense tetrahedral blocks; moves whose element vanishes for every a are dropped
    assert lp.max_conn_size <= 4 * 3 + 4 * 9
    assert lp.max_conn_size == 4 * 3 + 4 * 9 or name != "tetrahedral"
    assert len({tuple(row) for row in np.asarray(conf[0])}) == lp.max_conn_size


def test_single_qubit_dephasing_analytic():
    """H = 3σˣ, L = σᶻ (γ = 1), ρ₀ = |y+⟩: ⟨σʸ⟩ = e^{−t}(w cos wt − sin wt)/w, ⟨σᶻ⟩ = (6/w) e^{−t} sin wt, w = √35."""
    hi = nk.hilbert.Spin(0.5, 1)
    system = System(
        builder="test.single_qubit", hilbert=hi, hamiltonian=3.0 * nk.operator.spin.sigmax(hi, 0),
        jump_operators=(nk.operator.spin.sigmaz(hi, 0),),
    )
    lp = povm_lindbladian(system, POVMS["tetrahedral"]).to_dense()
    rho0 = 0.5 * np.array([[1, -1j], [1j, 1]])
    P0 = probabilities(rho0, POVMS["tetrahedral"], 1)
    qy = observable_table(np.array([[0, -1j], [1j, 0]]), POVMS["tetrahedral"])
    qz = observable_table(np.diag([1.0, -1.0]), POVMS["tetrahedral"])
    w = np.sqrt(35)
    for t in (0.1, 0.4, 1.0, 2.0):
        P = scipy.linalg.expm(lp * t) @ P0
        assert P @ qy == pytest.approx(np.exp(-t) * (w * np.cos(w * t) - np.sin(w * t)) / w, abs=1e-12)
        assert P @ qz == pytest.approx(6 / w * np.exp(-t) * np.sin(w * t), abs=1e-12)


def test_state_comparison_helpers(tfi4):
    rho, _ = exact.steady_state(tfi4)
    povm = POVMS["tetrahedral"]
    P = probabilities(rho, povm, 4)
    assert exact.classical_fidelity(P, P) == pytest.approx(1.0, abs=1e-12)
    assert exact.trace_distance(rho, density_matrix(P, povm, 4)) < 1e-12
    mixed = np.eye(16) / 16
    assert exact.purity(mixed) == pytest.approx(1 / 16) and exact.purity(rho) > 1 / 16
    assert 0 < exact.trace_distance(rho, mixed) <= 1
    assert exact.classical_fidelity(P, probabilities(mixed, povm, 4)) < 1.0
