"""``graphfuse prepare ucf101 | hmdb51``: videos -> JPEG frames + TV-L1 flow JPEG pairs + meta.json.

Input (the official archives, extracted):

* UCF101: ``ROOT/UCF-101/<Class>/v_<Class>_gGG_cCC.avi`` (``UCF101.rar``) and
  ``ROOT/ucfTrainTestlist/`` (``UCF101TrainTestSplits-RecognitionTask.zip``);
* HMDB51: ``ROOT/<class>/<video>.avi`` (``hmdb51_org.rar``, each class's ``.rar`` extracted;
  also found under ``ROOT/hmdb51_org/``) and ``ROOT/testTrainMulti_7030_splits/``
  (``test_train_splits.rar``).

``--splits DIR`` points elsewhere for the split files. A video listed in the split but absent
is looked up case-insensitively in its class folder (UCF101's lists say
``v_HandstandPushups_*`` for the files ``v_HandStandPushups_*``).

Output (``OUT``; the community layout of ``feichtenhofer/twostreamfusion``):

* ``frames/<video>/frame%06d.jpg``: RGB frames, short side ``size`` (256; ``decode.output_size``),
  JPEG quality 95 (OpenCV's default, as ``gpu_flow``);
* ``flow/u/<video>/frame%06d.jpg`` and ``flow/v/<video>/frame%06d.jpg``: TV-L1 flow from frame
  ``k`` to ``k + 1``, quantised with the bound +-20 (:mod:`graphfuse.data.video.flow`), unless
  ``flow='none'``, or ``flow=DIR`` registers a precomputed folder ``DIR/{u,v}/<video>/`` instead;
* ``done/<video>.json``: the per-video done-marker, written atomically after all of the video's
  images (a rerun skips videos that have one and redoes the others from scratch);
* ``settings.json``: the preparation settings (a rerun with other settings is refused);
* ``meta.json`` (written last): dataset, split, class names in label order, per-split video
  lists with labels, groups, frame counts and sizes, the flow settings, skipped videos, counts
  per split and class, the expected official counts, the value-check record.

Videos are processed in parallel (``jobs`` processes, one video each at a time) with a tqdm
progress bar. A bad video (unreadable, missing, a listed class without a folder) stops the run
with an error naming the file, or with ``skip_bad`` is left out and listed in ``meta["skipped"]``.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from graphfuse.data.video.decode import decode_video
from graphfuse.data.video.flow import (
    FLOW_BOUND,
    FLOW_FORMAT,
    TVL1_DEFAULT,
    TVL1Params,
    compute_quantized_flow,
    register_flow_video,
    require_cv2,
)
from graphfuse.data.video.splits import (
    EXPECTED_COUNTS,
    VideoEntry,
    VideoSplit,
    read_hmdb51_split,
    read_ucf101_split,
)
from graphfuse.io import read_json, write_json

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "JPEG_QUALITY",
    "locate_dataset",
    "prepare_video_dataset",
    "process_video",
    "read_split",
    "resolve_video",
    "summarize",
]

log = logging.getLogger(__name__)

FORMAT = "graphfuse-video"
FORMAT_VERSION = 1
#: OpenCV's default JPEG quality, the one ``gpu_flow`` wrote with.
JPEG_QUALITY = 95
FRAME_PATTERN = "frame{:06d}.jpg"
VIDEO_CHECKS = (
    "every listed video decoded completely (one error naming the file otherwise)",
    "RGB frames stored as uint8 JPEG (finite and within 0..255 by type)",
    "TV-L1 flow finite before quantisation (an error naming the video and frame pair otherwise)",
    "flow clipped to the bound +-20 px/frame before quantisation; the clipped fraction is recorded per video",
    ("registered flow folders numbered frame000001.jpg.. without gaps, u and v counts equal, image size "
    "equal to the RGB frames'"),
)


# ---------------------------------------------------------------------------------------------
# where the files are
# ---------------------------------------------------------------------------------------------
def locate_dataset(dataset: str, root: str | os.PathLike, splits: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """``(video_dir, split_dir)`` of an extracted UCF101 / HMDB51 download under ``root``.

    Raises FileNotFoundError naming what is missing.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: dataset folder not found")
    if dataset == "ucf101":
        video_dir = root / "UCF-101" if (root / "UCF-101").is_dir() else root
        split_dir = Path(splits) if splits else root / "ucfTrainTestlist"
        marker = split_dir / "classInd.txt"
    elif dataset == "hmdb51":
        video_dir = root / "hmdb51_org" if (root / "hmdb51_org").is_dir() else root
        split_dir = Path(splits) if splits else root / "testTrainMulti_7030_splits"
        marker = split_dir
    else:
        raise ValueError(f"unknown video dataset {dataset!r}; expected 'ucf101' or 'hmdb51'")
    if not marker.exists():
        hint = "ucfTrainTestlist/ (UCF101TrainTestSplits-RecognitionTask.zip)" if dataset == "ucf101" else \
            "testTrainMulti_7030_splits/ (test_train_splits.rar)"
        raise FileNotFoundError(f"{marker}: split files not found; extract {hint} into {root} or give --splits")
    return video_dir, split_dir


