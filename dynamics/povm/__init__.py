"""Open-system dynamics and steady states in the POVM representation with normalised autoregressive models.

The state of N qubits is the distribution P_θ(a) = Tr[ρ M^(a)] over 4^N outcome strings of an informationally
complete POVM (`nqs.povm`), given by an autoregressive model that returns log P_θ(a) (`context`). The Lindblad
equation becomes the real linear equation dP/dt = L P, L_ab = Tr[M^a 𝓛(N^b)], with the local Lindbladian
L_loc(a) = (L P_θ)(a)/P_θ(a). Three methods move the parameters, each with its settings class:

1. **Forward–backward trapezoid** (`trapezoid`; Luo, Chen, Carrasquilla, Clark, PRL 128, 090501 (2022)): each step
   solves (1 − (dt/2) L) P_θ' = (1 + (dt/2) L) P_θ by minimising the L1 residual over θ' with Adam.
2. **POVM-TDVP** (`tdvp`; Reh, Schmitt, Gärttner, PRL 127, 230501 (2021)): S θ̇ = F with S = Cov_P(O, O),
   F = Cov_P(O, L_loc), O_k = ∂ log P_θ/∂θ_k, solved by the regularised inverses of `solvers` and integrated with
   NetKet's Runge–Kutta integrators.
3. **Variational steady state** (`steady_state`; Luo et al. 2022): min ‖L P_θ‖₁ by Adam, or relaxation along the
   POVM-TDVP flow.

A `netket.vqs.FullSumState` sums exactly over all 4^N outcomes (N ≤ 9); an `MCState` with `ARDirectSampler` samples.
At every save time (dynamics) or at the end (steady state) the `recorder` writes the observables as POVM averages,
the purity and the reduced-ρ minimum eigenvalues (`diagnostics`) next to an exact QuTiP reference computed by an
independent path; every run checkpoints and resumes exactly (`run_file`).
"""

from dynamics.povm.context import (
    MAX_FULL_SUM_SITES,
    PovmContext,
    all_outcomes,
    apply_lindbladian,
    make_context,
)
from dynamics.povm.recorder import PovmOutcome
from dynamics.povm.settings import AdamSettings
from dynamics.povm.solvers import TDVP_SOLVERS, cv_solve, snr_solve
from dynamics.povm.steady_state import (
    STEADY_OPTIMIZERS,
    SteadyStateSettings,
    exact_steady_state,
    find_steady_state,
    steady_state_loss,
)
from dynamics.povm.tdvp import PovmTDVPSettings, evolve_povm_tdvp, tangent_start
from dynamics.povm.trapezoid import TrapezoidSettings, evolve_trapezoid, exact_trapezoid, trapezoid_loss

__all__ = [
    "MAX_FULL_SUM_SITES",
    "STEADY_OPTIMIZERS",
    "TDVP_SOLVERS",
    "AdamSettings",
    "PovmContext",
    "PovmOutcome",
    "PovmTDVPSettings",
    "SteadyStateSettings",
    "TrapezoidSettings",
    "all_outcomes",
    "apply_lindbladian",
    "cv_solve",
    "evolve_povm_tdvp",
    "evolve_trapezoid",
    "exact_steady_state",
    "exact_trapezoid",
    "find_steady_state",
    "make_context",
    "snr_solve",
    "steady_state_loss",
    "tangent_start",
    "trapezoid_loss",
]
