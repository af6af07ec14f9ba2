"""ACTION-Net excitation layers written natively for skeleton tensors ``(N, C, T, V)``.

ACTION-Net: Wang, Z., She, Q., Smolic, A., "ACTION-Net: Multipath Excitation for Action
Recognition", CVPR 2021; official code `V-Sense/ACTION-Net <https://github.com/V-Sense/ACTION-Net>`_
(MIT), ``models/action.py``, class ``Action``.  The motion path comes from TEA (Li et al.,
"TEA: Temporal Excitation and Aggregation for Action Recognition", CVPR 2020).

The official ``Action`` wraps a 2D layer ``net`` of a video CNN whose input is
``(N*T, C, H, W)`` with a fixed ``n_segment = T`` and computes
``net(STE(X) + CE(X) + ME(X))`` with ``X = shift(x)``.  Here ``H, W`` become the joint axis
``V`` (the faithful layout is ``(N*T, C, V, 1)``); on that layout the official kernels reduce
to the native ones below (section 4.5 of ``shared/research/shiftgcn_action.md``):

* shift: ``action_shift`` Conv1d(C, C, 3, groups=C) -> :class:`TemporalShiftConv`, a
  depthwise Conv2d (3, 1) over T;
* STE: ``action_p1_conv1`` Conv3d(1, 1, 3x3x3) -> :class:`SpatioTemporalExcitation`, a
  Conv2d 3x3 over (T, V);
* CE: ``action_p2_squeeze / conv1 / expand`` -> :class:`ChannelExcitation` (same kernels);
* ME: ``action_p3_squeeze / bn1 / conv1 / expand`` -> :class:`MotionExcitation`, its 3x3
  depthwise kernel becoming a (1, 3) depthwise conv over V.

With ``W = 1`` and zero padding, only the middle ``W`` column of the official 3x3x3 (STE)
and 3x3 (ME) kernels ever touches data; the native kernels are those middle columns, and
:func:`action_state_dict_from_official` converts an official ``Action`` state dict.  All
convolutions have ``bias=False`` as in the official code.  Nothing depends on a fixed
``T`` or ``V``: one module serves every temporal resolution of a backbone (300/150/75).

Initialisation follows the official module: PyTorch's default (``kaiming_uniform_`` with
``a = sqrt(5)``, i.e. ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``) with the official kernels'
fan-in, so the STE kernel is drawn with fan-in 27 (the 3x3x3 kernel it is a slice of) and
the ME depthwise kernel with fan-in 9 (3x3); the shift conv gets the ACTION shift pattern.

Caveats of the skeleton layout: the spatial kernels (STE, ME) mix joints that are
neighbours in *index order*, not in the skeleton graph; ``channels // reduction`` must be
at least 1 (ACTION uses 16, so no excitation on a 3-channel input).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "TemporalShiftConv",
    "SpatioTemporalExcitation",
    "ChannelExcitation",
    "MotionExcitation",
    "ActionExcitation",
    "action_state_dict_from_official",
]

# Fan-in of the official kernels whose middle W-slice the native kernels are; used to draw
# the native kernels from the same distribution as the official module's default init.
_OFFICIAL_STE_FAN_IN = 27  # Conv3d(1, 1, 3x3x3)
_OFFICIAL_ME_FAN_IN = 9  # depthwise Conv2d(Cr, Cr, 3x3, groups=Cr): 1 * 3 * 3


def _check_channels(channels: int) -> None:
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ValueError(f"channels must be a positive int, got {channels!r}")


def _reduced_channels(channels: int, reduction: int) -> int:
    """``channels // reduction`` (ACTION's ``reduced_channels``), refusing 0."""
    _check_channels(channels)
    if isinstance(reduction, bool) or not isinstance(reduction, int) or reduction < 1:
        raise ValueError(f"reduction must be a positive int, got {reduction!r}")
    reduced = channels // reduction
    if reduced < 1:
        raise ValueError(
            f"reduction={reduction} leaves channels // reduction = 0 for channels={channels}; "
            f"the excitation needs channels >= reduction (ACTION-Net: reduction 16, so at "
            f"least 16 channels; do not place it on the 3-channel input layer)"
        )
    return reduced


def _check_input(x: Tensor, channels: int, who: str) -> None:
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(
            f"{who} expects x of shape (N, C={channels}, T, V), got {tuple(x.shape)}"
        )


