"""A quench experiment as the `runs/` quench scripts run it: options, state, method (TDVP or TENG), table.

The time-evolution options (`add_dynamics_options`) become a `Quench` (`quench_of`): the method's
`dynamics.tdvp.TDVPSettings` or `dynamics.teng.TENGSettings`, the sampling (exact autoregressive samples,
Metropolis for other models, or a full sum with ``--samples 0``) and the output. `run_quench` evolves, writes the
result file and prints the table of one observable against QuTiP (for Monte Carlo states also the exact expectation
value of the same variational state, ``<name>_fullsum``, which separates the error of the dynamics from the
sampling noise). `ground_state_variables` prepares a quench from a ground state by a VMC pre-fit.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from _common import (
    LOST_INFIDELITY,
    add_strict_option,
    ansatz_choice,
    at_least,
    check_tracking,
    config_of,
    nonnegative_float,
    positive_float,
    positive_int,
    sample_count,
)

from ansatze.choice import AnsatzChoice, is_holomorphic
from dynamics.integrators import INTEGRATORS
from dynamics.product_expansions import SCHEMES
from dynamics.recording import DynamicsOutcome
from dynamics.tdvp import ERROR_NORMS, SOLVERS, TDVPSettings, evolve_tdvp
from dynamics.teng import TENGSettings, evolve_teng
from nqs import results, states, vmc
from nqs.system import System


def add_dynamics_options(
    parser: argparse.ArgumentParser, *, T: float, dt: float, n_save: int, samples: int, method: str = "tdvp"
) -> None:
    """--method tdvp|teng, --strict, --T, --dt, --n-save, --samples (0: full sum), TDVP --integrator/--solver/
    --diag-shift/--rtol-smooth and the adaptive step control --rtol/--atol/--error-norm, TENG --scheme/
    --max-iterations."""
    group = parser.add_argument_group("time evolution")
    group.add_argument("--method", choices=("tdvp", "teng"), default=method)
    add_strict_option(group)
    group.add_argument("--T", type=positive_float, default=T, help="final time")
    group.add_argument("--dt", type=positive_float, default=dt, help="time step")
    group.add_argument("--n-save", type=at_least(2), default=n_save, help="save points in [0, T], both ends included")
    group.add_argument("--samples", type=sample_count, default=samples,
                       help="exact autoregressive samples per step; 0 sums over the whole Hilbert space")
    group.add_argument("--enumerate-samples", action="store_true",
                       help="i.i.d. samples from |ψ|² by enumerating the basis (NetKet ExactSampler; small systems): "
                            "separates Metropolis autocorrelation from the method's error")
    group.add_argument("--integrator", default="RK4", choices=sorted(INTEGRATORS), help="TDVP integrator")
    group.add_argument("--solver", default="pinv_smooth", choices=SOLVERS,
                       help="TDVP linear solver (schmitt: NetKet's Schmitt–Heyl filter, biased; see dynamics.tdvp)")
    group.add_argument("--diag-shift", type=nonnegative_float, default=0.0, help="TDVP diagonal shift of the QGT")
    group.add_argument("--rtol-smooth", type=nonnegative_float, default=1e-8,
                       help="TDVP smooth pseudo-inverse cut-off relative to the largest QGT eigenvalue")
    group.add_argument("--exact-residual", action="store_true",
                       help="record the TDVP residual of θ̇ and its least-squares floor summed over the whole basis "
                            "(small systems): separates sample noise from the ansatz's limit")
    group.add_argument("--rtol", type=positive_float, default=1e-6, help="relative tolerance of RK23/RK45")
    group.add_argument("--atol", type=positive_float, default=1e-6, help="absolute tolerance of RK23/RK45")
    group.add_argument("--error-norm", default="euclidean", choices=ERROR_NORMS,
                       help="norm of the RK23/RK45 step control (qgt: √(δθ† S δθ), parameterisation invariant)")
    group.add_argument("--scheme", default="heun", choices=sorted(SCHEMES), help="TENG target scheme")
    group.add_argument("--max-iterations", type=positive_int, default=20, help="TENG fit iterations per stage")


@dataclasses.dataclass(frozen=True)
class Quench:
    """What a quench script runs: the ansatz, the method's settings, the sampling and the output.

    Attributes:
        ansatz: the ansatz choice (its kind titles the table; holomorphic ones get a complex QGT).
        method: `TDVPSettings` or `TENGSettings`.
        samples: samples per step; 0 sums over the whole Hilbert space.
        enumerate_samples: i.i.d. samples by enumerating the basis (NetKet's `ExactSampler`).
        seed: seed of parameters (`seed`) and sampler (`seed + 1`).
        out: the result file.
        mode: "fail", "overwrite" or "resume".
        config: the experiment configuration stored in the result file.
        progress: show a progress bar.
        strict: exit with code 3 when the run lost the exact trajectory (`check_tracking`).
    """

    ansatz: AnsatzChoice
    method: TDVPSettings | TENGSettings
    samples: int
    enumerate_samples: bool
    seed: int
    out: Path
    mode: str
    config: Mapping[str, Any]
    progress: bool = True
    strict: bool = False

    def __post_init__(self) -> None:
        if self.samples < 0:
            raise ValueError(f"--samples must be >= 0, got {self.samples}")


def quench_of(args: argparse.Namespace) -> Quench:
    """The `Quench` of the options of `add_dynamics_options`, `add_ansatz_options` and `experiment_parser`."""
    ansatz = ansatz_choice(args)
    if args.method == "tdvp":
        method = TDVPSettings(
            t_end=args.T, dt=args.dt, n_save=args.n_save, integrator=args.integrator, diag_shift=args.diag_shift,
            solver=args.solver, pinv_rtol_smooth=args.rtol_smooth, holomorphic=is_holomorphic(ansatz),
            rtol=args.rtol, atol=args.atol, error_norm=args.error_norm, exact_residual=args.exact_residual,
        )
    else:
        method = TENGSettings(
            t_end=args.T, dt=args.dt, n_save=args.n_save, scheme=args.scheme, max_iterations=args.max_iterations
        )
    return Quench(ansatz=ansatz, method=method, samples=args.samples, enumerate_samples=args.enumerate_samples,
                  seed=args.seed, out=Path(args.out), mode=args.mode, config=config_of(args), progress=not args.quiet,
                  strict=args.strict)


def make_state(system: System, model: Any, *, samples: int, seed: int, enumerate_samples: bool = False) -> Any:
    """`nqs.states.make_state`: a `FullSumState` (``samples == 0``) or an `MCState` with `samples` samples (exact
    autoregressive sampling, Metropolis for other models, or enumerated i.i.d. samples)."""
    # Metropolis (non-autoregressive models): many short chains, kept warm from step to step
    return states.make_state(system, model, n_samples=samples, seed=seed, n_chains=min(256, max(16, samples // 16)),
                             enumerate_samples=enumerate_samples)


def ground_state_variables(system: System, model: Any, quench: Quench, *, steps: int) -> Any:
    """Variables of `model` after `steps` VMC + SR steps on `system` (the pre-quench Hamiltonian), for a quench from
    a ground state. The exact reference later starts from this variational state, so its residual error is part of
    the initial condition, not of the dynamics (the VMC energy is printed). None when the quench resumes a result
    file with a checkpoint: the run continues from there."""
    if quench.mode == "resume" and quench.out.exists() and results.load(quench.out).checkpoint_step is not None:
        print(f"resuming {quench.out} from its checkpoint: no pre-quench fit")
        return None  # run_quench starts from the checkpointed parameters
    # a full sum (samples 0) with SR: near a product state every sample coincides and the sampled gradient
    # vanishes; diag_shift 1e-4 made the full-sum SR jump at L = 12. Else minSR with at most 2048 samples (its
    # sample-space solve with 8192 crashed OpenBLAS)
    full_sum = quench.samples == 0
    n_samples = 0 if full_sum else min(max(quench.samples, 1024), 2048)
    settings = vmc.VMCSettings(
        n_steps=steps, n_samples=n_samples, learning_rate=0.02, solver="sr" if full_sum else "minsr",
        lr_schedule="cosine", lr_final=0.002, diag_shift=1e-3 if full_sum else 1e-4, n_samples_final=n_samples,
        holomorphic=is_holomorphic(quench.ansatz),
    )
    energy_only = dataclasses.replace(system, observables={})  # the quench records the observables
    outcome = vmc.ground_state(energy_only, model, settings, seed=quench.seed, progress=quench.progress)
    if outcome.relative_error is not None:
        print(f"initial state: VMC ground state, relative energy error {outcome.relative_error:.2e}")
    return outcome.state.variables


def run_quench(
    system: System, model: Any, quench: Quench, *, observable: str, title: str, initial: Any = None,
    manifold: np.ndarray | None = None,
) -> DynamicsOutcome:
    """Evolve `model`'s initial state (its initialisation, or the variables `initial`) under `system` as `quench`
    says, write its result file, and print the table of `observable` against the exact trajectory. `manifold`:
    states whose span gets a Loschmidt rate (`dynamics.recording`)."""
    vstate = make_state(system, model, samples=quench.samples, seed=quench.seed,
                        enumerate_samples=quench.enumerate_samples)
    if initial is not None:
        vstate.variables = initial
    tdvp = isinstance(quench.method, TDVPSettings)
    evolve = evolve_tdvp if tdvp else evolve_teng
    outcome = evolve(system, vstate, quench.method, out=str(quench.out), mode=quench.mode, config=quench.config,
                     seed=quench.seed, progress=quench.progress, manifold=manifold)
    print_comparison(outcome, observable, title=f"{title} ({'tdvp' if tdvp else 'teng'}, {quench.ansatz.kind}, "
                     f"{vstate.n_parameters} parameters, {quench.samples or 'full-sum'} samples, "
                     f"dt={quench.method.dt})", strict=quench.strict)
    return outcome


def print_comparison(outcome: DynamicsOutcome, observable: str, *, title: str, strict: bool = False) -> None:
    """Table of the observable (variational, exact, difference) and the infidelity at the save points this call
    computed (a resumed run: those after its checkpoint); `check_tracking` of the largest infidelity."""
    times = outcome.series("time")
    values = outcome.series(observable)
    fullsum = outcome.series(f"{observable}_fullsum")
    has_fullsum = np.isfinite(fullsum).any()
    print(f"\n{title}: {outcome.wall_time:.1f} s")
    if not len(times):
        print("nothing left to compute: the run in the result file had finished")
        return
    if outcome.exact is None:
        print(f"{'t':>6s} {observable:>14s}")
        for t, a in zip(times, values):
            print(f"{t:6.3f} {a:14.8f}")
        print("(no exact reference at this size)")
        return
    grid = np.abs(outcome.times[None, :] - times[:, None]).argmin(axis=1)
    ref = outcome.exact.observables[observable][grid]
    best = fullsum if has_fullsum else values
    infidelity = outcome.series("infidelity")
    print(f"{'t':>6s} {'variational':>14s}" + (f" {'(full sum)':>14s}" if has_fullsum else "")
          + f" {'exact':>14s} {'|diff|':>10s} {'infidelity':>11s}")
    for i, t in enumerate(times):
        line = f"{t:6.3f} {values[i]:14.8f}" + (f" {fullsum[i]:14.8f}" if has_fullsum else "")
        print(line + f" {ref[i]:14.8f} {abs(best[i] - ref[i]):10.2e} {infidelity[i]:11.2e}")
    print(f"max |Δ {observable}| = {np.abs(best - ref).max():.2e}"
          + (f" (sample estimate: {np.abs(values - ref).max():.2e})" if has_fullsum else "")
          + f", final infidelity {infidelity[-1]:.2e} (exact reference: QuTiP from the variational |ψ(0)⟩)")
    worst = int(np.nanargmax(infidelity))
    check_tracking(infidelity[worst] <= LOST_INFIDELITY,
                   f"infidelity {infidelity[worst]:.2e} > {LOST_INFIDELITY} at t = {times[worst]:.3f}", strict=strict)
