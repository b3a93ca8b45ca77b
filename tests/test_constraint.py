"""U1Constraint: masks agree with brute force, never dead-end, parallel == incremental."""

import itertools

import numpy as np
import pytest

from nqs import Constraint, U1Constraint, zero_magnetization


def _brute_force_masks(charges, total, prefix, n_sites):
    """Allowed values after `prefix`: those with at least one completion reaching `total`."""
    allowed = []
    for s in range(len(charges)):
        rest = n_sites - len(prefix) - 1
        head = sum(charges[v] for v in prefix) + charges[s]
        ok = any(head + sum(charges[v] for v in tail) == total for tail in itertools.product(range(len(charges)), repeat=rest))
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
