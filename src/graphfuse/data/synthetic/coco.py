"""Synthetic multi-label images in MS-COCO's on-disk format (the quickstart's and the tests' data).

Written exactly as a COCO download is laid out, then read back by the real reader
(:func:`graphfuse.data.multilabel.prepare.prepare_coco`)::

    <root>/train2017/000000000001.jpg ...            JPEG images (size x size, RGB)
    <root>/val2017/000000100001.jpg ...
    <root>/annotations/instances_{train,val}2017.json  COCO instances schema: info, licenses,
                                                     images, annotations (segmentation polygon,
                                                     area, iscrowd 0, bbox [x, y, w, h],
                                                     category_id), categories (supercategory)
    <root>/glove.synthetic.300d.txt                  GloVe text format, fixed random 300-d vectors
                                                     of every word of the class names

Design (hard enough that a broken pipeline shows):

* **20 classes** with real COCO names, real COCO category ids and supercategories
  (:data:`CLASSES`; the id order differs from the alphabetical one, so ``--class-order``
  matters). Each class is drawn as one filled shape in one colour (:data:`STYLES`): 10 shapes
  x 10 colours, every shape used by two classes and every colour by two, so neither shape nor
  colour alone identifies a class. Sizes 16-38 % of the image side, random positions,
  colour jitter, random drawing order (objects occlude each other), a noisy colour-gradient
  background and 0-2 grey distractor shapes of no class. Labels depend on the pixels only:
  a model that ignores the image cannot beat the chance mAP (each class's frequency).
* **Co-occurrence with a known structure.** An image is a scene (:data:`SCENES`: street,
  harbour, farm, home, kitchen) holding 1-4 classes of that scene; with probability 0.15 one
  of them is swapped for a class of any scene. Then:
  - *usually together* (:data:`TOGETHER`): a trigger class brings its partner with
    probability 0.9 (traffic light -> car, pizza -> fork, boat -> bird);
  - *never together* (:data:`NEVER`): of such a pair the class added later is removed
    (cat / dog, boat / car, horse / bed, bus / boat).
  A class appears twice in an image with probability 0.2 (two annotations, one label).
* **Images without annotations** (probability 0.05: background and distractors only) are
  listed in ``images`` with no annotation; the reader drops and counts them, as for COCO.
* **Every class has positives in every split, by construction.** Of the ``n`` images of a
  split, ``k = min(min_positives, n // 20)`` per class are drawn *conditioned on holding that
  class* (rejection sampling of the rules above, so such an image is an ordinary image that
  happens to hold the class), the others unconditioned, and the order is shuffled. So every
  class has at least ``k`` positives in ``train2017`` and in ``val2017`` (at least one as soon
  as ``n >= 20``); without it a small test split can lack a class (its AP is undefined and
  ``classes_without_positives`` counts it). The defaults (:data:`DEFAULT_NUM_TRAIN`,
  :data:`DEFAULT_NUM_VAL`, :data:`DEFAULT_MIN_POSITIVES`) give every class at least 8
  positives per split; the conditioned draws raise the rarest classes' frequency a little
  (see ``docs/data_multilabel.md`` for the measured frequencies and the chance mAP).

The labels of a split are drawn first from their own generator
(``numpy.random.default_rng([seed, split, 0])``; :func:`sample_split_labels`), the pixels
from another (``[seed, split, 1]``), so the labels of a dataset can be computed without
drawing it. Everything is a function of ``seed``; the GloVe vectors are fixed (their own
seed), so every synthetic dataset shares them.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from graphfuse.io import write_json, write_text

__all__ = [
    "CLASSES",
    "DEFAULT_MIN_POSITIVES",
    "DEFAULT_NUM_TRAIN",
    "DEFAULT_NUM_VAL",
    "GLOVE_FILE",
    "NEVER",
    "SCENES",
    "STYLES",
    "TOGETHER",
    "generate_synthetic_coco",
    "prepare_synthetic_coco",
    "sample_image_labels",
    "sample_split_labels",
    "synthetic_label_matrix",
]

#: (name, supercategory, COCO category id) of the 20 classes, in COCO id order.
CLASSES: tuple[tuple[str, str, int], ...] = (
    ("person", "person", 1), ("bicycle", "vehicle", 2), ("car", "vehicle", 3), ("bus", "vehicle", 6),
    ("boat", "vehicle", 9), ("traffic light", "outdoor", 10), ("stop sign", "outdoor", 13),
    ("bird", "animal", 16), ("cat", "animal", 17), ("dog", "animal", 18), ("horse", "animal", 19),
    ("bottle", "kitchen", 44), ("cup", "kitchen", 47), ("fork", "kitchen", 48), ("banana", "food", 52),
    ("apple", "food", 53), ("pizza", "food", 59), ("chair", "furniture", 62), ("couch", "furniture", 63),
    ("bed", "furniture", 65),
)
_NAMES = [c[0] for c in CLASSES]
SHAPES: tuple[str, ...] = ("disc", "square", "triangle", "diamond", "cross", "ring", "hbar", "vbar", "hexagon", "star")
COLOURS: tuple[tuple[int, int, int], ...] = (
    (220, 40, 40), (40, 180, 60), (40, 70, 220), (230, 210, 40), (200, 50, 200),
    (40, 200, 210), (240, 140, 30), (120, 60, 180), (235, 235, 235), (25, 25, 25),
)
#: class name -> (shape, colour): class k < 10 gets shape k and colour k, class k >= 10 shape
#: k - 10 and colour (k - 5) % 10, so every (shape, colour) pair is distinct.
STYLES: dict[str, tuple[str, tuple[int, int, int]]] = {
    name: (SHAPES[k % 10], COLOURS[k % 10 if k < 10 else (k - 5) % 10]) for k, name in enumerate(_NAMES)
}
#: scene -> (probability, classes it holds).
SCENES: dict[str, tuple[float, tuple[str, ...]]] = {
    "street": (0.3, ("person", "bicycle", "car", "bus", "traffic light", "stop sign")),
    "harbour": (0.15, ("person", "boat", "bird")),
    "farm": (0.15, ("person", "horse", "dog", "bird")),
    "home": (0.2, ("cat", "couch", "bed", "chair", "bottle")),
    "kitchen": (0.2, ("bottle", "cup", "fork", "apple", "banana", "pizza", "chair")),
}
#: (trigger, partner): the partner is added with probability :data:`P_TOGETHER`.
TOGETHER: tuple[tuple[str, str], ...] = (("traffic light", "car"), ("pizza", "fork"), ("boat", "bird"))
P_TOGETHER = 0.9
#: Pairs that never appear in one image.
NEVER: tuple[tuple[str, str], ...] = (("cat", "dog"), ("boat", "car"), ("horse", "bed"), ("bus", "boat"))
P_SWAP = 0.15
P_EMPTY = 0.05
P_TWICE = 0.2
GLOVE_FILE = "glove.synthetic.300d.txt"
GLOVE_DIM = 300
_GLOVE_SEED = 20190616  # fixed: every synthetic dataset shares the same vectors
_EXTRA_WORDS = ("the", "a", "street", "harbour", "farm", "home", "kitchen", "table", "road", "water")
#: Default images of ``train2017`` (the training split and, less the hold-out, model selection's
#: val) and of ``val2017`` (the test split): enough that a ResNet-18 from random weights learns the
#: classes in the CPU quickstart, and that every class has positives in the hold-out too.
DEFAULT_NUM_TRAIN = 800
DEFAULT_NUM_VAL = 400
#: Default minimum positives of every class in every split (module docstring).
DEFAULT_MIN_POSITIVES = 8
_SPLITS = ("train", "val")
_MAX_TRIES = 100_000  # rejection sampling: the rarest class is in about 7 % of the images


def sample_image_labels(rng: np.random.Generator) -> list[str]:
    """The class names of one image, in drawing order (repeats = two instances); empty for an
    image without annotations. Follows the scene and pair rules of the module docstring."""
    if rng.random() < P_EMPTY:
        return []
    scenes = list(SCENES)
    probs = np.asarray([SCENES[s][0] for s in scenes])
    pool = SCENES[scenes[int(rng.choice(len(scenes), p=probs / probs.sum()))]][1]
    n = int(rng.integers(1, 5))
    chosen = [pool[i] for i in rng.permutation(len(pool))[:n]]
    if rng.random() < P_SWAP:
        other = _NAMES[int(rng.integers(len(_NAMES)))]
        if other not in chosen:
            chosen[int(rng.integers(len(chosen)))] = other
    for trigger, partner in TOGETHER:
        if trigger in chosen and partner not in chosen and rng.random() < P_TOGETHER:
            chosen.append(partner)
    kept: list[str] = []
    for name in chosen:  # a later member of a NEVER pair is dropped
        if not any((name, k) in NEVER or (k, name) in NEVER for k in kept):
            kept.append(name)
    out = []
    for name in kept:
        out.append(name)
        if rng.random() < P_TWICE:
            out.append(name)
    return [out[i] for i in rng.permutation(len(out))]


def sample_split_labels(n: int, rng: np.random.Generator, min_positives: int = DEFAULT_MIN_POSITIVES) -> list[list[str]]:
    """The labels (:func:`sample_image_labels`) of the ``n`` images of one split, in image order.

    ``k = min(min_positives, n // 20)`` images per class are drawn conditioned on holding the
    class (redrawn until they do), the remaining ``n - 20 k`` unconditioned, then the order is
    shuffled: every class has at least ``k`` positives (module docstring).
    """
    if n < 0 or min_positives < 0:
        raise ValueError(f"n and min_positives must be >= 0, got {n}, {min_positives}")
    k = min(int(min_positives), n // len(_NAMES))
    draws: list[list[str]] = []
    for name in _NAMES:  # a loop over classes x k conditioned images (label lists, not pixels)
        for _ in range(k):
            for _ in range(_MAX_TRIES):
                labels = sample_image_labels(rng)
                if name in labels:
                    break
            else:  # pragma: no cover - every class has a positive probability
                raise RuntimeError(f"no image holding {name!r} in {_MAX_TRIES} draws")
            draws.append(labels)
    draws.extend(sample_image_labels(rng) for _ in range(n - len(draws)))
    return [draws[i] for i in rng.permutation(n)]


def _split_rng(seed: int, split: str, stream: int) -> np.random.Generator:
    """Stream 0: the labels of ``split``; stream 1: its pixels."""
    return np.random.default_rng([int(seed), _SPLITS.index(split), stream])


def synthetic_label_matrix(
    split: str,
    num_images: int,
    seed: int = 0,
    min_positives: int = DEFAULT_MIN_POSITIVES,
) -> np.ndarray:
    """The ``(n, 20)`` 0/1 int64 label matrix that preparing the generated ``split`` (``'train'``
    or ``'val'``) gives, without drawing any image: images without annotations dropped (as the
    reader does), columns in ML-GCN's order (alphabetical names). For checks and docs, e.g.
    that the hold-out of the quickstart has every class."""
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
    draws = sample_split_labels(num_images, _split_rng(seed, split, 0), min_positives)
    order = sorted(_NAMES)
    rows = [[int(name in set(d)) for name in order] for d in draws if d]
    return np.asarray(rows, dtype=np.int64).reshape(-1, len(order))


def _shape_polygon(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    """Outline of ``shape`` centred at ``(cx, cy)`` with radius ``r`` (rings: the outer circle)."""
    def circle(radius: float, n: int, phase: float = 0.0) -> list[tuple[float, float]]:
        t = phase + 2 * np.pi * np.arange(n) / n
        return list(zip((cx + radius * np.cos(t)).tolist(), (cy + radius * np.sin(t)).tolist()))

    if shape in ("disc", "ring"):
        return circle(r, 24)
    if shape == "square":
        return [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if shape == "triangle":
        return circle(r, 3, -np.pi / 2)
    if shape == "diamond":
        return circle(r, 4, -np.pi / 2)
    if shape == "hexagon":
        return circle(r, 6)
    if shape == "star":
        t = -np.pi / 2 + np.pi * np.arange(10) / 5
        rad = np.where(np.arange(10) % 2 == 0, r, 0.45 * r)
        return list(zip((cx + rad * np.cos(t)).tolist(), (cy + rad * np.sin(t)).tolist()))
    w = 0.35 * r
    if shape == "hbar":
        return [(cx - r, cy - w), (cx + r, cy - w), (cx + r, cy + w), (cx - r, cy + w)]
    if shape == "vbar":
        return [(cx - w, cy - r), (cx + w, cy - r), (cx + w, cy + r), (cx - w, cy + r)]
    if shape == "cross":
        return [(cx - w, cy - r), (cx + w, cy - r), (cx + w, cy - w), (cx + r, cy - w), (cx + r, cy + w),
                (cx + w, cy + w), (cx + w, cy + r), (cx - w, cy + r), (cx - w, cy + w), (cx - r, cy + w),
                (cx - r, cy - w), (cx - w, cy - w)]
    raise ValueError(f"unknown shape {shape!r}")


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """``(size, size, 3)`` uint8: a random two-colour gradient plus Gaussian noise (vectorised)."""
    a, b = rng.uniform(60, 190, 3), rng.uniform(60, 190, 3)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    t = (np.cos(angle) * xx + np.sin(angle) * yy)
    t = (t - t.min()) / max(float(np.ptp(t)), 1e-6)
    img = a[None, None, :] * (1 - t[..., None]) + b[None, None, :] * t[..., None]
    img += rng.normal(0, 12, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _draw_image(rng: np.random.Generator, names: list[str], size: int) -> tuple[Any, list[dict[str, Any]]]:
    """A PIL image with the objects ``names`` (and distractors) drawn, and per object its
    ``{"name", "bbox", "area", "segmentation"}``."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(_background(rng, size))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(0, 3))):  # grey distractors of no class
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        r = rng.uniform(0.06, 0.14) * size
        cx, cy = rng.uniform(r, size - r, 2)
        g = int(rng.integers(100, 160))
        draw.polygon(_shape_polygon(shape, cx, cy, r), fill=(g, g, g))
    objects = []
    for name in names:  # drawing order is random: later objects occlude earlier ones
        shape, colour = STYLES[name]
        r = rng.uniform(0.08, 0.19) * size
        cx, cy = rng.uniform(r, size - r, 2)
        fill = tuple(int(v) for v in np.clip(np.asarray(colour) + rng.integers(-15, 16, 3), 0, 255))
        poly = _shape_polygon(shape, cx, cy, r)
        draw.polygon(poly, fill=fill)
        mask = Image.new("L", (size, size), 0)
        ImageDraw.Draw(mask).polygon(poly, fill=1)
        if shape == "ring":  # a hole of the background's mean colour
            hole = _shape_polygon("disc", cx, cy, 0.5 * r)
            mean = tuple(int(v) for v in np.asarray(img).reshape(-1, 3).mean(0))
            draw.polygon(hole, fill=mean)
            ImageDraw.Draw(mask).polygon(hole, fill=0)
        pts = np.asarray(poly)
        x0, y0 = np.clip(pts.min(0), 0, size)
        x1, y1 = np.clip(pts.max(0), 0, size)
        objects.append({
            "name": name,
            "bbox": [round(float(x0), 2), round(float(y0), 2), round(float(x1 - x0), 2), round(float(y1 - y0), 2)],
            "area": float(np.asarray(mask, dtype=np.int64).sum()),
            "segmentation": [[round(float(v), 2) for v in pts.reshape(-1)]],
        })
    return img, objects


def _write_glove(path: Path) -> None:
    words = sorted({w for name in _NAMES for w in name.split()} | set(_EXTRA_WORDS))
    vecs = np.random.default_rng(_GLOVE_SEED).normal(0.0, 0.4, (len(words), GLOVE_DIM))
    lines = [w + " " + " ".join(f"{v:.5f}" for v in row) for w, row in zip(words, vecs)]
    write_text(path, "\n".join(lines) + "\n")


def generate_synthetic_coco(
    root: str | os.PathLike,
    num_train: int = DEFAULT_NUM_TRAIN,
    num_val: int = DEFAULT_NUM_VAL,
    size: int = 96,
    seed: int = 0,
    min_positives: int = DEFAULT_MIN_POSITIVES,
) -> dict[str, Path]:
    """Write the synthetic dataset in COCO's layout under ``root`` (module docstring).

    ``min_positives``: every class gets at least ``min(min_positives, n // 20)`` positives in
    each split of ``n`` images (:func:`sample_split_labels`).

    Returns the paths written: ``{"train_json", "val_json", "train_images", "val_images", "glove"}``.
    """
    if num_train < 1 or num_val < 1:
        raise ValueError(f"num_train and num_val must be >= 1, got {num_train}, {num_val}")
    if size < 32:
        raise ValueError(f"size must be >= 32 px, got {size}")
    if min_positives < 0:
        raise ValueError(f"min_positives must be >= 0, got {min_positives}")
    root = Path(root)
    categories = [{"supercategory": sc, "id": cid, "name": name} for name, sc, cid in CLASSES]
    cat_id = {name: cid for name, _, cid in CLASSES}
    out: dict[str, Path] = {}
    ann_id = 1
    for split, n, first_id in (("train", num_train, 1), ("val", num_val, 100001)):
        img_dir = root / f"{split}2017"
        if img_dir.exists():
            shutil.rmtree(img_dir)  # a fresh generation: no stale images of another seed
        img_dir.mkdir(parents=True)
        images, annotations = [], []
        label_lists = sample_split_labels(n, _split_rng(seed, split, 0), min_positives)
        rng = _split_rng(seed, split, 1)
        for k, names in enumerate(label_lists):  # a loop over the images (files)
            image_id = first_id + k
            file_name = f"{image_id:012d}.jpg"
            img, objects = _draw_image(rng, names, size)
            img.save(img_dir / file_name, format="JPEG", quality=90)
            images.append({"license": 4, "file_name": file_name, "height": size, "width": size,
                           "date_captured": "2019-06-16 00:00:00", "id": image_id})
            for obj in objects:
                annotations.append({"segmentation": obj["segmentation"], "area": obj["area"], "iscrowd": 0,
                                    "image_id": image_id, "bbox": obj["bbox"], "category_id": cat_id[obj["name"]],
                                    "id": ann_id})
                ann_id += 1
        doc = {
            "info": {"description": "graphfuse synthetic COCO-format dataset", "version": "1.0", "year": 2017,
                     "contributor": "graphfuse", "date_created": "2019/06/16",
                     "seed": seed, "size": size, "min_positives": min_positives},
            "licenses": [{"url": "http://creativecommons.org/licenses/by/2.0/", "id": 4, "name": "Attribution License"}],
            "images": images,
            "annotations": annotations,
            "categories": categories,
        }
        json_path = root / "annotations" / f"instances_{split}2017.json"
        json_path.parent.mkdir(parents=True, exist_ok=True)
        write_json(json_path, doc, indent=None)
        out[f"{split}_json"], out[f"{split}_images"] = json_path, img_dir
    glove = root / GLOVE_FILE
    _write_glove(glove)
    out["glove"] = glove
    return out


def prepare_synthetic_coco(
    out: str | os.PathLike,
    *,
    num_train: int = DEFAULT_NUM_TRAIN,
    num_val: int = DEFAULT_NUM_VAL,
    size: int = 96,
    seed: int = 0,
    min_positives: int = DEFAULT_MIN_POSITIVES,
    class_order: str = "mlgcn",
    overwrite: bool = False,
) -> dict[str, Any]:
    """Generate the dataset into ``out/raw`` and prepare it into ``out`` with
    :func:`graphfuse.data.multilabel.prepare.prepare_coco` (year 2017, the synthetic GloVe
    file, every image decoded), exactly as a real COCO download would be; ``meta["dataset"]``
    is ``'synthetic-coco'``. Returns ``meta``."""
    from graphfuse.data.multilabel.prepare import prepare_coco  # the real preparation path

    out = Path(out)
    if (out / "meta.json").exists() and not overwrite:
        raise FileExistsError(f"{out} already holds prepared data (meta.json); pass --overwrite to replace it")
    raw = out / "raw"
    paths = generate_synthetic_coco(raw, num_train=num_train, num_val=num_val, size=size, seed=seed,
                                    min_positives=min_positives)
    meta = prepare_coco(raw, out, year=2017, class_order=class_order, glove=paths["glove"],  # type: ignore[arg-type]
                        verify="decode", overwrite=overwrite, dataset="synthetic-coco")
    return meta


def _chance_map(labels: np.ndarray) -> float:
    """mAP (%) of a constant score: the mean class frequency (for docs and tests)."""
    pos = (np.asarray(labels) == 1).mean(axis=0)
    return float(100 * pos[pos > 0].mean()) if (pos > 0).any() else math.nan
