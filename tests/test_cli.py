"""The `graphfuse` command end to end on a small synthetic dataset (real files, real model)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from graphfuse.cli import main
from graphfuse.runs import read_metrics_csv

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "configs" / "synthetic-ntu" / "shiftgcn" / "quickstart.yaml"


def _fit_args(data_dir, root, *extra):
    return [
        "fit", "-c", str(QUICKSTART),
        f"--data.init_args.data_dir={data_dir}", "--data.init_args.synthetic=false",
        "--data.init_args.clip_len=16", "--data.init_args.batch_size=10", "--data.init_args.val_fraction=0.2",
        "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
        f"--run.root={root}", "--run.name=tiny", *extra,
    ]


@pytest.fixture
def trained(trained_ntu_run):
    """The session's short training run (tests/conftest.py: 10 epochs, 8-frame clips, batch 8)."""
    return trained_ntu_run


@pytest.mark.slow
def test_fit_writes_the_run_directory(trained, synthetic_ntu):
    for f in ("config.yaml", "metrics.csv", "curves.png", "summary.json", "scores.npz", "confusion_test.png",
              "checkpoints/best.ckpt", "checkpoints/last.ckpt"):
        assert (trained / f).is_file(), f
    assert list(trained.glob("events.out.tfevents.*"))
    summary = json.loads((trained / "summary.json").read_text())
    assert summary["protocol"]["name"] == "holdout"
    assert summary["epochs_trained"] == 10
    rows = read_metrics_csv(trained / "metrics.csv")
    assert [r["epoch"] for r in rows] == list(range(10))
    best = max(rows, key=lambda r: r["val/top1"])
    assert summary["best_epoch"] == best["epoch"]
    assert summary["test"]["epoch"] == best["epoch"]  # test metrics at the selected epoch
    # scores keyed by sample name, covering the whole test split, no pickle needed to read them
    meta = json.loads((Path(synthetic_ntu) / "meta.json").read_text())
    with np.load(trained / "scores.npz", allow_pickle=False) as z:
        assert sorted(z["names"].tolist()) == sorted(meta["splits"]["test"]["samples"])
        assert z["scores"].shape == (40, 10)
        top1 = float((z["scores"].argmax(1) == z["labels"]).mean())
    assert abs(top1 - summary["test"]["metrics"]["test/top1"]) < 1e-6


@pytest.mark.slow
def test_short_training_improves_validation_accuracy(trained):
    rows = read_metrics_csv(trained / "metrics.csv")
    # 10 classes: chance is 0.1. Ten epochs on 48 training samples must learn something.
    assert max(r["val/top1"] for r in rows) >= 0.5
    assert rows[-1]["train/loss"] < rows[0]["train/loss"]


@pytest.mark.slow
def test_test_subcommand_evaluates_inside_the_checkpoint_run(trained):
    config_before = (trained / "config.yaml").read_text()
    summary_before = json.loads((trained / "summary.json").read_text())
    main(["test", "-c", str(trained / "config.yaml"), "--ckpt_path", str(trained / "checkpoints" / "best.ckpt"),
          "--trainer.enable_progress_bar=false"])
    assert (trained / "config.yaml").read_text() == config_before  # never overwritten
    summary = json.loads((trained / "summary.json").read_text())
    assert summary["test"]["metrics"]["test/top1"] == pytest.approx(summary_before["test"]["metrics"]["test/top1"])
    assert not (trained.parent / "version_1").exists()


def test_a_second_fit_gets_a_new_version(synthetic_ntu, tmp_path):
    main(_fit_args(synthetic_ntu, tmp_path, "--trainer.max_epochs=1", "--trainer.limit_train_batches=1",
                   "--run.test_after_fit=false"))
    main(_fit_args(synthetic_ntu, tmp_path, "--trainer.max_epochs=1", "--trainer.limit_train_batches=1",
                   "--run.test_after_fit=false"))
    assert (tmp_path / "tiny" / "version_0" / "config.yaml").is_file()
    assert (tmp_path / "tiny" / "version_1" / "config.yaml").is_file()


