"""`nqs compare`: one table (and plot) of several runs' errors against their exact references, on synthetic result
files whose errors are known by construction (a scan over h, two ansätze, a dynamics run, a steady state)."""

import h5py
import matplotlib
import netket as nk
import numpy as np
import pytest

import nqs
from nqs import compare, results
from nqs.cli import main
from nqs.run import Run

matplotlib.use("Agg")

SCAN = {0.5: (-4.25, 0.01), 1.0: (-5.0, -0.02), 2.0: (-8.5, 0.5e-3)}  # h: (exact energy, final error of the run)
TIMES = np.linspace(0.0, 1.0, 11)
EXACT_X = np.cos(TIMES)
DYN_ERROR = 0.03 * np.sin(3 * TIMES)  # |Δ| is largest at t = 0.5 (|sin 1.5| = 0.997)
INFIDELITY = 0.2 * TIMES**2


def _system(**params):
    hi = nk.hilbert.Spin(0.5, 4)
    return nqs.System(builder="test.fake", hilbert=hi, hamiltonian=nk.operator.spin.sigmaz(hi, 0),
                      params={"L": 4, **params}, conventions={"units": "pauli"})


def _ground(path, h, ansatz, energy, final_error):
    with Run(path, kind="ground_state", system=_system(h=h), ansatz=ansatz, method={"name": "vmc", "lr": 0.01},
             progress=False) as run:
        run.write_exact({"energy": energy, "magnetization_x": 0.5})
        for step in range(5):
            run.append({"step": step, "energy": energy + final_error * (5 - step), "energy_error": 1e-4,
                        "magnetization_x": 0.5 + 0.1 / (step + 1), "acceptance": 0.5})


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("compare")
    for h, (energy, error) in SCAN.items():
        _ground(folder / f"scan_h{h}.h5", h, {"name": "RBM", "alpha": 1}, energy, error)
    _ground(folder / "a_rbm.h5", 1.0, {"name": "RBM", "alpha": 2}, -5.0, 0.01)
    _ground(folder / "a_transformer.h5", 1.0, {"name": "ARTransformer", "features": 16}, -5.0, 0.002)
    with Run(folder / "dyn.h5", kind="dynamics", system=_system(h=1.0), ansatz={"name": "RBM"},
             method={"name": "tdvp"}, progress=False) as run:
        run.write_exact({"time": TIMES, "magnetization_x": EXACT_X, "energy": np.full_like(TIMES, -1.0)})
        for k, t in enumerate(TIMES):
            run.append({"step": k, "time": t, "magnetization_x": EXACT_X[k] + DYN_ERROR[k], "energy": -1.0 + 1e-3 * t,
                        "infidelity": INFIDELITY[k]})
    with Run(folder / "steady.h5", kind="steady_state", system=_system(h=1.0), ansatz={"name": "POVM"},
             method={"name": "povm"}, progress=False) as run:
        run.write_exact({"purity": 0.8, "sigma_z": -0.6})
        run.append({"step": 0, "purity": 0.9, "sigma_z": -0.5})
        run.append({"step": 1, "purity": 0.82, "sigma_z": -0.59, "sigma_z_error": 0.01})
    (folder / "corrupt.h5").write_bytes(b"\x89HDF garbage" * 20)
    with h5py.File(folder / "malformed.h5", "w") as f:  # looks like an nqs file, has no kind
        f.attrs["format_version"] = 2
        f.create_group("history")["step"] = np.arange(3.0)
    return folder


def _load(folder, *names):
    return [results.load(folder / name) for name in names]


