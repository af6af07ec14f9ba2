"""``graphfuse prepare coco | voc2007``: original files -> a prepared multi-label folder.

The folder (format ``graphfuse-multilabel``, version 1; docs/data_multilabel.md)::

    meta.json               dataset, classes (names, order, supercategories), splits, image roots,
                            dropped / skipped images, label-graph and embedding sources, value check
    train_labels.npy        int8 (n_train, C): 1 present, 0 absent, -1 difficult only (VOC)
    test_labels.npy         int8 (n_test, C)
    train_files.json        image paths relative to meta["image_roots"]["train"]
    test_files.json
    label_counts.npy        int64 (C,): training images holding each class (label 1 only)
    label_cooccurrence.npy  int64 (C, C): training images holding both i and j; diagonal 0
    word_embeddings.npy     float32 (C, D), optional (--glove or --word-vectors)

``label_counts`` / ``label_cooccurrence`` are what ML-GCN's ``coco_adj.pkl`` holds (``nums``,
``adj``), computed from the training labels; with ``--adj FILE.pkl`` the released arrays are
stored instead (permuted to the chosen class order) and ``meta["label_graph"]`` records
whether they equal the computed ones. Numpy only; torch is imported only to decode images
with ``verify="decode"``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from graphfuse.data.checks import ValueCheckError, check_record
from graphfuse.data.multilabel.glove import (
    VOC_WORDS,
    label_statistics,
    read_adj_pkl,
    read_glove_class_embeddings,
    read_word_vectors_pkl,
    reorder,
)
from graphfuse.data.multilabel.readers import (
    VOC_SPLIT_NAMES,
    check_jpeg,
    coco_paths,
    read_coco_instances,
    read_voc2007,
)
from graphfuse.io import read_json, save_npy, write_json

__all__ = [
    "DATASETS",
    "FORMAT",
    "FORMAT_VERSION",
    "MULTILABEL_CHECKS",
    "SPLITS",
    "SplitLabels",
    "check_multilabel_folder",
    "load_multilabel_meta",
    "prepare_coco",
    "prepare_voc2007",
    "verify_images",
    "write_prepared",
]

FORMAT = "graphfuse-multilabel"
FORMAT_VERSION = 1
SPLITS: tuple[str, ...] = ("train", "test")
DATASETS: tuple[str, ...] = ("coco2014", "coco2017", "voc2007", "synthetic-coco")
MULTILABEL_CHECKS = (
    "labels are 1 / 0 (COCO) or 1 / 0 / -1 (VOC difficult only), one row per listed image file",
    ("label_counts and label_cooccurrence are non-negative, cooccurrence symmetric with a zero diagonal "
     "and pair counts <= class counts"),
    "word embeddings finite after the cast to float32",
)
Verify = Literal["none", "header", "decode"]


@dataclass
class SplitLabels:
    """One prepared split: image files (relative to ``image_root``), their labels, and what was
    dropped (no label) or skipped (bad input) on the way."""

    files: list[str]
    labels: np.ndarray
    image_root: Path
    dropped_without_labels: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)
    source: str = ""


# ---------------------------------------------------------------------------------------------
# images


def _decode_check(path: Path) -> None:
    """Decode ``path`` as the dataset will (:func:`graphfuse.data.multilabel.transforms.decode_image_file`)."""
    from graphfuse.data.multilabel.transforms import decode_image_file  # torch: only for verify="decode"

    check_jpeg(path)
    decode_image_file(path, silence_deprecation=False)  # silenced once around the thread pool


def verify_images(
    image_root: str | os.PathLike, files: Sequence[str], mode: Verify = "header", workers: int | None = None
) -> list[tuple[int, str]]:
    """Check every image of a split; returns ``(position, message)`` of the bad ones, in order.

    ``mode``: ``'none'`` (existence only), ``'header'`` (:func:`check_jpeg`: SOI and EOI
    markers, cheap) or ``'decode'`` (decode every image with ``torchvision.io.decode_jpeg``,
    in ``workers`` threads).
    """
    if mode not in ("none", "header", "decode"):
        raise ValueError(f"verify must be none, header or decode, got {mode!r}")
    root = Path(image_root)

    def one(name: str) -> str | None:
        path = root / name
        try:
            if mode == "none":
                if not path.is_file():
                    raise FileNotFoundError(f"image file not found: {path}")
            elif mode == "header":
                check_jpeg(path)
            else:
                _decode_check(path)
        except (OSError, ValueError) as exc:
            return str(exc)
        return None

    if mode == "decode":
        from graphfuse.data.multilabel.transforms import _DECODE_DEPRECATION

        n = workers or min(8, os.cpu_count() or 1)
        with warnings.catch_warnings(), ThreadPoolExecutor(max_workers=n) as pool:  # decode_jpeg releases the GIL
            warnings.filterwarnings(**_DECODE_DEPRECATION)  # type: ignore[arg-type]
            results = list(pool.map(one, files))
    else:
        results = [one(f) for f in files]  # a loop over files
    return [(i, msg) for i, msg in enumerate(results) if msg is not None]


def _apply_image_check(split: str, s: SplitLabels, verify: Verify, on_error: str, workers: int | None) -> SplitLabels:
    bad = verify_images(s.image_root, s.files, verify, workers)
    if not bad:
        return s
    if on_error == "raise":
        msg = bad[0][1]
        more = f" ({len(bad)} bad images in this split; --skip-bad leaves them out and lists them)"
        err = FileNotFoundError if "not found" in msg else ValueError
        raise err(f"{msg}{more}")
    drop = np.zeros(len(s.files), dtype=bool)
    drop[[i for i, _ in bad]] = True
    skipped = s.skipped + [{"split": split, "file": s.files[i], "reason": msg} for i, msg in bad]
    keep = np.flatnonzero(~drop)
    return SplitLabels([s.files[i] for i in keep.tolist()], s.labels[keep], s.image_root,
                       s.dropped_without_labels, skipped, s.source)


# ---------------------------------------------------------------------------------------------
# the folder


def _refuse_existing(out: Path, overwrite: bool) -> None:
    if (out / "meta.json").exists() and not overwrite:
        raise FileExistsError(f"{out} already holds prepared data (meta.json); pass --overwrite to replace it")


def _prepare_out(out: Path, overwrite: bool) -> None:
    _refuse_existing(out, overwrite)
    meta = out / "meta.json"
    if meta.exists():
        meta.unlink()  # from here on the folder is not a valid prepared folder until meta.json is back
    out.mkdir(parents=True, exist_ok=True)


def _check_values(splits: dict[str, SplitLabels], counts: np.ndarray, cooc: np.ndarray,
                  embeddings: np.ndarray | None, allow_difficult: bool) -> None:
    allowed = (-1, 0, 1) if allow_difficult else (0, 1)
    for name, s in splits.items():
        if s.labels.dtype != np.int8 or s.labels.ndim != 2 or s.labels.shape[0] != len(s.files):
            raise ValueCheckError(f"{name}_labels.npy: expected int8 (n_files, C), got {s.labels.dtype} "
                                  f"{s.labels.shape} for {len(s.files)} files")
        bad = ~np.isin(s.labels, allowed)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise ValueCheckError(f"{name}_labels.npy: image {s.files[r]}: class {c}: label {s.labels[r, c]} "
                                  f"not in {allowed}")
    if (counts < 0).any() or (cooc < 0).any() or (cooc != cooc.T).any() or np.diagonal(cooc).any() \
            or (cooc > counts[:, None]).any():
        raise ValueCheckError("label_counts.npy / label_cooccurrence.npy: counts must be non-negative, the "
                              "co-occurrence symmetric with a zero diagonal and at most the class counts")
    if embeddings is not None and not np.isfinite(embeddings.astype(np.float32)).all():
        raise ValueCheckError("word_embeddings.npy: values not finite in float32")


def write_prepared(
    out: str | os.PathLike,
    *,
    dataset: str,
    class_names: Sequence[str],
    class_order: str,
    supercategories: Sequence[str | None],
    splits: dict[str, SplitLabels],
    embeddings: np.ndarray | None = None,
    embeddings_source: str | None = None,
    released_graph: tuple[np.ndarray, np.ndarray] | None = None,
    graph_source: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the prepared folder (arrays first, ``meta.json`` last, all atomic) and return
    ``meta``. ``released_graph``: ``(counts, cooccurrence)`` from ``--adj``, already in
    ``class_names`` order, stored instead of the counts computed from the training labels."""
    out = Path(out)
    num_class = len(class_names)
    computed = label_statistics(splits["train"].labels)
    counts, cooc = released_graph if released_graph is not None else computed
    _check_values(splits, counts, cooc, embeddings, allow_difficult=class_order == "voc")
    for name, s in splits.items():
        save_npy(out / f"{name}_labels.npy", np.ascontiguousarray(s.labels, dtype=np.int8))
        write_json(out / f"{name}_files.json", list(s.files), indent=None)
    save_npy(out / "label_counts.npy", counts.astype(np.int64))
    save_npy(out / "label_cooccurrence.npy", cooc.astype(np.int64))
    arrays = [f"{s}_labels.npy" for s in splits] + ["label_counts.npy", "label_cooccurrence.npy"]
    if embeddings is not None:
        save_npy(out / "word_embeddings.npy", embeddings.astype(np.float32))
        arrays.append("word_embeddings.npy")
    elif (out / "word_embeddings.npy").exists():
        (out / "word_embeddings.npy").unlink()  # a stale file of an earlier preparation
    graph: dict[str, Any] = {"source": graph_source or "train_labels.npy"}
    if released_graph is not None:
        graph["equals_train_labels"] = bool(np.array_equal(counts, computed[0]) and np.array_equal(cooc, computed[1]))
    skipped = [item for s in splits.values() for item in s.skipped]
    meta: dict[str, Any] = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "dataset": dataset,
        "num_class": num_class,
        "class_names": list(class_names),
        "class_order": class_order,
        "supercategories": list(supercategories),
        "splits": {name: len(s.files) for name, s in splits.items()},
        "image_roots": {name: str(Path(s.image_root).resolve()) for name, s in splits.items()},
        "sources": {name: s.source for name, s in splits.items()},
        "dropped_without_labels": {name: s.dropped_without_labels for name, s in splits.items()},
        "skipped": skipped,
        "word_embeddings": "word_embeddings.npy" if embeddings is not None else None,
        "word_embeddings_source": embeddings_source if embeddings is not None else None,
        "embedding_dim": int(embeddings.shape[1]) if embeddings is not None else None,
        "label_graph": graph,
        **(extra or {}),
        "value_check": check_record("prepare", {}, arrays, MULTILABEL_CHECKS),
    }
    write_json(out / "meta.json", meta)
    return meta