def read_split(dataset: str, split_dir: str | os.PathLike, split: int) -> VideoSplit:
    """The official split ``split`` of ``dataset`` read from ``split_dir``."""
    if dataset == "ucf101":
        return read_ucf101_split(split_dir, split)
    if dataset == "hmdb51":
        return read_hmdb51_split(split_dir, split)
    raise ValueError(f"unknown video dataset {dataset!r}")


def resolve_video(video_dir: Path, entry: VideoEntry, listing: dict[str, dict[str, str]] | None = None) -> Path | None:
    """The ``.avi`` of ``entry`` under ``video_dir`` (exact path, else a case-insensitive match in
    its class folder), or None. ``listing`` caches class folder listings (lower -> real name)."""
    exact = video_dir / entry.path
    if exact.is_file():
        return exact
    folder, _, fname = entry.path.partition("/")
    d = video_dir / folder
    if listing is None:
        listing = {}
    if folder not in listing:
        listing[folder] = {p.lower(): p for p in os.listdir(d)} if d.is_dir() else {}
    real = listing[folder].get(fname.lower())
    return d / real if real is not None else None


# ---------------------------------------------------------------------------------------------
# one video
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VideoTask:
    """What a worker needs for one video (picklable)."""

    name: str
    path: str
    out: str
    size: int | None
    flow: str  # "tvl1", "none", or a folder of precomputed flow
    tvl1: TVL1Params
    jpeg_quality: int
    threads: int


def _write_jpegs(folder: Path, images: np.ndarray, quality: int, bgr: bool) -> None:
    """``images`` ``(T, H, W[, 3])`` uint8 -> ``folder/frame%06d.jpg``, numbered from 1."""
    cv2 = require_cv2()
    folder.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    data = images[..., ::-1] if bgr else images  # OpenCV writes BGR
    for k in range(data.shape[0]):  # one file per frame
        path = folder / FRAME_PATTERN.format(k + 1)
        if not cv2.imwrite(str(path), np.ascontiguousarray(data[k]), params):
            raise OSError(f"cannot write {path}")


def _clear(out: Path, name: str) -> None:
    for d in (out / "frames" / name, out / "flow" / "u" / name, out / "flow" / "v" / name):
        if d.exists():
            shutil.rmtree(d)


