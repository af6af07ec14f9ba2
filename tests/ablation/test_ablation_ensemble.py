"""Ensemble variants of a study: spec validation, fusion of hand-made finished runs, report."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from graphfuse.ablation import runner as runner_mod
from graphfuse.ablation.fusion import fuse_run, missing_members
from graphfuse.ablation.report import collect_study
from graphfuse.ablation.runner import plan_study, read_status, run_study
from graphfuse.ablation.spec import ConfigCheck, EnsembleVariant, SpecError, load_spec, spec_from_dict

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "configs" / "synthetic-ntu" / "shiftgcn" / "quickstart.yaml"
PIE_QUICKSTART = REPO / "configs" / "synthetic-pie" / "pedgraph" / "quickstart.yaml"

VARIANTS = {
    "joint": {},
    "bone": {"model.init_args.lr": 0.05},
    "fused": {"ensemble": {"of": ["joint", "bone"], "weights": [0.6, 0.4]}},
}


def _raw(**changes) -> dict:
    raw = {"name": "ens", "base": str(QUICKSTART), "baseline": "joint", "seeds": [0, 1], "variants": VARIANTS}
    raw.update(changes)
    return raw


# -- spec -------------------------------------------------------------------------------------------------
def test_ensemble_variant_parses_and_round_trips(tmp_path):
    spec = spec_from_dict(_raw(metrics=["test/top1", "test/mean_class", "test/top5"]))
    assert spec.ensembles == {"fused": EnsembleVariant(("joint", "bone"), (0.6, 0.4), False)}
    assert spec.trained_variants() == ["joint", "bone"]
    assert spec.variant_overrides("fused") == {}
    assert spec.variants["fused"] == {"ensemble": {"of": ["joint", "bone"], "weights": [0.6, 0.4], "softmax": False}}
    again = spec_from_dict(yaml.safe_load(yaml.safe_dump(spec.to_dict())))
    assert again.ensembles == spec.ensembles and again.variants == spec.variants
    # weights default to 1 each, as `graphfuse ensemble`
    eq = spec_from_dict(_raw(variants={**VARIANTS, "fused": {"ensemble": {"of": ["joint", "bone"], "softmax": True}}}))
    assert eq.ensembles["fused"] == EnsembleVariant(("joint", "bone"), (1.0, 1.0), True)


@pytest.mark.parametrize(
    "fused, match",
    [
        ({"ensemble": {"of": ["joint", "nope"]}}, "member 'nope' is not a variant"),
        ({"ensemble": {"of": ["joint", "fused"]}}, "cannot be its own member"),
        ({"ensemble": {"of": ["joint", "bone"], "weights": [1.0]}}, "1 weight\\(s\\) for 2 member"),
        ({"ensemble": {"of": ["joint", "bone"], "weights": [1, -1]}}, "weights must be finite, >= 0"),
        ({"ensemble": {"of": ["joint", "bone"], "weights": [0, 0]}}, "not all 0"),
        ({"ensemble": {"of": ["joint", "bone"], "weights": ["a", 1]}}, "list of numbers"),
        ({"ensemble": {"of": ["joint"]}}, "at least two variant names"),
        ({"ensemble": {"of": ["joint", "joint"]}}, "names a variant twice"),
        ({"ensemble": {"of": ["joint", "bone"], "softmax": "yes"}}, "'softmax' must be true or false"),
        ({"ensemble": {"of": ["joint", "bone"], "weight": [1, 1]}}, "unknown key\\(s\\) 'weight'"),
        ({"ensemble": ["joint", "bone"]}, "expected a mapping"),
        (
            {"ensemble": {"of": ["joint", "bone"]}, "trainer.max_epochs": 3},
            "variant 'fused': an ensemble variant trains nothing, so it takes no overrides",
        ),
    ],
)
def test_ensemble_spec_errors(fused, match):
    with pytest.raises(SpecError, match=match):
        spec_from_dict(_raw(variants={**VARIANTS, "fused": fused}))


def test_ensemble_of_an_ensemble_is_refused():
    variants = {**VARIANTS, "fused2": {"ensemble": {"of": ["joint", "fused"]}}}
    with pytest.raises(SpecError, match="member 'fused' is itself an ensemble"):
        spec_from_dict(_raw(variants=variants))


def test_ensembles_of_crossing_intention_runs_are_refused():
    raw = _raw(base=str(PIE_QUICKSTART), variants={"a": {}, "b": {}, "ab": {"ensemble": {"of": ["a", "b"]}}},
               baseline="a")
    with pytest.raises(SpecError, match="ensemble variants support action recognition only"):
        spec_from_dict(raw)


# -- hand-made finished runs -----------------------------------------------------------------------------
# 4 test samples, 6 classes (so test/top5 exists, as for a trained run with more than 5 classes).
NAMES = np.array(["s0", "s1", "s2", "s3"])
LABELS = np.array([0, 1, 2, 3])


def _scores(rows: dict[int, tuple[float, ...]]) -> np.ndarray:
    s = np.zeros((4, 6), np.float32)
    for i, r in rows.items():
        s[i] = r
    return s


# joint: right on s0, s1 (its top-1 0.5); bone: right on s2, s3 (0.5).
JOINT = _scores({0: (5, 0, 0, 0, 0, 0), 1: (0, 5, 0, 0, 0, 0), 2: (0, 0, 1, 3, 0, 0), 3: (0, 0, 0, 1, 2, 0)})
BONE = _scores({0: (0, 0, 0, 0, 0, 4), 1: (0, 2, 0, 0, 0, 4), 2: (0, 0, 6, 0, 0, 0), 3: (0, 0, 0, 4, 0, 0)})
# fused = 0.6 J + 0.4 B:
#   s0: class0 3.0 vs class5 1.6 -> 0 right;  s1: class1 3.0+0.8=3.8 vs class5 1.6 -> right
#   s2: class2 0.6+2.4=3.0 vs class3 1.8 -> right;  s3: class3 0.6+1.6=2.2 vs class4 1.2 -> right
# -> top-1 1.0, mean class 1.0. Seed 1: bone's s3 row (0,0,0,0,0,9) -> fused s3 class5 3.6 > class3 0.6
# -> top-1 0.75, mean class (over the 4 present classes) 0.75; s3's label 3 is in its top 5 -> top-5 1.0.
BONE_SEED1 = BONE.copy()
BONE_SEED1[3] = (0, 0, 0, 0, 0, 9)


def _make_run(run: Path, scores: np.ndarray, params: int = 100, time_s: float = 10.0, names=NAMES) -> None:
    run.mkdir(parents=True)
    np.savez(run / "scores.npz", names=names, scores=scores, labels=LABELS, protocol=np.asarray("holdout"),
             selection=np.asarray("best"))
    pred = scores.argmax(1)
    top1 = float((pred == LABELS).mean())
    (run / "summary.json").write_text(json.dumps({
        "protocol": {"name": "holdout", "description": "selected on validation"},
        "monitor": "val/top1",
        "selection": {"rule": "best", "description": "best epoch on val/top1"},
        "trainable_parameters": params,
        "train_time_s": time_s,
        "best": {"val/top1": 0.5},
        "test": {"metrics": {"test/top1": top1, "test/mean_class": top1, "test/top5": 1.0, "test/loss": 1.0}},
    }))


@pytest.fixture
def study(tmp_path, monkeypatch):
    """Finished joint and bone runs for seeds 0 and 1, bone/seed2 missing; a spec with seeds 0-2."""
    root = tmp_path / "runs"
    d = root / "ens"
    _make_run(d / "joint" / "seed0", JOINT)
    _make_run(d / "bone" / "seed0", BONE, params=200, time_s=20.0)
    _make_run(d / "joint" / "seed1", JOINT)
    _make_run(d / "bone" / "seed1", BONE_SEED1, params=200, time_s=20.0)
    _make_run(d / "joint" / "seed2", JOINT)
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(_raw(seeds=[0, 1, 2], metrics=["test/top1", "test/mean_class", "test/top5"])))
    spec = load_spec(spec_path)
    # No config parsing: the member runs are already on disk (check_config is tested elsewhere).
    fake = {v: ConfigCheck(has_data_seed=True, protocol="holdout", resolved={}) for v in VARIANTS}
    monkeypatch.setattr(runner_mod, "check_config", lambda spec, variants=None: fake)
    return spec, root


def test_fuse_run_writes_a_run_directory_with_the_hand_computed_metrics(study):
    spec, root = study
    summary = fuse_run(spec, root, "fused", 0)
    run = root / "ens" / "fused" / "seed0"
    assert summary["test"]["metrics"] == {"test/top1": 1.0, "test/top5": 1.0, "test/mean_class": 1.0}
    assert json.loads((run / "summary.json").read_text()) == summary
    assert summary["kind"] == "ensemble"
    assert [m["variant"] for m in summary["ensemble"]["members"]] == ["joint", "bone"]
    assert summary["ensemble"]["weights"] == [0.6, 0.4] and summary["ensemble"]["mode"] == "logits"
    assert summary["ensemble"]["members"][0]["metrics"]["test/top1"] == 0.5
    assert summary["selection"]["rule"] == "best"
    assert summary["selection"]["description"].startswith("that of its members")
    assert summary["protocol"]["name"] == "holdout" and summary["monitor"] == "val/top1"
    assert summary["trainable_parameters"] == 300 and summary["train_time_s"] == 30.0
    with np.load(run / "scores.npz", allow_pickle=False) as z:  # the format of a trained run's file
        assert list(z["names"]) == list(NAMES) and list(z["labels"]) == list(LABELS)
        assert z["scores"].dtype == np.float32
        np.testing.assert_allclose(z["scores"], 0.6 * JOINT + 0.4 * BONE, rtol=1e-6)
        assert str(z["protocol"]) == "holdout" and str(z["selection"]) == "best"
    s1 = fuse_run(spec, root, "fused", 1)["test"]["metrics"]
    assert s1 == {"test/top1": 0.75, "test/top5": 1.0, "test/mean_class": 0.75}
    assert missing_members(spec, root, "fused", 2) == ["bone/seed2"]
    with pytest.raises(FileNotFoundError, match="bone/seed2"):
        fuse_run(spec, root, "fused", 2)
    assert not (root / "ens" / "fused" / "seed2").exists()


def test_members_matched_by_sample_id(study):
    spec, root = study
    d = root / "ens"
    # bone/seed0 again, rows in another order: the fusion matches ids, not positions
    import shutil

    shutil.rmtree(d / "bone" / "seed0")
    order = [2, 0, 3, 1]
    _make_run(d / "bone" / "seed0", BONE[order], names=NAMES[order])
    np.savez(d / "bone" / "seed0" / "scores.npz", names=NAMES[order], scores=BONE[order], labels=LABELS[order],
             protocol=np.asarray("holdout"), selection=np.asarray("best"))
    assert fuse_run(spec, root, "fused", 0)["test"]["metrics"]["test/top1"] == 1.0


def test_plan_lists_fuse_steps_and_what_is_not_computable(study, capsys):
    spec, root = study
    plan = {r.key: r for r in plan_study(spec, root, runner_mod.check_config(spec))}
    assert plan["fused/seed0"].action == "fuse" and plan["fused/seed1"].action == "fuse"
    # bone/seed2 is absent, so this invocation would train it, then fuse
    assert plan["bone/seed2"].action == "start"
    assert plan["fused/seed2"].action == "fuse" and "once its members' runs finish" in plan["fused/seed2"].reason
    assert plan["fused/seed0"].command[3:5] == ["ensemble", str((root / "ens" / "joint" / "seed0").resolve())]
    # only the ensemble selected: bone/seed2 will not run, so seed 2 is not computable
    plan = {r.key: r for r in plan_study(spec, root, {}, variants=["fused"])}
    assert list(plan) == ["fused/seed0", "fused/seed1", "fused/seed2"]
    assert plan["fused/seed2"].action == "skip"
    assert plan["fused/seed2"].reason == "not yet computable: member run(s) bone/seed2 not finished"
    res = run_study(spec, root, dry_run=True, variants=["fused"], out=print)
    text = capsys.readouterr().out
    assert "# fused/seed0: fuse (members finished)" in text
    assert "(in-process; equivalent to:)" in text and "ensemble" in text and "--weights 0.6,0.4" in text
    assert "# fused/seed2: skip (not yet computable" in text
    assert res.states["fused/seed0"] == "dry-run"
    assert not (root / "ens" / "fused").exists()


def test_study_fuses_and_the_report_treats_it_as_a_variant(study):
    spec, root = study
    lines: list[str] = []
    res = run_study(spec, root, variants=["fused"], out=lines.append)
    assert res.states == {"fused/seed0": "done", "fused/seed1": "done", "fused/seed2": "not yet computable"}
    d = root / "ens"
    st = read_status(d)["runs"]
    assert st["fused/seed0"]["state"] == "done" and st["fused/seed0"]["action"] == "fuse"
    assert (d / "fused" / "seed1" / "summary.json").is_file()
    assert not (d / "fused" / "seed2").exists()

    rep = collect_study(d)
    fused = rep.variant("fused")
    assert fused.values("test/top1") == {0: 1.0, 1: 0.75}
    mean, std, n = fused.stats["test/top1"]
    assert n == 2 and mean == pytest.approx(0.875) and std == pytest.approx(np.std([1.0, 0.75], ddof=1))
    # against the baseline (joint: 0.5 on seeds 0-2): not the same seeds yet -> Welch
    diff = fused.diffs["test/top1"]
    assert diff.method == "welch" and diff.diff == pytest.approx(0.375)
    by_seed = {r.seed: r for r in fused.runs}
    assert by_seed[2].state == "not yet computable" and "bone/seed2" in by_seed[2].error
    assert fused.params == [300]

    md = (d / "report.md").read_text()
    assert "| fused | 2/3 | 0.8750 ± 0.1768 |" in md
    assert "| fused/seed2 | not yet computable | member run(s) bone/seed2 not finished |" in md
    assert "ensemble (late fusion, no training): 0.6 `joint` + 0.4 `bone` on logits" in md
    rows = {r["variant"]: r for r in csv.DictReader(io.StringIO((d / "report.csv").read_text()))}
    assert float(rows["fused"]["test/top5_mean"]) == 1.0 and rows["fused"]["unfinished_seeds"] == "2"

    # once the missing member finishes, a re-run fuses seed 2 and touches nothing else
    before = (d / "fused" / "seed0" / "summary.json").stat().st_mtime_ns
    _make_run(d / "bone" / "seed2", BONE, params=200, time_s=20.0)
    res = run_study(spec, root, variants=["fused"], out=lines.append, write_report=False)
    assert res.states == {"fused/seed0": "done", "fused/seed1": "done", "fused/seed2": "done"}
    assert (d / "fused" / "seed0" / "summary.json").stat().st_mtime_ns == before
    assert json.loads((d / "fused" / "seed2" / "summary.json").read_text())["test"]["metrics"]["test/top1"] == 1.0
    diff = collect_study(d).variant("fused").diffs["test/top1"]  # same seeds now: paired, d = .5 .25 .5
    assert diff.method == "paired" and diff.diff == pytest.approx(1.25 / 3)


def test_unfusable_members_fail_that_seed_only(study):
    spec, root = study
    d = root / "ens"
    np.savez(d / "bone" / "seed1" / "scores.npz", names=np.array(["x0", "x1", "x2", "x3"]), scores=BONE,
             labels=LABELS, protocol=np.asarray("holdout"))
    res = run_study(spec, root, variants=["fused"], out=lambda s: None, write_report=False)
    assert res.states["fused/seed0"] == "done" and res.states["fused/seed1"] == "failed"
    err = read_status(d)["runs"]["fused/seed1"]["error"]
    assert "scored different samples" in err and "bone/seed1" in err


def test_changed_ensemble_definition_is_refused(study):
    spec, root = study
    run_study(spec, root, variants=["fused"], out=lambda s: None, write_report=False)
    raw = _raw(seeds=[0, 1, 2], variants={**VARIANTS, "fused": {"ensemble": {"of": ["joint", "bone"], "weights": [1, 1]}}})
    with pytest.raises(SpecError, match="variant 'fused' changed"):
        run_study(spec_from_dict(raw), root, variants=["fused"], out=lambda s: None)


def test_check_config_parses_the_members_not_the_ensemble():
    spec = spec_from_dict(_raw())
    from graphfuse.ablation.spec import check_config

    assert set(check_config(spec)) == {"joint", "bone"}
    assert set(check_config(spec, ["fused"])) == {"joint", "bone"}
