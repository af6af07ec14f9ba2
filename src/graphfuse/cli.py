"""The ``graphfuse`` command: a thin dispatch.

* ``graphfuse fit|validate|test|predict -c CONFIG [--dotted.key=value ...]`` - LightningCLI.
  ``fit`` trains, then tests the best checkpoint (``--run.test_after_fit false`` to skip).
* ``graphfuse prepare ntu|ntu-official|synthetic-ntu|pie|jaad|synthetic-pie ...`` - dataset
  preparation; each family declares its subcommands (:mod:`graphfuse.families`).
* ``graphfuse check DIR [--bound NAME=LO:HI ...]`` - check a prepared folder's values (finite,
  plausible) and record it in its meta.json (needed once for older folders and ntu-official).
* ``graphfuse convert shiftgcn|pedgraph IN OUT.ckpt`` - wrap official weights into a checkpoint;
  ``graphfuse convert --list`` prints the released checkpoints (the families' weights tables).
* ``graphfuse ensemble RUN_DIR... [--weights W,...] [--softmax] [--out DIR]`` - fuse runs' scores.
* ``graphfuse info -c CONFIG [--key=value ...] [--frames T]`` - parameters, buffers, FLOPs.
* ``graphfuse infer --ckpt CKPT INPUT... [--json] [--top-k K] [--threshold T] [--stride N]`` - a
  checkpoint on raw files in the dataset's format (:mod:`graphfuse.infer`; each family's hook).
* ``graphfuse export --ckpt CKPT --format onnx|pt2 OUT [--opset N] [--batch N] [--no-check]`` -
  ONNX / torch.export archive with an onnxruntime parity check (:mod:`graphfuse.export`).
* ``graphfuse show INPUT [--ckpt CKPT] [--out FILE.gif|.mp4]`` - a skeleton sequence as an
  animation, with the predicted class over time (:mod:`graphfuse.show`).
* ``graphfuse ablate SPEC.yaml`` / ``graphfuse report runs/<study>`` - ablation studies.

The LightningCLI subclass itself lives in :mod:`graphfuse.engine`.
"""

from __future__ import annotations

import argparse
import sys

# The command's CPU defaults (graphfuse.cpu_defaults: OpenMP threads spin briefly, then sleep;
# glibc keeps freed large blocks in the heap), set before torch is imported. The training
# subcommands also restart under tcmalloc or jemalloc where one is installed (main()).
from .cpu_defaults import (
    CPU_ENV_DEFAULTS,
    CPU_MALLOC_DEFAULTS,
    apply_env_defaults,
    reexec_with_allocator,
    tune_glibc_allocator,
)

if "torch" not in sys.modules:
    apply_env_defaults()
tune_glibc_allocator()

from .families import BOUND_HELP as _BOUND_HELP

__all__ = ["CPU_ENV_DEFAULTS", "CPU_MALLOC_DEFAULTS", "main", "tune_glibc_allocator"]


