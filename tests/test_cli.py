"""`nqs inspect | plot | list` on synthetic result files, including corrupt and foreign ones."""

import subprocess
import sys

import h5py
import numpy as np
import pytest

from nqs.cli import main
from nqs.results import ResultFile


@pytest.fixture()
def folder(tmp_path):
    with ResultFile(tmp_path / "run.h5", kind="ground_state", config={"L": 4}, seed=3,
                    ansatz={"name": "ARTransformer", "n_parameters": 100}, method={"name": "vmc"}) as f:
        for i in range(20):
            f.append({"step": i, "energy": -7.0 + 2.0 * np.exp(-i / 4), "energy_error": 0.01})
        f.write_exact("energy", -7.0)
    with h5py.File(tmp_path / "foreign.h5", "w") as f:
        f["x"] = np.arange(4)
    (tmp_path / "corrupt.h5").write_bytes(b"\x89HDF garbage" * 20)
    return tmp_path


def test_inspect_prints_relative_error(folder, capsys):
    assert main(["inspect", str(folder / "run.h5")]) == 0
    out = capsys.readouterr().out
    assert "rel. err" in out and "energy" in out and "-7.0000000000" in out and "seed 3" in out


def test_plot_writes_png(folder):
    assert main(["plot", str(folder / "run.h5"), "--out", str(folder / "p.png")]) == 0
    assert (folder / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_list_tabulates_and_survives_foreign_files(folder, capsys):
    assert main(["list", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "run.h5" in out and "ARTransformer" in out
    assert "foreign.h5" in out and "(not an nqs result)" in out


@pytest.mark.parametrize("name,reason", [("foreign.h5", "not an nqs result file"), ("corrupt.h5", "HDF5"), ("nope.h5", "does not exist")])
def test_inspect_refuses_bad_files_cleanly(folder, capsys, name, reason):
    assert main(["inspect", str(folder / name)]) == 2
    err = capsys.readouterr().err
    assert "nqs inspect:" in err and reason in err and "Traceback" not in err


def test_console_entry_point(folder):
    proc = subprocess.run([sys.executable, "-m", "nqs.cli", "inspect", str(folder / "corrupt.h5")], capture_output=True, text=True)
    assert proc.returncode == 2 and "is not an nqs result file" in proc.stderr and "Traceback" not in proc.stderr


def test_plot_overlays_exact_time_series(tmp_path):
    times = np.linspace(0, 1, 11)
    with ResultFile(tmp_path / "dyn.h5", kind="dynamics", config={}, seed=0) as f:
        f.write_exact("time", times)
        f.write_exact("magnetization_x", np.cos(times))
        for i, t in enumerate(times):
            f.append({"step": i, "time": t, "magnetization_x": np.cos(t) + 1e-3, "magnetization_x_error": 1e-3})
    assert main(["plot", str(tmp_path / "dyn.h5"), "--quantity", "magnetization_x"]) == 0
    assert (tmp_path / "dyn.png").stat().st_size > 1000
    with pytest.raises(SystemExit, match="no history column 'nonexistent'"):
        main(["plot", str(tmp_path / "dyn.h5"), "--quantity", "nonexistent"])
