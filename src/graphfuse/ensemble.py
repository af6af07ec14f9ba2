"""Late fusion of per-sample scores of several runs (multi-stream ensembles).

Each run directory holds ``scores.npz`` (written by :class:`graphfuse.runs.RunArtifacts`):
``names`` ``(N,)`` str sample ids, ``scores`` ``(N, K)`` float32 logits, ``labels`` ``(N,)``
int and ``protocol`` (0-d str). :func:`ensemble` matches the runs' samples **by id**, never
by position: in 2s-AGCN (lshiwjx/2s-AGCN#10) fusing two score files whose rows were in
different orders silently gave 1.7% top-1.

Fusion is a weighted sum ``sum_r w_r * s_r`` of

* raw logits (default), as the official Shift-GCN ``ensemble.py`` (kchengiva/Shift-GCN:
  ``0.6 J + 0.6 B + 0.4 JM + 0.4 BM``), or
* softmax probabilities (``softmax=True``), as PYSKL, whose test scores are probabilities
  (``average_clips='prob'``) fused J:B:JM:BM = 2:2:1:1.

Pure numpy: importable without torch or lightning.
"""

from __future__ import annotations

import csv
import io
import math
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .io import write_text

__all__ = [
    "SCORES_FILE",
    "RunScores",
    "EnsembleResult",
    "load_scores",
    "parse_weights",
    "align_by_name",
    "softmax",
    "fuse",
    "topk_accuracy",
    "mean_class_accuracy",
    "ensemble",
    "to_markdown",
    "to_csv",
    "write_report",
]

SCORES_FILE = "scores.npz"
#: Protocols that must not be mixed in one fusion (see ``graphfuse.runs.PROTOCOLS``).
_EXCLUSIVE_PROTOCOLS = ("official", "holdout")
_MAX_EXAMPLES = 3


@dataclass(frozen=True)
class RunScores:
    """Scores of one run.

    Attributes:
        run: the run as given (directory or ``scores.npz`` path), used in messages and tables.
        path: the ``scores.npz`` read.
        names: ``(N,)`` str sample ids, unique.
        scores: ``(N, K)`` float64 scores (logits as saved).
        labels: ``(N,)`` int64 labels.
        protocol: model-selection protocol of the run (``'holdout'``, ``'official'``), or
            ``'unknown'`` when the file does not say.
    """

    run: str
    path: Path
    names: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    protocol: str

    @property
    def num_class(self) -> int:
        return int(self.scores.shape[1])


@dataclass
class EnsembleResult:
    """Accuracies of each run and of the fusion.

    ``rows``: one dict per run then one for the fusion, with keys ``stream``, ``weight``
    (None for the fusion), ``protocol``, ``top1``, ``top5`` (None when ``K <= 5``, where it
    is trivially 1), ``mean_class``; accuracies are fractions in [0, 1].
    """

    rows: list[dict]
    names: np.ndarray  # (N,) sample ids, in the first run's order
    labels: np.ndarray  # (N,)
    fused: np.ndarray  # (N, K) fused scores, float64
    weights: np.ndarray  # (R,)
    mode: str  # 'logits' or 'softmax'
    protocols: list[str] = field(default_factory=list)

    @property
    def num_samples(self) -> int:
        return int(self.names.size)

    @property
    def fusion(self) -> dict:
        return self.rows[-1]


# ---------------------------------------------------------------------------------------- loading
def _examples(values: np.ndarray | Sequence[str]) -> str:
    vals = [str(v) for v in list(values)[:_MAX_EXAMPLES]]
    more = len(values) - len(vals)
    return ", ".join(repr(v) for v in vals) + (f", ... ({more} more)" if more > 0 else "")


