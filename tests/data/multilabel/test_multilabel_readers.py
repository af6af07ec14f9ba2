"""COCO instances and VOC XML readers: the real COCO sample checked by hand, the hand-written VOC
set, dropping, class orders, and one clear error naming the file for bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _multilabel_files import COCO_SAMPLE, coco_doc, jpeg_bytes, two_image_doc

from graphfuse.data.multilabel.readers import (
    VOC_CLASSES,
    check_jpeg,
    read_coco_instances,
    read_voc2007,
    read_voc_annotation,
    read_voc_split_ids,
)


def _write(tmp_path, doc, name="instances_train2014.json"):
    p = tmp_path / name
    p.write_text(json.dumps(doc), encoding="utf-8")
    return p


# ---- COCO: the real sample, checked by hand ------------------------------------------------------
# The file lists one image (000000448263.jpg, id 448263) and 16 annotations: category 1
# (person) 14 times (13 instances, 1 crowd region), 37 (sports ball) once, 40 (baseball glove)
# once. Alphabetical (ML-GCN) columns: baseball glove 5, person 49, sports ball 62. COCO id
# order (1, 2, ..., 90 without the 11 unused ids): person 0, sports ball 32, baseball glove 35.


def test_real_sample_mlgcn_order():
    lab = read_coco_instances(COCO_SAMPLE, "mlgcn")
    assert lab.file_names == ["000000448263.jpg"]
    assert lab.image_ids.tolist() == [448263]
    assert lab.num_images == 1 and lab.num_annotations == 16 and lab.dropped_without_labels == 0
    assert lab.labels.dtype == np.int8 and lab.labels.shape == (1, 80)
    assert np.flatnonzero(lab.labels[0]).tolist() == [5, 49, 62]
    assert [lab.class_names[k] for k in (5, 49, 62)] == ["baseball glove", "person", "sports ball"]
    assert lab.class_names == sorted(lab.class_names)
    assert lab.class_names[:3] == ["airplane", "apple", "backpack"] and lab.class_names[-1] == "zebra"
    assert lab.category_ids[49] == 1 and lab.supercategories[49] == "person"
    assert lab.supercategories[5] == "sports" and lab.category_ids[5] == 40


def test_real_sample_coco_order():
    lab = read_coco_instances(COCO_SAMPLE, "coco")
    assert np.flatnonzero(lab.labels[0]).tolist() == [0, 32, 35]
    assert lab.class_names[0] == "person" and lab.class_names[32] == "sports ball"
    assert lab.class_names[35] == "baseball glove" and lab.class_names[-1] == "toothbrush"
    assert lab.category_ids == sorted(lab.category_ids) and lab.category_ids[79] == 90
    # the brief's supercategory group sizes, in COCO id order
    groups = [len(list(g)) for _, g in __import__("itertools").groupby(lab.supercategories)]
    assert groups == [1, 8, 5, 10, 5, 10, 7, 10, 6, 6, 5, 7]


def test_images_without_annotations_are_dropped_and_counted(tmp_path):
    lab = read_coco_instances(_write(tmp_path, two_image_doc()))
    assert lab.num_images == 3 and lab.dropped_without_labels == 1
    assert lab.file_names == ["000000448263.jpg", "000000000007.jpg"]  # the images list's order
    assert np.flatnonzero(lab.labels[1]).tolist() == [lab.class_names.index("tv")]


def test_crowd_annotations_count_as_ml_gcn_counts_them(tmp_path):
    doc = coco_doc()
    doc["annotations"] = [a for a in doc["annotations"] if a["iscrowd"] == 1]  # only the crowd person
    lab = read_coco_instances(_write(tmp_path, doc))
    assert np.flatnonzero(lab.labels[0]).tolist() == [49]


def test_unknown_category_raises_or_skips(tmp_path):
    doc = two_image_doc()
    doc["annotations"][-1]["category_id"] = 12  # an id COCO does not use
    path = _write(tmp_path, doc)
    with pytest.raises(ValueError, match=r"instances_train2014\.json: annotation 16 \(id 77\).*000000000007\.jpg"
                                         r".*category id 12"):
        read_coco_instances(path)
    lab = read_coco_instances(path, on_error="skip")
    assert lab.file_names == ["000000448263.jpg"] and lab.dropped_without_labels == 1
    assert lab.skipped == [{"file": "000000000007.jpg", "image_id": 7,
                            "reason": "instances_train2014.json: annotation 16 (id 77) names unknown category id 12"}]


def test_unknown_image_id_raises(tmp_path):
    doc = coco_doc()
    doc["annotations"][0]["image_id"] = 5
    with pytest.raises(ValueError, match=r"instances_train2014\.json: annotation 0 \(id 503662\) names image id 5"):
        read_coco_instances(_write(tmp_path, doc))


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d["images"][0].update(id="448263"), r"image 0: 'id' must be an integer"),
    (lambda d: d["images"][0].update(id=True), r"image 0: 'id' must be an integer"),
    (lambda d: d["annotations"][3].update(category_id=2**63), r"annotation 3: 'category_id' must be an integer"),
    (lambda d: d["images"][0].update(file_name="../../etc/passwd"), r"must be a relative path"),
    (lambda d: d["images"][0].update(file_name="/abs.jpg"), r"must be a relative path"),
    (lambda d: d["categories"][1].update(name="person"), r"categories 0 and 1 share the name 'person'"),
    (lambda d: d["categories"][1].update(id=1), r"categories 0 and 1 share the id 1"),
    (lambda d: d["categories"][2].pop("supercategory"), r"category 2: 'supercategory' must be"),
    (lambda d: d.update(categories=[]), r"'categories' is empty"),
    (lambda d: d.pop("annotations"), r"'annotations' must be a list"),
    (lambda d: d["images"].append(dict(d["images"][0])), r"image id 448263 is listed twice"),
])
def test_bad_fields_name_the_file(tmp_path, edit, message):
    doc = coco_doc()
    edit(doc)
    path = _write(tmp_path, doc, "instances_val2017.json")
    with pytest.raises(ValueError, match=message) as err:
        read_coco_instances(path)
    assert str(path) in str(err.value)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        read_coco_instances(tmp_path / "nope.json")
    p = tmp_path / "broken.json"
    p.write_text('{"images": [', encoding="utf-8")
    with pytest.raises(ValueError, match="broken.json: malformed JSON"):
        read_coco_instances(p)
    with pytest.raises(ValueError, match="class_order"):
        read_coco_instances(COCO_SAMPLE, "alphabetical")  # type: ignore[arg-type]


# ---- VOC: the hand-written set ---------------------------------------------------------------------
# 000005: chair, chair (difficult), pottedplant (difficult)  -> chair 1, pottedplant -1
# 000007: car                                                 -> car 1
# 000009: horse, person, person (difficult)                   -> horse 1, person 1
# 000001: dog, person                                         -> dog 1, person 1
# 000012: dog (difficult), bicycle (no <difficult>), tvmonitor -> dog -1, bicycle 1, tvmonitor 1


def _expected(pairs):
    row = np.zeros(20, np.int8)
    for name, v in pairs:
        row[VOC_CLASSES.index(name)] = v
    return row


def test_voc_labels_by_hand(voc_root):
    tv = read_voc2007(voc_root, "trainval")
    assert tv.ids == ["000005", "000007", "000009"] and tv.file_names == ["000005.jpg", "000007.jpg", "000009.jpg"]
    np.testing.assert_array_equal(tv.labels, np.stack([
        _expected([("chair", 1), ("pottedplant", -1)]),
        _expected([("car", 1)]),
        _expected([("horse", 1), ("person", 1)]),
    ]))
    test = read_voc2007(voc_root / "VOCdevkit", "test")  # the VOCdevkit folder works as root too
    np.testing.assert_array_equal(test.labels, np.stack([
        _expected([("dog", 1), ("person", 1)]),
        _expected([("dog", -1), ("bicycle", 1), ("tvmonitor", 1)]),
    ]))
    assert tv.labels.dtype == np.int8 and tv.dropped_without_labels == 0 and tv.class_names == list(VOC_CLASSES)


def test_voc_bad_files(voc_root, tmp_path):
    ann = voc_root / "VOCdevkit/VOC2007/Annotations"
    xml = (ann / "000007.xml").read_text()
    (ann / "000007.xml").write_text(xml.replace("<name>car</name>", "<name>truck</name>"))
    with pytest.raises(ValueError, match=r"000007\.xml: object 0: <name> 'truck' is not one of the 20 VOC classes"):
        read_voc2007(voc_root, "trainval")
    skipped = read_voc2007(voc_root, "trainval", on_error="skip")
    assert skipped.ids == ["000005", "000009"] and skipped.skipped[0]["file"] == "000007.jpg"
    (ann / "000007.xml").write_text(xml.replace("<difficult>0</difficult>", "<difficult>2</difficult>"))
    with pytest.raises(ValueError, match=r"000007\.xml: object 0 \(car\): <difficult> must be 0 or 1"):
        read_voc_annotation(ann / "000007.xml")
    (ann / "000007.xml").write_text('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "y">]>' + xml)
    with pytest.raises(ValueError, match=r"000007\.xml: XML construct refused"):
        read_voc_annotation(ann / "000007.xml")
    (ann / "000007.xml").write_text(xml[:200])
    with pytest.raises(ValueError, match=r"000007\.xml: malformed XML"):
        read_voc_annotation(ann / "000007.xml")
    (ann / "000007.xml").unlink()
    with pytest.raises(FileNotFoundError, match=r"000007\.xml"):
        read_voc2007(voc_root, "trainval")
    bad_set = tmp_path / "bad.txt"
    bad_set.write_text("000001\n../x\n")
    with pytest.raises(ValueError, match=r"bad\.txt: line 2"):
        read_voc_split_ids(bad_set)


# ---- the cheap JPEG check ----------------------------------------------------------------------------


def test_check_jpeg(tmp_path):
    good = tmp_path / "good.jpg"
    data = jpeg_bytes()
    good.write_bytes(data)
    check_jpeg(good)
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        check_jpeg(tmp_path / "missing.jpg")
    png = tmp_path / "fake.jpg"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 100)
    with pytest.raises(ValueError, match="fake.jpg: not a JPEG file"):
        check_jpeg(png)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.jpg: truncated JPEG"):
        check_jpeg(cut)
    padded = tmp_path / "padded.jpg"
    padded.write_bytes(data + b"\x00" * 100)  # bytes after the EOI marker are tolerated
    check_jpeg(padded)
