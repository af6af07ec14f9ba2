"""Tests of graphfuse.data.base.PreparedDataModule (a toy family over a hand-written folder) and
of the old import paths of the NTU modules, which moved into graphfuse.data.ntu."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from graphfuse.data.base import PreparedDataModule
from graphfuse.data.checks import ValueCheckError
from graphfuse.data.samplers import EpochSeededSampler, NoSingletonBatchSampler
from graphfuse.io import read_json


class _ToyDataset(Dataset):
    """``n`` items ``{"x": (2,) float32 = [i, i], "target": i % 2, "id": i}`` named ``s<i>``."""

    def __init__(self, n: int, offset: int) -> None:
        self.n, self.offset = n, offset
        self.names = [f"s{offset + i}" for i in range(n)]

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        i = item[0] if isinstance(item, tuple) else item
        v = float(self.offset + i)
        return {"x": torch.tensor([v, v]), "target": torch.tensor((self.offset + i) % 2), "id": torch.tensor(i)}


class _ToyDataModule(PreparedDataModule):
    """A family that only reads meta.json's split sizes (no synthetic generator)."""

    prepare_command = "graphfuse prepare toy --root <toy files> --out {data_dir}"

    def __init__(self, data_dir: str, batch_size: int = 2, drop_last: bool = False, synthetic: bool = False) -> None:
        super().__init__(data_dir, batch_size=batch_size, drop_last=drop_last, synthetic=synthetic)
        self.save_hyperparameters()

    def read_meta(self) -> dict[str, Any]:
        return read_json(self.meta_path)

    def build_dataset(self, key: str) -> _ToyDataset:
        split = "test" if key == "predict" else key
        sizes = self.meta["sizes"]
        return _ToyDataset(sizes[split], offset=100 * ["train", "val", "test"].index(split))


class _SingletonSafeToy(_ToyDataModule):
    avoid_singleton_batches = True
    predict_key = "test"


