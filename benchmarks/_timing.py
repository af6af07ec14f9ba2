"""Timing helper shared by the benchmark scripts (run as ``python benchmarks/<name>.py``, so
this directory is on ``sys.path``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch


def timed(fn: Callable[[], Any], steps: int, device: torch.device) -> float:
    """Seconds per call of ``fn`` over ``steps`` calls after one warm-up call, with the CUDA
    queue drained before and after on a GPU."""
    fn()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / steps
