"""Pieces shared by the experiment scripts in `runs/`: the common command-line options and the
closing comparison table.

Every script accepts ``--out PATH`` (result file), ``--quick`` (a configuration that finishes in
under 30 s on 2 cores), ``--seed``, ``--mode fail|overwrite|resume`` and ``--quiet``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def experiment_parser(description: str, default_out: str) -> argparse.ArgumentParser:
    """An argument parser with the options every experiment script shares."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, default=Path(default_out), help="result file (HDF5)")
    parser.add_argument("--quick", action="store_true", help="small configuration that runs in < 30 s on 2 cores")
    parser.add_argument("--seed", type=int, default=0, help="seed of parameters and sampler")
    parser.add_argument(
        "--mode",
        choices=("fail", "overwrite", "resume"),
        default="overwrite",
        help="what to do when the result file exists (resume continues from its checkpoint)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def add_init_options(parser: argparse.ArgumentParser) -> None:
    """--init-from RESULT.h5 [--init-mode interpolate|prefix]: start from the parameters of an earlier run."""
    group = parser.add_argument_group("initialisation")
    group.add_argument("--init-from", type=Path, default=None, metavar="RESULT",
                       help="start from the checkpointed parameters of this result file (same architecture; "
                       "another size, coupling or --dtype is fine: `ansatze.transfer`)")
    group.add_argument("--init-mode", choices=("interpolate", "prefix"), default="interpolate",
                       help="how site-indexed tables follow a change of size (see ansatze.transfer)")


def initial_parameters(args: argparse.Namespace) -> Callable[[Any], Any] | None:
    """The map fresh parameters -> starting parameters chosen by `add_init_options` (None: keep them)."""
    if getattr(args, "init_from", None) is None:
        return None
    from ansatze.transfer import transfer_parameters
    from nqs.results import load_parameters

    trained = load_parameters(args.init_from)
    return lambda fresh: transfer_parameters(trained, fresh, mode=args.init_mode)


def config_of(args: argparse.Namespace) -> dict:
    """The parsed arguments as a JSON-serialisable dict (stored as the run's config)."""
    return json.loads(json.dumps(vars(args), default=str))


ANSATZE = ("transformer", "rnn", "rnn2d", "rbm", "mps")
SYMMETRIES = ("none", "translations", "point", "space")


def add_ansatz_options(
    parser: argparse.ArgumentParser, *, ansatz: str = "transformer", layers: int = 1, features: int = 16, heads: int = 2
) -> None:
    """--ansatz transformer|rnn|rnn2d|rbm|mps and its size: --layers, --features (Transformer width, RNN hidden
    units), --heads (Transformer), --cell gru|lstm (1D-path RNN), --order and --patch (Transformer on a
    lattice), --alpha (RBM hidden-unit density), --bond-dim/--mps-noise (MPS), --symmetry/--spin-flip (evaluation-time symmetrisation,
    `ansatze.symmetrized`; for the RBM NetKet's `RBMSymm`), --jastrow (RBM times a pair Jastrow factor)."""
    group = parser.add_argument_group("ansatz")
    group.add_argument("--ansatz", choices=ANSATZE, default=ansatz,
                       help="autoregressive Transformer, RNN along a chain/snake path, 2D RNN (square lattices), "
                       "or NetKet's complex RBM or periodic MPS (Metropolis sampling)")
    group.add_argument("--layers", type=int, default=layers)
    group.add_argument("--features", type=int, default=features, help="Transformer width / RNN hidden units")
    group.add_argument("--heads", type=int, default=heads, help="attention heads (Transformer)")
    group.add_argument("--cell", choices=("gru", "lstm"), default="gru", help="recurrent cell (--ansatz rnn)")
    group.add_argument("--alpha", type=int, default=2, help="hidden units per site (--ansatz rbm)")
    group.add_argument("--bond-dim", type=int, default=8,
                       help="bond dimension χ (--ansatz mps; a power of 2 puts every bond state in the start's register, "
                       "other values leave the rest to --mps-noise)")
    group.add_argument("--mps-cell", type=int, default=1,
                       help="sites per MPS unit cell with --symmetry translations (2: a Néel-ordered start)")
    group.add_argument("--mps-noise", type=float, default=0.0,
                       help="standard deviation of complex noise added to the MPS start (--ansatz mps)")
    group.add_argument("--order", choices=("raster", "snake", "chain"), default=None,
                       help="Transformer path on a 2D lattice (default raster with 2D positions; chain on 1D)")
    group.add_argument("--patch", type=int, nargs=2, default=None, metavar=("PX", "PY"),
                       help="Transformer tokens of PX×PY sites (2D lattices)")
    group.add_argument("--symmetry", choices=SYMMETRIES, default="none",
                       help="symmetrise |ψ|² over the lattice's translations, point group or space group")
    group.add_argument("--spin-flip", action="store_true", help="also symmetrise over the global spin flip")
    group.add_argument("--jastrow", action="store_true",
                       help="times a two-body Jastrow factor, one parameter per pair orbit of --symmetry "
                       "(--ansatz rbm; `ansatze.jastrow`)")
    add_dtype_option(group)


def add_dtype_option(group) -> None:
    """--dtype float64|float32: precision of the parameters and activations (float32 runs the Transformer's
    forward pass ~1.7× faster on a CPU; log ψ then carries ~1e-7 relative rounding)."""
    group.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                       help="parameter/activation precision of the ansatz (default %(default)s)")


