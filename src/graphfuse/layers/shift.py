"""Shift operations of Shift-GCN (Cheng et al., "Skeleton-Based Action Recognition with Shift
Graph Convolutional Network", CVPR 2020; official code ``kchengiva/Shift-GCN``).

The official model's two operations live here, both in pure PyTorch (CPU and CUDA,
float32/float64/bfloat16), together with the paper's two other shift variants, which the
official repository does not contain (see "Variants" below):

* **Spatial (non-local) shift** of ``Shift_gcn``: a fixed permutation of the flattened
  ``(joint, channel)`` axis, stored as an int64 index buffer.  Input channel ``c`` of output
  joint ``v`` is read from joint ``(v + c) mod V`` (``shift_in``) or ``(v - c) mod V``
  (``shift_out``).  Each shift is a single ``index_select``; because the index is a
  permutation its backward is the gather with the inverse permutation (no scatter-add).

* **Adaptive temporal shift** of ``Shift_tcn`` (the CUDA op ``model/Temporal_shift/cuda``,
  itself adapted from active-shift): per channel ``c`` a learnable real offset ``ypos[c]``
  along T (and ``xpos[c]`` along V, joints), bilinear interpolation with zero padding,
  output frames ``floor(T / stride)``.  Output frame ``h`` of channel ``c`` samples input
  position ``h * stride + ypos[c]`` (``+ 0.5`` when ``stride != 1``, as in the official
  ``ShiftFunction.forward``).

How the temporal shift is computed (why it is fast and exact): with
``y = ypos (+0.5)``, ``y1 = floor(y)``, ``dy = y - y1`` (and ``x1, dx`` for ``xpos``) the
official kernel computes, for output ``(h, w)``::

    out = sum_{ky, kx in {0, 1}} wy[ky] * wx[kx] * in[h*s + y1 + ky, w + x1 + kx]
    wy = (1 - dy, dy),  wx = (1 - dx, dx),   taps outside [0, T) x [0, V) read 0.

This is a per-channel *integer* shift by ``(y1, x1)`` (one gather over T and V, with zero
fill, returning ``V + 1`` joints: column ``u`` is input joint ``u + x1``) followed by a
depthwise convolution whose 2 x 2 kernel holds the four bilinear weights, without padding
(so ``V`` output joints) and with stride ``s`` along T.  Every shape is static whatever
``xpos`` and ``ypos`` hold: no host synchronisation, one graph under
``torch.compile(fullgraph=True)`` and ``torch.export`` (an earlier version read the kernel
width from the data).  The convolution's backward (``aten.convolution_backward``) gives the
exact adjoint for the input and the exact derivative of the kernel, from which autograd gets
the gradients of ``ypos``/``xpos``; the integer gather's adjoint is again a gather.

Gradient of the shifts (``grad_mode``):

* ``'official'`` (default): the CUDA backward (``applyShiftConstraint``) replaces the
  gradient of ``ypos[c]`` by ``0.01 * g / |g|`` where ``g`` is the true gradient averaged
  over the batch dimension (the ``N*M`` dimension of the layer's input) and summed over T
  and V; when ``|g|`` evaluates to 0 it uses ``1e-4``.  The gradient of ``xpos`` is 0.
* ``'autograd'``: the true gradients of ``ypos`` and ``xpos``.

The official run used ``nn.DataParallel`` on 4 GPUs: each replica applied the rule to its
16 samples and the four ``+-0.01`` values were **summed** (per-step ``ypos`` gradients in
``{+-0.04, +-0.02, 0, ...}``).  One device computing one rule per step cannot reproduce that.

Variants (paper Sec. 3; not in the official code):

* **Local spatial shift** (:func:`local_shift_index`): joint ``v`` with neighbours
  ``B_v = (b_1, ..., b_n)`` (in the order given) splits its ``C`` channels into ``n + 1``
  contiguous partitions; partition 0 is kept from ``v`` itself, partition ``i`` is read from
  ``b_i``.  Partition sizes are as equal as possible: ``C // (n+1)`` each and the first
  ``C % (n+1)`` partitions (the kept one first) one channel more.  The index is a gather
  but not a permutation (a channel of one joint can be read by several joints, or none),
  so its backward is the ``index_select`` scatter-add.
* **Naive temporal shift** (:func:`naive_temporal_shift`): fixed integer shifts of channel
  groups by ``+-1 .. +-u`` frames with zero fill (the author's snippet in
  kchengiva/Shift-GCN issue #5, ``u = 4``); parameter-free.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import shift_triton
from .common import batchnorm_train_state, conv2d_backward, is_training_batchnorm, recompute_allowed

__all__ = [
    "NaiveShift",
    "Shift",
    "ShiftGradMode",
    "ShiftKernels",
    "inverse_permutation",
    "joint_linear",
    "local_shift_index",
    "local_shift_partition",
    "naive_shift_offsets",
    "naive_temporal_shift",
    "row_shift",
    "set_shift_kernels",
    "shift_batchnorm",
    "shift_kernels",
    "shift_pointwise",
    "spatial_shift",
    "spatial_shift_index",
    "spatial_shift_linear",
    "spatial_shift_scale",
    "temporal_shift",
    "validate_neighbours",
]

ShiftGradMode = Literal["official", "autograd"]
_GRAD_MODES = ("official", "autograd")

# ----------------------------------------------------------------------------------------
# kernel choice: PyTorch ops everywhere, fused Triton kernels on CUDA
# ----------------------------------------------------------------------------------------
ShiftKernels = Literal["auto", "torch", "triton"]
_KERNEL_CHOICES = ("auto", "torch", "triton")
_KERNELS_ENV = "GRAPHFUSE_SHIFT_KERNELS"
_kernels_setting: str | None = None  # None: read the environment variable


def shift_kernels() -> ShiftKernels:
    """The kernels the shifts run on: ``'auto'`` (default: the fused Triton kernels of
    :mod:`graphfuse.layers.shift_triton` for CUDA tensors when Triton is installed, the
    PyTorch path otherwise), ``'torch'`` (always the PyTorch path) or ``'triton'`` (always the
    Triton kernels; an error where they cannot run).  Set by :func:`set_shift_kernels` or the
    environment variable ``GRAPHFUSE_SHIFT_KERNELS``.  While ``torch.compile`` or
    ``torch.export`` trace, a PyTorch formulation is used whatever the setting, so that inductor
    generates its own kernels from it (on CUDA under ``torch.compile`` the four-tap one,
    :class:`_ShiftDirect`, unless the setting is ``'torch'``), and ``'auto'`` keeps float64
    inputs on the PyTorch path too (the kernels accumulate in float32)."""
    value = _kernels_setting if _kernels_setting is not None else os.environ.get(_KERNELS_ENV, "auto")
    if value not in _KERNEL_CHOICES:
        raise ValueError(f"{_KERNELS_ENV} must be one of {_KERNEL_CHOICES}, got {value!r}")
    return value  # type: ignore[return-value]


@contextmanager
def _restore(previous: str | None) -> Iterator[None]:
    global _kernels_setting
    try:
        yield
    finally:
        _kernels_setting = previous


def set_shift_kernels(kernels: ShiftKernels | None) -> AbstractContextManager[None]:
    """Choose the shift kernels for this process (``None``: back to the environment
    variable).  Returns a context manager that restores the previous choice, so both
    ``set_shift_kernels('torch')`` and ``with set_shift_kernels('torch'): ...`` work."""
    global _kernels_setting
    if kernels is not None and kernels not in _KERNEL_CHOICES:
        raise ValueError(f"shift kernels must be one of {_KERNEL_CHOICES}, got {kernels!r}")
    previous = _kernels_setting
    _kernels_setting = kernels
    return _restore(previous)


def _use_triton(x: Tensor) -> bool:
    choice = shift_kernels()
    if choice == "torch" or _tracing():
        return False
    if choice == "triton":
        if not shift_triton.available(x):
            raise RuntimeError(
                f"shift kernels 'triton' cannot run on a {x.device.type} tensor: they need CUDA and "
                "the triton package (or TRITON_INTERPRET=1 for CPU tensors)"
            )
        return True
    # float64 stays on the PyTorch path: the kernels accumulate in float32.
    return x.device.type == "cuda" and x.dtype in _TRITON_DTYPES and shift_triton.available(x)


_TRITON_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


# ----------------------------------------------------------------------------------------
# spatial shift
# ----------------------------------------------------------------------------------------
def spatial_shift_index(num_point: int, channels: int, direction: Literal["in", "out"]) -> Tensor:
    """Index of the official ``Shift_gcn.shift_in`` / ``shift_out`` buffers.

    Returns an int64 tensor of length ``num_point * channels`` over the flattened
    ``(joint v, channel c)`` axis (flat position ``v * channels + c``):

    * ``'in'``:  ``idx[v*C + c] = ((v + c) mod V) * C + c``
    * ``'out'``: ``idx[v*C + c] = ((v - c) mod V) * C + c``

    (the official loops write ``(v*C + c +- c*C) mod (C*V)``, which is the same number).
    """
    if direction not in ("in", "out"):
        raise ValueError(f"direction must be 'in' or 'out', got {direction!r}")
    if num_point < 1 or channels < 1:
        raise ValueError(f"num_point and channels must be positive, got {num_point}, {channels}")
    v = torch.arange(num_point).unsqueeze(1)
    c = torch.arange(channels).unsqueeze(0)
    joint = (v + c) % num_point if direction == "in" else (v - c) % num_point
    return (joint * channels + c).reshape(-1)


def inverse_permutation(index: Tensor, name: str = "index") -> Tensor:
    """Inverse of a permutation ``index`` (1-D int64); raises ``ValueError`` if it is none."""
    if index.dim() != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(index.shape)}")
    n = index.numel()
    ar = torch.arange(n, device=index.device)
    if n and not torch.equal(torch.sort(index).values, ar):
        raise ValueError(f"{name} is not a permutation of 0..{n - 1}")
    inv = torch.empty_like(index)
    inv[index] = ar
    return inv


class _PermutationGather(torch.autograd.Function):
    """``x[:, index]`` for a permutation ``index``; backward gathers with the inverse."""

    @staticmethod
    def forward(ctx, x: Tensor, index: Tensor, inverse: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(inverse)
        return _take_columns(x, index)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        (inverse,) = ctx.saved_tensors
        return _take_columns(grad, inverse), None, None


class _PermutationGatherScale(torch.autograd.Function):
    """``x[:, index] * scale`` for a permutation ``index``, without keeping the product.

    Saves ``x`` (a tensor the caller keeps alive anyway) instead of the gathered copy, and
    computes both gradients in the un-permuted order from one inverse gather of ``grad``:
    ``grad_x[:, j] = g[:, inv[j]] * scale[inv[j]]`` and
    ``grad_scale[k] = S[index[k]]`` with ``S[j] = sum_r g[r, inv[j]] * x[r, j]``.
    """

    @staticmethod
    def forward(ctx, x: Tensor, index: Tensor, inverse: Tensor, scale: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, index, inverse, scale)
        out = _take_columns(x, index)
        return out.mul_(scale)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        x, index, inverse, scale = ctx.saved_tensors
        grad_x, grad_scale = _gather_scale_backward(grad, x, index, inverse, scale,
                                                    ctx.needs_input_grad[0], ctx.needs_input_grad[3])
        return grad_x, None, None, grad_scale


def _gather_scale_backward(grad: Tensor, x: Tensor, index: Tensor, inverse: Tensor, scale: Tensor,
                           need_x: bool, need_scale: bool) -> tuple[Tensor | None, Tensor | None]:
    """Gradients of ``x[:, index] * scale`` (``index`` a permutation) for ``x`` and ``scale``,
    from one inverse gather of ``grad`` (see :class:`_PermutationGatherScale`)."""
    g_inv = _take_columns(grad, inverse)
    grad_scale = grad_x = None
    if need_scale:
        grad_scale = torch.mul(g_inv, x).sum(0).index_select(0, index).to(scale.dtype)
    if need_x:
        grad_x = g_inv.mul_(scale.index_select(0, inverse)).to(x.dtype)
    return grad_x, grad_scale


class _FusedGatherScale(torch.autograd.Function):
    """``x[:, index] (* scale)`` for a permutation ``index`` in one Triton kernel each way
    (:func:`graphfuse.layers.shift_triton.gather_scale_forward`); same gradients as
    :class:`_PermutationGatherScale` / :class:`_PermutationGather`."""

    @staticmethod
    def forward(ctx, x: Tensor, index: Tensor, inverse: Tensor, scale: Tensor | None) -> Tensor:  # type: ignore[override]
        x = x if x.stride(1) == 1 else x.contiguous()
        ctx.save_for_backward(x if scale is not None else None, index, inverse, scale)
        return shift_triton.gather_scale_forward(x, index, scale)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        x, index, inverse, scale = ctx.saved_tensors
        need_scale = scale is not None and ctx.needs_input_grad[3]
        g_x, g_scale = shift_triton.gather_scale_backward(
            grad, x, index, inverse, scale, ctx.needs_input_grad[0], need_scale
        )
        if g_scale is not None:
            g_scale = g_scale.to(scale.dtype)
        return g_x, None, None, g_scale


def spatial_shift_scale(x: Tensor, index: Tensor, inverse: Tensor | None, scale: Tensor) -> Tensor:
    """Spatial shift followed by a per-column scale: ``out[:, k] = x[:, index[k]] * scale[k]``.

    Args:
        x: ``(R, V*C)``.
        index: a gather index of length ``V*C`` (values in ``[0, V*C)``).
        inverse: the inverse permutation when ``index`` is a permutation (non-local shift:
            fused gather-and-scale with a gather backward); ``None`` for any other index
            (local shift: plain ``index_select`` autograd, whose backward scatter-adds).
        scale: ``(V*C,)`` (in Shift-GCN the feature mask ``tanh(Feature_Mask) + 1`` of the
            *target* joint).
    Returns:
        ``(R, V*C)``; differentiable in ``x`` and ``scale``.
    """
    if inverse is None:
        return x.index_select(1, index) * scale
    if _use_triton(x):
        return _FusedGatherScale.apply(x, index, inverse, scale)
    return _PermutationGatherScale.apply(x, index, inverse, scale)


def spatial_shift(x: Tensor, index: Tensor, inverse: Tensor | None = None) -> Tensor:
    """Apply a spatial shift: ``out[:, k] = x[:, index[k]]``.

    Args:
        x: ``(R, V*C)``, rows are ``(sample, frame)`` pairs, columns ``v*C + c``.
        index: permutation of ``V*C`` (e.g. :func:`spatial_shift_index`).
        inverse: its inverse (:func:`inverse_permutation`); if ``None`` the plain
            ``index_select`` autograd (scatter-add backward) is used.
    Returns:
        ``(R, V*C)``.
    """
    if inverse is None:
        return x.index_select(1, index)
    if _use_triton(x):
        return _FusedGatherScale.apply(x, index, inverse, None)
    return _PermutationGather.apply(x, index, inverse)


def joint_linear(x: Tensor, weight: Tensor, bias: Tensor, shape: tuple[int, int, int]) -> Tensor:
    """``einsum('rwc,cd->rwd', x, weight) + bias`` on rows ``x: (N*T, V*Cin)`` -> ``(N*T, V*Cout)``
    (``shape = (N, T, V)``; ``weight (Cin, Cout)``, ``bias`` of ``Cout`` elements): Shift-GCN's
    pointwise linear.

    On the CPU as a 1x1 convolution of the channels-last view ``(N, Cin, T, V)`` of the same
    memory (oneDNN: about twice the speed of MKL's ``addmm`` for these tall, thin products on
    the 2-core development machine, e.g. ``(60000, 256) x (256, 256)`` forward 16.6 vs 39 ms,
    docs/benchmarks.md), elsewhere as one GEMM with the bias in its epilogue (cuBLAS).  The
    same function either way; the results differ by float rounding only.
    """
    n, t, v = shape
    c, d = weight.shape
    if x.device.type == "cpu":
        y = F.conv2d(x.view(n, t, v, c).permute(0, 3, 1, 2), weight.t().reshape(d, c, 1, 1), bias.reshape(d))
        return y.permute(0, 2, 3, 1).reshape(n * t, v * d)  # a view when oneDNN keeps channels-last
    return torch.addmm(bias.reshape(1, d), x.view(n * t * v, c), weight).view(n * t, v * d)


class _PermutationGatherScaleLinear(torch.autograd.Function):
    """:func:`joint_linear` of :class:`_PermutationGatherScale` (CPU): keeps ``x`` (alive
    anyway: the unit's input) instead of the gathered product, which the backward rebuilds
    (one gather and one product pass) for the weight gradient."""

    @staticmethod
    def forward(ctx, x: Tensor, index: Tensor, inverse: Tensor, scale: Tensor, weight: Tensor,  # type: ignore[override]
                bias: Tensor, shape: tuple[int, int, int]) -> Tensor:
        ctx.save_for_backward(x, index, inverse, scale, weight)
        ctx.conf = (shape, bias.shape)
        return joint_linear(_take_columns(x, index).mul_(scale), weight, bias, shape)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        x, index, inverse, scale, weight = ctx.saved_tensors
        (n, t, v), bias_shape = ctx.conf
        c, d = weight.shape
        need_x, need_s, need_w, need_b = (ctx.needs_input_grad[i] for i in (0, 3, 4, 5))
        xs = _take_columns(x, index).mul_(scale)
        g_xs, g_w, g_b = conv2d_backward(
            grad.reshape(n, t, v, d).permute(0, 3, 1, 2), xs.view(n, t, v, c).permute(0, 3, 1, 2),
            weight.t().reshape(d, c, 1, 1), True, mask=(need_x or need_s, need_w, need_b),
        )
        del xs
        g_x = g_scale = None
        if need_x or need_s:
            g_x, g_scale = _gather_scale_backward(g_xs.permute(0, 2, 3, 1).reshape(n * t, v * c), x, index,
                                                  inverse, scale, need_x, need_s)
        g_w = g_w.view(d, c).t() if need_w else None
        g_b = g_b.view(bias_shape) if need_b else None
        return g_x, None, None, g_scale, g_w, g_b, None


def spatial_shift_linear(x: Tensor, index: Tensor, inverse: Tensor | None, scale: Tensor, weight: Tensor,
                         bias: Tensor, shape: tuple[int, int, int]) -> Tensor:
    """:func:`joint_linear` of :func:`spatial_shift_scale`: ``shift_in``, the feature mask and
    the pointwise linear of ``Shift_gcn`` on rows ``x: (N*T, V*Cin)`` -> ``(N*T, V*Cout)``.

    Same values and gradients as the two calls (bit for bit, except the bias gradient: equal
    to rounding, :func:`~graphfuse.layers.common.conv2d_backward`); in eager CPU training without
    autocast, for a permutation ``index``, it keeps ``x`` (the unit's input, kept anyway)
    instead of the gathered product for the backward: one activation-sized tensor less per
    call, for one gather and one product pass more in the backward.
    """
    if inverse is None or x.device.type != "cpu" or not recompute_allowed(x):
        return joint_linear(spatial_shift_scale(x, index, inverse, scale), weight, bias, shape)
    return _PermutationGatherScaleLinear.apply(x, index, inverse, scale, weight, bias, shape)


# ----------------------------------------------------------------------------------------
# local spatial shift (paper Sec. 3.1, "local shift graph operation")
# ----------------------------------------------------------------------------------------
def validate_neighbours(neighbours: Sequence[Sequence[int]], num_point: int) -> list[list[int]]:
    """Check an adjacency list for the local shift and return it as ``list[list[int]]``.

    ``neighbours[v]`` lists the neighbours of joint ``v`` (0-based) in the order their
    channel partitions are taken.  Raises ``ValueError`` naming the joint when the list has
    the wrong length, or an entry is out of range, repeated, or ``v`` itself.  The relation
    need not be symmetric (each joint reads from its own list).
    """
    if isinstance(neighbours, (str, bytes)) or len(neighbours) != num_point:
        raise ValueError(
            f"neighbours must have one list per joint ({num_point}), got "
            f"{len(neighbours) if not isinstance(neighbours, (str, bytes)) else type(neighbours).__name__}"
        )
    out: list[list[int]] = []
    for v, nbrs in enumerate(neighbours):
        lst = [int(b) for b in nbrs]
        bad = [b for b in lst if not 0 <= b < num_point]
        if bad:
            raise ValueError(f"neighbours[{v}] has joints outside [0, {num_point}): {bad}")
        if v in lst:
            raise ValueError(f"neighbours[{v}] contains the joint itself")
        if len(set(lst)) != len(lst):
            raise ValueError(f"neighbours[{v}] has repeated joints: {lst}")
        out.append(lst)
    return out


def local_shift_partition(num_neighbours: Tensor | int, channels: int) -> Tensor:
    """Partition of each channel for joints with ``n`` neighbours: ``(..., C)`` int64 in ``[0, n]``.

    ``n + 1`` contiguous partitions of sizes ``C // (n+1)`` (+1 for the first
    ``C % (n+1)``), partition 0 first.  E.g. ``C = 20``: ``n = 1`` -> 10 + 10, ``n = 3`` ->
    4 x 5; ``C = 3, n = 4`` -> sizes 1, 1, 1, 0, 0 (the joint keeps one channel; the last
    two neighbours contribute none).
    """
    n = torch.as_tensor(num_neighbours, dtype=torch.long).unsqueeze(-1)  # (..., 1)
    c = torch.arange(channels)
    parts = n + 1
    base, rem = channels // parts, channels % parts
    big = rem * (base + 1)  # channels in the partitions of size base + 1
    # base == 0 only when C < n + 1, and then every channel lies in a size-1 partition.
    return torch.where(c < big, c // (base + 1), rem + (c - big) // base.clamp(min=1))


def local_shift_index(neighbours: Sequence[Sequence[int]], channels: int) -> Tensor:
    """Gather index of the local spatial shift over the flattened ``(joint, channel)`` axis.

    ``out[v*C + c] = x[src(v, c)*C + c]`` with ``src(v, c) = v`` for channels in partition 0
    and ``neighbours[v][i-1]`` for channels in partition ``i`` (:func:`local_shift_partition`).
    Cheng et al., CVPR 2020, Sec. 3.1 and Fig. 3a.

    Args:
        neighbours: adjacency list, ``len == V`` (:func:`validate_neighbours`); e.g.
            :func:`graphfuse.graphs.ntu25.neighbours`.
        channels: ``C``.
    Returns:
        int64 tensor of length ``V * C`` (use with :func:`spatial_shift`); not a permutation.
    """
    if channels < 1:
        raise ValueError(f"channels must be positive, got {channels}")
    nbrs = validate_neighbours(neighbours, len(neighbours))
    v = len(nbrs)
    if v < 1:
        raise ValueError("neighbours is empty")
    deg = torch.tensor([len(b) for b in nbrs], dtype=torch.long)
    # table[v] = (v, b_1, ..., b_n, pad): column i is the source of partition i.
    width = int(deg.max()) + 1
    table = torch.arange(v).unsqueeze(1).repeat(1, width)
    for j, b in enumerate(nbrs):  # construction time, once per layer
        table[j, 1 : len(b) + 1] = torch.tensor(b, dtype=torch.long)
    part = local_shift_partition(deg, channels)  # (V, C)
    src = table.gather(1, part)  # (V, C)
    return (src * channels + torch.arange(channels).unsqueeze(0)).reshape(-1)


# ----------------------------------------------------------------------------------------
# integer row shift along T (gather of whole frames, zero fill)
# ----------------------------------------------------------------------------------------
#: Devices on which out-of-range taps are zeroed by ``index_fill_`` on the few positions
#: concerned (needs ``nonzero``, a host synchronisation elsewhere); other devices, and every
#: traced path (``torch.compile``, ``torch.export``), use one ``masked_fill_`` pass.
_FILL_BY_INDEX = {"cpu"}


def _is_channels_last(x: Tensor) -> bool:
    return x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def _tracing() -> bool:
    """True while ``torch.compile`` / ``torch.export`` trace: no data-dependent shapes then."""
    return torch.compiler.is_compiling() or torch.compiler.is_exporting()


def _take_columns(x: Tensor, index: Tensor) -> Tensor:
    """``x.index_select(1, index)`` for a 2-D or 3-D ``x``, as fast as the CPU allows.

    ATen's CPU ``index_select`` along dim 1 of a contiguous tensor is a serial loop (its
    dim-1 fast path has no ``parallel_for``): with 2 threads a ``(32, 480000)`` float32
    gather takes 35 ms where a copy of the same tensor takes 17.  ``torch.gather`` with the
    index broadcast over the rows (a stride-0 view, nothing materialised) computes the same
    values in parallel (20 ms).  For 16-bit floats (bfloat16 under CPU autocast, float16) both
    are slow (a ``(9600, 1600)`` bfloat16 permutation, 2 threads: ``index_select`` 25 ms,
    ``gather`` 8.5 ms): the values are moved as ``int16`` (same bits, ``gather`` 3.9 ms; 1
    thread 8.8 against 27 ms; docs/benchmarks.md).  A float32 gather on one thread, and every
    gather on accelerators and while tracing, is the plain ``index_select`` (as fast there,
    and a simpler graph).
    """
    if _tracing() or x.device.type != "cpu" or x.dim() not in (2, 3):
        return x.index_select(1, index)
    half = x.dtype in _HALF_FLOATS
    if not half and torch.get_num_threads() < 2:
        return x.index_select(1, index)
    src = x.view(torch.int16) if half else x
    if x.dim() == 2:
        out = torch.gather(src, 1, index.view(1, -1).expand(x.shape[0], -1))
    else:
        out = torch.gather(src, 1, index.view(1, -1, 1).expand(x.shape[0], -1, x.shape[2]))
    return out.view(x.dtype) if half else out


#: 16-bit float dtypes that :func:`_take_columns` gathers as ``int16`` (same bits, faster).
_HALF_FLOATS = (torch.bfloat16, torch.float16)


def _shift_gather(x: Tensor, offset: Tensor, col_offset: Tensor | None, out_len: int, out_width: int) -> Tensor:
    """``out[n, c, j, u] = x[n, c, j + offset[c], u + col_offset[c]]`` (0 outside the input),
    ``j < out_len``, ``u < out_width``; ``col_offset=None`` means no shift along V (then
    ``out_width`` must be ``V``).

    One ``index_select`` over the memory order of ``x``; taps outside the input read a
    clamped position and are then zeroed (the official kernel reads 0 there).  Channels-last
    inputs stay channels-last (element gather over the flat ``(T, V, C)`` memory); others
    are gathered as rows of V over ``(C, T)`` (or elementwise when ``col_offset`` is given).
    Every shape is static (no host synchronisation) except on the eager CPU fill path.
    """
    n, c, t, v = x.shape
    dev = x.device
    src = torch.arange(out_len, device=dev).unsqueeze(0) + offset.to(dev).unsqueeze(1)  # (C, L)
    invalid = (src < 0) | (src >= t)
    src = src.clamp(0, t - 1)
    if col_offset is not None:
        col = torch.arange(out_width, device=dev).unsqueeze(0) + col_offset.to(dev).unsqueeze(1)  # (C, W)
        col_invalid = (col < 0) | (col >= v)
        col = col.clamp(0, v - 1)
    else:
        col_invalid = None
        col = torch.arange(v, device=dev).unsqueeze(0)  # (1, V)
    w = out_width
    fill_by_index = dev.type in _FILL_BY_INDEX and not _tracing()
    if _is_channels_last(x):
        flat = x.permute(0, 2, 3, 1).reshape(n, t * v * c)  # a view: memory is (T, V, C)
        chan = torch.arange(c, device=dev)
        idx = (src.t().unsqueeze(1) * (v * c) + col.t().unsqueeze(0) * c + chan.view(1, 1, c)).reshape(-1)
        out = _take_columns(flat, idx)  # (N, L*W*C)
        if fill_by_index:
            # Few positions are out of range: fill just those (cheaper than a masking pass),
            # found from the small (C, L) and (C, W) masks, never an (L, W, C) one.
            out.index_fill_(1, _fill_positions(invalid, col_invalid, 1, w * c, c, w), 0)
        else:  # no host synchronisation (nonzero) on accelerators or while tracing
            bad = invalid.t().unsqueeze(1)  # (L, 1, C)
            if col_invalid is not None:
                bad = bad | col_invalid.t().unsqueeze(0)  # (L, W, C)
            out.view(n, out_len, w, c).masked_fill_(bad.unsqueeze(0), 0)
        return out.view(n, out_len, w, c).permute(0, 3, 1, 2)
    if col_invalid is None:
        rows = x.contiguous().view(n, c * t, v)
        idx = (torch.arange(c, device=dev).unsqueeze(1) * t + src).reshape(-1)
        out = _take_columns(rows, idx)  # (N, C*L, V)
        if fill_by_index:
            out.index_fill_(1, invalid.reshape(-1).nonzero().squeeze(1), 0)
        else:
            out.view(n, c, out_len, v).masked_fill_(invalid.view(1, c, out_len, 1), 0)
        return out.view(n, c, out_len, v)
    flat = x.contiguous().view(n, c * t * v)
    idx = (torch.arange(c, device=dev).view(c, 1, 1) * (t * v) + src.unsqueeze(2) * v + col.unsqueeze(1)).reshape(-1)
    out = _take_columns(flat, idx)  # (N, C*L*W)
    if fill_by_index:
        out.index_fill_(1, _fill_positions(invalid, col_invalid, out_len * w, w, 1, w), 0)
    else:
        out.view(n, c, out_len, w).masked_fill_((invalid.unsqueeze(2) | col_invalid.unsqueeze(1)).unsqueeze(0), 0)
    return out.view(n, c, out_len, w)


def _fill_positions(invalid: Tensor, col_invalid: Tensor | None, s_c: int, s_l: int, s_w: int,
                    width: int) -> Tensor:
    """Flat positions (within one sample) of the taps to zero, found from the small ``(C, L)``
    frame mask ``invalid`` and ``(C, W)`` joint mask ``col_invalid`` (never an ``(L, W, C)``
    one): every joint of an invalid ``(c, l)`` and every frame of an invalid ``(c, w)``.  A
    position in both appears twice, which ``index_fill_`` allows.  ``s_c, s_l, s_w``: the
    strides of channel, frame and joint in the output's memory; ``width``: ``W``."""
    dev = invalid.device
    cl = invalid.nonzero()  # (k, 2): channel, frame
    pos = ((cl[:, 0] * s_c + cl[:, 1] * s_l).unsqueeze(1) + torch.arange(width, device=dev) * s_w).reshape(-1)
    if col_invalid is None:
        return pos
    cw = col_invalid.nonzero()  # (k, 2): channel, joint
    frames = torch.arange(invalid.shape[1], device=dev) * s_l
    return torch.cat((pos, ((cw[:, 0] * s_c + cw[:, 1] * s_w).unsqueeze(1) + frames).reshape(-1)))


