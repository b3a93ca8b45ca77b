"""Every access to a NetKet attribute that is not public API, in one place.

NetKet exposes no public way to read the loss statistics of the step being logged under its own name, to set a
restored driver's step counter, to evaluate a variational state's bare apply function, or to read the mode-wise
signal-to-noise ratios of `TDVPSchmitt`. These helpers do, for the NetKet releases named in `pyproject.toml`;
`tests/test_netket_compat.py` checks each of them against the installed NetKet, so a release that renames one fails
there, loudly, instead of somewhere inside a driver.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import netket as nk


def loss_stats(driver: Any, log_data: dict) -> Any:
    """The `Stats` of the quantity the driver minimises, from the log data of the current step."""
    return log_data[driver._loss_name]


def set_step_count(driver: Any, step: int) -> None:
    """Set the step counter of a driver (a restored checkpoint continues from `step`)."""
    driver._step_count = int(step)


def apply_fun(vstate: Any) -> Callable:
    """The variational state's apply function f(variables, x) -> log ψ(x) (chunking and sharding wrappers included)."""
    return vstate._apply_fun


def tdvp_snr(driver: Any) -> Any:
    """The per-mode signal-to-noise ratios of the last `nkx.driver.TDVPSchmitt` step, or None for other drivers."""
    return getattr(driver, "_snr", None)


def sample_chain_signature() -> list[str]:
    """The parameters of `Sampler._sample_chain`, the method a sampler subclass overrides (our exact samplers do)."""
    return list(inspect.signature(nk.sampler.ARDirectSampler._sample_chain).parameters)


SAMPLE_CHAIN_PARAMETERS = ["self", "model", "variables", "state", "chain_length", "return_log_probabilities"]
