"""`System`: what a builder returns and every other part of nqs consumes.

A System bundles a NetKet Hilbert space and Hamiltonian with the lattice, an optional `Constraint`
(the sector the physics lives in), named observables, Lindblad jump operators (empty for closed
systems), the conventions needed to interpret numbers (units, boundary conditions, sign rule,
site ordering) and the builder's own arguments, so a result file can rebuild it.

Modes and tokens: the Hilbert space is a list of `n_sites` modes (spins, occupations, links); the physical
units — sites, spin orbitals, gauge blocks — are *tokens*, ordered groups of modes (`nqs.tokens.TokenMap`,
one token per mode unless the builder says otherwise). The graph's nodes are tokens, and so are the sites of
the constraint: ``graph.n_nodes == constraint.n_sites == n_tokens`` and ``constraint.local_size`` is the
largest token size. `hilbert` stays unconstrained (exact autoregressive sampling needs it); `sector_states()`
enumerates the constraint's sector and `sector_hilbert()` is NetKet's constrained space, for the samplers
and models that need one.

The QuTiP form (`to_qutip`) is produced by an independent code path supplied by the builder
(`qutip_factory`), so comparing the two (`nqs.exact.check_operators`) is a real check and not a
conversion of one object into itself. Builders without a factory fall back to NetKet's `to_qobj`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import netket as nk
import numpy as np

from nqs import sectors
from nqs.constraint import MAX_SECTOR_STATES, Constraint
from nqs.tokens import TokenMap

QutipDict = dict  # {"H": Qobj, "c_ops": list[Qobj], "observables": dict[str, Qobj]}


@dataclasses.dataclass(frozen=True, eq=False)
class System:
    """A physical system: Hilbert space, Hamiltonian, jumps, observables and conventions.

    Attributes:
        builder: dotted name of the function that built it, e.g. ``"hamiltonians.heisenberg"``.
        hilbert: NetKet Hilbert space (unconstrained; sectors are expressed by `constraint`).
        hamiltonian: NetKet operator on `hilbert`.
        graph: NetKet graph of the tokens (sites, orbitals, gauge blocks) when there is a lattice, else None.
        constraint: `Constraint` on token values selecting the physical sector, or None.
        observables: name -> NetKet operator on `hilbert`.
        jump_operators: Lindblad operators L_k = √γ_k A_k (empty tuple for closed systems).
        conventions: units ("pauli" or "spin"), boundary conditions, sign rule, site ordering, ...
        params: the builder's keyword arguments (JSON-serialisable), stored in result files.
        qutip_factory: builds {"H", "c_ops", "observables"} as QuTiP objects independently of NetKet.
        tokens: the token → modes map, or None for one token per Hilbert mode (`token_map` is the effective one).
    """

    builder: str
    hilbert: nk.hilbert.DiscreteHilbert
    hamiltonian: Any
    graph: nk.graph.AbstractGraph | None = None
    constraint: Constraint | None = None
    observables: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    jump_operators: tuple = ()
    conventions: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    qutip_factory: Callable[[], QutipDict] | None = None
    tokens: TokenMap | None = None

    def __post_init__(self):
        if getattr(self.hilbert, "constrained", False):
            raise ValueError(
                f"the system's Hilbert space must be unconstrained (exact autoregressive sampling needs it), got "
                f"{self.hilbert}: express the sector as a `Constraint`; `sector_hilbert()` gives NetKet's "
                f"constrained space"
            )
        ops = [("hamiltonian", self.hamiltonian)]
        ops += [(f"observable {k!r}", o) for k, o in self.observables.items()]
        ops += [(f"jump operator {i}", o) for i, o in enumerate(self.jump_operators)]
        for name, op in ops:
            if op.hilbert != self.hilbert:
                raise ValueError(f"{name} acts on {op.hilbert}, not on the system's Hilbert space {self.hilbert}")
        if self.tokens is not None and self.tokens.mode_sizes != tuple(int(d) for d in self.hilbert.shape):
            raise ValueError(
                f"the token map is for modes of sizes {self.tokens.mode_sizes}, the Hilbert space has "
                f"{tuple(int(d) for d in self.hilbert.shape)}"
            )
        n_tokens, largest = self.n_tokens, self.token_map.max_token_size
        if self.constraint is not None and self.constraint.n_sites != n_tokens:
            raise ValueError(f"constraint is for {self.constraint.n_sites} sites, the system has {n_tokens} tokens")
        if self.constraint is not None and self.constraint.local_size != largest:
            raise ValueError(
                f"constraint has {self.constraint.local_size} local values, the largest token has {largest} values"
            )
        if self.graph is not None and self.graph.n_nodes != n_tokens:
            raise ValueError(f"graph has {self.graph.n_nodes} nodes, the system has {n_tokens} tokens (graph nodes "
                             f"are tokens: sites, orbitals or gauge blocks)")
        bad = _non_finite_parameters(self.params)
        if bad:
            raise ValueError(f"{self.builder}: parameters must be finite, got " + ", ".join(bad))
        if not self.is_open and _is_zero_operator(self.hamiltonian):
            raise ValueError(f"{self.builder}: the Hamiltonian is zero (every coupling vanishes: {dict(self.params)}), "
                             "so every state is a ground state and nothing evolves")

    @property
    def n_sites(self) -> int:
        """The number of Hilbert modes (``hilbert.size``)."""
        return self.hilbert.size

    @property
    def token_map(self) -> TokenMap:
        """The effective token map: `tokens`, or one token per Hilbert mode."""
        return self.tokens if self.tokens is not None else TokenMap.of_hilbert(self.hilbert)

    @property
    def n_tokens(self) -> int:
        """The number of tokens (physical units: graph nodes, constraint sites)."""
        return self.token_map.n_tokens

    @property
    def is_open(self) -> bool:
        return len(self.jump_operators) > 0

    def check_closed(self, method: str) -> None:
        """Raise ValueError when the system is open: `method` treats the Hamiltonian alone and would silently drop
        the jump operators."""
        if self.is_open:
            raise ValueError(
                f"{method} needs a closed system, but {self.builder} has {len(self.jump_operators)} jump operators: "
                "its Hamiltonian alone is not the physics (use the POVM methods in `dynamics.povm_dynamics`/"
                "`dynamics.povm_steady_state` or the exact `nqs.exact_open`)"
            )

    def to_qutip(self) -> QutipDict:
        """{"H": Qobj, "c_ops": [Qobj], "observables": {name: Qobj}} with dims [[d]*N, [d]*N].

        Basis order equals NetKet's (site 0 most significant, local index 0 first).
        """
        if self.qutip_factory is not None:
            return self.qutip_factory()
        return {
            "H": self.hamiltonian.to_qobj(),
            "c_ops": [op.to_qobj() for op in self.jump_operators],
            "observables": {k: o.to_qobj() for k, o in self.observables.items()},
        }

    def sector_states(self) -> np.ndarray:
        """All configurations (NetKet state values, (D, n_sites)) of the constraint's sector in NetKet's basis
        order, built from the constraint's own enumeration (`nqs.sectors.sector_states`), or of the whole space
        when unconstrained. ValueError above `MAX_SECTOR_STATES` configurations."""
        if self.constraint is not None:
            return sectors.sector_states(self.hilbert, self.token_map, self.constraint)
        n_states = math.prod(int(d) for d in self.hilbert.shape)
        if n_states > MAX_SECTOR_STATES:
            raise ValueError(f"Hilbert space of {n_states} states is too large to enumerate (> {MAX_SECTOR_STATES})")
        return np.asarray(self.hilbert.all_states())

    def sector_hilbert(self) -> nk.hilbert.DiscreteHilbert:
        """NetKet's constrained Hilbert space of the constraint (`nqs.sectors.constrained_hilbert`), or `hilbert`
        when unconstrained: for samplers and models that need one. Operators of this System act on `hilbert`."""
        if self.constraint is None:
            return self.hilbert
        return sectors.constrained_hilbert(self.hilbert, self.token_map, self.constraint)

    def describe(self) -> dict:
        """Builder, parameters, conventions, constraint and (when not one token per mode) the token map as
        JSON-serialisable data; ``local_size`` is the largest number of values of a mode."""
        desc = {
            "builder": self.builder,
            "params": dict(self.params),
            "conventions": dict(self.conventions),
            "constraint": None if self.constraint is None else self.constraint.describe(),
            "n_sites": self.n_sites,
            "local_size": int(max(self.hilbert.shape)),
            "observables": sorted(self.observables),
            "n_jump_operators": len(self.jump_operators),
        }
        if not self.token_map.is_identity:
            desc["tokens"] = self.token_map.describe()
        return desc


def _non_finite_parameters(params: Mapping[str, Any], prefix: str = "") -> list[str]:
    """"name = value" for every NaN or infinite number in the builder's parameters (nested lists and dicts too)."""
    bad = []
    for name, value in params.items():
        values = value.items() if isinstance(value, Mapping) else enumerate(value) \
            if isinstance(value, (list, tuple)) else None
        if values is not None:
            bad += _non_finite_parameters(dict((str(k), v) for k, v in values), f"{prefix}{name}.")
        elif isinstance(value, (float, np.floating)) and not math.isfinite(value):
            bad.append(f"{prefix}{name} = {value}")
    return bad


def _is_zero_operator(operator: Any) -> bool:
    """True when a NetKet operator has no non-zero term: a `LocalOperator` without operators (NetKet drops zero
    matrices), a `PauliStrings` or `FermionOperator2nd` whose weights all vanish. Other operators count as non-zero."""
    op = nk.operator
    if isinstance(operator, (op.LocalOperator, op.LocalOperatorJax, op.LocalOperatorNumba)):
        return operator.n_operators == 0 or all(not np.any(getattr(m, "data", m)) for m in operator.operators)
    if isinstance(operator, (op.PauliStrings, op.PauliStringsJax, op.PauliStringsNumba, op.FermionOperator2nd,
                             op.FermionOperator2ndJax, op.FermionOperator2ndNumba)):
        return not np.any(np.asarray(operator.weights))
    return False
