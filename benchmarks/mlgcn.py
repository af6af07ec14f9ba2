"""Benchmark: multi-label networks (ML-GCN, the GMP baseline, HGAT_FC), training and evaluation
images/s on CPU (and on a GPU when one is present), model only (random images already in
memory: data loading and JPEG decoding are not timed).

    python benchmarks/mlgcn.py [--size 448] [--batch 4] [--threads 2] [--steps 3]
                               [--models mlgcn gmp hgat_fc] [--backbone resnet101] [--device cpu|cuda]
                               [--precision fp32|bf16]

Training is one SGD step (forward, MultiLabelSoftMarginLoss, backward, step) in train mode;
evaluation a forward in eval mode under ``torch.no_grad``. Results: docs/benchmarks.md,
"Multi-label networks".
"""

from __future__ import annotations

import argparse

import torch
from _timing import timed
from torch import nn

from graphfuse.models.mlgcn import HGATFC, MLGCN, ResNetBaseline


def build(name: str, backbone: str, size: int) -> nn.Module:
    if name == "mlgcn":
        return MLGCN(num_class=80, backbone=backbone, image_size=size)
    if name == "gmp":
        return ResNetBaseline(num_class=80, backbone=backbone, pool="max", image_size=size)
    if name == "hgat_fc":
        return HGATFC(num_class=80, backbone=backbone, image_size=size)
    raise ValueError(name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=448)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--models", nargs="+", default=["mlgcn", "gmp", "hgat_fc"])
    ap.add_argument("--backbone", default="resnet101")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"{args.backbone} {args.size}px batch {args.batch} on {device} ({args.threads} threads), {args.precision}")
    print("| model | parameters | train images/s | eval images/s |\n|---|---:|---:|---:|")
    for name in args.models:
        torch.manual_seed(0)
        net = build(name, args.backbone, args.size).to(device)
        x = torch.randn(args.batch, 3, args.size, args.size, device=device)
        y = (torch.rand(args.batch, 80, device=device) < 0.05).float()
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        loss_fn = nn.MultiLabelSoftMarginLoss()
        cast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")

        def train_step() -> None:
            net.train()
            opt.zero_grad(set_to_none=True)
            with cast:
                loss = loss_fn(net(x).float(), y)
            loss.backward()
            opt.step()

        def eval_step() -> None:
            net.eval()
            with torch.no_grad(), cast:
                net(x)

        t_train = timed(train_step, args.steps, device)
        t_eval = timed(eval_step, args.steps, device)
        params = sum(p.numel() for p in net.parameters())
        print(f"| {name} | {params / 1e6:.1f} M | {args.batch / t_train:.2f} | {args.batch / t_eval:.2f} |", flush=True)


if __name__ == "__main__":
    main()
