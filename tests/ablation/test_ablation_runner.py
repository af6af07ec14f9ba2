"""`graphfuse ablate` end to end on a tiny study: real `graphfuse fit` processes on the
synthetic NTU fixture (one training batch per run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from graphfuse.ablation import ablate_main, report_main
from graphfuse.ablation.runner import read_status, run_study
from graphfuse.ablation.spec import load_spec
from graphfuse.runs import read_metrics_csv

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "configs" / "synthetic-ntu" / "shiftgcn" / "quickstart.yaml"

pytestmark = pytest.mark.slow  # real `graphfuse fit` processes


def _write_spec(path: Path, data_dir: Path, variants: dict, seeds=(0, 1), name="tiny") -> Path:
    spec = {
        "name": name,
        "base": str(QUICKSTART),
        "baseline": "baseline",
        "seeds": list(seeds),
        "metrics": ["test/top1", "val/top1"],
        "overrides": {
            "data.init_args.data_dir": str(data_dir),
            "data.init_args.synthetic": False,
            "data.init_args.clip_len": 8,
            "data.init_args.batch_size": 10,
            "data.init_args.val_fraction": 0.2,
            "trainer.max_epochs": 1,
            "trainer.limit_train_batches": 1,
            "trainer.limit_val_batches": 1,
            "trainer.limit_test_batches": 1,
            "trainer.enable_model_summary": False,
        },
        "variants": variants,
    }
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def study(synthetic_ntu, tmp_path_factory):
    """Spec seeds 0, 1. First invocation: seed 0 of baseline, lr and a variant whose value fails
    when the run starts (clip_len 0 parses as an int, the datamodule refuses it), 2 at a time.
    Second: baseline seed 1 (four `graphfuse fit` processes in all, to keep the test short)."""
    tmp = tmp_path_factory.mktemp("ablate")
    spec_path = _write_spec(
        tmp / "spec.yaml",
        synthetic_ntu,
        {
            "baseline": {},
            "lr": {"model.init_args.lr": 0.05},
            "broken": {"data.init_args.clip_len": 0},
        },
    )
    lines: list[str] = []
    spec = load_spec(spec_path)
    result = run_study(spec, tmp / "runs", jobs=2, seeds=[0], first_alone=False, out=lines.append)
    result1 = run_study(spec, tmp / "runs", variants=["baseline"], seeds=[1], out=lines.append)
    return {
        "spec": spec_path,
        "root": tmp / "runs",
        "dir": tmp / "runs" / "tiny",
        "result": result,
        "result1": result1,
        "lines": lines,
    }


def test_failure_is_recorded_and_the_study_goes_on(study):
    assert study["result"].states == {"baseline/seed0": "done", "lr/seed0": "done", "broken/seed0": "failed"}
    assert study["result1"].states == {"baseline/seed1": "done"}
    status = read_status(study["dir"])["runs"]
    entry = status["broken/seed0"]
    assert entry["state"] == "failed" and entry["returncode"] != 0
    assert "clip_len must be >= 1" in entry["error"]
    assert "clip_len must be >= 1" in Path(entry["log"]).read_text()
    assert status["baseline/seed0"]["state"] == "done" and status["baseline/seed1"]["state"] == "done"
    assert any("failed broken/seed0" in line for line in study["lines"])


def test_runs_live_in_the_design_run_directories_and_are_paired_by_seed(study):
    d = study["dir"]
    loss = {}
    for variant, seed in (("baseline", 0), ("lr", 0), ("baseline", 1)):
        run = d / variant / f"seed{seed}"
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        assert cfg["seed_everything"] == seed and cfg["data"]["init_args"]["seed"] == seed
        assert cfg["run"]["name"] == f"tiny/{variant}" and cfg["run"]["version"] == f"seed{seed}"
        summary = json.loads((run / "summary.json").read_text())
        assert summary["test"]["metrics"]["test/top1"] >= 0
        loss[variant, seed] = read_metrics_csv(run / "metrics.csv")[0]["train/loss"]
    # One training batch: its loss is computed before the first update, so it depends only on
    # the initialisation and the batch. Same seed -> same init and data in both variants
    # (only the learning rate differs); another seed -> another init and batch.
    assert loss["baseline", 0] == loss["lr", 0]
    assert loss["baseline", 0] != loss["baseline", 1]
    lr = {
        v: yaml.safe_load((d / v / "seed0" / "config.yaml").read_text())["model"]["init_args"]["lr"]
        for v in ("baseline", "lr")
    }
    assert lr == {"baseline": 0.025, "lr": 0.05}


def test_report_written_at_the_end(study):
    d = study["dir"]
    for f in ("report.md", "report.csv", "val_curves.png", "bars.png", "study.yaml", "status.json"):
        assert (d / f).is_file(), f
    md = (d / "report.md").read_text()
    assert "| broken/seed0 | failed | ValueError" in md and "clip_len must be >= 1" in md
    assert "| **baseline** (baseline) | 2/2 |" in md and "| lr | 1/2 |" in md
    assert "| lr/seed1 | missing |" in md  # a spec seed that has not run yet


def test_second_invocation_runs_nothing_new(study, capsys):
    d = study["dir"]
    before = {p: p.stat().st_mtime_ns for p in d.glob("*/seed*/summary.json")}
    started = {k: v["started"] for k, v in read_status(d)["runs"].items()}
    rc = ablate_main([str(study["spec"]), "--root", str(study["root"]), "--jobs", "2", "--seeds", "0"])
    out = capsys.readouterr().out
    assert rc == 1  # the failed run is still failed (and not retried without --retry-failed)
    assert "3 runs (3 skip)" in out
    assert " start " not in out and " resume " not in out
    assert {p: p.stat().st_mtime_ns for p in d.glob("*/seed*/summary.json")} == before
    assert {k: v["started"] for k, v in read_status(d)["runs"].items()} == started


def test_dry_run_plans_resume_restart_and_retry(study, capsys, tmp_path):
    import shutil

    root = tmp_path / "runs"  # a copy, so that the other tests keep theirs
    shutil.copytree(study["root"], root)
    d = root / "tiny"
    # an interrupted run that has a checkpoint: its summary has no test metrics yet
    summary = json.loads((d / "baseline" / "seed1" / "summary.json").read_text())
    summary.pop("test")
    (d / "baseline" / "seed1" / "summary.json").write_text(json.dumps(summary))
    # a run killed in its first epoch: a directory without a checkpoint
    shutil.rmtree(d / "lr" / "seed0" / "checkpoints")
    (d / "lr" / "seed0" / "summary.json").unlink()
    assert ablate_main([str(study["spec"]), "--root", str(root), "--dry-run", "--retry-failed"]) == 0
    out = capsys.readouterr().out
    assert "# baseline/seed1: resume" in out
    resume_line = out.split("# baseline/seed1: resume")[1].splitlines()[1]
    assert resume_line.endswith("--run.version=seed1 --ckpt_path=last")
    assert "# lr/seed0: start (unfinished without a checkpoint; set aside and restarted)" in out
    assert "# broken/seed0: start" in out and "# baseline/seed0: skip (finished)" in out
    assert "# lr/seed1: start (new)" in out
    assert (d / "lr" / "seed0").is_dir()  # a dry run moves nothing
    assert not (d / "_attempts").exists()


def test_spec_error_stops_before_anything_runs(study, tmp_path, capsys):
    spec = _write_spec(tmp_path / "bad.yaml", tmp_path, {"baseline": {}, "x": {"model.init_args.lrr": 1.0}})
    assert ablate_main([str(spec), "--root", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert "variant 'x'" in err and "'model.init_args.lrr' does not exist" in err
    assert not (tmp_path / "runs").exists()
    # changing a variant that already has runs would mix two experiments in one table
    spec = _write_spec(
        tmp_path / "changed.yaml",
        Path(yaml.safe_load(study["spec"].read_text())["overrides"]["data.init_args.data_dir"]),
        {"baseline": {}, "lr": {"model.init_args.lr": 0.1}, "broken": {"data.init_args.clip_len": 0}},
    )
    assert ablate_main([str(spec), "--root", str(study["root"]), "--dry-run"]) == 2
    assert "variant 'lr' changed" in capsys.readouterr().err


def test_launcher_submits_and_report_collects(synthetic_ntu, tmp_path, capsys):
    spec = _write_spec(tmp_path / "spec.yaml", synthetic_ntu, {"baseline": {}}, seeds=(0,), name="launched")
    # A launcher that only records the submission (as `sbatch` returns before the job runs).
    launcher = "echo {job_name} {args} > {log}.submitted"
    assert ablate_main([str(spec), "--root", str(tmp_path / "runs"), "--launcher", launcher]) == 0
    d = tmp_path / "runs" / "launched"
    entry = read_status(d)["runs"]["baseline/seed0"]
    assert entry["state"] == "submitted"
    submitted = Path(entry["log"]).with_suffix("").with_suffix(".log.submitted")
    assert submitted.read_text().startswith("launched-baseline-seed0 fit -c ")
    capsys.readouterr()
    # not resubmitted while it may still be queued
    assert (
        ablate_main([str(spec), "--root", str(tmp_path / "runs"), "--launcher", launcher, "--dry-run"]) == 0
    )
    assert "# baseline/seed0: skip (submitted" in capsys.readouterr().out
    assert report_main([str(d)]) == 0
    assert "| baseline/seed0 | submitted |" in capsys.readouterr().out
