"""Benchmark: Shift-GCN training step (forward + backward) on CPU, and the temporal shift
against an ``F.grid_sample`` formulation.

    python benchmarks/shiftgcn.py [--frames 300 64] [--batch 16] [--threads 2]
                                  [--dtypes fp32 bf16] [--allocator default tuned]
                                  [--steps 3] [--skip-shift] [--skip-model]

Every model configuration runs in its own subprocess, so its peak resident memory
(``ru_maxrss``) is its own. ``samples/s`` counts forward + backward of
``cross_entropy(model(x), y)`` on a ``(batch, 3, frames, 25, 2)`` input (NTU layout, both
persons), best of ``--steps`` timed steps after one warm-up step; ``bf16`` means CPU
autocast to bfloat16.

``--allocator tuned`` raises glibc's mmap and trim thresholds with ``mallopt`` at process
start (the same as ``MALLOC_MMAP_THRESHOLD_=2147483647 MALLOC_TRIM_THRESHOLD_=2147483647``),
so freed activation buffers are reused instead of being returned to the kernel and
page-faulted in again on the next step.  At 300 frames each activation is ~60 MB, above
glibc's largest dynamic mmap threshold (32 MB), so with the default allocator every step
faults in ~20 GB of fresh pages.  The price is a higher peak RSS (freed memory is kept).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import resource
import subprocess
import sys
import time


def tune_glibc_allocator() -> bool:
    """Keep freed large blocks in the heap (glibc only); returns whether it applied."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    big = ctypes.c_int(2**31 - 1)
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(libc.mallopt(m_mmap_threshold, big)) and bool(libc.mallopt(m_trim_threshold, big))


# ----------------------------------------------------------------------------------------
# worker: one model configuration
# ----------------------------------------------------------------------------------------
def run_model(cfg: dict) -> dict:
    if cfg["allocator"] == "tuned" and not tune_glibc_allocator():
        return {"error": "mallopt unavailable"}
    import torch
    import torch.nn.functional as F

    from graphfuse.models.shiftgcn import ShiftGCN

    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(0)
    model = ShiftGCN(num_class=60)
    x = torch.randn(cfg["batch"], 3, cfg["frames"], 25, 2)
    y = torch.randint(0, 60, (cfg["batch"],))
    use_bf16 = cfg["dtype"] == "bf16"

    def step() -> None:
        for p in model.parameters():
            p.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
            loss = F.cross_entropy(model(x), y)
        loss.backward()

    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    step()
    times = []
    for _ in range(cfg["steps"]):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    best = min(times)
    return {"step_s": best, "samples_s": cfg["batch"] / best,
            "peak_gb": peak / 2**20, "base_gb": base_rss / 2**20}


# ----------------------------------------------------------------------------------------
# temporal shift vs grid_sample
# ----------------------------------------------------------------------------------------
def grid_sample_shift(x, xpos, ypos, stride: int):
    """The temporal shift written with ``F.grid_sample`` (bilinear, zero padding,
    ``align_corners=True``): channels folded into the batch, one sampling grid per channel.
    Samples at ``h*stride + ypos (+0.5 if stride != 1)`` along T and ``w + xpos`` along V.
    """
    import torch
    import torch.nn.functional as F

    n, c, t, v = x.shape
    t_out = t // stride
    y = ypos + (0.5 if stride != 1 else 0.0)
    py = torch.arange(t_out, dtype=x.dtype) * stride  # (To,)
    px = torch.arange(v, dtype=x.dtype)
    gy = (py.view(1, t_out, 1) + y.view(c, 1, 1)).expand(c, t_out, v)
    gx = (px.view(1, 1, v) + xpos.view(c, 1, 1)).expand(c, t_out, v)
    # normalise to [-1, 1] with align_corners=True: -1 -> index 0, +1 -> index size-1
    grid = torch.stack((gx * (2 / (v - 1)) - 1, gy * (2 / (t - 1)) - 1), dim=-1)  # (C, To, V, 2)
    grid = grid.unsqueeze(0).expand(n, c, t_out, v, 2).reshape(n * c, t_out, v, 2)
    out = F.grid_sample(x.reshape(n * c, 1, t, v), grid, mode="bilinear", padding_mode="zeros",
                        align_corners=True)
    return out.view(n, c, t_out, v)


