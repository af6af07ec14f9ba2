"""The training engine: graphfuse's LightningCLI (run directories, protocol, fit-then-test).

:mod:`graphfuse.cli` dispatches ``fit|validate|test|predict`` here; tools that need the same
configuration parser (``graphfuse info``, the ablation runner) import it from here.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import ModelSummary, TQDMProgressBar
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


class _DropPackageTips(logging.Filter):
    """Drops Lightning's tips advertising other packages (``💡 Tip: ... litlogger`` /
    ``litmodels``), which Lightning 2.6 prints at every ``fit`` with no switch to turn them off.
    Every other record of the logger passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is not ours to judge
            return True
        return not (msg.startswith("💡 Tip:") and ("litlogger" in msg or "litmodels" in msg))


def install_tip_filter() -> None:
    """Attach :class:`_DropPackageTips` to the loggers Lightning's ``rank_zero_info`` writes to
    (idempotent)."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        log = logging.getLogger(name)
        if not any(isinstance(f, _DropPackageTips) for f in log.filters):
            log.addFilter(_DropPackageTips())


#: Third-party warnings that tell a graphfuse user nothing they can act on (the package's own
#: code, not the user's, would have to change), silenced for ``fit|validate|test|predict``.
QUIET_WARNINGS: tuple[tuple[str, type[Warning]], ...] = (
    # Lightning 2.6's pytree helper on PyTorch >= 2.10.
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning),
)


def quiet_third_party_warnings() -> None:
    """Ignore :data:`QUIET_WARNINGS` in this process."""
    for message, category in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


class GraphfuseProgressBar(TQDMProgressBar):
    """Lightning's TQDM progress bar without ``v_num`` (the logger's version, e.g. ``on_0``
    for ``version_0``: the run directory already names the run). Metrics are unchanged."""

    def get_metrics(self, trainer: Any, pl_module: Any) -> dict[str, Any]:
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        return items


class GraphfuseModelSummary(ModelSummary):
    """The model summary as one line: the network's class, its parameters and its FLOPs per
    sample on the family's example input (the same count as ``graphfuse info``), instead of a
    table whose other rows are the task's parameter-free loss and metric modules."""

    @staticmethod
    def summarize(
        summary_data: list[tuple[str, list[str]]],
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: dict[str, int],
        total_flops: int,
        **summarize_kwargs: Any,
    ) -> None:
        from lightning.pytorch.utilities import rank_zero_info
        from lightning.pytorch.utilities.model_summary.model_summary import get_human_readable_count

        columns = dict(summary_data)
        names = columns.get("Name", [])
        row = names.index("model") if "model" in names else None
        network = columns["Type"][row] if row is not None and "Type" in columns else "model"
        frozen = total_parameters - trainable_parameters
        line = (f"Network {network}: {get_human_readable_count(int(trainable_parameters))} trainable parameters"
                f"{f' ({get_human_readable_count(int(frozen))} frozen)' if frozen else ''}, {model_size:.1f} MB")
        if total_flops:
            shape = columns.get("In sizes", [None] * (row + 1))[row] if row is not None else None
            line += f"; {get_human_readable_count(int(total_flops))} FLOPs per sample"
            if shape and shape != "?":
                line += f" (input {shape})"
        rank_zero_info(line)


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
        test_after_fit: after ``fit``, test the selected checkpoint (``best.ckpt``).
        select: which checkpoint ``best.ckpt`` is: ``best`` (default), the epoch with the
            highest validation metric (the task's ``monitor``); ``last``, the last state
            trained, for recipes that select nothing (no validation split). Stated in
            ``summary.json``, the printed summary and ``scores.npz``.
        every_n_steps: also save ``last.ckpt`` every this many optimiser steps (iteration-based
            recipes with ``trainer.max_steps``; a run resumed from such a checkpoint continues
            mid-epoch with the batches an uninterrupted run would see). Default: end of every
            epoch only.
        loggers: the loggers, a list or comma-separated: ``tensorboard`` (default; events in
            the run directory), ``csv`` (Lightning's ``CSVLogger``: every logged value per step
            in ``<run>/csv/metrics.csv``), ``mlflow`` (``<run>/mlruns``, or
            ``MLFLOW_TRACKING_URI``) and ``wandb`` (need their packages). The run's own
            ``metrics.csv``, ``summary.json``, ... are written whatever the loggers.
    """

    name: str | None = None
    root: str = "runs"
    version: str | None = None
    test_after_fit: bool = True
    select: str = "best"
    every_n_steps: int | None = None
    loggers: str | list[str] = "tensorboard"


#: Loggers ``--run.loggers`` accepts, with the package each needs.
LOGGERS = {"tensorboard": "tensorboard", "csv": None, "mlflow": "mlflow", "wandb": "wandb"}


def parse_loggers(value: str | Sequence[str] | None) -> list[str]:
    """``--run.loggers`` as a list of distinct names (``"tensorboard,csv"`` or a list);
    an unknown name or a missing package is a ``ValueError`` naming the option."""
    import importlib.util

    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    names: list[str] = []
    for item in items:
        name = str(item).strip().lower()
        if not name or name in ("none", "null"):
            continue
        if name not in LOGGERS:
            raise ValueError(f"--run.loggers: unknown logger {item!r}; choose from {', '.join(LOGGERS)}")
        package = LOGGERS[name]
        if package is not None and importlib.util.find_spec(package) is None:
            raise ValueError(
                f"--run.loggers {name}: the {package!r} package is not installed (pip install {package}), "
                "or leave it out of --run.loggers"
            )
        if name not in names:
            names.append(name)
    return names


def build_loggers(names: Sequence[str], run_dir: Path) -> list[Any]:
    """Lightning loggers writing into ``run_dir`` (see :class:`RunOptions`)."""
    import os

    out: list[Any] = []
    for name in names:
        if name == "tensorboard":
            from lightning.pytorch.loggers import TensorBoardLogger

            # name="" makes the logger's log_dir exactly save_dir/version = run_dir.
            out.append(TensorBoardLogger(save_dir=str(run_dir.parent), name="", version=run_dir.name,
                                         default_hp_metric=False))
        elif name == "csv":
            from lightning.pytorch.loggers import CSVLogger

            # <run>/csv/metrics.csv: the run's own metrics.csv (one row per epoch) stays as it is.
            out.append(CSVLogger(save_dir=str(run_dir), name="", version="csv"))
        elif name == "mlflow":
            from lightning.pytorch.loggers import MLFlowLogger

            uri = os.environ.get("MLFLOW_TRACKING_URI") or (run_dir / "mlruns").resolve().as_uri()
            out.append(MLFlowLogger(experiment_name=run_dir.parent.name or "graphfuse", run_name=run_dir.name,
                                    tracking_uri=uri))
        elif name == "wandb":
            from lightning.pytorch.loggers import WandbLogger

            out.append(WandbLogger(name=f"{run_dir.parent.name}/{run_dir.name}", save_dir=str(run_dir),
                                   project="graphfuse"))
    return out


class RunConfigCallback(SaveConfigCallback):
    """Saves the resolved config as ``<run_dir>/config.yaml`` whatever the first logger is
    (Lightning's writes into the first logger's directory)."""

    def __init__(self, parser: Any, config: Any, run_dir: str | Path, **kwargs: Any) -> None:
        kwargs["save_to_log_dir"] = False
        super().__init__(parser, config, **kwargs)
        self.run_dir = Path(run_dir)

    def save_config(self, trainer: Any, pl_module: Any, stage: str) -> None:
        path = self.run_dir / "config.yaml"
        if path.exists():
            raise RuntimeError(f"{path} exists; a run's config is never overwritten")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # jsonargparse 4.49 renamed skip_none to skip_unset (same meaning); older versions only know skip_none.
        keep = "skip_unset" if "skip_unset" in inspect.signature(self.parser.save).parameters else "skip_none"
        self.parser.save(self.config, str(path), overwrite=False, multifile=self.multifile, **{keep: False})


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


def _restore_config_paths(config: Any, replaced: list[str | None]) -> None:
    """Put the user's config paths back into a parsed namespace's ``config`` list where
    :func:`graphfuse.config_files.with_resolved_configs` passed resolved text (jsonargparse
    records ``None`` for a config given as text). ``replaced`` has one entry per config
    option of the command line; the list is left alone unless it has as many."""
    from jsonargparse import Path as ArgPath

    for ns in [config, *[config.get(k) for k in ("fit", "validate", "test", "predict")]]:
        entries = ns.get("config") if ns is not None and hasattr(ns, "get") else None
        if isinstance(entries, list) and len(entries) == len(replaced):
            for i, original in enumerate(replaced):
                if original is not None and entries[i] is None:
                    entries[i] = ArgPath(original, mode="fr")


_SUBCOMMANDS = ("fit", "validate", "test", "predict")


def _fail(parser: Any, subcommand: str | None, message: str) -> None:
    """A mistake in the user's command line or config: one line on stderr, exit code 2 (no
    usage text: ``graphfuse <subcommand> --help`` lists the options). A parser built not to
    exit (``exit_on_error=False``: the ablation runner validating specs) gets the
    ``argparse.ArgumentError`` instead."""
    import sys

    if not getattr(parser, "exit_on_error", True):
        raise argparse.ArgumentError(None, message)
    print(f"graphfuse {subcommand or ''}: error: {message}".replace("graphfuse :", "graphfuse:"), file=sys.stderr)
    raise SystemExit(2)


def _option_keys(parser: Any) -> list[str]:
    """The dotted keys a (sub)command parser accepts (``trainer.max_epochs``, ``model``, ...)."""
    return [s.lstrip("-") for s in getattr(parser, "_option_string_actions", {}) if s.startswith("--")]


class GraphfuseCLI(LightningCLI):
    """LightningCLI with graphfuse's run directory, protocol switch and fit-then-test."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("subclass_mode_model", True)
        kwargs.setdefault("subclass_mode_data", True)
        kwargs.setdefault("seed_everything_default", 0)
        kwargs.setdefault("auto_configure_optimizers", False)
        # "An unknown key is an error" (docs/training.md): no prefix of a key is accepted for it.
        kwargs.setdefault("parser_kwargs", {"allow_abbrev": False})
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

        from .config_files import (
            config_file_problem,
            config_paths,
            missing_config_files,
            with_resolved_configs,
        )
        from .parse_errors import condense

        argv = sys.argv[1:] if args is None else args
        argv_list = [str(a) for a in argv] if isinstance(argv, (list, tuple)) else []
        sub = next((a for a in argv_list if a in _SUBCOMMANDS), None)
        missing = missing_config_files(argv_list)
        if missing:
            _fail(parser, sub, f"config file not found: {missing[0]}")
        paths = config_paths(argv_list)
        for path in paths:  # a loop over the few configs (each with its _base_ chain)
            problem = config_file_problem(path)
            if problem:
                _fail(parser, sub, problem)
        # A base-plus-delta config (top-level `_base_`) reaches jsonargparse resolved, as YAML
        # text in place of its path; the user's path is put back into `config` after parsing,
        # so the default run name is that of the file the user named (runs/<its path>/...).
        replaced: list[str | None] = []
        if paths:
            resolved_argv, replaced = with_resolved_configs(list(argv))
            if any(replaced):
                args = resolved_argv
        # jsonargparse's own errors (an unknown key, a wrong type) name the key, not the file:
        # raise them here and report them again with the config files in front.
        parsers = [parser, *getattr(getattr(parser, "_subcommands_action", None), "choices", {}).values()]
        exits = [p.exit_on_error for p in parsers]
        for p in parsers:
            p.exit_on_error = False
        try:
            with warnings.catch_warnings():
                # We pass the command line with its `_base_` configs resolved (above): Lightning's
                # warning about giving both args and sys.argv does not apply.
                warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
                super().parse_arguments(parser, args)
        except argparse.ArgumentError as exc:
            for p, e in zip(parsers, exits):
                p.exit_on_error = e
            # One line naming the key and the closest valid one (graphfuse.parse_errors).
            subparser = getattr(getattr(parser, "_subcommands_action", None), "choices", {}).get(sub, parser)
            message = condense(str(exc), _option_keys(subparser))
            _fail(parser, sub, f"{', '.join(paths)}: {message}" if paths else message)
        finally:
            for p, e in zip(parsers, exits):
                p.exit_on_error = e
        if any(replaced):
            _restore_config_paths(self.config, replaced)

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
        from .runs import selection_text

        selection_text(cfg.run.select, "")  # an unknown --run.select: one error before any data is read
        if cfg.run.every_n_steps is not None and cfg.run.every_n_steps < 1:
            raise ValueError(f"--run.every_n_steps must be >= 1, got {cfg.run.every_n_steps}")
        self.logger_names = parse_loggers(cfg.run.loggers)  # a missing package: one error now
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

        from .runs import LastStateCheckpoint, MidEpochResume, RunArtifacts, SelectedLastCheckpoint

        cfg = self.config[self.subcommand]
        run_dir = self.run_dir
        loggers = build_loggers(getattr(self, "logger_names", None) or parse_loggers(cfg.run.loggers), run_dir)
        callbacks = list(self._get(self.config_init, "trainer", default={}).get("callbacks") or [])
        ckpt_dir = run_dir / "checkpoints"
        # The task names its selection metric (e.g. val/balanced_acc for crossing intention).
        monitor = task_monitor(self.model)
        select = cfg.run.select
        steps = cfg.run.every_n_steps
        # Two checkpoints: the selected state (best epoch on the selection split, or with
        # select=last the last state), and the end of every epoch (saved at train-epoch end,
        # after RunArtifacts has recorded the epoch's metrics, so a resumed run has them;
        # with every_n_steps also every that many steps). Lightning's `save_last` only writes
        # when a best is saved. The default callbacks are exactly those of earlier versions, so
        # their state in old checkpoints is restored on resume.
        if select == "last":
            callbacks.append(
                SelectedLastCheckpoint(
                    dirpath=ckpt_dir, filename="best", monitor=None, save_top_k=1, save_on_train_epoch_end=True,
                    enable_version_counter=False, every_n_train_steps=steps,
                )
            )
        else:
            callbacks.append(
                ModelCheckpoint(
                    dirpath=ckpt_dir, filename="best", monitor=monitor, mode="max", save_top_k=1,
                    auto_insert_metric_name=False, enable_version_counter=False,
                )
            )
        last_cls = ModelCheckpoint if steps is None else LastStateCheckpoint
        callbacks.append(
            last_cls(
                dirpath=ckpt_dir, filename="last", monitor=None, save_top_k=1, save_on_train_epoch_end=True,
                enable_version_counter=False, **({} if steps is None else {"every_n_train_steps": steps}),
            )
        )
        callbacks.append(RunArtifacts(run_dir, protocol=cfg.protocol, monitor=monitor, select=select))
        callbacks.append(MidEpochResume())
        # The progress bar without v_num, unless the config brings its own or turns it off.
        from lightning.pytorch.callbacks import ProgressBar

        trainer_cfg = self._get(self.config_init, "trainer", default={})
        if trainer_cfg.get("enable_progress_bar") is not False and not any(
            isinstance(c, ProgressBar) for c in callbacks
        ):
            callbacks.append(GraphfuseProgressBar())
        # The one-line model summary, unless the config brings its own or turns it off.
        if trainer_cfg.get("enable_model_summary") is not False and not any(
            isinstance(c, ModelSummary) for c in callbacks
        ):
            callbacks.append(GraphfuseModelSummary())
            kwargs["enable_model_summary"] = False  # ours is there: no note that Lightning skips its own
        install_tip_filter()
        quiet_third_party_warnings()
        kwargs["plugins"] = _safe_plugins(self._get(self.config_init, "trainer", default={}).get("plugins"))
        # Save the resolved config for a new run only; a resumed or re-evaluated run keeps its own.
        if (run_dir / "config.yaml").exists():
            self.save_config_callback = None  # type: ignore[assignment]
        else:
            self.save_config_callback = functools.partial(RunConfigCallback, run_dir=run_dir)  # type: ignore[assignment]
        # Every checkpoint's graphfuse block records the config this process runs.
        if hasattr(self.model, "run_config"):
            try:
                self.model.run_config = self._parser(self.subcommand).dump(cfg, skip_none=False)
            except Exception:  # noqa: BLE001 - a config jsonargparse cannot dump: the block records none
                self.model.run_config = None
        return super().instantiate_trainer(logger=loggers or False, callbacks=callbacks, **kwargs)

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

    def before_fit(self) -> None:
        _attach_example_input(self.model, self.config["fit"])

    def after_fit(self) -> None:
        cfg = self.config["fit"]
        trainer = self.trainer
        if trainer.interrupted or not cfg.run.test_after_fit or trainer.fast_dev_run:
            return
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        trainer.test(self.model, datamodule=self.datamodule, ckpt_path=best or None, verbose=False)
        if trainer.is_global_zero:
            _print_summary(self.run_dir, cfg.protocol, cfg.run.select)


