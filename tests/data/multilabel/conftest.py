"""Fixtures of the multi-label data tests: COCO and VOC layouts built in a temporary folder
from the real COCO sample and the hand-written VOC annotations of this folder (the tests
write the JPEGs), and one small synthetic COCO-format dataset per session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from _multilabel_files import VOC_DATA, coco_doc, jpeg_bytes, make_coco_root, two_image_doc


@pytest.fixture
def coco_root(tmp_path) -> Path:
    """COCO 2014 layout: train = :func:`two_image_doc`, val = the real sample."""
    return make_coco_root(tmp_path / "coco", two_image_doc(), coco_doc())


@pytest.fixture
def voc_root(tmp_path) -> Path:
    """The hand-written VOC 2007 set with a JPEG per listed image."""
    root = tmp_path / "voc"
    shutil.copytree(VOC_DATA, root / "VOCdevkit")
    img_dir = root / "VOCdevkit" / "VOC2007" / "JPEGImages"
    img_dir.mkdir()
    for k, xml in enumerate(sorted((root / "VOCdevkit" / "VOC2007" / "Annotations").glob("*.xml"))):
        (img_dir / f"{xml.stem}.jpg").write_bytes(jpeg_bytes(seed=k))
    return root


@pytest.fixture(scope="session")
def synthetic_coco(tmp_path_factory) -> Path:
    """A small prepared synthetic COCO-format folder (60 train / 24 val images of 64 px)."""
    from graphfuse.data.synthetic.coco import prepare_synthetic_coco

    out = tmp_path_factory.mktemp("synthetic-coco")
    prepare_synthetic_coco(out, num_train=60, num_val=24, size=64, seed=3)
    return out
