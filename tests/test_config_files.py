"""Base-plus-delta configs (a top-level ``_base_``): the merge rule on hand-worked examples, the
chain's errors naming the files, every shipped delta, and ``fit`` / ``info`` / ``ablate`` on a
delta (graphfuse.config_files, GraphfuseCLI.parse_arguments, ablation.spec)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from graphfuse.cli import main
from graphfuse.config_files import (
    BASE_KEY,
    ConfigError,
    config_chain,
    config_file_problem,
    merge_configs,
    names_base,
    resolve_config,
    with_resolved_configs,
)

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
QUICKSTART = CONFIGS / "synthetic-ntu" / "shiftgcn" / "quickstart.yaml"
TRAINING_CONFIGS = sorted(p for p in CONFIGS.rglob("*.yaml") if "ablations" not in p.parts)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------- the merge rule
def test_mappings_merge_key_by_key_and_lists_and_scalars_replace():
    base = {"a": {"x": 1, "y": [1, 2, 3], "z": {"p": 1}}, "b": 2, "c": [{"k": 1}]}
    delta = {"a": {"y": [9], "z": {"q": 2}}, "b": None, "c": [{"j": 2}], "d": "new"}
    assert merge_configs(base, delta) == {
        "a": {"x": 1, "y": [9], "z": {"p": 1, "q": 2}},
        "b": None,  # null replaces
        "c": [{"j": 2}],  # a list is replaced whole, even a list of mappings
        "d": "new",
    }
    assert base == {"a": {"x": 1, "y": [1, 2, 3], "z": {"p": 1}}, "b": 2, "c": [{"k": 1}]}  # untouched


def test_another_class_path_replaces_the_init_args():
    base = {"model": {"class_path": "graphfuse.models.ShiftGCN", "init_args": {"num_point": 25, "a": 1}}}
    other = merge_configs(base, {"model": {"class_path": "graphfuse.models.PedGraph", "init_args": {"b": 2}}})
    assert other == {"model": {"class_path": "graphfuse.models.PedGraph", "init_args": {"b": 2}}}
    # the same class by its short name or its full path: merged
    same = merge_configs(base, {"model": {"class_path": "ShiftGCN", "init_args": {"a": 3}}})
    assert same == {"model": {"class_path": "ShiftGCN", "init_args": {"num_point": 25, "a": 3}}}


def test_delete_replaces_a_mapping():
    base = {"data": {"init_args": {"a": 1, "b": 2}}}
    assert merge_configs(base, {"data": {"init_args": {"_delete_": True, "c": 3}}}) == {"data": {"init_args": {"c": 3}}}
    with pytest.raises(ConfigError, match="_delete_ must be true"):
        merge_configs(base, {"data": {"_delete_": "yes"}})


def test_a_chain_resolves_relative_to_each_file(tmp_path):
    _write(tmp_path / "root.yaml", "trainer: {max_epochs: 10, devices: 1}\nseed_everything: 0\n")
    _write(tmp_path / "sub" / "mid.yaml", "_base_: ../root.yaml\ntrainer: {max_epochs: 5}\n")
    leaf = _write(tmp_path / "sub" / "deeper" / "leaf.yaml", "_base_: ../mid.yaml\nseed_everything: 3\n")
    assert resolve_config(leaf) == {"trainer": {"max_epochs": 5, "devices": 1}, "seed_everything": 3}
    assert [p.name for p in config_chain(leaf)] == ["leaf.yaml", "mid.yaml", "root.yaml"]
    assert names_base(leaf) and not names_base(tmp_path / "root.yaml")
    # a list of bases merges in order, then the file itself
    _write(tmp_path / "other.yaml", "trainer: {devices: 4}\nextra: 1\n")
    two = _write(tmp_path / "two.yaml", "_base_: [root.yaml, other.yaml]\nextra: 2\n")
    assert resolve_config(two) == {"trainer": {"max_epochs": 10, "devices": 4}, "seed_everything": 0, "extra": 2}


@pytest.mark.parametrize(
    ("files", "start", "message"),
    [
        ({"a.yaml": "_base_: b.yaml\n", "b.yaml": "_base_: a.yaml\n"}, "a.yaml", r"_base_ cycle: .*a\.yaml -> .*b\.yaml -> .*a\.yaml"),
        ({"a.yaml": "_base_: a.yaml\n"}, "a.yaml", r"_base_ cycle"),
        ({"a.yaml": "_base_: missing.yaml\n"}, "a.yaml", r"a\.yaml: _base_ 'missing\.yaml' not found"),
        ({"a.yaml": "_base_: 3\n"}, "a.yaml", r"a\.yaml: _base_ must be the relative path"),
        ({"a.yaml": "_base_: b.yaml\n", "b.yaml": "x: .nan\n"}, "a.yaml", r"b\.yaml: x is nan"),
        ({"a.yaml": "_base_: b.yaml\n", "b.yaml": "- 1\n"}, "a.yaml", r"b\.yaml: a config is a YAML mapping"),
        ({"a.yaml": "_base_: b.yaml\nm: {_base_: b.yaml}\n", "b.yaml": "x: 1\n"}, "a.yaml", r"m\._base_: _base_ is read at the top level"),
        ({"a.yaml": "m: {_delete_: true}\n"}, "a.yaml", r"a\.yaml: _delete_ needs a _base_"),
        ({"a.yaml": "_base_: ~no_such_user_graphfuse/b.yaml\n"}, "a.yaml", r"a\.yaml: _base_ '~no_such_user"),
        ({"a.yaml": f"_base_: {'x' * 5000}\n"}, "a.yaml", r"a\.yaml: _base_ 'xxx"),
    ],
)
def test_chain_errors_name_the_files(tmp_path, files, start, message):
    for name, text in files.items():
        _write(tmp_path / name, text)
    with pytest.raises(ConfigError, match=message):
        resolve_config(tmp_path / start)
    if "_base_" in files[start]:  # the check before parsing resolves files that name a base
        problem = config_file_problem(tmp_path / start)
        assert problem is not None and str(tmp_path) in problem


def test_with_resolved_configs_replaces_only_deltas(tmp_path):
    delta = _write(tmp_path / "d.yaml", f"_base_: {QUICKSTART}\ntrainer: {{max_epochs: 1}}\n")
    argv, replaced = with_resolved_configs(["fit", "-c", str(QUICKSTART), "--config", str(delta), "--x=1"])
    assert argv[:3] == ["fit", "-c", str(QUICKSTART)] and argv[4] != str(delta)
    assert replaced == [None, str(delta)]
    assert yaml.safe_load(argv[4]) == resolve_config(delta) and BASE_KEY not in argv[4]
    argv, replaced = with_resolved_configs([f"--config={delta}"])
    assert argv[0].startswith("--config=") and yaml.safe_load(argv[0].partition("=")[2])["trainer"]["max_epochs"] == 1


# ------------------------------------------------------------------------------ shipped configs
NOTES = sorted((CONFIGS / "pie" / "pedgraph" / "notes").glob("*.yaml")) + sorted(
    (CONFIGS / "ntu60-xsub" / "shiftgcn" / "notes").glob("*.yaml"))


def _restated(delta: object, base: object, where: str = "") -> list[str]:
    """Keys of ``delta`` whose value equals the base's (a delta states only differences)."""
    if not isinstance(delta, dict) or not isinstance(base, dict):
        return [where] if delta == base and type(delta) is type(base) else []
    out = []
    for k, v in delta.items():
        if k in base and k != BASE_KEY:
            out += _restated(v, base[k], f"{where}.{k}" if where else k)
    return out


