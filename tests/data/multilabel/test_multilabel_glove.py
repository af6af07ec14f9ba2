"""GloVe class embeddings (multi-word averaging), ML-GCN's .pkl files through the restricted
unpickler, the class permutation, and the label-graph counts on a hand-worked example."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from graphfuse.data.multilabel.glove import (
    VOC_WORDS,
    class_words,
    label_statistics,
    read_adj_pkl,
    read_glove_class_embeddings,
    read_word_vectors_pkl,
    reorder,
)


def _glove(tmp_path, rows: dict[str, list[float]], extra: str = "") -> object:
    """A GloVe-format file of ``rows``; ``extra`` lines go after the first row."""
    lines = [f"{w} {' '.join(map(str, v))}\n" for w, v in rows.items()]
    p = tmp_path / "glove.test.4d.txt"
    p.write_text("".join(lines[:1]) + extra + "".join(lines[1:]), encoding="utf-8")
    return p


def test_glove_averages_multi_word_names(tmp_path):
    rows = {"the": [9, 9, 9, 9], "traffic": [1.0, 2.0, 3.0, 4.0], "light": [3.0, 2.0, 1.0, 0.0],
            "dog": [0.5, -0.5, 0.25, 1e-3], "Traffic": [7, 7, 7, 7]}
    # a token with spaces (as in glove.840B) has more fields and must not match "light"
    path = _glove(tmp_path, rows, extra="light . . 1 2 3 4\n")
    emb = read_glove_class_embeddings(path, ["traffic light", "dog"])
    assert emb.dtype == np.float32 and emb.shape == (2, 4)
    np.testing.assert_allclose(emb[0], [2.0, 2.0, 2.0, 2.0])
    np.testing.assert_allclose(emb[1], [0.5, -0.5, 0.25, 1e-3], rtol=1e-6)
    # lower-case fallback for an upper-case class word
    np.testing.assert_allclose(read_glove_class_embeddings(path, ["Dog"])[0], emb[1])


def test_glove_missing_word_is_named(tmp_path):
    path = _glove(tmp_path, {"traffic": [1, 2, 3, 4]})
    with pytest.raises(ValueError, match=r"glove\.test\.4d\.txt: the word 'light' \(of class 'traffic light'\) "
                                         r"is not in the GloVe file"):
        read_glove_class_embeddings(path, ["traffic light"])


def test_glove_bad_values_and_files(tmp_path):
    path = _glove(tmp_path, {"cat": [1, 2, "x", 4]})
    with pytest.raises(ValueError, match=r"glove\.test\.4d\.txt: line 1 \('cat'\): non-numeric"):
        read_glove_class_embeddings(path, ["cat"])
    path = _glove(tmp_path, {"cat": [1, 2, "nan", 4]})
    with pytest.raises(ValueError, match=r"line 1 \('cat'\): vector values must be finite"):
        read_glove_class_embeddings(path, ["cat"])
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty.txt: empty GloVe file"):
        read_glove_class_embeddings(empty, ["cat"])
    with pytest.raises(FileNotFoundError, match="none.txt"):
        read_glove_class_embeddings(tmp_path / "none.txt", ["cat"])


def test_voc_words():
    assert class_words("diningtable", VOC_WORDS) == ["dining", "table"]
    assert class_words("tvmonitor", VOC_WORDS) == ["tv", "monitor"]
    assert class_words("hair drier") == ["hair", "drier"]


# ---- ML-GCN's pickles ---------------------------------------------------------------------------


def test_word_vectors_pkl(tmp_path):
    vecs = np.random.default_rng(0).normal(size=(80, 300)).astype(np.float32)
    p = tmp_path / "coco_glove_word2vec.pkl"
    p.write_bytes(pickle.dumps(vecs, protocol=2))
    out = read_word_vectors_pkl(p, 80)
    np.testing.assert_array_equal(out, vecs)
    with pytest.raises(ValueError, match=r"coco_glove_word2vec\.pkl: 80 rows of word vectors, but the dataset has 20"):
        read_word_vectors_pkl(p, 20)


@pytest.mark.parametrize("obj", [
    {"adj": np.zeros((80, 300))},
    [np.zeros((80, 300))],
    np.zeros((80, 300), dtype=np.int64),
    np.zeros((80,), dtype=np.float32),
    "words",
])
def test_word_vectors_pkl_other_objects_refused(tmp_path, obj):
    p = tmp_path / "coco_glove_word2vec.pkl"
    p.write_bytes(pickle.dumps(obj))
    with pytest.raises(ValueError, match=r"coco_glove_word2vec\.pkl: expected a float numpy array"):
        read_word_vectors_pkl(p, 80)


class _Evil:
    def __reduce__(self):
        import os

        return (os.getcwd, ())


def test_pkl_with_a_foreign_global_is_refused(tmp_path):
    p = tmp_path / "coco_adj.pkl"
    p.write_bytes(pickle.dumps({"adj": _Evil(), "nums": np.zeros(80)}))
    with pytest.raises(pickle.UnpicklingError, match=r"coco_adj\.pkl"):
        read_adj_pkl(p, 80)
    with pytest.raises(pickle.UnpicklingError, match=r"coco_adj\.pkl"):
        read_word_vectors_pkl(p, 80)


def _adj_file(tmp_path, adj, nums):
    p = tmp_path / "coco_adj.pkl"
    p.write_bytes(pickle.dumps({"adj": adj, "nums": nums}, protocol=2))
    return p


def test_adj_pkl(tmp_path):
    adj = np.array([[5, 2, 0], [2, 0, 1], [0, 1, 0]], dtype=np.int64)  # a non-zero diagonal is ignored
    nums = np.array([3, 4, 1], dtype=np.int64)
    counts, cooc = read_adj_pkl(_adj_file(tmp_path, adj, nums), 3)
    assert counts.dtype == np.int64 and cooc.dtype == np.int64
    np.testing.assert_array_equal(counts, nums)
    np.testing.assert_array_equal(cooc, [[0, 2, 0], [2, 0, 1], [0, 1, 0]])
    counts, cooc = read_adj_pkl(_adj_file(tmp_path, adj.astype(np.float64), nums.astype(np.float32)), 3)
    np.testing.assert_array_equal(counts, nums)


@pytest.mark.parametrize(("adj", "nums", "message"), [
    (np.zeros((3, 3)), np.zeros(4), r"'nums' has shape \(4,\), expected \(3,\)"),
    (np.array([[0, 1, 0], [2, 0, 0], [0, 0, 0]]), np.ones(3), "'adj' is not symmetric"),
    (np.array([[0, 3, 0], [3, 0, 0], [0, 0, 0]]), np.array([2, 5, 1]), r"adj\[0, 1\] = 3 exceeds nums\[0\] = 2"),
    (np.full((3, 3), 0.5), np.ones(3), "'adj' must hold non-negative whole counts"),
    (np.zeros((3, 3)), np.array([1, -1, 0]), "'nums' must hold non-negative whole counts"),
    (np.zeros((3, 3)), [1, 1, 1], "'nums' must be a numeric numpy array, got list"),
])
def test_adj_pkl_bad_content(tmp_path, adj, nums, message):
    with pytest.raises(ValueError, match=message) as err:
        read_adj_pkl(_adj_file(tmp_path, adj, nums), 3)
    assert "coco_adj.pkl" in str(err.value)


def test_adj_pkl_other_keys_refused(tmp_path):
    p = tmp_path / "coco_adj.pkl"
    p.write_bytes(pickle.dumps({"adj": np.zeros((3, 3)), "nums": np.zeros(3), "extra": 1}))
    with pytest.raises(ValueError, match=r"coco_adj\.pkl: expected a dict with exactly the keys"):
        read_adj_pkl(p, 3)


# ---- permutation and counts ------------------------------------------------------------------------


def test_reorder_round_trip():
    names_a = ["apple", "bus", "cat", "dog"]  # alphabetical (ML-GCN)
    names_b = ["cat", "bus", "dog", "apple"]  # e.g. id order
    vec = np.array([10, 20, 30, 40])
    mat = np.arange(16).reshape(4, 4)
    v_b = reorder(vec, names_a, names_b)
    assert v_b.tolist() == [30, 20, 40, 10]
    m_b = reorder(mat, names_a, names_b, axes=2)
    assert m_b[0, 3] == mat[2, 0]  # (cat, apple)
    np.testing.assert_array_equal(reorder(v_b, names_b, names_a), vec)
    np.testing.assert_array_equal(reorder(m_b, names_b, names_a, axes=2), mat)
    with pytest.raises(ValueError):
        reorder(vec, names_a, ["apple", "bus", "cat", "emu"])


def test_label_statistics_hand_worked():
    labels = np.array([[1, 1, 0], [1, 0, -1], [0, 1, 1], [1, 1, 1]], dtype=np.int8)
    counts, cooc = label_statistics(labels)
    assert counts.tolist() == [3, 3, 2]  # the -1 (difficult) does not count
    assert cooc.tolist() == [[0, 2, 1], [2, 0, 2], [1, 2, 0]]
    assert counts.dtype == np.int64 and cooc.dtype == np.int64
