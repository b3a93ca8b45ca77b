"""POVM dynamics (trapezoid, TDVP) and the variational steady state against analytic and exact references.

The model is a fully expressive autoregressive table (`TableAR`), so that every distribution over
4^N outcomes is representable and the tests measure the methods, not the ansatz.
"""

import warnings

import flax.linen as nn
import jax
import jax.numpy as jnp
import netket as nk
import numpy as np
import pytest
import scipy.linalg

from ansatze.transformer import ARTransformer
from dynamics import povm_dynamics as pd
from dynamics.povm_dynamics import (
    PovmTDVPSettings,
    SteadyStateSettings,
    TrapezoidSettings,
    cv_solve,
    evolve_povm_tdvp,
    evolve_trapezoid,
    exact_trapezoid,
    find_steady_state,
)
from hamiltonians import dissipative_tfi
from nqs import System, results
from nqs.povm import POVM, povm_lindbladian, probabilities

W = np.sqrt(35.0)
UP = (0.5, 1 / 6, 1 / 6, 1 / 6)  # tetrahedral POVM image of |up>


class TableAR(nk.models.AbstractARNN):
    """p(a_i | a_<i) = softmax(W[offset_i + index(a_<i)]): any distribution over d^N outcomes (d^N − 1 rows)."""

    machine_pow: int = 1
    initial_distribution: tuple[float, ...] | None = None

    @nn.compact
    def conditionals_log_psi(self, inputs):
        n, d = self.hilbert.size, self.hilbert.local_size
        p = self.initial_distribution or (1 / d,) * d
        rows = (d**n - 1) // (d - 1)
        table = self.param("logits", lambda *_: jnp.tile(jnp.log(jnp.asarray(p)), (rows, 1)))
        idx = self.hilbert.states_to_local_indices(inputs).astype(jnp.int32)
        prefix, offset, out = jnp.zeros(idx.shape[0], dtype=jnp.int32), 0, []
        for i in range(n):
            out.append(jax.nn.log_softmax(table[offset + prefix], axis=-1))
            offset += d**i
            prefix = prefix * d + idx[:, i]
        return jnp.stack(out, axis=1) / self.machine_pow


def _full_sum(n, p1):
    hi = nk.hilbert.Fock(n_max=3, N=n)
    return nk.vqs.FullSumState(hi, TableAR(hi, initial_distribution=tuple(p1)))


def _sampled(n, p1, n_samples):
    hi = nk.hilbert.Fock(n_max=3, N=n)
    return nk.vqs.MCState(nk.sampler.ARDirectSampler(hi), TableAR(hi, initial_distribution=tuple(p1)),
                          n_samples=n_samples, seed=0, sampler_seed=1)


@pytest.fixture(scope="module")
def qubit():
    """H = 3σˣ, L = σᶻ (γ = 1), ρ₀ = |y+⟩: ⟨σʸ⟩ = e^{−t}(w cos wt − sin wt)/w, ⟨σᶻ⟩ = (6/w) e^{−t} sin wt."""
    hi = nk.hilbert.Spin(0.5, 1)
    system = System(builder="test.single_qubit", hilbert=hi, hamiltonian=3.0 * nk.operator.spin.sigmax(hi, 0),
                    jump_operators=(nk.operator.spin.sigmaz(hi, 0),))
    P0 = probabilities(0.5 * np.array([[1, -1j], [1j, 1]]), POVM.tetrahedral(), 1)
    return system, P0


def _check_analytic(out, atol):
    t = out.times
    y = np.exp(-t) * (W * np.cos(W * t) - np.sin(W * t)) / W
    z = 6 / W * np.exp(-t) * np.sin(W * t)
    np.testing.assert_allclose(out.exact["sigma_y"], y, atol=1e-6)  # the mesolve reference on the grid
    np.testing.assert_allclose(out.exact["sigma_z"], z, atol=1e-6)
    np.testing.assert_allclose(out.series("sigma_y"), y, atol=atol)
    np.testing.assert_allclose(out.series("sigma_z"), z, atol=atol)
    np.testing.assert_allclose(out.series("sigma_x"), 0.0, atol=atol)


