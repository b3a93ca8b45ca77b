"""The Heisenberg ground-state scripts' options and run, shared by `heisenberg_chain.py` and `heisenberg_square.py`.

`heisenberg_parser` adds the model, ansatz, VMC and initialisation options; `run` turns them into a `System`, an
`AnsatzChoice` and `VMCSettings` (or `ProjectedSettings` with ``--coherent``), runs `nqs.vmc.ground_state` (or
`nqs.projected_vmc.projected_ground_state`), and prints the energy against the exact reference and the table of
the result file.
"""

from __future__ import annotations

import argparse
import dataclasses

from _common import (
    add_ansatz_options,
    add_init_options,
    ansatz_choice,
    at_least,
    config_of,
    experiment_parser,
    finite_float,
    initial_parameters,
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
    sample_count,
)

from ansatze.choice import build_ansatz
from ansatze.sign_rules import sublattice_b
from hamiltonians import heisenberg
from nqs import exact, results
from nqs.projected_vmc import ProjectedSettings, projected_ground_state
from nqs.symmetry import symmetry_group
from nqs.system import System
from nqs.vmc import VMCSettings, ground_state


def heisenberg_parser(description: str, default_out: str, *, L: int, steps: int) -> argparse.ArgumentParser:
    """Options of the Heisenberg ground-state scripts (chain and square lattice)."""
    parser = experiment_parser(description, default_out)
    parser.add_argument("--L", type=at_least(2), default=L, help="sites per side")
    parser.add_argument("--J", type=finite_float, default=1.0)
    parser.add_argument("--J2", type=finite_float, default=0.0)
    parser.add_argument("--obc", action="store_true", help="open instead of periodic boundaries")
    parser.add_argument("--sign", choices=("hamiltonian", "ansatz", "none"), default="hamiltonian",
                        help="Marshall sign: rotate the Hamiltonian, build it into the ansatz, or learn a phase")
    add_ansatz_options(parser, layers=2, features=16, heads=2)
    parser.add_argument("--steps", type=nonnegative_int, default=steps)
    parser.add_argument("--samples", type=sample_count, default=1024)
    parser.add_argument("--lr", type=positive_float, default=0.02)
    parser.add_argument("--diag-shift", type=nonnegative_float, default=1e-3)
    parser.add_argument("--solver", choices=("sr", "minsr"), default="minsr")
    parser.add_argument("--chunk-size", type=positive_int, default=None, help="samples per batch of local energies")
    parser.add_argument("--coherent", action="store_true",
                        help="project the ansatz coherently onto the symmetric irrep of the --symmetry group (even "
                             "under "
                             "the flip with --spin-flip) and minimise its exact energy summed over the sector "
                             "(nqs.projected_vmc; sectors up to 2^20 states; --diag-shift is then relative)")
    add_init_options(parser)
    return parser


def run(args: argparse.Namespace, lattice: str) -> results.Result:
    """Ground state of `heisenberg(args.L, lattice=lattice, ...)` with the chosen ansatz: VMC, or with --coherent
    the coherent projection onto the symmetric irrep of the --symmetry group."""
    if args.coherent and args.symmetry == "none":
        raise ValueError("--coherent projects onto an irrep of the --symmetry group: choose translations, point or "
                         "space")
    system = heisenberg(args.L, lattice=lattice, J=args.J, J2=args.J2, pbc=not args.obc,
                        marshall=args.sign == "hamiltonian")
    structure = {"phase": args.sign == "none" or args.J2 != 0.0,
                 "sign_sites": sublattice_b(system.graph) if args.sign == "ansatz" else None}
    label = f"Heisenberg {lattice} L={args.L} ({'OBC' if args.obc else 'PBC'}, J2={args.J2})"
    if args.coherent:
        choice = dataclasses.replace(ansatz_choice(args), symmetry="none", spin_flip=False)
        return _run_projected(args, system, build_ansatz(choice, system, **structure), label)
    return _run_vmc(args, system, build_ansatz(ansatz_choice(args), system, **structure), lattice, label)


def _run_vmc(args: argparse.Namespace, system: System, model, lattice: str, label: str) -> results.Result:
    settings = VMCSettings(
        n_steps=args.steps, n_samples=args.samples, learning_rate=args.lr, lr_schedule="cosine",
        lr_final=args.lr / 10, diag_shift=args.diag_shift, solver=args.solver, observables_every=50,
        n_samples_final=4 * args.samples, chunk_size=args.chunk_size,
    )
    config = config_of(args)
    reference_energy = None
    if exact.sector_dimension(system) > 2**20:  # beyond ED: Bethe ansatz or a published value, if any
        found = exact.reference_ground_state_energy(lattice, args.L, pbc=not args.obc, J=args.J, J2=args.J2)
        if found is not None:
            reference_energy, config["reference"] = found
    outcome = ground_state(system, model, settings, seed=args.seed, out=str(args.out), mode=args.mode, config=config,
                           reference_energy=reference_energy, progress=not args.quiet,
                           initial_parameters=initial_parameters(args.init_from, args.init_mode))
    result = results.load(args.out)
    n = system.hilbert.size
    print(f"\n{label}, {outcome.steps} steps, {outcome.wall_time:.1f} s, "
          f"n_parameters={result.ansatz.get('n_parameters')}, {args.samples} samples")
    e, err = outcome.energy.mean.real, outcome.energy.error_of_mean
    print(f"E/N = {e / n:.7f} ± {err / n:.7f}" + (
        f", exact {outcome.exact_energy / n:.7f}, relative error {outcome.relative_error:.2e}"
        if outcome.exact_energy is not None else ""))
    print(results.format_table(results.compare_with_exact(result)))
    return result


def _run_projected(args: argparse.Namespace, system: System, base, label: str) -> results.Result:
    """`nqs.projected_vmc.projected_ground_state` of the base ansatz projected onto the symmetric irrep of the
    --symmetry group (× the flip, parity +1, with --spin-flip). That irrep holds the ground state of the
    Marshall-rotated Heisenberg and J1-J2 models on the 4×4 lattice and on chains with L divisible by 4; the printed
    fidelity with ED shows when it does not."""
    settings = ProjectedSettings(n_steps=args.steps, learning_rate=args.lr, lr_schedule="cosine", lr_final=args.lr / 10,
                                 diag_shift=args.diag_shift, chunk_size=args.chunk_size or 1024, observables_every=25)
    outcome = projected_ground_state(system, base, symmetry_group(system.graph, args.symmetry), settings,
                                     spin_flip=1 if args.spin_flip else None, seed=args.seed, out=str(args.out),
                                     mode=args.mode, config=config_of(args), progress=not args.quiet,
                                     initial_parameters=initial_parameters(args.init_from, args.init_mode))
    result = results.load(args.out)
    n = system.hilbert.size
    print(f"\n{label}, coherent projection on {outcome.sector.n_orbits} orbits ({outcome.sector.group_order} group "
          f"elements), {outcome.steps} steps, {outcome.wall_time:.1f} s, "
          f"n_parameters={result.ansatz.get('n_parameters')}")
    print(f"E/N = {outcome.energy / n:.8f} (exact sum), exact {outcome.exact_energy / n:.8f}, relative error "
          f"{outcome.relative_error:.2e}, fidelity {outcome.fidelity:.6f}")
    print(results.format_table(results.compare_with_exact(result)))
    return result
