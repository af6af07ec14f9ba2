"""Prepare an NTU RGB+D benchmark from the raw ``.skeleton`` files.

Equal to the official Shift-GCN ``data_gen/ntu_gendata.py`` / ``ntu120_gendata.py``
followed by ``preprocess.pre_normalization`` (and ``gen_bone_data.py`` /
``gen_motion_data.py`` for the optional stored streams), with these deliberate
differences (see ``docs/data_ntu.md``):

* files are taken in sorted name order (the official code uses ``os.listdir`` order);
* NTU60 benchmarks use only setups 1-17 and actions 1-60 when the raw directory also
  holds NTU120 files (the official script would take every file, with 120 labels);
* a sequence longer than ``max_frame`` frames is cut to its first ``max_frame`` frames
  after the body selection (the official script raises a broadcasting error);
* a file without any skeleton data is an error (or skipped and listed), not a zero sample;
* bad files raise an error naming the file and line, or are skipped and listed.

Output (``out/``): ``{train,test}_joint.npy`` float32 (N, 3, max_frame, 25, 2), optional
``{split}_{stream}.npy``, and ``meta.json`` (schema in ``docs/data_ntu.md``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing as mp
import os
import sys
import types
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from graphfuse.cpu_defaults import tune_glibc_allocator
from graphfuse.data.checks import NTU_CHECKS, check_record, fmt_value, resolve_bounds, stored_joint_limit
from graphfuse.data.ntu.streams import compute_stream
from graphfuse.io import open_npy_memmap, write_json

from .benchmarks import Benchmark, get_benchmark, load_missing_list, missing_skeletons
from .normalize import pre_normalize
from .reader import NUM_JOINTS, SkeletonFormatError, SkeletonSequence, _Joints, _read_joints, parse_ntu_name

__all__ = [
    "MAX_BODY_KINECT",
    "MAX_BODY_TRUE",
    "STREAMS",
    "EmptySkeletonError",
    "prepare_ntu",
    "process_file",
    "select_bodies",
]

log = logging.getLogger(__name__)

#: Body slots read per frame and bodies kept, as the official ``max_body_kinect`` / ``max_body_true``.
MAX_BODY_KINECT = 4
MAX_BODY_TRUE = 2
#: Streams that can be stored besides ``joint`` (computed by :func:`graphfuse.data.ntu.streams.compute_stream`).
STREAMS = ("bone", "joint_motion", "bone_motion")
FORMAT_VERSION = 1


class EmptySkeletonError(ValueError):
    """A file holds no skeleton data (no body, or only all-zero joints)."""


@dataclass
class _SampleInfo:
    num_frames: int
    total_frames: int
    dropped_bodies: int  # body records beyond the 4 slots the official reader keeps


def select_bodies(seq: SkeletonSequence | _Joints, max_frame: int = 300) -> tuple[np.ndarray, _SampleInfo]:
    """The official ``read_xyz`` body selection on a parsed file.

    Returns ``data``: (3, min(T, max_frame), 25, 2) float64 and info. Bodies are placed by
    their slot (order within the frame) in 4 slots; a slot's energy is, over its non-empty
    frames (coordinate sum != 0), the std of x plus the std of y plus the std of z, each over
    frames x joints (0 for an empty slot). The two slots of highest energy are kept, highest
    first. Ties go to the higher slot, as the official ``argsort()[::-1]`` does with numpy's
    (stable for 4 elements) introsort. Energy uses all frames, also those past ``max_frame``.
    """
    T = seq.num_frames
    keep = seq.body_slot < MAX_BODY_KINECT
    # Only the slots that occur (S <= 4) are built; an absent slot has energy 0 and no data.
    S = int(seq.body_slot[keep].max(initial=-1)) + 1
    dense = np.zeros((S, T, NUM_JOINTS, 3), dtype=np.float64)
    dense[seq.body_slot[keep], seq.body_frame[keep]] = seq.xyz[keep]
    valid = dense.sum(-1).sum(-1) != 0  # (S, T), the official get_nonzero_std frame test
    w = valid[:, :, None, None]
    count = np.maximum(valid.sum(1) * NUM_JOINTS, 1)[:, None]  # values per channel and slot
    mean = np.where(w, dense, 0.0).sum(axis=(1, 2)) / count  # (S, 3)
    var = np.where(w, (dense - mean[:, None, None, :]) ** 2, 0.0).sum(axis=(1, 2)) / count
    energy = np.zeros(MAX_BODY_KINECT)
    energy[:S] = np.where(valid.any(1), np.sqrt(var).sum(-1), 0.0)  # population std, as np.std
    order = np.argsort(energy, kind="stable")[::-1][:MAX_BODY_TRUE]
    Tm = min(T, max_frame)
    data = np.zeros((3, Tm, NUM_JOINTS, MAX_BODY_TRUE), dtype=np.float64)
    present = np.zeros((MAX_BODY_TRUE, Tm), dtype=bool)
    for k, slot in enumerate(order.tolist()):  # the two chosen slots
        if slot < S:
            data[..., k] = dense[slot, :Tm].transpose(2, 0, 1)
            present[k] = valid[slot, :Tm]
    num_frames = int(present.any(0).sum())
    return data, _SampleInfo(num_frames, T, int((~keep).sum()))


def _joint_line(seq: SkeletonSequence | _Joints, body: int, joint: int) -> int:
    """1-based line of a joint line (from the file layout: 27 lines per body record)."""
    return 1 + 2 + int(seq.body_frame[body]) + 27 * body + 2 + joint


def _read_sample(path: str | os.PathLike, max_frame: int,
                 joint_bound: tuple[float, float] = (-20.0, 20.0)) -> tuple[np.ndarray, _SampleInfo]:
    seq = _read_joints(path)  # the checks of read_skeleton, only the fields used here
    finite = np.isfinite(seq.xyz).all(-1)
    if not finite.all():
        b, j = np.argwhere(~finite)[0]
        raise SkeletonFormatError(path, _joint_line(seq, b, j), "non-finite joint coordinate")
    # Plausibility of the coordinates read (the bodies in the 4 slots of the official reader),
    # in float64 before the cast to float32: this also keeps them far inside float32's range.
    lo, hi = joint_bound
    bad = ((seq.xyz < lo) | (seq.xyz > hi)) & (seq.body_slot < MAX_BODY_KINECT)[:, None, None]
    if bad.any():
        b, j, c = np.argwhere(bad)[0]
        raise SkeletonFormatError(
            path, _joint_line(seq, b, j),
            f"joint {j} {'xyz'[c]} = {fmt_value(seq.xyz[b, j, c])} m is outside the plausible camera-space "
            f"range {fmt_value(lo)}..{fmt_value(hi)} m (bound joint_m; override with --bound joint_m=LO:HI)")
    data, info = select_bodies(seq, max_frame)
    if not data.any():
        if seq.num_bodies == 0:
            reason = f"no body in any of its {seq.num_frames} frames"
        elif info.total_frames > max_frame:
            reason = f"all joint coordinates in the first {max_frame} frames are zero"
        else:
            reason = "all joint coordinates are zero"
        raise EmptySkeletonError(f"{path}: no skeleton data ({reason})")
    return data, info


def process_file(path: str | os.PathLike, max_frame: int = 300) -> tuple[np.ndarray, int]:
    """One file as the official ``read_xyz`` reads it, before normalisation.

    Returns ``(data, num_frames)``: ``data`` (3, T, 25, 2) float64 with
    ``T = min(frames in the file, max_frame)``, the two bodies of highest energy; and the
    number of frames among those T in which one of the two bodies is present.
    Raises :class:`SkeletonFormatError` or :class:`EmptySkeletonError`.
    """
    data, info = _read_sample(path, max_frame)
    return data, info.num_frames


def meta_header(bench: Benchmark, max_frame: int, streams: Sequence[str]) -> dict[str, Any]:
    """The leading, dataset-level keys of a prepared directory's ``meta.json``."""
    return {
        "format_version": FORMAT_VERSION,
        "dataset": "ntu",
        "benchmark": bench.name,
        "num_class": bench.num_class,
        "layout": "N C T V M",
        "max_frame": max_frame,
        "num_joint": NUM_JOINTS,
        "num_person": MAX_BODY_TRUE,
        "streams": list(streams),
    }


