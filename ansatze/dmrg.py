"""DMRG ground states of a `System` with TeNPy, and the ANTN start from them.

The MPO is built from the System's own Hamiltonian (NetKet's `LocalOperator` terms, not re-typed): every k-site
operator O acting on sites (i_1 … i_k) is expanded in matrix units, O = Σ_{r,c} O_{rc} E^{(i_1)}_{r_1c_1} ⊗ ⋯ ⊗
E^{(i_k)}_{r_kc_k} (E_{ab} = |a⟩⟨b| in NetKet's local-index basis), and added as a coupling term on a finite chain
whose order is the ANTN's generation path (a 2D lattice along its snake or raster path: the periodic bonds become
long-range terms of the MPO). The DMRG Hamiltonian is therefore exactly the System's, Marshall-rotated when the
System is (``system.conventions["sign_rule"]``); the energy is in the System's units.

Why TeNPy (physics-tenpy, Hauschild & Pollmann, SciPost Phys. Lect. Notes 5 (2018)) rather than quimb: TeNPy's
tensors are block-sparse in U(1) charges, so with a `U1Constraint` (the zero-magnetisation sector of the J1-J2
model) DMRG runs inside the sector, with the constraint's own charges and total; quimb's DMRG works with dense
tensors and cannot pin the sector. Each matrix unit E_{ab} carries the definite charge q_a − q_b, so the expansion is
compatible with charge conservation whenever the Hamiltonian conserves the charge.

`antn_parameters` writes the right-canonical tensors B_k (the TeNPy "B" form: Σ_v B_k^v B_k^v† = 1) into an
ANTN's base MPS, zero-padded to its bond dimension, and zeroes the ANTN heads, so the ANTN at step 0 is the DMRG
state: its energy equals the MPO expectation value of the returned MPS (tested to 1e-8).

TeNPy is an optional dependency (``pip install -e '.[dmrg]'``, installed by the README's test command).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from typing import Any

import numpy as np

from nqs.constraint import Constraint, U1Constraint
from nqs.system import System


@dataclasses.dataclass(frozen=True)
class DMRGResult:
    """A DMRG ground state.

    Attributes:
        energy: ⟨H⟩ of the MPS (the MPO expectation value), in the System's units.
        tensors: right-canonical B_k, k along `path`, each (χ_left, d, χ_right) with the physical index in NetKet's
            local-index order.
        path: the system's sites in MPS order.
        truncation_error: the largest discarded weight of the last sweep.
        conserved: the U(1) charges DMRG conserved (the constraint's charges), or None.
        sweeps: DMRG sweeps performed.
    """

    energy: float
    tensors: tuple[np.ndarray, ...]
    path: tuple[int, ...]
    truncation_error: float
    conserved: tuple[int, ...] | None
    sweeps: int

    @property
    def bond_dims(self) -> tuple[int, ...]:
        return tuple(int(b.shape[2]) for b in self.tensors[:-1])


def _require_tenpy():
    try:
        import tenpy  # noqa: F401
    except ImportError as err:  # pragma: no cover - the test extra installs it
        raise ImportError("DMRG needs TeNPy: pip install -e '.[dmrg]' (the package physics-tenpy)") from err


def _site(d: int, charges: tuple[int, ...] | None):
    """A TeNPy site of d local states in NetKet's order with the matrix units E{a}_{b} as operators."""
    from tenpy.linalg import np_conserved as npc
    from tenpy.networks.site import Site

    if charges is None:
        leg = npc.LegCharge.from_trivial(d)
    else:
        leg = npc.LegCharge.from_qflat(npc.ChargeInfo([1], ["U1"]), [[q] for q in charges])
    site = Site(leg, [str(a) for a in range(d)], sort_charge=False)
    for a, b in itertools.product(range(d), repeat=2):
        unit = np.zeros((d, d))
        unit[a, b] = 1.0
        site.add_op(f"E{a}_{b}", unit)
    return site


def _local_operator(system: System):
    import netket as nk

    op = system.hamiltonian
    if not isinstance(op, nk.operator.LocalOperator):
        op = op.to_local_operator()
    return op


def _mpo_model(system: System, path: tuple[int, ...], site):
    """TeNPy model of the System's Hamiltonian on a finite chain in the order `path` (module docstring)."""
    from tenpy.models.lattice import Chain
    from tenpy.models.model import CouplingModel, MPOModel

    op = _local_operator(system)
    d = int(system.hilbert.local_size)
    position = np.argsort(np.asarray(path))  # site → chain position
    lattice = Chain(len(path), site, bc="open", bc_MPS="finite")
    model = CouplingModel(lattice)
    matrices = [np.asarray(m.todense() if hasattr(m, "todense") else m) for m in op.operators]
    real = all(np.allclose(np.imag(m), 0) for m in matrices)
    for matrix, sites in zip(matrices, op.acting_on):
        k = len(sites)
        for r, c in zip(*np.nonzero(np.abs(matrix) > 1e-14)):
            rows, cols = np.unravel_index(r, (d,) * k), np.unravel_index(c, (d,) * k)
            term = sorted((int(position[s]), f"E{a}_{b}") for s, a, b in zip(sites, rows, cols))
            strength = matrix[r, c].real if real else matrix[r, c]
            model.add_local_term(strength, [(name, [p, 0]) for p, name in term])
    if op.constant != 0:
        model.add_onsite_term(float(np.real(op.constant)), 0, "Id")
    return MPOModel(lattice, model.calc_H_MPO())


def _product_state(constraint: Constraint | None, d: int, n: int) -> list[int]:
    """A configuration in the constraint's sector, along the path (the constraint in path order): value k mod d at
    position k where the constraint allows it (a Néel state for zero magnetisation), else the first allowed value."""
    if constraint is None:
        return [k % d for k in range(n)]
    import jax.numpy as jnp

    carry, values = constraint.init_carry(1), []
    for k in range(n):
        allowed = np.asarray(constraint.mask(carry, k))[0]
        v = k % d if allowed[k % d] else int(np.flatnonzero(allowed)[0])
        values.append(v)
        carry = constraint.update(carry, jnp.asarray([v]), k)
    return values


def dmrg_ground_state(system: System, bond_dim: int, *, path: Any = None, max_sweeps: int = 30,
                      energy_tol: float = 1e-10, svd_min: float = 1e-12, conserve: bool = True,
                      verbose: bool = False) -> DMRGResult:
    """The two-site DMRG ground state (with the subspace-expansion mixer) of `system` at bond dimension `bond_dim`.

    Args:
        system: a System of one mode per site with one local dimension (spins).
        bond_dim: χ_max of the MPS.
        path: the sites in MPS order (default: the identity); use the ANTN's generation path (`dmrg_for_model`).
        max_sweeps, energy_tol, svd_min: TeNPy's ``max_sweeps``, ``max_E_err`` and ``trunc_params["svd_min"]``.
        conserve: run in the sector of the system's `U1Constraint` (block-sparse, exact); a system without one, or
            ``conserve=False``, runs without charges.
        verbose: TeNPy's log of the sweeps (else silenced).

    Raises:
        ValueError: bond_dim < 1, a path that is not a permutation of the sites, a Hilbert space of modes of
            different sizes, a constraint DMRG cannot keep (not a `U1Constraint`; pass conserve=False).
        ImportError: TeNPy is not installed.
    """
    _require_tenpy()
    from tenpy.algorithms import dmrg
    from tenpy.networks.mps import MPS

    n = system.hilbert.size
    path = tuple(range(n)) if path is None else tuple(int(i) for i in path)
    if sorted(path) != list(range(n)):
        raise ValueError(f"path must be a permutation of the {n} sites, got {path}")
    if bond_dim < 1:
        raise ValueError(f"bond_dim must be >= 1, got {bond_dim}")
    if len(set(int(s) for s in system.hilbert.shape)) != 1 or system.n_tokens != n:
        raise ValueError("DMRG here needs one mode per site and one local dimension (a spin system)")
    constraint = system.constraint if conserve else None
    if constraint is not None and not isinstance(constraint, U1Constraint):
        raise ValueError(f"DMRG cannot keep the constraint {constraint.describe()}: pass conserve=False")
    d = int(system.hilbert.local_size)
    site = _site(d, None if constraint is None else constraint.charges)
    model = _mpo_model(system, path, site)
    start = _product_state(None if constraint is None else constraint.permuted(path), d, n)
    psi = MPS.from_product_state([site] * n, start, bc="finite", unit_cell_width=n)
    options = {"mixer": True, "max_E_err": energy_tol, "max_sweeps": max_sweeps, "min_sweeps": 4, "max_trunc_err": 1.0,
               "trunc_params": {"chi_max": int(bond_dim), "svd_min": svd_min}}
    level = logging.getLogger("tenpy").level
    if not verbose:
        logging.getLogger("tenpy").setLevel(logging.ERROR)  # e.g. "final DMRG state not in canonical form" (the
        # mixer's last sweep; TeNPy canonicalises it, and so does the call below)
    try:
        engine = dmrg.TwoSiteDMRGEngine(psi, model, options)
        engine.run()
    finally:
        logging.getLogger("tenpy").setLevel(level)
    psi.canonical_form()
    tensors = tuple(np.asarray(psi.get_B(k, "B").itranspose(["vL", "p", "vR"]).to_ndarray()) for k in range(n))
    stats = engine.sweep_stats
    return DMRGResult(
        energy=float(np.real(model.H_MPO.expectation_value(psi))),
        tensors=tensors,
        path=path,
        truncation_error=float(np.max(stats["max_trunc_err"][-1:])) if stats["max_trunc_err"] else 0.0,
        conserved=None if constraint is None else tuple(constraint.charges),
        sweeps=int(stats["sweep"][-1]) if stats["sweep"] else 0,
    )


def dmrg_for_model(system: System, model: Any, **options: Any) -> DMRGResult:
    """`dmrg_ground_state` along the generation path of the autoregressive `model` (one site per token), at the
    model's bond dimension (`model.bond_dim`) unless ``bond_dim`` is given."""
    layout = model.layout()
    if layout.patch_size != 1:
        raise ValueError("the DMRG start needs one site per model token (no patches)")
    options.setdefault("bond_dim", int(model.bond_dim))
    return dmrg_ground_state(system, path=tuple(int(i) for i in layout.path), **options)


def antn_parameters(model: Any, params: Any, result: DMRGResult) -> Any:
    """The ANTN parameters `params` with the base MPS set to the DMRG tensors (M_k^v[a, b] = B_k[a, v, b],
    zero-padded to χ) and both heads at zero, so that the ANTN is the DMRG state (module docstring).

    Raises:
        ValueError: the DMRG path is not the model's generation path, or a DMRG bond exceeds the model's χ.
    """
    from flax.core import unfreeze

    layout = model.layout()
    if tuple(int(i) for i in layout.path) != result.path:
        raise ValueError(f"the DMRG MPS runs along {result.path}, the model generates along "
                         f"{tuple(int(i) for i in layout.path)}: use dmrg_for_model")
    chi = int(model.bond_dim)
    if max(result.bond_dims + (1,)) > chi:
        raise ValueError(f"the DMRG bonds {max(result.bond_dims)} exceed the ANTN bond dimension {chi}")
    V = layout.n_values
    mps = np.zeros((len(result.tensors), V, chi, chi), dtype=complex)
    for k, b in enumerate(result.tensors):
        mps[k, : b.shape[1], : b.shape[0], : b.shape[2]] = np.transpose(b, (1, 0, 2))
    new = unfreeze(params)
    inner = new["params"] if "params" in new else new
    dtype = inner["mps_real"].dtype
    inner["mps_real"], inner["mps_imag"] = np.asarray(mps.real, dtype), np.asarray(mps.imag, dtype)
    for head in ("amplitude_head", "phase_head"):
        if head in inner:
            inner[head] = {k: np.zeros_like(v) for k, v in inner[head].items()}
    return new
