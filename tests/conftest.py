"""Shared test setup: 64-bit JAX on the CPU, one compute thread per xdist worker, the repository root for the
run-script smoke tests, and an interruption helper for the resume tests."""

import os
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
if os.environ.get("PYTEST_XDIST_WORKER"):  # two workers on two cores: one thread each instead of oversubscribing
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")

import pytest

import nqs  # noqa: F401  (enables 64-bit floats before any test imports jax)

REPO = Path(__file__).resolve().parent.parent


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
