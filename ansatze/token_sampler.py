"""Exact autoregressive sampling token by token, for models NetKet's `ARDirectSampler` cannot sample.

NetKet's `ARDirectSampler` draws one Hilbert mode at a time from `model.conditional`, which needs a homogeneous
Hilbert space and one conditional per mode. A model of `ansatze.autoregressive` generates *tokens*, groups of modes
that may have different local sizes (a gauge block: a matter mode and a link mode), so exact ancestral sampling
(Sharir et al., PRL 124, 020503 (2020)) draws token values,

    v_k ∼ q_k(· | v_<k),  k = 0, …, T − 1,      P(v) = Π_k q_k(v_k | v_<k) = |ψ(x)|^machine_pow,

from the model's cached `token_conditional` (O(1) network work per token for an RNN, O(k·D) for the Transformer),
then decodes every token value into its modes' local indices (`nqs.tokens.TokenMap.decode`) and writes the modes'
local state values into σ. Samples are independent and exact. NetKet has no such sampler; every model whose site
interface applies keeps `ARDirectSampler` (`AutoregressiveModel.exact_sampler`).
"""

from __future__ import annotations

from functools import partial

import flax
import jax
import jax.numpy as jnp
import netket as nk
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from netket import config
from netket import jax as nkjax


def _shard_samples(a: jax.Array) -> jax.Array:
    """The sample axis sharded over NetKet's mesh axis 'S', as `ARDirectSampler` does with σ."""
    if config.netket_sharding:
        return jax.lax.with_sharding_constraint(a, NamedSharding(jax.sharding.get_abstract_mesh(), P("S")))
    return a


class TokenSampler(nk.sampler.ARDirectSampler):
    """Exact sampler of `ansatze.autoregressive.AutoregressiveModel`s by whole tokens (module docstring).

    Same state (a PRNG key), `is_exact`, chain layout and sample sharding as `nk.sampler.ARDirectSampler`, of which
    it is a subclass; a model without `token_conditional` is sampled as `ARDirectSampler` does.

    Args: as `nk.sampler.ARDirectSampler` (hilbert, dtype).
    """

    @partial(jax.jit, static_argnames=("model", "chain_length", "return_log_probabilities"))
    def _sample_chain(self, model, variables, state, chain_length, return_log_probabilities: bool = False):
        if not hasattr(model, "token_conditional"):
            return super()._sample_chain(model, variables, state, chain_length, return_log_probabilities)
        if "cache" in variables:
            variables, _ = flax.core.pop(variables, "cache")
        layout = model.layout()
        n_samples = self.n_batches * chain_length
        values = jnp.arange(layout.n_values, dtype=jnp.int32)

        def scan_fun(carry, k):
            tokens, cache, key, log_prob = carry
            new_key, key = jax.random.split(key)
            p, mutables = model.apply({**variables, "cache": cache}, tokens, k, method=model.token_conditional,
                                      mutable=["cache"])
            if return_log_probabilities:
                v, p_v = nkjax.batch_choice(key, values, p, return_prob=True)
                log_prob = log_prob + jnp.log(p_v)
            else:
                v = nkjax.batch_choice(key, values, p)
            return (tokens.at[:, k].set(v), mutables["cache"], new_key, log_prob), None

        new_key, key_init, key_scan = jax.random.split(state.key, 3)
        tokens = _shard_samples(jnp.zeros((n_samples, layout.n_tokens), dtype=jnp.int32))
        cache = model.init(key_init, tokens, 0, method=model.token_conditional)["cache"]
        log_prob = jnp.zeros((n_samples,)) if return_log_probabilities else None
        (tokens, _, _, log_prob), _ = jax.lax.scan(
            scan_fun, (tokens, cache, key_scan, log_prob), jnp.arange(layout.n_tokens)
        )
        sigma = _shard_samples(model.token_states(tokens, self.dtype))
        sigma = sigma.reshape((self.n_batches, chain_length, self.hilbert.size))
        new_state = state.replace(key=new_key)
        if return_log_probabilities:
            return (sigma, log_prob.reshape((self.n_batches, chain_length))), new_state
        return sigma, new_state