def _embeddings(
    class_names: list[str], order: str, glove: str | os.PathLike | None, word_vectors: str | os.PathLike | None,
    aliases: dict[str, str] | None,
) -> tuple[np.ndarray | None, str | None]:
    if glove is not None and word_vectors is not None:
        raise ValueError("give either --glove or --word-vectors, not both")
    if glove is not None:
        emb = read_glove_class_embeddings(glove, class_names, aliases)
        return emb, f"GloVe text {Path(glove).resolve()} (multi-word names averaged)"
    if word_vectors is not None:
        emb = read_word_vectors_pkl(word_vectors, len(class_names))
        source = f"{Path(word_vectors).resolve()} (ML-GCN order)"
        if order == "coco":
            emb = reorder(emb, sorted(class_names), class_names)
            source = f"{Path(word_vectors).resolve()} (rows permuted from ML-GCN's alphabetical order to COCO id order)"
        return emb, source
    return None, None


def _released_graph(adj: str | os.PathLike | None, class_names: list[str], order: str
                    ) -> tuple[tuple[np.ndarray, np.ndarray] | None, str | None]:
    if adj is None:
        return None, None
    counts, cooc = read_adj_pkl(adj, len(class_names))
    source = f"{Path(adj).resolve()} (ML-GCN order)"
    if order == "coco":
        mlgcn = sorted(class_names)
        counts, cooc = reorder(counts, mlgcn, class_names), reorder(cooc, mlgcn, class_names, axes=2)
        source = f"{Path(adj).resolve()} (permuted from ML-GCN's alphabetical order to COCO id order)"
    return (counts, cooc), source


