"""Tangent-space start (`dynamics.tangent_start`): same state, a tangent space that holds the first step."""

import jax
import jax.numpy as jnp
import netket as nk
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import nqs  # noqa: F401
from ansatze import ARTransformer
from dynamics.povm import PovmTDVPSettings, make_context, tangent_start
from dynamics.povm.tdvp import make_tdvp_rhs
from dynamics.tangent_start import fit_tangent_start
from hamiltonians import dissipative_xyz
from nqs.povm import POVM, probabilities


@pytest.fixture(scope="module")
def xyz_2x2():
    system = dissipative_xyz(2, lattice="square", Jx=0.9, Jy=1.6, Jz=1.0, gamma=1.0)
    hi = nk.hilbert.Fock(n_max=3, N=4)
    start = tuple(float(p) for p in probabilities(np.diag([1.0, 0.0]).astype(complex), POVM.tetrahedral(), 1))
    model = ARTransformer(hi, layers=1, features=8, heads=2, phase=False, machine_pow=1, initial_distribution=start)
    return system, nk.vqs.FullSumState(hi, model, seed=0)


def _tdvp_residual(ctx, vstate):
    """rel(), the relative residual of the exact (full-sum) POVM-TDVP fit at t = 0 for the current parameters of
    `vstate` (one compiled right-hand side for every call)."""
    rhs = make_tdvp_rhs(ctx, PovmTDVPSettings(), ravel_pytree(vstate.parameters)[1])[0]
    return lambda: float(rhs(ravel_pytree(vstate.parameters)[0], jax.random.PRNGKey(0))[1])


def test_tangent_start_keeps_the_state_and_captures_the_first_step(xyz_2x2):
    system, vstate = xyz_2x2
    vstate = nk.vqs.FullSumState(vstate.hilbert, vstate.model, seed=0)
    ctx = make_context(system, vstate, POVM.tetrahedral())
    log_p_before = ctx.log_probabilities(vstate.parameters)
    tdvp_residual = _tdvp_residual(ctx, vstate)
    residual_before = tdvp_residual()
    report = tangent_start(system, vstate, n_samples=384, n_iter=100, learning_rate=2e-2)
    np.testing.assert_allclose(ctx.log_probabilities(vstate.parameters), log_p_before, atol=1e-12)
    residual_after = tdvp_residual()
    assert report.residual_before > 0.05 and residual_before > 0.05
    assert report.residual_after < 0.2 * report.residual_before
    assert residual_after < 0.2 * residual_before


def test_tangent_start_refuses_a_model_that_is_not_at_a_product_start(xyz_2x2):
    system, vstate = xyz_2x2
    ctx = make_context(system, vstate, POVM.tetrahedral())
    params = jax.tree_util.tree_map(lambda x: x, vstate.parameters)
    head = dict(params["amplitude_head"])
    head["kernel"] = head["kernel"] + 0.1 * jax.random.normal(jax.random.PRNGKey(1), head["kernel"].shape)
    moved = {**params, "amplitude_head": head}
    a = jnp.asarray(ctx.outcomes[:64])
    data = (a, jax.random.normal(jax.random.PRNGKey(2), (64,)))
    with pytest.raises(ValueError, match="product-state start"):
        fit_tangent_start(ctx.log_prob, moved, data, data, n_iter=1)
    with pytest.raises(ValueError, match="no parameter subtree named 'readout'"):
        fit_tangent_start(ctx.log_prob, params, data, data, head=("readout",), n_iter=1)


@pytest.mark.slow  # suite time (the default set must stay under 15 min on 2 cores)
def test_tangent_start_accepts_a_site_dependent_product_start(xyz_2x2):
    system, vstate = xyz_2x2
    up, down = (tuple(float(p) for p in probabilities(np.diag(d).astype(complex), POVM.tetrahedral(), 1))
                for d in ([1.0, 0.0], [0.2, 0.8]))
    model = ARTransformer(vstate.hilbert, layers=1, features=8, heads=2, phase=False, machine_pow=1,
                          initial_distribution=(up, down, down, up))  # staggered on the plaquette
    neel = nk.vqs.FullSumState(vstate.hilbert, model, seed=0)
    ctx = make_context(system, neel, POVM.tetrahedral())
    log_p = ctx.log_probabilities(neel.parameters)
    report = tangent_start(system, neel, n_samples=512, n_iter=100, learning_rate=2e-2)
    np.testing.assert_allclose(ctx.log_probabilities(neel.parameters), log_p, atol=1e-12)
    # r² is the fraction of Var(L_loc) (the first step) that the head tangent space misses, on 512 held-out samples:
    # 0.71 at the staggered start. As for the uniform start above, the fit must recover at least 80 % of what was
    # missing; measured r² 0.71 → 0.036 (a factor 20, so the bound of 5 leaves a margin of 4). A fit that does
    # nothing keeps r² and fails.
    assert report.residual_before > 0.05
    assert report.residual_after < 0.2 * report.residual_before
