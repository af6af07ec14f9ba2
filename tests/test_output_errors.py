"""A full, read-only or forbidden output directory: one line naming the file, its directory and
what is missing; no temporary left behind; never a SIGBUS from a memory-mapped write.

We run as root in CI containers, where chmod cannot make a directory read-only, so the
failures are simulated by making the system calls fail with the errno a full or read-only
disk gives. One test uses a real tiny tmpfs where ``mount`` is allowed (skipped elsewhere).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import tempfile
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest

from graphfuse import io as gio
from graphfuse.cli import main

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "configs" / "synthetic-ntu" / "shiftgcn" / "quickstart.yaml"
_Usage = namedtuple("_Usage", "total used free")


def _leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in Path(d).rglob("*") if p.name.endswith(".tmp"))


@pytest.fixture
def little_free_space(monkeypatch):
    """The disk holding every output reports 100 KiB free."""
    monkeypatch.setattr(shutil, "disk_usage", lambda p: _Usage(10 << 30, (10 << 30) - (100 << 10), 100 << 10))


def _fail_under(monkeypatch, root: Path, err: int) -> None:
    """Creating directories or files under ``root`` fails with ``err`` (EROFS, EACCES, ...)."""
    root = str(root)
    real_mkstemp, real_mkdir, real_open = tempfile.mkstemp, Path.mkdir, os.open

    def under(p) -> bool:
        return str(os.path.abspath(p)).startswith(root)

    def mkstemp(*a, dir=None, **k):
        if dir is not None and under(dir):
            raise OSError(err, os.strerror(err), str(Path(dir) / "tmpXXXX"))
        return real_mkstemp(*a, dir=dir, **k)

    def mkdir(self, *a, **k):
        if under(self) and not self.is_dir():
            raise OSError(err, os.strerror(err), str(self))
        return real_mkdir(self, *a, **k)

    def os_open(path, flags, *a, **k):
        if under(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(err, os.strerror(err), str(path))
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(gio.tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(Path, "mkdir", mkdir)
    monkeypatch.setattr(os, "open", os_open)


# -- memory maps ------------------------------------------------------------------------------------
def test_memmap_on_a_full_disk_names_the_directory_and_sizes(tmp_path, little_free_space):
    with pytest.raises(gio.OutputError) as ei:
        gio.open_npy_memmap(tmp_path / "train_joint.npy", (100, 3, 300, 25, 2))
    msg = str(ei.value)
    assert "\n" not in msg and str(tmp_path) in msg and "no space left" in msg
    assert "17.2 MiB needed" in msg and "100.0 KiB free" in msg  # 100*3*300*25*2 float32 = 18e6 B
    assert ei.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


def test_memmap_blocks_are_reserved_and_a_failed_reservation_leaves_nothing(tmp_path, monkeypatch):
    arr = gio.open_npy_memmap(tmp_path / "a.npy", (64, 1024))
    st = os.stat(arr.filename)
    assert st.st_blocks * 512 >= st.st_size  # allocated up front, not sparse: writes cannot SIGBUS
    del arr

    def no_space(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(gio.os, "posix_fallocate", no_space)
    with pytest.raises(gio.OutputError, match=r"cannot write .*b\.npy: no space left on the device of"):
        gio.open_npy_memmap(tmp_path / "b.npy", (64, 1024))
    assert not list(tmp_path.glob(".b.npy.*"))


def test_prepare_ntu_on_a_full_disk_is_one_line_and_leaves_no_temporary(synthetic_ntu, tmp_path, capsys,
                                                                          little_free_space):
    out = tmp_path / "prepared"
    rc = main(["prepare", "ntu", "--root", str(Path(synthetic_ntu) / "raw"), "--out", str(out),
               "--benchmark", "synthetic-xsub", "--workers", "1"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.count("\n") == 0 and err.startswith("graphfuse prepare: error: ")
    assert str(out) in err and "no space left" in err and "needed" in err
    assert _leftovers(out) == [] and not (out / "meta.json").exists()


def _can_mount_tmpfs(where: Path) -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)],
                          capture_output=True).returncode == 0


def test_prepare_ntu_on_a_really_full_tmpfs_does_not_die_of_sigbus(synthetic_ntu, tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if not _can_mount_tmpfs(mnt):
        pytest.skip("needs root and mount (a 1 MiB tmpfs)")
    try:
        # 60 train samples need 10.8 MB; the file system has 1 MiB. Before the fix the process
        # died of SIGBUS writing the memory map and left its temporary filling the disk.
        proc = subprocess.run(
            [sys.executable, "-m", "graphfuse.cli", "prepare", "ntu", "--root", str(Path(synthetic_ntu) / "raw"),
             "--out", str(mnt / "out"), "--benchmark", "synthetic-xsub", "--workers", "1"],
            capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
        last = proc.stderr.strip().splitlines()[-1]
        assert "no space left" in last and str(mnt / "out") in last
        assert _leftovers(mnt) == []
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


# -- atomic writers -----------------------------------------------------------------------------------
def test_save_npy_partial_write_without_errno_names_the_file(tmp_path, monkeypatch):
    # numpy's tofile reports a full disk as OSError("N requested and M written"), no errno, no file.
    def partial_save(fh, array):
        fh.write(b"\x93NUMPY")
        raise OSError("1152768 requested and 645088 written")

    monkeypatch.setattr(gio.np, "save", partial_save)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: _Usage(1 << 30, 1 << 30, 0))
    # the failure happens mid-write, after the free-space check
    monkeypatch.setattr(gio, "check_free_space", lambda *a, **k: None, raising=False)
    with pytest.raises(gio.OutputError) as ei:
        gio.save_npy(tmp_path / "split" / "label.npy", np.zeros(10))
    target = tmp_path / "split" / "label.npy"
    assert str(ei.value) == f"cannot write {target}: no space left on the device of {target.parent} (0 bytes free)"
    assert list((tmp_path / "split").iterdir()) == []


def test_save_npy_checks_the_free_space_first(tmp_path, little_free_space):
    with pytest.raises(gio.OutputError,
                       match=r"pose\.npy: no space left .* \(1\.0 MiB needed, 100\.0 KiB free\)"):
        gio.save_npy(tmp_path / "pose.npy", np.zeros(1 << 17))  # 1 MiB of float64
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("err, what", [(errno.EROFS, "is on a read-only file system"),
                                       (errno.EACCES, "permission denied in"),
                                       (errno.ENOSPC, "no space left on the device of"),
                                       (errno.EDQUOT, "disk quota exceeded")])
def test_write_json_translates_the_errno_and_names_the_directory(tmp_path, monkeypatch, err, what):
    out = tmp_path / "ro"
    out.mkdir()
    _fail_under(monkeypatch, out, err)
    with pytest.raises(gio.OutputError) as ei:
        gio.write_json(out / "meta.json", {"a": 1})
    assert ei.value.errno == err
    assert str(ei.value).startswith(f"cannot write {out / 'meta.json'}: ") and what in str(ei.value)
    assert str(out) in str(ei.value)


def test_write_text_enospc_while_writing_removes_the_temporary(tmp_path, monkeypatch):
    real_fsync = os.fsync

    def fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(gio.os, "fsync", fsync)
    with pytest.raises(gio.OutputError, match="no space left"):
        gio.write_text(tmp_path / "report.md", "x" * 100)
    monkeypatch.setattr(gio.os, "fsync", real_fsync)
    assert list(tmp_path.iterdir()) == []


def test_an_oserror_about_another_file_passes_through(tmp_path):
    with pytest.raises(FileNotFoundError) as ei, gio.atomic_path(tmp_path / "out.txt"):
        open(tmp_path / "missing-input.txt")  # reading an input inside the block: not a write failure
    assert not isinstance(ei.value, gio.OutputError)
    assert list(tmp_path.iterdir()) == []


# -- the commands ---------------------------------------------------------------------------------------
def test_prepare_pie_on_a_full_disk_names_the_file(synthetic_pie, tmp_path, capsys, monkeypatch):
    # Before: numpy's errno-less OSError escaped as a traceback naming no file.
    def partial_save(fh, array):
        raise OSError("1152768 requested and 645088 written")

    monkeypatch.setattr(gio.np, "save", partial_save)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: _Usage(1 << 30, 1 << 30, 4096))
    monkeypatch.setattr(gio, "check_free_space", lambda *a, **k: None, raising=False)
    out = tmp_path / "pie"
    raw = Path(synthetic_pie) / "raw"
    rc = main(["prepare", "pie", "--root", str(raw), "--poses", str(raw / "poses"), "--out", str(out),
               "--splits", "test"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0
    assert f"cannot write {out / 'test'}" in err and "no space left" in err
    assert _leftovers(out) == []


def test_prepare_pie_into_a_read_only_directory_is_one_line(synthetic_pie, tmp_path, capsys, monkeypatch):
    out = tmp_path / "ro"
    out.mkdir()
    _fail_under(monkeypatch, out, errno.EROFS)
    raw = Path(synthetic_pie) / "raw"
    rc = main(["prepare", "pie", "--root", str(raw), "--poses", str(raw / "poses"), "--out", str(out / "pie"),
               "--splits", "test"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and "read-only file system" in err and str(out) in err


def test_ensemble_into_a_read_only_directory_is_one_line(tmp_path, capsys, monkeypatch):
    runs = []
    for k in range(2):
        d = tmp_path / f"run{k}"
        d.mkdir()
        np.savez(d / "scores.npz", names=np.asarray(["a", "b"]), scores=np.eye(2, dtype=np.float32),
                 labels=np.asarray([0, 1]), protocol=np.asarray("holdout"))
        runs.append(str(d))
    out = tmp_path / "ro"
    out.mkdir()
    _fail_under(monkeypatch, out, errno.EROFS)
    rc = main(["ensemble", *runs, "--out", str(out / "report")])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.count("\n") == 0 and err.startswith("graphfuse ensemble: error: cannot write ")
    assert "read-only file system" in err and str(out) in err


def test_fit_with_a_read_only_run_root_is_one_line(synthetic_ntu, tmp_path, capsys, monkeypatch):
    root = tmp_path / "ro-runs"
    root.mkdir()
    _fail_under(monkeypatch, root, errno.EROFS)
    rc = main(["fit", "-c", str(QUICKSTART), f"--data.init_args.data_dir={synthetic_ntu}",
               "--data.init_args.synthetic=false", "--trainer.max_epochs=1", "--trainer.limit_train_batches=1",
               "--trainer.limit_val_batches=1", "--trainer.limit_test_batches=1",
               "--trainer.enable_progress_bar=false", f"--run.root={root}", "--run.name=tiny"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err[-1].startswith("graphfuse fit: error: cannot write ") and "read-only file system" in err[-1]
    assert str(root) in err[-1]
