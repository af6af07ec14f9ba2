"""Multi-label image recognition (COCO, VOC): ML-GCN's training and evaluation.

The network is any ``nn.Module`` taking the batch's ``image (N, 3, S, S)`` and returning
logits ``(N, C)`` (:class:`graphfuse.models.mlgcn.MLGCN`, ``ResNetBaseline``, ``HGATFC``).
Targets are ``(N, C)`` int64: 1 present, 0 absent, -1 difficult (VOC).

Loss (``loss``):

* ``soft_margin`` (ML-GCN): ``nn.MultiLabelSoftMarginLoss``, the sigmoid BCE averaged over
  classes and samples; a difficult label counts as **positive** (ML-GCN maps its targets
  ``{-1, 0, 1}`` with ``target[target == 0] = 1`` before the loss);
* ``deepmar``: DeepMAR's weighted BCE (Li, Chen, Huang, ACPR 2015; the notes' trainer,
  ``Xingxiangrui/various_loss_and_intermedia_supervision`` ``multi_label_deepMar_loss.py``):
  a positive of class ``j`` weighs ``exp(alpha (1 - r_j))``, a negative ``exp(alpha r_j)``,
  ``r_j`` the fraction of training images holding ``j`` (from the datamodule's
  ``label_graph()``: ``counts`` and ``num_images``), ``alpha = 1``.

Optimiser (ML-GCN ``demo_coco_gcn.py`` / ``engine.py``): SGD, momentum 0.9, weight decay
1e-4, base lr 0.1; the network's ``param_groups`` gives each group an ``lr_mult`` (the trunk:
``backbone_lr_mult``, ML-GCN's ``lrp`` 0.1), the group's lr is ``lr * lr_mult``; every group
is multiplied by ``gamma`` at each epoch in ``milestones`` (ML-GCN's ``epoch_step``: [30],
i.e. no decay within its 20 epochs). Gradient clipping at norm 10 is the trainer's
``gradient_clip_val: 10`` (configs).

Metrics (:mod:`graphfuse.metrics.multilabel`, ML-GCN's meter): ``val/`` and ``test/``
``mAP``, ``CP``, ``CR``, ``CF1``, ``OP``, ``OR``, ``OF1``, their ``*_top3`` and
``classes_without_positives``; ``train/mAP``, ``train/CF1``, ``train/OF1`` on the training
batches (train-mode outputs of a moving model, as ML-GCN's training meter). Selection:
``val/mAP`` (maximised).

**Train-vs-val puzzle** (brief A.7): with ``train_eval=True`` each epoch (during fit) also
evaluates, in eval mode and with the test transform, a fixed subset of the training split
(the datamodule's ``train_eval_dataloader()``) and logs ``train_eval/mAP`` (and
``train_eval/OF1``); it is the true training-set score, normally >= ``val/mAP``, while the
running ``train/mAP`` sits below it (docs/models_mlgcn.md).

Label graph: at set-up the datamodule's ``label_graph()`` (``counts``, ``cooccurrence``,
``embeddings``) is given to a network with ``set_label_graph`` unless the network already
holds one (set before, or loaded from a state dict; a checkpoint restored by Lightning
overwrites the buffers after set-up anyway).

Output size (``num_class`` written once): ``meta.json``'s ``num_class``. The network's
``class_names`` / ``supercategories`` arguments (HGATFC's groups), when it has them and the
config leaves them unset, are filled from ``meta.json`` too (:meth:`MultiLabelRecognition.network_options`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MetricCollection

from ..metrics.multilabel import LabelPredictionCooccurrence, multilabel_metrics
from .base import GraphfuseTask

__all__ = ["MultiLabelRecognition", "deepmar_weights"]

_TRAIN_METRICS = ("mAP", "CF1", "OF1")
_TRAIN_EVAL_METRICS = ("mAP", "OF1")


def deepmar_weights(counts: Any, num_images: int, alpha: float = 1.0) -> tuple[Tensor, Tensor]:
    """DeepMAR's ``(w_pos (C,), w_neg (C,))``: ``exp(alpha (1 - r))``, ``exp(alpha r)`` with
    ``r = counts / num_images`` the positive rate of each class in the training split."""
    c = torch.as_tensor(counts, dtype=torch.float64)
    if c.ndim != 1 or int(num_images) < 1 or (c < 0).any() or (c > int(num_images)).any():
        raise ValueError(f"DeepMAR weights need counts (C,) within [0, num_images={num_images}]")
    r = c / float(num_images)
    return torch.exp(alpha * (1.0 - r)).float(), torch.exp(alpha * r).float()


class MultiLabelRecognition(GraphfuseTask):
    """Multi-label image classification (ML-GCN's protocol).

    Args:
        compile: compile the network with ``torch.compile(fullgraph=True)`` (off by default;
            :class:`~graphfuse.tasks.base.GraphfuseTask`, docs/training.md).
        model: network ``model(image=(N, 3, S, S)) -> logits (N, C)``.
        loss: ``'soft_margin'`` (ML-GCN) or ``'deepmar'`` (weighted BCE, see the module docstring).
        deepmar_alpha: DeepMAR's ``alpha`` (1).
        lr: base learning rate (ML-GCN code 0.1; paper 0.01).
        momentum: SGD momentum (0.9).
        weight_decay: 1e-4.
        nesterov: Nesterov momentum (ML-GCN: False).
        milestones: epochs (0-based) at which every lr is multiplied by ``gamma`` (ML-GCN code
            ``epoch_step`` [30]; paper: every 40 epochs of 100).
        gamma: lr decay factor (0.1).
        train_eval: evaluate the datamodule's ``train_eval_dataloader()`` each epoch
            (``train_eval/mAP``).
        top_k: ``k`` of the top-k metrics (3).
    """

    #: Model-selection metric (maximised).
    monitor: ClassVar[str] = "val/mAP"  # type: ignore[misc]

    def __init__(
        self,
        model: nn.Module,
        loss: Literal["soft_margin", "deepmar"] = "soft_margin",
        deepmar_alpha: float = 1.0,
        lr: float = 0.1,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        nesterov: bool = False,
        milestones: list[int] = [30],  # noqa: B006 - jsonargparse needs a concrete default
        gamma: float = 0.1,
        train_eval: bool = True,
        top_k: int = 3,
        compile: bool = False,
    ) -> None:
        super().__init__(model, compile=compile)
        if loss not in ("soft_margin", "deepmar"):
            raise ValueError(f"model.init_args.loss must be 'soft_margin' or 'deepmar', got {loss!r}")
        num_class = getattr(model, "num_class", None)
        if not isinstance(num_class, int) or num_class < 1:
            raise ValueError(f"{type(model).__name__} has no num_class attribute (the number of labels)")
        self.save_hyperparameters(ignore=["model"])
        self.num_class = num_class
        self.loss_kind = loss
        self.top_k = int(top_k)
        self.criterion = nn.MultiLabelSoftMarginLoss()
        self.register_buffer("w_pos", torch.ones(num_class), persistent=False)
        self.register_buffer("w_neg", torch.ones(num_class), persistent=False)
        self._deepmar_ready = False
        self.init_metrics()
        self.train_eval_metrics = multilabel_metrics(num_class, "train_eval/", _TRAIN_EVAL_METRICS, top_k=self.top_k)
        self.test_confusion = LabelPredictionCooccurrence(num_class)
        self._warned_no_train_eval = False

    # -- data-derived sizes ----------------------------------------------------------------------
    @classmethod
    def network_options(
        cls, meta: Mapping[str, Any] | None, data: Mapping[str, Any] | None = None, **options: Any
    ) -> dict[str, Any]:
        """``class_names`` and ``supercategories`` from ``meta.json`` (HGATFC's groups)."""
        if meta is None:
            return {}
        out = {k: list(meta[k]) for k in ("class_names", "supercategories")
               if isinstance(meta.get(k), (list, tuple)) and len(meta[k]) == meta.get("num_class", len(meta[k]))}
        return out

    # -- set-up ------------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        data_classes = getattr(dm, "num_class", None)
        if isinstance(data_classes, int) and data_classes != self.num_class:
            raise ValueError(
                f"the network has num_class={self.num_class} but the data has {data_classes} labels "
                f"({getattr(dm, 'data_dir', '?')}); remove num_class from the config (it is read from the data)"
            )
        if stage == "fit" and getattr(self.model, "backbone_weights", "") is None:
            from lightning.pytorch.utilities import rank_zero_warn

            rank_zero_warn(f"{type(self.model).__name__}: the {getattr(self.model, 'backbone', 'backbone')} trunk "
                           "starts from random weights (model.init_args.model.init_args.backbone_weights is not "
                           "set); ML-GCN's recipe starts from ImageNet weights")
        needs_graph = callable(getattr(self.model, "set_label_graph", None)) and not getattr(
            self.model, "has_label_graph", False)
        needs_counts = self.loss_kind == "deepmar" and not self._deepmar_ready
        if not (needs_graph or needs_counts):
            return
        graph_fn = getattr(dm, "label_graph", None)
        if not callable(graph_fn):
            if needs_counts:
                raise ValueError("loss='deepmar' needs a datamodule with label_graph() (label counts)")
            warnings.warn(f"{type(self.model).__name__}: the datamodule has no label_graph(); the label graph "
                          "stays the identity with one-hot inputs", stacklevel=2)
            return
        graph = dict(graph_fn())
        if needs_graph:
            self.model.set_label_graph(**graph)
        if needs_counts:
            n = graph.get("num_images")
            if n is None:
                raise ValueError("loss='deepmar' needs the number of training images: the datamodule's "
                                 "label_graph() has no 'num_images'")
            w_pos, w_neg = deepmar_weights(graph["counts"], int(n), float(self.hparams.deepmar_alpha))
            self.w_pos.copy_(w_pos)
            self.w_neg.copy_(w_neg)
            self._deepmar_ready = True

    # -- inputs, checks ----------------------------------------------------------------------------
    def default_input_names(self) -> tuple[str, ...]:
        return ("image",)

    def check_logits(self, logits: Tensor, n: int) -> None:
        if logits.ndim != 2 or logits.shape != (n, self.num_class):
            raise ValueError(f"the network returned logits of shape {tuple(logits.shape)}, expected "
                             f"({n}, {self.num_class})")

    # -- loss ----------------------------------------------------------------------------------------
    def compute_loss(self, logits: Tensor, target: Tensor) -> Tensor:
        """Mean loss of ``logits (N, C)`` for ``target (N, C)``; difficult (-1) counts as positive."""
        if target.shape != logits.shape:
            raise ValueError(f"targets {tuple(target.shape)} do not match logits {tuple(logits.shape)}")
        y = (target != 0).to(logits.dtype)
        if self.loss_kind == "soft_margin":
            return self.criterion(logits, y)
        w = torch.where(y > 0, self.w_pos.to(logits.dtype), self.w_neg.to(logits.dtype))
        return F.binary_cross_entropy_with_logits(logits, y, weight=w)

    # -- metrics and scores ---------------------------------------------------------------------------
    def build_metrics(self, stage: str) -> MetricCollection:
        names: Sequence[str] | None = _TRAIN_METRICS if stage == "train" else None
        if names is None:
            return multilabel_metrics(self.num_class, f"{stage}/", top_k=self.top_k)
        return multilabel_metrics(self.num_class, f"{stage}/", names, top_k=self.top_k)

    def test_record(self, logits: Tensor, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """``scores (N, C)`` float logits and ``labels (N, C)`` (1 / 0 / -1)."""
        return {"scores": logits.float(), "labels": batch["target"]}

    def empty_test_record(self) -> dict[str, Tensor]:
        return {"scores": torch.zeros(0, self.num_class), "labels": torch.zeros(0, self.num_class, dtype=torch.long)}

    # -- the eval-mode pass over a fixed training subset ------------------------------------------------
    def on_validation_epoch_end(self) -> None:
        trainer = self.trainer
        if not self.hparams.train_eval or trainer.sanity_checking or trainer.state.fn != "fit":
            return
        dm = getattr(trainer, "datamodule", None)
        loader_fn = getattr(dm, "train_eval_dataloader", None)
        if not callable(loader_fn):
            if not self._warned_no_train_eval:
                warnings.warn("train_eval=True but the datamodule has no train_eval_dataloader(); "
                              "train_eval/mAP is not logged", stacklevel=2)
                self._warned_no_train_eval = True
            return
        was_training = self.model.training
        self.model.eval()
        rank, world = trainer.global_rank, trainer.world_size
        try:
            with torch.no_grad():
                for i, batch in enumerate(loader_fn()):
                    if i % world != rank:  # DDP: each rank takes every world-th batch; the metric gathers
                        continue
                    batch = trainer.strategy.batch_to_device(batch)
                    logits = self(**self.model_inputs(batch))
                    self.check_logits(logits, int(batch["target"].shape[0]))
                    self.train_eval_metrics.update(logits.float(), batch["target"])
            values = self.train_eval_metrics.compute()
        finally:
            self.train_eval_metrics.reset()
            self.model.train(was_training)
        for name, value in values.items():
            if math.isfinite(float(value)):
                self.log(name, value, on_step=False, on_epoch=True, prog_bar=False)

    # -- optimisation --------------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        hp = self.hparams
        groups = []
        for g in self.param_groups(hp.weight_decay):
            g = dict(g)
            g["lr"] = float(hp.lr) * float(g.pop("lr_mult", 1.0))
            groups.append(g)
        opt = torch.optim.SGD(groups, lr=hp.lr, momentum=hp.momentum, nesterov=hp.nesterov,
                              weight_decay=hp.weight_decay)
        milestones = sorted(int(m) for m in hp.milestones)
        gamma = float(hp.gamma)

        def factor(epoch: int) -> float:
            # ML-GCN's adjust_learning_rate: x0.1 at each epoch of epoch_step, cumulative.
            return gamma ** sum(epoch >= m for m in milestones)

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
