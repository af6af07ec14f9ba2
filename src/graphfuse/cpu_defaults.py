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
* :func:`usable_cpus`: the cores this process may run on (its CPU affinity, which a container,
  ``taskset`` or a batch scheduler restricts), the count every default pool size starts from.
* :func:`emulated_bf16_warning`: the warning for bfloat16 training on an x86 CPU without
  bfloat16 instructions (AVX-512 BF16 or AMX), where oneDNN emulates them: a Shift-GCN training
  step at T = 300 took 42.4 s instead of 4.2 s in float32 (10x slower), where the CPU with them
  takes 1.7-1.8 s instead of 3.1-3.2 s (docs/benchmarks.md, "Fourth round").
"""

from __future__ import annotations

import os

__all__ = [
    "CPU_ENV_DEFAULTS",
    "CPU_MALLOC_DEFAULTS",
    "apply_env_defaults",
    "cpu_has_bf16_instructions",
    "emulated_bf16_warning",
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

    if os.environ.get("GRAPHFUSE_MALLOC", "").lower() == "default":
        return []
    try:  # glibc names itself here (cheap, unlike platform.libc_ver, which reads the executable)
        if not os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc"):
            return []
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (AttributeError, OSError, ValueError):  # no confstr / name unknown / no libc.so.6
        return []
    return [name for name, (option, value) in defaults.items()
            if name not in os.environ and mallopt(option, ctypes.c_int(value)) == 1]


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
