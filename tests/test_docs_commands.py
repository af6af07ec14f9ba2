"""The documented `graphfuse prepare` commands write exactly what the shipped configs read.

Rule: every ``data_dir`` of configs/{ntu60-xsub,ntu60-xview,ntu120-xsub,ntu120-xset,pie,jaad}
(``_base_`` resolved) is the ``--out`` of some ``graphfuse prepare`` command in README.md or
docs/*.md; where a config states its own prepare command in a comment, the documented commands
with that ``--out`` prepare the same dataset with the same options (obs length, sample type,
benchmark, poses, images); and a config whose data uses the image crops is documented with
``--poses`` and ``--images``.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from graphfuse.config_files import resolve_config

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
CONFIG_DIRS = ["ntu60-xsub", "ntu60-xview", "ntu120-xsub", "ntu120-xset", "pie", "jaad", "casia-b", "oumvlp"]
CONFIGS = sorted(p for d in CONFIG_DIRS for p in (REPO / "configs" / d).rglob("*.yaml"))
# Options whose values are paths on the user's machine (may differ between documented copies).
PATH_OPTIONS = {"--root", "--poses", "--images", "--out"}

_PREPARE = re.compile(r"graphfuse prepare ([^`\n]*)")


def parse_prepare(text: str) -> list[dict]:
    """Every ``graphfuse prepare DATASET ... --out X`` command in ``text``: dataset, options."""
    found = []
    for match in _PREPARE.finditer(text):
        line = match.group(1).split("#", 1)[0]
        try:
            words = shlex.split(line)
        except ValueError:
            continue
        if not words or words[0].startswith("-") or "--out" not in words:
            continue
        options: dict[str, str | None] = {}
        i = 1
        while i < len(words):
            if words[i].startswith("--"):
                value = words[i + 1] if i + 1 < len(words) and not words[i + 1].startswith("--") else None
                options[words[i]] = value
                i += 2 if value is not None else 1
            else:
                i += 1
        found.append({"dataset": words[0], "options": options})
    return found


def documented() -> dict[str, list[dict]]:
    by_out: dict[str, list[dict]] = {}
    for doc in DOCS:
        for cmd in parse_prepare(doc.read_text(encoding="utf-8")):
            cmd["doc"] = doc.relative_to(REPO).as_posix()
            by_out.setdefault(cmd["options"]["--out"], []).append(cmd)
    return by_out


def _signature(cmd: dict) -> tuple:
    opts = cmd["options"]
    return (cmd["dataset"], tuple(sorted((k, None if k in PATH_OPTIONS else v) for k, v in opts.items())))


def _config_comment_command(path: Path) -> dict | None:
    comments = "\n".join(line for line in path.read_text(encoding="utf-8").splitlines() if line.lstrip().startswith("#"))
    cmds = parse_prepare(comments)
    return cmds[0] if cmds else None


def test_parse_prepare():
    (cmd,) = parse_prepare("x `graphfuse prepare jaad --root J --out data/j --sample-type all --overwrite`  # c --out y")
    assert cmd["dataset"] == "jaad"
    assert cmd["options"] == {"--root": "J", "--out": "data/j", "--sample-type": "all", "--overwrite": None}
    assert parse_prepare("graphfuse prepare ntu|pie ...") == []  # usage lines name no --out


def test_the_configs_are_found():
    assert {p.parts[len(REPO.parts) + 1] for p in CONFIGS} == set(CONFIG_DIRS)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.relative_to(REPO / "configs").as_posix())
def test_documented_prepare_commands_write_what_the_config_reads(config):
    data = resolve_config(config)["data"]["init_args"]
    data_dir = data["data_dir"]
    by_out = documented()
    assert data_dir in by_out, f"{config}: no `graphfuse prepare ... --out {data_dir}` in README.md or docs/*.md"
    cmds = by_out[data_dir]
    # documented copies of the command agree (paths on the user's machine aside)
    assert len({_signature(c) for c in cmds}) == 1, [(c["doc"], c["dataset"], c["options"]) for c in cmds]
    if "obs_length" in data:
        for c in cmds:
            assert c["options"].get("--obs-length") == str(data["obs_length"]), c["doc"]
    if data.get("use_image"):
        for c in cmds:
            assert "--images" in c["options"] and "--poses" in c["options"], (c["doc"], c["options"])
    own = _config_comment_command(config)
    if own is not None:
        assert own["options"]["--out"] == data_dir, f"{config}: its comment prepares {own['options']['--out']}"
        for c in cmds:
            assert _signature(c) == _signature(own), (c["doc"], c["options"], own["options"])


def test_the_pedgraph_plus_configs_read_32_frame_data_with_crops():
    """What the PedGraph+ recipe needs (32 observed frames, JAAD_all, poses and crops)."""
    by_out = documented()
    for dataset, extra in (("pie", {}), ("jaad", {"--sample-type": "all"})):
        data = resolve_config(REPO / "configs" / dataset / "pedgraph" / "pedgraph_plus.yaml")["data"]["init_args"]
        for c in by_out[data["data_dir"]]:
            assert c["dataset"] == dataset
            assert c["options"].get("--obs-length") == "32"
            for k, v in extra.items():
                assert c["options"].get(k) == v
