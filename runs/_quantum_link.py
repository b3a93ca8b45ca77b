"""The quantum-link scripts' model options, shared by `qlm_ground_state.py` and `qlm_quench.py`.

`add_model_options` adds --N, --S, --J, --m, --g2, --eps-bg, --kappa, --matter and --obc; `build_system` builds
`hamiltonians.quantum_link` from them, with any argument overridden (the mass of a scan, a pre-quench Hamiltonian).
"""

from __future__ import annotations

import argparse
from typing import Any

from _common import at_least, finite_float, positive_float

from hamiltonians import quantum_link
from nqs.system import System


def add_model_options(parser: argparse.ArgumentParser, *, m: float, when: str = "") -> argparse._ArgumentGroup:
    """The model group; `m` is the default mass, `when` qualifies m, g² and ε_bg in the help (e.g. "after the
    quench"). Returns the group, for script-specific model options."""
    model = parser.add_argument_group("model")
    suffix = f" {when}" if when else ""
    model.add_argument("--N", type=at_least(2), default=12, help="matter sites (even)")
    model.add_argument("--S", type=positive_float, default=0.5, help="link spin")
    model.add_argument("--J", type=finite_float, default=1.0)
    model.add_argument("--m", type=finite_float, default=m, help=f"staggered mass{suffix}")
    model.add_argument("--g2", type=finite_float, default=0.0, help=f"electric coupling g²{suffix}")
    model.add_argument("--eps-bg", type=finite_float, default=0.0, help=f"background field ε_bg{suffix}")
    model.add_argument("--kappa", choices=("bare", "normalised"), default="bare")
    model.add_argument("--matter", choices=("fermion", "hardcore_boson"), default="fermion")
    model.add_argument("--obc", action="store_true", help="open chain (default periodic)")
    return model


def build_system(args: argparse.Namespace, **override: Any) -> System:
    """`quantum_link` of the options, with `override` replacing any keyword (m, g2, eps_bg, ...)."""
    kwargs = {"S": args.S, "J": args.J, "m": args.m, "g2": args.g2, "eps_bg": args.eps_bg, "kappa": args.kappa,
              "matter": args.matter, "pbc": not args.obc}
    return quantum_link(args.N, **{**kwargs, **override})
