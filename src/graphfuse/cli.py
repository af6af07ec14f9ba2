"""The ``graphfuse`` command: a thin dispatch.

* ``graphfuse fit|validate|test|predict -c CONFIG [--dotted.key=value ...]`` - LightningCLI.
  ``fit`` trains, then tests the best checkpoint (``--run.test_after_fit false`` to skip).
* ``graphfuse prepare ntu|ntu-official|synthetic-ntu ...`` - dataset preparation.
* ``graphfuse convert shiftgcn IN.pt OUT.ckpt`` - wrap official weights into a checkpoint.
* ``graphfuse ensemble RUN_DIR... [--weights W,...] [--softmax] [--out DIR]`` - fuse runs' scores.
* ``graphfuse info -c CONFIG [--key=value ...] [--frames T]`` - parameters, buffers, FLOPs.
* ``graphfuse ablate SPEC.yaml`` / ``graphfuse report runs/<study>`` - ablation studies.

The LightningCLI subclass itself lives in :mod:`graphfuse.engine`.
"""

from __future__ import annotations

import argparse
import sys

from .engine import GraphfuseCLI, RunOptions, import_components

__all__ = ["main", "GraphfuseCLI", "RunOptions"]

TRAINER_SUBCOMMANDS = ("fit", "validate", "test", "predict")
STUDY_SUBCOMMANDS = ("ablate", "report")
TOOL_SUBCOMMANDS = ("prepare", "convert", "ensemble", "info")


# -- plain subcommands ------------------------------------------------------------------------------
def _tools_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="graphfuse", description="graphfuse dataset and checkpoint tools")
    sub = p.add_subparsers(dest="command", required=True)

    prep = sub.add_parser("prepare", help="prepare a dataset from its original files")
    psub = prep.add_subparsers(dest="dataset", required=True)
    ntu = psub.add_parser("ntu", help="NTU RGB+D 60/120 from raw .skeleton files")
    ntu.add_argument("--root", required=True, help="directory holding the raw .skeleton files")
    ntu.add_argument("--out", required=True, help="output directory (arrays + meta.json)")
    ntu.add_argument("--benchmark", required=True,
                     choices=["ntu60-xsub", "ntu60-xview", "ntu120-xsub", "ntu120-xset", "synthetic-xsub"])
    ntu.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    ntu.add_argument("--skip-bad", action="store_true",
                     help="skip malformed files and list them in meta.json instead of stopping")
    ntu.add_argument("--missing-list", default=None, help="missing-skeleton list (default: the official one)")
    ntu.add_argument("--write-streams", default="",
                     help="comma-separated derived streams to store too: bone,joint_motion,bone_motion")
    off = psub.add_parser("ntu-official", help="register arrays made by the official Shift-GCN scripts")
    off.add_argument("--root", required=True, help="directory with {train,val}_data_joint.npy and {train,val}_label.pkl")
    off.add_argument("--out", required=True)
    off.add_argument("--benchmark", required=True,
                     choices=["ntu60-xsub", "ntu60-xview", "ntu120-xsub", "ntu120-xset"])
    syn = psub.add_parser("synthetic-ntu", help="generate and prepare the synthetic NTU-format dataset")
    syn.add_argument("--out", required=True, help="output directory (raw files go to OUT/raw)")
    syn.add_argument("--seed", type=int, default=0)
    syn.add_argument("--workers", type=int, default=None)

    conv = sub.add_parser("convert", help="convert official released weights")
    csub = conv.add_subparsers(dest="model", required=True)
    sg = csub.add_parser("shiftgcn", help="official Shift-GCN .pt -> graphfuse checkpoint")
    sg.add_argument("input", help="official state dict (.pt, e.g. ntu_ShiftGCN_joint_xsub.pt)")
    sg.add_argument("output", help="checkpoint to write (.ckpt)")

    ens = sub.add_parser("ensemble", help="fuse the test scores of several runs, matched by sample id")
    ens.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories (or their scores.npz)")
    ens.add_argument("--weights", default=None,
                     help="one weight per run, e.g. 0.6,0.6,0.4,0.4 (official Shift-GCN); default all 1")
    ens.add_argument("--softmax", action="store_true",
                     help="fuse softmax probabilities (PYSKL) instead of raw logits (official Shift-GCN)")
    ens.add_argument("--out", default=".", help="directory for ensemble.md and ensemble.csv (default: .)")

    from .info import add_info_arguments

    info = sub.add_parser("info", help="trainable parameters, buffers and FLOPs per sample of a config's model",
                          epilog="Further --dotted.key=value arguments override the config, as for `fit`.")
    add_info_arguments(info)
    return p


