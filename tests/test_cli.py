"""`nqs inspect | plot | list` on synthetic result files, including corrupt and foreign ones."""

import subprocess
import sys

import h5py
import netket as nk
import numpy as np
import pytest

import nqs
from nqs.cli import main
from nqs.result_file import ResultFile
from nqs.run import Run


@pytest.fixture()
def folder(tmp_path):
    hi = nk.hilbert.Spin(0.5, 4)
    system = nqs.System(builder="test.fake", hilbert=hi, hamiltonian=nk.operator.spin.sigmaz(hi, 0),
                        params={"L": 4, "h": 1.0}, conventions={"units": "pauli"})
    with Run(tmp_path / "run.h5", kind="ground_state", config={"L": 4}, seed=3, system=system,
             ansatz={"name": "ARTransformer", "n_parameters": 100}, method={"name": "vmc"}) as f:
        for i in range(20):
            f.append({"step": i, "energy": -7.0 + 2.0 * np.exp(-i / 4), "energy_error": 0.01, "acceptance": 1.0})
        f.write_exact({"energy": -7.0})
    with h5py.File(tmp_path / "foreign.h5", "w") as f:
        f["x"] = np.arange(4)
    (tmp_path / "corrupt.h5").write_bytes(b"\x89HDF garbage" * 20)
    (tmp_path / "sub").mkdir()
    with ResultFile(tmp_path / "sub" / "nested.h5", kind="steady_state") as f:
        f.append({"step": 0, "purity": 0.5})
    return tmp_path


def test_inspect_prints_relative_error(folder, capsys):
    assert main(["inspect", str(folder / "run.h5")]) == 0
    out = capsys.readouterr().out
    assert "ground_state run" in out and "seed 3" in out and "netket" in out
    assert "system: test.fake {'L': 4, 'h': 1.0}" in out and "conventions: {'units': 'pauli'}" in out
    assert "ARTransformer" in out and "20 rows, last step 19" in out
    assert "rel. err" in out and "-7.0000000000" in out and "acceptance" in out
    energy_line = next(line for line in out.splitlines() if line.startswith("energy "))
    rel = float(energy_line.split()[-1])
    assert rel == pytest.approx(2.0 * np.exp(-19 / 4) / 7.0, rel=1e-2)


def test_plot_writes_png(folder, capsys):
    assert main(["plot", str(folder / "run.h5"), "--out", str(folder / "p.png")]) == 0
    assert (folder / "p.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["plot", str(folder / "run.h5")]) == 0  # default: next to the file
    assert (folder / "run.png").stat().st_size > 1000


def test_list_tabulates_and_survives_foreign_files(folder, capsys):
    assert main(["list", str(folder)]) == 0
    out = capsys.readouterr().out
    run_line = next(line for line in out.splitlines() if line.startswith("run.h5"))
    assert "ARTransformer" in run_line and "test.fake" in run_line and "ground_state" in run_line
    assert "-7.00000000" in run_line and "± 1.0e-02" in run_line
    assert "foreign.h5" in out and "corrupt.h5" in out and out.count("(not an nqs result)") == 2
    assert "nested.h5" not in out
    assert main(["list", "--recursive", str(folder)]) == 0
    assert "sub/nested.h5" in capsys.readouterr().out


@pytest.mark.parametrize("name,reason", [("foreign.h5", "not an nqs result file (no format_version"),
                                         ("corrupt.h5", "not a readable HDF5"), ("nope.h5", "does not exist")])
def test_inspect_refuses_bad_files_cleanly(folder, capsys, name, reason):
    assert main(["inspect", str(folder / name)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"nqs inspect: {folder / name} is not an nqs result file: ")
    assert reason in err and len(err.strip().splitlines()) == 1


def test_console_entry_point(folder):
    proc = subprocess.run([sys.executable, "-m", "nqs.cli", "inspect", str(folder / "corrupt.h5")],
                          check=False, capture_output=True, text=True)
    assert proc.returncode == 2 and "is not an nqs result file" in proc.stderr and "Traceback" not in proc.stderr


def test_plot_overlays_exact_time_series(tmp_path, capsys, monkeypatch):
    """Each quantity's panel carries the exact series as one dashed line through exactly the stored exact values at
    the stored times (the same float64 numbers back from HDF5: 1e-12), beside the variational curve 1e-3 away, which
    is larger than the tolerance by nine orders (a panel that drew the variational data, or the exact one against
    the steps, as "exact" fails); the energy's relative-error panel shows |E − E_exact|/|E_exact| = 1e-3 t/3."""
    from matplotlib.figure import Figure

    figures, savefig = [], Figure.savefig

    def keep(fig, *args, **kwargs):  # the figure the CLI writes, inspected after the PNG is written
        figures.append(fig)
        return savefig(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    times = np.linspace(0, 1, 11)
    exact = {"magnetization_x": np.cos(times), "energy": np.full_like(times, -3.0)}
    with ResultFile(tmp_path / "dyn.h5", kind="dynamics") as f:
        f.write_exact("time", times)
        for name, series in exact.items():
            f.write_exact(name, series)
        for i, t in enumerate(times):
            f.append({"step": i, "time": t, "magnetization_x": np.cos(t) + 1e-3, "magnetization_x_error": 1e-3,
                      "energy": -3.0 + 1e-3 * t, "energy_error": 1e-3})
    assert main(["plot", str(tmp_path / "dyn.h5")]) == 0
    assert (tmp_path / "dyn.png").stat().st_size > 1000
    (fig,) = figures
    panels = {ax.get_ylabel(): ax for ax in fig.axes}
    variational = {"magnetization_x": np.cos(times) + 1e-3, "energy": -3.0 + 1e-3 * times}
    for name, series in exact.items():
        lines = [line for line in panels[name].get_lines() if line.get_label() == "exact"]
        assert len(lines) == 1 and lines[0].get_linestyle() == "--", name
        np.testing.assert_allclose(lines[0].get_xdata(), times, rtol=0, atol=1e-12)
        np.testing.assert_allclose(lines[0].get_ydata(), series, rtol=0, atol=1e-12)
        (bars,) = [c for c in panels[name].containers if c.get_label() == "variational"]
        np.testing.assert_allclose(bars.lines[0].get_ydata(), variational[name], rtol=0, atol=1e-12)
    (rel,) = panels["|E - E_exact| / |E_exact|"].get_lines()  # t = 0 (zero error) is not drawn on the log axis
    np.testing.assert_allclose(rel.get_xdata(), times[1:], rtol=0, atol=1e-12)
    np.testing.assert_allclose(rel.get_ydata(), 1e-3 * times[1:] / 3, rtol=1e-9)
    assert main(["plot", str(tmp_path / "dyn.h5"), "--quantity", "nonexistent"]) == 2
    err = capsys.readouterr().err
    assert "nqs plot:" in err and "no history column 'nonexistent'" in err


def test_help_and_bad_folder(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0 and "inspect" in capsys.readouterr().out
    assert main(["list", str(tmp_path / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err
