"""Real kills: every driver, run in a child process (`tests/kill_driver.py`), is SIGKILLed and then resumed with mode
"resume" in a fresh process; the resumed result file must equal the one of an uninterrupted run.

Kill points (`KILL_POINTS`), each at a seeded random place of the run:

* "row": the parent SIGKILLs the child right after its k-th history row was written and flushed (k drawn from 1 to
  the number of rows of the uninterrupted run, the final row included): the rows after the last checkpoint must be
  dropped and recomputed.
* "checkpoint": the child SIGKILLs itself inside its n-th checkpoint write (n drawn from 1 to the number of
  checkpoints), after the new checkpoint was written aside (/checkpoint_next, complete, flushed) and the old one
  deleted, before the rename: the checkpoint write is atomic, so the resume finds a complete checkpoint, the old one
  or the new one.

"Equal" means: the same history columns with the same number of rows, every column (but ``wall_time``) and the
checkpointed parameters equal bit for bit for the sampled drivers and to 1e-10 for the deterministic one (projected
VMC, exact sums), the same checkpoint step, and for the sampled drivers the same checkpointed method state byte for
byte (optimiser state, random keys, sampler states). All processes run with the same environment on the same
machine; the uninterrupted run is the first job of the killed child (`run_killed`), so a kill costs two processes.

Before the resume, the killed file must hold every row written before the kill and, once a checkpoint write has
returned (or when killed inside one), a readable checkpoint.

The default suite kills VMC (Metropolis sampling) at a row; the full matrix of drivers × kill points is ``slow``. The
matrix found two resume bugs, fixed in the library: sampled TDVP checkpointed the sampler state after the next step's
sampling (`dynamics.tdvp._SavePoints`), and the POVM time evolutions recorded save point 0 a second time when resumed
from the checkpoint taken there (`dynamics.povm.recorder.restore`).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

import h5py
import jax
import numpy as np
import pytest

from nqs import results

HERE = Path(__file__).resolve().parent
DRIVER = HERE / "kill_driver.py"
SEED = 20260
KILL_POINTS = ("row", "checkpoint")
DETERMINISTIC = {"projected_vmc"}  # exact sums: equal to 1e-10; the others draw samples: bit for bit
DRIVERS = ("vmc", "projected_vmc", "tdvp", "teng", "povm_trapezoid", "povm_tdvp", "povm_steady_state", "ndm")
TIMEOUT = 900  # seconds for one child process: a hung child fails the test instead of hanging the suite


def child_env() -> dict[str, str]:
    """The children's environment: CPU, unoptimised single-threaded XLA, one OpenMP thread (all children alike)."""
    env = dict(os.environ)
    env.update(JAX_PLATFORMS="cpu", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               XLA_FLAGS="--xla_backend_optimization_level=0 --xla_cpu_multi_thread_eigen=false")
    env.pop("PYTEST_XDIST_WORKER", None)
    # no persistent compilation cache: one of three VMC runs with it (same seed) took another trajectory
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    return env


class Child:
    """A `kill_driver.py` process: stdout read line by line, stdin for the answers of steered jobs, stderr in a file;
    killed after `TIMEOUT` seconds."""

    def __init__(self, driver: str, jobs: list[str], log: Path):
        self.log = log
        with open(log, "w") as stderr:
            self.proc = subprocess.Popen([sys.executable, str(DRIVER), driver, *jobs], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=stderr, text=True, env=child_env(),
                                         cwd=HERE.parent)
        self.timer = threading.Timer(TIMEOUT, self.proc.kill)
        self.timer.daemon = True
        self.timer.start()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:  # a failed test leaves no child behind
            self.proc.kill()
        self.wait()
        self.proc.stdin.close()
        self.proc.stdout.close()

    def lines(self):
        for line in self.proc.stdout:
            yield line.strip()
        raise AssertionError(f"the child ended unexpectedly (rc {self.proc.wait()}):\n{self.log.read_text()[-4000:]}")

    def answer(self, text: str) -> None:
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def wait(self) -> int:
        rc = self.proc.wait()
        self.timer.cancel()
        return rc


def run_killed(driver: str, point: str, reference: Path, cut: Path, log: Path) -> tuple[int, int, int]:
    """Run the uninterrupted reference, then the same run into `cut`, killed at a seeded random `point`; returns the
    drawn row or checkpoint number, and the rows and checkpoints the killed run had written completely."""
    with Child(driver, [f"{reference}:fail", f"{cut}:fail:ask"], log) as child:
        return _steer(child, driver, point, reference, cut)


