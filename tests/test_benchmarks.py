"""Smoke test: the benchmark scripts run on a tiny configuration and write their JSON figures."""

import itertools
import json
import subprocess
import sys

import pytest
from conftest import REPO


def _run(args, out):
    proc = subprocess.run([sys.executable, *args, "--out", str(out)], capture_output=True, text=True,
                          timeout=600, cwd=REPO, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, json.loads(out.read_text())


@pytest.mark.slow  # ~25 s; the sharding failure it once caught is covered by test_sharding.py
def test_vmc_step_benchmark_times_every_phase_and_reports_ratios(tmp_path):
    stdout, data = _run(["benchmarks/vmc_step.py", "--quick", "--models", "rnn,gru"], tmp_path / "vmc.json")
    assert not data["failures"]
    for row in data["results"]:
        assert all(row["time_s"][p]["median"] > 0 for p in ("sample", "local_energy", "gradient", "sr_solve"))
        assert row["step_s"] > 0 and row["memory"]["temp"] > 0
        assert row["memory"]["peak_bytes"] >= row["memory"]["argument"] + row["memory"]["temp"]
    assert data["ratios"][0]["memory"] > 0
    assert "rnn/gru" in stdout


@pytest.mark.slow  # the cached/uncached sampling code is covered by the Transformer tests
def test_sampling_scaling_benchmark_fits_an_exponent(tmp_path):
    stdout, data = _run(["benchmarks/sampling_scaling.py", "--quick", "--sizes", "4,8"], tmp_path / "s.json")
    assert "exponent" in stdout and data["results"]


@pytest.mark.slow  # ~30 s
def test_tdvp_noise_study_scores_every_variant_against_the_exact_minimum(tmp_path):
    _, data = _run(["benchmarks/tdvp_noise.py", "--quick", "--L", "6", "--T", "0.1", "--n-save", "2",
                    "--sample-sizes", "256", "--chains", "16", "--quiet"], tmp_path / "n.json")
    assert len(data["rows"]) == 2
    for row in data["rows"]:
        exact = row["r2_exact"]
        assert -1e-12 <= exact < 1e-3  # the full-sum least-squares θ̇ of an RBM near |→⟩
        scores = [v for k, v in row.items() if k.endswith((" mean", " bias"))]
        assert len(scores) == 2 * 2 * len(data["variants"])  # iid256 and metropolis, mean and bias
        # no θ̇ beats the least-squares one (r² are differences of O(1) numbers: 1e-12 absolute slack for rounding;
        # here the exact r² is ~1e-30 and a sampled score came out −7.6e-17)
        assert all(s >= exact * (1 - 1e-9) - 1e-12 for s in scores)
        assert row["r2_trajectory"] >= exact * (1 - 1e-9) - 1e-12


@pytest.mark.slow  # ~15 s; BlockMPS against MPSPeriodic is in the default suite (test_mps.py)
def test_mps_contraction_benchmark_compares_with_netket(tmp_path):
    stdout, data = _run(["benchmarks/mps_contraction.py", "--quick"], tmp_path / "m.json")
    (row,) = data["results"]
    assert row["forward_ratio"] > 0 and row["jacobian_ratio"] > 0 and row["max_abs_diff"] < 1e-10
    assert "Jacobian NetKet" in stdout


@pytest.mark.slow  # ~20 s; the projection itself is checked against NetKet's SymmExpSum in test_projected_vmc.py
def test_projected_fullsum_benchmark_agrees_with_netket(tmp_path):
    stdout, data = _run(["benchmarks/projected_fullsum.py", "--quick"], tmp_path / "p.json")
    (row,) = data["results"]
    assert row["ratio"] > 0 and row["energy_abs_diff"] < 1e-10 and row["n_orbits"] == 8
    assert "ours minSR step" in stdout


@pytest.mark.slow  # ~45 s; the sector sums and the low-rank solver have their own default tests
def test_sector_tdvp_benchmark_checks_agreement_and_reports_ratios(tmp_path):
    stdout, data = _run(["benchmarks/sector_tdvp.py", "--quick"], tmp_path / "t.json")
    assert len(data["results"]) == 3 and all(row["ratio"] > 0 for row in data["results"])
    assert "NetKet / ours" in stdout


@pytest.mark.slow  # ~20 s; the equality of the two paths is tested in test_prefix_reuse.py
def test_local_energy_benchmark_compares_both_paths(tmp_path):
    stdout, data = _run(["benchmarks/local_energy.py", "--quick"], tmp_path / "le.json")
    assert {r["model"] for r in data["results"]} == {"transformer", "rnn", "string_states"}
    for row in data["results"]:
        assert row["max_rel_diff"] < 1e-12 and row["speedup"] > 0 and row["reuse"]["temp_bytes"] > 0
    assert "speed-up" in stdout


@pytest.mark.slow  # ~1 min: two 20 s runs side by side, each in its own pinned process
def test_time_to_accuracy_benchmark_records_trajectories_and_resumes(tmp_path):
    out = tmp_path / "tta.json"
    stdout, data = _run(["benchmarks/time_to_accuracy.py", "--quick"], out)
    assert not data["failures"] and {r["model"] for r in data["results"]} == {"transformer", "rbm_symm"}
    for row in data["results"]:
        times = row["trajectory"]["time_s"]
        assert row["steps"] == len(times) >= 10 and times == sorted(times) and row["best_error"] < 0.5
        assert row["stop"] in ("budget", "threshold") and row["final_relative_error"] < 0.5
        reached = [row["time_to"][eps] for eps in ("0.01", "0.001", "0.0001")]
        for looser, tighter in itertools.pairwise(reached):  # reaching an error means reaching every larger one
            assert tighter is None or (looser is not None and looser <= tighter)
    assert "t(0.01) s" in stdout
    again = subprocess.run([sys.executable, "benchmarks/time_to_accuracy.py", "--quick", "--out", str(out)],
                           capture_output=True, text=True, timeout=120, cwd=REPO, check=True)
    assert json.loads(out.read_text())["results"] == data["results"]  # every run was in the file: none ran again
    assert "t(0.01) s" in again.stdout