def __getattr__(name: str) -> object:
    """``GraphfuseCLI``, ``RunOptions`` and ``import_components`` from :mod:`graphfuse.engine`,
    imported on first use: the plain subcommands (``prepare``, ``--help``) load no torch."""
    if name in ("GraphfuseCLI", "RunOptions", "import_components"):
        from . import engine

        return getattr(engine, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

TRAINER_SUBCOMMANDS = ("fit", "validate", "test", "predict")
STUDY_SUBCOMMANDS = ("ablate", "report")
TOOL_SUBCOMMANDS = ("prepare", "check", "convert", "ensemble", "info", "infer", "export", "show")


# -- plain subcommands ------------------------------------------------------------------------------
def _tools_parser(needed: tuple[str, ...] = ()) -> argparse.ArgumentParser:
    """The tools' parser; ``info``, ``infer``, ``export`` and ``show`` (which import torch) only when
    ``needed`` names them."""
    p = argparse.ArgumentParser(prog="graphfuse", description="graphfuse dataset and checkpoint tools")
    sub = p.add_subparsers(dest="command", required=True)

    from .families import families

    prep = sub.add_parser("prepare", help="prepare a dataset from its original files")
    psub = prep.add_subparsers(dest="dataset", required=True)
    for family in families():  # each family declares its prepare subcommands
        for command in family.prepare:
            cp = psub.add_parser(command.name, help=command.help)
            command.add_arguments(cp)
            cp.set_defaults(_prepare=command)

    chk = sub.add_parser("check", help="check a prepared folder's values and record the check in its meta.json")
    chk.add_argument("dir", metavar="DIR", help="prepared folder (holds meta.json)")
    chk.add_argument("--bound", action="append", default=None, metavar="NAME=LO:HI", help=_BOUND_HELP)

    conv = sub.add_parser("convert", help="convert official released weights")
    conv.add_argument("--list", action="store_true",
                      help="print the released checkpoints every converter knows (file, sha256, classes, "
                      "config, reported accuracy, source, protocol)")
    csub = conv.add_subparsers(dest="model")  # required unless --list (checked in _run_tool)
    for family in families():  # each family declares its converters
        for converter in family.converters:
            cp = csub.add_parser(converter.name, help=converter.help)
            cp.add_argument("input", help=converter.input_help)
            cp.add_argument("output", help="checkpoint to write (.ckpt)")
            dests = tuple(cp.add_argument(*o.flags, **o.kwargs).dest for o in converter.options)
            cp.set_defaults(_converter=converter, _converter_options=dests)

    ens = sub.add_parser("ensemble", help="fuse the test scores of several runs, matched by sample id")
    ens.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories (or their scores.npz)")
    ens.add_argument("--weights", default=None,
                     help="one weight per run, e.g. 0.6,0.6,0.4,0.4 (official Shift-GCN); default all 1")
    ens.add_argument("--softmax", action="store_true",
                     help="fuse softmax probabilities (PYSKL) instead of raw logits (official Shift-GCN)")
    ens.add_argument("--out", default=".", help="directory for ensemble.md and ensemble.csv (default: .)")

    if "info" in needed:
        from .info import add_info_arguments

        info = sub.add_parser("info", help="trainable parameters, buffers and FLOPs per sample of a config's model",
                              epilog="Further --dotted.key=value arguments override the config, as for `fit`.")
        add_info_arguments(info)
    if "infer" in needed:
        from .infer import add_infer_arguments

        add_infer_arguments(sub.add_parser("infer", help="a checkpoint on raw files in the dataset's original format"))
    if "export" in needed:
        from .export import add_export_arguments

        add_export_arguments(sub.add_parser("export", help="export a checkpoint's network to ONNX or a torch.export archive"))
    if "show" in needed:
        from .show import add_arguments as add_show_arguments

        add_show_arguments(sub.add_parser("show", help="render a skeleton sequence (and predictions) as GIF / MP4"))
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
    parser = _tools_parser(tuple(argv[:1]))
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "info":  # only `info` passes config overrides through
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "prepare":
        from .families import resolve

        resolve(args._prepare.run)(args)
        return 0
    if args.command == "check":
        from .data.checks import check_prepared

        record = check_prepared(args.dir, bounds=args.bound)
        print(f"checked {args.dir}: {len(record['arrays'])} arrays, every value finite and within the "
              f"bounds; recorded in {args.dir}/meta.json")
        return 0
    if args.command == "convert":
        from .convert import convert_with, format_weights_table

        if args.list:
            if args.model is not None:
                parser.error("convert: give --list or a converter, not both")
            print(format_weights_table(), end="")
            return 0
        if args.model is None:
            _subparser(parser, "convert").error("the following arguments are required: model")
        options = {dest: getattr(args, dest) for dest in args._converter_options}
        for line in convert_with(args._converter, args.input, args.output, **options):
            print(line)
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
    if args.command == "infer":
        from .infer import infer_main

        infer_main(args)
        return 0
    if args.command == "export":
        from .export import export_main

        export_main(args)
        return 0
    if args.command == "show":
        from .show import run as show_run

        show_run(args)
        return 0
    raise AssertionError(args.command)


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    """The subcommand parser ``name`` of the tools parser (for its own usage in errors)."""
    for action in parser._subparsers._group_actions:  # type: ignore[union-attr]
        if name in getattr(action, "choices", {}):
            return action.choices[name]
    raise KeyError(name)


_USAGE = """usage: graphfuse <command> ...

training (LightningCLI; `graphfuse fit --help` for all options):
  fit        -c CONFIG [--key=value ...]   train, then test the best checkpoint
  validate   -c CONFIG --ckpt_path CKPT
  test       -c CONFIG --ckpt_path CKPT
  predict    -c CONFIG --ckpt_path CKPT
tools:
  prepare    {prepare}   (`graphfuse prepare --help`)
  check      DIR [--bound NAME=LO:HI ...]   check a prepared folder's values, record it in meta.json
  convert    {convert} | --list
  ensemble   RUN_DIR... [--weights 0.6,0.6,0.4,0.4] [--softmax] [--out DIR]   fuse scores by sample id
  info       -c CONFIG [--key=value ...] [--frames T]   parameters, buffers, FLOPs per sample
  infer      --ckpt CKPT INPUT... [--json] [--top-k 5] [--threshold T] [--stride N] [--frames-dir DIR]
             a checkpoint on raw files (.skeleton, PIE/JAAD XML, images, videos)
  export     --ckpt CKPT --format onnx|pt2 OUT [--opset N] [--batch N] [--no-check]   with a parity check
  show       INPUT [--ckpt CKPT] [--out FILE.gif|FILE.mp4] [--fps N] [--stride N]   skeleton animation
studies:
  ablate     SPEC.yaml [--jobs N] [--dry-run] [--launcher T]   variants x seeds -> runs/<study>/report.md
  report     runs/<study> [--baseline B]                       rewrite a study's report
"""


def _usage() -> str:
    """``graphfuse --help``: the prepare and convert lines list every registered family's."""
    from .families import families

    fams = families()
    prepare = " | ".join(p.name for f in fams for p in f.prepare)
    convert = " | ".join(f"{c.name} {c.usage}" for f in fams for c in f.converters)
    return _USAGE.format(prepare=prepare, convert=convert)


def main(argv: list[str] | None = None) -> int:
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if argv[0] in TOOL_SUBCOMMANDS:
        return _tools_main(argv)
    if argv[0] in STUDY_SUBCOMMANDS:
        from .ablation import ablate_main, report_main

        return (ablate_main if argv[0] == "ablate" else report_main)(argv[1:])
    if argv[0] not in TRAINER_SUBCOMMANDS:
        print(_usage(), file=sys.stderr)
        print(f"graphfuse: unknown command {argv[0]!r}", file=sys.stderr)
        return 2
    if from_command_line:
        try:  # returns when no allocator is preloaded; else this process restarts under it
            reexec_with_allocator()
        except ValueError as exc:
            print(f"graphfuse {argv[0]}: error: {exc}", file=sys.stderr)
            return 2
    from .checkpoints import CheckpointError
    from .data.checks import ValueCheckError
    from .engine import GraphfuseCLI, import_components
    from .io import OutputError, error_line
    from .runs import RunDirLockedError, release_run_locks

    import_components()
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
