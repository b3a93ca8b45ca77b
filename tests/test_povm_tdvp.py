"""POVM-TDVP (`dynamics.povm.tdvp`): the analytic qubit, the result file, single precision and the held-out residual."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from povm_helpers import UP, check_analytic, full_sum_state, sampled_state, single_qubit

from dynamics.povm import PovmTDVPSettings, evolve_povm_tdvp
from hamiltonians import dissipative_tfi
from nqs import results


def test_single_site_analytic_tdvp_and_result_file(tmp_path):
    system, P0 = single_qubit()
    path = tmp_path / "tdvp.h5"
    out = evolve_povm_tdvp(system, full_sum_state(1, P0), PovmTDVPSettings(t_end=1.0, dt=0.01, n_save=11),
                           out=str(path))
    check_analytic(out, 1e-4)
    assert max(out.series("tdvp_residual")[1:]) < 1e-8
    assert min(out.series("min_eig_1site")) > -1e-10  # pure at t = 0
    res = results.load(path)
    assert res.kind == "dynamics" and res.method["name"] == "dynamics.povm_tdvp" and res.method["mode"] == "full_sum"
    np.testing.assert_allclose(res.history["time"], out.times)
    np.testing.assert_allclose(results.exact_on_history(res, "sigma_z"), out.exact["sigma_z"])
    assert res.history["classical_fidelity"][-1] > 1 - 1e-8


def test_single_precision_parameters_stay_single_precision_through_the_rk_stages():
    """float32 parameters: θ̇ is solved in the promoted precision but handed to NetKet's RK stages in float32 (a
    float64 θ̇ is a scatter with incompatible types, which JAX announces will become an error), and the
    trajectory still follows the exact one to float32 precision.

    The table model is complete and every one of the 16 outcomes is drawn among the 2 000 samples, so the sampled
    TDVP equation has the exact θ̇ as its zero-residual solution: what is left is float32 round-off and RK4's local
    error. Tolerance: unit round-off 6e-8 per logit, accumulated over 2 steps × 4 stages and 16 probabilities, is
    ≈ 4e-6 of ‖P_θ − P_exact‖₁, so the trace distance to the exact ρ must stay below 1e-5; RK4's (2 × 0.02)^5 ≈ 1e-7 is
    below that. A run that never moved sits at D(ρ(0), ρ(0.04)) ≥ |Δ⟨σᶻ⟩|/2 ≈ 0.04 (trace distance bounds any
    observable of norm 1 to 2D), 4 000 times the tolerance."""
    system = dissipative_tfi(2, g=1.0)
    vs = sampled_state(2, UP, 2000)
    vs.parameters = jax.tree_util.tree_map(lambda x: x.astype(jnp.float32), vs.parameters)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        out = evolve_povm_tdvp(system, vs, PovmTDVPSettings(t_end=0.04, dt=0.02, n_save=2, integrator="RK4",
                                                            n_obs_samples=4000))
    assert {x.dtype for x in jax.tree_util.tree_leaves(out.state.parameters)} == {jnp.dtype(jnp.float32)}
    final = out.rows[-1]
    exact_change = out.exact["sigma_z"][0] - out.exact["sigma_z"][-1]
    assert exact_change > 0.07  # the decay σ⁻ and the field turn ⟨σᶻ⟩ from 1 to 0.921 by t = 0.04
    assert final["trace_distance"] < 1e-5 and final["l1_distance"] < 1e-5  # float32 budget of the docstring
    # the recorded estimate from 4 000 fresh samples: sampling error only (5σ ≈ 0.11 here, wider than the change)
    assert abs(final["sigma_z"] - out.exact["sigma_z"][-1]) < 5 * final["sigma_z_error"] + 1e-3


@pytest.mark.slow  # suite time (the default set must stay under 15 min on 2 cores)
def test_heldout_residual_exposes_a_fit_to_sample_noise():
    """16 samples and no cut-off: θ̇ (20 parameters) fits the noise, so the in-sample residual is ~0 while the one on
    independent samples is not; 4 000 samples give matching residuals."""
    system = dissipative_tfi(2, g=1.0)
    rows = {}
    for n_samples, cutoff in ((16, 1e-14), (4000, 1e-8)):
        out = evolve_povm_tdvp(system, sampled_state(2, UP, n_samples), PovmTDVPSettings(
            t_end=0.01, dt=0.01, n_save=2, integrator="Euler", pinv_rtol=1e-14, pinv_rtol_smooth=cutoff,
            heldout_samples=4000, n_obs_samples=100), exact=False, progress=False)
        rows[n_samples] = out.rows[-1]
    noisy, resolved = rows[16], rows[4000]
    assert noisy["tdvp_residual"] < 1e-6 and noisy["tdvp_residual_heldout"] > 0.05
    assert resolved["tdvp_residual_heldout"] < 2 * resolved["tdvp_residual"] + 1e-3
    with pytest.raises(ValueError, match="heldout_samples"):
        PovmTDVPSettings(heldout_samples=-1)
