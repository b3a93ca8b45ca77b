"""The 2D Z2 lattice gauge theory and the toric code: Gauss-law and topological sectors, the builders against an
independent QuTiP construction, exact identities (toric code ↔ LGT, Wegner duality) and the gauge-invariant
autoregressive ansätze on vertex blocks (``../shared/notes/models.md`` A.8, ``ansatze.md`` §7)."""

import functools
import itertools
import json

import jax
import jax.numpy as jnp
import netket as nk
import numpy as np
import pytest

import nqs.exact
from ansatze import ARRNN, ARTransformer
from hamiltonians import toric_code, z2_gauge
from nqs.recipes import rebuild_system
from nqs.states import make_state
from nqs.z2_gauss_law import Z2GaussLaw


# -- physical values, computed from the configurations (independently of the constraint) ------------------------------
def _fields_of_tokens(values, L):
    """σˣ (D, L, L, 2) [y, x, direction] of token values (D, L²): u = 2a + b, a (b) the x-link (y-link) index."""
    values = np.asarray(values, np.int64)
    bits = np.stack([values >> 1, values & 1], axis=-1)
    return (1 - 2 * bits).reshape(-1, L, L, 2)


def _fields(system, x):
    """σˣ (B, L, L, 2) of NetKet configurations: mode 2v + d ↔ [y, x, d], v = y·L + x; local index 0 ↔ σˣ = +1."""
    idx = np.asarray(system.hilbert.states_to_local_indices(np.asarray(x)))
    L = system.params["L"]
    return (1 - 2 * idx).reshape(-1, L, L, 2)


def _stars(sx):
    """A_v = σˣ_{v,x̂} σˣ_{v,ŷ} σˣ_{v−x̂,x̂} σˣ_{v−ŷ,ŷ}, (B, L, L) [y, x]."""
    return sx[..., 0] * sx[..., 1] * np.roll(sx[..., 0], 1, axis=2) * np.roll(sx[..., 1], 1, axis=1)


def _windings(sx):
    """(W_x, W_y) (B, 2): the x-links of column 0 and the y-links of row 0."""
    return np.stack([np.prod(sx[:, :, 0, 0], axis=1), np.prod(sx[:, 0, :, 1], axis=1)], axis=1)


# -- sectors ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("L", [2, 3])
def test_sector_sizes_and_every_configuration_obeys_its_laws(L):
    n = L * L
    every = Z2GaussLaw(L)
    assert every.count() == 2 ** (n + 1) == len(every.sector())
    total = []
    for winding in itertools.product((1, -1), repeat=2):
        constraint = Z2GaussLaw(L, winding=winding)
        configs = constraint.sector()
        assert constraint.count() == len(configs) == 2 ** (n - 1)
        sx = _fields_of_tokens(configs, L)
        assert np.all(_stars(sx) == 1) and np.all(_windings(sx) == winding)
        total.append(configs)
    everything = np.concatenate(total)
    assert len(np.unique(everything, axis=0)) == 2 ** (n + 1)  # the four sectors partition A_v = +1
    # static charges: Π_v A_v = 1 needs an even number of them; the sector has the same size
    g = np.ones(n, int)
    g[[0, n - 1]] = -1
    charged = Z2GaussLaw(L, targets=tuple(g), winding=(1, -1))
    sx = _fields_of_tokens(charged.sector(), L)
    assert len(sx) == 2 ** (n - 1) and np.all(_stars(sx).reshape(-1, n) == g) and np.all(_windings(sx) == (1, -1))


def test_any_generation_order_has_no_dead_end_and_the_same_sector():
    """The GF(2) look-ahead holds in any order: a random permutation and the reversed raster enumerate the same
    configurations (`sector` itself refuses a reachable prefix with an empty mask)."""
    L, n = 3, 9
    base = Z2GaussLaw(L, winding=(1, 1))
    reference = {tuple(c) for c in base.sector()}
    for order in (np.random.default_rng(0).permutation(n), np.arange(n)[::-1]):
        permuted = base.permuted(order)
        configs = permuted.sector()
        physical = np.empty_like(configs)
        physical[:, order] = configs  # generation step i holds block order[i]
        assert {tuple(c) for c in physical} == reference
    assert base.permuted(np.arange(n)) == base


def test_system_sector_states_and_graph():
    system = z2_gauge(3, g=0.5)
    states = system.sector_states()
    assert len(states) == nqs.exact.sector_dimension(system) == 2**8
    sx = _fields(system, states)
    assert np.all(_stars(sx) == 1) and np.all(_windings(sx) == 1)
    assert system.graph.n_nodes == system.n_tokens == 9 and system.token_map.token_sizes == (4,) * 9
    assert toric_code(2, hz=0.1).constraint is None


