"""log ψ at the connected configurations of a batch by prefix reuse: the work an autoregressive model already did
for x is not redone for the x′ that agree with x on a prefix of the generation order.

An autoregressive amplitude is a product over generation steps, log ψ(x) = Σ_k log ψ_k(v_k | v_<k). A connected
configuration x′ = x + δ_m (`nqs.moves.LocalMoves`) changes only the sites U_m, whose tokens are generated first at
step s_m = min_{u ∈ U_m} step(u); x′ has the conditionals of x at every step ≤ s_m, so (issue 31; the AR base's
`prefix_cache` / `suffix_log_psi`)

    log ψ(x′) = Σ_{k<s_m} log ψ_k(x) + log ψ_{s_m}(v′_{s_m} | x) + Σ_{k>s_m} log ψ_k(v′_k | v′_<k),

where the first two terms are read off x's forward pass (the conditional at s_m is a distribution over all values)
and only the steps after s_m need new work, started from the network state cached after s_m. For nearest-neighbour
terms on a chain that is half of the steps on average, less for terms near the end of the order.

Static shapes. The moves are grouped into at most `n_buckets` (default: one per 8 steps, at most 8, and no plan where
that would save less than a quarter of the work: `MAX_AUTOMATIC_WORK`) buckets of
consecutive s_m (the grouping that
minimises Σ_m (T − start of m's bucket), by dynamic programming); a bucket is evaluated from its smallest s_m, for
all samples and all its moves at once (vmapped over the moves, the cache shared), so every shape is known at trace
time and a model compiles `n_buckets` suffix lengths. The result is exact: evaluating x′ from an earlier start than
s_m only re-derives conditionals x′ shares with x.

Mixtures. A model whose |ψ|^m is a mixture of K autoregressive components over different orders (String States)
reuses each component's prefixes with that component's steps, and combines the K log-amplitudes per configuration.

The model protocol (the AR base implements it for K = 1; `ansatze.string_states.StringStates` for its paths):
* `generation_steps()` → (K, N) int: the generation step of every mode in each component, or None (not supported);
* `prefix_cache(x)` → a pytree with a leading batch axis;
* `component_suffix_log_psi(x′, cache, k, start)` → log of component k at x′ (agreeing with x before `start`);
* `combine_components(logs (K, ...))` → log ψ.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from nqs.moves import LocalMoves

MAX_BUCKETS = 8
STEPS_PER_BUCKET = 8  # automatic bucket count: one per 8 generation steps, at most MAX_BUCKETS
# an automatic plan is used only where its suffix work is at most this fraction of full forward passes: the reuse
# programs (prefix cache, one suffix program per bucket) compile on top of the model's forward pass, which costs
# more than a saving below a quarter recovers (one bucket from step 0 saves nothing: every chain shorter than 16)
MAX_AUTOMATIC_WORK = 0.75


def default_buckets(n_steps: int) -> int:
    """The automatic bucket count for T generation steps: each bucket is one more suffix program to compile, which
    costs more than it saves on short orders (measured: a 6-site VMC resume test, 37 s with 1 bucket, 64 s with 8)."""
    return max(1, min(MAX_BUCKETS, n_steps // STEPS_PER_BUCKET))


def generation_steps(model: Any) -> np.ndarray | None:
    """The (K, N) generation steps of a model that supports prefix reuse, else None."""
    steps = getattr(model, "generation_steps", None)
    if not callable(steps) or not callable(getattr(model, "prefix_cache", None)):
        return None
    steps = steps()
    return None if steps is None else np.asarray(steps, dtype=int).reshape(-1, np.shape(steps)[-1])


def optimal_buckets(first: np.ndarray, n_steps: int, n_buckets: int) -> list[tuple[int, np.ndarray]]:
    """Group moves with first changed steps `first` (M,) into ≤ n_buckets buckets of consecutive steps, minimising
    the suffix work Σ_m (T − start of m's bucket); returns (start, move indices) per bucket."""
    order = np.argsort(first, kind="stable")
    f = first[order]
    m = len(f)
    if m == 0:
        return []
    k_max = min(n_buckets, len(np.unique(f)))
    # cost[i, j]: moves i..j (sorted) in one bucket started at f[i]
    counts = np.arange(1, m + 1)[None, :] - np.arange(m)[:, None]
    cost = np.where(counts > 0, counts * (n_steps - f)[:, None], np.inf)
    best = cost[0].copy()  # best[j]: moves 0..j in the buckets so far
    cuts = [np.zeros(m, dtype=int)]
    for _ in range(1, k_max):
        # last bucket i..j after an optimal split of 0..i−1
        total = np.concatenate([[np.inf], best[:-1]])[:, None] + cost
        i_best = np.argmin(total, axis=0)
        new = total[i_best, np.arange(m)]
        better = new < best
        best = np.where(better, new, best)
        cuts.append(np.where(better, i_best, -1))
    buckets, j = [], m - 1
    for level in range(len(cuts) - 1, -1, -1):
        i = cuts[level][j]
        if i < 0:
            continue
        buckets.append((int(f[i]), order[i: j + 1]))
        j = i - 1
        if j < 0:
            break
    return buckets[::-1]


@dataclasses.dataclass(frozen=True, eq=False)
class ReusePlan:
    """The static evaluation plan of one model and one operator: per component, the buckets (start, moves).
    Hashable by identity (it is a static argument of jitted local estimators)."""

    model: Any
    moves: LocalMoves
    buckets: tuple[tuple[tuple[int, np.ndarray], ...], ...]
    n_steps: int

    @classmethod
    def build(cls, model: Any, moves: LocalMoves, n_buckets: int | None = None) -> ReusePlan | None:
        """The plan, or None when the model does not support prefix reuse or acts on other modes. `n_buckets` None:
        `default_buckets`, and None as well when that plan would do more than `MAX_AUTOMATIC_WORK` of the full
        passes' work (short orders, moves that all touch the first steps); an explicit `n_buckets` is always
        planned."""
        steps = generation_steps(model)
        if steps is None or steps.shape[1] != len(moves.local_sizes):
            return None
        n_steps = int(steps.max()) + 1
        automatic = n_buckets is None
        n_buckets = default_buckets(n_steps) if automatic else n_buckets
        buckets = []
        for row in steps:
            first = np.array([row[sites].min() for sites in moves.changed_sites], dtype=int)
            buckets.append(tuple(optimal_buckets(first, n_steps, n_buckets)))
        plan = cls(model, moves, tuple(buckets), n_steps)
        return None if automatic and plan.work_fraction() > MAX_AUTOMATIC_WORK else plan

    def work_fraction(self) -> float:
        """Suffix steps evaluated relative to full forward passes of every connected configuration."""
        done = sum(len(m) * (self.n_steps - s) for comp in self.buckets for s, m in comp)
        return done / max(1, len(self.buckets) * self.moves.n_moves * self.n_steps)

    def connected_log_psi(self, variables: Any, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(log ψ(x) (B,), log ψ(x + δ_m) (B, M)) for configurations x (B, N)."""
        model, hilbert = self.model, self.model.hilbert
        indices = hilbert.states_to_local_indices(x)
        cache = model.apply(variables, x, method=model.prefix_cache)
        own, connected = [], []
        for k, buckets in enumerate(self.buckets):
            own.append(model.apply(variables, x, cache, k, self.n_steps, method=model.component_suffix_log_psi))
            outputs, order = [], []
            for start, moves in buckets:
                xp = hilbert.local_indices_to_states(self.moves.apply_moves(indices, moves)).astype(x.dtype)

                def log_psi(xm, k=k, start=start):
                    return model.apply(variables, xm, cache, k, start, method=model.component_suffix_log_psi)

                outputs.append(jax.vmap(log_psi, in_axes=1, out_axes=1)(xp))
                order.append(moves)
            if outputs:
                inverse = np.argsort(np.concatenate(order))
                connected.append(jnp.concatenate(outputs, axis=1)[:, inverse])
            else:
                connected.append(jnp.zeros((x.shape[0], 0), own[-1].dtype))
        log_x = model.combine_components(jnp.stack(own))
        return log_x, model.combine_components(jnp.stack(connected))

    def local_values(self, variables: Any, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(log ψ(x), O_loc(x) = Σ_x′ ⟨x|O|x′⟩ ψ(x′)/ψ(x)) for configurations x (B, N)."""
        log_x, log_xp = self.connected_log_psi(variables, x)
        diagonal, mels = self.moves.elements(self.model.hilbert.states_to_local_indices(x))
        return log_x, diagonal + jnp.sum(mels * jnp.exp(log_xp - log_x[:, None]), axis=-1)
