"""Exact sums over a constrained sector: NetKet's `FullSumState` with the basis replaced by the sector's
configurations.

NetKet's `FullSumState` sums over `hilbert.all_states()`, the whole unconstrained space: 2^24 states for the
spin-½ quantum link ring of N = 12 sites, whose Gauss-law sector has 322. `SectorFullSumState` keeps the
unconstrained `hilbert` (the System's operators act there and NetKet checks it) but sums over the given sector
configurations only, which is exact for a model that carries the constraint (ψ = 0 off the sector):

    ⟨O⟩ = Σ_{x,x' ∈ sector} ψ*(x) O_xx' ψ(x') / Σ_{x ∈ sector} |ψ(x)|²,

with O_xx' the block of O inside the sector (`nqs.exact.sector_matrix(..., projected=True)`; elements that leave the
sector meet ψ = 0). Expectation values, forces (hence VMC gradients and TDVP), the quantum geometric tensor
(NetKet's, over `_all_states` weighted by |ψ|²) and `to_array` (a vector over the sector, in its order) are all
sector sums. Our own code because NetKet's constrained spaces refuse the System's operators
(`nqs.states` module docstring).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import netket as nk
import numpy as np
from jax.experimental import sparse as jsparse

from nqs import exact, netket_compat

MAX_SECTOR_STATES = 2**20


class SectorFullSumState(nk.vqs.FullSumState):
    """A `FullSumState` on `hilbert` whose sums run over `configurations` (module docstring).

    Args:
        hilbert: the unconstrained Hilbert space of the System.
        model: a model with ψ = 0 off the configurations (an autoregressive ansatz built with the constraint).
        configurations: the sector, (D, n_sites) NetKet state values (`System.sector_states()`).
        kwargs: as for `nk.vqs.FullSumState`.
    """

    def __init__(self, hilbert: nk.hilbert.DiscreteHilbert, model: Any = None, *, configurations: np.ndarray,
                 **kwargs: Any):
        configurations = np.asarray(configurations)
        if configurations.ndim != 2 or configurations.shape[1] != hilbert.size or not len(configurations):
            raise ValueError(f"configurations must be a non-empty (D, {hilbert.size}) array, got shape "
                             f"{configurations.shape}")
        if len(configurations) > MAX_SECTOR_STATES:
            raise ValueError(f"the sector has {len(configurations)} states (> {MAX_SECTOR_STATES}): sample it instead")
        super().__init__(hilbert, model, **kwargs)
        self._configurations = configurations
        self._states = jnp.asarray(configurations)
        self._matrices: dict[int, tuple[Any, jsparse.BCOO]] = {}

    @property
    def configurations(self) -> np.ndarray:
        """The sector configurations the sums run over, in the order of `to_array`."""
        return self._configurations

    @property
    def _all_states(self) -> jax.Array:
        return self._states

    def to_array(self, normalize: bool = True, allgather: bool = True) -> jax.Array:
        """ψ over the sector configurations (normalised unless `normalize` is False)."""
        if normalize and self._array is not None:
            return self._array
        log_psi = _log_values(netket_compat.apply_fun(self), self.variables, self._states)
        if not normalize:
            return jnp.exp(log_psi)
        psi = jnp.exp(log_psi - jnp.max(log_psi.real))
        self._array = psi / jnp.linalg.norm(psi)
        return self._array

    def sector_matrix(self, operator: nk.operator.DiscreteOperator) -> jsparse.BCOO:
        """The block of `operator` inside the sector (cached per operator)."""
        key = id(operator)
        if key not in self._matrices:
            matrix = exact.sector_matrix(operator, self._configurations, projected=True)
            self._matrices[key] = (operator, jsparse.BCOO.from_scipy_sparse(matrix))
        return self._matrices[key][1]

    def _replace_model(self, model=None, *, apply_fun=None, variables=None):
        return type(self)(hilbert=self.hilbert, model=model, apply_fun=apply_fun, variables=variables,
                          configurations=self._configurations, chunk_size=self.chunk_size, mutable=self.mutable,
                          training_kwargs=dict(self.training_kwargs))

    def __repr__(self) -> str:
        return (f"SectorFullSumState(hilbert = {self.hilbert}, sector = {len(self._configurations)} states, "
                f"n_parameters = {self.n_parameters})")


netket_compat.register_full_sum_serialization(SectorFullSumState)


@partial(jax.jit, static_argnums=0)
def _log_values(apply_fun, variables, states):
    return apply_fun(variables, states)


def _check_hilbert(vstate: SectorFullSumState, operator: Any) -> None:
    if vstate.hilbert != operator.hilbert:
        raise ValueError(f"the operator acts on {operator.hilbert}, the state lives on {vstate.hilbert}")


@nk.vqs.expect.dispatch
def _expect(vstate: SectorFullSumState, operator: nk.operator.DiscreteOperator) -> nk.stats.Stats:
    _check_hilbert(vstate, operator)
    psi = vstate.to_array()
    o_psi = vstate.sector_matrix(operator) @ psi
    mean = jnp.vdot(psi, o_psi)
    return nk.stats.Stats(mean=mean, error_of_mean=0.0, variance=jnp.sum(jnp.abs(o_psi - mean * psi) ** 2))


@nk.vqs.expect_and_forces.dispatch
def _expect_and_forces(vstate: SectorFullSumState, operator: nk.operator.DiscreteOperator, *,
                       mutable: Any = False) -> tuple[nk.stats.Stats, Any]:
    _check_hilbert(vstate, operator)
    psi = vstate.to_array()
    o_psi = vstate.sector_matrix(operator) @ psi
    mean, forces, model_state = netket_compat.full_sum_forces(vstate, mutable, o_psi, psi)
    if mutable is not False:
        vstate.model_state = model_state
    return mean, forces
