"""nqs: neural quantum states for closed and open quantum many-body systems, checked against exact results.

Shared types live here: `System` (what builders return), `Constraint` (sectors applied as masks by
autoregressive ansätze) and `TokenMap` (the physical units of a system as groups of Hilbert modes). The
architecture is described in docs/design.md.
"""

import jax

jax.config.update("jax_enable_x64", True)

from nqs.constraint import Constraint, U1Constraint, zero_magnetization
from nqs.system import System
from nqs.tokens import TokenMap

__version__ = "0.1.0"

__all__ = ["Constraint", "System", "TokenMap", "U1Constraint", "__version__", "zero_magnetization"]
