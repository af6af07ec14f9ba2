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


# -- tcmalloc / jemalloc preloaded for the training subcommands (graphfuse.cpu_defaults) -------------
def _fake_libraries(folder, *names):
    folder.mkdir(exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")
    return [str(folder)]


def test_the_preloaded_allocator_is_tcmalloc_then_jemalloc(tmp_path):
    from graphfuse.cpu_defaults import allocator_preload

    both = _fake_libraries(tmp_path / "both", "libjemalloc.so.2", "libtcmalloc_minimal.so.4")
    name, env = allocator_preload({"PATH": "/bin"}, dirs=both)
    assert name == "tcmalloc" and env["LD_PRELOAD"] == str(tmp_path / "both" / "libtcmalloc_minimal.so.4")
    assert env["PATH"] == "/bin" and env["GRAPHFUSE_PRELOADED_ALLOCATOR"] == "tcmalloc"
    assert int(env["TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD"]) >= 2**40  # no report per large block
    only_je = _fake_libraries(tmp_path / "je", "libjemalloc.so.2")
    name, env = allocator_preload({}, dirs=only_je)
    # jemalloc keeps its freed pages: with its default decay a T = 300 step took 3x as long
    assert name == "jemalloc" and env["MALLOC_CONF"] == "dirty_decay_ms:-1,muzzy_decay_ms:-1"
    assert allocator_preload({"MALLOC_CONF": "narenas:2"}, dirs=only_je)[1]["MALLOC_CONF"] == "narenas:2"
    assert allocator_preload({"GRAPHFUSE_MALLOC": "jemalloc"}, dirs=both)[0] == "jemalloc"


def test_no_preload_where_the_user_chose_or_nothing_is_installed(tmp_path):
    import pytest

    from graphfuse.cpu_defaults import allocator_preload

    both = _fake_libraries(tmp_path / "both", "libjemalloc.so.2", "libtcmalloc_minimal.so.4")
    assert allocator_preload({"GRAPHFUSE_MALLOC": "glibc"}, dirs=both) is None
    assert allocator_preload({"GRAPHFUSE_MALLOC": "default"}, dirs=both) is None
    assert allocator_preload({"LD_PRELOAD": "/opt/libiomp5.so"}, dirs=both) is None  # the user's, kept
    assert allocator_preload({}, dirs=[str(tmp_path / "none")]) is None
    with pytest.raises(ValueError, match="GRAPHFUSE_MALLOC must be one of auto, tcmalloc, jemalloc, glibc"):
        allocator_preload({"GRAPHFUSE_MALLOC": "mimalloc"}, dirs=both)
    with pytest.raises(ValueError, match="GRAPHFUSE_MALLOC=tcmalloc: none of libtcmalloc_minimal.so.4"):
        allocator_preload({"GRAPHFUSE_MALLOC": "tcmalloc"}, dirs=_fake_libraries(tmp_path / "je", "libjemalloc.so.2"))


_REEXEC = """
import os, sys
import graphfuse.cpu_defaults as c
{patch}
c.reexec_with_allocator()
print(os.environ.get("LD_PRELOAD"), os.environ.get("GRAPHFUSE_PRELOADED_ALLOCATOR"), os.getpid(), sys.argv[1:])
"""


def _reexec(patch: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "GRAPHFUSE_MALLOC")}
    proc = subprocess.Popen([sys.executable, "-c", _REEXEC.format(patch=patch), "fit", "x"], env=base | env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, f"{proc.pid} {out}", err)


def test_the_command_restarts_itself_in_the_same_process_under_the_library():
    """The re-execution keeps the process (pid), its arguments and environment, adds the library to
    ``LD_PRELOAD`` and says so once; it happens once. A stand-in library (libm, on every glibc
    system) plays the allocator, so this runs where neither is installed."""
    import pytest

    import graphfuse.cpu_defaults as c

    if not sys.platform.startswith("linux"):
        pytest.skip("LD_PRELOAD is Linux's")
    libm = next((os.path.join(d, "libm.so.6") for d in c._library_dirs(os.environ)
                 if os.path.isfile(os.path.join(d, "libm.so.6"))), None)
    if libm is None:
        pytest.skip("no libm.so.6 in the library folders")
    run = _reexec("c.PRELOAD_ALLOCATORS = {'tcmalloc': (('libm.so.6',), {'GF_TEST_DEFAULT': '1'}, 'tc_malloc')}")
    assert run.returncode == 0, run.stderr
    pid, preload, name, child_pid, args = run.stdout.strip().split(maxsplit=4)
    assert (preload, name) == (libm, "tcmalloc") and child_pid == pid
    assert args == "['fit', 'x']"
    assert run.stderr.count("graphfuse: memory allocator tcmalloc") == 1
    assert _reexec("c.PRELOAD_ALLOCATORS = {'tcmalloc': (('libm.so.6',), {}, 'tc_malloc')}", GRAPHFUSE_MALLOC="glibc"
                   ).stdout.split()[1:3] == ["None", "None"]


def test_the_real_allocator_is_mapped_after_the_restart():
    """Where tcmalloc or jemalloc is installed: the restarted command runs on it."""
    import pytest

    from graphfuse.cpu_defaults import allocator_preload

    base = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "GRAPHFUSE_MALLOC")}
    plan = allocator_preload(base)
    if plan is None:
        pytest.skip("neither tcmalloc nor jemalloc is installed")
    library = os.path.realpath(plan[1]["LD_PRELOAD"])
    code = ("import graphfuse.cpu_defaults as c; c.reexec_with_allocator(); "
            f"print(sum(line.rstrip().endswith({library!r}) for line in open('/proc/self/maps')), "
            "c.preloaded_allocator(), c.tune_glibc_allocator())")
    out = subprocess.run([sys.executable, "-c", code], env=base, capture_output=True, text=True, check=True)
    mapped, name, tuned = out.stdout.split(maxsplit=2)
    assert int(mapped) > 0 and name == plan[0], out.stderr
    assert tuned.strip() == "[]"  # glibc's malloc is not in use: nothing to tune


def test_a_library_that_did_not_load_leaves_glibc_tuned(monkeypatch):
    """The marker alone (a preload the dynamic loader refused) does not switch glibc's tuning off."""
    from graphfuse import cpu_defaults

    monkeypatch.setenv("GRAPHFUSE_PRELOADED_ALLOCATOR", "tcmalloc")
    monkeypatch.delenv("GRAPHFUSE_MALLOC", raising=False)
    for name in cpu_defaults.CPU_MALLOC_DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    if cpu_defaults.preloaded_allocator() is not None:
        import pytest

        pytest.skip("this test process itself runs on tcmalloc")
    assert cpu_defaults.preloaded_allocator() is None
    if _glibc_with_mallinfo2():
        assert cpu_defaults.tune_glibc_allocator() == list(cpu_defaults.CPU_MALLOC_DEFAULTS)


def test_a_bad_allocator_choice_is_one_line_before_any_work():
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"} | {"GRAPHFUSE_MALLOC": "hoard"}
    run = subprocess.run([sys.executable, "-m", "graphfuse.cli", "fit", "--help"], env=env, capture_output=True,
                         text=True, timeout=120, check=False)
    assert run.returncode == 2 and run.stdout == ""
    assert run.stderr.strip().splitlines() == [
        "graphfuse fit: error: GRAPHFUSE_MALLOC must be one of auto, tcmalloc, jemalloc, glibc, default; got 'hoard'"]
