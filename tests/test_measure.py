"""`nqs.measure` / `nqs measure`: C(r), S(q) and the Rényi-2 swap estimator on a saved state, against references
computed independently: QuTiP's operators and partial traces on NetKet's vector of the same variational state
(`to_array`) and on QuTiP's own ground state, and an exact enumeration of all replica pairs for the swap estimator;
the sampled estimates (NetKet's operators and local estimators) against the full sums within their error bars."""

import itertools
import math

import jax
import netket as nk
import numpy as np
import pytest
import qutip

from hamiltonians import heisenberg, tfim
from nqs import measure, results
from nqs.cli import main
from nqs.recipes import describe_ansatz
from nqs.run import Run
from nqs.states import make_state

N = 6


def _save(path, system, model, scale, seed=0):
    """A ground-state result file whose checkpoint holds `model`'s initial parameters times `scale`: a state away
    from the uniform superposition and from the ground state, so that every estimator sees non-trivial values. (Much
    larger parameters concentrate |ψ|² on a few configurations; off-diagonal local estimators then have rare huge
    values and their sample variance underestimates the error, a property of such states, not of the estimator.)"""
    vstate = make_state(system, model, n_samples=64, seed=seed)
    vstate.parameters = jax.tree_util.tree_map(lambda p: scale * p, vstate.parameters)
    with Run(path, kind="ground_state", system=system, ansatz=describe_ansatz(vstate, system=system),
             method={"name": "test", "n_samples": 1024}, seed=seed, progress=False) as run:
        run.append({"step": 0, "energy": 0.0})  # not used: the tests measure the checkpointed state
        run.checkpoint(0, vstate.parameters)
    return path


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """TFIM chain (N = 6, h = 1, periodic) with NetKet's autoregressive ARNNDense: exact sampling, cheap to compile."""
    system = tfim(N, h=1.0)
    model = nk.models.ARNNDense(hilbert=system.hilbert, layers=2, features=4)
    return _save(tmp_path_factory.mktemp("measure") / "tfim.h5", system, model, scale=1.0)


# -- independent references -----------------------------------------------------------------------