# ---------------------------------------------------------------------------------------------
# COCO


def prepare_coco(
    root: str | os.PathLike,
    out: str | os.PathLike,
    *,
    year: int = 2014,
    class_order: Literal["mlgcn", "coco"] = "mlgcn",
    glove: str | os.PathLike | None = None,
    word_vectors: str | os.PathLike | None = None,
    adj: str | os.PathLike | None = None,
    skip_bad: bool = False,
    verify: Verify = "header",
    workers: int | None = None,
    overwrite: bool = False,
    dataset: str | None = None,
) -> dict[str, Any]:
    """``graphfuse prepare coco``: ``root/annotations/instances_{train,val}<year>.json`` and
    ``root/{train,val}<year>/`` -> a prepared folder ``out`` (module docstring).

    Splits: ``train`` = COCO train, ``test`` = COCO val (ML-GCN evaluates on val2014; the
    datamodule holds out part of train for model selection).

    Args:
        year: 2014 (ML-GCN's split) or 2017.
        class_order: ``'mlgcn'`` (alphabetical, default) or ``'coco'`` (category id order).
        glove: a GloVe text file for the class-name embeddings.
        word_vectors: ML-GCN's ``coco_glove_word2vec.pkl`` instead.
        adj: ML-GCN's ``coco_adj.pkl``: store its counts as the label graph.
        skip_bad: leave out images with a bad annotation, a missing or corrupt file (listed
            in ``meta["skipped"]``) instead of stopping at the first.
        verify: image check, ``'header'`` (cheap, default) or ``'decode'`` (every image
            decoded) or ``'none'`` (existence only).
        workers: threads for ``verify='decode'``.
        overwrite: replace an existing prepared folder.
        dataset: the name recorded in ``meta.json`` (default ``coco<year>``).
    """
    if str(year) not in ("2014", "2017"):
        raise ValueError(f"year must be 2014 or 2017, got {year!r}")
    out = Path(out)
    _refuse_existing(out, overwrite)
    on_error = "skip" if skip_bad else "raise"
    splits: dict[str, SplitLabels] = {}
    read = {}
    for split in SPLITS:
        ann_path, img_dir = coco_paths(root, year, split)
        if not img_dir.is_dir():
            raise FileNotFoundError(f"COCO image folder not found: {img_dir}")
        lab = read_coco_instances(ann_path, class_order, on_error=on_error)
        read[split] = lab
        skipped = [{"split": split, **item} for item in lab.skipped]
        splits[split] = SplitLabels(lab.file_names, lab.labels, img_dir, lab.dropped_without_labels, skipped,
                                    source=str(Path(ann_path).resolve()))
    train, test = read["train"], read["test"]
    if train.class_names != test.class_names or train.category_ids != test.category_ids:
        raise ValueError(f"{test.path}: its categories differ from those of {train.path}")
    for split in SPLITS:
        splits[split] = _apply_image_check(split, splits[split], verify, on_error, workers)
    names = train.class_names
    emb, emb_source = _embeddings(names, class_order, glove, word_vectors, None)
    graph, graph_source = _released_graph(adj, names, class_order)
    _prepare_out(out, overwrite)
    return write_prepared(
        out, dataset=dataset or f"coco{year}", class_names=names, class_order=class_order,
        supercategories=train.supercategories, splits=splits, embeddings=emb, embeddings_source=emb_source,
        released_graph=graph, graph_source=graph_source,
        extra={"category_ids": train.category_ids, "year": int(year), "image_check": verify},
    )


