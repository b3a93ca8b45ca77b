"""Smoke test: every experiment script in runs/ finishes with --quick and writes a readable result file."""

import subprocess
import sys

import pytest
from conftest import REPO

from nqs import results

SCRIPTS = sorted((REPO / "runs").glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.stem for s in SCRIPTS])
def test_script_runs_quick(script, tmp_path):
    out = tmp_path / f"{script.stem}.h5"
    proc = subprocess.run(
        [sys.executable, str(script), "--quick", "--quiet", "--out", str(out)],
        capture_output=True, text=True, timeout=600, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "exact" in proc.stdout
    res = results.load(out)
    assert res.attrs["config"]["quick"] is True
    assert len(res.history["step"]) > 0 and res.exact
