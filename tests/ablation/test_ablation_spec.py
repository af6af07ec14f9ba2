"""Ablation spec: structure and config validation before anything runs; commands; launcher lines."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

from graphfuse.ablation.runner import build_command, check_launcher, format_launcher, plan_study
from graphfuse.ablation.spec import SpecError, check_config, load_spec

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "configs" / "synthetic-ntu" / "shiftgcn" / "quickstart.yaml"


def _spec(tmp_path: Path, **changes) -> Path:
    raw = {
        "name": "unit",
        "base": str(QUICKSTART),
        "baseline": "baseline",
        "variants": {"baseline": {}, "lr": {"model.init_args.lr": 0.05}},
    }
    raw.update(changes)
    p = tmp_path / "spec.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


def test_defaults_and_base_relative_to_the_spec_file(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "base.yaml").write_text(QUICKSTART.read_text())
    spec = load_spec(_spec(tmp_path, base="sub/base.yaml"))
    assert spec.base == (tmp_path / "sub" / "base.yaml").resolve()
    assert spec.seeds == [0, 1, 2]
    assert spec.metrics == ["test/top1", "test/mean_class"]
    assert spec.select == {"monitor": "val/top1", "mode": "max"}
    assert spec.ordered_variants() == ["baseline", "lr"]


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"seedz": [0]}, "unknown key.*'seedz'"),
        ({"baseline": "nope"}, "baseline 'nope' is not one of the variants"),
        ({"variants": {"baseline": {}, "bad/name": {}}}, "variant name 'bad/name'"),
        (
            {"variants": {"baseline": {"seed_everything": 3}}},
            "variant 'baseline'.*'seed_everything' is set by",
        ),
        ({"variants": {"baseline": {"run.name": "x"}}}, "'run.name' is set by"),
        (
            {"overrides": {"data.init_args.seed": 1}},
            "overrides \\(common to all variants\\).*data.init_args.seed",
        ),
        ({"variants": {"baseline": {"--trainer.max_epochs": 1}}}, "without leading dashes"),
        ({"seeds": [0, 0]}, "seeds repeat"),
        ({"seeds": [0, -1]}, "seed -1"),
        ({"seeds": 3}, "list of seeds"),
        ({"metrics": ["top1"]}, "metric 'top1'"),
        ({"select": {"monitor": "val/loss", "mode": "min"}}, "not supported"),
        ({"base": "no/such/config.yaml"}, "base config 'no/such/config.yaml' not found"),
    ],
)
def test_structural_errors_name_the_key(tmp_path, changes, match):
    with pytest.raises(SpecError, match=match):
        load_spec(_spec(tmp_path, **changes))


def test_missing_required_key_and_bad_yaml(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("name: x\nbase: a.yaml\nvariants: {a: {}}\n")
    with pytest.raises(SpecError, match="missing required key 'baseline'"):
        load_spec(p)
    p.write_text("name: [x\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(p)


def test_override_of_a_nonexistent_key_names_variant_and_key(tmp_path):
    spec = load_spec(
        _spec(
            tmp_path,
            variants={
                "baseline": {},
                "lr": {"model.init_args.lr": 0.05},
                "typo": {"data.init_args.clip_len": 32, "model.init_args.model.init_args.num_klass": 10},
            },
        )
    )
    with pytest.raises(SpecError) as e:
        check_config(spec)
    msg = str(e.value)
    assert "variant 'typo'" in msg and "'model.init_args.model.init_args.num_klass' does not exist" in msg
    # a top-level key that does not exist, in the common overrides
    spec = load_spec(_spec(tmp_path, overrides={"trainer.max_epochz": 1}))
    with pytest.raises(
        SpecError, match=r"overrides \(common to all variants\).*'trainer.max_epochz' does not exist"
    ):
        check_config(spec)


def test_invalid_value_names_the_key(tmp_path):
    spec = load_spec(_spec(tmp_path, variants={"baseline": {}, "bad": {"data.init_args.clip_len": "long"}}))
    with pytest.raises(
        SpecError, match=r"variant 'bad': override 'data.init_args.clip_len' = 'long' is invalid"
    ):
        check_config(spec)


def test_valid_spec_checks_and_builds_seeded_commands(tmp_path):
    spec = load_spec(
        _spec(
            tmp_path,
            overrides={"trainer.max_epochs": 2},
            variants={
                "baseline": {},
                "short": {"data.init_args.clip_len": 32, "model.init_args.milestones": [1]},
            },
        )
    )
    checks = check_config(spec)
    assert set(checks) == {"baseline", "short"} and all(c.has_data_seed for c in checks.values())
    assert checks["short"].resolved["data"]["init_args"]["clip_len"] == 32
    cmd = build_command(spec, "short", 2, tmp_path / "runs", python="python")
    assert cmd[:6] == ["python", "-m", "graphfuse.cli", "fit", "-c", str(QUICKSTART)]
    for arg in (
        "--trainer.max_epochs=2",
        "--data.init_args.clip_len=32",
        "--model.init_args.milestones=[1]",
        "--seed_everything=2",
        "--data.init_args.seed=2",
        f"--run.root={(tmp_path / 'runs').resolve()}",
        "--run.name=unit/short",
        "--run.version=seed2",
    ):
        assert arg in cmd, arg
    assert "--ckpt_path=last" not in cmd
    plan = plan_study(spec, tmp_path / "runs", checks, python="python")
    assert [r.key for r in plan] == [
        "baseline/seed0",
        "short/seed0",
        "baseline/seed1",
        "short/seed1",
        "baseline/seed2",
        "short/seed2",
    ]
    assert all(r.action == "start" for r in plan)


def test_shipped_ablation_specs_validate():
    specs = sorted((REPO / "configs" / "ablations").glob("*.yaml"))
    assert specs
    for p in specs:
        spec = load_spec(p)
        checks = check_config(spec)
        assert spec.baseline in checks and len(spec.seeds) >= 3, p


def test_launcher_templates(tmp_path):
    spec = load_spec(_spec(tmp_path))
    checks = {
        "baseline": type("C", (), {"has_data_seed": True})(),
        "lr": type("C", (), {"has_data_seed": True})(),
    }
    run = plan_study(
        spec,
        tmp_path / "runs",
        checks,
        python="/usr/bin/python3",
        launcher='sbatch -J {job_name} -o {log} --gres=gpu:1 --wrap "{cmd}"',
    )[1]
    line = run.launcher_line
    assert line.startswith("sbatch -J unit-lr-seed0 -o ") and str(run.log) in line
    inner = line.split('--wrap "', 1)[1][:-1]
    assert shlex.split(inner) == run.command  # the wrapped command is the run's own argv
    torchrun = format_launcher("torchrun --nproc_per_node 4 -m graphfuse.cli {args} # ${HOME}", run, "unit")
    assert torchrun.startswith("torchrun --nproc_per_node 4 -m graphfuse.cli fit -c ")
    assert torchrun.endswith("--run.version=seed0 # ${HOME}")  # shell variables are left alone
    with pytest.raises(SpecError, match=r"unknown placeholder\(s\) \{cmdd\}"):
        check_launcher("sbatch --wrap '{cmdd}'")
    with pytest.raises(SpecError, match="must contain"):
        check_launcher("sbatch --wrap true")


def test_gpu_slots_share_the_devices():
    from graphfuse.ablation.runner import _gpu_slots

    assert _gpu_slots(["0", "1", "2", "3"], 2) == [["0", "1"], ["2", "3"]]
    assert _gpu_slots(["0", "1", "2", "3"], 4) == [["0"], ["1"], ["2"], ["3"]]
    assert _gpu_slots(["0", "1", "2"], 2) == [["0"], ["1"]]
    assert _gpu_slots(["0", "1"], 3) == [["0"], ["1"], ["0"]]


def test_study_lock(tmp_path):
    from graphfuse.ablation.runner import _study_lock, study_locked

    assert not study_locked(tmp_path)
    with _study_lock(tmp_path):
        assert study_locked(tmp_path)
        with pytest.raises(RuntimeError, match="another `graphfuse ablate` is running"):
            with _study_lock(tmp_path):
                pass
    assert not study_locked(tmp_path)
