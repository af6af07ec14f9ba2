"""A tiny synthetic UCF101-format dataset generated as .avi files and prepared through the real
decoder and TV-L1 path, once per test session (3 classes x 6 clips, 40x40 pixels, 16-18 frames)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # _video_files


@pytest.fixture(scope="session")
def video_raw(tmp_path_factory) -> Path:
    """The generated download: ``raw/UCF-101/<Class>/*.avi`` and ``raw/ucfTrainTestlist/``."""
    from graphfuse.data.synthetic.ucf101 import generate_synthetic_ucf101

    raw = tmp_path_factory.mktemp("video") / "raw"
    generate_synthetic_ucf101(raw, classes=3, per_class=6, frames=(16, 18), size=40, seed=1)
    return raw


@pytest.fixture(scope="session")
def prepared_video(video_raw) -> Path:
    """``video_raw`` prepared with TV-L1 (the fast preset) at its own size."""
    from graphfuse.data.video.flow import TVL1_FAST
    from graphfuse.data.video.prepare import prepare_video_dataset

    out = video_raw.parent / "prepared"
    prepare_video_dataset("ucf101", video_raw, out, size=None, tvl1=TVL1_FAST, jobs=1, progress=False,
                          label="synthetic-ucf101")
    return out
