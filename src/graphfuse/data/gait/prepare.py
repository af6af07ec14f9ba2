"""``graphfuse prepare casia-b`` / ``oumvlp``: silhouette folders -> one uint8 frame array.

The prepared folder (the gait contract; read by :class:`graphfuse.data.gait.sequences.GaitSequences`):

* ``frames.npy``: uint8 ``(F, S, S)``, every kept frame of every sequence, pretreated as
  GaitSet/OpenGait (:mod:`graphfuse.data.gait.pretreat`), memory-mappable;
* ``offsets.npy``: int64 ``(N + 1,)``, sequence ``i`` = ``frames[offsets[i]:offsets[i + 1]]``;
* ``meta.json``: ids, types, views and frame counts (sorted by id, type, view), the partition,
  the pretreatment settings, short / empty / skipped sequences, the value-check record.

Sequences are read and pretreated in a process pool (one task per sequence) and written in
order through a memory map (:func:`graphfuse.io.open_npy_memmap`) sized by an upper bound (the
PNG count, or the pickles' byte sizes); the unused tail is cut off in place (the ``.npy``
header is rewritten with the true frame count, no copy) before the rename to ``frames.npy``.
``meta.json`` is removed first and written last, so it never describes half-written arrays.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from graphfuse.data.gait.readers import GaitDataError
from graphfuse.data.gait.sequences import FORMAT, VERSION

__all__ = [
    "CASIA_B_TEST",
    "CASIA_B_TRAIN",
    "GAIT_CHECKS",
    "MIN_POOL_SEQUENCES",
    "SHORT_SEQUENCE",
    "add_casia_b_arguments",
    "add_oumvlp_arguments",
    "official_casia_b_partition",
    "oumvlp_partition",
    "prepare_casia_b",
    "prepare_oumvlp",
    "run_casia_b",
    "run_oumvlp",
    "summarize",
    "write_prepared",
]

#: Official CASIA-B partition (OpenGait ``datasets/CASIA-B/CASIA-B.json``): 74 / 50 ids, 005 included.
CASIA_B_TRAIN: tuple[str, ...] = tuple(f"{i:03d}" for i in range(1, 75))
CASIA_B_TEST: tuple[str, ...] = tuple(f"{i:03d}" for i in range(75, 125))
#: With ``workers=None``, fewer sequences than this are prepared in-process (no pool to start).
MIN_POOL_SEQUENCES = 32
#: OpenGait warns about sequences with fewer frames than this; they are kept and listed.
SHORT_SEQUENCE = 5
GAIT_CHECKS = (
    "every frame decoded as an 8-bit grayscale PNG (signature checked) or read from a uint8 (T, S, S) pickle",
    "stored frames uint8 (0..255 by type: nothing can be non-finite or out of range)",
    "frame counts and offsets agree; every written sequence has at least one frame",
)


def official_casia_b_partition() -> dict[str, list[str]]:
    """CASIA-B's official 74/50 partition as OpenGait: 001-074 train (005 included), 075-124 test."""
    return {"train": list(CASIA_B_TRAIN), "test": list(CASIA_B_TEST)}


def oumvlp_partition(ids: Iterable[str]) -> dict[str, list[str]]:
    """OU-MVLP's partition as OpenGait's ``datasets/OUMVLP/OUMVLP.json``: the odd ids 00001-10305
    train (5,153), the even ids and the last id 10307 test (5,154)."""
    train, test = [], []
    for i in sorted(set(ids)):
        n = int(i)
        (train if n % 2 == 1 and n < 10307 else test).append(i)
    return {"train": train, "test": test}


# ---- writing the prepared folder -----------------------------------------------------------------

