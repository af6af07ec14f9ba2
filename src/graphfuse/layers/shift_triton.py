"""Fused Triton kernels for Shift-GCN's two shifts (the CUDA path of :mod:`graphfuse.layers.shift`).

Why: on a GPU the PyTorch path of the adaptive temporal shift (one integer gather, then the
2 x 2 bilinear kernel as a depthwise convolution) spends most of its time in cuDNN's grouped
direct convolution and in the gather's extra pass over an activation-sized tensor (profile:
``shared/measurements/shiftgcn_h200_profile.txt``: 29% of a training step, 55% of inference).
Each output of the shift is four weighted taps of the input, so it is one read of the input and
one write of the output, which is what these kernels do:

* :func:`temporal_shift_forward`: ``out[n, c, h, w] = sum_{ky, kx} k[c, ky, kx] *
  x[n, c, h*s + y1[c] + ky, w + x1[c] + kx]`` (zero outside the input), the formula of
  :class:`graphfuse.layers.shift._ShiftConv`, accumulated in float32 and stored in the output
  dtype (float32 or bfloat16 under autocast).
* :func:`temporal_shift_backward`: the adjoint, iterated over *input* positions so that every
  input gradient is written once (no atomics): ``gx[n, c, t, v] = sum_{ky, kx} k[c, ky, kx] *
  g[n, c, (t - y1 - ky) / s, v - x1 - kx]`` over the taps whose frame difference is a
  non-negative multiple of ``s`` inside the output; in the same pass the kernel gradient
  ``gk[c, ky, kx] = sum g * x`` over the same (input, tap) pairs, as per-program partial sums
  that are added in a fixed order afterwards (deterministic).  The gradients of ``ypos`` and
  ``xpos`` (official sign rule or autograd) follow from ``gk`` exactly as on the PyTorch path.
* :func:`gather_scale_forward` / :func:`gather_scale_backward`: the non-local spatial shift
  ``out[r, k] = x[r, index[k]] * scale[k]`` (``scale`` optional) and its backward
  ``gx[r, j] = g[r, inv[j]] * scale[inv[j]]``, ``gscale[k] = sum_r g[r, k] * x[r, index[k]]``,
  one pass each (the PyTorch path needs a gather and a product forward, a gather, two
  products and a reduction backward).

Memory layout: any strides (the model keeps channels-last activations, where channels are the
contiguous axis, so a tile of ``BLOCK_R`` rows x ``BLOCK_C`` channels reads whole cache lines).
All index arithmetic that can exceed 2**31 is done in int64.

The kernels are built on first use (``triton`` is imported then, never at import of this
module), once per interpreter mode: with ``TRITON_INTERPRET=1`` Triton runs them on CPU
tensors with numpy, which is how the test suite checks them against the PyTorch path on a
machine without a GPU (``tests/layers/test_shift_triton.py``).
"""

from __future__ import annotations

import functools
import importlib.util
import os
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "available",
    "gather_scale_backward",
    "gather_scale_forward",
    "interpreting",
    "temporal_shift_backward",
    "temporal_shift_forward",
]

# Tile sizes: rows (flattened (n, frame, joint)) x channels.  2,048 elements per program
# (4 warps x 32 threads x 16): large enough to hide latency, small enough for registers.
_BLOCK_R = 64
_BLOCK_C = 32
# Backward programs loop over row tiles so that the partial kernel-gradient sums stay small
# (at most this many row programs per channel block).
_MAX_ROW_PROGRAMS = 1024


def interpreting() -> bool:
    """True when Triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "yes", "on")


@functools.cache
def _triton_installed() -> bool:
    return importlib.util.find_spec("triton") is not None


def available(x: Tensor) -> bool:
    """Whether the kernels can run on ``x``'s device: CUDA with Triton installed, or any CPU
    tensor under Triton's interpreter."""
    if not _triton_installed():
        return False
    if x.device.type == "cuda":
        return not interpreting()
    return x.device.type == "cpu" and interpreting()


def _kernels() -> ModuleType:
    return _build(interpreting())


