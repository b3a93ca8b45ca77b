"""Shared test setup: 64-bit JAX on the CPU, and the repository root for the run-script smoke tests."""

import os
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import nqs  # noqa: F401  (enables 64-bit floats before any test imports jax)

REPO = Path(__file__).resolve().parent.parent
