"""Tiny prepared directories in the meta.json format (format_version 1) for dataset tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from graphfuse.data.checks import check_prepared

C, T, V, M = 3, 300, 25, 2


def write_prepared(
    root: Path,
    *,
    n_train: int,
    n_test: int,
    num_class: int,
    name: Callable[[str, int], str],
    num_frames: Callable[[int], int],
    seed: int = 0,
    extra_files: dict | None = None,
    counts: dict | None = None,
) -> dict[str, np.ndarray]:
    """Write random (N, 3, 300, 25, 2) arrays and their meta.json into ``root``; return the arrays.

    Labels are ``i % num_class``; ``name(split, i)`` and ``num_frames(i)`` give the sample ids
    and valid frame counts; ``extra_files`` maps ``(split, stream)`` to a stored stream file.
    The values are checked as ``graphfuse check`` does, which records the check in meta.json
    (the datamodule refuses a folder without it).
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    splits, arrays = {}, {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = rng.standard_normal((n, C, T, V, M)).astype(np.float32)
        np.save(root / f"{split}_joint.npy", x)
        arrays[split] = x
        splits[split] = {
            "files": {"joint": f"{split}_joint.npy"},
            "samples": [name(split, i) for i in range(n)],
            "labels": [i % num_class for i in range(n)],
            "num_frames": [num_frames(i) for i in range(n)],
        }
    for (split, stream), fname in (extra_files or {}).items():
        splits[split]["files"][stream] = fname
    meta = {
        "format_version": 1, "dataset": "ntu", "benchmark": "tiny", "num_class": num_class,
        "layout": "N C T V M", "max_frame": T, "num_joint": V, "num_person": M,
        "streams": ["joint"], "splits": splits, "counts": counts or {}, "skipped": [],
    }
    (root / "meta.json").write_text(json.dumps(meta))
    check_prepared(root)
    return arrays
