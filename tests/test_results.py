"""Result file and run layer: round trip, modes, resume checks and truncation, atomic checkpoints, lazy columns, a
killed writer keeps its rows, old formats are refused, and the three data-loss cases of the house issue."""

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
from nqs.recipes import describe_ansatz
from nqs.result_file import ResultFile, ResultFileError, to_json
from nqs.run import Run

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


ANSATZ = {"name": "Fake", "layers": 2, "widths": (4, 8), "n_parameters": 10}
METHOD = {"name": "test", "dt": 0.1, "solver": None}
PARAMS = {"dense": {"kernel": np.arange(6.0).reshape(2, 3), "bias": np.zeros(3)}}


def _write(path, system, rows=5, mode="fail", kind="ground_state", config=CONFIG, params=PARAMS):
    with Run(path, mode, kind=kind, config=config, seed=7, system=system, ansatz=ANSATZ, method=METHOD) as run:
        for i in range(rows):
            run.append({"step": i, "energy": -1.0 - i, "energy_error": 0.01})
        run.write_exact({"energy": -3.5, "spectrum": np.array([-3.5, -1.0, 2.0])})
        run.checkpoint(rows - 1, params, state={"key": np.array([1, 2], dtype=np.uint32)})
    return path


def test_round_trip(tmp_path, system):
    res = results.load(_write(tmp_path / "sub" / "r.h5", system))
    assert res.kind == "ground_state" and res.attrs["seed"] == 7 and res.attrs["format_version"] == 2
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
    assert s["params"] == {"L": 2, "h": 0.5, "pbc": True, "name": "chain", "couplings": [1.0, 2.0], "extra": None}
    assert res.method == {"name": "test", "dt": 0.1, "solver": None}
    np.testing.assert_array_equal(res.history["energy"], -1.0 - np.arange(5))
    assert res.history["step"].dtype == np.float64 and res.n_rows == 5
    assert res.exact["energy"] == -3.5 and res.checkpoint_step == 4
    np.testing.assert_array_equal(res.exact["spectrum"], [-3.5, -1.0, 2.0])
    loaded = results.load_parameters(tmp_path / "sub" / "r.h5")
    np.testing.assert_array_equal(loaded["dense"]["kernel"], PARAMS["dense"]["kernel"])
    with Run(tmp_path / "sub" / "r.h5", "resume", kind="ground_state", config=CONFIG, seed=7, system=system,
             ansatz=ANSATZ, method=METHOD) as run:
        checkpoint = run.restore(PARAMS, state={"key": np.zeros(2, dtype=np.uint32)})
        assert checkpoint.step == 4 and checkpoint.state["key"].tolist() == [1, 2]
    (row,) = results.compare_with_exact(res)
    assert row["name"] == "energy" and row["error"] == 0.01 and row["rel_err"] == pytest.approx(1.5 / 3.5)
    assert results.final_values(res) == {"energy": (-5.0, 0.01)}


def test_datasets_are_resizable_float64_and_chunked(tmp_path, system):
    with h5py.File(_write(tmp_path / "r.h5", system), "r") as f:
        ds = f["history/energy"]
        assert ds.maxshape == (None,) and ds.chunks is not None and ds.dtype == np.float64
        assert f["checkpoint"].attrs["step"] == 4 and f["checkpoint"].attrs["method"] == "test"
        assert set(f["checkpoint"]) == {"params", "state"}  # no model state: no dataset


def test_modes(tmp_path, system):
    path = _write(tmp_path / "m.h5", system)
    with pytest.raises(FileExistsError, match="mode='overwrite'"):
        _write(path, system)
    _write(path, system, rows=2, mode="overwrite")
    assert len(results.load(path).history["step"]) == 2
    _write(tmp_path / "new.h5", system, rows=3, mode="resume")  # resume of a missing file starts afresh
    assert results.load(tmp_path / "new.h5").n_rows == 3
    with pytest.raises(ValueError, match="unknown mode"):
        ResultFile(tmp_path / "x.h5", "append", kind="k")


def test_resume_truncates_rows_after_checkpoint_and_checks_kind_and_config(tmp_path, system):
    path = tmp_path / "c.h5"
    common = {"system": system, "ansatz": ANSATZ, "method": METHOD, "seed": 0}
    with Run(path, kind="ground_state", config={"L": 4, "lr": 0.1}, **common) as run:
        for i in range(6):
            run.append({"step": i, "energy": float(i)})
            if i == 2:
                run.checkpoint(2, PARAMS)
    with pytest.raises(ResultFileError, match="'dynamics'"):
        Run(path, "resume", kind="dynamics", config={"L": 4, "lr": 0.1}, **common)
    with pytest.raises(ResultFileError, match="differs in \\['config.L', 'config.lr'\\]"):
        Run(path, "resume", kind="ground_state", config={"L": 6}, **common)
    with Run(path, "resume", kind="ground_state", config={"L": 4, "lr": 0.2}, ignore_on_resume=("lr",),
             **common) as run:
        assert run.restore(PARAMS).step == 2
    with ResultFile(path, "resume", kind="ground_state") as f:
        assert f.n_rows == 3 and f.last_step == 2
    with Run(path, "resume", kind="ground_state", config={"L": 4, "lr": 0.1, "n_steps": 99}, **common) as run:
        run.restore(PARAMS)
        run.append({"step": 3, "energy": 30.0})
    res = results.load(path)
    np.testing.assert_array_equal(res.history["energy"], [0, 1, 2, 30])
    assert res.system["builder"] == "test.fake" and res.attrs["config"] == {"L": 4, "lr": 0.1}  # metadata kept


