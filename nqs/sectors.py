"""A constraint's sector in the Hilbert space of a System: its configurations, NetKet's constrained space, random
configurations inside it.

The sector is defined on token values (`nqs.constraint.Constraint.sector`); a token value v_t is the mixed-radix number
of the local indices of the token's modes (`nqs.tokens.TokenMap`), and local index s of a mode stands for NetKet's
state value ``local_states[s]`` (`hilbert.local_indices_to_states`). Nothing here filters `hilbert.all_states()`:
configurations are built from the constraint's own enumeration, so a sector of D states costs O(D) however large the
space around it.

NetKet's constrained spaces (`nk.hilbert.constraint.DiscreteHilbertConstraint`) exist for homogeneous spaces only
(`Spin`, `Fock`, `SpinOrbitalFermions`, …). A U(1) constraint whose charges are the local state values is NetKet's own
`total_sz` / `n_particles` space; any other constraint is wrapped in `SectorConstraint`, which NetKet evaluates on
state values (and enumerates by filtering the unconstrained space: small systems only).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import netket as nk
import numpy as np
from netket.utils import struct

from nqs.constraint import Constraint, U1Constraint, carry_typed_as_body
from nqs.fermion_sectors import spin_sector_numbers
from nqs.tokens import TokenMap

CHUNK = 2**16  # configurations decoded per batch


def sector_states(hilbert: nk.hilbert.DiscreteHilbert, tokens: TokenMap, constraint: Constraint) -> np.ndarray:
    """The sector's configurations as NetKet state values (D, n_modes), in NetKet's basis order (mode 0 most
    significant, local index 0 first): `constraint.sector` decoded by `tokens`, then mapped to state values."""
    values = constraint.sector(tokens.token_sizes)
    local = values
    if not tokens.is_identity:  # decoded in batches; token-lexicographic order is not the basis order here
        small = np.min_scalar_type(max(tokens.mode_sizes) - 1)
        local = np.concatenate([np.asarray(tokens.decode(values[i : i + CHUNK])).astype(small)
                                for i in range(0, len(values), CHUNK)])
        local = local[np.lexsort(local.T[::-1])]
    dtype = np.asarray(hilbert.local_indices_to_states(np.zeros((1, hilbert.size), np.int32))).dtype
    states = np.empty((len(local), hilbert.size), dtype)
    for i in range(0, len(local), CHUNK):
        states[i : i + CHUNK] = np.asarray(hilbert.local_indices_to_states(local[i : i + CHUNK]))
    return states


def random_configurations(constraint: Constraint, token_sizes, key: jax.Array, n: int) -> jax.Array:
    """`n` configurations of token values (n, n_tokens) inside the sector, drawn token by token uniformly among the
    values the mask allows (so inside the sector by the look-ahead contract; not uniform over the sector). Jittable:
    the starting points of Metropolis chains that must stay in the sector."""
    sizes = jnp.asarray(token_sizes, jnp.int32)
    values = jnp.arange(constraint.local_size)

    def step(carry, inputs):
        i, k = inputs
        allowed = constraint.mask(carry, i) & (values < sizes[i])
        s = jax.random.categorical(k, jnp.where(allowed, 0.0, -jnp.inf), axis=-1)
        return constraint.update(carry, s, i), s

    xs = (jnp.arange(constraint.n_sites), jax.random.split(key, constraint.n_sites))
    init = carry_typed_as_body(step, constraint.init_carry(n), (xs[0][0], xs[1][0]))
    _, chosen = jax.lax.scan(step, init, xs)
    return chosen.T


class SectorConstraint(nk.hilbert.constraint.DiscreteHilbertConstraint):
    """An nqs `Constraint` as NetKet's constraint on state values: x → local indices (nearest local state) → token
    values (`TokenMap.encode`) → `Constraint.is_satisfied`. Hashable and comparable by its three fields."""

    constraint: Constraint = struct.field(pytree_node=False)
    tokens: TokenMap = struct.field(pytree_node=False)
    local_states: tuple[float, ...] = struct.field(pytree_node=False)

    def __init__(self, constraint: Constraint, tokens: TokenMap, local_states):
        try:
            hash(constraint)
        except TypeError as err:
            raise ValueError(f"NetKet needs a hashable constraint (a frozen dataclass); {constraint!r} is not") from err
        self.constraint = constraint
        self.tokens = tokens
        self.local_states = tuple(float(v) for v in local_states)

    def __call__(self, x: jax.Array) -> jax.Array:
        index = jnp.argmin(jnp.abs(jnp.asarray(x)[..., None] - jnp.asarray(self.local_states)), axis=-1)
        return self.constraint.is_satisfied(self.tokens.encode(index))

    def __hash__(self) -> int:
        return hash((SectorConstraint, self.constraint, self.tokens, self.local_states))

    def __eq__(self, other) -> bool:
        return isinstance(other, SectorConstraint) and (self.constraint, self.tokens, self.local_states) == (
            other.constraint, other.tokens, other.local_states)


def constrained_hilbert(hilbert: nk.hilbert.DiscreteHilbert, tokens: TokenMap,
                        constraint: Constraint) -> nk.hilbert.DiscreteHilbert:
    """NetKet's constrained space of `constraint` on the unconstrained homogeneous space `hilbert`.

    U(1) on one token per mode with charges equal to the local state values (spin-S: q = 2m, NetKet's values; Fock:
    q = n) is NetKet's own space, `Spin(S, N, total_sz=total/2)` or `Fock(n_max, N, n_particles=total)`, and fixed
    (N↑, N↓) on spinful orbital tokens (`nqs.fermion_sectors.spin_sector`) is NetKet's
    `SpinOrbitalFermions(L, 1/2, n_fermions_per_spin=(N↓, N↑))` (the space NetKet's `Slater2nd` needs); any other
    constraint is a `SectorConstraint` on the same kind of space (`Spin`, `Fock`, `SpinOrbitalFermions`). TypeError
    for spaces NetKet cannot constrain (tensor products of different local spaces, e.g. gauge blocks)."""
    if not isinstance(hilbert, nk.hilbert.HomogeneousHilbert):
        raise TypeError(
            f"NetKet constrains homogeneous Hilbert spaces only (one set of local values for every mode), not "
            f"{hilbert}: "
            "sample this sector with a model that carries the constraint (autoregressive ansätze mask it exactly)"
        )
    local_states = tuple(float(v) for v in np.asarray(hilbert.local_states))
    native = isinstance(constraint, U1Constraint) and tokens.is_identity and local_states == constraint.charges
    if isinstance(hilbert, nk.hilbert.Spin):
        spin = (hilbert.local_size - 1) / 2
        inverted = local_states[0] < local_states[-1]
        if native:
            return nk.hilbert.Spin(spin, hilbert.size, total_sz=constraint.total / 2, inverted_ordering=inverted)
        wrapped = SectorConstraint(constraint, tokens, local_states)
        return nk.hilbert.Spin(spin, hilbert.size, constraint=wrapped, inverted_ordering=inverted)
    if isinstance(hilbert, nk.hilbert.Fock):
        if native:
            return nk.hilbert.Fock(hilbert.n_max, hilbert.size, n_particles=constraint.total)
        return nk.hilbert.Fock(hilbert.n_max, hilbert.size, constraint=SectorConstraint(constraint, tokens,
                                                                                        local_states))
    if isinstance(hilbert, nk.hilbert.SpinOrbitalFermions):
        numbers = spin_sector_numbers(tokens, constraint)
        if numbers is not None and hilbert.spin == 0.5:
            return nk.hilbert.SpinOrbitalFermions(hilbert.n_orbitals, hilbert.spin, n_fermions_per_spin=numbers)
        wrapped = SectorConstraint(constraint, tokens, local_states)
        return nk.hilbert.SpinOrbitalFermions(hilbert.n_orbitals, hilbert.spin, constraint=wrapped)
    raise TypeError(f"no constrained form of {type(hilbert).__name__} is known here; use Spin, Fock or "
                    f"SpinOrbitalFermions")
