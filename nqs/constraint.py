"""Constraints on configurations, applied by autoregressive ansätze as masks on the conditionals.

A `Constraint` answers one question: given the local values already generated, x_<i, which values
may site i take? An autoregressive model multiplies its conditional q̃_i(s | x_<i) by the 0/1 mask
m_i(s | x_<i) and renormalises,

    q_i(s | x_<i) = m_i(s) q̃_i(s | x_<i) / Σ_s' m_i(s') q̃_i(s' | x_<i),

which keeps ψ exactly normalised on the constrained set and exactly samplable
(Hibat-Allah et al., PRR 2, 023358 (2020), App. D.2). The same mask must be used when sampling and
when evaluating ψ on connected configurations; both paths call the methods below.

Values are *local indices* s ∈ {0, ..., local_size-1} (NetKet's `hilbert.states_to_local_indices`),
given in the order in which the model generates them. A constraint that depends on the site
identity (Gauss's law) must be re-expressed for another order with `permuted(order)`.

Masks are computed from a small carry so that sampling costs O(1) per site:

    carry = init_carry(batch); for i: m = mask(carry, i); s ~ q_i; carry = update(carry, s, i)

`masks(s)` is the parallel version used when evaluating ψ. A prefix with no allowed continuation is
a bug: every constraint checks feasibility at construction and raises `ValueError` if no
configuration satisfies it.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np


def carry_typed_as_body(step, carry, x0):
    """`carry`'s values, typed as the output carry of one scan step `step(carry, x0)`.

    Inside NetKet's `shard_map` (sharded samples, minSR's on-the-fly NTK) the inputs, the parameters or
    both can be "varying" over the sample axis, and `lax.scan` demands an initial carry of exactly the
    type its body returns. Selecting the values of `carry` against one body output gives that type by
    construction (the cost is one extra scan step per evaluation)."""
    out, _ = step(carry, x0)
    return jax.tree_util.tree_map(lambda c, o: jnp.where(jnp.zeros(o.shape, bool), o, c).astype(o.dtype), carry, out)


class Constraint(abc.ABC):
    """Abstract constraint on the local indices of an N-site configuration."""

    n_sites: int
    local_size: int

    @abc.abstractmethod
    def init_carry(self, batch: int):
        """The carry before any site is generated, for `batch` configurations."""

    @abc.abstractmethod
    def mask(self, carry, i) -> jax.Array:
        """Boolean mask (batch, local_size) of the values allowed at generation step `i`."""

    @abc.abstractmethod
    def update(self, carry, s: jax.Array, i):
        """The carry after the values `s` (batch,) were chosen at step `i`."""

    def masks(self, s: jax.Array) -> jax.Array:
        """Masks for every step of the complete configurations `s` (batch, N): (batch, N, local_size).

        The default scans `mask`/`update`; subclasses override it with a vectorised form.
        """
        s = jnp.asarray(s)

        def step(carry, inp):
            i, s_i = inp
            m = self.mask(carry, i)
            return self.update(carry, s_i, i), m

        xs = (jnp.arange(self.n_sites), s.T)
        init = carry_typed_as_body(step, self.init_carry(s.shape[0]), (xs[0][0], xs[1][0]))
        _, ms = jax.lax.scan(step, init, xs)
        return jnp.moveaxis(ms, 0, 1)

    def is_satisfied(self, s: jax.Array) -> jax.Array:
        """Boolean (batch,): whether each complete configuration satisfies the constraint."""
        s = jnp.asarray(s)
        m = self.masks(s)
        ok = jnp.take_along_axis(m, s[..., None].astype(jnp.int32), axis=-1)[..., 0]
        return jnp.all(ok, axis=-1)

    def permuted(self, order) -> Constraint:
        """The same constraint for values generated in the site order `order` (a permutation)."""
        raise NotImplementedError(f"{type(self).__name__} does not support reordering")

    @abc.abstractmethod
    def describe(self) -> dict:
        """JSON-serialisable description, stored in result files."""


@dataclass(frozen=True)
class U1Constraint(Constraint):
    """Fixed total charge Σ_i q(s_i) = total, with an integer charge per local value.

    The zero-magnetisation sector of spin-1/2 in NetKet's default ordering (index 0 = σᶻ=+1) is
    `U1Constraint(N, charges=(1, -1), total=0)`; spin-1 uses charges (2, 0, -2) in units of ħ/2.

    The mask allows value s at step i iff the remaining total, total - (Σ_{j<i} q_j + q_s), can be
    reached by the N-i-1 sites still to come. Reachability is a table computed once by dynamic
    programming, so the mask is exact for any integer charges (including parity restrictions).
    A constraint no configuration satisfies (e.g. zero magnetisation on an odd number of spin-1/2
    sites) raises `ValueError` at construction.
    """

    n_sites: int
    charges: tuple[int, ...] = (1, -1)
    total: int = 0
    _reach: np.ndarray = field(init=False, repr=False, compare=False, hash=False)
    _offset: int = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self):
        if int(self.n_sites) < 1:
            raise ValueError(f"U1Constraint needs n_sites >= 1, got {self.n_sites}")
        charges = tuple(int(q) for q in self.charges)
        if len(charges) < 1:
            raise ValueError("U1Constraint needs at least one local value")
        object.__setattr__(self, "charges", charges)
        object.__setattr__(self, "n_sites", int(self.n_sites))
        object.__setattr__(self, "total", int(self.total))
        qmax = max(abs(q) for q in charges)
        offset = qmax * self.n_sites
        width = 2 * offset + 1
        # reach[k, t + offset]: can k sites add up to t?
        reach = np.zeros((self.n_sites + 1, width), dtype=bool)
        reach[0, offset] = True
        for k in range(1, self.n_sites + 1):
            for q in charges:
                reach[k] |= np.roll(reach[k - 1], q)  # no wrap-around: |sums| <= qmax*k
        object.__setattr__(self, "_reach", reach)
        object.__setattr__(self, "_offset", offset)
        if abs(self.total) > offset or not reach[self.n_sites, self.total + offset]:
            raise ValueError(
                f"no configuration of {self.n_sites} sites with charges {charges} has total {self.total}"
                " (e.g. zero magnetisation needs an even number of spin-1/2 sites)"
            )

    @property
    def local_size(self) -> int:  # type: ignore[override]
        return len(self.charges)

    def _allowed(self, partial, remaining):
        q = jnp.asarray(self.charges)
        need = self.total - (partial[..., None] + q)  # charge the remaining sites must supply
        idx = jnp.clip(need + self._offset, 0, self._reach.shape[1] - 1)
        inside = jnp.abs(need) <= self._offset
        return jnp.asarray(self._reach)[remaining[..., None], idx] & inside

    def init_carry(self, batch: int):
        return jnp.zeros((batch,), dtype=jnp.int32)

    def mask(self, carry, i):
        remaining = jnp.broadcast_to(self.n_sites - 1 - jnp.asarray(i, jnp.int32), carry.shape)
        return self._allowed(carry, remaining)

    def update(self, carry, s, i):
        return carry + jnp.asarray(self.charges, jnp.int32)[jnp.asarray(s, jnp.int32)]

    def masks(self, s):
        s = jnp.asarray(s, jnp.int32)
        q = jnp.asarray(self.charges, jnp.int32)[s]
        partial = jnp.cumsum(q, axis=-1) - q  # exclusive prefix sums
        remaining = jnp.broadcast_to(self.n_sites - 1 - jnp.arange(self.n_sites), partial.shape)
        return self._allowed(partial, remaining)

    def is_satisfied(self, s):
        s = jnp.asarray(s, jnp.int32)
        return jnp.sum(jnp.asarray(self.charges, jnp.int32)[s], axis=-1) == self.total

    def permuted(self, order) -> U1Constraint:
        if sorted(np.asarray(order).tolist()) != list(range(self.n_sites)):
            raise ValueError(f"order must be a permutation of range({self.n_sites})")
        return self

    def describe(self) -> dict:
        return {"type": "U1Constraint", "n_sites": self.n_sites, "charges": list(self.charges), "total": self.total}


def zero_magnetization(n_sites: int) -> U1Constraint:
    """Σ_i σᶻ_i = 0 for spin-1/2 in NetKet's default local ordering (index 0 = up, 1 = down)."""
    return U1Constraint(n_sites, charges=(1, -1), total=0)
