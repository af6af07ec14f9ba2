"""Action recognition task: cross-entropy training of a skeleton classifier.

The LightningModule is a thin wrapper: the network is any ``nn.Module`` mapping a batch
``x: (N, C, T, V, M)`` to logits ``(N, num_class)`` (e.g. :class:`graphfuse.models.ShiftGCN`).

Metrics (torchmetrics), per stage ``train`` / ``val`` / ``test``:

* ``top1``, ``top5`` - micro accuracy, the number papers report for NTU RGB+D;
* ``mean_class`` - mean over classes of per-class accuracy (classes present in the targets);
* ``loss`` - mean cross-entropy.

Optimiser: the official Shift-GCN recipe by default (Cheng et al., CVPR 2020; ``main.py``
of kchengiva/Shift-GCN): SGD, Nesterov momentum 0.9, base lr 0.1, x0.1 at epochs
60/80/100, and per-parameter weight decay (1e-3 on ``Linear_weight``, 0 on
``Feature_Mask``, 1e-4 on everything else, biases and BN included).
"""

from __future__ import annotations

from typing import Any, Literal

import lightning as L
import torch
from torch import nn
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from ..metrics.classification import MeanClassAccuracy

__all__ = ["ActionRecognition", "param_groups_by_weight_decay"]

#: The official Shift-GCN weight decay exceptions, matched on the last component of a
#: parameter's name (``main.py`` of kchengiva/Shift-GCN hard-codes them; the YAML value
#: is ignored there).
SHIFTGCN_WEIGHT_DECAY = {"Linear_weight": 1e-3, "Feature_Mask": 0.0}


