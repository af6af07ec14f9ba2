"""Fuzz the COCO instances reader (:func:`graphfuse.data.multilabel.readers.read_coco_instances`).

Seed: the real one-image COCO 2017 sample of ``tests/data/multilabel`` (CC BY 4.0) without its
segmentation polygons (no reader uses them; a smaller file makes a mutation land on an id, a
name or a bracket more often), written compactly.

Property: the reader returns int8 0/1 labels of shape (images kept, categories), one file
name per row, counts that add up, or raises a ``ValueError`` / ``FileNotFoundError`` naming
the file (malformed, non-UTF-8 or deeply nested JSON, mistyped or out-of-range ids, unknown
categories, unsafe file names).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
from _fuzz import check_numbers, fresh_path, fuzz_settings, mutate, mutations, reads_or_refuses, sub, whole
from hypothesis import example, given

from graphfuse.data.multilabel.readers import read_coco_instances

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "multilabel" / "instances_val2017_1img-sample.json"
DEEP_LIST = b"[" * 100_000 + b"]" * 100_000


@functools.cache
def seed() -> bytes:
    doc = json.loads(SAMPLE.read_text(encoding="utf-8"))
    for a in doc["annotations"]:
        a.pop("segmentation", None)
    doc.pop("licenses", None)
    return json.dumps(doc, separators=(",", ":")).encode()


RECIPES = [
    [("empty",)],
    [("truncate", 200)],
    [whole(DEEP_LIST)],
    [whole(b'{"images":' + b"[" * 50_000 + b"]" * 50_000 + b"}")],
    [("encode", "utf-16")],
    [("encode", "latin-1")],
    [("encode", "utf-8-sig")],
    [whole(b"null")],
    [whole(b"[]")],
    [whole(b'{"images":[],"annotations":[],"categories":[]}')],
] + [
    [sub(rb'(?<="category_id":)\d+', v)] for v in (
        b"99999999999999999999", b"-99999999999999999999", b"1e39", b"NaN", b"2.5", b'"1"', b"true", b"null",
        b"[]", b"12", b"-1", b"0")
] + [
    [sub(rb'(?<="image_id":)\d+', v)] for v in (b"99999999999999999999", b"1.0", b"0", b'"448263"')
] + [
    [sub(rb'(?<="id":)448263', b"9223372036854775808")],
    [sub(rb'(?<="id":)448263', b"-9223372036854775808")],
    [sub(rb'"file_name":"[^"]*"', b'"file_name":"../../etc/passwd"')],
    [sub(rb'"file_name":"[^"]*"', b'"file_name":"' + b"a" * 5000 + b'.jpg"')],
    [sub(rb'"file_name":"[^"]*"', b'"file_name":"x\\u0000.jpg"')],
    [sub(rb'"file_name":"[^"]*"', b'"file_name":null')],
    [sub(rb'"name":"person"', b'"name":"bicycle"')],
    [sub(rb'"name":"person"', b'"name":"' + b"p" * 100_000 + b'"')],
    [sub(rb'"name":"person"', b'"name":""')],
    [sub(rb'"name":"person"', b'"name":{"a":1}')],
    [sub(rb'"supercategory":"person"', b'"supercategory":7')],
    [sub(rb'"categories":\[', b'"categories":[1,')],
    [sub(rb'"annotations":\[', b'"annotations":[[],')],
    [sub(rb'"images":\[', b'"images":["x",')],
    [sub(rb'"categories"', b'"kategories"')],
]


def _check(lab) -> None:
    check_numbers(lab)
    n, c = lab.labels.shape
    assert lab.labels.dtype == np.int8 and set(np.unique(lab.labels).tolist()) <= {0, 1}
    assert len(lab.file_names) == n == lab.image_ids.size and all(isinstance(f, str) for f in lab.file_names)
    assert len(lab.class_names) == len(lab.category_ids) == len(lab.supercategories) == c
    assert (lab.labels.sum(axis=1) > 0).all()
    assert 0 <= lab.dropped_without_labels and n + lab.dropped_without_labels <= lab.num_images
    assert all(not f.startswith("/") and ".." not in f.split("/") for f in lab.file_names)


def test_seed_is_valid(fuzz_dir):
    p = fresh_path(fuzz_dir, "instances_val2017.json")
    p.write_bytes(seed())
    lab = read_coco_instances(p)
    assert np.flatnonzero(lab.labels[0]).tolist() == [5, 49, 62]
    _check(lab)


@fuzz_settings(max_examples=400)
@given(ops=mutations())
def test_coco_instances(fuzz_dir, ops):
    path = fresh_path(fuzz_dir, "instances_val2017.json")
    path.write_bytes(mutate(seed(), ops))
    try:
        for order in ("mlgcn", "coco"):
            lab = reads_or_refuses(lambda order=order: read_coco_instances(path, order), path)
            if lab is not None:
                _check(lab)
        lab = reads_or_refuses(lambda: read_coco_instances(path, on_error="skip"), path)
        if lab is not None:
            _check(lab)
    finally:
        path.unlink()


for _ops in RECIPES:
    test_coco_instances = example(ops=_ops)(test_coco_instances)
