"""The private NetKet attributes nqs relies on (`nqs.netket_compat`) still mean what they meant: a NetKet release
that renames or changes one fails here, loudly, instead of deep inside a driver."""

import jax.numpy as jnp
import netket as nk
import netket.experimental as nkx
import numpy as np
import optax
import pytest

from nqs import netket_compat


@pytest.fixture(scope="module")
def small():
    hi = nk.hilbert.Spin(0.5, 3)
    hamiltonian = nk.operator.Ising(hi, nk.graph.Chain(3), h=1.0)
    return hi, hamiltonian


def test_driver_loss_stats_and_step_counter(small):
    hi, hamiltonian = small
    vstate = nk.vqs.FullSumState(hi, nk.models.RBM(alpha=1, param_dtype=float), seed=0)
    driver = nk.driver.VMC(hamiltonian, optax.sgd(0.01), variational_state=vstate)
    seen = []

    class Capture(nk.callbacks.AbstractCallback):
        def before_parameter_update(self, step, log_data, driver):
            seen.append(netket_compat.loss_stats(driver, log_data))

    driver.run(2, callback=Capture(), show_progress=False)
    assert len(seen) == 2 and all(isinstance(s, nk.stats.Stats) for s in seen)
    assert seen[-1].mean == pytest.approx(complex(driver.energy.mean))  # the stats of the step being logged
    netket_compat.set_step_count(driver, 7)
    assert driver.step_count == 7
    driver.run(1, show_progress=False)
    assert driver.step_count == 8  # the loop continues from the counter we set


def test_apply_fun_evaluates_log_psi(small):
    hi, _ = small
    vstate = nk.vqs.MCState(nk.sampler.MetropolisLocal(hi, n_chains=4), nk.models.RBM(alpha=1), n_samples=16, seed=0)
    x = jnp.asarray(hi.all_states())
    np.testing.assert_allclose(netket_compat.apply_fun(vstate)(vstate.variables, x), vstate.log_value(x), rtol=1e-12)


def test_tdvp_schmitt_exposes_its_signal_to_noise_ratios(small):
    hi, hamiltonian = small
    vstate = nk.vqs.MCState(nk.sampler.MetropolisLocal(hi, n_chains=8), nk.models.RBM(alpha=1, param_dtype=complex),
                            n_samples=64, seed=0)
    driver = nkx.driver.TDVPSchmitt(hamiltonian, vstate, nkx.dynamics.Euler(dt=0.01), holomorphic=True)
    driver.run(0.01, show_progress=False)
    snr = netket_compat.tdvp_snr(driver)
    assert snr is not None and np.asarray(snr).ndim == 1 and np.all(np.asarray(snr) >= 0)
    assert netket_compat.tdvp_snr(nkx.TDVP(hamiltonian, vstate, nkx.dynamics.Euler(dt=0.01))) is None


def test_sampler_extension_point_has_the_signature_our_samplers_override():
    assert netket_compat.sample_chain_signature() == netket_compat.SAMPLE_CHAIN_PARAMETERS


def test_full_sum_force_kernel_reproduces_the_full_sum_forces(small):
    import jax

    hi, hamiltonian = small
    vstate = nk.vqs.FullSumState(hi, nk.models.RBM(alpha=1, param_dtype=float), seed=0)
    psi = vstate.to_array()
    o_psi = jnp.asarray(hamiltonian.to_sparse() @ np.asarray(psi))
    mean, forces, _ = netket_compat.full_sum_forces(vstate, False, o_psi, psi)
    reference_mean, reference = vstate.expect_and_forces(hamiltonian)
    assert complex(mean.mean) == pytest.approx(complex(reference_mean.mean), abs=1e-12)
    for a, b in zip(jax.tree.leaves(forces), jax.tree.leaves(reference), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-12)