# ---------------------------------------------------------------------------------------
# worker side
# ---------------------------------------------------------------------------------------

@dataclass
class _Task:
    split: str
    first: int  # index of the first file of the chunk within its split (= its row in the arrays)
    paths: list[str]
    max_frame: int
    joint_bound: tuple[float, float] = (-20.0, 20.0)
    arrays: dict[str, str] = field(default_factory=dict)  # stream -> the split's temporary .npy


@dataclass
class _Result:
    split: str
    first: int
    ok: list[int] = field(default_factory=list)  # positions within the chunk
    infos: list[_SampleInfo] = field(default_factory=list)
    errors: list[tuple[int, BaseException]] = field(default_factory=list)


def _pre_normalize(batch: np.ndarray) -> np.ndarray:
    """:func:`~graphfuse.data.ntu.normalize.pre_normalize` of ``batch`` (N, C, T, V, 2), faster.

    Samples whose second person is all zeros (one body, as most NTU actions) are normalised
    as one-person arrays: every step of the official pre-normalisation leaves an all-zero
    person as it is and computes the first person's values from the first person alone,
    so the result is the same, bit for bit, for half the work.
    """
    solo = ~batch[..., 1].any(axis=(1, 2, 3))
    if not solo.any():
        return pre_normalize(batch)
    out = np.zeros(batch.shape, dtype=np.float32)
    out[solo, ..., :1] = pre_normalize(batch[solo][..., :1])
    if not solo.all():
        out[~solo] = pre_normalize(batch[~solo])
    return out


