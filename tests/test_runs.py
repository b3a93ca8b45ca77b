"""Smoke test: every experiment script in runs/ finishes with --quick and writes a readable result file.

The scripts run in this process (their `main(argv)`), which saves the JAX/NetKet start-up of a subprocess per
script; `runs/` goes on sys.path as it does when a script is started directly."""

import importlib.util

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
