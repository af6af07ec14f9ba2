"""CPU settings of the ``graphfuse`` command and its worker processes (no torch import here).

* :data:`CPU_ENV_DEFAULTS`: OpenMP threads that have finished their share of an operation
  spin briefly, then sleep (``OMP_WAIT_POLICY=PASSIVE`` with ``GOMP_SPINCOUNT=1000``, about
  tens of microseconds of spinning in GNU OpenMP, the runtime of PyTorch's Linux wheels).
  Beside another CPU-heavy program, threads that keep spinning steal the cores the other
  threads wait for: training was 3x slower (up to 10x beside another torch job); a purely
  passive wait instead wakes a sleeping thread for each of the many small parallel operations
  of a batch-1 forward (PedGraph+ 4.8 ms instead of 2.2 ms on 2 threads). The short spin
  keeps both: as fast as passive beside another job, as fast as spinning at batch 1
  (docs/benchmarks.md, "CPU threads"). Applied by :func:`apply_env_defaults` before torch is
  imported (OpenMP reads them once) and only as a whole: if the user exports either
  variable, neither default is set (``GOMP_SPINCOUNT`` would override an exported
  ``OMP_WAIT_POLICY=ACTIVE``).
* :data:`CPU_MALLOC_DEFAULTS`: glibc's allocator keeps freed large blocks in the heap for the
  next training step instead of unmapping them and page-faulting them in again (Shift-GCN at
  300 frames: every activation is ~60 MB, above glibc's largest dynamic mmap threshold of
  32 MB, and the default allocator made training 2.6x slower; docs/benchmarks.md,
  "Shift-GCN (CPU)"). The environment variables of the same names are read by glibc only when
  a process starts, so :func:`tune_glibc_allocator` applies the values with ``mallopt`` (they
  take effect for every later allocation; no re-exec). A variable the user exports wins
  (glibc applied it at start), and ``GRAPHFUSE_MALLOC=default`` keeps glibc's own behaviour.
  Not glibc: nothing.
* :data:`PRELOAD_ALLOCATORS`: the training subcommands run under tcmalloc (else jemalloc)
  where one is installed: :func:`reexec_with_allocator` starts the same command again in the
  same process (``os.execve``, same pid) with the library in ``LD_PRELOAD``. glibc's heap, even
  tuned, fragments: ``graphfuse fit`` of Shift-GCN at batch 16, T = 300 peaked at 6.8-7.7 GiB
  (7.3-8.3 GB) with at most about 3-4 GiB in use, where tcmalloc peaked at 4.1-4.3 GiB at the
  same speed (docs/benchmarks.md, "Fifth round"). ``GRAPHFUSE_MALLOC`` chooses: ``auto`` (the
  default), ``tcmalloc``, ``jemalloc``, ``glibc`` (tuned, no preload) or ``default`` (glibc
  untouched); an ``LD_PRELOAD`` the user set is left alone.
* :func:`usable_cpus`: the cores this process may run on (its CPU affinity, which a container,
  ``taskset`` or a batch scheduler restricts), the count every default pool size starts from.
* :func:`emulated_bf16_warning`: the warning for bfloat16 training on an x86 CPU without
  bfloat16 instructions (AVX-512 BF16 or AMX), where oneDNN emulates them: a Shift-GCN training
  step at T = 300 took 42.4 s instead of 4.2 s in float32 (10x slower), where the CPU with them
  takes 1.7-1.8 s instead of 3.1-3.2 s (docs/benchmarks.md, "Fourth round").
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

__all__ = [
    "ALLOCATOR_CHOICES",
    "CPU_ENV_DEFAULTS",
    "CPU_MALLOC_DEFAULTS",
    "PRELOAD_ALLOCATORS",
    "allocator_preload",
    "apply_env_defaults",
    "cpu_has_bf16_instructions",
    "emulated_bf16_warning",
    "preloaded_allocator",
    "reexec_with_allocator",
    "tune_glibc_allocator",
    "usable_cpus",
]

CPU_ENV_DEFAULTS = {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "1000"}

#: ``variable name -> (mallopt option, value)``: ``M_TRIM_THRESHOLD`` (-1) and
#: ``M_MMAP_THRESHOLD`` (-3).
CPU_MALLOC_DEFAULTS = {"MALLOC_TRIM_THRESHOLD_": (-1, 2**31 - 1), "MALLOC_MMAP_THRESHOLD_": (-3, 2**31 - 1)}


def apply_env_defaults(defaults: dict[str, str] = CPU_ENV_DEFAULTS) -> None:
    """Set ``defaults`` unless the user exported any of them: one setting, taken whole (call
    before torch is imported)."""
    if not any(key in os.environ for key in defaults):
        os.environ.update(defaults)


def tune_glibc_allocator(defaults: dict[str, tuple[int, int]] = CPU_MALLOC_DEFAULTS) -> list[str]:
    """Apply ``defaults`` (``variable name -> (mallopt option, value)``) with glibc's
    ``mallopt``, skipping the variables the user set; returns the names applied (empty when
    this is not glibc or ``GRAPHFUSE_MALLOC=default``)."""
    import ctypes

    if os.environ.get("GRAPHFUSE_MALLOC", "").lower() == "default" or preloaded_allocator() is not None:
        return []  # glibc as it is, or glibc's malloc not in use (tcmalloc/jemalloc preloaded)
    try:  # glibc names itself here (cheap, unlike platform.libc_ver, which reads the executable)
        if not os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"):
            return []
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (AttributeError, OSError, ValueError):  # no confstr / name unknown / no libc.so.6
        return []
    return [name for name, (option, value) in defaults.items()
            if name not in os.environ and mallopt(option, ctypes.c_int(value)) == 1]


#: ``name -> (library file names, environment defaults, a symbol only it exports)`` of the
#: allocators :func:`reexec_with_allocator` preloads, in order of preference. tcmalloc: no report
#: of large allocations on stderr (it prints one per block over 1 GiB by default). jemalloc: freed
#: pages kept (with its default decay a Shift-GCN step at T = 300 took 3x as long, page-faulting).
PRELOAD_ALLOCATORS: dict[str, tuple[tuple[str, ...], dict[str, str], str]] = {
    "tcmalloc": (("libtcmalloc_minimal.so.4", "libtcmalloc.so.4"),
                 {"TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD": str(2**50)}, "tc_malloc"),
    "jemalloc": (("libjemalloc.so.2",), {"MALLOC_CONF": "dirty_decay_ms:-1,muzzy_decay_ms:-1"}, "mallctl"),
}

#: The values of ``GRAPHFUSE_MALLOC``.
ALLOCATOR_CHOICES = ("auto", *PRELOAD_ALLOCATORS, "glibc", "default")

#: Set in the environment of a command re-executed under a preloaded allocator (its name).
_PRELOADED = "GRAPHFUSE_PRELOADED_ALLOCATOR"


def _library_dirs(environ: Mapping[str, str]) -> list[str]:
    """Where :func:`allocator_preload` looks: the active conda/virtual prefix's ``lib``, then the
    system's library folders (Debian's multiarch one first)."""
    import sys
    import sysconfig

    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    dirs = [os.path.join(p, "lib") for p in (environ.get("CONDA_PREFIX"), sys.prefix) if p]
    for root in ("/usr/local/lib", "/usr/lib", "/lib"):
        dirs += [os.path.join(root, multiarch)] if multiarch else []
        dirs.append(root)
    dirs += ["/usr/lib64", "/lib64"]
    return list(dict.fromkeys(dirs))


def allocator_preload(environ: Mapping[str, str], dirs: Sequence[str] | None = None
                      ) -> tuple[str, dict[str, str]] | None:
    """``(name, environment)`` to re-execute the command with an allocator preloaded, or None
    to stay on glibc: ``GRAPHFUSE_MALLOC`` is ``glibc`` or ``default``, ``LD_PRELOAD`` is already
    set (by the user, or by an earlier re-execution), this is not Linux, or no library of the
    chosen allocator (``auto``: any, in the order of :data:`PRELOAD_ALLOCATORS`) is in ``dirs``
    (default: :func:`_library_dirs`).

    Raises:
        ValueError: ``GRAPHFUSE_MALLOC`` is not one of :data:`ALLOCATOR_CHOICES`, or names an
            allocator that is not installed.
    """
    import sys

    choice = environ.get("GRAPHFUSE_MALLOC", "").strip().lower() or "auto"
    if choice not in ALLOCATOR_CHOICES:
        raise ValueError(f"GRAPHFUSE_MALLOC must be one of {', '.join(ALLOCATOR_CHOICES)}; got {choice!r}")
    if choice in ("glibc", "default") or environ.get("LD_PRELOAD") or not sys.platform.startswith("linux"):
        return None
    dirs = _library_dirs(environ) if dirs is None else dirs
    names = list(PRELOAD_ALLOCATORS) if choice == "auto" else [choice]
    for name in names:
        files, defaults, _ = PRELOAD_ALLOCATORS[name]
        for file in files:
            for folder in dirs:
                path = os.path.join(folder, file)
                if os.path.isfile(path):
                    env = {**defaults, **environ, "LD_PRELOAD": path, _PRELOADED: name}
                    return name, env
    if choice != "auto":
        raise ValueError(f"GRAPHFUSE_MALLOC={choice}: none of {', '.join(PRELOAD_ALLOCATORS[choice][0])} "
                         f"found in {', '.join(dirs)}")
    return None


def preloaded_allocator() -> str | None:
    """The allocator this process runs on after :func:`reexec_with_allocator` (``tcmalloc`` or
    ``jemalloc``), or None: the one it chose, if its own symbol resolves in this process (a
    library the dynamic loader could not preload leaves glibc's malloc in use)."""
    import ctypes

    name = os.environ.get(_PRELOADED)
    if name not in PRELOAD_ALLOCATORS:
        return None
    try:
        return name if hasattr(ctypes.CDLL(None), PRELOAD_ALLOCATORS[name][2]) else None
    except OSError:
        return None


def reexec_with_allocator() -> None:
    """Start this command again, in this process, under the allocator :func:`allocator_preload`
    picks (one line on stderr says which); return when it picks none. Call it first thing
    from the command line's entry point, before any work or output."""
    import sys

    plan = allocator_preload(os.environ)
    if plan is None:
        return
    name, env = plan
    argv = list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
    print(f"graphfuse: memory allocator {name} ({env['LD_PRELOAD']}); GRAPHFUSE_MALLOC=glibc keeps glibc's",
          file=sys.stderr, flush=True)
    sys.stdout.flush()
    try:
        os.execve(sys.executable, [sys.executable, *argv[1:]], env)
    except OSError as exc:  # not expected; carry on with glibc rather than fail the command
        print(f"graphfuse: could not restart under {name} ({exc}); glibc's allocator stays", file=sys.stderr)


def usable_cpus() -> int:
    """The number of CPUs this process may run on: its affinity mask (``os.sched_getaffinity``;
    smaller than ``os.cpu_count()`` under ``taskset``, cgroup cpusets or a SLURM allocation),
    else ``os.cpu_count()`` (no affinity call on this platform), else 1. Always >= 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def cpu_has_bf16_instructions() -> bool | None:
    """Whether this x86 CPU has bfloat16 arithmetic (AVX-512 BF16 or AMX tiles), as torch's
    own CPU feature checks read it; ``None`` when that cannot be told (another architecture, or a
    torch without the checks)."""
    import platform

    import torch

    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if any(check is None for check in checks):
        return None
    return any(bool(check()) for check in checks)  # type: ignore[misc]


def emulated_bf16_warning(precision: object) -> str | None:
    """The warning for training at ``precision`` (Lightning's ``trainer.precision``) on this
    CPU when it is a bfloat16 precision and the CPU has no bfloat16 instructions
    (:func:`cpu_has_bf16_instructions` is False); None otherwise."""
    if not str(precision).startswith("bf16") or cpu_has_bf16_instructions() is not False:
        return None
    return (f"precision {precision} on a CPU without bfloat16 instructions (AVX-512 BF16 or AMX): "
            "bfloat16 is emulated there and much slower than float32 (Shift-GCN training 10x "
            "slower in docs/benchmarks.md); use --trainer.precision 32-true on this machine")