def _work(task: _Task) -> _Result:
    """Read, select, normalise and write one chunk of files.

    Row ``first + k`` of each of the split's arrays receives file ``k`` of the chunk (zeros
    for a bad file; the main process drops those rows at the end), written by this worker
    through a memory map of the array, so only the small per-file results travel back.
    """
    res = _Result(task.split, task.first)
    arrays = []
    for k, path in enumerate(task.paths):  # a loop over files
        try:
            data, info = _read_sample(path, task.max_frame, task.joint_bound)
        except (ValueError, OSError) as exc:  # format errors, empty files, unreadable files
            res.errors.append((k, exc))
            continue
        res.ok.append(k)
        res.infos.append(info)
        arrays.append(data)
    batch = np.zeros((len(arrays), 3, task.max_frame, NUM_JOINTS, MAX_BODY_TRUE), dtype=np.float32)
    with np.errstate(over="ignore"):
        for i, a in enumerate(arrays):  # placement only; float64 -> float32 as the official fp[i] = data
            batch[i, :, : a.shape[1]] = a
    # Checked after the cast (a bound wider than float32 would let inf through) and after the
    # normalisation (stored joints within 2 sqrt(3) max|joint_m|); a failing file is a bad file.
    n = len(arrays)
    cast_ok = np.isfinite(batch).all(axis=(1, 2, 3, 4))
    normalised = _pre_normalize(batch if cast_ok.all() else batch[cast_ok])
    limit = np.float64(stored_joint_limit({"joint_m": task.joint_bound}))  # compared in float64
    stored_ok = np.zeros(n, dtype=bool)
    stored_ok[cast_ok] = (np.abs(normalised) <= limit).all(axis=(1, 2, 3, 4))
    for i in np.flatnonzero(~stored_ok):  # a loop over the bad files only
        k = res.ok[i]
        if not cast_ok[i]:
            a = arrays[i]
            with np.errstate(over="ignore"):
                v = a.reshape(-1)[np.argmin(np.isfinite(a.astype(np.float32)).reshape(-1))]
            reason = f"joint coordinate {fmt_value(v)} is not finite after the cast to float32"
        else:
            x = normalised[int(cast_ok[:i].sum())]
            v = x.reshape(-1)[np.argmax(~(np.abs(x) <= limit).reshape(-1))]
            reason = (f"normalised joint value {fmt_value(v)} m is outside the plausible range "
                      f"+-{limit:.4g} m (2 sqrt(3) max|joint_m|)")
        res.errors.append((k, ValueError(f"{task.paths[k]}: {reason}")))
    if not stored_ok.all():
        res.errors.sort(key=lambda e: e[0])  # file order, for on_error="raise"
        res.ok = [k for k, good in zip(res.ok, stored_ok) if good]
        res.infos = [info for info, good in zip(res.infos, stored_ok) if good]
    good = normalised[stored_ok[cast_ok]]
    if len(res.ok) == len(task.paths):
        block = good
    else:  # rows of the bad files stay zero
        block = np.zeros((len(task.paths), *good.shape[1:]), dtype=np.float32)
        block[res.ok] = good
    rows = slice(task.first, task.first + len(task.paths))
    for stream, tmp in task.arrays.items():
        out = np.lib.format.open_memmap(tmp, mode="r+")
        out[rows] = compute_stream(block, stream)
        out.flush()
        del out
    return res