def test_single_site_analytic_trapezoid(qubit):
    system, P0 = qubit
    settings = TrapezoidSettings(t_end=0.5, dt=0.005, n_save=6, n_iter=300, schedule="cosine", final_fraction=1e-4)
    out = evolve_trapezoid(system, _full_sum(1, P0), settings)
    _check_analytic(out, 1e-3)
    assert max(out.series("step_loss")[1:]) < 1e-4 < min(out.series("initial_step_loss")[1:])
    np.testing.assert_allclose(out.series("purity"), out.exact["purity"], atol=1e-3)


def test_single_site_trapezoid_with_the_transformer(qubit):
    """The ARTransformer in probability mode (machine_pow=1, product initialisation) works unchanged."""
    system, P0 = qubit
    hi = nk.hilbert.Fock(n_max=3, N=1)
    model = ARTransformer(hi, layers=1, features=4, heads=1, phase=False, machine_pow=1, initial_distribution=tuple(P0))
    settings = TrapezoidSettings(t_end=0.2, dt=0.005, n_save=3, n_iter=300, schedule="cosine", final_fraction=1e-4)
    _check_analytic(evolve_trapezoid(system, nk.vqs.FullSumState(hi, model), settings), 1e-3)


def test_single_site_analytic_tdvp_and_result_file(qubit, tmp_path):
    system, P0 = qubit
    path = tmp_path / "tdvp.h5"
    out = evolve_povm_tdvp(system, _full_sum(1, P0), PovmTDVPSettings(t_end=1.0, dt=0.01, n_save=11), out=str(path))
    _check_analytic(out, 1e-4)
    assert max(out.series("tdvp_residual")[1:]) < 1e-8
    assert min(out.series("min_eig_1site")) > -1e-10  # pure at t = 0
    res = results.load(path)
    assert res.kind == "dynamics" and res.method["name"] == "dynamics.povm_tdvp" and res.method["mode"] == "full_sum"
    np.testing.assert_allclose(res.history["time"], out.times)
    np.testing.assert_allclose(results.exact_on_history(res, "sigma_z"), out.exact["sigma_z"])
    assert res.history["classical_fidelity"][-1] > 1 - 1e-8


def test_trapezoid_second_order_and_variational_fit_tracks_it():
    system = dissipative_tfi(2, g=1.0)
    L = povm_lindbladian(system, POVM.tetrahedral()).to_dense()
    P0 = np.kron(UP, UP)
    t_end = 0.4
    reference = scipy.linalg.expm(L * t_end) @ P0
    dts = (0.1, 0.05, 0.025)
    linear = {dt: exact_trapezoid(L, P0, dt, round(t_end / dt))[-1] for dt in dts}
    errors = np.array([np.abs(linear[dt] - reference).sum() for dt in dts])
    np.testing.assert_allclose(errors[:-1] / errors[1:], 4.0, rtol=0.03)  # second order: ÷4 per halving
    settings = {"t_end": t_end, "n_iter": 300, "schedule": "cosine", "final_fraction": 1e-4}
    variational = []
    for dt in dts[:2]:
        vs = _full_sum(2, UP)
        out = evolve_trapezoid(system, vs, TrapezoidSettings(dt=dt, n_save=5, **settings), exact=False)
        P = np.exp(np.asarray(vs.model.apply(vs.variables, pd.all_outcomes(2))))
        assert np.abs(P - linear[dt]).sum() < 0.1 * np.abs(linear[dt] - reference).sum()
        variational.append(np.abs(P - reference).sum())
        assert out.exact == {}
    assert variational[0] / variational[1] == pytest.approx(4.0, rel=0.1)


