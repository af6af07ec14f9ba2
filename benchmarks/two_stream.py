"""Benchmark: one training step of the two-stream fusion network (Feichtenhofer et al. 2016).

For each setting a :class:`graphfuse.models.two_stream.TwoStreamNet` is built (random weights)
and one SGD step (forward, the loss of :class:`graphfuse.tasks.ActionRecognition` with the
towers' loss terms, backward, optimiser step) is timed on clips ``rgb (N, 3, T, S, S)`` and
``flow (N, 20, T, S, S)``: median of ``--steps`` steps after one warm-up step. Settings
(default): the full-size VGG-M-2048 network of Table 1 (conv fusion at relu5, T = 1) and the
final architecture on VGG-M (3-D conv fusion + 3-D pooling, temporal tower kept, T = 5), at
112 and 224 px, batch ``--batch`` (default 2 clips). Run::

    python benchmarks/two_stream.py [--threads 2] [--batch 2] [--steps 3] [--device cpu]

and copy the table into ``docs/benchmarks.md`` with the machine it came from.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from graphfuse.models.two_stream import TwoStreamNet
from graphfuse.tasks import ActionRecognition

SETTINGS = {
    "vgg_m relu5 conv, T=1": {"fusion": "conv", "temporal": "none", "keep_temporal_tower": False,
                                  "prediction_fusion": False, "tower_loss": False, "num_frames": 1},
    "vgg_m final (3D conv+pool, FC8), T=5": {"fusion": "conv", "temporal": "conv3d_pool3d", "num_frames": 5},
}


def time_step(name: str, kw: dict, size: int, batch: int, steps: int, device: str) -> tuple[float, int]:
    torch.manual_seed(0)
    net = TwoStreamNet(101, "vgg_m_2048", freeze_rgb_below_fusion=True, **kw).to(device)
    task = ActionRecognition(net).to(device).train()
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=1e-3, momentum=0.9)
    rgb, flow = (t.to(device) for t in net.example_inputs(batch, kw["num_frames"], size=size))
    target = torch.randint(0, 101, (batch,), device=device)
    times = []
    for i in range(steps + 1):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = task.compute_loss(task(rgb=rgb, flow=flow), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - t0)
    params = sum(p.numel() for p in net.parameters())
    return statistics.median(times), params


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--sizes", type=int, nargs="+", default=[112, 224])
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}, "
          f"batch {args.batch} clips")
    print("| setting | px | params | s / step | frames / s |\n|---|---|---|---|---|")
    for name, kw in SETTINGS.items():
        for size in args.sizes:
            sec, params = time_step(name, kw, size, args.batch, args.steps, args.device)
            frames = args.batch * kw["num_frames"] * 2  # both streams
            print(f"| {name} | {size} | {params / 1e6:.2f} M | {sec:.2f} | {frames / sec:.1f} |")


if __name__ == "__main__":
    main()