def _attach_example_input(task: Any, cfg: Any) -> None:
    """Give the task the network's one-sample example input (built by its family, as for
    ``graphfuse info``) as ``example_input_array``, so that Lightning's model summary counts the
    FLOPs per sample instead of printing 0. Nothing is attached where the family cannot build it
    (the column then stays 0, as before)."""
    from .families import example_input_of

    net = getattr(task, "model", None)
    if net is None or getattr(task, "example_input_array", None) is not None:
        return
    try:
        inputs = example_input_of(net, cfg)
    except (ValueError, OSError, KeyError, TypeError):
        return
    if inputs:
        task.example_input_array = inputs


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


def _print_summary(run_dir: Path, protocol: str, select: str = "best") -> None:
    import json

    from .runs import PROTOCOLS, tie_text

    summary = json.loads((run_dir / "summary.json").read_text())
    test = summary.get("test", {}).get("metrics", {})
    best_epoch = summary.get("best_epoch")
    sel = "the TEST split (official protocol)" if protocol == "official" else "validation"
    print()
    if select == "last":
        print(f"Test metrics at epoch {best_epoch} (the last state trained; no model selection):")
    else:
        # Ties on the selection split are said: the first best epoch is kept (ModelCheckpoint).
        epoch = tie_text(best_epoch, summary.get("tied_epochs"))
        print(f"Test metrics at epoch {epoch} (selected on {sel}):")
    for k in sorted(test):
        print(f"  {k:18s} {test[k]:.4f}")
    if protocol == "official":
        print(f"  NOTE: {PROTOCOLS['official']}")
    print(f"Run directory: {run_dir}")
    print(f"  curves:      {run_dir / 'curves.png'}")
    print(f"  summary:     {run_dir / 'summary.json'}")
    if (run_dir / "scores.npz").is_file():  # classification tasks; retrieval (gait) writes none
        print(f"  scores:      {run_dir / 'scores.npz'}")
    for label, name in (("confusion:", "confusion_test.png"), ("rank-1 maps:", "rank1_heatmaps.png")):
        if (run_dir / name).is_file():
            print(f"  {label:12s} {run_dir / name}")
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
