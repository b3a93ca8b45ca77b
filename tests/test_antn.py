"""ANTN (`ansatze.antn`): normalisation, exact sampling, the MPS and network limits, prefix reuse, resume."""

import jax
import numpy as np
import pytest
from ar_checks import ardirect_samples, assert_born_distribution, assert_normalised
from flax.core import unfreeze
from jax.flatten_util import ravel_pytree

from ansatze import ARRNN, ARTransformer
from ansatze.antn import RNNANTN, TransformerANTN
from hamiltonians import heisenberg
from nqs import results
from nqs.constraint import zero_magnetization
from nqs.vmc import VMCSettings, ground_state

N = 8
SNAKE = {"order": "snake", "shape": (4, 2)}
NET = {"layers": 1, "features": 8, "heads": 2}


@pytest.fixture(scope="module")
def states():
    import netket as nk

    hi = nk.hilbert.Spin(0.5, N)
    return hi, np.asarray(hi.all_states())


def _init(model, x, seed=0):
    return model.init(jax.random.PRNGKey(seed), x[:2])


@pytest.mark.parametrize(("variant", "constrained"), [
    ("elementwise", True), ("blockwise", True), ("blockwise", False),
    pytest.param("elementwise", False, marks=pytest.mark.slow)])  # slow: suite time
def test_normalised_by_enumeration(states, variant, constrained):
    hi, x = states
    model = TransformerANTN(hi, bond_dim=3, variant=variant, constraint=zero_magnetization(N) if constrained else None,
                            mps_noise=0.3, **SNAKE, **NET)
    assert_normalised(x, model.apply(_init(model, x), x), constrained)


@pytest.mark.slow  # suite time: the RNN network's χ = 1 limit stays in the default suite
def test_rnn_antn_normalised(states):
    hi, x = states
    model = RNNANTN(hi, hidden=6, bond_dim=2, variant="elementwise", constraint=zero_magnetization(N), mps_noise=0.3)
    assert_normalised(x, model.apply(_init(model, x), x), True)


def test_exact_sampler_follows_born_rule(states):
    """ARDirectSampler through the cached path (u_{k−1} in the cache) against |ψ|² from the parallel pass."""
    hi, x = states
    model = TransformerANTN(hi, bond_dim=3, variant="elementwise", constraint=zero_magnetization(N), mps_noise=0.3,
                            **SNAKE, **NET)
    params = _init(model, x, seed=4)
    samples = ardirect_samples(hi, model, params)
    assert_born_distribution(hi, samples, np.asarray(model.apply(params, x)), True)


def _zero_heads(params):
    params = unfreeze(params)
    for head in ("amplitude_head", "phase_head"):
        params["params"][head] = jax.tree_util.tree_map(np.zeros_like, params["params"][head])
    return params


def test_mps_limit_is_the_normalised_mps(states):
    """Heads at zero: ψ(x) = ψ_MPS(x) / ‖ψ_MPS‖ with ψ_MPS = b_L M_0^{x_π0} ⋯ M_7^{x_π7} b_R contracted here in
    numpy, phase included (snake path π, exact environments)."""
    hi, x = states
    model = TransformerANTN(hi, bond_dim=3, variant="blockwise", mps_noise=0.7, **SNAKE, **NET)
    params = _zero_heads(_init(model, x, seed=2))
    m = np.asarray(params["params"]["mps_real"]) + 1j * np.asarray(params["params"]["mps_imag"])
    path = np.asarray(model.layout().path)
    index = np.asarray(hi.states_to_local_indices(x))[:, path]
    amplitude = np.empty(len(x), complex)
    for i, config in enumerate(index):
        v = np.eye(3)[0]
        for k, s in enumerate(config):
            v = v @ m[k, s]
        amplitude[i] = v[0]
    amplitude /= np.linalg.norm(amplitude)
    np.testing.assert_allclose(np.exp(np.asarray(model.apply(params, x))), amplitude, rtol=0, atol=1e-12)


