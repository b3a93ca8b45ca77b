"""Masks of model-token values: the validity of padded values and a `Constraint` on the physical tokens.

A model token k of p physical tokens (`ansatze.token_layout`) takes the values v ∈ {0, …, V − 1}, V the largest token
size; v is valid iff v < V_k. The constraint acts on the physical tokens in generation order (values u, carry c),
so v is allowed iff each of its physical tokens u_j is allowed when the carry is stepped through the token,

    m_k(v | carry) = [v < V_k] Π_j m_{kp+j}(u_j | c_j),   c_0 = carry,  c_{j+1} = update(c_j, u_j, kp + j),

which costs O(V·p) constraint work per model token (Luo et al., PRR 5, 013216 (2023) for gauge blocks; one physical
token per model token is the site mask of Hibat-Allah et al., PRR 2, 023358 (2020), App. D.2).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from ansatze.token_layout import TokenLayout
from nqs.constraint import Constraint, carry_typed_as_body


def select(table: jax.Array, values: jax.Array) -> jax.Array:
    """table[..., values] along the last axis: (..., V), (...) → (...)."""
    return jnp.take_along_axis(table, values[..., None], axis=-1)[..., 0]


@dataclasses.dataclass(frozen=True)
class TokenMasks:
    """The masks of a model (module docstring). `constraint` acts on the physical tokens in generation order
    (`AutoregressiveModel.generation_constraint`), or is None; every mask is None when all values are allowed."""

    layout: TokenLayout
    constraint: Constraint | None

    def valid(self, positions=slice(None)) -> jax.Array | None:
        """(…, V) validity v < V_k of the model tokens at `positions` (an index, traced or not, or a slice)."""
        valid = self.layout.valid
        return None if valid.all() else jnp.asarray(valid)[positions]

    def _and_valid(self, mask: jax.Array | None, positions) -> jax.Array | None:
        valid = self.valid(positions)
        if valid is None or mask is None:
            return mask if valid is None else valid
        return mask & valid

    def init_carry(self, batch: int):
        """The carry before model token 0 (None without a constraint)."""
        return None if self.constraint is None else self.constraint.init_carry(batch)

    def step(self, carry, value: jax.Array, k):
        """The carry after model token k took the values `value` (B,)."""
        c, p = self.constraint, self.layout.patch_size
        if c is None:
            return None
        if p == 1:
            return c.update(carry, value, k)
        values = jnp.asarray(self.layout.physical_values)[k, value]  # (B, p)
        for j in range(p):
            carry = c.update(carry, values[:, j], k * p + j)
        return carry

    def mask(self, carry, k) -> jax.Array | None:
        """(B, V) mask of model token k given the carry before it."""
        c, p, V = self.constraint, self.layout.patch_size, self.layout.n_values
        if c is None:
            return self.valid(k)
        if p == 1:
            return self._and_valid(c.mask(carry, k), k)
        batch = jax.tree_util.tree_leaves(carry)[0].shape[0]
        values = jnp.tile(jnp.asarray(self.layout.physical_values)[k], (batch, 1))  # (B·V, p)
        carry = jax.tree_util.tree_map(lambda a: jnp.repeat(a, V, axis=0), carry)
        allowed = jnp.ones((batch * V,), dtype=bool)
        for j in range(p):
            allowed &= select(c.mask(carry, k * p + j), values[:, j])
            carry = c.update(carry, values[:, j], k * p + j)
        return self._and_valid(allowed.reshape(batch, V), k)

    def scan(self, tokens: jax.Array, carry, first: int = 0):
        """(carries before each position (B, S, …), masks (B, S, V)) of the model tokens first … first + S − 1 with
        values `tokens` (B, S), from the carry before `first` (carries None without a constraint)."""
        positions = slice(first, first + tokens.shape[1])
        if self.constraint is None:
            return None, self.valid(positions)

        def body(carry, inp):
            k, v = inp
            return self.step(carry, v, k), (carry, self.mask(carry, k))

        xs = (jnp.arange(first, first + tokens.shape[1]), tokens.T)
        init = carry_typed_as_body(body, carry, (xs[0][0], xs[1][0]))
        _, (carries, masks) = jax.lax.scan(body, init, xs)
        return jax.tree_util.tree_map(lambda a: jnp.moveaxis(a, 0, 1), carries), jnp.moveaxis(masks, 0, 1)

    def all(self, tokens: jax.Array) -> jax.Array | None:
        """Masks (B, T, V) of complete token values (B, T) (the constraint's vectorised `masks` for one physical
        token per model token)."""
        if self.constraint is not None and self.layout.patch_size == 1:
            return self._and_valid(self.constraint.masks(tokens), slice(None))
        return self.scan(tokens, self.init_carry(tokens.shape[0]))[1]