def param_dtype(args: argparse.Namespace, *, complex_: bool = False):
    """The numpy dtype chosen by --dtype (its complex counterpart for complex-parameter models)."""
    import numpy as np

    name = getattr(args, "dtype", "float64")
    if complex_:
        return np.complex64 if name == "float32" else np.complex128
    return np.dtype(name).type


def build_ansatz(args: argparse.Namespace, system, *, initial_distribution=None, phase: bool = True,
                 sign_sites=None):
    """The ansatz chosen by `add_ansatz_options` for `system` (its Hilbert space, graph and constraint).

    On a 2D lattice (a `Grid` graph with two extents) the RNN follows the snake path and the Transformer
    the --order path (raster by default) with 2D position encodings; ``rnn2d`` needs a 2D lattice.
    `sign_sites` builds a Marshall sign into the base model (`ansatze.sign_rules`). With --symmetry or
    --spin-flip the base model is wrapped in `ansatze.symmetrized.Symmetrized` over the group of
    ``system.graph``. ``rbm`` is NetKet's complex (holomorphic) `nk.models.RBM`, or `nk.models.RBMSymm` over
    the --symmetry group; it is not autoregressive (`nqs.vmc.make_state` samples it by Metropolis), refuses
    `sign_sites` and constraints, and ignores `initial_distribution`: a product start is prepared by a fit
    (`dynamics.quench.ground_state_variables`). ``mps`` is a periodic MPS of bond dimension --bond-dim started
    exactly at |→⟩ (`ansatze.mps.product_start_mps`: `BlockMPS` with one tensor per --mps-cell sites under
    --symmetry translations, rings only, else NetKet's `MPSPeriodic`; holomorphic, Metropolis-sampled, no
    constraints). With --spin-flip the RBM has no biases, which makes it exactly even under σ → −σ (instead of
    the evaluation-time symmetrisation of the autoregressive ansätze); --jastrow multiplies it by `ansatze.jastrow.WithJastrow` over the same group (J = 0 at the start).
    """
    from ansatze import AR2DRNN, ARRNN, ARTransformer
    from ansatze.symmetrized import Symmetrized
    from nqs.symmetry import symmetry_group

    if getattr(args, "jastrow", False) and args.ansatz != "rbm":
        raise ValueError("--jastrow needs --ansatz rbm: the factor breaks an autoregressive model's normalisation")
    if args.ansatz in ("rbm", "mps"):
        if sign_sites is not None:
            raise ValueError(f"--ansatz {args.ansatz} has no built-in sign rule; rotate the Hamiltonian instead")
        if system.constraint is not None:
            raise ValueError(f"--ansatz {args.ansatz} cannot keep the constraint {system.constraint.describe()} "
                             "(its Metropolis sampler leaves the sector); use an autoregressive ansatz")
        return _rbm(args, system) if args.ansatz == "rbm" else _mps(args, system)

    common = {"constraint": system.constraint, "phase": phase, "initial_distribution": initial_distribution,
              "sign_sites": sign_sites, "param_dtype": param_dtype(args)}
    extent = getattr(system.graph, "extent", None)
    shape = tuple(int(v) for v in extent) if extent is not None and len(extent) == 2 else None
    order = getattr(args, "order", None)
    patch = getattr(args, "patch", None)
    if args.ansatz == "transformer":
        lattice = {}
        if shape is not None and order != "chain":
            lattice = {"order": order or "raster", "shape": shape, "patch": tuple(patch) if patch else None}
        elif patch:
            raise ValueError("--patch needs a 2D lattice and a raster or snake --order")
        model = ARTransformer(system.hilbert, layers=args.layers, features=args.features, heads=args.heads,
                              **lattice, **common)
    elif args.ansatz == "rnn":
        path = {"order": "snake", "shape": shape} if shape else {}
        model = ARRNN(system.hilbert, hidden=args.features, cell=args.cell, layers=args.layers, **path, **common)
    elif shape is None:
        raise ValueError(f"--ansatz rnn2d needs a 2D lattice; the system's graph is {system.graph}")
    else:
        model = AR2DRNN(system.hilbert, hidden=args.features, shape=shape, **common)
    symmetry = getattr(args, "symmetry", "none")
    spin_flip = getattr(args, "spin_flip", False)
    if symmetry == "none" and not spin_flip:
        return model
    n = system.hilbert.size
    group = [list(range(n))] if symmetry == "none" else symmetry_group(system.graph, symmetry)
    return Symmetrized(model, group, spin_flip=spin_flip)