def _row_shift_impl(x: Tensor, offset: Tensor, out_len: int) -> Tensor:
    """``out[n, c, j, v] = x[n, c, j + offset[c], v]`` (0 outside ``[0, T)``), ``j < out_len``."""
    return _shift_gather(x, offset, None, out_len, x.shape[3])


class _RowShift(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, offset: Tensor, out_len: int) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(offset)
        ctx.in_len = x.shape[2]
        return _row_shift_impl(x, offset, out_len)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        (offset,) = ctx.saved_tensors
        # The forward map is injective on valid taps, so its adjoint is again a row shift:
        # grad_x[t] = grad[t - offset] where 0 <= t - offset < out_len, else 0.
        return _row_shift_impl(grad, -offset, ctx.in_len), None, None


def row_shift(x: Tensor, offset: Tensor, out_len: int) -> Tensor:
    """Per-channel integer shift along T with zero fill (differentiable in ``x``).

    Args:
        x: ``(N, C, T, V)``.
        offset: ``(C,)`` int64; output frame ``j`` of channel ``c`` is input frame
            ``j + offset[c]``, or 0 when that lies outside ``[0, T)``.
        out_len: number of output frames.
    Returns:
        ``(N, C, out_len, V)``, channels-last if ``x`` is.
    """
    if x.dim() != 4:
        raise ValueError(f"row_shift expects (N, C, T, V), got shape {tuple(x.shape)}")
    if offset.shape != (x.shape[1],):
        raise ValueError(f"offset must have shape ({x.shape[1]},), got {tuple(offset.shape)}")
    return _RowShift.apply(x, offset.long(), int(out_len))