def param_groups_by_weight_decay(
    module: nn.Module, default: float, overrides: dict[str, float] | None
) -> list[dict[str, Any]]:
    """Split ``module``'s trainable parameters into groups of equal weight decay.

    ``overrides`` maps the last component of a parameter name (``"Linear_weight"``) to its
    decay; every other parameter gets ``default``.
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


class ActionRecognition(L.LightningModule):
    """Classification of skeleton sequences (NTU RGB+D protocol).

    Args:
        model: network mapping ``(N, C, T, V, M)`` to logits ``(N, num_class)``.
        num_class: number of classes; must equal the model's output size and the data's.
        optimizer: ``"sgd"`` (official recipe) or ``"adamw"``.
        lr: base learning rate (official: 0.1 at batch 64).
        momentum: SGD momentum (official 0.9).
        nesterov: Nesterov momentum (official True).
        weight_decay: default weight decay (official 1e-4, applied to every parameter).
        weight_decay_overrides: decay per parameter-name suffix; ``None`` uses the official
            Shift-GCN exceptions (``Linear_weight`` 1e-3, ``Feature_Mask`` 0); ``{}`` for none.
        milestones: epochs (0-based) at which the lr is multiplied by ``gamma`` (official 60, 80, 100).
        gamma: lr decay factor.
        warmup_epochs: linear warm-up epochs (official 0).
        label_smoothing: cross-entropy label smoothing (official 0).
    """

    def __init__(
        self,
        model: nn.Module,
        num_class: int = 60,
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
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model"])
        self.model = model
        self.num_class = num_class
        self.criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.train_metrics = _stage_metrics(num_class, "train/")
        self.val_metrics = _stage_metrics(num_class, "val/")
        self.test_metrics = _stage_metrics(num_class, "test/")
        self.train_loss, self.val_loss, self.test_loss = MeanMetric(), MeanMetric(), MeanMetric()
        self.test_confusion = MulticlassConfusionMatrix(num_class)
        self._eval_outputs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        #: After a test epoch: ``{"index", "scores", "labels", "confusion"}`` gathered over ranks.
        self.test_results: dict[str, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: (N, C, T, V, M)`` -> logits ``(N, num_class)``."""
        return self.model(x)

    # -- checks ---------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        data_classes = getattr(dm, "num_class", None)
        if data_classes is not None and data_classes != self.num_class:
            raise ValueError(
                f"model.init_args.num_class={self.num_class} but the data has {data_classes} classes "
                f"({getattr(dm, 'data_dir', '?')}); set model.init_args.num_class and the network's num_class"
            )

    def _check_logits(self, logits: torch.Tensor) -> None:
        if logits.ndim != 2 or logits.shape[1] != self.num_class:
            raise ValueError(
                f"the network returned logits of shape {tuple(logits.shape)}, expected (N, {self.num_class}); "
                "check model.init_args.model.init_args.num_class"
            )

    # -- steps ------------------------------------------------------------------------------
    def _shared_step(self, batch: Any, stage: str) -> torch.Tensor:
        x, y, index = batch
        logits = self(x)
        self._check_logits(logits)
        loss = self.criterion(logits, y)
        metrics = getattr(self, f"{stage}_metrics")
        loss_metric = getattr(self, f"{stage}_loss")
        metrics.update(logits.detach(), y)
        loss_metric.update(loss.detach(), weight=y.numel())
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss_metric, on_step=False, on_epoch=True, prog_bar=True, batch_size=y.numel())
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=not on_step, batch_size=y.numel())
        if stage == "train":
            self.log("train/loss_step", loss.detach(), on_step=True, on_epoch=False, prog_bar=False)
        if stage == "test":
            self.test_confusion.update(logits.detach(), y)
            self._eval_outputs.append((index.detach(), logits.detach().float(), y.detach()))
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        if not torch.isfinite(batch[0]).all():
            raise FloatingPointError(f"non-finite input in training batch {batch_idx} (sample indices {batch[2].tolist()})")
        loss = self._shared_step(batch, "train")
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at epoch {self.current_epoch}, batch {batch_idx}")
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._shared_step(batch, "test")

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> dict[str, torch.Tensor]:
        x, y, index = batch
        return {"index": index, "scores": self(x).float(), "labels": y}

    def on_test_epoch_start(self) -> None:
        self._eval_outputs = []
        self.test_results = None

    def on_test_epoch_end(self) -> None:
        index = torch.cat([o[0] for o in self._eval_outputs]) if self._eval_outputs else torch.zeros(0, dtype=torch.long)
        scores = (
            torch.cat([o[1] for o in self._eval_outputs])
            if self._eval_outputs
            else torch.zeros(0, self.num_class)
        )
        labels = torch.cat([o[2] for o in self._eval_outputs]) if self._eval_outputs else torch.zeros(0, dtype=torch.long)
        if self.trainer.world_size > 1:
            # Every rank holds a shard (DistributedSampler pads, so some samples repeat);
            # gather, then keep one copy per sample index.
            index, scores, labels = (self.all_gather(t).flatten(0, 1) for t in (index, scores, labels))
            order = torch.argsort(index, stable=True)
            index, scores, labels = index[order], scores[order], labels[order]
            keep = torch.ones_like(index, dtype=torch.bool)
            keep[1:] = index[1:] != index[:-1]
            index, scores, labels = index[keep], scores[keep], labels[keep]
        self.test_results = {
            "index": index.cpu(),
            "scores": scores.cpu(),
            "labels": labels.cpu(),
            "confusion": self.test_confusion.compute().cpu(),
        }
        self.test_confusion.reset()
        self._eval_outputs = []

    # -- optimisation ------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        hp = self.hparams
        overrides = SHIFTGCN_WEIGHT_DECAY if hp.weight_decay_overrides is None else hp.weight_decay_overrides
        groups = param_groups_by_weight_decay(self.model, hp.weight_decay, overrides)
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

    def on_train_epoch_start(self) -> None:
        opt = self.optimizers()
        if not isinstance(opt, list):
            self.log("lr", opt.param_groups[0]["lr"], on_step=False, on_epoch=True)
