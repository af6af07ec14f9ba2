"""The prepared-data datamodule every family's datamodule builds on.

A family's ``graphfuse prepare`` writes a folder of arrays plus ``meta.json``; its datamodule
(``data/<family>/datamodule.py``) subclasses :class:`PreparedDataModule` and adds only what is
its own: how ``meta.json`` is read and checked (:meth:`~PreparedDataModule.read_meta`), how one
split's dataset is built (:meth:`~PreparedDataModule.build_dataset`), and, if it can, how
synthetic data in the real format is generated (:meth:`~PreparedDataModule.generate_synthetic`).
The base does the rest the same way for every family:

* ``meta.json`` read once, through the family's reader (which uses :func:`graphfuse.io.read_json`),
  and refused unless it records a passed value check (:func:`graphfuse.data.checks.require_checked`);
* one ``FileNotFoundError`` for a missing folder, naming the folder and the command that prepares it;
* ``prepare_data`` / ``setup`` / :meth:`~PreparedDataModule.dataset` /
  :meth:`~PreparedDataModule.split_names` over the stage keys ``train``, ``val``, ``test``
  (and ``predict`` where it differs from ``test``);
* the loaders: a seeded training sampler (:mod:`graphfuse.data.samplers`), so order and
  augmentation are a function of ``(seed, epoch)`` and resumed runs replay the same batches;
  evaluation loaders in dataset order; ``num_workers``, ``pin_memory``, ``persistent_workers``,
  with one default rule for every family (:func:`auto_loader_settings`).

Batches follow the contract of :mod:`graphfuse.tasks.base`: a dict of named inputs, ``target``
and ``id`` (the position in the stage's dataset; :meth:`split_names` maps it to the sample id).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import lightning as L
from lightning.pytorch.accelerators import CUDAAccelerator
from torch.utils.data import DataLoader, Dataset

from graphfuse.cpu_defaults import usable_cpus
from graphfuse.data.checks import require_checked
from graphfuse.data.samplers import EpochSeededSampler, NoSingletonBatchSampler

__all__ = ["MAX_AUTO_WORKERS", "STAGE_ALIASES", "PreparedDataModule", "auto_loader_settings",
           "items_done_this_epoch", "path_words"]

#: The most worker processes ``num_workers: auto`` starts per training process: what the shipped
#: GPU configs state (``num_workers: 8`` for NTU, COCO, UCF101, CASIA-B, OU-MVLP); more processes
#: mostly add memory (each holds its own dataset copy and prefetched batches).
MAX_AUTO_WORKERS = 8


def _on_cuda(trainer: Any) -> bool:
    """Whether ``trainer`` trains on CUDA devices (Lightning's ``CUDAAccelerator``)."""
    try:
        accelerator = trainer.accelerator  # a Trainer asserts its strategy has one
    except (AttributeError, AssertionError):
        return False
    return isinstance(accelerator, CUDAAccelerator)


def auto_loader_settings(trainer: Any | None) -> tuple[int, bool]:
    """``(num_workers, pin_memory)`` of ``num_workers: auto`` / ``pin_memory: auto`` under ``trainer``.

    * On CUDA: ``max(0, min(8, usable_cpus() // trainer.num_devices - 1))`` workers, pinned
      memory. Each of the ``num_devices`` training processes of a node gets an equal share of the
      usable cores (:func:`graphfuse.cpu_defaults.usable_cpus`), keeping one for itself (its main
      thread feeds the GPU), at most :data:`MAX_AUTO_WORKERS`. Pinned host memory lets the copy
      to the GPU run asynchronously.
    * On the CPU, or without a trainer (a datamodule used directly): 0 workers, no pinning.
      On the CPU the workers would compete with torch's own threads for the same cores, and
      loading is under 7 % of a CPU training step except for UCF101's JPEG clips
      (docs/benchmarks.md, "Data loading").
    """
    if trainer is None or not _on_cuda(trainer):
        return 0, False
    per_process = usable_cpus() // max(1, int(getattr(trainer, "num_devices", 1) or 1))
    return max(0, min(MAX_AUTO_WORKERS, per_process - 1)), True


def items_done_this_epoch(trainer: Any | None, batch_size: int) -> int:
    """Training items a fit resumed from a mid-epoch checkpoint already trained in its current
    epoch (``--run.every_n_steps``; Lightning has restored its loop counters when the loaders
    are built): ``batches done x batch_size``; 0 when not resuming mid-epoch, without a trainer,
    or with several processes (a distributed sampler wrapper cannot skip)."""
    loop = getattr(trainer, "fit_loop", None)
    if loop is None or trainer.world_size > 1:
        return 0
    # Lightning classifies the restart (``restarted_mid_epoch``) only after it has built the
    # loaders (``FitLoop.reset``); the same test on the restored epoch counters, here: an epoch
    # started and not processed.
    p = loop.epoch_progress.total
    mid_epoch = getattr(loop, "restarted_mid_epoch", False) or (
        loop.restarting and p.started == p.ready and p.processed == p.started - 1 and p.completed == p.processed
    )
    if not mid_epoch:
        return 0
    return max(0, int(loop.epoch_loop.batch_progress.current.processed)) * int(batch_size)


def path_words(data_dir: str | os.PathLike) -> set[str]:
    """The lower-case words of a folder's path (``data/jaad-all-obs32`` -> ``{data, jaad, all,
    obs32}``): how a datamodule guesses which ``graphfuse prepare`` command its missing folder
    needs."""
    return {w for part in Path(str(data_dir)).parts for w in re.split(r"[^a-z0-9]+", part.lower()) if w}


def prepare_command_for(data_dir: str | os.PathLike, rules: Sequence[tuple[Collection[str], str]],
                        default: str) -> str:
    """The ``graphfuse prepare`` command (a ``{data_dir}`` template) of the first rule one of
    whose words is among :func:`path_words` of ``data_dir``, else ``default``: how a datamodule
    names the command that writes its missing folder (``data/synthetic-coco`` ->
    ``graphfuse prepare synthetic-coco ...``)."""
    words = path_words(data_dir)
    return next((command for keys, command in rules if words & set(keys)), default)


#: Stage names accepted by :meth:`PreparedDataModule.dataset` -> dataset key.
STAGE_ALIASES: dict[str, str] = {
    "fit": "train",
    "train": "train",
    "validate": "val",
    "val": "val",
    "validation": "val",
    "test": "test",
    "predict": "predict",
}


class PreparedDataModule(L.LightningDataModule):
    """Loaders over a folder written by ``graphfuse prepare`` (``meta.json`` plus arrays).

    Subclasses implement :meth:`read_meta` and :meth:`build_dataset`, and set
    :attr:`prepare_command` (and :meth:`generate_synthetic` when they can generate data). They call
    ``self.save_hyperparameters()`` in their own ``__init__`` (it records the caller's arguments).

    Args:
        data_dir: the prepared directory (holds ``meta.json``).
        batch_size: training batch size.
        eval_batch_size: batch size of the val/test/predict loaders; None = ``batch_size``.
        num_workers: DataLoader worker processes (workers persist across epochs when > 0);
            ``"auto"`` (default): :func:`auto_loader_settings`, resolved when the loaders are
            built (on CUDA up to 8 per device, on the CPU or without a trainer 0). Batches do not
            depend on it (items are seeded by the sampler, not by a worker's RNG).
        seed: data-order and augmentation seed of the training sampler.
        drop_last: drop the last incomplete training batch.
        pin_memory: DataLoader ``pin_memory``; ``"auto"`` (default): on CUDA only.
        synthetic: when ``data_dir/meta.json`` is missing, generate synthetic data in the
            family's real format there (:meth:`generate_synthetic`) instead of raising.
    """

    #: What the folder holds, for the missing-data error ("prepared data", "prepared intention data").
    data_kind: ClassVar[str] = "prepared data"
    #: The command that prepares a folder for this datamodule; ``{data_dir}`` is filled in.
    prepare_command: ClassVar[str] = "graphfuse prepare <dataset> --root <raw files> --out {data_dir}"
    #: What ``synthetic: true`` generates, for the missing-data error ("synthetic data").
    synthetic_kind: ClassVar[str] = "synthetic data"
    #: Stage key -> dataset key: ``predict`` is its own dataset, or the same as ``test``.
    predict_key: ClassVar[str] = "predict"
    #: Train with :class:`NoSingletonBatchSampler` in a single process (a trailing batch of one
    #: joins the previous batch; for models with BatchNorm and ``drop_last=False``).
    avoid_singleton_batches: ClassVar[bool] = False
    #: ``collate_fn`` of every loader (None: PyTorch's default collation); set it with
    #: ``staticmethod(fn)`` in a subclass.
    collate_fn: ClassVar[Callable[[list[Any]], Any] | None] = None
    #: ``worker_init_fn`` of every loader with worker processes (None: none); set it with
    #: ``staticmethod(fn)`` in a subclass (the video family limits OpenCV's threads with it).
    worker_init_fn: ClassVar[Callable[[int], None] | None] = None

    def __init__(
        self,
        data_dir: str,
        batch_size: int,
        eval_batch_size: int | None = None,
        num_workers: int | Literal["auto"] = "auto",
        seed: int = 0,
        drop_last: bool = False,
        pin_memory: bool | Literal["auto"] = "auto",
        synthetic: bool = False,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if eval_batch_size is not None and eval_batch_size < 1:
            raise ValueError(f"eval_batch_size must be >= 1, got {eval_batch_size}")
        if num_workers != "auto" and (isinstance(num_workers, bool) or not isinstance(num_workers, int)
                                      or num_workers < 0):
            raise ValueError(f"num_workers must be an integer >= 0 or 'auto', got {num_workers!r}")
        if pin_memory != "auto" and not isinstance(pin_memory, bool):
            raise ValueError(f"pin_memory must be true, false or 'auto', got {pin_memory!r}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.data_dir = str(data_dir)
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size) if eval_batch_size is not None else int(batch_size)
        #: As configured: an int, or ``"auto"`` (:meth:`loader_settings` resolves it).
        self.num_workers: int | Literal["auto"] = num_workers if num_workers == "auto" else int(num_workers)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        #: As configured: a bool, or ``"auto"`` (:meth:`loader_settings` resolves it).
        self.pin_memory: bool | Literal["auto"] = pin_memory
        self.synthetic = bool(synthetic)
        self._meta: dict[str, Any] | None = None
        self._datasets: dict[str, Dataset] = {}

    # -- what a family provides ----------------------------------------------------------------
    def read_meta(self) -> dict[str, Any]:
        """Read and check ``meta.json`` of :attr:`data_dir` (the family's format and version).

        Raises:
            ValueError: naming the file, when it is not the family's format.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement read_meta()")

    def build_dataset(self, key: str) -> Dataset:
        """The dataset of ``key`` (``train``, ``val``, ``test``, or ``predict``), built once per key."""
        raise NotImplementedError(f"{type(self).__name__} must implement build_dataset()")

    def generate_synthetic(self) -> None:
        """Write synthetic data in the family's real format to :attr:`data_dir` (``synthetic: true``)."""
        raise NotImplementedError(f"{type(self).__name__} cannot generate synthetic data")

    # -- metadata --------------------------------------------------------------------------------
    @property
    def meta_path(self) -> Path:
        """``data_dir/meta.json``."""
        return Path(self.data_dir) / "meta.json"

    def _missing_error(self) -> FileNotFoundError:
        hint = f", or set `synthetic: true` to generate {self.synthetic_kind} there" if self._can_generate() else ""
        return FileNotFoundError(
            f"no {self.data_kind} in {self.data_dir!r} ({self.meta_path} is missing). Prepare it with "
            f"`{self.prepare_command.format(data_dir=self.data_dir)}`{hint}."
        )

    def _can_generate(self) -> bool:
        return type(self).generate_synthetic is not PreparedDataModule.generate_synthetic

    @property
    def meta(self) -> dict[str, Any]:
        """``meta.json`` of ``data_dir``, read once (generated first when ``synthetic``).

        Raises:
            FileNotFoundError: no prepared data and not ``synthetic`` (naming the prepare command).
            graphfuse.data.checks.ValueCheckError: ``meta.json`` records no passed value check.
        """
        if self._meta is None:
            if not self.meta_path.is_file():
                if not self.synthetic:
                    raise self._missing_error()
                # Properties are read by the CLI (argument links) before prepare_data runs.
                self.prepare_data()
            meta = self.read_meta()
            require_checked(meta, self.data_dir)  # values finite and plausible (graphfuse check)
            self._meta = meta
        return self._meta

    @property
    def num_class(self) -> int:
        """Number of classes (``meta.json: num_class``)."""
        return int(self.meta["num_class"])

    # -- Lightning hooks -------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Check that the prepared data exists; generate synthetic data when asked to."""
        if self.meta_path.is_file():
            return
        if not self.synthetic:
            raise self._missing_error()
        # Several processes may ask at once (ranks under torchrun, `graphfuse ablate --jobs N` on
        # first use): one generates, the others wait for it and then find the data there.
        with _generation_lock(Path(self.data_dir)):
            if self.meta_path.is_file():
                return
            self.generate_synthetic()
        if not self.meta_path.is_file():
            raise FileNotFoundError(f"generating synthetic data in {self.data_dir!r} wrote no {self.meta_path}")

    def _stage_keys(self) -> dict[str | None, tuple[str, ...]]:
        predict = self.predict_key
        every = ("train", "val", "test") + (("predict",) if predict == "predict" else ())
        return {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": (predict,), None: every}

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets of ``stage`` (``fit``, ``validate``, ``test``, ``predict``; None = all)."""
        keys = self._stage_keys()
        if stage not in keys:
            raise ValueError(f"unknown stage {stage!r}")
        for key in keys[stage]:
            self._build(key)

    def _build(self, key: str) -> Dataset:
        if key not in self._datasets:
            if not self.meta_path.is_file() and not self.synthetic:
                raise self._missing_error()
            _ = self.meta  # generates synthetic data when asked; refuses unchecked values
            self._datasets[key] = self.build_dataset(key)
        return self._datasets[key]

    def dataset(self, stage: str) -> Dataset:
        """The dataset behind ``stage``'s loader.

        ``stage``: ``fit``/``train``, ``validate``/``val``/``validation``, ``test`` or ``predict``.
        """
        if stage not in STAGE_ALIASES:
            raise ValueError(f"unknown stage {stage!r}; expected one of {sorted(STAGE_ALIASES)}")
        key = STAGE_ALIASES[stage]
        return self._build(self.predict_key if key == "predict" else key)

    def split_names(self, stage: str) -> list[str]:
        """Sample ids of ``stage``'s dataset; the ``id`` entries of its batches point into this list."""
        return self.dataset(stage).names  # type: ignore[attr-defined]

    # -- loaders ---------------------------------------------------------------------------------
    def train_sampler(self) -> EpochSeededSampler:
        """The training sampler: every sample once per epoch in a ``(seed, epoch)`` order."""
        return EpochSeededSampler(len(self.dataset("train")), seed=self.seed, shuffle=True)  # type: ignore[arg-type]

    def loader_settings(self) -> tuple[int, bool]:
        """``(num_workers, pin_memory)`` the loaders use now: the configured values, ``"auto"``
        resolved by :func:`auto_loader_settings` under the attached trainer (None when the
        datamodule is used directly)."""
        auto_workers, auto_pin = auto_loader_settings(self.trainer)
        workers = auto_workers if self.num_workers == "auto" else int(self.num_workers)
        pin = auto_pin if self.pin_memory == "auto" else bool(self.pin_memory)
        return workers, pin

    def _loader_options(self) -> dict[str, Any]:
        """The DataLoader keyword arguments every loader of the family shares: workers, pinning,
        persistent workers (when > 0), the family's ``collate_fn`` and ``worker_init_fn``."""
        workers, pin = self.loader_settings()
        options: dict[str, Any] = {"num_workers": workers, "pin_memory": pin, "persistent_workers": workers > 0}
        if self.collate_fn is not None:
            options["collate_fn"] = type(self).collate_fn
        if workers > 0 and self.worker_init_fn is not None:
            options["worker_init_fn"] = type(self).worker_init_fn
        return options

    def train_dataloader(self) -> DataLoader:
        ds = self.dataset("train")
        n = len(ds)  # type: ignore[arg-type]
        if n == 0:
            raise ValueError(f"{self.data_dir}: the training split is empty")
        if self.drop_last and n < self.batch_size:
            raise ValueError(
                f"{self.data_dir}: {n} training samples < batch_size {self.batch_size} with "
                "drop_last=True would give no training batch"
            )
        trainer = self.trainer
        sampler = self.start_where_resumed(self.train_sampler(), self.batch_size)
        if self.avoid_singleton_batches and not (trainer is not None and trainer.world_size > 1):
            batches = NoSingletonBatchSampler(sampler, self.batch_size, self.drop_last)
            return DataLoader(ds, batch_sampler=batches, **self._loader_options())
        # Under DDP Lightning wraps a plain sampler (DistributedSamplerWrapper keeps its order and
        # seeds) but would replace a custom batch sampler's; so the standard path there.
        return DataLoader(
            ds, batch_size=self.batch_size, sampler=sampler, drop_last=self.drop_last,
            **self._loader_options(),
        )

    def start_where_resumed(self, sampler: Any, batch_size: int) -> Any:
        """Position a training sampler (a graphfuse sampler: ``set_epoch``, ``skip_next``) for a
        fit resumed mid-epoch, before the loader's iterator exists: the resumed epoch's order,
        after the items already trained (:func:`items_done_this_epoch`). Done here, when the
        loader is built, because Lightning creates its iterator right after (with worker
        processes the iterator draws the sampler's indices at once); the sampler is marked
        ``resumed_mid_epoch`` so :class:`graphfuse.runs.MidEpochResume` knows."""
        items = items_done_this_epoch(self.trainer, batch_size)
        if items:
            sampler.set_epoch(self.trainer.current_epoch)
            sampler.skip_next(items)
            sampler.resumed_mid_epoch = True
        return sampler

    def _eval_loader(self, stage: str) -> DataLoader:
        return DataLoader(
            self.dataset(stage), batch_size=self.eval_batch_size, shuffle=False, drop_last=False,
            **self._loader_options(),
        )

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._eval_loader("predict")


@contextlib.contextmanager
def _generation_lock(data_dir: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``.<data_dir name>.generate.lock`` beside ``data_dir``, held
    while synthetic data is generated there (no-op where ``fcntl`` is missing)."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    data_dir = Path(os.path.abspath(data_dir))
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir.parent / f".{data_dir.name}.generate.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
