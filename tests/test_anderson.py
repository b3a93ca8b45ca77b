"""The single-impurity Anderson model (`hamiltonians.anderson`) and its exact Green's functions (`nqs.green`):
star ≡ Wilson chain, the U = 0 closed form, NetKet ≡ QuTiP, ground-state sectors (notes Part C)."""

import numpy as np
import pytest

from hamiltonians import anderson_impurity, star_to_chain
from nqs import exact, green

# notes C: (1) particle–hole-symmetric N_b = 3, (2) asymmetric N_b = 5
CASE_1 = {"eps_d": -1.0, "U": 2.0, "eps_k": [-1.0, 0.0, 1.0], "V_k": [0.5, 0.5, 0.5]}
CASE_2 = {"eps_d": -0.8, "U": 3.0, "eps_k": [-2.0, -0.7, 0.1, 0.6, 1.8], "V_k": [0.3, 0.45, 0.2, 0.5, 0.35]}
OMEGA = green.matsubara_frequencies(20.0, 32)
OFF_AXIS = np.array([0.3 + 0.05j, -1.2 + 0.4j, 2.5 + 1.0j])


def test_chain_parameters_of_the_symmetric_bath():
    e_n, t_n = star_to_chain(CASE_1["eps_k"], CASE_1["V_k"])
    np.testing.assert_allclose(e_n, 0.0, atol=1e-14)
    np.testing.assert_allclose(t_n, [np.sqrt(3) / 2, np.sqrt(2 / 3), 1 / np.sqrt(3)], rtol=1e-14)


@pytest.mark.parametrize("eps_k, V_k", [(CASE_2["eps_k"], CASE_2["V_k"]),
                                        ([-0.5, -0.5, 0.2, 1.0], [0.3, 0.4, 0.0, 0.2]),  # degenerate + decoupled
                                        ([0.1, -0.3], [0.0, 0.0])])  # no hybridisation at all
def test_chain_is_a_unitary_map_of_the_bath(eps_k, V_k):
    """The chain's one-body matrix has the star's levels, and its continued fraction is Δ(z), also when the Krylov
    space closes early (zero hoppings)."""
    e_n, t_n = star_to_chain(eps_k, V_k)
    one_body = np.diag(e_n) + np.diag(t_n[1:], 1) + np.diag(t_n[1:], -1)
    np.testing.assert_allclose(np.linalg.eigvalsh(one_body), np.sort(eps_k), atol=1e-13)
    fraction = 0.0
    for e, t in zip(e_n[::-1], t_n[::-1]):
        fraction = t**2 / (OFF_AXIS - e - fraction)
    np.testing.assert_allclose(fraction, green.hybridisation(OFF_AXIS, eps_k, V_k), atol=1e-13)


@pytest.mark.parametrize("case, sector", [(CASE_1, (2, 2)), (CASE_2, (3, 3))], ids=["symmetric", "asymmetric"])
def test_star_and_chain_have_the_same_spectrum_and_green_function(case, sector):
    star, chain = (anderson_impurity(**case, geometry=g) for g in ("star", "chain"))
    for system in (star, chain):
        assert green.lowest_sector(system).sector == sector
    for beta in (None, 20.0):
        g_star, g_chain = (green.impurity_green(s, beta=beta) for s in (star, chain))
        assert g_star.ground_sectors == (sector,)
        assert abs(g_star.energy - g_chain.energy) < 1e-10
        for z in (1j * OMEGA, OFF_AXIS):
            np.testing.assert_allclose(g_star.green(z), g_chain.green(z), atol=1e-10)
        assert abs(g_star.green.weight - 1) < 1e-12
        for name, value in g_star.observables.items():
            assert abs(value - g_chain.observables[name]) < 1e-10, name


