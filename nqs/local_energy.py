"""Local values O_loc(x) = Σ_x′ ⟨x|O|x′⟩ ψ(x′)/ψ(x) by prefix reuse where the model supports it, NetKet's generic
path otherwise — in NetKet's estimators (`PrefixReuseMCState`) and in our own methods (`LocalEnergy`).

`PrefixReuseMCState` is NetKet's `MCState` with one difference: for an operator that is a sum of local terms
(`nqs.moves.local_moves`) and a model that follows the prefix-reuse protocol (`nqs.prefix_reuse`), the local
kernel NetKet's `expect`, `expect_and_grad`, `expect_and_forces` and `local_estimators` use is the prefix-reuse one
(registered on NetKet's dispatch of `get_local_kernel_arguments`/`get_local_kernel`, for the unchunked and chunked
signatures). Every other pair (a fermionic operator, a model without the protocol) takes NetKet's own kernel, so
the state is a drop-in `MCState`: its samples, sampler, serialisation (registered with flax like `MCState`'s) and
drivers are NetKet's. `nqs.states.make_state` returns it for sampled autoregressive models.

Divergence from NetKet, on purpose: NetKet's kernels evaluate log ψ on every connected configuration with a full
forward pass; nothing in NetKet knows that an autoregressive model's conditionals before the first changed token
are those of x (issue 31).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import netket as nk
from flax import serialization
from netket.operator import DiscreteJaxOperator, DiscreteOperator
from netket.utils import HashablePartial
from netket.vqs.mc import get_local_kernel, get_local_kernel_arguments
from netket.vqs.mc.mc_state.state import deserialize_MCState, serialize_MCState

from nqs.moves import local_moves
from nqs.prefix_reuse import ReusePlan, generation_steps


def supports_prefix_reuse(model: Any) -> bool:
    """The model follows the prefix-reuse protocol (`nqs.prefix_reuse`)."""
    return generation_steps(model) is not None


def reuse_plan(model: Any, operator: Any, n_buckets: int | None = None) -> ReusePlan | None:
    """The prefix-reuse plan of `model` and `operator`, or None when either does not allow it."""
    if not supports_prefix_reuse(model):
        return None
    moves = local_moves(operator, getattr(model, "hilbert", None))
    return None if moves is None else ReusePlan.build(model, moves, n_buckets)


def _chunked(fn, chunk_size: int | None):
    """fn over the leading axis of x in chunks of `chunk_size` (the last one padded), one chunk in memory."""
    if chunk_size is None:
        return fn

    def chunked(variables, x):
        n = x.shape[0]
        if n <= chunk_size:
            return fn(variables, x)
        n_chunks = -(-n // chunk_size)
        padded = jnp.concatenate([x, jnp.repeat(x[:1], n_chunks * chunk_size - n, axis=0)])
        out = jax.lax.map(lambda xc: fn(variables, xc), padded.reshape((n_chunks, chunk_size) + x.shape[1:]))
        return jax.tree_util.tree_map(lambda a: a.reshape((-1,) + a.shape[2:])[:n], out)

    return chunked


@dataclasses.dataclass(frozen=True, eq=False)
class LocalEnergy:
    """(log ψ(x), O_loc(x)) of one model and operator, for our own methods (TENG, the TDVP residual, POVM-TDVP).

    Called as `local_energy(logpsi, params, x)` with the method's log ψ function (used by the generic path only)
    and its parameters; `model_state` are the model's other variables (prefix reuse applies the model itself).
    Use `LocalEnergy.of(model, operator, ...)`."""

    operator: Any
    plan: ReusePlan | None
    model_state: Any = None
    chunk_size: int | None = None

    @classmethod
    def of(cls, model: Any, operator: Any, *, model_state: Any = None, prefix_reuse: bool = True,
           n_buckets: int | None = None, chunk_size: int | None = None) -> LocalEnergy:
        """Prefix reuse when `prefix_reuse` and the model and operator allow it; else NetKet's `get_conn_padded`
        of a jax operator (whose lazily built tables are built here, outside any trace)."""
        plan = reuse_plan(model, operator, n_buckets) if prefix_reuse else None
        if plan is None:
            hilbert = operator.hilbert
            operator.get_conn_padded(hilbert.local_indices_to_states(jnp.zeros((1, hilbert.size), dtype=int)))
        return cls(operator, plan, dict(model_state or {}), chunk_size)

    @classmethod
    def for_state(cls, vstate: Any, operator: Any) -> LocalEnergy:
        """As `of` for a NetKet state's model, model state and chunk size; prefix reuse unless the state is a
        sampled `MCState` built without it (`nqs.states.make_state(..., prefix_reuse=False)`)."""
        opted_out = isinstance(vstate, nk.vqs.MCState) and not isinstance(vstate, PrefixReuseMCState)
        n_buckets = getattr(vstate, "n_buckets", None)
        return cls.of(vstate.model, operator, model_state=vstate.model_state, prefix_reuse=not opted_out,
                      n_buckets=n_buckets, chunk_size=vstate.chunk_size)

    @property
    def uses_prefix_reuse(self) -> bool:
        return self.plan is not None

    def __call__(self, logpsi, params: Any, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        if self.plan is not None:
            return _chunked(self.plan.local_values, self.chunk_size)({"params": params, **self.model_state}, x)

        def generic(p, xs):
            log_x = logpsi(p, xs)
            xp, mels = self.operator.get_conn_padded(xs)
            log_xp = logpsi(p, xp.reshape(-1, xs.shape[-1])).reshape(mels.shape)
            return log_x, jnp.sum(mels * jnp.exp(log_xp - log_x[:, None]), axis=-1)

        return _chunked(generic, self.chunk_size)(params, x)


class PrefixReuseMCState(nk.vqs.MCState):
    """NetKet's `MCState` whose local estimators use prefix reuse (module docstring).

    Args (beyond `MCState`'s): n_buckets — the static start positions per model (more buckets, less suffix work,
    more compiled shapes; None: `nqs.prefix_reuse.default_buckets`)."""

    def __init__(self, *args, n_buckets: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.n_buckets = None if n_buckets is None else int(n_buckets)
        self._plans: dict[int, tuple[Any, ReusePlan | None]] = {}

    def reuse_plan(self, operator: Any) -> ReusePlan | None:
        """The cached plan for `operator` (one per operator object: a new plan would recompile the estimators)."""
        entry = self._plans.get(id(operator))
        if entry is None or entry[0] is not operator:
            entry = (operator, reuse_plan(self.model, operator, self.n_buckets))
            self._plans[id(operator)] = entry
        return entry[1]

    def __repr__(self):
        return "PrefixReuse" + super().__repr__()


def _reuse_kernel(plan: ReusePlan, logpsi, variables, x, args, *, chunk_size: int | None = None):
    """NetKet's local-kernel signature; `logpsi` and `args` are unused (the plan applies the model)."""
    return _chunked(plan.local_values, chunk_size)(variables, x)[1]


