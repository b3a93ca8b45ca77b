"""Local values by prefix reuse (`nqs.prefix_reuse`, `nqs.local_energy`) against NetKet's generic path.

Every autoregressive model, order (chain, raster, snake, patches) and constraint (zero magnetisation, Gauss law on
gauge blocks) on Heisenberg (1D, 2D, J1-J2), TFIM, the quantum link model and a POVM Lindbladian: the reused
log ψ(x′) and O_loc(x) equal full forward passes of every connected configuration to 1e-12 (relative to the size
of the local value: parameters are scaled up so that |O_loc| reaches 1e2–1e4 and round-off scales with it)."""

import dataclasses
import itertools

import jax
import jax.numpy as jnp
import netket as nk
import numpy as np
import pytest

from ansatze import ARRNN, ARTransformer
from ansatze.choice import AnsatzChoice, build_ansatz
from ansatze.string_states import StringStates, StringStatesSampler, string_paths
from ansatze.symmetrized import Symmetrized
from dynamics.povm.context import make_context
from hamiltonians import dissipative_xyz, heisenberg, hubbard, quantum_link, tfim
from nqs import prefix_reuse
from nqs.local_energy import LocalEnergy, PrefixReuseMCState, _reuse_kernel, reuse_plan
from nqs.moves import local_moves
from nqs.prefix_reuse import optimal_buckets
from nqs.states import make_state, mc_state
from nqs.vmc import VMCSettings, ground_state

RTOL = 1e-12


def _systems():
    return {
        "chain": heisenberg(6),
        "tfim": tfim(6, h=0.8),
        "square": heisenberg((2, 4), lattice="square"),
        "j1j2": heisenberg((2, 4), lattice="square", J2=0.5, marshall=True),
        "qlm": quantum_link(4, m=0.3, g2=0.2),
    }


SYSTEMS = _systems()

CASES = {  # name: (system, ansatz builder of the system)
    "transformer-chain": ("chain", lambda s: ARTransformer(s.hilbert, layers=2, features=8, heads=2,
                                                            constraint=s.constraint)),
    "transformer-tfim": ("tfim", lambda s: ARTransformer(s.hilbert, layers=1, features=8, heads=2)),
    "transformer-raster": ("square", lambda s: ARTransformer(s.hilbert, layers=1, features=8, heads=2,
                                                             order="raster", shape=(2, 4), constraint=s.constraint)),
    "transformer-snake-j1j2": ("j1j2", lambda s: build_ansatz(AnsatzChoice(kind="transformer", features=8,
                                                                           order="snake"), s)),
    "transformer-patches": ("square", lambda s: ARTransformer(s.hilbert, layers=1, features=8, heads=2,
                                                              order="snake", shape=(2, 4), patch=(1, 2),
                                                              constraint=s.constraint)),
    "gru-tfim": ("tfim", lambda s: ARRNN(s.hilbert, hidden=6, cell="gru")),
    "lstm-snake": ("square", lambda s: ARRNN(s.hilbert, hidden=6, cell="lstm", layers=2, order="snake",
                                             shape=(2, 4), constraint=s.constraint)),
    "rnn2d-j1j2": ("j1j2", lambda s: build_ansatz(AnsatzChoice(kind="rnn2d", features=6), s)),
    "antn-blockwise": ("chain", lambda s: build_ansatz(AnsatzChoice(kind="antn", features=8, bond_dim=3), s)),
    "antn-elementwise-rnn": ("square", lambda s: build_ansatz(AnsatzChoice(kind="antn", network="rnn", features=6,
                                                                           bond_dim=2, variant="elementwise"), s)),
    "gauge-transformer": ("qlm", lambda s: build_ansatz(AnsatzChoice(kind="transformer", features=8), s)),
    "gauge-rnn": ("qlm", lambda s: build_ansatz(AnsatzChoice(kind="rnn", features=6), s)),
}


def _configurations(system, n=24, seed=0):
    """n configurations: from the sector when the system has one (so that log ψ(x) is finite), else random."""
    if system.constraint is not None:
        states = np.asarray(system.sector_states())
        return jnp.asarray(states[np.random.default_rng(seed).choice(len(states), min(n, len(states)),
                                                                     replace=False)])
    return jnp.asarray(system.hilbert.random_state(jax.random.PRNGKey(seed), n))


def _generic(model, variables, operator, x):
    """(log ψ(x), O_loc(x)) by full forward passes of NetKet's connected configurations."""
    xp, mels = operator.get_conn_padded(x)
    log_x = model.apply(variables, x)
    log_xp = model.apply(variables, xp.reshape(-1, x.shape[-1])).reshape(mels.shape)
    return log_x, jnp.sum(mels * jnp.exp(log_xp - log_x[:, None]), axis=-1)