def test_steady_state_full_sum_three_site_tfi(tmp_path):
    system = dissipative_tfi(3, V=2.0, g=1.0, gamma=1.0)
    settings = SteadyStateSettings(n_iter=2000, eval_after=1000, eval_every=100, schedule="cosine", final_fraction=1e-3)
    path = tmp_path / "steady.h5"
    out = find_steady_state(system, _full_sum(3, UP), settings, out=str(path))
    final = out.rows[-1]
    for name in ("sigma_x", "sigma_y", "sigma_z", "zz_nn", "magnetization_x", "purity", "min_eig_2site"):
        assert final[name] == pytest.approx(out.exact[name], abs=1e-3), name
    assert out.exact["sigma_z"] == pytest.approx(out.exact["magnetization_z"], abs=1e-12)  # two exact paths
    assert out.info["best_loss"] < 1e-4 and out.info["best_step"] >= settings.eval_after
    res = results.load(path)
    assert res.kind == "steady_state" and res.checkpoint_step == settings.n_iter
    assert res.history["loss"][0] > 100 * out.info["best_loss"]
    assert results.exact_on_history(res, "sigma_x")[-1] == pytest.approx(out.exact["sigma_x"])
    loaded = results.load_parameters(path)  # the best checkpoint, which the state holds at the end
    for a, b in zip(jax.tree_util.tree_leaves(loaded), jax.tree_util.tree_leaves(out.state.parameters), strict=True):
        np.testing.assert_array_equal(a, b)


def test_natural_gradient_relaxation_reaches_the_exact_steady_state_in_few_iterations():
    """A complete model (TableAR) on the 4-site periodic chain (4 bonds, each once): the fixed point of the POVM-TDVP
    flow is the exact steady state; 100 natural steps of τ = 0.2 reach it to 1e-4."""
    system = dissipative_tfi(4, V=2.0, g=1.0, gamma=1.0)
    settings = SteadyStateSettings(optimizer="natural", learning_rate=0.2, schedule="constant", n_iter=100,
                                   eval_after=60, eval_every=20, pinv_rtol_smooth=1e-10)
    out = find_steady_state(system, _full_sum(4, UP), settings, progress=False)
    final = out.rows[-1]
    for name in ("sigma_x", "sigma_y", "sigma_z", "zz_nn", "purity"):
        assert final[name] == pytest.approx(out.exact[name], abs=1e-4), name
    assert out.info["best_loss"] < 1e-4 and out.rows[0]["loss"] > 0.1
    with pytest.raises(ValueError, match="optimizer"):
        SteadyStateSettings(optimizer="sgd")


def _killed_at_row(monkeypatch, row: int, run) -> None:
    """Run `run()` with the result file's `append` raising KeyboardInterrupt at history row number `row` (1-based)."""
    append = results.ResultFile.append
    calls = {"n": 0}

    def interrupted(self, values):
        calls["n"] += 1
        if calls["n"] == row:
            raise KeyboardInterrupt
        return append(self, values)

    with monkeypatch.context() as m:
        m.setattr(results.ResultFile, "append", interrupted)
        with pytest.raises(KeyboardInterrupt):
            run()


def _assert_same_parameters(state_a, state_b) -> None:
    for a, b in zip(jax.tree_util.tree_leaves(state_a.parameters), jax.tree_util.tree_leaves(state_b.parameters),
                    strict=True):
        np.testing.assert_array_equal(a, b)