def process_video(task: VideoTask) -> dict[str, Any]:
    """Decode, store frames, compute or register flow, write the done-marker; returns the
    video's record (what the marker holds) or ``{"name", "error"}`` for a bad video."""
    out = Path(task.out)
    marker = out / "done" / f"{task.name}.json"
    try:
        cv2 = require_cv2()
        cv2.setNumThreads(task.threads)
        _clear(out, task.name)  # leftovers of an interrupted run
        frames = decode_video(task.path, size=task.size)
        n_rgb, h, w = int(frames.shape[0]), int(frames.shape[1]), int(frames.shape[2])
        if n_rgb < 2:
            raise ValueError(f"{task.path}: {n_rgb} frame decoded; a video needs at least 2 frames for flow")
        _write_jpegs(out / "frames" / task.name, frames, task.jpeg_quality, bgr=True)
        record: dict[str, Any] = {"name": task.name, "file": task.path, "num_frames": n_rgb, "width": w, "height": h}
        if task.flow == "tvl1":
            try:
                u, v, stats = compute_quantized_flow(frames, task.tvl1)
            except ValueError as exc:
                raise ValueError(f"{task.path}: {exc}") from None
            _write_jpegs(out / "flow" / "u" / task.name, u, task.jpeg_quality, bgr=False)
            _write_jpegs(out / "flow" / "v" / task.name, v, task.jpeg_quality, bgr=False)
            record.update(num_flow=int(u.shape[0]), flow_stats=stats)
        elif task.flow == "none":
            record.update(num_flow=None)
        else:
            record.update(num_flow=register_flow_video(task.flow, task.name, (w, h)))
        write_json(marker, record)
        return record
    except (OSError, ValueError) as exc:
        if isinstance(exc, OSError) and task.path not in str(exc) and str(out) not in str(exc):
            msg = f"{task.path}: {exc}"
        else:
            msg = str(exc)
        return {"name": task.name, "error": msg}


def _init_worker() -> None:
    with contextlib.suppress(ImportError):
        require_cv2().setNumThreads(1)


# ---------------------------------------------------------------------------------------------
# the dataset
# ---------------------------------------------------------------------------------------------
def _settings(size: int | None, flow: str, tvl1: TVL1Params, jpeg_quality: int) -> dict[str, Any]:
    if flow == "tvl1":
        flow_settings: dict[str, Any] = {"source": "tvl1", "params": tvl1.as_dict()}
    elif flow == "none":
        flow_settings = {"source": "none"}
    else:
        flow_settings = {"source": "registered", "dir": str(Path(flow).resolve())}
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "size": size, "jpeg_quality": jpeg_quality,
            "flow": flow_settings}


def _check_settings(out: Path, settings: dict[str, Any]) -> None:
    path = out / "settings.json"
    if path.is_file():
        old = read_json(path)
        if old != settings:
            raise ValueError(f"{path}: {out} was prepared with other settings ({old}); give a new --out "
                             f"or the same options (now: {settings})")
    else:
        write_json(path, settings)


def _load_marker(out: Path, name: str) -> dict[str, Any] | None:
    path = out / "done" / f"{name}.json"
    if not path.is_file():
        return None
    try:
        rec = read_json(path)
    except ValueError:
        return None  # a damaged marker: redo the video
    return rec if isinstance(rec, dict) and rec.get("name") == name and "num_frames" in rec else None


def _sampling_length(num_frames: int, num_flow: int | None) -> int:
    """Flow frames a sample may use (the reference's ``nFrames``): ``min(num_flow, num_frames - 1)``;
    without flow ``num_frames - 1`` (RGB-only runs then sample the same frames as two-stream runs)."""
    return num_frames - 1 if num_flow is None else min(int(num_flow), num_frames - 1)


