"""The bad-input corpus: what a new user mistypes, run in this process, table-driven.

Scripts (`runs/*.py`, their ``main(argv)``): every case ends in SystemExit(2) with one line on stderr that names the
bad value, no traceback, and no result file written, left half-written or overwritten (an existing file given with
``--mode overwrite`` keeps its bytes). Options are checked as argparse parses them (`runs/_common.py` types); what
only a builder or the run layer can judge (a zero Hamiltonian, an odd staggered chain, an impossible filling) is
raised as ValueError and turned into the same one-line error by `_common.script`.

Python API: builders, settings and drivers raise ValueError with a message naming the bad value, before any run
file is opened.
"""

import math

import pytest

# (script, arguments, text the one-line error must contain); --quick keeps the sizes small, so a case that the
# checks let through would still finish, and fail the test
SCRIPT_CASES = [
    ("tfim_quench", ["--h", "nan"], "--h: must be a finite number, got nan"),
    ("tfim_quench", ["--T", "inf"], "--T: must be a finite number > 0, got inf"),
    ("tfim_quench", ["--T", "0"], "--T: must be a finite number > 0, got 0"),
    ("tfim_quench", ["--dt", "-0.01"], "--dt: must be a finite number > 0, got -0.01"),
    ("tfim_quench", ["--samples", "7"], "--samples: must be 0 (exact sum) or an integer >= 32"),
    ("tfim_quench", ["--features", "0"], "--features: must be an integer >= 1, got 0"),
    ("tfim_quench", ["--L", "1"], "--L: must be an integer >= 2, got 1"),
    ("tfim_quench", ["--L", "six"], "--L: expected an integer >= 2, got 'six'"),
    ("tfim_quench", ["--n-save", "1"], "--n-save: must be an integer >= 2, got 1"),
    ("tfim_quench", ["--ansatz", "cnn"], "invalid choice: 'cnn'"),
    ("tfim_quench", ["--rtol-smooth=-1e-8"], "--rtol-smooth: must be a finite number >= 0, got -1e-8"),
    ("tfim_quench", ["--seed", "-3"], "--seed: must be an integer >= 0, got -3"),
    ("tfim_quench", ["--bond-dim", "0"], "--bond-dim: must be an integer >= 1, got 0"),
    ("tfim_quench", ["--mode", "replace"], "invalid choice: 'replace'"),
    ("heisenberg_chain", ["--J", "nan"], "--J: must be a finite number, got nan"),
    ("heisenberg_chain", ["--J", "0"], "the Hamiltonian is zero"),
    ("heisenberg_chain", ["--J2=-inf"], "--J2: must be a finite number, got -inf"),
    ("heisenberg_chain", ["--steps", "-1"], "--steps: must be an integer >= 0, got -1"),
    ("heisenberg_chain", ["--lr", "0"], "--lr: must be a finite number > 0, got 0"),
    ("heisenberg_chain", ["--diag-shift", "-1"], "--diag-shift: must be a finite number >= 0, got -1"),
    ("heisenberg_chain", ["--heads", "0"], "--heads: must be an integer >= 1, got 0"),
    ("heisenberg_chain", ["--layers", "-2"], "--layers: must be an integer >= 1, got -2"),
    ("heisenberg_chain", ["--coherent"], "--coherent projects onto an irrep of the --symmetry group"),
    ("heisenberg_chain", ["--chunk-size", "0"], "--chunk-size: must be an integer >= 1, got 0"),
    ("heisenberg_square", ["--L", "1"], "--L: must be an integer >= 2, got 1"),
    ("hubbard", ["--n-up", "1"], "give both --n-up and --n-down"),
    ("hubbard", ["--U", "nan"], "--U: must be a finite number, got nan"),
    ("hubbard", ["--n-up", "5", "--n-down", "5"], "n_up = 5 is outside 0..4"),
    ("hubbard", ["--t", "0", "--U", "0"], "the Hamiltonian is zero"),
    ("dmft_bethe", ["--U", "1", "nan"], "--U: must be a finite number, got nan"),
    ("dmft_bethe", ["--beta", "0"], "--beta: must be a finite number > 0, got 0"),
    ("dmft_bethe", ["--bath-sites", "0"], "--bath-sites: must be an integer >= 1, got 0"),
    ("qlm_ground_state", ["--N", "5"], "even number of sites N >= 2, got N=5"),
    ("qlm_ground_state", ["--S", "0.3"], "positive multiple of 1/2, got S=0.3"),
    ("qlm_ground_state", ["--g2", "nan"], "--g2: must be a finite number, got nan"),
    ("qlm_quench", ["--m0", "inf"], "--m0: must be a finite number, got inf"),
    ("z2_gauge", ["--g", "nan"], "--g: must be a finite number, got nan"),
    ("z2_gauge", ["--couplings", "0.1", "inf"], "--couplings: must be a finite number, got inf"),
    ("dissipative_xyz_dynamics", ["--gamma", "-1"], "--gamma: must be a finite number >= 0, got -1"),
    ("dissipative_xyz_dynamics", ["--samples", "7"], "--samples: must be 0 (exact sum) or an integer >= 32"),
    ("dissipative_hubbard", ["--loss", "0"], "every jump rate is 0"),
    ("dissipative_hubbard", ["--pump", "-0.5"], "--pump: must be a finite number >= 0, got -0.5"),
    ("dissipative_tfi_steady_state", ["--N", "1"], "--N: must be an integer >= 2, got 1"),
    ("dissipative_tfi_steady_state", ["--method", "ndm", "--init-from", "x.h5"], "the NDM baseline always starts"),
    ("heisenberg_neel_quench", ["--hs0", "nan"], "--hs0: must be a finite number, got nan"),
    ("heisenberg_neel_quench", ["--epsilon", "-0.1"], "--epsilon: must be a finite number >= 0, got -0.1"),
    ("tfim2d_quench", ["--h", "inf"], "--h: must be a finite number, got inf"),
    ("j1j2_antn", ["--J2", "nan"], "--J2: must be a finite number, got nan"),
]


