"""``prepare_coco`` / ``prepare_voc2007``: the prepared folder's contract, the class-order
permutation of ML-GCN's .pkl files, and bad images (missing, corrupt) as errors or listed skips."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from _multilabel_files import coco_doc, jpeg_bytes, make_coco_root, two_image_doc

from graphfuse.data.multilabel.prepare import (
    check_multilabel_folder,
    load_multilabel_meta,
    prepare_coco,
    prepare_voc2007,
)
from graphfuse.data.multilabel.readers import VOC_CLASSES


def test_coco_folder_contract(coco_root, tmp_path):
    out = tmp_path / "out"
    meta = prepare_coco(coco_root, out, year=2014)
    assert meta == load_multilabel_meta(out)
    assert meta["format"] == "graphfuse-multilabel" and meta["version"] == 1 and meta["dataset"] == "coco2014"
    assert meta["num_class"] == 80 and meta["class_order"] == "mlgcn" and meta["class_names"][49] == "person"
    assert meta["supercategories"][49] == "person" and len(meta["supercategories"]) == 80
    assert meta["splits"] == {"train": 2, "test": 1}
    assert meta["dropped_without_labels"] == {"train": 1, "test": 0}
    assert meta["image_roots"] == {"train": str((coco_root / "train2014").resolve()),
                                   "test": str((coco_root / "val2014").resolve())}
    assert meta["skipped"] == [] and meta["word_embeddings"] is None
    assert meta["value_check"]["result"] == "passed"
    train = np.load(out / "train_labels.npy")
    assert train.dtype == np.int8 and train.shape == (2, 80)
    assert json.loads((out / "train_files.json").read_text()) == ["000000448263.jpg", "000000000007.jpg"]
    assert json.loads((out / "test_files.json").read_text()) == ["000000448263.jpg"]
    counts = np.load(out / "label_counts.npy")
    cooc = np.load(out / "label_cooccurrence.npy")
    assert counts.dtype == np.int64 and cooc.dtype == np.int64 and cooc.shape == (80, 80)
    tv = meta["class_names"].index("tv")
    expected = np.zeros(80, np.int64)
    expected[[5, 49, 62, tv]] = 1
    np.testing.assert_array_equal(counts, expected)
    assert cooc[5, 49] == cooc[49, 62] == cooc[62, 5] == 1 and cooc.sum() == 6 and cooc[tv].sum() == 0
    assert check_multilabel_folder(out)[:2] == ["train_labels.npy", "test_labels.npy"]


def test_coco_order_permutes_the_released_pickles(coco_root, tmp_path):
    """ML-GCN's .pkl rows are alphabetical; with --class-order coco each row must follow its class."""
    rng = np.random.default_rng(1)
    vecs = rng.normal(size=(80, 300)).astype(np.float32)
    nums = rng.integers(50, 100, 80)
    adj = rng.integers(0, 40, (80, 80))
    adj = np.minimum(adj, adj.T)
    np.fill_diagonal(adj, 0)
    (tmp_path / "w.pkl").write_bytes(pickle.dumps(vecs))
    (tmp_path / "adj.pkl").write_bytes(pickle.dumps({"adj": adj, "nums": nums}))
    ml = prepare_coco(coco_root, tmp_path / "ml", word_vectors=tmp_path / "w.pkl", adj=tmp_path / "adj.pkl")
    co = prepare_coco(coco_root, tmp_path / "co", class_order="coco", word_vectors=tmp_path / "w.pkl",
                      adj=tmp_path / "adj.pkl")
    alpha = ml["class_names"]
    assert alpha == sorted(alpha) and co["class_names"][0] == "person"
    emb_ml, emb_co = np.load(tmp_path / "ml/word_embeddings.npy"), np.load(tmp_path / "co/word_embeddings.npy")
    np.testing.assert_array_equal(emb_ml, vecs)
    np.testing.assert_array_equal(emb_co[0], vecs[49])  # person
    c_co = np.load(tmp_path / "co/label_counts.npy")
    a_co = np.load(tmp_path / "co/label_cooccurrence.npy")
    for i, name_i in enumerate(co["class_names"]):  # every entry follows its names
        assert c_co[i] == nums[alpha.index(name_i)]
    j, k = co["class_names"].index("sports ball"), co["class_names"].index("bicycle")
    assert a_co[j, k] == adj[alpha.index("sports ball"), alpha.index("bicycle")]
    assert "permuted" in co["word_embeddings_source"] and "permuted" in co["label_graph"]["source"]
    assert ml["label_graph"]["equals_train_labels"] is False
    labels_ml, labels_co = np.load(tmp_path / "ml/train_labels.npy"), np.load(tmp_path / "co/train_labels.npy")
    perm = [alpha.index(n) for n in co["class_names"]]
    np.testing.assert_array_equal(labels_co, labels_ml[:, perm])