#: glibc ``mallopt`` settings of the worker processes (:func:`graphfuse.cpu_defaults.tune_glibc_allocator`):
#: ``M_TRIM_THRESHOLD`` (-1) and ``M_MMAP_THRESHOLD`` (-3, at its maximum of 32 MiB). A file's
#: parse makes a few dozen arrays of about 1 MB; with glibc's defaults many of them are fresh
#: ``mmap`` regions, page-faulted in and unmapped again, which made the parse 2-3x slower. With
#: these, freed blocks stay in the heap for the next file. Workers are short-lived, so the heap
#: is not given back early.
_WORKER_MALLOPT = {"MALLOC_TRIM_THRESHOLD_": (-1, 2**31 - 1), "MALLOC_MMAP_THRESHOLD_": (-3, 32 * 2**20)}


def _init_worker() -> None:
    """Pool initializer: the allocator settings above (glibc only; ``GRAPHFUSE_MALLOC=default``,
    or the ``MALLOC_*`` variables in the environment, keep glibc's)."""
    tune_glibc_allocator(_WORKER_MALLOPT)


def _start_pool(processes: int) -> contextlib.AbstractContextManager:
    """A pool of ``processes`` workers that import this module and numpy only.

    forkserver, not fork: forking a process that runs threads (torch's, a progress bar's, a
    test runner's) can deadlock a worker on a lock copied mid-use. multiprocessing would
    also import the main module in the fork server (or in every worker), which for the
    ``graphfuse`` command means torch and Lightning: seconds per process, more than the
    preparation of a thousand files. The workers need nothing from it (:func:`_work` is
    found by its module), so ``__main__`` is replaced by an empty module while the pool
    starts its processes (the only moment multiprocessing reads it).
    """
    method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
    ctx = mp.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload([__name__])  # used when this process starts its fork server
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        return ctx.Pool(processes, initializer=_init_worker)
    finally:
        if main is not None:
            sys.modules["__main__"] = main


# ---------------------------------------------------------------------------------------
# main side
# ---------------------------------------------------------------------------------------

@dataclass
class _Split:
    names: list[str]
    paths: list[str]
    labels: list[int]
    arrays: dict[str, str] = field(default_factory=dict)  # stream -> temporary .npy (one row per file)
    kept_rows: list[int] = field(default_factory=list)
    kept_names: list[str] = field(default_factory=list)
    kept_labels: list[int] = field(default_factory=list)
    num_frames: list[int] = field(default_factory=list)


def _resolve_missing(bench: Benchmark, missing_list: Any) -> frozenset[str]:
    if missing_list is None:
        return missing_skeletons(bench)
    return load_missing_list(missing_list)


def _chunks(split: str, s: _Split, size: int, max_frame: int,
            joint_bound: tuple[float, float]) -> Iterable[_Task]:
    for i in range(0, len(s.paths), size):
        yield _Task(split, i, s.paths[i : i + size], max_frame, joint_bound, dict(s.arrays))


