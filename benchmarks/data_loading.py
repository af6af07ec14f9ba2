"""Benchmark: is data loading the bottleneck of training? One line per model family.

For each family, its quickstart config on its synthetic dataset is built as ``graphfuse fit``
builds it (:func:`graphfuse.info.build_model`: the task with its network, the output size from
the data), and its datamodule with the config's arguments except ``num_workers``, which keeps
the datamodule's own default (``--num-workers N`` sets it). Then, with the
optimiser of the task's ``configure_optimizers`` (``--device cuda``: the steps on the GPU, each
batch copied there as Lightning does, the step timed to its end on the GPU):

* **loaded**: ``--steps`` training steps (forward, loss, backward, optimiser step) on batches
  drawn from the real ``train_dataloader()``, the time of drawing them included;
* **cached**: the same number of steps on one batch drawn before (no loading at all).

The process gets the CPU defaults of the ``graphfuse`` command (``OMP_WAIT_POLICY=PASSIVE``
with ``GOMP_SPINCOUNT=1000``, glibc allocator options; :mod:`graphfuse.cli`). Both are timed after ``--warmup`` steps (the loader's worker start, if any, falls into the
warm-up), alternating one loaded and one cached step, at least ``--steps`` of each and more
until ``--seconds`` have passed. The line gives samples/s both ways, ``loaded / cached`` (1.00: loading costs
nothing; two separate timings, so a busy machine moves it a few per cent either way) and,
measured directly, the time the loaded steps waited for their batch (``next`` on the
loader) and its share of the loaded time. Synthetic data is generated
under ``--data-root`` on first use, as ``graphfuse fit`` does (once; minutes for video)::

    python benchmarks/data_loading.py [--families ntu pie coco ucf101 casia-b] [--steps 3] [--threads 2]
                                      [--num-workers N] [--device cpu|cuda]

Copy the table into ``docs/benchmarks.md`` ("Data loading") with the machine and its load.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO = Path(__file__).resolve().parents[1]

#: (short name, family, config). Every family of graphfuse.families.BUILTIN_FAMILIES has a line.
FAMILIES: list[tuple[str, str, str]] = [
    ("ntu", "skeleton_action", "configs/synthetic-ntu/shiftgcn/quickstart.yaml"),
    ("pie", "crossing_intention", "configs/synthetic-pie/pedgraph/quickstart.yaml"),
    ("coco", "multilabel", "configs/synthetic-coco/mlgcn/quickstart.yaml"),
    ("ucf101", "two_stream", "configs/synthetic-ucf101/two_stream/quickstart.yaml"),
    ("casia-b", "gait", "configs/synthetic-casia-b/gaitset/quickstart.yaml"),
]


def _datamodule(cfg: Any, data_root: Path, num_workers: int | None) -> Any:
    """The config's datamodule, ``num_workers`` left at the class default unless given."""
    data = cfg.data
    module, _, name = data.class_path.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    kwargs = dict(vars(data.init_args)) if data.init_args is not None else {}
    kwargs.pop("num_workers", None)
    if num_workers is not None:
        kwargs["num_workers"] = num_workers
    if "data_dir" in kwargs and not Path(kwargs["data_dir"]).is_absolute():
        rel = Path(kwargs["data_dir"])
        kwargs["data_dir"] = str(data_root / rel.relative_to("data") if rel.parts[:1] == ("data",) else data_root / rel)
    return cls(**kwargs)


def _optimizer(task: Any) -> Any:
    """The (first) optimiser of ``configure_optimizers`` in any of Lightning's return forms.

    A task whose schedule reads the trainer (one-cycle: ``estimated_stepping_batches``) gets a
    stand-in for that call only; the schedule does not matter for a few timed steps.
    """
    try:
        opt = task.configure_optimizers()
    except RuntimeError as exc:
        if "not attached to a `Trainer`" not in str(exc):
            raise
        task._trainer = SimpleNamespace(estimated_stepping_batches=10_000, max_epochs=100, max_steps=-1)
        try:
            opt = task.configure_optimizers()
        finally:
            task._trainer = None
    if isinstance(opt, dict):
        opt = opt["optimizer"]
    if isinstance(opt, (list, tuple)):
        opt = opt[0]
        if isinstance(opt, (list, tuple)):
            opt = opt[0]
        if isinstance(opt, dict):
            opt = opt["optimizer"]
    return opt


def _batch_size(batch: Any) -> int:
    import torch

    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0])
    if isinstance(batch, dict):
        return _batch_size(next(iter(batch.values())))
    if isinstance(batch, (list, tuple)):
        return _batch_size(batch[0])
    raise TypeError(f"cannot tell the batch size of a {type(batch).__name__}")


