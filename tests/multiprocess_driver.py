"""A sampled VMC run and a sampled TDVP run on two JAX devices, for `tests/test_multiprocess.py`: the same script runs
as one process with two devices or as one of two processes with one device each (`jax.distributed`), and writes what it
computed (energies per step, final parameters) to an .npz file.

    XLA_FLAGS=--xla_force_host_platform_device_count=2 python tests/multiprocess_driver.py OUT.npz --results DIR
    python tests/multiprocess_driver.py OUT.npz --results DIR --coordinator 127.0.0.1:PORT --num-processes 2 \
        --process-id I                                                              # I = 0, 1: one command each

`jax.distributed.initialize` must run before NetKet is imported: NetKet's sharding (on by default, `NETKET_SHARDING`)
builds its mesh from `jax.devices()` at import. The result files go to DIR (vmc.h5, tdvp.h5).
"""

import argparse
import sys
import time
from pathlib import Path


def _arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help=".npz file for the numbers (every process writes its own)")
    parser.add_argument("--coordinator", help="host:port of process 0 (several processes)")
    parser.add_argument("--num-processes", type=int, default=1)
    parser.add_argument("--process-id", type=int, default=0)
    parser.add_argument("--results", required=True, help="folder of the result files (written by process 0 only)")
    return parser.parse_args(argv)


def one_observable(system, name):
    """The system with one of its six observables (each operator is compiled anew: suite time)."""
    import dataclasses

    return dataclasses.replace(system, observables={name: system.observables[name]})


def main(argv=None):
    args = _arguments(argv)
    import jax

    if args.num_processes > 1:  # before NetKet (and nqs, which imports it) touches a device
        jax.distributed.initialize(args.coordinator, num_processes=args.num_processes, process_id=args.process_id)
    import netket as nk
    import numpy as np
    from jax.flatten_util import ravel_pytree

    import nqs  # noqa: F401  (64-bit floats)
    from ansatze import ARTransformer
    from dynamics.tdvp import TDVPSettings, evolve_tdvp
    from hamiltonians import heisenberg, tfim
    from nqs.states import make_state
    from nqs.vmc import VMCSettings, ground_state

    assert jax.device_count() == 2, jax.devices()
    assert jax.process_count() == args.num_processes and jax.process_index() == args.process_id
    results = Path(args.results)
    numbers = {}
    t0 = time.perf_counter()
    # VMC: 6-site Heisenberg ring, S^z = 0 Transformer sampled exactly (ARDirectSampler), minSR; 2 steps, then the
    # run resumed from its result file for a third (every process restores process 0's checkpoint)
    system = one_observable(heisenberg(6, pbc=True, marshall=True), "nn_correlation_zz")
    model = ARTransformer(system.hilbert, layers=1, features=8, heads=2, constraint=system.constraint, phase=False)
    energies = []
    for n_steps, mode in ((2, "overwrite"), (3, "resume")):
        settings = VMCSettings(n_steps=n_steps, n_samples=256, n_samples_final=256, learning_rate=0.05,
                               solver="minsr", checkpoint_every=1, observables_every=0)
        vmc = ground_state(system, model, settings, seed=3, exact=False, progress=False, out=str(results / "vmc.h5"),
                           mode=mode, callbacks=[lambda step, row, driver: energies.append(row["energy"])])
    numbers["vmc_energies"] = np.array(energies)
    numbers["vmc_final"] = np.array([float(np.real(vmc.energy.mean)), float(vmc.energy.error_of_mean),
                                     *vmc.observables["nn_correlation_zz"]])
    numbers["vmc_params"] = np.asarray(ravel_pytree(vmc.state.parameters)[0])
    samples = vmc.state.samples  # split over the two devices: one shard in each of two processes
    numbers["sharding"] = np.array([len(samples.sharding.device_set), len(samples.addressable_shards)])

    t1 = time.perf_counter()
    # TDVP: 6-site transverse-field Ising chain, complex RBM sampled by Metropolis (16 chains), Heun, 2 steps
    system = one_observable(tfim(6, h=1.0), "magnetization_x")
    vstate = make_state(system, nk.models.RBM(alpha=1, param_dtype=complex), n_samples=256, seed=5)
    tdvp = evolve_tdvp(system, vstate, TDVPSettings(t_end=0.02, dt=0.01, n_save=3, integrator="Heun",
                                                    holomorphic=True, pinv_rtol_smooth=1e-6),
                       seed=5, progress=False, out=str(results / "tdvp.h5"), mode="overwrite")
    numbers["tdvp_energies"] = tdvp.series("energy")
    numbers["tdvp_infidelity"] = tdvp.series("infidelity")
    numbers["tdvp_magnetization_x"] = tdvp.series("magnetization_x")
    numbers["tdvp_params"] = np.asarray(ravel_pytree(tdvp.state.parameters)[0])
    np.savez(args.out, **numbers)
    print(f"done: process {jax.process_index()} of {jax.process_count()}, VMC {t1 - t0:.1f} s, TDVP "
          f"{time.perf_counter() - t1:.1f} s", flush=True)


if __name__ == "__main__":
    sys.exit(main())
