"""ED-DMFT on the Bethe lattice (`nqs.dmft`, notes Part D): the U = 0 semicircle, the weak-coupling Z, the bath fit,
resume of a sweep, the pluggable solver and the refusals."""

import numpy as np
import pytest

from nqs import dmft, green, results

SETTINGS_3 = dmft.DMFTSettings(n_bath=3)
SETTINGS_5 = dmft.DMFTSettings(n_bath=5)


def test_weak_coupling_coefficient():
    assert abs(dmft.weak_coupling_coefficient() - 0.3270) < 1e-4


def test_bethe_green_function():
    """The Matsubara closed form, G(i0⁺) = −2i/D, the 1/z tail and the spectral weight of −Im G(ω + i0⁺)/π."""
    for d in (1.0, 2.0):
        w = green.matsubara_frequencies(50.0, 40)
        closed = -2j / d**2 * (np.sqrt(w**2 + d**2) - w)
        np.testing.assert_allclose(dmft.bethe_green(1j * w, d), closed, rtol=1e-13)
        assert abs(dmft.bethe_green(1e-12j, d) + 2j / d) < 1e-10
        assert abs(dmft.bethe_green(1e6j, d) * 1e6j - 1) < 1e-10
        x = np.linspace(-d, d, 20001)
        dos = -dmft.bethe_green(x + 1e-13j, d).imag / np.pi
        np.testing.assert_allclose(dos, 2 / (np.pi * d**2) * np.sqrt(np.maximum(d**2 - x**2, 0)), atol=1e-6)


@pytest.mark.parametrize("n_bath", [4, 5])
def test_fit_recovers_a_particle_hole_symmetric_bath(n_bath):
    settings = dmft.DMFTSettings(n_bath=n_bath)
    pairs = [0.3, 0.9, 0.2, 0.35]  # ε_1, ε_2, V_1, V_2
    parameters = np.array(pairs if n_bath == 4 else [0.15, *pairs])  # N_b = 5: V_0 first
    bath = dmft.Bath.particle_hole(parameters, n_bath)
    np.testing.assert_allclose(bath.eps, -bath.eps[::-1])
    np.testing.assert_allclose(bath.parameters(), parameters)
    start = dmft.Bath.particle_hole(parameters * 1.3, n_bath)
    fitted, residual = dmft.fit_bath(bath.hybridisation(1j * settings.omega), settings.omega, start,
                                     settings.fit_weights)
    assert residual < 1e-10
    np.testing.assert_allclose(fitted.eps, bath.eps, atol=1e-7)
    np.testing.assert_allclose(fitted.V, bath.V, atol=1e-7)


def test_dmft_at_zero_interaction_reproduces_the_semicircle():
    """U = 0 with the exact solver: Z = 1, Σ = 0, and G equals the Bethe-lattice G(iω_n) up to the discretisation of
    the bath: with N_b = 5 at β_f = 200 the relative deviation is at most 2.7 % (0.050 at ω_1, ω_2, where |G| ≈ 1.9)
    and below 0.7 % for ω_n > 0.3 D (measured)."""
    settings = SETTINGS_5
    point = dmft.solve_dmft(0.0, dmft.metallic_bath(settings), settings, dmft.ExactSolver(settings.beta))
    assert point.converged and abs(point.Z - 1) < 1e-9 and np.max(np.abs(point.self_energy)) < 1e-8
    semicircle = dmft.bethe_green(1j * settings.omega)
    relative = np.abs(point.green - semicircle) / np.abs(semicircle)
    assert np.max(relative) < 0.03
    assert np.max(relative[settings.omega > 0.3]) < 0.01


def test_solver_is_pluggable_and_zero_interaction_is_exact_there():
    """Any callable solver: the U = 0 closed form G = 1/(iω − ε_d − Δ) gives the exact solver's U = 0 point."""
    def noninteracting(problem: dmft.ImpurityProblem, omega: np.ndarray) -> dmft.ImpuritySolution:
        g = green.noninteracting_green(1j * omega, problem.eps_d, problem.bath.eps, problem.bath.V)
        return dmft.ImpuritySolution(g, 0.25)

    settings = SETTINGS_3
    closed = dmft.sweep([0.0], settings, solver=noninteracting, progress=False)[0]
    ed = dmft.sweep([0.0], settings, progress=False)[0]
    assert closed.iterations == ed.iterations and closed.converged
    np.testing.assert_allclose(closed.green, ed.green, atol=1e-10)
    np.testing.assert_allclose(closed.bath.V, ed.bath.V, atol=1e-9)


