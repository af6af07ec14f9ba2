"""The DataLoader settings every family shares (``graphfuse.data.base``): the ``num_workers: auto``
/ ``pin_memory: auto`` rule (on CUDA ``min(8, usable cores per device - 1)`` workers and pinned
memory; on the CPU or without a trainer none), explicit values used as given, the same
parameter types and defaults in every family's datamodule (configs with ``num_workers: 0`` or
``2`` still parse), and :func:`graphfuse.cpu_defaults.usable_cpus`."""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from lightning.pytorch.accelerators import CPUAccelerator, CUDAAccelerator
from torch.utils.data import Dataset

from graphfuse.cpu_defaults import usable_cpus
from graphfuse.data import base
from graphfuse.data.base import PreparedDataModule, auto_loader_settings
from graphfuse.io import read_json

# Loaders are only built here, never iterated: torch's warning about more workers than cores is noise.
pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create")


def _cuda_trainer(num_devices: int = 1) -> SimpleNamespace:
    """What the rule reads of a Lightning Trainer on CUDA (no GPU needed to build the accelerator)."""
    return SimpleNamespace(accelerator=CUDAAccelerator(), num_devices=num_devices, world_size=num_devices,
                           global_rank=0)


def _cpu_trainer(num_devices: int = 1) -> SimpleNamespace:
    return SimpleNamespace(accelerator=CPUAccelerator(), num_devices=num_devices, world_size=num_devices,
                           global_rank=0)


@pytest.mark.parametrize(("cpus", "devices", "workers"), [
    (32, 1, 8),   # capped at 8
    (16, 2, 7),   # 8 cores per device, one kept for the training process
    (16, 4, 3),
    (16, 16, 0),  # one core per device: loading stays in the training process
    (1, 1, 0),
    (6, 4, 0),    # 6 // 4 = 1 core per device
    (10, 3, 2),
])
def test_on_cuda_workers_share_the_usable_cores_and_memory_is_pinned(monkeypatch, cpus, devices, workers):
    monkeypatch.setattr(base, "usable_cpus", lambda: cpus)
    assert auto_loader_settings(_cuda_trainer(devices)) == (workers, True)


def test_on_the_cpu_or_without_a_trainer_loading_stays_in_process(monkeypatch):
    monkeypatch.setattr(base, "usable_cpus", lambda: 64)
    assert auto_loader_settings(None) == (0, False)
    assert auto_loader_settings(_cpu_trainer(4)) == (0, False)
    assert auto_loader_settings(SimpleNamespace(num_devices=1)) == (0, False)  # no accelerator known


def test_a_real_cpu_trainer_gives_no_workers():
    import lightning as L

    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    assert auto_loader_settings(trainer) == (0, False)


# -- the datamodule base -------------------------------------------------------------------------------
class _Items(Dataset):
    def __init__(self, n: int) -> None:
        self.n = n
        self.names = [f"s{i}" for i in range(n)]

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, item: Any) -> dict[str, torch.Tensor]:
        i = item[0] if isinstance(item, tuple) else item
        return {"x": torch.tensor([float(i)]), "target": torch.tensor(i % 2), "id": torch.tensor(i)}


def _noop_init(worker_id: int) -> None:
    pass


class _Toy(PreparedDataModule):
    prepare_command = "graphfuse prepare toy --out {data_dir}"
    worker_init_fn = staticmethod(_noop_init)

    def __init__(self, data_dir: str, num_workers: Any = "auto", pin_memory: Any = "auto") -> None:
        super().__init__(data_dir, batch_size=2, num_workers=num_workers, pin_memory=pin_memory)

    def read_meta(self) -> dict[str, Any]:
        return read_json(self.meta_path)

    def build_dataset(self, key: str) -> _Items:
        return _Items(5)


@pytest.fixture()
def toy_dir(tmp_path: Path) -> Path:
    (tmp_path / "meta.json").write_text(json.dumps({"num_class": 2, "value_check": {"result": "passed"}}))
    return tmp_path


def _settings(loader) -> tuple[int, bool, bool, Any]:
    return loader.num_workers, loader.pin_memory, loader.persistent_workers, loader.worker_init_fn


def test_auto_is_resolved_when_the_loaders_are_built(monkeypatch, toy_dir):
    monkeypatch.setattr(base, "usable_cpus", lambda: 5)
    dm = _Toy(str(toy_dir))
    assert dm.num_workers == "auto" and dm.pin_memory == "auto"  # as configured (hparams record it)
    assert _settings(dm.train_dataloader()) == (0, False, False, None)  # no trainer: in process
    dm.trainer = _cuda_trainer(1)
    for loader in (dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()):
        assert _settings(loader) == (4, True, True, _noop_init)
    dm.trainer = _cuda_trainer(2)
    assert dm.loader_settings() == (1, True)
    dm.trainer = _cpu_trainer(1)
    assert _settings(dm.train_dataloader()) == (0, False, False, None)


