"""`graphfuse ensemble`: late fusion of run scores matched by sample id."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from graphfuse.ensemble import (
    align_by_name,
    ensemble,
    load_scores,
    mean_class_accuracy,
    parse_weights,
    to_markdown,
    topk_accuracy,
)

NAMES = ["s0", "s1", "s2", "s3"]
LABELS = [0, 1, 2, 1]
# Hand-made logits (K = 3). Run A predicts 0, 2, 0, 0 -> only s0 right: top-1 1/4.
A = [[2.0, 1.0, 0.0], [0.0, 1.0, 3.0], [1.0, 0.0, 0.5], [3.0, 0.0, 0.0]]
# Run B predicts 1, 1, 2, 1 -> s1, s2, s3 right: top-1 3/4.
B = [[0.0, 3.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, 2.0], [0.0, 1.0, 0.0]]


def save_run(run_dir: Path, names, scores, labels, protocol: str | None = "holdout") -> Path:
    """A run directory holding scores.npz as RunArtifacts writes it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    arrays = {
        "names": np.asarray(names),
        "scores": np.asarray(scores, dtype=np.float32),
        "labels": np.asarray(labels, dtype=np.int64),
    }
    if protocol is not None:
        arrays["protocol"] = np.asarray(protocol)
    with open(run_dir / "scores.npz", "wb") as fh:
        np.savez(fh, **arrays)
    return run_dir


@pytest.fixture
def two_runs(tmp_path: Path) -> tuple[Path, Path]:
    return save_run(tmp_path / "A", NAMES, A, LABELS), save_run(tmp_path / "B", NAMES, B, LABELS)


def test_fused_accuracy_hand_computed(two_runs) -> None:
    a, b = two_runs
    res = ensemble([a, b], weights="0.6,0.4")
    # 0.6 A + 0.4 B: s0 [1.2, 1.8, 0] -> 1 (wrong), s1 [0, 2.2, 1.8] -> 1 (right),
    # s2 [0.6, 0, 1.1] -> 2 (right), s3 [1.8, 0.4, 0] -> 0 (wrong): 2/4.
    np.testing.assert_allclose(res.fused[0], [1.2, 1.8, 0.0], rtol=1e-6)
    assert [r["top1"] for r in res.rows] == [0.25, 0.75, 0.5]
    # mean class of the fusion: class 0 0/1, class 1 1/2 (s1 right, s3 wrong), class 2 1/1
    assert res.fusion["mean_class"] == pytest.approx((0 + 0.5 + 1) / 3)
    assert res.rows[0]["weight"] == 0.6 and res.rows[1]["weight"] == 0.4
    assert all(r["top5"] is None for r in res.rows)  # K = 3: top-5 is not informative
    # 0.9 A + 0.1 B: s0 [1.8, 1.2, 0] right, s1 [0, 1.3, 2.7] wrong, s2 [0.9, 0, 0.65] wrong,
    # s3 [2.7, 0.1, 0] wrong: 1/4. The weights matter.
    assert ensemble([a, b], weights=[0.9, 0.1]).fusion["top1"] == 0.25
    # default: equal weights 1
    assert ensemble([a, b]).weights.tolist() == [1.0, 1.0]


def test_softmax_fusion_hand_computed(tmp_path: Path) -> None:
    # One sample, label 1. A is very sure of class 0; B, weighted 2, moderately sure of 1.
    # logits: 1*[20,0,0] + 2*[0,3,0] = [20, 6, 0] -> 0 (wrong).
    # probs:  [1,0,0] + 2*[1, e^3, 1]/(e^3 + 2) = [1.0906, 1.8189, 0.0906] -> 1 (right).
    a = save_run(tmp_path / "a", ["x"], [[20.0, 0.0, 0.0]], [1])
    b = save_run(tmp_path / "b", ["x"], [[0.0, 3.0, 0.0]], [1])
    assert ensemble([a, b], weights="1,2").fusion["top1"] == 0.0
    res = ensemble([a, b], weights="1,2", use_softmax=True)
    e3, em20 = math.exp(3.0), math.exp(-20.0)
    np.testing.assert_allclose(res.fused[0, 1], em20 / (1 + 2 * em20) + 2 * e3 / (e3 + 2), rtol=1e-12)
    assert res.fusion["top1"] == 1.0 and res.mode == "softmax"
    assert res.fusion["stream"] == "fusion (softmax)"