# -- operators -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("system", [
    pytest.param(lambda: z2_gauge(2, g=0.7, charges=[0, 3]), id="lgt_charges"),
    pytest.param(lambda: z2_gauge(2, g=-0.3, sector="all"), id="lgt_all"),
    pytest.param(lambda: toric_code(2, Jv=1.3, Jp=0.8, hx=0.4, hz=0.3), id="toric_fields"),
])
def test_netket_operators_equal_the_independent_qutip_construction(system):
    system = system()
    assert nqs.exact.check_operators(system) < 1e-12
    assert set(system.observables) >= {"plaquette", "electric_field", "wilson_loop_1x1", "gauss_law_violation"}


def test_observables_and_rebuild_from_the_recorded_parameters():
    system = z2_gauge(4, g=0.3, sector=(1, -1), charges=[1, 6])
    assert {f"wilson_loop_{s}" for s in ("1x1", "1x2", "2x2")} <= set(system.observables)
    rebuilt = rebuild_system(system.builder, json.loads(json.dumps(system.params)))
    assert json.dumps(rebuilt.describe(), sort_keys=True) == json.dumps(system.describe(), sort_keys=True)
    toric = toric_code(3, hx=0.2)
    assert rebuild_system(toric.builder, toric.params).describe() == toric.describe()


# -- exact energies ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("L", [2, 3])
def test_toric_code_ground_energy_and_degeneracy(L):
    gs = nqs.exact.ground_state(toric_code(L), with_gap=True)
    assert gs.energy == pytest.approx(-2 * L * L, abs=1e-10)
    assert gs.gap == pytest.approx(0.0, abs=1e-9)  # four topological sectors
    assert gs.observables["gauss_law_violation"] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("L", [2, 3])
def test_toric_code_in_a_field_is_the_gauge_theory(L):
    """E0_toric(L, h_x, h_z = 0) = −L² + E0_LGT(L, g = h_x) over all topological sectors; for g > 0 the ground state
    lies in the trivial sector."""
    hx = 0.4
    toric = nqs.exact.ground_state(toric_code(L, hx=hx))
    every = nqs.exact.ground_state(z2_gauge(L, g=hx, sector="all"))
    trivial = nqs.exact.ground_state(z2_gauge(L, g=hx))
    assert toric.energy == pytest.approx(-L * L + every.energy, abs=1e-10)
    assert trivial.energy == pytest.approx(every.energy, abs=1e-10)
    obs = trivial.observables
    assert obs["wilson_loop_1x1"] == pytest.approx(obs["plaquette"], abs=1e-12)
    assert obs["gauss_law_violation"] == pytest.approx(0.0, abs=1e-12)
    assert trivial.energy == pytest.approx(-L * L * (obs["plaquette"] + 2 * hx * obs["electric_field"]), abs=1e-10)


def test_toric_code_self_duality_in_the_full_space():
    """Exchanging the lattice and its dual maps stars ↔ plaquettes and σˣ ↔ σᶻ: E0(h_x = h, 0) = E0(0, h_z = h);
    the h_z model has no constraint and is diagonalised in the full 2^8 space."""
    h = 0.35
    assert nqs.exact.ground_state(toric_code(2, hz=h)).energy == pytest.approx(
        nqs.exact.ground_state(toric_code(2, hx=h)).energy, abs=1e-10)


def _dual_tfim_even_ground_energy(L, g):
    """−Σ_p τˣ_p − g Σ_⟨pp'⟩ τᶻ_p τᶻ_p' on the L×L dual torus, Z2-even sector Π τˣ = +1, in the τˣ basis (numpy)."""
    n = L * L
    configs = [c for c in itertools.product((0, 1), repeat=n) if sum(c) % 2 == 0]
    index = {c: i for i, c in enumerate(configs)}
    bonds = [(y * L + x, y * L + (x + 1) % L) for y in range(L) for x in range(L)]
    bonds += [(y * L + x, ((y + 1) % L) * L + x) for y in range(L) for x in range(L)]
    H = np.diag([-float(sum(1 - 2 * np.asarray(c))) for c in configs])
    for c in configs:
        for p, q in bonds:
            flipped = list(c)
            flipped[p] ^= 1
            flipped[q] ^= 1
            H[index[tuple(flipped)], index[c]] -= g
    return np.linalg.eigvalsh(H)[0]


@pytest.mark.parametrize("g", [0.25, 0.6])
def test_wegner_duality(g):
    """E0_LGT(L = 3, g) in the trivial topological sector equals the Z2-even dual TFIM (models.md A.8)."""
    energy = nqs.exact.ground_state(z2_gauge(3, g=g)).energy
    assert energy == pytest.approx(_dual_tfim_even_ground_energy(3, g), abs=1e-10)


# -- gauge-invariant autoregressive ansätze --------------------------------------------------------------------------
def _models(system):
    tokens, constraint = system.token_map, system.constraint
    return {
        "transformer": ARTransformer(system.hilbert, layers=1, features=8, heads=2, tokens=tokens,
                                     constraint=constraint),
        "rnn": ARRNN(system.hilbert, hidden=8, cell="gru", tokens=tokens, constraint=constraint),
    }


def _log_psi(model, params, states):
    return np.asarray(jax.jit(model.apply)({"params": params}, jnp.asarray(states)))


