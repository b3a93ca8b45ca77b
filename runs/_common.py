"""Options every experiment script in `runs/` shares, and their conversion into the library's typed values.

Every script accepts ``--out PATH`` (result file), ``--quick`` (a configuration that finishes in under 30 s on 2
cores), ``--seed``, ``--mode fail|overwrite|resume`` (default fail: an existing file is refused, as the API does)
and ``--quiet``; it calls `check_output` before it builds a system, an exact reference or a model. The ansatz
options become an `ansatze.choice.AnsatzChoice`, the initialisation options a parameter map, and the POVM
scripts' state is built by `build_povm_state` from typed arguments.

Bad input ends as one line on stderr and exit code 2, never a traceback: numbers are checked as they are parsed
(`finite_float`, `positive_int`, `sample_count`, ...), and a script's ``main`` decorated with `script` turns a
ValueError or OSError raised later (by a builder, the run layer, a file) into the same one-line error
(``NQS_TRACEBACK=1`` shows the traceback instead). ``--quick`` changes the defaults only
(`ExperimentParser.parse`): options given explicitly keep their values.

Scripts import this module as ``from _common import ...``: Python searches a script's own folder first.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import nqs  # noqa: F401  (enables 64-bit floats: scripts import this module before the library)
from ansatze.choice import CELLS, DTYPES, KINDS, NETWORKS, ORDERS, SYMMETRIES, VARIANTS, AnsatzChoice
from nqs import results
from nqs import run as run_layer
from nqs.result_file import MODES, ResultFileError
from nqs.vmc import MIN_SAMPLES

# a run whose fidelity to the exact state fell below 0.9, or whose observables left the exact ones by more than 0.1
# (observables of spin-1/2 units and densities are O(1)), has lost the physics: the tables say so
LOST_INFIDELITY = 0.1
LOST_DEVIATION = 0.1


class ExperimentParser(argparse.ArgumentParser):
    """An argument parser whose `parse` applies the ``--quick`` configuration as defaults, and whose errors are one
    line (argparse prints the usage first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (--help lists the options)\n")

    def parse(self, argv: Sequence[str] | None, *, quick: Mapping[str, Any]) -> argparse.Namespace:
        """Parse `argv`; with ``--quick`` the values `quick` replace the defaults first, so an option given
        explicitly (``--quick --L 8``) keeps its value."""
        if "--quick" in (sys.argv[1:] if argv is None else argv):
            self.set_defaults(**quick)
        return self.parse_args(argv)


def script(main: Callable[[Sequence[str] | None], Any]) -> Callable[[Sequence[str] | None], Any]:
    """Decorate a script's ``main(argv)``: a ValueError or OSError (bad input found after parsing: a builder's check,
    an unusable output path, a result file of another kind) ends as ``<script>: error: <message>`` on one line of
    stderr and SystemExit(2), as argparse's own errors do. ``NQS_TRACEBACK=1`` re-raises it with its traceback."""
    name = Path(inspect.getsourcefile(main) or "script").name

    @functools.wraps(main)
    def checked(argv: Sequence[str] | None = None) -> Any:
        try:
            return main(argv)
        except (ValueError, OSError) as err:
            if os.environ.get("NQS_TRACEBACK"):
                raise
            message = " ".join(str(err).split()) or type(err).__name__
            print(f"{name}: error: {message}", file=sys.stderr)
            raise SystemExit(2) from None

    return checked


def _number(convert: Callable[[str], Any], accept: Callable[[Any], bool], requirement: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {requirement}, got {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"must be {requirement}, got {text}")
        return value

    parse.__name__ = requirement
    return parse


finite_float = _number(float, math.isfinite, "a finite number")
positive_float = _number(float, lambda x: math.isfinite(x) and x > 0, "a finite number > 0")
nonnegative_float = _number(float, lambda x: math.isfinite(x) and x >= 0, "a finite number >= 0")
positive_int = _number(int, lambda n: n >= 1, "an integer >= 1")
nonnegative_int = _number(int, lambda n: n >= 0, "an integer >= 0")
sample_count = _number(int, lambda n: n == 0 or n >= MIN_SAMPLES,
                       f"0 (exact sum) or an integer >= {MIN_SAMPLES} (NetKet's error bars need {MIN_SAMPLES})")


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= `minimum`."""
    return _number(int, lambda n: n >= minimum, f"an integer >= {minimum}")


def experiment_parser(description: str, default_out: str) -> ExperimentParser:
    """An argument parser with the options every experiment script shares."""
    parser = ExperimentParser(description=description)
    parser.add_argument("--out", type=Path, default=Path(default_out), help="result file (HDF5)")
    parser.add_argument("--quick", action="store_true", help="small configuration that runs in < 30 s on 2 cores")
    parser.add_argument("--seed", type=nonnegative_int, default=0, help="seed of parameters and sampler")
    parser.add_argument("--mode", choices=MODES, default="fail",
                        help="what to do when the result file exists: refuse (default), replace it, or continue "
                        "from its checkpoint")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def check_output(path: Path, mode: str, kind: str) -> None:
    """Refuse an output file that `mode` may not touch, before anything expensive is built (`nqs.run.check_output`,
    with the script's options named in the message).

    Raises:
        ValueError: mode "fail" and `path` exists, mode "resume" and `path` is not an nqs result of this kind, or
            the folder of `path` does not exist (`script` turns it into a one-line error).
    """
    if not path.parent.is_dir():
        raise ValueError(f"--out {path}: the folder {path.parent} does not exist")
    try:
        run_layer.check_output(kind, path, mode)
    except FileExistsError as err:
        raise ValueError(f"--out {path} exists: pass --mode overwrite to replace it, --mode resume to continue "
                         "it, or choose another --out") from err
    except ResultFileError as err:
        raise ValueError(f"cannot resume --out {path}: {err}") from err


def config_of(args: argparse.Namespace) -> dict[str, Any]:
    """The parsed arguments as a JSON-serialisable dict (stored as the run's config)."""
    return json.loads(json.dumps(vars(args), default=str))


def add_init_options(parser: argparse.ArgumentParser) -> None:
    """--init-from RESULT.h5 [--init-mode interpolate|prefix]: start from the parameters of an earlier run."""
    group = parser.add_argument_group("initialisation")
    group.add_argument("--init-from", type=Path, default=None, metavar="RESULT",
                       help="start from the checkpointed parameters of this result file (same architecture; "
                       "another size, coupling or --dtype is fine: `ansatze.transfer`)")
    group.add_argument("--init-mode", choices=("interpolate", "prefix"), default="interpolate",
                       help="how site-indexed tables follow a change of size (see ansatze.transfer)")


def initial_parameters(init_from: Path | None, mode: str) -> Callable[[Any], Any] | None:
    """The map fresh parameters -> the parameters of the result file `init_from` transferred to their shapes by
    `ansatze.transfer.transfer_parameters` in `mode`; None (keep the fresh ones) without a file."""
    if init_from is None:
        return None
    from ansatze.transfer import transfer_parameters

    trained = results.load_parameters(init_from)
    return lambda fresh: transfer_parameters(trained, fresh, mode=mode)


def add_ansatz_options(
    parser: argparse.ArgumentParser, *, ansatz: str = "transformer", layers: int = 1, features: int = 16, heads: int = 2
) -> None:
    """--ansatz transformer|rnn|rnn2d|rbm|mps|antn|slater|backflow and its size: --layers, --features (Transformer
    width, RNN hidden units, backflow hidden units), --heads (Transformer), --cell gru|lstm (1D-path RNN), --order and
    --patch (Transformer on a lattice), --alpha (RBM hidden-unit density), --bond-dim/--mps-cell/--mps-noise (MPS),
    --network/--variant (ANTN), --determinants (Slater), --symmetry/--spin-flip (symmetrisation; for the RBM
    NetKet's `RBMSymm`), --jastrow (RBM times a pair Jastrow factor), --dtype.
    `ansatz_choice` turns them into an `AnsatzChoice` (see `ansatze.choice`)."""
    group = parser.add_argument_group("ansatz")
    group.add_argument("--ansatz", choices=KINDS, default=ansatz,
                       help="autoregressive Transformer, RNN along a chain/snake path, 2D RNN (square lattices), "
                       "or NetKet's complex RBM or periodic MPS (Metropolis sampling)")
    group.add_argument("--layers", type=positive_int, default=layers)
    group.add_argument("--features", type=positive_int, default=features, help="Transformer width / RNN hidden units")
    group.add_argument("--heads", type=positive_int, default=heads, help="attention heads (Transformer)")
    group.add_argument("--cell", choices=CELLS, default="gru", help="recurrent cell (--ansatz rnn)")
    group.add_argument("--alpha", type=positive_int, default=2, help="hidden units per site (--ansatz rbm)")
    group.add_argument("--bond-dim", type=positive_int, default=8,
                       help="bond dimension χ (--ansatz mps or antn; for mps a power of 2 puts every bond state in "
                       "the start's register, other values leave the rest to --mps-noise)")
    group.add_argument("--network", choices=NETWORKS, default="transformer", help="the ANTN's network (--ansatz antn)")
    group.add_argument("--variant", choices=VARIANTS, default="blockwise",
                       help="the ANTN's modulation of the MPS tensors (--ansatz antn)")
    group.add_argument("--determinants", type=positive_int, default=1,
                       help="Slater determinants (--ansatz slater; > 1: NetKet's MultiSlater2nd)")
    group.add_argument("--mps-cell", type=positive_int, default=1,
                       help="sites per MPS unit cell with --symmetry translations (2: a Néel-ordered start)")
    group.add_argument("--mps-noise", type=nonnegative_float, default=0.0,
                       help="standard deviation of complex noise added to the MPS start (--ansatz mps)")
    group.add_argument("--order", choices=ORDERS, default=None,
                       help="Transformer path on a 2D lattice (default raster with 2D positions; chain on 1D)")
    group.add_argument("--patch", type=positive_int, nargs=2, default=None, metavar=("PX", "PY"),
                       help="Transformer tokens of PX×PY sites (2D lattices)")
    group.add_argument("--symmetry", choices=SYMMETRIES, default="none",
                       help="symmetrise |ψ|² over the lattice's translations, point group or space group")
    group.add_argument("--spin-flip", action="store_true", help="also symmetrise over the global spin flip")
    group.add_argument("--jastrow", action="store_true",
                       help="times a two-body Jastrow factor, one parameter per pair orbit of --symmetry "
                       "(--ansatz rbm; `ansatze.jastrow`)")
    add_dtype_option(group)


def ansatz_choice(args: argparse.Namespace) -> AnsatzChoice:
    """The `AnsatzChoice` of the options added by `add_ansatz_options`."""
    return AnsatzChoice(
        kind=args.ansatz, layers=args.layers, features=args.features, heads=args.heads, cell=args.cell,
        alpha=args.alpha, bond_dim=args.bond_dim, network=args.network, variant=args.variant,
        mps_cell=args.mps_cell, mps_noise=args.mps_noise, determinants=args.determinants, order=args.order,
        patch=tuple(args.patch) if args.patch else None, symmetry=args.symmetry, spin_flip=args.spin_flip,
        jastrow=args.jastrow, dtype=args.dtype,
    )


def add_povm_dynamics_options(parser: argparse.ArgumentParser, *, T: float, dt: float, samples: int,
                              layers: int = 1, features: int = 16, heads: int = 2) -> argparse._ArgumentGroup:
    """The options of the POVM Lindblad dynamics scripts: --method trapezoid|tdvp, --strict, --T, --dt, --n-save,
    --samples, --obs-samples, and the POVM Transformer's --layers/--features/--heads/--dtype (returned as a group,
    for the script's own model options)."""
    parser.add_argument("--method", choices=("trapezoid", "tdvp"), default="trapezoid")
    add_strict_option(parser)
    parser.add_argument("--T", type=positive_float, default=T, help="final time")
    parser.add_argument("--dt", type=positive_float, default=dt, help="time step (trapezoid: 2τ of Luo et al.)")
    parser.add_argument("--n-save", type=at_least(2), default=11, help="save points in [0, T], both ends included")
    parser.add_argument("--samples", type=sample_count, default=samples,
                        help="samples per iteration (0: exact sum, N ≤ 9)")
    parser.add_argument("--obs-samples", type=positive_int, default=20000,
                        help="samples for the observables at save points")
    model = parser.add_argument_group("POVM Transformer")
    model.add_argument("--layers", type=positive_int, default=layers)
    model.add_argument("--features", type=positive_int, default=features)
    model.add_argument("--heads", type=positive_int, default=heads)
    add_dtype_option(model)
    return model


def print_dynamics_comparison(result: results.Result, header: str, *, strict: bool = False) -> None:
    """`header`, the table of the final values against the exact reference, and max_t |Δ obs| of every observable
    with an exact trajectory (the POVM dynamics scripts' summary); `check_tracking` of the largest deviation."""
    print(header)
    print(results.format_table(results.compare_with_exact(result)))
    deviations = results.max_deviation(result)
    for name, value in deviations.items():
        print(f"max_t |Δ {name}| = {value:.2e}")
    if deviations:
        name = max(deviations, key=lambda k: deviations[k])
        check_tracking(deviations[name] <= LOST_DEVIATION,
                       f"max_t |Δ {name}| = {deviations[name]:.2e} > {LOST_DEVIATION}", strict=strict)


def add_strict_option(parser: argparse._ActionsContainer) -> None:
    """--strict: exit with code 3 when the run lost the exact reference (`check_tracking`)."""
    parser.add_argument("--strict", action="store_true",
                        help="exit with code 3 when the variational run lost the exact reference (the table warns "
                        "in any case)")


def check_tracking(tracked: bool, what: str, *, strict: bool) -> None:
    """Say loudly when a run lost its exact reference (`what`: the failed measure): a WARNING line under the table,
    and with `strict` the message on stderr and SystemExit(3) (the result file is complete either way)."""
    if tracked:
        return
    message = (f"WARNING: the variational run lost the exact reference ({what}): its numbers are not the physics; "
               "try a smaller --dt, another regularisation or a larger ansatz")
    print(message)
    if strict:
        print(message, file=sys.stderr)
        raise SystemExit(3)


def add_dtype_option(group: argparse._ActionsContainer) -> None:
    """--dtype float64|float32: precision of the parameters and activations (float32 runs the Transformer's
    forward pass faster on a CPU; log ψ then carries ~1e-7 relative rounding)."""
    group.add_argument("--dtype", choices=DTYPES, default="float64",
                       help="parameter/activation precision of the ansatz (default %(default)s)")


def build_povm_state(
    n_sites: int, site_rho: Any, *, layers: int, features: int, heads: int, samples: int, seed: int,
    dtype: str = "float64", paths: Sequence[Sequence[int]] | None = None,
) -> Any:
    """The variational state of the POVM scripts: an autoregressive Transformer over the 4 tetrahedral-POVM
    outcomes per site (log P, machine_pow = 1) started in the product distribution of the single-site density
    matrix `site_rho`, a String State over `paths` (K, N) when given; `FullSumState` for ``samples == 0``, else an
    `MCState` with exact samples (parameters seeded by `seed`, the sampler by ``seed + 1``; local values by prefix
    reuse, `nqs.states.mc_state`)."""
    import netket as nk
    import numpy as np

    from ansatze import ARTransformer
    from ansatze.choice import param_dtype
    from ansatze.string_states import StringStates, StringStatesSampler
    from nqs.povm import POVM, probabilities
    from nqs.states import mc_state

    hi = nk.hilbert.Fock(n_max=3, N=n_sites)
    start = tuple(float(p) for p in probabilities(np.asarray(site_rho, dtype=complex), POVM.tetrahedral(), 1))
    model = ARTransformer(hi, layers=layers, features=features, heads=heads, phase=False, machine_pow=1,
                          initial_distribution=start, param_dtype=param_dtype(dtype))
    if paths is not None:
        model = StringStates(model, paths)
    if samples == 0:
        return nk.vqs.FullSumState(hi, model, seed=seed)
    sampler = StringStatesSampler(hi) if paths is not None else nk.sampler.ARDirectSampler(hi)
    return mc_state(sampler, model, n_samples=samples, seed=seed, sampler_seed=seed + 1)
