"""Main job: ground state of the Heisenberg chain with an autoregressive ansatz, checked against exact numbers.

H = J Σ_i σ_i·σ_{i+1} (+ J2 Σ_i σ_i·σ_{i+2}), Pauli units, periodic by default. The Marshall sublattice
rotation is applied to the Hamiltonian (the rotated ground state is positive for J2 = 0), or with
``--sign ansatz`` built into the ansatz as the factor (−1)^{N_↑ on sublattice B}, so it runs without a
phase head by default; the zero-magnetisation sector is imposed by masking the conditionals.
``--symmetry translations|point|space`` (and ``--spin-flip``) symmetrises |ψ|² over the lattice group
with exact sampling kept (`ansatze.symmetrized`); with ``--coherent`` the amplitude is projected onto the
symmetric irrep instead and its exact energy, summed over the sector, is minimised (`nqs.projected_vmc`). The
exact reference is ED up to 24 sites and the Bethe-ansatz energy (`nqs.exact.bethe_ground_state_energy`) for
longer J2 = 0 chains. Energies are in Pauli units; divide by 4 for S·S units.

    python runs/heisenberg_chain.py                      # L=16 PBC, writes runs/out/heisenberg_chain.h5
    python runs/heisenberg_chain.py --L 20 --symmetry translations --spin-flip --steps 2000
    python runs/heisenberg_chain.py --L 100 --obc --ansatz rnn --features 32
    python runs/heisenberg_chain.py --quick --out /tmp/q.h5
"""

from __future__ import annotations

import argparse

import nqs  # noqa: F401  (first: enables 64-bit floats)
from ansatze.sign_rules import sublattice_b
from hamiltonians import heisenberg
from nqs import exact, results
from nqs.projected_vmc import ProjectedSettings, projected_ground_state
from nqs.scripting import (
    add_ansatz_options,
    add_init_options,
    build_ansatz,
    config_of,
    experiment_parser,
    initial_parameters,
)
from nqs.symmetry import symmetry_group
from nqs.vmc import VMCSettings, ground_state


def heisenberg_parser(description: str, default_out: str, *, L: int, steps: int) -> argparse.ArgumentParser:
    """Options of the Heisenberg ground-state scripts (chain and square lattice)."""
    parser = experiment_parser(description, default_out)
    parser.add_argument("--L", type=int, default=L, help="sites per side")
    parser.add_argument("--J", type=float, default=1.0)
    parser.add_argument("--J2", type=float, default=0.0)
    parser.add_argument("--obc", action="store_true", help="open instead of periodic boundaries")
    parser.add_argument("--sign", choices=("hamiltonian", "ansatz", "none"), default="hamiltonian",
                        help="Marshall sign: rotate the Hamiltonian, build it into the ansatz, or learn a phase")
    add_ansatz_options(parser, layers=2, features=16, heads=2)
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--diag-shift", type=float, default=1e-3)
    parser.add_argument("--solver", choices=("sr", "minsr"), default="minsr")
    parser.add_argument("--chunk-size", type=int, default=None, help="samples per batch of local energies")
    parser.add_argument("--coherent", action="store_true",
                        help="project the ansatz coherently onto the symmetric irrep of the --symmetry group (even under "
                             "the flip with --spin-flip) and minimise its exact energy summed over the sector "
                             "(nqs.projected_vmc; sectors up to 2^20 states; --diag-shift is then relative)")
    add_init_options(parser)
    return parser