class _FrameWriter:
    """Appends ``(T, S, S)`` uint8 blocks to a ``.npy`` memory map opened for at most ``bound``
    frames; :meth:`finish` cuts the file to the frames written and renames it onto ``frames.npy``.
    Used as a context manager: on an exception the temporary file is removed."""

    def __init__(self, out: Path, bound: int, size: int) -> None:
        from graphfuse.io import open_npy_memmap

        self.out = out
        self.size = size
        self.bound = int(bound)
        self.written = 0
        self.lengths: list[int] = []
        self._arr: np.memmap | None = open_npy_memmap(out / "frames.npy", (max(self.bound, 0), size, size),
                                                      np.uint8)
        self._tmp = Path(self._arr.filename)

    def __enter__(self) -> _FrameWriter:  # noqa: PYI034
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self._arr = None
            with contextlib.suppress(OSError):
                self._tmp.unlink()

    def append(self, frames: np.ndarray, where: str) -> None:
        t = int(frames.shape[0])
        if frames.dtype != np.uint8 or frames.shape[1:] != (self.size, self.size):
            raise ValueError(f"{where}: frames are {frames.dtype} {frames.shape}, expected uint8 "
                             f"(T, {self.size}, {self.size})")
        if self.written + t > self.bound:  # the bound is exact or an over-estimate; never exceeded
            raise ValueError(f"{where}: more frames than the bound of {self.bound} computed when listing")
        assert self._arr is not None
        self._arr[self.written:self.written + t] = frames
        self.written += t
        self.lengths.append(t)

    def finish(self) -> np.ndarray:
        """Flush, cut to the frames written, rename to ``frames.npy``; write ``offsets.npy``."""
        from graphfuse.io import output_error, save_npy

        assert self._arr is not None
        self._arr.flush()
        self._arr = None  # closes the map (numpy drops it with the last reference)
        try:
            if self.written < self.bound:
                _shrink_npy(self._tmp, (self.written, self.size, self.size))
            os.replace(self._tmp, self.out / "frames.npy")
        except OSError as exc:
            raise output_error(exc, self.out / "frames.npy") from exc
        offsets = np.zeros(len(self.lengths) + 1, dtype=np.int64)
        np.cumsum(np.asarray(self.lengths, dtype=np.int64), out=offsets[1:])
        save_npy(self.out / "offsets.npy", offsets)
        return offsets


