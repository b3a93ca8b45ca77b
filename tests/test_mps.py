"""The periodic MPS started at |→⟩ by a shift register: exact start, local tangent space, translation invariance,
TDVP against QuTiP, and the refusals of `--ansatz mps`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import netket as nk
import numpy as np
import pytest

from ansatze.choice import AnsatzChoice, build_ansatz
from ansatze.mps import BlockMPS, product_start_mps, shift_register_tensors
from dynamics.tdvp import TDVPSettings, evolve_tdvp
from hamiltonians import heisenberg, tfim


def _log_psi_and_jacobian(model, hilbert, key=0, *, jacobian=True):
    x = hilbert.all_states()
    params = model.init(jax.random.PRNGKey(key), x[:1])["params"]
    log_psi = np.asarray(model.apply({"params": params}, x))
    if not jacobian:
        return x, log_psi, None
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    jac = jax.jacfwd(lambda p: model.apply({"params": unravel(p)}, x), holomorphic=True)(flat.astype(complex))
    return x, log_psi, np.asarray(jac)


@pytest.mark.parametrize("local_size, bond_dim, n", [(2, 1, 5), pytest.param(2, 6, 6, marks=pytest.mark.slow),
                                                     (2, 8, 6), (3, 10, 4)])  # slow: suite time
def test_start_is_exactly_the_uniform_state(local_size, bond_dim, n):
    hilbert = nk.hilbert.Spin(0.5 * (local_size - 1), n)
    for cell in (1, 2, None):
        model = product_start_mps(hilbert, bond_dim, cell=cell if cell is None or n % cell == 0 else 1)
        _, log_psi, _ = _log_psi_and_jacobian(model, hilbert, jacobian=False)
        np.testing.assert_allclose(log_psi, 0.0, atol=1e-12)  # ψ(σ) = 1: |→⟩ for spins 1/2
    a = shift_register_tensors(local_size, bond_dim)
    assert a.shape == (local_size, bond_dim, bond_dim) and set(np.unique(a).tolist()) <= {0.0, 1.0}


def test_every_window_function_is_a_first_order_direction():
    # χ = 4: a register of the last 2 spins, so every 3-site window function is in the tangent space at the start;
    # NetKet's own start (identity + 0.01 noise) reaches the neighbour correlation only weakly
    hilbert = nk.hilbert.Spin(0.5, 6)
    x, _, jac = _log_psi_and_jacobian(product_start_mps(hilbert, 4), hilbert)
    basis = np.concatenate([np.ones((len(x), 1)), jac], axis=1)

    def residual(jacobian, f):
        coef = np.linalg.lstsq(jacobian, f, rcond=None)[0]
        return np.linalg.norm(jacobian @ coef - f) / np.linalg.norm(f - f.mean())

    zz = np.sum(x * np.roll(x, -1, axis=1), axis=1)
    window = np.sum(x * np.roll(x, -2, axis=1) + 0.3 * x * np.roll(x, -1, axis=1) * np.roll(x, -2, axis=1), axis=1)
    assert residual(basis, zz.astype(complex)) < 1e-10 and residual(basis, window.astype(complex)) < 1e-10
    default = nk.models.tensor_networks.MPSPeriodic(hilbert, bond_dim=4, symperiod=1, param_dtype=complex)
    _, _, jac_default = _log_psi_and_jacobian(default, hilbert)
    # what is missing from NetKet's start shows up as a least-squares residual with a tiny-singular-value cut
    basis_default = np.concatenate([np.ones((len(x), 1)), jac_default], axis=1)
    coef = np.linalg.lstsq(basis_default, zz.astype(complex), rcond=1e-4)[0]
    assert np.linalg.norm(basis_default @ coef - zz) > 0.1 * np.linalg.norm(zz - zz.mean())


def test_translation_invariant_with_noise():
    hilbert = nk.hilbert.Spin(0.5, 6)
    model = product_start_mps(hilbert, 4, noise=0.3)
    x, log_psi, _ = _log_psi_and_jacobian(model, hilbert, key=3, jacobian=False)
    assert np.std(log_psi) > 1e-2  # the noise made ψ non-uniform ...
    params = model.init(jax.random.PRNGKey(3), x[:1])
    for shift in (1, 2, 5):  # ... and it stays a function of the ring, not of the site labels
        np.testing.assert_allclose(np.asarray(model.apply(params, jnp.roll(x, shift, axis=1))), log_psi, atol=1e-10)


def test_tdvp_full_sum_follows_sesolve_from_the_product_start(tmp_path):
    system = tfim(6, h=1.0)
    vs = nk.vqs.FullSumState(system.hilbert, product_start_mps(system.hilbert, 8))
    out = evolve_tdvp(system, vs, TDVPSettings(t_end=1.0, dt=0.02, n_save=6, holomorphic=True,
                                               pinv_rtol_smooth=1e-10), progress=False, out=str(tmp_path / "m.h5"))
    assert out.series("magnetization_x")[0] == pytest.approx(1.0, abs=1e-12)  # exactly |→⟩
    assert out.series("infidelity").max() < 1e-6
    np.testing.assert_allclose(out.series("magnetization_x"), out.exact.observables["magnetization_x"], atol=1e-5)


def test_mps_option_refuses_what_it_cannot_do():
    choice = AnsatzChoice(kind="mps", bond_dim=4, symmetry="translations")
    assert build_ansatz(choice, tfim(4)).bond_dim == 4
    with pytest.raises(ValueError, match="cannot keep the constraint"):
        build_ansatz(choice, heisenberg(4))
    with pytest.raises(ValueError, match="only on a ring"):
        build_ansatz(choice, tfim(4, pbc=False))
    with pytest.raises(ValueError, match="only on a ring"):
        build_ansatz(AnsatzChoice(kind="mps", symmetry="point"), tfim(4))
    with pytest.raises(ValueError, match="spin-flip"):
        build_ansatz(AnsatzChoice(kind="mps", spin_flip=True), tfim(4))
    with pytest.raises(ValueError, match="unit cell"):
        build_ansatz(AnsatzChoice(kind="mps", symmetry="translations", mps_cell=3), tfim(4))
    with pytest.raises(ValueError, match="bond_dim"):
        build_ansatz(AnsatzChoice(kind="mps", bond_dim=0), tfim(4))


@pytest.mark.parametrize("local_size, n, cell", [(2, 5, 1), (2, 8, 1), (2, 12, 1), (3, 6, 1), (2, 12, 2), (2, 6, 3)])
def test_block_contraction_equals_netkets_mps(local_size, n, cell):
    hilbert = nk.hilbert.Spin(0.5 * (local_size - 1), n)
    reference = nk.models.tensor_networks.MPSPeriodic(hilbert, bond_dim=3, symperiod=cell, param_dtype=complex,
                                                      kernel_init=jax.nn.initializers.normal(0.4))
    x = hilbert.all_states()
    params = reference.init(jax.random.PRNGKey(1), x[:1])
    expected = np.asarray(reference.apply(params, x))
    log_psi = np.asarray(BlockMPS(hilbert, bond_dim=3, cell=cell).apply(params, x))
    phase = np.exp(1j * (log_psi.imag - expected.imag))  # log's branch may differ by 2πi
    np.testing.assert_allclose(log_psi.real, expected.real, atol=1e-10)
    np.testing.assert_allclose(phase, 1.0, atol=1e-10)
    assert np.std(expected.real) > 0.1  # a generic, non-uniform state
