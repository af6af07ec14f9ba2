"""Register arrays made by the official Shift-GCN / 2s-AGCN ``data_gen`` scripts.

The official scripts write ``{train,val}_data_{joint,bone,joint_motion,bone_motion}.npy``
(float32, (N, 3, 300, 25, 2)) and ``{train,val}_label.pkl``, a pickle of
``(sample_names, labels)`` with names like ``S001C001P001R001A001.skeleton`` and 0-based
labels. Importing validates them and writes our ``meta.json`` next to nothing else: the
arrays are referenced by absolute path instead of being copied (about 10 GB each for
NTU60). The official "val" split is our "test" split. Their values are checked (finite,
within the plausibility bound) by ``graphfuse check OUT``, which training requires.

The label pickle is read with :func:`graphfuse.io.restricted_load`, which admits builtins
and numpy arrays only, so a crafted pickle cannot run code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np

from graphfuse.io import read_json, restricted_load, write_json

from .benchmarks import Benchmark, get_benchmark
from .prepare import MAX_BODY_TRUE, STREAMS, meta_header
from .reader import NUM_JOINTS, parse_ntu_name

__all__ = ["import_official", "import_official_dir", "read_official_labels"]

_SPLITS = {"train": "train", "test": "test", "val": "test"}


def read_official_labels(label_pkl: str | os.PathLike) -> tuple[list[str], list[int]]:
    """``(sample names without .skeleton, 0-based labels)`` of an official label pickle."""
    obj = restricted_load(label_pkl)
    if not (isinstance(obj, (tuple, list)) and len(obj) == 2):
        raise ValueError(f"{label_pkl}: expected a pickled (sample_names, labels) pair, "
                         f"got {type(obj).__name__}")
    names_raw, labels_raw = obj
    try:
        names = list(names_raw)
        labels_arr = np.asarray(labels_raw)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{label_pkl}: sample names and labels must be flat sequences ({exc})") from None
    bad = next((i for i, n in enumerate(names) if not isinstance(n, str)), None)
    if bad is not None:  # checked before any str()/repr(), which would recurse into nested lists
        raise ValueError(f"{label_pkl}: sample name {bad} is a {type(names[bad]).__name__}, not a string")
    if labels_arr.ndim != 1 or labels_arr.dtype.kind not in "iu":
        raise ValueError(f"{label_pkl}: labels must be a list of integers, got dtype {labels_arr.dtype} "
                         f"and shape {labels_arr.shape}")
    if len(names) != labels_arr.size:
        raise ValueError(f"{label_pkl}: {len(names)} sample names but {labels_arr.size} labels")
    names = [n.removesuffix(".skeleton") for n in names]
    return names, labels_arr.astype(np.int64).tolist()


def _check_array(path: Path, n: int) -> tuple[int, ...]:
    if not path.is_file():
        raise FileNotFoundError(f"official array not found: {path}")
    arr = np.load(path, mmap_mode="r")  # header only; allow_pickle stays False
    shape = tuple(arr.shape)
    expected_tail = (NUM_JOINTS, MAX_BODY_TRUE)
    if arr.dtype != np.float32 or len(shape) != 5 or shape[1] != 3 or shape[3:] != expected_tail:
        raise ValueError(f"{path}: expected float32 (N, 3, T, {NUM_JOINTS}, {MAX_BODY_TRUE}), "
                         f"got {arr.dtype} {shape}")
    if shape[0] != n:
        raise ValueError(f"{path}: {shape[0]} samples but the label file lists {n}")
    return shape


def _empty_split() -> dict[str, Any]:
    return {"files": {}, "samples": [], "labels": [], "num_frames": []}


def import_official(
    data_npy: str | os.PathLike,
    label_pkl: str | os.PathLike,
    out: str | os.PathLike,
    split: Literal["train", "test", "val"],
    benchmark: str | Benchmark,
    *,
    extra_streams: Mapping[str, str | os.PathLike] | None = None,
) -> dict:
    """Register one official split in ``out/meta.json`` (created or updated).

    Args:
        data_npy: official ``{train,val}_data_joint.npy``, float32 (N, 3, T, 25, 2).
        label_pkl: official ``{train,val}_label.pkl``.
        out: directory of ``meta.json``; the arrays stay where they are (absolute paths).
        split: ``"train"`` or ``"test"`` (``"val"``, the official name, means ``"test"``).
        benchmark: the benchmark the arrays were made for; every sample must belong to
            ``split`` of it and carry the label ``action - 1`` of its name.
        extra_streams: other official arrays of this split by stream name
            (``bone``, ``joint_motion``, ``bone_motion``), validated the same way.

    ``num_frames`` is recorded as T for every sample: the official arrays do not keep the
    original lengths (their pre-normalisation pads every sequence to T by repetition).
    A split not imported yet appears in ``meta.json`` with no files and no samples.
    Returns the meta dict.
    """
    bench = get_benchmark(benchmark)
    if split not in _SPLITS:
        raise ValueError(f"split must be 'train', 'test' or 'val', got {split!r}")
    ours = _SPLITS[split]
    data_npy, label_pkl, out = Path(data_npy).resolve(), Path(label_pkl), Path(out)
    names, labels = read_official_labels(label_pkl)
    shape = _check_array(data_npy, len(names))
    files = {"joint": str(data_npy)}
    for stream, p in (extra_streams or {}).items():
        if stream not in STREAMS:
            raise ValueError(f"unknown stream {stream!r}; choose from {list(STREAMS)}")
        p = Path(p).resolve()
        if _check_array(p, len(names)) != shape:
            raise ValueError(f"{p}: shape differs from {data_npy} {shape}")
        files[stream] = str(p)

    for i, (name, label) in enumerate(zip(names, labels)):  # validation, per sample name
        try:
            _, _, _, _, action = parse_ntu_name(name)
        except ValueError as exc:
            raise ValueError(f"{label_pkl}: sample {i}: {exc}") from None
        if not 0 <= label < bench.num_class:
            raise ValueError(f"{label_pkl}: sample {i} ({name}): label {label} outside "
                             f"0..{bench.num_class - 1}")
        if label != action - 1:
            raise ValueError(f"{label_pkl}: sample {i} ({name}): label {label} but its name says action "
                             f"{action} (label {action - 1})")
        if not bench.in_scope(name) or bench.split_of(name) != ours:
            raise ValueError(f"{label_pkl}: sample {i} ({name}) is not in the {ours} split of {bench.name}; "
                             "wrong benchmark or split?")
    if len(set(names)) != len(names):
        raise ValueError(f"{label_pkl}: duplicate sample names")

    meta_path = out / "meta.json"
    meta = _load_or_new(meta_path, bench, shape[2])
    meta["splits"][ours] = {
        "files": files, "samples": names, "labels": labels, "num_frames": [shape[2]] * len(names),
    }
    meta["counts"][ours] = {
        "samples": len(names),
        "per_class": np.bincount(np.asarray(labels, dtype=np.int64), minlength=bench.num_class).tolist(),
    }
    imported = [s for s in meta["splits"].values() if s["samples"]]
    meta["streams"] = ["joint"] + [s for s in STREAMS if all(s in sp["files"] for sp in imported)]
    meta["source"] = {"root": str(Path(label_pkl).resolve().parent), "graphfuse_version": _version()}
    # The arrays are not read here (about 10 GB each): `graphfuse check OUT` checks their values
    # once and records it; an earlier record does not describe the arrays registered now.
    meta.pop("value_check", None)
    write_json(meta_path, meta)
    return meta


def _version() -> str:
    from graphfuse import __version__

    return __version__


def _load_or_new(meta_path: Path, bench: Benchmark, max_frame: int) -> dict:
    if meta_path.is_file():
        meta = read_json(meta_path)
        if not isinstance(meta, dict):
            raise ValueError(f"{meta_path}: expected a JSON object")
        if meta.get("benchmark") != bench.name or meta.get("max_frame") != max_frame:
            raise ValueError(f"{meta_path} describes benchmark {meta.get('benchmark')!r} with "
                             f"max_frame {meta.get('max_frame')}; refusing to mix it with {bench.name} "
                             f"arrays of {max_frame} frames (use another output directory)")
        return meta
    return {
        **meta_header(bench, max_frame, ["joint"]),
        "splits": {"train": _empty_split(), "test": _empty_split()},
        "counts": {s: {"samples": 0, "per_class": [0] * bench.num_class} for s in ("train", "test")},
        "skipped": [],
        "excluded_missing_skeletons": 0,
        "source": {},
    }


def import_official_dir(
    directory: str | os.PathLike, out: str | os.PathLike, benchmark: str | Benchmark
) -> dict:
    """Import an official output directory (``{train,val}_data_joint.npy`` and
    ``{train,val}_label.pkl``, plus any ``{train,val}_data_{bone,joint_motion,bone_motion}.npy``
    present for both splits) into ``out/meta.json``. Returns the meta dict."""
    d = Path(directory)
    need = [d / f"{p}_{k}" for p in ("train", "val") for k in ("data_joint.npy", "label.pkl")]
    absent = [p.name for p in need if not p.is_file()]
    if absent:
        raise FileNotFoundError(f"{d}: official output incomplete, missing {', '.join(absent)}")
    streams = [s for s in STREAMS if all((d / f"{p}_data_{s}.npy").is_file() for p in ("train", "val"))]
    meta: dict = {}
    for part in ("train", "val"):
        meta = import_official(d / f"{part}_data_joint.npy", d / f"{part}_label.pkl", out, part, benchmark,
                               extra_streams={s: d / f"{part}_data_{s}.npy" for s in streams})
    return meta
