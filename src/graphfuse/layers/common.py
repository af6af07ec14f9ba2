"""Helpers shared by the layers and the models built from them: the official weight
initialisation of the CTR/Shift-GCN code base, constructor argument checks, and the
training-mode BatchNorm bookkeeping and ``conv -> BatchNorm`` chain that the memory-saving
autograd Functions share."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "batchnorm_train_state",
    "bn_init",
    "check_nonnegative_int",
    "check_positive_int",
    "conv2d_backward",
    "conv_batchnorm",
    "conv_init",
    "is_training_batchnorm",
    "recompute_allowed",
]


def conv_init(conv: nn.Conv2d | nn.Conv1d) -> None:
    """The official ``conv_init`` (2s-AGCN / Shift-GCN): Kaiming normal weights (``fan_out``,
    gain sqrt(2)) and a zero bias, in place."""
    nn.init.kaiming_normal_(conv.weight, mode="fan_out")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def bn_init(bn: nn.modules.batchnorm._BatchNorm, scale: float = 1.0) -> None:
    """The official ``bn_init``: weight ``scale`` (1e-6 zero-initialises a residual branch),
    bias 0, in place."""
    nn.init.constant_(bn.weight, scale)
    nn.init.zeros_(bn.bias)


def check_positive_int(name: str, value: object) -> int:
    """``value`` if it is an ``int`` >= 1 (not a bool), else ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def check_nonnegative_int(name: str, value: object) -> int:
    """``value`` if it is an ``int`` >= 0 (not a bool), else ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    return value


def recompute_allowed(x: Tensor) -> bool:
    """Whether an autograd Function that recomputes intermediates in its backward may replace
    the modules for input ``x``: eager (not traced by ``torch.compile`` / ``torch.export``),
    with gradients, without autocast (whose casts the modules' graph records)."""
    return (torch.is_grad_enabled() and not torch.compiler.is_compiling() and not torch.compiler.is_exporting()
            and not torch.is_autocast_enabled(x.device.type))


def is_training_batchnorm(bn: nn.Module) -> bool:
    """Whether ``bn`` is a plain ``nn.BatchNorm2d`` (not ``SyncBatchNorm``) in training mode
    with running statistics: the case a fused Function reproduces exactly."""
    return (type(bn) is nn.BatchNorm2d and bn.training and bn.track_running_stats
            and getattr(bn, "num_batches_tracked", None) is not None)


def batchnorm_train_state(bn: nn.Module) -> tuple[Tensor, Tensor, float, float]:
    """``nn.BatchNorm2d.forward``'s bookkeeping, as it does it (``num_batches_tracked`` += 1,
    the momentum, ``None`` meaning the cumulative average), for a BatchNorm for which
    :func:`is_training_batchnorm` holds; returns ``(running_mean, running_var, momentum,
    eps)`` for ``torch.native_batch_norm``.  Call it only when the fused path runs."""
    assert isinstance(bn, nn.BatchNorm2d) and bn.running_mean is not None and bn.running_var is not None
    assert bn.num_batches_tracked is not None
    bn.num_batches_tracked.add_(1)
    momentum = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
    return bn.running_mean, bn.running_var, momentum, bn.eps


def conv2d_backward(grad: Tensor, x: Tensor, weight: Tensor, has_bias: bool, stride=(1, 1), padding=(0, 0),
                    dilation=(1, 1), groups: int = 1, mask: tuple[bool, bool, bool] = (True, True, True),
                    ) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """Gradients ``(input, weight, bias)`` of ``F.conv2d(x, weight, bias, ...)`` for those
    ``mask`` asks for (``None`` for the others, and for the bias when ``has_bias`` is false),
    for the Functions that run a convolution's backward themselves.

    ``aten.convolution_backward``, except the bias gradient on the CPU: the sum of ``grad``
    over its batch and spatial dimensions.  oneDNN's bias reduction for channels-last
    gradients costs more than the weight gradient itself (a ``(32, 64, 300, 25)`` 1x1
    convolution: 21 ms for the bias gradient alone, 1.3 ms for the sum; the whole backward
    24.3 ms, 17.3 ms this way; docs/benchmarks.md).  Equal to float rounding (a different
    summation order), not bit for bit, to the convolution module's autograd.
    """
    need_x, need_w, need_b = mask
    need_b = need_b and has_bias
    own_bias = need_b and grad.device.type == "cpu"
    g_x, g_w, g_b = torch.ops.aten.convolution_backward(
        grad, x, weight, [weight.shape[0]] if has_bias else None, stride, padding, dilation, False, (0, 0),
        groups, (need_x, need_w, need_b and not own_bias),
    )
    if own_bias:
        g_b = grad.sum((0, 2, 3))
    return g_x, g_w, g_b


class _ConvBatchNorm(torch.autograd.Function):
    """``batch_norm(conv2d(x))`` in training mode (:func:`conv_batchnorm`), keeping ``x``
    instead of the convolution's output for the backward, which recomputes that output (one
    convolution forward)."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, bn_weight: Tensor | None,  # type: ignore[override]
                bn_bias: Tensor | None, conv_args: tuple, bn_state: tuple[Tensor, Tensor, float, float]) -> Tensor:
        running_mean, running_var, momentum, eps = bn_state
        y = F.conv2d(x, weight, bias, *conv_args)
        out, mean, invstd = torch.native_batch_norm(y, bn_weight, bn_bias, running_mean, running_var, True,
                                                    momentum, eps)
        ctx.save_for_backward(x, weight, bias, bn_weight, mean, invstd)
        ctx.conf = (conv_args, eps)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        x, weight, bias, bn_weight, mean, invstd = ctx.saved_tensors
        (stride, padding, dilation, groups), eps = ctx.conf
        need_x, need_w, need_b, need_bw, need_bb = ctx.needs_input_grad[:5]
        y = F.conv2d(x, weight, bias, stride, padding, dilation, groups)
        need_y = need_x or need_w or need_b
        g_y, g_bw, g_bb = torch.ops.aten.native_batch_norm_backward(
            grad, y, bn_weight, None, None, mean, invstd, True, eps, [need_y, need_bw, need_bb],
        )
        del y
        g_x = g_w = g_b = None
        if need_y:
            g_x, g_w, g_b = conv2d_backward(g_y, x, weight, bias is not None, stride, padding, dilation, groups,
                                            (need_x, need_w, need_b))
        return g_x, g_w, g_b, g_bw, g_bb, None, None


def conv_batchnorm(x: Tensor, conv: nn.Module, bn: nn.Module) -> Tensor:
    """``bn(conv(x))``.

    For an ``nn.Conv2d`` (zero padding) and a training ``nn.BatchNorm2d``
    (:func:`is_training_batchnorm`), in eager mode with gradients and without autocast, one
    autograd Function keeps ``x`` (alive anyway in the residual branches that use it) instead
    of the convolution's output and recomputes that in the backward.  Values, gradients and
    running statistics are the two modules' (bit for bit on the CPU, tested, except the conv's
    bias gradient: equal to rounding, :func:`conv2d_backward`); otherwise it runs the modules.
    """
    if not (recompute_allowed(x) and type(conv) is nn.Conv2d and conv.padding_mode == "zeros"
            and isinstance(conv.padding, tuple) and is_training_batchnorm(bn)):
        return bn(conv(x))
    assert isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)
    bn._check_input_dim(x)
    state = batchnorm_train_state(bn)
    conv_args = (conv.stride, conv.padding, conv.dilation, conv.groups)
    return _ConvBatchNorm.apply(x, conv.weight, conv.bias, bn.weight, bn.bias, conv_args, state)
