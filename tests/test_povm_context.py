"""The POVM context (`dynamics.povm.context`): input checks, chunked local values, full enumeration, unbiased losses."""

import jax
import jax.numpy as jnp
import netket as nk
import numpy as np
import pytest
from povm_helpers import UP, TableAR, full_sum_state, sampled_state, single_qubit

import dynamics.povm.tdvp
from ansatze.transformer import ARTransformer
from dynamics.povm import (
    SteadyStateSettings,
    TrapezoidSettings,
    apply_lindbladian,
    evolve_povm_tdvp,
    evolve_trapezoid,
    make_context,
    steady_state_loss,
    trapezoid_loss,
)
from hamiltonians import dissipative_tfi
from nqs import System


def test_sampled_estimators_are_unbiased():
    """E_{a∼P_θ'}[residual/P_θ'] and its stop-gradient gradient equal the full sums (trapezoid and steady loss)."""
    system = dissipative_tfi(2, g=1.0)
    full, sampled = full_sum_state(2, UP), sampled_state(2, UP, 50_000)
    rng = np.random.default_rng(0)
    new = jax.tree_util.tree_map(lambda x: x + 0.3 * rng.normal(size=x.shape), full.parameters)
    old = jax.tree_util.tree_map(lambda x: x + 0.05 * rng.normal(size=x.shape), new)
    ctx_full = make_context(system, full, None)
    ctx_sampled = make_context(system, sampled, None)
    key = jax.random.PRNGKey(3)
    (prepare_full, loss_full), (prepare_sampled, loss_sampled) = (trapezoid_loss(c, 0.1) for c in (ctx_full,
                                                                                                   ctx_sampled))
    trapezoid = [jax.value_and_grad(loss_full), jax.value_and_grad(loss_sampled)]
    steady = [jax.value_and_grad(lambda p, k, c=c, n=n: steady_state_loss(c, n)(p, k)[0])
              for c, n in ((ctx_full, 0), (ctx_sampled, 50_000))]
    for (exact_value, exact_grad), (value, grad) in (
        # the old model an argument: no constant folding
        (trapezoid[0](new, prepare_full(old), key), jax.jit(trapezoid[1])(new, prepare_sampled(old), key)),
        (steady[0](new, key), jax.jit(steady[1])(new, key)),
    ):
        assert float(value) == pytest.approx(float(exact_value), rel=0.02)
        g, g0 = grad["logits"], exact_grad["logits"]
        assert np.abs(g - g0).max() < 0.05 * np.abs(g0).max()


def test_input_validation(monkeypatch):
    system, P0 = single_qubit()
    default = TrapezoidSettings()  # Luo et al.: 2τ = 0.016 -> 7 steps of 1/70 between saves 0.1 apart
    assert default.steps_per_save == 7 and default.step_size == pytest.approx(1 / 70) and default.n_steps == 70
    with pytest.raises(ValueError, match="t_end"):
        TrapezoidSettings(t_end=0.0)
    with pytest.raises(ValueError, match="schedule"):
        SteadyStateSettings(lr_schedule="linear")
    with pytest.raises(ValueError, match="Fock"):
        evolve_povm_tdvp(system, full_sum_state(2, UP))
    closed = System(builder="test", hilbert=system.hilbert, hamiltonian=system.hamiltonian)
    with pytest.raises(ValueError, match="open system"):
        evolve_trapezoid(closed, full_sum_state(1, P0))
    hi = nk.hilbert.Fock(n_max=3, N=1)
    with pytest.raises(ValueError, match="machine_pow"):
        evolve_trapezoid(system, nk.vqs.FullSumState(hi, TableAR(hi, machine_pow=2)))
    metropolis = nk.vqs.MCState(nk.sampler.MetropolisLocal(hi), TableAR(hi), n_samples=16)
    with pytest.raises(TypeError, match="ARDirectSampler"):
        evolve_trapezoid(system, metropolis)
    monkeypatch.setattr(dynamics.povm.tdvp, "MAX_FULL_SUM_JACOBIAN_BYTES", 100)  # the (4^N, n_params) Jacobian
    with pytest.raises(ValueError, match="Jacobian"):
        evolve_povm_tdvp(system, full_sum_state(1, P0))


@pytest.mark.slow  # suite time (the default set must stay under 15 min on 2 cores)
def test_chunked_local_values_equal_the_unchunked_ones():
    """`lp_ratios` in checkpointed chunks (any chunk size, padding included) gives the same values and gradient."""
    system = dissipative_tfi(3, V=2.0, g=1.0, gamma=1.0)
    vs = sampled_state(3, UP, 37)
    ctx = make_context(system, vs, None)
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


@pytest.mark.slow  # suite time (the default set must stay under 15 min on 2 cores)
@pytest.mark.parametrize("layout", [{"order": "snake", "shape": (2, 2)},
                                    {"order": "raster", "shape": (2, 2), "patch": (1, 2)}])
def test_full_enumeration_by_shared_prefixes_equals_direct_evaluation(layout):
    """`log_probabilities` (one pass over the 4^(N−1) strings with the last generated site at 0) equals log P of
    every outcome evaluated directly, for a path whose last site is not N − 1 and for patched tokens; the
    values and the gradient of a full-sum loss agree, and String States (no shared prefixes) fall back."""
    from ansatze.string_states import StringStates

    system = dissipative_tfi(4, V=2.0, g=1.0, gamma=1.0)
    hi = nk.hilbert.Fock(n_max=3, N=4)
    model = ARTransformer(hi, layers=1, features=8, heads=2, phase=False, machine_pow=1, **layout)
    vs = nk.vqs.FullSumState(hi, model, seed=3)
    ctx = make_context(system, vs, None)
    assert ctx._shared_prefix_layout is not None
    assert ctx._shared_prefix_layout[0] == (2 if layout["order"] == "snake" else 3)
    direct = ctx.log_prob(vs.parameters, jnp.asarray(ctx.outcomes))
    np.testing.assert_allclose(ctx.log_probabilities(vs.parameters), direct, rtol=1e-12, atol=1e-12)
    loss = steady_state_loss(ctx, 0)
    value, grad = jax.jit(jax.value_and_grad(lambda p: loss(p, None)[0]))(vs.parameters)  # jit: faster than eager
    ref_value, ref_grad = jax.jit(jax.value_and_grad(
        lambda p: jnp.sum(jnp.abs(apply_lindbladian(ctx.lindbladian, jnp.exp(ctx.log_prob(p, ctx.outcomes)))))
    ))(vs.parameters)
    assert float(value) == pytest.approx(float(ref_value), rel=1e-12)
    for g, h in zip(jax.tree_util.tree_leaves(grad), jax.tree_util.tree_leaves(ref_grad), strict=True):
        np.testing.assert_allclose(g, h, rtol=1e-9, atol=1e-13)
    mixture = nk.vqs.FullSumState(hi, StringStates(model, [[0, 1, 2, 3], [3, 2, 1, 0]]), seed=3)
    strings = make_context(system, mixture, None)
    assert strings._shared_prefix_layout is None
    np.testing.assert_allclose(strings.log_probabilities(mixture.parameters),
                               strings.log_prob(mixture.parameters, jnp.asarray(strings.outcomes)), rtol=1e-12)
