"""Smoke test: every experiment script in runs/ finishes with --quick and writes a readable result file; by default
it refuses an existing output file before building anything; the typed ansatz choice keeps its refusals.

The scripts run in this process (their `main(argv)`), which saves the JAX/NetKet start-up of a subprocess per
script; `runs/` goes on sys.path as it does when a script is started directly (the helper modules `runs/_*.py` are
not scripts)."""

import importlib
import importlib.util

import h5py
import numpy as np
import pytest
from conftest import REPO

import nqs.exact
from ansatze.choice import AnsatzChoice, build_ansatz
from nqs import results
from nqs.result_file import ResultFile
from nqs.system import System

# scripts that write one result file per run of a comparison into an --out folder have their own tests
# (j1j2_antn: tests/test_antn.py)
FOLDER_OUTPUT = {"j1j2_antn"}
SCRIPTS = sorted(s for s in (REPO / "runs").glob("*.py") if not s.name.startswith("_") and s.stem not in FOLDER_OUTPUT)
# the TFIM quench runs NetKet's RBM (Metropolis samples, fitted |→⟩ start); its autoregressive path is the
# default of the other quench scripts
EXTRA_ARGS = {"tfim_quench": ["--ansatz", "rbm", "--alpha", "1", "--rtol-smooth", "1e-6"]}


# the slowest smoke runs, whose pieces have their own default tests (2D Transformer VMC; staggered-field VMC then
# TENG; POVM trapezoid and String States; TDVP of the TFIM chain; POVM steady state; gauge-invariant VMC of the
# quantum link model and of the 2D Z2 gauge theory, ~28 s of JAX compilation; the quantum link quench, whose pieces
# test_quantum_link runs; the Hubbard VMC, whose pieces test_hubbard runs), run with -m slow to keep the
# default suite under 15 minutes on 2 cores
SLOW = {"heisenberg_square", "heisenberg_neel_quench", "dissipative_xyz_dynamics", "tfim_quench",
        "dissipative_tfi_steady_state", "qlm_ground_state", "z2_gauge", "qlm_quench", "hubbard"}


def _load_script(script, monkeypatch):
    """The script module, imported as running it does: its folder (runs/) first on sys.path."""
    monkeypatch.syspath_prepend(str(REPO / "runs"))
    spec = importlib.util.spec_from_file_location(f"runs_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "script", [pytest.param(s, id=s.stem, marks=[pytest.mark.slow] if s.stem in SLOW else []) for s in SCRIPTS]
)
def test_script_runs_quick(script, tmp_path, capsys, monkeypatch):
    module = _load_script(script, monkeypatch)
    out = tmp_path / f"{script.stem}.h5"
    module.main(["--quick", "--quiet", "--out", str(out), *EXTRA_ARGS.get(script.stem, [])])
    assert "exact" in capsys.readouterr().out
    res = results.load(out)
    assert res.attrs["config"]["quick"] is True
    assert len(res.history["step"]) > 0 and res.exact
    if script.stem == "heisenberg_chain":  # the main job: the L = 8 Transformer ground state within 1e-3 of exact
        energy, exact = res.history["energy"][-1], res.exact["energy"]
        assert abs(energy - exact) < 1e-3 * abs(exact), (energy, exact)
    if script.stem == "tfim_quench":
        assert res.ansatz["name"] == "RBM" and res.ansatz["alpha"] == 1
        mx = res.history["magnetization_x_fullsum"]
        assert abs(mx[0] - 1) < 2e-2  # the fitted start is close to |→⟩ ...
        np.testing.assert_allclose(mx, res.exact["magnetization_x"][: len(mx)], atol=2e-2)  # ... and stays on track



def test_rbm_option_refuses_what_it_cannot_do():
    from hamiltonians import heisenberg, tfim

    choice = AnsatzChoice(kind="rbm", alpha=3)
    assert build_ansatz(choice, tfim(4)).alpha == 3
    with pytest.raises(ValueError, match="cannot keep the constraint"):
        build_ansatz(choice, heisenberg(4))  # S^z = 0 sector: Metropolis single flips would leave it
    with pytest.raises(ValueError, match="no built-in sign rule"):
        build_ansatz(choice, tfim(4), sign_sites=[1, 3])
    symmetric = build_ansatz(AnsatzChoice(kind="rbm", symmetry="translations"), tfim(4))
    assert type(symmetric).__name__ == "RBMSymm"


def test_ansatz_options_become_a_typed_choice(monkeypatch):
    """The script layer's --ansatz options map one-to-one onto `AnsatzChoice`; unknown values are refused there."""
    import argparse

    monkeypatch.syspath_prepend(str(REPO / "runs"))
    common = importlib.import_module("_common")
    parser = argparse.ArgumentParser()
    common.add_ansatz_options(parser)
    args = parser.parse_args(["--ansatz", "rnn", "--cell", "lstm", "--patch", "2", "2", "--spin-flip",
                              "--dtype", "float32"])
    assert common.ansatz_choice(args) == AnsatzChoice(kind="rnn", cell="lstm", patch=(2, 2), spin_flip=True,
                                                       dtype="float32")
    assert common.ansatz_choice(parser.parse_args([])) == AnsatzChoice()
    with pytest.raises(ValueError, match="unknown kind"):
        AnsatzChoice(kind="cnn")


