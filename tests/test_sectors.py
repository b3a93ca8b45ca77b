"""A gauge-block-like system: tokens (matter_j, link_j) of a 2-valued and a 3-valued mode, a Gauss law on token
values, and everything built from the constraint — enumeration, count, exact diagonalisation — against brute force.

Modes: matter n_j ∈ {0, 1} (`Fock(n_max=1)`, local index = n) and link E_j ∈ {1, 0, −1} (`Spin(1)`, local index
l = 1 − E) interleaved as m_0, l_0, m_1, l_1, …; token j = (m_j, l_j) has value v = 3 n_j + l_j. Gauss law on an open
chain (models.md A.2): E_j − E_{j−1} = q_j with the staggered charge q_j = n_j − (j mod 2), the left boundary field
E_{−1} = E_L fixed and, optionally, the last link E_{N−1} = E_R. The carry is the previous link; the look-ahead lets a
link take a value only when the remaining sites can still bring it to E_R (even sites raise E by 0 or 1, odd sites
lower it by 0 or 1, and a site can always leave it unchanged, so any target in that window is reachable in range).
"""

from __future__ import annotations

import dataclasses
import itertools

import jax
import jax.numpy as jnp
import netket as nk
import numpy as np
import pytest

from nqs import Constraint, System, TokenMap, exact
from nqs.sectors import random_configurations


@dataclasses.dataclass(frozen=True)
class GaussChain(Constraint):
    n_sites: int
    left: int = 0
    right: int | None = None
    local_size: int = 6

    def __post_init__(self):
        evens = (self.n_sites + 1) // 2
        if self.right is not None and not -(self.n_sites - evens) <= self.right - self.left <= evens:
            raise ValueError(f"no configuration brings E from {self.left} to {self.right} in {self.n_sites} sites")

    def init_carry(self, batch):
        return jnp.full((batch,), self.left, jnp.int32)

    def mask(self, carry, i):
        i = jnp.asarray(i, jnp.int32)
        v = jnp.arange(6)
        n, link = v // 3, 1 - v % 3
        ok = link[None, :] - carry[:, None] == (n - i % 2)[None, :]
        if self.right is not None:
            raisers = (self.n_sites - 1) // 2 - i // 2  # even sites after i
            lowerers = self.n_sites - 1 - i - raisers
            ok &= (self.right - link >= -lowerers)[None, :] & (self.right - link <= raisers)[None, :]
        return ok

    def update(self, carry, s, i):
        return 1 - jnp.asarray(s, jnp.int32) % 3

    def describe(self):
        return {"type": "GaussChain", "n_sites": self.n_sites, "left": self.left, "right": self.right}


def gauge_system(n_blocks: int, constraint: Constraint, mass: float = 0.7) -> System:
    """H = −Σ_j (ψ_j† S⁺_j ψ_{j+1} + h.c.) + m Σ_j (−1)^j n_j (hard-core bosons, bare links; gauge invariant)."""
    hilbert = nk.hilbert.Fock(n_max=1)
    hilbert = hilbert * nk.hilbert.Spin(1)
    for _ in range(n_blocks - 1):
        hilbert = hilbert * nk.hilbert.Fock(n_max=1) * nk.hilbert.Spin(1)
    create = np.array([[0.0, 0.0], [1.0, 0.0]])  # |1⟩⟨0| in local indices (n)
    raise_link = np.diag([np.sqrt(2.0), np.sqrt(2.0)], 1)  # S⁺ in local indices l = 1 − E: |l−1⟩⟨l|
    hop = np.kron(np.kron(create, raise_link), create.T)
    h = sum(nk.operator.LocalOperator(hilbert, -(hop + hop.T), [2 * j, 2 * j + 1, 2 * j + 2])
            for j in range(n_blocks - 1))
    h += sum(nk.operator.LocalOperator(hilbert, mass * (-1) ** j * np.diag([0.0, 1.0]), [2 * j])
             for j in range(n_blocks))
    tokens = TokenMap.of_hilbert(hilbert, [[2 * j, 2 * j + 1] for j in range(n_blocks)])
    return System(builder="test.gauge", hilbert=hilbert, hamiltonian=h, graph=nk.graph.Chain(n_blocks, pbc=False),
                  constraint=constraint, tokens=tokens)


def _brute_force_values(c):
    values = np.array(list(itertools.product(range(6), repeat=c.n_sites)))
    return values[np.asarray(c.is_satisfied(values))]


CASES = [GaussChain(4), GaussChain(5, left=1), GaussChain(4, left=-1, right=0), GaussChain(5, right=1)]


