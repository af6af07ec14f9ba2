"""Where the CPU time of a Shift-GCN training step (or inference pass) goes: ``torch.profiler``.

Runs one warm-up step, then profiles ``--steps`` steps of forward + backward of
``cross_entropy(ShiftGCN()(x), y)`` (or, with ``--inference``, an eval forward under
``torch.inference_mode``) on a ``(batch, 3, frames, 25, 2)`` input, and prints the operators
sorted by self CPU time (``key_averages``), plus the share of the step spent in each group of
operators (convolution/matmul, BatchNorm, element-wise, gathers, copies/layout, allocation)::

    python benchmarks/profile_cpu.py [--batch 16] [--frames 300] [--threads 2] [--steps 1]
                                     [--inference] [--allocator tuned|default] [--rows 25]
                                     [--dtype fp32|bf16]

``--allocator tuned`` applies the glibc allocator tuning first (``mallopt``, as the ``graphfuse``
command does: ``graphfuse.cpu_defaults.CPU_MALLOC_DEFAULTS``).  Used to write the CPU breakdown in ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

#: Operator name fragments -> group (first match wins).
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("conv / matmul", ("conv", "mm", "matmul", "linear", "bmm")),
    ("batch norm", ("batch_norm", "native_batch_norm")),
    ("gather (index_select / index)", ("index_select", "index_fill", "index_add", "gather", "nonzero", "masked_fill")),
    ("copy / layout", ("copy_", "contiguous", "clone", "to_copy", "_to_copy")),
    ("allocation", ("empty", "zeros", "resize")),
    ("element-wise", ("add", "mul", "relu", "threshold", "tanh", "sub", "div", "sum", "mean", "where", "fill",
                      "clamp", "floor", "sqrt", "sigmoid", "exp", "cross_entropy", "log_softmax", "nll")),
)


def group_of(name: str) -> str:
    low = name.lower()
    for group, keys in GROUPS:
        if any(k in low for k in keys):
            return group
    return "other"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--rows", type=int, default=25)
    ap.add_argument("--inference", action="store_true")
    ap.add_argument("--allocator", choices=["tuned", "default"], default="tuned")
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32",
                    help="bf16: CPU autocast to bfloat16, as --trainer.precision bf16-mixed")
    args = ap.parse_args(argv)
    if args.allocator == "tuned":
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        for option in (-1, -3):  # M_TRIM_THRESHOLD, M_MMAP_THRESHOLD
            libc.mallopt(option, ctypes.c_int(2**31 - 1))
    import torch
    import torch.nn.functional as F
    from torch.profiler import ProfilerActivity, profile

    from graphfuse.models.shiftgcn import ShiftGCN

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = ShiftGCN(num_class=60)
    x = torch.randn(args.batch, 3, args.frames, 25, 2)
    y = torch.randint(0, 60, (args.batch,))
    if args.inference:
        model.eval()

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.dtype == "bf16"):
            if args.inference:
                with torch.inference_mode():
                    model(x)
                return
            for p in model.parameters():
                p.grad = None
            loss = F.cross_entropy(model(x), y)
        loss.backward()

    step()
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            step()
    wall = (time.perf_counter() - t0) / args.steps
    events = prof.key_averages()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))
    total = sum(e.self_cpu_time_total for e in events)
    share: dict[str, float] = defaultdict(float)
    for e in events:
        share[group_of(e.key)] += e.self_cpu_time_total
    kind = "inference" if args.inference else "training step"
    print(f"\n{kind}, {args.dtype}, batch {args.batch}, T={args.frames}, {args.threads} threads: "
          f"{wall:.2f} s per step (profiled), {args.batch / wall:.2f} samples/s")
    print("\n| group | self CPU s per step | share |\n|---|---:|---:|")
    for g, us in sorted(share.items(), key=lambda kv: -kv[1]):
        print(f"| {g} | {us / 1e6 / args.steps:.2f} | {100 * us / total:.0f}% |")


if __name__ == "__main__":
    main()
