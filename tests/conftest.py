"""Shared test setup: 64-bit JAX on the CPU, unoptimised XLA compilation shared through a per-session compilation
cache, one compute thread per xdist worker, the repository root for the run-script smoke tests, and an interruption
helper for the resume tests."""

import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Test programs are small and compiled once: XLA's LLVM optimisation costs more than it saves (measured ~20% of the
# suite's wall time, slow set included). Results stay IEEE-exact (no fast math at any level).
XLA_TEST_FLAGS = "--xla_backend_optimization_level=0"
os.environ.setdefault("XLA_FLAGS", XLA_TEST_FLAGS)
# Many tests compile the same programs (the same small model and Hamiltonian built again in another test, module or
# xdist worker, or in a script a test starts): JAX's persistent compilation cache, in a fresh folder per test session
# shared by its workers and subprocesses (they inherit the variable), compiles each of them once (measured: −11% CPU
# on four test modules). The session that made the folder removes it at the end.
CACHE_VARIABLE = "JAX_COMPILATION_CACHE_DIR"
OWN_CACHE = None if CACHE_VARIABLE in os.environ else tempfile.mkdtemp(prefix="nqs-test-xla-cache-")
if OWN_CACHE is not None:
    os.environ[CACHE_VARIABLE] = OWN_CACHE
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"  # default 1 s: most test programs compile faster
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"

import pytest  # noqa: E402

# the first import of nqs sets its thread defaults before NumPy or JAX loads (nqs.threads: one thread per pool in each
# of the two xdist workers on two cores, from PYTEST_XDIST_WORKER_COUNT), then 64-bit floats before any test runs
import nqs  # noqa: E402, F401

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture()
def load_script(monkeypatch):
    """load_script(name): the module of `runs/<name>.py`, imported as running the script does (its folder, runs/,
    first on sys.path, so that its `from _common import ...` works); its ``main(argv)`` runs in this process."""
    import importlib.util

    monkeypatch.syspath_prepend(str(REPO / "runs"))

    def load(name: str):
        spec = importlib.util.spec_from_file_location(f"runs_{name}", REPO / "runs" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture()
def interrupt_at_row(monkeypatch):
    """interrupt_at_row(k): from now on the run layer raises KeyboardInterrupt when a method appends its k-th history
    row (1-based, counted from this call), as an interrupted process would stop; the rows before it are written."""
    from nqs.run import Run

    append = Run.append

    def arm(row: int) -> None:
        calls = {"n": 0}

        def interrupted(self, values):
            calls["n"] += 1
            if calls["n"] == row:
                raise KeyboardInterrupt(f"interrupted at history row {row}")
            return append(self, values)

        monkeypatch.setattr(Run, "append", interrupted)

    yield arm
    monkeypatch.setattr(Run, "append", append)


# xdist hands whole files to the two workers in collection order: starting with the longest files (measured) keeps
# one worker from finishing a long file alone at the end (longest-processing-time-first scheduling)
LONGEST_FILES_FIRST = ("test_autoregressive.py", "test_quantum_link.py", "test_sharding.py", "test_povm_context.py",
                       "test_vmc.py", "test_mps.py", "test_tdvp.py", "test_projected_vmc.py", "test_povm_sampled.py",
                       "test_runs.py", "test_user_numbers.py", "test_teng.py", "test_kill.py", "test_hubbard.py",
                       "test_antn.py", "test_fermion_lindblad.py", "test_dmft.py")


def pytest_unconfigure(config):
    if OWN_CACHE is not None:
        shutil.rmtree(OWN_CACHE, ignore_errors=True)


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
