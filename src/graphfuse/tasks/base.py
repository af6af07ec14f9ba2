"""The base LightningModule of every graphfuse task.

A task is a network plus a loss, metrics and a selection metric. Everything else a task
does is the same for every family and lives here:

* **Dict batches.** Every dataset yields, and every datamodule collates, a dict::

      {<input name>: Tensor (N, ...), ..., "target": (N,) int64, "id": (N,) int64}

  (a multi-label task's ``target`` is ``(N, K)``: one row per sample).

  The named inputs are what the network takes, by keyword: a network declares them in
  ``input_names`` (``ShiftGCN.input_names == ("x",)``, ``x: (N, C, T, V, M)``;
  ``PedGraph.input_names``: ``("pose", "velocity", "image")``, the ones it was built to
  use). A network without ``input_names`` gets the task's
  :meth:`GraphfuseTask.default_input_names`. Further batch entries are ignored, so a
  multi-input model (pose + velocity + image, joint + bone streams, RGB + flow) needs no
  special case. ``target`` holds the labels the loss is computed on; ``id`` the position of
  each sample in its split (the datamodule's ``split_names(stage)`` maps it to the sample
  name), a tensor so that it gathers across DDP ranks.
* **Stage metrics** as torchmetrics collections built by the subclass
  (:meth:`GraphfuseTask.build_metrics`), logged per epoch as ``<stage>/<name>``, plus the
  mean loss ``<stage>/loss`` and ``train/loss_step``.
* **Finite checks**: the inputs of every training batch, the logits of every batch and the
  training loss; errors name the samples (``FloatingPointError``).
* **Per-sample test scores** gathered over DDP ranks and de-duplicated by ``id``
  (``DistributedSampler`` pads a rank's shard with repeated samples), stored in
  :attr:`GraphfuseTask.test_results` for :class:`graphfuse.runs.RunArtifacts`, which writes
  ``scores.npz``.
* **Recipe hooks**: :func:`network_param_groups` asks the network for its optimiser
  parameter groups (``param_groups(weight_decay)``, e.g. Shift-GCN's official weight-decay
  rule) and gives a network without the hook one plain group.
* **Output size** (``num_class`` written once): :meth:`GraphfuseTask.output_size` is each
  task's rule from the prepared data's ``meta.json`` (and the data / task options) to the
  network's number of outputs; :func:`resolve_output_size` applies it to a parsed config
  before the classes are instantiated (``graphfuse fit|test|...`` and ``graphfuse info``).
* the learning rate logged as ``lr`` once per training epoch.
* **Leaving the process group**: every process that runs a DDP stage destroys its default
  ``torch.distributed`` process group before its interpreter exits
  (:func:`leave_process_group_at_exit`, registered from :meth:`GraphfuseTask.configure_model`).
* **Checkpoints** carry the versioned ``graphfuse`` block (:meth:`GraphfuseTask.on_save_checkpoint`;
  :mod:`graphfuse.checkpoints`): format version, the run's resolved config, the data options
  the model needs at inference, class names; a loaded checkpoint's block is validated (and
  migrated for a checkpoint written before the block existed).
"""

from __future__ import annotations

import atexit
import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import lightning as L
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torchmetrics import MeanMetric, MetricCollection

from ..cpu_defaults import emulated_bf16_warning

__all__ = [
    "ID",
    "NON_INPUTS",
    "STAGES",
    "TARGET",
    "GraphfuseTask",
    "leave_process_group_at_exit",
    "network_param_groups",
    "plain_param_groups",
    "resolve_output_size",
    "unique_by_id",
]

#: Stages with metrics, in order.
STAGES = ("train", "val", "test")
#: The batch keys every dataset provides besides the named model inputs.
TARGET, ID = "target", "id"
#: Keys of a batch that are never model inputs.
NON_INPUTS = frozenset({TARGET, ID})


