"""DMRG with TeNPy (`ansatze.dmrg`): the MPO is the System's Hamiltonian; the ANTN starts exactly at the DMRG MPS."""

import jax
import numpy as np
import pytest

from ansatze.antn import TransformerANTN
from ansatze.dmrg import antn_parameters, dmrg_for_model, dmrg_ground_state
from hamiltonians import heisenberg, tfim

NET = {"layers": 1, "features": 8, "heads": 2}


@pytest.fixture(scope="module")
def j1j2_4x2():
    """J1-J2 at J2 = 0.5 on the 4×2 torus (y length 2: one bond), Marshall-rotated, S^z = 0."""
    system = heisenberg((4, 2), lattice="square", J2=0.5, pbc=True, marshall=True)
    return system, np.linalg.eigvalsh(system.hamiltonian.to_dense())[0]


def _dense(result, n):
    """The MPS as a state vector in the Hilbert order (site 0 most significant)."""
    v = result.tensors[0]
    for b in result.tensors[1:]:
        v = np.einsum("...a,asb->...sb", v, b)
    v = v.reshape((2,) * n)
    return np.transpose(v, np.argsort(result.path)).reshape(-1)


def test_dmrg_at_full_bond_dimension_is_exact(j1j2_4x2):
    """χ = 16 = 2^{N/2} holds every state of 8 sites: E_DMRG = E_ED (1e-8), in the S^z = 0 sector, along the snake."""
    system, e0 = j1j2_4x2
    path = (0, 1, 3, 2, 4, 5, 7, 6)
    result = dmrg_ground_state(system, 16, path=path)
    assert result.energy == pytest.approx(e0, abs=1e-8)
    assert result.conserved == (1, -1)
    v = _dense(result, 8)
    assert np.vdot(v, system.hamiltonian.to_sparse() @ v).real == pytest.approx(e0, abs=1e-8)
    states = np.asarray(system.hilbert.all_states())
    assert np.abs(v[states.sum(axis=1) != 0]).max() < 1e-12  # in the sector


@pytest.mark.slow  # suite time: the charge-free path (the 4×2 tests use charges)
def test_dmrg_without_charges_on_the_tfim_chain():
    """The transverse-field Ising chain conserves no charge (conserve is ignored without a U1 constraint)."""
    system = tfim(6, h=1.0, pbc=False)
    e0 = np.linalg.eigvalsh(system.hamiltonian.to_dense())[0]
    result = dmrg_ground_state(system, 8)
    assert result.conserved is None and result.energy == pytest.approx(e0, abs=1e-8)


@pytest.mark.parametrize(("variant", "environment"), [("blockwise", "identity"), ("elementwise", "exact")])
def test_antn_starts_at_the_dmrg_energy(j1j2_4x2, variant, environment):
    """χ = 4 (truncated): the DMRG-initialised ANTN's full-sum energy equals ⟨H⟩ of the DMRG MPS (1e-8)."""
    system, e0 = j1j2_4x2
    model = TransformerANTN(system.hilbert, bond_dim=4, variant=variant, environment=environment,
                            constraint=system.constraint, order="snake", shape=(4, 2), **NET)
    result = dmrg_for_model(system, model)
    assert max(result.bond_dims) == 4 and result.energy > e0 + 1e-3  # truncated: a real start, not the answer
    x = np.asarray(system.hilbert.all_states())
    params = antn_parameters(model, model.init(jax.random.PRNGKey(0), x[:2]), result)
    psi = np.exp(np.asarray(model.apply(params, x)))
    assert np.vdot(psi, psi).real == pytest.approx(1.0, abs=1e-12)
    assert np.vdot(psi, system.hamiltonian.to_sparse() @ psi).real == pytest.approx(result.energy, abs=1e-8)


@pytest.mark.slow  # suite time (the default set must stay under 15 min on 2 cores)
def test_mismatched_path_or_bond_dimension_is_refused(j1j2_4x2):
    system, _ = j1j2_4x2
    model = TransformerANTN(system.hilbert, bond_dim=2, constraint=system.constraint, **NET)
    x = np.asarray(system.hilbert.all_states())
    params = model.init(jax.random.PRNGKey(0), x[:2])
    with pytest.raises(ValueError, match="exceed"):
        antn_parameters(model, params, dmrg_for_model(system, model, bond_dim=4))
    with pytest.raises(ValueError, match="generates along"):
        antn_parameters(model, params, dmrg_ground_state(system, 2, path=(1, 0, 2, 3, 4, 5, 6, 7)))
    with pytest.raises(ValueError, match="permutation"):
        dmrg_ground_state(system, 2, path=(0, 0, 1, 2, 3, 4, 5, 6))


@pytest.mark.slow
def test_antn_starts_at_the_dmrg_energy_on_4x4():
    """4×4 torus, J2 = 0.5, χ = 8 along the snake: the ANTN's full-sum energy at step 0 is ⟨H⟩ of the DMRG MPS
    (1e-8), for both variants."""
    system = heisenberg(4, lattice="square", J2=0.5, pbc=True, marshall=True)
    x = np.asarray(system.hilbert.all_states())
    h = system.hamiltonian.to_sparse()
    result = None
    for variant in ("blockwise", "elementwise"):
        model = TransformerANTN(system.hilbert, bond_dim=8, variant=variant, constraint=system.constraint,
                                order="snake", shape=(4, 4), **NET)
        result = result or dmrg_for_model(system, model)
        params = antn_parameters(model, model.init(jax.random.PRNGKey(0), x[:2]), result)
        psi = np.exp(np.asarray(jax.jit(model.apply)(params, x)))
        assert np.vdot(psi, psi).real == pytest.approx(1.0, abs=1e-10)
        assert np.vdot(psi, h @ psi).real == pytest.approx(result.energy, abs=1e-8)
