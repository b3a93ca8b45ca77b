"""Smoke test: every experiment script in runs/ finishes with --quick and writes a readable result file.

The scripts run in this process (their `main(argv)`), which saves the JAX/NetKet start-up of a subprocess per
script; `runs/` goes on sys.path as it does when a script is started directly."""

import importlib.util

import numpy as np
import pytest
from conftest import REPO

from nqs import results

SCRIPTS = sorted((REPO / "runs").glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.stem for s in SCRIPTS])
def test_script_runs_quick(script, tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "runs"))
    spec = importlib.util.spec_from_file_location(f"runs_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / f"{script.stem}.h5"
    module.main(["--quick", "--quiet", "--out", str(out)])
    assert "exact" in capsys.readouterr().out
    res = results.load(out)
    assert res.attrs["config"]["quick"] is True
    assert len(res.history["step"]) > 0 and res.exact


def test_tfim_quench_with_a_metropolis_sampled_rbm(tmp_path, capsys, monkeypatch):
    """--ansatz rbm: NetKet's complex RBM, fitted to |→⟩ and evolved with Metropolis samples."""
    monkeypatch.syspath_prepend(str(REPO / "runs"))
    spec = importlib.util.spec_from_file_location("runs_tfim_quench_rbm", REPO / "runs" / "tfim_quench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    res = module.main(["--quick", "--quiet", "--ansatz", "rbm", "--alpha", "1", "--rtol-smooth", "1e-6",
                       "--out", str(tmp_path / "q.h5")])
    assert res.ansatz["name"] == "RBM" and res.ansatz["alpha"] == 1
    mx = res.history["magnetization_x_fullsum"]
    assert abs(mx[0] - 1) < 2e-2  # the fitted start is close to |→⟩ ...
    np.testing.assert_allclose(mx, res.exact["magnetization_x"][: len(mx)], atol=2e-2)  # ... and follows the exact series
