"""Ensemble variants of a study: the late fusion of other variants' finished runs, per seed.

A spec variant ``name: {ensemble: {of: [a, b], weights: [0.6, 0.4], softmax: false}}`` trains
nothing. For every seed whose member runs ``<study>/a/seed<k>`` and ``<study>/b/seed<k>`` are
finished, :func:`fuse_run` writes ``<study>/name/seed<k>/`` as a run directory the report reads
like any other:

* ``scores.npz``: the fused scores, in a trained run's format (``names``, ``scores`` (N, K)
  float32, ``labels``, ``protocol``, ``selection``), samples matched by id
  (:func:`graphfuse.ensemble.ensemble`);
* ``summary.json``: ``test.metrics`` computed from the fused scores under the trained runs'
  names (``test/top1``, ``test/mean_class``, and ``test/top5`` when there are more than 5
  classes), ``ensemble`` (members, their run directories, weights, mode, each member's own
  metrics), ``protocol``/``monitor``/``selection`` those of its members (each member is tested
  at its own selected epoch), ``trainable_parameters`` and ``train_time_s`` the sums over the
  members (the cost of the ensemble). There are no validation scores, so ``val/*`` metrics
  are not available for an ensemble.

Both files are written atomically, ``summary.json`` last (it marks the run finished).
Action recognition only for now (see :mod:`graphfuse.ablation.spec`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from graphfuse.io import atomic_path, read_json_dict, write_json

from .spec import AblationSpec

__all__ = ["ENSEMBLE_SELECTION", "fuse_run", "missing_members"]

ENSEMBLE_SELECTION = "that of its members"


def _run_dir(root: str | Path, study: str, variant: str, seed: int) -> Path:
    return Path(root) / study / variant / f"seed{seed}"


def _finished_summary(run_dir: Path) -> dict[str, Any] | None:
    summary = read_json_dict(run_dir / "summary.json")
    test = (summary or {}).get("test") or {}
    return summary if isinstance(test, dict) and test.get("metrics") else None


def missing_members(spec: AblationSpec, root: str | Path, variant: str, seed: int) -> list[str]:
    """The member runs (``member/seed<k>``) of an ensemble variant that are not finished yet."""
    ens = spec.ensembles[variant]
    return [
        f"{m}/seed{seed}"
        for m in ens.members
        if _finished_summary(_run_dir(root, spec.name, m, seed)) is None
    ]


def _same(values: list[Any]) -> Any:
    return values[0] if all(v == values[0] for v in values) else None


def fuse_run(spec: AblationSpec, root: str | Path, variant: str, seed: int) -> dict[str, Any]:
    """Fuse the finished member runs of ``variant`` for ``seed`` into its run directory.

    Returns the ``summary.json`` written. Raises ``FileNotFoundError`` when a member run is
    not finished (nothing is written), ``ValueError`` when the members cannot be fused (other
    samples, classes, labels or protocols; scores that are not ``(N, K)`` class scores).
    """
    from graphfuse.ensemble import ensemble, load_scores

    ens = spec.ensembles[variant]
    missing = missing_members(spec, root, variant, seed)
    if missing:
        raise FileNotFoundError(f"{variant}/seed{seed}: member run(s) not finished: {', '.join(missing)}")
    member_dirs = [_run_dir(root, spec.name, m, seed).resolve() for m in ens.members]
    summaries = [_finished_summary(d) or {} for d in member_dirs]
    # named <member>/seed<k> in messages (e.g. members that scored different samples)
    loaded = [dataclasses.replace(load_scores(d), run=f"{m}/seed{seed}") for m, d in zip(ens.members, member_dirs)]
    result = ensemble(loaded, weights=list(ens.weights), use_softmax=ens.softmax)
    fused_row = result.fusion

    def named(row: dict[str, Any]) -> dict[str, float]:
        return {f"test/{k}": row[k] for k in ("top1", "top5", "mean_class") if row.get(k) is not None}

    selections = []
    for d in member_dirs:
        with np.load(d / "scores.npz", allow_pickle=False) as z:
            selections.append(str(z["selection"]) if "selection" in z.files else None)
    selection_rule = _same(selections)
    out_dir = _run_dir(root, spec.name, variant, seed).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    scores_path = out_dir / "scores.npz"
    protocol = _same([r.protocol for r in loaded]) or "/".join(sorted({r.protocol for r in loaded}))
    extra = {"selection": np.asarray(selection_rule)} if selection_rule is not None else {}
    with atomic_path(scores_path, suffix=".npz") as tmp, open(tmp, "wb") as fh:
        np.savez(
            fh,
            names=result.names,
            scores=result.fused.astype(np.float32),
            labels=result.labels,
            protocol=np.asarray(protocol),
            **extra,
        )

    def total(key: str) -> Any:
        vals = [s.get(key) for s in summaries]
        return sum(vals) if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals) else None

    member_selection = _same([s.get("selection") for s in summaries])
    summary: dict[str, Any] = {
        "run_dir": str(out_dir),
        "kind": "ensemble",
        "ensemble": {
            "members": [
                {"variant": m, "run_dir": str(d), "weight": float(w), "metrics": named(row)}
                for m, d, w, row in zip(ens.members, member_dirs, ens.weights, result.rows[:-1])
            ],
            "weights": [float(w) for w in ens.weights],
            "mode": result.mode,
            "softmax": ens.softmax,
            "description": ens.describe(),
        },
        "protocol": _same([s.get("protocol") for s in summaries]) or {"name": protocol},
        "monitor": _same([s.get("monitor") for s in summaries]),
        "selection": {
            "rule": (member_selection or {}).get("rule") if isinstance(member_selection, dict) else selection_rule,
            "description": f"{ENSEMBLE_SELECTION}: each member run is tested at its own selected checkpoint"
            + (
                f" ({member_selection['description']})"
                if isinstance(member_selection, dict) and member_selection.get("description")
                else ""
            ),
        },
        "trainable_parameters": total("trainable_parameters"),
        "train_time_s": total("train_time_s"),
        "test": {
            "metrics": named(fused_row),
            "checkpoint": None,
            "epoch": None,
            "num_samples": result.num_samples,
            "scores": str(scores_path),
        },
    }
    write_json(out_dir / "summary.json", summary)
    return summary
