"""Thread defaults (`nqs.threads`): set where absent, a user's value kept, and set before the first import of NumPy,
SciPy, numba, JAX or NetKet by the entry points (the main job's script and the `nqs` command).

The entry points run in a subprocess whose `sitecustomize` stops it at the first import of one of those libraries,
printing the environment as that library would read it: nothing heavy is loaded, so each run takes a fraction of a
second."""

import json
import os
import subprocess
import sys

import pytest

from nqs.threads import (
    ALLOCATOR_VARIABLE,
    BLAS_VARIABLES,
    EIGEN_FLAG,
    MARKER_VARIABLE,
    NUMBA_VARIABLE,
    OVERRIDE_VARIABLE,
    XLA_POOL_VARIABLE,
    available_cores,
    configure_allocator,
    configure_threads,
    thread_defaults,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIABLES = (XLA_POOL_VARIABLE, *BLAS_VARIABLES, NUMBA_VARIABLE, "XLA_FLAGS")

STOP_AT_FIRST_LIBRARY = f"VARIABLES = {VARIABLES!r}\n" + """
import ctypes, json, os, resource, sys, threading
LIBRARIES = {"numpy", "scipy", "numba", "jax", "jaxlib", "netket", "flax", "optax", "qutip"}

def refaults(size=96 << 20):
    # page faults of a second malloc + touch of `size` bytes on a thread, as XLA's threads allocate its buffers
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
    libc.free.argtypes = (ctypes.c_void_p,)
    counts = []
    def run():
        for _ in range(2):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            block = libc.malloc(size)
            ctypes.memset(block, 1, size)
            libc.free(block)
            counts.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return counts[1]

class StopAtFirstLibrary:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in LIBRARIES:
            env = {k: os.environ.get(k) for k in VARIABLES}
            print(json.dumps({"first": name, "env": env, "refaults": refaults()}), flush=True)
            os._exit(0)
        return None

sys.meta_path.insert(0, StopAtFirstLibrary())
"""


def clean_environment(**user: str) -> dict[str, str]:
    """This process's environment without the thread variables, nqs's and xdist's, plus `user`."""
    env = {k: v for k, v in os.environ.items()
           if k not in (*VARIABLES, "NPROC", OVERRIDE_VARIABLE, MARKER_VARIABLE, ALLOCATOR_VARIABLE, "GLIBC_TUNABLES")
           and not k.startswith(("PYTEST_XDIST", "MALLOC_"))}
    return {**env, **user}


def environment_at_first_library(tmp_path, argv: list[str], **user: str) -> dict:
    """Run ``python *argv`` (from the repository root) until its first import of a numerical library; the name it
    imported and the thread variables at that moment."""
    (tmp_path / "sitecustomize.py").write_text(STOP_AT_FIRST_LIBRARY)
    env = clean_environment(**user)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), REPO, *filter(None, [env.get("PYTHONPATH")])])
    proc = subprocess.run([sys.executable, *argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no numerical library imported: {proc.stdout!r} {proc.stderr!r}"
    return json.loads(lines[0])


def expected(env_before: dict[str, str]) -> dict[str, str]:
    """The variables after `configure_threads()` on this machine, given what the user set."""
    environ = dict(env_before)
    configure_threads(environ=environ)
    return {k: environ.get(k) for k in VARIABLES}


def test_defaults_are_set_where_absent():
    environ: dict[str, str] = {}
    changed = configure_threads(workers=1, environ=environ)
    marker = environ.pop(MARKER_VARIABLE)
    assert changed == environ == thread_defaults(available_cores())
    assert marker == ";".join(f"{name}={value}" for name, value in changed.items())
    # one process on two cores: every pool two wide, as the libraries would have it
    assert thread_defaults(2) == dict.fromkeys((XLA_POOL_VARIABLE, *BLAS_VARIABLES, NUMBA_VARIABLE), "2")
    # two xdist workers on two cores: one thread each, and no Eigen multithreading
    one = thread_defaults(1)
    assert all(one[name] == "1" for name in (XLA_POOL_VARIABLE, *BLAS_VARIABLES, NUMBA_VARIABLE))
    assert one["XLA_FLAGS"] == f"--{EIGEN_FLAG}=false"
    environ = {"PYTEST_XDIST_WORKER_COUNT": "2"}
    configure_threads(environ=environ)
    assert environ[XLA_POOL_VARIABLE] == str(max(1, available_cores() // 2))


def test_user_values_are_kept():
    user = {"OPENBLAS_NUM_THREADS": "3", "NUMBA_NUM_THREADS": "2", "NPROC": "3",
            "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    environ = dict(user)
    configure_threads(workers=available_cores(), environ=environ)  # one thread per process
    assert {k: environ[k] for k in user if k != "XLA_FLAGS"} == {k: v for k, v in user.items() if k != "XLA_FLAGS"}
    assert XLA_POOL_VARIABLE not in environ  # XLA reads the user's NPROC when PJRT_NPROC is absent
    assert environ["OMP_NUM_THREADS"] == "1"
    # other XLA flags are kept, the eigen flag is added beside them only when the user did not name it
    assert environ["XLA_FLAGS"].split() == ["--xla_force_host_platform_device_count=2", f"--{EIGEN_FLAG}=false"]
    environ = {"XLA_FLAGS": f"--{EIGEN_FLAG}=true"}
    configure_threads(workers=available_cores(), environ=environ)
    assert environ["XLA_FLAGS"] == f"--{EIGEN_FLAG}=true"
    # NQS_THREADS: a number of threads replaces cores // workers, 0 sets nothing, anything else is refused
    environ = {OVERRIDE_VARIABLE: "8"}
    configure_threads(environ=environ)
    assert environ["OMP_NUM_THREADS"] == environ[XLA_POOL_VARIABLE] == "8" and "XLA_FLAGS" not in environ
    environ = {OVERRIDE_VARIABLE: "0"}
    assert configure_threads(environ=environ) == {} and environ == {OVERRIDE_VARIABLE: "0"}
    with pytest.raises(ValueError, match="NQS_THREADS"):
        configure_threads(environ={OVERRIDE_VARIABLE: "many"})


def test_a_child_process_recomputes_the_defaults_of_its_parent():
    """The xdist controller's defaults (one process) are not taken for the user's in its workers (several); a value
    changed after nqs set it is the user's."""
    controller = {OVERRIDE_VARIABLE: "2"}
    configure_threads(environ=controller)  # the controller: 2 threads
    worker = {k: v for k, v in controller.items() if k != OVERRIDE_VARIABLE}
    configure_threads(workers=available_cores(), environ=worker)  # a worker inherits them: 1 thread
    assert {k: worker.get(k) for k in VARIABLES} == {k: thread_defaults(1).get(k) for k in VARIABLES}
    assert worker["XLA_FLAGS"] == f"--{EIGEN_FLAG}=false"  # once, not twice
    worker["OMP_NUM_THREADS"] = "5"
    worker["XLA_FLAGS"] = f"--xla_force_host_platform_device_count=2 {worker['XLA_FLAGS']}"
    child = {**worker, OVERRIDE_VARIABLE: "2"}
    configure_threads(environ=child)  # a script the worker starts, with 2 threads
    assert child["OMP_NUM_THREADS"] == "5"  # changed after nqs set it: the user's
    assert child["XLA_FLAGS"] == "--xla_force_host_platform_device_count=2" and child[XLA_POOL_VARIABLE] == "2"


@pytest.mark.skipif(bool(os.environ.get(OVERRIDE_VARIABLE)), reason="NQS_THREADS chooses the width")
def test_this_test_process_has_the_defaults_of_its_share():
    """conftest imports nqs first: this process (an xdist worker, or the only one with -n 0) has the defaults of its
    share of the cores wherever the user did not set a variable, not those of the xdist controller it came from."""
    own = dict(entry.partition("=")[::2] for entry in os.environ.get(MARKER_VARIABLE, "").split(";") if entry)
    count = os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")
    defaults = thread_defaults(max(1, available_cores() // int(count)))
    assert {name: defaults[name] for name in own} == own
    assert all(os.environ[name] == value for name, value in own.items() if name != "XLA_FLAGS")


def glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (AttributeError, OSError, ValueError):
        return False


@pytest.mark.parametrize("argv", [["runs/heisenberg_chain.py", "--quick"], ["-m", "nqs.cli", "list", "."]],
                         ids=["main job", "nqs command"])
def test_entry_points_set_them_before_the_first_library(tmp_path, argv):
    seen = environment_at_first_library(tmp_path, argv)
    assert seen["env"] == expected({}), seen["first"]
    if glibc():  # malloc keeps a freed block: touching it again costs no page faults (a fresh one: 24 576)
        assert seen["refaults"] < 1000


def test_the_user_values_reach_the_libraries(tmp_path):
    user = {"OPENBLAS_NUM_THREADS": "2", "XLA_FLAGS": f"--{EIGEN_FLAG}=true"}
    seen = environment_at_first_library(tmp_path, ["runs/heisenberg_chain.py", "--quick"], **user)
    assert seen["env"] == expected(user)
    assert seen["env"]["OPENBLAS_NUM_THREADS"] == "2" and seen["env"]["XLA_FLAGS"] == f"--{EIGEN_FLAG}=true"


@pytest.mark.skipif(not glibc(), reason="the allocator settings are glibc's")
def test_the_allocator_settings_are_opt_out(tmp_path):
    """Without them (NQS_MALLOC=0, or malloc tuned by the user) a large block freed and allocated again on a thread
    is faulted in page by page again, as XLA's buffers were at every step of a run."""
    seen = environment_at_first_library(tmp_path, ["runs/heisenberg_chain.py", "--quick"], **{ALLOCATOR_VARIABLE: "0"})
    assert seen["refaults"] > 20000
    assert not configure_allocator(environ={"MALLOC_ARENA_MAX": "8"})
    assert not configure_allocator(environ={"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})
