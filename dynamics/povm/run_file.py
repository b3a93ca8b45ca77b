"""The result file of a POVM run, behind the few calls the shared run layer (`nqs.run`) will provide.

`open_run` opens (mode "fail", "overwrite" or "resume") and returns a `PovmRunFile`: `restore(fresh)` (the checkpoint
of a resumed run, else `fresh`), `append(row)`, `write_exact(values)`, `checkpoint(step, params=…, state=…)` (the
parameter tree apart from the method's own state) and `close`, called on every exit path by ``with``. Without an
output path every call does nothing. The checkpoint is one Flax msgpack blob {"params": …, **state}: dynamics
states {"initial": parameters at t = 0, "params": current parameters, ...} (the exact reference starts from
"initial"), steady states {"params", "finished", ...} — the layouts `nqs.results.load_parameters` reads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Self

import flax.serialization

from dynamics.povm.context import PovmContext
from nqs.povm import POVM
from nqs.results import ResultFile, describe_ansatz
from nqs.system import System


class PovmRunFile:
    """A POVM run's result file (`nqs.results.ResultFile`), or nothing when `result` is None."""

    def __init__(self, result: ResultFile | None, mode: str):
        self.result, self.mode = result, mode

    def restore(self, fresh: dict[str, Any]) -> tuple[dict[str, Any], int]:
        """(run state, step of its checkpoint): the checkpoint with mode "resume", else `fresh` at step 0. `fresh`
        (its "params" and the method's state) fixes the layout read back."""
        if self.result is not None and self.mode == "resume" and (saved := self.result.load_checkpoint()) is not None:
            return flax.serialization.from_bytes(fresh, saved[0]), saved[1]
        return fresh, 0

    def checkpoint(self, step: int, *, params: Any, state: Mapping[str, Any]) -> None:
        """Replace the checkpoint by the parameters and the method's state after `step`."""
        if self.result is not None:
            self.result.save_checkpoint(flax.serialization.to_bytes({"params": params, **state}), step)

    def append(self, row: Mapping[str, Any]) -> None:
        """Append one history row (flushed)."""
        if self.result is not None:
            self.result.append(row)

    def write_exact(self, values: Mapping[str, Any]) -> None:
        """Store the exact reference under /exact."""
        if self.result is not None:
            self.result.write_exact_values(values)

    def close(self) -> None:
        if self.result is not None:
            self.result.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_run(out: str | None, mode: str, kind: str, system: System, vstate: Any, method: Mapping[str, Any],
             config: Mapping[str, Any] | None, seed: int, ansatz: Mapping[str, Any] | None) -> PovmRunFile:
    """The result file `out` of kind `kind` with its metadata (a file that keeps nothing when `out` is None)."""
    if out is None:
        return PovmRunFile(None, mode)
    result = ResultFile(out, mode, kind=kind, config=dict(config or {}), seed=seed, system=system,
                        ansatz=describe_ansatz(vstate, ansatz), method=method)
    return PovmRunFile(result, mode)


def method_attributes(name: str, settings: Any, povm: POVM, ctx: PovmContext) -> dict[str, Any]:
    """The /method attributes: the method's name, its settings, the POVM and the mode."""
    return {"name": name, **dataclasses.asdict(settings), "povm": povm.name,
            "mode": "full_sum" if ctx.full_sum else "sampled", "n_samples": ctx.n_samples}
