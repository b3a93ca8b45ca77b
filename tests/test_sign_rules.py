"""Marshall sign built into the ansatz equals rotating the Hamiltonian; sublattices; bad input."""

import jax
import netket as nk
import numpy as np
import pytest

import nqs  # noqa: F401
from ansatze import ARRNN, ARTransformer
from ansatze.sign_rules import check_sign_sites, sublattice_b
from hamiltonians import heisenberg


def test_marshall_sign_in_the_ansatz_equals_the_rotated_hamiltonian():
    plain, rotated = heisenberg(6), heisenberg(6, marshall=True)
    b = sublattice_b(plain.graph)
    for cls, kw in ((ARTransformer, {"layers": 1, "features": 8, "heads": 2}), (ARRNN, {"hidden": 4})):
        signed = cls(plain.hilbert, phase=False, constraint=plain.constraint, sign_sites=b, **kw)
        positive = cls(plain.hilbert, phase=False, constraint=plain.constraint, **kw)
        vs_signed = nk.vqs.FullSumState(plain.hilbert, signed, seed=3)
        vs_positive = nk.vqs.FullSumState(plain.hilbert, positive, seed=3)
        vs_positive.parameters = vs_signed.parameters
        e_signed = vs_signed.expect(plain.hamiltonian).mean
        e_rotated = vs_positive.expect(rotated.hamiltonian).mean
        assert abs(e_signed - e_rotated) < 1e-10
        assert abs(e_signed - vs_positive.expect(plain.hamiltonian).mean) > 1e-3  # the sign matters
    # |ψ|² (hence sampling) is untouched by the sign
    x = plain.hilbert.all_states()
    params = signed.init(jax.random.PRNGKey(0), x)
    np.testing.assert_allclose(np.asarray(signed.apply(params, x)).real, np.asarray(positive.apply(params, x)).real)


def test_sublattices_and_bad_input():
    assert sublattice_b(nk.graph.Chain(6)) == (1, 3, 5)
    assert sublattice_b(nk.graph.Grid([2, 2], pbc=False)) == (1, 2)
    with pytest.raises(ValueError, match="bipartite"):
        sublattice_b(nk.graph.Chain(5))
    with pytest.raises(ValueError, match="distinct"):
        check_sign_sites(nk.hilbert.Spin(0.5, 4), (1, 1))
    with pytest.raises(ValueError, match="spin-1/2"):
        check_sign_sites(nk.hilbert.Fock(2, 4), (1,))
