"""Word embeddings and label-graph statistics for the label graph of ML-GCN (numpy only).

ML-GCN (Chen et al., CVPR 2019; megvii-research/ML-GCN) feeds its GCN with one 300-d GloVe
vector per class (Pennington et al., EMNLP 2014; "for labels of multiple words, the average
of the word embeddings", Sect. 4.1) and builds the label graph from training co-occurrence
counts. Three ways in:

* :func:`read_glove_class_embeddings`: a GloVe text file the user supplies (``word v1 ... vD``
  per line, e.g. ``glove.840B.300d.txt``); multi-word class names (``traffic light``) are
  averaged over their words; a word the file lacks is an error naming it. The file is
  streamed and only the needed lines are parsed, so the 5.6 GB 840B file needs no memory.
* :func:`read_word_vectors_pkl`: ML-GCN's released ``coco_glove_word2vec.pkl`` (a float
  ``(80, 300)`` numpy array and nothing else), through :func:`graphfuse.io.restricted_load`.
* :func:`read_adj_pkl`: ML-GCN's released ``coco_adj.pkl``, a dict ``{'adj': (80, 80)
  co-occurrence counts, 'nums': (80,) class counts}``, also through the restricted
  unpickler, returned as int64 count arrays (graphfuse stores no pickle).

Both ``.pkl`` files are in ML-GCN's (alphabetical) class order; :func:`reorder` permutes them
into another order by class name (``--class-order coco``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from graphfuse.io import restricted_load

__all__ = [
    "VOC_WORDS",
    "class_words",
    "label_statistics",
    "read_adj_pkl",
    "read_glove_class_embeddings",
    "read_word_vectors_pkl",
    "reorder",
]

#: Words of VOC class names that are not English words (the devkit glues them together).
VOC_WORDS: dict[str, str] = {
    "aeroplane": "aeroplane",
    "diningtable": "dining table",
    "motorbike": "motorbike",
    "pottedplant": "potted plant",
    "tvmonitor": "tv monitor",
}
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def class_words(name: str, aliases: Mapping[str, str] | None = None) -> list[str]:
    """The words whose vectors are averaged for class ``name`` (``'traffic light'`` ->
    ``['traffic', 'light']``), after ``aliases`` (``'diningtable'`` -> ``'dining table'``)."""
    text = (aliases or {}).get(name, name)
    words = text.split()
    if not words:
        raise ValueError(f"class name {name!r} has no words")
    return words


def read_glove_class_embeddings(
    path: str | os.PathLike,
    class_names: Sequence[str],
    aliases: Mapping[str, str] | None = None,
) -> np.ndarray:
    """``(C, D)`` float32: for each class the mean of its words' GloVe vectors.

    A word is looked up as written, then lower-cased (GloVe 6B / 42B are lower-case, 840B is
    cased). The first line holding a word with exactly ``D`` values wins (a few 840B lines
    hold tokens with spaces; they never match a class word).

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: naming the file: empty, a needed line with non-numeric or non-finite
            values (line number given), a word missing from the file (named, with its class).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GloVe file not found: {path}")
    words_of = [class_words(n, aliases) for n in class_names]
    wanted = {w for ws in words_of for w in ws}
    keys = {w.encode("utf-8") for w in wanted} | {w.lower().encode("utf-8") for w in wanted}
    found: dict[bytes, np.ndarray] = {}
    dim: int | None = None
    with open(path, "rb") as fh:
        for lineno, line in enumerate(fh, 1):  # a loop over the lines of one file (I/O bound)
            if dim is None:
                parts = line.split()
                if not parts:
                    continue
                dim = len(parts) - 1
                if dim < 1:
                    raise ValueError(f"{path}: line {lineno}: expected 'word v1 ... vD', got one field")
            space = line.find(b" ")
            word = line[:space] if space > 0 else line.strip()
            if word not in keys or word in found:
                continue
            values = line[space + 1:].split()
            if len(values) != dim:
                continue  # a token with spaces, or a malformed line of a word we do not need
            try:
                vec = np.asarray([float(v) for v in values], dtype=np.float64)
            except ValueError:
                raise ValueError(f"{path}: line {lineno} ({word.decode('utf-8', 'replace')!r}): "
                                 "non-numeric vector value") from None
            if not np.isfinite(vec).all() or (np.abs(vec) > _FLOAT32_MAX).any():
                raise ValueError(f"{path}: line {lineno} ({word.decode('utf-8', 'replace')!r}): "
                                 "vector values must be finite float32 numbers")
            found[word] = vec
            if len(found) == len(keys):
                break
    if dim is None:
        raise ValueError(f"{path}: empty GloVe file")
    out = np.zeros((len(class_names), dim), dtype=np.float64)
    for k, (name, ws) in enumerate(zip(class_names, words_of)):  # a loop over classes
        vecs = []
        for w in ws:
            vec = found.get(w.encode("utf-8"))
            if vec is None:
                vec = found.get(w.lower().encode("utf-8"))
            if vec is None:
                raise ValueError(f"{path}: the word {w!r} (of class {name!r}) is not in the GloVe file")
            vecs.append(vec)
        out[k] = np.mean(vecs, axis=0)
    return out.astype(np.float32)