def _assert_close(got, want, what):
    got, want = np.asarray(got), np.asarray(want)
    scale = max(1.0, float(np.abs(want).max()))
    assert np.abs(got - want).max() <= RTOL * scale, f"{what}: {np.abs(got - want).max():.3g} at scale {scale:.3g}"


DEFAULT_CASES = ("transformer-tfim",)  # every other model/order/constraint in `slow` (the suite's time budget)


@pytest.mark.parametrize("case", [c if c in DEFAULT_CASES else pytest.param(c, marks=pytest.mark.slow)
                                  for c in sorted(CASES)])
def test_prefix_reuse_equals_the_generic_local_values(case):
    system = SYSTEMS[CASES[case][0]]
    model = CASES[case][1](system)
    x = _configurations(system)
    variables = jax.tree_util.tree_map(lambda a: 2.0 * a + 0.05, model.init(jax.random.PRNGKey(3), x[:1]))
    plan = reuse_plan(model, system.hamiltonian, n_buckets=3)
    assert plan is not None and plan.work_fraction() < 0.95
    assert sum(len(m) for comp in plan.buckets for _, m in comp) == plan.moves.n_moves
    log_x, eloc = jax.jit(plan.local_values)(variables, x)
    ref_log, ref_eloc = _generic(model, variables, system.hamiltonian, x)
    _assert_close(log_x, ref_log, "log ψ(x)")
    _assert_close(eloc, ref_eloc, "E_loc")
    assert np.abs(np.asarray(ref_eloc)).max() > 0.5  # a non-trivial local energy
    # an observable with other moves than H: σˣ on two sites (single-site moves on spins; skipped on links)
    if isinstance(system.hilbert, nk.hilbert.Spin):
        sx = nk.operator.spin.sigmax(system.hilbert, 1) @ nk.operator.spin.sigmax(system.hilbert, 3)
        _assert_close(jax.jit(reuse_plan(model, sx, n_buckets=2).local_values)(variables, x)[1],
                      _generic(model, variables, sx, x)[1], "σˣσˣ")


@pytest.fixture()
def reuse_at_any_size(monkeypatch):
    """The automatic plan at the tests' small sizes, where `ReusePlan.build` would leave it out (it saves < 1/4)."""
    monkeypatch.setattr(prefix_reuse, "MAX_AUTOMATIC_WORK", 1.0)


def test_automatic_plans_only_where_they_save_a_quarter():
    """A 6-site chain (one bucket from step 0) gets no automatic plan, a 32-site one (four buckets) does, an explicit
    bucket count is always planned (the POVM context takes its state's: the String States test below)."""
    model = ARTransformer(tfim(6, h=1.0).hilbert, layers=1, features=4, heads=1)
    assert reuse_plan(model, tfim(6, h=1.0).hamiltonian) is None
    plan = reuse_plan(model, tfim(6, h=1.0).hamiltonian, n_buckets=1)
    assert plan is not None and plan.work_fraction() == 1.0
    long = tfim(32, h=1.0)
    plan = reuse_plan(ARTransformer(long.hilbert, layers=1, features=4, heads=1), long.hamiltonian)
    assert plan is not None and len(plan.buckets[0]) == 4 and plan.work_fraction() <= prefix_reuse.MAX_AUTOMATIC_WORK


def test_string_states_reuse_each_path_and_the_povm_lindbladian_ratios():
    """String States over four snakes on a 2×2 POVM problem: L_loc by reuse (per path) equals the generic strings,
    through `PovmContext.lp_ratios` — the path POVM-TDVP and the trapezoid use."""
    system = dissipative_xyz((2, 2), lattice="square")
    hi = nk.hilbert.Fock(n_max=3, N=4)
    base = ARTransformer(hi, layers=1, features=8, heads=2, phase=False, machine_pow=1)
    model = StringStates(base, string_paths("horizontal_snakes", (2, 2)))
    assert model.generation_steps().shape == (model.n_paths, 4) and model.n_paths > 1
    states = {reuse: mc_state(StringStatesSampler(hi), model, prefix_reuse=reuse, n_buckets=2, n_samples=64, seed=2)
              for reuse in (True, False)}
    assert isinstance(states[True], PrefixReuseMCState) and not isinstance(states[False], PrefixReuseMCState)
    contexts = {reuse: make_context(system, vs, None) for reuse, vs in states.items()}
    assert contexts[True].reuse_plan is not None and contexts[False].reuse_plan is None
    params = jax.tree_util.tree_map(lambda a: 2.0 * a + 0.05, states[True].parameters)
    a = jnp.asarray(np.random.default_rng(1).integers(0, 4, (40, 4)))
    log_p = contexts[False].log_prob(params, a)
    got = {reuse: ctx.lp_ratios(params, a, log_p, max_configs=64) for reuse, ctx in contexts.items()}  # chunked
    _assert_close(got[True], got[False], "L_loc")
    assert np.abs(np.asarray(got[False])).max() > 0.5


