"""The 1+1D U(1) quantum link model: Gauss-law sectors, the builder against a brute-force construction, and the
gauge-invariant autoregressive ansätze on its gauge blocks."""

import functools
import itertools

import jax
import numpy as np
import pytest
import scipy.sparse as sp

import nqs.exact
from ansatze import ARRNN, ARTransformer
from hamiltonians.quantum_link import quantum_link
from nqs.gauss_law import GaussLaw1D
from nqs.states import make_state


def transfer_matrix_count(N: int, S: float) -> int:
    """dim = Tr[(T_e T_o)^{N/2}] over link values (models.md A.4): T_e allows E' − E ∈ {0, 1}, T_o E − E' ∈ {0, 1}."""
    d = round(2 * S + 1)
    T_e = np.array([[1 if b - a in (0, 1) else 0 for b in range(d)] for a in range(d)], dtype=object)
    T_o = np.array([[1 if a - b in (0, 1) else 0 for b in range(d)] for a in range(d)], dtype=object)
    return int(np.trace(np.linalg.matrix_power(T_e.dot(T_o), N // 2)))


@pytest.mark.parametrize(("N", "lucas"), [(2, 3), (4, 7), (6, 18), (8, 47), (10, 123)])
def test_spin_half_ring_sectors_are_the_lucas_numbers(N, lucas):
    system = quantum_link(N)
    assert system.constraint.count(system.token_map.token_sizes) == lucas == transfer_matrix_count(N, 0.5)
    if N <= 8:
        assert len(system.sector_states()) == lucas


@pytest.mark.parametrize("S", [1.0, 1.5, 2.0])
def test_spin_s_ring_sectors_equal_the_transfer_matrix_count(S):
    for N in (2, 4, 6, 8):
        assert quantum_link(N, S=S).constraint.count((2 * round(2 * S + 1),) * N) == transfer_matrix_count(N, S)
    assert len(quantum_link(6, S=S).sector_states()) == transfer_matrix_count(6, S)


# -- brute force: the full tensor space, genuine fermion operators with Jordan–Wigner strings, Gauss projection --
def _brute_force(N, S, J=1.0, m=0.0, g2=0.0, eps_bg=0.0, kappa=1.0, fermions=True, pbc=True, E_L=0.5, Q=None):
    """Sorted spectrum of H on {G_j = Q_j ∀j}, built in the full space with numpy Kronecker products."""
    Q = [0] * N if Q is None else Q
    d = round(2 * S + 1)
    dims = [2, d] * N
    E_values = S - np.arange(d)  # index k ↔ E = S − k
    sz, sp_ = np.diag(E_values), np.diag(np.sqrt(S * (S + 1) - E_values[1:] * (E_values[1:] + 1)), 1)
    a, z = np.array([[0.0, 1.0], [0.0, 0.0]]), np.diag([1.0, -1.0])

    def on(ops):
        return functools.reduce(lambda x, y: sp.kron(x, y, format="csr"),
                                [sp.csr_matrix(ops.get(i, np.eye(x))) for i, x in enumerate(dims)])

    def c(j):  # fermion: parity string over the matter sites before j; hard-core boson: no string
        return on({2 * j: a, **({2 * k: z for k in range(j)} if fermions else {})})

    n = [on({2 * j: a.T @ a}) for j in range(N)]
    E = [on({2 * j + 1: sz}) for j in range(N)]
    one = sp.identity(np.prod(dims), format="csr")
    H = 0 * one
    for j in range(N if pbc else N - 1):
        k = (j + 1) % N
        hop = c(j).T @ on({2 * j + 1: sp_}) @ c(k)
        H -= J * kappa * (hop + hop.T)
    for j in range(N):
        H += m * (-1) ** j * n[j] + 0.5 * g2 * (E[j] + eps_bg * one) @ (E[j] + eps_bg * one)
    G = [E[j] - (E[j - 1] if (j > 0 or pbc) else E_L * one) - (n[j] - (j % 2) * one) for j in range(N)]
    assert all((g - sp.diags(g.diagonal())).nnz == 0 or abs(g - sp.diags(g.diagonal())).max() == 0 for g in G)
    keep = np.flatnonzero(np.all([np.isclose(G[j].diagonal(), Q[j]) for j in range(N)], axis=0))
    return np.linalg.eigvalsh(H[keep][:, keep].toarray()), len(keep)


def _sector_spectrum(system):
    states = system.sector_states()
    return np.linalg.eigvalsh(nqs.exact.sector_matrix(system.hamiltonian, states).toarray()), len(states)


CASES = {
    "fermion_ring": dict(N=4, S=0.5, m=0.7, g2=0.3),
    "fermion_ring_6": dict(N=6, S=0.5, m=-0.4),
    "boson_open": dict(N=4, S=0.5, m=0.3, pbc=False, matter="hardcore_boson"),
    "spin1_ring_normalised": dict(N=4, S=1.0, m=0.5, g2=0.5, eps_bg=0.2, kappa="normalised"),
    "spin1_open_static_charge": dict(N=4, S=1.0, m=0.2, g2=1.0, pbc=False, boundary_field=-1.0,
                                     static_charges=[0, 1, 0, 0]),
    "spin1_ring_static_pair": dict(N=4, S=1.0, m=0.1, g2=0.4, static_charges=[1, 0, -1, 0]),
}


@pytest.mark.parametrize("case", CASES)
def test_spectrum_equals_the_brute_force_gauss_projection(case):
    kw = dict(CASES[case])
    system = quantum_link(**kw)
    ours, dim = _sector_spectrum(system)
    kappa = 1.0 if kw.get("kappa", "bare") == "bare" else 1 / np.sqrt(kw["S"] * (kw["S"] + 1))
    reference, reference_dim = _brute_force(
        kw["N"], kw["S"], m=kw.get("m", 0.0), g2=kw.get("g2", 0.0), eps_bg=kw.get("eps_bg", 0.0), kappa=kappa,
        fermions=kw.get("matter", "fermion") == "fermion", pbc=kw.get("pbc", True),
        E_L=kw.get("boundary_field", kw["S"] % 1.0), Q=kw.get("static_charges"))
    assert dim == reference_dim
    np.testing.assert_allclose(ours, reference, atol=1e-10)


def test_low_spectrum_holds_the_vacuum_doublet_and_the_meson():
    """`lowest_states` equals the dense sector spectrum; at m ≫ J the S = ½ ring has two vacua (E = ±½) split by
    tunnelling around the ring, exponentially in N, and the first meson (a pair, 2m) above them."""
    splittings = []
    for N in (6, 8):
        system = quantum_link(N, m=4.0)
        low = nqs.exact.lowest_states(system, 3)
        np.testing.assert_allclose(low.energies, _sector_spectrum(system)[0][:3], atol=1e-10)
        np.testing.assert_allclose(low.vectors.conj() @ low.vectors.T, np.eye(3), atol=1e-10)
        splittings.append(low.gaps[0])
        assert abs(low.gaps[1] - 2 * 4.0) < 2 / 4.0  # 2m − O(J²/m)
    assert splittings[1] < splittings[0] / 10 and splittings[1] < 1e-4
    with pytest.raises(ValueError, match="k must be"):
        nqs.exact.lowest_states(quantum_link(2), 3)


def test_fermions_and_hard_core_bosons_and_both_frames_share_the_spectrum():
    spectra = [_sector_spectrum(quantum_link(6, m=0.5, g2=0.2, matter=matter, frame=frame))[0]
               for matter, frame in itertools.product(("fermion", "hardcore_boson"), ("original", "particle_hole"))]
    for spectrum in spectra[1:]:
        np.testing.assert_allclose(spectrum, spectra[0], atol=1e-10)


def test_spin_half_model_is_the_pxp_chain():
    """models.md A.3.3: H_QLM(S = ½, κ = 1) ≅ −J Σ P X P − 2m Σ n + mN/2 on the links (Rydberg blockade)."""
    N, J, m = 8, 1.0, 0.35
    ours, _ = _sector_spectrum(quantum_link(N, J=J, m=m))
    configs = [c for c in itertools.product((0, 1), repeat=N) if not any(c[i] and c[(i + 1) % N] for i in range(N))]
    index = {c: i for i, c in enumerate(configs)}
    H = np.diag([-2 * m * sum(c) + m * N / 2 for c in configs])
    for c in configs:
        for i in range(N):
            if not c[i - 1] and not c[(i + 1) % N]:
                flipped = list(c)
                flipped[i] ^= 1
                H[index[tuple(flipped)], index[c]] -= J
    np.testing.assert_allclose(ours, np.linalg.eigvalsh(H), atol=1e-10)


@pytest.mark.parametrize("kw", [dict(N=4), dict(N=4, frame="particle_hole", m=0.3, g2=0.5, eps_bg=0.1),
                                dict(N=2, S=1.0, pbc=False, static_charges=[1, 0], boundary_field=0.0,
                                     kappa="normalised", g2=0.7)])
def test_netket_operators_equal_the_independent_qutip_construction(kw):
    assert nqs.exact.check_operators(quantum_link(**kw)) < 1e-12


def test_bare_vacuum_and_observables():
    """The bare vacua (even sites empty, odd filled, uniform E = ±½) are the m → ∞ ground states: Σ = −½, no charge,
    no violation; in the particle-hole frame every matter index is 0 and the links alternate."""
    for frame in ("original", "particle_hole"):
        system = quantum_link(4, m=50.0, frame=frame)
        gs = nqs.exact.ground_state(system)
        obs = gs.observables
        assert obs["chiral_condensate"] == pytest.approx(-0.5, abs=1e-3)
        assert obs["charge_density"] == pytest.approx(0.0, abs=1e-3)
        assert obs["gauss_law_violation"] == pytest.approx(0.0, abs=1e-12)
        top = np.argsort(-np.abs(gs.state))[:2]
        assert np.sum(np.abs(gs.state[top]) ** 2) > 0.999  # the two degenerate vacua (E = +½ and E = −½)
        x = np.asarray(system.hilbert.numbers_to_states(top))
        links = x[:, 1::2] if frame == "original" else x[:, 1::2] * np.array([-1, 1, -1, 1])
        assert sorted(np.unique(links, axis=1).ravel().tolist()) == [-1, 1]  # uniform E = ±½ (Spin values ±1)
        matter = x[:, 0::2] if frame == "particle_hole" else x[:, 0::2] - np.array([0, 1, 0, 1])
        assert not matter.any()  # even empty, odd filled (particle-hole frame: every index 0)


# -- bad input ---------------------------------------------------------------------------------------
def test_bad_input_is_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="even number of sites"):
        quantum_link(5)
    with pytest.raises(ValueError, match="multiple of 1/2"):
        quantum_link(4, S=0.7)
    with pytest.raises(ValueError, match="unknown matter"):
        quantum_link(4, matter="boson")
    with pytest.raises(ValueError, match="no configuration .* satisfies the Gauss law on the ring"):
        quantum_link(4, static_charges=[1, 1, 1, 0])  # two dynamical charges cannot screen a static +3 on a ring
    with pytest.raises(ValueError, match="no configuration .* satisfies the Gauss law"):
        quantum_link(4, static_charges=[3, 0, -3, 0])  # the string between ±3 needs |E| > ½
    with pytest.raises(ValueError, match="differ from S"):
        quantum_link(4, pbc=False, boundary_field=0.0)
    with pytest.raises(ValueError, match="ring .* has none"):
        quantum_link(4, boundary_field=0.5)
    with pytest.raises(ValueError, match="width"):
        GaussLaw1D(((0, 1), (0, 1, 1)), ((0, 0), (0, 0, 0)), 2)
    with pytest.raises(ValueError, match="link levels"):
        GaussLaw1D(((0, 2), (0, 1)), ((0, 0), (0, 0)), 2)
    constraint = quantum_link(4).constraint
    with pytest.raises(ValueError, match="left to right"):
        constraint.permuted([3, 2, 1, 0])


# -- gauge-invariant autoregressive ansätze -------------------------------------------------------------
def _violations(system, x):
    """Σ_j (G_j − Q_j)² of every configuration, from the physical values (independent of the constraint)."""
    idx = np.asarray(system.hilbert.states_to_local_indices(x))
    N, S = system.params["N"], system.params["S"]
    Q = system.params["static_charges"] or [0] * N
    n, E = idx[:, 0::2], S - idx[:, 1::2]
    q = n - (np.arange(N) % 2)
    return np.sum((E - np.roll(E, 1, axis=1) - q - np.asarray(Q)) ** 2, axis=1)


@functools.cache
def _spin1_ring():
    system = quantum_link(6, S=1.0, m=0.3, g2=0.5, kappa="normalised")
    models = {
        "transformer": ARTransformer(system.hilbert, layers=1, features=8, heads=2, tokens=system.token_map,
                                     constraint=system.constraint),
        "rnn": ARRNN(system.hilbert, hidden=8, cell="gru", tokens=system.token_map, constraint=system.constraint),
    }
    return system, models


@pytest.mark.parametrize("kind", ["transformer", "rnn"])
def test_every_sample_obeys_every_gauss_law_and_the_sector_is_normalised(kind):
    system, models = _spin1_ring()
    model = models[kind]
    states = system.sector_states()
    assert len(states) == transfer_matrix_count(6, 1.0)
    vs = make_state(system, model, n_samples=50_000, seed=0)  # with the other model: 10^5 samples
    vs.parameters = jax.tree_util.tree_map(lambda p: 3.0 * p, vs.parameters)  # random, far from uniform
    x = np.asarray(vs.samples).reshape(-1, system.n_sites)
    assert len(x) >= 50_000 and not _violations(system, x).any()
    prob = np.exp(2 * np.asarray(vs.log_value(states)).real)
    assert prob.sum() == pytest.approx(1.0, abs=1e-10)
    assert prob.max() > 3 / len(states)
    assert abs(vs.expect(system.observables["gauss_law_violation"]).mean) < 1e-12
    outside = np.asarray(system.hilbert.random_state(jax.random.PRNGKey(1), 256))
    outside = outside[_violations(system, outside) > 0]
    assert np.exp(2 * np.asarray(vs.log_value(outside)).real).max() < 1e-30


def test_exact_references_live_in_the_sector_of_a_huge_space():
    """N = 12, S = 1: 2.2·10⁹ full-space states, 1 186 in the sector. The ground state is found, and its observables
    measured, in the sector basis; the full-space vector is refused with a clear message; the two matter types in
    the two frames agree. Basis numbers match NetKet's where NetKet can index."""
    small = quantum_link(4, S=1.0)
    x = np.asarray(small.hilbert.all_states())[::37]
    np.testing.assert_array_equal(nqs.exact.basis_numbers(small.hilbert, x), small.hilbert.states_to_numbers(x))
    kw = dict(S=1.0, m=0.5, g2=0.5, kappa="normalised")
    gs = nqs.exact.ground_state(quantum_link(12, **kw))
    other = nqs.exact.ground_state(quantum_link(12, matter="hardcore_boson", frame="particle_hole", **kw))
    assert gs.sector_dim == transfer_matrix_count(12, 1.0) == 1186
    assert gs.energy == pytest.approx(other.energy, abs=1e-9)
    for name in ("chiral_condensate", "electric_field_squared", "charge_density"):
        assert gs.observables[name] == pytest.approx(other.observables[name], abs=1e-8)
    assert gs.observables["gauss_law_violation"] == 0.0 and np.linalg.norm(gs.vector) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="sector vector"):
        gs.state  # noqa: B018


def test_quench_of_a_gauge_invariant_state_follows_the_exact_sector_evolution(tmp_path):
    """TDVP (full sum) of the gauge-invariant RNN after a quench to m = 0, next to the exact evolution in
    the Gauss-law sector from the same initial state: fidelity, chiral condensate, Loschmidt return rates (of the
    initial state and into the vacuum doublet of m = 4), and the Gauss law exactly kept."""
    from dynamics.tdvp import TDVPSettings, evolve_tdvp
    from nqs import results

    system = quantum_link(4, m=0.0, g2=0.5)
    model = ARRNN(system.hilbert, hidden=8, cell="gru", tokens=system.token_map, constraint=system.constraint)
    vs = make_state(system, model, n_samples=0, seed=0)
    vacua = nqs.exact.lowest_states(quantum_link(4, m=4.0), 2).vectors
    settings = TDVPSettings(t_end=0.3, dt=0.03, n_save=4)
    with pytest.raises(ValueError, match="orthonormal"):
        evolve_tdvp(system, vs, settings, progress=False, manifold=2 * vacua)
    with pytest.raises(ValueError, match="amplitudes"):
        evolve_tdvp(system, vs, settings, progress=False, manifold=vacua[:, :-1])
    out = evolve_tdvp(system, vs, settings, progress=False, out=str(tmp_path / "quench.h5"), manifold=vacua)
    assert out.series("fidelity").min() > 0.999
    np.testing.assert_allclose(out.series("chiral_condensate"), out.exact.observables["chiral_condensate"], atol=2e-3)
    np.testing.assert_allclose(out.series("return_rate"), out.exact.return_rate, atol=2e-3)
    assert out.exact.return_rate[-1] > 1e-3  # the state moved
    np.testing.assert_allclose(out.series("gauss_law_violation"), 0.0, atol=1e-12)
    stored = results.load(tmp_path / "quench.h5").exact
    np.testing.assert_allclose(stored["return_rate"], out.exact.return_rate)
    weight = np.sum(np.abs(out.exact.states @ vacua.conj().T) ** 2, axis=1)  # Σ_a |⟨φ_a|ψ(t)⟩|²
    np.testing.assert_allclose(stored["manifold_return_rate"], -np.log(weight) / 4, rtol=1e-10)
    np.testing.assert_allclose(out.series("manifold_return_rate"), stored["manifold_return_rate"], atol=2e-3)
    loaded = results.load_state(tmp_path / "quench.h5", n_samples=0)  # gauge blocks: the recipe refers to the tokens
    assert loaded.model.tokens == system.token_map and loaded.system.constraint == system.constraint
    np.testing.assert_allclose(loaded.vstate.to_array(), out.state.to_array(), atol=1e-12)
