"""Learning-rate schedules: one vocabulary for every optimiser in nqs.

    constant:     η_k = η
    step:         η_k = η for k < drop_at, η · drop_factor after (Luo et al., PRL 128, 090501 (2022))
    cosine:       η_k = final + (η − final) (1 + cos(π k/K))/2 for k ≤ K, `final` after (optax's cosine decay)
    exponential:  η_k = η (final/η)^{k/K}

`final` is always an absolute learning rate, reached at step K = `decay_steps`.
"""

from __future__ import annotations

import math

import optax

SCHEDULES = ("constant", "step", "cosine", "exponential")


def check_schedule(kind: str, initial: float, final: float) -> None:
    """ValueError for an unknown schedule or a learning rate that is not finite and positive."""
    if kind not in SCHEDULES:
        raise ValueError(f"unknown lr_schedule {kind!r}; choose one of {SCHEDULES}")
    for name, value in (("learning_rate", initial), ("lr_final", final)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be finite and positive, got {value}")


def learning_rate_schedule(kind: str, initial: float, final: float, decay_steps: int, *, drop_at: int = 0,
                           drop_factor: float = 0.5) -> optax.Schedule:
    """η_k of the module docstring; `decay_steps` K is the step at which the cosine and exponential reach `final`."""
    check_schedule(kind, initial, final)
    steps = max(int(decay_steps), 1)
    if kind == "cosine":
        return optax.cosine_decay_schedule(initial, steps, alpha=final / initial)
    if kind == "exponential":
        return optax.exponential_decay(initial, steps, final / initial)
    if kind == "step":
        return optax.piecewise_constant_schedule(initial, {int(drop_at): float(drop_factor)})
    return optax.constant_schedule(initial)