def _shrink_npy(path: Path, shape: tuple[int, ...]) -> None:
    """Cut the C-order ``.npy`` file ``path`` to its first ``shape[0]`` rows in place: the header
    is rewritten with the new shape, padded to its old length (numpy pads headers so that the
    shape can grow), and the file truncated. Raises ValueError if the header would not fit."""
    with open(path, "r+b") as fh:
        version = np.lib.format.read_magic(fh)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        _, fortran, dtype = read(fh)
        offset = fh.tell()
        if fortran:
            raise ValueError(f"{path}: not a C-order array")
        length_bytes = 2 if version == (1, 0) else 4
        text_len = offset - 6 - 2 - length_bytes
        text = repr({"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                     "shape": tuple(int(n) for n in shape)})
        if len(text) + 1 > text_len:
            raise ValueError(f"{path}: the new header does not fit in the old one")
        fh.seek(offset - text_len)
        fh.write((text + " " * (text_len - 1 - len(text)) + "\n").encode("latin1"))
        fh.truncate(offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize)
    check = np.load(path, mmap_mode="r", allow_pickle=False)
    if check.shape != tuple(shape) or check.offset != offset:
        raise ValueError(f"{path}: rewriting the header failed (shape {check.shape}, expected {shape})")


def _default_pretreatment(size: int, source: str = "png", dropped: int = 0) -> dict[str, Any]:
    from graphfuse.data.gait.pretreat import PIXEL_THRESHOLD

    return {"source": source, "pixel_threshold": PIXEL_THRESHOLD, "interpolation": "cv2.INTER_CUBIC",
            "size": int(size), "side_cut": int(size) // 64 * 10, "dropped_frames": int(dropped)}


def _check_partition(partition: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    if not isinstance(partition, Mapping) or not all(k in partition for k in ("train", "test")):
        raise ValueError("partition must be a mapping with 'train' and 'test' id lists")
    train, test = (sorted({str(i) for i in partition[k]}) for k in ("train", "test"))
    both = set(train) & set(test)
    if both:
        raise ValueError(f"ids in both partition train and test: {sorted(both)[:5]}")
    return {"train": train, "test": test}


def _build_meta(*, dataset: str, protocol: str, size: int, keys: Sequence[tuple[str, str, str]],
                lengths: Sequence[int], partition: dict[str, list[str]], excluded: Sequence[str],
                pretreatment: Mapping[str, Any], empty: Sequence[Mapping[str, Any]] = (),
                skipped: Sequence[Mapping[str, Any]] = (), extra: Mapping[str, Any] | None = None,
                ) -> dict[str, Any]:
    from graphfuse import __version__
    from graphfuse.data.checks import check_record

    present = {k[0] for k in keys}
    part = {"train": [i for i in partition["train"] if i in present],
            "test": [i for i in partition["test"] if i in present]}
    short = [{"id": k[0], "type": k[1], "view": k[2], "frames": int(t)}
             for k, t in zip(keys, lengths) if t < SHORT_SEQUENCE]
    meta: dict[str, Any] = {
        "format": FORMAT, "version": VERSION, "dataset": dataset, "protocol": protocol,
        "size": int(size), "num_sequences": len(keys), "num_frames": int(sum(int(t) for t in lengths)),
        "sequences": {"id": [k[0] for k in keys], "type": [k[1] for k in keys], "view": [k[2] for k in keys],
                      "frames": [int(t) for t in lengths]},
        "partition": part,
        "excluded": sorted(excluded),
        "short_sequences": short,
        "empty_sequences": list(empty),
        "skipped": list(skipped),
        "pretreatment": dict(pretreatment),
        "num_class": len(part["train"]),
        **(dict(extra) if extra else {}),
        "value_check": check_record("prepare", {}, ["frames.npy"], GAIT_CHECKS),
        "graphfuse_version": __version__,
    }
    return meta


def _clear_meta(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        (out / "meta.json").unlink()  # written last: never describes half-replaced arrays


def write_prepared(
    out: str | os.PathLike,
    frames_list: Sequence[np.ndarray],
    ids: Sequence[str],
    types: Sequence[str],
    views: Sequence[str],
    partition: Mapping[str, Sequence[str]] | None = None,
    pretreatment: Mapping[str, Any] | None = None,
    *,
    dataset: str = "casia-b",
    protocol: str | None = None,
    excluded: Sequence[str] = (),
    empty_sequences: Sequence[Mapping[str, Any]] = (),
    skipped: Sequence[Mapping[str, Any]] = (),
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write already-pretreated sequences as a prepared gait folder (atomic files; returns the meta).

    Args:
        out: the folder (created).
        frames_list: one uint8 ``(T, S, S)`` array per sequence (``T >= 1``, one ``S`` for all).
        ids, types, views: one string per sequence; sequences are written sorted by (id, type, view).
        partition: ``{"train": [...], "test": [...]}``; None: CASIA-B's official 74/50 for a
            CASIA-B protocol, OU-MVLP's odd/even rule for ``protocol="oumvlp"``. Only the ids
            present are recorded.
        pretreatment: the ``meta["pretreatment"]`` record (missing keys get the defaults:
            source ``png``, threshold 10000, ``cv2.INTER_CUBIC``, side cut ``S // 64 * 10``).
        dataset: ``casia-b``, ``oumvlp`` or ``synthetic-casia-b``.
        protocol: the evaluation protocol (``casia-b``/``oumvlp``); None: ``oumvlp`` for the
            dataset ``oumvlp``, else ``casia-b``.
        excluded, empty_sequences, skipped: recorded as given.
        extra: more keys for ``meta.json``.
    """
    out = Path(out)
    n = len(frames_list)
    if not (len(ids) == len(types) == len(views) == n):
        raise ValueError(f"{out}: {n} frame arrays but {len(ids)} ids, {len(types)} types, {len(views)} views")
    if n == 0:
        raise ValueError(f"{out}: no sequence to write")
    arrays = [np.asarray(a) for a in frames_list]
    size = int(arrays[0].shape[-1]) if arrays[0].ndim == 3 else -1
    keys = [(str(i), str(t), str(v)) for i, t, v in zip(ids, types, views)]
    for k, a in zip(keys, arrays):
        if a.dtype != np.uint8 or a.ndim != 3 or a.shape[1:] != (size, size) or a.shape[0] < 1:
            raise ValueError(f"{out}: sequence {'/'.join(k)}: expected uint8 (T>=1, {size}, {size}), "
                             f"got {a.dtype} {a.shape}")
    if len(set(keys)) != n:
        raise ValueError(f"{out}: a sequence (id, type, view) is listed twice")
    protocol = protocol or ("oumvlp" if dataset == "oumvlp" else "casia-b")
    if partition is None:
        partition = oumvlp_partition(ids) if protocol == "oumvlp" else official_casia_b_partition()
    part = _check_partition(partition)
    order = sorted(range(n), key=lambda i: keys[i])
    pre = {**_default_pretreatment(size), **dict(pretreatment or {})}
    _clear_meta(out)
    with _FrameWriter(out, sum(a.shape[0] for a in arrays), size) as writer:
        for i in order:
            writer.append(arrays[i], "/".join(keys[i]))
        writer.finish()
    meta = _build_meta(dataset=dataset, protocol=protocol, size=size, keys=[keys[i] for i in order],
                       lengths=writer.lengths, partition=part, excluded=excluded, pretreatment=pre,
                       empty=empty_sequences, skipped=skipped, extra=extra)
    from graphfuse.io import write_json

    write_json(out / "meta.json", meta)
    return meta


# ---- preparation from the original folders -------------------------------------------------------

@dataclass
class _Result:
    """What a worker returns for one sequence (errors as messages: the parent decides)."""

    index: int
    frames: np.ndarray | None
    read: int = 0
    below_threshold: int = 0
    no_centre: int = 0
    error: str | None = None
    empty: bool = False
    skipped: tuple[dict[str, str], ...] = ()


def _init_worker() -> None:
    from graphfuse.data.gait.readers import cv2_module

    cv2_module().setNumThreads(1)  # one process per core already


def _work(task: tuple[int, Any, int, bool]) -> _Result:
    """Read and pretreat one sequence (runs in a worker process)."""
    from graphfuse.data.gait.pretreat import pretreat_frames
    from graphfuse.data.gait.readers import read_sequence

    index, source, size, skip_bad = task
    try:
        data, names, skipped = read_sequence(source, size=size, skip_bad=skip_bad)
        if source.kind == "pkl":
            return _Result(index, data, read=int(data.shape[0]))
        res = pretreat_frames(data, size, names)
    except (ValueError, OSError) as exc:
        return _Result(index, None, error=str(exc))
    if res.frames.shape[0] == 0:
        what = "no PNG frame could be read" if not names else (
            f"empty sequence: all {len(names)} frames dropped by the pretreatment ({res.below_threshold} with a "
            f"pixel sum <= 10000, {res.no_centre} without a centre column)")
        return _Result(index, None, read=len(names), below_threshold=res.below_threshold, no_centre=res.no_centre,
                       error=f"{source.path}: {what}", empty=True, skipped=tuple(skipped))
    return _Result(index, res.frames, read=len(names), below_threshold=res.below_threshold,
                   no_centre=res.no_centre, skipped=tuple(skipped))


def _normalise_ids(ids: Iterable[Any], digits: int) -> list[str]:
    out = []
    for i in ids:
        s = str(i).strip()
        if not s.isdigit():
            raise ValueError(f"subject id {i!r}: expected digits, e.g. {'0' * (digits - 1)}5")
        out.append(s.zfill(digits))
    return sorted(set(out))


def _results(tasks: list, workers: int, progress: bool, desc: str) -> Iterator[_Result]:
    from tqdm import tqdm

    with contextlib.ExitStack() as stack:
        if workers > 1 and len(tasks) > 1:
            # forkserver, not fork: forking a process that runs threads (torch's, a progress
            # bar's, a test runner's) can deadlock a worker on a lock copied mid-use.
            method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
            pool = stack.enter_context(mp.get_context(method).Pool(min(workers, len(tasks)), _init_worker))
            results = pool.imap(_work, tasks, chunksize=max(1, min(8, len(tasks) // (8 * workers))))
        else:
            results = map(_work, tasks)
        bar = stack.enter_context(tqdm(total=len(tasks), disable=not progress, unit="seq", desc=desc))
        for res in results:
            yield res
            bar.update(1)


def _prepare(sources: list, listing_skipped: list[dict[str, str]], out: Path, *, root: Path, size: int,
             dataset: str, protocol: str, partition: dict[str, list[str]], excluded: list[str], skip_bad: bool,
             workers: int | None, progress: bool) -> dict[str, Any]:
    from graphfuse.data.gait.pretreat import _check_size

    size = _check_size(size)
    keep_ids = (set(partition["train"]) | set(partition["test"])) - set(excluded)
    present = {s.id for s in sources}
    unassigned = sorted(present - set(partition["train"]) - set(partition["test"]) - set(excluded))
    sources = [s for s in sources if s.id in keep_ids]
    if not sources:
        raise ValueError(f"{root}: no sequence left to prepare ({len(present)} ids found, excluded "
                         f"{excluded or 'none'}, {len(unassigned)} outside the partition)")
    kind = sources[0].kind
    bounds = [s.bound if kind == "png" else os.path.getsize(s.path) // (size * size) for s in sources]
    if workers is None:  # a pool costs a second or more to start (its workers import the main module)
        workers = (os.cpu_count() or 1) if len(sources) >= MIN_POOL_SEQUENCES else 1
    workers = max(1, int(workers))
    skipped = list(listing_skipped)
    empty: list[dict[str, Any]] = []
    keys: list[tuple[str, str, str]] = []
    read = below = no_centre = 0
    tasks = [(i, s, size, skip_bad) for i, s in enumerate(sources)]
    _clear_meta(out)
    with _FrameWriter(out, sum(bounds), size) as writer, \
            contextlib.closing(_results(tasks, workers, progress, f"prepare {dataset}")) as results:
        for res in results:
            src = sources[res.index]
            skipped.extend(res.skipped)
            read += res.read
            below += res.below_threshold
            no_centre += res.no_centre
            if res.error is not None:
                if res.empty:
                    empty.append({"id": src.id, "type": src.type, "view": src.view, "path": src.path,
                                  "frames_read": res.read})
                if not skip_bad:
                    raise GaitDataError(f"{res.error} (--skip-bad skips and lists it)")
                skipped.append({"path": src.path, "reason": res.error.removeprefix(f"{src.path}: ")})
                continue
            assert res.frames is not None
            writer.append(res.frames, src.path)
            keys.append(src.key)
        if not keys:
            raise GaitDataError(f"{root}: every sequence was skipped ({len(skipped)} skipped; see --skip-bad)")
        writer.finish()
    pre = _default_pretreatment(size, "png" if kind == "png" else "opengait-pkl", below + no_centre)
    pre.update({"frames_read": read, "dropped_below_threshold": below, "dropped_no_centre": no_centre})
    if kind == "pkl":
        pre["note"] = ("pretreated by OpenGait's datasets/pretreatment.py; the frames it dropped are unknown "
                       "(dropped_frames counts nothing)")
    meta = _build_meta(dataset=dataset, protocol=protocol, size=size, keys=keys, lengths=writer.lengths,
                       partition=partition, excluded=excluded, pretreatment=pre, empty=empty, skipped=skipped,
                       extra={"not_in_partition": unassigned, "source": {"root": str(root.resolve())}})
    from graphfuse.io import write_json

    write_json(out / "meta.json", meta)
    return meta


def _listed(lister: Any, root: Path, skip_bad: bool, **kwargs: Any) -> tuple[list, list[dict[str, str]]]:
    """``lister(root, skip_bad=..., **kwargs)``; a bad folder's error says how to skip it."""
    try:
        return lister(root, skip_bad=skip_bad, **kwargs)
    except GaitDataError as exc:
        if skip_bad or ("naming scheme" not in str(exc) and "empty sequence" not in str(exc)):
            raise
        raise GaitDataError(f"{exc} (--skip-bad skips and lists it)") from None


def _source_of(from_pkl: bool | None) -> str:
    return "auto" if from_pkl is None else ("pkl" if from_pkl else "png")


def prepare_casia_b(
    root: str | os.PathLike,
    out: str | os.PathLike,
    *,
    size: int = 64,
    exclude: Iterable[str] = (),
    partition: Mapping[str, Sequence[str]] | None = None,
    skip_bad: bool = False,
    workers: int | None = None,
    dataset: str = "casia-b",
    from_pkl: bool | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Prepare CASIA-B (``<root>/<id>/<type>/<view>/*.png``, or OpenGait's ``<view>.pkl`` folders).

    Args:
        root: the silhouette folder as distributed (or OpenGait's pretreated output).
        out: the prepared folder (created; ``frames.npy``, ``offsets.npy``, ``meta.json`` replaced).
        size: the frame side ``S`` (64 as GaitSet; 128 for GLN's 128x88 input). An even number.
        exclude: ids left out entirely (``["005"]`` as the original GaitSet); recorded in
            ``meta["excluded"]``. Digits are zero-padded (``5`` -> ``005``).
        partition: ``{"train": [...], "test": [...]}``; None: the official 001-074 / 075-124.
            Ids in neither list are not written (listed in ``meta["not_in_partition"]``).
        skip_bad: skip and list bad input in ``meta["skipped"]`` instead of raising (a bad PNG
            skips its frame; a bad folder, pickle or an empty sequence skips the sequence).
        workers: processes reading and pretreating sequences (None: all cores, or in-process for
            fewer than :data:`MIN_POOL_SEQUENCES` sequences; 1: in-process).
        dataset: ``casia-b`` or ``synthetic-casia-b`` (recorded; the protocol is CASIA-B's).
        from_pkl: True: OpenGait's pickles; False: PNGs; None: detect (a view folder of ``.pkl``).
        progress: show a progress bar on stderr.

    Returns the ``meta.json`` content. Raises GaitDataError (a ValueError) or OSError naming the
    path on bad input, FileNotFoundError for a missing ``root``.
    """
    from graphfuse.data.gait.readers import list_casia_b

    root, out = Path(root), Path(out)
    excluded = _normalise_ids(exclude, 3)
    part = _check_partition(official_casia_b_partition() if partition is None else partition)
    sources, skipped = _listed(list_casia_b, root, skip_bad, source=_source_of(from_pkl))
    return _prepare(sources, skipped, out, root=root, size=size, dataset=dataset, protocol="casia-b",
                    partition=part, excluded=excluded, skip_bad=skip_bad, workers=workers, progress=progress)


def prepare_oumvlp(
    root: str | os.PathLike,
    out: str | os.PathLike,
    *,
    size: int = 64,
    layout: str = "auto",
    exclude: Iterable[str] = (),
    partition: Mapping[str, Sequence[str]] | None = None,
    skip_bad: bool = False,
    workers: int | None = None,
    from_pkl: bool | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Prepare OU-MVLP, as distributed (``Silhouette_<view>-<seq>/<id>/*.png``) or in OpenGait's
    rearranged layout (``<id>/<seq>/<view>/``, PNGs or ``<view>.pkl``); ``layout``: ``auto``,
    ``distributed``, ``opengait``. Types are the sequence numbers ``00``/``01``; the partition
    defaults to OpenGait's (:func:`oumvlp_partition`: odd ids train, even ids and 10307 test);
    the protocol is ``oumvlp``. Other arguments as :func:`prepare_casia_b`."""
    from graphfuse.data.gait.readers import list_oumvlp

    root, out = Path(root), Path(out)
    excluded = _normalise_ids(exclude, 5)
    sources, skipped = _listed(list_oumvlp, root, skip_bad, layout=layout, source=_source_of(from_pkl))
    part = _check_partition(oumvlp_partition({s.id for s in sources}) if partition is None else partition)
    return _prepare(sources, skipped, out, root=root, size=size, dataset="oumvlp", protocol="oumvlp",
                    partition=part, excluded=excluded, skip_bad=skip_bad, workers=workers, progress=progress)


# ---- command line ----------------------------------------------------------------------------------

def summarize(meta: Mapping[str, Any]) -> list[str]:
    """Lines of the summary ``graphfuse prepare casia-b`` / ``oumvlp`` prints."""
    pre = meta["pretreatment"]
    part = meta["partition"]
    lines = [
        f"{meta['dataset']}: {meta['num_sequences']} sequences, {meta['num_frames']} frames of "
        f"{meta['size']}x{meta['size']} ({pre['source']}); train {len(part['train'])} ids, "
        f"test {len(part['test'])} ids" + (f", excluded {', '.join(meta['excluded'])}" if meta["excluded"] else ""),
        (f"dropped frames: {pre['dropped_frames']} (pixel sum <= {pre['pixel_threshold']}: "
         f"{pre.get('dropped_below_threshold', 0)}, no centre column: {pre.get('dropped_no_centre', 0)})"),
        f"short sequences (< {SHORT_SEQUENCE} frames, kept): {len(meta['short_sequences'])}",
        f"skipped: {len(meta['skipped'])}" + (f" (e.g. {meta['skipped'][0]['path']}: {meta['skipped'][0]['reason']})"
                                              if meta["skipped"] else ""),
    ]
    if meta.get("not_in_partition"):
        lines.append(f"ids outside the partition, not written: {len(meta['not_in_partition'])}")
    return lines


def _size_arg(text: str) -> int:
    try:
        size = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 64 or 128, got {text!r}") from None
    if size not in (64, 128):
        raise argparse.ArgumentTypeError(f"expected 64 or 128, got {size}")
    return size


def _common_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--root", required=True, help=f"{what} silhouette folder (or OpenGait's .pkl folders)")
    parser.add_argument("--out", required=True, help="prepared folder (frames.npy, offsets.npy, meta.json)")
    parser.add_argument("--size", type=_size_arg, default=64,
                        help="frame side S: 64 (GaitSet, 64x44 after the side cut) or 128 (GLN, 128x88)")
    parser.add_argument("--exclude", nargs="+", default=[], metavar="ID", help="subject ids left out entirely")
    parser.add_argument("--skip-bad", action="store_true",
                        help="skip and list bad input (meta.json 'skipped') instead of stopping at the first")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    parser.add_argument("--from-pkl", action="store_true", default=None,
                        help="read OpenGait's pretreated <view>.pkl files (default: detected)")


def add_casia_b_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``graphfuse prepare casia-b``."""
    _common_arguments(parser, "CASIA-B")


def add_oumvlp_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``graphfuse prepare oumvlp``."""
    _common_arguments(parser, "OU-MVLP")
    parser.add_argument("--layout", choices=("auto", "distributed", "opengait"), default="auto",
                        help="Silhouette_<view>-<seq>/<id>/ as distributed, or OpenGait's <id>/<seq>/<view>/")


def run_casia_b(args: argparse.Namespace) -> None:
    """``graphfuse prepare casia-b``: prepare and print the summary."""
    meta = prepare_casia_b(args.root, args.out, size=args.size, exclude=args.exclude, skip_bad=args.skip_bad,
                           workers=args.workers, from_pkl=args.from_pkl, progress=True)
    print("\n".join([*summarize(meta), f"wrote {args.out}"]))


def run_oumvlp(args: argparse.Namespace) -> None:
    """``graphfuse prepare oumvlp``: prepare and print the summary."""
    meta = prepare_oumvlp(args.root, args.out, size=args.size, layout=args.layout, exclude=args.exclude,
                          skip_bad=args.skip_bad, workers=args.workers, from_pkl=args.from_pkl, progress=True)
    print("\n".join([*summarize(meta), f"wrote {args.out}"]))
