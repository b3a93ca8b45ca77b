"""The autoregressive base: a subclass writes its conditional network, the base does everything else.

The wave function is a product of normalised conditionals over the model tokens v_0, …, v_{T−1} generated in the
order of the model's `TokenLayout` (Sharir et al., PRL 124, 020503 (2020); Hibat-Allah et al., PRR 2, 023358 (2020)):

    ψ(x) = s(x) Π_k √q_k(v_k | v_<k) · exp(i φ_k(v_k | v_<k)),

    q_k(v | v_<k) = m_k(v | v_<k) exp(a_k(v)) / Σ_v' m_k(v' | v_<k) exp(a_k(v')),   a_k = W_a f(h_k) + b_a (+ c_k),

where h_k is the subclass's hidden state at generation position k (a function of v_<k only), f an optional output
map (the Transformer's final LayerNorm), φ_k = g(W_φ f(h_k) + b_φ) the phase head (g = identity for the Transformer,
π softsign for the RNNs), c_k an optional per-position bias table of a product start, and s(x) an optional Marshall
sign (`ansatze.sign_rules`). The 0/1 mask m_k is the product of the token-value validity (v < V_k for tokens of
different sizes) and the `Constraint` (Hibat-Allah et al., App. D.2; Luo et al., PRR 5, 013216 (2023) for Gauss
laws on gauge blocks): for a model token of p physical tokens, value v is allowed iff each of its physical tokens u_j
is allowed when the constraint's carry is stepped through the token, m_k(v) = Π_j m_{kp+j}(u_j | u_<kp+j). Masked
entries get the finite "log 0" −1e30 (never −∞: NaN-free gradients). With machine_pow = 1, exp(log ψ) is a
normalised probability (POVM distributions); in general Σ_x |ψ(x)|^machine_pow = 1 exactly on the constrained set.

A subclass (see `ARTransformer`, `ARRNN`, `AR2DRNN`) supplies
  (a) `setup_network()`: its layers;
  (b) `hidden_states(tokens) -> (h, trace)`: the parallel causal pass, h (B, T, H) for the token values
      `tokens` (B, T) in generation order (input at k: token k − 1, `start_token` at k = 0; `shifted`), and its
      per-position state `trace` (leading batch axis);
  (c) `init_state(batch)` and `step(state, read, k) -> (state, h_k)`: the cached step for one position; `state` is a
      dict of arrays with a leading batch axis, `read(j)` returns the token values (B,) at a generated position j < k;
  (d) `state_after(trace, k)`: the state after step k, read off `trace` (default: `trace[:, k]`), from which the
      suffix evaluation continues; optionally `suffix_hidden` (default: a scan of `step`),
and optionally `output_features` / `phase_angle` (the head parametrisation), `hyperparameters()` (for `describe`).

Interfaces built on these:
* `__call__(x)`: log ψ(x) from one parallel pass;
* NetKet's site interface (`conditionals_log_psi`, `conditional(x, index)` with a linen ``"cache"`` for
  `nk.sampler.ARDirectSampler`, `reorder`): for homogeneous Hilbert spaces whose model tokens hold the same number q
  of modes. With q > 1 (patches) mode j of token k gets the exact marginal of q_k given the token's modes < j
  (`ansatze.site_marginals`), so Π_j Q_{k,j} = q_k and site-by-site sampling is exact;
* `token_conditional(tokens, k)`: q_k(·) from the cache, what `ansatze.token_sampler.TokenSampler` calls; every model
  has it, including those on non-homogeneous spaces or with multi-mode tokens that NetKet cannot sample;
* `prefix_cache(x)` / `suffix_log_psi(x', cache, start)`: a configuration x′ that agrees with x on the tokens before
  `start` has the conditionals of x at every position ≤ start, so log ψ(x′) = Σ_{k<start} log ψ_k(x) +
  log ψ_start(v′_start | cached row) + the positions > start evaluated from the network state cached after `start`;
  with `generation_steps`, `component_suffix_log_psi` and `combine_components` the protocol by which the methods
  layer evaluates local energies by prefix reuse (`nqs.prefix_reuse`).

Non-homogeneous Hilbert spaces. The base subclasses `nk.models.AbstractARNN`, whose `__post_init__` only refuses
non-homogeneous spaces; the base calls `flax.linen.Module.__post_init__` directly instead and does its own checks, so
a model on a `TensorHilbert` of modes of different sizes (grouped into tokens) constructs. NetKet's site interface
then raises `TypeError`, and `exact_sampler()` returns the token sampler.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import netket as nk
import numpy as np

from ansatze.product_start import Distribution, as_hashable, mode_log_p, token_log_p
from ansatze.sign_rules import check_sign_sites, marshall_phase
from ansatze.site_marginals import cached_site_marginal, site_marginals
from ansatze.token_layout import ORDERS, TokenLayout, token_layout
from ansatze.token_masks import TokenMasks, select
from nqs.constraint import Constraint, carry_typed_as_body
from nqs.tokens import TokenMap

MASKED = -1e30  # finite "log 0": keeps gradients NaN-free


def masked_log_softmax(logits: jax.Array, mask: jax.Array | None) -> jax.Array:
    """log q = log softmax over the allowed values, MASKED elsewhere."""
    if mask is None:
        return jax.nn.log_softmax(logits, axis=-1)
    log_q = jax.nn.log_softmax(jnp.where(mask, logits, MASKED), axis=-1)
    return jnp.where(mask, log_q, MASKED)


class AutoregressiveModel(nk.models.AbstractARNN):
    """Base of the autoregressive ansätze (module docstring).

    Attributes (keyword-only; subclass fields come first):
        hilbert: NetKet Hilbert space of modes (unconstrained; sectors come from `constraint`).
        constraint: a `Constraint` on the physical tokens (values: token values), or None; for a non-trivial
            path it is re-expressed with `constraint.permuted(path)`.
        phase: phase head (True) or a positive real ψ (False, for sign-rule-rotated Hamiltonians).
        param_dtype: dtype of the (real) parameters.
        machine_pow: |ψ|^machine_pow is the sampled distribution (2; 1 for a normalised probability).
        initial_distribution: per-mode distribution p(s), or one row per mode p_m(s) (rows of each mode's size on a
            non-homogeneous space); the amplitude head then starts with zero weights and the logits of the product
            Π_m p_m over each token's modes (a shared bias, or a bias table: `site_logits` (N, V) in Hilbert order
            for one mode per token, `token_logits` (T, V) in generation order otherwise), and the phase head with
            zeros, so the initial model is exactly ψ(x) = Π_m √p_m(x_m) (renormalised by the constraint).
        sign_sites: sites of sublattice B for a built-in Marshall sign (−1)^{N_↑^B(x)}, or None (spin-½ only).
        order: "chain", "raster", "snake" (those in the class's `orders`) or a permutation of the physical tokens
            (where the class's `permutations` allows it).
        shape: (Lx, Ly) of the lattice of physical tokens (token (x, y) has index x·Ly + y).
        patch: (px, py) physical tokens per model token on a raster/snake lattice path, or None.
        tokens: the physical tokens (`nqs.tokens.TokenMap`), or None for one per Hilbert mode.
    """

    _: dataclasses.KW_ONLY
    constraint: Constraint | None = None
    phase: bool = True
    param_dtype: Any = jnp.float64
    machine_pow: int = 2
    initial_distribution: Distribution | None = None
    sign_sites: tuple[int, ...] | None = None
    order: str | tuple[int, ...] = "chain"
    shape: tuple[int, int] | None = None
    patch: tuple[int, int] | None = None
    tokens: TokenMap | None = None

    orders = ORDERS  # the named orders a subclass supports
    permutations = True  # whether it supports custom permutations

    def __post_init__(self):
        for name in ("shape", "patch"):  # module fields must be hashable
            if isinstance(getattr(self, name), list):
                setattr(self, name, tuple(getattr(self, name)))
        if not isinstance(self.order, str):
            self.order = tuple(int(i) for i in self.order)
        self.initial_distribution = as_hashable(self.initial_distribution)
        self.sign_sites = check_sign_sites(self.hilbert, self.sign_sites)
        nn.Module.__post_init__(self)  # not AbstractARNN's: it refuses non-homogeneous spaces (module docstring)
        layout = self.layout()
        self._start_logits()  # validates initial_distribution
        c = self.constraint
        sizes = layout.physical.token_sizes
        if c is not None and (c.n_sites != len(sizes) or c.local_size != max(sizes)):
            raise ValueError(
                f"the constraint is for {c.n_sites} sites with {c.local_size} local values, but the model generates "
                f"{len(sizes)} sites (physical tokens) with up to {max(sizes)} local values"
            )
        self.generation_constraint()  # fails now if the constraint cannot follow the path

    # -- static structure (nowrap: no scope needed) --------------------------------------------------------------
    @nn.nowrap
    def layout(self) -> TokenLayout:
        """Which modes each generated token holds, in generation order (`ansatze.token_layout`)."""
        cls = type(self)
        return token_layout(self.hilbert, self.tokens, self.order, self.shape, self.patch, cls.orders, cls.permutations)

    @nn.nowrap
    def generation_constraint(self) -> Constraint | None:
        """The constraint re-expressed for physical tokens in generation order."""
        if self.constraint is None or self.layout().in_token_order:
            return self.constraint
        return self.constraint.permuted(self.layout().path)

    @nn.nowrap
    def token_masks(self) -> TokenMasks:
        """The masks of the token values (`ansatze.token_masks`)."""
        return TokenMasks(self.layout(), self.generation_constraint())

    @nn.nowrap
    def has_site_interface(self) -> bool:
        """NetKet's site-by-site interface applies: homogeneous modes, the same number of modes per model token."""
        return isinstance(self.hilbert, nk.hilbert.HomogeneousHilbert) and self.layout().modes_per_token is not None

    @nn.nowrap
    def start_token(self) -> int:
        """The input token of position 0 (one past the largest token value)."""
        return self.layout().n_values

    @nn.nowrap
    def shifted(self, tokens: jax.Array) -> jax.Array:
        """The network inputs (B, T) of the parallel pass: the start token, then tokens 0 … T−2."""
        start = jnp.full(tokens.shape[:-1] + (1,), self.start_token(), dtype=tokens.dtype)
        return jnp.concatenate([start, tokens[..., :-1]], axis=-1)

    @nn.nowrap
    def input_token(self, read: Callable, k) -> jax.Array:
        """The network input (B,) of the cached step k: token k − 1, or the start token at k = 0."""
        return jnp.where(k == 0, self.start_token(), read(jnp.maximum(k - 1, 0)))

    @nn.nowrap
    def token_values(self, inputs: jax.Array) -> jax.Array:
        """Model token values (..., T) in generation order of configurations (..., N) (Hilbert values)."""
        idx = self.hilbert.states_to_local_indices(inputs).astype(jnp.int32)
        return self.layout().tokens.encode(idx)

    @nn.nowrap
    def token_states(self, tokens: jax.Array, dtype: Any = None) -> jax.Array:
        """Configurations (..., N) (Hilbert values) of model token values (..., T) in generation order."""
        idx = self.layout().tokens.decode(tokens)
        sizes = [int(d) for d in self.hilbert.shape]
        table = np.zeros((len(sizes), max(sizes)))
        for m, d in enumerate(sizes):
            table[m, :d] = self.hilbert.states_at_index(m)
        return jnp.asarray(table, dtype=dtype)[jnp.arange(len(sizes)), idx]

    @nn.nowrap
    def reorder(self, inputs: jax.Array, axis: int = 0) -> jax.Array:
        """Hilbert layout → generation layout of the modes: out[k] = inputs[path(k)] (NetKet's AbstractARNN.reorder)."""
        layout = self.layout()
        return inputs if layout.in_hilbert_order else jnp.take(inputs, jnp.asarray(layout.mode_path), axis=axis)

    @nn.nowrap
    def inverse_reorder(self, inputs: jax.Array, axis: int = 0) -> jax.Array:
        """Generation layout → Hilbert layout: out[path(k)] = inputs[k]."""
        layout = self.layout()
        if layout.in_hilbert_order:
            return inputs
        return jnp.take(inputs, jnp.asarray(np.argsort(layout.mode_path)), axis=axis)

    @nn.nowrap
    def exact_sampler(self) -> nk.sampler.Sampler:
        """NetKet's `ARDirectSampler` where the site interface applies, else the token sampler (used by
        `nqs.vmc.make_state`)."""
        from ansatze.token_sampler import TokenSampler  # the sampler module imports this one

        if self.has_site_interface():
            return nk.sampler.ARDirectSampler(self.hilbert)
        return TokenSampler(self.hilbert)

    def describe(self) -> dict:
        """Name and hyper-parameters, stored in result files."""
        return {
            "name": type(self).__name__,
            **self.hyperparameters(),
            "phase": self.phase,
            "constraint": None if self.constraint is None else self.constraint.describe(),
            "param_dtype": str(jnp.dtype(self.param_dtype)),
            "machine_pow": self.machine_pow,
            "initial_distribution": self.initial_distribution,
            "sign_sites": self.sign_sites,
            "order": self.order if isinstance(self.order, str) else list(self.order),
            "shape": None if self.shape is None else [int(v) for v in self.shape],
            "patch": None if self.patch is None else [int(v) for v in self.patch],
            "tokens": None if self.tokens is None else self.tokens.describe(),
        }

    # -- what a subclass writes -----------------------------------------------------------------------------------
    def hyperparameters(self) -> dict:
        """The network's own hyper-parameters (for `describe`)."""
        return {}

    def setup_network(self) -> None:
        """Create the network's layers (called by `setup`)."""
        raise NotImplementedError

    def hidden_states(self, tokens: jax.Array) -> tuple[jax.Array, Any]:
        """Parallel causal pass: (h (B, T, H), trace) for token values (B, T) in generation order."""
        raise NotImplementedError

    def init_state(self, batch: int) -> dict:
        """The network state before step 0: a dict of arrays with a leading batch axis."""
        raise NotImplementedError

    def step(self, state: dict, read: Callable, k) -> tuple[dict, jax.Array]:
        """Cached step k: (state after k, h_k (B, H)); `read(j)` gives the token values at a position j < k."""
        raise NotImplementedError

    def state_after(self, trace: Any, k: int) -> dict:
        """The state after step k (static), read off the trace of the parallel pass."""
        return jax.tree_util.tree_map(lambda a: a[:, k], trace)

    def suffix_hidden(self, state: dict, tokens: jax.Array, first: int) -> jax.Array:
        """h (B, T − first, H) of positions first … T−1 from the state after step first − 1 (a scan of `step`)."""

        def body(model, carry, k):
            return model.step(carry, lambda j: jnp.take(tokens, j, axis=1), k)

        ks = jnp.arange(first, self.layout().n_tokens)
        init = carry_typed_as_body(lambda c, k: body(self, c, k), state, ks[0])
        scan = nn.scan(body, variable_broadcast=True, split_rngs={"params": False}, out_axes=1)
        return scan(self, init, ks)[1]

    def output_features(self, h: jax.Array) -> jax.Array:
        """f(h): what the heads read (identity)."""
        return h

    def phase_angle(self, raw: jax.Array) -> jax.Array:
        """g(W_φ f(h) + b_φ): the phase (identity)."""
        return raw

    # -- heads ----------------------------------------------------------------------------------------------------
    @nn.nowrap
    def _start_logits(self) -> np.ndarray | None:
        """(T, V) logits of the product start in generation order, or None."""
        layout = self.layout()
        log_p = mode_log_p(self.initial_distribution, layout.tokens.mode_sizes)
        return None if log_p is None else token_log_p(log_p, layout.tokens.modes, layout.n_values)

    def setup(self):
        self.setup_network()
        layout = self.layout()
        V = layout.n_values
        start = self._start_logits()
        shared = start is None or np.allclose(start, start[0])
        self.logit_table = None if shared else self._logit_table(start)
        zero = {"kernel_init": nn.initializers.zeros}
        if start is None:
            self.amplitude_head = nn.Dense(V, param_dtype=self.param_dtype)
        else:
            bias = start[0] if shared else np.zeros(V)
            self.amplitude_head = nn.Dense(V, param_dtype=self.param_dtype, **zero,
                                           bias_init=lambda *_: jnp.asarray(bias, dtype=self.param_dtype))
        if self.phase:
            init = {**zero, "bias_init": nn.initializers.zeros} if start is not None else {}
            self.phase_head = nn.Dense(V, param_dtype=self.param_dtype, **init)

    def _logit_table(self, start: np.ndarray) -> jax.Array:
        """The trainable bias table of a position-dependent product start, (T, V) in generation order; stored as
        `site_logits` (N, V) in Hilbert order for one mode per token, else as `token_logits`."""
        layout = self.layout()
        if layout.modes_per_token != 1:
            return self.param("token_logits", lambda *_: jnp.asarray(start, self.param_dtype))
        table = np.zeros_like(start)
        table[layout.mode_path] = start
        site = self.param("site_logits", lambda *_: jnp.asarray(table, self.param_dtype))
        return site[jnp.asarray(layout.mode_path)]

    def _log_conditionals(self, h: jax.Array, mask: jax.Array | None, first: int | jax.Array = 0):
        """(log q, φ or None), both (..., V), from hidden states h (..., H) of the positions first, first + 1, …
        (a traced `first` for a single position h (B, H)) and the mask."""
        features = self.output_features(h)
        logits = self.amplitude_head(features)
        if self.logit_table is not None:
            logits = logits + (self.logit_table[first] if h.ndim == 2 else self.logit_table[first:])
        phi = self.phase_angle(self.phase_head(features)) if self.phase else None
        return masked_log_softmax(logits, mask), phi

    def _log_psi_table(self, log_q: jax.Array, phi: jax.Array | None) -> jax.Array:
        """log ψ_k(v) = log q_k(v) / machine_pow + i φ_k(v)."""
        log_psi = log_q / self.machine_pow
        return log_psi if phi is None else log_psi + 1j * phi

    def _sign(self, x: jax.Array, log_psi: jax.Array) -> jax.Array:
        return log_psi if self.sign_sites is None else log_psi + 1j * marshall_phase(x, self.sign_sites)

    # -- parallel path --------------------------------------------------------------------------------------------
    def _conditionals(self, x: jax.Array):
        """(tokens (B, T), log q (B, T, V), φ or None) of configurations x (B, N)."""
        tokens = self.token_values(x)
        h, _ = self.hidden_states(tokens)
        return (tokens, *self._log_conditionals(h, self.token_masks().all(tokens)))

    def __call__(self, inputs: jax.Array) -> jax.Array:
        """log ψ(x) = log s(x) + Σ_k log ψ_k(v_k | v_<k) for configurations of any leading shape (..., N)."""
        x = inputs.reshape((-1, inputs.shape[-1]))
        tokens, log_q, phi = self._conditionals(x)
        log_psi = select(self._log_psi_table(log_q, phi), tokens).sum(axis=-1)
        return self._sign(x, log_psi).reshape(inputs.shape[:-1])

    def conditionals_log_psi(self, inputs: jax.Array) -> jax.Array:
        """NetKet's site interface: log ψ_i(s | ·) for every Hilbert mode i and value s, (B, N, d), Hilbert layout
        (for tokens of q > 1 modes the exact marginal conditionals of the token distribution)."""
        self._require_site_interface()
        _, log_q, phi = self._conditionals(inputs)
        q = self.layout().modes_per_token
        if q == 1:
            return self.inverse_reorder(self._log_psi_table(log_q, phi), axis=1)
        ordered = self.reorder(self.hilbert.states_to_local_indices(inputs).astype(jnp.int32), axis=1)
        digits = ordered.reshape(ordered.shape[0], -1, q)
        marginals = site_marginals(log_q, phi, digits, self.hilbert.local_size, self.machine_pow)
        return self.inverse_reorder(marginals, axis=1)

    @nn.nowrap
    def _require_site_interface(self) -> None:
        if not self.has_site_interface():
            raise TypeError(
                f"{type(self).__name__} on {self.hilbert} has no site-by-site conditionals (NetKet's AR interface "
                "needs a homogeneous Hilbert space and the same number of modes in every token): sample it with "
                "ansatze.token_sampler.TokenSampler (model.exact_sampler())"
            )

    # -- cached path (sampling) -----------------------------------------------------------------------------------
    def _cached_log_q(self, read: Callable, k, batch: int) -> jax.Array:
        """log q_k(·) (B, V) from the network state and constraint carry in the linen collection "cache" (reset
        at k = 0, so a stale cache does not matter), both advanced by token k − 1 = read(k − 1)."""
        h, mask = self._cached_step(read, k, batch)
        return self._log_conditionals(h, mask, k)[0]

    def _cached_step(self, read: Callable, k, batch: int) -> tuple[jax.Array, jax.Array | None]:
        """(h_k (B, H), mask (B, V) or None) of position k, advancing the network state and the constraint carry in
        the "cache" collection (`_cached_log_q`)."""
        init = self.init_state(batch)
        cached = {name: self.get_variable("cache", name, value) for name, value in init.items()}
        state = jax.lax.cond(k == 0, lambda: init, lambda: cached)
        state, h = self.step(state, read, k)
        for name, value in state.items():
            self.put_variable("cache", name, value)
        masks = self.token_masks()
        carry = None
        if masks.constraint is not None:
            start = masks.init_carry(batch)
            carry = self.get_variable("cache", "constraint", start)
            previous = jnp.maximum(k - 1, 0)
            updated = masks.step(carry, read(previous), previous)
            carry = jax.tree_util.tree_map(lambda s, u: jnp.where(k == 0, s, u), start, updated)
            self.put_variable("cache", "constraint", carry)
        return h, masks.mask(carry, k)

    def token_conditional(self, tokens: jax.Array, index) -> jax.Array:
        """q_k(· | v_<k) (B, V) of generation position k = `index`, given token values (B, T) whose positions < k
        are generated; extends the cache (`ansatze.token_sampler.TokenSampler` calls it for k = 0, 1, …)."""
        return jnp.exp(self._cached_log_q(lambda j: jnp.take(tokens, j, axis=1), index, tokens.shape[0]))

    @nn.nowrap
    def _read_token(self, inputs: jax.Array, k) -> jax.Array:
        """Token values (B,) at generation position k of configurations (B, N) (site interface: homogeneous)."""
        modes, places = (jnp.asarray(a)[k] for a in self.layout().mode_table)
        idx = self.hilbert.states_to_local_indices(jnp.take(inputs, modes, axis=1)).astype(jnp.int32)
        return jnp.sum(idx * places, axis=-1)

    def _store_token_log_q(self, inputs: jax.Array, k) -> None:
        log_q = self._cached_log_q(lambda j: self._read_token(inputs, j), k, inputs.shape[0])
        self.put_variable("cache", "token_log_q", log_q)

    def conditional(self, inputs: jax.Array, index: jax.Array) -> jax.Array:
        """NetKet's site interface: q(· | modes before it) of Hilbert mode `index` (B, d), using and extending the
        cache (`ARDirectSampler` calls it along `reorder`). Tokens of q > 1 modes: one network step at the first mode
        of a token (under `nn.cond`), then exact marginals of the cached q_k."""
        self._require_site_interface()
        if inputs.ndim == 1:
            inputs = inputs[None]
        layout = self.layout()
        q = layout.modes_per_token
        position = jnp.asarray(np.argsort(layout.mode_path))[index]
        k, j = position // q, position % q
        if q == 1:
            return jnp.exp(self._cached_log_q(lambda s: self._read_token(inputs, s), k, inputs.shape[0]))
        if self.is_initializing() or not self.has_variable("cache", "token_log_q"):
            self._store_token_log_q(inputs, k)
        else:
            nn.cond(j == 0, AutoregressiveModel._store_token_log_q, lambda *_: None, self, inputs, k)
        modes = jnp.asarray(layout.mode_table[0])[k]
        current = self.hilbert.states_to_local_indices(jnp.take(inputs, modes, axis=1)).astype(jnp.int32)
        log_q = self.get_variable("cache", "token_log_q")
        return cached_site_marginal(log_q, current, j, self.hilbert.local_size, q)

    # -- prefix cache and suffix evaluation -----------------------------------------------------------------------
    def prefix_cache(self, inputs: jax.Array) -> dict:
        """Everything `suffix_log_psi` needs of configurations x (B, N), per generation position k (axis 1):
        "log_psi" (B, T, V): log ψ_k(v | v_<k) for every value; "log_psi_own" (B, T): at x's own token;
        "state": the network's trace (`state_after(trace, k)` is the state after step k); "constraint": the
        constraint's carry before k (None without a constraint)."""
        tokens = self.token_values(inputs)
        h, trace = self.hidden_states(tokens)
        masks = self.token_masks()
        carries, mask = masks.scan(tokens, masks.init_carry(tokens.shape[0]))
        log_psi = self._log_psi_table(*self._log_conditionals(h, mask))
        return {"log_psi": log_psi, "log_psi_own": select(log_psi, tokens), "state": trace, "constraint": carries}

    def suffix_log_psi(self, inputs: jax.Array, cache: dict, start: int) -> jax.Array:
        """log ψ(x′) (B,) of configurations x′ (B, N) that agree with the cached ones on the tokens generated before
        `start` (a static int, 0 ≤ start ≤ T): Σ_{k<start} from the cache, position `start` from the cached row of
        all values, positions start + 1 … T − 1 from the network state cached after step `start`."""
        T = self.layout().n_tokens
        if not 0 <= start <= T:
            raise ValueError(f"start must lie in [0, {T}], got {start}")
        tokens = self.token_values(inputs)
        log_psi = cache["log_psi_own"][:, :start].sum(axis=-1)
        if start < T:
            log_psi = log_psi + select(cache["log_psi"][:, start], tokens[:, start])
        first = start + 1
        if first < T:
            table = self._log_psi_table(*self._log_conditionals(*self._suffix_network(cache, tokens, start), first))
            log_psi = log_psi + select(table, tokens[:, first:]).sum(axis=-1)
        return self._sign(inputs, log_psi)

    @nn.nowrap
    def generation_steps(self) -> np.ndarray:
        """(1, N): the generation step of the token holding each mode — the prefix-reuse protocol of
        `nqs.prefix_reuse`, with one component."""
        modes = self.layout().tokens.modes
        steps = np.empty(sum(len(token) for token in modes), dtype=int)
        for step, token in enumerate(modes):
            steps[list(token)] = step
        return steps[None]

    def component_suffix_log_psi(self, inputs: jax.Array, cache: dict, component: int, start: int) -> jax.Array:
        """`suffix_log_psi` of the single component (`component` = 0; the prefix-reuse protocol)."""
        return self.suffix_log_psi(inputs, cache, start)

    @nn.nowrap
    def combine_components(self, logs: jax.Array) -> jax.Array:
        """log ψ from the (1, ...) component values (the prefix-reuse protocol)."""
        return logs[0]

    def _suffix_network(self, cache: dict, tokens: jax.Array, start: int) -> tuple[jax.Array, jax.Array | None]:
        """(h (B, T − start − 1, H), masks or None) of the positions after `start` (static), from the network state
        and the constraint carry of the prefix cache (`prefix_cache`) and the token values (B, T)."""
        first = start + 1
        h = self.suffix_hidden(self.state_after(cache["state"], start), tokens, first)
        masks = self.token_masks()
        carry = None
        if masks.constraint is not None:
            carry = jax.tree_util.tree_map(lambda a: a[:, start], cache["constraint"])
            carry = masks.step(carry, tokens[:, start], start)
        return h, masks.scan(tokens[:, first:], carry, first)[1]
