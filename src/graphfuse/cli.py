"""The ``graphfuse`` command: a thin dispatch.

* ``graphfuse fit|validate|test|predict -c CONFIG [--dotted.key=value ...]`` - LightningCLI.
  ``fit`` trains, then tests the best checkpoint (``--run.test_after_fit false`` to skip).
* ``graphfuse prepare ntu|ntu-official|synthetic-ntu ...`` - dataset preparation.
* ``graphfuse convert shiftgcn IN.pt OUT.ckpt`` - wrap official weights into a checkpoint.
* ``graphfuse ensemble RUN_DIR... [--weights W,...] [--softmax] [--out DIR]`` - fuse runs' scores.
* ``graphfuse info -c CONFIG [--key=value ...] [--frames T]`` - parameters, buffers, FLOPs.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback

__all__ = ["main", "GraphfuseCLI", "RunOptions"]

TRAINER_SUBCOMMANDS = ("fit", "validate", "test", "predict")
TOOL_SUBCOMMANDS = ("prepare", "convert", "ensemble", "info")


@dataclass
class RunOptions:
    """Where a run writes its files: ``<root>/<name>/<version>/``.

    Args:
        name: run name; default: the config path below ``configs/`` without ``.yaml``.
        root: directory holding all runs.
        version: version directory; default: the next free ``version_k`` (or, when resuming
            with ``--ckpt_path last``, the newest one holding a ``last.ckpt``).
        test_after_fit: after ``fit``, test the best checkpoint (test metrics at the epoch
            selected on validation).
    """

    name: str | None = None
    root: str = "runs"
    version: str | None = None
    test_after_fit: bool = True


def _default_run_name(cfg: Any) -> str:
    paths = cfg.get("config") or []
    if paths:
        p = Path(str(paths[-1]))
        parts = p.with_suffix("").parts
        if "configs" in parts:
            parts = parts[parts.index("configs") + 1 :]
        else:
            parts = parts[-2:]
        return "/".join(parts)
    return "default"


class GraphfuseCLI(LightningCLI):
    """LightningCLI with graphfuse's run directory, protocol switch and fit-then-test."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("subclass_mode_model", True)
        kwargs.setdefault("subclass_mode_data", True)
        kwargs.setdefault("seed_everything_default", 0)
        kwargs.setdefault("auto_configure_optimizers", False)
        kwargs.setdefault(
            "trainer_defaults",
            {"num_sanity_val_steps": 0, "log_every_n_steps": 10, "enable_model_summary": True},
        )
        super().__init__(*args, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_class_arguments(RunOptions, "run")
        parser.add_argument(
            "--protocol",
            type=str,
            default="holdout",
            choices=["holdout", "official"],
            help="model selection: 'holdout' (validation split carved from train; default) or "
            "'official' (best epoch on the test split, as the reference code; labelled in every output)",
        )

    def _parse_ckpt_path(self) -> None:
        # The run's config.yaml is the source of truth; do not merge checkpoint hparams into it.
        return

    # -- run directory -------------------------------------------------------------------------
    def before_instantiate_classes(self) -> None:
        sub = self.subcommand
        cfg = self.config[sub]
        if not cfg.run.name:
            cfg.run.name = _default_run_name(cfg)
        if cfg.protocol == "official":
            data_init = cfg.data.get("init_args") if cfg.get("data") is not None else None
            if data_init is None or "val_source" not in data_init:
                raise ValueError("--protocol official needs a datamodule with a 'val_source' argument")
            data_init.val_source = "test"
        ckpt_path = cfg.get("ckpt_path")
        self.resuming = sub == "fit" and ckpt_path is not None
        self.run_dir: Path
        if sub == "fit":
            from .runs import resolve_run_dir

            if ckpt_path not in (None, "last"):
                ck = Path(ckpt_path)
                if ck.parent.name == "checkpoints" and (ck.parent.parent / "config.yaml").is_file():
                    self.run_dir = ck.parent.parent
                else:
                    raise ValueError(
                        f"--ckpt_path {ckpt_path}: fit resumes only a run's own checkpoint "
                        "(runs/<name>/<version>/checkpoints/*.ckpt) or 'last'"
                    )
            else:
                self.run_dir = resolve_run_dir(cfg.run.root, cfg.run.name, cfg.run.version, resume=self.resuming)
        else:
            from .runs import resolve_run_dir

            ck = Path(ckpt_path) if ckpt_path not in (None, "last", "best") else None
            if ck is not None and ck.parent.name == "checkpoints" and (ck.parent.parent / "config.yaml").is_file():
                self.run_dir = ck.parent.parent  # evaluate inside the checkpoint's own run
            else:
                self.run_dir = resolve_run_dir(cfg.run.root, cfg.run.name, cfg.run.version, resume=False)

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        from lightning.pytorch.callbacks import ModelCheckpoint
        from lightning.pytorch.loggers import TensorBoardLogger

        from .runs import RunArtifacts

        cfg = self.config[self.subcommand]
        run_dir = self.run_dir
        # name="" makes the logger's log_dir exactly save_dir/version = run_dir.
        logger = TensorBoardLogger(
            save_dir=str(run_dir.parent), name="", version=run_dir.name, default_hp_metric=False
        )
        callbacks = list(self._get(self.config_init, "trainer", default={}).get("callbacks") or [])
        ckpt_dir = run_dir / "checkpoints"
        # Two checkpoints: the best epoch on the selection split, and the end of every epoch
        # (saved at train-epoch end, after RunArtifacts has recorded the epoch's metrics, so
        # a resumed run has them). Lightning's `save_last` only writes when a best is saved.
        callbacks.append(
            ModelCheckpoint(
                dirpath=ckpt_dir, filename="best", monitor="val/top1", mode="max", save_top_k=1,
                auto_insert_metric_name=False, enable_version_counter=False,
            )
        )
        callbacks.append(
            ModelCheckpoint(
                dirpath=ckpt_dir, filename="last", monitor=None, save_top_k=1, save_on_train_epoch_end=True,
                enable_version_counter=False,
            )
        )
        callbacks.append(RunArtifacts(run_dir, protocol=cfg.protocol))
        # Save the resolved config for a new run only; a resumed or re-evaluated run keeps its own.
        if (run_dir / "config.yaml").exists():
            self.save_config_callback = None  # type: ignore[assignment]
        else:
            self.save_config_callback = SaveConfigCallback
        return super().instantiate_trainer(logger=logger, callbacks=callbacks, **kwargs)

    def after_fit(self) -> None:
        cfg = self.config["fit"]
        trainer = self.trainer
        if trainer.interrupted or not cfg.run.test_after_fit or trainer.fast_dev_run:
            return
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        trainer.test(self.model, datamodule=self.datamodule, ckpt_path=best or None, verbose=False)
        if trainer.is_global_zero:
            _print_summary(self.run_dir, cfg.protocol)


def _print_summary(run_dir: Path, protocol: str) -> None:
    import json

    from .runs import PROTOCOLS

    summary = json.loads((run_dir / "summary.json").read_text())
    test = summary.get("test", {}).get("metrics", {})
    best_epoch = summary.get("best_epoch")
    sel = "the TEST split (official protocol)" if protocol == "official" else "validation"
    print()
    print(f"Test metrics at epoch {best_epoch} (selected on {sel}):")
    for k in sorted(test):
        print(f"  {k:18s} {test[k]:.4f}")
    if protocol == "official":
        print(f"  NOTE: {PROTOCOLS['official']}")
    print(f"Run directory: {run_dir}")
    print(f"  curves:      {run_dir / 'curves.png'}")
    print(f"  summary:     {run_dir / 'summary.json'}")
    print(f"  scores:      {run_dir / 'scores.npz'}")
    print(f"  checkpoints: {run_dir / 'checkpoints'}")


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
"""


def main(argv: list[str] | None = None) -> int:
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_USAGE)
        return 0
    if argv[0] in TOOL_SUBCOMMANDS:
        return _tools_main(argv)
    if argv[0] not in TRAINER_SUBCOMMANDS:
        print(_USAGE, file=sys.stderr)
        print(f"graphfuse: unknown command {argv[0]!r}", file=sys.stderr)
        return 2
    _import_components()
    # From the command line LightningCLI reads sys.argv itself (passing both warns).
    GraphfuseCLI(args=None if from_command_line else argv)
    return 0


def _import_components() -> None:
    """Import every model, task and datamodule so short class names resolve in configs."""
    from . import models, tasks  # noqa: F401
    from .data import datamodule  # noqa: F401


if __name__ == "__main__":
    sys.exit(main())