# ---------------------------------------------------------------------------------------------
# VOC 2007


def prepare_voc2007(
    root: str | os.PathLike,
    out: str | os.PathLike,
    *,
    glove: str | os.PathLike | None = None,
    word_vectors: str | os.PathLike | None = None,
    adj: str | os.PathLike | None = None,
    skip_bad: bool = False,
    verify: Verify = "header",
    workers: int | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """``graphfuse prepare voc2007``: ``VOCdevkit/VOC2007`` (annotation XML, ``ImageSets/Main/
    {trainval,test}.txt``, ``JPEGImages/``) -> a prepared folder: ``train`` = trainval (5,011
    images), ``test`` = test (4,952). Class order ``'voc'`` (the devkit's, which ML-GCN's
    ``voc_adj.pkl`` / ``voc_glove_word2vec.pkl`` follow); difficult-only classes are ``-1``.
    Arguments as :func:`prepare_coco` (GloVe words of glued names: :data:`VOC_WORDS`)."""
    out = Path(out)
    _refuse_existing(out, overwrite)
    on_error = "skip" if skip_bad else "raise"
    splits: dict[str, SplitLabels] = {}
    names: list[str] = []
    for split in SPLITS:
        lab = read_voc2007(root, VOC_SPLIT_NAMES[split], on_error=on_error)
        names = lab.class_names
        img_dir = Path(lab.root) / "JPEGImages"
        skipped = [{"split": split, **item} for item in lab.skipped]
        splits[split] = SplitLabels(lab.file_names, lab.labels, img_dir, lab.dropped_without_labels, skipped,
                                    source=str(Path(lab.root).resolve() / "ImageSets" / "Main" /
                                               f"{VOC_SPLIT_NAMES[split]}.txt"))
    for split in SPLITS:
        splits[split] = _apply_image_check(split, splits[split], verify, on_error, workers)
    emb, emb_source = _embeddings(names, "voc", glove, word_vectors, VOC_WORDS)
    graph, graph_source = _released_graph(adj, names, "voc")
    _prepare_out(out, overwrite)
    return write_prepared(
        out, dataset="voc2007", class_names=names, class_order="voc", supercategories=[None] * len(names),
        splits=splits, embeddings=emb, embeddings_source=emb_source, released_graph=graph,
        graph_source=graph_source, extra={"image_check": verify},
    )


# ---------------------------------------------------------------------------------------------
# reading a prepared folder back


def load_multilabel_meta(data_dir: str | os.PathLike) -> dict[str, Any]:
    """``data_dir/meta.json`` of a prepared multi-label folder, checked: format and version,
    class lists of length ``num_class``, both splits with their counts.

    Raises:
        FileNotFoundError: no ``meta.json``.
        ValueError: naming the file: another format or version, missing or inconsistent keys.
    """
    path = Path(data_dir) / "meta.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: prepared-data metadata not found")
    meta = read_json(path)
    if type(meta) is not dict:
        raise ValueError(f"{path}: expected a JSON object at the top level")
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: format {meta.get('format')!r} is not {FORMAT!r}; this folder was not "
                         "prepared by graphfuse prepare coco | voc2007 | synthetic-coco")
    if meta.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path}: version {meta.get('version')!r} is not supported (this graphfuse reads "
                         f"{FORMAT_VERSION}); prepare the data again")
    c = meta.get("num_class")
    if type(c) is not int or c < 1:
        raise ValueError(f"{path}: num_class must be a positive integer, got {c!r}")
    for key in ("class_names", "supercategories"):
        v = meta.get(key)
        if not isinstance(v, list) or len(v) != c:
            raise ValueError(f"{path}: {key} must be a list of {c} entries")
    for key in ("splits", "image_roots", "dropped_without_labels"):
        v = meta.get(key)
        if not isinstance(v, dict) or set(v) != set(SPLITS):
            raise ValueError(f"{path}: {key} must map each of {list(SPLITS)} to a value")
    return meta