def _one_line_error(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    return lines[0]


@pytest.mark.parametrize("existing", [False, True], ids=["new_file", "existing_file"])
@pytest.mark.parametrize(("script", "args", "needle"), SCRIPT_CASES,
                         ids=[f"{s}-{' '.join(a)}" for s, a, _ in SCRIPT_CASES])
def test_script_refuses_bad_input_in_one_line(script, args, needle, existing, tmp_path, capsys, load_script):
    module = load_script(script)
    out = tmp_path / ("runs" if script == "j1j2_antn" else "result.h5")
    if existing and script != "j1j2_antn":
        out.write_bytes(b"an earlier result")
    with pytest.raises(SystemExit) as stopped:
        module.main(["--quick", "--quiet", "--out", str(out), "--mode", "overwrite", *args])
    assert stopped.value.code == 2
    assert needle in _one_line_error(capsys)
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    if existing and script != "j1j2_antn":
        assert leftovers == ["result.h5"] and out.read_bytes() == b"an earlier result"
    else:
        assert leftovers in ([], ["runs"]) and not any(tmp_path.rglob("*.h5*")), leftovers


def test_script_output_problems_are_one_line_errors(tmp_path, capsys, load_script):
    """--out in a missing folder, an existing file under --mode fail, --mode resume of a foreign file, and the ANTN
    script's --out that must be a folder: each names the path."""
    tfim = load_script("tfim_quench")
    cases = [
        (tfim, ["--out", str(tmp_path / "missing" / "q.h5")], "does not exist"),
        (tfim, ["--out", str(tmp_path / "taken.h5")], "exists: pass --mode overwrite"),
        (tfim, ["--out", str(tmp_path / "taken.h5"), "--mode", "resume"], "cannot resume"),
        (load_script("j1j2_antn"), ["--out", str(tmp_path / "taken.h5")], "is a file"),
    ]
    (tmp_path / "taken.h5").write_bytes(b"not hdf5")
    for module, args, needle in cases:
        with pytest.raises(SystemExit) as stopped:
            module.main(["--quick", "--quiet", *args])
        assert stopped.value.code == 2
        line = _one_line_error(capsys)
        assert needle in line and str(tmp_path) in line, line
    assert (tmp_path / "taken.h5").read_bytes() == b"not hdf5"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.h5"]


def test_quick_changes_defaults_not_explicit_options(load_script):
    """--quick --L 8 --samples 64 keeps L = 8 and 64 samples; the options not given take the quick values."""
    module = load_script("tfim_quench")
    parsed = {}

    def parse_only(argv):
        parser = module.experiment_parser("t", "x.h5")
        parser.add_argument("--L", type=int, default=16)
        parser.add_argument("--samples", type=int, default=4096)
        parser.add_argument("--T", type=float, default=3.0)
        parsed.update(vars(parser.parse(argv, quick=dict(L=6, samples=1024, T=0.2))))

    parse_only(["--quick", "--L", "8", "--samples", "64"])
    assert (parsed["L"], parsed["samples"], parsed["T"], parsed["quick"]) == (8, 64, 0.2, True)
    parse_only(["--L", "8"])
    assert (parsed["L"], parsed["samples"], parsed["T"], parsed["quick"]) == (8, 4096, 3.0, False)


def test_traceback_on_request(load_script, monkeypatch, tmp_path):
    """NQS_TRACEBACK=1: the builder's ValueError propagates with its traceback (for a bug report)."""
    monkeypatch.setenv("NQS_TRACEBACK", "1")
    with pytest.raises(ValueError, match="the Hamiltonian is zero"):
        load_script("heisenberg_chain").main(["--quick", "--quiet", "--J", "0", "--out", str(tmp_path / "x.h5")])


# --- the Python API ---------------------------------------------------------------------------------------------


def _open_system():
    from hamiltonians.lindblad import dissipative_tfi

    return dissipative_tfi(3, V=2.0, g=1.0, gamma=1.0)


def _small_transformer(system):
    from ansatze import ARTransformer

    return ARTransformer(system.hilbert, layers=1, features=4, heads=1)


def _open_ground_state():
    from nqs.vmc import VMCSettings, ground_state

    system = _open_system()
    ground_state(system, _small_transformer(system), VMCSettings(n_steps=1, n_samples=64, n_samples_final=64),
                 exact=False, progress=False)


def _open_tdvp():
    from dynamics.tdvp import evolve_tdvp

    evolve_tdvp(_open_system(), None, progress=False)


def _unconstrained_model():
    from hamiltonians import heisenberg
    from nqs.states import make_state

    system = heisenberg(4)
    make_state(system, _small_transformer(system), n_samples=64, seed=0)


def _mismatched_operator():
    from hamiltonians import tfim
    from nqs.system import System

    System(builder="user", hilbert=tfim(4).hilbert, hamiltonian=tfim(5).hamiltonian)


def _builder(name, **kwargs):
    def build():
        import hamiltonians

        return getattr(hamiltonians, name)(**kwargs)

    return build


def _impossible_sector():
    from nqs.constraint import U1Constraint

    U1Constraint(n_sites=4, charges=(1, -1), total=10)


def _few_samples():
    from nqs.vmc import VMCSettings

    VMCSettings(n_samples=7)


API_CASES = [
    ("nan coupling", _builder("heisenberg", L=4, J=math.nan), "J = nan"),
    ("inf field", _builder("tfim", L=4, h=math.inf), "h = inf"),
    ("infinite U", _builder("hubbard", shape=2, U=math.inf), "U must be finite"),
    ("zero Hamiltonian", _builder("tfim", L=4, J=0.0, h=0.0), "the Hamiltonian is zero"),
    ("odd staggered chain", _builder("quantum_link", N=5), "N=5"),
    ("link spin not a multiple of 1/2", _builder("quantum_link", N=4, S=0.3), "S=0.3"),
    ("tiny torus", _builder("z2_gauge", L=1, g=0.5), "L=1"),
    ("negative rate", _builder("dissipative_tfi", L=3, V=2.0, g=1.0, gamma=-1.0), "got -1.0"),
    ("unknown lattice", _builder("tfim", L=4, lattice="hex"), "'hex'"),
    ("too many fermions", _builder("hubbard", shape=2, U=4.0, n_per_spin=(3, 3)), "n_up = 3"),
    ("impossible sector", _impossible_sector, "total 10"),
    ("error bars need 32 samples", _few_samples, "got 7"),
    ("ground state of an open system", _open_ground_state, "closed system"),
    ("TDVP of an open system", _open_tdvp, "closed system"),
    ("model leaves the sector", _unconstrained_model, "does not carry the system's constraint"),
    ("operator on another space", _mismatched_operator, "acts on"),
]


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # NetKet multiplies by inf first
@pytest.mark.parametrize(("call", "needle"), [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES])
def test_api_refuses_bad_input(call, needle):
    with pytest.raises(ValueError) as refused:
        call()
    assert needle in str(refused.value), str(refused.value)


# --- the nqs command ---------------------------------------------------------------------------------------------

CLI_CASES = [  # (arguments with {tmp} for the test's folder, text the one-line error must contain)
    (["inspect", "{tmp}/missing.h5"], "missing.h5"),
    (["inspect", "{tmp}/notes.txt"], "notes.txt"),
    (["inspect", "{tmp}/foreign.h5"], "foreign.h5 is not an nqs result file"),
    (["plot", "{tmp}/foreign.h5", "--out", "{tmp}/x.png"], "foreign.h5"),
    (["list", "{tmp}/no-such-folder"], "no-such-folder"),
    (["compare", "{tmp}/foreign.h5"], "foreign.h5"),
    (["measure", "{tmp}/missing.h5"], "missing.h5"),
]


@pytest.mark.parametrize(("args", "needle"), CLI_CASES, ids=[" ".join(a[:2]) for a, _ in CLI_CASES])
def test_cli_refuses_bad_input_in_one_line(args, needle, tmp_path, capsys):
    import h5py

    from nqs.cli import main

    (tmp_path / "notes.txt").write_text("not a result")
    with h5py.File(tmp_path / "foreign.h5", "w") as file:
        file["data"] = [1.0, 2.0]
    assert main([a.format(tmp=tmp_path) for a in args]) == 2
    assert needle in _one_line_error(capsys)
    assert not (tmp_path / "x.png").exists()