def test_topk_and_mean_class_by_hand() -> None:
    s = np.array([[6, 5, 4, 3, 2, 1, 0], [0, 1, 2, 3, 4, 5, 6]], dtype=float)
    labels = np.array([4, 1])  # rank 5 in row 0 (in top-5); rank 6 in row 1 (not)
    assert topk_accuracy(s, labels, 5) == 0.5
    assert topk_accuracy(s, labels, 1) == 0.0
    # ties go to the lower class index, like argmax
    assert topk_accuracy(np.zeros((1, 7)), np.array([0]), 1) == 1.0
    # classes 0 (1/2 right) and 2 (1/1 right); class 1 is absent from the labels
    sc = np.eye(3)[[0, 1, 2]]
    assert mean_class_accuracy(sc, np.array([0, 0, 2])) == pytest.approx(0.75)


def test_sample_id_mismatch_names_runs_and_ids(tmp_path: Path) -> None:
    a = save_run(tmp_path / "runA", NAMES, A, LABELS)
    b = save_run(tmp_path / "runB", ["s0", "s1", "s2", "zz9"], B, LABELS)
    with pytest.raises(ValueError) as err:
        ensemble([a, b])
    msg = str(err.value)
    assert "runA" in msg and "runB" in msg
    assert "'s3'" in msg and "'zz9'" in msg and "different samples" in msg
    c = save_run(tmp_path / "runC", NAMES[:3], B[:3], LABELS[:3])  # a subset is refused too
    with pytest.raises(ValueError, match=r"1 id\(s\) only in .*runA.*'s3'"):
        ensemble([a, c])


