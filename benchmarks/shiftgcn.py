"""Benchmark: Shift-GCN training step (forward + backward) on CPU, per model variant, and the
temporal shift against an ``F.grid_sample`` formulation.

Two model tables, chosen by ``--variants``:

* without ``--variants``: the official model swept over frames x threads x dtype x
  allocator (defaults ``--frames 300 64 --dtypes fp32 bf16 --allocator default tuned``)::

    python benchmarks/shiftgcn.py [--frames 300 64] [--batch 16] [--threads 2]
                                  [--dtypes fp32 bf16] [--allocator default tuned]
                                  [--steps 3] [--skip-shift] [--skip-model]
                                  [--inference] [--compile]

  ``--inference`` times eval-mode forward passes under ``no_grad`` instead of training
  steps; ``--compile`` wraps the model in ``torch.compile(fullgraph=True)`` (inductor) and
  reports the compiling first call as ``first s``.

* with ``--variants NAME... | all``: one row per Shift-GCN variant of issue 3 (defaults
  ``--frames 300 --dtypes fp32 --allocator tuned``; lists given explicitly are swept)::

    python benchmarks/shiftgcn.py --variants all --skip-shift [--frames 300] [--batch 16]
                                  [--threads 2] [--allocator tuned] [--steps 3]
    python benchmarks/shiftgcn.py --list-variants

  The variants are ``default`` (official), ``local_shift``, ``naive_shift`` and
  ``depthwise_separable`` (one constructor argument each), plus one per experiment config
  of the research notes, ``configs/ntu60-xsub/shiftgcn/notes/<name>.yaml``: the
  ``ShiftGCN`` keyword arguments are that config's ``model.init_args.model.init_args`` and
  ``T`` is ``ceil(frames / frame_stride)`` with the config's ``data.init_args.frame_stride``
  (``FrameSubsample``, the notes' ``reduce_frame``). A notes config with the same name and
  the same effective constructor arguments as a built-in variant is the same row. Each row
  also gives trainable parameters and GMAC per sample (``graphfuse.info.model_cost``: one
  ``(1, 3, T, 25, 2)`` eval forward, multiply-add = 1 MAC, only matmuls and convolutions
  counted), measured after the timed steps so they do not touch the peak RSS.

Every model configuration runs in its own subprocess, so its peak resident memory
(``ru_maxrss``) is its own. ``samples/s`` counts forward + backward of
``cross_entropy(model(x), y)`` on a ``(batch, 3, frames, 25, 2)`` input (NTU layout, both
persons), best of ``--steps`` timed steps after ``--warmup`` untimed ones (default 1); ``bf16``
means CPU autocast to bfloat16.  On the CPU a T = 300 training step reaches its steady state
only after about five steps: until the tuned heap has grown to its working size, every step
still page-faults in fresh memory (62,800, 43,600, 14,400 and 17,200 minor faults in steps 2-5,
none from step 6 on; docs/benchmarks.md, "Fifth round"), so ``--warmup 5`` gives the speed of
a long training run.

``--allocator tuned`` raises glibc's mmap and trim thresholds with ``mallopt`` at process
start (the same as ``MALLOC_MMAP_THRESHOLD_=2147483647 MALLOC_TRIM_THRESHOLD_=2147483647``),
so freed activation buffers are reused instead of being returned to the kernel and
page-faulted in again on the next step.  At 300 frames each activation is ~60 MB, above
glibc's largest dynamic mmap threshold (32 MB), so with the default allocator every step
faults in ~20 GB of fresh pages.  The price is a higher peak RSS (freed memory is kept).
``--allocator tcmalloc`` / ``jemalloc`` start the worker with that library in ``LD_PRELOAD``
(``graphfuse.cpu_defaults.allocator_preload``, what the ``graphfuse`` training subcommands use
where it is installed): as fast as ``tuned``, without glibc's fragmentation.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from graphfuse.cpu_defaults import PRELOAD_ALLOCATORS

#: The research notes' experiment configs, one variant each.
NOTES_DIR = Path(__file__).resolve().parents[1] / "configs" / "ntu60-xsub" / "shiftgcn" / "notes"

#: Built-in variants of issue 3: name -> ShiftGCN keyword arguments (beside the defaults).
BUILTIN_VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "local_shift": {"spatial_shift": "local"},
    "naive_shift": {"temporal_shift": "naive"},
    "depthwise_separable": {"temporal_pointwise": "depthwise_separable"},
}


#: ``--allocator`` values that preload a library into the worker (graphfuse.cpu_defaults, as the
#: ``graphfuse`` training subcommands do where it is installed).
PRELOADED = tuple(PRELOAD_ALLOCATORS)


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
def _setup(cfg: dict):
    """Allocator, threads, shift kernels and device of one worker; returns ``(torch, device)``."""
    if cfg.get("allocator") == "tuned" and cfg.get("device", "cpu") == "cpu" and not tune_glibc_allocator():
        raise RuntimeError("mallopt unavailable")
    if cfg.get("allocator") in PRELOADED:
        from graphfuse.cpu_defaults import preloaded_allocator

        if preloaded_allocator() != cfg["allocator"]:
            raise RuntimeError(f"{cfg['allocator']} was not loaded")
    import torch

    from graphfuse.layers.shift import set_shift_kernels

    torch.set_num_threads(cfg["threads"])
    set_shift_kernels(cfg.get("kernels", "auto"))
    device = torch.device(cfg.get("device", "cpu"))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return torch, device


def _sync(torch, device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def run_model(cfg: dict) -> dict:
    """One timed configuration; ``cfg`` may carry ``model_kwargs`` (ShiftGCN keyword
    arguments, default: the official model), ``cost`` (also return parameters and MACs),
    ``device`` (``cpu`` or ``cuda``) and ``kernels`` (the shift kernels: auto/torch/triton)."""
    try:
        torch, device = _setup(cfg)
    except RuntimeError as e:
        return {"error": str(e)}
    import torch.nn.functional as F

    from graphfuse.models.shiftgcn import ShiftGCN

    torch.manual_seed(0)
    kwargs = {"num_class": 60, **cfg.get("model_kwargs", {})}
    model = ShiftGCN(**kwargs).to(device)
    num_class, c, v, m = model.num_class, model.in_channels, model.num_point, model.num_person
    x = torch.randn(cfg["batch"], c, cfg["frames"], v, m).to(device)
    y = torch.randint(0, num_class, (cfg["batch"],)).to(device)
    use_bf16 = cfg["dtype"] == "bf16"
    inference = bool(cfg.get("inference"))
    if inference:
        model.eval()
    # --compile: torch.compile(fullgraph=True), inductor; the first (compiling) call is the warm-up.
    net = torch.compile(model, fullgraph=True) if cfg.get("compile") else model

    def step() -> None:
        if inference:
            with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                net(x)
            return
        for p in model.parameters():
            p.grad = None
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            loss = F.cross_entropy(net(x), y)
        loss.backward()

    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t_first = time.perf_counter()
    step()
    _sync(torch, device)
    first_s = time.perf_counter() - t_first
    for _ in range(cfg.get("warmup", 1) - 1):
        step()
    _sync(torch, device)
    times = []
    for _ in range(cfg["steps"]):
        t0 = time.perf_counter()
        step()
        _sync(torch, device)
        times.append(time.perf_counter() - t0)
    # CPU: the process's peak resident set; CUDA: the peak of allocated device memory.
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**30
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    best = min(times)
    res = {"step_s": best, "samples_s": cfg["batch"] / best, "first_s": first_s,
           "peak_gb": peak, "base_gb": base_rss / 2**20}
    if cfg.get("cost"):
        # After the timed steps: a batch-1 forward cannot raise the peak RSS measured above.
        from graphfuse.info import model_cost

        cost = model_cost(model.cpu(), (1, c, cfg["frames"], v, m))
        res.update(params=cost.trainable_params, gmac=cost.macs / 1e9)
    return res


def run_bf16_check(cfg: dict) -> dict:
    """bf16 autocast against fp32 on the same weights and input: logits and gradients.

    Beside it, as the yardstick, fp32 on the input perturbed at bf16's resolution (each value
    times ``1 + 2**-9 * N(0, 1)``, 2**-9 being bf16's unit roundoff): a deep BatchNorm network
    at initialisation amplifies any rounding, so the gradient error of bf16 means something
    only next to that of a perturbation of its size.  For each: the largest logit difference
    over the largest fp32 logit, the share of equal predicted classes, and over all
    parameters together (the shift positions excluded: the official rule keeps only a sign)
    the gradient's relative error ``|g - g_fp32| / |g_fp32|`` and cosine similarity."""
    torch, device = _setup(cfg)
    import torch.nn.functional as F

    from graphfuse.models.shiftgcn import ShiftGCN

    torch.manual_seed(0)
    model = ShiftGCN(num_class=60).to(device)
    x = torch.randn(cfg["batch"], 3, cfg["frames"], 25, 2).to(device)
    y = torch.randint(0, 60, (cfg["batch"],)).to(device)
    noisy = x * (1 + 2**-9 * torch.randn(x.shape).to(device))
    names = [k for k, _ in model.named_parameters() if not k.endswith(("xpos", "ypos"))]

    def run(inp, bf16: bool):
        model.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(inp)
            F.cross_entropy(logits, y).backward()
        params = dict(model.named_parameters())
        return logits.detach().float(), torch.cat([params[k].grad.detach().float().flatten() for k in names])

    l32, g32 = run(x, False)
    res = {}
    for name, (logits, grads) in (("bf16", run(x, True)), ("noise", run(noisy, False))):
        res[name] = {"logit_rel_err": ((logits - l32).abs().max() / l32.abs().max()).item(),
                     "argmax_agree": (logits.argmax(1) == l32.argmax(1)).float().mean().item(),
                     "grad_rel_err": ((grads - g32).norm() / g32.norm()).item(),
                     "grad_cos": F.cosine_similarity(grads, g32, dim=0).item()}
    return res


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
    py = torch.arange(t_out, dtype=x.dtype, device=x.device) * stride  # (To,)
    px = torch.arange(v, dtype=x.dtype, device=x.device)
    gy = (py.view(1, t_out, 1) + y.view(c, 1, 1)).expand(c, t_out, v)
    gx = (px.view(1, 1, v) + xpos.view(c, 1, 1)).expand(c, t_out, v)
    # normalise to [-1, 1] with align_corners=True: -1 -> index 0, +1 -> index size-1
    grid = torch.stack((gx * (2 / (v - 1)) - 1, gy * (2 / (t - 1)) - 1), dim=-1)  # (C, To, V, 2)
    grid = grid.unsqueeze(0).expand(n, c, t_out, v, 2).reshape(n * c, t_out, v, 2)
    out = F.grid_sample(x.reshape(n * c, 1, t, v), grid, mode="bilinear", padding_mode="zeros",
                        align_corners=True)
    return out.view(n, c, t_out, v)


