"""Result file: round trip, modes, resume truncation, lazy columns, a killed writer keeps its rows."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import netket as nk
import numpy as np
import pytest

import nqs
from nqs import results
from nqs.results import ResultFile, ResultFileError

CONFIG = {"L": 2, "lr": 0.1, "sizes": (1, 2), "path": Path("/tmp/x"), "alpha": np.float32(0.5)}


@pytest.fixture(scope="module")
def system():
    hi = nk.hilbert.Spin(0.5, 2)
    return nqs.System(
        builder="test.fake", hilbert=hi, hamiltonian=nk.operator.spin.sigmaz(hi, 0),
        constraint=nqs.zero_magnetization(2), observables={"sz0": nk.operator.spin.sigmaz(hi, 0)},
        params={"L": 2, "h": 0.5, "pbc": True, "name": "chain", "couplings": [1.0, 2.0], "extra": None},
        conventions={"units": "pauli", "boundary": "open"},
    )


def _write(path, system, rows=5, mode="fail", kind="ground_state", config=CONFIG):
    ansatz = {"name": "Fake", "layers": 2, "widths": (4, 8), "n_parameters": 10}
    with ResultFile(path, mode, kind=kind, config=config, seed=7, system=system, ansatz=ansatz,
                    method={"name": "test", "dt": 0.1, "solver": None}) as f:
        for i in range(rows):
            f.append({"step": i, "energy": -1.0 - i, "energy_error": 0.01})
        f.write_exact("energy", -3.5)
        f.write_exact("spectrum", np.array([-3.5, -1.0, 2.0]))
        f.save_checkpoint(b"\x00state\xff", rows - 1)
    return path


def test_round_trip(tmp_path, system):
    res = results.load(_write(tmp_path / "sub" / "r.h5", system))
    assert res.kind == "ground_state" and res.attrs["seed"] == 7 and res.attrs["format_version"] == 1
    assert res.attrs["config"] == {"L": 2, "lr": 0.1, "sizes": [1, 2], "path": "/tmp/x", "alpha": 0.5}
    assert res.attrs["versions"]["netket"] and res.attrs["versions"]["h5py"] == h5py.__version__
    assert res.attrs["created"].endswith("+00:00")
    s = res.system
    assert s["builder"] == "test.fake" and s["h"] == 0.5 and s["L"] == 2 and s["pbc"] is True
    assert s["name"] == "chain" and s["couplings"] == [1.0, 2.0] and s["extra"] is None
    assert s["conventions"] == {"units": "pauli", "boundary": "open"} and s["convention_units"] == "pauli"
    assert s["constraint"] == {"type": "U1Constraint", "n_sites": 2, "charges": [1, -1], "total": 0}
    assert s["n_sites"] == 2 and s["observables"] == ["sz0"]
    assert res.ansatz == {"name": "Fake", "layers": 2, "widths": [4, 8], "n_parameters": 10}
    assert res.method == {"name": "test", "dt": 0.1, "solver": None}
    np.testing.assert_array_equal(res.history["energy"], -1.0 - np.arange(5))
    assert res.history["step"].dtype == np.float64 and res.n_rows == 5
    assert res.exact["energy"] == -3.5 and res.checkpoint_step == 4
    np.testing.assert_array_equal(res.exact["spectrum"], [-3.5, -1.0, 2.0])
    with ResultFile(tmp_path / "sub" / "r.h5", "resume", kind="ground_state", config=CONFIG, seed=7) as f:
        assert f.load_checkpoint() == (b"\x00state\xff", 4)
    (row,) = results.compare_with_exact(res)
    assert row["name"] == "energy" and row["error"] == 0.01 and row["rel_err"] == pytest.approx(1.5 / 3.5)
    assert results.final_values(res) == {"energy": (-5.0, 0.01)}


def test_datasets_are_resizable_float64_and_chunked(tmp_path, system):
    with h5py.File(_write(tmp_path / "r.h5", system), "r") as f:
        ds = f["history/energy"]
        assert ds.maxshape == (None,) and ds.chunks is not None and ds.dtype == np.float64
        assert f["checkpoint"].attrs["step"] == 4


def test_modes(tmp_path, system):
    path = _write(tmp_path / "m.h5", system)
    with pytest.raises(FileExistsError, match="mode='overwrite'"):
        _write(path, system)
    _write(path, system, rows=2, mode="overwrite")
    assert len(results.load(path).history["step"]) == 2
    _write(tmp_path / "new.h5", system, rows=3, mode="resume")  # resume of a missing file starts afresh
    assert results.load(tmp_path / "new.h5").n_rows == 3
    with pytest.raises(ValueError, match="unknown mode"):
        ResultFile(tmp_path / "x.h5", "append", kind="k", config={}, seed=0)


def test_resume_truncates_rows_after_checkpoint_and_checks_kind_and_config(tmp_path, system):
    path = tmp_path / "c.h5"
    with ResultFile(path, kind="ground_state", config={"L": 4, "lr": 0.1}, seed=0, system=system) as f:
        for i in range(6):
            f.append({"step": i, "energy": float(i)})
            if i == 2:
                f.save_checkpoint(b"ck", 2)
    with pytest.raises(ResultFileError, match="'dynamics'"):
        ResultFile(path, "resume", kind="dynamics", config={"L": 4, "lr": 0.1}, seed=0)
    with pytest.raises(ResultFileError, match="differs in \\['L', 'lr'\\]"):
        ResultFile(path, "resume", kind="ground_state", config={"L": 6}, seed=0)
    with ResultFile(path, "resume", kind="ground_state", config={"L": 4, "lr": 0.2}, seed=0,
                    ignore_on_resume=("lr",)) as f:
        assert f.n_rows == 3 and f.last_step == 2
    with ResultFile(path, "resume", kind="ground_state", config={"L": 4, "lr": 0.1, "n_steps": 99}, seed=0) as f:
        assert f.n_rows == 3 and f.last_step == 2
        f.append({"step": 3, "energy": 30.0})
    res = results.load(path)
    np.testing.assert_array_equal(res.history["energy"], [0, 1, 2, 30])
    assert res.system["builder"] == "test.fake" and res.attrs["config"] == {"L": 4, "lr": 0.1}  # metadata kept


def test_resume_refuses_foreign_files(tmp_path):
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["data"] = np.arange(3)
    with pytest.raises(ResultFileError, match="not an nqs result file"):
        ResultFile(foreign, "resume", kind="ground_state", config={}, seed=0)
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"garbage" * 10)
    with pytest.raises(ResultFileError, match="not a readable HDF5"):
        ResultFile(corrupt, "resume", kind="ground_state", config={}, seed=0)


def test_lazy_columns_are_backfilled_and_complex_split(tmp_path):
    with ResultFile(tmp_path / "l.h5", kind="k", config={}, seed=0) as f:
        f.append({"step": 0, "a": 1.0})
        f.append({"step": 1, "b": np.complex128(2.0 + 0.5j)})
        f.append({"step": 2, "a": np.float32(3.0)})
    h = results.load(tmp_path / "l.h5").history
    assert set(h) == {"step", "a", "b", "b_imag"}
    np.testing.assert_array_equal(h["a"], [1.0, np.nan, 3.0])
    np.testing.assert_array_equal(h["b"], [np.nan, 2.0, np.nan])
    np.testing.assert_array_equal(h["b_imag"], [np.nan, 0.5, np.nan])


BAD_ROWS = [
    ({"energy": 1.0}, "'step'"),
    ({"step": 0, "x": [1.0, 2.0]}, "scalar"),
    ({"step": 0, "a/b": 1.0}, "'/'"),
    ({"step": 0, "z": 1j, "z_imag": 0.0}, "complex"),
]


@pytest.mark.parametrize("row,match", BAD_ROWS)
def test_bad_rows_are_refused(tmp_path, row, match):
    with ResultFile(tmp_path / "b.h5", kind="k", config={}, seed=0) as f, pytest.raises(ValueError, match=match):
        f.append(row)


@pytest.mark.parametrize("death", ["os._exit(1)", "os.kill(os.getpid(), signal.SIGKILL)"])
def test_killed_writer_keeps_every_flushed_row(tmp_path, death):
    path = tmp_path / "killed.h5"
    code = textwrap.dedent(
        f"""
        import os, signal
        from nqs.results import ResultFile
        f = ResultFile({str(path)!r}, kind="ground_state", config={{}}, seed=0)
        for i in range(25):
            f.append({{"step": i, "energy": -i}})
            if i == 19:
                f.save_checkpoint(b"ck", i)
        {death}  # no close, no flush at exit
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    res = results.load(path)
    np.testing.assert_array_equal(res.history["step"], np.arange(25))
    assert res.checkpoint_step == 19
    with ResultFile(path, "resume", kind="ground_state", config={}, seed=0) as f:
        assert f.n_rows == 20 and f.last_step == 19  # rows after the checkpoint are recomputed