# ----------------------------------------------------------------------------------------
# gradient rules of the official CUDA backward
# ----------------------------------------------------------------------------------------
class _OfficialPositionGrad(torch.autograd.Function):
    """Identity on ``ypos``; backward applies the official ``applyShiftConstraint``."""

    @staticmethod
    def forward(ctx, ypos: Tensor, batch: int) -> Tensor:  # type: ignore[override]
        ctx.batch = batch
        return ypos.clone()

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        # Official: g = mean over the batch dim of the true per-sample gradient (summed over
        # T and V); dr = sqrt(g*g); grad = g / dr * 0.01 if dr != 0 else 1e-4.  The same
        # arithmetic in the same dtype (so under/overflow of g*g behaves as on the GPU).
        g = grad / ctx.batch
        dr = torch.sqrt(g * g)
        return torch.where(dr != 0, g / dr * 0.01, torch.full_like(g, 1e-4)), None


class _ZeroGrad(torch.autograd.Function):
    """Identity; backward returns a zero gradient (official ``grad_xpos = 0``).

    A zero tensor rather than ``None`` so that the optimiser still applies weight decay to
    ``xpos`` every step, as the official SGD did.
    """

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        return x.clone()

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        return torch.zeros_like(grad)


# ----------------------------------------------------------------------------------------
# adaptive temporal shift
# ----------------------------------------------------------------------------------------
def _integer_part(v: Tensor, lo: int, hi: int) -> Tensor:
    """``floor(v)`` clamped to ``[lo, hi]`` as int64 (clamping keeps huge shifts, whose taps
    are all out of range anyway, from overflowing the integer conversion)."""
    return torch.floor(v.detach()).clamp_(lo, hi).long()