def read_word_vectors_pkl(path: str | os.PathLike, num_class: int | None = None) -> np.ndarray:
    """ML-GCN's ``<dataset>_glove_word2vec.pkl``: a float ``(C, D)`` numpy array and nothing
    else, unpickled with :func:`graphfuse.io.restricted_load` (builtins and numpy only).

    Returns ``(C, D)`` float32. Raises ``ValueError`` naming the file for any other object,
    a wrong shape (``C != num_class`` when given) or non-finite values, and
    ``pickle.UnpicklingError`` (also naming it) for an unreadable or unsafe pickle.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"word-vector file not found: {path}")
    obj = restricted_load(path)
    if type(obj) is not np.ndarray or obj.dtype.kind != "f" or obj.ndim != 2:
        what = f"a {obj.dtype} array of shape {obj.shape}" if isinstance(obj, np.ndarray) else type(obj).__name__
        raise ValueError(f"{path}: expected a float numpy array of shape (classes, dim) and nothing else, "
                         f"got {what}")
    if num_class is not None and obj.shape[0] != num_class:
        raise ValueError(f"{path}: {obj.shape[0]} rows of word vectors, but the dataset has {num_class} classes")
    with np.errstate(over="ignore", invalid="ignore"):
        out = obj.astype(np.float32)
    if not np.isfinite(out).all():
        raise ValueError(f"{path}: word vectors hold values that are not finite in float32")
    return out


def _count_array(value: object, path: Path, key: str, shape: tuple[int, ...]) -> np.ndarray:
    if type(value) is not np.ndarray or value.dtype.kind not in "iuf":
        what = f"a {value.dtype} array" if isinstance(value, np.ndarray) else type(value).__name__
        raise ValueError(f"{path}: '{key}' must be a numeric numpy array, got {what}")
    if value.shape != shape:
        raise ValueError(f"{path}: '{key}' has shape {value.shape}, expected {shape}")
    v = value.astype(np.float64)
    if not np.isfinite(v).all() or (v < 0).any() or (v != np.round(v)).any() or (v > 2**53).any():
        raise ValueError(f"{path}: '{key}' must hold non-negative whole counts")
    return v.astype(np.int64)


def read_adj_pkl(path: str | os.PathLike, num_class: int) -> tuple[np.ndarray, np.ndarray]:
    """ML-GCN's ``<dataset>_adj.pkl``: ``{'adj': (C, C), 'nums': (C,)}`` training counts
    (``adj[i, j]``: images holding both i and j; ``nums[i]``: images holding i), read with
    :func:`graphfuse.io.restricted_load`.

    Returns ``(counts (C,), cooccurrence (C, C))`` int64 with a zero diagonal (``gen_A`` of
    ML-GCN ignores it). Raises ``ValueError`` naming the file for another object, other
    keys, a wrong shape, counts that are not non-negative whole numbers, an asymmetric
    ``adj``, or a pair count above a class count.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"adjacency file not found: {path}")
    obj = restricted_load(path)
    if type(obj) is not dict or set(obj) != {"adj", "nums"}:
        what = f"a dict with keys {sorted(map(str, obj))}" if type(obj) is dict else type(obj).__name__
        raise ValueError(f"{path}: expected a dict with exactly the keys 'adj' and 'nums' (ML-GCN's "
                         f"coco_adj.pkl), got {what}")
    counts = _count_array(obj["nums"], path, "nums", (num_class,))
    cooc = _count_array(obj["adj"], path, "adj", (num_class, num_class))
    np.fill_diagonal(cooc, 0)
    if (cooc != cooc.T).any():
        i, j = np.argwhere(cooc != cooc.T)[0]
        raise ValueError(f"{path}: 'adj' is not symmetric (adj[{i}, {j}] = {cooc[i, j]}, adj[{j}, {i}] = "
                         f"{cooc[j, i]})")
    over = cooc > counts[:, None]
    if over.any():
        i, j = np.argwhere(over)[0]
        raise ValueError(f"{path}: adj[{i}, {j}] = {cooc[i, j]} exceeds nums[{i}] = {counts[i]}")
    return counts, cooc


def reorder(array: np.ndarray, from_names: Sequence[str], to_names: Sequence[str], axes: int = 1) -> np.ndarray:
    """``array`` indexed by classes in ``from_names`` order -> the same in ``to_names`` order,
    along its first ``axes`` axes (1 for vectors and embeddings, 2 for a class x class matrix)."""
    if sorted(from_names) != sorted(to_names) or len(set(from_names)) != len(from_names):
        raise ValueError("reorder: the two class lists must hold the same distinct names")
    where = {n: k for k, n in enumerate(from_names)}
    perm = np.asarray([where[n] for n in to_names], dtype=np.int64)
    out = np.asarray(array)[perm]
    if axes == 2:
        out = out[:, perm]
    return out


def label_statistics(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(counts (C,), cooccurrence (C, C))`` int64 of a ``(n, C)`` label matrix: images
    holding each class, and images holding both i and j (diagonal 0, as ML-GCN's ``adj``).
    Only ``1`` counts (a VOC ``-1`` "difficult only" label does not)."""
    pos = (np.asarray(labels) == 1).astype(np.int64)
    counts = pos.sum(axis=0)
    cooc = pos.T @ pos
    np.fill_diagonal(cooc, 0)
    return counts, cooc
