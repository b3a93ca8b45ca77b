"""nqs: neural quantum states for closed and open quantum many-body systems, checked against exact results.

Shared types live here: `System` (what builders return), `Constraint` (sectors applied as masks by
autoregressive ansätze) and `TokenMap` (the physical units of a system as groups of Hilbert modes). The
architecture is described in docs/design.md.
"""

from nqs.threads import configure_allocator, configure_threads

configure_threads()  # thread defaults before NumPy, SciPy and JAX load (nqs/threads.py); the user's values win
configure_allocator()  # malloc keeps XLA's freed buffers instead of returning them to the kernel at every step

import jax

jax.config.update("jax_enable_x64", True)

from nqs.constraint import Constraint, U1Constraint, zero_magnetization
from nqs.system import System
from nqs.tokens import TokenMap

__version__ = "0.1.0"

__all__ = ["Constraint", "System", "TokenMap", "U1Constraint", "__version__", "zero_magnetization"]