@pytest.mark.parametrize("config", NOTES, ids=lambda p: str(p.relative_to(CONFIGS)))
def test_every_notes_config_is_a_delta_stating_only_differences(config):
    if config.name == "00_base.yaml":
        assert not names_base(config)  # the PIE notes' base
        return
    raw = yaml.safe_load(config.read_text(encoding="utf-8"))
    assert names_base(config), f"{config}: notes configs extend their base through {BASE_KEY}"
    base = resolve_config(config_chain(config)[1])
    assert not _restated(raw, base), f"{config} restates its base's values: {_restated(raw, base)}"
    resolved = resolve_config(config)
    assert BASE_KEY not in yaml.safe_dump(resolved)
    assert set(resolved) == set(base)  # a delta changes values, it adds no top-level section


def test_every_shipped_config_resolves():
    assert len(TRAINING_CONFIGS) >= 17
    deltas = 0
    for config in TRAINING_CONFIGS:
        assert config_file_problem(config) is None, config
        deltas += names_base(config)
        assert "model" in resolve_config(config) and "data" in resolve_config(config), config
    assert deltas >= 33  # 24 PIE notes experiments over 00_base, 9 Shift-GCN notes over joint.yaml


# ------------------------------------------------------------------------ the commands on deltas
def test_fit_on_a_delta_stores_the_resolved_config(synthetic_ntu, tmp_path):
    delta = _write(tmp_path / "mine" / "short.yaml", (
        f"_base_: {QUICKSTART}\n"
        "trainer:\n  max_epochs: 1\n  limit_train_batches: 1\n  limit_val_batches: 1\n  limit_test_batches: 1\n"
        "  enable_progress_bar: false\n  enable_model_summary: false\n"
        "data:\n  init_args:\n"
        f"    data_dir: {synthetic_ntu}\n    synthetic: false\n    clip_len: 16\n    batch_size: 10\n"
    ))
    assert main(["fit", "-c", str(delta), f"--run.root={tmp_path / 'runs'}"]) == 0
    run = tmp_path / "runs" / "mine" / "short" / "version_0"  # named after the user's file
    text = (run / "config.yaml").read_text()
    assert BASE_KEY not in text
    saved = yaml.safe_load(text)
    assert saved["trainer"]["max_epochs"] == 1 and saved["data"]["init_args"]["clip_len"] == 16
    quick = yaml.safe_load(QUICKSTART.read_text())
    assert saved["model"]["init_args"]["lr"] == quick["model"]["init_args"]["lr"]  # from the base
    assert json.loads((run / "summary.json").read_text())["epochs_trained"] == 1