def prepare_video_dataset(
    dataset: Literal["ucf101", "hmdb51"],
    root: str | os.PathLike,
    out: str | os.PathLike,
    *,
    split: int = 1,
    flow: str = "tvl1",
    jobs: int | None = None,
    size: int | None = 256,
    skip_bad: bool = False,
    splits: str | os.PathLike | None = None,
    tvl1: TVL1Params = TVL1_DEFAULT,
    jpeg_quality: int = JPEG_QUALITY,
    progress: bool = True,
    label: str | None = None,
) -> dict[str, Any]:
    """Prepare ``dataset`` split ``split`` from ``root`` into ``out`` (see the module docstring).

    Args:
        dataset: ``ucf101`` or ``hmdb51`` (the split-file format and folder layout).
        root: the extracted download (videos and split files).
        out: output folder (created; a rerun resumes it).
        split: official split 1, 2 or 3. All videos of a split are written; another split of
            the same dataset into the same ``out`` reuses them and rewrites ``meta.json``.
        flow: ``tvl1`` (compute), ``none`` (RGB only), or a folder of precomputed flow in the
            community layout (``DIR/u/<video>/frame%06d.jpg``, ``DIR/v/...``) to register.
        jobs: processes (None: all cores; 1: this process).
        size: short side of the stored frames (None: keep the video's size).
        skip_bad: leave bad videos out and list them in ``meta["skipped"]`` instead of stopping.
        splits: folder of the split files when not in ``root``.
        tvl1: TV-L1 parameters (OpenCV's defaults).
        jpeg_quality: quality of every JPEG written.
        progress: show a progress bar.
        label: the dataset name recorded in meta.json (default ``dataset``; the synthetic data
            records ``synthetic-ucf101``).

    Returns:
        The ``meta.json`` content.

    Raises:
        FileNotFoundError / SplitFormatError / VideoDecodeError / FlowFormatError: naming the file.
    """
    out = Path(out)
    if flow not in ("tvl1", "none"):
        fdir = Path(flow)
        if not (fdir / "u").is_dir() or not (fdir / "v").is_dir():
            raise FileNotFoundError(f"{fdir}: not a flow folder in the community layout (needs u/ and v/)")
    if not 1 <= int(jpeg_quality) <= 100:
        raise ValueError(f"jpeg_quality must be in 1..100, got {jpeg_quality}")
    video_dir, split_dir = locate_dataset(dataset, root, splits)
    info = read_split(dataset, split_dir, split)
    listing: dict[str, dict[str, str]] = {}
    entries = {"train": info.train, "test": info.test}
    skipped: list[dict[str, str]] = []
    paths: dict[str, Path] = {}
    for part in ("train", "test"):  # missing files first: one error before hours of work
        for e in entries[part]:
            p = resolve_video(video_dir, e, listing)
            if p is None:
                msg = f"{video_dir / e.path}: video listed in the split files ({split_dir}) not found"
                if not skip_bad:
                    raise FileNotFoundError(msg)
                skipped.append({"video": e.name, "file": str(video_dir / e.path), "reason": msg})
            else:
                paths[e.name] = p
    out.mkdir(parents=True, exist_ok=True)
    settings = _settings(size, flow, tvl1, int(jpeg_quality))
    _check_settings(out, settings)
    (out / "done").mkdir(exist_ok=True)

    records: dict[str, dict[str, Any]] = {}
    todo: list[VideoTask] = []
    workers = max(1, int(jobs) if jobs else (os.cpu_count() or 1))
    for name, p in paths.items():
        rec = _load_marker(out, name)
        if rec is not None:
            records[name] = rec
        else:
            todo.append(VideoTask(name, str(p), str(out), size, flow, tvl1, int(jpeg_quality),
                                  threads=1 if workers > 1 else 0))
    if todo:
        from tqdm import tqdm

        with contextlib.ExitStack() as stack:
            if workers > 1 and len(todo) > 1:
                method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
                pool = stack.enter_context(mp.get_context(method).Pool(min(workers, len(todo)), _init_worker))
                results = pool.imap_unordered(process_video, todo)
            else:
                results = map(process_video, todo)
            bar = stack.enter_context(tqdm(total=len(paths), initial=len(records), disable=not progress,
                                           unit="video", desc=f"prepare {label or dataset}"))
            for res in results:
                if "error" in res:
                    if not skip_bad:
                        raise ValueError(res["error"])
                    skipped.append({"video": res["name"], "file": str(paths[res["name"]]), "reason": res["error"]})
                else:
                    records[res["name"]] = res
                bar.update(1)

    meta = _build_meta(dataset, label or dataset, info, entries, records, skipped, settings, split_dir, out)
    write_json(out / "meta.json", meta)
    return meta


