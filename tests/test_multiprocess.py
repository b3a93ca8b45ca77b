"""Beyond one machine: two JAX processes (`jax.distributed`, one CPU device each, coordinator on localhost) run a
sampled VMC search (with a resume from the result file) and a sampled TDVP evolution and get the numbers of one process
with two devices, and process 0 alone writes the result files.

Several GPUs or nodes are JAX's business, not ours: `jax.distributed.initialize` before NetKet is imported, NetKet's
sharding (`NETKET_SHARDING`, on by default) over all global devices; the CPU collectives between processes are gloo's
(JAX's default, `jax_cpu_collectives_implementation`). `tests/multiprocess_driver.py` runs both methods; the three
processes run at once (two cores: one at a time would take longer). docs/reference.md#several-processes-gpus-or-nodes.
"""

import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, XLA_TEST_FLAGS
from jax.flatten_util import ravel_pytree

DRIVER = REPO / "tests" / "multiprocess_driver.py"
TIMEOUT = 900


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _environment(**extra: str) -> dict[str, str]:
    """This environment without a cluster's variables (JAX would read them instead of the arguments), CPU only."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "OMPI_", "PMI_", "JAX_COORDINATOR", "JAX_PROCESS", "JAX_NUM_PROCESSES",
                                "JAX_LOCAL", "NETKET_"))}
    return {**env, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": XLA_TEST_FLAGS, "OMP_NUM_THREADS": "1",
            "PYTHONPATH": str(REPO), **extra}


@pytest.mark.slow  # 3 min on 2 shared cores: three processes, each compiles both methods
def test_two_processes_give_the_numbers_of_two_devices_in_one_process(tmp_path):
    port = _free_port()
    launches = {
        f"process{i}": ([f"--coordinator=127.0.0.1:{port}", "--num-processes=2", f"--process-id={i}",
                         f"--results={tmp_path / 'two'}"], _environment())
        for i in range(2)
    }
    launches["single"] = ([f"--results={tmp_path / 'one'}"],
                          _environment(XLA_FLAGS=f"--xla_force_host_platform_device_count=2 {XLA_TEST_FLAGS}"))
    procs = {}
    for name, (args, env) in launches.items():
        with open(tmp_path / f"{name}.log", "w") as log:
            procs[name] = subprocess.Popen([sys.executable, str(DRIVER), str(tmp_path / f"{name}.npz"), *args],
                                           env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        codes = {name: proc.wait(timeout=TIMEOUT) for name, proc in procs.items()}
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    logs = {name: (tmp_path / f"{name}.log").read_text()[-3000:] for name in procs}
    assert all(code == 0 for code in codes.values()), (codes, logs)

    one = np.load(tmp_path / "single.npz")
    two = [np.load(tmp_path / f"process{i}.npz") for i in range(2)]
    # the samples are split over two devices: both in the single process, one in each of the two processes
    np.testing.assert_array_equal(one["sharding"], [2, 2])
    for numbers in two:
        np.testing.assert_array_equal(numbers["sharding"], [2, 1])
    assert set(one.files) == set(two[0].files) == set(two[1].files)
    for key in sorted(set(one.files) - {"sharding"}):
        # the processes hold the same replicated numbers, bit for bit
        np.testing.assert_array_equal(two[0][key], two[1][key], err_msg=key)
        # and those of one process with two devices: the same global computation, split the same way, with the same
        # random keys; only the order of floating-point reductions may differ (1e-16 relative, measured: 0, bit for
        # bit). A sample duplicated, dropped or drawn with another key changes energies by ~σ/√N ~ 1e-2.
        np.testing.assert_allclose(two[0][key], one[key], rtol=1e-10, atol=1e-12, err_msg=key)
    assert len(one["vmc_energies"]) == 3 and len(one["tdvp_energies"]) == 3
    assert np.all(np.isfinite(one["vmc_params"])) and np.all(np.isfinite(one["tdvp_params"]))

    # process 0 alone wrote the result files (nothing else in the folder: no second writer's partial file), which hold
    # what the processes computed; the VMC file went through a resume on both processes
    from nqs import results

    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["tdvp.h5", "vmc.h5"]
    vmc, tdvp = results.load(tmp_path / "two" / "vmc.h5"), results.load(tmp_path / "two" / "tdvp.h5")
    np.testing.assert_array_equal(vmc.history["step"], [0, 1, 2, 3])  # 2 steps, resumed after step 1, 1 more, final
    np.testing.assert_array_equal(vmc.history["energy"][:3], two[0]["vmc_energies"])
    assert vmc.history["energy"][3] == two[0]["vmc_final"][0]
    np.testing.assert_array_equal(tdvp.history["energy"], two[0]["tdvp_energies"])
    for name, result in (("vmc", vmc), ("tdvp", tdvp)):
        saved = np.asarray(ravel_pytree(results.load_parameters(result.path))[0])
        np.testing.assert_array_equal(saved, two[0][f"{name}_params"], err_msg=name)
