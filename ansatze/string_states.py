"""String States: a uniform mixture of one autoregressive model over several generation orders.

Luo, Chen, Carrasquilla, Clark, PRL 128, 090501 (2022) (notes: `open_systems.md` §3.2). Given a base
autoregressive model P_θ (normalised, exactly samplable) and K paths π_1 … π_K — permutations of the
sites, π_k[j] = Hilbert index of the j-th generated site — the String State is

    P(a) = (1/K) Σ_k P_θ(a[π_k]),      log P(a) = logsumexp_k log P_θ(a[π_k]) − log K,

where a[π_k] = (a_{π_k[0]}, …, a_{π_k[N−1]}) is the configuration read along path k. The parameters θ
are shared by all paths. Each term is normalised (a ↦ a[π_k] is a bijection), so P is normalised, and
exact sampling is kept: draw k uniformly, draw a' ∼ P_θ by the base model's exact autoregressive
sampling, and return the a with a[π_k] = a' (`StringStatesSampler`). Exact log P needs all K paths,
so evaluating P costs K base evaluations.

Position encodings: the base model is applied to the permuted configuration a[π_k], so its position j
is the j-th site of the path, whatever its lattice position. The same network therefore describes "the
j-th site along a string" for every string, as in the paper; no path-dependent encoding is needed.

With base machine_pow = 1 (POVM distributions) the module returns log P(a). With machine_pow = m ≠ 1
it returns (1/m) log[(1/K) Σ_k |ψ_θ(a[π_k])|^m], i.e. a positive real amplitude whose |·|^m is the
mixture (the base model's phase is discarded).

Paths (`string_paths`). Sites keep the numbering of their graph: on an Lx×Ly lattice site (x, y) has
Hilbert index x·Ly + y (`nk.graph.Grid(extent=[Lx, Ly])`, `nk.graph.Square(L)`), as in `ansatze.lattice`.
* 1D, N sites: "chain" (K = 1), "bidirectional" (the chain and its reverse, K = 2), "translations"
  (cyclic shifts π_s[j] = (s + j) mod N, K = N), "translations_bidirectional" (shifts of both
  directions, π[j] = (s ± j) mod N, K = 2N).
* 2D, shape (Lx, Ly): "snake" (the boustrophedon path of `ansatze.lattice.snake_order`, K = 1),
  "horizontal_snakes" (row-by-row snakes from the four corners, K = 4), "vertical_snakes" (column-by-
  column snakes from the four corners, K = 4), "snakes" (all eight).
Paths that coincide (N ≤ 2 in 1D, Lx = 1 or Ly = 1 in 2D) are kept once, so K can be smaller.

Product start. A base model started in a site-independent product state P_θ(a') = Π_j p(a'_j) gives the
same product state for every path, hence for the mixture. A site-dependent start p_j (per generation
step) is a product state of the mixture only if every path maps it to the same per-site table; the
constructor raises ValueError otherwise.

NetKet integration: `StringStates` is a plain Flax module (not an `AbstractARNN`: the mixture has no
tractable conditionals); `StringStatesSampler` subclasses `nk.sampler.ARDirectSampler`, so it works with
`nk.vqs.MCState` (samples, `expect`, `expect_and_grad` — NetKet's estimators assume samples from
|ψ|^2, i.e. a base with machine_pow = 2) and with `dynamics.povm`, which accepts an `MCState`
whose sampler is an `ARDirectSampler` and uses only the model's log P and the sampler's samples.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import netket as nk
import numpy as np

from ansatze.lattice import snake_order

FAMILIES_1D = ("chain", "bidirectional", "translations", "translations_bidirectional")
FAMILIES_2D = ("snake", "horizontal_snakes", "vertical_snakes", "snakes")


def _unique_rows(paths: list[np.ndarray]) -> np.ndarray:
    """The paths without repetitions, first occurrences kept in order: (K, N) int64."""
    seen, out = set(), []
    for p in paths:
        key = tuple(int(v) for v in p)
        if key not in seen:
            seen.add(key)
            out.append(key)
    return np.asarray(out, dtype=np.int64)


def _snakes(Lx: int, Ly: int, vertical: bool) -> list[np.ndarray]:
    """Snakes from the corners (0, 0), (0, Ly−1), (Lx−1, 0), (Lx−1, Ly−1): row by row (horizontal) or column
    by column (vertical), the first row/column traversed away from the corner and the direction
    alternating, as Hilbert indices x·Ly + y."""
    if vertical:
        pos = snake_order(Ly, Lx)[:, ::-1]  # (y, x) snake on the transposed lattice -> (x, y)
    else:
        pos = snake_order(Lx, Ly)
    out = []
    for flip_x in (False, True):
        for flip_y in (False, True):
            x = Lx - 1 - pos[:, 0] if flip_x else pos[:, 0]
            y = Ly - 1 - pos[:, 1] if flip_y else pos[:, 1]
            out.append(x * Ly + y)
    return out


def string_paths(kind: str, size: int | tuple[int, int]) -> np.ndarray:
    """The (K, N) array of paths of a named family (module docstring); row k is π_k, π_k[j] = Hilbert index
    of the j-th generated site.

    Args:
        kind: a 1D family ("chain", "bidirectional", "translations", "translations_bidirectional") with
            `size` = N, or a 2D family ("snake", "horizontal_snakes", "vertical_snakes", "snakes") with
            `size` = (Lx, Ly).
        size: number of sites (1D) or lattice shape (2D).

    Raises:
        ValueError: unknown family, or a size that does not fit the family.
    """
    if kind in FAMILIES_1D:
        if isinstance(size, (tuple, list, np.ndarray)):
            if len(size) != 1:
                raise ValueError(f"the 1D family {kind!r} needs the number of sites N, got size={size!r}")
            size = size[0]
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or int(size) < 1:
            raise ValueError(f"the 1D family {kind!r} needs a number of sites N >= 1, got size={size!r}")
        n = int(size)
        j = np.arange(n)
        forward = [(s + j) % n for s in range(n)]
        backward = [(s - j) % n for s in range(n)]
        rows = {
            "chain": [j],
            "bidirectional": [j, j[::-1]],
            "translations": forward,
            "translations_bidirectional": forward + backward,
        }[kind]
        return _unique_rows(rows)
    if kind in FAMILIES_2D:
        shape = tuple(size) if isinstance(size, (tuple, list, np.ndarray)) else None
        if shape is None or len(shape) != 2 or any(
            isinstance(v, bool) or not isinstance(v, (int, np.integer)) or int(v) < 1 for v in shape
        ):
            raise ValueError(f"the 2D family {kind!r} needs a lattice shape (Lx, Ly) with Lx, Ly >= 1, got {size!r}")
        Lx, Ly = (int(v) for v in shape)
        if kind == "snake":
            rows = _snakes(Lx, Ly, vertical=False)[:1]
        elif kind == "horizontal_snakes":
            rows = _snakes(Lx, Ly, vertical=False)
        elif kind == "vertical_snakes":
            rows = _snakes(Lx, Ly, vertical=True)
        else:
            rows = _snakes(Lx, Ly, vertical=False) + _snakes(Lx, Ly, vertical=True)
        return _unique_rows(rows)
    raise ValueError(f"unknown path family {kind!r}; choose one of {FAMILIES_1D + FAMILIES_2D}")


def _as_paths(paths, n_sites: int) -> tuple[tuple[int, ...], ...]:
    """Validated paths as a hashable nested tuple (Flax module fields must be hashable)."""
    p = np.asarray(paths)
    if p.ndim != 2 or p.shape[0] < 1 or p.shape[1] != n_sites:
        raise ValueError(f"paths must have shape (K, {n_sites}) with K >= 1, got shape {p.shape}")
    if not np.issubdtype(p.dtype, np.integer):
        raise ValueError(f"paths must hold integer site indices, got dtype {p.dtype}")
    for k, row in enumerate(p):
        if not np.array_equal(np.sort(row), np.arange(n_sites)):
            raise ValueError(f"path {k} is not a permutation of the {n_sites} sites: {row.tolist()}")
    return tuple(tuple(int(v) for v in row) for row in p)


class StringStates(nn.Module):
    """P(a) = (1/K) Σ_k P_θ(a[π_k]) with one shared base autoregressive model (module docstring).

    Attributes:
        base: the base model definition, an autoregressive model (e.g. `ARTransformer(..., machine_pow=1)`)
            with an exact `conditional` for sampling; its parameters live under ``params["base"]``.
        paths: (K, N) array-like of permutations (e.g. `string_paths("snakes", (Lx, Ly))`); row k is π_k.

    Calling the module on configurations a (..., N) returns log P(a) (machine_pow = 1; see the module
    docstring for other machine_pow). `log_prob_per_path(a)` returns the K terms log P_θ(a[π_k]).
    Sample it with `StringStatesSampler`.
    """

    base: nn.Module
    paths: Any

    def __post_init__(self):
        n = self.base.hilbert.size
        self.paths = _as_paths(self.paths, n)
        super().__post_init__()
        self._check_product_start()

    # -- properties ------------------------------------------------------------------------------
    @property
    def hilbert(self):
        return self.base.hilbert

    @property
    def constraint(self):
        """The base model's sector constraint (paths and symmetry permutations of the sites preserve a
        global charge such as the magnetisation)."""
        return getattr(self.base, "constraint", None)

    @property
    def machine_pow(self):
        return getattr(self.base, "machine_pow", 2)

    @property
    def n_paths(self) -> int:
        return len(self.paths)

    def _check_product_start(self) -> None:
        """A site-dependent product start must be the same product state along every path."""
        init = getattr(self.base, "initial_distribution", None)
        if init is None:
            return
        p = np.asarray(init, dtype=float)
        if p.ndim == 1 or np.allclose(p, p[0]):
            return
        inverse = np.argsort(np.asarray(self.paths), axis=1)  # Hilbert site i is generation step inverse[k, i]
        tables = p[inverse]  # (K, N, d): the per-site distribution along path k
        if not np.allclose(tables, tables[0]):
            raise ValueError(
                "the base model's site-dependent initial_distribution (one row per generation step) maps to "
                "different product states along different paths, so the String State would not start as a "
                "product state; use a site-independent initial distribution or paths that preserve it"
            )

    # -- evaluation ------------------------------------------------------------------------------
    def log_prob_per_path(self, inputs: jax.Array) -> jax.Array:
        """machine_pow · Re log ψ_θ(a[π_k]) (= log P_θ(a[π_k]) for machine_pow 1): shape (..., K)."""
        n = self.hilbert.size
        batch_shape = inputs.shape[:-1]
        x = inputs.reshape((-1, n))
        ordered = x[:, jnp.asarray(self.paths)]  # (B, K, N): ordered[b, k, j] = x[b, π_k[j]]
        log_psi = self.base(ordered.reshape((-1, n)))
        out = self.machine_pow * log_psi.real.reshape((x.shape[0], self.n_paths))
        return out.reshape(batch_shape + (self.n_paths,))

    def __call__(self, inputs: jax.Array) -> jax.Array:
        """log P(a) = logsumexp_k log P_θ(a[π_k]) − log K (divided by machine_pow), for inputs (..., N)."""
        terms = self.log_prob_per_path(inputs)
        return (jax.nn.logsumexp(terms, axis=-1) - math.log(self.n_paths)) / self.machine_pow

    # -- prefix reuse (the protocol of nqs.prefix_reuse, one component per path) --------------------------------
    @nn.nowrap
    def generation_steps(self) -> np.ndarray | None:
        """(K, N): the base model's generation step of every site along each path (site i is read at position
        π_k⁻¹(i) of a[π_k]); None when the base model has no prefix cache."""
        steps = getattr(self.base, "generation_steps", None)
        base_steps = steps() if callable(steps) else None
        if base_steps is None:
            return None
        return np.asarray(base_steps)[0][np.argsort(np.asarray(self.paths), axis=1)]

    def prefix_cache(self, inputs: jax.Array) -> dict:
        """The base model's prefix cache of a[π_k] for every path: leaves (B, K, ...)."""
        n, x = self.hilbert.size, inputs.reshape((-1, self.hilbert.size))
        cache = self.base.prefix_cache(x[:, jnp.asarray(self.paths)].reshape((-1, n)))
        return jax.tree_util.tree_map(lambda a: a.reshape((x.shape[0], self.n_paths) + a.shape[1:]), cache)

    def component_suffix_log_psi(self, inputs: jax.Array, cache: dict, component: int, start: int) -> jax.Array:
        """machine_pow · Re log ψ_θ(a′[π_k]) for a′ that agree with the cached a on path k's first `start` steps."""
        ordered = inputs[:, np.asarray(self.paths[component])]
        own = jax.tree_util.tree_map(lambda a: a[:, component], cache)
        return self.machine_pow * self.base.suffix_log_psi(ordered, own, start).real

    @nn.nowrap
    def combine_components(self, logs: jax.Array) -> jax.Array:
        """log P from the (K, ...) path values, as `__call__`."""
        return (jax.nn.logsumexp(logs, axis=0) - math.log(self.n_paths)) / self.machine_pow

    @property
    def n_terms(self) -> int:
        """Number of mixture terms (here the paths); the sampler draws one uniformly per sample."""
        return self.n_paths

    @nn.nowrap
    def exact_sampler(self) -> StringStatesSampler:
        """The exact sampler of this mixture (used by `nqs.states.make_state`)."""
        return StringStatesSampler(self.hilbert)

    @nn.nowrap
    def from_base_samples(self, generated: jax.Array, term: jax.Array) -> jax.Array:
        """Configurations a (B, N) from base samples a' (B, N) and term indices k (B,): a[π_k] = a'."""
        inverse = jnp.asarray(np.argsort(np.asarray(self.paths), axis=1))  # a[i] = a'[π_k⁻¹(i)]
        return jnp.take_along_axis(generated, inverse[term], axis=1)

    def conditional(self, inputs, index):
        raise TypeError(
            "String States have no tractable conditionals: sample them with "
            "ansatze.string_states.StringStatesSampler, not nk.sampler.ARDirectSampler"
        )

    def describe(self) -> dict:
        """Name and hyper-parameters, stored in result files."""
        describe = getattr(self.base, "describe", None)
        return {
            "name": "StringStates",
            "n_paths": self.n_paths,
            "paths": [list(p) for p in self.paths],
            "base": describe() if callable(describe) else {"name": type(self.base).__name__},
            "machine_pow": self.machine_pow,
        }


