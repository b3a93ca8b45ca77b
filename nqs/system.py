"""`System`: what a builder returns and every other part of nqs consumes.

A System bundles a NetKet Hilbert space and Hamiltonian with the lattice, an optional `Constraint`
(the sector the physics lives in), named observables, Lindblad jump operators (empty for closed
systems), the conventions needed to interpret numbers (units, boundary conditions, sign rule,
site ordering) and the builder's own arguments, so a result file can rebuild it.

The QuTiP form (`to_qutip`) is produced by an independent code path supplied by the builder
(`qutip_factory`), so comparing the two (`nqs.exact.check_operators`) is a real check and not a
conversion of one object into itself. Builders without a factory fall back to NetKet's `to_qobj`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import netket as nk
import numpy as np

from nqs.constraint import Constraint

QutipDict = dict  # {"H": Qobj, "c_ops": list[Qobj], "observables": dict[str, Qobj]}


@dataclasses.dataclass(frozen=True, eq=False)
class System:
    """A physical system: Hilbert space, Hamiltonian, jumps, observables and conventions.

    Attributes:
        builder: dotted name of the function that built it, e.g. ``"hamiltonians.heisenberg"``.
        hilbert: NetKet Hilbert space (unconstrained; sectors are expressed by `constraint`).
        hamiltonian: NetKet operator on `hilbert`.
        graph: NetKet graph when there is a lattice, else None.
        constraint: `Constraint` selecting the physical sector, or None.
        observables: name -> NetKet operator on `hilbert`.
        jump_operators: Lindblad operators L_k = √γ_k A_k (empty tuple for closed systems).
        conventions: units ("pauli" or "spin"), boundary conditions, sign rule, site ordering, ...
        params: the builder's keyword arguments (JSON-serialisable), stored in result files.
        qutip_factory: builds {"H", "c_ops", "observables"} as QuTiP objects independently of NetKet.
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

    def __post_init__(self):
        ops = [("hamiltonian", self.hamiltonian)]
        ops += [(f"observable {k!r}", o) for k, o in self.observables.items()]
        ops += [(f"jump operator {i}", o) for i, o in enumerate(self.jump_operators)]
        for name, op in ops:
            if op.hilbert != self.hilbert:
                raise ValueError(f"{name} acts on {op.hilbert}, not on the system's Hilbert space {self.hilbert}")
        if self.constraint is not None:
            if self.constraint.n_sites != self.hilbert.size:
                raise ValueError(
                    f"constraint is for {self.constraint.n_sites} sites, Hilbert space has {self.hilbert.size}"
                )
            if self.constraint.local_size != self.hilbert.local_size:
                raise ValueError(
                    f"constraint has {self.constraint.local_size} local values, "
                    f"Hilbert space has {self.hilbert.local_size}"
                )
        if self.graph is not None and self.graph.n_nodes != self.hilbert.size:
            raise ValueError(f"graph has {self.graph.n_nodes} nodes, Hilbert space has {self.hilbert.size} sites")

    @property
    def n_sites(self) -> int:
        return self.hilbert.size

    @property
    def is_open(self) -> bool:
        return len(self.jump_operators) > 0

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
        """All configurations (NetKet values) of the constrained sector, or of the whole space."""
        if self.hilbert.n_states > 2**24:
            raise ValueError(f"Hilbert space of {self.hilbert.n_states} states is too large to enumerate")
        states = np.asarray(self.hilbert.all_states())
        if self.constraint is None:
            return states
        ok = np.asarray(self.constraint.is_satisfied(np.asarray(self.hilbert.states_to_local_indices(states))))
        return states[ok]

    def describe(self) -> dict:
        """Builder, parameters, conventions and constraint as JSON-serialisable data."""
        return {
            "builder": self.builder,
            "params": dict(self.params),
            "conventions": dict(self.conventions),
            "constraint": None if self.constraint is None else self.constraint.describe(),
            "n_sites": self.n_sites,
            "local_size": int(self.hilbert.local_size),
            "observables": sorted(self.observables),
            "n_jump_operators": len(self.jump_operators),
        }
