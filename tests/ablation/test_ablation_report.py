"""`graphfuse report` on hand-made run directories: values, intervals, marks, failures, plots."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import yaml

from graphfuse.ablation import report_main
from graphfuse.ablation.report import collect_study, write_report

# test/top1 per seed (hand-chosen); params and train time per variant
TOP1 = {
    "base": {0: 0.78, 1: 0.81, 2: 0.80},
    "same": {0: 0.80, 1: 0.82, 2: 0.85},  # d = .02 .01 .05 -> paired CI contains 0
    "better": {0: 0.88, 1: 0.92, 2: 0.92},  # d = .10 .11 .12 -> paired CI excludes 0
    "partial": {0: 0.70, 1: 0.74},  # seed 2 failed -> Welch
}
PARAMS = {"base": 1000, "same": 1000, "better": 1500, "partial": 900}


def _make_run(run: Path, top1: float, params: int, time_s: float, val: list[float]) -> None:
    run.mkdir(parents=True)
    best = max(range(len(val)), key=lambda e: val[e])
    (run / "summary.json").write_text(
        json.dumps(
            {
                "protocol": {"name": "holdout", "description": "..."},
                "monitor": "val/top1",
                "trainable_parameters": params,
                "epochs_trained": len(val),
                "best_epoch": best,
                "best": {"val/top1": val[best], "val/loss": 1.0 - val[best]},
                "train_time_s": time_s,
                "test": {"metrics": {"test/top1": top1, "test/loss": 0.5}, "epoch": best},
            }
        )
    )
    lines = ["epoch,train/loss,val/loss,val/top1,protocol"]
    lines += [f"{e},{2.0 - v},{1.0 - v},{v},holdout" for e, v in enumerate(val)]
    (run / "metrics.csv").write_text("\n".join(lines) + "\n")


@pytest.fixture
def study_dir(tmp_path):
    d = tmp_path / "runs" / "hand"
    for variant, by_seed in TOP1.items():
        for seed, v in by_seed.items():
            _make_run(
                d / variant / f"seed{seed}",
                v,
                PARAMS[variant],
                10.0 + seed,
                [0.3 + 0.1 * seed, 0.5 + 0.1 * seed, v - 0.05],
            )
    (d / "partial" / "seed2").mkdir()  # a failed run left its config behind
    (d / "partial" / "seed2" / "config.yaml").write_text("seed_everything: 2\n")
    spec = {
        "name": "hand",
        "description": "hand-made study",
        "base": "/x/base.yaml",
        "baseline": "base",
        "seeds": [0, 1, 2],
        "metrics": ["test/top1", "val/top1"],
        "overrides": {"trainer.max_epochs": 3},
        "variants": {
            "base": {},
            "same": {"model.init_args.lr": 0.05},
            "better": {"a.b": 1},
            "partial": {"c": 2},
        },
    }
    (d / "study.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    (d / "status.json").write_text(
        json.dumps(
            {
                "runs": {
                    "partial/seed2": {
                        "state": "failed",
                        "error": "RuntimeError: out of memory",
                        "log": "/x/partial/seed2.log",
                    }
                }
            }
        )
    )
    return d


def _rows(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as fh:
        return {r["variant"]: r for r in csv.DictReader(fh)}


def test_report_numbers(study_dir):
    paths = write_report(study_dir)
    rows = _rows(paths["csv"])
    assert list(rows) == ["base", "same", "better", "partial"]
    b = rows["base"]
    assert b["is_baseline"] == "True" and b["n"] == "3" and b["test/top1_diff"] == ""
    assert float(b["test/top1_mean"]) == pytest.approx(0.7966667, abs=1e-7)
    # sample std of .78 .81 .80: sqrt(4.6667e-4 / 2)
    assert float(b["test/top1_std"]) == pytest.approx(0.0152753, abs=1e-7)
    s = rows["same"]
    assert s["test/top1_test"] == "paired" and float(s["test/top1_df"]) == 2
    assert float(s["test/top1_diff"]) == pytest.approx(0.0266667, abs=1e-7)
    assert (float(s["test/top1_ci_low"]), float(s["test/top1_ci_high"])) == (
        pytest.approx(-0.0250448, abs=1e-6),
        pytest.approx(0.0783778, abs=1e-6),
    )
    assert s["test/top1_ci_contains_zero"] == "True"
    g = rows["better"]
    assert (float(g["test/top1_ci_low"]), float(g["test/top1_ci_high"])) == (
        pytest.approx(0.0851586, abs=1e-6),
        pytest.approx(0.1348414, abs=1e-6),
    )
    assert g["test/top1_ci_contains_zero"] == "False" and g["trainable_parameters"] == "1500"
    p = rows["partial"]
    # Welch: s_a^2/n_a = .0008/2 = 4e-4, s_b^2/n_b = 2.3333e-4/3 = 7.7778e-5, se = .0218581,
    # df = (4.77778e-4)^2 / ((4e-4)^2/1 + (7.7778e-5)^2/2) = 1.400230
    assert p["test/top1_test"] == "welch" and p["n"] == "2" and p["failed_seeds"] == "2"
    assert float(p["test/top1_diff"]) == pytest.approx(-0.0766667, abs=1e-7)
    assert float(p["test/top1_df"]) == pytest.approx(1.400230, abs=1e-5)
    assert float(rows["same"]["train_time_s_mean"]) == pytest.approx(11.0)
    # val/top1 comes from the selected epoch's row of each run
    assert float(rows["base"]["val/top1_mean"]) == pytest.approx(
        (max(0.3, 0.5, 0.73) + max(0.4, 0.6, 0.76) + max(0.5, 0.7, 0.75)) / 3
    )


def test_report_markdown_and_plots(study_dir):
    paths = write_report(study_dir)
    md = paths["md"].read_text()
    assert "hand-made study" in md
    assert "| **base** (baseline) | 3/3 | 0.7967 ± 0.0153 | — |" in md
    assert "| same | 3/3 | 0.8233 ± 0.0252 | +0.0267 [-0.0250, +0.0784] ~ | paired t | 1,000 | 11.0 |" in md
    assert "| better | 3/3 | 0.9067 ± 0.0231 | +0.1100 [+0.0852, +0.1348] | paired t | 1,500 | 11.0 |" in md
    assert "| partial | 2/3 |" in md and "Welch (df 1.4)" in md
    assert "| partial/seed2 | failed | RuntimeError: out of memory | /x/partial/seed2.log |" in md
    assert "All variants: `trainer.max_epochs=3`" in md and "- `same`: `model.init_args.lr=0.05`" in md
    for key in ("curves", "bars"):
        assert paths[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_without_study_file(study_dir, capsys):
    (study_dir / "study.yaml").unlink()
    (study_dir / "status.json").unlink()
    rep = collect_study(study_dir, baseline="base")
    assert [v.name for v in rep.variants] == ["base", "better", "partial", "same"]
    partial = rep.variant("partial")
    assert [r.state for r in partial.runs] == ["done", "done", "unfinished"]
    assert rep.variant("same").diffs["test/top1"].method == "paired"
    assert report_main([str(study_dir), "--baseline", "base", "--metrics", "test/top1", "--no-plots"]) == 0
    assert "0.7967 ± 0.0153" in capsys.readouterr().out
    assert report_main([str(study_dir)]) == 2  # no study.yaml, no variant named 'baseline'
    assert "--baseline" in capsys.readouterr().err


def test_missing_baseline_runs_give_no_difference(study_dir):
    import shutil

    shutil.rmtree(study_dir / "base")
    rows = _rows(write_report(study_dir, plots=False)["csv"])
    assert rows["base"]["n"] == "0" and rows["same"]["test/top1_diff"] == ""
    assert math.isclose(float(rows["same"]["test/top1_mean"]), (0.80 + 0.82 + 0.85) / 3)


def test_official_protocol_runs_are_flagged(study_dir):
    path = study_dir / "better" / "seed1" / "summary.json"
    summary = json.loads(path.read_text())
    summary["protocol"] = {"name": "official", "description": "selection on the TEST split"}
    path.write_text(json.dumps(summary))
    paths = write_report(study_dir, plots=False)
    md = paths["md"].read_text()
    assert "**OFFICIAL PROTOCOL in some runs" in md and "(variants: better)" in md
    assert _rows(paths["csv"])["better"]["protocol"] == "holdout official"