def _shift_rows_conv(x: Tensor, kernel: Tensor, y1: Tensor, x1: Tensor, n_rows: int, stride: int) -> tuple[Tensor, Tensor]:
    """The shifted rows of ``x`` (one gather, ``V + 1`` joints) and the depthwise 2 x 2
    convolution of them: ``(rows, shift output)``."""
    rows = _shift_gather(x, y1, x1, n_rows, x.shape[3] + 1)
    return rows, F.conv2d(rows, kernel, stride=(stride, 1), groups=x.shape[1])


def _shift_conv_backward(grad: Tensor, rows: Tensor, k: Tensor, y1: Tensor, x1: Tensor, stride: int,
                         t: int, v: int, need_x: bool, need_k: bool) -> tuple[Tensor | None, Tensor | None]:
    """Gradients of the shift input (``(N, C, t, v)``) and of the 2 x 2 kernel from the
    gradient of the shift output: the depthwise convolution's backward, then the adjoint of
    the integer-shift gather (injective on valid taps, so again a shift gather)."""
    def conv_backward(g: Tensor, inp: Tensor, kernel: Tensor, mask: tuple[bool, bool, bool]) -> tuple:
        return torch.ops.aten.convolution_backward(
            g, inp, kernel, None, (stride, 1), (0, 0), (1, 1), False, (0, 0), rows.shape[1], mask,
        )

    if need_x and stride != 1 and rows.device.type == "cpu" and rows.dtype in _HALF_FLOATS:
        # oneDNN's 16-bit input gradient of a strided depthwise convolution is a slow path (bf16
        # (32, 128, 300, 26) rows, stride 2: 153 ms; in float32 5.6 ms, 10.8 ms with the casts;
        # docs/benchmarks.md). Computed in float32 and rounded once: bit-identical for bfloat16
        # (each value is a sum of at most two exact products, which oneDNN also accumulates in
        # float32), the correctly rounded value for float16. ``shell`` only gives the input's
        # shape and layout (never written or read).
        shell = torch.empty_strided(rows.shape, rows.stride(), dtype=torch.float32, device=rows.device)
        g_rows = conv_backward(grad.float(), shell, k.float(), (True, False, False))[0].to(rows.dtype)
        del shell
        g_k = conv_backward(grad, rows, k, (False, True, False))[1] if need_k else None
    else:
        g_rows, g_k, _ = conv_backward(grad, rows, k, (need_x, need_k, False))
    g_x = _shift_gather(g_rows, -y1, -x1, t, v) if need_x else None
    return g_x, (g_k if need_k else None)


