"""Benchmark: forward + backward cost of each two-stream fusion operator
(:mod:`graphfuse.layers.stream_fusion`, Feichtenhofer et al. CVPR 2016) on CPU (or GPU).

Shapes (default):

* ``vgg16_relu5_3``: VGG-16's ``relu5_3`` maps of the paper's final model, ``(N, C, T, H, W) =
  (8, 512, 5, 14, 14)`` per stream (5 frames of 224 px crops);
* ``shiftgcn_l5``: Shift-GCN's ``l5`` output for NTU, ``(N*M, C, T, V) = (16, 128, 32, 25)`` per
  stream (8 samples x 2 bodies, 64-frame clips after the stride-2 unit);
* ``shiftgcn_l10``: ``l10``, ``(16, 256, 16, 25)``.

Operators: the spatial kinds ``sum``, ``max``, ``concat``, ``conv`` (1x1, 2C -> C, + ReLU) and
``bilinear`` (C*C outer products + signed sqrt + L2), and for the 5-D shape the temporal ones
``pool3d`` (5x2x2 max pooling) and ``concat+conv3d_pool3d`` (the final model's fusion: concat,
3x3x3 conv 2C -> C, ReLU, 3-D pooling). Each is timed as one forward and one backward of
``out.sum()`` with inputs requiring gradients: median of ``--repeats`` after ``--warmup``.
Run::

    python benchmarks/fusion_layers.py [--threads 2] [--repeats 5] [--device cpu] [--shapes ...]

and copy the table into ``docs/benchmarks.md`` with the machine it came from.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import torch

SHAPES: dict[str, tuple[int, ...]] = {
    "vgg16_relu5_3": (8, 512, 5, 14, 14),
    "shiftgcn_l5": (16, 128, 32, 25),
    "shiftgcn_l10": (16, 256, 16, 25),
}


def operators(shape: tuple[int, ...], device: torch.device) -> dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]:
    from graphfuse.layers.stream_fusion import SpatialFusion, TemporalFusion

    c = shape[1]
    ops: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {}
    for kind in ("sum", "max", "concat", "conv", "bilinear"):
        ops[kind] = SpatialFusion(kind, c).to(device)
    if len(shape) == 5:
        pool = TemporalFusion("pool3d", c).to(device)
        cat = SpatialFusion("concat", c).to(device)
        conv3d = TemporalFusion("conv3d_pool3d", 2 * c).to(device)
        ops["pool3d (per stream)"] = lambda a, b: pool(a) + pool(b)
        ops["concat+conv3d_pool3d"] = lambda a, b: conv3d(cat(a, b))
    return ops


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_op(op: Callable, shape: tuple[int, ...], device: torch.device, repeats: int, warmup: int) -> float:
    """Median seconds of forward + backward."""
    g = torch.Generator().manual_seed(0)
    a = torch.rand(shape, generator=g).to(device).requires_grad_()
    b = torch.rand(shape, generator=g).to(device).requires_grad_()
    times = []
    for i in range(warmup + repeats):
        a.grad = b.grad = None
        _sync(device)
        t0 = time.perf_counter()
        op(a, b).sum().backward()
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--shapes", nargs="*", default=list(SHAPES), choices=list(SHAPES))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"# fusion operators, forward + backward, {device} ({name}), {args.threads} threads, "
          f"torch {torch.__version__}; median of {args.repeats}")
    print("| shape | operator | out shape | parameters | fwd+bwd (ms) |")
    print("|---|---|---|---:|---:|")
    for key in args.shapes:
        shape = SHAPES[key]
        for op_name, op in operators(shape, device).items():
            with torch.no_grad():
                x = torch.zeros(shape, device=device)
                out_shape = tuple(op(x, x).shape)
            params = sum(q.numel() for q in op.parameters()) if isinstance(op, torch.nn.Module) else (
                0 if "conv3d" not in op_name else (2 * shape[1]) * shape[1] * 27 + shape[1])
            ms = 1000 * time_op(op, shape, device, args.repeats, args.warmup)
            print(f"| {key} {shape} | {op_name} | {out_shape} | {params:,} | {ms:.1f} |")


if __name__ == "__main__":
    main()