def _tools_main(argv: list[str]) -> int:
    parser = _tools_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "info":  # only `info` passes config overrides through
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "prepare":
        if args.dataset == "ntu":
            from .data.ntu import prepare_ntu

            streams = tuple(s for s in args.write_streams.split(",") if s)
            result = prepare_ntu(
                args.root, args.out, args.benchmark, workers=args.workers,
                on_error="skip" if args.skip_bad else "raise", missing_list=args.missing_list,
                write_streams=streams,
            )
        elif args.dataset == "ntu-official":
            from .data.ntu import import_official_dir

            result = import_official_dir(args.root, args.out, args.benchmark)
        else:
            from .data.synthetic.ntu import prepare_synthetic_ntu

            result = prepare_synthetic_ntu(args.out, seed=args.seed, workers=args.workers)
        _print_prepared(result, args.out)
        return 0
    if args.command == "convert":
        from .convert import convert_shiftgcn

        out = convert_shiftgcn(args.input, args.output)
        print(f"wrote {out}")
        return 0
    if args.command == "ensemble":
        from .ensemble import ensemble, to_markdown, write_report

        result = ensemble(args.runs, weights=args.weights, use_softmax=args.softmax)
        print(to_markdown(result), end="")
        md, csv_path = write_report(result, args.out)
        print(f"wrote {md} and {csv_path}")
        return 0
    if args.command == "info":
        from .info import info_main

        info_main(args.config, extra, frames=args.frames, channels=args.channels, joints=args.joints,
                  persons=args.persons)
        return 0
    raise AssertionError(args.command)


def _print_prepared(meta: dict, out: str) -> None:
    counts = meta.get("counts", {})
    print(f"prepared {meta.get('benchmark', '?')} ({meta.get('num_class', '?')} classes) in {out}")
    for split, c in counts.items():
        n = c.get("samples", c) if isinstance(c, dict) else c
        print(f"  {split:6s} {n} samples")
    skipped = meta.get("skipped") or []
    if skipped:
        print(f"  skipped {len(skipped)} bad files (listed in meta.json), e.g. {skipped[0]}")


_USAGE = """usage: graphfuse <command> ...

training (LightningCLI; `graphfuse fit --help` for all options):
  fit        -c CONFIG [--key=value ...]   train, then test the best checkpoint
  validate   -c CONFIG --ckpt_path CKPT
  test       -c CONFIG --ckpt_path CKPT
  predict    -c CONFIG --ckpt_path CKPT
tools:
  prepare    ntu | ntu-official | synthetic-ntu   (`graphfuse prepare --help`)
  convert    shiftgcn IN.pt OUT.ckpt
  ensemble   RUN_DIR... [--weights 0.6,0.6,0.4,0.4] [--softmax] [--out DIR]   fuse scores by sample id
  info       -c CONFIG [--key=value ...] [--frames T]   parameters, buffers, FLOPs per sample
studies:
  ablate     SPEC.yaml [--jobs N] [--dry-run] [--launcher T]   variants x seeds -> runs/<study>/report.md
  report     runs/<study> [--baseline B]                       rewrite a study's report
"""


def main(argv: list[str] | None = None) -> int:
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_USAGE)
        return 0
    if argv[0] in TOOL_SUBCOMMANDS:
        return _tools_main(argv)
    if argv[0] in STUDY_SUBCOMMANDS:
        from .ablation import ablate_main, report_main

        return (ablate_main if argv[0] == "ablate" else report_main)(argv[1:])
    if argv[0] not in TRAINER_SUBCOMMANDS:
        print(_USAGE, file=sys.stderr)
        print(f"graphfuse: unknown command {argv[0]!r}", file=sys.stderr)
        return 2
    import_components()
    # From the command line LightningCLI reads sys.argv itself (passing both warns).
    GraphfuseCLI(args=None if from_command_line else argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