def run_shift(cfg: dict) -> dict:
    torch, device = _setup(cfg)
    from graphfuse.layers.shift import set_shift_kernels, temporal_shift

    torch.manual_seed(0)
    n, c, t, v, s = cfg["n"], cfg["c"], cfg["frames"], 25, cfg["stride"]
    x_cl = torch.randn(n, c, t, v).to(device).contiguous(memory_format=torch.channels_last)
    x_nchw = x_cl.contiguous()
    ypos = (torch.rand(c) * 8 - 4).to(device).requires_grad_()
    xpos = (torch.rand(c) * 2e-8 - 1e-8).to(device).requires_grad_()
    g_nchw = torch.randn(n, c, t // s, v).to(device)
    g_cl = g_nchw.contiguous(memory_format=torch.channels_last)  # as the model's gradients

    def best(fn, reps: int = 5) -> float:
        fn()
        ts = []
        for _ in range(reps):
            _sync(torch, device)
            t0 = time.perf_counter()
            fn()
            _sync(torch, device)
            ts.append(time.perf_counter() - t0)
        return min(ts) * 1e3

    kernels = ["torch", "triton"] if device.type == "cuda" else ["torch"]
    rows = [(f"ours, {k} (official grad)", temporal_shift, x_cl, g_cl, "official", k) for k in kernels]
    rows += [(f"ours, {k} (autograd)", temporal_shift, x_cl, g_cl, "autograd", k) for k in kernels]
    rows.append(("grid_sample", grid_sample_shift, x_nchw, g_nchw, None, "torch"))
    res: dict[str, Any] = {}
    for name, fn, xin, g, mode, k in rows:
        xr = xin.clone().requires_grad_()
        args = (xr, xpos, ypos, s) + ((mode,) if mode else ())

        def fwd(fn=fn, args=args):
            with torch.no_grad():
                return fn(*args)

        def fwd_bwd(fn=fn, args=args, g=g, xr=xr):
            out = fn(*args)
            torch.autograd.grad(out, (xr, xpos, ypos), g)

        with set_shift_kernels(k):
            res[name] = (best(fwd), best(fwd_bwd))
    err = {}
    with torch.no_grad(), set_shift_kernels("torch"):
        ref = temporal_shift(x_cl.double(), xpos.double(), ypos.double(), s, "autograd")
        err["grid_sample"] = (grid_sample_shift(x_nchw, xpos.detach(), ypos.detach(), s).double() - ref).abs().max().item()
        for k in kernels:
            with set_shift_kernels(k):
                err[k] = (temporal_shift(x_cl, xpos, ypos, s).double() - ref).abs().max().item()
    res["max_abs_err"] = err
    return res


# ----------------------------------------------------------------------------------------
# variants: built-in ones and the research notes' configs
# ----------------------------------------------------------------------------------------
def _notes_variant(path: Path) -> tuple[dict[str, Any], int]:
    """``(ShiftGCN kwargs, frame_stride)`` of one notes config (a delta over joint.yaml: read
    with its ``_base_`` applied, graphfuse.config_files.resolve_config)."""
    from graphfuse.config_files import resolve_config

    conf = resolve_config(path)
    try:
        net = conf["model"]["init_args"]["model"]
        class_path, kwargs = net["class_path"], dict(net.get("init_args") or {})
    except (KeyError, TypeError) as exc:
        raise ValueError(
            f"{path}: no model.init_args.model.{{class_path, init_args}} ({exc!r} missing)"
        ) from None
    if class_path.rsplit(".", 1)[-1] != "ShiftGCN":
        raise ValueError(f"{path}: model.init_args.model.class_path is {class_path!r}, not a ShiftGCN")
    data = ((conf.get("data") or {}).get("init_args") or {})
    stride = data.get("frame_stride") or 1
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ValueError(f"{path}: data.init_args.frame_stride must be an integer >= 1, got {stride!r}")
    return kwargs, stride


def _effective(kwargs: dict[str, Any]) -> dict[str, Any]:
    """All ShiftGCN constructor arguments, defaults filled in (to recognise equal variants)."""
    import inspect

    from graphfuse.models.shiftgcn import ShiftGCN

    bound = inspect.signature(ShiftGCN).bind(**{"num_class": 60, **kwargs})
    bound.apply_defaults()
    return dict(bound.arguments)


def discover_variants(notes_dir: Path = NOTES_DIR) -> dict[str, dict[str, Any]]:
    """name -> ``{"kwargs": ShiftGCN kwargs, "frame_stride": k, "source": str}``.

    Built-in variants first, then one per ``notes_dir/*.yaml`` (sorted by name). A notes
    config named like a built-in variant with the same effective arguments merges into it;
    with different arguments it gets the name ``notes:<stem>``.
    """
    variants = {name: {"kwargs": kw, "frame_stride": 1, "source": "built-in"}
                for name, kw in BUILTIN_VARIANTS.items()}
    for path in sorted(Path(notes_dir).glob("*.yaml")):
        kwargs, stride = _notes_variant(path)
        try:
            eff = _effective(kwargs)
        except TypeError as exc:  # an argument ShiftGCN does not take
            raise ValueError(f"{path}: model.init_args.model.init_args: {exc}") from None
        rel = os.path.relpath(path, Path(__file__).resolve().parents[1])
        name = path.stem
        old = variants.get(name)
        if old is not None:
            if old["frame_stride"] == stride and _effective(old["kwargs"]) == eff:
                old["source"] += f" = {rel}"
                continue
            name = f"notes:{name}"
        variants[name] = {"kwargs": kwargs, "frame_stride": stride, "source": rel}
    return variants


def _describe(spec: dict[str, Any]) -> str:
    """The non-default constructor arguments of a variant, for ``--list-variants``."""
    eff, base = _effective(spec["kwargs"]), _effective({})
    diff = {k: v for k, v in eff.items() if base.get(k) != v}
    text = ", ".join(f"{k}={v!r}" for k, v in diff.items()) or "(official)"
    return text + (f"; frame_stride={spec['frame_stride']}" if spec["frame_stride"] != 1 else "")


# ----------------------------------------------------------------------------------------
def _spawn(kind: str, cfg: dict) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--_worker", json.dumps({"kind": kind, **cfg})]
    env = None
    if cfg.get("allocator") in PRELOADED:  # the worker starts with the library in LD_PRELOAD
        from graphfuse.cpu_defaults import allocator_preload

        try:
            plan = allocator_preload({k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
                                     | {"GRAPHFUSE_MALLOC": cfg["allocator"]})
        except ValueError as exc:
            return {"error": str(exc)}
        if plan is None:  # not Linux
            return {"error": f"{cfg['allocator']} cannot be preloaded on {sys.platform}"}
        env = plan[1]
    out = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"rc {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _variant_table(args: argparse.Namespace, variants: dict[str, dict[str, Any]], names: list[str]) -> None:
    """One row per variant x frames x threads x dtype x allocator; swept settings get columns."""
    swept = [(col, vals) for col, vals in (("threads", args.threads), ("dtype", args.dtypes),
                                           ("allocator", args.allocator)) if len(vals) > 1]
    fixed = [f"{col} {vals[0]}" for col, vals in (("threads", args.threads), ("dtype", args.dtypes),
                                                  ("allocator", args.allocator)) if len(vals) == 1]
    what = "eval forward (no_grad)" if args.inference else "forward + backward"
    what += ", torch.compile" if args.compile else ""
    print(f"\nShift-GCN variants, {what}, batch {args.batch}, {', '.join(fixed)}, "
          f"best of {args.steps} steps after {args.warmup} warm-up; GMAC per sample = one (1, 3, T, 25, 2) forward "
          "(matmuls and convolutions, multiply-add = 1 MAC):\n")
    cols = ["variant", "T", *(c for c, _ in swept),
            "params", "GMAC/sample", "step s", "samples/s", "peak RSS GiB"]
    print("| " + " | ".join(cols) + " |")
    print("|---|" + "---:|" + "---|" * len(swept) + "---:|" * 5)
    for name in names:
        spec = variants[name]
        for frames in args.frames:
            t = math.ceil(frames / spec["frame_stride"])
            for threads in args.threads:
                for dtype in args.dtypes:
                    for alloc in args.allocator:
                        cfg = {"frames": t, "batch": args.batch, "threads": threads, "dtype": dtype,
                               "allocator": alloc, "steps": args.steps, "warmup": args.warmup,
                               "model_kwargs": spec["kwargs"],
                               "cost": not args.no_cost, "inference": args.inference, "compile": args.compile}
                        r = _spawn("model", cfg)
                        setting = {"threads": threads, "dtype": dtype, "allocator": alloc}
                        head = [name, str(t)] + [str(setting[c]) for c, _ in swept]
                        if "error" in r:
                            cells = [f"error: {r['error']}", "", "", "", ""]
                        else:
                            cells = [f"{r['params'] / 1e6:.3f} M" if "params" in r else "-",
                                     f"{r['gmac']:.2f}" if "gmac" in r else "-",
                                     f"{r['step_s']:.2f}", f"{r['samples_s']:.2f}", f"{r['peak_gb']:.2f}"]
                        print("| " + " | ".join(head + cells) + " |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, nargs="+", default=None,
                    help="T of the input (default: 300 64; with --variants: 300). A notes config's "
                         "frame_stride k gives that variant ceil(T / k) frames")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, nargs="+", default=[os.cpu_count() or 1])
    ap.add_argument("--dtypes", nargs="+", default=None, choices=["fp32", "bf16"],
                    help="default: fp32 bf16; with --variants: fp32")
    ap.add_argument("--allocator", nargs="+", default=None, choices=["default", "tuned", *PRELOADED],
                    help="default: default tuned; with --variants: tuned")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1,
                    help="untimed steps before the timed ones (the first is reported as 'first s'); "
                         "5 for the steady state of CPU training at T = 300")
    ap.add_argument("--variants", nargs="+", metavar="NAME",
                    help="time these Shift-GCN variants ('all' = every one; see --list-variants) "
                         "instead of the official model's frames/dtype/allocator sweep")
    ap.add_argument("--list-variants", action="store_true", help="print the variants and exit")
    ap.add_argument("--notes-dir", type=Path, default=NOTES_DIR,
                    help="folder of the research notes' experiment configs (*.yaml)")
    ap.add_argument("--no-cost", action="store_true", help="skip the parameter / GMAC columns")
    ap.add_argument("--inference", action="store_true",
                    help="time eval-mode forward passes under no_grad instead of training steps")
    ap.add_argument("--compile", action="store_true",
                    help="torch.compile(fullgraph=True) the model (inductor); the compile is the warm-up "
                         "step, its time is printed as 'first s'")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                    help="cuda: CUDA events are drained around each step, and the memory column is the "
                         "peak of allocated device memory instead of the process's peak RSS")
    ap.add_argument("--kernels", nargs="+", default=["auto"], choices=["auto", "torch", "triton"],
                    help="shift kernels (graphfuse.layers.shift.set_shift_kernels); several: one row each")
    ap.add_argument("--check-bf16", action="store_true",
                    help="also compare bf16 autocast with fp32 on the same weights and input at each "
                         "--frames x --batch: logits and every parameter's gradient")
    ap.add_argument("--skip-shift", action="store_true")
    ap.add_argument("--skip-model", action="store_true")
    ap.add_argument("--_worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._worker:
        cfg = json.loads(args._worker)
        worker = {"model": run_model, "shift": run_shift, "bf16": run_bf16_check}[cfg.pop("kind")]
        print(json.dumps(worker(cfg)))
        return
    for opt in ("batch", "steps", "warmup"):
        if getattr(args, opt) < 1:
            ap.error(f"--{opt} must be >= 1")
    if any(t < 1 for t in args.threads) or any(f < 1 for f in args.frames or [1]):
        ap.error("--threads and --frames must be >= 1")
    by_variant = bool(args.variants)
    args.frames = args.frames or ([300] if by_variant else [300, 64])
    args.dtypes = args.dtypes or (["fp32"] if by_variant else ["fp32", "bf16"])
    args.allocator = args.allocator or (["tuned"] if by_variant else ["default", "tuned"])

    variants: dict[str, dict[str, Any]] = {}
    names: list[str] = []
    if by_variant or args.list_variants:
        variants = discover_variants(args.notes_dir)
    if args.list_variants:
        for name, spec in variants.items():
            print(f"{name:28s} {_describe(spec)}  [{spec['source']}]")
        return
    if by_variant:
        if "all" in args.variants:
            names = list(variants)
        else:
            unknown = [n for n in args.variants if n not in variants]
            if unknown:
                ap.error(f"unknown variant(s) {unknown}; known: all, {', '.join(variants)}")
            names = list(dict.fromkeys(args.variants))

    import torch

    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, python {platform.python_version()}")
    if by_variant and not args.skip_model:
        _variant_table(args, variants, names)
    elif not args.skip_model:
        what = "inference (eval, no_grad)" if args.inference else "training step (forward + backward)"
        mem = "peak CUDA GiB" if args.device == "cuda" else "peak RSS GiB"
        print(f"\n{what} on {args.device}{', torch.compile' if args.compile else ''}, "
              f"best of {args.steps} steps after {args.warmup} warm-up:\n")
        print(f"| frames | batch | threads | dtype | allocator | kernels | first s | step s | samples/s | {mem} |")
        print("|---:|---:|---:|---|---|---|---:|---:|---:|---:|")
        for frames in args.frames:
            for threads in args.threads:
                for dtype in args.dtypes:
                    for alloc in args.allocator:
                        for kernels in args.kernels:
                            cfg = {"frames": frames, "batch": args.batch, "threads": threads, "dtype": dtype,
                                   "allocator": alloc, "steps": args.steps, "warmup": args.warmup,
                                   "inference": args.inference,
                                   "compile": args.compile, "device": args.device, "kernels": kernels}
                            r = _spawn("model", cfg)
                            head = f"| {frames} | {args.batch} | {threads} | {dtype} | {alloc} | {kernels} |"
                            if "error" in r:
                                print(f"{head} error: {r['error']} | | | |")
                            else:
                                print(f"{head} {r['first_s']:.1f} | {r['step_s']:.3f} | {r['samples_s']:.2f} | "
                                      f"{r['peak_gb']:.2f} |", flush=True)
    if args.check_bf16:
        print(f"\nbf16 autocast vs fp32 on {args.device}, same weights and input, kernels {args.kernels[0]}:\n")
        print("| frames | batch | run | max logit diff / max logit | argmax agree | grad rel err | grad cosine |")
        print("|---:|---:|---|---:|---:|---:|---:|")
        for frames in args.frames:
            r = _spawn("bf16", {"frames": frames, "batch": args.batch, "threads": args.threads[0],
                                "device": args.device, "kernels": args.kernels[0], "allocator": args.allocator[-1]})
            if "error" in r:
                print(f"| {frames} | {args.batch} | error: {r['error']} |")
                continue
            for name, label in (("bf16", "bf16 autocast"), ("noise", "fp32, input x (1 + 2^-9 N(0,1))")):
                e = r[name]
                print(f"| {frames} | {args.batch} | {label} | {e['logit_rel_err']:.2e} | {e['argmax_agree']:.3f} | "
                      f"{e['grad_rel_err']:.3f} | {e['grad_cos']:.4f} |", flush=True)
    if not args.skip_shift:
        print(f"\nTemporal shift alone on {args.device}, (N*M=32, C=64, T, V=25) float32, ms (best of 5):\n")
        print("| T | stride | threads | implementation | forward ms | fwd+bwd ms | max abs err vs float64 |")
        print("|---:|---:|---:|---|---:|---:|---:|")
        for frames in args.frames:
            for stride in (1, 2):
                cfg = {"n": 32, "c": 64, "frames": frames, "stride": stride, "threads": args.threads[0],
                       "allocator": args.allocator[-1], "device": args.device}
                r = _spawn("shift", cfg)
                if "error" in r:
                    print(f"| {frames} | {stride} | error: {r['error']} |")
                    continue
                err = r.pop("max_abs_err")
                for name, (f_ms, fb_ms) in r.items():
                    e = err["grid_sample" if name == "grid_sample" else name.split(",")[1].split()[0]]
                    print(f"| {frames} | {stride} | {args.threads[0]} | {name} | {f_ms:.1f} | {fb_ms:.1f} | {e:.1e} |",
                          flush=True)


if __name__ == "__main__":
    main()
