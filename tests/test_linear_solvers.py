"""The smooth pseudo-inverse from the Jacobian's SVD equals NetKet's dense `pinv_smooth` on the same QGT."""

import functools

import jax
import netket as nk
import numpy as np
import pytest

from ansatze import ARRNN
from dynamics.linear_solvers import pinv_smooth
from hamiltonians import heisenberg
from nqs.states import make_state


@pytest.mark.parametrize(("n_samples", "diag_shift", "holomorphic"),
                         [(0, 0.0, False), pytest.param(16, 0.0, False, marks=pytest.mark.slow), (16, 1e-3, False),
                          pytest.param(16, 1e-3, True, marks=pytest.mark.slow)])  # slow: suite time
def test_low_rank_solution_equals_the_dense_pseudo_inverse(n_samples, diag_shift, holomorphic):
    system = heisenberg(6)
    model = ARRNN(system.hilbert, hidden=6, constraint=system.constraint,
                  param_dtype=complex if holomorphic else float)
    vs = make_state(system, model, n_samples=n_samples, seed=1)
    qgt = vs.quantum_geometric_tensor(nk.optimizer.qgt.QGTJacobianDense(diag_shift=diag_shift,
                                                                         holomorphic=holomorphic))
    _, forces = vs.expect_and_forces(system.hamiltonian)
    rhs = forces if holomorphic else jax.tree.map(lambda f: f.imag, forces)
    rows = qgt.O.reshape(-1, qgt.O.shape[-1]).shape
    assert rows[0] < rows[1]  # the low-rank path is taken
    for rtol_smooth in (1e-12, 1e-4):
        ours, _ = qgt.solve(functools.partial(pinv_smooth, rtol=1e-14, rtol_smooth=rtol_smooth), rhs)
        dense, _ = qgt.solve(functools.partial(nk.optimizer.solver.pinv_smooth, rtol=1e-14, rtol_smooth=rtol_smooth),
                             rhs)
        a, b = (np.concatenate([np.ravel(x) for x in jax.tree.leaves(t)]) for t in (ours, dense))
        np.testing.assert_allclose(a, b, atol=1e-8 * np.abs(b).max())
