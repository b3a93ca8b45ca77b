"""Thread defaults for the CPU libraries under nqs, set before those libraries start their thread pools, and glibc
malloc settings that keep XLA's freed buffers for reuse (`configure_allocator`, ``NQS_MALLOC=0`` to opt out).

A process of nqs runs XLA (a Python thread that dispatches, XLA's executor thread, and XLA's CPU thread pool, where
fused kernels, dots and Eigen operations run in parallel), OpenBLAS/MKL (NumPy and SciPy, and the LAPACK calls of
XLA's CPU kernels; one pool for NumPy's library and another for SciPy's) and numba (NetKet's `LocalOperator`
connections, never in parallel: it starts no pool). Left to their defaults, each pool is as wide as the machine, in
every process: pytest-xdist's two workers on two cores run two XLA pools of two threads each.

`configure_threads` sets, in ``os.environ``, for ``threads = cores // workers`` (cores: the CPUs this process may
run on, so ``taskset`` counts; workers: ``PYTEST_XDIST_WORKER_COUNT`` in a pytest-xdist worker, else 1):

| variable | default |
|---|---|
| ``PJRT_NPROC`` (XLA's CPU thread pool; not set when the user set ``NPROC``, which XLA reads next) | ``threads`` |
| ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS`` | ``threads`` |
| ``NUMBA_NUM_THREADS`` | ``threads`` |
| ``XLA_FLAGS`` | ``--xla_cpu_multi_thread_eigen=false`` appended when ``threads == 1`` |

One process on the whole machine thus keeps the libraries' own widths; two xdist workers on two cores get one
thread per pool each. A variable the user has set is never changed, and ``XLA_FLAGS`` gets the flag only when it
does not name ``xla_cpu_multi_thread_eigen`` already (other flags in it, e.g.
``--xla_force_host_platform_device_count``, are kept). ``NQS_THREADS=N`` replaces ``cores // workers`` by N;
``NQS_THREADS=0`` sets nothing at all. ``NQS_THREADS_DEFAULTS`` records what was set, so that a child process (an
xdist worker, a script a test starts) computes its own values instead of taking its parent's for the user's.
Measurements: docs/reference.md#threads.

The libraries read these variables once: OpenBLAS when NumPy or SciPy is imported, numba at import, XLA when JAX
creates its CPU backend (the first computation). `configure_threads` therefore runs before any of them is imported:
``nqs/__init__.py`` calls it first, which covers ``import nqs``, the ``nqs`` command, the test suite
(``tests/conftest.py`` imports nqs first) and the run scripts whose first import is ``from _common import ...`` (it
imports nqs first); ``tests/test_threads.py`` checks it. A program that imports NumPy before nqs keeps OpenBLAS's
own width. This module imports nothing but the standard library.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

BLAS_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
NUMBA_VARIABLE = "NUMBA_NUM_THREADS"
OVERRIDE_VARIABLE = "NQS_THREADS"
MARKER_VARIABLE = "NQS_THREADS_DEFAULTS"
# the size of XLA's CPU thread pool (its intra-op pool, where fused kernels, dots and Eigen run in parallel): XLA reads
# PJRT_NPROC, then NPROC, else takes the number of cores
XLA_POOL_VARIABLE = "PJRT_NPROC"
EIGEN_FLAG = "xla_cpu_multi_thread_eigen"


def available_cores() -> int:
    """The number of CPUs this process may run on (its affinity mask: ``taskset -c 1`` gives 1)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def thread_defaults(threads: int) -> dict[str, str]:
    """The variables `configure_threads` sets for a process with `threads` cores to itself (``XLA_FLAGS``: the one
    flag it appends, or absent): every pool `threads` wide, and with one thread no Eigen multithreading either."""
    defaults = dict.fromkeys((XLA_POOL_VARIABLE, *BLAS_VARIABLES, NUMBA_VARIABLE), str(threads))
    if threads == 1:
        defaults["XLA_FLAGS"] = f"--{EIGEN_FLAG}=false"
    return defaults


