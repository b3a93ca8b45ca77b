"""Pieces shared by the experiment scripts in `runs/`: the common command-line options and the
closing comparison table.

Every script accepts ``--out PATH`` (result file), ``--quick`` (a configuration that finishes in
under 30 s on 2 cores), ``--seed``, ``--mode fail|overwrite|resume`` and ``--quiet``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def experiment_parser(description: str, default_out: str) -> argparse.ArgumentParser:
    """An argument parser with the options every experiment script shares."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, default=Path(default_out), help="result file (HDF5)")
    parser.add_argument("--quick", action="store_true", help="small configuration that runs in < 30 s on 2 cores")
    parser.add_argument("--seed", type=int, default=0, help="seed of parameters and sampler")
    parser.add_argument(
        "--mode",
        choices=("fail", "overwrite", "resume"),
        default="overwrite",
        help="what to do when the result file exists (resume continues from its checkpoint)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def config_of(args: argparse.Namespace) -> dict:
    """The parsed arguments as a JSON-serialisable dict (stored as the run's config)."""
    return json.loads(json.dumps(vars(args), default=str))