def test_coco_glove_embeddings(coco_root, tmp_path):
    words = sorted({w for n in load_names() for w in n.split()})
    rng = np.random.default_rng(0)
    table = {w: rng.normal(size=5) for w in words}
    glove = tmp_path / "glove.txt"
    glove.write_text("".join(f"{w} {' '.join(f'{v:.6f}' for v in table[w])}\n" for w in words))
    meta = prepare_coco(coco_root, tmp_path / "out", glove=glove)
    emb = np.load(tmp_path / "out/word_embeddings.npy")
    assert emb.shape == (80, 5) and emb.dtype == np.float32 and meta["embedding_dim"] == 5
    k = meta["class_names"].index("traffic light")
    ref = (np.round(table["traffic"], 6) + np.round(table["light"], 6)) / 2
    np.testing.assert_allclose(emb[k], ref, rtol=1e-6, atol=1e-7)


def load_names() -> list[str]:
    return [c["name"] for c in coco_doc()["categories"]]


def test_missing_image_raises_or_is_skipped(coco_root, tmp_path):
    (coco_root / "train2014" / "000000000007.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"image file not found: .*train2014/000000000007\.jpg"):
        prepare_coco(coco_root, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing written before the inputs are known good
    meta = prepare_coco(coco_root, tmp_path / "out", skip_bad=True)
    assert meta["splits"]["train"] == 1
    assert [s["file"] for s in meta["skipped"]] == ["000000000007.jpg"] and meta["skipped"][0]["split"] == "train"


def test_corrupt_jpeg(coco_root, tmp_path):
    img = coco_root / "val2014" / "000000448263.jpg"
    data = img.read_bytes()
    img.write_bytes(data[: len(data) - 40])  # truncated: found by the header check
    with pytest.raises(ValueError, match=r"val2014/000000448263\.jpg: truncated JPEG"):
        prepare_coco(coco_root, tmp_path / "out")
    # corrupt in the middle, markers intact: only decoding finds it
    bad = bytearray(data)
    start = bytes(bad).index(b"\xff\xda")  # start of scan
    bad[start + 2:start + 4] = b"\xff\xff"  # an impossible scan-header length
    img.write_bytes(bytes(bad))
    prepare_coco(coco_root, tmp_path / "out_header")  # passes the cheap check
    with pytest.raises(ValueError, match=r"val2014/000000448263\.jpg: corrupt JPEG"):
        prepare_coco(coco_root, tmp_path / "out_decode", verify="decode")


def test_unknown_category_raises_or_is_skipped(tmp_path):
    train = two_image_doc()
    train["annotations"][-1]["category_id"] = 200
    root = make_coco_root(tmp_path / "coco", train, coco_doc())
    with pytest.raises(ValueError, match=r"instances_train2014\.json: annotation 16 \(id 77\).*category id 200"):
        prepare_coco(root, tmp_path / "out")
    meta = prepare_coco(root, tmp_path / "out", skip_bad=True)
    assert meta["splits"]["train"] == 1 and meta["skipped"][0]["file"] == "000000000007.jpg"


def test_existing_folder_needs_overwrite(coco_root, tmp_path):
    prepare_coco(coco_root, tmp_path / "out")
    with pytest.raises(FileExistsError, match="--overwrite"):
        prepare_coco(coco_root, tmp_path / "out")
    prepare_coco(coco_root, tmp_path / "out", overwrite=True, class_order="coco")
    assert load_multilabel_meta(tmp_path / "out")["class_order"] == "coco"


def test_voc_folder(voc_root, tmp_path):
    meta = prepare_voc2007(voc_root, tmp_path / "voc")
    assert meta["dataset"] == "voc2007" and meta["class_order"] == "voc" and meta["num_class"] == 20
    assert meta["class_names"] == list(VOC_CLASSES) and meta["supercategories"] == [None] * 20
    assert meta["splits"] == {"train": 3, "test": 2}
    train = np.load(tmp_path / "voc/train_labels.npy")
    assert train[0, VOC_CLASSES.index("pottedplant")] == -1
    counts = np.load(tmp_path / "voc/label_counts.npy")
    assert counts[VOC_CLASSES.index("pottedplant")] == 0 and counts[VOC_CLASSES.index("chair")] == 1
    assert json.loads((tmp_path / "voc/test_files.json").read_text()) == ["000001.jpg", "000012.jpg"]
    check_multilabel_folder(tmp_path / "voc")


def test_voc_glove_uses_the_words_of_glued_names(voc_root, tmp_path):
    words = ["aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "dining",
             "table", "dog", "horse", "motorbike", "person", "potted", "plant", "sheep", "sofa", "train", "tv",
             "monitor"]
    glove = tmp_path / "g.txt"
    glove.write_text("".join(f"{w} {i} {-i}\n" for i, w in enumerate(words)))
    prepare_voc2007(voc_root, tmp_path / "voc", glove=glove)
    emb = np.load(tmp_path / "voc/word_embeddings.npy")
    np.testing.assert_allclose(emb[VOC_CLASSES.index("diningtable")], [10.5, -10.5])  # (dining + table) / 2


@pytest.fixture
def multilabel_family():
    """The multi-label family registered for the test (and removed again if it was not a
    built-in family before), so other tests see the registry as it was."""
    from graphfuse.families import families, register_family, unregister_family

    had = any(f.name == "multilabel" for f in families())  # loads the built-in families first
    from graphfuse.families.multilabel import FAMILY  # registers it on first import

    register_family(FAMILY)  # (again) after an earlier test removed it
    yield FAMILY
    if not had:
        unregister_family(FAMILY.name)


def test_prepare_cli(coco_root, voc_root, tmp_path, capsys, multilabel_family):
    from graphfuse.cli import main

    assert main(["prepare", "coco", "--root", str(coco_root), "--out", str(tmp_path / "c"), "--year", "2014",
                 "--class-order", "coco"]) == 0
    out = capsys.readouterr().out
    assert "prepared coco2014 (80 classes, order coco)" in out and "1 without labels dropped" in out
    assert main(["prepare", "voc2007", "--root", str(voc_root), "--out", str(tmp_path / "v")]) == 0
    (coco_root / "val2014" / "000000448263.jpg").write_bytes(jpeg_bytes()[:50])
    assert main(["prepare", "coco", "--root", str(coco_root), "--out", str(tmp_path / "c2")]) == 2
    err = capsys.readouterr().err
    assert "000000448263.jpg: truncated JPEG" in err and "Traceback" not in err


def test_info_example_input(multilabel_family):
    import torch

    from graphfuse.families import resolve

    build = resolve(multilabel_family.example_input)
    net = torch.nn.Conv2d(3, 2, 3).to(torch.float64)
    (x,) = build(net, {"data": {"init_args": {"image_size": 64}}})
    assert x.shape == (1, 3, 64, 64) and x.dtype == torch.float64 and not x.any()
    (x,) = build(net, None)
    assert x.shape == (1, 3, 448, 448)
    with pytest.raises(ValueError, match="image_size"):
        build(net, {"data": {"init_args": {"image_size": "big"}}})