def check_multilabel_folder(data_dir: str | os.PathLike) -> list[str]:
    """Check the stored arrays of a prepared multi-label folder against ``meta.json`` (for
    ``graphfuse check``): label dtypes, shapes and values, file lists, count arrays,
    embeddings. Returns the arrays checked; raises :class:`ValueCheckError` naming the file."""
    data_dir = Path(data_dir)
    meta = load_multilabel_meta(data_dir)
    c = meta["num_class"]
    splits = {}
    for split in SPLITS:
        labels = np.load(data_dir / f"{split}_labels.npy", allow_pickle=False)
        files = read_json(data_dir / f"{split}_files.json")
        if labels.ndim != 2 or labels.shape[1] != c or labels.shape[0] != meta["splits"][split]:
            raise ValueCheckError(f"{split}_labels.npy: shape {labels.shape}, meta.json says "
                                  f"({meta['splits'][split]}, {c})")
        if not isinstance(files, list) or len(files) != labels.shape[0] or not all(isinstance(f, str) for f in files):
            raise ValueCheckError(f"{split}_files.json: expected {labels.shape[0]} file names")
        splits[split] = SplitLabels(files, labels, Path(meta["image_roots"][split]))
    counts = np.load(data_dir / "label_counts.npy", allow_pickle=False)
    cooc = np.load(data_dir / "label_cooccurrence.npy", allow_pickle=False)
    if counts.shape != (c,) or cooc.shape != (c, c) or counts.dtype.kind != "i" or cooc.dtype.kind != "i":
        raise ValueCheckError(f"label_counts.npy / label_cooccurrence.npy: expected int64 ({c},) and ({c}, {c})")
    emb = None
    if meta.get("word_embeddings"):
        emb = np.load(data_dir / str(meta["word_embeddings"]), allow_pickle=False)
        if emb.ndim != 2 or emb.shape[0] != c or emb.dtype != np.float32:
            raise ValueCheckError(f"{meta['word_embeddings']}: expected float32 ({c}, D), got {emb.dtype} {emb.shape}")
    _check_values(splits, counts, cooc, emb, allow_difficult=meta.get("class_order") == "voc")
    return [f"{s}_labels.npy" for s in SPLITS] + ["label_counts.npy", "label_cooccurrence.npy"] + (
        [str(meta["word_embeddings"])] if emb is not None else [])
