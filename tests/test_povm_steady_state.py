"""The variational steady state (`dynamics.povm.steady_state`): Adam and natural-gradient relaxation against QuTiP."""

import jax
import numpy as np
import pytest
from povm_helpers import UP, full_sum_state

from dynamics.povm import SteadyStateSettings, find_steady_state
from hamiltonians import dissipative_tfi
from nqs import results


def test_steady_state_full_sum_three_site_tfi(tmp_path):
    system = dissipative_tfi(3, V=2.0, g=1.0, gamma=1.0)
    settings = SteadyStateSettings(n_iter=2000, eval_after=1000, eval_every=100, lr_schedule="cosine", lr_final=1e-5)
    path = tmp_path / "steady.h5"
    out = find_steady_state(system, full_sum_state(3, UP), settings, out=str(path))
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
    second = full_sum_state(3, UP)  # a second run from the loaded parameters: its first exact loss is the best one
    second.parameters = loaded
    again = find_steady_state(system, second, SteadyStateSettings(n_iter=1, eval_after=0, eval_every=1), exact=False,
                              progress=False)
    assert again.rows[0]["loss"] == pytest.approx(out.info["best_loss"], rel=1e-9)


def test_natural_gradient_relaxation_reaches_the_exact_steady_state_in_few_iterations():
    """A complete model (TableAR) on the 4-site periodic chain (4 bonds, each once): the fixed point of the POVM-TDVP
    flow is the exact steady state; 100 natural steps of τ = 0.2 reach it to 1e-4."""
    system = dissipative_tfi(4, V=2.0, g=1.0, gamma=1.0)
    settings = SteadyStateSettings(optimizer="natural", learning_rate=0.2, lr_schedule="constant", n_iter=100,
                                   eval_after=60, eval_every=20, pinv_rtol_smooth=1e-10)
    out = find_steady_state(system, full_sum_state(4, UP), settings, progress=False)
    final = out.rows[-1]
    for name in ("sigma_x", "sigma_y", "sigma_z", "zz_nn", "purity"):
        assert final[name] == pytest.approx(out.exact[name], abs=1e-4), name
    assert out.info["best_loss"] < 1e-4 and out.rows[0]["loss"] > 0.1
    with pytest.raises(ValueError, match="optimizer"):
        SteadyStateSettings(optimizer="sgd")