class _ShiftConv(torch.autograd.Function):
    """Integer shift by ``(y1, x1)`` (one gather) followed by the depthwise 2 x 2
    bilinear-kernel convolution.

    The gather produces ``n_rows`` frames of ``V + 1`` columns (column ``u`` is input joint
    ``u + x1``), so the 2 x 2 convolution without padding yields the ``V`` output joints:
    every shape is static whatever ``xpos`` holds (no host synchronisation, nothing for
    ``torch.compile`` to break on).  The backward keeps the shifted rows, or with
    ``recompute`` the input (alive anyway, e.g. a ReLU output), from which it rebuilds them:
    one activation-sized tensor less per call.  ``recompute`` is a Python constant of the
    calling module (fixed when it is built), so a traced graph never branches on a value.
    """

    @staticmethod
    def forward(ctx, x: Tensor, kernel: Tensor, y1: Tensor, x1: Tensor, n_rows: int,  # type: ignore[override]
                stride: int, dtype: torch.dtype, recompute: bool) -> Tensor:
        rows = _shift_gather(x, y1, x1, n_rows, x.shape[3] + 1).to(dtype)
        k = kernel.to(dtype)
        with torch.autocast(x.device.type, enabled=False):
            out = F.conv2d(rows, k, stride=(stride, 1), groups=x.shape[1])
        ctx.save_for_backward(x if recompute else rows, k, y1, x1)
        ctx.conf = (n_rows, stride, dtype, x.shape[2], x.shape[3], x.dtype, kernel.dtype, recompute)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        saved, k, y1, x1 = ctx.saved_tensors
        n_rows, stride, dtype, t, v, x_dtype, k_dtype, recompute = ctx.conf
        rows = _shift_gather(saved, y1, x1, n_rows, v + 1).to(dtype) if recompute else saved
        g_x, g_k = _shift_conv_backward(grad.to(dtype), rows, k, y1, x1, stride, t, v,
                                        ctx.needs_input_grad[0], ctx.needs_input_grad[1])
        g_x = g_x.to(x_dtype) if g_x is not None else None
        g_k = g_k.to(k_dtype) if g_k is not None else None
        return g_x, g_k, None, None, None, None, None, None


