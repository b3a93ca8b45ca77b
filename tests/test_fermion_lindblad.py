"""Open spinful fermions: the dissipative Hubbard dimer and the AMEA auxiliary impurity
(`hamiltonians.fermion_lindblad`) against closed forms and the U = 0 Keldysh/Lyapunov reference (`nqs.keldysh`), and
the Jordan–Wigner route into the POVM stack (`hamiltonians.fermions_jw`).

The Jordan–Wigner operators are checked through their local terms (`acting_on`, `operators`: what the POVM Lindbladian
reads), embedded here with numpy, so that no NetKet Numba kernel is compiled."""

import itertools

import numpy as np
import pytest
import qutip
import scipy.linalg
from povm_helpers import TableAR

from hamiltonians import auxiliary_impurity, dissipative_hubbard, hubbard
from hamiltonians import fermions as fm
from hamiltonians.fermions_jw import BALANCED_TETRAHEDRON_ROTATION, jordan_wigner_spin_operator, jordan_wigner_system
from nqs import keldysh
from nqs.exact import check_operators
from nqs.exact_open import mesolve_system, steady_state, trace_distance
from nqs.povm import POVM, povm_lindbladian, probabilities

E_TEST = [[0, 0.5, 0.5], [0.5, -1, 0], [0.5, 0, 1]]  # notes, Part F (AMEA)
LOSS_TEST = np.diag([0, 0.1, 0.3])
GAIN_TEST = np.diag([0, 0.3, 0.1])


def _occupations(index: int, n_modes: int) -> np.ndarray:
    return np.array([(index >> (n_modes - 1 - m)) & 1 for m in range(n_modes)])  # mode 0 most significant


def _dimer_rho0() -> np.ndarray:
    """ρ₀ = c†_0↑ c†_1↓|0⟩⟨0|c_1↓ c_0↑ from QuTiP's fcreate (independent of NetKet)."""
    up0, down1 = fm.mode(2, 0, fm.UP), fm.mode(2, 1, fm.DOWN)
    psi = qutip.fcreate(4, up0) * qutip.fcreate(4, down1) * qutip.basis([2] * 4, [0] * 4)
    return (psi * psi.dag()).full()


def _projector(n_modes: int, keep) -> np.ndarray:
    """Diagonal projector on the occupation basis states whose occupation vector n satisfies keep(n)."""
    return np.diag([1.0 if keep(_occupations(k, n_modes)) else 0.0 for k in range(2**n_modes)])


def _embedded(op, n: int) -> np.ndarray:
    """The dense matrix of a LocalOperator from its terms: each term ⊗ identity, axes moved to its qubits."""
    out = complex(op.constant) * np.eye(2**n, dtype=complex)
    for sites, matrix in zip(op.acting_on, op.operators):
        sites = [int(q) for q in sites]
        m = matrix.toarray() if hasattr(matrix, "toarray") else np.asarray(matrix)
        order = sites + [q for q in range(n) if q not in sites]
        full = np.kron(m, np.eye(2 ** (n - len(sites)))).reshape([2] * (2 * n))
        axes = list(np.argsort(order))
        out += full.transpose(axes + [n + a for a in axes]).reshape(2**n, 2**n)
    return out


def _check_jordan_wigner(system) -> None:
    """Every Jordan–Wigner operator of `system` (by its local terms) equals its QuTiP (fdestroy) matrix."""
    n, q = system.n_sites, system.to_qutip()
    pairs = [(system.hamiltonian, q["H"])] + list(zip(system.jump_operators, q["c_ops"], strict=True))
    pairs += [(system.observables[k], q["observables"][k]) for k in system.observables]
    for op, qobj in pairs:
        np.testing.assert_allclose(_embedded(op, n), qobj.full(), atol=1e-12)
    assert all(len(j.acting_on) == 1 for j in system.jump_operators)  # one local term each, as the POVM stack needs