def _steer(child: Child, driver: str, point: str, reference: Path, cut: Path) -> tuple[int, int, int]:
    lines = child.lines()
    counts = {"row": 0, "checkpoint": 0}
    for line in lines:  # the reference: count its rows and checkpoint writes
        if line == f"done {reference}":
            break
        event, *_ = line.split()
        if event in counts:
            counts[event] += 1
    assert counts["row"] >= 3 and counts["checkpoint"] >= 2, counts
    k = random.Random(f"{SEED}:{driver}:{point}").randint(1, counts[point])
    rows = checkpoints = started = 0
    for line in lines:  # the steered run
        event, n = line.split()[0], line.split()[-1]
        if event == "row":
            rows, checkpoints = int(n), started  # the writes started before this row have returned
            if point == "row" and rows == k:
                os.kill(child.proc.pid, signal.SIGKILL)
                break
            child.answer("go")
        elif event == "checkpoint":
            checkpoints, started = started, int(n)
            child.answer("kill" if point == "checkpoint" and started == k else "go")
        elif event == "killed":
            break
        elif event == "done":
            raise AssertionError(f"the run into {cut} finished: it was not killed at {point} {k}")
    assert child.wait() == -signal.SIGKILL
    print(f"{driver}: killed at {point} {k} of {counts[point]} ({counts})")
    return k, rows, checkpoints


def resume(driver: str, cut: Path, log: Path) -> None:
    """Resume `cut` to its end in a fresh process."""
    with Child(driver, [f"{cut}:resume"], log) as child:
        for line in child.lines():
            if line == f"done {cut}":
                break
        assert child.wait() == 0, log.read_text()[-4000:]


def assert_same_run(reference: Path, resumed: Path, *, bitwise: bool) -> None:
    """The resumed file equals the reference (module docstring)."""
    ref, res = results.load(reference), results.load(resumed)
    assert set(ref.history) == set(res.history)
    assert ref.n_rows == res.n_rows and ref.checkpoint_step == res.checkpoint_step
    for name in sorted(set(ref.history) - {"wall_time"}):
        if bitwise:
            np.testing.assert_array_equal(res.history[name], ref.history[name], err_msg=name)
        else:
            np.testing.assert_allclose(res.history[name], ref.history[name], rtol=0, atol=1e-10, err_msg=name)
    a, b = results.load_parameters(reference), results.load_parameters(resumed)
    assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        if bitwise:
            np.testing.assert_array_equal(y, x)
        else:
            np.testing.assert_allclose(y, x, rtol=0, atol=1e-10)
    if bitwise:
        with h5py.File(reference, "r") as f, h5py.File(resumed, "r") as g:
            for part in ("state", "model_state"):
                assert (part in f["checkpoint"]) == (part in g["checkpoint"])
                if part in f["checkpoint"]:
                    assert f["checkpoint"][part][()].tobytes() == g["checkpoint"][part][()].tobytes(), part


def check_kill(driver: str, point: str, tmp_path: Path) -> None:
    """Kill `driver` at `point`, check what the killed run left, resume it and compare with the uninterrupted run."""
    reference, cut = tmp_path / "reference.h5", tmp_path / "cut.h5"
    k, rows, checkpoints = run_killed(driver, point, reference, cut, tmp_path / "killed.log")
    killed = results.load(cut)
    assert killed.n_rows == rows, f"killed at {point} {k}: {killed.n_rows} rows kept of the {rows} written"
    if checkpoints or point == "checkpoint":  # killed inside a write: the previous checkpoint or the complete new one
        assert killed.checkpoint_step is not None, f"killed at {point} {k}: the checkpoint was lost"
    resume(driver, cut, tmp_path / "resumed.log")
    assert_same_run(reference, cut, bitwise=driver not in DETERMINISTIC)


def test_vmc_killed_at_a_random_row_resumes_to_the_uninterrupted_run(tmp_path):
    """VMC with Metropolis sampling (chain states, keys, SR optimiser state in the checkpoint), SIGKILLed after a
    seeded random history row and resumed in a fresh process: bit for bit the uninterrupted run."""
    check_kill("vmc", "row", tmp_path)


MATRIX = [(driver, point) for driver in DRIVERS for point in KILL_POINTS if (driver, point) != ("vmc", "row")]


@pytest.mark.slow  # 2 processes (import and compilation of each driver) per case
@pytest.mark.parametrize(("driver", "point"), MATRIX)
def test_killed_driver_resumes_to_the_uninterrupted_run(driver, point, tmp_path):
    """Each driver × kill point (module docstring) but VMC at a row (the default suite's): the resumed file equals the
    uninterrupted run's."""
    check_kill(driver, point, tmp_path)