def test_corrupt_foreign_and_future_files_are_refused(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"this is not hdf5" * 10)
    with pytest.raises(ResultFileError, match="bad.h5 is not a readable HDF5"):
        results.load(bad)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["data"] = np.arange(3)
    with pytest.raises(ResultFileError, match="not an nqs result file"):
        results.load(foreign)
    future = tmp_path / "future.h5"
    with ResultFile(future, kind="k", config={}, seed=0):
        pass
    with h5py.File(future, "a") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(ResultFileError, match="format_version 99"):
        results.load(future)
    with pytest.raises(FileNotFoundError):
        results.load(tmp_path / "missing.h5")
    assert issubclass(ResultFileError, ValueError)


def test_json_encoding():
    encoded = results.to_json({"a": np.float64(1.5), "b": (1, 2), "c": Path("p"), "d": 1 + 2j})
    assert json.loads(encoded) == {"a": 1.5, "b": [1, 2], "c": "p", "d": [1.0, 2.0]}


def test_comparison_with_exact_time_series(tmp_path):
    times = np.linspace(0, 1, 6)
    with ResultFile(tmp_path / "d.h5", kind="dynamics", config={}, seed=0) as f:
        f.write_exact("time", times)
        f.write_exact("mx", np.cos(times))
        f.write_exact("energy", -2.0)
        for i, t in enumerate(times[:4]):  # stopped early: the exact series is longer than the history
            f.append({"step": i, "time": t, "mx": np.cos(t) + 1e-3, "mx_error": 1e-4, "energy": -1.9, "fidelity": 0.99})
    res = results.load(tmp_path / "d.h5")
    rows = {row["name"]: row for row in results.summary_rows(res)}
    assert rows["mx"]["exact"] == pytest.approx(np.cos(times[3])) and rows["mx"]["time"] == pytest.approx(times[3])
    assert rows["mx"]["abs_err"] == pytest.approx(1e-3) and rows["energy"]["time"] is None
    assert rows["fidelity"]["exact"] is None
    assert [row["name"] for row in results.compare_with_exact(res)] == ["energy", "mx"]
    table = results.format_table(rows.values())
    assert "mx (t=0.6)" in table and "rel. err" in table
    deviation = results.max_deviation(res)  # over the window; scalar references (energy) are not series
    assert set(deviation) == {"mx"} and deviation["mx"] == pytest.approx(1e-3)


