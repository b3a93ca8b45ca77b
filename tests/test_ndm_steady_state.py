"""NetKet NDM + SteadyState baseline against QuTiP's steady state (2-site dissipative TFI chain).

The Numba Liouvillian compiles once per process (tens of seconds on 2 busy cores); every test here
shares that compilation.
"""

import dataclasses

import jax
import netket as nk
import numpy as np
import pytest

from dynamics.ndm_steady_state import NDMSettings, find_ndm_steady_state, liouvillian
from hamiltonians import dissipative_tfi
from nqs import System, results

TOL = 2e-2  # sampled observables (16384 diagonal samples: standard error ≈ 5e-3) against QuTiP


def test_liouvillian_is_the_nqs_convention():
    """NetKet's LocalLiouvillian acting on the row-major vector ρ(σ, η) gives −i[H, ρ] + Σ_k (L ρ L† − ½{L†L, ρ})."""
    system = dissipative_tfi(2, g=1.0)
    q = system.to_qutip()
    H, Ls = q["H"].full(), [c.full() for c in q["c_ops"]]
    rng = np.random.default_rng(0)
    rho = rng.normal(size=(4, 4)) + 1j * rng.normal(size=(4, 4))
    expected = -1j * (H @ rho - rho @ H)
    for L in Ls:
        LdL = L.conj().T @ L
        expected += L @ rho @ L.conj().T - 0.5 * (LdL @ rho + rho @ LdL)
    lind = liouvillian(system)
    np.testing.assert_allclose((lind.to_dense() @ rho.reshape(-1)).reshape(4, 4), expected, atol=1e-12)


def test_interrupted_run_resumes_exactly_and_restarts_from_its_parameters(tmp_path, interrupt_at_row):
    system = dissipative_tfi(2, V=2.0, g=1.0, gamma=1.0)
    system = dataclasses.replace(system, observables={"magnetization_z": system.observables["magnetization_z"]})
    settings = NDMSettings(n_steps=6, learning_rate=0.1, n_samples=256, n_samples_diag=256, n_samples_diag_final=256,
                           observables_every=3, checkpoint_every=2)
    whole = find_ndm_steady_state(system, settings, progress=False, exact_reference=False)
    path = tmp_path / "ndm.h5"
    interrupt_at_row(5)  # during step 4: the checkpoint after step 3 holds
    with pytest.raises(KeyboardInterrupt):
        find_ndm_steady_state(system, settings, out=str(path), progress=False, exact_reference=False)
    assert results.load(path).checkpoint_step == 3
    interrupt_at_row(0)
    resumed = find_ndm_steady_state(system, settings, out=str(path), mode="resume", progress=False,
                                    exact_reference=False)
    for a, b in zip(jax.tree_util.tree_leaves(resumed.state.parameters), jax.tree_util.tree_leaves(
            whole.state.parameters), strict=True):
        np.testing.assert_array_equal(a, b)
    history = results.load(path).history
    np.testing.assert_array_equal(history["step"], np.arange(7))
    np.testing.assert_array_equal(history["ldagl"][:6], whole.series("ldagl")[:6])
    loaded = results.load_parameters(path)
    second = find_ndm_steady_state(system, dataclasses.replace(settings, n_steps=0), progress=False,
                                   exact_reference=False, initial_parameters=lambda fresh: loaded)
    for a, b in zip(jax.tree_util.tree_leaves(second.state.parameters), jax.tree_util.tree_leaves(
            whole.state.parameters), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow  # ~40 s; the Liouvillian convention test stays in the default suite
def test_two_site_tfi_matches_qutip_and_resumes(tmp_path):
    system = dissipative_tfi(2, V=2.0, g=1.0, gamma=1.0)
    names = ("magnetization_x", "magnetization_z")  # fewer observables: fewer compilations
    system = dataclasses.replace(system, observables={k: system.observables[k] for k in names})
    path = tmp_path / "ndm.h5"
    first = NDMSettings(n_steps=100, learning_rate=0.1, n_samples=2000, n_samples_diag=16384,
                        n_samples_diag_final=16384, observables_every=100, checkpoint_every=50)
    find_ndm_steady_state(system, first, out=str(path), progress=False)
    settings = dataclasses.replace(first, n_steps=200)
    out = find_ndm_steady_state(system, settings, out=str(path), mode="resume", progress=False)
    assert out.steps == 200
    assert sorted(out.exact) == ["magnetization_x", "magnetization_z", "purity"]
    for name in names:
        value, err = out.observables[name]
        assert value == pytest.approx(out.exact[name], abs=TOL), name
        assert 0 < err < 0.01
        assert out.fullsum[f"{name}_fullsum"] == pytest.approx(out.exact[name], abs=1e-2), name
    assert out.fullsum["trace_distance"] < 2e-2
    assert out.fullsum["purity"] == pytest.approx(out.exact["purity"], abs=2e-2)
    assert out.ldagl.mean.real < 1e-3

    res = results.load(path)
    assert res.kind == "steady_state" and res.method["name"] == "dynamics.ndm_steady_state"
    assert res.ansatz["name"] == "netket.models.NDM" and res.ansatz["n_parameters"] > 0
    np.testing.assert_array_equal(res.history["step"], np.r_[np.arange(200), 200])  # resumed after step 99
    assert res.history["ldagl"][-2] < 1e-2 * res.history["ldagl"][0]
    assert np.isfinite(res.history["magnetization_x"][[0, 100, 200]]).all()
    assert np.isnan(res.history["magnetization_x"][1])
    for name in (*names, "purity"):
        assert res.exact[name] == pytest.approx(out.exact[name])
    rows = {r["name"]: r for r in results.compare_with_exact(res)}
    assert rows["magnetization_z"]["abs_err"] < TOL and rows["purity"]["abs_err"] < 2e-2
    assert res.checkpoint_step == 199


def test_bad_inputs():
    system = dissipative_tfi(2, g=1.0)
    closed = System(builder="test.closed", hilbert=system.hilbert, hamiltonian=system.hamiltonian)
    with pytest.raises(ValueError, match="open system"):
        find_ndm_steady_state(closed, NDMSettings(n_steps=1), progress=False)
    other = nk.hilbert.Spin(0.5, 3)
    wrong = dataclasses.replace(system)
    object.__setattr__(wrong, "jump_operators", (nk.operator.spin.sigmam(other, 0),))  # bypass System's own check
    with pytest.raises(ValueError, match="Hilbert space"):
        find_ndm_steady_state(wrong, NDMSettings(n_steps=1), progress=False)
    with pytest.raises(ValueError, match="lr_schedule"):
        NDMSettings(lr_schedule="linear")
    with pytest.raises(ValueError, match="diag_shift"):
        NDMSettings(diag_shift=0.0)
