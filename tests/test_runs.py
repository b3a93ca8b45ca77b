"""Smoke test: every experiment script in runs/ finishes with --quick and writes a readable result file; by default
it refuses an existing output file before building anything; the typed ansatz choice keeps its refusals.

The scripts run in this process (their `main(argv)`), which saves the JAX/NetKet start-up of a subprocess per
script; `runs/` goes on sys.path as it does when a script is started directly (the helper modules `runs/_*.py` are
not scripts)."""

import importlib
import re

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



# the slowest smoke runs, whose pieces have their own default tests (2D Transformer VMC; staggered-field VMC then
# TENG; POVM trapezoid and String States; TDVP of the TFIM chain; POVM steady state; gauge-invariant VMC of the
# quantum link model and of the 2D Z2 gauge theory, ~28 s of JAX compilation; the quantum link quench, whose pieces
# test_quantum_link runs; the Hubbard VMC, whose pieces test_hubbard runs), run with -m slow to keep the
# default suite under 15 minutes on 2 cores
SLOW = {"heisenberg_square", "heisenberg_neel_quench", "dissipative_xyz_dynamics", "tfim_quench",
        "dissipative_tfi_steady_state", "qlm_ground_state", "z2_gauge", "qlm_quench", "hubbard"}


@pytest.mark.parametrize(
    "script", [pytest.param(s, id=s.stem, marks=[pytest.mark.slow] if s.stem in SLOW else []) for s in SCRIPTS]
)
def test_script_runs_quick(script, tmp_path, capsys, load_script):
    module = load_script(script.stem)
    out = tmp_path / f"{script.stem}.h5"
    module.main(["--quick", "--quiet", "--out", str(out)])
    assert "exact" in capsys.readouterr().out
    res = results.load(out)
    assert res.attrs["config"]["quick"] is True
    assert len(res.history["step"]) > 0 and res.exact
    check_quick_result(script.stem, res)


# What each script's --quick run must reach against its exact reference: the bound and (comment) the value measured
# on 2026-12-07. Dynamics: the largest infidelity over the save points and max_t |Δ obs| (the variational state's
# exact-sum value where the run records one, else its estimate); ground states: the final relative energy error.
QUICK_BOUNDS = {
    "heisenberg_chain": {"energy": 1e-3},  # the main job, L = 8 Transformer: 5.0e-4
    "tfim_quench": {"infidelity": 1e-6, "magnetization_x": 1e-5},  # MPS χ = 8 at L = 6: 1.4e-8, 1.1e-6
    "tfim2d_quench": {"infidelity": 1e-5, "magnetization_x": 1e-3},  # 2×2 TENG: 8.1e-7, 1.1e-4
    "heisenberg_neel_quench": {"infidelity": 1e-5, "staggered_magnetization_z": 1e-4},  # L = 6: 1.8e-6, 2.0e-5
    "qlm_quench": {"infidelity": 1e-8, "chiral_condensate": 1e-5},  # N = 4: 5.6e-10, 3.4e-7
    "z2_gauge": {"energy": 1e-2},  # L = 3, 30 steps: 2.6e-3
    "dissipative_hubbard": {"N": 5e-2},  # POVM trapezoid, 20 Adam iterations per step: 1.7e-2
    "dissipative_xyz_dynamics": {"magnetization_z": 5e-2},  # 2×2 to t = 0.1: 1.7e-2
    # 15-30 steps are far from converged: the variational bound E ≥ E0 only (measured 1.7e-1, 2.1e-1, 7.1e-2)
    "heisenberg_square": {"energy": None}, "hubbard": {"energy": None}, "qlm_ground_state": {"energy": None},
    # dissipative_tfi_steady_state (40 iterations: m_z −0.955 against −0.807) and dmft_bethe (Z against the
    # exact solver's own loop) have no --quick accuracy to check
}


def check_quick_result(name: str, res: results.Result) -> None:
    for quantity, bound in QUICK_BOUNDS.get(name, {}).items():
        if quantity == "infidelity":
            assert np.nanmax(res.history["infidelity"]) < bound, (name, res.history["infidelity"])
        elif res.kind == "ground_state":
            energy, error, exact = res.history["energy"][-1], res.history["energy_error"][-1], res.exact["energy"]
            assert energy > exact - 5 * error - 1e-9 * abs(exact), (name, energy, error, exact)  # variational
            assert bound is None or abs(energy - exact) < bound * abs(exact), (name, energy, exact)
        else:
            column = res.history.get(f"{quantity}_fullsum")
            column = res.history[quantity] if column is None or not np.isfinite(column).any() else column
            deviation = np.nanmax(np.abs(column - results.exact_on_history(res, quantity)))
            assert deviation < bound, (name, quantity, deviation)


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
def test_chain_script_coherent_projection(tmp_path, load_script, capsys):
    """--coherent: the quick 8-site J1-J2 chain, projected on the space group × flip, reaches ED."""
    module = load_script("heisenberg_chain")
    out = tmp_path / "coherent.h5"
    module.main(["--quick", "--quiet", "--out", str(out), "--J2", "0.2", "--symmetry", "space", "--spin-flip",
                 "--coherent", "--lr", "0.05", "--diag-shift", "1e-4"])
    assert "coherent projection" in capsys.readouterr().out
    res = results.load(out)
    assert res.method["name"] == "nqs.projected_vmc.projected_ground_state"
    assert abs(res.history["energy"][-1] - res.exact["energy"]) < 1e-6 * abs(res.exact["energy"])
    with pytest.raises(SystemExit, match="2"):
        module.main(["--quick", "--quiet", "--out", str(tmp_path / "x.h5"), "--coherent"])
    assert "--coherent projects onto an irrep of the --symmetry group" in capsys.readouterr().err


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
def test_script_refuses_an_existing_file_before_building_anything(script, existing, tmp_path, monkeypatch, load_script,
                                                                  capsys):
    """The default --mode fail stops with a message naming --mode overwrite/resume before a system, an exact
    reference or a model is built, and leaves the file byte-identical."""
    module = load_script(script.stem)
    monkeypatch.setattr(System, "__post_init__", _refuse)
    monkeypatch.setattr(nqs.exact, "ground_state", _refuse)
    out = tmp_path / "existing.h5"
    existing(out)
    before = out.read_bytes()
    with pytest.raises(SystemExit, match="2"):
        module.main(["--quick", "--quiet", "--out", str(out)])
    assert "exists: pass --mode overwrite to replace it, --mode resume to continue it" in capsys.readouterr().err
    assert out.read_bytes() == before


def test_resume_refuses_a_foreign_file_before_building_anything(tmp_path, monkeypatch, load_script, capsys):
    module = load_script("tfim2d_quench")
    monkeypatch.setattr(System, "__post_init__", _refuse)
    out = tmp_path / "foreign.h5"
    _foreign_hdf5(out)
    before = out.read_bytes()
    with pytest.raises(SystemExit, match="2"):
        module.main(["--quick", "--quiet", "--out", str(out), "--mode", "resume"])
    assert re.search("cannot resume .* not an nqs result file", capsys.readouterr().err)
    assert out.read_bytes() == before


def test_overwrite_replaces_a_foreign_file(tmp_path, load_script, capsys):
    module = load_script("tfim2d_quench")
    out = tmp_path / "foreign.h5"
    _foreign_hdf5(out)
    module.main(["--quick", "--quiet", "--out", str(out), "--mode", "overwrite"])
    assert "exact" in capsys.readouterr().out
    res = results.load(out)
    assert res.attrs["config"]["mode"] == "overwrite" and len(res.history["step"]) > 0 and res.exact