@pytest.mark.slow
def test_symmetrised_models_and_fermions_take_the_generic_path():
    """No reuse where it would be wrong or impossible: the symmetrised model (phase at x, spin flips) and the
    fermionic Hubbard operator (Jordan–Wigner strings are not local moves) — NetKet's kernels, same numbers."""
    system = heisenberg(4, zero_magnetization=False)
    base = ARTransformer(system.hilbert, layers=1, features=8, heads=2)
    assert reuse_plan(Symmetrized(base, string_paths("translations", 4)), system.hamiltonian) is None
    fermions = hubbard(2, U=4.0)
    assert local_moves(fermions.hamiltonian) is None
    model = build_ansatz(AnsatzChoice(kind="transformer", features=8), fermions)
    vs = make_state(fermions, model, n_samples=64, seed=0)
    assert isinstance(vs, PrefixReuseMCState) and vs.reuse_plan(fermions.hamiltonian) is None
    plain = make_state(fermions, model, n_samples=64, seed=0, prefix_reuse=False)
    assert abs(complex(vs.expect(fermions.hamiltonian).mean) - complex(plain.expect(fermions.hamiltonian).mean)) < 1e-12


def test_netket_estimators_and_our_local_energy_use_the_reuse_kernel(reuse_at_any_size):
    """expect_and_grad of a PrefixReuseMCState (chunked or not) equals the plain MCState's to round-off on the same
    samples, its kernel is the reuse one (one plan per operator: no recompilation), and `LocalEnergy.for_state`
    follows the state's choice."""
    system = heisenberg(6)
    model = ARTransformer(system.hilbert, layers=1, features=8, heads=2, constraint=system.constraint)
    out = {}
    for reuse, chunk in ((True, 16), (False, None)):
        vs = make_state(system, model, n_samples=64, seed=4, chunk_size=chunk, prefix_reuse=reuse)
        energy, grad = vs.expect_and_grad(system.hamiltonian)
        out[reuse, chunk] = energy.mean, jax.flatten_util.ravel_pytree(grad)[0]
        assert LocalEnergy.for_state(vs, system.hamiltonian).uses_prefix_reuse == reuse
        kernel = nk.vqs.get_local_kernel(vs, system.hamiltonian)
        assert (getattr(kernel, "func", None) is _reuse_kernel) == reuse
        if reuse:
            assert kernel.args[0] is vs.reuse_plan(system.hamiltonian) is vs.reuse_plan(system.hamiltonian)
    ref = out[False, None]  # the unchunked reuse kernel: test_vmc_with_and_without_reuse_gives_the_same_parameters
    for key, (energy, grad) in out.items():
        assert abs(energy - ref[0]) < 1e-12 and float(jnp.abs(grad - ref[1]).max()) < 1e-12, key
    assert float(jnp.abs(ref[1]).max()) > 1e-3


def test_vmc_with_and_without_reuse_gives_the_same_parameters(reuse_at_any_size):
    """Five minSR steps, same seed. (Not the "sr" solver: NetKet's SR solves by CG to a tolerance of 1e-5, so a
    1e-14 change of the forces can change the iteration count — measured 7.7e-6 after one step.)"""
    system = dataclasses.replace(heisenberg(6), observables={})  # no observables to compile
    model = ARTransformer(system.hilbert, layers=1, features=4, heads=1, constraint=system.constraint)
    params = {}
    for reuse in (True, False):
        settings = VMCSettings(n_steps=5, n_samples=64, learning_rate=0.05, n_samples_final=64, prefix_reuse=reuse,
                               solver="minsr", diag_shift=0.01)
        outcome = ground_state(system, model, settings, seed=7, exact=False, progress=False)
        params[reuse] = jax.flatten_util.ravel_pytree(outcome.state.parameters)[0]
    assert float(jnp.abs(params[True] - params[False]).max()) < 1e-10
    assert float(jnp.abs(params[True]).max()) > 0


def test_optimal_buckets_minimise_the_suffix_work():
    """The dynamic programme against every grouping of sorted first steps into ≤ k contiguous buckets."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        first = rng.integers(0, 9, rng.integers(1, 8))
        k = int(rng.integers(1, 4))
        buckets = optimal_buckets(first, 9, k)
        assert len(buckets) <= k and sorted(np.concatenate([m for _, m in buckets])) == list(range(len(first)))
        assert all(start == first[m].min() for start, m in buckets)
        work = sum(len(m) * (9 - start) for start, m in buckets)
        f = np.sort(first)
        best = min(
            sum((j - i) * (9 - f[i]) for i, j in zip((0,) + cuts, cuts + (len(f),)))
            for n_cuts in range(k) for cuts in itertools.combinations(range(1, len(f)), n_cuts)
        )
        assert work == best