def load_scores(run: str | os.PathLike) -> RunScores:
    """Read a run's ``scores.npz`` (``run`` is the run directory or the file itself).

    Read with ``allow_pickle=False``. Raises ``FileNotFoundError`` when there is no score file,
    ``ValueError`` naming the file for missing arrays, wrong shapes or dtypes, duplicate
    sample ids, or non-finite scores (naming the first such sample).
    """
    p = Path(run)
    path = p / SCORES_FILE if p.is_dir() else p
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no score file; `graphfuse fit` (after testing) or `graphfuse test` writes "
            f"{SCORES_FILE} into the run directory"
        )
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("names", "scores", "labels") if k not in z.files]
            if missing:
                raise ValueError(f"{path}: missing array(s) {missing} (has {sorted(z.files)})")
            names, scores, labels = z["names"], z["scores"], z["labels"]
            protocol = str(z["protocol"]) if "protocol" in z.files else "unknown"
    except (ValueError, OSError, zipfile.BadZipFile) as err:
        if str(path) in str(err):
            raise
        # e.g. an object array (would need pickle) or a corrupt archive
        raise ValueError(f"{path}: cannot read as a graphfuse score file: {err}") from err
    if names.ndim != 1 or names.dtype.kind not in "US":
        raise ValueError(f"{path}: 'names' must be a 1-D string array, got {names.dtype} {names.shape}")
    names = names.astype(str)
    n = names.size
    if scores.ndim != 2 or scores.shape[0] != n or scores.shape[1] < 1:
        raise ValueError(f"{path}: 'scores' must be (N={n}, K>=1), got shape {scores.shape}")
    if scores.dtype.kind not in "fiu":
        raise ValueError(f"{path}: 'scores' must be numeric, got {scores.dtype}")
    if labels.shape != (n,) or labels.dtype.kind not in "iu":
        raise ValueError(f"{path}: 'labels' must be ({n},) integers, got {labels.dtype} {labels.shape}")
    scores = scores.astype(np.float64)
    labels = labels.astype(np.int64)
    bad = np.flatnonzero(~np.isfinite(scores).all(axis=1))
    if bad.size:
        raise ValueError(f"{path}: non-finite scores for {bad.size} sample(s), e.g. {_examples(names[bad])}")
    bad = np.flatnonzero((labels < 0) | (labels >= scores.shape[1]))
    if bad.size:
        raise ValueError(
            f"{path}: labels outside [0, {scores.shape[1]}) for {bad.size} sample(s), e.g. "
            f"{_examples(names[bad])} (label {int(labels[bad[0]])})"
        )
    uniq, counts = np.unique(names, return_counts=True)
    dup = uniq[counts > 1]
    if dup.size:
        raise ValueError(f"{path}: {dup.size} duplicate sample id(s), e.g. {_examples(dup)}")
    return RunScores(str(run), path, names, scores, labels, protocol)


def parse_weights(text: str | Sequence[float] | None, num_runs: int) -> np.ndarray:
    """Fusion weights ``(num_runs,)`` float64 from ``"0.6,0.6,0.4,0.4"`` (or a sequence).

    ``None`` gives equal weights 1. Raises ``ValueError`` on a wrong count, a value that is
    not a finite number, a negative weight, or all weights zero.
    """
    if num_runs < 1:
        raise ValueError("need at least one run")
    if text is None:
        return np.ones(num_runs)
    if isinstance(text, str):
        parts = [s.strip() for s in text.split(",")]
        values = []
        for s in parts:
            try:
                values.append(float(s))
            except ValueError:
                raise ValueError(f"--weights {text!r}: {s!r} is not a number") from None
    else:
        values = [float(v) for v in text]
    if len(values) != num_runs:
        raise ValueError(f"--weights {text!r}: {len(values)} weight(s) for {num_runs} run(s); give one per run")
    w = np.asarray(values, dtype=np.float64)
    if not np.isfinite(w).all():
        raise ValueError(f"--weights {text!r}: weights must be finite")
    if (w < 0).any():
        raise ValueError(f"--weights {text!r}: weights must be >= 0")
    if not (w > 0).any():
        raise ValueError(f"--weights {text!r}: at least one weight must be > 0")
    return w


