"""Variational states of a System: which NetKet state and sampler a model gets (`make_state`), and the check that a
model was built for the system (`check_model_matches`).

A constrained System keeps its unconstrained `hilbert` (exact autoregressive sampling needs it; its operators act
there) and every state lives on it. A model *carries the sector* when it has the system's constraint (autoregressive
ansätze mask their conditionals with it, so ψ = 0 off the sector). Such a model is summed over the sector
(`nqs.sector_state.SectorFullSumState`, so a small gauge sector of a huge space is summed exactly) or sampled
(its exact sampler, `ARDirectSampler`, `ExactSampler`) as on an unconstrained system. Any other model is sampled by
Metropolis with a rule that keeps the sector, from chains started inside it (`SectorExchangeRule`); a full sum,
enumerated or autoregressive sampling of such a model would leave the sector and is refused.

Why not NetKet's constrained space (`System.sector_hilbert()`): an `MCState` on it refuses every operator of the
System, which acts on `hilbert` ("Non matching hilbert spaces", `netket.vqs.mc.common.check_hilbert`, NetKet 3.23).
The Metropolis chains of a model that does not carry the sector stay inside it, but the local estimator
Σ_x' O_xx' ψ(x')/ψ(x) still evaluates ψ at the configurations x' an operator reaches: operators that keep the sector
(the Hamiltonian) give the expectation value of the projected state P ψ, operators that leave it (σˣ_i in a fixed-S^z
sector) ⟨Pψ|O|ψ⟩/⟨Pψ|Pψ⟩ — NetKet's convention on constrained spaces too. Models that carry the sector have no such
caveat.
"""

from __future__ import annotations

from typing import Any

import jax
import netket as nk
import numpy as np
from netket.utils import struct

from nqs.constraint import Constraint, U1Constraint
from nqs.local_energy import PrefixReuseMCState, supports_prefix_reuse
from nqs.multi_u1 import MultiU1Constraint
from nqs.sector_state import SectorFullSumState
from nqs.sectors import random_configurations
from nqs.system import System
from nqs.tokens import TokenMap

MAX_ENUMERATED_STATES = 2**22


def check_model_matches(system: System, model: Any) -> None:
    """Raise ValueError when an ansatz was built for another Hilbert space or constraint than `system`. A model built
    on the sector's space (`system.sector_hilbert()`, e.g. NetKet's `Slater2nd`, which needs fixed particle numbers)
    matches: it is sampled by a rule that keeps the sector."""
    hilbert = getattr(model, "hilbert", None)
    if hilbert is not None and hilbert != system.hilbert and (system.constraint is None
                                                              or hilbert != system.sector_hilbert()):
        raise ValueError(f"the ansatz was built for {hilbert}, but the system's Hilbert space is {system.hilbert}"
                         + ("" if system.constraint is None else f" (sector: {system.sector_hilbert()})"))
    constraint = getattr(model, "constraint", None)
    if constraint is not None and system.constraint is not None and constraint != system.constraint:
        raise ValueError(
            f"the ansatz uses constraint {constraint.describe()}, the system has {system.constraint.describe()}"
        )
    if constraint is not None and system.constraint is None:
        raise ValueError("the ansatz is constrained but the system has no constraint")
    tokens = getattr(model, "tokens", None)
    if isinstance(tokens, TokenMap) and tokens != system.token_map:
        raise ValueError(f"the ansatz generates the tokens {tokens.describe()}, the system's tokens are "
                         f"{system.token_map.describe()}")
    if tokens is None and constraint is not None and not system.token_map.is_identity:
        raise ValueError("the system groups its modes into tokens: build the ansatz with tokens=system.token_map")


