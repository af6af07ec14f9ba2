"""Helpers of the multi-label data tests (a plain module: several conftest.py files share the
name ``conftest``): the real COCO sample and the hand-written VOC set of this folder, small
JPEGs, COCO layouts in a temporary folder."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
COCO_SAMPLE = HERE / "instances_val2017_1img-sample.json"
VOC_DATA = HERE / "VOCdevkit"


def jpeg_bytes(width: int = 32, height: int = 24, seed: int = 0) -> bytes:
    """A small valid RGB JPEG."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def coco_doc() -> dict:
    """The real one-image COCO sample as a dict (fresh copy)."""
    return json.loads(COCO_SAMPLE.read_text(encoding="utf-8"))


def make_coco_root(root: Path, train: dict, val: dict, year: int = 2014) -> Path:
    """A COCO layout: ``annotations/instances_{train,val}<year>.json`` and every listed image
    as a small JPEG in ``{train,val}<year>/``."""
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for split, doc in (("train", train), ("val", val)):
        (root / "annotations" / f"instances_{split}{year}.json").write_text(json.dumps(doc), encoding="utf-8")
        img_dir = root / f"{split}{year}"
        img_dir.mkdir(exist_ok=True)
        for k, im in enumerate(doc["images"]):
            (img_dir / im["file_name"]).write_bytes(jpeg_bytes(seed=k))
    return root


def two_image_doc() -> dict:
    """The real sample plus a second image holding one 'tv' (id 72) and a third image without
    annotations (dropped)."""
    doc = coco_doc()
    doc["images"] += [dict(doc["images"][0], id=7, file_name="000000000007.jpg"),
                      dict(doc["images"][0], id=8, file_name="000000000008.jpg")]
    doc["annotations"].append({"area": 10.0, "iscrowd": 0, "image_id": 7, "bbox": [1, 1, 3, 3],
                               "category_id": 72, "id": 77})
    return doc