class TemporalShiftConv(nn.Module):
    """ACTION-Net's learnable temporal shift (``action_shift``) on ``(N, C, T, V)``.

    A depthwise convolution over T, kernel 3, zero padding 1, no bias, shared by all joints:
    ``out[n, c, t, v] = w[c,0] x[t-1] + w[c,1] x[t] + w[c,2] x[t+1]`` (0 outside [0, T)).
    Initialised as the official shift with ``fold = channels // shift_div``:

    * channels ``[0, fold)``: ``w = (0, 0, 1)``, out_t = x_{t+1} (future; 0 at t = T-1);
    * channels ``[fold, 2*fold)``: ``w = (1, 0, 0)``, out_t = x_{t-1} (past; 0 at t = 0);
    * the others: ``w = (0, 1, 0)``, identity.

    The weight is trainable. Parameters: ``weight (C, 1, 3, 1)``, i.e. ``3 * C``; it is the
    official ``action_shift.weight (C, 1, 3)`` with a trailing unit axis.

    Args:
        channels: C.
        shift_div: ``fold = channels // shift_div`` channels are shifted each way (official 8).

    Shapes: ``x: (N, C, T, V) -> (N, C, T, V)``.
    """

    def __init__(self, channels: int, shift_div: int = 8) -> None:
        super().__init__()
        _check_channels(channels)
        if isinstance(shift_div, bool) or not isinstance(shift_div, int) or shift_div < 1:
            raise ValueError(f"shift_div must be a positive int, got {shift_div!r}")
        self.channels = channels
        self.shift_div = shift_div
        self.fold = channels // shift_div
        self.weight = nn.Parameter(torch.empty(channels, 1, 3, 1))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Set the ACTION shift pattern (future fold, past fold, identity)."""
        w = self.weight
        w.zero_()
        fold = self.fold
        w[:fold, 0, 2, 0] = 1.0  # reads t+1
        w[fold : 2 * fold, 0, 0, 0] = 1.0  # reads t-1
        w[2 * fold :, 0, 1, 0] = 1.0  # identity

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, C, T, V) -> (N, C, T, V)."""
        _check_input(x, self.channels, type(self).__name__)
        return F.conv2d(x, self.weight, padding=(1, 0), groups=self.channels)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, shift_div={self.shift_div}, fold={self.fold}"