class SectorExchangeRule(nk.sampler.rules.ExchangeRule):
    """NetKet's exchange rule (swap the values of the two modes of a random cluster, `clusters`) with chains started
    inside the sector: `random_state` draws token values from the constraint's masks (`nqs.sectors.
    random_configurations`) and decodes them into modes with the token map. `sector_rule` pairs only modes whose
    charges are equal, so the chains never leave the sector. On spinful fermions the clusters are the same-spin
    modes of neighbouring orbitals: NetKet's `MetropolisFermionHop` (an exchange rule on that mode graph), with
    chains that start in the sector instead of anywhere in Fock space."""

    constraint: Constraint = struct.field(pytree_node=False)
    tokens: TokenMap = struct.field(pytree_node=False)

    def __init__(self, constraint: Constraint, tokens: TokenMap, *, clusters):
        super().__init__(clusters=clusters)
        self.constraint = constraint
        self.tokens = tokens

    def random_state(self, sampler, machine, params, sampler_state, key):
        values = random_configurations(self.constraint, self.tokens.token_sizes, key, sampler.n_batches)
        return sampler.hilbert.local_indices_to_states(self.tokens.decode(values)).astype(sampler.dtype)

    def __repr__(self):
        return f"SectorExchangeRule({self.constraint.describe()}, # of clusters: {len(self.clusters)})"


def _charge_table(constraint: Constraint) -> np.ndarray | None:
    """The charge vector of every token value, (local_size, n_charges), of a U(1)-type constraint, else None."""
    if isinstance(constraint, U1Constraint):
        return np.asarray(constraint.charges)[:, None]
    if isinstance(constraint, MultiU1Constraint):
        return np.asarray(constraint.charges).T
    return None