def prepare_ntu(
    root: str | os.PathLike,
    out: str | os.PathLike,
    benchmark: str | Benchmark,
    *,
    workers: int | None = None,
    on_error: Literal["raise", "skip"] = "raise",
    missing_list: str | os.PathLike | Iterable[str] | None = None,
    max_frame: int = 300,
    write_streams: Sequence[str] = (),
    progress: bool = True,
    bounds: Any = None,
) -> dict:
    """Prepare ``benchmark`` from the ``.skeleton`` files in ``root`` into ``out``.

    Args:
        root: directory holding ``*.skeleton`` files (NTU60 or NTU120 release, or synthetic).
        out: output directory (created); existing files of the same names are replaced.
        benchmark: a name of :data:`~graphfuse.data.ntu.benchmarks.BENCHMARKS` or a Benchmark.
        workers: processes reading files in parallel (None: all cores; 1: in this process).
        on_error: ``"raise"`` stops at the first bad file (training files first, then test
            files, each in sorted order) with an error naming it; ``"skip"`` leaves bad
            files out and lists them in ``meta["skipped"]``.
        missing_list: sample ids to exclude: None for the benchmark's official list, a path
            to a list file, or an iterable of ids (empty: exclude nothing).
        max_frame: frames per sample (official 300); longer files are cut after body selection.
        write_streams: derived streams to store as well: ``bone``, ``joint_motion``,
            ``bone_motion`` (computed from the normalised joints).
        progress: show a progress bar.
        bounds: plausibility bounds overriding :data:`graphfuse.data.checks.DEFAULT_BOUNDS`
            (``{"joint_m": (-25, 25)}`` or ``["joint_m=-25:25"]``). A file whose camera-space
            joints (of the bodies read) leave ``joint_m`` on any axis, or whose values are
            not finite after the cast to float32, is a bad file (an error, or skipped and
            listed with ``on_error="skip"``). The check is recorded in ``meta["value_check"]``.

    Returns the ``meta.json`` content. Arrays are written through memory maps, one chunk
    of samples at a time, to temporary names that are renamed when complete.
    """
    bench = get_benchmark(benchmark)
    bounds = resolve_bounds(bounds)
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    streams = list(dict.fromkeys(write_streams))
    unknown = [s for s in streams if s not in STREAMS]
    if unknown:
        raise ValueError(f"unknown streams {unknown}; choose from {list(STREAMS)}")
    if int(max_frame) < 1:
        raise ValueError(f"max_frame must be >= 1, got {max_frame}")
    max_frame = int(max_frame)
    root = Path(root)
    out = Path(out)
    if not root.is_dir():
        raise FileNotFoundError(f"NTU raw directory not found: {root}")
    files = sorted(p for p in root.glob("*.skeleton") if p.is_file())
    if not files:
        raise FileNotFoundError(f"no .skeleton files in {root}")
    missing = _resolve_missing(bench, missing_list)
    workers = (os.cpu_count() or 1) if workers is None else max(1, int(workers))

    skipped: list[dict[str, str]] = []
    splits = {"train": _Split([], [], []), "test": _Split([], [], [])}
    excluded = out_of_scope = 0
    for p in files:
        name = p.name[: -len(".skeleton")]
        try:
            action = parse_ntu_name(name)[4]
        except ValueError as exc:
            if on_error == "raise":
                raise ValueError(f"{p}: {exc}") from None
            skipped.append({"file": p.name, "reason": str(exc)})
            continue
        if not bench.in_scope(name):
            out_of_scope += 1
            continue
        if name in missing:
            excluded += 1
            continue
        s = splits[bench.split_of(name)]
        s.names.append(name)
        s.paths.append(str(p))
        s.labels.append(action - 1)
    if out_of_scope:
        msg = (f"{out_of_scope} of {len(files)} files in {root} are outside {bench.name} "
               f"(setup > {bench.max_setup} or action > {bench.max_action}) and are not used")
        log.info(msg)
        if progress:
            print(msg, file=sys.stderr)
    total = sum(len(s.names) for s in splits.values())
    if total == 0:
        raise ValueError(f"no sample of {bench.name} in {root} ({len(files)} .skeleton files, "
                         f"{excluded} on the missing-skeleton list, {out_of_scope} out of scope)")

    out.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        (out / "meta.json").unlink()  # written last: never describes half-replaced arrays
    shape_tail = (3, max_frame, NUM_JOINTS, MAX_BODY_TRUE)
    all_streams = ["joint", *streams]
    chunk = max(1, min(32, math.ceil(total / (4 * workers))))
    truncated: list[str] = []
    dropped: list[str] = []
    from graphfuse.io import check_free_space  # every array at once: one error with the whole need

    check_free_space(out, sum(len(s.names) for s in splits.values()) * len(all_streams)
                     * math.prod(shape_tail) * np.dtype(np.float32).itemsize, out)

    try:
        for split, s in splits.items():
            for st in all_streams:
                if s.names:  # created (blocks reserved) here, filled by the workers
                    arr = open_npy_memmap(out / f"{split}_{st}.npy", (len(s.names), *shape_tail))
                    s.arrays[st] = arr.filename
                    del arr
        tasks = [t for split, s in splits.items()
                 for t in _chunks(split, s, chunk, max_frame, bounds["joint_m"])]
        from tqdm import tqdm

        with contextlib.ExitStack() as stack:
            if workers > 1 and len(tasks) > 1:
                # The pool is started before the progress bar's monitor thread exists.
                # forkserver, not fork: forking a process that runs threads (torch's, a progress
                # bar's, a test runner's) can deadlock a worker on a lock copied mid-use.
                pool = stack.enter_context(_start_pool(min(workers, len(tasks))))
                results = pool.imap(_work, tasks)
            else:
                results = map(_work, tasks)
            bar = stack.enter_context(tqdm(total=total, disable=not progress, unit="file",
                                           desc=f"prepare {bench.name}"))
            for res in results:
                s = splits[res.split]
                for k, exc in res.errors:
                    if on_error == "raise":
                        raise exc
                    skipped.append({"file": Path(s.paths[res.first + k]).name, "reason": str(exc)})
                for k, info in zip(res.ok, res.infos):  # the rows the worker wrote
                    i = res.first + k
                    s.kept_rows.append(i)
                    s.kept_names.append(s.names[i])
                    s.kept_labels.append(s.labels[i])
                    s.num_frames.append(info.num_frames)
                    if info.total_frames > max_frame:
                        truncated.append(s.names[i])
                    if info.dropped_bodies:
                        dropped.append(s.names[i])
                bar.update(len(res.ok) + len(res.errors))
        _finish_arrays(out, splits, all_streams, shape_tail)
    except BaseException:
        for s in splits.values():
            for tmp in s.arrays.values():
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
        raise

    if truncated:
        log.warning("%d samples had more than %d frames and were cut to %d (e.g. %s)",
                    len(truncated), max_frame, max_frame, truncated[0])
    if dropped:
        log.warning("%d samples had more than %d bodies in a frame; bodies after the %dth were not "
                    "read, as in the official code (e.g. %s)", len(dropped), MAX_BODY_KINECT,
                    MAX_BODY_KINECT, dropped[0])
    from graphfuse import __version__

    meta: dict[str, Any] = {
        **meta_header(bench, max_frame, all_streams),
        "splits": {
            split: {
                "files": {st: f"{split}_{st}.npy" for st in all_streams},
                "samples": s.kept_names,
                "labels": s.kept_labels,
                "num_frames": s.num_frames,
            }
            for split, s in splits.items()
        },
        "counts": {
            split: {
                "samples": len(s.kept_names),
                "per_class": np.bincount(np.asarray(s.kept_labels, dtype=np.int64),
                                         minlength=bench.num_class).tolist(),
            }
            for split, s in splits.items()
        },
        "skipped": skipped,
        "excluded_missing_skeletons": excluded,
        "source": {"root": str(root.resolve()), "graphfuse_version": __version__},
        "value_check": check_record("prepare", {"joint_m": bounds["joint_m"]},
                                    [f"{split}_{st}.npy" for split in splits for st in all_streams],
                                    NTU_CHECKS),
    }
    write_json(out / "meta.json", meta)
    return meta