def test_ansatz_description_of_netket_and_own_models():
    rbm = nk.vqs.FullSumState(nk.hilbert.Spin(0.5, 3), nk.models.RBM(alpha=2, param_dtype=complex), seed=0)
    info = results.describe_ansatz(rbm)
    assert info["name"] == "RBM" and info["alpha"] == 2 and info["param_dtype"] == "complex128"
    assert info["n_parameters"] == rbm.n_parameters == 3 + 6 + 18
    assert results.describe_ansatz(rbm, {"name": "given"}) == {"name": "given", "n_parameters": 27}


def test_a_running_writer_can_be_read_but_not_resumed(tmp_path):
    path = tmp_path / "live.h5"
    code = textwrap.dedent(
        f"""
        import sys
        from nqs.results import ResultFile
        f = ResultFile({str(path)!r}, kind="ground_state", config={{}}, seed=0)
        for i in range(3):
            f.append({{"step": i, "energy": -i}})
        print("ready", flush=True)
        sys.stdin.read()  # stay open until the test closes stdin
        """
    )
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "text": True}
    with subprocess.Popen([sys.executable, "-c", code], **pipes) as proc:
        try:
            assert proc.stdout.readline() == "ready\n"
            np.testing.assert_array_equal(results.load(path).history["step"], [0, 1, 2])
            with pytest.raises(ResultFileError, match="another process has it open"):
                ResultFile(path, "resume", kind="ground_state", config={}, seed=0)
        finally:
            proc.stdin.close()
    assert proc.returncode == 0