def _complex_bath(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Complex Hermitian PSD loss and gain matrices (3 sites) vanishing on the impurity row and column."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(2):
        a = rng.normal(size=(2, 2)) + 1j * rng.normal(size=(2, 2))
        g = np.zeros((3, 3), dtype=complex)
        g[1:, 1:] = 0.2 * a @ a.conj().T
        out.append(g)
    return out[0], out[1]


# -- the dissipative Hubbard dimer ----------------------------------------------------------------------------
def test_one_body_loss_gives_exponential_number_decay():
    times = np.linspace(0.0, 4.0, 21)
    out = mesolve_system(dissipative_hubbard(2, U=4.0, loss=0.5), _dimer_rho0(), times)
    np.testing.assert_allclose(out["N"], 2 * np.exp(-0.5 * times), atol=1e-6)
    np.testing.assert_allclose(out["density_0"] + out["density_1"], out["N"], atol=1e-12)


def test_dephasing_conserves_the_number_and_heats_the_initial_spin_sector():
    """N↑ and N↓ are both conserved (H and n_iσ commute with them), so ρ relaxes to the identity of the (1, 1) sector
    of ρ₀, where 2 of the 4 states hold a doublon (⟨n_doublons⟩ = 1/2), not of the N = 2 sector (2 of 6: 1/3)."""
    up, down = [fm.mode(2, i, fm.UP) for i in range(2)], [fm.mode(2, i, fm.DOWN) for i in range(2)]
    sector = _projector(4, lambda n: n[up].sum() == 1 and n[down].sum() == 1)
    doublons = np.diag([float(sum(_occupations(k, 4)[u] * _occupations(k, 4)[d] for u, d in zip(up, down)))
                        for k in range(16)])
    infinite_t = np.trace(sector @ doublons) / np.trace(sector)
    n_two = _projector(4, lambda n: n.sum() == 2)
    assert infinite_t == 0.5 and np.trace(n_two @ doublons) / np.trace(n_two) == pytest.approx(1 / 3)
    times = np.array([0.0, 1.0, 2.0, 120.0])
    out = mesolve_system(dissipative_hubbard(2, U=4.0, dephasing=0.5), _dimer_rho0(), times, store_states=True)
    np.testing.assert_allclose(out["N"], 2.0, atol=1e-8)
    assert out["n_doublons"][1] > 0.1  # it moves ...
    assert out["n_doublons"][-1] == pytest.approx(infinite_t, abs=1e-6)  # ... to the infinite-temperature value
    assert trace_distance(out["states"][-1], sector / 4) < 1e-5


def test_pair_loss_removes_particles_in_pairs_and_spares_the_triplet():
    """Only N ∈ {0, 2} ever occurs; the S = 1, S^z = 0 half of ρ₀ = (|singlet⟩ + |triplet⟩)/√2 cannot doubly occupy a
    site and H conserves S², so it is dark: ⟨N⟩ → 2 · ½ = 1."""
    times = np.array([0.0, 0.5, 1.0, 2.0, 4.0, 400.0])
    out = mesolve_system(dissipative_hubbard(2, U=4.0, pair_loss=1.0), _dimer_rho0(), times, store_states=True)
    odd, two = _projector(4, lambda n: n.sum() % 2 == 1), _projector(4, lambda n: n.sum() == 2)
    for rho, n in zip(out["states"], out["N"]):
        assert abs(np.trace(odd @ rho)) < 1e-10
        assert n == pytest.approx(2 * np.trace(two @ rho).real, abs=1e-10)
    assert np.all(np.diff(out["N"]) < 0) and out["N"][-1] == pytest.approx(1.0, abs=1e-6)


def test_operators_agree_with_qutip_and_the_closed_hubbard_hamiltonian():
    open_ = dissipative_hubbard(2, U=4.0, mu=0.3, loss=0.5, pair_loss=1.0, dephasing=0.5, pump=0.2)
    assert check_operators(open_) < 1e-12
    assert len(open_.jump_operators) == 4 + 2 + 4 + 4 and open_.constraint is None
    closed = hubbard(2, U=4.0, mu=0.3, boundary="obc")
    assert np.abs((open_.to_qutip()["H"] - closed.to_qutip()["H"]).full()).max() == 0
    loss, gain = _complex_bath(0)
    amea = auxiliary_impurity(E_TEST, loss, gain, U=2.0, eps_f=-1.0)
    assert check_operators(amea) < 1e-12
    assert len(amea.jump_operators) == 2 * (2 + 2)  # two nonzero eigenvalues of each Γ, two spins
    _check_jordan_wigner(jordan_wigner_system(open_))
    _check_jordan_wigner(jordan_wigner_system(amea))


@pytest.mark.parametrize("kwargs, match", [
    ({"loss": -0.1}, "loss rate"), ({"dephasing": float("nan")}, "dephasing rate"), ({}, "every jump rate is 0"),
    ({"loss": 0.5, "boundary": "twisted"}, "boundary"),
])
def test_dissipative_hubbard_refuses_bad_rates(kwargs, match):
    with pytest.raises(ValueError, match=match):
        dissipative_hubbard(2, U=4.0, **kwargs)


# -- the AMEA auxiliary impurity ------------------------------------------------------------------------------
def test_jump_operators_reproduce_the_gamma_matrix_lindbladian():
    """Liouvillian of the notes' Γ-matrix form, built term by term with spre/spost, equals QuTiP's liouvillian of the
    builder's H and jumps (complex Γ: fixes the conjugation L_a = √(2λ_a) Σ_j v*_aj c_j,
    L'_a = √(2λ'_a) Σ_j v'_aj c†_j)."""
    loss, gain = _complex_bath(1)
    system = auxiliary_impurity(E_TEST, loss, gain, U=2.0)
    q = system.to_qutip()
    c = [[qutip.fdestroy(6, fm.mode(3, i, s)) for i in range(3)] for s in (fm.UP, fm.DOWN)]
    lind = qutip.liouvillian(q["H"])
    for ops, i, j in itertools.product(c, range(3), range(3)):
        ci, cj = ops[i], ops[j]
        lind += 2 * loss[i, j] * (qutip.sprepost(cj, ci.dag()) - 0.5 * qutip.spre(ci.dag() * cj)
                                  - 0.5 * qutip.spost(ci.dag() * cj))
        lind += 2 * gain[i, j] * (qutip.sprepost(ci.dag(), cj) - 0.5 * qutip.spre(cj * ci.dag())
                                  - 0.5 * qutip.spost(cj * ci.dag()))
    built = qutip.liouvillian(q["H"], q["c_ops"])
    assert np.abs((built - lind).full()).max() < 1e-12


def test_noninteracting_steady_state_equals_the_lyapunov_and_keldysh_correlations():
    lyapunov = keldysh.steady_state_correlation(E_TEST, LOSS_TEST, GAIN_TEST)
    np.testing.assert_allclose(keldysh.correlation_from_green(E_TEST, LOSS_TEST, GAIN_TEST), lyapunov, atol=1e-8)
    rho, values = steady_state(auxiliary_impurity(E_TEST, LOSS_TEST, GAIN_TEST, U=0.0))
    rho = qutip.Qobj(rho, dims=[[2] * 6] * 2)
    for s in (fm.UP, fm.DOWN):
        c = [qutip.fdestroy(6, fm.mode(3, i, s)) for i in range(3)]
        C = np.array([[qutip.expect(c[i].dag() * c[j], rho) for j in range(3)] for i in range(3)])
        np.testing.assert_allclose(C, lyapunov, atol=1e-8)
    assert values["n_f"] == pytest.approx(2 * lyapunov[0, 0].real, abs=1e-8)
    for g1, g2 in ((0.2, 0.6), (0.7, 0.1)):  # single site: n = Γ⁽²⁾/(Γ⁽¹⁾ + Γ⁽²⁾)
        args = ([[0.3]], [[g1]], [[g2]])
        assert keldysh.steady_state_correlation(*args)[0, 0] == pytest.approx(g2 / (g1 + g2), abs=1e-12)
        assert keldysh.correlation_from_green(*args)[0, 0] == pytest.approx(g2 / (g1 + g2), abs=1e-8)
    omega = np.linspace(-3, 3, 7)  # G^K = G^R − G^A + 2G^< (G^< by its closed form 2i G^R Γ⁽²⁾ G^A)
    gr = keldysh.retarded_green(omega, E_TEST, LOSS_TEST, GAIN_TEST)
    np.testing.assert_allclose(keldysh.keldysh_green(omega, E_TEST, LOSS_TEST, GAIN_TEST),
                               gr - np.swapaxes(gr.conj(), -1, -2)
                               + 2 * keldysh.lesser_green(omega, E_TEST, LOSS_TEST, GAIN_TEST), atol=1e-12)


def test_interacting_evolution_preserves_trace_and_positivity():
    system = auxiliary_impurity(E_TEST, LOSS_TEST, GAIN_TEST, U=2.0, eps_f=-1.0)
    vacuum = np.zeros((64, 64))
    vacuum[0, 0] = 1.0
    out = mesolve_system(system, vacuum, np.linspace(0.0, 10.0, 11), store_states=True)
    for rho in out["states"]:
        assert abs(np.trace(rho) - 1) < 1e-8 and np.abs(rho - rho.conj().T).max() < 1e-8
        assert np.linalg.eigvalsh(0.5 * (rho + rho.conj().T)).min() > -1e-8
    assert out["n_f"][-1] > 0.5  # the gain fills the bath and the impurity


@pytest.mark.parametrize("E, loss, gain, match", [
    (E_TEST, np.diag([0.1, 0.1, 0.3]), GAIN_TEST, "impurity row"),
    (E_TEST, np.diag([0, -0.1, 0.3]), GAIN_TEST, "positive semi-definite"),
    (E_TEST, LOSS_TEST, np.array([[0, 0, 0], [0, 0.3, 0.1], [0, 0, 0.1]]), "gamma_gain must be Hermitian"),
    ([[0, 1, 0], [0, 0, 0], [0, 0, 0]], LOSS_TEST, GAIN_TEST, "E must be Hermitian"),
    (E_TEST, np.diag([0, 0.1]), GAIN_TEST, "same size"),
    ([[0, 1, 2]], LOSS_TEST, GAIN_TEST, "square"),
])
def test_auxiliary_impurity_refuses_bad_matrices(E, loss, gain, match):
    with pytest.raises(ValueError, match=match):
        auxiliary_impurity(E, loss, gain, U=1.0)


def test_lyapunov_refuses_an_undamped_mode():
    with pytest.raises(ValueError, match="not damped"):
        keldysh.steady_state_correlation(np.diag([0.0, 1.0]), np.diag([0.0, 0.1]), np.zeros((2, 2)))


# -- Jordan–Wigner qubits and the POVM stack -----------------------------------------------------------------
def test_jordan_wigner_operators_have_the_fermionic_matrices():
    hi = fm.spinful_hilbert(2)
    terms = [(0.7 - 0.2j, ((3, True), (0, False))), (1.3, ((0, True), (2, True), (1, False), (3, False))),
             (-0.4, ((1, False), (3, False))), (0.25, ((2, True), (2, False), (0, True), (0, False)))]
    op = fm.to_netket(hi, terms, constant=0.5)
    dense = op.to_dense()
    for single in (False, True):
        jw = jordan_wigner_spin_operator(op, single_term=single)
        np.testing.assert_allclose(_embedded(jw, 4), dense, atol=1e-14)
    assert len(jordan_wigner_spin_operator(op, single_term=True).acting_on) == 1
    hop = jordan_wigner_spin_operator(fm.to_netket(hi, fm.hopping(2, 0, 1, -1.0, fm.UP)))
    assert [tuple(s) for s in hop.acting_on] == [(2, 3)] and hop.dtype == np.float64  # strings cancel outside
    with pytest.raises(ValueError, match="constraint"):
        jordan_wigner_system(hubbard(2, U=4.0))


def _dimer_povm_setup():
    system = jordan_wigner_system(dissipative_hubbard(2, U=4.0, loss=0.5))
    return system, POVM.tetrahedral(rotation=BALANCED_TETRAHEDRON_ROTATION), _dimer_rho0(), np.linspace(0.0, 1.0, 5)


def test_povm_lindbladian_of_the_jordan_wigner_dimer_is_exact():
    """One-body loss on the dimer's 4 Jordan–Wigner qubits (jumps on up to 4 qubits): exp(L_P t) P₀ is the POVM image
    of QuTiP's ρ(t)."""
    system, povm, rho0, times = _dimer_povm_setup()
    L_P = povm_lindbladian(system, povm).to_dense()
    np.testing.assert_allclose(L_P.sum(axis=0), 0.0, atol=1e-12)
    exact = mesolve_system(system, rho0, times, store_states=True)
    for t, rho in zip(times, exact["states"]):
        P = scipy.linalg.expm(L_P * t) @ probabilities(rho0, povm, 4)
        assert np.abs(P - probabilities(rho, povm, 4)).sum() < 1e-6


@pytest.mark.slow  # ~10 s of JAX compilation and integration on 2 cores
def test_povm_tdvp_follows_the_exact_dimer_dynamics():
    """Full-sum POVM-TDVP with a complete autoregressive table (340 parameters) started in the exact product
    distribution of ρ₀ follows ⟨N⟩ = 2e^{−γt}, the doublons and ρ(t) of QuTiP."""
    import netket as nk

    from dynamics.povm import PovmTDVPSettings, evolve_povm_tdvp

    system, povm, rho0, times = _dimer_povm_setup()
    hi = nk.hilbert.Fock(n_max=3, N=4)
    vstate = nk.vqs.FullSumState(hi, TableAR(hi))
    logits, offset = np.array(vstate.parameters["logits"]), 0
    for i, n in enumerate(_occupations(int(np.argmax(np.diag(rho0))), 4)):  # the product start, site by site
        logits[offset : offset + 4**i] = np.log(probabilities(np.diag([1.0 - n, n]), povm, 1))
        offset += 4**i
    vstate.parameters = {"logits": logits}
    settings = PovmTDVPSettings(t_end=1.0, dt=0.05, n_save=5, solver="shift", diag_shift=1e-10)  # S: 340×340
    out = evolve_povm_tdvp(system, vstate, settings, povm=povm, rho0=rho0, progress=False)
    np.testing.assert_allclose(out.series("N"), 2 * np.exp(-0.5 * times), atol=1e-4)
    np.testing.assert_allclose(out.series("n_doublons"), out.exact["n_doublons"], atol=1e-4)
    assert max(out.series("trace_distance")) < 1e-3