@pytest.mark.slow
def test_resume_gives_the_same_result_as_an_uninterrupted_run(synthetic_ntu, tmp_path):
    common = ("--trainer.limit_train_batches=3", "--run.test_after_fit=false", "--model.init_args.milestones=[1]")
    main(_fit_args(synthetic_ntu, tmp_path / "a", "--trainer.max_epochs=3", *common))
    # interrupted after epoch 1, then resumed with --ckpt_path last
    main(_fit_args(synthetic_ntu, tmp_path / "b", "--trainer.max_epochs=1", *common))
    main(_fit_args(synthetic_ntu, tmp_path / "b", "--trainer.max_epochs=3", "--ckpt_path=last", *common))
    run_a, run_b = tmp_path / "a/tiny/version_0", tmp_path / "b/tiny/version_0"
    assert not (tmp_path / "b/tiny/version_1").exists()  # resumed into the same run
    rows_a, rows_b = read_metrics_csv(run_a / "metrics.csv"), read_metrics_csv(run_b / "metrics.csv")
    assert [r["epoch"] for r in rows_b] == [0, 1, 2]
    for ra, rb in zip(rows_a, rows_b):
        for k in ("train/loss", "val/loss", "val/top1"):
            assert ra[k] == pytest.approx(rb[k], rel=1e-5, abs=1e-6), (ra["epoch"], k)
    sa = torch.load(run_a / "checkpoints/last.ckpt", weights_only=True)["state_dict"]
    sb = torch.load(run_b / "checkpoints/last.ckpt", weights_only=True)["state_dict"]
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=1e-5, atol=1e-6, msg=k)


