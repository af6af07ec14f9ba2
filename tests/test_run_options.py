"""Run options of `graphfuse fit`: the versioned checkpoint block, configurable loggers,
checkpoint selection `last`, iteration-based recipes (checkpoints every N steps, resuming
mid-epoch), and a run directory written before the checkpoint block existed."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from graphfuse.checkpoints import (
    FORMAT_VERSION,
    CheckpointError,
    load_checkpoint,
    read_graphfuse_block,
)
from graphfuse.cli import main
from graphfuse.runs import read_metrics_csv

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "configs" / "synthetic-ntu" / "shiftgcn" / "quickstart.yaml"
#: A run directory written by graphfuse before checkpoints had a `graphfuse` block (commit
#: f763dbc: one epoch of 2 batches of the quickstart, 8-frame clips, batch 8, momentum 0 so
#: that the checkpoint holds no momentum buffers): config.yaml, summary.json, metrics.csv and
#: checkpoints/last.ckpt, as that version wrote them.
PRE_BLOCK_RUN = REPO / "tests" / "data" / "pre_block_run"


def _fit(data_dir, root, *extra):
    return main([
        "fit", "-c", str(QUICKSTART),
        f"--data.init_args.data_dir={data_dir}", "--data.init_args.synthetic=false",
        "--data.init_args.clip_len=8", "--data.init_args.batch_size=8", "--data.init_args.val_fraction=0.2",
        "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
        f"--run.root={root}", "--run.name=tiny", *extra,
    ])


# -- the block -------------------------------------------------------------------------------------
def test_block_of_a_trained_checkpoint_and_csv_logger(synthetic_ntu, tmp_path):
    _fit(synthetic_ntu, tmp_path, "--trainer.max_epochs=1", "--trainer.limit_train_batches=1",
         "--run.test_after_fit=false", "--run.loggers=tensorboard,csv")
    run = tmp_path / "tiny" / "version_0"
    # the default layout plus Lightning's CSV logger in <run>/csv/
    assert (run / "config.yaml").is_file() and list(run.glob("events.out.tfevents.*"))
    assert (run / "csv" / "metrics.csv").is_file()
    assert [r["epoch"] for r in read_metrics_csv(run / "metrics.csv")] == [0]
    for name in ("last.ckpt", "best.ckpt"):
        ckpt = load_checkpoint(run / "checkpoints" / name)  # weights_only=True
        block = read_graphfuse_block(ckpt)
        assert block["format_version"] == FORMAT_VERSION == 1
        assert block["migrated"] is False
        assert block["num_class"] == 10
        assert block["task"].endswith("ActionRecognition") and block["model"].endswith("ShiftGCN")
        config = yaml.safe_load(block["config"])
        assert config["data"]["init_args"]["clip_len"] == 8
        assert config["run"]["loggers"] == "tensorboard,csv"
        data = block["data"]
        assert data["clip_len"] == 8 and data["stream"] == "joint" and data["joint_layout"] == "ntu25"
        assert data["input_names"] == ["x"] and data["input_shapes"]["x"] == [3, 8, 25, 2]
        assert block["class_names"] is None  # synthetic actions carry no NTU names


def test_block_reader_validates_the_version():
    with pytest.raises(CheckpointError, match="newer graphfuse"):
        read_graphfuse_block({"graphfuse": {"format_version": FORMAT_VERSION + 1}})
    with pytest.raises(CheckpointError, match="format_version"):
        read_graphfuse_block({"graphfuse": {"format_version": "1"}})
    with pytest.raises(CheckpointError):
        read_graphfuse_block([1, 2])
    # a format-1 block missing later keys (graphfuse convert before the block held a config)
    block = read_graphfuse_block({"graphfuse": {"format_version": 1, "num_class": 60}})
    assert block["config"] is None and block["data"] == {} and block["num_class"] == 60


def test_ntu_class_names_resource():
    from importlib import resources

    text = resources.files("graphfuse.data").joinpath("resources", "ntu120_classes.txt").read_text("utf-8")
    names = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert len(names) == 120 and len(set(names)) == 120
    assert names[0] == "drink water" and names[59] == "walking apart from each other"
    assert names[119] == "finger-guessing game (playing rock-paper-scissors)"


# -- a run from before the block ---------------------------------------------------------------------
@pytest.mark.slow
def test_a_run_written_before_the_block_resumes_and_tests(synthetic_ntu, tmp_path, capsys):
    run = tmp_path / "old" / "version_0"
    shutil.copytree(PRE_BLOCK_RUN, run)
    old = load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert "graphfuse" not in old
    block = read_graphfuse_block(old)
    assert block["migrated"] is True and block["format_version"] == 1
    assert block["num_class"] == 10 and block["task"] == "graphfuse.tasks.ActionRecognition"
    assert block["data"]["clip_len"] == 8
    # test it inside its own run directory, then resume it for one more epoch
    main(["test", "-c", str(run / "config.yaml"), f"--data.init_args.data_dir={synthetic_ntu}",
          "--ckpt_path", str(run / "checkpoints" / "last.ckpt"), "--trainer.enable_progress_bar=false"])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["test"]["num_samples"] == 40
    main(["fit", "-c", str(run / "config.yaml"), f"--data.init_args.data_dir={synthetic_ntu}",
          "--ckpt_path", str(run / "checkpoints" / "last.ckpt"), "--trainer.max_epochs=2",
          "--trainer.enable_progress_bar=false"])
    assert [r["epoch"] for r in read_metrics_csv(run / "metrics.csv")] == [0, 1]
    new = read_graphfuse_block(load_checkpoint(run / "checkpoints" / "last.ckpt"))
    assert new["migrated"] is False and new["num_class"] == 10
    assert json.loads((run / "summary.json").read_text())["test"]["epoch"] in (0, 1)


# -- loggers -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["mlflow", "wandb"])
def test_a_logger_without_its_package_is_one_clear_error(synthetic_ntu, tmp_path, name):
    if importlib.util.find_spec(name) is not None:
        pytest.skip(f"{name} is installed")
    with pytest.raises(ValueError, match=rf"--run.loggers {name}: the '{name}' package is not installed"):
        _fit(synthetic_ntu, tmp_path, "--trainer.max_epochs=1", f"--run.loggers=tensorboard,{name}")
    assert not (tmp_path / "tiny" / "version_0" / "config.yaml").exists()


def test_an_unknown_logger_is_an_error(synthetic_ntu, tmp_path):
    with pytest.raises(ValueError, match="unknown logger 'comet'"):
        _fit(synthetic_ntu, tmp_path, "--trainer.max_epochs=1", "--run.loggers=[tensorboard, comet]")


# -- selection: last -------------------------------------------------------------------------------------
def test_select_last_tests_the_last_epoch_and_says_so(synthetic_ntu, tmp_path, capsys):
    _fit(synthetic_ntu, tmp_path, "--trainer.max_epochs=2", "--trainer.limit_train_batches=1", "--run.select=last")
    run = tmp_path / "tiny" / "version_0"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["selection"]["rule"] == "last"
    assert "no model selection" in summary["selection"]["description"]
    assert summary["best_epoch"] == 1 and summary["test"]["epoch"] == 1
    best = load_checkpoint(run / "checkpoints" / "best.ckpt")
    last = load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert best["global_step"] == last["global_step"] == 2
    for k in last["state_dict"]:
        torch.testing.assert_close(best["state_dict"][k], last["state_dict"][k])
    with np.load(run / "scores.npz", allow_pickle=False) as z:
        assert str(z["selection"]) == "last"
    assert "the last state trained; no model selection" in capsys.readouterr().out


def test_an_unknown_selection_is_an_error(synthetic_ntu, tmp_path):
    with pytest.raises(ValueError, match="run.select must be one of"):
        _fit(synthetic_ntu, tmp_path, "--trainer.max_epochs=1", "--run.select=worst")


# -- iteration-based recipes -------------------------------------------------------------------------------
@pytest.mark.slow
def test_resuming_mid_epoch_gives_the_uninterrupted_result(synthetic_ntu, tmp_path):
    # 48 training samples, batch 8, drop_last: 6 steps per epoch. Checkpoints every 3 steps.
    common = ("--run.every_n_steps=3", "--run.select=last", "--run.test_after_fit=false",
              "--trainer.max_epochs=-1", "--model.init_args.milestones=[1]")
    _fit(synthetic_ntu, tmp_path / "a", "--trainer.max_steps=15", *common)
    # interrupted at step 9 (epoch 1, batch 3 of 6), resumed from that mid-epoch checkpoint
    _fit(synthetic_ntu, tmp_path / "b", "--trainer.max_steps=9", *common)
    run_b = tmp_path / "b" / "tiny" / "version_0"
    mid = load_checkpoint(run_b / "checkpoints" / "last.ckpt")
    assert mid["global_step"] == 9 and mid["epoch"] == 1
    # resumed with two loader worker processes (what num_workers: auto gives on a GPU): the
    # sampler is positioned when the loader is built, before the workers draw its indices
    _fit(synthetic_ntu, tmp_path / "b", "--trainer.max_steps=15", "--ckpt_path=last",
         "--data.init_args.num_workers=2", *common)
    run_a = tmp_path / "a" / "tiny" / "version_0"
    sa = load_checkpoint(run_a / "checkpoints" / "last.ckpt")
    sb = load_checkpoint(run_b / "checkpoints" / "last.ckpt")
    assert sa["global_step"] == sb["global_step"] == 15
    for k in sa["state_dict"]:
        torch.testing.assert_close(sa["state_dict"][k], sb["state_dict"][k], rtol=1e-5, atol=1e-6, msg=k)
    rows_a, rows_b = read_metrics_csv(run_a / "metrics.csv"), read_metrics_csv(run_b / "metrics.csv")
    assert [r["epoch"] for r in rows_a] == [r["epoch"] for r in rows_b] == [0, 1, 2]
    for ra, rb in zip(rows_a[:2], rows_b[:2]):  # the completed epochs' validation
        for k in ("val/loss", "val/top1"):
            assert ra[k] == pytest.approx(rb[k], rel=1e-5, abs=1e-6), (ra["epoch"], k)


# -- ablation spec ------------------------------------------------------------------------------------------
def test_an_ablation_spec_may_select_last(tmp_path):
    from graphfuse.ablation.runner import build_command
    from graphfuse.ablation.spec import spec_from_dict

    raw = {"name": "s", "base": str(QUICKSTART), "baseline": "b", "variants": {"b": {}}, "select": "last"}
    spec = spec_from_dict(raw, source="study.yaml", spec_dir=tmp_path)
    assert spec.select == {"monitor": "val/top1", "mode": "last"}
    assert "--run.select=last" in build_command(spec, "b", 0, tmp_path)
    default = spec_from_dict({**raw, "select": "best"}, source="study.yaml", spec_dir=tmp_path)
    assert default.select == {"monitor": "val/top1", "mode": "max"}
    assert not any(a.startswith("--run.select") for a in build_command(default, "b", 0, tmp_path))
