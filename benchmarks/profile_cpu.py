"""Where the CPU time of a Shift-GCN training step (or inference pass) goes, per ATen operator.

Runs ``--warmup`` untimed steps (default 5: a T = 300 training step page-faults in fresh heap
memory until about the fifth, and the timers would charge that to the operators), then times
``--steps`` steps of forward + backward of ``cross_entropy(ShiftGCN()(x), y)`` (or, with
``--inference``, an eval forward under ``torch.inference_mode``) on a ``(batch, 3, frames, 25,
2)`` input.  It prints the operators with the most time, and the share of the step spent in
each group of operators (convolution/matmul, BatchNorm, element-wise, gathers, copies/layout,
allocation)::

    python benchmarks/profile_cpu.py [--batch 16] [--frames 300] [--threads 2] [--steps 1] [--warmup 5]
                                     [--inference] [--allocator tuned|default] [--rows 25]
                                     [--dtype fp32|bf16] [--timer wall|profiler] [--by-shape]

``--timer wall`` (default) times every ATen call with the wall clock from a
``TorchDispatchMode`` (CPU operators are synchronous, so a call's wall time is its cost; the
sum comes to about 1.1x the untimed step).  ``--by-shape`` splits each operator by its
arguments' shapes and strides.  ``--timer profiler`` prints ``torch.profiler``'s table
(self CPU time) instead; it slows a T = 300 training step from 3.6 to 4.8 s, and charges the
gathers and convolutions 1.4-1.5x what the wall clock measures (docs/benchmarks.md, "Fifth round").

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
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first (heap steady state)")
    ap.add_argument("--rows", type=int, default=25)
    ap.add_argument("--inference", action="store_true")
    ap.add_argument("--allocator", choices=["tuned", "default"], default="tuned")
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32",
                    help="bf16: CPU autocast to bfloat16, as --trainer.precision bf16-mixed")
    ap.add_argument("--timer", choices=["wall", "profiler"], default="wall",
                    help="wall: each ATen call's wall time (TorchDispatchMode); profiler: torch.profiler")
    ap.add_argument("--by-shape", action="store_true", help="--timer wall: one row per operator and shapes")
    args = ap.parse_args(argv)
    if args.allocator == "tuned":
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        for option in (-1, -3):  # M_TRIM_THRESHOLD, M_MMAP_THRESHOLD
            libc.mallopt(option, ctypes.c_int(2**31 - 1))
    import torch
    import torch.nn.functional as F

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

    for _ in range(max(args.warmup, 1)):
        step()
    t0 = time.perf_counter()
    step()
    untimed = time.perf_counter() - t0
    kind = "inference" if args.inference else "training step"
    head = f"{kind}, {args.dtype}, batch {args.batch}, T={args.frames}, {args.threads} threads"
    if args.timer == "profiler":
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            t0 = time.perf_counter()  # the profiler's start-up not counted
            for _ in range(args.steps):
                step()
            wall = (time.perf_counter() - t0) / args.steps
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))
        seconds = {e.key: e.self_cpu_time_total / 1e6 for e in prof.key_averages()}
        print(f"\n{head}: {untimed:.2f} s per step untimed, {wall:.2f} s profiled")
        column = "self CPU s per step"
    else:
        timer = _wall_timer(torch, by_shape=args.by_shape)
        with timer:
            step()  # the mode's first use is slow: one step untimed under it
            timer.calls.clear()
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step()
            wall = (time.perf_counter() - t0) / args.steps
        seconds = {k: v[1] for k, v in timer.calls.items()}
        print("| operator | calls per step | ms per step |\n|---|---:|---:|")
        for key, (n, sec) in sorted(timer.calls.items(), key=lambda kv: -kv[1][1])[:args.rows]:
            print(f"| {key} | {n / args.steps:g} | {1e3 * sec / args.steps:.1f} |")
        print(f"\n{head}: {untimed:.2f} s per step untimed, {wall:.2f} s timed "
              f"(sum of the operators {sum(seconds.values()) / args.steps:.2f} s)")
        column = "wall s per step"
    total = sum(seconds.values())
    share: dict[str, float] = defaultdict(float)
    for key, sec in seconds.items():
        share[group_of(key.split(" ")[0])] += sec
    print(f"\n| group | {column} | share |\n|---|---:|---:|")
    for g, sec in sorted(share.items(), key=lambda kv: -kv[1]):
        print(f"| {g} | {sec / args.steps:.2f} | {100 * sec / total:.0f}% |")


def _wall_timer(torch, by_shape: bool):
    """A ``TorchDispatchMode`` that adds up each ATen call's wall time: ``.calls[key] = [calls,
    seconds]``, ``key`` the operator's name (with ``by_shape``, plus its tensor arguments' shapes,
    and strides where not contiguous)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    def describe(a) -> str:
        return str(tuple(a.shape)) + ("" if a.is_contiguous() else f" strides {a.stride()}")

    class WallTimer(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.calls: dict[str, list] = defaultdict(lambda: [0, 0.0])

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            t0 = time.perf_counter()
            out = func(*args, **(kwargs or {}))
            dt = time.perf_counter() - t0
            key = func.overloadpacket.__name__
            if by_shape:
                key += " " + ", ".join(describe(a) for a in args if isinstance(a, torch.Tensor))
            entry = self.calls[key]
            entry[0] += 1
            entry[1] += dt
            return out

    return WallTimer()

if __name__ == "__main__":
    main()
