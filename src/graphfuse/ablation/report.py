"""The table of an ablation study, collected from its run directories.

``graphfuse report runs/<study>`` (also run at the end of ``graphfuse ablate``) writes into
the study directory:

* ``report.md``: per metric, one row per variant: mean +- std over seeds, n, the difference
  to the baseline with its 95% confidence interval (paired t by seed when both finished the
  same seeds, Welch otherwise; ``~`` marks an interval containing 0), parameter count, mean
  train time; per-seed values of the headline metric; failed and unfinished runs.
* ``report.csv``: the same, one row per variant, machine-readable.
* ``val_curves.png``: the validation curves of each variant, mean over seeds with a +-1 std band.
* ``bars.png``: the headline metric per variant (mean +- std, seeds as dots) and the
  difference to the baseline with its 95% interval.

Values come from each run's ``summary.json`` (test metrics at the epoch selected on
validation, ``best`` = the validation metrics of that epoch, parameters, train time) and
``metrics.csv`` (curves); states from ``status.json``. Nothing is recomputed from checkpoints.

An ensemble variant (``{ensemble: {of: [...], ...}}`` in ``study.yaml``) is a row like any
other: its ``<variant>/seed<k>/summary.json`` is written by :mod:`graphfuse.ablation.fusion`;
a seed whose member runs are not all finished is listed as ``not yet computable``, naming them.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from graphfuse.io import atomic_path, read_json_dict, write_text

from .spec import DEFAULT_METRICS, DEFAULT_SELECT, SUMMARY_FIELDS
from .stats import Difference, compare_to_baseline, mean_std
from .study_lock import study_locked

__all__ = ["RunRecord", "VariantResult", "StudyReport", "collect_study", "write_report", "metric_value"]

_SEED_RE = re.compile(r"^seed(\d+)$")
CONTAINS_ZERO_MARK = "~"


@dataclass
class RunRecord:
    """One run of a study as found on disk.

    Attributes:
        state: ``done``, ``failed``, ``unfinished`` (interrupted or resumable), ``submitted``,
            ``running`` or ``missing``.
        values: ``{metric: value}`` of a finished run.
        curve: rows of ``metrics.csv`` (may be empty).
    """

    variant: str
    seed: int
    run_dir: Path
    state: str
    values: dict[str, float] = field(default_factory=dict)
    params: int | None = None
    train_time_s: float | None = None
    protocol: str | None = None
    curve: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    log: str | None = None
    monitor: str | None = None


@dataclass
class VariantResult:
    """The row of a variant: its runs and per-metric statistics."""

    name: str
    overrides: dict[str, Any]
    runs: list[RunRecord]
    stats: dict[str, tuple[float, float, int]] = field(default_factory=dict)
    diffs: dict[str, Difference | None] = field(default_factory=dict)

    @property
    def done(self) -> list[RunRecord]:
        return [r for r in self.runs if r.state == "done"]

    def values(self, metric: str) -> dict[int, float]:
        """``{seed: value}`` of the finished runs that report ``metric``."""
        return {
            r.seed: r.values[metric]
            for r in self.done
            if metric in r.values and math.isfinite(r.values[metric])
        }

    @property
    def params(self) -> list[int]:
        return sorted({r.params for r in self.done if r.params is not None})

    @property
    def train_time_s(self) -> float:
        return mean_std([r.train_time_s for r in self.done if r.train_time_s is not None])[0]

    @property
    def protocols(self) -> list[str]:
        return sorted({r.protocol for r in self.done if r.protocol})


@dataclass
class StudyReport:
    """Everything the report shows."""

    study_dir: Path
    name: str
    baseline: str
    metrics: list[str]
    variants: list[VariantResult]
    seeds: list[int]
    description: str = ""
    base: str | None = None
    monitor: str = DEFAULT_SELECT["monitor"]
    common: dict[str, Any] = field(default_factory=dict)
    #: ``"max"`` (best epoch on ``monitor``) or ``"last"`` (``select: last``: no selection).
    select_mode: str = "max"

    def variant(self, name: str) -> VariantResult:
        return next(v for v in self.variants if v.name == name)


def metric_value(summary: dict[str, Any], metric: str) -> float | None:
    """A metric of a run's ``summary.json``: ``test/*`` from the test at the selected epoch,
    ``val/*`` and ``train/*`` from that epoch's row (``best``), or a top-level field."""
    if metric.startswith("test/"):
        v = ((summary.get("test") or {}).get("metrics") or {}).get(metric)
    elif metric in SUMMARY_FIELDS:
        v = summary.get(metric)
    else:
        v = (summary.get("best") or {}).get(metric)
    if v is None:
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _read_curve(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    from graphfuse.runs import read_metrics_csv

    try:
        return read_metrics_csv(path)
    except (OSError, ValueError, csv.Error):
        return []


def _load_run(
    variant: str,
    seed: int,
    run_dir: Path,
    metrics: list[str],
    status: dict[str, Any],
    live: bool = True,
    members: list[str] | None = None,
) -> RunRecord:
    entry = status.get(f"{variant}/seed{seed}") or {}
    summary = read_json_dict(run_dir / "summary.json") or {}
    finished = bool(((summary.get("test") or {}).get("metrics")))
    rec = RunRecord(variant, seed, run_dir, "done" if finished else "missing", log=entry.get("log"))
    if finished:
        for m in metrics:
            v = metric_value(summary, m)
            if v is not None:
                rec.values[m] = v
        rec.params = summary.get("trainable_parameters")
        rec.train_time_s = summary.get("train_time_s")
        rec.protocol = (summary.get("protocol") or {}).get("name")
        rec.monitor = summary.get("monitor") if isinstance(summary.get("monitor"), str) else None
    elif members is not None and entry.get("state") != "failed":
        # an ensemble variant's seed: computable once every member run of the seed is finished
        missing = [
            f"{m}/seed{seed}" for m in members
            if not (((read_json_dict(run_dir.parent.parent / m / f"seed{seed}" / "summary.json") or {})
                     .get("test") or {}).get("metrics"))
        ]
        rec.state = "not yet computable" if missing else "unfinished"
        rec.error = (
            f"member run(s) {', '.join(missing)} not finished" if missing
            else "members finished; `graphfuse ablate` fuses it"
        )
    else:
        prior = entry.get("state")
        if prior == "running" and not live:  # its `graphfuse ablate` died: nobody runs it
            prior = "interrupted"
        if prior in ("failed", "submitted", "running"):
            rec.state = prior
        elif (run_dir / "checkpoints" / "last.ckpt").is_file() or (
            run_dir.is_dir() and any(run_dir.iterdir())
        ):
            rec.state = "unfinished"
        elif prior == "interrupted":
            rec.state = "unfinished"
        rec.error = entry.get("error")
    rec.curve = _read_curve(run_dir / "metrics.csv")
    return rec


def collect_study(
    study_dir: str | Path, baseline: str | None = None, metrics: list[str] | None = None
) -> StudyReport:
    """Read a study's run directories (and ``study.yaml`` / ``status.json`` when present).

    Without ``study.yaml`` (runs launched by hand or on a cluster) the variants are the
    sub-directories holding ``seed<k>/`` run directories, and ``baseline`` must be given
    (default: a variant named ``baseline``).
    """
    study_dir = Path(study_dir)
    if not study_dir.is_dir():
        raise FileNotFoundError(f"{study_dir}: no such study directory")
    spec: dict[str, Any] = {}
    if (study_dir / "study.yaml").is_file():
        spec = yaml.safe_load((study_dir / "study.yaml").read_text(encoding="utf-8")) or {}
    status = (read_json_dict(study_dir / "status.json") or {}).get("runs") or {}
    live = study_locked(study_dir)

    found: dict[str, set[int]] = {}
    for d in sorted(p for p in study_dir.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))):
        seeds = {int(m.group(1)) for p in d.iterdir() if p.is_dir() and (m := _SEED_RE.match(p.name))}
        if seeds:
            found[d.name] = seeds
    for key in status:
        v, _, s = key.rpartition("/")
        if (m := _SEED_RE.match(s)) and v:
            found.setdefault(v, set()).add(int(m.group(1)))

    spec_variants: dict[str, Any] = spec.get("variants") or {}
    baseline = baseline or spec.get("baseline") or ("baseline" if "baseline" in found else None)
    if baseline is None:
        raise ValueError(
            f"{study_dir}: no study.yaml and no variant named 'baseline'; pass --baseline "
            f"(variants found: {', '.join(sorted(found)) or 'none'})"
        )
    names = list(spec_variants) if spec_variants else sorted(found)
    if baseline not in names:
        if baseline not in found:
            raise ValueError(f"{study_dir}: baseline {baseline!r} has no runs (variants: {', '.join(names)})")
        names.append(baseline)
    names = [baseline] + [n for n in names if n != baseline]
    expected_seeds = [int(s) for s in spec.get("seeds") or []]
    metrics = list(metrics or spec.get("metrics") or DEFAULT_METRICS)
    common = spec.get("overrides") or {}

    variants = []
    all_seeds: set[int] = set()
    for name in names:
        seeds = sorted(set(expected_seeds) | found.get(name, set()))
        all_seeds |= set(seeds)
        own = spec_variants.get(name) or {}
        ens = own.get("ensemble") if isinstance(own, dict) and isinstance(own.get("ensemble"), dict) else None
        members = [str(m) for m in ens.get("of") or []] if ens else None
        runs = [
            _load_run(name, s, study_dir / name / f"seed{s}", metrics, status, live, members) for s in seeds
        ]
        overrides = dict(own) if ens else ({**common, **own} if spec else {})
        variants.append(VariantResult(name, overrides, runs))

    base = next(v for v in variants if v.name == baseline)
    for v in variants:
        for m in metrics:
            vals = v.values(m)
            v.stats[m] = mean_std([vals[s] for s in sorted(vals)])
            if v.name != baseline:
                b = base.values(m)
                v.diffs[m] = compare_to_baseline(vals, b) if vals and b else None
    return StudyReport(
        study_dir,
        str(spec.get("name") or study_dir.name),
        baseline,
        metrics,
        variants,
        sorted(all_seeds),
        description=str(spec.get("description") or ""),
        base=spec.get("base"),
        monitor=_study_monitor(spec, variants),
        common=dict(common),
        select_mode=str((spec.get("select") or {}).get("mode") or "max") if isinstance(spec.get("select"), dict)
        else "max",
    )


def _study_monitor(spec: dict[str, Any], variants: list[VariantResult]) -> str:
    """The selection metric of a study: the spec's ``select.monitor`` (study.yaml), else what
    the finished runs recorded in their summary.json (the task's monitor), else ``val/top1``."""
    given = (spec.get("select") or {}).get("monitor") if isinstance(spec.get("select"), dict) else None
    if isinstance(given, str) and given:
        return given
    recorded = sorted({r.monitor for v in variants for r in v.done if r.monitor})
    if recorded:
        return " / ".join(recorded)  # more than one only for hand-assembled studies
    return DEFAULT_SELECT["monitor"]


# -- formatting ----------------------------------------------------------------------------------------------
def _f(x: float | None, digits: int = 4, sign: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def _mean_pm_std(stat: tuple[float, float, int]) -> str:
    mean, std, n = stat
    if n == 0:
        return "n/a"
    return f"{_f(mean)} ± {_f(std)}" if n >= 2 else f"{_f(mean)} (n=1)"


def _diff_text(d: Difference | None) -> str:
    if d is None:
        return "n/a"
    if not d.defined:
        return f"{_f(d.diff, sign=True)} (no interval: n<2)"
    mark = f" {CONTAINS_ZERO_MARK}" if d.contains_zero else ""
    return f"{_f(d.diff, sign=True)} [{_f(d.low, sign=True)}, {_f(d.high, sign=True)}]{mark}"


def _diff_method(d: Difference | None) -> str:
    if d is None or not d.defined:
        return ""
    return "paired t" if d.method == "paired" else f"Welch (df {d.df:.1f})"


def _params_text(v: VariantResult) -> str:
    return ", ".join(f"{p:,}" for p in v.params) or "n/a"


def _ensemble_text(ens: dict[str, Any]) -> str:
    members = [str(m) for m in ens.get("of") or []]
    weights = ens.get("weights") or [1.0] * len(members)
    terms = " + ".join(f"{float(w):g} `{m}`" for m, w in zip(members, weights))
    mode = "softmax probabilities" if ens.get("softmax") else "logits"
    return (f"ensemble (late fusion, no training): {terms} on {mode}, per seed; selection: that of its "
            "members; parameters and train time: sums over the members")


def _overrides_text(ovr: dict[str, Any]) -> str:
    if isinstance(ovr.get("ensemble"), dict) and len(ovr) == 1:
        return _ensemble_text(ovr["ensemble"])
    if not ovr:
        return "(no overrides)"
    return ", ".join(
        f"`{k}={json.dumps(val) if not isinstance(val, str) else val}`" for k, val in ovr.items()
    )


def _md(rep: StudyReport, files: dict[str, str]) -> str:
    lines = [f"# Ablation study: {rep.name}", ""]
    if rep.description:
        lines += [rep.description.strip(), ""]
    protocols = sorted({p for v in rep.variants for p in v.protocols})
    if "official" in protocols:
        lines += [
            "**OFFICIAL PROTOCOL in some runs: the model was selected on the TEST split; their test "
            "numbers are optimistically biased** (variants: "
            + ", ".join(v.name for v in rep.variants if "official" in v.protocols)
            + ").",
            "",
        ]
    lines += [
        f"- base config: `{rep.base}`" if rep.base else "- base config: (no study.yaml)",
        f"- baseline: `{rep.baseline}`; seeds: {', '.join(map(str, rep.seeds)) or 'none'}",
        f"- model selection: best epoch on `{rep.monitor}` (validation), test metrics at that epoch"
        if rep.select_mode != "last" else "- model selection: none (`select: last`): test metrics of each run's last state",
        "- mean ± std (sample std) over the finished seeds; n = finished seeds",
        "- Δ = variant − baseline with its 95% confidence interval: paired t over seeds when both finished "
        "the same seeds (same seed = same data order and initialisation), Welch's t otherwise; "
        f"`{CONTAINS_ZERO_MARK}` marks an interval that contains 0 (these seeds do not resolve a difference)",
        "",
    ]
    for m in rep.metrics:
        lines += [
            f"## {m}",
            "",
            "| variant | n | mean ± std | Δ vs baseline [95% CI] | test | parameters | train time (s) |",
            "|---|---|---|---|---|---|---|",
        ]
        for v in rep.variants:
            n_exp = len(v.runs)
            name = f"**{v.name}** (baseline)" if v.name == rep.baseline else v.name
            diff = "—" if v.name == rep.baseline else _diff_text(v.diffs.get(m))
            lines.append(
                f"| {name} | {v.stats[m][2]}/{n_exp} | {_mean_pm_std(v.stats[m])} | {diff} | "
                f"{_diff_method(v.diffs.get(m))} | {_params_text(v)} | {_f(v.train_time_s, 1)} |"
            )
        lines.append("")
    head = rep.metrics[0]
    lines += [
        f"## Per-seed {head}",
        "",
        "| variant | " + " | ".join(f"seed {s}" for s in rep.seeds) + " |",
        "|---|" + "---|" * len(rep.seeds),
    ]
    for v in rep.variants:
        by_seed = {r.seed: r for r in v.runs}
        cells = []
        for s in rep.seeds:
            r = by_seed.get(s)
            if r is None:
                cells.append("")
            elif r.state == "done":
                cells.append(_f(r.values.get(head)))
            else:
                cells.append(r.state)
        lines.append(f"| {v.name} | " + " | ".join(cells) + " |")
    lines += ["", "## Variants", ""]
    if rep.common:
        lines += [f"All variants: {_overrides_text(rep.common)}.", ""]
    for v in rep.variants:
        own = (
            v.overrides if "ensemble" in v.overrides
            else {k: val for k, val in v.overrides.items() if k not in rep.common or rep.common[k] != val}
        )
        lines.append(f"- `{v.name}`: {_overrides_text(own)}")
    lines.append("")
    problems = [r for v in rep.variants for r in v.runs if r.state != "done"]
    if problems:
        lines += ["## Runs not in the table", "", "| run | state | error | log |", "|---|---|---|---|"]
        for r in problems:
            err = (r.error or "").replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {r.variant}/seed{r.seed} | {r.state} | {err} | {r.log or ''} |")
        lines.append("")
    if files.get("curves"):
        lines += ["## Validation curves", "", f"![validation curves]({files['curves']})", ""]
    if files.get("bars"):
        lines += [f"## {head}", "", f"![{head} per variant]({files['bars']})", ""]
    return "\n".join(lines)


def _csv(rep: StudyReport) -> str:
    cols = ["variant", "is_baseline", "n", "n_runs", "seeds", "overrides"]
    for m in rep.metrics:
        cols += [
            f"{m}_mean",
            f"{m}_std",
            f"{m}_n",
            f"{m}_diff",
            f"{m}_ci_low",
            f"{m}_ci_high",
            f"{m}_ci_contains_zero",
            f"{m}_test",
            f"{m}_df",
        ]
    cols += ["trainable_parameters", "train_time_s_mean", "protocol", "failed_seeds", "unfinished_seeds"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()

    def num(x: float | None) -> str:
        return "" if x is None or (isinstance(x, float) and math.isnan(x)) else repr(float(x))

    for v in rep.variants:
        row: dict[str, Any] = {
            "variant": v.name,
            "is_baseline": v.name == rep.baseline,
            "n": len(v.done),
            "n_runs": len(v.runs),
            "seeds": " ".join(str(r.seed) for r in v.done),
            "overrides": json.dumps(v.overrides),
            "trainable_parameters": " ".join(map(str, v.params)),
            "train_time_s_mean": num(v.train_time_s),
            "protocol": " ".join(v.protocols),
            "failed_seeds": " ".join(str(r.seed) for r in v.runs if r.state == "failed"),
            "unfinished_seeds": " ".join(str(r.seed) for r in v.runs if r.state not in ("done", "failed")),
        }
        for m in rep.metrics:
            mean, std, n = v.stats[m]
            d = v.diffs.get(m)
            row.update({f"{m}_mean": num(mean), f"{m}_std": num(std), f"{m}_n": n})
            if d is not None:
                row.update(
                    {
                        f"{m}_diff": num(d.diff),
                        f"{m}_ci_low": num(d.low),
                        f"{m}_ci_high": num(d.high),
                        f"{m}_ci_contains_zero": "" if d.contains_zero is None else d.contains_zero,
                        f"{m}_test": d.method if d.defined else "",
                        f"{m}_df": num(d.df),
                    }
                )
        w.writerow(row)
    return buf.getvalue()


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    plt = _plt()
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def _plot_curves(rep: StudyReport, path: Path) -> bool:
    keys = [rep.monitor, "val/loss"]
    keys = [k for k in keys if any(k in row for v in rep.variants for r in v.done for row in r.curve)]
    if not keys:
        return False
    plt = _plt()
    fig, axes = plt.subplots(1, len(keys), figsize=(5.5 * len(keys), 4), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for ax, key in zip(axes[0], keys, strict=True):
        for i, v in enumerate(rep.variants):
            curves = [r.curve for r in v.done if r.curve]
            if not curves:
                continue
            n_ep = max(int(row["epoch"]) for c in curves for row in c) + 1
            grid = np.full((len(curves), n_ep), np.nan)
            for j, c in enumerate(curves):
                for row in c:
                    val = row.get(key)
                    if isinstance(val, float):
                        grid[j, int(row["epoch"])] = val
            have = np.isfinite(grid).any(axis=0)
            if not have.any():
                continue
            epochs = np.arange(n_ep)[have]
            g = grid[:, have]
            count = np.isfinite(g).sum(axis=0)
            mean = np.nansum(g, axis=0) / count
            # sample std where >= 2 seeds have the epoch; no band elsewhere
            dev = np.where(np.isfinite(g), g - mean, 0.0)
            std = np.where(count >= 2, np.sqrt((dev**2).sum(axis=0) / np.maximum(count - 1, 1)), np.nan)
            color = "0.3" if v.name == rep.baseline else cmap(i % 10)
            label = f"{v.name} (n={len(curves)})" + (" [baseline]" if v.name == rep.baseline else "")
            ax.plot(epochs, mean, "-o", ms=3, color=color, label=label)
            ax.fill_between(epochs, mean - std, mean + std, color=color, alpha=0.2, linewidth=0)
        if key.endswith("loss"):
            ax.set_yscale("log")
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{rep.name}: validation curves, mean ± 1 std over seeds", fontsize=10)
    _save(fig, path)
    return True


def _plot_bars(rep: StudyReport, path: Path) -> bool:
    m = rep.metrics[0]
    shown = [v for v in rep.variants if v.stats[m][2] > 0]
    if not shown:
        return False
    plt = _plt()
    others = [v for v in shown if v.name != rep.baseline and v.diffs.get(m) is not None]
    fig, axes = plt.subplots(1, 2 if others else 1, figsize=(11 if others else 6, 4), squeeze=False)
    ax = axes[0][0]
    x = np.arange(len(shown))
    means = np.array([v.stats[m][0] for v in shown])
    stds = np.array([v.stats[m][1] if v.stats[m][2] >= 2 else 0.0 for v in shown])
    colors = ["0.55" if v.name == rep.baseline else "tab:blue" for v in shown]
    ax.bar(x, means, yerr=stds, capsize=4, color=colors, alpha=0.8)
    for i, v in enumerate(shown):  # the seeds themselves
        vals = list(v.values(m).values())
        ax.plot(np.full(len(vals), x[i]), vals, "k.", ms=5)
    lo = min(float(np.min(means - stds)), min(min(v.values(m).values()) for v in shown))
    hi = max(float(np.max(means + stds)), max(max(v.values(m).values()) for v in shown))
    pad = 0.1 * (hi - lo) if hi > lo else 0.05 * max(abs(hi), 1e-3)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_xticks(x, [v.name for v in shown], rotation=30, ha="right")
    ax.set_ylabel(m)
    ax.set_title(f"{m}: mean ± std over seeds (dots: seeds; axis not from 0)", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    if others:
        ax = axes[0][1]
        x2 = np.arange(len(others))
        diffs = [v.diffs[m] for v in others]
        d = np.array([dd.diff for dd in diffs])
        lo_e = np.array([dd.diff - dd.low if dd.defined else 0.0 for dd in diffs])
        hi_e = np.array([dd.high - dd.diff if dd.defined else 0.0 for dd in diffs])
        cols = [
            "0.6" if dd.contains_zero in (True, None) else ("tab:green" if dd.diff > 0 else "tab:red")
            for dd in diffs
        ]
        ax.bar(x2, d, color=cols, alpha=0.8)
        ax.errorbar(x2, d, yerr=np.vstack([lo_e, hi_e]), fmt="none", ecolor="k", capsize=4)
        ax.axhline(0.0, color="k", lw=0.8)
        ax.set_xticks(x2, [v.name for v in others], rotation=30, ha="right")
        ax.set_ylabel(f"Δ {m} vs {rep.baseline}")
        ax.set_title("difference to the baseline, 95% CI (grey: contains 0)", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(rep.name, fontsize=10)
    _save(fig, path)
    return True


def write_report(
    study_dir: str | Path, baseline: str | None = None, metrics: list[str] | None = None, plots: bool = True
) -> dict[str, Path]:
    """Collect a study and write ``report.md``, ``report.csv``, ``val_curves.png``, ``bars.png``
    into its directory (atomically). Returns ``{"md", "csv", "curves", "bars"}`` paths (the
    PNGs only when there was something to plot)."""
    rep = collect_study(study_dir, baseline=baseline, metrics=metrics)
    d = rep.study_dir
    paths: dict[str, Path] = {}
    files: dict[str, str] = {}
    if plots:
        if _plot_curves(rep, d / "val_curves.png"):
            paths["curves"] = d / "val_curves.png"
            files["curves"] = "val_curves.png"
        if _plot_bars(rep, d / "bars.png"):
            paths["bars"] = d / "bars.png"
            files["bars"] = "bars.png"
    write_text(d / "report.csv", _csv(rep))
    write_text(d / "report.md", _md(rep, files))
    paths["md"] = d / "report.md"
    paths["csv"] = d / "report.csv"
    return paths