def test_steady_state_resumes_exactly_after_an_interruption(tmp_path, monkeypatch):
    """Killed after its third history row, the resumed sampled run ends with the parameters and rows of an
    uninterrupted one (both optimizers; the checkpoint holds optimizer state, random key and best so far)."""
    system = dissipative_tfi(2, g=1.0)
    for optimizer, lr in (("adam", 1e-2), ("natural", 0.1)):
        settings = SteadyStateSettings(optimizer=optimizer, learning_rate=lr, n_iter=30, eval_after=10, eval_every=5,
                                       n_eval_samples=500, n_obs_samples=500)
        whole = find_steady_state(system, _sampled(2, UP, 200), settings, out=str(tmp_path / f"{optimizer}_whole.h5"),
                                  exact=False, progress=False)
        path = tmp_path / f"{optimizer}_cut.h5"
        _killed_at_row(monkeypatch, 4, lambda: find_steady_state(system, _sampled(2, UP, 200), settings, out=str(path),
                                                                 exact=False, progress=False))
        assert results.load(path).checkpoint_step == 15
        mid = results.load_parameters(path)  # the current parameters of the interrupted run, for --init-from
        assert jax.tree_util.tree_structure(mid) == jax.tree_util.tree_structure(whole.state.parameters)
        resumed = find_steady_state(system, _sampled(2, UP, 200), settings, out=str(path), mode="resume", exact=False,
                                    progress=False)
        assert resumed.info == whole.info
        _assert_same_parameters(resumed.state, whole.state)
        stored, reference = results.load(path).history, results.load(tmp_path / f"{optimizer}_whole.h5").history
        np.testing.assert_array_equal(stored["loss"], reference["loss"])
        np.testing.assert_array_equal(stored["eval_loss"][:-1], reference["eval_loss"][:-1])
        again = find_steady_state(system, _sampled(2, UP, 200), settings, out=str(path), mode="resume", exact=False,
                                  progress=False)  # a finished run only re-records its final row
        assert again.info == whole.info and len(again.rows) == 1


def test_povm_dynamics_resume_exactly_after_an_interruption(tmp_path, monkeypatch):
    """TDVP (sampled, Heun) and the trapezoid (sampled), killed after the row of their second save time: the resumed
    runs end with the parameters and rows of uninterrupted ones."""
    system = dissipative_tfi(2, g=1.0)
    runs = {
        "tdvp": (evolve_povm_tdvp, PovmTDVPSettings(t_end=0.06, dt=0.01, n_save=4, integrator="Heun", n_obs_samples=200)),
        "trapezoid": (evolve_trapezoid, TrapezoidSettings(t_end=0.06, dt=0.02, n_save=4, n_iter=5, n_obs_samples=200)),
    }
    for name, (evolve, settings) in runs.items():
        whole = evolve(system, _sampled(2, UP, 200), settings, out=str(tmp_path / f"{name}_whole.h5"), progress=False)
        path = tmp_path / f"{name}_cut.h5"
        _killed_at_row(monkeypatch, 3, lambda: evolve(system, _sampled(2, UP, 200), settings, out=str(path),
                                                      progress=False))
        assert results.load(path).checkpoint_step == 1
        resumed = evolve(system, _sampled(2, UP, 200), settings, out=str(path), mode="resume", progress=False)
        assert [r["step"] for r in resumed.rows] == [2.0, 3.0]
        _assert_same_parameters(resumed.state, whole.state)
        stored, reference = results.load(path).history, results.load(tmp_path / f"{name}_whole.h5").history
        for column in ("time", "sigma_z", "l1_distance"):
            np.testing.assert_array_equal(stored[column], reference[column])