def test_spin_flip_rbm_is_even_under_the_global_flip():
    import jax

    from hamiltonians import tfim

    system = tfim(6)
    x = np.asarray(system.hilbert.all_states())
    for symmetry in ("none", "translations"):
        model = build_ansatz(AnsatzChoice(kind="rbm", alpha=2, spin_flip=True, symmetry=symmetry), system)
        params = model.init(jax.random.PRNGKey(0), x[:1])
        params = jax.tree_util.tree_map(lambda p: p + 0.3 * (1 + 1j) * np.cos(np.arange(p.size).reshape(p.shape)),
                                        params)  # generic, not small
        log_psi = np.asarray(model.apply(params, x))
        np.testing.assert_allclose(np.asarray(model.apply(params, -x)), log_psi, atol=1e-12)
        assert np.ptp(log_psi.real) > 0.1  # not a constant


@pytest.mark.slow  # the projected search's accuracy is in tests/test_projected_vmc.py; this is the script's route to it
def test_chain_script_coherent_projection(tmp_path, monkeypatch, capsys):
    """--coherent: the quick 8-site J1-J2 chain, projected on the space group × flip, reaches ED."""
    module = _load_script(REPO / "runs" / "heisenberg_chain.py", monkeypatch)
    out = tmp_path / "coherent.h5"
    module.main(["--quick", "--quiet", "--out", str(out), "--J2", "0.2", "--symmetry", "space", "--spin-flip",
                 "--coherent", "--lr", "0.05", "--diag-shift", "1e-4"])
    assert "coherent projection" in capsys.readouterr().out
    res = results.load(out)
    assert res.method["name"] == "nqs.projected_vmc.projected_ground_state"
    assert abs(res.history["energy"][-1] - res.exact["energy"]) < 1e-6 * abs(res.exact["energy"])
    with pytest.raises(ValueError, match="--symmetry"):
        module.main(["--quick", "--quiet", "--out", str(tmp_path / "x.h5"), "--coherent"])


def _refuse(*args, **kwargs):
    raise AssertionError("built before the output file was checked")


def _foreign_hdf5(path):
    with h5py.File(path, "w") as file:
        file["data"] = np.arange(5.0)
        file.attrs["owner"] = "another program"


def _other_result(path):
    with ResultFile(path, kind="dynamics", config={"experiment": "another"}, seed=7) as file:
        file.append({"step": 0, "energy": -1.0})


@pytest.mark.parametrize("existing", [_foreign_hdf5, _other_result], ids=["foreign_hdf5", "other_result"])
@pytest.mark.parametrize("script", [pytest.param(s, id=s.stem) for s in SCRIPTS])
def test_script_refuses_an_existing_file_before_building_anything(script, existing, tmp_path, monkeypatch):
    """The default --mode fail stops with a message naming --mode overwrite/resume before a system, an exact
    reference or a model is built, and leaves the file byte-identical."""
    module = _load_script(script, monkeypatch)
    monkeypatch.setattr(System, "__post_init__", _refuse)
    monkeypatch.setattr(nqs.exact, "ground_state", _refuse)
    out = tmp_path / "existing.h5"
    existing(out)
    before = out.read_bytes()
    with pytest.raises(SystemExit, match=r"exists: pass --mode overwrite to replace it, --mode resume to continue it"):
        module.main(["--quick", "--quiet", "--out", str(out)])
    assert out.read_bytes() == before


def test_resume_refuses_a_foreign_file_before_building_anything(tmp_path, monkeypatch):
    module = _load_script(REPO / "runs" / "tfim2d_quench.py", monkeypatch)
    monkeypatch.setattr(System, "__post_init__", _refuse)
    out = tmp_path / "foreign.h5"
    _foreign_hdf5(out)
    before = out.read_bytes()
    with pytest.raises(SystemExit, match="cannot resume .* not an nqs result file"):
        module.main(["--quick", "--quiet", "--out", str(out), "--mode", "resume"])
    assert out.read_bytes() == before


def test_overwrite_replaces_a_foreign_file(tmp_path, monkeypatch, capsys):
    module = _load_script(REPO / "runs" / "tfim2d_quench.py", monkeypatch)
    out = tmp_path / "foreign.h5"
    _foreign_hdf5(out)
    module.main(["--quick", "--quiet", "--out", str(out), "--mode", "overwrite"])
    assert "exact" in capsys.readouterr().out
    res = results.load(out)
    assert res.attrs["config"]["mode"] == "overwrite" and len(res.history["step"]) > 0 and res.exact
