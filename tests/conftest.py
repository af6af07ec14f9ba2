"""Shared fixtures: a small synthetic NTU-format dataset, generated as .skeleton files and
prepared through the real reader and preparation (once per test session), the same for PIE,
and one short trained NTU run.

The whole session runs on one CPU thread, and so does every process it starts (``graphfuse
fit`` / ``ablate`` subprocesses, DDP workers inherit the environment): the tests use tiny shapes,
for which one thread is as fast as two, and torch's OpenMP threads spin while they wait for each
other, so beside another CPU-heavy process a multi-threaded suite runs several times slower (a
10-epoch fixture took 19-25 s on a quiet machine and 231 s beside another torch job; 36-42 s
with one thread; issue 10). One thread also makes the trained fixtures reproducible on any
machine: float reductions split over threads round differently, and the shared NTU run's best
validation top-1 is 0.6 on one thread but 0.5 on two.
"""

from __future__ import annotations

import os

# Before torch is imported (here or by a subprocess): OpenMP reads these at start-up.
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

# torch may already be imported (by a plugin): set the intra-op pool as well.
torch.set_num_threads(1)


def pytest_report_header(config) -> list[str]:
    """What the suite's time depends on, printed at its start."""
    try:
        load = "%.2f %.2f %.2f" % os.getloadavg()
    except OSError:  # not available on this platform
        load = "n/a"
    return [
        f"graphfuse: {os.cpu_count()} CPUs, load average {load}, torch threads {torch.get_num_threads()} "
        f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')})"
    ]


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
    """One torch thread for a test. The whole session already runs on one thread (see the
    module docstring); kept so that tests requesting it, or setting threads themselves, still
    end with one thread."""
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def synthetic_pie(tmp_path_factory):
    """Prepared synthetic PIE (default size: 948 / 288 / 468 train / val / test windows of 16
    frames), generated as PIE-layout XML + COCO pose JSON and prepared through the real PIE
    pipeline (once per test session)."""
    from graphfuse.data.synthetic.pie import prepare_synthetic_pie

    out = tmp_path_factory.mktemp("synthetic-pie")
    prepare_synthetic_pie(out, seed=0)
    return out


#: The shipped config the shared trained NTU run starts from.
NTU_QUICKSTART = "configs/synthetic-ntu/shiftgcn/quickstart.yaml"


@pytest.fixture(scope="session")
def trained_ntu_run(synthetic_ntu, tmp_path_factory):
    """One short `graphfuse fit` of the Shift-GCN quickstart on ``synthetic_ntu``, shared by
    every test that reads a finished run directory (once per session): 10 epochs (lr step at
    8), 8-frame clips, batch 8, 20 % of the training subjects' samples held out for validation
    (48 train / 12 val / 40 test). Returns ``<root>/tiny/version_0``; a test that writes into it
    (`graphfuse test` rewrites summary.json) must leave what the other tests read unchanged.

    8-frame clips are the smallest that still learn the synthetic actions in 10 epochs (best
    validation top-1 0.6, as with 16 frames) at about half the time of 16.
    """
    from pathlib import Path

    from graphfuse.cli import main

    repo = Path(__file__).resolve().parents[1]
    root = tmp_path_factory.mktemp("trained-ntu")
    rc = main([
        "fit", "-c", str(repo / NTU_QUICKSTART),
        f"--data.init_args.data_dir={synthetic_ntu}", "--data.init_args.synthetic=false",
        "--data.init_args.clip_len=8", "--data.init_args.batch_size=8", "--data.init_args.val_fraction=0.2",
        "--trainer.max_epochs=10", "--model.init_args.milestones=[8]",
        "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
        f"--run.root={root}", "--run.name=tiny",
    ])
    assert rc in (0, None), f"the shared training run failed (exit code {rc})"
    return root / "tiny" / "version_0"
