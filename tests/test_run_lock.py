"""One writer per run directory: the process writing a run holds a lock; a second writer
refuses with one line naming the holder's pid. Real processes, no training."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from graphfuse.cli import main
from graphfuse.runs import RunDirLockedError, lock_run_dir, release_run_locks, run_dir_holder, run_lock_path

pytest.importorskip("fcntl")

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "configs" / "synthetic-ntu" / "shiftgcn" / "quickstart.yaml"


def _holder(run_dir: Path) -> subprocess.Popen:
    """A process that takes the lock of ``run_dir``, says so, and sleeps."""
    code = textwrap.dedent(f"""
        import sys, time
        from graphfuse.runs import lock_run_dir
        lock_run_dir({str(run_dir)!r})
        print("locked", flush=True)
        time.sleep(60)
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "locked"
    return proc


@pytest.fixture
def holder(tmp_path):
    run_dir = tmp_path / "runs" / "study" / "variant" / "seed0"
    proc = _holder(run_dir)
    yield run_dir, proc
    proc.kill()
    proc.wait()


def test_a_second_writer_is_refused_naming_the_holder_pid(holder):
    run_dir, proc = holder
    with pytest.raises(RunDirLockedError) as ei:
        lock_run_dir(run_dir)
    msg = str(ei.value)
    assert "\n" not in msg and str(run_dir) in msg and f"pid {proc.pid} " in msg
    assert run_dir_holder(run_dir).startswith(f"pid {proc.pid} on ")
    assert not run_dir.exists()  # the lock lives beside the run directory, which stays untouched
    # the OS releases the lock when its holder dies, however it dies
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert run_dir_holder(run_dir) is None
    try:
        assert lock_run_dir(run_dir) == run_lock_path(run_dir)
        assert lock_run_dir(run_dir) == run_lock_path(run_dir)  # again in the same process: no-op
        assert f"pid={os.getpid()} " in run_lock_path(run_dir).read_text()
    finally:
        release_run_locks()
    assert run_dir_holder(run_dir) is None


def test_only_ddp_rank_zero_takes_the_lock(holder, monkeypatch):
    run_dir, _ = holder
    monkeypatch.setenv("LOCAL_RANK", "1")  # a rank Lightning started: rank 0 writes the run
    assert lock_run_dir(run_dir) is None


def test_fit_into_a_run_directory_being_written_stops_with_the_pid(holder, synthetic_ntu, capsys):
    run_dir, proc = holder
    rc = main(["fit", "-c", str(QUICKSTART), f"--data.init_args.data_dir={synthetic_ntu}",
               "--data.init_args.synthetic=false", "--trainer.max_epochs=1", "--trainer.limit_train_batches=1",
               "--trainer.limit_val_batches=1", "--trainer.limit_test_batches=1",
               "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
               f"--run.root={run_dir.parents[2]}", "--run.name=study/variant", "--run.version=seed0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err[-1].startswith(f"graphfuse fit: error: run directory {run_dir} is being written by pid {proc.pid} ")
    assert not run_dir.exists()  # nothing written by the refused process
    assert proc.poll() is None


def test_fit_releases_its_lock_when_it_ends(synthetic_ntu, tmp_path):
    assert main(["fit", "-c", str(QUICKSTART), f"--data.init_args.data_dir={synthetic_ntu}",
                 "--data.init_args.synthetic=false", "--data.init_args.clip_len=8", "--trainer.max_epochs=1",
                 "--trainer.limit_train_batches=1", "--trainer.limit_val_batches=1",
                 "--trainer.limit_test_batches=1", "--trainer.enable_progress_bar=false",
                 "--trainer.enable_model_summary=false", f"--run.root={tmp_path}", "--run.name=r"]) == 0
    run_dir = tmp_path / "r" / "version_0"
    assert (run_dir / "summary.json").is_file()
    assert not (run_dir / ".lock").exists() and run_lock_path(run_dir).is_file()
    assert run_dir_holder(run_dir) is None
    # a holder's lock file holds its pid for the message
    assert run_lock_path(run_dir).read_text().startswith(f"pid={os.getpid()} ")
