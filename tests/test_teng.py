"""TENG and projected time stepping: scheme orders, the infidelity estimator, and dynamics against QuTiP."""

import jax.numpy as jnp
import netket as nk
import numpy as np
import pytest
from test_tdvp import (
    _state,  # the ψ(x) = c_x model: every state is exactly representable
)

import dynamics.teng as teng_module
from ansatze import ARTransformer
from dynamics.infidelity import infidelity
from dynamics.product_expansions import (
    SCHEMES,
    Scheme,
    Stage,
    amplification,
    get_scheme,
)
from dynamics.teng import TENGSettings, _Fitter, evolve_teng, teng_step
from hamiltonians import tfim
from nqs import exact, results


@pytest.fixture(scope="module")
def tfim6():
    return tfim(6, h=1.0)


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_scheme_order(name):
    """R(z) − e^z = O(z^{p+1}): halving z divides the local error by 2^{p+1}."""
    scheme = get_scheme(name)
    z = 0.08j * np.exp(0.3j)
    errors = [abs(amplification(scheme, z / 2**k) - np.exp(z / 2**k)) for k in range(2)]
    assert np.log2(errors[0] / errors[1]) == pytest.approx(scheme.order + 1, abs=0.1)


def test_scheme_errors():
    with pytest.raises(ValueError, match="unknown scheme"):
        get_scheme("rk7")
    with pytest.raises(ValueError, match="not yet available"):
        Scheme("bad", 1, (Stage(((1, 1.0, 1.0),)),))


def _random_pair(rng, n, closeness):
    chi = rng.normal(size=n) + 1j * rng.normal(size=n)
    phi = chi * (1 + closeness * (rng.normal(size=n) + 1j * rng.normal(size=n)))
    return chi, phi


def test_infidelity_estimator_exact_on_full_sums_and_unbiased_on_samples():
    rng = np.random.default_rng(0)
    n = 256
    chi, phi = _random_pair(rng, n, 0.1)
    exact_value = 1 - abs(np.vdot(chi, phi)) ** 2 / (np.vdot(chi, chi).real * np.vdot(phi, phi).real)
    zero = jnp.zeros(n)
    full = infidelity(jnp.log(chi), jnp.log(phi), zero, jnp.log(chi), jnp.log(phi), zero)
    assert float(full) == pytest.approx(exact_value, abs=1e-12)

    p_chi, p_phi = abs(chi) ** 2 / np.sum(abs(chi) ** 2), abs(phi) ** 2 / np.sum(abs(phi) ** 2)

    def estimates(c, repeats=300, n_samples=256):
        out = []
        for _ in range(repeats):
            x, y = rng.choice(n, n_samples, p=p_chi), rng.choice(n, n_samples, p=p_phi)
            lx, ly = np.log(chi[x]), np.log(phi[y])
            out.append(float(infidelity(lx, np.log(phi[x]), 2 * lx.real, np.log(chi[y]), ly, 2 * ly.real, c)))
        return np.array(out)

    with_cv, without_cv = estimates(-0.5), estimates(0.0)
    for values in (with_cv, without_cv):
        assert abs(values.mean() - exact_value) < 4 * values.std() / np.sqrt(len(values)) + 1e-3 * exact_value
    assert with_cv.std() < 0.5 * without_cv.std()  # the control variate removes most of the noise


def test_teng_full_sum_follows_sesolve(tfim6, tmp_path):
    vs = _state(tfim6, exact.product_state(tfim6.hilbert, "x+"))
    settings = TENGSettings(t_end=1.0, dt=0.05, n_save=5, scheme="ppe4")
    out = evolve_teng(tfim6, vs, settings, progress=False, out=str(tmp_path / "teng.h5"))
    assert out.series("infidelity").max() < 1e-6
    assert np.nanmax(out.series("loss_max")) < 1e-10  # every stage is fitted to machine precision
    np.testing.assert_allclose(out.series("magnetization_x"), out.exact.observables["magnetization_x"], atol=1e-4)
    res = results.load(tmp_path / "teng.h5")
    assert res.method["name"] == "dynamics.teng" and res.method["scheme"] == "ppe4"
    np.testing.assert_allclose(res.history["magnetization_x"], res.exact["magnetization_x"], atol=1e-4)


def test_teng_heun_follows_sesolve_to_t_half_with_exact_stage_fits(tfim6):
    """Issue 29's yardstick (TDVP-RK4 meets it in test_tdvp.test_tdvp_full_sum_follows_sesolve): on a full-sum state
    that represents every ψ, TENG-Heun follows sesolve to infidelity ≤ 1e-6 at t = 0.5 and every stage's fit leaves an
    infidelity loss ≤ 1e-8. Heun's error is O(Δt²): measured √(1 − F) = 6.0e-3 (Δt = 0.02), 1.5e-3 (0.01); Δt = 0.005
    gives ≈ 4e-4, i.e. an infidelity ≈ 1.4e-7, with the fits at round-off (1e-15)."""
    vs = _state(tfim6, exact.product_state(tfim6.hilbert, "x+"))
    out = evolve_teng(tfim6, vs, TENGSettings(t_end=0.5, dt=0.005, n_save=2, scheme="heun"), progress=False)
    assert out.series("time")[-1] == pytest.approx(0.5) and out.series("infidelity")[-1] < 1e-6
    assert np.nanmax(out.series("loss_max")) < 1e-8


