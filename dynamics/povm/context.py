"""The variational state as a probability distribution on POVM outcomes, with the system's POVM Lindbladian.

The state of N qubits is the distribution P_θ(a) = Tr[ρ M^(a)] over the 4^N outcome strings of an informationally
complete POVM (`nqs.povm`), given by an autoregressive model with ``machine_pow = 1`` (its output is log P_θ(a),
normalised by construction) and sampled exactly by NetKet's `ARDirectSampler`. The Lindblad equation becomes

    dP(a)/dt = (L P)(a) = Σ_b L_ab P(b),   L_ab = Tr[M^a 𝓛(N^b)]   (`nqs.povm.PovmLindbladian`),

and the local Lindbladian on an outcome string is L_loc(a) = (L P_θ)(a)/P_θ(a) = Σ_b L_ab P_θ(b)/P_θ(a), with the b
from `PovmLindbladian.connected(a)`.

**Modes.** A `netket.vqs.FullSumState` selects full summation over all 4^N outcomes (N ≤ `MAX_FULL_SUM_SITES`: the
sums are exact, L P is applied blockwise to the whole vector, and an autoregressive model yields all 4^N log P from
one pass over 4^(N−1) strings, `PovmContext.log_probabilities`); an `MCState` with `ARDirectSampler` selects
sampling with `vstate.n_samples` samples per evaluation. The variational state lives on a local-dimension-4 space,
``netket.hilbert.Fock(n_max=3, N=N)``; the `System` supplies H and the jump operators on the qubit space.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import netket as nk
import numpy as np

from nqs.local_energy import PrefixReuseMCState
from nqs.povm import POVM, PovmLindbladian, povm_lindbladian
from nqs.prefix_reuse import ReusePlan
from nqs.system import System

MAX_FULL_SUM_SITES = 9  # 4^9 = 262 144 outcomes (the 3×3 lattice): one pass over 4^8 strings, L P by blocks
LP_CHUNK_CONFIGS = 16384  # connected strings per model evaluation in `PovmContext.lp_ratios`


def all_outcomes(n_sites: int) -> np.ndarray:
    """All 4^N outcome strings (4^N, N), a_0 most significant (the order of `nqs.povm.probabilities`)."""
    return np.stack(np.unravel_index(np.arange(4**n_sites), (4,) * n_sites), axis=1).astype(np.int32)


def apply_lindbladian(lindbladian: PovmLindbladian, P: jax.Array) -> jax.Array:
    """(L P) for a full vector P (4^N,) in jax.numpy (differentiable), block by block."""
    n = lindbladian.n_sites
    t = P.reshape((4,) * n)
    out = jnp.zeros_like(t)
    for sites, block in lindbladian.terms:
        k = len(sites)
        b = jnp.asarray(block.reshape((4,) * (2 * k)))
        moved = jnp.tensordot(b, t, axes=(list(range(k, 2 * k)), list(sites)))
        out = out + jnp.moveaxis(moved, list(range(k)), list(sites))
    return out.reshape(-1)


@dataclasses.dataclass(eq=False)
class PovmContext:
    """An autoregressive probability model on POVM outcomes with the POVM Lindbladian of a system.

    Attributes:
        system: the open system.
        lindbladian: its POVM Lindbladian L.
        model, model_state: the Flax model (output log P_θ) and its non-parameter variables.
        sampler, n_samples: the exact sampler and samples per evaluation (sampled mode; None and 0 in full sums).
        full_sum: sums over all 4^N outcomes instead of samples.
        prefix_reuse: evaluate P_θ at the connected strings by prefix reuse (`nqs.prefix_reuse`) when the model
            supports it (sampled mode).
        reuse_buckets: the plan's bucket count (None: automatic, `nqs.prefix_reuse.ReusePlan.build`); a
            `PrefixReuseMCState`'s `n_buckets`.
    """

    system: System
    lindbladian: PovmLindbladian
    model: Any
    model_state: dict
    sampler: Any
    n_samples: int
    full_sum: bool
    prefix_reuse: bool = False
    reuse_buckets: int | None = None

    @property
    def n_sites(self) -> int:
        return self.system.n_sites

    @functools.cached_property
    def outcomes(self) -> np.ndarray:
        return all_outcomes(self.n_sites)

    def log_prob(self, params, a):
        return self.model.apply({"params": params, **self.model_state}, a)

    @functools.cached_property
    def _shared_prefix_layout(self) -> tuple[int, np.ndarray, np.ndarray] | None:
        """For a NetKet `AbstractARNN`: (last generated site, the 4^(N−1) strings with that site at 0, the
        gather index from their (string, value of the last site) table to the `outcomes` order); else None."""
        if not isinstance(self.model, nk.models.AbstractARNN):
            return None
        n = self.n_sites
        with jax.ensure_compile_time_eval():  # first use may be inside a jit trace
            last = int(np.asarray(self.model.reorder(jnp.arange(n)[None], axis=1))[0, -1])
        base = self.outcomes[self.outcomes[:, last] == 0]
        weights = 4 ** np.arange(n - 1, -1, -1)
        table_index = (base @ weights)[:, None] + np.arange(4)[None, :] * weights[last]  # (4^(N−1), 4)
        gather = np.empty(4**n, dtype=np.int64)
        gather[table_index.reshape(-1)] = np.arange(4**n)
        return last, base, gather

    def log_probabilities(self, params) -> jax.Array:
        """log P_θ(a) for all 4^N outcomes, in the order of `outcomes`.

        For an autoregressive model (NetKet `AbstractARNN`) the conditional of a site depends only on the
        sites generated before it, so one parallel pass over the 4^(N−1) strings whose last generated site is
        0 yields every conditional: log P(a) = Σ_{i ≠ last} log q_i(a_i | a_<i) + log q_last(a_last | a_<last),
        the last factor read off for all four values. That is 4× fewer model evaluations than evaluating the
        4^N outcomes one by one (the path of other models, e.g. String States).
        """
        layout = self._shared_prefix_layout
        if layout is None:
            return self.log_prob(params, jnp.asarray(self.outcomes))
        last, base, gather = layout
        variables = {"params": params, **self.model_state}
        log_q = self.model.apply(variables, jnp.asarray(base), method=self.model.conditionals_log_psi)
        log_q = log_q * self.model.machine_pow  # log q from log ψ_i = log q_i / machine_pow (= 1 here)
        taken = jnp.take_along_axis(log_q, jnp.asarray(base)[..., None], axis=-1)[..., 0]  # (4^(N−1), N)
        prefix = jnp.sum(taken, axis=1) - taken[:, last]
        return (prefix[:, None] + log_q[:, last, :]).reshape(-1)[jnp.asarray(gather)]

    def probabilities(self, params) -> jax.Array:
        return jnp.exp(self.log_probabilities(params))

    def sample(self, params, key, n: int) -> jax.Array:
        variables = {"params": params, **self.model_state}
        state = self.sampler.init_state(self.model, variables, seed=key)
        chain = -(-n // self.sampler.n_batches)
        x, _ = self.sampler.sample(self.model, variables, state=state, chain_length=chain)
        return x.reshape(-1, self.n_sites)[:n].astype(jnp.int32)

    @functools.cached_property
    def reuse_plan(self) -> ReusePlan | None:
        """The prefix-reuse plan of the model and L's moves, or None (off, or a model without the protocol)."""
        if not self.prefix_reuse:
            return None
        return ReusePlan.build(self.model, self.lindbladian.moves, self.reuse_buckets)

    def lp_ratios(self, params, a, log_p_ref, max_configs: int = LP_CHUNK_CONFIGS, log_p_a=None):
        """Σ_b L_ab P_θ(b) / exp(log_p_ref(a)) for outcome strings a (B, N).

        The diagonal b = a needs log P_θ(a) only (`log_p_a` when the caller has it). The B·n_moves
        off-diagonal strings go through the model in chunks of about `max_configs` under `jax.checkpoint`,
        so a gradient stores one chunk's activations instead of all of them; with a `reuse_plan` each chunk's
        strings are evaluated from the prefix cache of their a (`nqs.prefix_reuse`).
        """
        moves, plan = self.lindbladian.moves, self.reuse_plan
        variables = {"params": params, **self.model_state}
        n = self.n_sites

        def ratios(args):
            a_k, ref_k, log_a_k = args
            diagonal, mels = moves.elements(a_k)
            if plan is None:
                conns = moves.apply_moves(a_k)
                log_pb = self.log_prob(params, conns.reshape(-1, n)).reshape(mels.shape)
            else:
                log_a_k, log_pb = plan.connected_log_psi(variables, a_k)
            return diagonal * jnp.exp(log_a_k - ref_k) + jnp.sum(mels * jnp.exp(log_pb - ref_k[:, None]), axis=1)

        if log_p_a is None and plan is None:
            log_p_a = self.log_prob(params, a)
        log_p_a = log_p_ref if log_p_a is None else log_p_a  # a placeholder: the plan computes log P(a) itself
        b, c = a.shape[0], max(moves.n_moves, 1)
        per_chunk = max(1, max_configs // c)
        if b <= per_chunk:
            return ratios((a, log_p_ref, log_p_a))
        n_chunks = -(-b // per_chunk)
        pad = n_chunks * per_chunk - b

        def chunks(x):
            x = jnp.concatenate([x, jnp.repeat(x[:1], pad, axis=0)]) if pad else x
            return x.reshape((n_chunks, per_chunk) + x.shape[1:])

        out = jax.lax.map(jax.checkpoint(ratios), (chunks(jnp.asarray(a)), chunks(log_p_ref), chunks(log_p_a)))
        return out.reshape(-1)[:b]


def make_context(system: System, vstate: Any, povm: POVM | None) -> PovmContext:
    """The `PovmContext` of a variational state (full sum for a `FullSumState`, sampled for an `MCState`).

    Raises:
        ValueError: a closed system, a state not on Fock(n_max=3, N), a model that does not return log P, complex
            parameters, an unnormalised model or too many sites for full summation.
        TypeError: a sampler other than `ARDirectSampler`, or another kind of variational state.
    """
    if not system.is_open:
        raise ValueError("POVM dynamics needs an open system (with jump operators)")
    hi = vstate.hilbert
    if hi.size != system.n_sites or hi.local_size != 4 or list(np.asarray(hi.local_states)) != [0, 1, 2, 3]:
        raise ValueError(
            f"the variational state must live on {system.n_sites} sites with local values 0..3 "
            f"(netket.hilbert.Fock(n_max=3, N={system.n_sites})), got {hi}"
        )
    model = vstate.model
    if getattr(model, "machine_pow", 1) != 1:
        raise ValueError("the model must return log P (machine_pow = 1), a normalised distribution over outcomes")
    leaves = jax.tree_util.tree_leaves(vstate.parameters)
    if any(jnp.iscomplexobj(x) for x in leaves):
        raise ValueError("POVM methods need real parameters (P_θ is a real distribution)")
    model_state = dict(vstate.model_state or {})
    lindbladian = povm_lindbladian(system, povm or POVM.tetrahedral())
    if isinstance(vstate, nk.vqs.FullSumState):
        if system.n_sites > MAX_FULL_SUM_SITES:
            raise ValueError(f"full summation needs N <= {MAX_FULL_SUM_SITES}, got {system.n_sites}")
        ctx = PovmContext(system, lindbladian, model, model_state, None, 0, True)
        P = ctx.probabilities(vstate.parameters)
        total = float(jnp.sum(P.astype(jnp.float64)))
        if abs(total - 1) > (1e-8 if P.dtype == jnp.float64 else 1e-5):  # float32 models (--dtype) round at 1e-7
            raise ValueError(f"the model is not normalised (Σ_a P(a) = {total}); use an autoregressive model")
        return ctx
    if isinstance(vstate, nk.vqs.MCState):
        sampler = vstate.sampler
        if not isinstance(sampler, nk.sampler.ARDirectSampler):
            raise TypeError("sampled POVM methods need the exact autoregressive sampler nk.sampler.ARDirectSampler")
        return PovmContext(system, lindbladian, model, model_state, sampler, int(vstate.n_samples), False,
                           prefix_reuse=isinstance(vstate, PrefixReuseMCState),
                           reuse_buckets=getattr(vstate, "n_buckets", None))
    raise TypeError(f"expected a netket FullSumState or MCState, got {type(vstate).__name__}")


@jax.jit
def as_jit_output(tree):
    """A copy laid out like the outputs of jitted functions (the same sharding), so that feeding the
    initial parameters and later the updated ones to a jitted step does not compile it twice."""
    return jax.tree_util.tree_map(jnp.copy, tree)


def set_parameters(vstate: Any, params) -> None:
    """Replace the parameters of `vstate` (an `MCState` drops its samples)."""
    vstate.parameters = params
    if isinstance(vstate, nk.vqs.MCState):
        vstate.reset()