class SpatioTemporalExcitation(nn.Module):
    """STE path of ACTION-Net on ``(N, C, T, V)``: ``X + X * sigmoid(conv3x3(mean_C X))``.

    ``S = mean over C of X`` (N, 1, T, V); ``A = sigmoid(Conv2d(1, 1, 3x3, pad 1)(S))`` over
    (T, V); output ``X + X * A`` broadcast over C.  The 3x3 kernel is the middle W-slice of
    the official ``action_p1_conv1`` Conv3d(1, 1, 3x3x3) (the other 18 weights see only
    zero padding in the ``(N*T, C, V, 1)`` layout).  Parameters: ``conv.weight (1, 1, 3, 3)``,
    9 in all.  ``channels`` is only used to check the input.

    Shapes: ``x: (N, C, T, V) -> (N, C, T, V)``; :meth:`gate` returns ``A: (N, 1, T, V)``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        _check_channels(channels)
        self.channels = channels
        self.conv = nn.Conv2d(1, 1, kernel_size=3, padding=1, bias=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Official default init: U(-b, b), b = 1/sqrt(27) (fan-in of the 3x3x3 kernel)."""
        bound = 1.0 / math.sqrt(_OFFICIAL_STE_FAN_IN)
        nn.init.uniform_(self.conv.weight, -bound, bound)

    def gate(self, x: Tensor) -> Tensor:
        """x: (N, C, T, V) -> A: (N, 1, T, V), in (0, 1)."""
        _check_input(x, self.channels, type(self).__name__)
        return torch.sigmoid(self.conv(x.mean(dim=1, keepdim=True)))

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, C, T, V) -> X + X * A: (N, C, T, V)."""
        return x + x * self.gate(x)

    def extra_repr(self) -> str:
        return f"channels={self.channels}"


class ChannelExcitation(nn.Module):
    """CE path of ACTION-Net on ``(N, C, T, V)``: ``X + X * g`` with a per-(channel, frame) gate.

    ``z = mean over V of X`` (N, C, T); ``squeeze`` 1x1 C -> Cr; ``conv`` Conv1d(Cr, Cr, 3,
    pad 1, dense) over T; ReLU; ``expand`` 1x1 Cr -> C; ``g = sigmoid(.)`` (N, C, T, 1);
    output ``X + X * g`` broadcast over V.  ``Cr = channels // reduction``.  Kernels equal
    the official ``action_p2_squeeze / action_p2_conv1 / action_p2_expand``.
    Parameters: ``2 * C * Cr + 3 * Cr**2``.

    Args:
        channels: C (at least ``reduction``).
        reduction: Cr = C // reduction (official 16, fixed there).

    Shapes: ``x: (N, C, T, V) -> (N, C, T, V)``; :meth:`gate` returns ``g: (N, C, T, 1)``.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.reduced_channels = _reduced_channels(channels, reduction)
        self.channels = channels
        self.reduction = reduction
        cr = self.reduced_channels
        self.squeeze = nn.Conv2d(channels, cr, kernel_size=1, bias=False)
        self.conv = nn.Conv1d(cr, cr, kernel_size=3, padding=1, bias=False)
        self.expand = nn.Conv2d(cr, channels, kernel_size=1, bias=False)

    def gate(self, x: Tensor) -> Tensor:
        """x: (N, C, T, V) -> g: (N, C, T, 1), in (0, 1)."""
        _check_input(x, self.channels, type(self).__name__)
        z = self.squeeze(x.mean(dim=3, keepdim=True))  # (N, Cr, T, 1)
        z = F.relu(self.conv(z.squeeze(3)))  # (N, Cr, T): dense conv over T
        return torch.sigmoid(self.expand(z.unsqueeze(3)))  # (N, C, T, 1)

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, C, T, V) -> X + X * g: (N, C, T, V)."""
        return x + x * self.gate(x)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, reduction={self.reduction}"


class MotionExcitation(nn.Module):
    """ME path of ACTION-Net (from TEA) on ``(N, C, T, V)``: ``X + X * g`` from frame differences.

    ``F = bn(squeeze(X))`` (1x1 C -> Cr, BatchNorm2d(Cr)), ``K = conv(F)`` a depthwise
    (1, 3) conv over V within each frame (zero padding 1), then
    ``D_t = K_{t+1} - F_t`` for ``t < T-1`` and ``D_{T-1} = 0`` (zero pad at the end of T,
    as the official ``F.pad(.., (0,0,0,0,0,0,0,1))``); ``g = sigmoid(expand(mean over V
    of D))`` (N, C, T, 1) with ``expand`` 1x1 Cr -> C; output ``X + X * g``.  There is no
    ReLU in this path.  ``conv`` is the middle W column of the official 3x3
    ``action_p3_conv1``; the other kernels equal ``action_p3_squeeze / bn1 / expand``.  The
    BatchNorm statistics run over (N, T, V), the same elements as the official BN over
    (N*T, V, 1).  Parameters: ``2 * C * Cr + 3 * Cr + 2 * Cr`` (BN affine).

    Args:
        channels: C (at least ``reduction``).
        reduction: Cr = C // reduction (official 16).

    Shapes: ``x: (N, C, T, V) -> (N, C, T, V)``; :meth:`gate` returns ``g: (N, C, T, 1)``.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.reduced_channels = _reduced_channels(channels, reduction)
        self.channels = channels
        self.reduction = reduction
        cr = self.reduced_channels
        self.squeeze = nn.Conv2d(channels, cr, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(cr)
        self.conv = nn.Conv2d(cr, cr, kernel_size=(1, 3), padding=(0, 1), groups=cr, bias=False)
        self.expand = nn.Conv2d(cr, channels, kernel_size=1, bias=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Official default init of the depthwise kernel: U(-1/3, 1/3) (fan-in of 3x3)."""
        bound = 1.0 / math.sqrt(_OFFICIAL_ME_FAN_IN)
        nn.init.uniform_(self.conv.weight, -bound, bound)

    def gate(self, x: Tensor) -> Tensor:
        """x: (N, C, T, V) -> g: (N, C, T, 1), in (0, 1)."""
        _check_input(x, self.channels, type(self).__name__)
        f = self.bn(self.squeeze(x))  # (N, Cr, T, V)
        d = self.conv(f)[:, :, 1:] - f[:, :, :-1]  # (N, Cr, T-1, V); empty when T = 1
        d = F.pad(d.mean(dim=3, keepdim=True), (0, 0, 0, 1))  # (N, Cr, T, 1), D_{T-1} = 0
        return torch.sigmoid(self.expand(d))  # (N, C, T, 1)

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, C, T, V) -> X + X * g: (N, C, T, V)."""
        return x + x * self.gate(x)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, reduction={self.reduction}"


class ActionExcitation(nn.Module):
    """The ACTION module (shift + STE + CE + ME) on ``(N, C, T, V)``, without the wrapped layer.

    ``X = shift(x)``; returns ``STE(X) + CE(X) + ME(X) = X * (3 + A_STE + g_CE + g_ME)``,
    the tensor the official ``Action`` passes to its wrapped ``net``.  The scale is not
    normalised, as in the official code: with gates near 0.5 the output is about ``4.5 X``
    (the following BatchNorm absorbs it).  To reproduce ``Action(net)`` use
    ``nn.Sequential(ActionExcitation(C), net)``.

    Parameter names: ``shift.weight``, ``ste.conv.weight``, ``ce.{squeeze,conv,expand}.weight``,
    ``me.{squeeze,conv,expand}.weight``, ``me.bn.*``; an official ``Action`` state dict
    converts with :func:`action_state_dict_from_official`.  Parameters:
    ``3C + 9 + (2 C Cr + 3 Cr^2) + (2 C Cr + 5 Cr)`` (1,293 at C = 64; 18,009 at C = 256).

    Args:
        channels: C (at least ``reduction``).
        reduction: Cr = C // reduction for CE and ME (official 16).
        shift_div: the shift conv's ``fold = C // shift_div`` (official 8).

    Shapes: ``x: (N, C, T, V) -> (N, C, T, V)``, any T and V.
    """

    def __init__(self, channels: int, reduction: int = 16, shift_div: int = 8) -> None:
        super().__init__()
        _reduced_channels(channels, reduction)  # fail before building anything
        self.channels = channels
        self.shift = TemporalShiftConv(channels, shift_div=shift_div)
        self.ste = SpatioTemporalExcitation(channels)
        self.ce = ChannelExcitation(channels, reduction=reduction)
        self.me = MotionExcitation(channels, reduction=reduction)

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, C, T, V) -> STE(X) + CE(X) + ME(X): (N, C, T, V), X = shift(x)."""
        xs = self.shift(x)
        # One full-size product instead of three X + X*gate terms (same value, less memory).
        gates = (3.0 + self.ce.gate(xs) + self.me.gate(xs)) + self.ste.gate(xs)
        return xs * gates


_OFFICIAL_TO_NATIVE = {
    "action_shift.weight": "shift.weight",
    "action_p1_conv1.weight": "ste.conv.weight",
    "action_p2_squeeze.weight": "ce.squeeze.weight",
    "action_p2_conv1.weight": "ce.conv.weight",
    "action_p2_expand.weight": "ce.expand.weight",
    "action_p3_squeeze.weight": "me.squeeze.weight",
    "action_p3_bn1.weight": "me.bn.weight",
    "action_p3_bn1.bias": "me.bn.bias",
    "action_p3_bn1.running_mean": "me.bn.running_mean",
    "action_p3_bn1.running_var": "me.bn.running_var",
    "action_p3_bn1.num_batches_tracked": "me.bn.num_batches_tracked",
    "action_p3_conv1.weight": "me.conv.weight",
    "action_p3_expand.weight": "me.expand.weight",
}


def action_state_dict_from_official(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Convert the state dict of one official ``Action`` module to :class:`ActionExcitation`.

    ``state_dict`` holds the module's own keys (``action_shift.weight``, ...; strip any outer
    prefix first).  Keys under ``net.`` belong to the wrapped layer and are not returned.
    Kernels are mapped for the skeleton layout ``(N*T, C, V, 1)``: the STE 3x3x3 kernel and
    the ME 3x3 depthwise kernel keep their middle W column (``[..., 1]``), which is the only
    one that touches data there; the shift kernel gains a trailing unit axis.

    Returns a new dict loadable with ``ActionExcitation.load_state_dict(..., strict=True)``.
    Raises ``KeyError`` naming a missing or unknown key, ``ValueError`` for a wrong shape.
    """
    unknown = [k for k in state_dict if k not in _OFFICIAL_TO_NATIVE and not k.startswith("net.")]
    if unknown:
        raise KeyError(f"unknown key(s) for an official ACTION module: {unknown}")
    missing = [k for k in _OFFICIAL_TO_NATIVE if k not in state_dict]
    if missing:
        raise KeyError(f"official ACTION state dict lacks key(s): {missing}")
    out = {native: state_dict[official].clone() for official, native in _OFFICIAL_TO_NATIVE.items()}
    expected_dims = {"action_shift.weight": 3, "action_p1_conv1.weight": 5, "action_p3_conv1.weight": 4}
    for key, dims in expected_dims.items():
        shape = tuple(state_dict[key].shape)
        if len(shape) != dims or shape[-1] != 3:
            raise ValueError(f"{key}: expected a {dims}-d kernel ending in 3, got {shape}")
    out["shift.weight"] = out["shift.weight"].unsqueeze(-1)  # (C, 1, 3) -> (C, 1, 3, 1)
    # (1, 1, 3[T], 3[V], 3[W]) -> middle W column -> (1, 1, 3, 3) over (T, V)
    out["ste.conv.weight"] = out["ste.conv.weight"][..., 1].contiguous()
    # (Cr, 1, 3[V], 3[W]) -> middle W column -> (Cr, 1, 1, 3) over (T=1, V)
    out["me.conv.weight"] = out["me.conv.weight"][..., 1].unsqueeze(2).contiguous()
    return out