def run_shift(cfg: dict) -> dict:
    if cfg["allocator"] == "tuned":
        tune_glibc_allocator()
    import torch

    from graphfuse.layers.shift import temporal_shift

    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(0)
    n, c, t, v, s = cfg["n"], cfg["c"], cfg["frames"], 25, cfg["stride"]
    x_cl = torch.randn(n, c, t, v).contiguous(memory_format=torch.channels_last)
    x_nchw = x_cl.contiguous()
    ypos = (torch.rand(c) * 8 - 4).requires_grad_()
    xpos = (torch.rand(c) * 2e-8 - 1e-8).requires_grad_()
    g_nchw = torch.randn(n, c, t // s, v)
    g_cl = g_nchw.contiguous(memory_format=torch.channels_last)  # as the model's gradients

    def best(fn, reps: int = 5) -> float:
        fn()
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        return min(ts) * 1e3

    res = {}
    for name, fn, xin, g, mode in (
        ("ours (official grad)", temporal_shift, x_cl, g_cl, "official"),
        ("ours (autograd)", temporal_shift, x_cl, g_cl, "autograd"),
        ("grid_sample", grid_sample_shift, x_nchw, g_nchw, None),
    ):
        xr = xin.clone().requires_grad_()
        args = (xr, xpos, ypos, s) + ((mode,) if mode else ())

        def fwd():
            with torch.no_grad():
                return fn(*args)

        def fwd_bwd(g=g):
            out = fn(*args)
            torch.autograd.grad(out, (xr, xpos, ypos), g)

        res[name] = (best(fwd), best(fwd_bwd))
    with torch.no_grad():
        ref = temporal_shift(x_cl.double(), xpos.double(), ypos.double(), s, "autograd")
        ours = temporal_shift(x_cl, xpos, ypos, s)
        gs = grid_sample_shift(x_nchw, xpos.detach(), ypos.detach(), s)
    res["max_abs_err"] = {"ours": (ours.double() - ref).abs().max().item(),
                          "grid_sample": (gs.double() - ref).abs().max().item()}
    return res


# ----------------------------------------------------------------------------------------
def _spawn(kind: str, cfg: dict) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--_worker", json.dumps({"kind": kind, **cfg})]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"rc {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, nargs="+", default=[300, 64])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, nargs="+", default=[os.cpu_count() or 1])
    ap.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    ap.add_argument("--allocator", nargs="+", default=["default", "tuned"], choices=["default", "tuned"])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--skip-shift", action="store_true")
    ap.add_argument("--skip-model", action="store_true")
    ap.add_argument("--_worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._worker:
        cfg = json.loads(args._worker)
        print(json.dumps(run_model(cfg) if cfg.pop("kind") == "model" else run_shift(cfg)))
        return

    import torch

    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, python {platform.python_version()}")
    if not args.skip_model:
        print("\n| frames | batch | threads | dtype | allocator | step s | samples/s | peak RSS GB |")
        print("|---:|---:|---:|---|---|---:|---:|---:|")
        for frames in args.frames:
            for threads in args.threads:
                for dtype in args.dtypes:
                    for alloc in args.allocator:
                        cfg = {"frames": frames, "batch": args.batch, "threads": threads, "dtype": dtype,
                               "allocator": alloc, "steps": args.steps}
                        r = _spawn("model", cfg)
                        if "error" in r:
                            print(f"| {frames} | {args.batch} | {threads} | {dtype} | {alloc} | error: {r['error']} | | |")
                        else:
                            print(f"| {frames} | {args.batch} | {threads} | {dtype} | {alloc} | "
                                  f"{r['step_s']:.2f} | {r['samples_s']:.2f} | {r['peak_gb']:.2f} |", flush=True)
    if not args.skip_shift:
        print("\nTemporal shift alone, (N*M=32, C=64, T, V=25) float32, ms (best of 5):\n")
        print("| T | stride | threads | implementation | forward ms | fwd+bwd ms | max abs err vs float64 |")
        print("|---:|---:|---:|---|---:|---:|---:|")
        for frames in args.frames:
            for stride in (1, 2):
                cfg = {"n": 32, "c": 64, "frames": frames, "stride": stride, "threads": args.threads[0],
                       "allocator": args.allocator[-1]}
                r = _spawn("shift", cfg)
                if "error" in r:
                    print(f"| {frames} | {stride} | error: {r['error']} |")
                    continue
                err = r.pop("max_abs_err")
                for name, (f_ms, fb_ms) in r.items():
                    e = err["grid_sample" if name == "grid_sample" else "ours"]
                    print(f"| {frames} | {stride} | {args.threads[0]} | {name} | {f_ms:.1f} | {fb_ms:.1f} | {e:.1e} |",
                          flush=True)


if __name__ == "__main__":
    main()
