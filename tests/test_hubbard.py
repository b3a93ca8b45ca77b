"""Spinful fermions: the Hubbard builder against closed forms, QuTiP's Jordan–Wigner operators and NetKet's own
Hubbard operator; the (N↑, N↓) constraint; samplers that never leave the sector; Slater and backflow ansätze."""

import math

import jax
import netket as nk
import numpy as np
import pytest

from ansatze.choice import AnsatzChoice, build_ansatz
from hamiltonians import fermions as fm
from hamiltonians.hubbard import hubbard
from nqs import exact
from nqs.fermion_sectors import spin_sector
from nqs.multi_u1 import MultiU1Constraint
from nqs.reference_energies import lieb_wu_energy
from nqs.states import make_state

pytestmark = pytest.mark.filterwarnings("ignore:.*fixed number of fermions")


def _free_energy(L: int, boundary: str, n_up: int, n_down: int, t: float = 1.0) -> float:
    """U = 0 closed form: fill the lowest single-particle levels −2t cos k of each spin."""
    m = np.arange(L)
    if boundary == "obc":
        eps = -2 * t * np.cos(np.pi * (m + 1) / (L + 1))
    else:
        k = 2 * np.pi * m / L if boundary == "pbc" else np.pi * (2 * m + 1) / L
        eps = -2 * t * np.cos(k)
    eps = np.sort(eps)
    return float(eps[:n_up].sum() + eps[:n_down].sum())


@pytest.mark.parametrize("boundary", ["pbc", "apbc", "obc"])
@pytest.mark.parametrize("n_up,n_down", [(3, 3), (2, 2), (3, 1)])
def test_free_fermions_match_the_closed_forms(boundary, n_up, n_down):
    """Even N_σ on a ring distinguishes PBC from APBC: the boundary sign of the fermion operators is checked."""
    system = hubbard(6, U=0.0, boundary=boundary, n_per_spin=(n_up, n_down))
    assert exact.ground_state(system).energy == pytest.approx(_free_energy(6, boundary, n_up, n_down), abs=1e-10)


def test_pbc_and_apbc_differ_for_even_particle_numbers():
    pbc = exact.ground_state(hubbard(6, U=0.0, boundary="pbc", n_per_spin=(2, 2))).energy
    apbc = exact.ground_state(hubbard(6, U=0.0, boundary="apbc", n_per_spin=(2, 2))).energy
    assert abs(pbc - apbc) > 0.1


def test_two_site_closed_form():
    for U in (0.5, 4.0, 10.0):
        e0 = exact.ground_state(hubbard(2, U=U, boundary="obc")).energy
        assert e0 == pytest.approx((U - math.sqrt(U**2 + 16)) / 2, abs=1e-12)


@pytest.mark.parametrize("shape,boundary,form", [(4, "pbc", "standard"), (4, "apbc", "particle_hole"),
                                                 ((2, 3), "pbc", "standard"), ((2, 2), "apbc", "standard")])
def test_netket_and_qutip_operators_agree(shape, boundary, form):
    """The NetKet FermionOperator2nd and the independent QuTiP fdestroy construction (Jordan–Wigner signs across the
    boundary included) are the same matrices."""
    system = hubbard(shape, U=3.0, mu=0.4, boundary=boundary, form=form)
    assert exact.check_operators(system) < 1e-10


def test_netket_fermion_algebra_gives_the_same_matrix():
    """The Hamiltonian built from NetKet's own `create`/`destroy`/`number` (NetKet's spin labels sz = ±1) along
    the graph's edges is our matrix on the whole Fock space."""
    system = hubbard(4, U=4.0, mu=0.3, boundary="pbc")
    hi = system.hilbert
    c, cd, n = nk.operator.fermion.destroy, nk.operator.fermion.create, nk.operator.fermion.number
    theirs = 0.0
    for i, j in system.graph.edges():
        for sz in (1, -1):
            theirs += -1.0 * (cd(hi, i, sz=sz) @ c(hi, j, sz=sz) + cd(hi, j, sz=sz) @ c(hi, i, sz=sz))
    for i in range(4):
        theirs += 4.0 * n(hi, i, sz=1) @ n(hi, i, sz=-1) - 0.3 * (n(hi, i, sz=1) + n(hi, i, sz=-1))
    np.testing.assert_allclose(system.hamiltonian.to_dense(), theirs.to_dense(), atol=1e-12)


def test_particle_hole_form_at_half_filling():
    """U Σ(n↑ − ½)(n↓ − ½) = U Σ n↑n↓ − (U/2) N + U L/4: the two forms differ by a constant in a fixed-N sector."""
    std = exact.ground_state(hubbard(4, U=4.0)).energy
    ph = exact.ground_state(hubbard(4, U=4.0, form="particle_hole")).energy
    assert ph == pytest.approx(std - 2.0 * 4 + 4.0 * 4 / 4, abs=1e-10)


def test_square_lattice_does_not_double_length_two_bonds():
    system = hubbard((2, 2), U=0.0, boundary="pbc")
    assert system.graph.n_edges == 4
    # 2×2 torus without doubled bonds = open 2×2 plaquette: levels −2, 0, 0, 2
    assert exact.ground_state(system).energy == pytest.approx(-4.0, abs=1e-10)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="boundary"):
        hubbard(4, U=1.0, boundary="periodic")
    with pytest.raises(ValueError, match="finite"):
        hubbard(4, U=float("nan"))
    with pytest.raises(ValueError, match="even number"):
        hubbard(5, U=1.0)
    with pytest.raises(ValueError, match="outside"):
        hubbard(4, U=1.0, n_per_spin=(5, 0))
    with pytest.raises(ValueError, match="form"):
        hubbard(4, U=1.0, form="ph")