def _build_meta(dataset: str, label: str, info: VideoSplit, entries: dict[str, list[VideoEntry]],
                records: dict[str, dict[str, Any]], skipped: list[dict[str, str]], settings: dict[str, Any],
                split_dir: Path, out: Path) -> dict[str, Any]:
    from graphfuse.data.checks import check_record

    num_class = len(info.classes)
    splits: dict[str, Any] = {}
    counts: dict[str, Any] = {}
    for part, lst in entries.items():
        kept = [e for e in lst if e.name in records]
        rec = [records[e.name] for e in kept]
        num_flow = [r.get("num_flow") for r in rec]
        labels = [e.label for e in kept]
        splits[part] = {
            "videos": [e.name for e in kept],
            "labels": labels,
            "groups": [e.group for e in kept],
            "num_frames": [int(r["num_frames"]) for r in rec],
            "num_flow": num_flow,
            "length": [_sampling_length(int(r["num_frames"]), f) for r, f in zip(rec, num_flow)],
            "width": [int(r["width"]) for r in rec],
            "height": [int(r["height"]) for r in rec],
            "flow_clipped_fraction": [float((r.get("flow_stats") or {}).get("clipped_fraction", 0.0)) for r in rec],
        }
        counts[part] = {"total": len(kept),
                        "per_class": np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_class).tolist()}
    flow_settings = dict(settings["flow"])
    if flow_settings["source"] != "none":
        flow_settings.update(FLOW_FORMAT)
        flow_settings["bound"] = FLOW_BOUND
        if flow_settings["source"] == "tvl1":
            flow_settings["dir"] = "flow"
            flow_settings["algorithm"] = "TV-L1 (Zach et al. 2007), cv2.optflow.DualTVL1OpticalFlow, greyscale uint8 " \
                                         "frames, forward flow frame k -> k+1"
    expected = EXPECTED_COUNTS.get(label, {}).get(info.split)
    if expected is not None and (counts["train"]["total"], counts["test"]["total"]) != expected:
        log.warning("%s split %d: %d train / %d test videos prepared, the official split has %d / %d",
                    label, info.split, counts["train"]["total"], counts["test"]["total"], *expected)
    sizes = settings["size"]
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "dataset": label,
        "split": info.split,
        "num_class": num_class,
        "class_names": list(info.classes),
        "frames": {"dir": "frames", "pattern": "{video}/frame%06d.jpg", "channels": "RGB", "size": sizes,
                   "size_rule": "short side = size, both sides floored then made even (gpu_flow); none: as decoded",
                   "jpeg_quality": settings["jpeg_quality"]},
        "flow": flow_settings,
        "sampling_length": "length = min(num_flow, num_frames - 1) (num_frames - 1 without flow): flow frames a "
                           "sample may use, the reference's nFrames",
        "splits": splits,
        "counts": counts,
        "expected_counts": None if expected is None else {"train": expected[0], "test": expected[1]},
        "skipped": skipped,
        "split_files": [str(Path(f).resolve()) for f in info.files],
        "split_dir": str(split_dir.resolve()),
        "value_check": check_record(f"graphfuse prepare {label}", {}, ["frames", "flow"], VIDEO_CHECKS),
    }


def summarize(meta: dict[str, Any]) -> list[str]:
    """Lines the ``prepare`` command prints."""
    lines = [f"prepared {meta['dataset']} split {meta['split']} ({meta['num_class']} classes)"]
    exp = meta.get("expected_counts") or {}
    for part, c in meta["counts"].items():
        e = f" (official: {exp[part]})" if part in exp else ""
        lines.append(f"  {part:6s} {c['total']} videos{e}")
    flow = meta["flow"]
    lines.append(f"  flow: {flow['source']}" + (f" ({flow.get('dir')})" if flow.get("dir") else ""))
    if meta.get("skipped"):
        lines.append(f"  skipped {len(meta['skipped'])} bad videos (listed in meta.json), e.g. {meta['skipped'][0]['file']}")
    return lines

