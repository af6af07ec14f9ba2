"""The training engine: graphfuse's LightningCLI (run directories, protocol, fit-then-test).

:mod:`graphfuse.cli` dispatches ``fit|validate|test|predict`` here; tools that need the same
configuration parser (``graphfuse info``, the ablation runner) import it from here.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback

from .checkpoints import CheckpointError, SafeCheckpointIO, is_remote, load_checkpoint, local_checkpoint_path

__all__ = [
    "GraphfuseCLI",
    "RunOptions",
    "import_components",
    "task_monitor",
    "DEFAULT_MONITOR",
    "resolve_network_output_size",
]

#: Selection metric of a task that declares none (``ActionRecognition``): maximised.
DEFAULT_MONITOR = "val/top1"


def task_monitor(task: Any) -> str:
    """The model-selection metric of a task (instance or class): its ``monitor`` attribute
    (e.g. ``CrossingIntention.monitor = "val/balanced_acc"``), else :data:`DEFAULT_MONITOR`.
    Always maximised (checkpoint ``mode="max"``)."""
    monitor = getattr(task, "monitor", None)
    if monitor is None:
        return DEFAULT_MONITOR
    if not isinstance(monitor, str) or not monitor.startswith("val/"):
        raise ValueError(f"{type(task).__name__}.monitor must be a 'val/<metric>' name, got {monitor!r}")
    return monitor


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
            help="model selection: 'holdout' (a validation split: carved from train, or the dataset's own "
            "validation split; default) or "
            "'official' (best epoch on the test split, as the reference code; labelled in every output)",
        )

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        # Every -c/--config file is read by graphfuse first: a config jsonargparse would reject
        # without naming it, or crash on (not UTF-8, nested too deeply, an alias inside itself,
        # a NaN value), is one error naming the file (printed with the usage, exit code 2).
        import sys

        from .config_files import config_file_problem, config_paths

        argv = sys.argv[1:] if args is None else args
        paths = config_paths([str(a) for a in argv]) if isinstance(argv, (list, tuple)) else []
        for path in paths:  # a loop over the few configs
            problem = config_file_problem(path)
            if problem:
                parser.error(problem)
        # jsonargparse's own errors (an unknown key, a wrong type) name the key, not the file:
        # raise them here and report them again with the config files in front.
        parsers = [parser, *getattr(getattr(parser, "_subcommands_action", None), "choices", {}).values()]
        exits = [p.exit_on_error for p in parsers]
        for p in parsers:
            p.exit_on_error = False
        try:
            super().parse_arguments(parser, args)
        except argparse.ArgumentError as exc:
            for p, e in zip(parsers, exits):
                p.exit_on_error = e
            parser.error(f"{', '.join(paths)}: {exc}" if paths else str(exc))
        finally:
            for p, e in zip(parsers, exits):
                p.exit_on_error = e

    def instantiate_classes(self) -> None:
        # num_class is written once, in the prepared data: the network's output size is set
        # from meta.json by the task's rule before the classes are built, so the run's
        # config.yaml records it (graphfuse.tasks.base.resolve_output_size).
        resolve_network_output_size(self.config[self.subcommand] if self.subcommand else self.config)
        super().instantiate_classes()

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
        _pin_weights_only(cfg)
        if ckpt_path is not None and is_remote(ckpt_path):
            local_checkpoint_path(ckpt_path)  # raises: a URL is refused before anything is fetched
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
            if ckpt_path == "last" and (self.run_dir / "checkpoints" / "last.ckpt").is_file():
                load_checkpoint(self.run_dir / "checkpoints" / "last.ckpt")  # a broken file: one clear error now
            elif ckpt_path not in (None, "last"):
                load_checkpoint(ckpt_path)
        else:
            from .runs import resolve_run_dir

            ck = Path(ckpt_path) if ckpt_path not in (None, "last", "best") else None
            if ck is not None:
                load_checkpoint(ck)  # refuses before any data is prepared
            if ck is not None and ck.parent.name == "checkpoints" and (ck.parent.parent / "config.yaml").is_file():
                self.run_dir = ck.parent.parent  # evaluate inside the checkpoint's own run
            else:
                self.run_dir = resolve_run_dir(cfg.run.root, cfg.run.name, cfg.run.version, resume=False)
        from .runs import lock_run_dir

        lock_run_dir(self.run_dir)  # one writer per run directory (DDP rank 0), held until exit

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
        # The task names its selection metric (e.g. val/balanced_acc for crossing intention).
        monitor = task_monitor(self.model)
        # Two checkpoints: the best epoch on the selection split, and the end of every epoch
        # (saved at train-epoch end, after RunArtifacts has recorded the epoch's metrics, so
        # a resumed run has them). Lightning's `save_last` only writes when a best is saved.
        callbacks.append(
            ModelCheckpoint(
                dirpath=ckpt_dir, filename="best", monitor=monitor, mode="max", save_top_k=1,
                auto_insert_metric_name=False, enable_version_counter=False,
            )
        )
        callbacks.append(
            ModelCheckpoint(
                dirpath=ckpt_dir, filename="last", monitor=None, save_top_k=1, save_on_train_epoch_end=True,
                enable_version_counter=False,
            )
        )
        callbacks.append(RunArtifacts(run_dir, protocol=cfg.protocol, monitor=monitor))
        kwargs["plugins"] = _safe_plugins(self._get(self.config_init, "trainer", default={}).get("plugins"))
        # Save the resolved config for a new run only; a resumed or re-evaluated run keeps its own.
        if (run_dir / "config.yaml").exists():
            self.save_config_callback = None  # type: ignore[assignment]
        else:
            self.save_config_callback = SaveConfigCallback
        return super().instantiate_trainer(logger=logger, callbacks=callbacks, **kwargs)

    def _run_subcommand(self, subcommand: str) -> None:
        # The last line of defence: whatever the config did to the trainer, every checkpoint it
        # reads goes through graphfuse.checkpoints (weights_only=True, local files only).
        if not isinstance(self.trainer.strategy.checkpoint_io, SafeCheckpointIO):
            raise CheckpointError(
                f"the trainer's checkpoint IO is {type(self.trainer.strategy.checkpoint_io).__name__}; graphfuse "
                "runs only with its own (graphfuse.checkpoints.SafeCheckpointIO), which never unpickles code"
            )
        super()._run_subcommand(subcommand)

    def _prepare_subcommand_kwargs(self, subcommand: str) -> dict[str, Any]:
        kwargs = super()._prepare_subcommand_kwargs(subcommand)
        if "weights_only" in kwargs:
            kwargs["weights_only"] = True
        return kwargs

    def after_fit(self) -> None:
        cfg = self.config["fit"]
        trainer = self.trainer
        if trainer.interrupted or not cfg.run.test_after_fit or trainer.fast_dev_run:
            return
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        trainer.test(self.model, datamodule=self.datamodule, ckpt_path=best or None, verbose=False)
        if trainer.is_global_zero:
            _print_summary(self.run_dir, cfg.protocol)


def resolve_network_output_size(cfg: Any, generate: bool = True) -> int | None:
    """Set ``model.init_args.model.init_args.num_class`` of a parsed config from the data by
    the task's rule (:func:`graphfuse.tasks.base.resolve_output_size`; the config keeps a
    value the data accepts, an unset one is derived, a contradicting one is an error).

    The data is the config's datamodule's ``meta.json``: with ``generate`` (``fit``, ``test``,
    ...) read through the datamodule, which generates synthetic data there on first use as it
    would anyway; without (``graphfuse info``) only an existing ``meta.json`` is read, or, for
    a synthetic datamodule, the summary of the data it would generate (``synthetic_meta()``).
    No prepared data: the network's own value stays.
    """
    from .tasks.base import resolve_output_size

    return resolve_output_size(cfg, lambda: _prepared_meta(cfg, generate))


def _prepared_meta(cfg: Any, generate: bool) -> dict[str, Any] | None:
    """``meta.json`` of the config's datamodule, or None when there is no prepared data."""
    import importlib

    data = cfg.get("data") if hasattr(cfg, "get") else None
    class_path = getattr(data, "class_path", None) if data is not None else None
    if not isinstance(class_path, str):
        return None
    init = getattr(data, "init_args", None)
    try:
        module, _, name = class_path.rpartition(".")
        cls = getattr(importlib.import_module(module), name)
        dm = cls(**(dict(vars(init)) if init is not None else {}))
    except Exception:  # noqa: BLE001 - a datamodule that cannot be built here fails later with its own error
        return None
    if generate:
        try:
            return dm.meta
        except FileNotFoundError:
            return None
    meta_path = getattr(dm, "meta_path", None)
    if meta_path is not None and Path(meta_path).is_file():
        try:
            return dm.meta
        except (OSError, ValueError):
            return None
    if getattr(dm, "synthetic", False) and callable(getattr(dm, "synthetic_meta", None)):
        return dm.synthetic_meta()
    return None


