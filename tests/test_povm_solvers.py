"""The regularised solvers of S θ̇ = F (`dynamics.povm.solvers`): SNR filter, sample-space pseudo-inverse, CV cut-off."""

import jax.numpy as jnp
import netket as nk
import numpy as np
import pytest
from povm_helpers import UP, sampled_state

from dynamics.povm import PovmTDVPSettings, cv_solve, evolve_povm_tdvp, snr_solve
from dynamics.povm.solvers import _smooth_pinv_solve
from hamiltonians import dissipative_tfi


def test_snr_solve_is_the_smooth_pseudo_inverse_without_filter_and_damps_unresolved_forces():
    rng = np.random.default_rng(0)
    n = 4000
    signal = rng.normal(size=n)
    Oc = np.stack([signal, rng.normal(size=n), rng.normal(size=n)], axis=1)
    q, _ = np.linalg.qr(Oc - Oc.mean(0))  # centred, orthogonal columns: S is diagonal, its modes are the columns
    Oc = jnp.asarray(np.sqrt(n) * q * np.array([1.0, 2.0, 3.0]))
    centred = jnp.asarray(0.7 * Oc[:, 0] + 0.1 * rng.normal(size=n))
    centred = centred - centred.mean()
    S, F = Oc.T @ Oc / n, Oc.T @ centred / n
    plain, _ = nk.optimizer.solver.pinv_smooth(S, F, rtol=1e-12, rtol_smooth=1e-8)
    unfiltered = snr_solve(Oc, centred, rtol=1e-12, rtol_smooth=1e-8, snr_tol=0.0)
    np.testing.assert_allclose(unfiltered, plain, rtol=1e-10, atol=1e-12)
    filtered = snr_solve(Oc, centred, rtol=1e-12, rtol_smooth=1e-8, snr_tol=4.0)
    assert abs(filtered[0] - plain[0]) < 1e-6 * abs(plain[0])  # the resolved force (SNR ~ 400) is kept
    assert np.all(np.abs(filtered[1:]) < 0.2 * np.abs(plain[1:]))  # pure-noise forces (SNR ~ 1) are damped
    with pytest.raises(ValueError, match="snr_tol"):
        PovmTDVPSettings(solver="snr", snr_tol=-1.0)


def test_fewer_samples_than_parameters_solve_in_sample_space_with_the_same_pseudo_inverse():
    """The minSR form (eigendecomposition of the 30 × 30 AAᵀ) equals the pseudo-inverse from the 80 × 80 S: NetKet's
    pinv_smooth, and the SNR filter computed from S's own modes."""
    rng = np.random.default_rng(1)
    n, p = 30, 80
    Oc = rng.normal(size=(n, p)) * np.geomspace(1.0, 1e-3, p)
    Oc -= Oc.mean(0)
    centred = Oc[:, :5] @ rng.normal(size=5) + 0.05 * rng.normal(size=n)
    centred -= centred.mean()
    S, F = Oc.T @ Oc / n, Oc.T @ centred / n
    for cutoff in (1e-2, 1e-6):
        expected, _ = nk.optimizer.solver.pinv_smooth(jnp.asarray(S), jnp.asarray(F), rtol=1e-10, rtol_smooth=cutoff)
        dual = _smooth_pinv_solve(jnp.asarray(Oc / np.sqrt(n)), jnp.asarray(centred / np.sqrt(n)), 1e-10,
                                  jnp.asarray([cutoff]))[0]
        np.testing.assert_allclose(dual, expected, rtol=1e-7, atol=1e-9 * np.abs(expected).max())
    lam, V = np.linalg.eigh(S)
    keep = lam > 1e-10 * lam[-1]
    lam, V = lam[keep], V[:, keep]
    rho = V.T @ F
    per_sample = (Oc @ V) * centred[:, None]
    snr = np.abs(rho) * np.sqrt(n) / per_sample.std(axis=0)
    damping = 1 / (1 + (1e-6 * lam[-1] / lam) ** 6) / (1 + (2.0 / snr) ** 6)
    expected = V @ (damping * rho / lam)
    got = snr_solve(jnp.asarray(Oc), jnp.asarray(centred), rtol=1e-10, rtol_smooth=1e-6, snr_tol=2.0)
    np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-9 * np.abs(expected).max())
    assert np.abs(got).max() > 0


@pytest.mark.slow  # suite time (the default set must stay under 15 min on 2 cores)
def test_cv_solve_is_pinv_smooth_for_one_cutoff_and_rejects_noise_fits():
    rng = np.random.default_rng(0)
    Oc, centred = rng.normal(size=(200, 12)), rng.normal(size=200)
    x, cutoff = cv_solve(jnp.asarray(Oc), jnp.asarray(centred), rtol=1e-14, cutoffs=(1e-3,))
    o, c = Oc - Oc.mean(0), centred - centred.mean()
    expected, _ = nk.optimizer.solver.pinv_smooth(jnp.asarray(o.T @ o / 200), jnp.asarray(o.T @ c / 200),
                                                  rtol=1e-14, rtol_smooth=1e-3)
    np.testing.assert_allclose(x, expected, atol=1e-12)
    assert float(cutoff) == 1e-3

    # 3 strong directions carry the signal; 100 weak ones (S eigenvalues ~1e-6 of the largest) only noise
    def draw(n):
        o = np.concatenate([rng.normal(size=(n, 3)), 1e-3 * rng.normal(size=(n, 100))], axis=1)
        return o, o[:, :3] @ np.array([1.0, -0.5, 0.3]) + 0.3 * rng.normal(size=n)

    (o, c), (o_new, c_new) = draw(200), draw(20000)
    grid = (1e-2, 1e-4, 1e-6, 1e-8)
    x_cv, chosen = cv_solve(jnp.asarray(o), jnp.asarray(c), rtol=1e-14, cutoffs=grid)
    x_small, _ = cv_solve(jnp.asarray(o), jnp.asarray(c), rtol=1e-14, cutoffs=(1e-8,))

    def residual(x):
        r = (c_new - c_new.mean()) - (o_new - o_new.mean(0)) @ np.asarray(x)
        return np.mean(r**2) / np.var(c_new)

    floor = 0.3**2 / np.var(c_new)  # the noise variance: the residual of the exact θ̇
    assert float(chosen) >= 1e-4
    assert residual(x_cv) < 1.05 * floor and residual(x_small) > 1.5 * floor
    # end to end: the chosen cut-off is recorded
    out = evolve_povm_tdvp(dissipative_tfi(2, g=1.0), sampled_state(2, UP, 64), PovmTDVPSettings(
        t_end=0.01, dt=0.01, n_save=2, integrator="Euler", solver="cv", n_obs_samples=100), exact=False, progress=False)
    assert out.rows[-1]["tdvp_cutoff"] in PovmTDVPSettings().cv_cutoffs
    with pytest.raises(ValueError, match="cv_cutoffs"):
        PovmTDVPSettings(cv_cutoffs=())