def _forget_own_defaults(environ: MutableMapping[str, str]) -> None:
    """Remove from `environ` the values an earlier `configure_threads` set (in this process or a parent) and that
    nobody has changed since, so that they are computed again for this process."""
    for entry in filter(None, environ.pop(MARKER_VARIABLE, "").split(";")):
        name, _, value = entry.partition("=")
        if name == "XLA_FLAGS":
            flags = environ.get(name, "").split()
            if value in flags:
                flags.remove(value)
                if flags:
                    environ[name] = " ".join(flags)
                else:
                    del environ[name]
        elif environ.get(name) == value:
            del environ[name]


def _workers(environ: MutableMapping[str, str]) -> int:
    """The number of pytest-xdist workers this process is one of (xdist sets it in each worker), else 1."""
    count = environ.get("PYTEST_XDIST_WORKER_COUNT", "")
    return int(count) if count.isdigit() and int(count) > 0 else 1


def configure_threads(workers: int | None = None, environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set the thread defaults of a process that shares this machine's cores with ``workers - 1`` others like it
    (default: the number of pytest-xdist workers, else 1), in `environ` (default ``os.environ``), where the user has
    not set them; return what was set (``XLA_FLAGS``: the flag appended). Call it before NumPy, SciPy or JAX is
    imported: see the module docstring.

    What it sets is recorded in ``NQS_THREADS_DEFAULTS``, so that a child process (an xdist worker started by the
    controller, a script started by a test) computes its own defaults instead of taking them for the user's.

    Raises:
        ValueError: ``NQS_THREADS`` is not a whole number.
    """
    environ = os.environ if environ is None else environ
    _forget_own_defaults(environ)
    override = environ.get(OVERRIDE_VARIABLE, "").strip()
    if override:
        if not override.isdigit():
            raise ValueError(f"{OVERRIDE_VARIABLE}={override!r}: expected a number of threads per process (0: "
                             "leave the libraries' own defaults)")
        threads = int(override)
        if threads == 0:
            return {}
    else:
        threads = max(1, available_cores() // (workers or _workers(environ)))
    changed: dict[str, str] = {}
    for name, value in thread_defaults(threads).items():
        if name == "XLA_FLAGS":
            flags = environ.get(name, "")
            if EIGEN_FLAG in flags:
                continue
            environ[name] = f"{flags} {value}".strip()
        elif name in environ or (name == XLA_POOL_VARIABLE and "NPROC" in environ):  # XLA reads NPROC second
            continue
        else:
            environ[name] = value
        changed[name] = value
    if changed:
        environ[MARKER_VARIABLE] = ";".join(f"{name}={value}" for name, value in changed.items())
    return changed


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -2, -4, -8
ALLOCATOR_SETTINGS = ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 2**31 - 1), (_M_TOP_PAD, 256 << 20))
ALLOCATOR_VARIABLE = "NQS_MALLOC"


def configure_allocator(environ: MutableMapping[str, str] | None = None) -> bool:
    """Make glibc's malloc keep freed memory for reuse instead of handing it back to the kernel: one arena for all
    threads, no mmap for large blocks, no trimming below 2 GiB of free heap, 256 MiB of padding per heap growth.

    XLA's CPU runtime allocates and frees its buffers on its own threads at every call; with glibc's defaults a
    block above the mmap threshold (at most 32 MiB), or one a thread arena's 64 MiB heap cannot hold, is mmapped and
    unmapped again, and a freed heap top is trimmed, so the kernel zeroes the same memory at every step (page faults)
    and unmaps it: docs/reference.md#threads, where the main job's kernel time falls from 68 s to 4 s and its median
    step from 2.1 s to 1.1 s. The process then keeps its peak memory (peak RSS +2% on the main job, +10% on a
    12-step run). Measured subsets (one arena alone; one arena and no mmap; no mmap and no trimming) do not help.

    Nothing is changed when ``NQS_MALLOC=0``, when the user tunes malloc already (``GLIBC_TUNABLES`` with
    ``glibc.malloc``, or a ``MALLOC_*`` variable), or when the C library is not glibc. Returns whether it applied.
    """
    environ = os.environ if environ is None else environ
    if environ.get(ALLOCATOR_VARIABLE, "").strip() == "0":
        return False
    if "glibc.malloc." in environ.get("GLIBC_TUNABLES", "") or any(name.startswith("MALLOC_") for name in environ):
        return False
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"):
            return False
    except (AttributeError, OSError, ValueError):  # not glibc
        return False
    import ctypes

    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return all(mallopt(parameter, value) == 1 for parameter, value in ALLOCATOR_SETTINGS)