# ---------------------------------------------------------------------------------------- alignment
def align_by_name(runs: Sequence[RunScores]) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Match the runs' rows by sample id, in the first run's order.

    Returns ``(names (N,), labels (N,), [scores_r (N, K)])``. Raises ``ValueError`` naming
    the two runs and example ids when a run's sample-id set differs from the first run's,
    when the numbers of classes differ, or when the runs disagree on a sample's label.
    """
    if not runs:
        raise ValueError("need at least one run")
    ref = runs[0]
    aligned = [ref.scores]
    for other in runs[1:]:
        only_ref = np.setdiff1d(ref.names, other.names)
        only_other = np.setdiff1d(other.names, ref.names)
        if only_ref.size or only_other.size:
            parts = []
            if only_ref.size:
                parts.append(f"{only_ref.size} id(s) only in {ref.run} (e.g. {_examples(only_ref)})")
            if only_other.size:
                parts.append(f"{only_other.size} id(s) only in {other.run} (e.g. {_examples(only_other)})")
            raise ValueError(
                f"runs {ref.run} ({ref.names.size} samples) and {other.run} ({other.names.size} samples) "
                f"scored different samples: " + "; ".join(parts) + ". Fuse runs evaluated on the same split."
            )
        if other.num_class != ref.num_class:
            raise ValueError(
                f"runs {ref.run} and {other.run} have {ref.num_class} and {other.num_class} classes"
            )
        # Position in `other` of each of the reference's ids (sets are equal and unique).
        sorter = np.argsort(other.names, kind="stable")
        pos = sorter[np.searchsorted(other.names, ref.names, sorter=sorter)]
        labels = other.labels[pos]
        bad = np.flatnonzero(labels != ref.labels)
        if bad.size:
            i = int(bad[0])
            raise ValueError(
                f"runs {ref.run} and {other.run} disagree on the labels of {bad.size} sample(s), e.g. "
                f"{str(ref.names[i])!r}: {int(ref.labels[i])} vs {int(labels[i])} "
                f"(others: {_examples(ref.names[bad[1:]]) if bad.size > 1 else 'none'})"
            )
        aligned.append(other.scores[pos])
    return ref.names, ref.labels, aligned


# ---------------------------------------------------------------------------------------- fusion
def softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``(N, K)`` scores, float64, shifted by the row max for stability."""
    z = np.asarray(scores, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fuse(scores: Sequence[np.ndarray], weights: np.ndarray, use_softmax: bool = False) -> np.ndarray:
    """``sum_r weights[r] * f(scores[r])`` with ``f`` identity (logits) or softmax; ``(N, K)``."""
    if len(scores) != len(weights):
        raise ValueError(f"{len(scores)} score arrays but {len(weights)} weights")
    stack = np.stack([softmax(s) if use_softmax else np.asarray(s, np.float64) for s in scores])  # (R, N, K)
    return np.tensordot(np.asarray(weights, np.float64), stack, axes=1)


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of rows whose label is among the ``k`` highest scores.

    Ties are broken towards the lower class index (a stable sort of ``-scores``), so ``k=1``
    agrees with ``argmax``; the official ``ensemble.py`` uses ``argsort()[-k:]``.
    """
    scores = np.asarray(scores)
    if labels.size == 0:
        return math.nan
    k = min(int(k), scores.shape[1])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float((order == labels[:, None]).any(axis=1).mean())


def mean_class_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mean over the classes present in ``labels`` of per-class top-1 accuracy (as
    :class:`graphfuse.metrics.MeanClassAccuracy` and PYSKL's ``mean_class_accuracy``)."""
    if labels.size == 0:
        return math.nan
    k = scores.shape[1]
    pred = np.argmax(scores, axis=1)
    count = np.bincount(labels, minlength=k)
    correct = np.bincount(labels[pred == labels], minlength=k)
    present = count > 0
    return float((correct[present] / count[present]).mean())


def _metrics(scores: np.ndarray, labels: np.ndarray) -> dict:
    return {
        "top1": topk_accuracy(scores, labels, 1),
        "top5": topk_accuracy(scores, labels, 5) if scores.shape[1] > 5 else None,
        "mean_class": mean_class_accuracy(scores, labels),
    }


def ensemble(
    runs: Sequence[str | os.PathLike | RunScores],
    weights: str | Sequence[float] | None = None,
    use_softmax: bool = False,
) -> EnsembleResult:
    """Fuse the scores of several runs matched by sample id, and score each run and the fusion.

    Args:
        runs: run directories (or ``scores.npz`` paths, or loaded :class:`RunScores`).
        weights: one weight per run (``"0.6,0.6,0.4,0.4"`` or a sequence); default all 1.
        use_softmax: fuse softmax probabilities instead of raw logits.

    Raises:
        ValueError: sample ids, classes or labels differ between runs; the runs mix the
            ``official`` (selected on test) and ``holdout`` protocols; bad weights.
    """
    loaded = [r if isinstance(r, RunScores) else load_scores(r) for r in runs]
    w = parse_weights(weights, len(loaded))
    protocols = [r.protocol for r in loaded]
    if all(p in protocols for p in _EXCLUSIVE_PROTOCOLS):
        listing = ", ".join(f"{r.run}: {r.protocol}" for r in loaded)
        raise ValueError(
            "refusing to fuse runs selected under different protocols ('official' selects the epoch on "
            f"the TEST split, 'holdout' on validation): {listing}"
        )
    names, labels, aligned = align_by_name(loaded)
    rows = [
        {"stream": r.run, "weight": float(wi), "protocol": r.protocol, **_metrics(s, labels)}
        for r, wi, s in zip(loaded, w, aligned)
    ]
    fused = fuse(aligned, w, use_softmax)
    mode = "softmax" if use_softmax else "logits"
    protocol = protocols[0] if len(set(protocols)) == 1 else "/".join(sorted(set(protocols)))
    rows.append({"stream": f"fusion ({mode})", "weight": None, "protocol": protocol, **_metrics(fused, labels)})
    return EnsembleResult(rows, names, labels, fused, w, mode, protocols)


# ---------------------------------------------------------------------------------------- reports
_COLUMNS = ("stream", "weight", "protocol", "top1", "top5", "mean_class")


def _pct(v: float | None) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.2f}"


