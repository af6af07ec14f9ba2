"""`graphfuse ablate`'s runs die with it, and it never touches a run directory another process
is still writing. Real processes (sleepers standing in for `graphfuse fit`), no training."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from graphfuse.ablation import runner

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper that is not us counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def _wait_file(path: Path, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.05)
    raise AssertionError(f"{path} never written")


@pytest.mark.slow
def test_a_sigkilled_ablate_takes_its_running_run_along(tmp_path):
    """An ablate-like parent runs one (variant, seed) through the runner's executor, whose command
    is a sleeper that records its pid; SIGKILL the parent: the sleeper must be gone within
    seconds (before: it was orphaned and went on writing into the run directory)."""
    pid_file = tmp_path / "child.pid"
    parent_code = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from types import SimpleNamespace
        from graphfuse.ablation.runner import PlannedRun, _Executor, _Status

        study = Path({str(tmp_path / "study")!r})
        spec = SimpleNamespace(name="study", path=None)
        sleeper = [sys.executable, "-c",
                   "import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(120)"]
        run = PlannedRun("base", 0, study / "base" / "seed0", "start", "new", sleeper,
                         study / "_logs" / "base" / "seed0.log")
        ex = _Executor(spec, study, _Status(study, spec), env=dict(__import__("os").environ), out=print)
        ex.execute(run)
    """)
    parent = subprocess.Popen([sys.executable, "-c", parent_code])
    try:
        child = int(_wait_file(pid_file))
        assert _alive(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child), "the run outlived a SIGKILLed graphfuse ablate"
    finally:
        parent.kill()
        if pid_file.is_file():
            try:
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_a_child_whose_parent_died_before_prctl_exits_at_once(monkeypatch):
    # The race: the parent dies between fork and prctl, so no death signal will ever come; the
    # child sees another parent pid than the one recorded and exits instead of running on.
    real_getpid = os.getpid
    monkeypatch.setattr(runner.os, "getpid", lambda: 1)  # the "parent" recorded before the fork
    preexec = runner._pdeathsig_preexec()
    monkeypatch.setattr(runner.os, "getpid", real_getpid)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], preexec_fn=preexec)
    try:
        assert proc.wait(timeout=20) == 1
    finally:
        proc.kill()


def test_spawned_runs_get_a_process_group_of_their_own(tmp_path):
    proc = runner.spawn_child([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert os.getpgid(proc.pid) == proc.pid != os.getpgid(0)
        runner._signal_group(proc, signal.SIGTERM)
        assert proc.wait(timeout=20) == -signal.SIGTERM
    finally:
        proc.kill()


@pytest.mark.slow
def test_a_run_directory_another_process_writes_is_not_touched(tmp_path):
    from graphfuse.ablation.runner import PlannedRun, _Executor, _Status
    from types import SimpleNamespace

    study = tmp_path / "study"
    run_dir = study / "base" / "seed0"
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.csv").write_text("epoch\n0\n")  # partial: would be set aside and restarted
    code = ("import time; from graphfuse.runs import lock_run_dir; "
            f"lock_run_dir({str(run_dir)!r}); print('locked', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        spec = SimpleNamespace(name="study", path=None)
        lines: list[str] = []
        ex = _Executor(spec, study, _Status(study, spec), env=dict(os.environ), out=lines.append)
        run = PlannedRun("base", 0, run_dir, "start", "partial", [sys.executable, "-c", "pass"],
                         study / "_logs" / "base" / "seed0.log", move_aside=True)
        assert ex.execute(run) == "failed"
        assert f"is being written by pid {holder.pid} " in lines[-1]
        assert (run_dir / "metrics.csv").is_file()  # not moved aside under the writer's feet
        assert runner.read_status(study)["runs"]["base/seed0"]["state"] == "failed"
    finally:
        holder.kill()
        holder.wait()
