"""``graphfuse ablate`` and ``graphfuse report``: argument parsing and dispatch.

Wired into the ``graphfuse`` command by :mod:`graphfuse.cli` (``ablate_main(argv)`` /
``report_main(argv)`` receive the arguments after the subcommand name).
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["ablate_main", "report_main", "ablate_parser", "report_parser"]


def ablate_parser() -> argparse.ArgumentParser:
    from .runner import LAUNCHER_FIELDS

    fields = "; ".join(f"{{{k}}}: {v}" for k, v in LAUNCHER_FIELDS.items())
    p = argparse.ArgumentParser(
        prog="graphfuse ablate",
        description="Run an ablation study: every (variant, seed) of SPEC is a `graphfuse fit` run under "
        "ROOT/<study>/<variant>/seed<k>/; finished runs are skipped, interrupted ones resumed; "
        "ROOT/<study>/report.md is written at the end. See docs/ablation.md.",
    )
    p.add_argument("spec", help="ablation spec (YAML), e.g. configs/ablations/synthetic_ntu.yaml")
    p.add_argument("--root", default="runs", help="directory holding all runs (default: runs)")
    p.add_argument(
        "--jobs",
        "-j",
        type=int,
        default=1,
        help="runs in parallel; local runs share the CPU cores (OMP_NUM_THREADS = cores // jobs)",
    )
    p.add_argument(
        "--threads", type=int, default=None, help="CPU threads per local run (default: cores // jobs)"
    )
    p.add_argument(
        "--gpus",
        default=None,
        metavar="IDS",
        help="GPU ids (e.g. 0,1,2,3) shared among the --jobs local runs through CUDA_VISIBLE_DEVICES: "
        "each parallel slot gets its own share",
    )
    p.add_argument("--dry-run", action="store_true", help="validate, then list what would run; run nothing")
    p.add_argument(
        "--launcher",
        default=None,
        metavar="TEMPLATE",
        help="launch each run through an external command, e.g. 'sbatch -J {job_name} -o {log} "
        "--wrap \"{cmd}\"' or 'torchrun --nproc_per_node 4 -m graphfuse.cli {args}'. "
        f"Placeholders: {fields}",
    )
    p.add_argument(
        "--seeds",
        nargs="+",
        default=None,
        help="seeds to run instead of the spec's (e.g. --seeds 0 1 2 3 4, or 0,1,2)",
    )
    p.add_argument("--variants", nargs="+", default=None, help="run only these variants")
    p.add_argument(
        "--retry-failed",
        action="store_true",
        help="rerun failed runs (and resubmit launched runs that have not finished)",
    )
    p.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    return p


def ablate_main(argv: list[str]) -> int:
    """``graphfuse ablate SPEC [options]``. Returns 0 when no run of the study is failed,
    1 when some are (the study still ran every other run), 2 for an invalid spec or
    option, 130 when interrupted."""
    args = ablate_parser().parse_args(argv)
    from .runner import run_study
    from .spec import SpecError, load_spec, parse_seeds

    try:
        spec = load_spec(args.spec)
        seeds = parse_seeds(" ".join(args.seeds)) if args.seeds else None
        variants = [v for item in args.variants for v in item.split(",") if v] if args.variants else None
        result = run_study(
            spec,
            args.root,
            jobs=args.jobs,
            dry_run=args.dry_run,
            launcher=args.launcher,
            retry_failed=args.retry_failed,
            variants=variants,
            seeds=seeds,
            threads_per_job=args.threads,
            write_report=not args.no_report,
            gpus=[g for g in args.gpus.split(",") if g.strip()] if args.gpus else None,
        )
    except SpecError as e:
        print(f"graphfuse ablate: error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:  # e.g. another ablate holds the study's lock
        print(f"graphfuse ablate: error: {e}", file=sys.stderr)
        return 2
    if result.interrupted:
        return 130
    return 1 if result.failed else 0


def report_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="graphfuse report",
        description="Write report.md, report.csv, val_curves.png and bars.png of an ablation study from its "
        "run directories (ROOT/<study>/<variant>/seed<k>/).",
    )
    p.add_argument("study_dir", help="the study directory, e.g. runs/synthetic-ntu-quickstart")
    p.add_argument(
        "--baseline", default=None, help="baseline variant (default: from study.yaml, or 'baseline')"
    )
    p.add_argument("--metrics", nargs="+", default=None, help="metrics to report (default: the spec's)")
    p.add_argument("--no-plots", action="store_true", help="tables only")
    return p


def report_main(argv: list[str]) -> int:
    """``graphfuse report runs/<study> [--baseline B] [--metrics M ...]``; prints the report."""
    args = report_parser().parse_args(argv)
    from .report import write_report

    metrics = [m for item in args.metrics for m in item.split(",") if m] if args.metrics else None
    try:
        paths = write_report(args.study_dir, baseline=args.baseline, metrics=metrics, plots=not args.no_plots)
    except (FileNotFoundError, ValueError) as e:
        print(f"graphfuse report: error: {e}", file=sys.stderr)
        return 2
    print(paths["md"].read_text(encoding="utf-8"))
    print("written: " + ", ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":  # python -m graphfuse.ablation.cli {ablate|report} ...
    if len(sys.argv) > 1 and sys.argv[1] in ("ablate", "report"):
        main = ablate_main if sys.argv[1] == "ablate" else report_main
        sys.exit(main(sys.argv[2:]))
    print("usage: python -m graphfuse.ablation.cli {ablate|report} ...", file=sys.stderr)
    sys.exit(2)
