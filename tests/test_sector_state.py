"""Exact sums over a constrained sector (`nqs.sector_state.SectorFullSumState`): the same numbers as NetKet's
full-space `FullSumState` where that is affordable, and a gauge sector of a space too large for it."""

import jax
import netket as nk
import numpy as np
import pytest

import nqs.exact
from ansatze import ARRNN
from hamiltonians import heisenberg
from hamiltonians.quantum_link import quantum_link
from nqs.sector_state import SectorFullSumState
from nqs.states import make_state


def _pair():
    system = heisenberg(6)  # S^z = 0: 20 of 64 states
    model = ARRNN(system.hilbert, hidden=4, constraint=system.constraint)
    sector = make_state(system, model, n_samples=0, seed=3)
    full = nk.vqs.FullSumState(system.hilbert, model, variables=sector.variables)
    return system, sector, full


def test_sector_sums_equal_the_full_space_sums():
    """Amplitudes, expectation values, forces and the quantum geometric tensor agree with NetKet's full-space state
    (the model is zero off the sector)."""
    system, sector, full = _pair()
    assert isinstance(sector, SectorFullSumState) and len(sector.configurations) == 20
    embedded = nqs.exact.embed(system.hilbert, sector.configurations, np.asarray(sector.to_array()))
    np.testing.assert_allclose(embedded, np.asarray(full.to_array()), atol=1e-12)
    for op in (system.hamiltonian, *system.observables.values()):
        assert complex(sector.expect(op).mean) == pytest.approx(complex(full.expect(op).mean), abs=1e-12)
    e_sector, f_sector = sector.expect_and_forces(system.hamiltonian)
    e_full, f_full = full.expect_and_forces(system.hamiltonian)
    assert float(e_sector.variance) == pytest.approx(float(e_full.variance), abs=1e-10)
    for a, b in zip(jax.tree.leaves(f_sector), jax.tree.leaves(f_full), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-12)
    qgt = nk.optimizer.qgt.QGTJacobianDense(holomorphic=False)
    np.testing.assert_allclose(sector.quantum_geometric_tensor(qgt).to_dense(),
                               full.quantum_geometric_tensor(qgt).to_dense(), atol=1e-12)


def test_a_gauge_sector_of_a_huge_space_is_summed_exactly():
    """The spin-1 quantum link ring of N = 8 sites: 2^8·3^8 ≈ 1.7·10^6 states, a Gauss-law sector of 117; the
    energy of the sector sum equals ⟨ψ|H|ψ⟩ from the sector matrix, and a wrong operator or basis is refused."""
    system = quantum_link(8, S=1.0, m=0.5, g2=0.5)
    model = ARRNN(system.hilbert, hidden=4, tokens=system.token_map, constraint=system.constraint)
    vs = make_state(system, model, n_samples=0, seed=0)
    assert len(vs.configurations) == nqs.exact.sector_dimension(system) == 117
    psi = np.asarray(vs.to_array())
    H = nqs.exact.sector_matrix(system.hamiltonian, vs.configurations)
    assert complex(vs.expect(system.hamiltonian).mean) == pytest.approx(np.vdot(psi, H @ psi), abs=1e-12)
    with pytest.raises(ValueError, match="acts on"):
        vs.expect(heisenberg(4).hamiltonian)
    with pytest.raises(ValueError, match="configurations must be"):
        SectorFullSumState(system.hilbert, model, configurations=vs.configurations[:, :3])


@pytest.mark.slow  # suite time (the default set must stay under 15 min on 2 cores)
def test_tdvp_over_the_gauge_sector_of_a_space_too_large_to_index(tmp_path):
    """The spin-1 ring of N = 12 sites has 2^12·3^12 > 2^31 basis states, beyond NetKet's indexing: TDVP summing over
    its 1 186-state sector follows the exact sector evolution, and the return rate into two states is recorded."""
    from dynamics.tdvp import TDVPSettings, evolve_tdvp
    from nqs import results

    system = quantum_link(12, S=1.0, m=0.0, g2=0.5, kappa="normalised")
    assert not system.hilbert.is_indexable
    model = ARRNN(system.hilbert, hidden=4, tokens=system.token_map, constraint=system.constraint)
    vs = make_state(system, model, n_samples=0, seed=0)
    manifold = nqs.exact.lowest_states(quantum_link(12, S=1.0, m=2.0, g2=0.5, kappa="normalised"), 2).vectors
    out = evolve_tdvp(system, vs, TDVPSettings(t_end=0.02, dt=0.01, n_save=2, pinv_rtol_smooth=1e-6), progress=False,
                      manifold=manifold, out=str(tmp_path / "q.h5"))
    assert out.series("fidelity")[-1] > 0.999  # a 4-unit RNN from a random start
    exact_rate = -np.log(np.sum(np.abs(out.exact.states @ manifold.conj().T) ** 2, axis=1)) / 12
    np.testing.assert_allclose(results.load(tmp_path / "q.h5").exact["manifold_return_rate"], exact_rate, rtol=1e-10)
    np.testing.assert_allclose(out.series("manifold_return_rate"), exact_rate, atol=1e-3)


def test_serialises_like_netkets_full_sum_state():
    """Driver checkpoints serialise the state: its variables round-trip through flax's msgpack."""
    import flax

    _, sector, _ = _pair()
    other = make_state(heisenberg(6), sector.model, n_samples=0, seed=9)
    restored = flax.serialization.from_bytes(other, flax.serialization.to_bytes(sector))
    assert isinstance(restored, SectorFullSumState)
    np.testing.assert_allclose(np.asarray(restored.to_array()), np.asarray(sector.to_array()), atol=1e-14)