def test_sampled_estimators_are_unbiased():
    """E_{a∼P_θ'}[residual/P_θ'] and its stop-gradient gradient equal the full sums (trapezoid and steady loss)."""
    system = dissipative_tfi(2, g=1.0)
    full, sampled = _full_sum(2, UP), _sampled(2, UP, 50_000)
    rng = np.random.default_rng(0)
    new = jax.tree_util.tree_map(lambda x: x + 0.3 * rng.normal(size=x.shape), full.parameters)
    old = jax.tree_util.tree_map(lambda x: x + 0.05 * rng.normal(size=x.shape), new)
    ctx_full = pd._make_context(system, full, None)
    ctx_sampled = pd._make_context(system, sampled, None)
    key = jax.random.PRNGKey(3)
    (prepare_full, loss_full), (prepare_sampled, loss_sampled) = (pd._trapezoid_loss(c, 0.1) for c in (ctx_full, ctx_sampled))
    trapezoid = [jax.value_and_grad(loss_full), jax.value_and_grad(loss_sampled)]
    steady = [jax.value_and_grad(lambda p, k, c=c, n=n: pd._steady_loss(c, n)(p, k)[0])
              for c, n in ((ctx_full, 0), (ctx_sampled, 50_000))]
    for (exact_value, exact_grad), (value, grad) in (
        # the old model an argument: no constant folding
        (trapezoid[0](new, prepare_full(old), key), jax.jit(trapezoid[1])(new, prepare_sampled(old), key)),
        (steady[0](new, key), jax.jit(steady[1])(new, key)),
    ):
        assert float(value) == pytest.approx(float(exact_value), rel=0.02)
        g, g0 = grad["logits"], exact_grad["logits"]
        assert np.abs(g - g0).max() < 0.05 * np.abs(g0).max()


def test_sampled_modes_run_and_follow_exact():
    system = dissipative_tfi(2, g=1.0)
    trap = evolve_trapezoid(system, _sampled(2, UP, 2000), TrapezoidSettings(
        t_end=0.1, dt=0.05, n_save=2, n_iter=120, n_obs_samples=4000))
    tdvp = evolve_povm_tdvp(system, _sampled(2, UP, 2000), PovmTDVPSettings(
        t_end=0.1, dt=0.02, n_save=2, integrator="Heun", n_obs_samples=4000))
    for out in (trap, tdvp):
        final = out.rows[-1]
        assert final["l1_distance"] < 0.02
        for name in ("sigma_x", "sigma_y", "sigma_z", "zz_nn"):
            assert abs(final[name] - out.exact[name][-1]) < 5 * final[f"{name}_error"] + 1e-3, name
        assert "purity_error" in final and final["min_eig_1site"] > 0
    vs = _sampled(2, UP, 1000)
    steady = find_steady_state(system, vs, SteadyStateSettings(
        n_iter=60, eval_after=40, eval_every=10, n_eval_samples=5000, n_obs_samples=5000))
    losses = [r["loss"] for r in steady.rows[:-1]]
    assert losses[-1] < 0.7 * losses[0]
    assert steady.info["best_step"] >= 40 and 0 < steady.rows[-2]["eval_loss_error"] < steady.rows[-2]["eval_loss"]


def test_single_precision_parameters_stay_single_precision_through_the_rk_stages():
    """float32 parameters: θ̇ is solved in the promoted precision but handed to NetKet's RK stages in float32 (a
    float64 θ̇ is a scatter with incompatible types, which JAX announces will become an error), and the
    trajectory still follows the exact one."""
    system = dissipative_tfi(2, g=1.0)
    vs = _sampled(2, UP, 2000)
    vs.parameters = jax.tree_util.tree_map(lambda x: x.astype(jnp.float32), vs.parameters)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        out = evolve_povm_tdvp(system, vs, PovmTDVPSettings(t_end=0.04, dt=0.02, n_save=2, integrator="RK4",
                                                            n_obs_samples=4000))
    assert {x.dtype for x in jax.tree_util.tree_leaves(out.state.parameters)} == {jnp.dtype(jnp.float32)}
    final = out.rows[-1]
    assert abs(final["sigma_z"] - out.exact["sigma_z"][-1]) < 5 * final["sigma_z_error"] + 1e-3