def test_a_bad_base_is_one_error_naming_it(tmp_path, capsys):
    _write(tmp_path / "base.yaml", "trainer: {max_epochs: .inf}\n")
    delta = _write(tmp_path / "delta.yaml", "_base_: base.yaml\n")
    with pytest.raises(SystemExit) as exc:
        main(["fit", "-c", str(delta), f"--run.root={tmp_path}"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "base.yaml: trainer.max_epochs is inf" in err and "Traceback" not in err


def test_info_on_a_delta(capsys):
    delta = CONFIGS / "ntu60-xsub" / "shiftgcn" / "notes" / "reduce_frame_k3.yaml"
    assert main(["info", "-c", str(delta), "--frames", "8"]) == 0
    assert "ShiftGCN" in capsys.readouterr().out


def test_ablate_with_a_delta_as_base(tmp_path, capsys):
    delta = _write(tmp_path / "cfg" / "delta.yaml", f"_base_: {QUICKSTART}\nmodel:\n  init_args:\n    lr: 0.05\n")
    spec = _write(tmp_path / "study.yaml", (
        "name: delta_study\nbase: cfg/delta.yaml\nbaseline: base\nseeds: [0]\n"
        "variants:\n  base: {}\n  low_lr: {model.init_args.lr: 0.01}\n"
    ))
    assert main(["ablate", str(spec), "--dry-run", "--root", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert "--run.version=seed0" in out and str(tmp_path / "cfg" / "delta.yaml") in out
    from graphfuse.ablation.spec import check_config, load_spec

    checks = check_config(load_spec(spec))
    assert checks["base"].resolved["model"]["init_args"]["lr"] == 0.05
    assert checks["low_lr"].resolved["model"]["init_args"]["lr"] == 0.01
