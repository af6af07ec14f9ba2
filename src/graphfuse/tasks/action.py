"""Action recognition task: cross-entropy training of a skeleton classifier.

The LightningModule is a thin wrapper over :class:`graphfuse.tasks.base.GraphfuseTask`
(dict batches, finite checks, DDP test-score gathering, lr logging): the network is any
``nn.Module`` mapping the batch's ``x: (N, C, T, V, M)`` to logits ``(N, num_class)``
(e.g. :class:`graphfuse.models.ShiftGCN`; a network declaring other ``input_names`` gets
those batch entries).

Metrics (torchmetrics), per stage ``train`` / ``val`` / ``test``:

* ``top1``, ``top5`` - micro accuracy, the number papers report for NTU RGB+D;
* ``mean_class`` - mean over classes of per-class accuracy (classes present in the targets);
* ``loss`` - mean cross-entropy.

Selection metric: ``val/top1`` (maximised).

Several heads: a network may offer ``forward_loss_terms(**inputs) -> (logits, {name: (weight,
logits_k)})`` (the skeleton two-stream network's towers); the loss is then the weighted sum of
the heads' cross-entropies, each logged as ``<stage>/loss_<name>``, while metrics and scores
use the returned prediction.

Output size (:meth:`ActionRecognition.output_size`): the number of classes of the prepared
data (``meta.json: num_class``); configs need not state it.

Optimiser: the official Shift-GCN recipe by default (Cheng et al., CVPR 2020; ``main.py``
of kchengiva/Shift-GCN): SGD, Nesterov momentum 0.9, base lr 0.1, x0.1 at epochs
60/80/100. Weight decay per parameter comes from the network's own ``param_groups(weight_decay)``
hook (:meth:`graphfuse.models.ShiftGCN.param_groups`: 1e-3 on ``Linear_weight``, 0 on
``Feature_Mask``, ``weight_decay`` on everything else, biases and BN included); a network
without the hook gets ``weight_decay`` on every parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from ..metrics.classification import MeanClassAccuracy
from .base import GraphfuseTask

__all__ = ["ActionRecognition", "param_groups_by_weight_decay"]


def param_groups_by_weight_decay(
    module: nn.Module, default: float, overrides: dict[str, float] | None
) -> list[dict[str, Any]]:
    """Split ``module``'s trainable parameters into groups of equal weight decay.

    ``overrides`` maps the last component of a parameter name (``"Linear_weight"``) to its
    decay; every other parameter gets ``default``. Groups come in the order of their first
    parameter and list the parameter ``names``. (The explicit
    ``weight_decay_overrides`` option of :class:`ActionRecognition`; a model's own rule is
    its ``param_groups`` hook.)
    """
    overrides = overrides or {}
    groups: dict[float, list[nn.Parameter]] = {}
    names: dict[float, list[str]] = {}
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        wd = overrides.get(name.rsplit(".", 1)[-1], default)
        groups.setdefault(wd, []).append(p)
        names.setdefault(wd, []).append(name)
    return [{"params": ps, "weight_decay": wd, "names": names[wd]} for wd, ps in groups.items()]


def _stage_metrics(num_class: int, prefix: str) -> MetricCollection:
    metrics: dict[str, Any] = {
        "top1": MulticlassAccuracy(num_class, top_k=1, average="micro"),
        "mean_class": MeanClassAccuracy(num_class),
    }
    if num_class > 5:
        metrics["top5"] = MulticlassAccuracy(num_class, top_k=5, average="micro")
    return MetricCollection(metrics, prefix=prefix)


class ActionRecognition(GraphfuseTask):
    """Classification of skeleton sequences (NTU RGB+D protocol).

    Args:
        compile: compile the network with ``torch.compile(fullgraph=True)`` (off by default;
            :class:`~graphfuse.tasks.base.GraphfuseTask`, docs/training.md).
        model: network taking the batch's ``x: (N, C, T, V, M)`` and returning logits
            ``(N, num_class)``.
        num_class: number of classes; None (default) = the network's ``num_class`` (which
            graphfuse's CLI sets from the prepared data, :meth:`output_size`). When given it
            must equal the network's and the data's (older configs state it).
        optimizer: ``"sgd"`` (official recipe) or ``"adamw"``.
        lr: base learning rate (official: 0.1 at batch 64).
        momentum: SGD momentum (official 0.9).
        nesterov: Nesterov momentum (official True).
        weight_decay: default weight decay (official 1e-4).
        weight_decay_overrides: ``None`` (default): the network's ``param_groups`` hook
            decides (Shift-GCN: its official rule), a network without one gets
            ``weight_decay`` everywhere; a mapping: decay per parameter-name suffix instead
            (``{Linear_weight: 0.001, Feature_Mask: 0.0}`` is Shift-GCN's official rule),
            ``{}`` for ``weight_decay`` everywhere.
        milestones: epochs (0-based) at which the lr is multiplied by ``gamma`` (official 60, 80, 100).
        gamma: lr decay factor.
        warmup_epochs: linear warm-up epochs (official 0).
        label_smoothing: cross-entropy label smoothing (official 0).
    """

    #: Model-selection metric (maximised) read by the engine and the ablation spec.
    monitor: ClassVar[str] = "val/top1"  # type: ignore[misc]

    def __init__(
        self,
        model: nn.Module,
        num_class: int | None = None,
        optimizer: Literal["sgd", "adamw"] = "sgd",
        lr: float = 0.1,
        momentum: float = 0.9,
        nesterov: bool = True,
        weight_decay: float = 1e-4,
        weight_decay_overrides: dict[str, float] | None = None,
        milestones: list[int] = [60, 80, 100],  # noqa: B006 - jsonargparse needs a concrete default
        gamma: float = 0.1,
        warmup_epochs: int = 0,
        label_smoothing: float = 0.0,
        compile: bool = False,
    ) -> None:
        super().__init__(model, compile=compile)
        net_classes = getattr(model, "num_class", None)
        if num_class is None:
            if net_classes is None:
                raise ValueError(
                    f"model.init_args.num_class: {type(model).__name__} has no num_class attribute; "
                    "give the task's num_class"
                )
            num_class = int(net_classes)
        elif net_classes is not None and int(net_classes) != int(num_class):
            raise ValueError(
                f"model.init_args.num_class={num_class} but the network has num_class={net_classes}; "
                "remove both from the config (they are read from the data) or make them agree"
            )
        self.save_hyperparameters(ignore=["model"])
        #: The loss terms of the last forward of a multi-head network (see :meth:`forward`).
        self._loss_terms: dict[str, tuple[float, Tensor]] | None = None
        self.num_class = int(num_class)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.init_metrics()
        self.test_confusion = MulticlassConfusionMatrix(self.num_class)

    # -- output size --------------------------------------------------------------------------
    @classmethod
    def output_size(
        cls, meta: Mapping[str, Any] | None, data: Mapping[str, Any] | None = None, **options: Any
    ) -> int | None:
        """The number of classes: ``meta.json``'s ``num_class``; without data the task's own
        ``num_class`` option when given, else None (unknown).

        Raises:
            ValueError: the task's ``num_class`` option contradicts ``meta.json``.
        """
        given = options.get("num_class")
        if meta is not None and meta.get("num_class") is not None:
            if given is not None and int(given) != int(meta["num_class"]):
                raise ValueError(
                    f"model.init_args.num_class={given} but the data has {meta['num_class']} classes "
                    f"({(data or {}).get('data_dir', '?')}); remove num_class from the config "
                    "(it is read from the data)"
                )
            return int(meta["num_class"])
        return int(given) if given is not None else None

    # -- inputs, checks -------------------------------------------------------------------------
    def default_input_names(self) -> tuple[str, ...]:
        return ("x",)

    def forward(self, *args: Any, **inputs: Any) -> Tensor:
        """``x: (N, C, T, V, M)`` (positional or by name) -> logits ``(N, num_class)``.

        A network with several heads (e.g. :class:`graphfuse.models.two_stream_skeleton.SkeletonTwoStream`)
        offers ``forward_loss_terms(**inputs) -> (logits, {name: (weight, logits_k)})``: the
        returned logits are its prediction (metrics, scores), and the terms are kept for the
        :meth:`compute_loss` of the same step.
        """
        terms_fn = getattr(self.model, "forward_loss_terms", None)
        if terms_fn is None:
            self._loss_terms = None
            return self.model(*args, **inputs)
        logits, terms = terms_fn(*args, **inputs)
        self._loss_terms = terms
        return logits

    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        data_classes = getattr(dm, "num_class", None)
        if data_classes is not None and data_classes != self.num_class:
            raise ValueError(
                f"the network has num_class={self.num_class} but the data has {data_classes} classes "
                f"({getattr(dm, 'data_dir', '?')}); remove num_class from the config (graphfuse reads it "
                "from the data) or set model.init_args.model.init_args.num_class to the data's"
            )

    def check_logits(self, logits: Tensor, n: int) -> None:
        if logits.ndim != 2 or logits.shape[1] != self.num_class:
            raise ValueError(
                f"the network returned logits of shape {tuple(logits.shape)}, "
                f"expected (N, {self.num_class}); "
                "check model.init_args.model.init_args.num_class"
            )

    # -- loss, metrics, scores ------------------------------------------------------------------
    def build_metrics(self, stage: str) -> MetricCollection:
        return _stage_metrics(self.num_class, f"{stage}/")

    def compute_loss(self, logits: Tensor, target: Tensor) -> Tensor:
        """Mean cross-entropy (with ``label_smoothing``) of ``logits (N, K)`` for ``target (N,)``.

        After a :meth:`forward` of a network with ``forward_loss_terms`` the loss is instead
        ``sum_k weight_k * CE(logits_k, target)`` over its terms (Feichtenhofer et al.'s
        one loss per tower), each term also logged as ``<stage>/loss_<name>``.
        """
        terms, self._loss_terms = getattr(self, "_loss_terms", None), None
        if not terms:
            return self.criterion(logits, target)
        total: Tensor | None = None
        for name, (weight, term_logits) in terms.items():
            loss = self.criterion(term_logits, target)
            self._log_term(name, loss, target.numel())
            total = weight * loss if total is None else total + weight * loss
        assert total is not None
        return total

    def _log_term(self, name: str, loss: Tensor, n: int) -> None:
        trainer = self._trainer
        if trainer is None:
            return
        stage = "train" if self.training else ("test" if trainer.testing else "val")
        self.log(f"{stage}/loss_{name}", loss.detach(), on_step=False, on_epoch=True, batch_size=n,
                 sync_dist=stage != "train")

    def test_record(self, logits: Tensor, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """``scores (N, num_class)`` float logits and ``labels (N,)``."""
        return {"scores": logits.float(), "labels": batch["target"]}

    def empty_test_record(self) -> dict[str, Tensor]:
        return {"scores": torch.zeros(0, self.num_class), "labels": torch.zeros(0, dtype=torch.long)}

    # -- optimisation ------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        hp = self.hparams
        if hp.weight_decay_overrides is None:
            groups = self.param_groups(hp.weight_decay)
        else:
            groups = param_groups_by_weight_decay(self.model, hp.weight_decay, hp.weight_decay_overrides)
            for g in groups:
                g.pop("names")
        if hp.optimizer == "sgd":
            opt = torch.optim.SGD(groups, lr=hp.lr, momentum=hp.momentum, nesterov=hp.nesterov)
        elif hp.optimizer == "adamw":
            opt = torch.optim.AdamW(groups, lr=hp.lr)
        else:
            raise ValueError(f"model.init_args.optimizer: unknown optimizer {hp.optimizer!r} (sgd or adamw)")
        milestones = sorted(int(m) for m in hp.milestones)
        warmup = int(hp.warmup_epochs)
        gamma = float(hp.gamma)

        def factor(epoch: int) -> float:
            # Same as the official adjust_learning_rate: lr = base * gamma ** #(milestones <= epoch).
            f = gamma ** sum(epoch >= m for m in milestones)
            if warmup and epoch < warmup:
                f *= (epoch + 1) / warmup
            return f

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