@pytest.mark.parametrize(("L", "kind"), [(2, "transformer"), (3, "rnn")])
def test_uniform_conditionals_are_the_exact_toric_code_ground_state(L, kind):
    """Zero parameters give uniform conditionals over the allowed values: the uniform superposition of the A_v = +1
    configurations, whose energy summed over the sector is −(N_v + N_p) = −2L² (ansatze.md §7)."""
    system = toric_code(L)
    model = _models(system)[kind]
    if L == 2:  # NetKet's full sum over the basis (2^8 states)
        vs = nk.vqs.FullSumState(system.hilbert, model, seed=0)
        vs.parameters = jax.tree_util.tree_map(jnp.zeros_like, vs.parameters)
        assert np.sum(np.abs(vs.to_array(normalize=False)) ** 2) == pytest.approx(1.0, abs=1e-12)
        assert vs.expect(system.hamiltonian).mean.real == pytest.approx(-8.0, abs=1e-10)
        random = nk.vqs.FullSumState(system.hilbert, model, seed=5)  # and random parameters, far from uniform
        random.parameters = jax.tree_util.tree_map(lambda p: 3.0 * p, random.parameters)
        prob = np.abs(random.to_array(normalize=False)) ** 2
        assert prob.sum() == pytest.approx(1.0, abs=1e-12) and prob.max() > 3 / 32
        inside = np.all(_stars(_fields(system, system.hilbert.all_states())).reshape(-1, 4) == 1, axis=1)
        assert inside.sum() == 32 and prob[~inside].max() < 1e-30
        return
    states = system.sector_states()  # the sum over the sector's 2^10 configurations
    params = model.init(jax.random.PRNGKey(0), jnp.asarray(states[:1]))["params"]
    psi = np.exp(_log_psi(model, jax.tree_util.tree_map(jnp.zeros_like, params), states))
    assert np.sum(np.abs(psi) ** 2) == pytest.approx(1.0, abs=1e-12)
    H = nqs.exact.sector_matrix(system.hamiltonian, states)
    assert np.vdot(psi, H @ psi).real == pytest.approx(-2 * L * L, abs=1e-10)
    assert np.ptp(np.abs(psi)) < 1e-12  # uniform over the sector


@functools.cache
def _sampled_systems():
    """Trivial sector (Transformer) and a charged pair in all topological sectors (RNN), L = 3."""
    return {"transformer": z2_gauge(3, g=0.5), "rnn": z2_gauge(3, g=0.5, sector="all", charges=[0, 4])}


@pytest.mark.parametrize("kind", ["transformer", "rnn"])
def test_every_sample_obeys_every_gauss_law_and_the_sector_is_normalised(kind):
    system = _sampled_systems()[kind]
    model = _models(system)[kind]
    g = np.ones(9, int)
    g[system.params["charges"]] = -1
    states = system.sector_states()
    vs = make_state(system, model, n_samples=50_000, seed=1)
    vs.parameters = jax.tree_util.tree_map(lambda p: 3.0 * p, vs.parameters)  # random, far from uniform
    x = np.asarray(vs.samples).reshape(-1, system.n_sites)
    sx = _fields(system, x)
    assert len(x) >= 50_000 and np.all(_stars(sx).reshape(-1, 9) == g)
    if system.params["sector"] == "trivial":
        assert np.all(_windings(sx) == 1)
    prob = np.exp(2 * _log_psi(model, vs.parameters, states).real)
    assert prob.sum() == pytest.approx(1.0, abs=1e-10)
    assert prob.max() > 3 / len(states)
    outside = np.asarray(system.hilbert.random_state(jax.random.PRNGKey(2), 512))
    outside = outside[np.any(_stars(_fields(system, outside)).reshape(-1, 9) != g, axis=1)]
    assert np.exp(2 * _log_psi(model, vs.parameters, outside).real).max() < 1e-30


# -- bad input -------------------------------------------------------------------------------------------------------
def test_bad_input_is_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="odd number of Z2 charges"):
        Z2GaussLaw(3, targets=(-1,) + (1,) * 8)
    with pytest.raises(ValueError, match="odd number of Z2 charges"):
        z2_gauge(2, g=0.1, charges=[1])
    for L in (1, 0, 2.5):
        with pytest.raises(ValueError, match="L >= 2"):
            z2_gauge(L, g=0.1)
        with pytest.raises(ValueError, match="L >= 2"):
            toric_code(L)
    with pytest.raises(ValueError, match="at least 2×2"):
        Z2GaussLaw(1)
    with pytest.raises(ValueError, match="targets must be 4 values"):
        Z2GaussLaw(2, targets=(1, 1, 1))
    with pytest.raises(ValueError, match="winding"):
        Z2GaussLaw(2, winding=(1, 0))
    with pytest.raises(ValueError, match="unknown sector"):
        z2_gauge(2, g=0.1, sector="odd")
    with pytest.raises(ValueError, match="distinct vertices"):
        z2_gauge(2, g=0.1, charges=[0, 4])
    with pytest.raises(ValueError, match="permutation"):
        Z2GaussLaw(2).permuted([0, 0, 1, 2])
