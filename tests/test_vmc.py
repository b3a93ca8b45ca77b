"""VMC ground-state driver: accuracy against ED, resume, stop criteria, bad input."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import netket as nk
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from ansatze import ARTransformer
from hamiltonians import heisenberg, tfim
from nqs import results
from nqs.result_file import ResultFile, ResultFileError
from nqs.vmc import NonFiniteError, VMCSettings, ground_state


@pytest.fixture(scope="module")
def chain6():
    return heisenberg(6, marshall=True)


def _tiny(system):
    return ARTransformer(system.hilbert, layers=1, features=8, heads=2, constraint=system.constraint, phase=False)


@pytest.mark.slow  # the default suite checks the same accuracy on the main job's quick run (tests/test_runs.py)
def test_vmc_heisenberg_8_sites_reaches_exact_energy(tmp_path):
    system = heisenberg(8, marshall=True)
    model = ARTransformer(system.hilbert, layers=1, features=16, heads=2, constraint=system.constraint, phase=False)
    settings = VMCSettings(
        n_steps=150, n_samples=512, learning_rate=0.05, lr_schedule="cosine", lr_final=0.005,
        diag_shift=1e-3, solver="minsr", energy_tol=2e-4, n_samples_final=4096,
    )
    out = ground_state(system, model, settings, seed=1, out=str(tmp_path / "h8.h5"), progress=False)
    assert out.exact_energy == pytest.approx(-3.6510934089 * 4, rel=1e-9)  # Pauli units, L=8 PBC
    assert out.relative_error < 1e-3, out.relative_error
    res = results.load(tmp_path / "h8.h5")
    assert res.exact["energy"] == pytest.approx(out.exact_energy)
    assert res.history["energy"][-1] == pytest.approx(float(out.energy.mean.real))


def _run(system, path, n_steps, mode="fail", callbacks=()):
    settings = VMCSettings(n_steps=n_steps, n_samples=64, learning_rate=0.05, checkpoint_every=4,
                           solver="sr", n_samples_final=64, observables_every=3)
    return ground_state(system, _tiny(system), settings, seed=3, out=str(path), mode=mode,
                        callbacks=callbacks, progress=False, config={"test": "resume"})


def test_resume_after_interruption_gives_same_parameters(tmp_path, chain6):
    full = _run(chain6, tmp_path / "full.h5", 12)

    def crash(step, row, driver):
        if step == 9:
            raise KeyboardInterrupt("simulated kill")

    with pytest.raises(KeyboardInterrupt):
        _run(chain6, tmp_path / "part.h5", 12, callbacks=[crash])
    partial = results.load(tmp_path / "part.h5")
    assert partial.checkpoint_step == 7  # checkpoints after steps 3 and 7
    assert len(partial.history["step"]) >= 9  # every finished step was kept
    resumed = _run(chain6, tmp_path / "part.h5", 12, mode="resume")
    a = ravel_pytree(full.state.parameters)[0]
    b = ravel_pytree(resumed.state.parameters)[0]
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=0, atol=1e-10)
    hist = results.load(tmp_path / "part.h5").history
    np.testing.assert_array_equal(hist["step"], np.arange(13))  # 12 steps + the final evaluation


def test_existing_file_in_fail_mode_raises(tmp_path, chain6):
    _run(chain6, tmp_path / "a.h5", 1)
    with pytest.raises(FileExistsError, match="exists"):
        _run(chain6, tmp_path / "a.h5", 1)


def test_energy_tolerance_stops_early(chain6):
    """energy_tol = 1e-2: the run stops at the first step whose energy is within 1 % of the exact one, and not before.
    Exact sums (n_samples = 0) make each step's energy E(θ_k) exact, so the stop rule sees no noise and the final
    energy (the state after that step's SR update, again exact) lies within the tolerance: E ≥ E0 (variational) and
    SR with this small rate lowers E (measured: stop at step 10 of 50, rows 0.715 … 0.0167, 0.0060; final 0.0018)."""
    tol, n_steps = 1e-2, 50
    settings = VMCSettings(n_steps=n_steps, n_samples=0, learning_rate=0.05, energy_tol=tol, observables_every=0)
    energies = []
    out = ground_state(chain6, _tiny(chain6), settings, progress=False,
                       callbacks=[lambda step, row, driver: energies.append(row["energy"])])
    e0 = out.exact_energy
    rel = np.abs(np.array(energies) - e0) / abs(e0)
    assert out.stop_reason == "energy_tol" and 1 < out.steps < n_steps and out.steps == len(energies)
    assert rel[-1] < tol and np.all(rel[:-1] >= tol)  # stopped at the first step within the tolerance
    assert 0 <= (float(out.energy.mean.real) - e0) / abs(e0) < tol and out.relative_error < tol
    # a tolerance the 8-feature model cannot reach in 3 steps: every step runs
    tight = ground_state(chain6, _tiny(chain6), dataclasses.replace(settings, n_steps=3, energy_tol=1e-9),
                         progress=False)
    assert tight.stop_reason == "n_steps" and tight.steps == 3 and tight.relative_error > 1e-9


def test_ansatz_for_another_hilbert_space_is_refused(chain6):
    other = heisenberg(8, marshall=True)
    with pytest.raises(ValueError, match="Hilbert space"):
        ground_state(chain6, _tiny(other), VMCSettings(n_steps=1), progress=False)


class _NaNModel(nn.Module):
    @nn.compact
    def __call__(self, x):
        w = self.param("w", nn.initializers.constant(jnp.nan), (x.shape[-1],))
        return x @ w


def test_non_finite_energy_stops_with_clear_error(chain6):
    with pytest.raises(NonFiniteError, match="diverged"):
        ground_state(chain6, _NaNModel(), VMCSettings(n_steps=3, n_samples=32), progress=False, exact=False)


def test_known_reference_energy_without_diagonalisation(chain6, tmp_path):
    """`reference_energy` (Bethe ansatz, published values) stands in for ED: stored as /exact/energy and used
    for the relative error; no observables are claimed exact."""
    from nqs.exact import bethe_ground_state_energy

    e0 = bethe_ground_state_energy(6)
    settings = VMCSettings(n_steps=2, n_samples=64, n_samples_final=64, observables_every=0)
    out = ground_state(chain6, _tiny(chain6), settings, exact=False, reference_energy=e0,
                       out=str(tmp_path / "ref.h5"), progress=False)
    assert out.exact_energy == e0
    assert out.relative_error == pytest.approx(abs(float(out.energy.mean.real) - e0) / abs(e0))
    res = results.load(tmp_path / "ref.h5")
    assert set(res.exact) == {"energy"} and res.exact["energy"] == pytest.approx(e0)


@pytest.mark.slow  # suite time (the default set must stay under 15 min on 2 cores)
def test_full_sum_vmc_leaves_the_neel_product_state(tmp_path):
    # Near a product state every exact sample is the same configuration and the sampled gradient vanishes;
    # the full sum (n_samples=0, FullSumState) sees every configuration. Start: the regularised Néel state,
    # ground state of the chain with a staggered field; the Marshall sign is built into the ansatz.
    from ansatze.product_start import basis_state_distribution
    from ansatze.sign_rules import sublattice_b

    system = heisenberg(6, h_staggered=4.0)
    neel = np.where(np.arange(6) % 2 == 0, 1.0, -1.0)
    model = ARTransformer(system.hilbert, layers=1, features=8, heads=2, constraint=system.constraint,
                          sign_sites=sublattice_b(system.graph),
                          initial_distribution=basis_state_distribution(system.hilbert, neel, 0.02))
    settings = VMCSettings(n_steps=50, n_samples=0, learning_rate=0.02, lr_schedule="cosine", lr_final=0.002,
                           diag_shift=1e-3, solver="sr")
    out = ground_state(system, model, settings, out=str(tmp_path / "neel6.h5"), progress=False)
    assert isinstance(out.state, nk.vqs.FullSumState)
    assert out.relative_error < 1e-4, out.relative_error  # the Néel product state has 3.7e-2
    assert float(out.energy.error_of_mean) == 0.0
    assert results.load(tmp_path / "neel6.h5").history["energy"][-1] == pytest.approx(float(out.energy.mean.real))
    with pytest.raises(ValueError, match="minsr"):
        VMCSettings(n_samples=0, solver="minsr")


def test_holomorphic_sr_gives_the_same_steps_for_the_rbm():
    """For a holomorphic model the complex QGT is the real-pair one in other coordinates: the same updates."""
    system = dataclasses.replace(tfim(4, h=1.0), observables={})
    params = []
    for holomorphic in (None, True):
        settings = VMCSettings(n_steps=3, n_samples=0, learning_rate=0.05, solver="sr", diag_shift=1e-2,
                               n_samples_final=0, holomorphic=holomorphic)
        model = nk.models.RBM(alpha=1, param_dtype=complex)
        params.append(ground_state(system, model, settings, seed=0, progress=False).state.parameters)
    for a, b in zip(*(ravel_pytree(p)[0] for p in params), strict=True):
        assert a != 0
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)


@pytest.mark.slow  # suite time (the default set must stay under 15 min on 2 cores)
def test_float32_ansatz_matches_float64_and_stays_float32(chain6):
    """--dtype float32: the same parameters give the float64 energy gradient to single precision, and the
    VMC driver keeps the parameters float32 while it lowers the energy."""
    models = {dtype: ARTransformer(chain6.hilbert, layers=1, features=8, heads=2, constraint=chain6.constraint,
                                   phase=False, param_dtype=dtype) for dtype in (jnp.float64, jnp.float32)}
    states = {dtype: nk.vqs.FullSumState(chain6.hilbert, m, seed=0) for dtype, m in models.items()}
    states[jnp.float32].parameters = jax.tree_util.tree_map(lambda x: x.astype(jnp.float32),
                                                            states[jnp.float64].parameters)
    (e64, g64), (e32, g32) = (states[d].expect_and_grad(chain6.hamiltonian) for d in (jnp.float64, jnp.float32))
    assert float(e32.mean.real) == pytest.approx(float(e64.mean.real), rel=1e-6)
    g64, g32 = ravel_pytree(g64)[0], ravel_pytree(g32)[0]
    assert g32.dtype == jnp.float32
    np.testing.assert_allclose(g32, g64, atol=1e-5 * float(jnp.abs(g64).max()))

    settings = VMCSettings(n_steps=5, n_samples=0, learning_rate=0.05, solver="sr", diag_shift=1e-2,
                           n_samples_final=0)
    out = ground_state(chain6, models[jnp.float32], settings, seed=0, progress=False)
    assert {x.dtype for x in jax.tree_util.tree_leaves(out.state.parameters)} == {jnp.dtype(jnp.float32)}
    assert float(out.energy.mean.real) < float(e64.mean.real)


def test_a_run_starts_from_the_parameters_of_a_result_file(tmp_path, chain6):
    """`results.load_parameters` reads the checkpointed parameters back; `initial_parameters` starts a new run
    there (its first energy is the old run's final one), and loading a file without a checkpoint fails."""
    settings = VMCSettings(n_steps=4, n_samples=0, learning_rate=0.05, solver="sr", diag_shift=1e-2,
                           n_samples_final=0)
    first = ground_state(chain6, _tiny(chain6), settings, seed=0, out=str(tmp_path / "a.h5"), progress=False)
    loaded = results.load_parameters(tmp_path / "a.h5")
    for a, b in zip(jax.tree_util.tree_leaves(loaded), jax.tree_util.tree_leaves(first.state.parameters), strict=True):
        np.testing.assert_array_equal(a, b)
    ground_state(chain6, _tiny(chain6), dataclasses.replace(settings, n_steps=1), seed=5,
                 out=str(tmp_path / "b.h5"), progress=False, initial_parameters=lambda fresh: loaded)
    start = results.load(tmp_path / "b.h5").history["energy"][0]
    assert start == pytest.approx(float(first.energy.mean.real), rel=1e-10)
    with ResultFile(tmp_path / "empty.h5", kind="ground_state"):
        pass
    with pytest.raises(ResultFileError, match="no checkpoint"):
        results.load_parameters(tmp_path / "empty.h5")


def test_load_state_rebuilds_system_ansatz_and_state(tmp_path, chain6):
    """`results.load_state` rebuilds the System from its builder and arguments, the ansatz from its recorded recipe and
    a state holding the checkpointed parameters: its exact energy is the run's final one, and a new observable can
    be measured on it."""
    settings = VMCSettings(n_steps=3, n_samples=0, learning_rate=0.05, solver="sr", diag_shift=1e-2, n_samples_final=0)
    first = ground_state(chain6, _tiny(chain6), settings, seed=0, out=str(tmp_path / "a.h5"), progress=False)
    loaded = results.load_state(tmp_path / "a.h5", n_samples=0)
    assert loaded.system.describe() == chain6.describe()
    assert loaded.model == _tiny(chain6)
    energy = loaded.vstate.expect(loaded.system.hamiltonian).mean
    assert float(np.real(energy)) == pytest.approx(float(first.energy.mean.real), rel=1e-12)
    sampled = results.load_state(tmp_path / "a.h5", n_samples=64)  # exact autoregressive samples, in the sector
    assert np.all(np.asarray(sampled.vstate.samples).reshape(-1, 6).sum(-1) == 0)
    corr = nk.operator.spin.sigmaz(loaded.system.hilbert, 0) @ nk.operator.spin.sigmaz(loaded.system.hilbert, 3)
    assert np.isfinite(float(np.real(loaded.vstate.expect(corr).mean)))


def test_enumerated_samples_follow_the_born_distribution_of_any_model():
    from scipy.stats import chisquare

    from nqs.states import make_state

    system = tfim(6, h=0.5)
    model = nk.models.RBM(alpha=1, param_dtype=complex)
    vs = make_state(system, model, n_samples=8192, seed=2, enumerate_samples=True)
    assert isinstance(vs.sampler, nk.sampler.ExactSampler) and vs.n_discard_per_chain == 0
    params = jax.tree_util.tree_map(lambda p: 20 * p, vs.parameters)  # far from uniform
    vs.parameters = params
    p = np.exp(2 * np.asarray(vs.log_value(system.hilbert.all_states())).real)
    counts = np.bincount(np.asarray(system.hilbert.states_to_numbers(vs.samples.reshape(-1, 6))), minlength=64)
    assert chisquare(counts, p / p.sum() * counts.sum()).pvalue > 1e-3
    with pytest.raises(ValueError, match="enumerated sampling needs at most"):
        make_state(tfim(24, h=0.5), model, n_samples=16, seed=0, enumerate_samples=True)
