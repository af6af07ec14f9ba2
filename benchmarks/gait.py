"""Benchmark: GaitSet and GLN, a training step and test-set feature extraction, model only
(random silhouettes already in memory: data loading is not timed).

    python benchmarks/gait.py [--device cpu|cuda] [--models gaitset gln_p1 gln_p2]
                              [--p 4] [--k 4] [--frames 30] [--size 64] [--test-batch 4]
                              [--test-frames 70] [--threads 2] [--steps 2] [--amp]

* **Training step**: forward of a P x K batch of ``frames``-frame sequences, the batch-all
  triplet loss (margin 0.2; + 0.1 x scaled cross-entropy for GLN phase 2), backward, SGD
  (momentum 0.9, weight decay 5e-4): OpenGait's recipe. Reported as sequences/s and s/step.
* **Feature extraction**: ``eval()`` and ``no_grad``, ``--test-batch`` sequences of about
  ``--test-frames`` frames (lengths drawn from +-15%) concatenated along the frame axis with
  ``lengths`` (the test layout), sequences/s.
* **Set pooling** (CPU default sizes only): one segment max over the stacked frames (graphfuse)
  against a loop over the sequences (OpenGait's ``PackSequenceWrapper``), side by side.

Defaults: on CPU a reduced batch, P x K = 4 x 4, 30 frames, 64 x 44 for both networks (the
recipe's 8 x 16 x 30 frames at 128 x 88 does not fit this machine's time); ``--device cuda``
defaults to the recipe shapes: 8 x 16 x 30 frames, GaitSet at 64 x 44, GLN at 128 x 88, AMP
(fp16 autocast + GradScaler). Results: docs/benchmarks.md, "Gait recognition".
"""

from __future__ import annotations

import argparse
import os

import torch
from _timing import timed

from graphfuse.layers.set_pooling import set_max
from graphfuse.losses.cross_entropy import ScaledCrossEntropy
from graphfuse.losses.triplet import BatchAllTripletLoss
from graphfuse.models.gait import GLN, GaitSet


def build(name: str) -> torch.nn.Module:
    if name == "gaitset":
        return GaitSet()
    if name == "gln_p1":
        return GLN()
    if name == "gln_p2":
        return GLN(compact=True)
    raise ValueError(f"unknown model {name!r}: gaitset, gln_p1, gln_p2")


def silhouettes(shape: tuple[int, ...], device: torch.device, g: torch.Generator) -> torch.Tensor:
    """Random blobs in [0, 1] (the values do not change the cost)."""
    return (torch.rand(*shape, generator=g) > 0.6).float().to(device)


def pooling_comparison(threads: int) -> None:
    """Segment max vs a loop over sequences on GaitSet's block-1 output size (32 x 32 x 22)."""
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(60, 81, (16,), generator=g)
    x = torch.randn(int(lengths.sum()), 32, 32, 22, generator=g)

    def loop() -> torch.Tensor:
        out, start = [], 0
        for n in lengths.tolist():
            out.append(x.narrow(0, start, n).max(0).values)
            start += n
        return torch.stack(out)

    assert torch.equal(loop(), set_max(x, lengths))
    t_seg = timed(lambda: set_max(x, lengths), 5, torch.device("cpu"))
    t_loop = timed(loop, 5, torch.device("cpu"))
    print(f"\nset pooling, 16 sequences of 60-80 frames, 32 x 32 x 22 maps ({threads} threads): "
          f"segment max {t_seg * 1e3:.1f} ms, loop over sequences {t_loop * 1e3:.1f} ms")


def measure(name: str, h: int, p: int, k: int, amp: bool, args: argparse.Namespace, device: torch.device) -> None:
    """One table row: the training step and the feature extraction of model ``name`` at ``h`` rows."""
    torch.manual_seed(0)
    net = build(name).to(device)
    w = h * 11 // 16
    g = torch.Generator().manual_seed(0)
    x = silhouettes((p * k, args.frames, h, w), device, g)
    labels = torch.arange(p, device=device).repeat_interleave(k)
    triplet, ce = BatchAllTripletLoss(margin=0.2), ScaledCrossEntropy(16, 0.1)
    opt = torch.optim.SGD([q for q in net.parameters() if q.requires_grad], lr=0.1, momentum=0.9,
                          weight_decay=5e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=amp)

    def train_step() -> None:
        net.train()
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            out = net(x)
        loss, _ = triplet(out["embeddings"], labels)
        if "logits" in out:
            loss = loss + 0.1 * ce(out["logits"], labels)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    lengths = torch.randint(int(args.test_frames * 0.85), int(args.test_frames * 1.15) + 1,
                            (args.test_batch,), generator=g)
    xt = silhouettes((1, int(lengths.sum()), h, w), device, g)

    def extract() -> None:
        net.eval()
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            net(xt, lengths.to(device))

    t_train = timed(train_step, args.steps, device)
    t_test = timed(extract, args.steps, device)
    n_params = sum(q.numel() for q in net.parameters())
    print(f"| {name} | {h} x {w} | {n_params:,} | {t_train:.2f} | {p * k / t_train:.1f} | "
          f"{args.test_batch / t_test:.1f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--models", nargs="+", default=["gaitset", "gln_p1", "gln_p2"])
    ap.add_argument("--p", type=int, default=None, help="identities per batch (CPU 4, cuda 8)")
    ap.add_argument("--k", type=int, default=None, help="sequences per identity (CPU 4, cuda 16)")
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--size", type=int, default=None,
                    help="silhouette height (width = 11/16 of it): CPU 64; cuda 64 GaitSet, 128 GLN")
    ap.add_argument("--test-batch", type=int, default=4, help="sequences per extraction batch")
    ap.add_argument("--test-frames", type=int, default=70)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                    help="fp16 autocast + GradScaler (default: on for cuda)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    p = args.p or (8 if cuda else 4)
    k = args.k or (16 if cuda else 4)
    amp = cuda if args.amp is None else args.amp
    try:
        load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        load = "n/a"
    print(f"{device} ({args.threads} threads, load {load}); train P x K = {p} x {k} x {args.frames} frames; "
          f"test {args.test_batch} sequences of ~{args.test_frames} frames; AMP {amp}")
    print("| model | input | parameters | train s/step | train sequences/s | extraction sequences/s |\n"
          "|---|---|---:|---:|---:|---:|")
    for name in args.models:
        h = args.size or (128 if cuda and name.startswith("gln") else 64)
        measure(name, h, p, k, amp, args, device)
    if not cuda and args.size in (None, 64):
        pooling_comparison(args.threads)


if __name__ == "__main__":
    main()
