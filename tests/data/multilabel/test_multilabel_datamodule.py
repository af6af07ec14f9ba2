"""MultiLabelDataModule on synthetic COCO-format data: batch shapes and dtypes, the seeded
hold-out, the fixed train-eval subset, the label graph, missing-data errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from graphfuse.data.multilabel.datamodule import (
    MultiLabelDataModule,
    multilabel_holdout,
    multilabel_prepare_command,
)
from graphfuse.data.multilabel.glove import label_statistics


def test_batches(synthetic_coco):
    dm = MultiLabelDataModule(str(synthetic_coco), image_size=40, batch_size=8, val_fraction=0.2, train_eval_subset=10)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"image", "target", "id"}
    assert batch["image"].shape == (8, 3, 40, 40) and batch["image"].dtype == torch.float32
    assert batch["target"].shape == (8, 20) and batch["target"].dtype == torch.int64
    assert batch["id"].shape == (8,) and batch["id"].dtype == torch.int64
    assert set(batch["target"].unique().tolist()) <= {0, 1}
    ds = dm.dataset("train")
    for row, i in zip(batch["target"], batch["id"].tolist()):  # targets follow the ids
        np.testing.assert_array_equal(row.numpy(), ds.labels[i])
    assert dm.num_class == 20 and dm.class_names == sorted(dm.class_names) and dm.class_order == "mlgcn"
    assert dm.supercategories[dm.class_names.index("person")] == "person"
    val = next(iter(dm.val_dataloader()))
    assert val["image"].shape[1:] == (3, 40, 40)
    test = dm.dataset("test")
    assert len(test) == dm.meta["splits"]["test"]
    assert len(dm.split_names("test")) == len(test) and dm.split_names("test")[0].endswith(".jpg")


def test_holdout_and_train_eval_subset(synthetic_coco):
    dm = MultiLabelDataModule(str(synthetic_coco), image_size=32, batch_size=4, val_fraction=0.25,
                              train_eval_subset=12)
    train_rows, val_rows = dm.holdout_indices()
    n = dm.meta["splits"]["train"]
    assert np.intersect1d(train_rows, val_rows).size == 0 and np.union1d(train_rows, val_rows).size == n
    assert abs(val_rows.size - 0.25 * n) <= 5
    again = MultiLabelDataModule(str(synthetic_coco), val_fraction=0.25).holdout_indices()
    np.testing.assert_array_equal(again[1], val_rows)  # a function of (labels, fraction, val_seed)
    rows = dm.train_eval_rows()
    assert rows.size == 12 and np.isin(rows, train_rows).all()
    loader = dm.train_eval_dataloader()
    first = torch.cat([b["image"] for b in loader])
    second = torch.cat([b["image"] for b in loader])
    assert first.shape == (12, 3, 32, 32) and torch.equal(first, second)  # the test transform: deterministic
    assert len(dm.train_eval_names()) == 12
    dm0 = MultiLabelDataModule(str(synthetic_coco), val_fraction=0.0, train_eval_subset=0)
    assert dm0.val_dataloader() == [] and dm0.train_eval_dataloader() is None
    assert len(dm0.dataset("train")) == n


def test_seeded_items_are_reproducible(synthetic_coco):
    dm = MultiLabelDataModule(str(synthetic_coco), image_size=32, batch_size=4)
    ds = dm.dataset("train")
    a, b = ds[(3, 11)], ds[(3, 11)]
    assert torch.equal(a["image"], b["image"]) and a["id"] == 3
    assert len({ds[(3, s)]["image"].sum().item() for s in range(8)}) > 1  # the seed drives the augmentation


def test_label_graph(synthetic_coco):
    dm = MultiLabelDataModule(str(synthetic_coco))
    g = dm.label_graph()
    counts, cooc = label_statistics(np.load(synthetic_coco / "train_labels.npy"))
    np.testing.assert_array_equal(g["counts"], counts)
    np.testing.assert_array_equal(g["cooccurrence"], cooc)
    assert g["embeddings"].shape == (20, 300) and g["embeddings"].dtype == np.float32
    assert g["num_images"] == dm.meta["splits"]["train"] and (g["counts"] <= g["num_images"]).all()
    info = dm.inference_options()
    assert info["input_shapes"] == {"image": [3, 448, 448]} and len(info["class_names"]) == 20


def test_holdout_hand_worked():
    # class counts: c0 = 4, c1 = 2 (rarest), c2 = 0; keys: images holding c1 -> rank of c1, others -> c0's rank
    labels = np.array([[1, 1, 0], [1, 1, 0], [1, 0, 0], [1, 0, 0], [0, 0, 0], [0, 0, 0]])
    train, val = multilabel_holdout(labels, 0.5, seed=0)
    assert np.isin(val, [0, 1]).sum() == 1  # one of the two c1 images
    assert np.isin(val, [2, 3]).sum() == 1 and np.isin(val, [4, 5]).sum() == 1
    assert np.union1d(train, val).tolist() == list(range(6))
    with pytest.raises(ValueError):
        multilabel_holdout(labels, 1.0, 0)


@pytest.mark.parametrize(("folder", "command"), [
    ("data/synthetic-coco", "graphfuse prepare synthetic-coco --out data/synthetic-coco`"),
    ("data/coco2014", "graphfuse prepare coco --root"),
    ("data/voc2007", "graphfuse prepare voc2007 --root"),
])
def test_missing_data_error_names_the_command(tmp_path, monkeypatch, folder, command):
    monkeypatch.chdir(tmp_path)  # the relative folder must not exist (a developer's checkout may hold it)
    assert "{data_dir}" in multilabel_prepare_command(folder)
    with pytest.raises(FileNotFoundError) as err:
        MultiLabelDataModule(folder).prepare_data()
    assert command in str(err.value) and "synthetic: true" in str(err.value)


def test_synthetic_true_generates(tmp_path):
    # small sizes keep the test fast; the defaults (800 / 400 images) are the generator's
    dm = MultiLabelDataModule(str(tmp_path / "synthetic-coco"), synthetic=True, image_size=32,
                              synthetic_options={"num_train": 120, "num_val": 40, "size": 48})
    assert dm.num_class == 20
    assert dm.meta["dataset"] == "synthetic-coco" and dm.meta["splits"]["train"] > 100
    assert dm.synthetic_meta()["class_names"] == dm.class_names
    labels = np.load(tmp_path / "synthetic-coco" / "test_labels.npy")
    assert labels.shape[0] <= 40 and (labels.sum(0) >= 2).all()  # min(8, 40 // 20) positives per class
    with pytest.raises(ValueError, match="synthetic_options: unknown key"):
        MultiLabelDataModule(str(tmp_path / "other"), synthetic=True, synthetic_options={"n_train": 5})