def run(args: argparse.Namespace, lattice: str) -> results.Result:
    """VMC ground state of `heisenberg(args.L, lattice=lattice, ...)` with the chosen ansatz."""
    marshall = args.sign != "none"
    system = heisenberg(args.L, lattice=lattice, J=args.J, J2=args.J2, pbc=not args.obc,
                        marshall=args.sign == "hamiltonian")
    if args.coherent:
        return run_projected(args, system, lattice)
    model = build_ansatz(args, system, phase=not marshall or args.J2 != 0.0,
                         sign_sites=sublattice_b(system.graph) if args.sign == "ansatz" else None)
    settings = VMCSettings(
        n_steps=args.steps,
        n_samples=args.samples,
        learning_rate=args.lr,
        lr_schedule="cosine",
        lr_final=args.lr / 10,
        diag_shift=args.diag_shift,
        solver=args.solver,
        observables_every=50,
        n_samples_final=4 * args.samples,
        chunk_size=args.chunk_size,
    )
    reference_energy = None
    if exact.sector_dimension(system) > 2**20:  # beyond ED: Bethe ansatz or a published value, if any
        found = exact.reference_ground_state_energy(lattice, args.L, pbc=not args.obc, J=args.J, J2=args.J2)
        if found is not None:
            reference_energy, args.reference = found
    outcome = ground_state(system, model, settings, seed=args.seed, out=str(args.out), mode=args.mode,
                           config=config_of(args), reference_energy=reference_energy, progress=not args.quiet,
                           initial_parameters=initial_parameters(args))
    result = results.load(args.out)
    n = system.hilbert.size
    print(f"\nHeisenberg {lattice} L={args.L} ({'OBC' if args.obc else 'PBC'}, J2={args.J2}), {outcome.steps} steps, "
          f"{outcome.wall_time:.1f} s, n_parameters={result.ansatz.get('n_parameters')}, {args.samples} samples")
    e, err = outcome.energy.mean.real, outcome.energy.error_of_mean
    print(f"E/N = {e / n:.7f} ± {err / n:.7f}" + (
        f", exact {outcome.exact_energy / n:.7f}, relative error {outcome.relative_error:.2e}"
        if outcome.exact_energy is not None else ""))
    print(results.format_table(results.compare_with_exact(result)))
    return result


def run_projected(args: argparse.Namespace, system, lattice: str) -> results.Result:
    """`nqs.projected_vmc.projected_ground_state` of the base ansatz projected onto the symmetric irrep of the
    --symmetry group (× the flip, parity +1, with --spin-flip). That irrep holds the ground state of the Marshall-rotated
    Heisenberg and J1-J2 models on the 4×4 lattice and on chains with L divisible by 4; the printed fidelity with ED
    shows when it does not."""
    if args.symmetry == "none":
        raise ValueError("--coherent projects onto an irrep of the --symmetry group: choose translations, point or space")
    base = build_ansatz(argparse.Namespace(**{**vars(args), "symmetry": "none", "spin_flip": False}), system,
                        phase=args.sign == "none" or args.J2 != 0.0,
                        sign_sites=sublattice_b(system.graph) if args.sign == "ansatz" else None)
    settings = ProjectedSettings(n_steps=args.steps, learning_rate=args.lr, lr_schedule="cosine", lr_final=args.lr / 10,
                                 diag_shift=args.diag_shift, chunk_size=args.chunk_size or 1024, observables_every=25)
    outcome = projected_ground_state(system, base, symmetry_group(system.graph, args.symmetry), settings,
                                     spin_flip=1 if args.spin_flip else None, seed=args.seed, out=str(args.out),
                                     mode=args.mode, config=config_of(args), progress=not args.quiet,
                                     initial_parameters=initial_parameters(args))
    result = results.load(args.out)
    n = system.hilbert.size
    print(f"\nHeisenberg {lattice} L={args.L} ({'OBC' if args.obc else 'PBC'}, J2={args.J2}), coherent projection on "
          f"{outcome.sector.n_orbits} orbits ({outcome.sector.group_order} group elements), {outcome.steps} steps, "
          f"{outcome.wall_time:.1f} s, n_parameters={result.ansatz.get('n_parameters')}")
    print(f"E/N = {outcome.energy / n:.8f} (exact sum), exact {outcome.exact_energy / n:.8f}, relative error "
          f"{outcome.relative_error:.2e}, fidelity {outcome.fidelity:.6f}")
    print(results.format_table(results.compare_with_exact(result)))
    return result


def main(argv: list[str] | None = None) -> results.Result:
    parser = heisenberg_parser(__doc__.splitlines()[0], "runs/out/heisenberg_chain.h5", L=16, steps=150)
    args = parser.parse_args(argv)
    if args.quick:
        args.L, args.layers, args.features, args.heads = 8, 1, 16, 2
        args.steps, args.samples = 40, 256
    return run(args, "chain")


if __name__ == "__main__":
    main()