def _pin_weights_only(cfg: Any) -> None:
    """LightningCLI exposes Lightning's ``--weights_only``; graphfuse pins it to true."""
    if "weights_only" not in cfg:
        return
    if cfg.weights_only is False:
        raise CheckpointError(
            "--weights_only false is not supported: graphfuse loads every checkpoint with weights_only=True, "
            "so that a checkpoint can never run code"
        )
    cfg.weights_only = True


def _safe_plugins(plugins: Any) -> list[Any]:
    """The trainer's plugins plus :class:`SafeCheckpointIO`; a checkpoint IO of the config's own is
    refused (it could load checkpoints with pickle)."""
    from lightning.fabric.plugins import CheckpointIO

    if plugins is None:
        plugins = []
    elif not isinstance(plugins, (list, tuple)):
        plugins = [plugins]
    for p in plugins:
        if isinstance(p, CheckpointIO) and not isinstance(p, SafeCheckpointIO):
            raise CheckpointError(
                f"trainer.plugins: {type(p).__name__} replaces graphfuse's checkpoint IO, which is the one that "
                "never unpickles code; remove it"
            )
    return [p for p in plugins if not isinstance(p, SafeCheckpointIO)] + [SafeCheckpointIO()]


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


def import_components() -> None:
    """Import every model, task and datamodule so short class names resolve in configs: the
    shared ``models`` and ``tasks`` packages, then each registered family's ``components``."""
    import importlib

    from . import models, tasks  # noqa: F401
    from .families import families

    for family in families():
        for module in family.components:
            importlib.import_module(module)
