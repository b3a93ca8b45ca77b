"""Every autoregressive ansatz (and the Metropolis-sampled MPS) samples and differentiates with NetKet's sample
sharding over two devices.

NetKet 3.23 shards samples with `shard_map`; chunked evaluation (`chunk_size`) and minSR's on-the-fly NTK
run the model inside the map, where a scan's initial carry must have the type its body returns (inputs
and/or parameters "varying" over the sample axis). Runs in a subprocess
because the device count is fixed when JAX starts.
"""

import os
import subprocess
import sys
import textwrap

from conftest import REPO, XLA_TEST_FLAGS

_CODE = textwrap.dedent(
    """
    import jax, netket as nk, numpy as np, nqs, optax
    from ansatze import AR2DRNN, ARRNN, ARTransformer
    assert jax.device_count() == 2, jax.devices()
    hi = nk.hilbert.Spin(0.5, 6)
    H = nk.operator.Heisenberg(hi, nk.graph.Grid(extent=[2, 3], pbc=False), sign_rule=False)
    c = nqs.zero_magnetization(6)
    models = {
        "transformer": ARTransformer(hi, layers=1, features=8, heads=2, constraint=c),
        "transformer_patch": ARTransformer(hi, layers=1, features=8, heads=2, constraint=c, order="raster",
                                           shape=(2, 3), patch=(2, 1)),
        "gru": ARRNN(hi, hidden=6, cell="gru", constraint=c),
        "rnn2d": AR2DRNN(hi, hidden=6, shape=(2, 3), constraint=c),
    }
    for name, model in models.items():
        vs = nk.vqs.MCState(nk.sampler.ARDirectSampler(hi), model, n_samples=512, chunk_size=128, seed=0)
        if model.constraint is not None:
            assert np.all(np.asarray(vs.samples).reshape(-1, 6).sum(-1) == 0), name
        e, g = vs.expect_and_grad(H)
        assert np.isfinite(e.mean), name
        assert all(np.all(np.isfinite(x)) for x in jax.tree_util.tree_leaves(g)), name
        # minSR's on-the-fly NTK: the model inside shard_map, "varying" parameters
        if name in ("rnn2d", "transformer_patch"):
            driver = nk.driver.VMC_SR(H, optax.sgd(0.01), diag_shift=1e-3, variational_state=vs, use_ntk=True,
                                      on_the_fly=True)
            driver.run(1, show_progress=False)
            assert np.isfinite(vs.expect(H).mean), name
        print("OK", name, len(vs.samples.sharding.device_set))
    from ansatze.mps import product_start_mps  # Metropolis-sampled, holomorphic: expectation, gradient and QGT
    ising = nk.operator.Ising(hi, nk.graph.Chain(6), h=0.5)
    vs = nk.vqs.MCState(nk.sampler.MetropolisLocal(hi, n_chains=16), product_start_mps(hi, 4, noise=0.1),
                        n_samples=512, chunk_size=128, seed=0)
    e, g = vs.expect_and_grad(ising)
    qgt = vs.quantum_geometric_tensor(nk.optimizer.qgt.QGTJacobianDense(holomorphic=True))
    assert np.isfinite(e.mean) and np.all(np.isfinite(qgt.to_dense()))
    print("OK", "mps", len(vs.samples.sharding.device_set))
    import test_autoregressive as t  # tokens of two modes of different sizes: nqs's own exact token sampler
    hi, model = t._gauge_model("rnn")
    vs = nk.vqs.MCState(model.exact_sampler(), model, n_samples=512, chunk_size=128, seed=0)
    x = np.asarray(vs.samples).reshape(-1, hi.size)
    idx = np.asarray(hi.states_to_local_indices(x))
    assert np.all(np.asarray(model.constraint.is_satisfied(model.tokens.encode(idx))))
    e, g = vs.expect_and_grad(t._pair_creation(hi))
    assert np.isfinite(e.mean) and all(np.all(np.isfinite(a)) for a in jax.tree_util.tree_leaves(g))
    print("OK", "token_sampler", len(vs.samples.sharding.device_set))
    """
)


def test_every_ansatz_samples_and_differentiates_sharded_over_two_devices():
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count=2 {XLA_TEST_FLAGS}",
           "JAX_PLATFORMS": "cpu", "NETKET_SHARDING": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
    proc = subprocess.run([sys.executable, "-c", _CODE], env=env, capture_output=True, text=True, timeout=600,
                          cwd=REPO, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("transformer", "transformer_patch", "gru", "rnn2d", "mps", "token_sampler"):
        assert f"OK {name} 2" in proc.stdout