def _arguments(vstate: PrefixReuseMCState, operator: DiscreteOperator):
    if vstate.reuse_plan(operator) is None:
        return get_local_kernel_arguments.invoke(nk.vqs.MCState, type(operator))(vstate, operator)
    if vstate.hilbert != operator.hilbert:
        raise ValueError(f"the operator acts on {operator.hilbert}, the state lives on {vstate.hilbert}")
    return vstate.samples, None


def _kernel(vstate: PrefixReuseMCState, operator: DiscreteOperator, chunk_size: int | None):
    plan = vstate.reuse_plan(operator)
    if plan is None:
        kinds = (nk.vqs.MCState, type(operator)) + (() if chunk_size is None else (int,))
        return get_local_kernel.invoke(*kinds)(vstate, operator, *(() if chunk_size is None else (chunk_size,)))
    return HashablePartial(_reuse_kernel, plan)


# NetKet registers (MCState, DiscreteOperator) and (MCState, DiscreteJaxOperator): both are overridden here, else
# (PrefixReuseMCState, DiscreteOperator) would be ambiguous against (MCState, DiscreteJaxOperator).
@get_local_kernel_arguments.dispatch
def _arguments_numba(vstate: PrefixReuseMCState, operator: DiscreteOperator):
    return _arguments(vstate, operator)


@get_local_kernel_arguments.dispatch
def _arguments_jax(vstate: PrefixReuseMCState, operator: DiscreteJaxOperator):
    return _arguments(vstate, operator)


@get_local_kernel.dispatch
def _kernel_numba(vstate: PrefixReuseMCState, operator: DiscreteOperator):
    return _kernel(vstate, operator, None)


@get_local_kernel.dispatch
def _kernel_jax(vstate: PrefixReuseMCState, operator: DiscreteJaxOperator):
    return _kernel(vstate, operator, None)


@get_local_kernel.dispatch
def _kernel_numba_chunked(vstate: PrefixReuseMCState, operator: DiscreteOperator, chunk_size: int):
    return _kernel(vstate, operator, chunk_size)


@get_local_kernel.dispatch
def _kernel_jax_chunked(vstate: PrefixReuseMCState, operator: DiscreteJaxOperator, chunk_size: int):
    return _kernel(vstate, operator, chunk_size)


serialization.register_serialization_state(PrefixReuseMCState, serialize_MCState, deserialize_MCState)