def test_scan_table_has_final_relative_errors_sorted_by_the_scanned_setting(runs, capsys):
    files = ["scan_h2.0.h5", "scan_h0.5.h5", "scan_h1.0.h5"]
    rows, keys = compare.compare(_load(runs, *files))
    assert keys == ["h"]  # L, builder, the ansatz and the method agree
    assert [row.settings["h"] for row in rows] == [0.5, 1.0, 2.0]
    for row in rows:
        energy, error = SCAN[row.settings["h"]]
        assert row.quantity == "energy" and row.exact == energy and row.time is None
        assert row.abs_err == pytest.approx(abs(error), rel=1e-9)
        assert row.rel_err == pytest.approx(abs(error / energy), rel=1e-9)
    assert main(["compare", *(str(runs / f) for f in files)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["run", "kind", "h", "quantity"]
    assert [line.split()[0] for line in lines[1:]] == ["scan_h0.5.h5", "scan_h1.0.h5", "scan_h2.0.h5"]
    assert lines[2].split()[-1] == "final" and f"{0.02 / 5:.2e}" in lines[2]  # h = 1: rel. err |−0.02| / 5


def test_ansatz_comparison_names_the_differing_ansatz_settings(runs):
    rows, keys = compare.compare(_load(runs, "a_rbm.h5", "a_transformer.h5"))
    assert keys == ["ansatz", "ansatz.alpha", "ansatz.features"]
    assert [(row.settings["ansatz"], row.abs_err) for row in rows] == [
        ("RBM", pytest.approx(0.01)), ("ARTransformer", pytest.approx(0.002))]
    assert compare.scan_key(rows, keys) is None  # not a numeric scan: plotted per run
    text = compare.format_comparison(rows, keys)
    assert "ARTransformer" in text and "16" in text.splitlines()[2]


def test_dynamics_error_is_the_maximum_over_time(runs):
    (dyn,) = _load(runs, "dyn.h5")
    rows = {row.quantity: row for row in compare.run_rows(dyn, "dyn.h5")}
    worst = int(np.argmax(np.abs(DYN_ERROR)))
    x = rows["magnetization_x"]
    assert x.abs_err == pytest.approx(np.max(np.abs(DYN_ERROR)), rel=1e-12)
    assert x.abs_err == pytest.approx(results.max_deviation(dyn)["magnetization_x"], rel=1e-12)
    assert x.time == pytest.approx(TIMES[worst]) and x.exact == pytest.approx(EXACT_X[worst]) and x.rel_err is None
    assert x.where == f"max, t={TIMES[worst]:.4g}"
    assert rows["energy"].abs_err == pytest.approx(1e-3) and rows["energy"].time == pytest.approx(1.0)
    assert rows["infidelity"].abs_err == pytest.approx(0.2) and rows["infidelity"].exact == 0.0


def test_steady_state_final_row_and_quantity_selection(runs, capsys):
    (steady,) = _load(runs, "steady.h5")
    rows = {row.quantity: row for row in compare.run_rows(steady, "steady.h5")}
    assert rows["purity"].abs_err == pytest.approx(0.02) and rows["purity"].rel_err == pytest.approx(0.025)
    assert rows["sigma_z"].error == 0.01 and rows["sigma_z"].abs_err == pytest.approx(0.01)
    (scan,) = _load(runs, "scan_h1.0.h5")
    picked = compare.run_rows(scan, "s", ["magnetization_x", "acceptance", "nope"])
    assert [r.quantity for r in picked] == ["magnetization_x", "acceptance"]  # no row for a column it lacks
    assert picked[0].abs_err == pytest.approx(0.1 / 5) and picked[1].exact is None and picked[1].abs_err is None
    assert main(["compare", str(runs / "steady.h5"), str(runs / "dyn.h5"), "--quantity", "purity"]) == 0
    out = capsys.readouterr().out
    assert "purity" in out and "magnetization_x" not in out


def test_plot_draws_the_errors_against_the_scanned_setting(runs, tmp_path, capsys):
    from matplotlib.figure import Figure

    rows, keys = compare.compare(_load(runs, "scan_h0.5.h5", "scan_h1.0.h5", "scan_h2.0.h5"))
    fig = Figure()
    compare.draw(fig, rows, keys)
    (ax,) = fig.axes
    assert list(ax.lines[0].get_xdata()) == [0.5, 1.0, 2.0] and ax.get_xlabel() == "h"
    expected = [abs(SCAN[h][1] / SCAN[h][0]) for h in (0.5, 1.0, 2.0)]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), expected, rtol=1e-9)
    out = tmp_path / "cmp.png"
    assert main(["compare", str(runs / "a_rbm.h5"), str(runs / "a_transformer.h5"), "--plot", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG" and f"wrote {out}" in capsys.readouterr().out


def test_compare_skips_unreadable_files_and_refuses_an_unwritable_plot(runs, tmp_path, capsys):
    bad = [str(runs / name) for name in ("corrupt.h5", "malformed.h5", "missing.h5")]
    assert main(["compare", str(runs / "scan_h1.0.h5"), *bad]) == 2
    captured = capsys.readouterr()
    assert "scan_h1.0.h5" in captured.out
    notes = captured.err.strip().splitlines()
    assert len(notes) == 3 and all(n.startswith("nqs compare: skipped ") for n in notes)
    assert "not a readable HDF5" in notes[0] and "malformed nqs result file (KeyError: 'kind')" in notes[1]
    assert "does not exist" in notes[2] and "Traceback" not in captured.err
    assert main(["compare", bad[0]]) == 2  # a single file: its own error, one line
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a readable HDF5" in err
    assert main(["compare", *bad[:2]]) == 2
    assert capsys.readouterr().err.strip().endswith("nqs compare: no result file to compare")
    out = tmp_path / "nodir" / "x.png"
    assert main(["compare", str(runs / "scan_h1.0.h5"), "--plot", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"nqs compare: cannot write {out}: the folder {out.parent} does not exist"
