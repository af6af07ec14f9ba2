"""Shared fixtures: a small synthetic NTU-format dataset, generated as .skeleton files and
prepared through the real reader and preparation (once per test session)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session")
def synthetic_ntu(tmp_path_factory):
    """Prepared directory of 100 synthetic samples (10 subjects x 10 actions, one view):
    train = subjects 1, 2, 4, 5, 7, 9 (60 samples), test = 40 samples."""
    from graphfuse.data.synthetic.ntu import prepare_synthetic_ntu

    out = tmp_path_factory.mktemp("synthetic-ntu")
    prepare_synthetic_ntu(out, seed=0, workers=1, progress=False, cameras=(1,), replications=(1,))
    return out


@pytest.fixture
def one_thread():
    """Run a test with one torch thread: tiny shapes are faster so, and immune to OpenMP
    barrier stalls on a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def synthetic_pie(tmp_path_factory):
    """Prepared synthetic PIE (default size: 948 / 288 / 468 train / val / test windows of 16
    frames), generated as PIE-layout XML + COCO pose JSON and prepared through the real PIE
    pipeline (once per test session)."""
    from graphfuse.data.synthetic.pie import prepare_synthetic_pie

    out = tmp_path_factory.mktemp("synthetic-pie")
    prepare_synthetic_pie(out, seed=0)
    return out
