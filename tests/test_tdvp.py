"""Exact closed-system dynamics and TDVP with full summation against QuTiP."""

import flax.linen as nn
import jax.numpy as jnp
import netket as nk
import numpy as np
import pytest

import dynamics.tdvp as tdvp_module
from ansatze import ARTransformer
from dynamics.tdvp import TDVPSettings, evolve_tdvp
from hamiltonians import heisenberg, tfim
from nqs import exact, results


class Amplitudes(nn.Module):
    """ψ(x) = c_x: every state is exactly representable, and the TDVP equation is linear in c.

    (NetKet's `LogStateVector`, θ_x = log ψ(x), is exactly representable too, but its TDVP equation is
    stiff near amplitude nodes: RK4 with dt = 0.01 loses 9 % fidelity by t = 1 on this quench.)
    """

    hilbert: nk.hilbert.DiscreteHilbert

    @nn.compact
    def __call__(self, x):
        c = self.param("c", nn.initializers.ones, (self.hilbert.n_states,), complex)
        return jnp.log(c[self.hilbert.states_to_numbers(x)])


@pytest.fixture(scope="module")
def tfim6():
    return tfim(6, h=1.0)


def _state(system, psi):
    vs = nk.vqs.FullSumState(system.hilbert, Amplitudes(system.hilbert))
    vs.parameters = {"c": jnp.asarray(psi, dtype=complex)}
    return vs


def test_product_states_and_exact_evolution_paths(tfim6):
    hi = tfim6.hilbert
    neel = exact.product_state(hi, "neel")
    assert neel[int("010101", 2)] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="unknown product state"):
        exact.product_state(hi, "spiral")
    psi0 = exact.product_state(hi, "x+")
    times = np.linspace(0, 1, 6)
    a = exact.evolve(tfim6, psi0, times, method="sesolve")
    b = exact.evolve(tfim6, psi0, times, method="expm")
    np.testing.assert_allclose(a.norm, 1, atol=1e-9)
    np.testing.assert_allclose(a.energy, a.energy[0], atol=1e-8)  # energy is conserved
    assert np.min(np.abs(np.einsum("ti,ti->t", a.states.conj(), b.states))) ** 2 > 1 - 1e-9
    np.testing.assert_allclose(a.observables["magnetization_x"], b.observables["magnetization_x"], atol=1e-8)
    assert a.loschmidt[0] == pytest.approx(1.0) and a.entropy[0] == pytest.approx(0.0, abs=1e-12)
    assert a.entropy[-1] > 0.1


def test_tdvp_full_sum_follows_sesolve(tfim6, tmp_path):
    vs = _state(tfim6, exact.product_state(tfim6.hilbert, "x+"))
    settings = TDVPSettings(t_end=1.0, dt=0.01, n_save=11, holomorphic=True)
    out = evolve_tdvp(tfim6, vs, settings, progress=False, out=str(tmp_path / "tdvp.h5"))
    assert len(out.rows) == 11
    assert out.series("infidelity").max() < 1e-6
    np.testing.assert_allclose(out.series("magnetization_x"), out.exact.observables["magnetization_x"], atol=1e-6)
    res = results.load(tmp_path / "tdvp.h5")
    np.testing.assert_allclose(res.history["time"], res.exact["time"])
    np.testing.assert_allclose(res.history["magnetization_x"], res.exact["magnetization_x"], atol=1e-6)
    assert res.kind == "dynamics" and res.method["integrator"] == "RK4"


def test_imaginary_time_reaches_ground_state(tfim6):
    vs = _state(tfim6, exact.product_state(tfim6.hilbert, "x+"))
    settings = TDVPSettings(t_end=8.0, dt=0.05, n_save=3, propagation="imag", holomorphic=True)
    out = evolve_tdvp(tfim6, vs, settings, progress=False)
    e0 = np.linalg.eigvalsh(tfim6.hamiltonian.to_dense())[0]
    assert out.series("energy")[-1] == pytest.approx(e0, rel=1e-6)


@pytest.mark.parametrize(
    "kwargs,match",
    [({"dt": 0.0}, "dt must be"), ({"integrator": "Leapfrog"}, "unknown integrator"), ({"t_end": -1.0},
                                                                                       "t_end must be")],
)
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TDVPSettings(**kwargs)


@pytest.mark.slow  # suite time (the default set must stay under 15 min on 2 cores)
def test_tdvp_residual_vanishes_for_an_exact_model_and_snr_filter_runs(tfim6):
    vs = _state(tfim6, exact.product_state(tfim6.hilbert, "x+"))
    settings = TDVPSettings(t_end=0.1, dt=0.05, n_save=2, holomorphic=True, exact_residual=True)
    out = evolve_tdvp(tfim6, vs, settings, progress=False)
    assert np.all(out.series("tdvp_residual") < 1e-8)  # every state is representable: exact projection
    assert np.all(out.series("tdvp_residual_min") < 1e-8)

    small = tfim(4, h=1.0)
    model = nk.models.RBM(alpha=1, param_dtype=complex)
    mc = nk.vqs.MCState(nk.sampler.ExactSampler(small.hilbert), model, n_samples=512, seed=1, sampler_seed=2)
    settings = TDVPSettings(t_end=0.02, dt=0.01, n_save=2, solver="schmitt", snr_atol=2.0, pinv_rtol_smooth=1e-6,
                            exact_residual=True)
    out = evolve_tdvp(small, mc, settings, progress=False)
    assert np.all(np.isfinite(out.series("snr_median"))) and 0 <= out.series("tdvp_residual")[-1] < 1
    # the sampled θ̇ scored by the exact sums never beats the least-squares floor
    floor, scored = out.series("tdvp_residual_min"), out.series("tdvp_residual_exact")
    assert np.all((0 <= floor) & (floor <= scored + 1e-12) & (scored < 1))
    with pytest.raises(ValueError, match="needs a Monte Carlo state"):
        evolve_tdvp(tfim6, vs, settings, progress=False)