def test_input_validation(qubit, monkeypatch):
    system, P0 = qubit
    default = TrapezoidSettings()  # Luo et al.: 2τ = 0.016 -> 7 steps of 1/70 between saves 0.1 apart
    assert default.steps_per_save == 7 and default.step_size == pytest.approx(1 / 70) and default.n_steps == 70
    with pytest.raises(ValueError, match="t_end"):
        TrapezoidSettings(t_end=0.0)
    with pytest.raises(ValueError, match="schedule"):
        SteadyStateSettings(schedule="linear")
    with pytest.raises(ValueError, match="Fock"):
        evolve_povm_tdvp(system, _full_sum(2, UP))
    closed = System(builder="test", hilbert=system.hilbert, hamiltonian=system.hamiltonian)
    with pytest.raises(ValueError, match="open system"):
        evolve_trapezoid(closed, _full_sum(1, P0))
    hi = nk.hilbert.Fock(n_max=3, N=1)
    with pytest.raises(ValueError, match="machine_pow"):
        evolve_trapezoid(system, nk.vqs.FullSumState(hi, TableAR(hi, machine_pow=2)))
    metropolis = nk.vqs.MCState(nk.sampler.MetropolisLocal(hi), TableAR(hi), n_samples=16)
    with pytest.raises(TypeError, match="ARDirectSampler"):
        evolve_trapezoid(system, metropolis)
    monkeypatch.setattr(pd, "MAX_FULL_SUM_JACOBIAN_BYTES", 100)  # the (4^N, n_params) full-sum Jacobian
    with pytest.raises(ValueError, match="Jacobian"):
        evolve_povm_tdvp(system, _full_sum(1, P0))