def _step(task: Any, opt: Any, batch: Any, i: int) -> None:
    import torch
    from lightning.pytorch.utilities import move_data_to_device

    batch = move_data_to_device(batch, task.device)  # what Lightning does before training_step
    out = task.training_step(batch, i)
    loss = out["loss"] if isinstance(out, dict) else out
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if task.device.type == "cuda":
        torch.cuda.synchronize()  # the step's time is the GPU's, not the launch queue's


def _batches(loader: Any) -> Iterator[Any]:
    while True:  # epochs, for a small training set
        yield from loader


def measure(short: str, config: str, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from graphfuse.info import build_model

    torch.manual_seed(0)
    t0 = time.perf_counter()
    task, cfg = build_model([str(REPO / config)])
    dm = _datamodule(cfg, args.data_root, args.num_workers)
    dm.prepare_data()
    dm.setup("fit")
    loader = dm.train_dataloader()
    ready = time.perf_counter() - t0
    task.to(args.device)
    task.train()
    opt = _optimizer(task)
    it = _batches(loader)
    for i in range(args.warmup):  # worker start-up (if any), first-call and first-shape costs
        _step(task, opt, next(it), i)
    cached_batch = next(it)
    m = _batch_size(cached_batch)
    _step(task, opt, cached_batch, 0)

    # Loaded and cached steps alternate, so that a change in the machine's load hits both.
    n, k, wait, loaded, cached = 0, 0, 0.0, 0.0, 0.0
    cached_times = []
    while k < args.steps or (loaded + cached < args.seconds and k < 200):
        t = time.perf_counter()
        batch = next(it)
        got = time.perf_counter()
        _step(task, opt, batch, k)
        done = time.perf_counter()
        n += _batch_size(batch)
        wait += got - t
        loaded += done - t
        _step(task, opt, cached_batch, k)
        cached_times.append(time.perf_counter() - done)
        cached += cached_times[-1]
        k += 1
    workers = getattr(loader, "num_workers", "?")
    return {"name": short, "workers": workers, "batch": m, "steps": k, "loaded": n / loaded,
            "cached": m * k / cached, "wait": wait / loaded, "wait_ms": 1000 * wait / k, "ready": ready,
            "step_ms": 1000 * statistics.median(cached_times)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", nargs="+", default=[f[0] for f in FAMILIES],
                    choices=[f[0] for f in FAMILIES])
    ap.add_argument("--steps", type=int, default=3, help="timed steps each way, at least (default 3)")
    ap.add_argument("--seconds", type=float, default=10.0,
                    help="more steps (up to 200) until both ways together took this long (default 10)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--num-workers", type=int, default=None,
                    help="DataLoader workers (default: each datamodule's own default)")
    ap.add_argument("--data-root", type=Path, default=REPO / "data",
                    help="where the synthetic datasets are (generated on first use; default: data/)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                    help="where the steps run (cuda: batches copied there each step, as Lightning does)")
    args = ap.parse_args(argv)

    # The CPU defaults `graphfuse fit` runs with: importing the command's module, before torch,
    # sets the OpenMP wait (OMP_WAIT_POLICY=PASSIVE, GOMP_SPINCOUNT=1000) and glibc's allocator
    # options (unless exported). Without the first, on a busy machine, one collate (torch.stack of a UCF101 batch, 2 threads) took
    # 49 ms instead of 1.2 ms: spinning OpenMP threads waited for cores other jobs held.
    importlib.import_module("graphfuse.cli")
    import torch

    from graphfuse.engine import quiet_third_party_warnings

    quiet_third_party_warnings()
    warnings.filterwarnings("ignore", message=".*self.log.*")  # no Trainer: logging is skipped
    if args.threads:
        torch.set_num_threads(args.threads)
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",) * 3
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads, OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY', 'unset')}, GOMP_SPINCOUNT="
          f"{os.environ.get('GOMP_SPINCOUNT', 'unset')}; load average {load[0]:.2f} {load[1]:.2f} "
          f"{load[2]:.2f}; steps on {args.device}; at least {args.steps} steps each way "
          f"(and {args.seconds:g} s) after {args.warmup}\n")
    print("| family | config | workers | batch | steps | loaded samples/s | cached samples/s | loaded / cached "
          "| waiting for a batch, ms (share) | cached step ms |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for short, family, config in FAMILIES:
        if short not in args.families:
            continue
        r = measure(short, config, args)
        print(f"| {family} ({short}) | `{config}` | {r['workers']} | {r['batch']} | {r['steps']} | {r['loaded']:.1f} | "
              f"{r['cached']:.1f} | {r['loaded'] / r['cached']:.2f} | {r['wait_ms']:.1f} ({100 * r['wait']:.1f}%) | "
              f"{r['step_ms']:.0f} |", flush=True)
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", file=sys.stderr)


if __name__ == "__main__":
    main()
