"""Pedestrian crossing intention: training and evaluation of a pose (+ ego, + image) classifier.

The network is any ``nn.Module`` called as ``model(pose, velocity=None, image=None)`` with
``pose: (N, C, T, 19)``, ``velocity: (N, 2, T)``, ``image: (N, 3, H, W)`` and returning
logits ``(N, K)``: K = 3 (no-cross, cross, irrelevant: Pedestrian Graph+), 2, or 1 (one
crossing logit). The batch is a dict (:mod:`graphfuse.tasks.base`: named inputs,
``target``, ``id``); the task passes the network the inputs it declares in ``input_names``
(:attr:`graphfuse.models.PedGraph.input_names`), or, for a network without it, ``pose``
plus those its boolean attributes ``uses_velocity`` / ``uses_image`` ask for.

Output size (:meth:`CrossingIntention.output_size`, ``num_class`` written once): 3 for
``data.init_args.labels: three`` (PedGraph+'s labels on the binary crossing data); for
``binary`` labels 1 logit with ``loss: bce`` and 2 with ``loss: ce`` (2 is also accepted
with BCE).

Loss (PedGraph+, Cadena et al., T-ITS 2022; ``pl_pie_muster23_forecast.py``):
``loss="bce"`` is ``binary_cross_entropy_with_logits(logits, one_hot(y))``, i.e. K
independent sigmoids, optionally with a per-class weight on each column; ``loss="ce"`` is
softmax cross-entropy. ``class_weights="auto"`` uses PedGraph+'s ``min(n) / n`` over the
training label counts.

Evaluation: the logits become one crossing score per sample with
:func:`graphfuse.metrics.intention.crossing_score` (3 -> binary mapping of PedGraph+'s
``final_pie_test.py``, documented there; irrelevant counts as not crossing), and the binary
metrics of :mod:`graphfuse.metrics.intention` are computed over the whole epoch:
``acc``, ``balanced_acc``, ``auc``, ``ap``, ``f1``, ``precision``, ``recall``,
``auc_rounded`` (the benchmark's AUC on rounded predictions), logged as ``val/<name>`` and
``test/<name>``; ``train/loss``, ``train/acc``, ``train/balanced_acc`` on training batches.

Model selection (:attr:`CrossingIntention.monitor`, used by the engine's checkpoint and
run summary): ``val/balanced_acc`` by default. PedGraph+ and doing_project selected on a
"val_acc" that was *meant* to be balanced accuracy but was computed per batch as
``balanced_accuracy_score(pred, y)`` over 3 classes, with the arguments swapped (brief
§0.4 g); we select on the epoch-level binary balanced accuracy with the arguments in the
right order, which suits the imbalanced PIE/JAAD splits better than plain accuracy.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics import MetricCollection
from torchmetrics.classification import BinaryConfusionMatrix

from ..metrics.intention import INTENTION_METRICS, THRESHOLD, crossing_score, intention_metrics
from .base import GraphfuseTask

__all__ = ["CrossingIntention"]

_TRAIN_METRICS = ("acc", "balanced_acc")


class CrossingIntention(GraphfuseTask):
    """Crossing-intention classification (PIE / JAAD).

    Args:
        compile: compile the network with ``torch.compile(fullgraph=True)`` (off by default;
            :class:`~graphfuse.tasks.base.GraphfuseTask`, docs/training.md).
        model: network ``model(pose, velocity=None, image=None) -> logits (N, K)``, K in {1, 2, 3}.
        loss: ``"bce"`` (PedGraph+: BCE with logits on one-hot targets; for K = 1 on the
            crossing logit) or ``"ce"`` (softmax cross-entropy, K >= 2).
        class_weights: None; ``"auto"`` (``min(n) / n`` over the training labels, PedGraph+);
            or K numbers. With ``bce`` a class weight scales its one-hot column (the
            reference's ``weight=`` broadcast); with ``ce`` it is ``CrossEntropyLoss(weight=)``;
            for K = 1, sample ``i`` gets the weight of its label (2 numbers).
        lr: peak learning rate (doing_project: 0.002 with Adam; PedGraph+'s LR finder picked its own).
        weight_decay: 1e-3 (both references).
        optimizer: ``"adamw"`` (PedGraph+) or ``"adam"`` (doing_project; ``weight_decay`` is
            then L2 added to the gradient, as ``torch.optim.Adam``).
        scheduler: ``"onecycle"`` (``OneCycleLR(max_lr=lr, div_factor=10)`` stepped every
            batch over ``trainer.estimated_stepping_batches``, both references) or ``"none"``.
        three_to_binary: 3-class -> crossing score mapping, ``"pedgraph"`` or ``"argmax"``
            (:func:`graphfuse.metrics.intention.crossing_score`).
        monitor: selection metric, ``val/<metric>`` maximised (default ``val/balanced_acc``,
            see the module docstring).
    """

    #: Default model-selection metric (maximised) read by the engine and the ablation spec.
    monitor: ClassVar[str] = "val/balanced_acc"  # type: ignore[misc]
    #: The output size follows from the data's ``labels`` option and the loss, not meta.json.
    output_size_needs_meta: ClassVar[bool] = False

    def __init__(
        self,
        model: nn.Module,
        loss: Literal["bce", "ce"] = "bce",
        class_weights: None | Literal["auto"] | list[float] = None,
        lr: float = 0.002,
        weight_decay: float = 1e-3,
        optimizer: Literal["adamw", "adam"] = "adamw",
        scheduler: Literal["onecycle", "none"] = "onecycle",
        three_to_binary: Literal["pedgraph", "argmax"] = "pedgraph",
        monitor: str = "val/balanced_acc",
        compile: bool = False,
    ) -> None:
        if loss not in ("bce", "ce"):
            raise ValueError(f"model.init_args.loss: expected 'bce' or 'ce', got {loss!r}")
        if optimizer not in ("adamw", "adam"):
            raise ValueError(f"model.init_args.optimizer: expected 'adamw' or 'adam', got {optimizer!r}")
        if scheduler not in ("onecycle", "none"):
            raise ValueError(f"model.init_args.scheduler: expected 'onecycle' or 'none', got {scheduler!r}")
        if three_to_binary not in ("pedgraph", "argmax"):
            raise ValueError(
                f"model.init_args.three_to_binary: expected 'pedgraph' or 'argmax', got {three_to_binary!r}"
            )
        if not (class_weights is None or class_weights == "auto" or isinstance(class_weights, (list, tuple))):
            raise ValueError(f"model.init_args.class_weights: None, 'auto' or a list, got {class_weights!r}")
        if isinstance(class_weights, (list, tuple)) and not all(
            isinstance(w, (int, float)) and not isinstance(w, bool) and w >= 0 for w in class_weights
        ):
            raise ValueError(
                f"model.init_args.class_weights: non-negative numbers expected, got {class_weights!r}"
            )
        allowed = [f"val/{m}" for m in INTENTION_METRICS]
        if monitor not in allowed:
            raise ValueError(f"model.init_args.monitor: {monitor!r} is not one of {allowed} (maximised)")
        super().__init__(model, compile=compile)
        self.save_hyperparameters(ignore=["model"])
        self.monitor = monitor  # instance value overrides the class default
        self.loss_kind = loss
        self.three_to_binary = three_to_binary
        self.uses_velocity = bool(getattr(model, "uses_velocity", False))
        self.uses_image = bool(getattr(model, "uses_image", False))
        self.init_metrics()
        self.test_confusion = BinaryConfusionMatrix(threshold=THRESHOLD)
        # Filled in setup() for "auto" (needs the training labels); not saved in checkpoints.
        self.register_buffer("class_weight", None, persistent=False)
        if isinstance(class_weights, (list, tuple)):
            self.class_weight = torch.tensor([float(w) for w in class_weights])
        self._num_class: int | None = None
        #: After a test epoch: ``{"index", "scores" (N,), "labels" (N,) binary, "confusion" (2, 2),
        #: "probs" (N, K), "model_labels" (N,)}`` gathered over ranks (written to scores.npz).
        self.test_results: dict[str, torch.Tensor] | None = None

    # -- output size -----------------------------------------------------------------------------
    @classmethod
    def output_size(
        cls, meta: Mapping[str, Any] | None, data: Mapping[str, Any] | None = None, **options: Any
    ) -> int | None:
        """Logits per sample: 3 for ``labels='three'`` (PedGraph+), else 1 with ``loss='bce'``
        and 2 with ``loss='ce'``. ``data`` holds the datamodule's options (``labels``, default
        ``three``), ``options`` the task's (``loss``, default ``bce``); ``meta`` is not needed."""
        labels = (data or {}).get("labels", "three")
        if labels == "three":
            return 3
        return 2 if options.get("loss", "bce") == "ce" else 1

    @classmethod
    def accepted_output_sizes(
        cls, meta: Mapping[str, Any] | None, data: Mapping[str, Any] | None = None, **options: Any
    ) -> tuple[int, ...]:
        """:meth:`output_size`, and 2 too for binary labels with BCE (two one-hot columns)."""
        k = cls.output_size(meta, data, **options)
        return (1, 2) if k == 1 else (k,)  # type: ignore[return-value]

    # -- inputs --------------------------------------------------------------------------------
    def default_input_names(self) -> tuple[str, ...]:
        """``pose`` plus the inputs a network without ``input_names`` says it uses."""
        return ("pose",) + ("velocity",) * self.uses_velocity + ("image",) * self.uses_image

    def missing_input(self, name: str, batch: Mapping[str, Any]) -> Exception:
        option = {"velocity": "use_velocity", "image": "use_image"}.get(name)
        if option is None:
            return KeyError(f"the batch has no {name!r} (keys: {sorted(batch)})")
        return ValueError(
            f"the model uses the {name} input but the data provides none; set "
            f"data.init_args.{option}: true (or build the model without it)"
        )

    def forward(
        self, pose: torch.Tensor, velocity: torch.Tensor | None = None, image: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``pose (N, C, T, 19)``, ``velocity (N, 2, T)``, ``image (N, 3, H, W)`` -> logits ``(N, K)``."""
        kwargs: dict[str, torch.Tensor] = {}
        if self.uses_velocity:
            kwargs["velocity"] = velocity  # type: ignore[assignment]
        if self.uses_image:
            kwargs["image"] = image  # type: ignore[assignment]
        return self.model(pose, **kwargs)

    # -- checks ----------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        data_classes = getattr(dm, "num_class", None)
        self._num_class = int(data_classes) if data_classes is not None else None
        model_classes = getattr(self.model, "num_class", None)
        if (
            data_classes is not None
            and model_classes is not None
            and int(model_classes) not in (data_classes, 1 if data_classes == 2 else -1)
        ):
            raise ValueError(
                f"the network has num_class={model_classes} but the data has {data_classes} label classes "
                f"(data.init_args.labels={getattr(dm, 'labels', '?')!r}); make them agree"
            )
        if self.hparams.class_weights == "auto":
            counts_fn = getattr(dm, "train_class_counts", None)
            if counts_fn is None:
                raise ValueError("class_weights='auto' needs a datamodule with train_class_counts()")
            counts = torch.as_tensor(counts_fn(), dtype=torch.float64)
            if (counts == 0).any():
                raise ValueError(
                    f"class_weights='auto': a class has no training sample (counts {counts.tolist()})"
                )
            self.class_weight = (counts.min() / counts).float().to(self.device)

    def check_logits(self, logits: torch.Tensor, n: int) -> None:
        k = logits.shape[1] if logits.ndim == 2 else None
        if logits.ndim != 2 or logits.shape[0] != n or k not in (1, 2, 3):
            raise ValueError(
                f"the network returned logits of shape {tuple(logits.shape)}, expected ({n}, K), K in 1, 2, 3"
            )
        if self._num_class is not None and k != self._num_class and not (k == 1 and self._num_class == 2):
            raise ValueError(
                f"the network returned {k} logits per sample but the data has {self._num_class} label classes; "
                "set the network's num_class (3 for labels='three', 2 or 1 for 'binary')"
            )
        if k == 1 and self.loss_kind == "ce":
            raise ValueError(
                "loss='ce' needs at least 2 logits per sample; use loss='bce' for one crossing logit"
            )
        w = self.class_weight
        if w is not None and w.numel() != max(k, 2):
            raise ValueError(f"class_weights has {w.numel()} entries, the network has {k} classes")

    # -- loss --------------------------------------------------------------------------------------
    def compute_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean loss of ``logits (N, K)`` for labels ``y (N,)`` (see the class docstring)."""
        w = self.class_weight.to(logits.dtype) if self.class_weight is not None else None
        k = logits.shape[1]
        if k == 1:
            target = y.to(logits.dtype)
            sample_w = w[y] if w is not None else None
            return F.binary_cross_entropy_with_logits(logits[:, 0], target, weight=sample_w)
        if self.loss_kind == "ce":
            return F.cross_entropy(logits, y, weight=w)
        target = F.one_hot(y, k).to(logits.dtype)
        return F.binary_cross_entropy_with_logits(logits, target, weight=w)

    # -- metrics and scores ------------------------------------------------------------------------
    def build_metrics(self, stage: str) -> MetricCollection:
        if stage == "train":
            return intention_metrics("train/", _TRAIN_METRICS)
        return intention_metrics(f"{stage}/")

    def metric_inputs(self, logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        """``(crossing score (N,), binary label (N,))``: irrelevant (2) counts as not crossing."""
        score, _ = crossing_score(logits, self.three_to_binary)
        return score, (target == 1).long()

    def test_record(self, logits: Tensor, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """``scores (N,)`` crossing score, ``labels (N,)`` binary, ``probs (N, K)``,
        ``model_labels (N,)`` (the labels the model is trained on)."""
        y = batch["target"]
        score, probs = crossing_score(logits, self.three_to_binary)
        return {"scores": score.float(), "labels": (y == 1).long(), "probs": probs.float(), "model_labels": y}

    def test_class_names(self) -> list[str]:
        """Rows of the binary test confusion matrix (:mod:`graphfuse.runs`): irrelevant counts as
        not crossing, whatever labels the model is trained on."""
        return ["not crossing", "crossing"]

    def empty_test_record(self) -> dict[str, Tensor]:
        k = self._num_class or 3
        return {
            "scores": torch.zeros(0),
            "labels": torch.zeros(0, dtype=torch.long),
            "probs": torch.zeros(0, k),
            "model_labels": torch.zeros(0, dtype=torch.long),
        }

    def predict_step(
        self, batch: Mapping[str, Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> dict[str, torch.Tensor]:
        logits = self(**self.model_inputs(batch))
        score, probs = crossing_score(logits, self.three_to_binary)
        return {"index": batch["id"], "scores": score, "probs": probs, "labels": batch["target"]}

    # -- optimisation ---------------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        hp = self.hparams
        # The network's param_groups hook when it has one, else one group (PedGraph: one group).
        groups = self.param_groups(hp.weight_decay)
        if hp.optimizer == "adamw":
            opt = torch.optim.AdamW(groups, lr=hp.lr, weight_decay=hp.weight_decay)
        else:
            opt = torch.optim.Adam(groups, lr=hp.lr, weight_decay=hp.weight_decay)
        if hp.scheduler == "none":
            return opt
        total = self.trainer.estimated_stepping_batches
        if not math.isfinite(float(total)):
            raise ValueError(
                "scheduler='onecycle' needs a finite number of training steps: set trainer.max_epochs "
                "(or trainer.max_steps), or use scheduler='none'"
            )
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=hp.lr, div_factor=10.0, total_steps=max(int(total), 1)
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "frequency": 1}}
