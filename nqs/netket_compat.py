"""Every access to a NetKet attribute that is not public API, in one place.

NetKet exposes no public way to read the loss statistics of the step being logged under its own name, to set a
restored driver's step counter, to evaluate a variational state's bare apply function, to read the mode-wise
signal-to-noise ratios of `TDVPSchmitt`, or to reuse the force kernel and the serialisation of `FullSumState`. These
helpers do, for the NetKet releases named in `pyproject.toml`;
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


def full_sum_forces(vstate: Any, mutable: Any, o_psi: Any, psi: Any) -> tuple[Any, Any, Any]:
    """(⟨O⟩ as `Stats`, forces ⟨∂ψ|(O − ⟨O⟩)|ψ⟩, new model state) of a full-sum state from the normalised vector ψ
    over `vstate._all_states` and Oψ, by NetKet's own full-sum kernel."""
    from netket.vqs.full_summ.expect import _exp_forces

    return _exp_forces(vstate._apply_fun, mutable, vstate.parameters, vstate.model_state, vstate._all_states, o_psi,
                       psi)


def register_full_sum_serialization(cls: type) -> None:
    """Serialise a `FullSumState` subclass (driver checkpoints) as NetKet serialises `FullSumState`: its variables."""
    from flax import serialization
    from netket.vqs.full_summ.state import deserialize_FullSumState, serialize_FullSumState

    serialization.register_serialization_state(cls, serialize_FullSumState, deserialize_FullSumState)


def tdvp_snr(driver: Any) -> Any:
    """The per-mode signal-to-noise ratios of the last `nkx.driver.TDVPSchmitt` step, or None for other drivers."""
    return getattr(driver, "_snr", None)


def sample_chain_signature() -> list[str]:
    """The parameters of `Sampler._sample_chain`, the method a sampler subclass overrides (our exact samplers do)."""
    return list(inspect.signature(nk.sampler.ARDirectSampler._sample_chain).parameters)


SAMPLE_CHAIN_PARAMETERS = ["self", "model", "variables", "state", "chain_length", "return_log_probabilities"]
