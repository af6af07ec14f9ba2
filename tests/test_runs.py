import numpy as np
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


# -- test-end outputs: per-class accuracy, the named confusion matrix, the task's own report ----------
def _tester(callbacks):
    import lightning as L

    return L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                     enable_model_summary=False, callbacks=callbacks)


class _ArgmaxNet(__import__("torch").nn.Module):
    """Logits one-hot at class ``x[n, 0, 0, 0, 0]``: the prediction of each sample is set by its input."""

    input_names = ("x",)

    def __init__(self, num_class):
        super().__init__()
        self.num_class = num_class
        self.unused = __import__("torch").nn.Linear(1, 1)

    def forward(self, x):
        import torch

        return 5.0 * torch.nn.functional.one_hot(x[:, 0, 0, 0, 0].long(), self.num_class).float()


def _action_dm(pred, target, class_names):
    import lightning as L
    import torch
    from torch.utils.data import DataLoader

    x = torch.zeros(len(pred), 3, 2, 1, 1)
    x[:, 0, 0, 0, 0] = torch.tensor(pred, dtype=torch.float32)
    rows = [{"x": x[i], "target": torch.tensor(target[i]), "id": torch.tensor(i)} for i in range(len(pred))]

    class DM(L.LightningDataModule):
        def test_dataloader(self):
            return DataLoader(rows, batch_size=4)

        def split_names(self, stage):
            return [f"S001A{i:03d}" for i in range(len(rows))]

        def inference_options(self):
            return {"class_names": class_names}

    return DM()


def test_classification_test_writes_per_class_accuracy_and_named_confusion(tmp_path):
    import json

    from PIL import Image

    from graphfuse.tasks.action import ActionRecognition

    # true:  0 0 0 1 1 2 2 2 2 ; predicted: 0 0 1 1 1 2 2 0 1  (hand-worked below)
    target = [0, 0, 0, 1, 1, 2, 2, 2, 2]
    pred = [0, 0, 1, 1, 1, 2, 2, 0, 1]
    names = ["drink water", "eat meal/snack", "a class name far longer than twenty-eight characters"]
    run = tmp_path / "run"
    _tester([RunArtifacts(run)]).test(ActionRecognition(_ArgmaxNet(3)), datamodule=_action_dm(pred, target, names),
                                      verbose=False)
    summary = json.loads((run / "summary.json").read_text())
    per_class = summary["test"]["per_class"]
    assert [r["class"] for r in per_class] == names
    assert [r["support"] for r in per_class] == [3, 2, 4]
    assert [r["correct"] for r in per_class] == [2, 2, 2]
    assert [r["recall"] for r in per_class] == pytest.approx([2 / 3, 1.0, 0.5])
    assert [r["precision"] for r in per_class] == pytest.approx([2 / 3, 2 / 4, 1.0])
    assert summary["test"]["metrics"]["test/top1"] == pytest.approx(6 / 9)
    assert summary["test"]["num_samples"] == 9 and (run / "scores.npz").is_file()
    with Image.open(run / "confusion_test.png") as im:
        assert im.format == "PNG" and min(im.size) >= 500


def test_confusion_names_fall_back_to_indices_and_scale_to_120_classes(tmp_path):
    from PIL import Image

    from graphfuse.runs import plot_confusion

    rng = np.random.default_rng(0)
    confusion = rng.integers(0, 5, (120, 120)) + np.diag(np.full(120, 30))
    names = [f"action number {i} with a rather long descriptive name" for i in range(120)]
    labels = plot_confusion(tmp_path / "c120.png", confusion, names)
    assert labels[7] == "7: action number 7 with a rath\u2026" and max(len(t) for t in labels) <= 33
    with Image.open(tmp_path / "c120.png") as im:
        w, h = im.size
    assert 2400 <= h <= 3100 and w > h  # ~20 px per class row, plus room for the labels and the colour bar
    assert plot_confusion(tmp_path / "c3.png", np.eye(3, dtype=int), None) == ["0", "1", "2"]


def test_per_class_rows_from_confusion_and_multilabel_scores():
    from graphfuse.runs import multilabel_per_class, per_class_from_confusion

    rows = per_class_from_confusion(np.array([[3, 1, 0], [0, 0, 0], [1, 0, 0]]), None)
    assert [r["class"] for r in rows] == ["0", "1", "2"]
    assert [r["recall"] for r in rows] == [0.75, None, 0.0]  # None: no test sample of the class
    assert [r["precision"] for r in rows] == [0.75, 0.0, None]  # None: never predicted
    with pytest.raises(ValueError, match="square"):
        per_class_from_confusion(np.zeros((2, 3)))
    scores = np.array([[1.0, -1.0], [0.5, 2.0], [-0.2, 0.1], [3.0, 0.0]])
    labels = np.array([[1, 0], [1, 1], [1, -1], [0, 1]])
    rows = multilabel_per_class(scores, labels, ["cat", "dog"])
    assert [(r["class"], r["support"], r["correct"]) for r in rows] == [("cat", 3, 2), ("dog", 2, 2)]
    assert rows[0]["recall"] == pytest.approx(2 / 3) and rows[0]["precision"] == pytest.approx(2 / 3)
    assert rows[1]["precision"] == 1.0  # the difficult (-1) entry predicted on image 2 is not counted


