"""Forward–backward trapezoid (`dynamics.povm.trapezoid`) against the analytic qubit and the exact Crank–Nicolson."""

import netket as nk
import numpy as np
import pytest
import scipy.linalg
from povm_helpers import UP, check_analytic, full_sum_state, single_qubit

from ansatze.transformer import ARTransformer
from dynamics.povm import TrapezoidSettings, all_outcomes, evolve_trapezoid, exact_trapezoid
from hamiltonians import dissipative_tfi
from nqs.povm import POVM, povm_lindbladian


def test_single_site_analytic_trapezoid():
    system, P0 = single_qubit()
    settings = TrapezoidSettings(t_end=0.5, dt=0.005, n_save=6, n_iter=300, lr_schedule="cosine", lr_final=1e-6)
    out = evolve_trapezoid(system, full_sum_state(1, P0), settings)
    check_analytic(out, 1e-3)
    assert max(out.series("step_loss")[1:]) < 1e-4 < min(out.series("initial_step_loss")[1:])
    np.testing.assert_allclose(out.series("purity"), out.exact["purity"], atol=1e-3)


def test_single_site_trapezoid_with_the_transformer():
    """The ARTransformer in probability mode (machine_pow=1, product initialisation) works unchanged."""
    system, P0 = single_qubit()
    hi = nk.hilbert.Fock(n_max=3, N=1)
    model = ARTransformer(hi, layers=1, features=4, heads=1, phase=False, machine_pow=1, initial_distribution=tuple(P0))
    settings = TrapezoidSettings(t_end=0.2, dt=0.005, n_save=3, n_iter=300, lr_schedule="cosine", lr_final=1e-6)
    check_analytic(evolve_trapezoid(system, nk.vqs.FullSumState(hi, model), settings), 1e-3)


def test_trapezoid_second_order_and_variational_fit_tracks_it():
    system = dissipative_tfi(2, g=1.0)
    L = povm_lindbladian(system, POVM.tetrahedral()).to_dense()
    P0 = np.kron(UP, UP)
    t_end = 0.4
    reference = scipy.linalg.expm(L * t_end) @ P0
    dts = (0.1, 0.05, 0.025)
    linear = {dt: exact_trapezoid(L, P0, dt, round(t_end / dt))[-1] for dt in dts}
    errors = np.array([np.abs(linear[dt] - reference).sum() for dt in dts])
    np.testing.assert_allclose(errors[:-1] / errors[1:], 4.0, rtol=0.03)  # second order: ÷4 per halving
    settings = {"t_end": t_end, "n_iter": 300, "lr_schedule": "cosine", "lr_final": 1e-6}
    variational = []
    for dt in dts[:2]:
        vs = full_sum_state(2, UP)
        out = evolve_trapezoid(system, vs, TrapezoidSettings(dt=dt, n_save=5, **settings), exact=False)
        P = np.exp(np.asarray(vs.model.apply(vs.variables, all_outcomes(2))))
        assert np.abs(P - linear[dt]).sum() < 0.1 * np.abs(linear[dt] - reference).sum()
        variational.append(np.abs(P - reference).sum())
        assert out.exact == {}
    assert variational[0] / variational[1] == pytest.approx(4.0, rel=0.1)
