import pytest

from graphfuse.runs import RunArtifacts, read_metrics_csv, resolve_run_dir


def test_new_runs_get_the_next_free_version(tmp_path):
    assert resolve_run_dir(tmp_path, "a/b", None, resume=False) == tmp_path / "a/b/version_0"
    (tmp_path / "a/b/version_0").mkdir(parents=True)
    (tmp_path / "a/b/version_3").mkdir()
    (tmp_path / "a/b/other").mkdir()
    assert resolve_run_dir(tmp_path, "a/b", None, resume=False) == tmp_path / "a/b/version_4"


def test_existing_run_is_never_overwritten(tmp_path):
    (tmp_path / "r/seed0").mkdir(parents=True)
    (tmp_path / "r/seed0/config.yaml").write_text("x")
    with pytest.raises(FileExistsError, match="never overwritten"):
        resolve_run_dir(tmp_path, "r", "seed0", resume=False)


def test_resume_picks_newest_version_with_a_last_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        resolve_run_dir(tmp_path, "r", None, resume=True)
    for v in ("version_0", "version_1", "version_2"):
        (tmp_path / "r" / v / "checkpoints").mkdir(parents=True)
    (tmp_path / "r/version_0/checkpoints/last.ckpt").write_bytes(b"")
    (tmp_path / "r/version_1/checkpoints/last.ckpt").write_bytes(b"")
    assert resolve_run_dir(tmp_path, "r", None, resume=True) == tmp_path / "r/version_1"
    assert resolve_run_dir(tmp_path, "r", "version_0", resume=True) == tmp_path / "r/version_0"


def test_metrics_csv_and_best_row(tmp_path):
    cb = RunArtifacts(tmp_path, protocol="official")
    cb.rows = [
        {"epoch": 0, "val/top1": 0.5, "train/loss": 2.0, "protocol": "official"},
        {"epoch": 1, "val/top1": 0.7, "train/loss": 1.0, "protocol": "official"},
        {"epoch": 2, "val/top1": 0.7, "train/loss": 0.5, "val/top5": 0.9, "protocol": "official"},
    ]
    cb._write_metrics()
    rows = read_metrics_csv(tmp_path / "metrics.csv")
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    assert rows[2]["val/top5"] == 0.9 and rows[0]["val/top5"] != rows[0]["val/top5"]  # NaN where absent
    assert all(r["protocol"] == "official" for r in rows)
    assert cb.best_row()["epoch"] == 1  # ties keep the earliest epoch, as ModelCheckpoint


def test_unknown_protocol_is_refused(tmp_path):
    with pytest.raises(ValueError, match="protocol"):
        RunArtifacts(tmp_path, protocol="test-selection")