class _ReportingTask(__import__("lightning").LightningModule):
    """A task whose results are no classification scores (as gait's): it logs a metric, keeps
    no scores / confusion, and writes its own report through ``test_report``."""

    def __init__(self, results):
        import torch

        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.results = results
        self.test_results = None
        self.report_dirs = []

    def test_step(self, batch, batch_idx):
        self.log("test/rank1", 0.75)

    def on_test_epoch_end(self):
        self.test_results = self.results

    def test_report(self, run_dir):
        self.report_dirs.append(run_dir)
        (run_dir / "heatmap.png").write_bytes(b"png")
        return {"table": {"NM": [95.0, 96.0]}, "metrics": {"test/mean": 0.5}}


@pytest.mark.parametrize("results", [None, "index only"])
def test_task_test_report_is_merged_and_classification_outputs_skipped(tmp_path, results):
    import json

    import torch
    from torch.utils.data import DataLoader

    results = {"index": torch.arange(3)} if results else None
    task = _ReportingTask(results)
    run = tmp_path / "run"
    _tester([RunArtifacts(run, select="last")]).test(task, dataloaders=DataLoader(torch.zeros(3, 1)), verbose=False)
    assert task.report_dirs == [run]
    test = json.loads((run / "summary.json").read_text())["test"]
    assert test["table"] == {"NM": [95.0, 96.0]}
    assert test["metrics"] == {"test/rank1": 0.75, "test/mean": 0.5}  # merged, not replaced
    assert "per_class" not in test and "scores" not in test
    assert not (run / "scores.npz").exists() and not (run / "confusion_test.png").exists()
    assert (run / "heatmap.png").is_file()


def test_a_report_that_is_no_dict_is_refused(tmp_path):
    import torch
    from torch.utils.data import DataLoader

    task = _ReportingTask(None)
    task.test_report = lambda run_dir: ["not", "a", "dict"]
    with pytest.raises(TypeError, match=r"test_report\(run_dir\) must return a dict, got list"):
        _tester([RunArtifacts(tmp_path)]).test(task, dataloaders=DataLoader(torch.zeros(3, 1)), verbose=False)


def test_multilabel_results_give_per_label_recall_and_a_named_cooccurrence_picture(tmp_path):
    import json
    from types import SimpleNamespace

    import torch

    scores = torch.tensor([[1.0, -1.0], [0.5, 2.0], [-0.2, 0.1], [3.0, 0.0]])
    labels = torch.tensor([[1, 0], [1, 1], [1, -1], [0, 1]])
    module = torch.nn.Linear(1, 1)
    module.test_results = {"index": torch.arange(4), "scores": scores, "labels": labels,
                           "confusion": torch.tensor([[2, 1], [1, 2]])}
    dm = SimpleNamespace(class_names=["cat", "dog"], split_names=lambda stage: ["a.jpg", "b.jpg", "c.jpg", "d.jpg"])
    trainer = SimpleNamespace(is_global_zero=True, callback_metrics={"test/mAP": torch.tensor(0.5)}, ckpt_path=None,
                              datamodule=dm)
    RunArtifacts(tmp_path, monitor="val/mAP").on_test_end(trainer, module)
    test = json.loads((tmp_path / "summary.json").read_text())["test"]
    assert [(r["class"], r["support"], r["correct"]) for r in test["per_class"]] == [("cat", 3, 2), ("dog", 2, 2)]
    assert test["metrics"] == {"test/mAP": 0.5} and test["num_samples"] == 4
    assert (tmp_path / "confusion_test.png").is_file()
    with np.load(tmp_path / "scores.npz") as z:
        assert z["names"].tolist() == ["a.jpg", "b.jpg", "c.jpg", "d.jpg"] and z["labels"].shape == (4, 2)


def test_a_trained_run_records_per_class_accuracy_matching_its_scores(trained_ntu_run):
    """The shared short NTU run (graphfuse fit through the engine): summary.json's per-class rows
    agree with scores.npz; synthetic NTU has no class names, so indices name the classes."""
    import json

    from PIL import Image

    test = json.loads((trained_ntu_run / "summary.json").read_text())["test"]
    with np.load(trained_ntu_run / "scores.npz", allow_pickle=False) as z:
        pred, labels = z["scores"].argmax(1), z["labels"]
    rows = test["per_class"]
    assert [r["class"] for r in rows] == [str(k) for k in range(10)]
    assert [r["support"] for r in rows] == np.bincount(labels, minlength=10).tolist()
    assert [r["correct"] for r in rows] == np.bincount(labels[pred == labels], minlength=10).tolist()
    assert sum(r["correct"] for r in rows) / len(labels) == pytest.approx(test["metrics"]["test/top1"])
    with Image.open(trained_ntu_run / "confusion_test.png") as im:
        assert im.format == "PNG" and min(im.size) >= 500