@pytest.mark.parametrize("network", ["transformer", pytest.param("rnn", marks=pytest.mark.slow)])  # suite time
def test_bond_dimension_one_is_the_network(states, network):
    """χ = 1, M = 1/√2 (the start without noise; a constant M cancels in the normalised conditionals): the ANTN is
    the underlying network with the same network and head parameters (the ANTN's
    parameters minus mps_real/mps_imag are exactly the network's parameter tree)."""
    hi, x = states
    con = zero_magnetization(N)
    if network == "transformer":
        antn = TransformerANTN(hi, bond_dim=1, mps_noise=0.0, constraint=con, **SNAKE, **NET)
        plain = ARTransformer(hi, constraint=con, **SNAKE, **NET)
    else:
        antn = RNNANTN(hi, hidden=6, bond_dim=1, mps_noise=0.0, constraint=con)
        plain = ARRNN(hi, hidden=6, constraint=con)
    params = unfreeze(_init(antn, x, seed=5))
    np.testing.assert_array_equal(params["params"].pop("mps_real"), 1 / np.sqrt(2))
    assert not np.any(params["params"].pop("mps_imag"))
    assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(_init(plain, x))
    full = _init(antn, x, seed=5)
    np.testing.assert_allclose(np.exp(np.asarray(antn.apply(full, x))),  # equal up to 2πi in log ψ
                               np.exp(np.asarray(plain.apply(params, x))), rtol=0, atol=1e-12)


@pytest.mark.slow  # three compilations of the suffix pass; no method uses the hook yet (issue 31 will)
def test_suffix_evaluation_from_the_prefix_cache(states):
    """x′ equal to x before generation position `start`: suffix_log_psi(x′) = log ψ(x′) (1e-12)."""
    hi, x = states
    model = TransformerANTN(hi, bond_dim=3, variant="elementwise", mps_noise=0.3, **SNAKE, **NET)
    params = _init(model, x, seed=6)
    rng = np.random.default_rng(0)
    base = x[rng.choice(len(x), 16)]
    cache = model.apply(params, base, method=model.prefix_cache)
    path = np.asarray(model.layout().path)
    for start in (3, N - 1, N):  # a suffix, the last position alone, x′ = x
        other = base.copy()
        later = path[start:]
        other[:, later] = rng.choice([-1.0, 1.0], (len(base), len(later)))
        got = model.apply(params, other, cache, start, method=model.suffix_log_psi)
        np.testing.assert_allclose(np.exp(np.asarray(got)), np.exp(np.asarray(model.apply(params, other))),
                                   rtol=0, atol=1e-12)


def test_bad_fields_are_refused(states):
    hi, _ = states
    with pytest.raises(ValueError, match="variant"):
        TransformerANTN(hi, variant="diagonal", **NET)
    with pytest.raises(ValueError, match="bond_dim"):
        TransformerANTN(hi, bond_dim=0, **NET)
    with pytest.raises(ValueError, match="initial_distribution"):
        TransformerANTN(hi, initial_distribution=(0.5, 0.5), **NET)


@pytest.mark.slow  # ~55 s, mostly compiling the ANTN's SR step; the run layer's resume is in tests/test_vmc.py
def test_vmc_resume_continues_the_same_run(tmp_path):
    """An ANTN VMC run interrupted after step 3 and resumed equals the uninterrupted run (sampled, SR)."""
    system = heisenberg(4, marshall=True)
    model = TransformerANTN(system.hilbert, bond_dim=2, constraint=system.constraint, **NET)
    settings = VMCSettings(n_steps=5, n_samples=32, learning_rate=0.05, checkpoint_every=2, solver="sr",
                           n_samples_final=32, observables_every=0)

    def run(path, mode="fail", callbacks=()):
        return ground_state(system, model, settings, seed=3, out=str(path), mode=mode, callbacks=callbacks,
                            progress=False)

    full = run(tmp_path / "full.h5")

    def crash(step, row, driver):
        if step == 3:
            raise KeyboardInterrupt("simulated kill")

    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "part.h5", callbacks=[crash])
    resumed = run(tmp_path / "part.h5", mode="resume")
    np.testing.assert_allclose(np.asarray(ravel_pytree(full.state.parameters)[0]),
                               np.asarray(ravel_pytree(resumed.state.parameters)[0]), rtol=0, atol=1e-10)
    assert results.load(tmp_path / "part.h5").ansatz["name"] == "TransformerANTN"


