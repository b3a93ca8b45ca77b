"""Numbers a user would check, each against an independent reference with a tolerance derived from the physics or the
statistics (stated beside each assertion):

* the 4×4 J1-J2 Hamiltonian and its Marshall rotation against σ·σ sums written here with `qutip.tensor`, and their
  ground energies against the published 4×4 exact diagonalisation;
* a short VMC on a 2D lattice (the 4×2 ladder) against ED, through the Eckart bound;
* sampled energy and correlators of that variational state against its exact expectation values (5σ) and ED;
* sampled TDVP and TENG against `sesolve` over a seed ensemble: the ensemble mean of the trajectory error against
  the error of the same method with exact sums, within the ensemble's own spread.

Every default test here is small (full sums, module-scoped fixtures); the full 2^16-state comparisons are `slow`.
"""

import dataclasses

import jax
import jax.numpy as jnp
import netket as nk
import numpy as np
import pytest
import qutip
import scipy.sparse as sp
from scipy import stats
from scipy.sparse.linalg import eigsh

from dynamics.product_expansions import get_scheme
from dynamics.tdvp import TDVPSettings, _make_driver
from dynamics.teng import TENGSettings, _Fitter, teng_step
from hamiltonians import heisenberg, tfim
from nqs import exact
from nqs.states import make_state
from nqs.vmc import VMCSettings, ground_state

# ---------------------------------------------------------------------------------------------------------------------
# 4×4 J1-J2 on the torus
# ---------------------------------------------------------------------------------------------------------------------

# Published exact (Lanczos) ground-state energies per site of H = Σ_<ij> S_i·S_j + J2 Σ_<<ij>> S_i·S_j on the 4×4
# torus, S·S units, J1 = 1: the varbench collection (Wu et al., Science 386, 296 (2024); data set
# github.com/varbench/varbench, 4×4 PBC ED rows; J2 = 0 is −44.9139328/64 there in Pauli units; notes ansatze.md
# §8.2-8.3), quoted to 7 decimals. The classic 16-site ED is Schulz, Ziman & Poilblanc, J. Phys. I France 6, 675 (1996).
PUBLISHED_4X4_PER_SITE = {0.0: -0.7017802, 0.5: -0.5286202}
L4, N16 = 4, 16


def _site(x: int, y: int) -> int:
    """Site index of (x, y) on the L×L torus, x*L + y (NetKet's Grid numbering, stated in hamiltonians.lattices)."""
    return (x % L4) * L4 + (y % L4)


