"""Gait recognition: metric learning on silhouette sequences, evaluated by retrieval.

The network (:class:`graphfuse.models.gait.GaitSet`, :class:`~graphfuse.models.gait.GLN`)
maps ``silhouettes`` (and, at test time, ``lengths``) to ``{"embeddings": (N, C, P), ...}``;
GLN with the compact block adds ``logits (N, num_class)``. In ``eval()`` mode ``embeddings``
is the network's chosen inference embedding (GLN's ``embedding`` option).

Training (OpenGait's recipes, docs/protocol_gait.md): the batch-all triplet loss per part on
``embeddings`` (:class:`graphfuse.losses.triplet.BatchAllTripletLoss`, margin 0.2, embeddings
gathered across DDP ranks so the whole ``P x K`` batch is mined), plus ``ce_weight`` x the
scaled, label-smoothed cross-entropy on ``logits`` when the network returns them (GLN phase
2: 0.1, scale 16, smoothing 0.1; :class:`graphfuse.losses.cross_entropy.ScaledCrossEntropy`).
Logged: ``train/loss`` (epoch mean) and ``train/loss_step``, ``train/triplet``, ``train/ce``,
``train/nonzero_fraction`` (the fraction of triplet terms above zero), ``train/mean_dist``,
``lr``.

Optimiser: SGD lr 0.1, momentum 0.9, weight decay 5e-4 (``optimizer: adam`` for the original
GaitSet's Adam 1e-4 and OpenGait's OU-MVLP recipe), ``MultiStepLR`` at ``milestones`` (10k,
20k, 30k) x ``gamma`` 0.1 stepped every ITERATION; the length is ``trainer.max_steps``
(40k). ``init_weights`` starts from another run's checkpoint non-strictly (GLN phase 2 from
phase 1: the compact block is new), with a fresh optimiser and schedule; the missing keys are
listed.

Test: the embeddings of every test sequence (all frames; any test batch size) are gathered
over DDP ranks and de-duplicated by id (:class:`graphfuse.tasks.base.GraphfuseTask`), then
the protocol of the data (``meta.json: protocol``; :mod:`graphfuse.metrics.gait`) gives the
single-view-gallery rank-1 per condition, logged as ``test/NM``, ``test/BG``, ``test/CL`` (%),
and the cross-view-gallery mAP, ``test/mAP_NM`` ... :meth:`GaitRecognition.test_report`
prints the condition x view table, draws the three rank-1 matrices into
``<run>/rank1_heatmaps.png`` and returns the numbers for ``summary.json``.

Model selection: none. The recipes have no validation split and test their last iteration
(``--run.select last``; the configs set it); ``monitor`` is ``val/NM`` only because the engine
needs a name, and a run that asks to select on it stops with an error at the start.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn
from torchmetrics import MeanMetric

from ..metrics.gait import DISTANCES, evaluate_gait, format_gait_table, plot_rank1_heatmaps
from .base import ID, TARGET, GraphfuseTask

__all__ = ["GaitRecognition", "load_initial_weights"]

#: Inputs a gait network may go without (training batches have no ``lengths``).
_OPTIONAL_INPUTS = frozenset({"lengths"})


def load_initial_weights(model: nn.Module, path: str | Path) -> dict[str, list[str]]:
    """Load a checkpoint's network weights into ``model`` non-strictly and say what was left.

    ``path``: a graphfuse checkpoint (``state_dict`` with the task's ``model.`` prefix, e.g.
    ``runs/<name>/<version>/checkpoints/best.ckpt``, or one written by ``graphfuse convert``),
    read through :func:`graphfuse.checkpoints.load_checkpoint` (``weights_only``).

    Returns:
        ``{"loaded": [...], "missing": [...]}``: the keys of ``model`` taken from the file and
        those left at their initial values (GLN phase 2 from phase 1: the compact block).
    Raises:
        ValueError: the file holds keys ``model`` does not have, or tensors of another shape
            (another network: nothing is loaded then).
    """
    from ..checkpoints import load_checkpoint

    ckpt = load_checkpoint(path)
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, Mapping) else None
    if not isinstance(state, Mapping) or not state:
        raise ValueError(f"{path}: no state_dict in this checkpoint")
    if all(str(k).startswith("model.") for k in state):
        state = {str(k)[len("model."):]: v for k, v in state.items()}
    own = model.state_dict()
    unexpected = sorted(k for k in state if k not in own)
    mis_shaped = sorted(f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in state
                        if k in own and tuple(state[k].shape) != tuple(own[k].shape))
    if unexpected or mis_shaped:
        parts = [f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:4])})"] if unexpected else []
        parts += [f"{len(mis_shaped)} shape mismatches (e.g. {'; '.join(mis_shaped[:3])})"] if mis_shaped else []
        raise ValueError(f"{path}: not a checkpoint of this {type(model).__name__}: " + ", ".join(parts))
    result = model.load_state_dict(dict(state), strict=False)
    return {"loaded": sorted(state), "missing": sorted(result.missing_keys)}


class GaitRecognition(GraphfuseTask):
    """Gait recognition by metric learning (GaitSet, GLN; see the module docstring).

    Args:
        compile: compile the network with ``torch.compile(fullgraph=True)`` (off by default;
            :class:`~graphfuse.tasks.base.GraphfuseTask`, docs/training.md).
        model: network ``model(silhouettes, lengths=None) -> {"embeddings": (N, C, P), ...}``.
        margin: triplet margin (0.2).
        ce_weight: weight of the cross-entropy on ``logits`` when the network returns them
            (GLN phase 2: 0.1); 0 turns it off.
        ce_scale: the logits' scale before the softmax (16).
        label_smoothing: of the cross-entropy (0.1).
        optimizer: ``sgd`` (OpenGait's CASIA-B recipes) or ``adam`` (original GaitSet,
            OpenGait's OU-MVLP recipe).
        lr: base learning rate (0.1; GLN phase 2: 0.01; Adam: 1e-4).
        momentum: SGD momentum (0.9).
        weight_decay: 5e-4 (OU-MVLP with Adam: 0).
        milestones: ITERATIONS at which the lr is multiplied by ``gamma``.
        gamma: 0.1.
        distance: evaluation distance, ``euc`` (OpenGait's) or ``cos``.
        cross_view: also evaluate the cross-view-gallery protocol (mAP).
        init_weights: a checkpoint to start from non-strictly (:func:`load_initial_weights`;
            GLN phase 2 from phase 1); None = the network's own initialisation.
    """

    #: A name for the engine only: no validation split exists and runs select the last state.
    monitor: ClassVar[str] = "val/NM"  # type: ignore[misc]
    #: curves.png's second panel (no validation split: nothing is logged under the monitor)
    curve_metric: ClassVar[str] = "nonzero_fraction"

    def __init__(
        self,
        model: nn.Module,
        margin: float = 0.2,
        ce_weight: float = 0.1,
        ce_scale: float = 16.0,
        label_smoothing: float = 0.1,
        optimizer: Literal["sgd", "adam"] = "sgd",
        lr: float = 0.1,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        milestones: list[int] = [10000, 20000, 30000],  # noqa: B006 - jsonargparse needs a concrete default
        gamma: float = 0.1,
        distance: Literal["euc", "cos"] = "euc",
        cross_view: bool = True,
        init_weights: str | None = None,
        compile: bool = False,
    ) -> None:
        super().__init__(model, compile=compile)
        if optimizer not in ("sgd", "adam"):
            raise ValueError(f"model.init_args.optimizer must be 'sgd' or 'adam', got {optimizer!r}")
        if distance not in DISTANCES:
            raise ValueError(f"model.init_args.distance must be one of {DISTANCES}, got {distance!r}")
        if margin < 0 or ce_weight < 0 or lr <= 0:
            raise ValueError(f"margin and ce_weight must be >= 0 and lr > 0, got {margin}, {ce_weight}, {lr}")
        self.save_hyperparameters(ignore=["model"])
        from ..losses.cross_entropy import ScaledCrossEntropy
        from ..losses.triplet import BatchAllTripletLoss

        self.triplet = BatchAllTripletLoss(margin=margin, distance="euclidean", gather=True)
        self.cross_entropy = ScaledCrossEntropy(scale=ce_scale, label_smoothing=label_smoothing)
        self.train_loss = MeanMetric()
        self.init_report: dict[str, list[str]] | None = None
        #: The protocol's numbers after a test epoch (:func:`graphfuse.metrics.gait.evaluate_gait`).
        self.gait_results: dict[str, Any] | None = None

    # -- inputs ------------------------------------------------------------------------------------------
    def default_input_names(self) -> tuple[str, ...]:
        return ("silhouettes", "lengths")

    def model_inputs(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The network's inputs; ``lengths`` only where the batch has it (test batches)."""
        inputs: dict[str, Tensor] = {}
        for name in self.input_names:
            if name in batch:
                inputs[name] = batch[name]
            elif name not in _OPTIONAL_INPUTS:
                raise self.missing_input(name, batch)
        return inputs

    def _embeddings(self, out: Any, n: int) -> Tensor:
        emb = out.get("embeddings") if isinstance(out, Mapping) else None
        if emb is None:
            raise ValueError(f"{type(self.model).__name__} must return a dict with 'embeddings' (N, C, P)")
        if emb.ndim == 2:
            emb = emb.unsqueeze(-1)
        if emb.ndim != 3 or emb.shape[0] != n:
            raise ValueError(f"{type(self.model).__name__} returned embeddings of shape {tuple(emb.shape)}; "
                             f"expected ({n}, C, P)")
        return emb

    # -- set-up -------------------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        if stage != "fit" or self.hparams.init_weights is None or self.init_report is not None:
            return
        from lightning.pytorch.utilities import rank_zero_info

        # Before a resumed run's own checkpoint is restored (which then wins).
        self.init_report = load_initial_weights(self.model, self.hparams.init_weights)
        missing = self.init_report["missing"]
        rank_zero_info(f"initial weights from {self.hparams.init_weights}: {len(self.init_report['loaded'])} tensors; "
                       f"{len(missing)} left at their initialisation" + (f": {', '.join(missing)}" if missing else ""))

    def on_fit_start(self) -> None:
        for cb in getattr(self.trainer, "checkpoint_callbacks", []):
            if getattr(cb, "monitor", None) == self.monitor:
                raise ValueError("gait recipes have no validation split to select on: run with --run.select last "
                                 "(the gait configs set `run: {select: last}`)")

    # -- training ------------------------------------------------------------------------------------------
    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor:
        target, ids = batch[TARGET], batch[ID]
        inputs = self.model_inputs(batch)
        for name, value in inputs.items():
            self._check_finite(name, value, ids, "train", batch_idx)
        out = self.model(**inputs)
        emb = self._embeddings(out, int(target.shape[0]))
        self._check_finite("embeddings", emb, ids, "train", batch_idx)
        triplet, stats = self.triplet(emb.float(), target)
        loss = triplet
        n = int(target.shape[0])
        logits = out.get("logits") if isinstance(out, Mapping) else None
        if logits is not None and self.hparams.ce_weight > 0:
            self._check_finite("logits", logits, ids, "train", batch_idx)
            ce = self.cross_entropy(logits.float(), target)
            loss = loss + self.hparams.ce_weight * ce
            self.log("train/ce", ce.detach(), on_step=False, on_epoch=True, batch_size=n)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {self.global_step}, batch {batch_idx} "
                                     f"({self._sample_names(ids, 'train')})")
        self.train_loss.update(loss.detach(), weight=n)
        self.log("train/loss", self.train_loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=n)
        self.log("train/loss_step", loss.detach(), on_step=True, on_epoch=False)
        self.log("train/triplet", triplet.detach(), on_step=False, on_epoch=True, batch_size=n)
        for key, value in dict(stats).items():
            v = value.detach() if isinstance(value, Tensor) else torch.tensor(float(value))
            self.log(f"train/{key}", v.float(), on_step=False, on_epoch=True, batch_size=n,
                     prog_bar=key == "nonzero_fraction")
        return loss

    def validation_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        raise RuntimeError("gait recognition has no validation split (the recipes test their last iteration)")

    # -- test ------------------------------------------------------------------------------------------------
    def test_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        ids = batch[ID]
        emb = self._embeddings(self.model(**self.model_inputs(batch)), int(ids.shape[0]))
        self._check_finite("embeddings", emb, ids, "test", batch_idx)
        self._test_records.append({"index": ids.detach(), "embeddings": emb.detach().float()})

    def empty_test_record(self) -> dict[str, Tensor]:
        return {"embeddings": torch.zeros(0, 1, 1)}

    def predict_step(self, batch: Mapping[str, Tensor], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Tensor]:
        """``{"index", "embeddings" (N, C, P)}`` of the batch."""
        emb = self._embeddings(self.model(**self.model_inputs(batch)), int(batch[ID].shape[0]))
        return {"index": batch[ID], "embeddings": emb.float()}

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()  # gathered over ranks, one row per sequence, sorted by index
        results = self.test_results or {}
        index, emb = results["index"], results["embeddings"]
        dm = getattr(self.trainer, "datamodule", None)
        info_fn = getattr(dm, "evaluation_info", None)
        if not callable(info_fn):
            raise TypeError("gait evaluation needs a datamodule with evaluation_info() (GaitDataModule): the "
                             "subject, type and view of every test sequence")
        info = info_fn("test")
        n = len(info["labels"])
        if index.numel() != n or not torch.equal(index, torch.arange(n)):
            raise ValueError(f"the test embeddings cover {index.numel()} of the {n} test sequences")
        idx = index.numpy()
        self.gait_results = evaluate_gait(
            emb.to(self.device), info["labels"][idx], info["types"][idx], info["views"][idx],
            protocol=info["protocol"], distance=self.hparams.distance, cross_view=self.hparams.cross_view)
        self.gait_results["num_sequences"] = n
        for cond, r in self.gait_results["single_view"].items():
            self.log(f"test/{cond}", float(r["mean"]), on_step=False, on_epoch=True)
        for cond, r in (self.gait_results.get("cross_view") or {}).items():
            self.log(f"test/mAP_{cond}", float(r["mAP"]), on_step=False, on_epoch=True)

    def _selection_text(self) -> str:
        from ..runs import selection_text

        trainer = self._trainer
        for cb in getattr(trainer, "callbacks", []) if trainer is not None else []:
            select = getattr(cb, "select", None)
            if isinstance(select, str) and hasattr(cb, "run_dir"):
                return selection_text(select, self.monitor)
        return "the state given to `graphfuse test` (no selection by the task)"

    def test_report(self, run_dir: str | Path) -> dict[str, Any]:
        """After a test epoch (global rank zero): print the rank-1 table (conditions x probe
        views, means) with the selection rule, draw ``rank1_heatmaps.png`` in ``run_dir`` and
        return ``{"gait": numbers, "selection": text, "heatmaps": path}`` for ``summary.json``."""
        result = self.gait_results
        if result is None:
            return {}
        trainer = self._trainer
        ckpt = getattr(trainer, "ckpt_path", None) if trainer is not None else None
        selection = self._selection_text()
        title = (f"Gait evaluation, protocol {result['protocol']} ({result['distance']} distance, "
                 f"{result['num_sequences']} test sequences); checkpoint {ckpt or '(in memory)'}\n"
                 f"selection: {selection}")
        print()
        print(format_gait_table(result, title=title))
        path = plot_rank1_heatmaps(result, Path(run_dir) / "rank1_heatmaps.png",
                                   title=f"{Path(run_dir)}: rank-1 (%), single-view gallery\n{selection}")
        return {"gait": result, "selection": selection, "heatmaps": str(path)}

    # -- optimisation ------------------------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        hp = self.hparams
        groups = self.param_groups(hp.weight_decay)
        if hp.optimizer == "sgd":
            opt: torch.optim.Optimizer = torch.optim.SGD(groups, lr=hp.lr, momentum=hp.momentum,
                                                         weight_decay=hp.weight_decay)
        else:
            opt = torch.optim.Adam(groups, lr=hp.lr, weight_decay=hp.weight_decay)
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=sorted(int(m) for m in hp.milestones),
                                                     gamma=float(hp.gamma))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "frequency": 1}}