@pytest.mark.slow  # suite time (the default set must stay under 15 min on 2 cores)
def test_tdvp_residual_of_a_masked_model_sums_over_its_support():
    # a constrained autoregressive model has log ψ ≈ −1e30 outside its sector; summing there gave r² = NaN
    system = heisenberg(4)
    model = ARTransformer(system.hilbert, layers=1, features=4, heads=1, constraint=system.constraint)
    vs = nk.vqs.FullSumState(system.hilbert, model, seed=3)
    settings = TDVPSettings(t_end=0.02, dt=0.01, n_save=2, holomorphic=False, exact_residual=True)
    out = evolve_tdvp(system, vs, settings, progress=False)
    r2 = out.series("tdvp_residual")
    assert np.all(np.isfinite(r2)) and np.all((0 <= r2) & (r2 < 1))
    np.testing.assert_allclose(out.series("tdvp_residual_min"), r2, atol=1e-12)  # representable: both ≈ 0
    # fewer parameters than configurations: the floor is positive, the same for real (re/im split) and holomorphic
    # parameters, never beaten and (once S is well conditioned) reached by the full-sum solve
    tfim8 = tfim(8, h=1.0)
    floors = []
    for holomorphic in (False, True):
        vs = nk.vqs.FullSumState(tfim8.hilbert, nk.models.RBM(alpha=1, param_dtype=complex), seed=3)
        settings = TDVPSettings(t_end=0.02, dt=0.01, n_save=2, holomorphic=holomorphic, exact_residual=True)
        out = evolve_tdvp(tfim8, vs, settings, progress=False)
        floors.append(out.series("tdvp_residual_min"))
        assert floors[-1][-1] > 1e-4
        r2 = out.series("tdvp_residual")
        assert np.all(floors[-1] <= r2 * (1 + 1e-9) + 1e-12)
        np.testing.assert_allclose(r2[-1], floors[-1][-1], rtol=1e-3)  # (at t = 0, W ≈ 0: the cut-off shows)
    np.testing.assert_allclose(floors[0][0], floors[1][0], rtol=1e-6)  # same state at t = 0


def test_interrupted_run_resumes_from_checkpoint(tfim6, tmp_path, monkeypatch):
    settings = TDVPSettings(t_end=0.3, dt=0.05, n_save=4, holomorphic=True)
    psi0 = exact.product_state(tfim6.hilbert, "x+")
    reference = evolve_tdvp(tfim6, _state(tfim6, psi0), settings, progress=False)

    path = str(tmp_path / "resume.h5")
    real = tdvp_module._ResidualEstimator.diagnostics
    calls = {"n": 0}

    def failing(self, driver):
        calls["n"] += 1
        if calls["n"] == 3:  # at the second save point after t = 0
            raise KeyboardInterrupt
        return real(self, driver)

    monkeypatch.setattr(tdvp_module._ResidualEstimator, "diagnostics", failing)
    with pytest.raises(KeyboardInterrupt):
        evolve_tdvp(tfim6, _state(tfim6, psi0), settings, progress=False, out=path)
    assert results.load(path).n_rows == 2
    monkeypatch.setattr(tdvp_module._ResidualEstimator, "diagnostics", real)
    moved = _state(tfim6, exact.product_state(tfim6.hilbert, "neel"))  # the checkpoint overrides it
    resumed = evolve_tdvp(tfim6, moved, settings, progress=False, out=path, mode="resume")
    res = results.load(path)
    np.testing.assert_allclose(res.history["time"], settings.times)
    np.testing.assert_allclose(res.history["magnetization_x"], reference.series("magnetization_x"), atol=1e-10)
    np.testing.assert_allclose(resumed.series("infidelity"), reference.series("infidelity")[2:], atol=1e-10)
    assert res.history["integrator_steps"][-1] == reference.series("integrator_steps")[-1]
    # the checkpointed parameters start a second run where the first ended
    loaded = results.load_parameters(path)
    np.testing.assert_array_equal(loaded["c"], np.asarray(resumed.state.parameters["c"]))
    second = _state(tfim6, psi0)
    second.parameters = loaded
    again = evolve_tdvp(tfim6, second, TDVPSettings(t_end=0.05, dt=0.05, n_save=2, holomorphic=True), progress=False)
    assert again.series("magnetization_x")[0] == pytest.approx(reference.series("magnetization_x")[-1], abs=1e-12)