def _base_variables(variables) -> dict:
    """The base model's collections (``params["base"]``, ...) out of the String State's variables."""
    return {col: tree["base"] for col, tree in variables.items() if col != "cache" and "base" in tree}


class StringStatesSampler(nk.sampler.ARDirectSampler):
    """Exact sampler of `StringStates` (and of its subclass `ansatze.symmetrized.Symmetrized`): per sample
    a mixture term k uniformly, a' ∼ P_θ by the base model's autoregressive sampling (NetKet's
    `ARDirectSampler` loop over `base.conditional`, with its cache), and a = `model.from_base_samples(a', k)`
    (for a path, a[π_k] = a'). Samples are independent and exact (`is_exact` is True).

    For any other model it behaves as `ARDirectSampler`, so it can replace that sampler everywhere. Being
    a subclass, it is accepted wherever an `ARDirectSampler` is (e.g. `dynamics.povm`).

    Args: as `nk.sampler.ARDirectSampler` (hilbert, dtype).
    """

    @partial(jax.jit, static_argnames=("model", "chain_length", "return_log_probabilities"))
    def _sample_chain(self, model, variables, state, chain_length, return_log_probabilities: bool = False):
        if not isinstance(model, StringStates):
            return super()._sample_chain(model, variables, state, chain_length, return_log_probabilities)
        key_path, key_base = jax.random.split(state.key)
        base = model.base.clone(parent=None)
        ordered, new_state = nk.sampler.ARDirectSampler._sample_chain(
            self, base, _base_variables(variables), state.replace(key=key_base), chain_length
        )
        n = self.hilbert.size
        ordered = ordered.reshape((-1, n))
        k = jax.random.randint(key_path, (ordered.shape[0],), 0, model.n_terms)
        sigma = model.from_base_samples(ordered, k)
        sigma = sigma.reshape((self.n_batches, chain_length, n))
        if return_log_probabilities:
            log_p = model.machine_pow * model.apply(variables, sigma.reshape((-1, n))).real
            return (sigma, log_p.reshape((self.n_batches, chain_length))), new_state
        return sigma, new_state