def test_label_mismatch(tmp_path: Path) -> None:
    a = save_run(tmp_path / "A", NAMES, A, LABELS)
    b = save_run(tmp_path / "B", NAMES, B, [0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"disagree on the labels of 1 sample.*'s2': 2 vs 0"):
        ensemble([a, b])


def test_class_count_mismatch(tmp_path: Path) -> None:
    a = save_run(tmp_path / "A", NAMES, A, LABELS)
    b = save_run(tmp_path / "B", NAMES, np.zeros((4, 5)), LABELS)
    with pytest.raises(ValueError, match="3 and 5 classes"):
        ensemble([a, b])


def test_protocols_are_reported_and_not_mixed(tmp_path: Path) -> None:
    a = save_run(tmp_path / "A", NAMES, A, LABELS, protocol="official")
    b = save_run(tmp_path / "B", NAMES, B, LABELS, protocol="holdout")
    with pytest.raises(ValueError, match=r"different protocols.*A: official.*B: holdout"):
        ensemble([a, b])
    c = save_run(tmp_path / "C", NAMES, B, LABELS, protocol="official")
    res = ensemble([a, c])
    assert [r["protocol"] for r in res.rows] == ["official"] * 3
    assert "TEST split" in to_markdown(res)
    d = save_run(tmp_path / "D", NAMES, B, LABELS, protocol=None)  # older file: no protocol
    assert ensemble([a, d]).rows[1]["protocol"] == "unknown"


@pytest.mark.parametrize(
    "text, match",
    [
        ("0.6,0.4,0.1", "3 weight"),
        ("0.6", "1 weight"),
        ("0.6,abc", "'abc' is not a number"),
        ("0.6,", "'' is not a number"),
        ("1,-1", ">= 0"),
        ("0,0", "at least one weight"),
        ("nan,1", "finite"),
        ("inf,1", "finite"),
    ],
)
def test_weights_parsing_errors(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_weights(text, 2)


def test_weights_parsing() -> None:
    np.testing.assert_array_equal(parse_weights(" 0.6, 0.6,0.4 ,0.4", 4), [0.6, 0.6, 0.4, 0.4])
    np.testing.assert_array_equal(parse_weights(None, 3), [1, 1, 1])
    np.testing.assert_array_equal(parse_weights("2,0", 2), [2, 0])


def test_order_independence(two_runs, tmp_path: Path) -> None:
    a, b = two_runs
    ref = ensemble([a, b], weights="0.6,0.4")
    perm = [2, 0, 3, 1]
    b_shuffled = save_run(tmp_path / "B_shuffled", np.asarray(NAMES)[perm], np.asarray(B)[perm],
                          np.asarray(LABELS)[perm])
    res = ensemble([a, b_shuffled], weights="0.6,0.4")
    np.testing.assert_array_equal(res.fused, ref.fused)
    assert [(r["top1"], r["mean_class"]) for r in res.rows] == [(r["top1"], r["mean_class"]) for r in ref.rows]
    # shuffling the first run reorders the output rows only
    a_shuffled = save_run(tmp_path / "A_shuffled", np.asarray(NAMES)[perm], np.asarray(A)[perm],
                          np.asarray(LABELS)[perm])
    res2 = ensemble([a_shuffled, b], weights="0.6,0.4")
    assert res2.names.tolist() == np.asarray(NAMES)[perm].tolist()
    np.testing.assert_array_equal(res2.fused, ref.fused[perm])
    assert res2.fusion["top1"] == ref.fusion["top1"]


def test_four_streams_against_a_dict_loop_reference(tmp_path: Path) -> None:
    """The official ensemble.py procedure (dicts keyed by name, 0.6/0.6/0.4/0.4 on logits),
    written as a float64 loop, on shuffled random score files."""
    rng = np.random.default_rng(0)
    n, k = 50, 8
    names = np.asarray([f"S{i:03d}" for i in range(n)])
    labels = rng.integers(0, k, n)
    runs, tables = [], []
    for r in range(4):
        scores = rng.standard_normal((n, k)).astype(np.float32)
        perm = rng.permutation(n)
        runs.append(save_run(tmp_path / f"r{r}", names[perm], scores[perm], labels[perm]))
        tables.append({str(names[i]): scores[i].astype(np.float64) for i in range(n)})
    w = [0.6, 0.6, 0.4, 0.4]
    right1 = right5 = 0
    for i in range(n):
        fused = sum(w[r] * tables[r][str(names[i])] for r in range(4))
        right1 += int(np.argmax(fused) == labels[i])
        right5 += int(labels[i] in np.argsort(fused)[-5:])
    res = ensemble(runs, weights="0.6,0.6,0.4,0.4")
    assert res.fusion["top1"] == right1 / n
    assert res.fusion["top5"] == right5 / n


def test_cli_writes_markdown_and_csv(two_runs, tmp_path: Path, capsys) -> None:
    from graphfuse.cli import main

    a, b = two_runs
    out = tmp_path / "report"
    assert main(["ensemble", str(a), str(b), "--weights", "0.6,0.4", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| fusion (logits) |" in printed and "50.00" in printed
    md = (out / "ensemble.md").read_text()
    assert "matched by sample id" in md and "| 0.6 |" in md
    with open(out / "ensemble.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["stream"] for r in rows] == [str(a), str(b), "fusion (logits)"]
    assert [float(r["top1"]) for r in rows] == [0.25, 0.75, 0.5]
    assert rows[2]["weight"] == "" and rows[0]["top5"] == "" and rows[0]["num_samples"] == "4"
    assert not list(out.glob(".*tmp"))  # atomic writes leave no temporary files
    with pytest.raises(SystemExit):
        main(["ensemble", str(a), "--unknown-flag"])


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no score file"):
        load_scores(tmp_path / "nothing")
    d = save_run(tmp_path / "dup", ["s0", "s0"], A[:2], LABELS[:2])
    with pytest.raises(ValueError, match=r"duplicate sample id.*'s0'"):
        load_scores(d)
    n = save_run(tmp_path / "nan", NAMES, [[0, 0, 0], [0, np.nan, 0], [0, 0, 0], [0, 0, 0]], LABELS)
    with pytest.raises(ValueError, match=r"non-finite scores .*'s1'"):
        load_scores(n)
    lab = save_run(tmp_path / "lab", NAMES, A, [0, 1, 3, 1])
    with pytest.raises(ValueError, match=r"labels outside \[0, 3\).*'s2'"):
        load_scores(lab)
    obj = tmp_path / "obj"
    obj.mkdir()
    with open(obj / "scores.npz", "wb") as fh:  # object arrays would need pickle: refused
        np.savez(fh, names=np.asarray(NAMES, dtype=object), scores=np.zeros((4, 3)), labels=np.zeros(4, int))
    with pytest.raises(ValueError, match="scores.npz"):
        load_scores(obj)
    # the path of the file itself is accepted too
    ok = save_run(tmp_path / "ok", NAMES, A, LABELS)
    assert load_scores(ok / "scores.npz").names.tolist() == NAMES


def test_align_single_run_is_identity(two_runs) -> None:
    a, _ = two_runs
    names, labels, scores = align_by_name([load_scores(a)])
    assert names.tolist() == NAMES and labels.tolist() == LABELS
    np.testing.assert_array_equal(scores[0], np.asarray(A))