def _expected(pair, site, components, n=N):
    """C(r), C_conn(r) and S(q) of a periodic chain from ⟨σ_i σ_j⟩ = pair(i, j, α) and ⟨σ_i⟩ = site(i, α), written
    from the definitions in the docstring of nqs.measure (distance min(|i − j|, N − |i − j|), q = 2πk/N)."""
    out = {}
    for c in components:
        p = {(i, j): pair(i, j, c) for i, j in itertools.combinations(range(n), 2)}
        m = [site(i, c) for i in range(n)]
        for r in range(1, n // 2 + 1):
            at_r = [(i, j) for i, j in p if min(j - i, n - (j - i)) == r]
            out[f"C_{c}{c}(r={r})"] = np.mean([p[ij] for ij in at_r])
            out[f"C_{c}{c},conn(r={r})"] = np.mean([p[i, j] - m[i] * m[j] for i, j in at_r])
        for k in range(n // 2 + 1):
            q = 2 * np.pi * k / n
            out[f"S_{c}{c}(q/π={2 * k / n:.4g})"] = 1 + 2 / n * sum(np.cos(q * (i - j)) * v for (i, j), v in p.items())
    return out


def _qutip_sigma(i, c, n=N):
    ops = [qutip.qeye(2)] * n
    ops[i] = {"x": qutip.sigmax(), "y": qutip.sigmay(), "z": qutip.sigmaz()}[c]
    return qutip.tensor(ops)


def _qutip_reference(ket, components):
    return _expected(lambda i, j, c: qutip.expect(_qutip_sigma(i, c) * _qutip_sigma(j, c), ket),
                     lambda i, c: qutip.expect(_qutip_sigma(i, c), ket), components)


def _qutip_renyi2(ket, region):
    return -math.log((ket.ptrace(list(region)) ** 2).tr().real)


def _ket(vector, n=N):
    return qutip.Qobj(np.asarray(vector).reshape(-1, 1), dims=[[2] * n, [1] * n])


# -- tests ----------------------------------------------------------------------------------------


def test_full_sum_values_match_qutip_on_the_same_state_and_on_the_ground_state(saved):
    loaded = results.load_state(saved, n_samples=0)
    assert isinstance(loaded.vstate, nk.vqs.FullSumState)
    rows = {m.name: m for m in measure.measure_state(loaded, components=("x", "y", "z"), region=[0, 2, 3])}
    vector = np.asarray(loaded.vstate.to_array(normalize=True))
    own = _qutip_reference(_ket(vector), "xyz")  # NetKet's vector of the state, QuTiP's operators
    ground = qutip.Qobj(loaded.system.to_qutip()["H"]).groundstate()[1]
    exact = _qutip_reference(ground, "xyz")
    assert set(rows) == {*own, "S2(A=0,2,3)"}
    for name, expected in own.items():
        assert rows[name].error is None and rows[name].value == rows[name].full_sum
        assert rows[name].full_sum == pytest.approx(expected, abs=1e-12), name
        assert rows[name].exact == pytest.approx(exact[name], abs=1e-9), name
    renyi = rows["S2(A=0,2,3)"]
    assert renyi.full_sum == pytest.approx(_qutip_renyi2(_ket(vector), [0, 2, 3]), abs=1e-12)
    assert renyi.exact == pytest.approx(_qutip_renyi2(ground, [0, 2, 3]), abs=1e-9)
    assert 0.3 < renyi.full_sum < 1.5  # the state is non-trivial
    assert all(max(abs(rows[f"C_{c}{c}(r={r})"].full_sum) for r in (1, 2, 3)) > 0.1 for c in "xyz")


def test_sampled_estimates_agree_with_the_full_sum_within_their_errors(saved):
    """Exact autoregressive samples (1024 per replica): every estimate within 5σ of the same state's full-sum value
    (5σ: 31 quantities, a false alarm at 5σ has probability ~1e-6 each); the error bars are Monte Carlo-sized."""
    loaded = results.load_state(saved, n_samples=1024, seed=7)
    assert isinstance(loaded.vstate.sampler, nk.sampler.ARDirectSampler)
    rows = measure.measure_state(loaded, components=("z", "x", "y"), seed=11)
    assert len(rows) == 3 * (3 + 3 + 4) + 1
    for m in rows:
        assert m.error is not None and 0 < m.error < 0.1, m
        assert abs(m.value - m.full_sum) < 5 * m.error, m
    renyi = rows[-1]
    assert renyi.name == "S2(A=0,1,2)" and renyi.error < 0.1 and renyi.full_sum > 0.3


def test_swap_estimator_summed_over_all_replica_pairs_is_the_purity():
    """Σ_{σ,σ'} p(σ) p(σ') ψ(a',b) ψ(a,b') / (ψ(a,b) ψ(a',b')) = Tr ρ_A² exactly, also for a state confined to a
    sector (swapped configurations outside it have ψ = 0), and `renyi2_exact` equals QuTiP's partial trace for a
    region that is not contiguous."""
    rng = np.random.default_rng(0)
    configs = np.array(list(itertools.product([1.0, -1.0], repeat=N)))  # NetKet's basis order, site 0 first
    sector = configs.sum(axis=1) == 0
    psi = np.where(sector, rng.normal(size=len(configs)) + 1j * rng.normal(size=len(configs)), 0.0)
    psi /= np.linalg.norm(psi)
    index = {tuple(c): k for k, c in enumerate(configs)}

    def log_psi(x):
        with np.errstate(divide="ignore"):
            return np.log(psi[[index[tuple(row)] for row in x]])

    support = configs[sector]
    p = np.abs(psi[sector]) ** 2
    x1, x2 = np.repeat(support, len(support), axis=0), np.tile(support, (len(support), 1))
    for region in ([0, 1, 2], [0, 3, 4]):
        ratios = measure.swap_ratios(log_psi, x1, x2, region)
        purity = np.sum(np.outer(p, p).ravel() * ratios)
        assert abs(purity.imag) < 1e-12
        assert -math.log(purity.real) == pytest.approx(measure.renyi2_exact(psi, [2] * N, region), abs=1e-12)
        assert measure.renyi2_exact(psi, [2] * N, region) == pytest.approx(_qutip_renyi2(_ket(psi), region), abs=1e-12)


def test_nqs_measure_prints_the_table_and_refuses_bad_requests(saved, tmp_path, capsys):
    assert main(["measure", str(saved), "--samples", "0", "--no-connected", "--region", "0:2"]) == 0
    out = capsys.readouterr().out
    assert "ground_state run of hamiltonians.tfim" in out and "full sum" in out.splitlines()[0]
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith(("C_", "S_", "S2("))}
    assert set(lines) == {"C_zz(r=1)", "C_zz(r=2)", "C_zz(r=3)", "S_zz(q/π=0)", "S_zz(q/π=0.3333)",
                          "S_zz(q/π=0.6667)", "S_zz(q/π=1)", "S2(A=0,1)"}
    assert lines["S2(A=0,1)"][1] == lines["S2(A=0,1)"][2]  # a full sum: estimate = full-sum value
    for argv, message in [
        (["--region", "0:6"], "region [0, 1, 2, 3, 4, 5] must be a proper non-empty subset of the modes 0..5"),
        (["--region", "a"], "--region 'a': expected site indices such as 0,1,2 or 0:3"),
        (["--samples", "-1"], "--samples must be ≥ 0"),
    ]:
        assert main(["measure", str(saved), "--samples", "0", *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    with Run(tmp_path / "bare.h5", kind="ground_state", system=None, ansatz={}, method={}, progress=False) as run:
        run.append({"step": 0, "energy": 1.0})
    assert main(["measure", str(tmp_path / "bare.h5")]) == 2
    expected = f"nqs measure: {tmp_path / 'bare.h5'} has no checkpoint, so no parameters to load"
    assert capsys.readouterr().err.strip() == expected


@pytest.mark.slow  # the ARTransformer's compilation (~15 s) is the cost
def test_sector_state_sampled_and_exact_in_the_marshall_frame(tmp_path):
    """Heisenberg chain in the S^z = 0 sector (Marshall-rotated): exact samples inside the sector, swapped
    configurations leaving it (ψ = 0); xx in the rotated frame against the rotated QuTiP ground state."""
    from ansatze import ARTransformer

    system = heisenberg(N, marshall=True)
    model = ARTransformer(system.hilbert, layers=1, features=8, heads=2, constraint=system.constraint, phase=False)
    path = _save(tmp_path / "heis.h5", system, model, scale=1.5)
    rows = measure.measure(path, n_samples=2048, seed=3, components=("z", "x"))
    ground = qutip.Qobj(system.to_qutip()["H"]).groundstate()[1]
    exact = _qutip_reference(ground, "zx")
    for m in rows:
        assert abs(m.value - m.full_sum) < 5 * m.error + 2e-3, m  # 2e-3: sector-forced zero-variance quantities
        if m.name in exact:
            assert m.exact == pytest.approx(exact[m.name], abs=1e-9), m.name
    assert rows[-1].exact == pytest.approx(_qutip_renyi2(ground, [0, 1, 2]), abs=1e-9)


@pytest.mark.slow  # ~20 s: a VMC run to the ground state, then 20 independent measurements
def test_trained_state_estimates_scatter_around_the_exact_ground_state_as_their_errors_say(tmp_path):
    """Full-sum VMC brings ARNNDense to the TFIM ground state (relative energy error ~5e-8, so the state's own values
    equal the exact ones to ~1e-5); then 20 independent sets of 1024 exact samples: the pulls (estimate − exact)/σ of
    every quantity have mean ≈ 0 (|mean| < 0.7 ≈ 3/√20) and spread ≈ 1 (0.6 … 1.5): the error bars are honest."""
    from nqs.vmc import VMCSettings, ground_state

    system = tfim(N, h=1.0)
    settings = VMCSettings(n_steps=150, n_samples=0, learning_rate=0.05, solver="sr", diag_shift=1e-3,
                           n_samples_final=0, checkpoint_every=50)
    model = nk.models.ARNNDense(hilbert=system.hilbert, layers=2, features=8)
    outcome = ground_state(system, model, settings, seed=0, out=tmp_path / "gs.h5", progress=False)
    assert outcome.relative_error < 1e-6
    pulls: dict[str, list[float]] = {}
    for seed in range(20):
        loaded = results.load_state(tmp_path / "gs.h5", n_samples=1024, seed=100 + seed)
        for m in measure.measure_state(loaded, components=("z", "x"), seed=1000 + 2 * seed):
            assert m.full_sum == pytest.approx(m.exact, abs=1e-4), m
            pulls.setdefault(m.name, []).append((m.value - m.exact) / m.error)
    assert len(pulls) == 2 * 10 + 1
    for name, values in pulls.items():
        assert abs(np.mean(values)) < 0.7 and 0.6 < np.std(values) < 1.5, (name, np.mean(values), np.std(values))
