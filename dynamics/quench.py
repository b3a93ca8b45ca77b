"""A quench experiment as the `runs/` scripts run it: state, method (TDVP or TENG), comparison table.

The pieces every quench script shares: the command-line options of the time evolution, the variational
state (exact autoregressive samples, or a full sum with ``--samples 0``), the choice between
`evolve_tdvp` and `evolve_teng`, and the closing table of one observable against QuTiP (for Monte Carlo
states also the exact expectation value of the same variational state, ``<name>_fullsum``, which
separates the error of the dynamics from the sampling noise).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

import netket as nk
import numpy as np

from dynamics.product_expansions import SCHEMES
from dynamics.recording import DynamicsOutcome
from dynamics.tdvp import ERROR_NORMS, INTEGRATORS, SOLVERS, TDVPSettings, evolve_tdvp
from dynamics.teng import TENGSettings, evolve_teng
from nqs import results, vmc
from nqs.scripting import config_of, is_holomorphic
from nqs.system import System


def add_dynamics_options(
    parser: argparse.ArgumentParser, *, T: float, dt: float, n_save: int, samples: int, method: str = "tdvp"
) -> None:
    """--method tdvp|teng, --T, --dt, --n-save, --samples (0: full sum), TDVP --integrator/--solver/--diag-shift/
    --rtol-smooth and the adaptive step control --rtol/--atol/--error-norm, TENG --scheme/--max-iterations."""
    group = parser.add_argument_group("time evolution")
    group.add_argument("--method", choices=("tdvp", "teng"), default=method)
    group.add_argument("--T", type=float, default=T, help="final time")
    group.add_argument("--dt", type=float, default=dt, help="time step")
    group.add_argument("--n-save", type=int, default=n_save, help="save points in [0, T], both ends included")
    group.add_argument("--samples", type=int, default=samples,
                       help="exact autoregressive samples per step; 0 sums over the whole Hilbert space")
    group.add_argument("--enumerate-samples", action="store_true",
                       help="i.i.d. samples from |ψ|² by enumerating the basis (NetKet ExactSampler; small systems): "
                            "separates Metropolis autocorrelation from the method's error")
    group.add_argument("--integrator", default="RK4", choices=sorted(INTEGRATORS), help="TDVP integrator")
    group.add_argument("--solver", default="pinv_smooth", choices=SOLVERS,
                       help="TDVP linear solver (snr: Schmitt–Heyl filter, biased; see dynamics.tdvp)")
    group.add_argument("--diag-shift", type=float, default=0.0, help="TDVP diagonal shift of the QGT")
    group.add_argument("--rtol-smooth", type=float, default=1e-10,
                       help="TDVP smooth pseudo-inverse cut-off relative to the largest QGT eigenvalue")
    group.add_argument("--exact-residual", action="store_true",
                       help="record the TDVP residual of θ̇ and its least-squares floor summed over the whole basis "
                            "(small systems): separates sample noise from the ansatz's limit")
    group.add_argument("--rtol", type=float, default=1e-6, help="relative tolerance of RK23/RK45")
    group.add_argument("--atol", type=float, default=1e-6, help="absolute tolerance of RK23/RK45")
    group.add_argument("--error-norm", default="euclidean", choices=ERROR_NORMS,
                       help="norm of the RK23/RK45 step control (qgt: √(δθ† S δθ), parameterisation invariant)")
    group.add_argument("--scheme", default="heun", choices=sorted(SCHEMES), help="TENG target scheme")
    group.add_argument("--max-iterations", type=int, default=20, help="TENG fit iterations per stage")


def make_state(system: System, model: Any, args: argparse.Namespace):
    """`FullSumState` (args.samples == 0) or an `MCState` with args.samples samples from
    `nqs.vmc.make_state` (exact autoregressive sampling, Metropolis for other models, or enumerated i.i.d.
    samples with args.enumerate_samples)."""
    if args.samples < 0:
        raise ValueError(f"--samples must be >= 0, got {args.samples}")
    if args.samples == 0:
        return nk.vqs.FullSumState(system.hilbert, model, seed=args.seed)
    # Metropolis (non-autoregressive models): many short chains, kept warm from step to step
    return vmc.make_state(system, model, n_samples=args.samples, seed=args.seed,
                          n_chains=min(256, max(16, args.samples // 16)), enumerate_samples=args.enumerate_samples)


def ground_state_variables(system: System, model: Any, args: argparse.Namespace, *, steps: int) -> Any:
    """Variables of `model` after `steps` VMC + SR steps on `system` (the pre-quench Hamiltonian), for a
    quench from a ground state. The exact reference later starts from this variational state, so its
    residual error is part of the initial condition, not of the dynamics (the VMC energy is printed).
    None when args.mode is "resume" and args.out has a checkpoint: the run continues from there."""
    from nqs.vmc import VMCSettings, ground_state

    if args.mode == "resume" and Path(args.out).exists() and results.load(args.out).checkpoint_step is not None:
        print(f"resuming {args.out} from its checkpoint: no pre-quench fit")
        return None  # run_quench starts from the checkpointed parameters
    # --samples 0: full sum and SR (near a product state every sample coincides and the sampled gradient
    # vanishes; diag_shift 1e-4 made the full-sum SR jump at L = 12); else minSR with at most 2048 samples
    # (its sample-space solve with 8192 crashed OpenBLAS)
    full_sum = args.samples == 0
    n_samples = 0 if full_sum else min(max(args.samples, 1024), 2048)
    settings = VMCSettings(n_steps=steps, n_samples=n_samples, learning_rate=0.02, solver="sr" if full_sum else "minsr",
                           lr_schedule="cosine", lr_final=0.002, diag_shift=1e-3 if full_sum else 1e-4,
                           n_samples_final=n_samples, holomorphic=is_holomorphic(args))
    energy_only = dataclasses.replace(system, observables={})  # the quench records the observables
    outcome = ground_state(energy_only, model, settings, seed=args.seed, progress=not args.quiet)
    if outcome.relative_error is not None:
        print(f"initial state: VMC ground state, relative energy error {outcome.relative_error:.2e}")
    return outcome.state.variables


def run_quench(
    system: System, model: Any, args: argparse.Namespace, *, observable: str, title: str, initial: Any = None
) -> DynamicsOutcome:
    """Evolve `model`'s initial state (its initialisation, or the variables `initial`) under `system` with
    the method chosen in `args`, write the result file args.out, and print the table of `observable`
    against the exact trajectory."""
    vstate = make_state(system, model, args)
    if initial is not None:
        vstate.variables = initial
    if args.method == "tdvp":
        settings = TDVPSettings(
            t_end=args.T, dt=args.dt, n_save=args.n_save, integrator=args.integrator, diag_shift=args.diag_shift,
            solver=args.solver, pinv_rtol_smooth=args.rtol_smooth, holomorphic=is_holomorphic(args),
            rtol=args.rtol, atol=args.atol, error_norm=args.error_norm, exact_residual=args.exact_residual,
        )
        evolve = evolve_tdvp
    else:
        settings = TENGSettings(
            t_end=args.T, dt=args.dt, n_save=args.n_save, scheme=args.scheme, max_iterations=args.max_iterations
        )
        evolve = evolve_teng
    outcome = evolve(
        system, vstate, settings, out=str(args.out), mode=args.mode, config=config_of(args), seed=args.seed,
        progress=not args.quiet,
    )
    print_comparison(outcome, observable, title=f"{title} ({args.method}, {args.ansatz}, "
                     f"{vstate.n_parameters} parameters, {args.samples or 'full-sum'} samples, dt={args.dt})")
    return outcome


def print_comparison(outcome: DynamicsOutcome, observable: str, *, title: str) -> None:
    """Table of the observable (variational, exact, difference) and the infidelity at the save points this
    call computed (a resumed run: those after its checkpoint)."""
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
    print(f"{'t':>6s} {'variational':>14s}" + (f" {'(full sum)':>14s}" if has_fullsum else "")
          + f" {'exact':>14s} {'|diff|':>10s} {'infidelity':>11s}")
    for i, t in enumerate(times):
        line = f"{t:6.3f} {values[i]:14.8f}" + (f" {fullsum[i]:14.8f}" if has_fullsum else "")
        print(line + f" {ref[i]:14.8f} {abs(best[i] - ref[i]):10.2e} {outcome.series('infidelity')[i]:11.2e}")
    print(f"max |Δ {observable}| = {np.abs(best - ref).max():.2e}"
          + (f" (sample estimate: {np.abs(values - ref).max():.2e})" if has_fullsum else "")
          + f", final infidelity {outcome.series('infidelity')[-1]:.2e} "
          "(exact reference: QuTiP from the variational |ψ(0)⟩)")