def test_chunked_local_values_equal_the_unchunked_ones():
    """`lp_ratios` in checkpointed chunks (any chunk size, padding included) gives the same values and gradient."""
    system = dissipative_tfi(3, V=2.0, g=1.0, gamma=1.0)
    vs = _sampled(3, UP, 37)
    ctx = pd._make_context(system, vs, None)
    a = jnp.asarray(np.asarray(vs.samples).reshape(-1, 3), dtype=jnp.int32)
    ref = ctx.log_prob(vs.parameters, a)

    def loss(p, max_configs):
        return jnp.sum(jnp.abs(ctx.lp_ratios(p, a, ref, max_configs=max_configs)))

    whole = jax.value_and_grad(loss)(vs.parameters, 10**9)
    for max_configs in (1, 500):  # one sample per chunk; chunks with padding
        value, grad = jax.value_and_grad(loss)(vs.parameters, max_configs)
        assert value == pytest.approx(float(whole[0]), rel=1e-12)
        for g, h in zip(jax.tree_util.tree_leaves(grad), jax.tree_util.tree_leaves(whole[1]), strict=True):
            np.testing.assert_allclose(g, h, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("layout", [dict(order="snake", shape=(2, 3)), dict(order="raster", shape=(2, 3), patch=(1, 3))])
def test_full_enumeration_by_shared_prefixes_equals_direct_evaluation(layout):
    """`log_probabilities` (one pass over the 4^(N−1) strings with the last generated site at 0) equals log P of
    every outcome evaluated directly, for a path whose last site is not N − 1 and for patched tokens; the
    values and the gradient of a full-sum loss agree, and String States (no shared prefixes) fall back."""
    from ansatze.string_states import StringStates

    system = dissipative_tfi(6, V=2.0, g=1.0, gamma=1.0)
    hi = nk.hilbert.Fock(n_max=3, N=6)
    model = ARTransformer(hi, layers=1, features=8, heads=2, phase=False, machine_pow=1, **layout)
    vs = nk.vqs.FullSumState(hi, model, seed=3)
    ctx = pd._make_context(system, vs, None)
    assert ctx._shared_prefix_layout is not None
    assert ctx._shared_prefix_layout[0] == (3 if layout["order"] == "snake" else 5)
    direct = ctx.log_prob(vs.parameters, jnp.asarray(ctx.outcomes))
    np.testing.assert_allclose(ctx.log_probabilities(vs.parameters), direct, rtol=1e-12, atol=1e-12)
    loss = pd._steady_loss(ctx, 0)
    value, grad = jax.value_and_grad(lambda p: loss(p, None)[0])(vs.parameters)
    ref_value, ref_grad = jax.value_and_grad(
        lambda p: jnp.sum(jnp.abs(pd.apply_lindbladian(ctx.lindbladian, jnp.exp(ctx.log_prob(p, ctx.outcomes)))))
    )(vs.parameters)
    assert float(value) == pytest.approx(float(ref_value), rel=1e-12)
    for g, h in zip(jax.tree_util.tree_leaves(grad), jax.tree_util.tree_leaves(ref_grad), strict=True):
        np.testing.assert_allclose(g, h, rtol=1e-9, atol=1e-13)
    mixture = nk.vqs.FullSumState(hi, StringStates(model, [[0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0]]), seed=3)
    strings = pd._make_context(system, mixture, None)
    assert strings._shared_prefix_layout is None
    np.testing.assert_allclose(strings.log_probabilities(mixture.parameters),
                               strings.log_prob(mixture.parameters, jnp.asarray(strings.outcomes)), rtol=1e-12)


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
    unfiltered = pd.snr_solve(Oc, centred, rtol=1e-12, rtol_smooth=1e-8, snr_tol=0.0)
    np.testing.assert_allclose(unfiltered, plain, rtol=1e-10, atol=1e-12)
    filtered = pd.snr_solve(Oc, centred, rtol=1e-12, rtol_smooth=1e-8, snr_tol=4.0)
    assert abs(filtered[0] - plain[0]) < 1e-6 * abs(plain[0])  # the resolved force (SNR ~ 400) is kept
    assert np.all(np.abs(filtered[1:]) < 0.2 * np.abs(plain[1:]))  # pure-noise forces (SNR ~ 1) are damped
    with pytest.raises(ValueError, match="snr_tol"):
        pd.PovmTDVPSettings(solver="snr", snr_tol=-1.0)


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
        dual = pd._smooth_pinv_solve(jnp.asarray(Oc / np.sqrt(n)), jnp.asarray(centred / np.sqrt(n)), 1e-10,
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
    got = pd.snr_solve(jnp.asarray(Oc), jnp.asarray(centred), rtol=1e-10, rtol_smooth=1e-6, snr_tol=2.0)
    np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-9 * np.abs(expected).max())
    assert np.abs(got).max() > 0


def test_heldout_residual_exposes_a_fit_to_sample_noise():
    """16 samples and no cut-off: θ̇ (20 parameters) fits the noise, so the in-sample residual is ~0 while the one on
    independent samples is not; 4 000 samples give matching residuals."""
    system = dissipative_tfi(2, g=1.0)
    rows = {}
    for n_samples, cutoff in ((16, 1e-14), (4000, 1e-8)):
        out = evolve_povm_tdvp(system, _sampled(2, UP, n_samples), PovmTDVPSettings(
            t_end=0.01, dt=0.01, n_save=2, integrator="Euler", pinv_rtol=1e-14, pinv_rtol_smooth=cutoff,
            heldout_samples=4000, n_obs_samples=100), exact=False, progress=False)
        rows[n_samples] = out.rows[-1]
    noisy, resolved = rows[16], rows[4000]
    assert noisy["tdvp_residual"] < 1e-6 and noisy["tdvp_residual_heldout"] > 0.05
    assert resolved["tdvp_residual_heldout"] < 2 * resolved["tdvp_residual"] + 1e-3
    with pytest.raises(ValueError, match="heldout_samples"):
        PovmTDVPSettings(heldout_samples=-1)


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
    out = evolve_povm_tdvp(dissipative_tfi(2, g=1.0), _sampled(2, UP, 64), PovmTDVPSettings(
        t_end=0.01, dt=0.01, n_save=2, integrator="Euler", solver="cv", n_obs_samples=100), exact=False, progress=False)
    assert out.rows[-1]["tdvp_cutoff"] in PovmTDVPSettings().cv_cutoffs
    with pytest.raises(ValueError, match="cv_cutoffs"):
        PovmTDVPSettings(cv_cutoffs=())