@pytest.mark.parametrize(("workers", "pin", "on_cuda", "on_cpu"), [
    (2, False, (2, False), (2, False)),
    (0, True, (0, True), (0, True)),
    (0, "auto", (0, True), (0, False)),
    ("auto", False, (4, False), (0, False)),
])
def test_explicit_values_are_used_as_given(monkeypatch, toy_dir, workers, pin, on_cuda, on_cpu):
    monkeypatch.setattr(base, "usable_cpus", lambda: 5)
    dm = _Toy(str(toy_dir), num_workers=workers, pin_memory=pin)
    dm.trainer = _cuda_trainer(1)
    assert dm.loader_settings() == on_cuda
    options = dm._loader_options()
    assert options["persistent_workers"] == (on_cuda[0] > 0)
    assert ("worker_init_fn" in options) == (on_cuda[0] > 0)
    dm.trainer = _cpu_trainer(1)
    assert dm.loader_settings() == on_cpu


@pytest.mark.parametrize(("workers", "pin"), [(-1, "auto"), ("many", "auto"), (True, "auto"), (1.5, "auto"),
                                              ("auto", "yes"), ("auto", 1)])
def test_bad_values_are_one_clear_error(toy_dir, workers, pin):
    with pytest.raises(ValueError, match="num_workers" if pin == "auto" else "pin_memory"):
        _Toy(str(toy_dir), num_workers=workers, pin_memory=pin)


# -- every family --------------------------------------------------------------------------------------
def _families() -> list[type]:
    from graphfuse.data.gait.datamodule import GaitDataModule
    from graphfuse.data.intention.datamodule import IntentionDataModule
    from graphfuse.data.multilabel.datamodule import MultiLabelDataModule
    from graphfuse.data.ntu.datamodule import SkeletonDataModule
    from graphfuse.data.video.datamodule import VideoDataModule

    return [SkeletonDataModule, IntentionDataModule, MultiLabelDataModule, VideoDataModule, GaitDataModule]


@pytest.mark.parametrize("cls", _families(), ids=lambda c: c.__name__)
def test_every_family_has_the_same_defaults_and_types(cls):
    params = inspect.signature(cls.__init__).parameters
    own = inspect.signature(PreparedDataModule.__init__).parameters
    for name in ("num_workers", "pin_memory"):
        assert params[name].default == "auto", (cls, name)
        assert params[name].annotation == own[name].annotation, (cls, name)  # the same type for jsonargparse
    doc = cls.__doc__ or ""
    assert "num_workers" in doc and '``"auto"``' in doc, cls  # the docstring states the default


@pytest.mark.parametrize("cls", _families(), ids=lambda c: c.__name__)
def test_configs_with_numbers_or_auto_parse(cls, tmp_path):
    """What LightningCLI does with ``data.init_args`` (jsonargparse checks the signature's types)."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(cls, "data", skip={"data_dir"})
    cases = [("num_workers: 0\npin_memory: false", 0, False), ("num_workers: 2\npin_memory: true", 2, True),
             ("num_workers: auto\npin_memory: auto", "auto", "auto"), ("{}", "auto", "auto")]
    for i, (text, workers, pin) in enumerate(cases):
        path = tmp_path / f"data{i}.yaml"
        path.write_text(text + "\n")
        cfg = parser.parse_args([f"--data={path}"])
        assert (cfg.data.num_workers, cfg.data.pin_memory) == (workers, pin), (cls, text)
        assert type(cfg.data.num_workers) is type(workers)
    cfg = parser.parse_args(["--data.num_workers", "3", "--data.pin_memory", "false"])
    assert cfg.data.num_workers == 3 and cfg.data.pin_memory is False
    with pytest.raises(Exception, match="num_workers"):
        parser.parse_args(["--data.num_workers", "lots"])


def test_the_gait_loaders_use_the_shared_options(monkeypatch, tmp_path):
    """Gait builds its own loaders (P x K sampler, sequence collation): the same rule applies."""
    from graphfuse.data.gait.datamodule import GaitDataModule
    from graphfuse.data.gait.dataset import collate_sequences

    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    from test_gait_datamodule import _write  # the gait tests' prepared-folder writer

    root = _write(tmp_path / "synthetic-casia-b")
    monkeypatch.setattr(base, "usable_cpus", lambda: 3)
    dm = GaitDataModule(str(root), p=2, k=2, frames=4, iterations_per_epoch=2)
    dm.trainer = _cuda_trainer(1)
    train, test = dm.train_dataloader(), dm.test_dataloader()
    assert _settings(train)[:3] == _settings(test)[:3] == (2, True, True)
    assert test.collate_fn is collate_sequences  # the evaluation collation is kept
    dm.trainer = None
    assert _settings(dm.train_dataloader())[:3] == (0, False, False)
    dm2 = GaitDataModule(str(root), p=2, k=2, num_workers=8, pin_memory=False)
    assert _settings(dm2.test_dataloader())[:3] == (8, False, True)


# -- usable_cpus ------------------------------------------------------------------------------------------
def test_usable_cpus_is_the_affinity_with_a_cpu_count_fallback(monkeypatch):
    if hasattr(os, "sched_getaffinity"):
        assert usable_cpus() == len(os.sched_getaffinity(0))
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3, 5})
        assert usable_cpus() == 3
        monkeypatch.delattr(os, "sched_getaffinity")
    monkeypatch.setattr(os, "cpu_count", lambda: 12)
    assert usable_cpus() == 12
    monkeypatch.setattr(os, "cpu_count", lambda: None)  # undeterminable
    assert usable_cpus() == 1
