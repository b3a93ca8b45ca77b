"""The Runge–Kutta integrators of every time-evolution method: NetKet's `netket.experimental.dynamics` solvers.

Fixed step: Euler (order 1), Heun (2), RK4 (4). Adaptive: RK23 (Bogacki–Shampine) and RK45 (Dormand–Prince) with
error control at tolerances rtol/atol.
"""

from __future__ import annotations

import netket.experimental as nkx

INTEGRATORS = {"Euler": nkx.dynamics.Euler, "Heun": nkx.dynamics.Heun, "RK4": nkx.dynamics.RK4,
               "RK23": nkx.dynamics.RK23, "RK45": nkx.dynamics.RK45}
ADAPTIVE = ("RK23", "RK45")


def check_integrator(name: str) -> None:
    """ValueError for a name that is not in `INTEGRATORS`."""
    if name not in INTEGRATORS:
        raise ValueError(f"unknown integrator {name!r}; choose one of {sorted(INTEGRATORS)}")


def make_integrator(name: str, dt: float, *, rtol: float = 1e-6, atol: float = 1e-6):
    """NetKet's solver `name` with step `dt` (the initial step of an adaptive one, controlled at rtol/atol)."""
    check_integrator(name)
    cls = INTEGRATORS[name]
    if name in ADAPTIVE:
        return cls(dt=dt, adaptive=True, rtol=rtol, atol=atol)
    return cls(dt=dt)