def _write(root: Path, sizes: dict[str, int], checked: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {"num_class": 2, "sizes": sizes}
    if checked:
        meta["value_check"] = {"result": "passed"}
    (root / "meta.json").write_text(json.dumps(meta))
    return root


def test_missing_folder_names_the_folder_and_the_command(tmp_path):
    dm = _ToyDataModule(str(tmp_path / "nothing_here"))
    with pytest.raises(FileNotFoundError) as err:
        dm.prepare_data()
    msg = str(err.value)
    assert "nothing_here" in msg and f"graphfuse prepare toy --root <toy files> --out {dm.data_dir}" in msg
    assert "synthetic" not in msg  # the toy family cannot generate data, so it offers none
    for call in (lambda: dm.meta, lambda: dm.setup("fit"), lambda: dm.dataset("test")):
        with pytest.raises(FileNotFoundError, match="graphfuse prepare toy"):
            call()


def test_synthetic_without_a_generator_says_so(tmp_path):
    dm = _ToyDataModule(str(tmp_path / "d"), synthetic=True)
    with pytest.raises(NotImplementedError, match="cannot generate synthetic data"):
        dm.prepare_data()


def test_unchecked_values_are_refused(tmp_path):
    dm = _ToyDataModule(str(_write(tmp_path / "d", {"train": 3, "val": 1, "test": 1}, checked=False)))
    with pytest.raises(ValueCheckError, match="graphfuse check"):
        dm.setup("fit")


def test_stages_datasets_names_and_loaders(tmp_path):
    dm = _ToyDataModule(str(_write(tmp_path / "d", {"train": 5, "val": 3, "test": 4})), batch_size=2)
    assert dm.num_class == 2 and dm.hparams["batch_size"] == 2 and dm.eval_batch_size == 2
    dm.setup(None)
    assert set(dm._datasets) == {"train", "val", "test", "predict"}
    assert dm.dataset("fit") is dm.dataset("train") and dm.dataset("validation") is dm.dataset("val")
    assert dm.split_names("val") == ["s100", "s101", "s102"]
    with pytest.raises(ValueError, match="unknown stage"):
        dm.dataset("training")
    with pytest.raises(ValueError, match="unknown stage"):
        dm.setup("train")

    train = dm.train_dataloader()
    assert isinstance(train.sampler, EpochSeededSampler) and train.sampler.seed == 0
    ids = torch.cat([b["id"] for b in train]).tolist()
    assert sorted(ids) == [0, 1, 2, 3, 4]  # every sample once, in the sampler's seeded order
    assert ids == train.sampler.order().tolist()
    test = [b["x"][:, 0].tolist() for b in dm.test_dataloader()]
    assert test == [[200.0, 201.0], [202.0, 203.0]]  # dataset order, eval batch size
    assert dm.predict_dataloader().dataset is not dm.test_dataloader().dataset  # its own dataset


def test_training_guards_and_no_singleton_batches(tmp_path):
    root = _write(tmp_path / "d", {"train": 5, "val": 1, "test": 1})
    with pytest.raises(ValueError, match="no training batch"):
        _ToyDataModule(str(root), batch_size=8, drop_last=True).train_dataloader()
    empty = _write(tmp_path / "e", {"train": 0, "val": 1, "test": 1})
    with pytest.raises(ValueError, match="training split is empty"):
        _ToyDataModule(str(empty)).train_dataloader()
    with pytest.raises(ValueError, match="batch_size"):
        _ToyDataModule(str(root), batch_size=0)

    dm = _SingletonSafeToy(str(root), batch_size=2)
    loader = dm.train_dataloader()
    assert isinstance(loader.batch_sampler, NoSingletonBatchSampler)
    assert [len(b["id"]) for b in loader] == [2, 3]  # 5 = 2 + 3, never a batch of one
    assert dm.dataset("predict") is dm.dataset("test")


@pytest.mark.parametrize(
    "old, new, names",
    [
        ("graphfuse.data.datamodule", "graphfuse.data.ntu.datamodule", ["SkeletonDataModule", "stratified_holdout"]),
        ("graphfuse.data.skeleton", "graphfuse.data.ntu.dataset",
         ["SkeletonDataset", "load_meta", "resolve_file", "compute_stream", "STREAMS"]),
        ("graphfuse.data.skeleton", "graphfuse.data.samplers", ["EpochSeededSampler", "item_seeds"]),
        ("graphfuse.data.transforms", "graphfuse.data.ntu.transforms", ["UniformSample", "FrameSubsample", "Compose"]),
        ("graphfuse.data.streams", "graphfuse.data.ntu.streams", ["STREAMS", "bone", "motion", "compute_stream"]),
        ("graphfuse.data.intention.datamodule", "graphfuse.data.samplers",
         ["BalancedEpochSampler", "NoSingletonBatchSampler"]),
        ("graphfuse.data", "graphfuse.data.ntu.datamodule", ["SkeletonDataModule"]),
        ("graphfuse.data.ntu", "graphfuse.data.ntu.dataset", ["SkeletonDataset"]),
    ],
)
def test_old_import_paths_resolve_to_the_moved_objects(old, new, names):
    """Configs, run directories' config.yaml and checkpoints name the old paths."""
    old_mod, new_mod = importlib.import_module(old), importlib.import_module(new)
    for name in names:
        assert getattr(old_mod, name) is getattr(new_mod, name), f"{old}.{name}"


def test_an_old_class_path_in_a_config_builds_the_moved_class(tmp_path):
    from jsonargparse import ArgumentParser

    import lightning as L

    from graphfuse.data.ntu.datamodule import SkeletonDataModule

    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(L.LightningDataModule, "data")
    cfg = parser.parse_object({"data": {"class_path": "graphfuse.data.datamodule.SkeletonDataModule",
                                        "init_args": {"data_dir": str(tmp_path)}}})
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes
    dm = instantiate(cfg).data
    assert type(dm) is SkeletonDataModule and isinstance(dm, PreparedDataModule)
    assert np.isclose(dm.val_fraction, 0.05)


class _SlowGenerator(_ToyDataModule):
    """Generates the toy folder slowly and counts how often it was asked to."""

    def generate_synthetic(self) -> None:
        import time

        root = Path(self.data_dir)
        root.mkdir(parents=True, exist_ok=True)
        with open(root.parent / "generated.count", "a") as fh:
            fh.write("x")
        time.sleep(0.3)
        _write(root, {"train": 4, "val": 2, "test": 2})


def test_concurrent_first_use_generates_synthetic_data_once(tmp_path):
    """Ranks under torchrun or `ablate --jobs N` may all find no data: one generates, the
    others wait on the lock beside the folder and then read what it wrote."""
    import threading

    dms = [_SlowGenerator(str(tmp_path / "syn"), synthetic=True) for _ in range(3)]
    errors: list[BaseException] = []

    def use(dm: _SlowGenerator) -> None:
        try:
            dm.prepare_data()
            assert dm.num_class == 2
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=use, args=(dm,)) for dm in dms]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert (tmp_path / "generated.count").read_text() == "x"