def _mode_charges(constraint: Constraint, tokens: TokenMap) -> dict[int, tuple] | None:
    """Per-mode charge contributions c_m(digit) when the token charges are additive over their modes,
    q(v_t) = q(0) + Σ_j c_{m_j}(s_j); None otherwise (then no exchange of two modes is known to keep the sector)."""
    table = _charge_table(constraint)
    if table is None:
        return None
    out = {}
    for modes in tokens.modes:
        sizes = [tokens.mode_sizes[m] for m in modes]
        places = [int(np.prod(sizes[j + 1:])) for j in range(len(modes))]
        for j, m in enumerate(modes):
            out[m] = tuple(tuple(table[d * places[j]] - table[0]) for d in range(sizes[j]))
        for value in range(int(np.prod(sizes))):
            digits = [(value // places[j]) % sizes[j] for j in range(len(modes))]
            if not np.array_equal(table[value] - table[0], np.sum([out[m][d] for m, d in zip(modes, digits)], axis=0)):
                return None
    return out


def sector_rule(system: System) -> nk.sampler.rules.MetropolisRule:
    """A Metropolis rule whose chains stay in the system's sector: exchanges of two modes with equal charges in
    tokens joined by a graph edge (all pairs of tokens when there is no connected graph), for U(1) charges (one or
    several, `U1Constraint`/`MultiU1Constraint`) that add up over the modes of a token, on a homogeneous space —
    spin flips that keep S^z, same-spin fermion hops that keep N↑ and N↓. ValueError, naming the alternatives, for
    constraints no such rule is known for."""
    constraint, tokens, n = system.constraint, system.token_map, system.n_tokens
    charges = _mode_charges(constraint, tokens) if isinstance(system.hilbert, nk.hilbert.HomogeneousHilbert) else None
    if charges is None or n < 2:
        raise ValueError(
            f"no Metropolis rule that keeps the sector of {constraint.describe()} is known here: use a model that "
            "samples it exactly (an autoregressive ansatz built with constraint=system.constraint, or a model with an "
            "exact_sampler())"
        )
    graph = system.graph
    if graph is not None and graph.is_connected():
        pairs = [tuple(edge) for edge in graph.edges()]
    else:
        pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    clusters = [(a, b) for i, j in pairs for a in tokens.modes[i] for b in tokens.modes[j] if charges[a] == charges[b]]
    return SectorExchangeRule(constraint, tokens, clusters=sorted(set(clusters)))


def _leaves_sector(system: System, what: str, metropolis: bool = True) -> ValueError:
    alternatives = "sample it by Metropolis (n_samples > 0: a rule that keeps the sector), " if metropolis else ""
    return ValueError(
        f"the model does not carry the system's constraint {system.constraint.describe()}, so {what} over "
        "system.hilbert would leave the sector: build it with constraint=system.constraint (autoregressive ansätze "
        f"mask the sector exactly), {alternatives}or build the system without the constraint"
    )


def _sampler(system: System, model: Any, n_chains: int, enumerate_samples: bool) -> tuple[Any, int | None]:
    """(sampler, n_discard_per_chain) for `make_state`."""
    carries_sector = system.constraint is None or getattr(model, "constraint", None) is not None
    if enumerate_samples:
        if not carries_sector:
            raise _leaves_sector(system, "enumerated sampling")
        if not system.hilbert.is_indexable or system.hilbert.n_states > MAX_ENUMERATED_STATES:
            raise ValueError(f"enumerated sampling needs at most {MAX_ENUMERATED_STATES} basis states; "
                             f"this Hilbert space has {system.hilbert.size} sites: use Metropolis or an exact sampler")
        return nk.sampler.ExactSampler(system.hilbert), 0
    exact_sampler = getattr(model, "exact_sampler", None)
    if callable(exact_sampler) or isinstance(model, nk.models.AbstractARNN):
        if not carries_sector:
            raise _leaves_sector(system, "its exact sampler", metropolis=False)
        return (exact_sampler() if callable(exact_sampler) else nk.sampler.ARDirectSampler(system.hilbert)), 0
    n_chains = max(n_chains, jax.device_count())
    if system.constraint is None:
        return nk.sampler.MetropolisLocal(system.hilbert, n_chains=n_chains), None
    return nk.sampler.MetropolisSampler(system.hilbert, sector_rule(system), n_chains=n_chains), None


def mc_state(sampler: Any, model: Any, *, prefix_reuse: bool = True, n_buckets: int | None = None,
             **kwargs) -> nk.vqs.MCState:
    """NetKet's `MCState(sampler, model, **kwargs)`; a `nqs.local_energy.PrefixReuseMCState` (local energies by
    prefix reuse, with `n_buckets` buckets: None automatic) when the model follows the prefix-reuse protocol and
    `prefix_reuse` is on."""
    if prefix_reuse and supports_prefix_reuse(model):
        return PrefixReuseMCState(sampler, model, n_buckets=n_buckets, **kwargs)
    return nk.vqs.MCState(sampler, model, **kwargs)


def make_state(system: System, model: Any, *, n_samples: int, seed: int, chunk_size: int | None = None,
               n_chains: int = 16, enumerate_samples: bool = False,
               prefix_reuse: bool = True) -> nk.vqs.MCState | nk.vqs.FullSumState:
    """A NetKet variational state of `model` on `system.hilbert` (module docstring for constrained systems).

    n_samples = 0: a `FullSumState`, for a constrained system a `SectorFullSumState` that sums over the sector's
    configurations only (the model must carry the constraint or be built on `system.sector_hilbert()`). Otherwise an
    `MCState` sampled by the model's own exact sampler when it offers one (`model.exact_sampler()`, e.g. String
    States and symmetrised models), exact `ARDirectSampler` for autoregressive models, else Metropolis with `n_chains`
    chains (at least one per device): single-site flips (`MetropolisLocal`) when unconstrained, `sector_rule` when
    constrained. enumerate_samples: i.i.d. samples for any model from NetKet's `ExactSampler`, which evaluates |ψ|²
    on every basis state per draw (at most `MAX_ENUMERATED_STATES` states): a check of Metropolis autocorrelation
    and mixing on small systems. A sampled autoregressive model gets a `PrefixReuseMCState` (`mc_state`: local
    energies by prefix reuse, same numbers as NetKet's path to round-off) unless prefix_reuse=False. ValueError
    for a model built for another system, or a sum/sampler that would leave
    the sector."""
    check_model_matches(system, model)
    if n_samples == 0:
        if system.constraint is None:
            return nk.vqs.FullSumState(system.hilbert, model, seed=seed, chunk_size=chunk_size)
        if getattr(model, "constraint", None) is None and getattr(model, "hilbert", None) != system.sector_hilbert():
            raise _leaves_sector(system, "a full sum")
        return SectorFullSumState(system.hilbert, model, configurations=system.sector_states(), seed=seed,
                                  chunk_size=chunk_size)
    sampler, n_discard = _sampler(system, model, n_chains, enumerate_samples)
    return mc_state(sampler, model, prefix_reuse=prefix_reuse, n_samples=n_samples, n_discard_per_chain=n_discard,
                    chunk_size=chunk_size, seed=seed, sampler_seed=seed + 1)
