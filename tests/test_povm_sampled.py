"""Sampled runs of the three POVM methods: they follow the exact references and resume exactly after an interruption."""

import dataclasses
import functools

import jax
import numpy as np
import pytest
from povm_helpers import UP, assert_same_parameters, killed_at_row, sampled_state

from dynamics.povm import (
    PovmTDVPSettings,
    SteadyStateSettings,
    TrapezoidSettings,
    evolve_povm_tdvp,
    evolve_trapezoid,
    find_steady_state,
    make_context,
)
from dynamics.povm.diagnostics import exact_row, initial_rho, lattice_bonds, povm_observables
from hamiltonians import dissipative_tfi
from nqs import results
from nqs.povm import POVM


@pytest.mark.slow  # suite time (the default set must stay under 15 min on 2 cores); the dynamics resume test stays
def test_steady_state_resumes_exactly_after_an_interruption(tmp_path, monkeypatch):
    """Killed after its third history row, the resumed sampled run ends with the parameters and rows of an
    uninterrupted one (both optimizers; the checkpoint holds optimizer state, random key and best so far)."""
    system = dissipative_tfi(2, g=1.0)
    for optimizer, lr in (("adam", 1e-2), ("natural", 0.1)):
        settings = SteadyStateSettings(optimizer=optimizer, learning_rate=lr, n_iter=30, eval_after=10, eval_every=5,
                                       n_eval_samples=500, n_obs_samples=500)
        whole = find_steady_state(system, sampled_state(2, UP, 200), settings,
                                  out=str(tmp_path / f"{optimizer}_whole.h5"), exact=False, progress=False)
        path = tmp_path / f"{optimizer}_cut.h5"
        killed_at_row(monkeypatch, 4, functools.partial(find_steady_state, system, sampled_state(2, UP, 200), settings,
                                                        out=str(path), exact=False, progress=False))
        assert results.load(path).checkpoint_step == 15
        mid = results.load_parameters(path)  # the current parameters of the interrupted run, for --init-from
        assert jax.tree_util.tree_structure(mid) == jax.tree_util.tree_structure(whole.state.parameters)
        resumed = find_steady_state(system, sampled_state(2, UP, 200), settings, out=str(path), mode="resume",
                                    exact=False, progress=False)
        assert resumed.info == whole.info
        assert_same_parameters(resumed.state, whole.state)
        stored, reference = results.load(path).history, results.load(tmp_path / f"{optimizer}_whole.h5").history
        np.testing.assert_array_equal(stored["loss"], reference["loss"])
        np.testing.assert_array_equal(stored["eval_loss"][:-1], reference["eval_loss"][:-1])
        again = find_steady_state(system, sampled_state(2, UP, 200), settings, out=str(path), mode="resume",
                                  exact=False, progress=False)  # a finished run only re-records its final row
        assert again.info == whole.info and len(again.rows) == 1


def test_povm_dynamics_resume_exactly_after_an_interruption(tmp_path, monkeypatch):
    """TDVP (sampled, Heun) and the trapezoid (sampled), killed after the row of their second save time: the resumed
    runs end with the parameters and rows of uninterrupted ones."""
    system = dissipative_tfi(2, g=1.0)
    runs = {
        "tdvp": (evolve_povm_tdvp, PovmTDVPSettings(t_end=0.06, dt=0.01, n_save=4, integrator="Heun",
                                                    n_obs_samples=200)),
        "trapezoid": (evolve_trapezoid, TrapezoidSettings(t_end=0.06, dt=0.02, n_save=4, n_iter=5, n_obs_samples=200)),
    }
    for name, (evolve, settings) in runs.items():
        whole = evolve(system, sampled_state(2, UP, 200), settings, out=str(tmp_path / f"{name}_whole.h5"),
                       progress=False)
        path = tmp_path / f"{name}_cut.h5"
        killed_at_row(monkeypatch, 3, functools.partial(evolve, system, sampled_state(2, UP, 200), settings,
                                                        out=str(path), progress=False))
        assert results.load(path).checkpoint_step == 1
        resumed = evolve(system, sampled_state(2, UP, 200), settings, out=str(path), mode="resume", progress=False)
        assert [r["step"] for r in resumed.rows] == [2.0, 3.0]
        assert_same_parameters(resumed.state, whole.state)
        stored, reference = results.load(path).history, results.load(tmp_path / f"{name}_whole.h5").history
        for column in ("time", "sigma_z", "l1_distance"):
            np.testing.assert_array_equal(stored[column], reference[column])
        # the checkpointed parameters start a second run exactly where the first ended: its exact reference starts
        # from ρ(P_θ) of the first run's final parameters
        second = sampled_state(2, UP, 200)
        second.parameters = results.load_parameters(path)
        again = evolve(system, second, dataclasses.replace(settings, t_end=0.02, n_save=2), progress=False)
        povm = POVM.tetrahedral()
        rho = initial_rho(make_context(system, whole.state, povm), whole.state.parameters, povm, None)
        obs, dense = povm_observables(system, povm)
        final = exact_row(rho, obs, dense, lattice_bonds(system), 2)
        for name in ("sigma_z", "sigma_x", "zz_nn"):
            assert again.exact[name][0] == pytest.approx(final[name], abs=1e-12)


def test_sampled_modes_run_and_follow_exact():
    system = dissipative_tfi(2, g=1.0)
    trap = evolve_trapezoid(system, sampled_state(2, UP, 2000), TrapezoidSettings(
        t_end=0.1, dt=0.05, n_save=2, n_iter=120, n_obs_samples=4000))
    tdvp = evolve_povm_tdvp(system, sampled_state(2, UP, 2000), PovmTDVPSettings(
        t_end=0.1, dt=0.02, n_save=2, integrator="Heun", n_obs_samples=4000))
    for out in (trap, tdvp):
        final = out.rows[-1]
        assert final["l1_distance"] < 0.02
        for name in ("sigma_x", "sigma_y", "sigma_z", "zz_nn"):
            assert abs(final[name] - out.exact[name][-1]) < 5 * final[f"{name}_error"] + 1e-3, name
        assert "purity_error" in final and final["min_eig_1site"] > 0
    vs = sampled_state(2, UP, 1000)
    steady = find_steady_state(system, vs, SteadyStateSettings(
        n_iter=60, eval_after=40, eval_every=10, n_eval_samples=5000, n_obs_samples=5000))
    losses = [r["loss"] for r in steady.rows[:-1]]
    assert losses[-1] < 0.7 * losses[0]
    assert steady.info["best_step"] >= 40 and 0 < steady.rows[-2]["eval_loss_error"] < steady.rows[-2]["eval_loss"]
