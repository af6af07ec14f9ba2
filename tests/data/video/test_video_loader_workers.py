"""Worker processes change neither the video batches (every item is seeded by the sampler, not by
a worker's RNG) nor OpenCV's thread count beyond one per worker (``limit_worker_threads``), and
they start even after this process ran OpenCV's thread pool (``cv2.setNumThreads`` in a worker
forked then hangs unless the datamodule stops the pool first)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from graphfuse.data.video.datamodule import VideoDataModule, limit_worker_threads


def _first_batches(path, workers: int) -> list[dict[str, torch.Tensor]]:
    dm = VideoDataModule(str(path), crop_size=24, batch_size=3, eval_batch_size=2, num_workers=workers,
                         val_protocol="released", seed=3)
    dm.setup("fit")
    train = dm.train_dataloader()
    assert train.num_workers == workers and (train.worker_init_fn is limit_worker_threads) == (workers > 0)
    return [next(iter(train)), next(iter(dm.val_dataloader()))]


def test_zero_and_two_workers_give_the_same_first_batches(prepared_video):
    in_process, workers = _first_batches(prepared_video, 0), _first_batches(prepared_video, 2)
    for a, b in zip(in_process, workers):
        assert a.keys() == b.keys() == {"rgb", "flow", "target", "id"}
        for key in a:
            assert torch.equal(a[key], b[key]), key
    assert in_process[0]["rgb"].shape == (3, 3, 5, 24, 24)  # augmented training clips (random crops, flips)


class _OpenCVThreads(Dataset):
    def __len__(self) -> int:
        return 1

    def __getitem__(self, i: int) -> torch.Tensor:
        import cv2

        return torch.tensor(cv2.getNumThreads())


@pytest.fixture()
def opencv_pool_running():
    """OpenCV's thread pool started in this process (a parallel resize), its setting restored after."""
    import cv2

    default = cv2.getNumThreads()
    cv2.setNumThreads(max(2, default))
    big = np.zeros((1200, 1200, 3), np.float32)
    for _ in range(3):
        cv2.resize(big, (900, 900), interpolation=cv2.INTER_CUBIC)
    yield max(2, default)
    cv2.setNumThreads(default)


def test_workers_run_opencv_single_threaded_after_the_pool_ran_here(prepared_video, opencv_pool_running):
    import cv2

    plain = next(iter(DataLoader(_OpenCVThreads(), num_workers=1)))  # no init: the inherited setting
    assert int(plain) == opencv_pool_running
    dm = VideoDataModule(str(prepared_video), crop_size=24, num_workers=1)
    options = dm._loader_options()  # what every video loader gets: stops this process's pool first
    assert options["worker_init_fn"] is limit_worker_threads and cv2.getNumThreads() == 1
    cv2.setNumThreads(opencv_pool_running)
    for _ in range(3):  # the pool runs again; the options are built again, as Lightning does per loader
        cv2.resize(np.zeros((1200, 1200, 3), np.float32), (900, 900), interpolation=cv2.INTER_CUBIC)
    limited = next(iter(DataLoader(_OpenCVThreads(), **dm._loader_options())))  # hung before the fix
    assert int(limited) == 1


def test_importing_the_datamodule_does_not_import_opencv():
    code = "import sys, graphfuse.data.video.datamodule; print('cv2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