class _ShiftPointwise(torch.autograd.Function):
    """``conv1x1(shift(batch_norm(x)))`` in training mode (:func:`shift_pointwise`): the
    operations of the modules, keeping for the backward only ``x`` (alive anyway: a ReLU
    output) and the batch statistics.  The backward rebuilds the BatchNorm output (one more
    BatchNorm forward, running statistics untouched), the shifted rows (one gather) and the
    shift output (one depthwise 2 x 2 convolution).  ``bn_state``: ``(running_mean,
    running_var, momentum, eps)``."""

    @staticmethod
    def forward(ctx, x: Tensor, kernel: Tensor, y1: Tensor, x1: Tensor, n_rows: int, stride: int,  # type: ignore[override]
                weight: Tensor, bias: Tensor | None, bn_weight: Tensor | None, bn_bias: Tensor | None,
                bn_state: tuple[Tensor, Tensor, float, float]) -> Tensor:
        running_mean, running_var, momentum, eps = bn_state
        k = kernel.to(x.dtype)
        normed, mean, invstd = torch.native_batch_norm(x, bn_weight, bn_bias, running_mean, running_var, True,
                                                       momentum, eps)
        _, shifted = _shift_rows_conv(normed, k, y1, x1, n_rows, stride)
        del normed
        ctx.save_for_backward(x, k, y1, x1, weight, bn_weight, bn_bias, mean, invstd)
        ctx.conf = (n_rows, stride, bias is not None, kernel.dtype, eps)
        return F.conv2d(shifted, weight, bias)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        x, k, y1, x1, weight, bn_weight, bn_bias, mean, invstd = ctx.saved_tensors
        n_rows, stride, has_bias, k_dtype, eps = ctx.conf
        need_x, need_k, need_w, need_b, need_bw, need_bb = (ctx.needs_input_grad[i] for i in (0, 1, 6, 7, 8, 9))
        normed = torch.native_batch_norm(x, bn_weight, bn_bias, None, None, True, 0.0, eps)[0]
        rows, shifted = _shift_rows_conv(normed, k, y1, x1, n_rows, stride)
        del normed
        need_in = need_x or need_k or need_bw or need_bb
        g_shift, g_w, g_b = conv2d_backward(grad, shifted, weight, has_bias, mask=(need_in, need_w, need_b))
        del shifted
        g_x = g_k = g_bw = g_bb = None
        if need_in:
            need_normed = need_x or need_bw or need_bb
            g_normed, g_k = _shift_conv_backward(g_shift, rows, k, y1, x1, stride, x.shape[2], x.shape[3],
                                                 need_normed, need_k)
            del rows
            if g_normed is not None:
                g_x, g_bw, g_bb = torch.ops.aten.native_batch_norm_backward(
                    g_normed, x, bn_weight, None, None, mean, invstd, True, eps, [need_x, need_bw, need_bb],
                )
        g_k = g_k.to(k_dtype) if g_k is not None else None
        return g_x, g_k, None, None, None, None, g_w, g_b, g_bw, g_bb, None


class _ShiftBatchNorm(torch.autograd.Function):
    """``batch_norm(shift(x))`` in training mode (:func:`shift_batchnorm`): the operations of
    :class:`_ShiftConv` then ``native_batch_norm`` (running statistics updated in place),
    keeping only ``x`` (alive anyway: a ReLU output) for the backward, which rebuilds the
    shifted rows and the shift output from it (the gather :class:`_ShiftConv` with
    ``recompute`` repeats anyway, plus one depthwise 2 x 2 convolution): the BatchNorm's
    input is not kept."""

    @staticmethod
    def forward(ctx, x: Tensor, kernel: Tensor, y1: Tensor, x1: Tensor, n_rows: int, stride: int,  # type: ignore[override]
                weight: Tensor | None, bias: Tensor | None, running_mean: Tensor, running_var: Tensor,
                momentum: float, eps: float) -> Tensor:
        k = kernel.to(x.dtype)
        _, shifted = _shift_rows_conv(x, k, y1, x1, n_rows, stride)
        out, mean, invstd = torch.native_batch_norm(shifted, weight, bias, running_mean, running_var, True, momentum, eps)
        ctx.save_for_backward(x, k, y1, x1, weight, mean, invstd)
        ctx.conf = (n_rows, stride, eps, kernel.dtype)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        x, k, y1, x1, weight, mean, invstd = ctx.saved_tensors
        n_rows, stride, eps, k_dtype = ctx.conf
        need_x, need_k, need_w, need_b = (ctx.needs_input_grad[i] for i in (0, 1, 6, 7))
        rows, shifted = _shift_rows_conv(x, k, y1, x1, n_rows, stride)
        g_shift, g_w, g_b = torch.ops.aten.native_batch_norm_backward(
            grad, shifted, weight, None, None, mean, invstd, True, eps, [need_x or need_k, need_w, need_b],
        )
        del shifted
        g_x = g_k = None
        if need_x or need_k:
            g_x, g_k = _shift_conv_backward(g_shift, rows, k, y1, x1, stride, x.shape[2], x.shape[3], need_x, need_k)
        g_k = g_k.to(k_dtype) if g_k is not None else None
        return g_x, g_k, None, None, None, None, g_w, g_b, None, None, None, None


