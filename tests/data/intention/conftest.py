"""Fixtures over the real PIE / JAAD annotation files in ``data/`` (copied per test)."""

from __future__ import annotations

import shutil

import pytest
from _intention_files import DATA


@pytest.fixture
def pie_root(tmp_path):
    """PIE root with set05/video_0002 and an empty set06 (the val split's sets)."""
    root = tmp_path / "pie"
    shutil.copytree(DATA / "pie", root)
    (root / "annotations/set06").mkdir()
    return root


@pytest.fixture
def jaad_root(tmp_path):
    """JAAD root with video_0001 only in the default train split (val/test empty)."""
    root = tmp_path / "jaad"
    shutil.copytree(DATA / "jaad", root, ignore=shutil.ignore_patterns("split_ids"))
    d = root / "split_ids" / "default"
    d.mkdir(parents=True)
    (d / "train.txt").write_text("video_0001\n")
    (d / "val.txt").write_text("")
    (d / "test.txt").write_text("")
    return root
