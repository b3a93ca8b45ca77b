"""Smoke test: every experiment script in runs/ finishes with --quick and writes a readable result file.

The scripts run in this process (their `main(argv)`), which saves the JAX/NetKet start-up of a subprocess per
script; `runs/` goes on sys.path as it does when a script is started directly."""

import importlib.util

import numpy as np
import pytest
from conftest import REPO

from nqs import results

SCRIPTS = sorted((REPO / "runs").glob("*.py"))
# the TFIM quench runs NetKet's RBM (Metropolis samples, fitted |→⟩ start); its autoregressive path is the
# default of the other quench scripts
EXTRA_ARGS = {"tfim_quench": ["--ansatz", "rbm", "--alpha", "1", "--rtol-smooth", "1e-6"]}


# the slowest smoke runs, whose pieces have their own default tests (2D Transformer VMC; staggered-field VMC then
# TENG; POVM trapezoid and String States; TDVP of the TFIM chain; POVM steady state), run with -m slow to keep the
# default suite under 15 minutes on 2 cores
SLOW = {"heisenberg_square", "heisenberg_neel_quench", "dissipative_xyz_dynamics", "tfim_quench",
        "dissipative_tfi_steady_state"}


@pytest.mark.parametrize(
    "script", [pytest.param(s, id=s.stem, marks=[pytest.mark.slow] if s.stem in SLOW else []) for s in SCRIPTS]
)
def test_script_runs_quick(script, tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "runs"))
    spec = importlib.util.spec_from_file_location(f"runs_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / f"{script.stem}.h5"
    module.main(["--quick", "--quiet", "--out", str(out), *EXTRA_ARGS.get(script.stem, [])])
    assert "exact" in capsys.readouterr().out
    res = results.load(out)
    assert res.attrs["config"]["quick"] is True
    assert len(res.history["step"]) > 0 and res.exact
    if script.stem == "tfim_quench":
        assert res.ansatz["name"] == "RBM" and res.ansatz["alpha"] == 1
        mx = res.history["magnetization_x_fullsum"]
        assert abs(mx[0] - 1) < 2e-2  # the fitted start is close to |→⟩ ...
        np.testing.assert_allclose(mx, res.exact["magnetization_x"][: len(mx)], atol=2e-2)  # ... and stays on track



def test_rbm_option_refuses_what_it_cannot_do():
    import argparse

    from hamiltonians import heisenberg, tfim
    from nqs.scripting import add_ansatz_options, build_ansatz

    parser = argparse.ArgumentParser()
    add_ansatz_options(parser)
    args = parser.parse_args(["--ansatz", "rbm", "--alpha", "3"])
    assert build_ansatz(args, tfim(4)).alpha == 3
    with pytest.raises(ValueError, match="cannot keep the constraint"):
        build_ansatz(args, heisenberg(4))  # S^z = 0 sector: Metropolis single flips would leave it
    with pytest.raises(ValueError, match="no built-in sign rule"):
        build_ansatz(args, tfim(4), sign_sites=[1, 3])
    symmetric = build_ansatz(parser.parse_args(["--ansatz", "rbm", "--symmetry", "translations"]), tfim(4))
    assert type(symmetric).__name__ == "RBMSymm"


def test_spin_flip_rbm_is_even_under_the_global_flip():
    import argparse

    import jax

    from hamiltonians import tfim
    from nqs.scripting import add_ansatz_options, build_ansatz

    parser = argparse.ArgumentParser()
    add_ansatz_options(parser)
    system = tfim(6)
    x = np.asarray(system.hilbert.all_states())
    for extra in ([], ["--symmetry", "translations"]):
        model = build_ansatz(parser.parse_args(["--ansatz", "rbm", "--alpha", "2", "--spin-flip", *extra]), system)
        params = model.init(jax.random.PRNGKey(0), x[:1])
        params = jax.tree_util.tree_map(lambda p: p + 0.3 * (1 + 1j) * np.cos(np.arange(p.size).reshape(p.shape)),
                                        params)  # generic, not small
        log_psi = np.asarray(model.apply(params, x))
        np.testing.assert_allclose(np.asarray(model.apply(params, -x)), log_psi, atol=1e-12)
        assert np.ptp(log_psi.real) > 0.1  # not a constant


def test_chain_script_coherent_projection(tmp_path, monkeypatch, capsys):
    """--coherent: the quick 8-site J1-J2 chain, projected on the space group × flip, reaches ED."""
    monkeypatch.syspath_prepend(str(REPO / "runs"))
    spec = importlib.util.spec_from_file_location("runs_heisenberg_chain_coherent", REPO / "runs" / "heisenberg_chain.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "coherent.h5"
    module.main(["--quick", "--quiet", "--out", str(out), "--J2", "0.2", "--symmetry", "space", "--spin-flip",
                 "--coherent", "--lr", "0.05", "--diag-shift", "1e-4"])
    assert "coherent projection" in capsys.readouterr().out
    res = results.load(out)
    assert res.method["name"] == "nqs.projected_vmc.projected_ground_state"
    assert abs(res.history["energy"][-1] - res.exact["energy"]) < 1e-6 * abs(res.exact["energy"])
    with pytest.raises(ValueError, match="--symmetry"):
        module.main(["--quick", "--quiet", "--out", str(tmp_path / "x.h5"), "--coherent"])
