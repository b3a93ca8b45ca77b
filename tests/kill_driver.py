"""Child process of the kill tests (`tests/test_kill.py`): runs one driver of nqs on a tiny problem into result files.

    python tests/kill_driver.py DRIVER JOB [JOB ...]

DRIVER is a key of `DRIVERS`. Each JOB is ``OUT:MODE`` (mode "fail" or "resume"), optionally ``OUT:MODE:ask``; the
jobs run one after the other in this process (the later ones reuse JAX's compiled functions), and each prints
``done OUT`` when it returns.

Every history row (once written and flushed) prints ``row K`` and every checkpoint write, before it starts, prints
``checkpoint N`` (K, N counted per job). A job marked ``ask`` is steered by the parent test through stdin: after each
row the child waits for ``go`` (or is SIGKILLed by the parent meanwhile: a kill between two file writes); before each
checkpoint write it waits for ``go`` or ``kill``. On ``kill`` the child SIGKILLs itself from inside that checkpoint
write, after the new checkpoint was written aside to /checkpoint_next, marked complete and flushed, and the old
/checkpoint deleted, just before the rename of /checkpoint_next onto /checkpoint
(`nqs.result_file.ResultFile.write_checkpoint`).

The hooks wrap the run layer's `Run.append` and `ResultFile.write_checkpoint` in this process only; the library is
not changed. The parent sets the environment: CPU, unoptimised single-threaded XLA, one OpenMP thread.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import signal
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # povm_helpers
sys.path.insert(0, str(HERE.parent))

import nqs  # noqa: E402, F401  (64-bit floats before anything imports jax)
from nqs import result_file  # noqa: E402
from nqs.run import Run  # noqa: E402


# -- the drivers: tiny problems, a few steps each -------------------------------------------------------------------
def vmc(out: str, mode: str) -> None:
    """VMC + SR, RBM sampled by Metropolis (16 chains: chain states and key restored), TFIM chain L = 6."""
    import netket as nk

    from hamiltonians import tfim
    from nqs.vmc import VMCSettings, ground_state

    system = tfim(6, h=1.0)
    system = dataclasses.replace(system, observables={"magnetization_x": system.observables["magnetization_x"]})
    settings = VMCSettings(n_steps=10, n_samples=64, learning_rate=0.02, diag_shift=0.01, checkpoint_every=3,
                           solver="sr", n_samples_final=128, observables_every=4)
    ground_state(system, nk.models.RBM(alpha=1, param_dtype=float), settings, seed=3, exact=False, out=out, mode=mode,
                 progress=False)


def projected_vmc(out: str, mode: str) -> None:
    """Full-sum projected VMC (space group and spin flip), small Transformer, J1-J2 chain L = 8 (deterministic)."""
    from ansatze import ARTransformer
    from hamiltonians import heisenberg
    from nqs.projected_vmc import ProjectedSettings, projected_ground_state
    from nqs.symmetry import symmetry_group

    system = heisenberg(8, J2=0.2, marshall=True)
    model = ARTransformer(system.hilbert, layers=1, features=8, heads=2, constraint=system.constraint, phase=True)
    settings = ProjectedSettings(n_steps=8, learning_rate=0.05, checkpoint_every=3, observables_every=4)
    projected_ground_state(system, model, symmetry_group(system.graph, "space"), settings, spin_flip=1, exact=False,
                           out=out, mode=mode, progress=False)


def _sampled_rbm(n_samples: int):
    import netket as nk

    from hamiltonians import tfim

    system = tfim(4, h=1.0)
    sampler = nk.sampler.MetropolisLocal(system.hilbert, n_chains=8)
    vstate = nk.vqs.MCState(sampler, nk.models.RBM(alpha=1, param_dtype=complex), n_samples=n_samples,
                            n_discard_per_chain=4, seed=1, sampler_seed=2)
    return system, vstate


def tdvp(out: str, mode: str) -> None:
    """Sampled TDVP (Metropolis, Heun), complex RBM, TFIM chain L = 4."""
    from dynamics.tdvp import TDVPSettings, evolve_tdvp

    system, vstate = _sampled_rbm(128)
    settings = TDVPSettings(t_end=0.06, dt=0.01, n_save=7, integrator="Heun", holomorphic=True,
                            pinv_rtol_smooth=1e-6)
    evolve_tdvp(system, vstate, settings, seed=1, out=out, mode=mode, progress=False)


def teng(out: str, mode: str) -> None:
    """Sampled TENG (Metropolis, Heun scheme), complex RBM, TFIM chain L = 4."""
    from dynamics.teng import TENGSettings, evolve_teng

    system, vstate = _sampled_rbm(128)
    settings = TENGSettings(t_end=0.05, dt=0.01, n_save=6, scheme="heun", max_iterations=3)
    evolve_teng(system, vstate, settings, seed=1, out=out, mode=mode, progress=False)


def _povm(evolve, settings, out: str, mode: str) -> None:
    from povm_helpers import UP, sampled_state

    from hamiltonians import dissipative_tfi

    evolve(dissipative_tfi(2, g=1.0), sampled_state(2, UP, 200), settings, out=out, mode=mode, progress=False)


def povm_trapezoid(out: str, mode: str) -> None:
    """Sampled POVM trapezoid (exact autoregressive samples, Adam), dissipative TFI, N = 2."""
    from dynamics.povm import TrapezoidSettings, evolve_trapezoid

    _povm(evolve_trapezoid, TrapezoidSettings(t_end=0.1, dt=0.02, n_save=6, n_iter=5, n_obs_samples=200), out, mode)


def povm_tdvp(out: str, mode: str) -> None:
    """Sampled POVM-TDVP (Heun), dissipative TFI, N = 2."""
    from dynamics.povm import PovmTDVPSettings, evolve_povm_tdvp

    _povm(evolve_povm_tdvp, PovmTDVPSettings(t_end=0.05, dt=0.01, n_save=6, integrator="Heun", n_obs_samples=200),
          out, mode)


def povm_steady_state(out: str, mode: str) -> None:
    """Sampled POVM steady state (Adam; best-so-far and evaluation keys in the checkpoint), dissipative TFI, N = 2."""
    from dynamics.povm import SteadyStateSettings, find_steady_state

    settings = SteadyStateSettings(optimizer="adam", learning_rate=1e-2, n_iter=30, eval_after=10, eval_every=5,
                                   n_eval_samples=500, n_obs_samples=500)
    _povm(functools.partial(find_steady_state, exact=False), settings, out, mode)


def ndm(out: str, mode: str) -> None:
    """NetKet NDM steady state (Metropolis on the doubled and the physical space), dissipative TFI, N = 2."""
    from dynamics.ndm_steady_state import NDMSettings, find_ndm_steady_state
    from hamiltonians import dissipative_tfi

    system = dissipative_tfi(2, V=2.0, g=1.0, gamma=1.0)
    system = dataclasses.replace(system, observables={"magnetization_z": system.observables["magnetization_z"]})
    settings = NDMSettings(n_steps=6, learning_rate=0.1, n_samples=256, n_samples_diag=256, n_samples_diag_final=256,
                           observables_every=3, checkpoint_every=2)
    find_ndm_steady_state(system, settings, out=out, mode=mode, progress=False, exact_reference=False)


DRIVERS = {f.__name__: f for f in (vmc, projected_vmc, tdvp, teng, povm_trapezoid, povm_tdvp, povm_steady_state,
                                    ndm)}


# -- the hooks --------------------------------------------------------------------------------------------------------
class _KillBeforeRename:
    """The open h5py file of a checkpoint write: SIGKILLs the process when the write renames /checkpoint_next."""

    def __init__(self, file):
        self._h5 = file

    def __getattr__(self, name):
        return getattr(self._h5, name)

    def __contains__(self, name):
        return name in self._h5

    def __getitem__(self, name):
        return self._h5[name]

    def __delitem__(self, name):
        del self._h5[name]

    def move(self, source, dest):
        if source != "checkpoint_next" or not self._h5[source].attrs.get("complete", False):
            raise AssertionError("the checkpoint writer renames something else than a complete /checkpoint_next")
        print("killed in checkpoint", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)


class _Job:
    """One run of the driver: result file, mode, and whether the parent steers it (``ask``)."""

    def __init__(self, spec: str):
        self.out, self.mode, *options = spec.split(":")
        if self.mode not in ("fail", "resume") or options not in ([], ["ask"]):
            raise SystemExit(f"bad job {spec!r}: OUT:fail|resume[:ask]")
        self.ask = options == ["ask"]
        self.rows = self.checkpoints = 0


def _reply() -> str:
    answer = sys.stdin.readline().strip()
    if answer not in ("go", "kill"):
        raise SystemExit(f"unexpected answer {answer!r} from the parent")
    return answer


def _install(job_of) -> None:
    """Wrap `Run.append` and `ResultFile.write_checkpoint`: report every row and checkpoint write of the current job,
    and for a steered job wait for the parent's answer (after a row: "go", or the parent kills this process; before
    a checkpoint write: "go", or "kill" for a SIGKILL inside it, just before the rename)."""
    append, write_checkpoint = Run.append, result_file.ResultFile.write_checkpoint

    def reported_append(self, values):
        row = append(self, values)
        job = job_of()
        job.rows += 1
        print(f"row {job.rows}", flush=True)
        if job.ask:
            _reply()
        return row

    def killable_checkpoint(self, step, **parts):
        job = job_of()
        job.checkpoints += 1
        print(f"checkpoint {job.checkpoints}", flush=True)
        if job.ask and _reply() == "kill":
            self._file = _KillBeforeRename(self._file)
        return write_checkpoint(self, step, **parts)

    Run.append = reported_append
    result_file.ResultFile.write_checkpoint = killable_checkpoint


def main(argv: list[str]) -> None:
    driver, *specs = argv
    jobs = [_Job(spec) for spec in specs]
    current = {}
    _install(lambda: current["job"])
    for job in jobs:
        current["job"] = job
        DRIVERS[driver](job.out, job.mode)
        print(f"done {job.out}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
