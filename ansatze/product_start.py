"""Product-state initialisation shared by the autoregressive ansätze.

A product state ψ(x) = Π_i √p_i(x_i) is an autoregressive model whose conditionals ignore the past:
q_i(s | x_<i) = p_i(s). A network starts exactly there when its amplitude head has zero weights and its
logits are log p_i. For one distribution shared by all sites (|→⟩: p = (½, ½)) that is the head's bias;
for site-dependent distributions (the Néel state ≈ p_i = (1−ε, ε) on even and (ε, 1−ε) on odd sites)
the models add a per-site bias table b_i(s), initialised to log p_i(s) and trained with the rest. A token of several
modes starts from the product of its modes' distributions, with logits Σ_j log p_{m_j}(s_j) (`token_log_p`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Distribution = tuple[float, ...] | tuple[tuple[float, ...], ...]


def as_hashable(initial_distribution) -> Distribution | None:
    """Lists (e.g. from a config file) as nested tuples, so the Flax module field stays hashable."""
    if initial_distribution is None:
        return None
    if isinstance(initial_distribution[0], (Sequence, np.ndarray)):
        return tuple(tuple(float(v) for v in row) for row in initial_distribution)
    return tuple(float(v) for v in initial_distribution)


def product_log_p(initial_distribution: Distribution | None, n_sites: int, local_size: int) -> np.ndarray | None:
    """The (n_sites, local_size) table log p_i(s), or None; validates the distribution.

    Accepts one distribution of `local_size` numbers (used on every site) or one per site.
    Raises ValueError unless every distribution has `local_size` positive entries summing to 1.
    """
    if initial_distribution is None:
        return None
    p = np.asarray(initial_distribution, dtype=float)
    if p.ndim == 1:
        p = np.broadcast_to(p, (n_sites, p.shape[0]))
    if p.ndim != 2 or p.shape != (n_sites, local_size):
        raise ValueError(
            f"initial_distribution must be {local_size} probabilities or {n_sites} rows of {local_size}, "
            f"got shape {np.shape(initial_distribution)}"
        )
    _check_probabilities(list(p), initial_distribution)
    return np.log(p)


def _check_probabilities(rows: list[np.ndarray], initial_distribution) -> None:
    if any(not np.all(np.isfinite(r)) or r.min() <= 0 or abs(r.sum() - 1) > 1e-10 for r in rows):
        raise ValueError(
            f"initial_distribution must hold positive numbers summing to 1 on every site, got {initial_distribution}"
        )


def mode_log_p(initial_distribution: Distribution | None, mode_sizes: Sequence[int]) -> list[np.ndarray] | None:
    """log p_m(s) for every Hilbert mode m (an array of mode_sizes[m] entries each), or None; validates.

    Modes of one local size accept what `product_log_p` accepts; modes of different sizes (a `TensorHilbert`, e.g.
    matter and link modes) need one row per mode, of that mode's size.
    """
    if initial_distribution is None:
        return None
    sizes = [int(d) for d in mode_sizes]
    if len(set(sizes)) == 1:
        return list(product_log_p(initial_distribution, len(sizes), sizes[0]))
    rows = [np.asarray(r, dtype=float) for r in initial_distribution]
    if len(rows) != len(sizes) or any(r.shape != (d,) for r, d in zip(rows, sizes)):
        raise ValueError(f"initial_distribution must hold one row per mode, of the mode sizes {sizes}, "
                         f"got {initial_distribution}")
    _check_probabilities(rows, initial_distribution)
    return [np.log(r) for r in rows]


def token_log_p(log_p: list[np.ndarray], token_modes: Sequence[Sequence[int]], n_values: int) -> np.ndarray:
    """(T, n_values) logits of the product start over tokens: Σ_j log p_{m_j}(s_j) for the mixed-radix digits s_j
    (first mode most significant) of every token value; 0 beyond a token's number of values."""
    table = np.zeros((len(token_modes), n_values))
    for t, modes in enumerate(token_modes):
        grids = np.meshgrid(*[log_p[m] for m in modes], indexing="ij")
        values = np.sum(grids, axis=0).reshape(-1)
        table[t, : len(values)] = values
    return table


def basis_state_distribution(hilbert, configuration: Sequence[float], epsilon: float) -> tuple[tuple[float, ...], ...]:
    """Per-site distributions of a regularised basis state |x⁰⟩: p_i(x⁰_i) = 1 − ε and ε/(d − 1) on each
    other local value, so ψ = Π_i √p_i(x_i) has fidelity (1 − ε)^N with |x⁰⟩ (before a constraint mask
    renormalises it). `configuration` holds Hilbert-space values (e.g. ±1 for NetKet's Spin(½)).

    The softmax conditionals cannot represent an exact zero, hence ε > 0; dynamics compared with an exact
    reference should start that reference from the variational state (as `dynamics` does).
    """
    d = hilbert.local_size
    if not 0 < epsilon < 1 - 1 / d:
        raise ValueError(f"epsilon must lie in (0, {1 - 1 / d:g}), got {epsilon}")
    x = np.asarray(configuration, dtype=float)
    if x.shape != (hilbert.size,):
        raise ValueError(f"configuration must have {hilbert.size} entries, got shape {x.shape}")
    if not np.all(np.isin(x, np.asarray(hilbert.local_states))):
        raise ValueError(f"configuration {x.tolist()} has values outside {list(hilbert.local_states)}")
    index = np.asarray(hilbert.states_to_local_indices(x[None]))[0]
    rows = np.full((hilbert.size, d), epsilon / (d - 1))
    rows[np.arange(hilbert.size), index] = 1 - epsilon
    return tuple(tuple(float(v) for v in r) for r in rows)