def to_markdown(result: EnsembleResult) -> str:
    """The table as markdown (accuracies in percent), with a header line on the fusion."""
    lines = [
        f"Fusion of {len(result.rows) - 1} run(s) on {result.num_samples} samples matched by sample id; "
        f"weighted sum of {'softmax probabilities' if result.mode == 'softmax' else 'raw logits'}.",
    ]
    if "official" in result.protocols:
        lines.append("")
        lines.append("NOTE: official protocol: the runs' epochs were selected on the TEST split; "
                     "the numbers are optimistically biased.")
    lines += [
        "",
        "| stream | weight | protocol | top-1 (%) | top-5 (%) | mean class (%) |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for r in result.rows:
        weight = "" if r["weight"] is None else f"{r['weight']:g}"
        stream = str(r["stream"]).replace("|", "\\|")
        lines.append(
            f"| {stream} | {weight} | {r['protocol']} | {_pct(r['top1'])} | {_pct(r['top5'])} | "
            f"{_pct(r['mean_class'])} |"
        )
    return "\n".join(lines) + "\n"


def to_csv(result: EnsembleResult) -> str:
    """The table as CSV: accuracies as fractions, empty cells for missing values."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*_COLUMNS, "mode", "num_samples"])
    for r in result.rows:
        writer.writerow(
            [("" if r[c] is None else (repr(r[c]) if isinstance(r[c], float) else r[c])) for c in _COLUMNS]
            + [result.mode, result.num_samples]
        )
    return buf.getvalue()


def write_report(result: EnsembleResult, out_dir: str | os.PathLike = ".") -> tuple[Path, Path]:
    """Write ``ensemble.md`` and ``ensemble.csv`` into ``out_dir`` (atomically); return the paths."""
    out = Path(out_dir)
    md, csv_path = out / "ensemble.md", out / "ensemble.csv"
    write_text(md, to_markdown(result))
    write_text(csv_path, to_csv(result))
    return md, csv_path
