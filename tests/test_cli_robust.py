"""The `nqs` command on damaged files and unwritable outputs: one line naming the right path, exit status 2, and a
listing that goes on past a malformed file."""

import h5py
import netket as nk
import numpy as np
import pytest

import nqs
from nqs.cli import main
from nqs.run import Run


def _nqs_like(path, build):
    """An HDF5 file with format_version 2 and /history (so it passes the format check), damaged by `build`."""
    with h5py.File(path, "w") as f:
        f.attrs["format_version"] = 2
        build(f)


MALFORMED = {  # file name: (damage, the error the one-line message names)
    "no_kind.h5": (lambda f: f.create_group("history").create_dataset("step", data=np.arange(3.0)), "KeyError"),
    "history_dataset.h5": (lambda f: f.create_dataset("history", data=np.arange(3)), "AttributeError"),
    "exact_group.h5": (lambda f: (f.attrs.create("kind", "ground_state"), f.create_group("history"),
                                  f.create_group("exact").create_group("energy")), "AttributeError"),
    "checkpoint_without_step.h5": (lambda f: (f.attrs.create("kind", "ground_state"), f.create_group("history"),
                                              f.create_group("checkpoint")), "KeyError"),
    "history_of_strings.h5": (lambda f: (f.attrs.create("kind", "ground_state"), h := f.create_group("history"),
                                         h.create_dataset("step", data=np.arange(2.0)),
                                         h.create_dataset("energy", data=np.array([b"a", b"b"]))), "TypeError"),
}


@pytest.fixture()
def folder(tmp_path):
    hi = nk.hilbert.Spin(0.5, 4)
    system = nqs.System(builder="test.fake", hilbert=hi, hamiltonian=nk.operator.spin.sigmaz(hi, 0),
                        params={"L": 4}, conventions={"units": "pauli"})
    with Run(tmp_path / "good.h5", kind="ground_state", system=system, ansatz={"name": "RBM"},
             method={"name": "vmc"}, progress=False) as run:
        run.write_exact({"energy": -2.0})
        for step in range(3):
            run.append({"step": step, "energy": -1.9 - 0.01 * step})
    for name, (damage, _) in MALFORMED.items():
        _nqs_like(tmp_path / name, damage)
    return tmp_path


def test_list_notes_each_malformed_file_on_its_line_and_goes_on(folder, capsys):
    assert main(["list", str(folder)]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 1 + 1 + len(MALFORMED) and captured.err == ""
    good = next(line for line in lines if line.startswith("good.h5"))
    assert "ground_state" in good and "-1.92000000" in good
    for name, (_, error) in MALFORMED.items():
        (line,) = [line for line in lines if line.startswith(name)]
        assert f"(malformed nqs result: {error}" in line


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_inspect_of_a_malformed_file_is_one_line_with_exit_2(folder, capsys, name):
    assert main(["inspect", str(folder / name)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing of a half report
    assert captured.err.startswith(f"nqs inspect: {folder / name} is a malformed nqs result file ({MALFORMED[name][1]}")
    assert len(captured.err.strip().splitlines()) == 1


def test_plot_names_the_output_path_it_cannot_write(folder, capsys):
    out = folder / "nodir" / "x.png"
    assert main(["plot", str(folder / "good.h5"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"nqs plot: cannot write {out}: the folder {out.parent} does not exist"
    assert main(["plot", str(folder / "good.h5"), "--out", str(folder)]) == 2
    assert capsys.readouterr().err.strip() == f"nqs plot: cannot write {folder}: it is a folder"
    assert main(["plot", str(folder / "missing.h5"), "--out", str(out)]) == 2  # the input is blamed when it is bad
    assert "missing.h5 is not an nqs result file" in capsys.readouterr().err
    assert main(["plot", str(folder / "exact_group.h5"), "--out", str(folder / "y.png")]) == 2
    assert "exact_group.h5 is a malformed nqs result file (AttributeError" in capsys.readouterr().err


def test_a_kind_that_is_not_a_name_is_not_a_result(folder, capsys):
    """kind = 3 (an integer where the run's kind is written): refused by the reader, so inspect says so in one line
    and list marks the file instead of tabulating it as a run."""
    _nqs_like(folder / "kind_3.h5", lambda f: (f.attrs.create("kind", 3), f.create_group("history")))
    assert main(["inspect", str(folder / "kind_3.h5")]) == 2
    assert "its kind is 3, not the name of a run" in capsys.readouterr().err
    assert main(["list", str(folder)]) == 0
    (line,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("kind_3.h5")]
    assert "ground_state" not in line