def test_small_u_quasiparticle_weight_follows_second_order():
    """Z⁻¹ = 1 + c U² + O(U⁴): the fit of Z⁻¹ − 1 = c U² + d U⁴ to U = 0.5, 1 (N_b = 5, β_f = 200, up sweep) gives c
    within 10 % of 0.3270 (measured 0.3255)."""
    points = dmft.sweep([0.5, 1.0], SETTINGS_5, progress=False)
    U = np.array([p.U for p in points])
    inverse = np.array([1 / p.Z - 1 for p in points])
    c, _ = np.linalg.solve(np.stack([U**2, U**4], axis=1), inverse)
    assert abs(c - dmft.weak_coupling_coefficient()) < 0.1 * 0.3270, c
    assert all(p.converged for p in points)
    assert 0.15 < points[1].double_occupancy < points[0].double_occupancy < 0.25


def test_zero_temperature_solver_agrees_in_the_metal():
    """In the metal the T = 0 (degeneracy-averaged) solver and the thermal one at β_f = 200 agree (N_b = 3, U = 1: Z
    differs by 8e-4, the small level spacing of the bath is thermally populated)."""
    settings = SETTINGS_3
    bath = dmft.metallic_bath(settings)
    thermal = dmft.solve_dmft(1.0, bath, settings, dmft.ExactSolver(settings.beta))
    ground = dmft.solve_dmft(1.0, bath, settings, dmft.ExactSolver(None))
    assert abs(thermal.Z - ground.Z) < 2e-3 and abs(thermal.double_occupancy - ground.double_occupancy) < 1e-4


class _Stop(Exception):
    pass


def test_an_interrupted_sweep_resumes_to_the_same_rows(tmp_path):
    U = [0.5, 1.0, 1.5]
    whole = tmp_path / "whole.h5"
    dmft.sweep(U, SETTINGS_3, out=whole, progress=False)
    parted = tmp_path / "parted.h5"

    def stop(point: dmft.DMFTPoint) -> None:
        raise _Stop(point.U)

    with pytest.raises(_Stop):
        dmft.sweep(U, SETTINGS_3, out=parted, progress=False, on_point=stop)
    assert results.load(parted).n_rows == 1
    rest = dmft.sweep(U, SETTINGS_3, out=parted, mode="resume", progress=False)
    assert [p.U for p in rest] == [1.0, 1.5]
    a, b = results.load(whole), results.load(parted)
    assert a.kind == "dmft" and a.exact["weak_coupling_c"] == pytest.approx(0.32699, abs=1e-5)
    assert set(a.history) == set(b.history) and {"U", "Z", "double_occupancy", "eps_0", "V_2"} <= set(a.history)
    for name in sorted(set(a.history) - {"wall_time", "solve_time"}):
        np.testing.assert_array_equal(a.history[name], b.history[name], err_msg=name)


def test_down_sweep_starts_from_the_insulator():
    """The atomic-limit start at large U: the zero-energy level decouples (V_0 → 0) and Z is tiny."""
    settings = SETTINGS_3
    bath = dmft.insulating_bath(3.5, settings)
    assert bath.V[1] < 1e-3 and np.allclose(np.abs(bath.eps[[0, 2]]), 1.75, atol=1e-3)
    point = dmft.sweep([3.5], settings, direction="down", progress=False)[0]
    assert point.converged and point.Z < 0.05 and point.double_occupancy < 0.05


@pytest.mark.parametrize("kwargs, message", [
    ({"mixing": 0.0}, "mixing"), ({"weights": "gaussian"}, "unknown weights"), ({"beta": -1.0}, "beta"),
    ({"n_bath": 0}, "n_bath"),
])
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        dmft.DMFTSettings(**kwargs)


def test_bad_sweeps_are_refused():
    with pytest.raises(ValueError, match="unknown direction"):
        dmft.sweep([1.0], SETTINGS_3, direction="sideways")
    with pytest.raises(ValueError, match="finite and non-negative"):
        dmft.sweep([1.0, np.nan], SETTINGS_3)
    with pytest.raises(ValueError, match="the bath has 5 levels"):
        dmft.solve_dmft(1.0, dmft.metallic_bath(SETTINGS_5), SETTINGS_3, dmft.ExactSolver(200.0))


@pytest.mark.slow
def test_metal_and_insulator_coexist_with_the_thermal_solver():
    """Hysteresis with the thermal solver (N_b = 5, β_f = 200; measured U_c1 ∈ (2.3, 2.4), U_c2 ∈ (2.6, 2.7)): at
    U = 2.5 the metallic start stays metallic and the insulating sweep stays insulating; at U = 2.2 the insulating
    sweep has fallen back into the metal (U_c1 > 2.2)."""
    metal = dmft.sweep([2.5], SETTINGS_5, progress=False)[0]
    insulator, back = dmft.sweep([2.6, 2.5, 2.2], SETTINGS_5, direction="down", progress=False)[1:]
    assert metal.Z > 0.05 and insulator.Z < 0.01 and back.Z > 0.1
    assert metal.double_occupancy > 0.03 > insulator.double_occupancy