def _finish_arrays(out: Path, splits: dict[str, _Split], streams: list[str], shape_tail: tuple) -> None:
    """Drop the rows of bad files (when files were skipped) and rename every array to its final name."""
    from graphfuse.io import save_npy

    for split, s in splits.items():
        for st in streams:
            final = out / f"{split}_{st}.npy"
            if not s.kept_rows:
                save_npy(final, np.zeros((0, *shape_tail), dtype=np.float32))
                if st in s.arrays:
                    os.unlink(s.arrays.pop(st))
                continue
            tmp = s.arrays[st]
            if len(s.kept_rows) < len(s.names):
                # Copy the kept rows, in order, into an array of the right size, a chunk at a time.
                full = np.lib.format.open_memmap(tmp, mode="r")
                small = open_npy_memmap(final, (len(s.kept_rows), *shape_tail))
                s.arrays[f"{st}.shrunk"] = small.filename  # removed with the other temporaries on failure
                rows = np.asarray(s.kept_rows, dtype=np.int64)
                step = 64
                for i in range(0, rows.size, step):
                    small[i:i + step] = full[rows[i:i + step]]
                small.flush()
                del full
                os.unlink(tmp)
                tmp = small.filename
                del small, s.arrays[f"{st}.shrunk"]
            os.replace(tmp, final)
            del s.arrays[st]
