"""Synthetic COCO-format data: written in COCO's schema, read back through the real reader,
co-occurrence structure as documented, and labels that only the pixels reveal."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from graphfuse.data.multilabel.readers import read_coco_instances
from graphfuse.data.synthetic.coco import (
    CLASSES,
    DEFAULT_NUM_TRAIN,
    DEFAULT_NUM_VAL,
    NEVER,
    STYLES,
    TOGETHER,
    generate_synthetic_coco,
    prepare_synthetic_coco,
    sample_image_labels,
    sample_split_labels,
    synthetic_label_matrix,
)

QUICKSTART = Path(__file__).resolve().parents[2] / "configs" / "synthetic-coco" / "mlgcn" / "quickstart.yaml"


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
    # the labels can be computed without drawing (same streams), in ML-GCN's (alphabetical) order
    expected = synthetic_label_matrix("train", 40, seed=1)
    order = sorted(lab.class_names)
    assert np.array_equal(expected, lab.labels[:, [lab.class_names.index(n) for n in order]])
    assert (expected.sum(0) >= 2).all()  # min(8, 40 // 20) positives of every class


@pytest.mark.parametrize("n,min_positives", [(20, 8), (45, 8), (200, 8), (200, 3), (300, 0)])
def test_every_class_has_positives_by_construction(n, min_positives):
    draws = sample_split_labels(n, np.random.default_rng(n + min_positives), min_positives)
    assert len(draws) == n
    counts = np.asarray([sum(name in set(d) for d in draws) for name, _, _ in CLASSES])
    assert counts.min() >= min(min_positives, n // 20), counts
    for a, b in NEVER:  # the conditioned draws follow the same rules
        assert not any(a in d and b in d for d in draws)
    with pytest.raises(ValueError):
        sample_split_labels(-1, np.random.default_rng(0))


def test_quickstart_splits_have_every_class():
    """The quickstart's data (generator defaults) has positives of every class in train, in the
    hold-out the datamodule carves from it (the config's val_fraction, val_seed 0) and in test;
    the generator guarantees >= 8 per generated split, the hold-out is checked here."""
    from graphfuse.data.multilabel.datamodule import multilabel_holdout

    data = yaml.safe_load(QUICKSTART.read_text())["data"]["init_args"]
    assert data["synthetic"] and not data.get("synthetic_options")  # the defaults below
    train = synthetic_label_matrix("train", DEFAULT_NUM_TRAIN)
    test = synthetic_label_matrix("val", DEFAULT_NUM_VAL)
    fit_rows, val_rows = multilabel_holdout(train, float(data["val_fraction"]), int(data.get("val_seed", 0)))
    for part in (train[fit_rows], train[val_rows], test):
        assert (part.sum(0) >= 5).all(), part.sum(0)
    assert len(val_rows) >= 100 and len(test) >= 350
    # chance mAP (mean class frequency of test), as docs/models_mlgcn.md states it
    assert abs(100 * test.mean(0).mean() - 14.3) < 0.05


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

