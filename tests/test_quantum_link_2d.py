"""The 2+1D spin-½ U(1) quantum link model: ice-rule sectors against brute force, the builder against QuTiP, the
Rokhsar–Kivelson point, and gauge-invariant samples (``../shared/notes/models.md`` A.6)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nqs.exact
from ansatze import ARTransformer
from hamiltonians import quantum_link_2d
from nqs.ice_rule import IceRule
from nqs.recipes import rebuild_system
from nqs.states import make_state


def _fields_of_tokens(values, Lx, Ly):
    """E (D, Ly, Lx, 2) [y, x, direction] of token values u = 2a + b (a, b the x-, y-link indices; E = ½ − index)."""
    values = np.asarray(values, np.int64)
    return (0.5 - np.stack([values >> 1, values & 1], axis=-1)).reshape(-1, Ly, Lx, 2)


def _gauss(E):
    """G_v = E_{v,x̂} + E_{v,ŷ} − E_{v−x̂,x̂} − E_{v−ŷ,ŷ} (D, Ly, Lx)."""
    return E[..., 0] + E[..., 1] - np.roll(E[..., 0], 1, axis=2) - np.roll(E[..., 1], 1, axis=1)


def _windings(E):
    return np.stack([E[:, :, 0, 0].sum(axis=1), E[:, 0, :, 1].sum(axis=1)], axis=1)


def _brute_force_ice(Lx, Ly):
    """Every link configuration of the torus obeying G_v = 0, as E (D, Ly, Lx, 2), by filtering the full space."""
    n = 2 * Lx * Ly
    bits = (np.arange(2**n)[:, None] >> np.arange(n - 1, -1, -1)) & 1
    E = (0.5 - bits).reshape(-1, Ly, Lx, 2)
    return E[np.all(_gauss(E) == 0, axis=(1, 2))]


@pytest.mark.parametrize(("Lx", "Ly", "every", "zero"), [(2, 2, 18, 6), (4, 2, 114, 38), (2, 4, 114, 38),
                                                         (4, 4, 2970, 990)])
def test_sector_sizes_and_every_configuration_obeys_the_ice_rule(Lx, Ly, every, zero):
    all_windings, no_winding = IceRule(Lx, Ly), IceRule(Lx, Ly, winding=(0, 0))
    configs = all_windings.sector()
    assert all_windings.count() == len(configs) == every
    assert no_winding.count() == len(no_winding.sector()) == zero
    E = _fields_of_tokens(configs, Lx, Ly)
    assert np.all(_gauss(E) == 0)
    assert np.sum(np.all(_windings(E) == 0, axis=1)) == zero
    if Lx * Ly <= 8:
        assert len(_brute_force_ice(Lx, Ly)) == every


def test_any_generation_order_enumerates_the_same_sector():
    base = IceRule(4, 2, winding=(0, 0))
    reference = {tuple(c) for c in base.sector()}
    for order in (np.random.default_rng(1).permutation(8), np.arange(8)[::-1]):
        configs = base.permuted(order).sector()
        physical = np.empty_like(configs)
        physical[:, order] = configs
        assert {tuple(c) for c in physical} == reference


def test_netket_operators_equal_the_independent_qutip_construction_and_the_brute_force_spectrum():
    system = quantum_link_2d(2, 2, J=1.0, lam=0.3, winding=None)
    assert nqs.exact.check_operators(system) < 1e-12
    full = system.to_qutip()["H"].full()
    E = _brute_force_ice(2, 2)
    bits = (0.5 - E).reshape(len(E), -1).astype(int)
    keep = bits @ (1 << np.arange(7, -1, -1))  # basis number: mode 0 most significant, local index 0 first
    reference = np.linalg.eigvalsh(full[np.ix_(keep, keep)])
    ours = np.linalg.eigvalsh(nqs.exact.sector_matrix(system.hamiltonian, system.sector_states()).toarray())
    np.testing.assert_allclose(ours, reference, atol=1e-10)


@pytest.mark.parametrize(("Lx", "Ly", "winding"), [(4, 2, None), (4, 4, (0, 0)), (4, 4, (1, 0))])
def test_rokhsar_kivelson_point_has_zero_ground_energy(Lx, Ly, winding):
    """E0 = 0 at λ = J in every winding sector; diagonalised in the sector basis (the 4×4 torus has 2^32 basis states,
    too many for `nqs.exact.ground_state`'s full-space embedding)."""
    system = quantum_link_2d(Lx, Ly, J=1.0, lam=1.0, winding=winding)
    states = system.sector_states()
    energies = np.linalg.eigvalsh(nqs.exact.sector_matrix(system.hamiltonian, states).toarray())
    assert energies[0] == pytest.approx(0.0, abs=1e-10)
    for name, value in (("gauss_law_violation", 0.0), ("winding_x", None if winding is None else winding[0])):
        if value is not None:
            diagonal = nqs.exact.sector_matrix(system.observables[name], states).diagonal()
            assert np.allclose(diagonal, value, atol=1e-12), name
    rebuilt = rebuild_system(system.builder, json.loads(json.dumps(system.params)))
    assert rebuilt.describe() == system.describe()


def test_every_sample_obeys_the_ice_rule_and_the_sector_is_normalised():
    system = quantum_link_2d(4, 4, lam=0.5, winding=(0, 0))
    model = ARTransformer(system.hilbert, layers=1, features=8, heads=2, tokens=system.token_map,
                          constraint=system.constraint)
    vs = make_state(system, model, n_samples=20_000, seed=4)
    vs.parameters = jax.tree_util.tree_map(lambda p: 3.0 * p, vs.parameters)
    x = np.asarray(vs.samples).reshape(-1, system.n_sites)
    E = 0.5 - np.asarray(system.hilbert.states_to_local_indices(x)).reshape(-1, 4, 4, 2)
    assert len(x) >= 20_000 and np.all(_gauss(E) == 0) and np.all(_windings(E) == 0)
    states = system.sector_states()
    log_psi = np.asarray(jax.jit(model.apply)({"params": vs.parameters}, jnp.asarray(states)))
    prob = np.exp(2 * log_psi.real)
    assert len(states) == 990 and prob.sum() == pytest.approx(1.0, abs=1e-10) and prob.max() > 3 / 990


def test_bad_input_is_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="at least 2×2"):
        IceRule(1, 2)
    with pytest.raises(ValueError, match="integers"):
        IceRule(2, 2, winding=(0.5, 0))
    with pytest.raises(ValueError, match="no configuration"):
        quantum_link_2d(2, 2, winding=(2, 0))
    with pytest.raises(ValueError, match="permutation"):
        IceRule(2, 2).permuted([0, 1, 1, 2])