def test_sector_ground_state_of_nqs_exact_agrees():
    """`nqs.exact.ground_state` in the (2, 2) sector (NetKet's operators) has the lowest energy of `nqs.green`
    (the QuTiP form) and its observables."""
    in_sector = exact.ground_state(anderson_impurity(**CASE_1, geometry="chain", n_per_spin=(2, 2)))
    whole = green.impurity_green(anderson_impurity(**CASE_1))
    assert abs(in_sector.energy - whole.energy) < 1e-10
    for name, value in whole.observables.items():
        assert abs(in_sector.observables[name] - value) < 1e-10, name


def test_particle_hole_symmetry_makes_g_imaginary():
    result = green.impurity_green(anderson_impurity(**CASE_1))
    g = result.green(1j * OMEGA)
    assert np.max(np.abs(g.real)) < 1e-12 and np.all(g.imag < 0)
    assert abs(result.observables["impurity_occupation"] - 1) < 1e-12


@pytest.mark.parametrize("beta", [None, 7.0])
def test_noninteracting_green_function(beta):
    """U = 0: G(z) = 1/(z − ε_d − Δ(z)) at T = 0 and at any temperature (grand canonical at μ = 0)."""
    case = {**CASE_2, "U": 0.0}
    result = green.impurity_green(anderson_impurity(**case), beta=beta)
    for z in (1j * OMEGA, OFF_AXIS):
        reference = green.noninteracting_green(z, case["eps_d"], case["eps_k"], case["V_k"])
        np.testing.assert_allclose(result.green(z), reference, atol=1e-11)
        np.testing.assert_allclose(green.self_energy(z, result.green(z), case["eps_d"], case["eps_k"], case["V_k"]),
                                   0.0, atol=1e-9)


@pytest.mark.parametrize("geometry, n_per_spin", [("star", None), ("chain", (1, 2))])
def test_netket_and_qutip_operators_agree(geometry, n_per_spin):
    system = anderson_impurity(eps_d=-0.4, U=1.3, eps_k=[-0.6, 0.9], V_k=[0.35, 0.2], geometry=geometry,
                               n_per_spin=n_per_spin)
    assert exact.check_operators(system) < 1e-12
    assert system.params["geometry"] == geometry and "hamiltonian" in system.conventions
    assert set(system.observables) == {"double_occupancy", "impurity_occupation"}


def test_degenerate_ground_states_are_averaged():
    """A decoupled impurity level at 0 (U = 0, V = 0): the ground states with n_d = 0 and 1 of either spin are
    degenerate; the T = 0 average has n_d = 1 and G = 1/z."""
    result = green.impurity_green(anderson_impurity(eps_d=0.0, U=0.0, eps_k=[-1.0], V_k=[0.0]))
    assert len(result.ground_sectors) == 4
    assert abs(result.observables["impurity_occupation"] - 1) < 1e-12
    np.testing.assert_allclose(result.green(OFF_AXIS), 1 / OFF_AXIS, atol=1e-12)


@pytest.mark.parametrize("kwargs, message", [
    ({"eps_k": [0.1, 0.2], "V_k": [0.3]}, "one entry per bath orbital"),
    ({"eps_k": [], "V_k": []}, "at least one orbital"),
    ({"eps_k": [np.nan], "V_k": [0.3]}, "eps_k must be finite"),
    ({"eps_k": [0.1], "V_k": [np.inf]}, "V_k must be finite"),
    ({"eps_k": [0.1], "V_k": [0.3], "U": np.nan}, "U must be finite"),
    ({"eps_k": [0.1], "V_k": [0.3], "geometry": "ring"}, "unknown geometry"),
    ({"eps_k": [0.1], "V_k": [0.3], "n_per_spin": (3, 0)}, "n_up = 3 is outside"),
])
def test_bad_input_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        anderson_impurity(**{"eps_d": 0.0, "U": 1.0, **kwargs})


def test_green_function_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="whole Fock space"):
        green.impurity_green(anderson_impurity(**CASE_1, n_per_spin=(2, 2)))
    with pytest.raises(ValueError, match="beta must be positive"):
        green.impurity_green(anderson_impurity(**CASE_1), beta=0.0)