def test_unknown_config_key_is_an_error_naming_the_key(synthetic_ntu, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(_fit_args(synthetic_ntu, tmp_path, "--model.init_args.model.init_args.num_klass=10"))
    assert "num_klass" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    cfg = yaml.safe_load(QUICKSTART.read_text())
    cfg["data"]["init_args"]["batch_sise"] = 4
    bad.write_text(yaml.safe_dump(cfg))
    with pytest.raises(SystemExit):
        main(["fit", "-c", str(bad), f"--run.root={tmp_path}"])
    assert "batch_sise" in capsys.readouterr().err


def test_class_count_mismatch_names_the_key(synthetic_ntu, tmp_path):
    with pytest.raises(ValueError, match="num_class"):
        main(_fit_args(synthetic_ntu, tmp_path, "--model.init_args.num_class=60",
                       "--model.init_args.model.init_args.num_class=60", "--trainer.max_epochs=1"))


def test_official_protocol_is_labelled_everywhere(synthetic_ntu, tmp_path):
    main(_fit_args(synthetic_ntu, tmp_path, "--protocol=official", "--trainer.max_epochs=1",
                   "--trainer.limit_train_batches=1"))
    run = tmp_path / "tiny" / "version_0"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["protocol"]["name"] == "official" and "TEST" in summary["protocol"]["description"]
    assert all(r["protocol"] == "official" for r in read_metrics_csv(run / "metrics.csv"))
    with np.load(run / "scores.npz", allow_pickle=False) as z:
        assert str(z["protocol"]) == "official"
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["protocol"] == "official" and cfg["data"]["init_args"]["val_source"] == "test"


def test_every_shipped_config_parses(capsys):
    # every training config (ablation specs under configs/ablations are not training configs)
    configs = sorted(p for p in (REPO / "configs").rglob("*.yaml") if "ablations" not in p.parts)
    assert len(configs) >= 17
    for cfg in configs:
        with pytest.raises(SystemExit) as exc:
            main(["fit", "-c", str(cfg), "--print_config"])
        assert exc.value.code in (0, None), cfg
        resolved = yaml.safe_load(capsys.readouterr().out)
        task = resolved["model"]["class_path"]
        # num_class is written once, in the prepared data: no config repeats it (the task's
        # rule sets the network's when the classes are instantiated, tests/tasks/test_base.py)
        assert "num_class:" not in cfg.read_text(), cfg
        if task == "graphfuse.tasks.ActionRecognition":
            assert resolved["model"]["init_args"]["num_class"] is None, cfg
        elif task == "graphfuse.tasks.multilabel.MultiLabelRecognition":
            # the number of labels comes from meta.json (no num_class in the config: checked above)
            assert "image_size" in resolved["data"]["init_args"], cfg
        elif task == "graphfuse.tasks.gait.GaitRecognition":
            # iteration-based recipes without a validation split: the last iteration is tested
            assert resolved["run"]["select"] == "last" and resolved["trainer"]["max_steps"] > 0, cfg
            assert resolved["data"]["init_args"]["p"] and resolved["data"]["init_args"]["k"], cfg
        else:
            from graphfuse.tasks import CrossingIntention

            assert task == "graphfuse.tasks.CrossingIntention", cfg
            labels = resolved["data"]["init_args"]["labels"]
            loss = resolved["model"]["init_args"]["loss"]
            size = CrossingIntention.output_size(None, resolved["data"]["init_args"], loss=loss)
            assert size == {"three": 3, "binary": 1 if loss == "bce" else 2}[labels], cfg


def test_prepare_synthetic_and_usage(tmp_path, capsys):
    assert main([]) == 0
    assert "prepare" in capsys.readouterr().out
    assert main(["frobnicate"]) == 2


def test_prepare_ntu_command(synthetic_ntu, tmp_path, capsys):
    out = tmp_path / "prepared"
    assert main(["prepare", "ntu", "--root", str(Path(synthetic_ntu) / "raw"), "--out", str(out),
                 "--benchmark", "synthetic-xsub", "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert "train  60 samples" in printed and "test   40 samples" in printed
    for split in ("train", "test"):
        np.testing.assert_array_equal(np.load(out / f"{split}_joint.npy"),
                                      np.load(Path(synthetic_ntu) / f"{split}_joint.npy"))
    # bad input: one line naming the path, exit status 2, no traceback
    assert main(["prepare", "ntu", "--root", str(tmp_path / "no-such-dir"), "--out", str(tmp_path / "x"),
                 "--benchmark", "ntu60-xsub"]) == 2
    err = capsys.readouterr().err
    assert "no-such-dir" in err and err.startswith("graphfuse prepare: error:") and "Traceback" not in err


def test_every_shipped_study_validates_and_dry_runs(tmp_path, capsys):
    specs = sorted((REPO / "configs" / "ablations").glob("*.yaml"))
    assert len(specs) >= 2
    for spec in specs:  # validation parses every variant's overrides against its base config
        assert main(["ablate", str(spec), "--dry-run", "--root", str(tmp_path)]) == 0, spec
        assert "--run.version=seed0" in capsys.readouterr().out
    assert not list(tmp_path.rglob("summary.json"))  # a dry run runs nothing


@pytest.mark.slow
def test_fit_prints_a_one_line_model_summary_with_the_flops_of_info(synthetic_ntu, tmp_path, caplog):
    import logging
    import warnings

    from graphfuse.info import info_main

    args = [a for a in _fit_args(synthetic_ntu, tmp_path, "--trainer.max_epochs=1", "--trainer.limit_train_batches=1",
                                 "--trainer.limit_val_batches=1", "--trainer.limit_test_batches=1")
            if a != "--trainer.enable_model_summary=false"]
    with caplog.at_level(logging.INFO, logger="lightning.pytorch.utilities.rank_zero"), \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        main(args)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Network ")]
    assert len(lines) == 1, lines
    cost = info_main([str(QUICKSTART)], [f"--data.init_args.data_dir={synthetic_ntu}", "--data.init_args.clip_len=16"])
    from lightning.pytorch.utilities.model_summary.model_summary import get_human_readable_count

    assert lines[0].startswith("Network ShiftGCN: ")
    assert f"{get_human_readable_count(cost.flops)} FLOPs per sample (input [1, 3, 16, 25, 2])" in lines[0]
    assert not [w for w in caught if "LeafSpec" in str(w.message)]
    assert not any("Skipping setting a default `ModelSummary`" in r.getMessage() for r in caplog.records)


def test_prepare_loads_no_torch():
    """``graphfuse prepare`` (and its --help) import no torch: preparation runs where torch is
    slow to import or absent, and its time is the readers' (docs/benchmarks.md, NTU preparation)."""
    import subprocess
    import sys

    code = ("import sys\nfrom graphfuse.cli import main\ntry:\n    main(['prepare', 'ntu', '--help'])\n"
            "except SystemExit:\n    pass\nassert 'torch' not in sys.modules, 'torch was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