def test_resume_refuses_another_system_ansatz_or_method_before_writing(tmp_path, system):
    """Data-loss case 1: resume compared only the config, which the Python API does not pass, and appended rows
    of another system under the file's /system. Now /system, /ansatz and /method must agree."""
    path = _write(tmp_path / "r.h5", system, config=None)
    before = path.read_bytes()
    other = nqs.System(builder="test.fake", hilbert=system.hilbert, hamiltonian=system.hamiltonian,
                       constraint=system.constraint, observables=system.observables,
                       params={**system.params, "h": 0.7}, conventions=system.conventions)
    cases = [({"system": other}, "'system.h', 'system.params'"), ({"ansatz": {**ANSATZ, "layers": 3}},
                                                                    "'ansatz.layers'"),
             ({"method": {**METHOD, "dt": 0.2}}, "'method.dt'")]
    for change, keys in cases:
        kwargs = {"system": system, "ansatz": ANSATZ, "method": METHOD, **change}
        with pytest.raises(ResultFileError, match=f"differs in \\[{keys}\\]"):
            Run(path, "resume", kind="ground_state", seed=0, **kwargs)
    assert path.read_bytes() == before
    with Run(path, "resume", kind="ground_state", system=system, ansatz=ANSATZ, method={**METHOD, "n_steps": 9}) as r:
        assert r.restore(PARAMS).step == 4  # a longer run of the same experiment continues


def test_a_failed_resume_leaves_the_file_unchanged(tmp_path, system):
    """Data-loss case 3: a checkpoint that does not fit the model used to lose the rows after it before failing."""
    path = _write(tmp_path / "r.h5", system, rows=5)
    with Run(path, "resume", kind="ground_state", system=system, ansatz=ANSATZ, method=METHOD) as run:
        run.append({"step": 5, "energy": 0.0})  # a row after the checkpoint (step 4)
    rows = results.load(path).n_rows
    wrong = {"dense": {"kernel": np.zeros((3, 3)), "bias": np.zeros(3)}}
    for template in (wrong, {"other": np.zeros(2)}):
        with pytest.raises(ResultFileError, match="does not fit this run"), Run(
                path, "resume", kind="ground_state", system=system, ansatz=ANSATZ, method=METHOD) as run:
            run.restore(template)
        assert results.load(path).n_rows == rows == 6


def test_a_new_run_replaces_an_existing_file_only_once_it_has_a_row(tmp_path, system):
    """Data-loss case 2: overwrite used to empty a finished result before the new run had anything to replace it
    with; a run that then crashed left a 0-row file. Now the new file is written aside and renamed at its first
    row; a run that fails before it leaves the old file (or no file) as it was."""
    path = _write(tmp_path / "r.h5", system, rows=5)
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="crash"), Run(path, "overwrite", kind="ground_state", system=system,
                                                         ansatz=ANSATZ, method=METHOD) as run:
        run.write_exact({"energy": 1.0})
        raise RuntimeError("crash before the first row")
    assert path.read_bytes() == before and list(tmp_path.iterdir()) == [path]
    with Run(path, "overwrite", kind="ground_state", system=system, ansatz=ANSATZ, method=METHOD) as run:
        assert results.load(path).n_rows == 5  # not replaced yet
        run.append({"step": 0, "energy": 1.0})
        assert results.load(path).n_rows == 1  # replaced at the first row
    new = tmp_path / "new.h5"
    with pytest.raises(RuntimeError), Run(new, kind="ground_state", system=system, ansatz=ANSATZ, method=METHOD):
        raise RuntimeError("crash")
    assert not new.exists() and list(tmp_path.iterdir()) == [path]


def test_checkpoints_are_replaced_atomically(tmp_path, system, monkeypatch):
    """A crash while the next checkpoint is written leaves the previous one readable (and resumable)."""
    path = _write(tmp_path / "a.h5", system, rows=3)
    original = ResultFile.write_checkpoint

    def crash_midway(self, step, **blobs):
        group = self._file.create_group("checkpoint_next")
        group.create_dataset("params", data=np.void(b"half-written"))
        self._file.flush()
        raise KeyboardInterrupt

    monkeypatch.setattr(ResultFile, "write_checkpoint", crash_midway)
    with pytest.raises(KeyboardInterrupt), Run(path, "resume", kind="ground_state", system=system, ansatz=ANSATZ,
                                               method=METHOD) as run:
        run.restore(PARAMS)
        run.append({"step": 3, "energy": 0.0})
        run.checkpoint(3, {"dense": {"kernel": np.ones((2, 3)), "bias": np.ones(3)}})
    monkeypatch.setattr(ResultFile, "write_checkpoint", original)
    np.testing.assert_array_equal(results.load_parameters(path)["dense"]["kernel"], PARAMS["dense"]["kernel"])
    assert results.load(path).checkpoint_step == 2
    with Run(path, "resume", kind="ground_state", system=system, ansatz=ANSATZ, method=METHOD) as run:
        assert run.restore(PARAMS).step == 2 and results.load(path).n_rows == 3


