"""An ansatz named by a typed choice: `AnsatzChoice` (kind and size) and `build_ansatz` for a `System`.

The experiment scripts turn their ``--ansatz`` options into an `AnsatzChoice`; `build_ansatz` composes the Flax
module from the system's Hilbert space, graph and constraint:

* ``transformer``: `ARTransformer`; on a 2D lattice (a `Grid` with two extents) along ``order`` (raster by
  default, or snake) with 2D position encodings, optionally with ``patch`` tokens; ``order="chain"`` keeps the
  1D path.
* ``rnn``: `ARRNN` with a GRU or LSTM ``cell``, along the snake path on a 2D lattice.
* ``rnn2d``: `AR2DRNN` (2D lattices only).
* ``rbm``: NetKet's complex (holomorphic) `RBM`, or `RBMSymm` over the ``symmetry`` group; not autoregressive
  (Metropolis sampling, `nqs.states.make_state`), so it refuses sign rules and constraints and ignores an
  initial distribution (a product start is prepared by a VMC fit). With ``spin_flip`` it has no biases, which
  makes it exactly even under σ → −σ; ``jastrow`` multiplies it by `ansatze.jastrow.WithJastrow` over the same
  group (J = 0 at the start).
* ``antn``: `ansatze.antn.TransformerANTN` (``network="transformer"``) or `RNNANTN` (``"rnn"``, a GRU/LSTM
  ``cell``), the ``variant`` "blockwise" or "elementwise", bond dimension ``bond_dim``; on a 2D lattice along the
  snake path (the path of its MPS; ``order`` may choose raster). Start it from DMRG with `ansatze.dmrg`.
* ``mps``: a periodic MPS of bond dimension ``bond_dim`` started exactly at ψ = 1 (`ansatze.mps.product_start_mps`):
  `BlockMPS` with one tensor per ``mps_cell`` sites under ``symmetry="translations"`` (rings only), else
  NetKet's `MPSPeriodic`; holomorphic, Metropolis-sampled, no constraints.
* ``slater``: NetKet's spin-conserving unrestricted `Slater2nd` (``determinants`` > 1: `MultiSlater2nd`) on the
  sector's space of a spinful-fermion system with fixed N↑, N↓ (`System.sector_hilbert()`); Metropolis with
  same-spin hops (`nqs.states.sector_rule`).
* ``backflow``: `ansatze.backflow.NeuralBackflow` (configuration-dependent orbitals, ``layers`` hidden layers of
  ``features`` units), on the same space and sampler as ``slater``.

For the autoregressive kinds, ``symmetry`` or ``spin_flip`` wraps the model in `ansatze.symmetrized.Symmetrized`
over the group of ``system.graph`` (|ψ|² symmetrised at evaluation time, exact sampling kept).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from nqs.system import System

KINDS = ("transformer", "rnn", "rnn2d", "rbm", "mps", "antn", "slater", "backflow")
SYMMETRIES = ("none", "translations", "point", "space")
CELLS = ("gru", "lstm")
ORDERS = ("raster", "snake", "chain")
DTYPES = ("float64", "float32")
NETWORKS = ("transformer", "rnn")
VARIANTS = ("blockwise", "elementwise")


@dataclasses.dataclass(frozen=True)
class AnsatzChoice:
    """Which ansatz and its size.

    Attributes:
        kind: one of `KINDS`.
        layers: Transformer blocks / RNN layers.
        features: Transformer width / RNN hidden units.
        heads: attention heads (transformer).
        cell: recurrent cell, "gru" or "lstm" (rnn).
        alpha: hidden units per site (rbm).
        bond_dim: bond dimension χ (mps, antn).
        network: the ANTN's autoregressive network, "transformer" or "rnn" (antn).
        variant: the ANTN's modulation, "blockwise" or "elementwise" (antn).
        mps_cell: sites per MPS unit cell under translations (mps; 2 for a Néel-ordered start).
        mps_noise: standard deviation of the complex noise added to the MPS start (mps).
        determinants: the number of Slater determinants (slater).
        order: Transformer path on a 2D lattice ("raster", "snake" or "chain"; None: raster on 2D, chain on 1D).
        patch: Transformer tokens of (PX, PY) sites (2D lattices).
        symmetry: lattice group of the symmetrisation, one of `SYMMETRIES`.
        spin_flip: also symmetrise over the global spin flip.
        jastrow: multiply the RBM by a two-body Jastrow factor (rbm).
        dtype: parameter and activation precision, "float64" or "float32".
    """

    kind: str = "transformer"
    layers: int = 1
    features: int = 16
    heads: int = 2
    cell: str = "gru"
    alpha: int = 2
    bond_dim: int = 8
    network: str = "transformer"
    variant: str = "blockwise"
    mps_cell: int = 1
    mps_noise: float = 0.0
    determinants: int = 1
    order: str | None = None
    patch: tuple[int, int] | None = None
    symmetry: str = "none"
    spin_flip: bool = False
    jastrow: bool = False
    dtype: str = "float64"

    def __post_init__(self) -> None:
        for name, allowed in (("kind", KINDS), ("cell", CELLS), ("symmetry", SYMMETRIES), ("dtype", DTYPES),
                              ("order", ORDERS + (None,)), ("network", NETWORKS), ("variant", VARIANTS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; choose one of {allowed}")
        if self.patch is not None:
            object.__setattr__(self, "patch", tuple(int(p) for p in self.patch))


def param_dtype(dtype: str, *, complex_: bool = False) -> Any:
    """The numpy scalar type of the precision `dtype` ("float64" or "float32"), or its complex counterpart."""
    if complex_:
        return np.complex64 if dtype == "float32" else np.complex128
    return np.dtype(dtype).type


def is_holomorphic(choice: AnsatzChoice) -> bool | None:
    """True when the ansatz is holomorphic in complex parameters (``rbm``, ``mps``), so SR and TDVP can build the
    QGT from the complex Jacobian; None (NetKet decides) for the autoregressive ansätze."""
    return True if choice.kind in ("rbm", "mps") else None


def build_ansatz(choice: AnsatzChoice, system: System, *, initial_distribution: Any = None, phase: bool = True,
                 sign_sites: Any = None) -> Any:
    """The Flax module of `choice` for `system` (its Hilbert space, graph and constraint); see the module docstring.

    `initial_distribution` starts an autoregressive model in a product distribution (`ansatze.product_start`),
    `phase` gives it a phase head, and `sign_sites` builds a Marshall sign into it (`ansatze.sign_rules`).

    Raises:
        ValueError: a combination the ansatz cannot represent (a Jastrow factor on an autoregressive model, a sign
            rule or a constraint on the RBM or MPS, an ``rnn2d`` or ``patch`` off a 2D lattice, a symmetry the MPS
            cannot keep).
    """
    if choice.jastrow and choice.kind != "rbm":
        raise ValueError("a Jastrow factor needs kind 'rbm': it breaks an autoregressive model's normalisation")
    if choice.kind in ("rbm", "mps"):
        if sign_sites is not None:
            raise ValueError(f"the {choice.kind} ansatz has no built-in sign rule; rotate the Hamiltonian instead")
        if system.constraint is not None:
            raise ValueError(f"the {choice.kind} ansatz cannot keep the constraint {system.constraint.describe()} "
                             "(its Metropolis sampler leaves the sector); use an autoregressive ansatz")
        return _rbm(choice, system) if choice.kind == "rbm" else _mps(choice, system)
    if choice.kind in ("slater", "backflow"):
        if sign_sites is not None or choice.symmetry != "none" or choice.spin_flip:
            raise ValueError(f"the {choice.kind} ansatz takes no sign rule or symmetrisation")
        return _determinant(choice, system)
    model = _autoregressive(choice, system, initial_distribution=initial_distribution, phase=phase,
                            sign_sites=sign_sites)
    if choice.symmetry == "none" and not choice.spin_flip:
        return model
    from ansatze.symmetrized import Symmetrized
    from nqs.symmetry import symmetry_group

    n = system.hilbert.size
    group = [list(range(n))] if choice.symmetry == "none" else symmetry_group(system.graph, choice.symmetry)
    return Symmetrized(model, group, spin_flip=choice.spin_flip)


def _lattice_shape(system: System) -> tuple[int, int] | None:
    """(Lx, Ly) of a 2D lattice, None otherwise."""
    extent = getattr(system.graph, "extent", None)
    return tuple(int(v) for v in extent) if extent is not None and len(extent) == 2 else None


def _autoregressive(choice: AnsatzChoice, system: System, *, initial_distribution: Any, phase: bool,
                    sign_sites: Any) -> Any:
    from ansatze import AR2DRNN, ARRNN, ARTransformer
    from ansatze.antn import RNNANTN, TransformerANTN

    common = {"constraint": system.constraint, "phase": phase, "initial_distribution": initial_distribution,
              "sign_sites": sign_sites, "param_dtype": param_dtype(choice.dtype),
              "tokens": None if system.token_map.is_identity else system.token_map}  # gauge blocks, orbitals
    shape = _lattice_shape(system)
    if choice.kind == "antn":
        path = {"order": choice.order or "snake", "shape": shape} if shape and choice.order != "chain" else {}
        antn = {"bond_dim": choice.bond_dim, "variant": choice.variant, **path, **common}
        if choice.network == "rnn":
            return RNNANTN(system.hilbert, hidden=choice.features, cell=choice.cell, layers=choice.layers, **antn)
        return TransformerANTN(system.hilbert, layers=choice.layers, features=choice.features, heads=choice.heads,
                               **antn)
    if choice.kind == "transformer":
        lattice = {}
        if shape is not None and choice.order != "chain":
            lattice = {"order": choice.order or "raster", "shape": shape, "patch": choice.patch}
        elif choice.patch:
            raise ValueError("patch tokens need a 2D lattice and a raster or snake order")
        return ARTransformer(system.hilbert, layers=choice.layers, features=choice.features, heads=choice.heads,
                             **lattice, **common)
    if choice.kind == "rnn":
        path = {"order": "snake", "shape": shape} if shape else {}
        return ARRNN(system.hilbert, hidden=choice.features, cell=choice.cell, layers=choice.layers, **path, **common)
    if shape is None:
        raise ValueError(f"the rnn2d ansatz needs a 2D lattice; the system's graph is {system.graph}")
    return AR2DRNN(system.hilbert, hidden=choice.features, shape=shape, **common)


def _determinant(choice: AnsatzChoice, system: System) -> Any:
    import netket as nk

    from ansatze.backflow import NeuralBackflow
    from nqs.fermion_sectors import spin_sector_numbers

    if spin_sector_numbers(system.token_map, system.constraint) is None:
        raise ValueError(f"the {choice.kind} ansatz needs a spinful-fermion system with fixed N_up, N_down "
                         f"(nqs.fermion_sectors.spin_sector); got constraint "
                         f"{None if system.constraint is None else system.constraint.describe()}")
    if choice.determinants < 1:
        raise ValueError(f"determinants must be >= 1, got {choice.determinants}")
    hilbert, dtype = system.sector_hilbert(), param_dtype(choice.dtype)
    if choice.kind == "backflow":
        return NeuralBackflow(hilbert, hidden=choice.features, layers=choice.layers, param_dtype=dtype)
    if choice.determinants > 1:
        return nk.models.MultiSlater2nd(hilbert, n_determinants=choice.determinants, restricted=False,
                                        param_dtype=dtype)
    return nk.models.Slater2nd(hilbert, restricted=False, param_dtype=dtype)


def _rbm(choice: AnsatzChoice, system: System) -> Any:
    import netket as nk
    from netket.utils import HashableArray

    from nqs.symmetry import symmetry_group

    # spin_flip: no visible or hidden biases, so log ψ(σ) = Σ_j log cosh((Wσ)_j) is even, ψ(−σ) = ψ(σ)
    # exactly (the Z2-even sector of a TFIM quench from |→⟩); W = 0 is the product state |→⟩
    biases = not choice.spin_flip
    common = {"alpha": choice.alpha, "param_dtype": param_dtype(choice.dtype, complex_=True),
              "use_visible_bias": biases, "use_hidden_bias": biases}
    if choice.symmetry == "none":
        group, model = np.arange(system.hilbert.size)[None], nk.models.RBM(**common)
    else:
        group = np.asarray(symmetry_group(system.graph, choice.symmetry))
        model = nk.models.RBMSymm(symmetries=HashableArray(group), **common)
    if not choice.jastrow:
        return model
    from ansatze.jastrow import WithJastrow

    return WithJastrow(model, HashableArray(group), param_dtype=common["param_dtype"])


def _mps(choice: AnsatzChoice, system: System) -> Any:
    from ansatze.mps import product_start_mps

    if choice.spin_flip:
        raise ValueError("a spin-flip symmetrisation is not available for the mps ansatz")
    extent = getattr(system.graph, "extent", None)
    ring = len(extent if extent is not None else ()) == 1 and all(getattr(system.graph, "pbc", [False]))
    if choice.symmetry not in ("none", "translations") or (choice.symmetry == "translations" and not ring):
        raise ValueError("the mps ansatz is translation invariant only on a ring (symmetry 'translations' on a 1D "
                         f"chain); got symmetry {choice.symmetry!r} on {system.graph}")
    cell = choice.mps_cell if choice.symmetry == "translations" else None
    return product_start_mps(system.hilbert, choice.bond_dim, cell=cell, noise=choice.mps_noise,
                             param_dtype=param_dtype(choice.dtype, complex_=True))
