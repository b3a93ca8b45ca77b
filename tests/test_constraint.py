"""U1Constraint: masks agree with brute force, never dead-end, parallel == incremental; the sector a constraint
enumerates and counts equals brute force, and counts far beyond enumeration are exact."""

import itertools
import math
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
import pytest

from nqs import Constraint, U1Constraint, zero_magnetization


def _brute_force_masks(charges, total, prefix, n_sites):
    """Allowed values after `prefix`: those with at least one completion reaching `total`."""
    allowed = []
    for s in range(len(charges)):
        rest = n_sites - len(prefix) - 1
        head = sum(charges[v] for v in prefix) + charges[s]
        ok = any(head + sum(charges[v] for v in tail) == total for tail in itertools.product(range(len(charges)),
                                                                                             repeat=rest))
        allowed.append(ok)
    return np.array(allowed)


@pytest.mark.parametrize("charges,total,n", [((1, -1), 0, 6), ((2, 0, -2), 2, 4), ((1, -1), 1, 5), ((1, 0), 3, 5)])
def test_masks_equal_brute_force(charges, total, n):
    c = U1Constraint(n, charges=charges, total=total)
    configs = np.array(list(itertools.product(range(len(charges)), repeat=n)))
    masks = np.asarray(c.masks(configs))
    for x, m in zip(configs, masks):
        for i in range(n):
            np.testing.assert_array_equal(m[i], _brute_force_masks(charges, total, list(x[:i]), n))
    sat = np.asarray(c.is_satisfied(configs))
    np.testing.assert_array_equal(sat, [sum(charges[v] for v in x) == total for x in configs])


def test_incremental_equals_parallel_and_no_dead_ends():
    c = zero_magnetization(8)
    rng = np.random.default_rng(0)
    carry = c.init_carry(64)
    values = []
    for i in range(8):
        m = np.asarray(c.mask(carry, i))
        assert m.any(axis=-1).all(), "a reachable prefix has no allowed continuation"
        p = m / m.sum(-1, keepdims=True)
        s = np.array([rng.choice(2, p=pi) for pi in p])
        values.append(s)
        carry = c.update(carry, s, i)
    x = np.stack(values, axis=1)
    assert np.asarray(c.is_satisfied(x)).all()
    # the generic scan in the base class and the vectorised override agree
    np.testing.assert_array_equal(np.asarray(Constraint.masks(c, x)), np.asarray(c.masks(x)))


def test_unsatisfiable_constraint_raises():
    with pytest.raises(ValueError, match="even number"):
        zero_magnetization(7)
    with pytest.raises(ValueError, match="no configuration"):
        U1Constraint(3, charges=(2, 0, -2), total=1)


def test_permutation_is_checked():
    c = zero_magnetization(4)
    assert c.permuted([3, 2, 1, 0]) is c
    with pytest.raises(ValueError, match="permutation"):
        c.permuted([0, 0, 1, 2])


# -- the sector of a constraint: enumeration and exact count ---------------------------------------------------------
def _brute_force_sector(c, sizes):
    """Every configuration over the token sizes that `is_satisfied` accepts, in lexicographic order."""
    configs = np.array(list(itertools.product(*(range(d) for d in sizes))))
    return configs[np.asarray(c.is_satisfied(configs))]


@pytest.mark.parametrize("charges,total,n", [((1, -1), 0, 8), ((1, -1), 3, 7), ((1, -1), -5, 7), ((2, 0, -2), 0, 5),
                                             ((2, 0, -2), 4, 5), ((1, 0), 3, 6), ((3, -1, 0), 2, 5)])
def test_sector_equals_brute_force(charges, total, n):
    c = U1Constraint(n, charges=charges, total=total)
    sizes = (len(charges),) * n
    expected = _brute_force_sector(c, sizes)
    np.testing.assert_array_equal(c.sector(), expected)  # same configurations, same (lexicographic) order
    assert c.count() == Constraint.count(c) == len(expected)  # the U(1) closed form and the generic carry walk


def test_smaller_tokens_exclude_their_large_values():
    c = U1Constraint(5, charges=(0, 1, 0), total=2)
    sizes = (3, 2, 3, 2, 3)  # tokens 1 and 3 lack value 2; value 0 has the same charge, so no prefix dead-ends
    expected = _brute_force_sector(c, sizes)
    np.testing.assert_array_equal(c.sector(sizes), expected)
    assert c.count(sizes) == Constraint.count(c, sizes) == len(expected) < c.count()
    # an autoregressive model masks the values >= D_t too: a prefix left without values is a broken look-ahead
    with pytest.raises(ValueError, match="look-ahead is broken"):
        U1Constraint(5, charges=(2, 0, -2), total=0).sector((3, 2, 3, 2, 3))
    with pytest.raises(ValueError, match="do not fit"):
        c.count((3, 3, 3))
    with pytest.raises(ValueError, match="do not fit"):
        c.sector((4, 3, 3, 3, 3))


def test_count_far_beyond_enumeration():
    assert zero_magnetization(100).count() == math.comb(100, 50)
    assert Constraint.count(zero_magnetization(100)) == math.comb(100, 50)  # one carry per partial sum
    spin1 = U1Constraint(40, charges=(2, 0, -2), total=0)  # Σ_k C(40, k) C(40 − k, k): k ups, k downs
    assert spin1.count() == sum(math.comb(40, k) * math.comb(40 - k, k) for k in range(21))
    with pytest.raises(ValueError, match="more than"):
        zero_magnetization(100).sector()


@dataclass(frozen=True)
class _NoLookAhead(Constraint):
    """Σ s_i = 0 on two sites of values {0, 1} without look-ahead: the prefix (1,) has no allowed value."""

    n_sites: int = 2
    local_size: int = 2

    def init_carry(self, batch):
        return jnp.zeros((batch,), jnp.int32)

    def mask(self, carry, i):
        last = jnp.asarray(i) == self.n_sites - 1
        return jnp.where(last, (carry[:, None] + jnp.arange(2)) == 0, True)

    def update(self, carry, s, i):
        return carry + s

    def describe(self):
        return {"type": "_NoLookAhead"}


def test_a_dead_end_is_reported():
    for walk in (_NoLookAhead().sector, _NoLookAhead().count):
        with pytest.raises(ValueError, match="look-ahead is broken"):
            walk()


class _Unhashable(_NoLookAhead):
    __hash__ = None


def test_an_unhashable_constraint_is_refused_clearly():
    with pytest.raises(TypeError, match="must be hashable"):
        _Unhashable().count()
