"""Ground state of the Fermi–Hubbard model (chain or square lattice) by VMC, checked against exact numbers.

H = −t Σ_⟨ij⟩σ (c†_iσ c_jσ + h.c.) + U Σ_i n_i↑ n_i↓ at half filling (N↑ = N↓ = N/2) unless --n-up/--n-down are
given (`hamiltonians.hubbard`; modes and tokens in `hamiltonians.fermions`). Ansätze: the autoregressive Transformer
or RNN over one 4-valued token per site with the (N↑, N↓) masks (exact sampling), NetKet's Slater determinant
(``--ansatz slater``, ``--determinants K`` for K of them) or the neural backflow (``--ansatz backflow``), both
sampled by same-spin hops inside the sector. The exact reference is sector ED up to 2^20 states, else the Lieb–Wu
thermodynamic limit × L for chains (the gap to it is the finite-size correction plus the variational error) or a
published cluster energy (4×4 PBC, U = 4). Energies in units of t.

    python runs/hubbard.py --L 12 --U 4                        # chain, ED reference
    python runs/hubbard.py --L 32 --U 4 --boundary apbc        # Lieb-Wu reference
    python runs/hubbard.py --L 4 --Ly 4 --U 4 --ansatz backflow --features 32
    python runs/hubbard.py --quick --out /tmp/q.h5
"""

from __future__ import annotations

import argparse

from _common import (
    add_ansatz_options,
    add_init_options,
    ansatz_choice,
    at_least,
    check_output,
    config_of,
    experiment_parser,
    finite_float,
    initial_parameters,
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
    sample_count,
    script,
)

from ansatze.choice import build_ansatz
from hamiltonians.hubbard import BOUNDARIES, hubbard
from nqs import exact, results
from nqs.vmc import VMCSettings, ground_state

MAX_ED_STATES = 2**20  # nqs.vmc's default: the exact reference is ED up to this sector size


def parser() -> argparse.ArgumentParser:
    p = experiment_parser(__doc__.splitlines()[0], "runs/out/hubbard.h5")
    p.add_argument("--L", type=at_least(2), default=8, help="sites (chain) or sites along x (with --Ly)")
    p.add_argument("--Ly", type=positive_int, default=None, help="sites along y: the L×Ly square lattice")
    p.add_argument("--U", type=finite_float, default=4.0)
    p.add_argument("--t", type=finite_float, default=1.0)
    p.add_argument("--boundary", choices=BOUNDARIES, default="pbc")
    p.add_argument("--n-up", type=nonnegative_int, default=None, help="spin-up fermions (default: half filling)")
    p.add_argument("--n-down", type=nonnegative_int, default=None, help="spin-down fermions (default: half filling)")
    add_ansatz_options(p, layers=2, features=16, heads=2)
    p.add_argument("--steps", type=nonnegative_int, default=300)
    p.add_argument("--samples", type=sample_count, default=1024, help="samples per step (0: exact sum over the sector)")
    p.add_argument("--lr", type=positive_float, default=0.02)
    p.add_argument("--diag-shift", type=nonnegative_float, default=1e-3)
    p.add_argument("--solver", choices=("sr", "minsr"), default="minsr")
    p.add_argument("--chunk-size", type=positive_int, default=None, help="samples per batch of local energies")
    add_init_options(p)
    return p


@script
def main(argv: list[str] | None = None) -> results.Result:
    args = parser().parse(argv, quick=dict(L=4, Ly=None, U=4.0, layers=1, features=8, heads=1, steps=30, samples=256))
    if (args.n_up is None) != (args.n_down is None):
        raise ValueError("give both --n-up and --n-down, or neither (half filling)")
    check_output(args.out, args.mode, "ground_state")
    shape = args.L if args.Ly is None else (args.L, args.Ly)
    numbers = None if args.n_up is None else (args.n_up, args.n_down)
    system = hubbard(shape, t=args.t, U=args.U, boundary=args.boundary, n_per_spin=numbers)
    model = build_ansatz(ansatz_choice(args), system)
    settings = VMCSettings(n_steps=args.steps, n_samples=args.samples, learning_rate=args.lr, lr_schedule="cosine",
                           lr_final=args.lr / 10, diag_shift=args.diag_shift, solver=args.solver,
                           observables_every=50, n_samples_final=4 * args.samples, chunk_size=args.chunk_size)
    config, reference = config_of(args), None
    if exact.sector_dimension(system) > MAX_ED_STATES and numbers is None:
        found = exact.hubbard_reference_energy(shape, args.U, t=args.t, boundary=args.boundary)
        if found is not None:
            reference, config["reference"] = found
    outcome = ground_state(system, model, settings, seed=args.seed, out=str(args.out), mode=args.mode, config=config,
                           reference_energy=reference,
                           progress=not args.quiet, initial_parameters=initial_parameters(args.init_from,
                                                                                          args.init_mode))
    result = results.load(args.out)
    n = system.n_tokens
    print(f"\nHubbard {shape} U/t={args.U / args.t:g} ({args.boundary}), {args.ansatz}, {outcome.steps} steps, "
          f"{outcome.wall_time:.1f} s, n_parameters={result.ansatz.get('n_parameters')}, {args.samples} samples")
    e, err = outcome.energy.mean.real, outcome.energy.error_of_mean
    source = config.get("reference", "exact diagonalisation in the sector")
    print(f"E/site = {e / n:.7f} ± {err / n:.7f}" + (
        f", exact {outcome.exact_energy / n:.7f} ({source}), relative error {outcome.relative_error:.2e}"
        if outcome.exact_energy is not None else ""))
    print(results.format_table(results.compare_with_exact(result)))
    return result


if __name__ == "__main__":
    main()