@functools.cache
def _build(interpret: bool) -> ModuleType:
    """Import the kernels module, a separate copy per interpreter mode (Triton reads the mode
    from the environment when a kernel is decorated, so a copy made under one mode cannot run
    under the other)."""
    name = f"{__package__}._shift_kernels" + ("_interpreted" if interpret else "")
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("_shift_kernels.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row_split(rows: int) -> tuple[int, int]:
    """(programs along rows, rows per program) for the backward kernels: rows per program a
    multiple of ``_BLOCK_R``, at most ``_MAX_ROW_PROGRAMS`` programs."""
    tiles = max(1, -(-rows // _BLOCK_R))
    per = -(-tiles // _MAX_ROW_PROGRAMS) * _BLOCK_R
    return max(1, -(-rows // per)), per


def _launch_kwargs() -> dict[str, Any]:
    return {"BLOCK_R": _BLOCK_R, "BLOCK_C": _BLOCK_C}


def _on(x: Tensor) -> AbstractContextManager[Any]:
    """Launch on ``x``'s GPU (Triton launches on the *current* device, which need not be
    ``x``'s, e.g. a model on ``cuda:1`` in a process that never set the device)."""
    return torch.cuda.device(x.device) if x.device.type == "cuda" else nullcontext()


def temporal_shift_forward(x: Tensor, kernel: Tensor, y1: Tensor, x1: Tensor, stride: int,
                           dtype: torch.dtype) -> Tensor:
    """Fused adaptive temporal shift: ``(N, C, T, V) -> (N, C, T // stride, V)`` in ``dtype``.

    ``kernel``: ``(C, 1, 2, 2)`` (or ``(C, 4)``) bilinear weights; ``y1``/``x1``: ``(C,)``
    integer offsets (see :class:`graphfuse.layers.shift._ShiftConv`).  The output has ``x``'s
    memory format (channels-last stays channels-last)."""
    kn = _kernels()
    n, c, t, v = x.shape
    t_out = t // stride
    fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    out = torch.empty((n, c, t_out, v), dtype=dtype, device=x.device, memory_format=fmt)
    k = kernel.detach().reshape(c, 4).to(torch.float32).contiguous()
    rows = n * t_out * v
    grid = (kn.cdiv(rows, _BLOCK_R), kn.cdiv(c, _BLOCK_C))
    with _on(x):
        kn.temporal_fwd[grid](x, k, y1.contiguous(), x1.contiguous(), out, rows, c, t_out, t, v, stride,
                              *x.stride(), *out.stride(), **_launch_kwargs())
    return out


def temporal_shift_backward(grad: Tensor, x: Tensor, kernel: Tensor, y1: Tensor, x1: Tensor, stride: int,
                            need_x: bool, need_k: bool) -> tuple[Tensor | None, Tensor | None]:
    """Gradients of :func:`temporal_shift_forward` for ``x`` (in ``x``'s dtype and memory
    format) and for ``kernel`` (``(C, 1, 2, 2)`` float32), each ``None`` when not needed."""
    kn = _kernels()
    n, c, t, v = x.shape
    t_out = grad.shape[2]
    fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    gx = torch.empty_like(x, memory_format=fmt) if need_x else x
    rows = n * t * v
    progs, per = _row_split(rows)
    part = torch.empty((progs, c, 4) if need_k else (1,), dtype=torch.float32, device=x.device)
    k = kernel.detach().reshape(c, 4).to(torch.float32).contiguous()
    grid = (progs, kn.cdiv(c, _BLOCK_C))
    with _on(x):
        kn.temporal_bwd[grid](grad, x, k, y1.contiguous(), x1.contiguous(), gx, part, rows, per, c, t_out, t, v,
                              stride, *grad.stride(), *x.stride(), *gx.stride(),
                              NEED_X=need_x, NEED_K=need_k, **_launch_kwargs())
    gk = part.sum(0).view(c, 1, 2, 2) if need_k else None
    return (gx if need_x else None), gk


def gather_scale_forward(x: Tensor, index: Tensor, scale: Tensor | None) -> Tensor:
    """``out[r, k] = x[r, index[k]] (* scale[k])`` for a 2-D ``x`` with unit column stride,
    in ``x``'s dtype (``scale`` applied in float32)."""
    kn = _kernels()
    rows, k = x.shape[0], index.shape[0]
    out = torch.empty((rows, k), dtype=x.dtype, device=x.device)
    grid = (kn.cdiv(rows, _BLOCK_R), kn.cdiv(k, _BLOCK_C))
    s = scale.detach().contiguous() if scale is not None else index
    with _on(x):
        kn.gather_fwd[grid](x, index.contiguous(), s, out, rows, k, x.stride(0), out.stride(0),
                            HAS_SCALE=scale is not None, **_launch_kwargs())
    return out


def gather_scale_backward(grad: Tensor, x: Tensor | None, index: Tensor, inverse: Tensor, scale: Tensor | None,
                          need_x: bool, need_scale: bool) -> tuple[Tensor | None, Tensor | None]:
    """Gradients of :func:`gather_scale_forward` (``index`` a permutation with inverse
    ``inverse``): ``gx`` in ``grad``'s dtype, ``gscale`` float32; ``x`` is needed only for
    ``gscale``."""
    kn = _kernels()
    rows, k = grad.shape
    grad = grad if grad.stride(1) == 1 else grad.contiguous()
    gx = torch.empty((rows, k), dtype=grad.dtype, device=grad.device) if need_x else grad
    progs, per = _row_split(rows)
    part = torch.empty((progs, k) if need_scale else (1,), dtype=torch.float32, device=grad.device)
    s_inv = scale.detach().index_select(0, inverse).contiguous() if scale is not None else inverse
    xx = x if (need_scale and x is not None) else grad
    grid = (progs, kn.cdiv(k, _BLOCK_C))
    with _on(grad):
        kn.gather_bwd[grid](grad, xx, inverse.contiguous(), s_inv, gx, part, rows, per, k, grad.stride(0),
                            xx.stride(0), gx.stride(0), HAS_SCALE=scale is not None, NEED_X=need_x,
                            NEED_SCALE=need_scale, **_launch_kwargs())
    gscale = part.sum(0).index_select(0, index) if need_scale else None
    return (gx if need_x else None), gscale