def _torus_bonds() -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Nearest (x±1, y±1 axis steps) and next-nearest (diagonal) bonds of the 4×4 torus, each once, from coordinates."""
    nn, nnn = set(), set()
    for x in range(L4):
        for y in range(L4):
            for dx, dy in ((1, 0), (0, 1)):
                nn.add(tuple(sorted((_site(x, y), _site(x + dx, y + dy)))))
            for dx, dy in ((1, 1), (1, -1)):
                nnn.add(tuple(sorted((_site(x, y), _site(x + dx, y + dy)))))
    return sorted(nn), sorted(nnn)


def _qutip_dot(i: int, j: int) -> sp.csr_matrix:
    """σ_i·σ_j = X_i X_j + Y_i Y_j + Z_i Z_j on 16 spins, each product built with `qutip.tensor` (site 0 first)."""
    total = None
    for pauli in (qutip.sigmax(), qutip.sigmay(), qutip.sigmaz()):
        factors = [qutip.qeye(2)] * N16
        factors[i], factors[j] = pauli, pauli
        term = qutip.tensor(factors).data_as("csr_matrix")
        total = term if total is None else total + term
    return sp.csr_matrix(total.real)  # X X + Y Y + Z Z is real (Y Y = −(iσ)(iσ) has real entries)


@pytest.fixture(scope="module")
def square4():
    """The S^z = 0 sector of the 4×4 torus written here (basis numbers from bit counts, configurations, the
    hand-written J1 and J2 bond sums and the Marshall sign U = Π_{i∈B} σᶻ_i), and the library's three operators
    restricted to it by the library's own connected elements (`nqs.exact.sector_matrix`, what VMC evaluates; it
    refuses an operator that leaves the sector, so S^z conservation is checked on the way)."""
    numbers = np.array([n for n in range(2**N16) if bin(n).count("1") == N16 // 2])  # bit 1 = local index 1 = down
    bits = (numbers[:, None] >> np.arange(N16 - 1, -1, -1)) & 1  # site 0 most significant
    configurations = (1 - 2 * bits).astype(np.float64)  # NetKet's Spin(1/2) values: +1 = up = local index 0
    nn, nnn = _torus_bonds()
    assert (len(nn), len(nnn)) == (2 * N16, 2 * N16)  # every bond once on a 4×4 torus
    h1 = sum(_qutip_dot(i, j) for i, j in nn)[numbers][:, numbers]
    h2 = sum(_qutip_dot(i, j) for i, j in nnn)[numbers][:, numbers]
    sublattice_b = np.array([(x + y) % 2 for x in range(L4) for y in range(L4)])  # site x*4 + y
    marshall = sp.diags(np.prod(np.where(sublattice_b == 1, configurations, 1.0), axis=1))  # Π_{i∈B} σᶻ_i, diagonal
    library = {
        (J2, rotated): exact.sector_matrix(heisenberg(L4, lattice="square", J2=J2, pbc=True,
                                                      marshall=rotated).hamiltonian, configurations)
        for J2, rotated in ((0.5, False), (0.5, True), (0.0, True))
    }
    return {"h1": h1, "h2": h2, "U": marshall, "library": library}


def test_4x4_j1j2_and_marshall_operators_equal_handwritten_qutip_ones(square4):
    h1, h2, U, library = square4["h1"], square4["h2"], square4["U"], square4["library"]
    # Entries are small integers (±1 on the diagonal per bond, 2 per exchange): any wrong bond, sign or J2 gives a
    # difference ≥ 0.5; 1e-12 only allows for rounding.
    assert abs(library[0.5, False] - (h1 + 0.5 * h2)).max() < 1e-12
    # Marshall: the rotation U H U† by π about z on sublattice B, not a sign flip by hand. It flips X X + Y Y on the J1
    # bonds (A-B) and leaves the J2 bonds (B-B, A-A) alone.
    assert abs(library[0.5, True] - U @ (h1 + 0.5 * h2) @ U).max() < 1e-12
    assert abs(library[0.0, True] - U @ h1 @ U).max() < 1e-12
    # ...so the rotated nearest-neighbour model is stoquastic (off-diagonal elements ≤ 0), the plain one is not
    off = (library[0.0, True] - sp.diags(library[0.0, True].diagonal())).tocoo()
    assert off.nnz > 0 and off.data.max() <= 0.0
    assert (h1 - sp.diags(h1.diagonal())).tocoo().data.min() > 0.0


def test_4x4_ground_energies_match_published_exact_diagonalisation(square4):
    library = square4["library"]
    for (J2, rotated), matrix in library.items():
        energies, vectors = eigsh(matrix, k=1, which="SA", tol=1e-12)
        per_site = energies[0] / (4 * N16)  # Pauli units (σ·σ = 4 S·S) → S·S per site
        # the published values are rounded to 7 decimals (±5e-8); Lanczos converges to ~1e-12
        assert abs(per_site - PUBLISHED_4X4_PER_SITE[J2]) < 1e-7, (J2, rotated, per_site)
        if J2 == 0.0:
            # Perron-Frobenius on the stoquastic rotated Hamiltonian (connected sector): a ground state of one sign
            # everywhere (Marshall's theorem); a wrong sublattice sign leaves amplitudes of both signs
            v = vectors[:, 0] * np.sign(vectors[np.argmax(abs(vectors[:, 0])), 0])
            assert v.min() > 0.0, v.min()


@pytest.mark.slow  # ~14 s: full 2^16-state matrices and QuTiP's sparse eigensolver in the library's ED
def test_4x4_full_space_operator_and_library_ed():
    nn, nnn = _torus_bonds()
    h = sum(_qutip_dot(i, j) for i, j in nn) + 0.5 * sum(_qutip_dot(i, j) for i, j in nnn)
    system = heisenberg(L4, lattice="square", J2=0.5, pbc=True)
    assert abs(sp.csr_matrix(system.hamiltonian.to_sparse()) - h).max() < 1e-12  # every S^z sector, not only 0
    for J2 in (0.0, 0.5):
        e0 = exact.ground_state(heisenberg(L4, lattice="square", J2=J2, pbc=True, marshall=J2 == 0.0)).energy
        assert abs(e0 / (4 * N16) - PUBLISHED_4X4_PER_SITE[J2]) < 1e-7


# ---------------------------------------------------------------------------------------------------------------------
# 2D VMC against ED, and sampled observables of the variational state
# ---------------------------------------------------------------------------------------------------------------------

OBSERVABLES = ("staggered_magnetization_z_squared", "nn_correlation_xx")  # a long-range diagonal, an off-diagonal one


@pytest.fixture(scope="module")
def ladder():
    """Marshall-rotated Heisenberg model on the 4×2 lattice (periodic along 4; NetKet's length-2 direction is open),
    its ED ground state and gap, and a 40-step full-sum SR VMC of a real (positive) RBM α = 2."""
    system = heisenberg((4, 2), lattice="square", pbc=True, marshall=True, zero_magnetization=False)
    system = dataclasses.replace(system, observables={name: system.observables[name] for name in OBSERVABLES})
    ed = exact.ground_state(system, with_gap=True)
    settings = VMCSettings(n_steps=40, n_samples=0, learning_rate=0.03, diag_shift=1e-2, solver="sr",
                           observables_every=0)
    model = nk.models.RBM(alpha=2, param_dtype=float)
    outcome = ground_state(system, model, settings, seed=1, progress=False)
    psi = np.asarray(outcome.state.to_array())
    return {"system": system, "ed": ed, "model": model, "outcome": outcome, "psi": psi,
            "values": exact.expectation_values(system, psi)}


# ‖O‖ ≤ 1 for both: each is an average of products of Pauli matrices (norm 1), with weights that sum to 1
OPERATOR_NORM_BOUND = 1.0


def test_2d_vmc_reaches_the_exact_ground_state(ladder):
    ed, outcome, psi = ladder["ed"], ladder["outcome"], ladder["psi"]
    energy = float(outcome.energy.mean.real)
    assert energy >= ed.energy - 1e-9  # variational principle (exact sum, no noise)
    # Eckart: E − E0 ≥ (1 − F)(E1 − E0), so (E − E0)/gap < 0.02 guarantees the fidelity F ≥ 0.98 (a Néel-like
    # product state has (E − E0)/gap = 2.2; measured 5e-3, relative energy error 9e-4)
    excess = (energy - ed.energy) / ed.gap
    assert excess < 0.02, excess
    fidelity = abs(np.vdot(ed.state, psi)) ** 2
    assert fidelity >= 1 - excess - 1e-9  # the bound itself: the VMC vector and the ED vector share the basis
    # any observable: |<O>_ψ − <O>_0| ≤ ‖ρ_ψ − ρ_0‖_1 ‖O‖ = 2√(1 − F) ‖O‖
    for name in OBSERVABLES:
        bound = 2 * np.sqrt(1 - fidelity) * OPERATOR_NORM_BOUND
        assert abs(ladder["values"][name] - ed.observables[name]) <= bound, name


def test_sampled_observables_match_the_same_state_and_ed(ladder):
    """Exact (i.i.d.) samples of the trained state: every estimate within 5σ of the exact expectation value of the
    same state, and within 5σ plus the Eckart/trace-distance bound of ED."""
    system, ed, psi = ladder["system"], ladder["ed"], ladder["psi"]
    mc = make_state(system, ladder["model"], n_samples=4096, seed=7, enumerate_samples=True)
    mc.parameters = ladder["outcome"].state.parameters
    fidelity = abs(np.vdot(ed.state, psi)) ** 2
    exact_same = {"energy": float(np.vdot(psi, system.hamiltonian.to_sparse() @ psi).real), **ladder["values"]}
    exact_ed = {"energy": ed.energy, **ed.observables}
    operators = {"energy": system.hamiltonian, **system.observables}
    for name, operator in operators.items():
        estimate = mc.expect(operator)
        mean, sigma = float(estimate.mean.real), float(estimate.error_of_mean)
        # i.i.d. samples: the estimator is Gaussian to O(1/√N); |z| > 5 has probability 6e-7
        assert abs(mean - exact_same[name]) <= 5 * sigma, (name, mean, exact_same[name], sigma)
        # ...and resolving: 5σ below a tenth of the value sees any 10 % bias (sampling |ψ| instead of |ψ|² moves the
        # energy by 16σ)
        assert 5 * sigma < 0.1 * abs(exact_same[name]), (name, sigma)
        # the variational state's own distance from ED: E − E0 for the energy, the trace-distance bound otherwise
        bound = (exact_same["energy"] - ed.energy if name == "energy"
                 else 2 * np.sqrt(1 - fidelity) * OPERATOR_NORM_BOUND)
        assert abs(mean - exact_ed[name]) <= 5 * sigma + bound, (name, mean, exact_ed[name])


# ---------------------------------------------------------------------------------------------------------------------
# Sampled TDVP and TENG against sesolve over a seed ensemble
# ---------------------------------------------------------------------------------------------------------------------

# Quench of the critical TFIM ring (N = 6, h = 1) from a generic translation-invariant state: a symmetric RBM
# (α = 2, 15 complex parameters) with random parameters. The exact reference is sesolve from that same state.
# Only m_x is recorded (fewer operators to compile).
TDVP_SAMPLES, TENG_SAMPLES = 1024, 512
TDVP_SEEDS, TENG_SEEDS = 6, 6
FALSE_ALARM = 1e-3  # two-sided probability that a correct implementation fails the ensemble test


@pytest.fixture(scope="module")
def quench():
    system = tfim(6, h=1.0)
    system = dataclasses.replace(system, observables={"magnetization_x": system.observables["magnetization_x"]})
    model = nk.models.RBMSymm(symmetries=system.graph.translation_group(), alpha=2, param_dtype=complex)
    full = nk.vqs.FullSumState(system.hilbert, model, seed=0)
    rng = np.random.default_rng(0)
    initial = jax.tree_util.tree_map(
        lambda p: jnp.asarray(0.2 * (rng.normal(size=p.shape) + 1j * rng.normal(size=p.shape))), full.parameters)
    full.parameters = initial
    times = np.array([0.0, 0.1, 0.2])
    reference = exact.evolve(system, np.asarray(full.to_array()), times)  # QuTiP sesolve (N ≤ 12)
    mx = exact.sparse_operators(system)["magnetization_x"]

    def exact_mx(params) -> float:
        """m_x of the variational state with `params`, summed exactly (no estimator noise)."""
        full.parameters = params
        psi = np.asarray(full.to_array())
        return float(np.vdot(psi, mx @ psi).real)

    return {"system": system, "model": model, "full": full, "initial": initial, "exact_mx": exact_mx,
            "sesolve": dict(zip(times, reference.observables["magnetization_x"]))}


def _sampled_state(quench, seed: int, n_samples: int) -> nk.vqs.MCState:
    """Exact i.i.d. samples (NetKet's ExactSampler, |ψ|² over all 64 states): independent seeds are independent."""
    mc = make_state(quench["system"], quench["model"], n_samples=n_samples, seed=seed, enumerate_samples=True)
    mc.parameters = quench["initial"]
    return mc


def _check_ensemble(errors: np.ndarray, full_sum_error: float, change: float) -> None:
    """The sampled runs' trajectory errors e_s = m_x^(s)(T) − m_x^exact(T) (m_x of the evolved variational state summed
    exactly, so the estimator's own σ plays no part) against the same method with exact sums, e_FS.

    One run's error bar says nothing about its trajectory: the noise of every step moves the parameters, and that
    error is only seen across seeds (here the seed spread of m_x(T) is ~1e-4, one estimate's σ ~1e-2). Sampled
    dynamics is unbiased to leading order (its bias is O(P/N_samples), measured below the spread here), so the
    ensemble mean must equal e_FS within the Student-t interval of the seed spread at false-alarm probability
    FALSE_ALARM. The interval must also resolve the dynamics: well below the exact change of m_x (a run that never
    moved would fail)."""
    n = len(errors)
    window = stats.t.ppf(1 - FALSE_ALARM / 2, n - 1) * errors.std(ddof=1) / np.sqrt(n)
    assert abs(errors.mean() - full_sum_error) <= window, (errors.mean(), full_sum_error, window)
    assert abs(full_sum_error) + window < 0.1 * abs(change), (full_sum_error, window, change)


def test_sampled_tdvp_ensemble_follows_sesolve(quench):
    """The library's TDVP (settings → NetKet's driver, `dynamics.tdvp._make_driver`, as `evolve_tdvp` runs it; the
    recorder around it is tested against sesolve in test_tdvp.py) with exact sums and with samples."""
    system, T = quench["system"], 0.2
    # Heun, Δt = 0.04; smooth pseudo-inverse cut-off 1e-4 (below it the sampled QGT's small eigenvalues are noise:
    # with 1e-10 single runs reach infidelity 0.3 by t = 0.2)
    settings = TDVPSettings(t_end=T, dt=0.04, n_save=2, integrator="Heun", holomorphic=True, pinv_rtol_smooth=1e-4)
    runs = [quench["full"]] + [_sampled_state(quench, seed, TDVP_SAMPLES) for seed in range(TDVP_SEEDS)]
    errors = []
    for state in runs:
        state.parameters = quench["initial"]
        _make_driver(system, state, settings).run(T, show_progress=False)
        errors.append(quench["exact_mx"](state.parameters) - quench["sesolve"][T])
    # e_FS (ansatz + regularisation + Heun) is 6.3e-4, 0.4 % of the change of m_x
    _check_ensemble(np.asarray(errors[1:]), errors[0], quench["sesolve"][T] - quench["sesolve"][0.0])


def test_sampled_teng_ensemble_follows_sesolve(quench):
    """TENG-Heun steps (`dynamics.teng.teng_step`, the loop of `evolve_teng`, whose recorder test_teng.py checks) with
    exact sums and with samples; one fitter per state kind, so the sampled seeds share its compiled functions."""
    system, T = quench["system"], 0.1
    settings = TENGSettings(t_end=T, dt=0.05, n_save=2, scheme="heun", max_iterations=4)
    scheme = get_scheme(settings.scheme)
    mc = _sampled_state(quench, 100, TENG_SAMPLES)
    fitters = {"full": _Fitter(system, quench["full"], settings), "sampled": _Fitter(system, mc, settings)}
    errors = []
    for seed in range(-1, TENG_SEEDS):  # -1: exact sums
        fitter = fitters["full" if seed < 0 else "sampled"]
        if seed >= 0:
            mc.sampler_state = mc.sampler.init_state(mc.model, mc.variables, seed=1000 + seed)
        params, damping = quench["initial"], settings.damping
        for _ in range(settings.n_steps):
            params, _, damping = teng_step(fitter, scheme, params, damping)
        errors.append(quench["exact_mx"](params) - quench["sesolve"][T])
    # e_FS (ansatz + fits + the Heun scheme's O(Δt²)) is 3.0e-3, 3.5 % of the change of m_x
    _check_ensemble(np.asarray(errors[1:]), errors[0], quench["sesolve"][T] - quench["sesolve"][0.0])