def test_old_format_files_get_a_clear_message(tmp_path, system):
    path = _write(tmp_path / "old.h5", system)
    with h5py.File(path, "a") as f:
        f.attrs["format_version"] = 1
    for read in (results.load, results.load_parameters):
        with pytest.raises(ResultFileError, match="format_version 1; this nqs reads format_version 2 only"):
            read(path)
    with pytest.raises(ResultFileError, match="format_version 1"):
        Run(path, "resume", kind="ground_state", system=system, ansatz=ANSATZ, method=METHOD)


def test_resume_refuses_foreign_files(tmp_path):
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["data"] = np.arange(3)
    with pytest.raises(ResultFileError, match="not an nqs result file"):
        ResultFile(foreign, "resume", kind="ground_state")
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"garbage" * 10)
    with pytest.raises(ResultFileError, match="not a readable HDF5"):
        ResultFile(corrupt, "resume", kind="ground_state")


def test_lazy_columns_are_backfilled_and_complex_split(tmp_path):
    with ResultFile(tmp_path / "l.h5", kind="k") as f:
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
    with ResultFile(tmp_path / "b.h5", kind="k") as f, pytest.raises(ValueError, match=match):
        f.append(row)


@pytest.mark.parametrize("death", ["os._exit(1)", "os.kill(os.getpid(), signal.SIGKILL)"])
def test_killed_writer_keeps_every_flushed_row(tmp_path, death):
    path = tmp_path / "killed.h5"
    code = textwrap.dedent(
        f"""
        import os, signal
        import numpy as np
        from nqs.run import Run
        f = Run({str(path)!r}, kind="ground_state", system=None, ansatz={{}}, method={{}})
        for i in range(25):
            f.append({{"step": i, "energy": -i}})
            if i == 19:
                f.checkpoint(i, {{"w": np.zeros(2)}})
        {death}  # no close, no flush at exit
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    res = results.load(path)
    np.testing.assert_array_equal(res.history["step"], np.arange(25))
    assert res.checkpoint_step == 19
    with Run(path, "resume", kind="ground_state", system=None, ansatz={}, method={}) as run:
        assert run.restore({"w": np.ones(2)}).step == 19  # the rows after the checkpoint are recomputed
    assert results.load(path).n_rows == 20


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
    with ResultFile(future, kind="k"):
        pass
    with h5py.File(future, "a") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(ResultFileError, match="format_version 99"):
        results.load(future)
    with pytest.raises(FileNotFoundError):
        results.load(tmp_path / "missing.h5")
    assert issubclass(ResultFileError, ValueError)


def test_json_encoding():
    encoded = to_json({"a": np.float64(1.5), "b": (1, 2), "c": Path("p"), "d": 1 + 2j})
    assert json.loads(encoded) == {"a": 1.5, "b": [1, 2], "c": "p", "d": [1.0, 2.0]}


def test_comparison_with_exact_time_series(tmp_path):
    times = np.linspace(0, 1, 6)
    with ResultFile(tmp_path / "d.h5", kind="dynamics") as f:
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
    info = describe_ansatz(rbm)
    assert info["name"] == "RBM" and info["alpha"] == 2 and info["param_dtype"] == "complex128"
    assert info["n_parameters"] == rbm.n_parameters == 3 + 6 + 18
    assert info["recipe"] == {"class": "netket.models.rbm.RBM", "fields": {"alpha": 2, "param_dtype": {"dtype":
                                                                                                      "complex128"}}}
    assert describe_ansatz(rbm, {"name": "given"}) == {"name": "given", "n_parameters": 27,
                                                       "recipe": info["recipe"]}

    # a field holding a callable instance (NetKet's translation group): no recipe, but a description, not a crash
    graph = nk.graph.Chain(4)
    symmetric = nk.vqs.FullSumState(nk.hilbert.Spin(0.5, 4), nk.models.RBMSymm(graph.translation_group(), alpha=1,
                                                                               param_dtype=complex), seed=0)
    info = describe_ansatz(symmetric)
    assert info["name"] == "RBMSymm" and info["recipe"] is None and info["n_parameters"] == symmetric.n_parameters


def test_a_running_writer_can_be_read_but_not_resumed(tmp_path):
    path = tmp_path / "live.h5"
    code = textwrap.dedent(
        f"""
        import sys
        from nqs.result_file import ResultFile
        f = ResultFile({str(path)!r}, kind="ground_state")
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
                ResultFile(path, "resume", kind="ground_state")
        finally:
            proc.stdin.close()
    assert proc.returncode == 0
