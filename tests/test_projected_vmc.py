"""Full-sum ground-state search of a coherently projected ansatz (`nqs.projected_vmc`): the orbit-reduced energy and
gradient against a brute-force projection over every group image, convergence to ED, resumption, bad input."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import netket as nk
import numpy as np
import pytest

import nqs  # noqa: F401
from ansatze import ARTransformer
from hamiltonians import heisenberg, with_jumps
from nqs import exact, projected_vmc, results
from nqs.projected_vmc import ProjectedSettings, projected_ground_state
from nqs.symmetry import SymmetrySector, group_elements, symmetry_group

CHAIN = heisenberg(6, J2=0.3)
TRANSLATIONS = symmetry_group(CHAIN.graph, "translations")
# momentum π: χ(T^n) = (−1)^n with perm[j] = j − n mod 6
MOMENTUM_PI = (-1.0) ** ((6 - TRANSLATIONS[:, 0]) % 6)


@pytest.mark.slow  # suite time; the NetKet SymmExpSum comparison stays
def test_orbit_energy_and_gradient_match_brute_force_projection():
    """E and ∂E/∂θ of ψ_G summed per orbit equal those of Σ_g χ_g ψ(g x) evaluated on every image, for a
    non-autoregressive model with complex parameters and Jacobian chunks that need padding."""
    model = nk.models.RBM(alpha=1, param_dtype=complex)
    sector = SymmetrySector.build(CHAIN.sector_states(), TRANSLATIONS, characters=MOMENTUM_PI, spin_flip=-1)
    variables = model.init(jax.random.PRNGKey(1), jnp.asarray(sector.states[:2]))
    params = jax.tree_util.tree_map(lambda p: 0.3 * p, variables["params"])
    real_params, restore = nk.jax.tree_to_real(params)
    matrix = exact.sector_matrix(CHAIN.hamiltonian, sector.states)
    orbits = projected_vmc.OrbitSums(matrix, model, sector, 7, {}, real_params, restore)
    flat, unravel = jax.flatten_util.ravel_pytree(real_params)

    perms, flips, chi = group_elements(TRANSLATIONS, 6, -1, MOMENTUM_PI)
    states = jnp.asarray(sector.states)
    images = flips[:, None, None] * states[:, perms].transpose(1, 0, 2)  # (M, D, N): g x
    hamiltonian = jnp.asarray(matrix.toarray())

    def brute_energy(flat):
        log_psi = model.apply({"params": restore(unravel(flat))}, images.reshape(-1, 6)).reshape(len(perms), -1)
        psi = jnp.einsum("g,gd->d", jnp.asarray(chi), jnp.exp(log_psi))
        return jnp.real(jnp.vdot(psi, hamiltonian @ psi) / jnp.vdot(psi, psi))

    amplitudes, (psi_r, _, weights, local, energy, _) = orbits.evaluate(unravel(flat))
    np.testing.assert_allclose(float(energy.real), float(brute_energy(flat)), rtol=1e-12)
    assert abs(float(energy.imag)) < 1e-12
    log_derivatives = orbits.orbit_log_derivatives(unravel(flat), amplitudes, psi_r)
    _, gradient = orbits.natural_gradient(log_derivatives, weights, local, energy, 1e-4)
    np.testing.assert_allclose(2 * np.asarray(gradient), np.asarray(jax.grad(brute_energy)(flat)), atol=1e-10)


def test_orbit_energy_equals_netket_symmexpsum_full_sum():
    """The peer: NetKet's `SymmExpSum` over the space group in a `FullSumState`, same base parameters."""
    graph = nk.graph.Chain(6, max_neighbor_order=2)
    hilbert = nk.hilbert.Spin(0.5, 6, total_sz=0)
    operator = nk.operator.Heisenberg(hilbert, graph, J=[1.0, 0.3], sign_rule=[True, False])
    system = heisenberg(6, J2=0.3, marshall=True)
    base = ARTransformer(system.hilbert, layers=1, features=8, heads=2, constraint=system.constraint, phase=True)
    vstate = nk.vqs.FullSumState(hilbert, nk.nn.blocks.SymmExpSum(module=base, symm_group=graph.space_group()),
                                 seed=3)
    sector = SymmetrySector.build(system.sector_states(), symmetry_group(system.graph, "space"))
    real_params, restore = nk.jax.tree_to_real(vstate.parameters["module"])
    orbits = projected_vmc.OrbitSums(exact.sector_matrix(system.hamiltonian, sector.states), base, sector, 64, {},
                                       real_params, restore)
    energy = orbits.evaluate(real_params)[1][4]
    np.testing.assert_allclose(float(energy.real), float(vstate.expect(operator).mean.real), rtol=1e-12)


J1J2 = heisenberg(8, J2=0.2, marshall=True)
SPACE = symmetry_group(J1J2.graph, "space")
SETTINGS = ProjectedSettings(n_steps=8, learning_rate=0.05, checkpoint_every=3, observables_every=4)


@pytest.fixture(scope="module")
def small_transformer():
    return ARTransformer(J1J2.hilbert, layers=1, features=8, heads=2, constraint=J1J2.constraint, phase=True)


