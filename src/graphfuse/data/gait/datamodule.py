"""LightningDataModule over a prepared gait folder (CASIA-B, OU-MVLP, synthetic CASIA-B).

Splits: ``train`` = the sequences of ``partition.train`` (CASIA-B: ids 001-074, OU-MVLP: the
odd ids); ``test`` = those of ``partition.test`` (gallery and probes together; the protocol in
``meta.json: protocol`` says which are which, :mod:`graphfuse.metrics.gait`). There is **no
validation split**: the gait recipes (GaitSet, GLN, OpenGait) train for a fixed number of
iterations and evaluate the last one, so runs use ``--run.select last`` (the configs set it)
and nothing is selected on the test set.

Training batches are ``P x K`` (``p`` identities, ``k`` sequences each;
:class:`graphfuse.data.samplers.PKSampler`), drawn from a seed shared by all DDP ranks, each
rank taking its slice (``P * K / world_size`` sequences). The sampler is iteration-based: an
"epoch" is ``iterations_per_epoch`` batches (the unit of ``metrics.csv`` rows and of the
``curves.png`` points); the recipe stops at ``trainer.max_steps``. Each training item is
``frames`` frames drawn by ``frame_sampling`` (:mod:`graphfuse.data.gait.dataset`).

Test batches hold ``test_batch_size`` whole sequences concatenated along the frame axis with
their ``lengths`` (any batch size gives the same embeddings). Batches::

    train: {"silhouettes": (N, frames, H, W) float32 in [0, 1], "target": (N,) int64 training
            class, "id": (N,) int64 (positions in the split; split_names gives <id>-<type>-<view>)}
    test:  {"silhouettes": (1, sum(lengths), H, W), "lengths": (N,), "target": (N,) (-1: a test
            id), "id": (N,)}
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from torch.utils.data import DataLoader

from graphfuse.data.base import PreparedDataModule, prepare_command_for
from graphfuse.data.gait.dataset import FRAME_SAMPLING, GaitDataset, collate_sequences, side_cut
from graphfuse.data.gait.sequences import GaitSequences
from graphfuse.data.samplers import PKSampler

__all__ = ["SYNTHETIC_OPTIONS", "GaitDataModule", "gait_prepare_command"]

#: The keys ``synthetic_options`` may set (keyword arguments of ``generate_synthetic_casia_b``).
SYNTHETIC_OPTIONS = ("num_ids", "num_train_ids", "num_frames", "size", "raw_height", "seed", "workers")


def gait_prepare_command(data_dir: str) -> str:
    """The command that prepares ``data_dir`` (a ``{data_dir}`` template), from the words of its
    path: ``synthetic`` -> ``graphfuse prepare synthetic-casia-b``, ``oumvlp`` -> ``oumvlp``,
    otherwise ``casia-b``."""
    return prepare_command_for(data_dir, [
        (["synthetic"], "graphfuse prepare synthetic-casia-b --out {data_dir}"),
        (["oumvlp", "ou", "mvlp"], "graphfuse prepare oumvlp --root <OU-MVLP silhouette folder> --out {data_dir}"),
    ], "graphfuse prepare casia-b --root <CASIA-B silhouette folder (<id>/<type>/<view>/*.png)> --out {data_dir}")


class GaitDataModule(PreparedDataModule):
    """Loaders over a folder written by ``graphfuse prepare casia-b | oumvlp | synthetic-casia-b``.

    Args:
        data_dir: the prepared folder (holds ``meta.json``); default the synthetic data's folder.
        p: identities per global training batch (OpenGait: 8 for CASIA-B, 32 for OU-MVLP).
        k: sequences per identity (16).
        frames: frames per training sequence (30).
        frame_sampling: ``fixed_unordered`` (GaitSet) or ``fixed_ordered`` (GLN).
        test_batch_size: sequences per evaluation batch (any value; all frames of each).
        iterations_per_epoch: training batches per "epoch" (the logging unit; the recipe's
            length is ``trainer.max_steps``).
        num_workers: DataLoader worker processes; ``"auto"`` (default): up to 8 per CUDA device,
            0 on the CPU (:func:`graphfuse.data.base.auto_loader_settings`).
        seed: the ``P x K`` draws and frame draws (a function of ``(seed, epoch, batch)``).
        pin_memory: DataLoader ``pin_memory``; ``"auto"`` (default): on CUDA only.
        synthetic: when ``meta.json`` is missing, generate the synthetic CASIA-B-format data
            there (:func:`graphfuse.data.synthetic.gait.generate_synthetic_casia_b`).
        synthetic_options: options of that generation (``num_ids``, ``num_train_ids``,
            ``num_frames``, ``size``, ``raw_height``, ``seed``, ``workers``); None = its defaults.
    """

    data_kind = "prepared gait data"
    prepare_command = gait_prepare_command("")
    synthetic_kind = "synthetic CASIA-B-format data"
    predict_key = "test"

    def __init__(
        self,
        data_dir: str = "data/synthetic-casia-b",
        p: int = 8,
        k: int = 16,
        frames: int = 30,
        frame_sampling: Literal["fixed_unordered", "fixed_ordered"] = "fixed_unordered",
        test_batch_size: int = 4,
        iterations_per_epoch: int = 500,
        num_workers: int | Literal["auto"] = "auto",
        seed: int = 0,
        pin_memory: bool | Literal["auto"] = "auto",
        synthetic: bool = False,
        synthetic_options: dict[str, int] | None = None,
    ) -> None:
        if p < 2 or k < 2:
            raise ValueError(f"p and k must be >= 2 (a triplet needs two identities and two sequences), got {p}, {k}")
        if frames < 1 or iterations_per_epoch < 1:
            raise ValueError(f"frames and iterations_per_epoch must be >= 1, got {frames}, {iterations_per_epoch}")
        if frame_sampling not in FRAME_SAMPLING[:2]:
            raise ValueError(f"frame_sampling must be 'fixed_unordered' or 'fixed_ordered', got {frame_sampling!r}")
        unknown = sorted(set(synthetic_options or {}) - set(SYNTHETIC_OPTIONS))
        if unknown:
            raise ValueError(f"synthetic_options: unknown key(s) {unknown}; valid: {list(SYNTHETIC_OPTIONS)}")
        super().__init__(data_dir, batch_size=p * k, eval_batch_size=test_batch_size, num_workers=num_workers,
                         seed=seed, drop_last=False, pin_memory=pin_memory, synthetic=synthetic)
        self.save_hyperparameters()
        self.p, self.k = int(p), int(k)
        self.frames = int(frames)
        self.frame_sampling = frame_sampling
        self.test_batch_size = int(test_batch_size)
        self.iterations_per_epoch = int(iterations_per_epoch)
        self.prepare_command = gait_prepare_command(str(data_dir))
        self.synthetic_options = {key: int(v) for key, v in (synthetic_options or {}).items()}
        self._sequences: GaitSequences | None = None

    # -- the family's part of PreparedDataModule ------------------------------------------------
    @property
    def sequences(self) -> GaitSequences:
        """The folder's :class:`GaitSequences` (frames memory-mapped), opened once."""
        if self._sequences is None:
            if not self.meta_path.is_file():
                _ = self.meta  # the missing-data error, or synthetic generation
            self._sequences = GaitSequences(self.data_dir)
        return self._sequences

    def read_meta(self) -> dict[str, Any]:
        """``meta.json``, checked together with the arrays by :class:`GaitSequences`."""
        self._sequences = GaitSequences(self.data_dir)
        return self._sequences.meta

    def generate_synthetic(self) -> None:
        """The synthetic CASIA-B-format data (:func:`graphfuse.data.synthetic.gait.generate_synthetic_casia_b`)
        with ``synthetic_options``."""
        from graphfuse.data.synthetic.gait import generate_synthetic_casia_b  # lazy: only when asked

        generate_synthetic_casia_b(self.data_dir, **self.synthetic_options)

    def synthetic_meta(self) -> dict[str, Any]:
        """What ``meta.json`` of the data ``synthetic: true`` would generate says about classes and
        sizes, without generating it (for ``graphfuse info`` on a clean clone)."""
        import inspect

        from graphfuse.data.synthetic.gait import generate_synthetic_casia_b  # lazy

        defaults = {name: p.default for name, p in inspect.signature(generate_synthetic_casia_b).parameters.items()}
        options = {**defaults, **self.synthetic_options}
        return {"num_class": int(options["num_train_ids"]), "size": int(options["size"]), "protocol": "casia-b",
                "dataset": "synthetic-casia-b", "synthetic": True}

    def build_dataset(self, key: str) -> GaitDataset:
        """``train`` (``frame_sampling``), ``test`` (all frames), ``val`` (empty: no validation split)."""
        seqs = self.sequences
        if key == "train":
            return GaitDataset(seqs, seqs.split_indices("train"), self.frame_sampling, self.frames)
        if key == "val":
            return GaitDataset(seqs, np.zeros(0, np.int64), "all_ordered", with_lengths=True)
        return GaitDataset(seqs, seqs.split_indices("test"), "all_ordered", with_lengths=True)

    def dataset(self, stage: str) -> GaitDataset:
        """The dataset behind ``stage``'s loader (``fit``/``train``, ``test``, ``predict``; ``val`` is empty)."""
        return super().dataset(stage)  # type: ignore[return-value]

    # -- loaders ---------------------------------------------------------------------------------------
    def train_sampler(self, rank: int | None = None, world_size: int | None = None) -> PKSampler:  # type: ignore[override]
        """The ``P x K`` sampler of this process (rank and world size from the trainer unless given)."""
        trainer = self.trainer
        if rank is None:
            rank = int(trainer.global_rank) if trainer is not None else 0
        if world_size is None:
            world_size = int(trainer.world_size) if trainer is not None else 1
        ds = self.dataset("train")
        if len(ds) == 0:
            raise ValueError(f"{self.data_dir}: the training split is empty")
        return PKSampler(ds.targets, self.p, self.k, self.iterations_per_epoch, seed=self.seed,
                         num_replicas=world_size, rank=rank)

    def train_dataloader(self) -> DataLoader:
        """``P x K / world_size`` sequences per batch, this rank's slice of each global batch."""
        sampler = self.train_sampler()
        sampler = self.start_where_resumed(sampler, sampler.batch_size)
        return DataLoader(self.dataset("train"), batch_size=sampler.batch_size, sampler=sampler, drop_last=False,
                          **self._loader_options())

    def _eval_loader(self, stage: str) -> DataLoader:
        """Whole sequences, ``test_batch_size`` per batch, concatenated by :func:`collate_sequences`."""
        return DataLoader(self.dataset(stage), batch_size=self.test_batch_size, shuffle=False, drop_last=False,
                          **{**self._loader_options(), "collate_fn": collate_sequences})

    def val_dataloader(self) -> list:
        """No validation split (the recipes evaluate the last iteration): an empty list, so
        Lightning runs no validation."""
        return []

    # -- what the task reads --------------------------------------------------------------------------
    @property
    def protocol(self) -> str:
        """The evaluation protocol of the data (``meta.json: protocol``: ``casia-b`` / ``oumvlp``)."""
        return str(self.meta.get("protocol", "casia-b"))

    def evaluation_info(self, stage: str = "test") -> dict[str, Any]:
        """What the gait protocols need about ``stage``'s items, in item order: ``labels`` (subject
        ids), ``types``, ``views`` (numpy str arrays), the ``protocol`` and the ``dataset``."""
        ds = self.dataset(stage)
        return {"labels": ds.ids, "types": ds.types, "views": ds.views, "protocol": self.protocol,
                "dataset": self.meta.get("dataset")}

    def inference_options(self) -> dict[str, Any]:
        """What a model trained on this data needs at inference (recorded in checkpoints)."""
        meta = self.meta
        size = int(meta["size"])
        cut = side_cut(size)
        return {
            "datamodule": f"{type(self).__module__}.{type(self).__qualname__}",
            "dataset": meta.get("dataset"),
            "protocol": self.protocol,
            "size": size,
            "transform": f"uint8 / 255, {cut} columns cut from each side (OpenGait's BaseSilCuttingTransform)",
            "frame_sampling": {"train": self.frame_sampling, "frames": self.frames, "test": "all_ordered"},
            "input_names": ["silhouettes", "lengths"],
            "input_shapes": {"silhouettes": [None, size, size - 2 * cut]},
            "class_names": list(meta["partition"]["train"]),
        }
