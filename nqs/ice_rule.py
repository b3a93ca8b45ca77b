"""Gauss's law of the 2+1D U(1) quantum link model with spin-½ links (the ice rule) as a `Constraint` over vertex
blocks.

Lattice and blocks. An Lx×Ly torus; vertex v = (x, y), raster index v = y·Lx + x, owns the links (v, x̂) → Hilbert
mode 2v and (v, ŷ) → mode 2v + 1; block v is one token of 4 values u = 2a + b (a, b the local indices of its x- and
y-link, the first mode most significant). Local index n ∈ {0, 1} ↔ E = ½ − n (NetKet's Spin(½) order: index 0 is
S^z = +½).

Laws. The pure-gauge Gauss law G_v = Σ_μ (E_{v,μ} − E_{v−μ̂,μ}) = 0 (2-in-2-out, six-vertex ice rule) and,
optionally, the winding numbers W_x = Σ_y E_{(0,y),x̂} and W_y = Σ_x E_{(x,0),ŷ} (``../shared/notes/models.md`` A.6;
Banerjee et al., J. Stat. Mech. (2013) P12010), all linear in the link bits:

    n_{v,x̂} + n_{v,ŷ} − n_{v−x̂,x̂} − n_{v−ŷ,ŷ} = 0,    Σ_y n_{(0,y),x̂} = Ly/2 − W_x,    Σ_x n_{(x,0),ŷ} = Lx/2 − W_y.

Masks and look-ahead. The carry is the vector of pending sums r = t − A n_prefix (what the links still to come must
supply to every law). A law whose support is complete at step i must have r = 0 there. Bounded integer variables
make the feasibility of the rest a combinatorial question, answered exactly by tabulation at construction: the
reachable pending sums of the open laws (touched, not complete) are enumerated forward step by step, those with a
completion are kept backwards, and the mask at step i allows u iff the laws closing at i vanish and the open part of
r − A_i u is one of the kept states (a sorted key table, searched with a traced step index). So no reachable prefix
is a dead end, for any generation order. The tables grow with the number of distinct frontier states (about the
number of six-vertex configurations of two rows); `MAX_FRONTIER_STATES` bounds them (small tori: 4×4 and 6×4 are
cheap). Construction raises ValueError when no configuration satisfies the laws (e.g. a winding number out of
range).

Reference: the gauge-block masking of Luo, Chen, Hu, Zhao, Hur, Clark, PRR 5, 013216 (2023).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import jax.numpy as jnp
import numpy as np

from nqs.constraint import Constraint, as_permutation

BITS = 2
MAX_FRONTIER_STATES = 2**20  # distinct pending-sum states at one step that the look-ahead tabulates


def _frontier_tables(laws: np.ndarray, targets: np.ndarray, order: tuple[int, ...]) -> dict:
    """Forward enumeration of the reachable pending sums and backward pruning to those with a completion (module
    docstring). Returns the arrays of the mask (see `IceRule`), or raises ValueError when nothing is feasible."""
    n_laws, n_blocks = laws.shape[0], laws.shape[1] // BITS
    values = np.array([[(u >> (BITS - 1 - j)) & 1 for j in range(BITS)] for u in range(2**BITS)], np.int64)
    blocks = laws.reshape(n_laws, n_blocks, BITS)
    columns = np.stack([values @ blocks[:, order[i], :].T for i in range(n_blocks)])  # (N, V, n_laws)
    touched = np.cumsum([np.any(blocks[:, order[i], :] != 0, axis=1) for i in range(n_blocks)], axis=0) > 0
    last = np.array([max([i for i in range(n_blocks) if np.any(blocks[k, order[i]] != 0)], default=-1)
                     for k in range(n_laws)])
    closing = np.stack([last == i for i in range(n_blocks)])  # (N, n_laws): laws complete at step i
    open_ = touched & (last[None, :] > np.arange(n_blocks)[:, None])  # (N, n_laws)
    states, links = [targets[None, :].astype(np.int64)], []
    for i in range(n_blocks):
        nxt = (states[-1][:, None, :] - columns[i][None]).reshape(-1, n_laws)
        ok = np.all(nxt[:, closing[i]] == 0, axis=1)
        unique, inverse = np.unique(nxt[ok], axis=0, return_inverse=True)
        if len(unique) > MAX_FRONTIER_STATES:
            raise ValueError(f"the look-ahead would tabulate {len(unique)} frontier states at step {i}: too many")
        child = np.full(len(nxt), -1)
        child[np.flatnonzero(ok)] = inverse.reshape(-1)
        states.append(unique)
        links.append(child.reshape(-1, 2**BITS))  # (states before, V) → state after, −1 if a law closing fails
    alive = [None] * (n_blocks + 1)
    alive[n_blocks] = np.ones(len(states[n_blocks]), bool)
    for i in range(n_blocks - 1, -1, -1):
        alive[i] = np.any(np.append(alive[i + 1], False)[links[i]], axis=1)  # −1 (a closing law fails) → False
    if not alive[0][0]:
        raise ValueError("no configuration satisfies the Gauss law and the winding numbers on this torus")
    kept = [states[i + 1][alive[i + 1]][:, open_[i]] for i in range(n_blocks)]
    lo, hi = np.zeros(n_laws, np.int64), np.zeros(n_laws, np.int64)
    for i in range(n_blocks):
        if kept[i].size:
            lo[open_[i]] = np.minimum(lo[open_[i]], kept[i].min(axis=0))
            hi[open_[i]] = np.maximum(hi[open_[i]], kept[i].max(axis=0))
    span = hi - lo + 1
    open_index, open_valid = _padded_rows(open_)
    closing_index, closing_valid = _padded_rows(closing)
    radix = np.zeros(open_index.shape, np.int64)
    keys = []
    for i in range(n_blocks):
        k = np.flatnonzero(open_[i])
        radix[i, :len(k)] = np.concatenate([[1], np.cumprod(span[k])[:-1]]) if len(k) else []
        keys.append(((kept[i] - lo[k]) * radix[i, :len(k)]).sum(axis=1) if len(k) else np.zeros(1, np.int64))
    modulus = int(max(np.prod(span[open_[i]]) for i in range(n_blocks)))
    table = np.unique(np.concatenate([i * modulus + keys[i] for i in range(n_blocks)]))
    return {"columns": columns, "closing_index": closing_index, "closing_valid": closing_valid,
            "open_index": open_index, "open_valid": open_valid, "lo": lo, "hi": hi, "radix": radix,
            "modulus": modulus, "table": table}


def _padded_rows(flags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every row of the boolean (N, n_laws) `flags`: the indices of its true entries, padded with 0 to a common
    width, and which entries are real."""
    width = max(1, int(flags.sum(axis=1).max()))
    index, valid = np.zeros((len(flags), width), np.int64), np.zeros((len(flags), width), bool)
    for i, row in enumerate(flags):
        k = np.flatnonzero(row)
        index[i, :len(k)], valid[i, :len(k)] = k, True
    return index, valid