@pytest.mark.slow  # suite time (the default set must stay under 15 min on 2 cores)
def test_projected_transformer_reaches_exact_ground_state(small_transformer, tmp_path):
    """J1-J2 chain, L = 8, J2 = 0.2 (Marshall-rotated, symmetric irrep, even under the flip): ED within 1e-6."""
    out = projected_ground_state(J1J2, small_transformer, SPACE, dataclasses.replace(SETTINGS, n_steps=60,
                                 energy_tol=1e-7), spin_flip=1, out=str(tmp_path / "p.h5"), progress=False)
    assert out.relative_error < 1e-6 and out.fidelity > 0.9999
    assert out.stop_reason == "energy_tol" and out.steps < 60
    assert abs(out.energy - exact.ground_state(J1J2).energy) < 1e-5
    result = results.load(tmp_path / "p.h5")
    assert result.method["name"] == "nqs.projected_vmc.projected_ground_state"
    assert result.ansatz["projection"]["n_orbits"] == out.sector.n_orbits
    history = result.history
    assert history["energy"][0] > history["energy"][-1]
    np.testing.assert_allclose(history["fidelity"][-1], out.fidelity)
    np.testing.assert_allclose(history["nn_correlation_zz"][-1],
                               exact.ground_state(J1J2).observables["nn_correlation_zz"],
                               atol=1e-3)


def test_resumed_run_continues_exactly(small_transformer, tmp_path):
    path = str(tmp_path / "r.h5")
    whole = projected_ground_state(J1J2, small_transformer, SPACE, SETTINGS, spin_flip=1, exact=False, progress=False)
    projected_ground_state(J1J2, small_transformer, SPACE, dataclasses.replace(SETTINGS, n_steps=5), spin_flip=1,
                           out=path, exact=False, progress=False)
    resumed = projected_ground_state(J1J2, small_transformer, SPACE, SETTINGS, spin_flip=1, out=path, mode="resume",
                                     exact=False, progress=False)
    assert resumed.steps == whole.steps == SETTINGS.n_steps
    np.testing.assert_allclose(resumed.energy, whole.energy, rtol=1e-10)
    steps = results.load(path).history["step"]
    np.testing.assert_array_equal(steps, np.arange(SETTINGS.n_steps + 1))
    leaves = zip(jax.tree_util.tree_leaves(resumed.parameters), jax.tree_util.tree_leaves(whole.parameters))
    assert all(np.allclose(a, b, atol=1e-10) for a, b in leaves)


def test_interrupted_run_resumes_to_the_same_result_and_restarts_from_its_parameters(small_transformer, tmp_path,
                                                                                     interrupt_at_row):
    path = str(tmp_path / "i.h5")
    settings = dataclasses.replace(SETTINGS, n_steps=8, checkpoint_every=3, observables_every=4)
    whole = projected_ground_state(J1J2, small_transformer, SPACE, settings, spin_flip=1, exact=False, progress=False)
    interrupt_at_row(6)  # during step 5: checkpoints after steps 2 and 5 -> the one after step 2 holds
    with pytest.raises(KeyboardInterrupt):
        projected_ground_state(J1J2, small_transformer, SPACE, settings, spin_flip=1, out=path, exact=False,
                               progress=False)
    assert results.load(path).checkpoint_step == 2 and results.load(path).n_rows == 5
    interrupt_at_row(0)
    resumed = projected_ground_state(J1J2, small_transformer, SPACE, settings, spin_flip=1, out=path, mode="resume",
                                     exact=False, progress=False)
    np.testing.assert_allclose(resumed.energy, whole.energy, rtol=1e-12)
    history = results.load(path).history
    np.testing.assert_array_equal(history["step"], np.arange(settings.n_steps + 1))
    second = projected_ground_state(J1J2, small_transformer, SPACE, dataclasses.replace(settings, n_steps=0),
                                    spin_flip=1, exact=False, progress=False,
                                    initial_parameters=lambda fresh: results.load_parameters(path))
    assert second.energy == pytest.approx(resumed.energy, rel=1e-12)


def test_bad_input_is_refused(small_transformer, monkeypatch):
    staggered = heisenberg(8, J2=0.2, marshall=True, h_staggered=0.5)  # breaks the one-site translation
    with pytest.raises(ValueError, match="does not commute"):
        projected_ground_state(staggered, small_transformer, SPACE, SETTINGS, exact=False, progress=False)
    with pytest.raises(ValueError, match="closed system"):
        projected_ground_state(with_jumps(J1J2, dephasing=1.0), small_transformer, SPACE, SETTINGS,
                               progress=False)
    other = heisenberg(6, J2=0.2)
    with pytest.raises(ValueError, match="Hilbert space"):
        projected_ground_state(other, small_transformer, symmetry_group(other.graph, "space"), SETTINGS,
                               progress=False)
    monkeypatch.setattr(projected_vmc, "MAX_SECTOR_STATES", 50)
    with pytest.raises(ValueError, match="at most 50"):
        projected_ground_state(J1J2, small_transformer, SPACE, SETTINGS, progress=False)
    with pytest.raises(ValueError, match="learning_rate"):
        ProjectedSettings(learning_rate=float("nan"))


def test_checkpoint_holds_the_parameter_tree(small_transformer, tmp_path):
    """The checkpoint holds the model's parameter tree at /checkpoint/params, as for every method, so
    `results.load_parameters` returns it (it returned a flat vector before the run layer)."""
    path = str(tmp_path / "c.h5")
    out = projected_ground_state(J1J2, small_transformer, SPACE, dataclasses.replace(SETTINGS, n_steps=3),
                                 spin_flip=1, out=path, exact=False, progress=False)
    assert results.load(path).checkpoint_step == 2
    loaded = results.load_parameters(path)
    pairs = zip(jax.tree_util.tree_leaves(loaded), jax.tree_util.tree_leaves(out.parameters), strict=True)
    assert jax.tree_util.tree_structure(loaded) == jax.tree_util.tree_structure(out.parameters)
    assert all(np.array_equal(a, b) for a, b in pairs)
