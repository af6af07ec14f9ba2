"""The ``graphfuse`` command: a thin dispatch.

* ``graphfuse fit|validate|test|predict -c CONFIG [--dotted.key=value ...]`` - LightningCLI.
  ``fit`` trains, then tests the best checkpoint (``--run.test_after_fit false`` to skip).
* ``graphfuse prepare ntu|ntu-official|synthetic-ntu|pie|jaad|synthetic-pie ...`` - dataset
  preparation.
* ``graphfuse check DIR [--bound NAME=LO:HI ...]`` - check a prepared folder's values (finite,
  plausible) and record it in its meta.json (needed once for older folders and ntu-official).
* ``graphfuse convert shiftgcn|pedgraph IN OUT.ckpt`` - wrap official weights into a checkpoint.
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
TOOL_SUBCOMMANDS = ("prepare", "check", "convert", "ensemble", "info")
_BOUND_HELP = ("plausibility bound NAME=LO:HI overriding a default (repeatable): joint_m=-20:20, "
               "pixel_frames=-1:2, speed_kmh=0:300, acc_g=-16:16, gyro_dps=-2000:2000, angle=-360:360, "
               "latitude=-90:90, longitude=-180:180 (see docs/data_ntu.md, docs/data_intention.md)")


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
    ntu.add_argument("--bound", action="append", default=None, metavar="NAME=LO:HI", help=_BOUND_HELP)
    off = psub.add_parser("ntu-official", help="register arrays made by the official Shift-GCN scripts")
    off.add_argument("--root", required=True, help="directory with {train,val}_data_joint.npy and {train,val}_label.pkl")
    off.add_argument("--out", required=True)
    off.add_argument("--benchmark", required=True,
                     choices=["ntu60-xsub", "ntu60-xview", "ntu120-xsub", "ntu120-xset"])
    syn = psub.add_parser("synthetic-ntu", help="generate and prepare the synthetic NTU-format dataset")
    syn.add_argument("--out", required=True, help="output directory (raw files go to OUT/raw)")
    syn.add_argument("--seed", type=int, default=0)
    syn.add_argument("--workers", type=int, default=None)

    for name, helptext in (("pie", "PIE crossing sequences from the original annotation XML"),
                           ("jaad", "JAAD crossing sequences from the original annotation XML"),
                           ("synthetic-pie", "generate and prepare the synthetic PIE-format dataset")):
        ip = psub.add_parser(name, help=helptext)
        if name == "synthetic-pie":
            ip.add_argument("--out", required=True, help="output directory (raw files go to OUT/raw)")
            ip.add_argument("--seed", type=int, default=0)
        else:
            ip.add_argument("--root", required=True,
                            help="dataset folder holding annotations/, annotations_attributes/, ...")
            ip.add_argument("--out", required=True, help="output directory (arrays + meta.json)")
            ip.add_argument("--poses", default=None,
                            help="pose folder (see docs/data_intention.md); without it no pose.npy is written")
            ip.add_argument("--pose-format", default="coco", choices=["coco", "openpose", "pab", "pedgraph"])
            ip.add_argument("--pose-min-iou", type=float, default=0.3,
                            help="minimum IoU between a detection and the pedestrian box (default 0.3)")
            ip.add_argument("--pose-fill", default="interpolate", choices=["interpolate", "hold", "zero"],
                            help="how frames without a matched detection are filled (the mask keeps them apart)")
            ip.add_argument("--on-missing-pose", default="raise", choices=["raise", "skip"],
                            help="a video without a pose file: stop (default) or skip it and list it in meta.json")
            ip.add_argument("--images", default=None,
                            help="extracted frames (images/<set>/<video>/%%05d.png) for pedestrian crops")
            ip.add_argument("--overwrite", action="store_true", help="replace an existing prepared folder")
            ip.add_argument("--bound", action="append", default=None, metavar="NAME=LO:HI", help=_BOUND_HELP)
        if name == "jaad":
            ip.add_argument("--sample-type", default="beh", choices=["beh", "all"],
                            help="beh: pedestrians with behaviour tags; all: every pedestrian (JAAD_all)")
            ip.add_argument("--subset", default="default", choices=["default", "high_visibility", "all_videos"])
        ip.add_argument("--obs-length", type=int, default=16, help="observed frames (benchmark 16; PedGraph+ 32)")
        ip.add_argument("--tte", type=int, nargs=2, default=(30, 60), metavar=("MIN", "MAX"),
                        help="time to event range in frames (default 30 60)")
        ip.add_argument("--overlap", type=float, default=None, help="window overlap (default PIE 0.6, JAAD 0.8)")
        ip.add_argument("--min-track-size", type=int, default=None, help="default obs-length + 60")
        ip.add_argument("--balance", default="off", choices=["off", "tracks", "samples"],
                        help="balance the train split by dropping majority-class tracks or windows, as "
                        "balance_samples_count of the official PIE/JAAD interfaces (default off)")
        if name != "synthetic-pie":
            ip.add_argument("--splits", default="train,val,test",
                            help="comma-separated splits to prepare (e.g. test for a partial download)")

    chk = sub.add_parser("check", help="check a prepared folder's values and record the check in its meta.json")
    chk.add_argument("dir", metavar="DIR", help="prepared folder (holds meta.json)")
    chk.add_argument("--bound", action="append", default=None, metavar="NAME=LO:HI", help=_BOUND_HELP)

    conv = sub.add_parser("convert", help="convert official released weights")
    csub = conv.add_subparsers(dest="model", required=True)
    sg = csub.add_parser("shiftgcn", help="official Shift-GCN .pt -> graphfuse checkpoint")
    sg.add_argument("input", help="official state dict (.pt, e.g. ntu_ShiftGCN_joint_xsub.pt)")
    sg.add_argument("output", help="checkpoint to write (.ckpt)")
    pg = csub.add_parser("pedgraph", help="official Pedestrian Graph+ best.pth -> graphfuse checkpoint")
    pg.add_argument("input", help="weigths/<dataset>-23-<flags>/best.pth of Pedestrian_graph_plus")
    pg.add_argument("output", help="checkpoint to write (.ckpt)")
    pg.add_argument("--flags", default=None,
                    help="modality flags of the run, e.g. IVSFT or IVSFT-h2d (default: from the folder name)")

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
    """Tools report bad input (missing or malformed files, bad options) in one line, exit 2."""
    from pickle import UnpicklingError  # a corrupt or refused label pickle (names the file)

    from .io import error_line

    try:
        return _run_tool(argv)
    # OSError: also a full or read-only output directory
    except (OSError, ValueError, KeyError, UnpicklingError) as exc:
        print(f"graphfuse {argv[0]}: error: {error_line(exc)}", file=sys.stderr)
        return 2


def _run_tool(argv: list[str]) -> int:
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
                write_streams=streams, bounds=args.bound,
            )
        elif args.dataset == "ntu-official":
            from .data.ntu import import_official_dir

            result = import_official_dir(args.root, args.out, args.benchmark)
        elif args.dataset == "synthetic-ntu":
            from .data.synthetic.ntu import prepare_synthetic_ntu

            result = prepare_synthetic_ntu(args.out, seed=args.seed, workers=args.workers)
        else:
            _print_intention(_prepare_intention(args), args.out)
            return 0
        _print_prepared(result, args.out)
        return 0
    if args.command == "check":
        from .data.checks import check_prepared

        record = check_prepared(args.dir, bounds=args.bound)
        print(f"checked {args.dir}: {len(record['arrays'])} arrays, every value finite and within the "
              f"bounds; recorded in {args.dir}/meta.json")
        return 0
    if args.command == "convert":
        from .convert import convert_pedgraph, convert_shiftgcn

        if args.model == "pedgraph":
            out = convert_pedgraph(args.input, args.output, flags=args.flags)
        else:
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


def _prepare_intention(args: argparse.Namespace) -> dict:
    common = dict(obs_length=args.obs_length, time_to_event=tuple(args.tte), overlap=args.overlap,
                  min_track_size=args.min_track_size,
                  balance=False if args.balance == "off" else args.balance)
    if args.dataset == "synthetic-pie":
        from .data.synthetic.pie import prepare_synthetic_pie

        return prepare_synthetic_pie(args.out, seed=args.seed, **common)
    from .data.intention.prepare import prepare_intention

    extra = dict(sample_type=args.sample_type, subset=args.subset) if args.dataset == "jaad" else {}
    return prepare_intention(
        args.dataset, args.root, args.out, poses=args.poses, pose_format=args.pose_format,
        pose_min_iou=args.pose_min_iou, pose_fill=args.pose_fill, images=args.images,
        on_missing_pose=args.on_missing_pose, overwrite=args.overwrite, bounds=args.bound,
        splits=tuple(s for s in args.splits.split(",") if s), **extra, **common)


def _print_intention(meta: dict, out: str) -> None:
    print(f"prepared {meta.get('dataset', '?')} crossing sequences in {out}")
    for split, c in (meta.get("splits") or {}).items():
        print(f"  {split:5s} {c['samples']:6d} samples ({c['positive']} crossing, {c['negative']} not; "
              f"{c['irrelevant']} of them irrelevant), {c['tracks']} tracks, {c['pedestrians']} pedestrians")
    pose = meta.get("pose")
    if pose:
        print(f"  poses: {pose.get('matched_frames')} matched frames, {pose.get('missing_frames')} filled "
              f"({pose.get('fill')})")
    for reason, ids in (meta.get("skipped") or {}).items():
        if ids:
            print(f"  skipped ({reason}): {len(ids)}, e.g. {ids[0]} (listed in meta.json)")


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
  prepare    ntu | ntu-official | synthetic-ntu | pie | jaad | synthetic-pie   (`graphfuse prepare --help`)
  check      DIR [--bound NAME=LO:HI ...]   check a prepared folder's values, record it in meta.json
  convert    shiftgcn IN.pt OUT.ckpt | pedgraph best.pth OUT.ckpt [--flags IVSFT]
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
    from .checkpoints import CheckpointError
    from .data.checks import ValueCheckError
    from .io import OutputError, error_line
    from .runs import RunDirLockedError, release_run_locks

    # Errors about the user's files, options or disk: one line naming the file, exit 2. Anything
    # else is a bug and keeps its traceback.
    user_errors = (CheckpointError, ValueCheckError, OutputError, RunDirLockedError, FileNotFoundError,
                   FileExistsError)
    try:
        # From the command line LightningCLI reads sys.argv itself (passing both warns).
        GraphfuseCLI(args=None if from_command_line else argv)
    except user_errors as exc:
        print(f"graphfuse {argv[0]}: error: {error_line(exc)}", file=sys.stderr)
        return 2
    finally:
        release_run_locks()
    return 0


if __name__ == "__main__":
    sys.exit(main())