@pytest.mark.parametrize("constraint", CASES, ids=lambda c: str(c.describe()))
def test_gauge_sector_equals_brute_force(constraint):
    s = gauge_system(constraint.n_sites, constraint)
    assert s.n_tokens == constraint.n_sites and s.n_sites == 2 * constraint.n_sites
    assert s.token_map.token_sizes == (6,) * constraint.n_sites and s.describe()["tokens"]["mode_sizes"][:2] == [2, 3]
    expected = _brute_force_values(constraint)
    np.testing.assert_array_equal(constraint.sector(), expected)
    assert constraint.count() == len(expected) == exact.sector_dimension(s)
    # Hilbert configurations: the whole space filtered by the Gauss law, in NetKet's basis order
    states = np.asarray(s.hilbert.all_states())
    local = np.asarray(s.hilbert.states_to_local_indices(states))
    ok = np.asarray(constraint.is_satisfied(s.token_map.encode(local)))
    np.testing.assert_array_equal(s.sector_states(), states[ok])


def test_gauge_ground_state_in_the_sector_equals_dense_diagonalisation():
    constraint = GaussChain(4, left=0, right=0)
    s = gauge_system(4, constraint)
    states = np.asarray(s.hilbert.all_states())
    ok = np.asarray(constraint.is_satisfied(s.token_map.encode(np.asarray(s.hilbert.states_to_local_indices(states)))))
    h = s.hamiltonian.to_dense()
    assert np.abs(h[np.ix_(ok, ~ok)]).max() == 0  # the Hamiltonian keeps the Gauss-law sector
    e0 = np.linalg.eigvalsh(h[np.ix_(ok, ok)])[0]
    g = exact.ground_state(s)
    assert g.sector_dim == ok.sum() and g.energy == pytest.approx(e0, abs=1e-12)
    assert np.abs(g.state[~ok]).max() == 0
    with pytest.raises(TypeError, match="homogeneous"):
        s.sector_hilbert()


def test_gauge_count_far_beyond_enumeration():
    """Transfer matrix over the link value: T_j[E, E'] = 1 if E' − E = q for an allowed matter value at site j."""
    n = 60
    even = np.array([[1 if e2 - e1 in (0, 1) else 0 for e2 in (-1, 0, 1)] for e1 in (-1, 0, 1)], dtype=object)
    odd = np.array([[1 if e2 - e1 in (0, -1) else 0 for e2 in (-1, 0, 1)] for e1 in (-1, 0, 1)], dtype=object)
    start = np.array([0, 1, 0], dtype=object)  # E_L = 0
    for j in range(n):
        start = start @ (even if j % 2 == 0 else odd)
    assert GaussChain(n).count() == int(start.sum()) > 2**40
    assert GaussChain(n, right=0).count() == int(start[1])
    with pytest.raises(ValueError, match="more than"):
        GaussChain(n).sector()
    with pytest.raises(ValueError, match="no configuration"):
        GaussChain(2, left=-1, right=1)  # one even site can raise E by one only


def test_random_configurations_stay_in_the_sector():
    constraint = GaussChain(7, left=1, right=-1)
    values = random_configurations(constraint, (6,) * 7, jax.random.PRNGKey(0), 500)
    assert values.shape == (500, 7) and bool(np.asarray(constraint.is_satisfied(values)).all())
    assert len({tuple(v) for v in np.asarray(values).tolist()}) > 1


def test_gauge_system_end_to_end_with_an_autoregressive_ansatz():
    """Ground layer and autoregressive base together: an ansatz on the system's tokens and Gauss law is sampled by
    `make_state` with the exact token sampler, every sample obeys the Gauss law, and the sampled energy agrees with
    the full sum over the sector; an ansatz on other tokens is refused."""
    from ansatze import ARTransformer
    from nqs.states import make_state

    constraint = GaussChain(4, left=0, right=0)
    s = gauge_system(4, constraint)
    model = ARTransformer(s.hilbert, layers=1, features=8, heads=2, tokens=s.token_map, constraint=s.constraint)
    sampled = make_state(s, model, n_samples=2048, seed=0)
    assert type(sampled.sampler).__name__ == "TokenSampler"
    x = np.asarray(sampled.samples).reshape(-1, s.n_sites)
    local = np.asarray(s.hilbert.states_to_local_indices(x))
    assert bool(np.asarray(constraint.is_satisfied(s.token_map.encode(local))).all())
    full = make_state(s, model, n_samples=0, seed=0)
    exact_energy, estimate = full.expect(s.hamiltonian).mean.real, sampled.expect(s.hamiltonian)
    assert abs(estimate.mean.real - exact_energy) < 5 * estimate.error_of_mean + 1e-9
    other = TokenMap.of_hilbert(s.hilbert, [[2 * j + 1, 2 * j] for j in range(4)])  # (link, matter): other values
    with pytest.raises(ValueError, match="tokens"):
        make_state(s, ARTransformer(s.hilbert, layers=1, features=8, heads=2, tokens=other, constraint=constraint),
                   n_samples=16, seed=0)