@dataclass(frozen=True)
class IceRule(Constraint):
    """G_v = 0 at every vertex of an Lx×Ly torus of spin-½ links, optionally at fixed winding numbers (module
    docstring).

    Attributes:
        Lx, Ly: the torus (each ≥ 2).
        winding: (W_x, W_y), the electric fluxes through the two cuts (multiples of ½ with W_x + Ly/2 and W_y + Lx/2
            integers); None for every winding sector.
        order: the generation order of the vertex blocks (step i generates block order[i]); None for raster order.
    """

    Lx: int
    Ly: int
    winding: tuple[float, float] | None = None
    order: tuple[int, ...] | None = None
    _tables: dict = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self):
        for name in ("Lx", "Ly"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or int(value) < 2:
                raise ValueError(f"the ice rule needs a torus of at least 2×2 vertices, got {name}={value}")
            object.__setattr__(self, name, int(value))
        if self.winding is not None:
            winding = tuple(float(w) for w in self.winding)
            sides = (self.Ly, self.Lx)
            if len(winding) != 2 or any(abs(w + n / 2 - round(w + n / 2)) > 1e-12 for w, n in zip(winding, sides)):
                raise ValueError(f"winding (W_x, W_y) must make W_x + Ly/2 and W_y + Lx/2 integers, got "
                                 f"{self.winding}")
            object.__setattr__(self, "winding", winding)
        n = self.n_sites
        if self.order is not None:
            order = as_permutation(self.order, n)
            object.__setattr__(self, "order", None if order == tuple(range(n)) else order)
        laws, targets = self.laws()
        order = tuple(range(n)) if self.order is None else self.order
        object.__setattr__(self, "_tables", _frontier_tables(laws, targets, order))

    @property
    def n_sites(self) -> int:  # type: ignore[override]
        return self.Lx * self.Ly

    @property
    def local_size(self) -> int:  # type: ignore[override]
        return 2**BITS

    def laws(self) -> tuple[np.ndarray, np.ndarray]:
        """(A, t) over the link bits n (mode order): rows 0 … N − 1 the Gauss laws, then W_x, W_y when fixed."""
        Lx, Ly, n = self.Lx, self.Ly, self.n_sites
        rows, targets = [], []
        for v in range(n):
            x, y = v % Lx, v // Lx
            row = np.zeros(2 * n, np.int64)
            row[2 * v] += 1
            row[2 * v + 1] += 1
            row[2 * ((x - 1) % Lx + y * Lx)] -= 1
            row[2 * (x + ((y - 1) % Ly) * Lx) + 1] -= 1
            rows.append(row)
            targets.append(0)
        if self.winding is not None:
            wx, wy = np.zeros(2 * n, np.int64), np.zeros(2 * n, np.int64)
            wx[[2 * y * Lx for y in range(Ly)]] = 1
            wy[[2 * x + 1 for x in range(Lx)]] = 1
            rows += [wx, wy]
            targets += [round(Ly / 2 - self.winding[0]), round(Lx / 2 - self.winding[1])]
        return np.stack(rows), np.asarray(targets, np.int64)

    def init_carry(self, batch: int):
        """The pending sums r = t (batch, n_laws)."""
        _, targets = self.laws()
        return jnp.tile(jnp.asarray(targets, jnp.int32)[None, :], (batch, 1))

    def mask(self, carry, i):
        t = self._tables
        columns = jnp.asarray(t["columns"], jnp.int32)[i]  # (V, n_laws)

        def after(name):  # the pending sums (B, V, K) after the step of the laws listed in t[name + "_index"][i]
            index = jnp.asarray(t[name + "_index"])[i]
            part = jnp.take(carry, index, axis=1)[:, None, :] - jnp.take(columns, index, axis=1)[None]
            return part.astype(jnp.int64), jnp.asarray(t[name + "_valid"])[i], index

        closing, closing_valid, _ = after("closing")
        closes = jnp.all(~closing_valid | (closing == 0), axis=-1)
        values, valid, index = after("open")
        lo, hi = jnp.asarray(t["lo"])[index], jnp.asarray(t["hi"])[index]
        inside = jnp.all(~valid | ((values >= lo) & (values <= hi)), axis=-1)
        key = jnp.sum((values - lo) * jnp.asarray(t["radix"])[i], axis=-1)
        key = key + jnp.asarray(i, jnp.int64) * t["modulus"]
        table = jnp.asarray(t["table"])
        found = table[jnp.clip(jnp.searchsorted(table, key), 0, len(t["table"]) - 1)] == key
        return closes & inside & found

    def update(self, carry, s, i):
        return carry - jnp.asarray(self._tables["columns"], jnp.int32)[i][jnp.asarray(s, jnp.int32)]

    def permuted(self, order) -> IceRule:
        current = tuple(range(self.n_sites)) if self.order is None else self.order
        return dataclasses.replace(self, order=tuple(current[i] for i in as_permutation(order, self.n_sites)))

    def describe(self) -> dict:
        return {
            "type": "IceRule",
            "Lx": self.Lx,
            "Ly": self.Ly,
            "winding": None if self.winding is None else list(self.winding),
            "order": None if self.order is None else list(self.order),
            "law": "G_v = E_(v,x) + E_(v,y) - E_(v-x,x) - E_(v-y,y) = 0; W_x = sum_y E_((0,y),x), "
                   "W_y = sum_x E_((x,0),y)",
            "blocks": "vertex v = y*Lx + x: token (mode 2v = link (v,x), mode 2v+1 = link (v,y)), x-link most "
                      "significant; local index n <-> E = 1/2 - n",
        }
