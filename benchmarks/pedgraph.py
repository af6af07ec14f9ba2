"""Benchmark: PedGraph inference cost on CPU for every PedGraph config.

For each config (default: the synthetic-PIE quickstart, the PedGraph+ PIE recipe and every
experiment of the research notes under ``configs/pie/pedgraph/``) the model section is built
with the same parser as ``graphfuse fit`` (``graphfuse.info.build_model``) and timed in eval
mode under ``torch.inference_mode``:

* **batch-1 latency**: median wall time of one forward pass on one sample (``--repeats``
  passes after ``--warmup``), the real-time use of the model;
* **batch-64 throughput**: samples per second of a forward pass on 64 samples (best of
  ``--steps``).

Inputs come from ``PedGraph.example_inputs(batch, frames)``: the pose
``(N, C, T, 19)``, the ego velocity ``(N, 2, T)`` and, when the config uses it, the image
crop ``(N, C_img, 192, 64)``; ``T`` is the observation length of the config's prepared
data (``graphfuse.info.observed_frames``: the prepared ``meta.json``, 16 for the synthetic
quickstart), 32 (the PedGraph+ recipe) when the data is not prepared, ``--frames`` to
override. Parameters are counted too. Run::

    python benchmarks/pedgraph.py [--configs CFG ...] [--threads 2] [--repeats 50] [--compile]

``--compile`` adds a row per config timed through ``torch.compile`` (inductor) with
``freezing`` (eval-mode weights as constants: BatchNorm folded into the convolutions, weights
pre-packed for oneDNN), under ``no_grad``.

``--cpu-defaults`` times under the CPU settings of the ``graphfuse`` command
(:mod:`graphfuse.cpu_defaults`: ``OMP_WAIT_POLICY=PASSIVE`` with ``GOMP_SPINCOUNT=1000``
unless exported, glibc keeps freed blocks), i.e. the eager latency ``graphfuse infer`` gets;
without it OpenMP's default (waiting threads spin) applies.

and copy the table into ``docs/benchmarks.md`` with the machine it came from.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings
from pathlib import Path

# torch is imported in main(): --cpu-defaults must set the OpenMP wait before OpenMP loads.

ROOT = Path(__file__).resolve().parents[1]


def default_configs() -> list[Path]:
    base = ROOT / "configs"
    found = sorted((base / "synthetic-pie").glob("pedgraph/*.yaml"))
    found += sorted((base / "pie").glob("pedgraph/*.yaml"))
    found += sorted((base / "pie").glob("pedgraph/notes/*.yaml"))
    return found


def time_config(path: Path, threads: int, repeats: int, warmup: int, steps: int,
                frames: int | None, compile: bool = False) -> dict:
    import torch

    from graphfuse.info import build_model, network_of, observed_frames

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        task, config = build_model([str(path)])
    net = network_of(task).eval()
    try:
        t = frames or observed_frames(config)
    except ValueError:  # the data is not prepared: time the PedGraph+ recipe's 32 observed frames
        t = 32
    torch.set_num_threads(threads)
    params = sum(p.numel() for p in net.parameters() if p.requires_grad)
    one = net.example_inputs(1, t)
    many = net.example_inputs(64, t)
    lat = []
    fn = net
    if compile:
        # Inductor with freezing: eval-mode weights become constants, BatchNorm folds into the
        # convolutions and the convolution weights are pre-packed for oneDNN (inference only).
        torch._dynamo.reset()
        with torch._inductor.config.patch(freezing=True), torch.no_grad():
            fn = torch.compile(net, dynamic=False)  # one graph per batch size
            fn(*one)
            fn(*many)
    # inference_mode tensors cannot enter a compiled graph's frozen constants: no_grad there.
    with torch.no_grad() if compile else torch.inference_mode():
        for _ in range(warmup):
            fn(*one)
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn(*one)
            lat.append(time.perf_counter() - t0)
        fn(*many)
        best = float("inf")
        for _ in range(steps):
            t0 = time.perf_counter()
            fn(*many)
            best = min(best, time.perf_counter() - t0)
    return {"config": str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path),
            "frames": t, "params": params, "latency_ms": 1000 * statistics.median(lat),
            "throughput": 64 / best}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="*", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--frames", type=int, default=None, help="override the observation length")
    ap.add_argument("--compile", action="store_true",
                    help="also time torch.compile (inductor, freezing: BatchNorm folded, weights pre-packed)")
    ap.add_argument("--cpu-defaults", action="store_true",
                    help="the graphfuse command's CPU settings (OMP_WAIT_POLICY=PASSIVE, GOMP_SPINCOUNT=1000, "
                    "glibc mallopt)")
    args = ap.parse_args(argv)
    configs = args.configs or default_configs()
    if args.cpu_defaults:
        from graphfuse.cpu_defaults import apply_env_defaults, tune_glibc_allocator

        apply_env_defaults()  # before torch (OpenMP) is loaded; an exported value wins
        tune_glibc_allocator()
    import torch

    wait = os.environ.get("OMP_WAIT_POLICY", "OpenMP default")
    spin = os.environ.get("GOMP_SPINCOUNT", "unset")
    print(f"torch {torch.__version__}, {args.threads} threads, OMP_WAIT_POLICY {wait}, GOMP_SPINCOUNT {spin}, eval mode, "
          "inference_mode\n")
    print("| config | T | params | mode | batch-1 latency (ms) | batch-64 samples/s |")
    print("|---|---:|---:|---|---:|---:|")
    for c in configs:
        for compiled in (False, True) if args.compile else (False,):
            r = time_config(c, args.threads, args.repeats, args.warmup, args.steps, args.frames, compiled)
            print(f"| {r['config']} | {r['frames']} | {r['params']:,} | {'compiled' if compiled else 'eager'} | "
                  f"{r['latency_ms']:.2f} | {r['throughput']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
