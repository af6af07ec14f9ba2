"""The ``graphfuse`` command's CPU default: OpenMP threads spin briefly, then sleep, unless the
user says otherwise (a spinning wait made training up to 10x slower beside another CPU-heavy
program; a purely passive one doubled PedGraph+'s batch-1 latency)."""

from __future__ import annotations

import os
import subprocess
import sys

_WAIT = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def _wait_seen_by_the_command(**exported: str) -> tuple[str, str]:
    code = ("import os, graphfuse.cli, torch; "
            "print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))")
    env = {k: v for k, v in os.environ.items() if k not in _WAIT} | exported
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return tuple(out.stdout.split())


def test_the_command_sets_a_short_spin_then_passive_wait_before_torch():
    assert _wait_seen_by_the_command() == ("PASSIVE", "1000")


def test_a_wait_setting_the_user_exports_wins_whole():
    # GOMP_SPINCOUNT overrides OMP_WAIT_POLICY in GNU OpenMP: an exported ACTIVE must not get it.
    assert _wait_seen_by_the_command(OMP_WAIT_POLICY="ACTIVE") == ("ACTIVE", "None")
    assert _wait_seen_by_the_command(OMP_WAIT_POLICY="PASSIVE") == ("PASSIVE", "None")
    assert _wait_seen_by_the_command(GOMP_SPINCOUNT="0") == ("None", "0")


# -- glibc allocator (graphfuse.cli.CPU_MALLOC_DEFAULTS) -----------------------------------------
_MMAPPED_BYTES = """
import ctypes, sys
{prelude}
class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                 "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
before = libc.mallinfo2().hblkhd
p = libc.malloc(64 * 2**20)  # one activation-sized block
print(libc.mallinfo2().hblkhd - before)
libc.free(ctypes.c_void_p(p))
"""


def _mmapped_bytes_of_a_64mb_block(env: dict[str, str], prelude: str) -> int:
    code = _MMAPPED_BYTES.format(prelude=prelude)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def _glibc_with_mallinfo2() -> bool:
    import ctypes
    import platform

    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        return hasattr(ctypes.CDLL("libc.so.6"), "mallinfo2")
    except OSError:
        return False


def _env_without_malloc_settings() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GRAPHFUSE_MALLOC"}


def test_the_command_keeps_large_blocks_in_the_heap():
    """Importing the command raises glibc's mmap threshold: a 64 MB block (a Shift-GCN activation
    at 300 frames) comes from the heap and is reused, instead of being mapped and faulted in anew."""
    import pytest

    if not _glibc_with_mallinfo2():
        pytest.skip("needs glibc >= 2.33 (mallinfo2)")
    env = _env_without_malloc_settings()
    assert _mmapped_bytes_of_a_64mb_block(env, "") >= 64 * 2**20  # glibc's default: mmap
    assert _mmapped_bytes_of_a_64mb_block(env, "import graphfuse.cli") == 0


def test_malloc_settings_the_user_chose_win(monkeypatch):
    """``GRAPHFUSE_MALLOC=default`` keeps glibc's behaviour; a ``MALLOC_*`` variable the user
    exported (glibc applied it at start) is not overridden."""
    from graphfuse import cli

    monkeypatch.setenv("GRAPHFUSE_MALLOC", "default")
    assert cli.tune_glibc_allocator() == []
    monkeypatch.delenv("GRAPHFUSE_MALLOC")
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1000")
    applied = cli.tune_glibc_allocator()
    assert "MALLOC_TRIM_THRESHOLD_" not in applied
    if _glibc_with_mallinfo2():
        assert applied == ["MALLOC_MMAP_THRESHOLD_"]