def _script(monkeypatch):
    import importlib.util

    from conftest import REPO

    monkeypatch.syspath_prepend(str(REPO / "runs"))
    spec = importlib.util.spec_from_file_location("runs_j1j2_antn", REPO / "runs" / "j1j2_antn.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # ~40 s of compilation (the final evaluation's observables); the state itself: tests/test_dmrg.py
def test_script_starts_the_antn_at_the_dmrg_energy(tmp_path, monkeypatch, capsys):
    """runs/j1j2_antn.py --quick with no VMC step: the ANTN's sampled energy (512 exact samples) is the DMRG
    energy within 5σ, and each run has its own result file with the ED reference."""
    module = _script(monkeypatch)
    rows = module.main(["--quick", "--quiet", "--out", str(tmp_path), "--models", "dmrg", "antn-blockwise",
                        "--steps", "0"])
    dmrg, antn = rows
    assert dmrg["model"] == "DMRG χ=4" and antn["model"] == "antn-blockwise"
    assert abs(antn["energy"] - dmrg["energy"]) < 5 * antn["error"] + 1e-12
    assert antn["error"] > 0  # sampled, not the exact sum
    for name in ("dmrg", "antn-blockwise"):
        res = results.load(tmp_path / f"L4x2_J2=0.5_{name}.h5")
        assert res.exact["energy"] == pytest.approx(dmrg["reference"]) and res.attrs["config"]["quick"] is True
    assert "rel. error" in capsys.readouterr().out


def test_script_refuses_existing_results_and_a_file_as_folder(tmp_path, monkeypatch, capsys):
    module = _script(monkeypatch)
    (tmp_path / "L4x2_J2=0.5_dmrg.h5").write_bytes(b"not mine")
    with pytest.raises(SystemExit, match="2"):
        module.main(["--quick", "--quiet", "--out", str(tmp_path)])
    assert "exists: pass --mode overwrite" in capsys.readouterr().err
    assert (tmp_path / "L4x2_J2=0.5_dmrg.h5").read_bytes() == b"not mine"
    with pytest.raises(SystemExit, match="2"):
        module.main(["--quick", "--quiet", "--out", str(tmp_path / "L4x2_J2=0.5_dmrg.h5")])
    assert "is a file" in capsys.readouterr().err


@pytest.mark.slow
def test_script_quick_runs_every_model(tmp_path, monkeypatch):
    """All four rows of the quick comparison (4×2, χ = 4, 10 steps) and their result files."""
    module = _script(monkeypatch)
    rows = module.main(["--quick", "--quiet", "--out", str(tmp_path)])
    assert [r["model"] for r in rows] == ["DMRG χ=4", "antn-blockwise", "antn-elementwise", "transformer"]
    assert all(np.isfinite(r["energy"]) and r["energy"] >= r["reference"] - 5 * r["error"] for r in rows)


def test_ansatz_choice_builds_the_antn_along_the_snake():
    from ansatze.choice import AnsatzChoice, build_ansatz

    system = heisenberg((4, 2), lattice="square", J2=0.5, marshall=True)
    model = build_ansatz(AnsatzChoice(kind="antn", variant="elementwise", bond_dim=5, **NET), system)
    assert isinstance(model, TransformerANTN) and model.order == "snake" and model.shape == (4, 2)
    assert (model.bond_dim, model.variant, model.constraint) == (5, "elementwise", system.constraint)
    rnn = build_ansatz(AnsatzChoice(kind="antn", network="rnn", cell="lstm", features=6), system)
    assert isinstance(rnn, RNNANTN) and rnn.cell == "lstm" and rnn.hidden == 6 and rnn.variant == "blockwise"
    with pytest.raises(ValueError, match="unknown variant"):
        AnsatzChoice(kind="antn", variant="diagonal")
