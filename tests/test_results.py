"""Result file: round trip, modes, resume truncation, lazy columns, a killed writer keeps its rows."""

import json
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from hamiltonians import heisenberg
from nqs import results
from nqs.results import ResultFile, ResultFileError


@pytest.fixture(scope="module")
def system():
    return heisenberg(4, J=0.5)


def _write(path, system, rows=5, mode="fail", kind="ground_state", config=None):
    with ResultFile(path, mode, kind=kind, config=config or {"L": 4, "lr": 0.1}, seed=7, system=system,
                    ansatz={"name": "Fake", "layers": 2, "n_parameters": 10}, method={"name": "test", "dt": 0.1}) as f:
        for i in range(rows):
            f.append({"step": i, "energy": -1.0 - i, "energy_error": 0.01})
        f.write_exact("energy", -3.5)
        f.save_checkpoint(b"\x00state\xff", rows - 1)
    return path


def test_round_trip(tmp_path, system):
    res = results.load(_write(tmp_path / "r.h5", system))
    assert res.kind == "ground_state" and res.attrs["seed"] == 7
    assert res.attrs["config"] == {"L": 4, "lr": 0.1}
    assert res.attrs["versions"]["netket"]
    assert res.system["builder"] == "hamiltonians.heisenberg" and res.system["J"] == 0.5 and res.system["L"] == 4
    assert res.system["convention_units"] == "pauli"
    assert res.system["constraint"]["type"] == "U1Constraint"
    assert res.ansatz == {"name": "Fake", "layers": 2, "n_parameters": 10}
    np.testing.assert_array_equal(res.history["energy"], -1.0 - np.arange(5))
    assert res.exact["energy"] == -3.5 and res.checkpoint_step == 4
    with ResultFile(tmp_path / "r.h5", "resume", kind="ground_state", config={"L": 4, "lr": 0.1}, seed=7) as f:
        assert f.load_checkpoint() == (b"\x00state\xff", 4)
    rows = results.compare_with_exact(res)
    assert rows[0]["name"] == "energy" and rows[0]["rel_err"] == pytest.approx(1.5 / 3.5)


def test_modes(tmp_path, system):
    path = _write(tmp_path / "m.h5", system)
    with pytest.raises(FileExistsError, match="mode='overwrite'"):
        _write(path, system)
    _write(path, system, rows=2, mode="overwrite")
    assert len(results.load(path).history["step"]) == 2
    with pytest.raises(ValueError, match="unknown mode"):
        ResultFile(tmp_path / "x.h5", "append", kind="k", config={}, seed=0)


def test_resume_truncates_rows_after_checkpoint_and_checks_kind_and_config(tmp_path, system):
    path = tmp_path / "c.h5"
    with ResultFile(path, kind="ground_state", config={"L": 4}, seed=0, system=system) as f:
        for i in range(6):
            f.append({"step": i, "energy": float(i)})
            if i == 2:
                f.save_checkpoint(b"ck", 2)
    with pytest.raises(ResultFileError, match="'dynamics'"):
        ResultFile(path, "resume", kind="dynamics", config={"L": 4}, seed=0)
    with pytest.raises(ResultFileError, match="differs in \\['L'\\]"):
        ResultFile(path, "resume", kind="ground_state", config={"L": 6}, seed=0)
    with ResultFile(path, "resume", kind="ground_state", config={"L": 4, "n_steps": 99}, seed=0) as f:
        assert f.n_rows == 3 and f.last_step == 2
        f.append({"step": 3, "energy": 30.0})
    res = results.load(path)
    np.testing.assert_array_equal(res.history["energy"], [0, 1, 2, 30])
    assert res.system["builder"] == "hamiltonians.heisenberg"  # metadata kept


def test_lazy_columns_are_backfilled_and_complex_split(tmp_path):
    with ResultFile(tmp_path / "l.h5", kind="k", config={}, seed=0) as f:
        f.append({"step": 0, "a": 1.0})
        f.append({"step": 1, "b": 2.0 + 0.5j})
    h = results.load(tmp_path / "l.h5").history
    np.testing.assert_array_equal(h["a"], [1.0, np.nan])
    np.testing.assert_array_equal(h["b"], [np.nan, 2.0])
    np.testing.assert_array_equal(h["b_imag"], [np.nan, 0.5])


def test_killed_writer_keeps_every_flushed_row(tmp_path):
    path = tmp_path / "killed.h5"
    code = textwrap.dedent(
        f"""
        import os
        from nqs.results import ResultFile
        f = ResultFile({str(path)!r}, kind="ground_state", config={{}}, seed=0)
        for i in range(25):
            f.append({{"step": i, "energy": -i}})
        os._exit(1)  # no close, no flush at exit
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    res = results.load(path)
    np.testing.assert_array_equal(res.history["step"], np.arange(25))
    with ResultFile(path, "resume", kind="ground_state", config={}, seed=0) as f:
        assert f.n_rows == 0  # no checkpoint was written: every row is recomputed


def test_corrupt_and_foreign_files_are_refused(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"this is not hdf5" * 10)
    with pytest.raises(ResultFileError, match="not a readable HDF5"):
        results.load(bad)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["data"] = np.arange(3)
    with pytest.raises(ResultFileError, match="not an nqs result file"):
        results.load(foreign)
    with pytest.raises(FileNotFoundError):
        results.load(tmp_path / "missing.h5")
    assert json.loads(results.to_json({"a": np.float64(1.5)})) == {"a": 1.5}
