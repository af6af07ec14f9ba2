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


def test_select_epoch_reports_ties_and_keeps_the_first():
    from graphfuse.runs import select_epoch, tie_text

    rows = [{"epoch": e, "val/top1": v} for e, v in enumerate([0.5, 0.7, 0.6, 0.6, 0.6, 0.8, 0.8, 0.75, 0.8])]
    best, tied = select_epoch(rows, "val/top1")
    assert best["epoch"] == 5 and tied == [6, 8]
    assert tie_text(best["epoch"], tied) == "5 (tied with epochs 6, 8; the first is kept)"
    assert tie_text(1, [3]) == "1 (tied with epoch 3; the first is kept)"
    assert tie_text(5, []) == "5"
    best, tied = select_epoch(rows, "val/top1", select="last")
    assert best["epoch"] == 8 and tied == []
    nan = float("nan")
    assert select_epoch([{"epoch": 0, "val/top1": nan}, {"epoch": 1, "val/top1": 0.2}], "val/top1") == (
        {"epoch": 1, "val/top1": 0.2}, [])
    assert select_epoch([], "val/top1") == (None, [])


def test_curves_mark_the_selected_epoch(tmp_path):
    cb = RunArtifacts(tmp_path)
    cb.rows = [
        {"epoch": e, "val/top1": v, "train/top1": v, "train/loss": 1.0 / (e + 1), "val/loss": 1.0, "protocol": "holdout"}
        for e, v in enumerate([0.5, 0.75, 0.75, 0.6])
    ]
    marker = cb._plot_curves()
    assert (tmp_path / "curves.png").stat().st_size > 0
    assert marker == {"x": 1, "label": "selected: epoch 1 (val/top1 = 0.75)"}
    last = RunArtifacts(tmp_path / "last", select="last")
    last.rows = cb.rows
    assert last._plot_curves() == {"x": 3, "label": "last epoch (3)"}


def test_printed_summary_names_tied_epochs(tmp_path, capsys):
    import json

    from graphfuse.engine import _print_summary

    (tmp_path / "summary.json").write_text(json.dumps(
        {"best_epoch": 5, "tied_epochs": [6, 8], "test": {"metrics": {"test/top1": 0.5}}}))
    _print_summary(tmp_path, "holdout")
    out = capsys.readouterr().out
    assert "Test metrics at epoch 5 (tied with epochs 6, 8; the first is kept) (selected on validation):" in out
    (tmp_path / "summary.json").write_text(json.dumps({"best_epoch": 5, "test": {"metrics": {}}}))
    _print_summary(tmp_path, "holdout")
    assert "Test metrics at epoch 5 (selected on validation):" in capsys.readouterr().out


def test_progress_bar_drops_v_num_only():
    from types import SimpleNamespace

    from lightning.pytorch.loggers import CSVLogger

    from graphfuse.engine import GraphfuseProgressBar

    trainer = SimpleNamespace(loggers=[CSVLogger("unused", version="version_0")],
                              progress_bar_metrics={"train/loss": 0.25})
    items = GraphfuseProgressBar().get_metrics(trainer, None)
    assert items == {"train/loss": 0.25}


def test_tip_filter_drops_only_package_tips(caplog):
    import logging

    from graphfuse.engine import install_tip_filter

    install_tip_filter()
    install_tip_filter()  # idempotent
    log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    assert sum(type(f).__name__ == "_DropPackageTips" for f in log.filters) == 1
    with caplog.at_level(logging.INFO, logger="lightning.pytorch.utilities.rank_zero"):
        log.info("💡 Tip: For seamless cloud logging ... try installing [litlogger](https://pypi.org/project/litlogger/)")
        log.info("GPU available: False")
    assert [r.getMessage() for r in caplog.records] == ["GPU available: False"]