class _ShiftFused(torch.autograd.Function):
    """The same operation and gradients as :class:`_ShiftConv` in two fused Triton kernels
    (:mod:`graphfuse.layers.shift_triton`): no shifted copy of the input and no convolution.
    Keeps ``x`` for the backward (``recompute`` has nothing to rebuild)."""

    @staticmethod
    def forward(ctx, x: Tensor, kernel: Tensor, y1: Tensor, x1: Tensor, stride: int,  # type: ignore[override]
                dtype: torch.dtype) -> Tensor:
        ctx.save_for_backward(x, kernel, y1, x1)
        ctx.stride = stride
        return shift_triton.temporal_shift_forward(x, kernel, y1, x1, stride, dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        x, kernel, y1, x1 = ctx.saved_tensors
        g_x, g_k = shift_triton.temporal_shift_backward(
            grad, x, kernel, y1, x1, ctx.stride, ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        )
        return g_x, (g_k.to(kernel.dtype) if g_k is not None else None), None, None, None, None


def _direct_taps(src: Tensor, row: Tensor, col: Tensor, n_rows: int, n_cols: int) -> tuple[Tensor, Tensor]:
    """``src[:, c, row[c, l], col[c, w]]`` as ``(N, C, L, W)`` with the mask of the taps inside
    ``[0, n_rows) x [0, n_cols)`` (``(C, L, W)``; outside taps read a clamped position)."""
    c = src.shape[1]
    valid = ((row >= 0) & (row < n_rows)).unsqueeze(2) & ((col >= 0) & (col < n_cols)).unsqueeze(1)
    chan = torch.arange(c, device=src.device).view(c, 1, 1)
    taps = src[:, chan, row.clamp(0, n_rows - 1).unsqueeze(2), col.clamp(0, n_cols - 1).unsqueeze(1)]
    return taps, valid


class _ShiftDirect(torch.autograd.Function):
    """The operation and gradients of :class:`_ShiftConv` written as four gathered taps, for
    ``torch.compile`` on GPUs: inductor turns the forward into one kernel (four indirect loads,
    a weighted sum) and the backward into one more (the input gradient gathered from the
    output gradient through the inverse taps, as in ``shift_triton``, and the kernel gradient
    as a reduction of the same products), where the conv formulation leaves a cuDNN grouped
    convolution and an extra gather pass.  In eager mode each tap is a full gather (slow): it
    is used only while tracing (``_DIRECT_DEVICES``)."""

    @staticmethod
    def forward(ctx, x: Tensor, kernel: Tensor, y1: Tensor, x1: Tensor, stride: int,  # type: ignore[override]
                dtype: torch.dtype) -> Tensor:
        _, c, t, v = x.shape
        t_out = t // stride
        k = kernel.reshape(c, 4).to(dtype)
        h = torch.arange(t_out, device=x.device) * stride
        w = torch.arange(v, device=x.device)
        xd = x.to(dtype)
        out = None
        for ky in (0, 1):
            for kx in (0, 1):
                taps, valid = _direct_taps(xd, h + (y1.unsqueeze(1) + ky), w + (x1.unsqueeze(1) + kx), t, v)
                term = taps * (k[:, 2 * ky + kx].view(c, 1, 1) * valid)
                out = term if out is None else out + term
        ctx.save_for_backward(x, kernel, y1, x1)
        ctx.conf = (stride, dtype)
        assert out is not None
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        x, kernel, y1, x1 = ctx.saved_tensors
        stride, dtype = ctx.conf
        _, c, t, v = x.shape
        t_out = grad.shape[2]
        k = kernel.reshape(c, 4).to(dtype)
        t_in = torch.arange(t, device=x.device)
        v_in = torch.arange(v, device=x.device)
        g = grad.to(dtype)
        xd = x.to(dtype)
        g_x, g_k = None, []
        for ky in (0, 1):
            for kx in (0, 1):
                # Output frame of input frame t through this tap: (t - y1 - ky) / stride when that is
                # a whole number (a frame the strided shift did not skip).
                diff = t_in - (y1.unsqueeze(1) + ky)  # (C, T)
                row = torch.div(diff, stride, rounding_mode="floor")
                row = torch.where(diff - row * stride == 0, row, -1)
                taps, valid = _direct_taps(g, row, v_in - (x1.unsqueeze(1) + kx), t_out, v)
                taps = taps * valid
                if ctx.needs_input_grad[0]:
                    term = taps * k[:, 2 * ky + kx].view(c, 1, 1)
                    g_x = term if g_x is None else g_x + term
                if ctx.needs_input_grad[1]:
                    g_k.append((taps * xd).sum(dim=(0, 2, 3), dtype=torch.promote_types(dtype, torch.float32)))
        grad_k = torch.stack(g_k, dim=1).view(c, 1, 2, 2).to(kernel.dtype) if g_k else None
        if g_x is not None:
            g_x = g_x.to(x.dtype)
            if _is_channels_last(x):
                g_x = g_x.contiguous(memory_format=torch.channels_last)
        return g_x, grad_k, None, None, None, None


#: Devices on which a traced (compiled) temporal shift uses :class:`_ShiftDirect`, so that
#: inductor generates fused kernels for it.  Not CPU: there inductor's gathers are scalar loops,
#: slower than oneDNN's depthwise convolution (docs/benchmarks.md).
_DIRECT_DEVICES = {"cuda"}


def temporal_shift(
    x: Tensor,
    xpos: Tensor,
    ypos: Tensor,
    stride: int = 1,
    grad_mode: ShiftGradMode = "official",
    recompute: bool = False,
) -> Tensor:
    """Adaptive temporal shift of Shift-GCN (official ``ShiftFunction``), pure PyTorch.

    Args:
        x: ``(N, C, T, V)``; any memory format (channels-last is fastest on CPU).
        xpos: ``(C,)`` shift along V (joints); official init ``U(-1e-8, 1e-8)``.
        ypos: ``(C,)`` shift along T (frames).
        stride: temporal stride ``s``; ``+0.5`` is added to ``ypos`` when ``s != 1``.
        grad_mode: ``'official'`` (sign rule, see module docstring) or ``'autograd'``.
        recompute: keep ``x`` rather than the shifted frames for the backward and rebuild
            them there (saves memory when ``x`` is kept alive anyway; same result).  A
            Python constant of the calling module, so a compiled graph never branches on it.
    Returns:
        ``(N, C, floor(T / s), V)``:
        ``out[n,c,h,w] = sum_{ky,kx} wy*wx * x[n, c, h*s + y1 + ky, w + x1 + kx]``, zero
        outside the input.  No host synchronisation on accelerators; no graph break under
        ``torch.compile(fullgraph=True)``.
    """
    kernel, y1, x1, n_rows, dtype = _shift_setup(x, xpos, ypos, stride, grad_mode)
    if _use_triton(x):
        return _ShiftFused.apply(x, kernel, y1, x1, stride, dtype)
    if _traced_direct(x):
        return _ShiftDirect.apply(x, kernel, y1, x1, stride, dtype)
    return _ShiftConv.apply(x, kernel, y1, x1, n_rows, stride, dtype, bool(recompute))


def _traced_direct(x: Tensor) -> bool:
    """Whether a traced (compiled) shift of ``x`` uses :class:`_ShiftDirect`."""
    return torch.compiler.is_compiling() and x.device.type in _DIRECT_DEVICES and shift_kernels() != "torch"


def _shift_setup(x: Tensor, xpos: Tensor, ypos: Tensor, stride: int, grad_mode: ShiftGradMode
                 ) -> tuple[Tensor, Tensor, Tensor, int, torch.dtype]:
    """Check the arguments of :func:`temporal_shift` and build what every formulation takes:
    ``(kernel (C, 1, 2, 2), y1, x1, n_rows, compute dtype)`` (the gradient rule of
    ``grad_mode`` is attached to ``kernel``'s graph)."""
    if x.dim() != 4:
        raise ValueError(f"temporal_shift expects (N, C, T, V), got shape {tuple(x.shape)}")
    n, c, t, v = x.shape
    if xpos.shape != (c,) or ypos.shape != (c,):
        raise ValueError(f"xpos/ypos must have shape ({c},), got {tuple(xpos.shape)}, {tuple(ypos.shape)}")
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    t_out = t // stride
    if t_out < 1:
        raise ValueError(f"temporal_shift needs T >= stride, got T={t}, stride={stride}")
    if grad_mode == "official":
        ypos = _OfficialPositionGrad.apply(ypos, n)
        xpos = _ZeroGrad.apply(xpos)
    elif grad_mode != "autograd":
        raise ValueError(f"grad_mode must be one of {_GRAD_MODES}, got {grad_mode!r}")

    y = ypos + 0.5 if stride != 1 else ypos
    n_rows = (t_out - 1) * stride + 2  # frames h*s + y1 + {0, 1} for h < t_out
    y1 = _integer_part(y, -n_rows - 1, t)
    dy = y - y1.to(y.dtype)
    x1 = _integer_part(xpos, -v - 1, v)
    dx = xpos - x1.to(xpos.dtype)
    kt = torch.stack((1 - dy, dy), dim=1)  # (C, 2): taps at frames y1, y1 + 1
    kv = torch.stack((1 - dx, dx), dim=1)  # (C, 2): taps at joints x1, x1 + 1
    kernel = (kt.unsqueeze(2) * kv.unsqueeze(1)).unsqueeze(1)  # (C, 1, 2, 2)

    dev = x.device.type
    dtype = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else x.dtype
    return kernel, y1, x1, n_rows, dtype


def _fusable(x: Tensor) -> bool:
    """Whether :func:`shift_pointwise` / :func:`shift_batchnorm` take their fused path: eager,
    with gradients, no autocast, and the conv formulation (not the Triton kernels)."""
    return recompute_allowed(x) and not _use_triton(x)


def _is_pointwise(conv: nn.Module) -> bool:
    return (type(conv) is nn.Conv2d and conv.kernel_size == (1, 1) and conv.stride == (1, 1)
            and conv.padding == (0, 0) and conv.dilation == (1, 1) and conv.groups == 1
            and conv.padding_mode == "zeros")


def shift_pointwise(x: Tensor, bn: nn.Module, shift: Shift, conv: nn.Module) -> Tensor:
    """``conv(shift(bn(x)))`` for an ``nn.BatchNorm2d``, an adaptive :class:`Shift` and a 1x1
    ``nn.Conv2d``: the ``bn`` -> ``shift_in`` -> ``temporal_linear`` chain of ``Shift_tcn``.

    Same values, gradients and running-statistics updates as the modules (bit for bit on the
    CPU, except the conv's bias gradient: equal to rounding,
    :func:`~graphfuse.layers.common.conv2d_backward`).  In eager training without autocast on the conv formulation it keeps only ``x``
    (alive anyway) for the backward instead of the shifted rows and the shift output
    (:class:`_ShiftPointwise`), for one BatchNorm forward, one gather and one depthwise 2 x 2
    convolution more in the backward.  Otherwise (Triton kernels, ``torch.compile``,
    autocast, no grad, evaluation, ``SyncBatchNorm``, another module) it runs the modules.
    """
    if not (_fusable(x) and _is_pointwise(conv) and type(shift) is Shift and is_training_batchnorm(bn)):
        return conv(shift(bn(x)))
    bn._check_input_dim(x)  # type: ignore[operator]
    bn_state = batchnorm_train_state(bn)
    kernel, y1, x1, n_rows, _ = _shift_setup(x, shift.xpos, shift.ypos, shift.stride, shift.grad_mode)
    return _ShiftPointwise.apply(x, kernel, y1, x1, n_rows, shift.stride, conv.weight, conv.bias, bn.weight,
                                 bn.bias, bn_state)


def shift_batchnorm(x: Tensor, shift: Shift, bn: nn.Module) -> Tensor:
    """``bn(shift(x))`` for an adaptive :class:`Shift` and an ``nn.BatchNorm2d`` in training
    mode, the ``shift_out`` -> ``bn2`` pair of ``Shift_tcn``.

    Same values, gradients and running-statistics updates as the two modules (bit for bit on
    the CPU); in eager training without autocast on the conv formulation only ``x`` is kept
    for the backward, not the BatchNorm's input (:class:`_ShiftBatchNorm`).  Otherwise
    (evaluation, ``SyncBatchNorm``, Triton kernels, ``torch.compile``, autocast) it is
    literally ``bn(shift(x))``.
    """
    if not (_fusable(x) and type(shift) is Shift and is_training_batchnorm(bn)):
        return bn(shift(x))
    bn._check_input_dim(x)  # type: ignore[operator]
    running_mean, running_var, momentum, eps = batchnorm_train_state(bn)
    kernel, y1, x1, n_rows, _ = _shift_setup(x, shift.xpos, shift.ypos, shift.stride, shift.grad_mode)
    return _ShiftBatchNorm.apply(x, kernel, y1, x1, n_rows, shift.stride, bn.weight, bn.bias,
                                 running_mean, running_var, momentum, eps)


class Shift(nn.Module):
    """Learnable adaptive temporal shift (official ``cuda/shift.py: Shift``).

    Parameter names follow the official module (``xpos``, ``ypos``), so official state
    dicts load unchanged.

    Args:
        channels: number of channels ``C``.
        stride: temporal stride (output ``floor(T / stride)`` frames).
        init_scale: ``ypos ~ U(-init_scale, init_scale)``.  Shift-GCN always passes 1 (the
            official class default of 3 is never used by the model).
        grad_mode: ``'official'`` (sign rule of the CUDA backward) or ``'autograd'``.
        recompute: see :func:`temporal_shift` (a memory/time trade, same numbers).

    Shapes: ``(N, C, T, V) -> (N, C, floor(T / stride), V)``.
    """

    def __init__(
        self,
        channels: int,
        stride: int = 1,
        init_scale: float = 1.0,
        grad_mode: ShiftGradMode = "official",
        recompute: bool = False,
    ) -> None:
        super().__init__()
        if grad_mode not in _GRAD_MODES:
            raise ValueError(f"grad_mode must be one of {_GRAD_MODES}, got {grad_mode!r}")
        self.channels = channels
        self.stride = stride
        self.init_scale = init_scale
        self.grad_mode: ShiftGradMode = grad_mode
        self.recompute = recompute
        self.xpos = nn.Parameter(torch.empty(channels))
        self.ypos = nn.Parameter(torch.empty(channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.xpos.uniform_(-1e-8, 1e-8)
            self.ypos.uniform_(-self.init_scale, self.init_scale)

    def forward(self, x: Tensor) -> Tensor:
        return temporal_shift(x, self.xpos, self.ypos, self.stride, self.grad_mode, self.recompute)

    def extra_repr(self) -> str:
        return f"{self.channels}, stride={self.stride}, grad_mode={self.grad_mode!r}"


# ----------------------------------------------------------------------------------------
# naive temporal shift (paper Sec. 3.2; author's snippet in kchengiva/Shift-GCN issue #5)
# ----------------------------------------------------------------------------------------
def naive_shift_offsets(channels: int, max_shift: int = 4) -> Tensor:
    """Per-channel frame offsets of the naive temporal shift: ``(C,)`` int64.

    With ``u = max_shift`` and ``fold = C // (2u + 1)``, channel group ``g`` (channels
    ``[g*fold, (g+1)*fold)``) gets offset ``g + 1`` for ``g < u`` (reads the frame ``g + 1``
    ahead: "shift left"), ``-(g - u + 1)`` for ``u <= g < 2u`` ("shift right"), and the
    remaining ``C - 2u*fold`` channels offset 0.  ``u = 4`` gives the snippet's
    ``fold = C // 9`` and 8 shifted groups.  When ``C < 2u + 1`` nothing is shifted.
    """
    if max_shift < 1:
        raise ValueError(f"max_shift must be >= 1, got {max_shift}")
    if channels < 1:
        raise ValueError(f"channels must be positive, got {channels}")
    fold = channels // (2 * max_shift + 1)
    if fold == 0:
        return torch.zeros(channels, dtype=torch.long)
    g = torch.arange(channels) // fold
    return torch.where(g < max_shift, g + 1, torch.where(g < 2 * max_shift, max_shift - 1 - g, 0))


def naive_temporal_shift(x: Tensor, offset: Tensor, stride: int = 1) -> Tensor:
    """Naive temporal shift: ``out[n, c, h, v] = x[n, c, h*stride + offset[c], v]``, zero
    outside ``[0, T)``.

    Shift then sample every ``stride``-th frame (output ``floor(T / stride)`` frames, as the
    adaptive shift).  Parameter-free; the backward is the adjoint (a gather).

    Args:
        x: ``(N, C, T, V)``.
        offset: ``(C,)`` int64, e.g. :func:`naive_shift_offsets`.
        stride: temporal stride ``s >= 1``.
    Returns:
        ``(N, C, floor(T / s), V)``.
    """
    if x.dim() != 4:
        raise ValueError(f"naive_temporal_shift expects (N, C, T, V), got shape {tuple(x.shape)}")
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    t_out = x.shape[2] // stride
    if t_out < 1:
        raise ValueError(f"naive_temporal_shift needs T >= stride, got T={x.shape[2]}, stride={stride}")
    if stride == 1:
        return row_shift(x, offset, t_out)
    # Frames h*s + offset for h < t_out: shift over the span they cover, then keep every s-th,
    # compacted in the input's memory format (a strided view would push every later layer
    # off the channels-last fast paths).
    fmt = torch.channels_last if _is_channels_last(x) else torch.contiguous_format
    return row_shift(x, offset, (t_out - 1) * stride + 1)[:, :, ::stride].contiguous(memory_format=fmt)


class NaiveShift(nn.Module):
    """Parameter-free naive temporal shift (paper's "naive temporal shift graph operation").

    Args:
        channels: ``C``.
        stride: temporal stride (shift, then every ``stride``-th frame).
        max_shift: ``u``: groups shifted by ``+-1 .. +-u`` frames (:func:`naive_shift_offsets`).

    The offsets are a non-persistent buffer (nothing in the state dict).
    Shapes: ``(N, C, T, V) -> (N, C, floor(T / stride), V)``.
    """

    def __init__(self, channels: int, stride: int = 1, max_shift: int = 4) -> None:
        super().__init__()
        self.channels = channels
        self.stride = stride
        self.max_shift = max_shift
        self.register_buffer("offset", naive_shift_offsets(channels, max_shift), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return naive_temporal_shift(x, self.offset, self.stride)

    def extra_repr(self) -> str:
        return f"{self.channels}, stride={self.stride}, max_shift={self.max_shift}"