def test_spin_sector_constraint_counts_and_masks():
    constraint = spin_sector(5, 2, 3)
    assert constraint.count() == math.comb(5, 2) * math.comb(5, 3)
    sector = constraint.sector()
    assert len(sector) == math.comb(5, 2) * math.comb(5, 3)
    up = np.asarray(fm.UP_CHARGE)[sector].sum(axis=1)
    down = np.asarray(fm.DOWN_CHARGE)[sector].sum(axis=1)
    assert np.all(up == 2) and np.all(down == 3)
    assert bool(np.all(constraint.is_satisfied(sector)))
    # the parallel masks equal the step-by-step ones and allow every sector value
    masks = np.asarray(constraint.masks(sector))
    assert np.all(np.take_along_axis(masks, sector[..., None].astype(int), axis=-1))
    with pytest.raises(ValueError, match="no configuration"):
        MultiU1Constraint(3, ((0, 1), (1, 0)), (2, 2))


def test_lieb_wu_limits():
    assert lieb_wu_energy(0.0) == pytest.approx(-4 / math.pi, rel=1e-12)
    assert lieb_wu_energy(4.0) == pytest.approx(-0.573729, abs=1e-6)  # Lieb & Wu (1968), tabulated
    assert lieb_wu_energy(200.0) == pytest.approx(-4 * math.log(2) / 200, rel=1e-2)  # Heisenberg limit


@pytest.fixture(scope="module")
def chain4():
    return hubbard(4, U=4.0)


def _assert_in_sector(samples, L, n_up, n_down):
    x = np.asarray(samples).reshape(-1, 2 * L)
    assert np.all(x[:, :L].sum(axis=1) == n_down), "a sample left the N_down sector"
    assert np.all(x[:, L:].sum(axis=1) == n_up), "a sample left the N_up sector"
    return x


def test_autoregressive_transformer_is_normalised_and_samples_the_sector(chain4):
    """One 4-valued token per orbital with the (N↑, N↓) masks: Σ|ψ|² = 1 over the whole Fock space with zero weight
    outside the sector, and 10^5 exact samples all in the sector."""
    model = build_ansatz(AnsatzChoice("transformer", features=4, heads=1), chain4)
    state = make_state(chain4, model, n_samples=100_000, seed=1)
    full = np.asarray(chain4.hilbert.all_states())
    prob = np.exp(2 * np.asarray(model.apply(state.variables, full)).real)
    in_sector = (full[:, :4].sum(1) == 2) & (full[:, 4:].sum(1) == 2)
    assert prob.sum() == pytest.approx(1.0, abs=1e-10)
    assert prob[~in_sector].max() < 1e-30
    x = _assert_in_sector(state.samples, 4, 2, 2)
    assert len(x) >= 100_000


def test_metropolis_hops_never_leave_the_sector(chain4):
    """A Slater determinant (not carrying the constraint) is sampled by same-spin hops from chains started in the
    sector: 10^5 samples, all in it."""
    model = build_ansatz(AnsatzChoice("slater"), chain4)
    state = make_state(chain4, model, n_samples=100_000, seed=1)
    assert "SectorExchangeRule" in repr(state.sampler.rule)
    _assert_in_sector(state.samples, 4, 2, 2)


def test_backflow_without_correction_is_netkets_slater(chain4):
    backflow = build_ansatz(AnsatzChoice("backflow", features=8), chain4)
    slater = build_ansatz(AnsatzChoice("slater"), chain4)
    x = chain4.sector_states()
    params = backflow.init(jax.random.PRNGKey(0), x[:2])
    orbitals = {"params": {k: v for k, v in params["params"].items() if k.startswith("M_")}}
    np.testing.assert_allclose(backflow.apply(params, x), slater.apply(orbitals, x), atol=1e-12)
    # a non-zero backflow changes ψ
    kicked = jax.tree_util.tree_map(lambda a: a + 0.1, params)
    assert np.max(np.abs(backflow.apply(kicked, x) - slater.apply(orbitals, x))) > 1e-3


def test_several_determinants_are_netkets_multi_slater(chain4):
    model = build_ansatz(AnsatzChoice("slater", determinants=2), chain4)
    assert isinstance(model, nk.models.MultiSlater2nd) and model.n_determinants == 2
    x = chain4.sector_states()
    assert np.all(np.isfinite(np.asarray(model.apply(model.init(jax.random.PRNGKey(0), x[:2]), x))))


def test_determinant_ansatze_refuse_other_systems():
    from hamiltonians import heisenberg

    with pytest.raises(ValueError, match="spinful-fermion"):
        build_ansatz(AnsatzChoice("slater"), heisenberg(4))
    with pytest.raises(ValueError, match="determinants"):
        build_ansatz(AnsatzChoice("slater", determinants=0), hubbard(4, U=1.0))


def test_determinant_states_rebuild_from_their_result_file(tmp_path, chain4, kind="backflow"):
    """Models on the sector's space (Slater, backflow) record it as the system's, so `load_state` rebuilds them."""
    from nqs import results
    from nqs.vmc import VMCSettings, ground_state

    model = build_ansatz(AnsatzChoice(kind, features=4), chain4)
    out = tmp_path / f"{kind}.h5"
    outcome = ground_state(chain4, model, VMCSettings(n_steps=2, n_samples=0, solver="sr"), seed=0, progress=False,
                           out=str(out))
    loaded = results.load_state(out)
    x = chain4.sector_states()
    np.testing.assert_allclose(loaded.vstate.log_value(x), outcome.state.log_value(x), atol=1e-12)
