"""ANTN: an autoregressive network that outputs the tensors of a matrix product state conditioned on the configuration
generated so far (Chen, Newhouse, Chen, Luo, Soljačić, "ANTN: Bridging autoregressive neural networks and tensor
networks for quantum many-body simulation", NeurIPS 2023, arXiv:2304.01996).

With base MPS tensors M_k^v ∈ ℂ^{χ×χ} for every generation position k and token value v, open boundary vectors
b_L = b_R = e_0, and the features f_k of an autoregressive network that has read v_<k only:

    A_k^v = M_k^v ⊙ exp(½ a_k^v + i φ_k^v)            elementwise: a_k, φ_k ∈ ℝ^{V×χ×χ}
    A_k^v = M_k^v · exp(½ a_k^v + i φ_k^v)            blockwise:   a_k, φ_k ∈ ℝ^V (one modulation per value)
    (a_k, φ_k) = (W_a f_k + b_a, g(W_φ f_k + b_φ))    (the network's own head parametrisation, g its phase map)

    h_{−1} = b_L,   u_k^v = h_{k−1} A_k^v,   w_k^v = u_k^v Γ_k (u_k^v)†,   h_k = u_k^{v_k} / ‖u_k^{v_k}‖,

    q_k(v | v_<k) = m_k(v) w_k^v / Σ_v' m_k(v') w_k^v',
    log ψ(x) = Σ_k log q_k(v_k | v_<k) / machine_pow + i arg(h_{T−1} · b_R),

with m_k the `Constraint` mask of the autoregressive base. Γ_k is the right environment of the base MPS,

    Γ_{T−1} = b_R b_R†,   Γ_{k−1} ∝ Σ_v M_k^v Γ_k (M_k^v)†   (environment="exact", normalised to unit trace),

computed inside the model's apply in O(T V χ³) and differentiated with it (a frozen environment gives wrong
log-derivatives), or Γ_k = 1 (environment="identity", exact for a right-canonical base MPS). h_k is rescaled by a
positive number only, so the phase is that of the contraction. Whatever the network outputs, the conditionals are
normalised: Σ_x |ψ(x)|^machine_pow = 1 and ancestral sampling is exact.

Limits (tested):
* **MPS**: with a = φ = 0 (zero head weights and biases), the tensors are the base MPS, the products of the q_k
  telescope to |ψ_MPS(x)|² / Σ_x |ψ_MPS|² (exact Γ) and the phase is arg ψ_MPS(x): the normalised MPS
  ψ_MPS(x) = b_L M_0^{v_0} ⋯ M_{T−1}^{v_{T−1}} b_R.
* **autoregressive network**: with χ = 1 and M = 1, q_k = softmax(a_k) and the phase is Σ_k φ_k(v_k): exactly the
  underlying `ARTransformer` / `ARRNN` with the same network, ``amplitude_head`` and ``phase_head`` parameters.

Cost per configuration: the network's, plus O(T V χ²) for the contraction; the elementwise head adds O(T D V χ²).
Sampling keeps u_{k−1} (B, V, χ) in the linen ``"cache"`` next to the network's own state: O(V χ²) per new token.

Divergences from the paper, deliberate: the modulation is exponential (so that χ = 1 is exactly the network's softmax
and phase, and the head initialised at zero is exactly the MPS); the whole phase comes from the contraction, so
`conditionals_log_psi` returns only the moduli log q_k / machine_pow. The paper's code is not public (notes).
The start from a DMRG ground state is `ansatze.dmrg.antn_parameters`.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ansatze.autoregressive import MASKED, AutoregressiveModel, masked_log_softmax
from ansatze.rnn import ARRNN
from ansatze.token_masks import select
from ansatze.transformer import ARTransformer
from nqs.constraint import carry_typed_as_body

VARIANTS = ("elementwise", "blockwise")
ENVIRONMENTS = ("exact", "identity")


def _safe_log(w: jax.Array) -> jax.Array:
    """log w for w ≥ 0, MASKED where w = 0 (NaN-free gradients)."""
    positive = w > 0
    return jnp.where(positive, jnp.log(jnp.where(positive, w, 1.0)), MASKED)


def _normalised(u: jax.Array) -> jax.Array:
    """u / ‖u‖ along the last axis (u = 0 stays 0)."""
    norm = jnp.linalg.norm(u, axis=-1, keepdims=True)
    return u / jnp.where(norm > 0, norm, 1.0)


class ANTN(AutoregressiveModel):
    """The ANTN head on an autoregressive network (module docstring); use `TransformerANTN` or `RNNANTN`.

    Attributes (and those of the network and of `AutoregressiveModel`):
        bond_dim: bond dimension χ of the base MPS.
        variant: "elementwise" (the network modulates every element of A_k^v) or "blockwise" (one modulation per
            token value).
        environment: "exact" (right environments of the base MPS, recomputed in every apply) or "identity" (exact
            for a right-canonical base).
        mps_noise: standard deviation of the complex noise on the base MPS start M_k^v = 1/√V (the χ = 1 limit
            when it is zero).
    """

    bond_dim: int = 4
    variant: str = "blockwise"
    environment: str = "exact"
    mps_noise: float = 0.05

    def __post_init__(self):
        super().__post_init__()
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.environment not in ENVIRONMENTS:
            raise ValueError(f"environment must be one of {ENVIRONMENTS}, got {self.environment!r}")
        if not isinstance(self.bond_dim, (int, np.integer)) or self.bond_dim < 1:
            raise ValueError(f"bond_dim must be an integer >= 1, got {self.bond_dim!r}")
        if self.initial_distribution is not None:
            raise ValueError("an ANTN starts from its base MPS (e.g. ansatze.dmrg.antn_parameters), not from a "
                             "product distribution: leave initial_distribution unset")

    def hyperparameters(self) -> dict:
        return {**super().hyperparameters(), "bond_dim": int(self.bond_dim), "variant": self.variant,
                "environment": self.environment, "mps_noise": self.mps_noise}

    @nn.nowrap
    def modulation_size(self) -> int:
        """Modulations per token value: χ² (elementwise) or 1 (blockwise)."""
        return self.bond_dim**2 if self.variant == "elementwise" else 1

    def setup(self):
        self.setup_network()
        layout = self.layout()
        T, V, chi = layout.n_tokens, layout.n_values, self.bond_dim
        width = V * self.modulation_size()
        self.amplitude_head = nn.Dense(width, param_dtype=self.param_dtype)
        if self.phase:
            self.phase_head = nn.Dense(width, param_dtype=self.param_dtype)

        def start(key, shape, dtype):
            eye = jnp.broadcast_to(jnp.eye(chi, dtype=dtype) / np.sqrt(V), shape)
            return eye + self.mps_noise / np.sqrt(2) * jax.random.normal(key, shape, dtype)

        zeros = nn.initializers.zeros
        noise = (lambda key, shape, dtype: self.mps_noise / np.sqrt(2) * jax.random.normal(key, shape, dtype))
        shape = (T, V, chi, chi)
        self.mps_real = self.param("mps_real", start, shape, self.param_dtype)
        self.mps_imag = self.param("mps_imag", noise if self.mps_noise else zeros, shape, self.param_dtype)

    # -- the contraction ------------------------------------------------------------------------------------------
    def base_tensors(self) -> jax.Array:
        """M_k^v, (T, V, χ, χ) complex, in generation order."""
        return self.mps_real + 1j * self.mps_imag

    def environments(self, tensors: jax.Array) -> jax.Array:
        """Γ_k (T, χ, χ) of the base MPS (module docstring), each of unit trace; the identity for "identity"."""
        T, chi = tensors.shape[0], self.bond_dim
        if self.environment == "identity":
            return jnp.broadcast_to(jnp.eye(chi, dtype=tensors.dtype), (T, chi, chi))
        last = jnp.zeros((chi, chi), tensors.dtype).at[0, 0].set(1.0)

        def body(gamma, m):
            left = jnp.einsum("vab,bc,vdc->ad", m, gamma, m.conj())
            return left / jnp.trace(left).real, gamma

        last = carry_typed_as_body(body, last, tensors[-1])  # sharded parameters: a "varying" carry
        first, later = jax.lax.scan(body, last, tensors[1:], reverse=True)  # Γ_0 and Γ_1 … Γ_{T−1}
        return jnp.concatenate([first[None], later], axis=0)

    def _modulations(self, features: jax.Array) -> jax.Array:
        """exp(½ a + i φ), (..., V, χ, χ) elementwise or (..., V, 1, 1) blockwise, from features (..., D)."""
        V, e = self.layout().n_values, self.modulation_size()
        log_c = 0.5 * self.amplitude_head(features)
        if self.phase:
            log_c = log_c + 1j * self.phase_angle(self.phase_head(features))
        side = self.bond_dim if e > 1 else 1
        return jnp.exp(log_c).reshape(features.shape[:-1] + (V, side, side))

    @staticmethod
    def _candidates(h: jax.Array, tensors: jax.Array, modulation: jax.Array) -> jax.Array:
        """u^v = h (M^v ⊙ c^v), (B, V, χ), from h (B, χ), M (V, χ, χ), c (B, V, χ or 1, χ or 1); blockwise as
        c^v (h M^v), without the (B, V, χ, χ) product."""
        if modulation.shape[-1] == 1:
            return jnp.einsum("ba,vac->bvc", h, tensors) * modulation[..., 0]
        return jnp.einsum("ba,vac,bvac->bvc", h, tensors, modulation)

    @staticmethod
    def _log_q(u: jax.Array, gamma: jax.Array, mask: jax.Array | None) -> jax.Array:
        """log q(v) (B, V) ∝ m(v) u^v Γ (u^v)† from candidates u (B, V, χ)."""
        w = jnp.einsum("bva,ac,bvc->bv", u, gamma, u.conj()).real
        return masked_log_softmax(_safe_log(w), mask)

    def _contract(self, features: jax.Array, tokens: jax.Array, masks: jax.Array | None, h: jax.Array,
                  first: int = 0):
        """Positions first … first + S − 1 from the carry h (B, χ) before `first`: (log q (B, S, V), candidates u
        (B, S, V, χ), h after the last position (B, χ)), for features (B, S, D), tokens (B, S), masks (B, S, V)."""
        tensors = self.base_tensors()
        gammas = self.environments(tensors)[first:first + tokens.shape[1]]
        if masks is not None and masks.ndim == 2:  # validity only, the same for every configuration
            masks = jnp.broadcast_to(masks, tokens.shape + masks.shape[-1:])
        modulation = jnp.moveaxis(self._modulations(features), 1, 0)
        xs = (tensors[first:first + tokens.shape[1]], gammas, modulation, jnp.moveaxis(tokens, 1, 0),
              None if masks is None else jnp.moveaxis(masks, 1, 0))

        def body(h, x):
            m, gamma, c, v, mask = x
            u = self._candidates(h, m, c)
            return _normalised(select(jnp.moveaxis(u, -1, 1), v[:, None])), (self._log_q(u, gamma, mask), u)

        h = carry_typed_as_body(body, h, jax.tree_util.tree_map(lambda a: a[0], xs))
        h, (log_q, u) = jax.lax.scan(body, h, xs)
        return jnp.moveaxis(log_q, 0, 1), jnp.moveaxis(u, 0, 1), h

    @nn.nowrap
    def _left_boundary(self, batch: int) -> jax.Array:
        return jnp.zeros((batch, self.bond_dim), jnp.result_type(self.param_dtype, 1j)).at[:, 0].set(1.0)

    def _log_psi(self, log_q: jax.Array, tokens: jax.Array, h_last: jax.Array) -> jax.Array:
        """Σ_k log q_k(v_k) / machine_pow + i arg(h_{T−1} · b_R)."""
        return select(log_q, tokens).sum(axis=-1) / self.machine_pow + 1j * jnp.angle(h_last[:, 0])

    # -- parallel path --------------------------------------------------------------------------------------------
    def _pass(self, x: jax.Array, carries: bool = False):
        """(tokens, log q (B, T, V), candidates, h_{T−1}, network trace, constraint carries or None) of
        configurations x; the constraint's carries before every position only with `carries`."""
        tokens = self.token_values(x)
        h_net, trace = self.hidden_states(tokens)
        masks = self.token_masks()
        before, mask = masks.scan(tokens, masks.init_carry(tokens.shape[0])) if carries else (None, masks.all(tokens))
        log_q, u, h = self._contract(self.output_features(h_net), tokens, mask, self._left_boundary(x.shape[0]))
        return tokens, log_q, u, h, trace, before

    def _conditionals(self, x: jax.Array):
        """(tokens, log q, None): the moduli only (the phase is that of the whole contraction)."""
        tokens, log_q, *_ = self._pass(x)
        return tokens, log_q, None

    def __call__(self, inputs: jax.Array) -> jax.Array:
        x = inputs.reshape((-1, inputs.shape[-1]))
        tokens, log_q, _, h, _, _ = self._pass(x)
        return self._sign(x, self._log_psi(log_q, tokens, h)).reshape(inputs.shape[:-1])

    # -- cached path (sampling) -----------------------------------------------------------------------------------
    def _cached_log_q(self, read: Callable, k, batch: int) -> jax.Array:
        """log q_k(·) (B, V); the candidates u_{k−1} (B, V, χ) of the previous position are in the cache next to the
        network state, so h_{k−1} = u_{k−1}^{v_{k−1}} / ‖·‖ (b_L at k = 0)."""
        h_net, mask = self._cached_step(read, k, batch)
        dtype = jnp.result_type(self.param_dtype, 1j)
        shape = (batch, self.layout().n_values, self.bond_dim)
        previous = self.get_variable("cache", "mps_candidates", jnp.zeros(shape, dtype))
        chosen = _normalised(select(jnp.moveaxis(previous, -1, 1), read(jnp.maximum(k - 1, 0))[:, None]))
        h = jnp.where(k == 0, self._left_boundary(batch), chosen)
        tensors = self.base_tensors()
        u = self._candidates(h, tensors[k], self._modulations(self.output_features(h_net)))
        self.put_variable("cache", "mps_candidates", u)
        # the environments depend on the parameters only: computed once per sample sweep (at k = 0), then cached
        cached = self.get_variable("cache", "mps_environments", jnp.zeros(tensors.shape[:1] + tensors.shape[2:],
                                                                            tensors.dtype))
        envs = jax.lax.cond(k == 0, lambda: self.environments(tensors), lambda: cached)
        self.put_variable("cache", "mps_environments", envs)
        return self._log_q(u, envs[k], mask)

    # -- prefix cache and suffix evaluation -----------------------------------------------------------------------
    def prefix_cache(self, inputs: jax.Array) -> dict:
        """As `AutoregressiveModel.prefix_cache` ("log_psi" holds the moduli log q / machine_pow), plus the
        candidates "mps_candidates" (B, T, V, χ) of every position."""
        tokens, log_q, u, _, trace, carries = self._pass(inputs, carries=True)
        log_psi = log_q / self.machine_pow
        return {"log_psi": log_psi, "log_psi_own": select(log_psi, tokens), "state": trace, "constraint": carries,
                "mps_candidates": u}

    def suffix_log_psi(self, inputs: jax.Array, cache: dict, start: int) -> jax.Array:
        """log ψ(x′) of configurations x′ that agree with the cached ones before `start` (as the base's): the
        moduli of positions ≤ start from the cache, the contraction continued from the cached candidates."""
        T = self.layout().n_tokens
        if not 0 <= start <= T:
            raise ValueError(f"start must lie in [0, {T}], got {start}")
        tokens = self.token_values(inputs)
        position = min(start, T - 1)  # start = T: x′ = x, the last position fixes the phase
        log_psi = cache["log_psi_own"][:, :position].sum(axis=-1)
        log_psi = log_psi + select(cache["log_psi"][:, position], tokens[:, position])
        u = cache["mps_candidates"][:, position]
        h = _normalised(select(jnp.moveaxis(u, -1, 1), tokens[:, position, None]))
        first = position + 1
        if first < T:
            h_net, mask = self._suffix_network(cache, tokens, position)
            log_q, _, h = self._contract(self.output_features(h_net), tokens[:, first:], mask, h, first)
            log_psi = log_psi + select(log_q, tokens[:, first:]).sum(axis=-1) / self.machine_pow
        return self._sign(inputs, log_psi + 1j * jnp.angle(h[:, 0]))


class TransformerANTN(ANTN, ARTransformer):
    """ANTN on the autoregressive Transformer (`ansatze.transformer.ARTransformer`): layers, features, heads,
    ff_features, positional, and the ANTN fields bond_dim, variant, environment, mps_noise."""


class RNNANTN(ANTN, ARRNN):
    """ANTN on the recurrent network (`ansatze.rnn.ARRNN`): hidden, cell, layers, and the ANTN fields bond_dim,
    variant, environment, mps_noise."""
