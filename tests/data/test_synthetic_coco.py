"""Synthetic COCO-format data: written in COCO's schema, read back through the real reader,
co-occurrence structure as documented, and labels that only the pixels reveal."""

from __future__ import annotations

import json

import numpy as np
import pytest

from graphfuse.data.multilabel.readers import read_coco_instances
from graphfuse.data.synthetic.coco import (
    CLASSES,
    NEVER,
    STYLES,
    TOGETHER,
    generate_synthetic_coco,
    prepare_synthetic_coco,
    sample_image_labels,
)


def test_styles_are_distinct_and_ambiguous_alone():
    styles = list(STYLES.values())
    assert len(set(styles)) == 20
    # every shape and every colour is shared by exactly two classes
    assert sorted(np.unique([s for s, _ in styles], return_counts=True)[1].tolist()) == [2] * 10
    assert sorted(np.unique([str(c) for _, c in styles], return_counts=True)[1].tolist()) == [2] * 10


def test_label_structure():
    rng = np.random.default_rng(0)
    draws = [sample_image_labels(rng) for _ in range(4000)]
    sets = [set(d) for d in draws]
    empty = sum(not s for s in sets) / len(sets)
    assert 0.03 < empty < 0.07
    assert all(len(s) <= 5 for s in sets)
    for a, b in NEVER:
        assert not any(a in s and b in s for s in sets), (a, b)
    for trigger, partner in TOGETHER:
        with_t = [s for s in sets if trigger in s]
        assert len(with_t) > 50 and np.mean([partner in s for s in with_t]) > 0.8, trigger
    assert any(len(d) != len(set(d)) for d in draws)  # some classes appear twice


def test_coco_schema_and_read_back(tmp_path):
    paths = generate_synthetic_coco(tmp_path / "raw", num_train=40, num_val=10, size=48, seed=1)
    doc = json.loads(paths["train_json"].read_text())
    assert set(doc) >= {"info", "licenses", "images", "annotations", "categories"}
    assert [c["id"] for c in doc["categories"]] == [cid for _, _, cid in CLASSES]
    assert set(doc["annotations"][0]) == {"segmentation", "area", "iscrowd", "image_id", "bbox", "category_id", "id"}
    ann = doc["annotations"][0]
    assert len(ann["bbox"]) == 4 and ann["area"] > 0 and ann["iscrowd"] == 0
    assert len({a["id"] for a in doc["annotations"]}) == len(doc["annotations"])
    assert all((paths["train_images"] / im["file_name"]).is_file() for im in doc["images"])
    # an independent computation of the labels from the JSON
    lab = read_coco_instances(paths["train_json"])
    by_image = {}
    for a in doc["annotations"]:
        by_image.setdefault(a["image_id"], set()).add(a["category_id"])
    kept = [im for im in doc["images"] if im["id"] in by_image]
    assert lab.file_names == [im["file_name"] for im in kept]
    assert lab.dropped_without_labels == len(doc["images"]) - len(kept)
    name_of = {cid: name for name, _, cid in CLASSES}
    for row, im in zip(lab.labels, kept):
        assert {lab.class_names[k] for k in np.flatnonzero(row)} == {name_of[c] for c in by_image[im["id"]]}
    for a, b in NEVER:
        assert not (lab.labels[:, lab.class_names.index(a)] & lab.labels[:, lab.class_names.index(b)]).any()


@pytest.mark.slow
def test_labels_need_the_pixels(tmp_path):
    """A colour-histogram logistic regression beats the chance mAP clearly; with the training
    labels shuffled (a pipeline that lost the image-label pairing) it does not."""
    from PIL import Image
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score

    out = tmp_path / "syn"
    meta = prepare_synthetic_coco(out, num_train=300, num_val=120, size=48, seed=2)

    def features(split):
        root = meta["image_roots"][split]
        files = json.loads((out / f"{split}_files.json").read_text())
        hists = []
        for f in files:
            px = np.asarray(Image.open(f"{root}/{f}").convert("RGB")).reshape(-1, 3) // 64
            hists.append(np.bincount(px[:, 0] * 16 + px[:, 1] * 4 + px[:, 2], minlength=64) / len(px))
        return np.asarray(hists), np.load(out / f"{split}_labels.npy")

    xtr, ytr = features("train")
    xte, yte = features("test")
    keep = [k for k in range(20) if 0 < ytr[:, k].sum() < len(ytr) and yte[:, k].sum() > 0]

    def m_ap(labels_train):
        aps = []
        for k in keep:
            if labels_train[:, k].min() == labels_train[:, k].max():
                continue
            clf = LogisticRegression(C=10.0, max_iter=500).fit(xtr, labels_train[:, k])
            aps.append(average_precision_score(yte[:, k], clf.decision_function(xte)))
        return 100 * float(np.mean(aps))

    chance = 100 * float(yte[:, keep].mean(axis=0).mean())
    real = m_ap(ytr)
    shuffled = m_ap(ytr[np.random.default_rng(0).permutation(len(ytr))])
    assert real > chance + 20, (real, chance)
    assert shuffled < chance + 10, (shuffled, chance)