def is_holomorphic(args: argparse.Namespace) -> bool | None:
    """True for the ansatz chosen in `args` when it is holomorphic in complex parameters (``rbm``, ``mps``), so SR and
    TDVP can build the QGT from the complex Jacobian; None (NetKet decides) for the autoregressive ansätze."""
    return True if args.ansatz in ("rbm", "mps") else None


def _rbm(args: argparse.Namespace, system):
    import netket as nk
    import numpy as np
    from netket.utils import HashableArray

    from nqs.symmetry import symmetry_group

    symmetry = getattr(args, "symmetry", "none")
    # --spin-flip: no visible or hidden biases, so log ψ(σ) = Σ_j log cosh((Wσ)_j) is even, ψ(−σ) = ψ(σ)
    # exactly (the Z2-even sector of a TFIM quench from |→⟩); W = 0 is the product state |→⟩
    biases = not getattr(args, "spin_flip", False)
    common = {"alpha": args.alpha, "param_dtype": param_dtype(args, complex_=True), "use_visible_bias": biases,
              "use_hidden_bias": biases}
    n = system.hilbert.size
    if symmetry == "none":
        group, model = np.arange(n)[None], nk.models.RBM(**common)
    else:
        group = np.asarray(symmetry_group(system.graph, symmetry))
        model = nk.models.RBMSymm(symmetries=HashableArray(group), **common)
    if not getattr(args, "jastrow", False):
        return model
    from ansatze.jastrow import WithJastrow

    return WithJastrow(model, HashableArray(group), param_dtype=common["param_dtype"])


def _mps(args: argparse.Namespace, system):
    from ansatze.mps import product_start_mps

    if getattr(args, "spin_flip", False):
        raise ValueError("--spin-flip is not available for --ansatz mps")
    symmetry = getattr(args, "symmetry", "none")
    extent = getattr(system.graph, "extent", None)
    ring = len(extent if extent is not None else ()) == 1 and all(getattr(system.graph, "pbc", [False]))
    if symmetry not in ("none", "translations") or (symmetry == "translations" and not ring):
        raise ValueError("--ansatz mps is translation invariant only on a ring (--symmetry translations on a 1D "
                         f"chain); got --symmetry {symmetry} on {system.graph}")
    cell = args.mps_cell if symmetry == "translations" else None
    return product_start_mps(system.hilbert, args.bond_dim, cell=cell, noise=args.mps_noise,
                             param_dtype=param_dtype(args, complex_=True))


def build_povm_state(args: argparse.Namespace, n_sites: int, site_rho, paths=None):
    """The variational state of the POVM scripts: an autoregressive Transformer over the 4 tetrahedral-POVM
    outcomes per site (--layers, --features, --heads; log P, machine_pow = 1) started in the product
    distribution of the single-site density matrix `site_rho`, a String State over `paths` (K, N) when
    given; `FullSumState` for args.samples == 0, else an `MCState` with exact samples."""
    import netket as nk
    import numpy as np

    from ansatze import ARTransformer
    from ansatze.string_states import StringStates, StringStatesSampler
    from nqs.povm import POVM, probabilities

    hi = nk.hilbert.Fock(n_max=3, N=n_sites)
    start = tuple(float(p) for p in probabilities(np.asarray(site_rho, dtype=complex), POVM.tetrahedral(), 1))
    model = ARTransformer(hi, layers=args.layers, features=args.features, heads=args.heads, phase=False,
                          machine_pow=1, initial_distribution=start, param_dtype=param_dtype(args))
    if paths is not None:
        model = StringStates(model, paths)
    if args.samples == 0:
        return nk.vqs.FullSumState(hi, model, seed=args.seed)
    sampler = StringStatesSampler(hi) if paths is not None else nk.sampler.ARDirectSampler(hi)
    return nk.vqs.MCState(sampler, model, n_samples=args.samples, seed=args.seed, sampler_seed=args.seed + 1)