# ------------------------------------------------------------------------------------------
# recipe hooks
# ------------------------------------------------------------------------------------------
def plain_param_groups(module: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """One group of every trainable parameter of ``module`` with ``weight_decay``; the group
    also lists the parameter ``names``."""
    named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    return [{"params": [p for _, p in named], "names": [n for n, _ in named], "weight_decay": weight_decay}]


def network_param_groups(network: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """The optimiser parameter groups of ``network``: its own ``param_groups(weight_decay)``
    when it has that hook (the model owns its recipe, e.g. :meth:`graphfuse.models.ShiftGCN.param_groups`),
    else :func:`plain_param_groups`. Every group has ``params``, ``weight_decay`` and ``names``.

    Raises:
        ValueError: the hook returned groups that miss or repeat a trainable parameter.
    """
    hook = getattr(network, "param_groups", None)
    if not callable(hook):
        return plain_param_groups(network, weight_decay)
    groups = [dict(g) for g in hook(weight_decay)]
    trainable = {id(p) for p in network.parameters() if p.requires_grad}
    seen = [id(p) for g in groups for p in g["params"]]
    if len(seen) != len(set(seen)) or set(seen) != trainable:
        raise ValueError(
            f"{type(network).__name__}.param_groups() must list every trainable parameter exactly once "
            f"({len(trainable)} trainable, {len(seen)} listed, {len(set(seen))} distinct)"
        )
    for g in groups:
        g.setdefault("weight_decay", weight_decay)
    return groups


# ------------------------------------------------------------------------------------------
# DDP
# ------------------------------------------------------------------------------------------
def unique_by_id(ids: Tensor, *tensors: Tensor) -> tuple[Tensor, ...]:
    """Sort ``ids (N,)`` and the rows of ``tensors (N, ...)`` by id and keep one row per id
    (the first, in a stable order), as needed after gathering the shards of a
    ``DistributedSampler``, which pads them with repeated samples.

    Returns:
        ``(ids', *tensors')`` with ``ids'`` strictly increasing.
    """
    order = torch.argsort(ids, stable=True)
    ids = ids[order]
    keep = torch.ones_like(ids, dtype=torch.bool)
    keep[1:] = ids[1:] != ids[:-1]
    return (ids[keep], *(t[order][keep] for t in tensors))


def _destroy_process_group() -> None:
    """Destroy the default process group if this process still has one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def leave_process_group_at_exit() -> bool:
    """Make this process destroy its default ``torch.distributed`` process group when its
    interpreter exits (an ``atexit`` handler, registered at most once per process; re-calling
    moves it to run first). Returns whether the process has a group (else nothing is registered).

    Why: a process that reaches interpreter shutdown with a gloo group alive can abort. A
    ``ProcessGroupGloo`` worker thread releasing the last reference to a finished collective's
    tensors needs the GIL; once ``Py_FinalizeEx`` has begun, taking it makes the thread
    ``pthread_exit``, whose forced unwind through the work's C++ destructor calls
    ``std::terminate`` ("terminate called without an active exception", SIGABRT; core dump
    backtrace: ``PyThread_exit_thread <- take_gil <- ... <- AsyncAllreduceWork::~AsyncAllreduceWork
    <- ProcessGroupGloo::runLoop``). Lightning 2.6 destroys the group at exit only for NCCL
    (``lightning.fabric.utilities.distributed._init_dist_connection``), and its ``ddp_spawn``
    workers return from ``fit`` / ``test`` with the group alive, then leave through
    ``sys.exit``: in a 2-rank gloo reproduction a rank aborted in 6 of 25 runs, in none of 24
    once the group was destroyed first. ``atexit`` handlers run before finalisation begins, and
    destroying the group joins gloo's threads. At exit rather than in ``teardown``, so a
    process that runs several stages on one group (``strategy=ddp``: ``fit`` then ``test``)
    keeps it until it is done.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return False
    atexit.unregister(_destroy_process_group)
    atexit.register(_destroy_process_group)
    return True


# ------------------------------------------------------------------------------------------
# the base task
# ------------------------------------------------------------------------------------------
class GraphfuseTask(L.LightningModule):
    """Base of every task: see the module docstring for what it does.

    A subclass calls ``super().__init__(model)``, sets up its options, then calls
    :meth:`init_metrics`; it implements :meth:`build_metrics`, :meth:`compute_loss`,
    :meth:`metric_inputs` and :meth:`test_record` (and :meth:`empty_test_record`), and may
    override :meth:`check_logits`, :meth:`default_input_names`, :meth:`missing_input` and
    :meth:`output_size`. It keeps its own ``configure_optimizers`` (its recipe), taking the
    parameter groups from :meth:`param_groups`.

    Args:
        model: the network, called as ``model(**{name: batch[name] for name in input_names})``.
        compile: compile the network's forward with ``torch.compile(fullgraph=True)`` (in place,
            ``nn.Module.compile``: parameter names and checkpoints unchanged) when the trainer
            configures the model; a subclass exposes it as its ``compile`` option (the config's
            ``model.init_args.compile``). Off by default: see ``docs/training.md``.

    Attributes:
        test_results: after a test epoch, the per-sample records of :meth:`test_record`
            gathered over ranks and de-duplicated, sorted by ``index`` (the batch's ``id``),
            plus ``confusion`` when the task has a ``test_confusion`` metric.
    """

    #: Model-selection metric (maximised) read by the engine; None = the engine's default.
    monitor: ClassVar[str | None] = None  # type: ignore[misc]
    #: Whether :meth:`output_size` reads the prepared data's ``meta.json`` (else it is not read).
    output_size_needs_meta: ClassVar[bool] = True

    def __init__(self, model: nn.Module, compile: bool = False) -> None:
        super().__init__()
        self.model = model
        #: Whether :meth:`configure_model` compiles the network (the ``compile`` option).
        self.compile_network = bool(compile)
        self._test_records: list[dict[str, Tensor]] = []
        self.test_results: dict[str, Tensor] | None = None
        #: The run's resolved config as YAML text (set by :mod:`graphfuse.engine`), recorded in
        #: every checkpoint's ``graphfuse`` block; None outside a ``graphfuse`` run.
        self.run_config: str | None = None
        #: The ``graphfuse`` block of the checkpoint last loaded (migrated for an old one).
        self.loaded_block: dict[str, Any] | None = None
        self._bf16_checked = False  # the emulated-bfloat16 warning is given once per task

    # -- output size (num_class written once) ----------------------------------------------
    @classmethod
    def output_size(
        cls, meta: Mapping[str, Any] | None, data: Mapping[str, Any] | None = None, **options: Any
    ) -> int | None:
        """The number of network outputs for data described by ``meta`` (the prepared
        ``meta.json``, None when there is none) and ``data`` (the datamodule's options),
        given the task's ``options``; None when it cannot be known (the network's own value
        is then kept). The default rule: ``meta.json``'s ``num_class`` (multi-label: the labels;
        gait: the training identities); subclasses with another rule override it."""
        if meta is not None and meta.get("num_class") is not None:
            return int(meta["num_class"])
        return None

    @classmethod
    def network_options(
        cls, meta: Mapping[str, Any] | None, data: Mapping[str, Any] | None = None, **options: Any
    ) -> dict[str, Any]:
        """Further network constructor arguments derived from the data (e.g. the class names
        and supercategories a multi-label network groups its classes by), filled into a
        config by :func:`resolve_output_size` where the network has the argument and the
        config leaves it at its default. Default: none."""
        return {}

    @classmethod
    def accepted_output_sizes(
        cls, meta: Mapping[str, Any] | None, data: Mapping[str, Any] | None = None, **options: Any
    ) -> tuple[int, ...]:
        """Every output size the task can train with on this data (default: only
        :meth:`output_size`); empty when unknown."""
        k = cls.output_size(meta, data, **options)
        return () if k is None else (k,)

    # -- inputs ------------------------------------------------------------------------------
    def default_input_names(self) -> tuple[str, ...]:
        """Input names of a network that declares no ``input_names``."""
        return ()

    @property
    def input_names(self) -> tuple[str, ...]:
        """The batch entries passed to the network, by keyword."""
        names = getattr(self.model, "input_names", None)
        return tuple(names) if names else tuple(self.default_input_names())

    def missing_input(self, name: str, batch: Mapping[str, Any]) -> Exception:
        """The error for a batch without the network's input ``name``."""
        return KeyError(
            f"the batch has no {name!r}, an input of {type(self.model).__name__} "
            f"(batch keys: {sorted(batch)})"
        )

    def model_inputs(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The keyword arguments of the network: ``batch[name]`` for every input name."""
        inputs: dict[str, Tensor] = {}
        for name in self.input_names:
            if name not in batch:
                raise self.missing_input(name, batch)
            inputs[name] = batch[name]
        return inputs

    def forward(self, *args: Any, **inputs: Any) -> Tensor:
        """The network's logits ``(N, K)`` for its named inputs."""
        return self.model(*args, **inputs)

    def configure_model(self) -> None:
        """Compile the network in place when the ``compile`` option is on (once; Lightning calls
        this hook for every fit / validate / test / predict).

        It is also the first of the task's hooks Lightning calls in every process once the
        strategy has set up the distributed process group (subclasses override ``setup``), so
        it registers :func:`leave_process_group_at_exit` (nothing without a group)."""
        leave_process_group_at_exit()
        self._warn_emulated_bf16()
        if self.compile_network and getattr(self.model, "_compiled_call_impl", None) is None:
            self.model.compile(fullgraph=True)

    def _warn_emulated_bf16(self) -> None:
        """Warn once per task when the trainer runs a bfloat16 precision on a CPU that
        emulates bfloat16 (:func:`graphfuse.cpu_defaults.emulated_bf16_warning`)."""
        trainer = self._trainer
        if trainer is None or self._bf16_checked:
            return
        self._bf16_checked = True
        if not isinstance(trainer.accelerator, L.pytorch.accelerators.CPUAccelerator):
            return
        message = emulated_bf16_warning(trainer.precision)
        if message is not None:
            from lightning.pytorch.utilities import rank_zero_warn

            rank_zero_warn(message)

    # -- what a subclass defines ---------------------------------------------------------------
    def build_metrics(self, stage: str) -> MetricCollection:
        """The metrics of ``stage`` (``train`` / ``val`` / ``test``), prefixed ``<stage>/``."""
        raise NotImplementedError

    def compute_loss(self, logits: Tensor, target: Tensor) -> Tensor:
        """Mean loss of ``logits (N, K)`` for ``target (N,)``."""
        raise NotImplementedError

    def metric_inputs(self, logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """``(preds, target)`` for the stage metrics (and ``test_confusion``); default the logits."""
        return logits, target

    def check_logits(self, logits: Tensor, n: int) -> None:
        """Raise when ``logits`` do not have the shape the task needs for ``n`` samples."""

    def test_record(self, logits: Tensor, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Per-sample rows (first dimension N) kept for :attr:`test_results`: at least
        ``scores`` and ``labels``."""
        raise NotImplementedError

    def empty_test_record(self) -> dict[str, Tensor]:
        """:meth:`test_record` of zero samples (a rank or a split without test samples)."""
        raise NotImplementedError

    # -- metrics ---------------------------------------------------------------------------------
    def init_metrics(self) -> None:
        """Build ``<stage>_metrics`` (:meth:`build_metrics`) and ``<stage>_loss`` (mean loss)
        for every stage."""
        for stage in STAGES:
            setattr(self, f"{stage}_metrics", self.build_metrics(stage))
            setattr(self, f"{stage}_loss", MeanMetric())

    # -- checks ----------------------------------------------------------------------------------
    def _sample_names(self, ids: Tensor, stage: str) -> str:
        """``ids`` as sample names when the datamodule maps them, else as indices."""
        idx = [int(i) for i in ids.reshape(-1).tolist()]
        dm = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        split_names = getattr(dm, "split_names", None)
        if callable(split_names):
            try:
                names = split_names(stage)
                shown = ", ".join(repr(names[i]) for i in idx[:8]) + (" ..." if len(idx) > 8 else "")
                return f"samples {shown} (sample indices {idx})"
            except Exception:  # noqa: BLE001 - naming is best effort; the indices always follow
                pass
        return f"sample indices {idx}"

    def _check_finite(self, what: str, t: Tensor, ids: Tensor, stage: str, batch_idx: int) -> None:
        if not torch.isfinite(t).all():
            rows = ~torch.isfinite(t.reshape(t.shape[0], -1)).all(dim=1) if t.ndim else None
            bad = ids[rows] if rows is not None and rows.shape == ids.shape else ids
            raise FloatingPointError(
                f"non-finite {what} in {stage} batch {batch_idx} at epoch {self.current_epoch} "
                f"({self._sample_names(bad, stage)})"
            )

    # -- steps -------------------------------------------------------------------------------------
    def _shared_step(self, batch: Mapping[str, Tensor], stage: str, batch_idx: int) -> Tensor:
        target, ids = batch[TARGET], batch[ID]
        n = int(target.shape[0]) if target.ndim else 1  # samples: (N,) labels or (N, K) multi-label rows
        inputs = self.model_inputs(batch)
        if stage == "train":
            for name, value in inputs.items():
                self._check_finite(name, value, ids, stage, batch_idx)
        logits = self(**inputs)
        self.check_logits(logits, n)
        self._check_finite("logits", logits, ids, stage, batch_idx)
        loss = self.compute_loss(logits, target)
        preds, metric_target = self.metric_inputs(logits.detach(), target)
        metrics: MetricCollection = getattr(self, f"{stage}_metrics")
        loss_metric: MeanMetric = getattr(self, f"{stage}_loss")
        metrics.update(preds, metric_target)
        loss_metric.update(loss.detach(), weight=n)
        self.log(f"{stage}/loss", loss_metric, on_step=False, on_epoch=True, prog_bar=True, batch_size=n)
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=stage != "train", batch_size=n)
        if stage == "train":
            self.log("train/loss_step", loss.detach(), on_step=True, on_epoch=False, prog_bar=False)
        if stage == "test":
            confusion = getattr(self, "test_confusion", None)
            if confusion is not None:
                confusion.update(preds, metric_target)
            record = {k: v.detach() for k, v in self.test_record(logits.detach(), batch).items()}
            self._test_records.append({"index": ids.detach(), **record})
        return loss

    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor:
        loss = self._shared_step(batch, "train", batch_idx)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"loss became {loss.item()} at epoch {self.current_epoch}, batch {batch_idx} "
                f"({self._sample_names(batch[ID], 'train')})"
            )
        return loss

    def validation_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "val", batch_idx)

    def test_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "test", batch_idx)

    def predict_step(
        self, batch: Mapping[str, Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> dict[str, Tensor]:
        """``{"index", **test_record}`` of the batch (``scores``, ``labels``, ...)."""
        logits = self(**self.model_inputs(batch))
        return {"index": batch[ID], **self.test_record(logits, batch)}

    # -- test results --------------------------------------------------------------------------------
    def on_test_epoch_start(self) -> None:
        self._test_records = []
        self.test_results = None

    def on_test_epoch_end(self) -> None:
        if self._test_records:
            keys = list(self._test_records[0])
            cols = {k: torch.cat([r[k] for r in self._test_records]) for k in keys}
        else:
            cols = {"index": torch.zeros(0, dtype=torch.long), **self.empty_test_record()}
        if self.trainer.world_size > 1:
            # Every rank holds a shard (DistributedSampler pads, so some samples repeat):
            # gather, then keep one copy per sample id.
            keys = list(cols)
            gathered = [self.all_gather(cols[k]).flatten(0, 1) for k in keys]
            cols = dict(zip(keys, unique_by_id(gathered[0], *gathered[1:])))
        results = {k: v.cpu() for k, v in cols.items()}
        confusion = getattr(self, "test_confusion", None)
        if confusion is not None:
            results["confusion"] = confusion.compute().cpu()
            confusion.reset()
        self.test_results = results
        self._test_records = []

    # -- optimisation ----------------------------------------------------------------------------------
    def param_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """The network's optimiser parameter groups (:func:`network_param_groups`) without
        their ``names``, ready for a ``torch.optim`` optimiser."""
        groups = network_param_groups(self.model, weight_decay)
        return [{k: v for k, v in g.items() if k != "names"} for g in groups]

    def on_train_epoch_start(self) -> None:
        opt = self.optimizers()
        if not isinstance(opt, list):
            self.log("lr", opt.param_groups[0]["lr"], on_step=False, on_epoch=True)

    # -- checkpoints: the graphfuse block --------------------------------------------------------------
    def graphfuse_block(self) -> dict[str, Any]:
        """The ``graphfuse`` block of this task's checkpoints (:func:`graphfuse.checkpoints.graphfuse_block`):
        the run's resolved config (:attr:`run_config`, set by the engine), the datamodule's
        ``inference_options()`` (its ``class_names`` entry goes to the block's top level), the
        network's ``num_class`` and the task's and network's class paths."""
        from graphfuse.checkpoints import graphfuse_block

        dm = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        options_fn = getattr(dm, "inference_options", None)
        data: dict[str, Any] = dict(options_fn()) if callable(options_fn) else {}
        class_names = data.pop("class_names", None)
        num_class = getattr(self.model, "num_class", None)
        return graphfuse_block(
            config=getattr(self, "run_config", None),
            data=data,
            class_names=class_names,
            num_class=num_class if isinstance(num_class, int) else None,
            task=f"{type(self).__module__}.{type(self).__qualname__}",
            model=f"{type(self.model).__module__}.{type(self.model).__qualname__}",
        )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Every checkpoint carries the versioned ``graphfuse`` block (:meth:`graphfuse_block`)."""
        from graphfuse.checkpoints import BLOCK_KEY

        checkpoint[BLOCK_KEY] = self.graphfuse_block()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Validate the checkpoint's block (a newer format is refused) and keep it, migrated
        when the checkpoint predates it, as :attr:`loaded_block`."""
        from graphfuse.checkpoints import read_graphfuse_block

        self.loaded_block = read_graphfuse_block(checkpoint)


# ------------------------------------------------------------------------------------------
# num_class written once: the config before instantiation
# ------------------------------------------------------------------------------------------
def _get(ns: Any, key: str, default: Any = None) -> Any:
    if ns is None:
        return default
    if isinstance(ns, Mapping):
        return ns.get(key, default)
    return getattr(ns, key, default)


def _as_dict(ns: Any) -> dict[str, Any]:
    if ns is None:
        return {}
    if isinstance(ns, Mapping):
        return dict(ns)
    return dict(vars(ns))


def _import(class_path: str) -> Any:
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _default_of(cls: type, name: str) -> Any:
    try:
        p = inspect.signature(cls).parameters.get(name)
    except (TypeError, ValueError):
        return inspect.Parameter.empty
    return inspect.Parameter.empty if p is None else p.default


def _fill_network_options(
    task_cls: type, net_cls: type, net_init: Any, meta: Mapping[str, Any] | None,
    data_options: dict[str, Any], task_options: dict[str, Any],
) -> None:
    """Set the network arguments of :meth:`GraphfuseTask.network_options` that the network's
    constructor has and the config leaves at their default."""
    hook = getattr(task_cls, "network_options", None)
    if not callable(hook):
        return
    for key, value in hook(meta, data_options, **task_options).items():
        default = _default_of(net_cls, key)
        if default is inspect.Parameter.empty or _get(net_init, key, default) != default:
            continue
        if isinstance(net_init, Mapping):
            net_init[key] = value  # type: ignore[index]
        else:
            setattr(net_init, key, value)


def resolve_output_size(
    config: Any, meta: Callable[[], Mapping[str, Any] | None] | Mapping[str, Any] | None
) -> int | None:
    """Write the network's ``num_class`` into a parsed config by the task's rule.

    ``config`` is a parsed jsonargparse namespace (or dict) with ``model`` (the task:
    ``class_path``, ``init_args`` holding ``model``, the network's ``class_path`` /
    ``init_args``) and ``data``. ``meta`` is the prepared data's ``meta.json`` (or a callable
    reading it, called only when the task's rule needs it; None = no prepared data).

    The network's value ``v`` (``model.init_args.model.init_args.num_class``) is

    * kept when the task accepts it for this data (:meth:`GraphfuseTask.accepted_output_sizes`:
      e.g. 1 or 2 logits for binary crossing labels with BCE), or when the rule cannot
      decide (no data and no other hint);
    * replaced by :meth:`GraphfuseTask.output_size` when it equals the network's constructor
      default, i.e. when the config did not set it (configs write ``num_class`` nowhere:
      the data has it);
    * an error naming the key otherwise (the config contradicts the data).

    Further network arguments the task derives from the data (:meth:`GraphfuseTask.network_options`)
    are filled in the same pass where the config leaves them at their default.

    Returns:
        the network's ``num_class`` after resolution, or None when the config has no task
        with an output-size rule or no network with a ``num_class`` argument.
    Raises:
        ValueError: a ``num_class`` the data contradicts.
    """
    task_cfg = _get(config, "model")
    task_path = _get(task_cfg, "class_path")
    task_init = _get(task_cfg, "init_args")
    net_cfg = _get(task_init, "model")
    net_path = _get(net_cfg, "class_path")
    net_init = _get(net_cfg, "init_args")
    if not isinstance(task_path, str) or not isinstance(net_path, str) or net_init is None:
        return None
    try:
        task_cls, net_cls = _import(task_path), _import(net_path)
    except (ImportError, AttributeError):
        return None
    if not (isinstance(task_cls, type) and issubclass(task_cls, GraphfuseTask)):
        return None
    if "num_class" not in _as_dict(net_init):
        return None
    current = _get(net_init, "num_class")
    data_cfg = _get(config, "data")
    data_options = _as_dict(_get(data_cfg, "init_args"))
    task_options = {k: v for k, v in _as_dict(task_init).items() if k != "model"}
    meta_value = (meta() if callable(meta) else meta) if task_cls.output_size_needs_meta else None
    _fill_network_options(task_cls, net_cls, net_init, meta_value, data_options, task_options)
    accepted = task_cls.accepted_output_sizes(meta_value, data_options, **task_options)
    derived = task_cls.output_size(meta_value, data_options, **task_options)
    if derived is None or current in accepted:
        return current
    if current == _default_of(net_cls, "num_class"):
        if isinstance(net_init, Mapping):
            net_init["num_class"] = derived  # type: ignore[index]
        else:
            net_init.num_class = derived
        return derived
    raise ValueError(
        f"model.init_args.model.init_args.num_class={current} but the data needs {derived} "
        f"({task_cls.__name__}: {', '.join(map(str, accepted))} for data.init_args.data_dir="
        f"{data_options.get('data_dir', '?')!r}); remove num_class from the config (it is read from the data)"
    )