def test_teng_heun_is_second_order(tfim6):
    """Halving Δt divides the TENG-Heun error at fixed t by ~4 (exact fits, so only the scheme errs)."""
    errors = []
    for dt in (0.1, 0.05):
        vs = _state(tfim6, exact.product_state(tfim6.hilbert, "x+"))
        out = evolve_teng(tfim6, vs, TENGSettings(t_end=0.4, dt=dt, n_save=2, scheme="heun"), progress=False)
        errors.append(np.sqrt(out.series("infidelity")[-1]))
    assert 3.0 < errors[0] / errors[1] < 5.0


def test_teng_stage_loss_decreases_monotonically(tfim6):
    model = ARTransformer(tfim6.hilbert, layers=1, features=8, heads=2, initial_distribution=(0.5, 0.5))
    vs = nk.vqs.FullSumState(tfim6.hilbert, model, seed=1)
    settings = TENGSettings(dt=0.02, t_end=0.02, n_save=2, scheme="heun")
    fitter = _Fitter(tfim6, vs, settings)
    _, reports, _ = teng_step(fitter, get_scheme("heun"), vs.parameters, settings.damping)
    for report in reports:
        assert len(report.losses) > 2 and np.all(np.diff(report.losses) < 0)
        assert report.losses[-1] < 1e-2 * report.losses[0]


def test_imaginary_time_teng_reaches_ground_state(tfim6):
    vs = _state(tfim6, exact.product_state(tfim6.hilbert, "x+"))
    out = evolve_teng(
        tfim6, vs, TENGSettings(t_end=10.0, dt=0.1, n_save=2, scheme="lpe2", propagation="imag"), progress=False
    )
    e0 = np.linalg.eigvalsh(tfim6.hamiltonian.to_dense())[0]
    assert out.series("energy")[-1] == pytest.approx(e0, rel=1e-7)


@pytest.mark.slow  # ~60 s, mostly compilation; the estimators are checked against full sums in the default suite
def test_monte_carlo_teng_with_the_transformer(tfim6):
    model = ARTransformer(tfim6.hilbert, layers=1, features=8, heads=2, initial_distribution=(0.5, 0.5))
    vs = nk.vqs.MCState(nk.sampler.ARDirectSampler(tfim6.hilbert), model, n_samples=256, seed=1, sampler_seed=2)
    settings = TENGSettings(t_end=0.1, dt=0.05, n_save=2, scheme="heun", max_iterations=8)
    out = evolve_teng(tfim6, vs, settings, progress=False)
    assert out.series("infidelity")[-1] < 2e-3
    assert abs(out.series("magnetization_x")[-1] - out.exact.observables["magnetization_x"][-1]) < 2e-2


def test_interrupted_run_resumes_from_checkpoint(tfim6, tmp_path, monkeypatch):
    settings = TENGSettings(t_end=0.3, dt=0.05, n_save=4, scheme="euler")
    psi0 = exact.product_state(tfim6.hilbert, "x+")
    reference = evolve_teng(tfim6, _state(tfim6, psi0), settings, progress=False)

    path = str(tmp_path / "resume.h5")
    calls = {"n": 0}
    real_step = teng_module.teng_step

    def failing_step(*args):
        calls["n"] += 1
        if calls["n"] == 4:  # during the third save interval
            raise KeyboardInterrupt
        return real_step(*args)

    monkeypatch.setattr(teng_module, "teng_step", failing_step)
    with pytest.raises(KeyboardInterrupt):
        evolve_teng(tfim6, _state(tfim6, psi0), settings, progress=False, out=path)
    assert results.load(path).n_rows == 2
    monkeypatch.setattr(teng_module, "teng_step", real_step)
    resumed = evolve_teng(tfim6, _state(tfim6, psi0), settings, progress=False, out=path, mode="resume")
    res = results.load(path)
    np.testing.assert_allclose(res.history["time"], settings.times)
    np.testing.assert_allclose(res.history["magnetization_x"], reference.series("magnetization_x"), atol=1e-10)
    np.testing.assert_allclose(resumed.series("infidelity"), reference.series("infidelity")[2:], atol=1e-10)
    # the checkpointed parameters start a second run where the first ended
    second = _state(tfim6, psi0)
    second.parameters = results.load_parameters(path)
    again = evolve_teng(tfim6, second, TENGSettings(t_end=0.05, dt=0.05, n_save=2, scheme="euler"), progress=False)
    assert again.series("magnetization_x")[0] == pytest.approx(reference.series("magnetization_x")[-1], abs=1e-12)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"dt": 0.0}, "dt must be"),
        ({"scheme": "rk7"}, "unknown scheme"),
        ({"t_end": 1.0, "dt": 0.3}, "whole number of steps"),
        ({"t_end": 1.0, "dt": 0.1, "n_save": 4}, "split evenly"),
        ({"form": "lstsq"}, "form must be"),
        ({"damping": 0.0}, "damping_min"),
    ],
)
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TENGSettings(**kwargs)


def test_hilbert_mismatch_is_refused(tfim6):
    other = tfim(4, h=1.0)
    with pytest.raises(ValueError, match="lives on"):
        evolve_teng(other, _state(tfim6, exact.product_state(tfim6.hilbert, "x+")), progress=False)
