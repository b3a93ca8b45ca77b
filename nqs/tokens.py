"""Tokens: the physical units of a system (sites, orbitals, gauge blocks) as groups of Hilbert modes.

A NetKet Hilbert space is a list of modes (spins, occupation numbers, links), each with its own number of local
values. Autoregressive models and constraints work on *tokens*: a token t is an ordered group of modes
m_{t,0}, …, m_{t,p−1} whose local indices s_j ∈ {0, …, d_j − 1} form one token value in mixed radix, the first mode
most significant,

    v_t = Σ_j s_j Π_{l>j} d_l,      v_t ∈ {0, …, D_t − 1},   D_t = Π_j d_j.

A spin chain has one token per site (the identity map); a spinful fermion orbital is one token of two modes (↓, ↑:
NetKet's `SpinOrbitalFermions` stores the spin-down block first, so the two modes of orbital i are i and L + i); a
1D gauge block (matter site j and its link j → j+1) is one token of a 2-valued and a (2S+1)-valued mode. Tokens of
one map may have different sizes D_t; models pad their outputs to max_t D_t and mask the values ≥ D_t.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class TokenMap:
    """Token → modes map (see the module docstring).

    Attributes:
        modes: for every token, the Hilbert indices of its modes, most significant first; every mode of the
            Hilbert space belongs to exactly one token.
        mode_sizes: the number of local values of every Hilbert mode (NetKet's ``hilbert.shape``).
    """

    modes: tuple[tuple[int, ...], ...]
    mode_sizes: tuple[int, ...]

    def __post_init__(self):
        modes = tuple(tuple(int(m) for m in token) for token in self.modes)
        sizes = tuple(int(d) for d in self.mode_sizes)
        object.__setattr__(self, "modes", modes)
        object.__setattr__(self, "mode_sizes", sizes)
        if not modes or any(len(token) == 0 for token in modes):
            raise ValueError("a token map needs at least one token and every token at least one mode")
        if any(d < 1 for d in sizes):
            raise ValueError(f"local sizes must be >= 1, got {sizes}")
        flat = sorted(m for token in modes for m in token)
        if flat != list(range(len(sizes))):
            raise ValueError(
                f"every one of the {len(sizes)} Hilbert modes must belong to exactly one token; got tokens {modes}"
            )

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def sites(cls, mode_sizes: Sequence[int]) -> TokenMap:
        """One token per mode, in Hilbert order (spin chains and lattices)."""
        return cls(tuple((i,) for i in range(len(mode_sizes))), tuple(mode_sizes))

    @classmethod
    def of_hilbert(cls, hilbert, modes: Sequence[Sequence[int]] | None = None) -> TokenMap:
        """The map of a NetKet Hilbert space: `modes` as given, or one token per mode."""
        sizes = tuple(int(d) for d in hilbert.shape)
        return cls.sites(sizes) if modes is None else cls(tuple(tuple(t) for t in modes), sizes)

    def grouped(self, groups: Sequence[Sequence[int]]) -> TokenMap:
        """Coarser tokens: token g of the result holds the modes of this map's tokens groups[g], in that order
        (e.g. the px×py patches of a lattice of site tokens)."""
        merged = tuple(tuple(m for t in group for m in self.modes[int(t)]) for group in groups)
        return TokenMap(merged, self.mode_sizes)

    # -- sizes -------------------------------------------------------------------------------------
    @property
    def n_tokens(self) -> int:
        return len(self.modes)

    @property
    def n_modes(self) -> int:
        return len(self.mode_sizes)

    @property
    def token_sizes(self) -> tuple[int, ...]:
        """D_t = Π_j d_j: the number of values of every token."""
        return tuple(math.prod(self.mode_sizes[m] for m in token) for token in self.modes)

    @property
    def max_token_size(self) -> int:
        return max(self.token_sizes)

    @property
    def is_identity(self) -> bool:
        """One token per mode in Hilbert order."""
        return all(token == (i,) for i, token in enumerate(self.modes))

    @property
    def is_uniform(self) -> bool:
        """Every token has the same modes count and the same local sizes (a regular array of values)."""
        first = tuple(self.mode_sizes[m] for m in self.modes[0])
        return all(tuple(self.mode_sizes[m] for m in token) == first for token in self.modes)

    # -- values ------------------------------------------------------------------------------------
    def _radix(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mode index, token index, place value) of every (token, digit), flattened in token order."""
        mode, token, place = [], [], []
        for t, modes in enumerate(self.modes):
            sizes = [self.mode_sizes[m] for m in modes]
            for j, m in enumerate(modes):
                mode.append(m)
                token.append(t)
                place.append(math.prod(sizes[j + 1:]))
        return np.asarray(mode), np.asarray(token), np.asarray(place)

    def encode(self, local_indices):
        """Token values (..., n_tokens) of Hilbert local indices (..., n_modes); jax or numpy in, jax out."""
        mode, token, place = self._radix()
        digits = jnp.asarray(local_indices)[..., mode].astype(jnp.int32) * jnp.asarray(place, jnp.int32)
        out = jnp.zeros(digits.shape[:-1] + (self.n_tokens,), jnp.int32)
        return out.at[..., jnp.asarray(token)].add(digits)

    def decode(self, tokens):
        """Hilbert local indices (..., n_modes) of token values (..., n_tokens); jax or numpy in, jax out."""
        mode, token, place = self._radix()
        sizes = np.asarray(self.mode_sizes)[mode]
        values = jnp.asarray(tokens, jnp.int32)[..., token]
        digits = (values // jnp.asarray(place, jnp.int32)) % jnp.asarray(sizes, jnp.int32)
        out = jnp.zeros(digits.shape[:-1] + (self.n_modes,), jnp.int32)
        return out.at[..., jnp.asarray(mode)].set(digits)

    def describe(self) -> dict:
        """JSON-serialisable form, stored in result files."""
        return {"modes": [list(t) for t in self.modes], "mode_sizes": list(self.mode_sizes)}
