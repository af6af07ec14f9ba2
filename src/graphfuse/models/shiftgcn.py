"""Shift-GCN (Cheng et al., "Skeleton-Based Action Recognition with Shift Graph
Convolutional Network", CVPR 2020), faithful to the official ``kchengiva/Shift-GCN``
(``model/shift_gcn.py``), in pure PyTorch.

Architecture (joint stream, NTU): ``data_bn`` over ``M*V*C`` (person-major), persons folded
into the batch, ten units ``l1..l10`` (64, 64, 64, 64, 128/2, 128, 128, 256/2, 256, 256
channels/stride; ``l1`` without unit residual, ``l5``/``l8`` with a strided 1x1 conv + BN
residual), mean over ``T*V``, mean over persons, ``fc``.  Each unit is
``ReLU(ShiftTCN(ShiftGCN(x)) + residual(x))``.

Module, parameter and buffer names equal the official ones, so an official checkpoint
(302 keys) loads with ``strict=True``; see :func:`load_official_state_dict`.

Differences from the official code (see ``docs/models_shiftgcn.md``):

* ``num_point`` and ``in_channels`` are honoured everywhere (the official hard-codes 25
  joints inside ``Shift_gcn`` and 3 input channels in ``l1``).
* The spatial index arrays are int64 *buffers*, not ``nn.Parameter`` (the official
  ``parameters()`` counts them); trainable parameters: 693,107 (60 classes).
* Every BatchNorm weight starts at 1.  In the official PyTorch 0.4.1 run the two BNs the
  code never re-initialises (``Shift_gcn.bn``, ``Shift_tcn.bn``) drew gamma from U(0, 1).
* The temporal shift is pure PyTorch (gather + depthwise conv) instead of the CUDA
  extension; its default ``shift_grad='official'`` reproduces the extension's sign rule.
* Tensors run in channels-last memory internally (a layout choice, same numbers).

Variants of the paper that the official code lacks, as constructor arguments (defaults are
the official model; see the "Variants" section of ``docs/models_shiftgcn.md``):
``spatial_shift='local'`` (graph-neighbour shift), ``temporal_shift='naive'`` (fixed
integer shifts, ``naive_shift_max``), ``temporal_pointwise='depthwise_separable'``.

ACTION-Net excitations (Wang et al., CVPR 2021; :mod:`graphfuse.layers.excitation`) inside
chosen units, the research notes' experiments: ``excitation``, ``excitation_placement``
(``'serial'``, ``'parallel'``, ``'after_shift'``), ``excitation_units``,
``excitation_reduction``, ``excitation_replace_tcn``; see :class:`ShiftGCNUnit` for what
each placement computes and the "Excitations" section of ``docs/models_shiftgcn.md``.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphfuse.graphs import ntu25
from graphfuse.layers.common import bn_init, conv_batchnorm, conv_init
from graphfuse.layers.excitation import (
    ActionExcitation,
    ChannelExcitation,
    MotionExcitation,
    SpatioTemporalExcitation,
)
from graphfuse.layers.shift import (
    NaiveShift,
    Shift,
    ShiftGradMode,
    inverse_permutation,
    local_shift_index,
    shift_batchnorm,
    shift_pointwise,
    spatial_shift,
    spatial_shift_index,
    spatial_shift_linear,
    validate_neighbours,
)
from ._keys import check_state_dict
from .weights import Weights

SpatialShiftKind = Literal["nonlocal", "local"]
TemporalShiftKind = Literal["adaptive", "naive"]
TemporalPointwiseKind = Literal["conv", "depthwise_separable"]
_SPATIAL = ("nonlocal", "local")
_TEMPORAL = ("adaptive", "naive")
_POINTWISE = ("conv", "depthwise_separable")
ExcitationKind = Literal["me", "ce", "ste", "action"]
ExcitationPlacement = Literal["serial", "parallel", "after_shift"]
_EXCITATIONS = ("me", "ce", "ste", "action")
_PLACEMENTS = ("serial", "parallel", "after_shift")
#: Excitation kinds whose bottleneck is ``channels // reduction`` (STE has none).
_REDUCED = ("me", "ce", "action")

__all__ = [
    "ShiftGCN",
    "ShiftGCNUnit",
    "ExcitationPaths",
    "ShiftGraphConv",
    "ShiftTemporalConv",
    "TemporalSeparableConv",
    "UnitResidual",
    "official_weight_decay",
    "official_param_groups",
    "official_state_dict_keys",
    "load_official_state_dict",
    "load_official",
    "WEIGHTS",
]


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def _normalise_excitation(excitation: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """``None`` | kind | list of kinds -> ``None`` | tuple of distinct kinds (order kept)."""
    if excitation is None:
        return None
    kinds = (excitation,) if isinstance(excitation, str) else tuple(excitation)
    if not kinds:
        raise ValueError("excitation: empty list; use None (null in YAML) for no excitation")
    for kind in kinds:
        if kind not in _EXCITATIONS:
            raise ValueError(f"excitation must be one of {_EXCITATIONS}, a list of them, or None; got {kind!r}")
    if len(set(kinds)) != len(kinds):
        raise ValueError(f"excitation: each kind at most once, got {list(kinds)}")
    if "action" in kinds and len(kinds) > 1:
        raise ValueError(
            f"excitation: 'action' already holds the ste, ce and me paths (and a shift conv); use it alone, got {list(kinds)}"
        )
    return kinds


def _build_excitation_path(kind: str, channels: int, reduction: int) -> nn.Module:
    if kind == "me":
        return MotionExcitation(channels, reduction=reduction)
    if kind == "ce":
        return ChannelExcitation(channels, reduction=reduction)
    if kind == "ste":
        return SpatioTemporalExcitation(channels)
    return ActionExcitation(channels, reduction=reduction)


class ExcitationPaths(nn.Module):
    """One ACTION-Net excitation path, or several summed the way ACTION-Net sums its paths.

    Each path ``E_k`` is ``E_k(x) = x + x * g_k(x)`` (:mod:`graphfuse.layers.excitation`;
    ``g_k`` is its public ``gate``).  With one kind the module is that path; with several
    (e.g. ``['me', 'ce']``) the paths all see the same input and their outputs are summed,
    as the official ``Action`` sums STE, CE and ME:
    ``out = sum_k E_k(x) = x * (n + sum_k g_k(x))`` (``n`` = number of paths), not rescaled.
    ``'action'`` is the whole ACTION module (:class:`~graphfuse.layers.ActionExcitation`:
    its own learnable temporal shift conv, then STE + CE + ME summed) and stands alone.

    Children are named by kind (``me``, ``ce``, ``ste``, ``action``), so the parameters of a
    unit's excitation are ``lK.exc.me.squeeze.weight``, ``lK.exc.action.shift.weight``, ...

    Args:
        kinds: a kind or a list of distinct kinds among ``'me'``, ``'ce'``, ``'ste'``, ``'action'``.
        channels: C.
        reduction: ``Cr = C // reduction`` of ME and CE (ACTION-Net: 16); STE has no bottleneck.

    Shapes: ``x: (N, C, T, V) -> (N, C, T, V)``, any T and V.
    """

    def __init__(self, kinds: str | Sequence[str], channels: int, reduction: int = 16) -> None:
        super().__init__()
        normalised = _normalise_excitation(kinds)
        if normalised is None:
            raise ValueError("ExcitationPaths needs at least one kind")
        self.kinds = normalised
        self.channels = channels
        for kind in normalised:
            self.add_module(kind, _build_excitation_path(kind, channels, reduction))

    def forward(self, x: Tensor) -> Tensor:
        """x: ``(N, C, T, V)`` -> ``sum_k (x + x * g_k(x))``: ``(N, C, T, V)``."""
        paths = [getattr(self, kind) for kind in self.kinds]
        if len(paths) == 1:
            return paths[0](x)
        # One full-size product instead of n tensors x + x*g_k (same value).
        gates = paths[0].gate(x)
        for path in paths[1:]:
            gates = gates + path.gate(x)  # (N, C, T, 1) and/or (N, 1, T, V): broadcast
        return x * (gates + float(len(paths)))

    def extra_repr(self) -> str:
        return f"kinds={list(self.kinds)}, channels={self.channels}"


class ShiftGraphConv(nn.Module):
    """Shift graph convolution (official ``Shift_gcn``): non-local spatial shift, feature
    mask, pointwise linear, shift back, ``BatchNorm1d(V*Cout)``, residual, ReLU.

    ``out[v, d] = BN( sum_c x[(v-d+c) mod V, c] * m[(v-d) mod V, c] * W[c, d] + b[d] )``
    with ``m = tanh(Feature_Mask) + 1``; then ``ReLU(out + down(x))``.

    Args:
        in_channels, out_channels: ``Cin``, ``Cout``.
        num_point: number of joints ``V``.
        spatial_shift: ``'nonlocal'`` (official) or ``'local'`` (paper Sec. 3.1, Fig. 3a:
            joint ``v`` keeps the first of ``n + 1`` channel partitions and reads partition
            ``i`` from its ``i``-th neighbour; :func:`~graphfuse.layers.shift.local_shift_index`).
            ``shift_in`` (over ``Cin``) and ``shift_out`` (over ``Cout``) are then the same
            neighbour gather: the neighbour relation has no direction to reverse.  The
            feature mask and everything else are unchanged.
        neighbours: adjacency list (``len == V``) for ``'local'``; required then.
    Shapes: ``(N, Cin, T, V) -> (N, Cout, T, V)`` (channels-last memory).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_point: int = 25,
        spatial_shift: SpatialShiftKind = "nonlocal",
        neighbours: Sequence[Sequence[int]] | None = None,
    ) -> None:
        super().__init__()
        _check_choice("spatial_shift", spatial_shift, _SPATIAL)
        if spatial_shift == "local":
            if neighbours is None:
                raise ValueError("ShiftGraphConv(spatial_shift='local') needs a neighbours list")
            neighbours = validate_neighbours(neighbours, num_point)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.num_point = num_point
        self.spatial_shift = spatial_shift
        self.neighbours = neighbours if spatial_shift == "local" else None
        if in_channels != out_channels:
            self.down: nn.Module | None = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels)
            )
            conv_init(self.down[0])
            bn_init(self.down[1], 1)
        else:
            self.down = None
        self.Linear_weight = nn.Parameter(torch.empty(in_channels, out_channels))
        self.Linear_bias = nn.Parameter(torch.zeros(1, 1, out_channels))
        self.Feature_Mask = nn.Parameter(torch.zeros(1, num_point, in_channels))
        nn.init.normal_(self.Linear_weight, 0.0, math.sqrt(1.0 / out_channels))
        # Not re-initialised by the official code: gamma = 1 in PyTorch >= 1.2 (U(0,1) in 0.4.1).
        self.bn = nn.BatchNorm1d(num_point * out_channels)
        if spatial_shift == "nonlocal":
            self.register_buffer("shift_in", spatial_shift_index(num_point, in_channels, "in"))
            self.register_buffer("shift_out", spatial_shift_index(num_point, out_channels, "out"))
            # Inverse permutations for the gather backward; derived, so not in the state dict.
            self.register_buffer("shift_in_inverse", inverse_permutation(self.shift_in), persistent=False)
            self.register_buffer("shift_out_inverse", inverse_permutation(self.shift_out), persistent=False)
        else:
            # Same buffer names; not permutations, so no inverses (index_select's scatter-add
            # backward instead).
            assert neighbours is not None
            self.register_buffer("shift_in", local_shift_index(neighbours, in_channels))
            self.register_buffer("shift_out", local_shift_index(neighbours, out_channels))
            self.register_buffer("shift_in_inverse", None, persistent=False)
            self.register_buffer("shift_out_inverse", None, persistent=False)
        self.register_load_state_dict_post_hook(ShiftGraphConv._refresh_inverses)

    @staticmethod
    def _refresh_inverses(module: nn.Module, incompatible_keys: Any) -> None:
        # A loaded checkpoint brings its own index arrays: rebuild (and validate) inverses.
        assert isinstance(module, ShiftGraphConv)
        with torch.no_grad():
            if module.spatial_shift == "nonlocal":
                module.shift_in_inverse = inverse_permutation(module.shift_in, "shift_in")
                module.shift_out_inverse = inverse_permutation(module.shift_out, "shift_out")
                return
            # Local shift: the arrays are fixed by the neighbour list; refuse others (e.g. a
            # non-local checkpoint), which would silently change the operation.
            assert module.neighbours is not None
            for name, ch in (("shift_in", module.in_channels), ("shift_out", module.out_channels)):
                expected = local_shift_index(module.neighbours, ch).to(getattr(module, name).device)
                if not torch.equal(getattr(module, name), expected):
                    raise ValueError(
                        f"loaded {name} is not the local shift index of this model's neighbour list "
                        "(a checkpoint of spatial_shift='nonlocal' or of another skeleton graph?)"
                    )

    def forward(self, x0: Tensor) -> Tensor:
        """x0: ``(N, Cin, T, V)`` -> ``(N, Cout, T, V)``."""
        n, c, t, v = x0.shape
        if v != self.num_point or c != self.in_channels:
            raise ValueError(
                f"ShiftGraphConv expects (N, {self.in_channels}, T, {self.num_point}), got {tuple(x0.shape)}"
            )
        d = self.out_channels
        # (N, C, T, V) -> rows (N*T, V*C); free when x0 is channels-last.
        x = x0.permute(0, 2, 3, 1).reshape(n * t, v * c)
        # shift_in and the feature mask (of the target joint) in one gather-and-scale.
        mask = (torch.tanh(self.Feature_Mask) + 1).view(v * c)
        # shift_in, the feature mask and the pointwise linear (+ bias): (N*T, V*Cout).
        y = spatial_shift_linear(x, self.shift_in, self.shift_in_inverse, mask, self.Linear_weight,
                                 self.Linear_bias, (n, t, v))
        y = spatial_shift(y, self.shift_out, self.shift_out_inverse)
        y = self.bn(y)
        # Residual added in place on the BN output (BatchNorm's backward needs its input, not
        # its output), in the (N*T, V*Cout) layout: an in-place op on a permuted *view*
        # would make autograd copy whole tensors (CopySlices).
        res = conv_batchnorm(x0, self.down[0], self.down[1]) if self.down is not None else x0
        y = F.relu_(y.add_(res.permute(0, 2, 3, 1).reshape(n * t, v * d)))
        return y.view(n, t, v, d).permute(0, 3, 1, 2)  # (N, Cout, T, V), channels-last memory


class TemporalSeparableConv(nn.Module):
    """Depthwise-separable temporal convolution: a depthwise ``(k, 1)`` convolution over T
    (one filter per channel, no bias, zero padding ``k // 2``, stride 1) followed by a 1x1
    pointwise convolution with bias.  No normalisation or activation in between (the
    Xception / ``SeparableConv2d`` factorisation of a ``k x 1`` convolution).

    Replaces ``Shift_tcn.temporal_linear`` when ``temporal_pointwise='depthwise_separable'``
    (the notes' "depthwise-separable conv" helper).  Init: ``depthwise`` PyTorch's default;
    ``pointwise`` as the official ``temporal_linear`` (Kaiming normal fan_out weight, default
    bias).  Parameters: ``k*C + C*C + C``.

    Shapes: ``(N, C, T, V) -> (N, C, T, V)``.
    """

    def __init__(self, channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"depthwise kernel_size must be odd and positive, got {kernel_size}")
        self.depthwise = nn.Conv2d(
            channels, channels, (kernel_size, 1), padding=(kernel_size // 2, 0), groups=channels, bias=False
        )
        self.pointwise = nn.Conv2d(channels, channels, 1)
        nn.init.kaiming_normal_(self.pointwise.weight, mode="fan_out")

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise(self.depthwise(x))


class ShiftTemporalConv(nn.Module):
    """Shift temporal convolution (official ``Shift_tcn``):
    ``BN -> Shift(stride 1) -> Conv1x1 -> ReLU -> Shift(stride s) -> BN``.

    Args:
        channels: ``C``.
        stride: temporal stride ``s`` (applied by ``shift_out``).
        shift_grad: gradient rule of the adaptive shifts (see :class:`ShiftGCN`).
        temporal_shift: ``'adaptive'`` (official learnable :class:`Shift`) or ``'naive'``
            (both shifts are the parameter-free :class:`~graphfuse.layers.shift.NaiveShift`
            with the same group layout; ``shift_out`` shifts then keeps every ``s``-th frame).
        naive_shift_max: ``u`` of the naive shift (groups shifted by ``+-1 .. +-u`` frames).
        temporal_pointwise: ``'conv'`` (official 1x1 ``temporal_linear``) or
            ``'depthwise_separable'`` (:class:`TemporalSeparableConv` as ``temporal_linear``).
        depthwise_kernel_size: temporal kernel of the depthwise part.

    Shapes: ``(N, C, T, V) -> (N, C, floor(T / s), V)``.
    """

    def __init__(
        self,
        channels: int,
        stride: int = 1,
        shift_grad: ShiftGradMode = "official",
        temporal_shift: TemporalShiftKind = "adaptive",
        naive_shift_max: int = 4,
        temporal_pointwise: TemporalPointwiseKind = "conv",
        depthwise_kernel_size: int = 3,
    ) -> None:
        super().__init__()
        _check_choice("temporal_shift", temporal_shift, _TEMPORAL)
        _check_choice("temporal_pointwise", temporal_pointwise, _POINTWISE)
        self.channels = channels
        self.stride = stride
        self.temporal_shift = temporal_shift
        self.temporal_pointwise = temporal_pointwise
        self.bn = nn.BatchNorm2d(channels)  # default init in the official code (see module doc)
        self.bn2 = nn.BatchNorm2d(channels)
        bn_init(self.bn2, 1)
        # (Construction order, hence random draws, of the default configuration is the
        # official one: shift_in, shift_out, temporal_linear.)
        self.shift_in: nn.Module
        self.shift_out: nn.Module
        if temporal_shift == "adaptive":
            self.shift_in = Shift(channels, stride=1, init_scale=1, grad_mode=shift_grad)
            # shift_out's input is a ReLU output, which autograd keeps anyway: recompute the
            # shifted frames in the backward instead of storing them.
            self.shift_out = Shift(channels, stride=stride, init_scale=1, grad_mode=shift_grad, recompute=True)
        else:
            self.shift_in = NaiveShift(channels, stride=1, max_shift=naive_shift_max)
            self.shift_out = NaiveShift(channels, stride=stride, max_shift=naive_shift_max)
        self.temporal_linear: nn.Module
        if temporal_pointwise == "conv":
            self.temporal_linear = nn.Conv2d(channels, channels, 1)
            # official: kaiming normal (fan_out) weight; the bias keeps PyTorch's default init
            nn.init.kaiming_normal_(self.temporal_linear.weight, mode="fan_out")
        else:
            self.temporal_linear = TemporalSeparableConv(channels, depthwise_kernel_size)

    def forward(self, x: Tensor, inner: nn.Module | None = None) -> Tensor:
        """x: ``(N, C, T, V)`` -> ``(N, C, T / s, V)``.

        ``inner`` (a shape-keeping module, e.g. an excitation) runs between ``shift_in`` and
        ``temporal_linear``: ``bn2(shift_out(ReLU(temporal_linear(inner(shift_in(bn(x)))))))``,
        where ACTION-Net puts its excitations (after its temporal shift, before the wrapped
        convolution).  ``ShiftGCNUnit`` owns that module (``excitation_placement='after_shift'``).
        """
        if inner is None:
            # temporal_linear(shift_in(bn(.))) and bn2(shift_out(.)) as chains: the same
            # operations, keeping fewer activation-sized tensors for the backward (layers.shift).
            x = shift_pointwise(x, self.bn, self.shift_in, self.temporal_linear)
        else:
            x = self.temporal_linear(inner(self.shift_in(self.bn(x))))
        x = F.relu_(x)
        return shift_batchnorm(x, self.shift_out, self.bn2)


class UnitResidual(nn.Module):
    """Strided 1x1 conv + BN residual of ``l5``/``l8`` (the official ``tcn`` class with
    ``kernel_size=1``). Shapes: ``(N, Cin, T, V) -> (N, Cout, ceil(T / s), V)``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=(stride, 1))
        self.bn = nn.BatchNorm2d(out_channels)
        conv_init(self.conv)
        bn_init(self.bn, 1)

    def forward(self, x: Tensor) -> Tensor:
        return conv_batchnorm(x, self.conv, self.bn)  # keeps x, not the conv output (layers.common)


class ShiftGCNUnit(nn.Module):
    """One Shift-GCN unit (official ``TCN_GCN_unit``):
    ``ReLU(tcn1(gcn1(x)) + residual(x))``, optionally with an ACTION-Net excitation.

    With ``g = gcn1(x)`` (the shift-GCN output, ``Cout`` channels, full ``T``), ``E`` the
    excitation (:class:`ExcitationPaths`: ``E(g) = g + g * gate(g)``, or the sum of several
    such paths) and ``R`` the unit residual, a unit computes:

    ==========================  ===========================================================
    placement                   unit output
    ==========================  ===========================================================
    no excitation (official)    ``ReLU(tcn1(g) + R(x))``
    ``'serial'``                ``ReLU(tcn1(E(g)) + R(x))``: between the GCN and the TCN
    ``'after_shift'``           ``ReLU(bn2(shift_out(ReLU(W(E(shift_in(bn(g))))))) + R(x))``:
                                inside ``tcn1``, after its first temporal shift and before
                                its pointwise ``temporal_linear`` ``W``
    ``'parallel'``              ``ReLU(tcn1(g) + P_s(E(g)) + R(x))``: a branch beside the TCN
    ``'parallel'``, no TCN      ``ReLU(P_s(E(g)) + R(x))`` (``excitation_replace_tcn``)
    ==========================  ===========================================================

    ``P_s`` matches the TCN's temporal stride ``s``: identity for ``s = 1``, else the mean of
    each ``s`` consecutive frames (``avg_pool`` ``(s, 1)``, stride ``(s, 1)``; ``T / s``
    frames).  For ``s = 2`` that is what the official strided adaptive shift computes for a
    channel at zero offset (it samples at ``2h + 0.5``: the mean of frames ``2h``, ``2h+1``);
    it adds no parameter.  No BatchNorm is added anywhere: in ``'serial'`` the excitation's
    output enters ``tcn1.bn``, in ``'after_shift'`` ``temporal_linear`` (then ``bn2``); in
    ``'parallel'`` the branch adds ``E(g)`` (between ``g`` and ``2 g`` for one path, ``g``
    being a ReLU output) to the BN-normalised TCN output.

    Args:
        residual: ``False`` for ``l1`` (no unit residual); otherwise identity when the
            shape is kept, else :class:`UnitResidual`.
        spatial_shift, neighbours: see :class:`ShiftGraphConv`.
        temporal_shift, naive_shift_max, temporal_pointwise, depthwise_kernel_size: see
            :class:`ShiftTemporalConv`.
        excitation: ``None`` (official), a kind ``'me' | 'ce' | 'ste' | 'action'`` or a list
            of distinct kinds summed (:class:`ExcitationPaths`, module ``exc``), on ``Cout``
            channels.
        excitation_placement: ``'serial'``, ``'after_shift'`` or ``'parallel'`` (table above).
        excitation_reduction: ``Cr = Cout // excitation_reduction`` of ME/CE (ACTION-Net 16).
        excitation_replace_tcn: with ``'parallel'``, drop ``tcn1`` (the unit has no ``tcn1``
            parameters; its temporal stride is then ``P_s`` alone).
    Shapes: ``(N, Cin, T, V) -> (N, Cout, T / stride, V)``; ``T`` must be divisible by
    ``stride`` (the strided residual has ``ceil(T/s)`` frames, the shift ``floor(T/s)``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_point: int = 25,
        stride: int = 1,
        residual: bool = True,
        shift_grad: ShiftGradMode = "official",
        spatial_shift: SpatialShiftKind = "nonlocal",
        neighbours: Sequence[Sequence[int]] | None = None,
        temporal_shift: TemporalShiftKind = "adaptive",
        naive_shift_max: int = 4,
        temporal_pointwise: TemporalPointwiseKind = "conv",
        depthwise_kernel_size: int = 3,
        excitation: ExcitationKind | Sequence[ExcitationKind] | None = None,
        excitation_placement: ExcitationPlacement = "serial",
        excitation_reduction: int = 16,
        excitation_replace_tcn: bool = False,
    ) -> None:
        super().__init__()
        kinds = _normalise_excitation(excitation)
        _check_choice("excitation_placement", excitation_placement, _PLACEMENTS)
        if excitation_replace_tcn and (kinds is None or excitation_placement != "parallel"):
            raise ValueError(
                "excitation_replace_tcn=True needs an excitation with excitation_placement='parallel' "
                f"(got excitation={excitation!r}, excitation_placement={excitation_placement!r})"
            )
        self.stride = stride
        self.excitation = kinds
        self.excitation_placement = excitation_placement
        self.excitation_replace_tcn = bool(excitation_replace_tcn)
        self.gcn1 = ShiftGraphConv(in_channels, out_channels, num_point, spatial_shift, neighbours)
        self.tcn1: ShiftTemporalConv | None
        if self.excitation_replace_tcn:
            self.tcn1 = None
        else:
            self.tcn1 = ShiftTemporalConv(
                out_channels,
                stride=stride,
                shift_grad=shift_grad,
                temporal_shift=temporal_shift,
                naive_shift_max=naive_shift_max,
                temporal_pointwise=temporal_pointwise,
                depthwise_kernel_size=depthwise_kernel_size,
            )
        self.residual_kind = "none" if not residual else (
            "identity" if in_channels == out_channels and stride == 1 else "projection"
        )
        if self.residual_kind == "projection":
            self.residual: nn.Module | None = UnitResidual(in_channels, out_channels, stride)
        else:
            self.residual = None
        # Registered last and only when asked for: the official unit's names, order and
        # random draws are untouched.
        self.exc: ExcitationPaths | None = (
            ExcitationPaths(kinds, out_channels, excitation_reduction) if kinds is not None else None
        )

    def _stride_pool(self, b: Tensor) -> Tensor:
        # P_s: mean of each `stride` consecutive frames (T divisible by stride, checked).
        if self.stride == 1:
            return b
        return F.avg_pool2d(b, kernel_size=(self.stride, 1), stride=(self.stride, 1))

    def forward(self, x: Tensor) -> Tensor:
        """x: ``(N, Cin, T, V)`` -> ``(N, Cout, T / stride, V)``."""
        t = x.shape[2]
        if self.stride > 1 and t % self.stride:
            raise ValueError(
                f"Shift-GCN unit with temporal stride {self.stride} needs a frame count divisible by "
                f"{self.stride}, got T={t} (the whole model needs T divisible by 4)"
            )
        g = self.gcn1(x)
        exc, tcn = self.exc, self.tcn1
        # Every branch ends in a tensor no backward needs (bn2 / avg-pool / add / product
        # output), so the residual is added in place below.
        if exc is None:
            assert tcn is not None
            y = tcn(g)
        elif self.excitation_placement == "serial":
            assert tcn is not None
            y = tcn(exc(g))
        elif self.excitation_placement == "after_shift":
            assert tcn is not None
            y = tcn(g, inner=exc)
        else:  # parallel branch
            branch = self._stride_pool(exc(g))
            y = branch if tcn is None else tcn(g).add_(branch)
        if self.residual_kind == "identity":
            y = y.add_(x)
        elif self.residual is not None:
            y = y.add_(self.residual(x))
        return F.relu_(y)


class ShiftGCN(nn.Module):
    """Shift-GCN classifier (official ``model.shift_gcn.Model``).

    Args:
        num_class: number of classes (60 for NTU60, 120 for NTU120).
        num_point: joints ``V`` (25 for NTU; 20 for NW-UCLA).
        num_person: bodies ``M`` (2 for NTU; 1 for NW-UCLA).
        in_channels: coordinates per joint ``C`` (3).
        shift_grad: gradient of the temporal shifts: ``'official'`` (sign rule of the CUDA
            extension) or ``'autograd'`` (true gradient).
        spatial_shift: ``'nonlocal'`` (official) or ``'local'`` (the paper's graph-neighbour
            shift, Sec. 3.1; not in the official code).
        neighbours: adjacency list (0-based, ``len == num_point``) of the skeleton for the
            local shift; the order of each list is the order of the channel partitions.
            Default: :func:`graphfuse.graphs.ntu25.neighbours` (sorted) when
            ``num_point == 25``; required for other layouts.
        temporal_shift: ``'adaptive'`` (official) or ``'naive'`` (paper Sec. 3.2: fixed
            integer shifts, the author's snippet in kchengiva/Shift-GCN issue #5).
        naive_shift_max: ``u`` of the naive shift (the snippet: 4, i.e. ``C // 9`` channels
            per group, 8 shifted groups).
        temporal_pointwise: ``'conv'`` (official 1x1 ``temporal_linear``) or
            ``'depthwise_separable'`` (depthwise ``(k, 1)`` over T + 1x1 pointwise, the
            notes' helper; :class:`TemporalSeparableConv`).
        depthwise_kernel_size: ``k`` of the depthwise part (default 3).
        excitation: ACTION-Net excitation in the units ``excitation_units`` (the research
            notes' experiments; not in either paper): ``None`` (official), ``'me'``
            (motion), ``'ce'`` (channel), ``'ste'`` (spatio-temporal), ``'action'`` (the whole
            ACTION module: shift conv + STE + CE + ME), or a list of distinct kinds among
            ``me``/``ce``/``ste`` whose paths are summed as in ACTION-Net
            (``x * (n + sum_k gate_k(x))``, e.g. ``['me', 'ce']``).  Module ``lK.exc``.
        excitation_placement: where the excitation acts in a unit, on the shift-GCN output
            ``g`` (``Cout`` channels): ``'serial'`` ``tcn1(E(g))``; ``'after_shift'`` inside
            ``tcn1``, between its first temporal shift and ``temporal_linear`` (ACTION-Net's
            position); ``'parallel'`` ``tcn1(g) + P_s(E(g))`` with ``P_s`` the mean of ``s``
            consecutive frames in the stride-``s`` units.  See :class:`ShiftGCNUnit`.
        excitation_units: 1-based unit numbers (``1..10``) that get an excitation; default
            ``None`` = ``[2, ..., 10]``, the notes' "units l2-l10" (``l1``'s GCN output has
            64 channels, so it could take one too).
        excitation_reduction: ``Cr = Cout // excitation_reduction`` of ME and CE (ACTION-Net:
            16, giving ``Cr`` = 4 / 8 / 16 at 64 / 128 / 256 channels).
        excitation_replace_tcn: with ``excitation_placement='parallel'``, remove ``tcn1`` of
            the chosen units: ``ReLU(P_s(E(g)) + R(x))`` (the notes' "CE in parallel, without
            the TCN").
        init_seed_offset: 0 (default): the weights are drawn from the global generator as
            usual. ``k != 0``: the global generator is re-seeded with ``torch.initial_seed() + k``
            first, so the same ``seed_everything`` seed gives another, equally random
            initialisation: the second member of a two-seed ensemble inside one ablation seed
            (brief B.5: the joint-only ensemble that separates ensembling gain from modality
            gain; ``configs/ablations/skeleton_two_stream.yaml``).

    ``excitation_placement``, ``excitation_units`` and ``excitation_reduction`` are validated
    but unused when ``excitation`` is ``None`` (so an ablation can switch the excitation off
    alone); ``excitation_replace_tcn=True`` without an excitation is an error.

    Every shift variant argument applies to all ten units.  The defaults build exactly the
    official model (names, parameters, initialisation, outputs).

    Shapes: ``x: (N, C, T, V, M) -> logits (N, num_class)``; ``T`` divisible by 4.
    """

    #: (in, out, stride, residual) of l1..l10 with ``in_channels`` substituted for ``C``.
    LAYERS: tuple[tuple[int | str, int, int, bool], ...] = (
        ("C", 64, 1, False),
        (64, 64, 1, True),
        (64, 64, 1, True),
        (64, 64, 1, True),
        (64, 128, 2, True),
        (128, 128, 1, True),
        (128, 128, 1, True),
        (128, 256, 2, True),
        (256, 256, 1, True),
        (256, 256, 1, True),
    )
    feature_dim = 256
    #: The batch entries :meth:`forward` takes, by name (graphfuse's dict-batch contract:
    #: a task passes ``batch["x"]`` as ``forward(x=...)``).
    input_names: tuple[str, ...] = ("x",)

    def __init__(
        self,
        num_class: int = 60,
        num_point: int = 25,
        num_person: int = 2,
        in_channels: int = 3,
        shift_grad: ShiftGradMode = "official",
        spatial_shift: SpatialShiftKind = "nonlocal",
        temporal_shift: TemporalShiftKind = "adaptive",
        naive_shift_max: int = 4,
        temporal_pointwise: TemporalPointwiseKind = "conv",
        neighbours: Sequence[Sequence[int]] | None = None,
        depthwise_kernel_size: int = 3,
        excitation: ExcitationKind | list[ExcitationKind] | None = None,
        excitation_placement: ExcitationPlacement = "serial",
        excitation_units: list[int] | None = None,
        excitation_reduction: int = 16,
        excitation_replace_tcn: bool = False,
        init_seed_offset: int = 0,
    ) -> None:
        if isinstance(init_seed_offset, bool) or not isinstance(init_seed_offset, int):
            raise TypeError(f"init_seed_offset must be an int, got {init_seed_offset!r}")
        if init_seed_offset:
            # Before any weight is drawn: the global generator continues from seed + offset.
            torch.manual_seed((torch.initial_seed() + init_seed_offset) % 2**63)
        super().__init__()
        if shift_grad not in ("official", "autograd"):
            raise ValueError(f"shift_grad must be 'official' or 'autograd', got {shift_grad!r}")
        _check_choice("spatial_shift", spatial_shift, _SPATIAL)
        _check_choice("temporal_shift", temporal_shift, _TEMPORAL)
        _check_choice("temporal_pointwise", temporal_pointwise, _POINTWISE)
        if temporal_shift == "naive" and naive_shift_max < 1:
            raise ValueError(f"naive_shift_max must be >= 1, got {naive_shift_max}")
        if neighbours is not None:
            neighbours = validate_neighbours(neighbours, num_point)
        elif spatial_shift == "local":
            if num_point != ntu25.NUM_JOINTS:
                raise ValueError(
                    f"spatial_shift='local' with num_point={num_point} needs the skeleton's "
                    "neighbours list (0-based adjacency, one list per joint); the default is "
                    "NTU's 25-joint graph"
                )
            neighbours = ntu25.neighbours()
        kinds, units = self._check_excitation(
            excitation, excitation_placement, excitation_units, excitation_reduction, excitation_replace_tcn
        )
        self.num_class = num_class
        self.num_point = num_point
        self.num_person = num_person
        self.in_channels = in_channels
        self.shift_grad = shift_grad
        self.spatial_shift = spatial_shift
        self.temporal_shift = temporal_shift
        self.naive_shift_max = naive_shift_max
        self.temporal_pointwise = temporal_pointwise
        self.neighbours = neighbours
        self.depthwise_kernel_size = depthwise_kernel_size
        self.excitation = kinds
        self.excitation_placement = excitation_placement
        self.excitation_units = units
        self.excitation_reduction = excitation_reduction
        self.excitation_replace_tcn = bool(excitation_replace_tcn)
        self.data_bn = nn.BatchNorm1d(num_person * in_channels * num_point)
        bn_init(self.data_bn, 1)
        self.init_seed_offset = int(init_seed_offset)
        #: Units ``l1 .. l{num_units}`` this network holds (10; fewer after :meth:`truncate`).
        self.num_units = len(self.LAYERS)
        for k in range(1, len(self.LAYERS) + 1):
            self.add_module(f"l{k}", self.make_unit(k))
        self.fc = nn.Linear(self.feature_dim, num_class)
        nn.init.normal_(self.fc.weight, 0.0, math.sqrt(2.0 / num_class))

    @classmethod
    def _check_excitation(
        cls,
        excitation: str | Sequence[str] | None,
        placement: str,
        units: Sequence[int] | None,
        reduction: int,
        replace_tcn: bool,
    ) -> tuple[tuple[str, ...] | None, tuple[int, ...]]:
        """Validate the excitation arguments; returns (kinds or None, chosen unit numbers)."""
        kinds = _normalise_excitation(excitation)
        _check_choice("excitation_placement", placement, _PLACEMENTS)
        if isinstance(reduction, bool) or not isinstance(reduction, int) or reduction < 1:
            raise ValueError(f"excitation_reduction must be a positive int, got {reduction!r}")
        n_units = len(cls.LAYERS)
        if units is None:
            chosen = tuple(range(2, n_units + 1))
        else:
            chosen = tuple(units)
            bad = [u for u in chosen if isinstance(u, bool) or not isinstance(u, int) or not 1 <= u <= n_units]
            if bad or not chosen:
                raise ValueError(
                    f"excitation_units must be a non-empty list of unit numbers 1..{n_units} "
                    f"(1-based: 1 = l1), got {list(chosen)}"
                )
            if len(set(chosen)) != len(chosen):
                raise ValueError(f"excitation_units: each unit at most once, got {list(chosen)}")
            chosen = tuple(sorted(chosen))
        if replace_tcn and (kinds is None or placement != "parallel"):
            raise ValueError(
                "excitation_replace_tcn=True needs an excitation with excitation_placement='parallel' "
                f"(got excitation={excitation!r}, excitation_placement={placement!r})"
            )
        if kinds is not None and any(k in _REDUCED for k in kinds):
            # The excitation acts on the unit's GCN output: Cout channels.
            for u in chosen:
                cout = cls.LAYERS[u - 1][1]
                if cout // reduction < 1:
                    raise ValueError(
                        f"excitation_reduction={reduction} leaves {cout} // {reduction} = 0 channels "
                        f"in unit l{u} ({cout} channels; excitation_units={list(chosen)}); "
                        f"{list(kinds)} need channels >= excitation_reduction"
                    )
        return kinds, chosen

    def make_unit(self, k: int, in_channels: int | None = None) -> ShiftGCNUnit:
        """A new unit ``l{k}`` (1-based) with this network's options, freshly initialised;
        ``in_channels`` replaces the unit's input channels (e.g. ``2C`` after a concatenation
        fusion, :mod:`graphfuse.models.two_stream_skeleton`)."""
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(self.LAYERS):
            raise ValueError(f"unit number must be 1..{len(self.LAYERS)}, got {k!r}")
        cin, cout, stride, residual = self.LAYERS[k - 1]
        if in_channels is None:
            in_channels = self.in_channels if cin == "C" else int(cin)
        units = self.excitation_units
        return ShiftGCNUnit(
            in_channels,
            cout,
            self.num_point,
            stride=stride,
            residual=residual,
            shift_grad=self.shift_grad,
            spatial_shift=self.spatial_shift,
            neighbours=self.neighbours,
            temporal_shift=self.temporal_shift,
            naive_shift_max=self.naive_shift_max,
            temporal_pointwise=self.temporal_pointwise,
            depthwise_kernel_size=self.depthwise_kernel_size,
            excitation=self.excitation if k in units else None,
            excitation_placement=self.excitation_placement,
            excitation_reduction=self.excitation_reduction,
            excitation_replace_tcn=self.excitation_replace_tcn and k in units,
        )

    def unit_channels(self, k: int) -> int:
        """Output channels of unit ``l{k}`` (64, 64, 64, 64, 128, 128, 128, 256, 256, 256)."""
        return int(self.LAYERS[k - 1][1])

    def truncate(self, last: int) -> None:
        """Keep ``data_bn`` and units ``l1 .. l{last}``; remove the later units and ``fc``.

        What remains is the tower of a two-stream network fused after ``l{last}`` whose own
        continuation is removed (Feichtenhofer et al.'s ``removeFuseFrom``); it is driven
        through :meth:`embed` and :meth:`forward_units`, and :meth:`forward` refuses it.
        """
        if isinstance(last, bool) or not isinstance(last, int) or not 1 <= last <= self.num_units:
            raise ValueError(f"truncate: last must be 1..{self.num_units}, got {last!r}")
        for k in range(last + 1, self.num_units + 1):
            delattr(self, f"l{k}")
        if hasattr(self, "fc"):
            delattr(self, "fc")
        self.num_units = last

    def set_shift_grad(self, mode: ShiftGradMode) -> None:
        """Switch the gradient rule of every temporal shift (``'official'``/``'autograd'``)."""
        if mode not in ("official", "autograd"):
            raise ValueError(f"shift_grad must be 'official' or 'autograd', got {mode!r}")
        self.shift_grad = mode
        for module in self.modules():
            if isinstance(module, Shift):
                module.grad_mode = mode

    def units(self) -> Iterable[ShiftGCNUnit]:
        return (getattr(self, f"l{k}") for k in range(1, self.num_units + 1))

    def embed(self, x: Tensor) -> Tensor:
        """``x: (N, C, T, V, M)`` -> ``data_bn`` applied, persons folded into the batch:
        ``(N*M, C, T, V)`` (channels-last memory), the input of ``l1``."""
        if x.dim() != 5:
            raise ValueError(f"ShiftGCN expects (N, C, T, V, M), got shape {tuple(x.shape)}")
        n, c, t, v, m = x.shape
        if (c, v, m) != (self.in_channels, self.num_point, self.num_person):
            raise ValueError(
                f"ShiftGCN built for C={self.in_channels}, V={self.num_point}, M={self.num_person}; "
                f"got input of shape {tuple(x.shape)} (N, C, T, V, M)"
            )
        # data_bn over features m*V*C + v*C + c (person-major), as the official permute.
        x = x.permute(0, 4, 3, 1, 2).reshape(n, m * v * c, t)
        x = self.data_bn(x)
        # -> (N*M, C, T, V) with channels-last memory (N*M, T, V, C) for the rest of the net: a
        # copy (C = 3 channels), since the permuted view has the memory order (N*M, V, C, T),
        # which put l1's down branch (conv + BatchNorm, 64 channels) in NCHW, against the
        # channels-last gradients of its backward (a slow BatchNorm backward: 66 ms instead of 5).
        x = x.view(n, m, v, c, t).permute(0, 1, 4, 2, 3).reshape(n * m, t, v, c)
        return x.contiguous().permute(0, 3, 1, 2)

    def forward_units(self, x: Tensor, first: int = 1, last: int | None = None) -> Tensor:
        """Units ``l{first} .. l{last}`` (1-based, inclusive; ``last`` None = the last held)
        on ``x: (N*M, C, T, V)``; ``first = last + 1`` returns ``x`` unchanged."""
        last = self.num_units if last is None else last
        if not 1 <= first <= last + 1 or last > self.num_units:
            raise ValueError(f"forward_units: units l{first}..l{last} not in l1..l{self.num_units}")
        for k in range(first, last + 1):
            x = getattr(self, f"l{k}")(x)
        return x

    def pool_features(self, x: Tensor, n: int) -> Tensor:
        """``x: (N*M, C, T, V)`` -> ``(N, C)``: mean over ``T*V``, then over the ``M`` persons."""
        if x.is_contiguous(memory_format=torch.channels_last):
            # Mean over the (N*M, T*V, C) view: its backward materialises the gradient in that
            # order (channels-last), where a mean over dims (2, 3) gives an NCHW one, which sent the
            # last unit's ReLU and BatchNorm backward down slow mixed-layout paths (docs/benchmarks.md).
            feat = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, x.shape[1]).mean(dim=1)  # (N*M, C)
        else:
            feat = x.mean(dim=(2, 3))  # (N*M, C)
        return feat.view(n, -1, feat.shape[1]).mean(dim=1)

    def forward_features(self, x: Tensor) -> Tensor:
        """x: ``(N, C, T, V, M)`` -> pooled features ``(N, 256)`` (mean over T*V, then M)."""
        if self.num_units < len(self.LAYERS):
            raise RuntimeError(
                f"this ShiftGCN holds units l1..l{self.num_units} only (a truncated fusion tower); "
                "use embed() and forward_units()"
            )
        x = self.embed(x)
        for unit in self.units():
            x = unit(x)
        return self.pool_features(x, x.shape[0] // self.num_person)

    def forward_head(self, features: Tensor) -> Tensor:
        """features ``(N, 256)`` -> logits ``(N, num_class)``."""
        return self.fc(features)

    def forward(self, x: Tensor) -> Tensor:
        """``x: (N, C, T, V, M)`` -> logits ``(N, num_class)``."""
        return self.forward_head(self.forward_features(x))

    # -- recipe hooks ----------------------------------------------------------------------
    def param_groups(self, weight_decay: float = 1e-4) -> list[dict[str, Any]]:
        """Optimiser parameter groups with the official Shift-GCN weight decays.

        The official ``main.py`` (kchengiva/Shift-GCN) gives every parameter its own decay by
        name, see :func:`official_weight_decay`: 1e-3 on ``Linear_weight``, 0 on
        ``Feature_Mask``, ``weight_decay`` (official 1e-4) on everything else, biases and BN
        included. One group per decay value, in the order of the first parameter of each
        (so optimiser states saved by earlier graphfuse versions load unchanged); every group
        also lists its parameter ``names``. Tasks call this hook (a network without one
        gets a single plain group).
        """
        groups: dict[float, dict[str, Any]] = {}
        for name, p in self.named_parameters():
            if p.requires_grad:
                wd = official_weight_decay(name, weight_decay)
                g = groups.setdefault(wd, {"params": [], "names": [], "weight_decay": wd})
                g["params"].append(p)
                g["names"].append(name)
        return list(groups.values())


# ----------------------------------------------------------------------------------------
# official optimiser settings and checkpoints
# ----------------------------------------------------------------------------------------
def official_weight_decay(name: str, default: float = 1e-4) -> float:
    """Weight decay the official ``main.py`` gives parameter ``name``.

    ``'Linear_weight'`` in the name -> 1e-3, else ``'Mask'`` (``Feature_Mask``) -> 0, else
    ``default``: 1e-4 in the official code (biases, BN, ``xpos``/``ypos`` and ``fc`` included;
    the yaml value is ignored there). The one place graphfuse states this rule.
    """
    if "Linear_weight" in name:
        return 1e-3
    if "Mask" in name:
        return 0.0
    return default


def official_param_groups(model: nn.Module, **group_options: Any) -> list[dict[str, Any]]:
    """Trainable parameters of ``model`` grouped by :func:`official_weight_decay`.

    Returns ``[{'params': [...], 'weight_decay': wd, **group_options}, ...]`` for
    ``torch.optim.SGD`` (one group per decay value; same update as one group per tensor).
    """
    groups: dict[float, list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            groups.setdefault(official_weight_decay(name), []).append(p)
    return [{"params": ps, "weight_decay": wd, **group_options} for wd, ps in sorted(groups.items())]


def official_state_dict_keys() -> list[str]:
    """The 302 keys of an official Shift-GCN checkpoint, in module order."""
    return list(_official_keys())


@functools.lru_cache(maxsize=1)
def _official_keys() -> tuple[str, ...]:
    return tuple(ShiftGCN().state_dict().keys())


def load_official_state_dict(path: str | os.PathLike, model: nn.Module | None = None) -> dict[str, Tensor]:
    """Load an official Shift-GCN checkpoint (``save_models/*.pt``, legacy pre-1.6 format).

    The file is read with ``torch.load(weights_only=True, map_location='cpu')``; a
    ``'module.'`` prefix (DataParallel) is stripped.  Keys are checked against ``model``
    (default: the 302 keys of :class:`ShiftGCN`) and, when ``model`` is given, shapes too.

    Returns:
        a state dict to pass to ``model.load_state_dict(..., strict=True)``.
    Raises:
        ValueError naming the file and the missing / unexpected / mis-shaped keys.
    """
    from ..checkpoints import load_checkpoint

    obj = load_checkpoint(path)  # weights_only=True, local files only; errors name the file
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(f"{path}: expected a dict of tensors (a state dict), got {type(obj).__name__}")
    state = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in obj.items()}
    if model is None:
        expected = {k: None for k in official_state_dict_keys()}
    else:
        expected = {k: v.shape for k, v in model.state_dict().items()}
    check_state_dict(state, expected, str(path), "not a Shift-GCN state dict")
    return state



def load_official(path: str | os.PathLike, model: nn.Module | None = None) -> dict[str, Tensor]:
    """The converter-side loader every family offers: ``load_official(path, model=None)`` ->
    a checked state dict for ``model.load_state_dict(..., strict=True)``. Here the same as
    :func:`load_official_state_dict`."""
    return load_official_state_dict(path, model)


# ----------------------------------------------------------------------------------------
# released weights (kchengiva/Shift-GCN save_models/, CC BY-NC 4.0; joint stream only:
# bone and motion weights were never published, kchengiva/Shift-GCN#6)
# ----------------------------------------------------------------------------------------
_RELEASE = "kchengiva/Shift-GCN README (sha256 of the file at commit 20276b6)"
_PROTOCOL = ("{bench} test split, joint stream, whole 300-frame sequences, one clip; the best-on-test "
             "epoch ({epoch} of 140, from data_bn.num_batches_tracked)")

#: The released Shift-GCN checkpoints (:class:`graphfuse.models.weights.Weights`); convert one
#: with ``graphfuse convert shiftgcn FILE OUT.ckpt``; ``graphfuse convert --list`` prints them.
WEIGHTS: tuple[Weights, ...] = tuple(
    Weights(
        name=f"shiftgcn_{bench.replace('-', '_')}_joint",
        file=f"save_models/{file}",
        converter="shiftgcn",
        num_class=num_class,
        config=f"configs/{bench}/shiftgcn/joint.yaml",
        metric="top-1 (%)",
        reported=top1,
        source=_RELEASE,
        protocol=_PROTOCOL.format(bench=label, epoch=epoch),
        sha256=sha,
    )
    for bench, label, file, num_class, top1, epoch, sha in (
        ("ntu60-xsub", "NTU RGB+D 60 cross-subject", "ntu_ShiftGCN_joint_xsub.pt", 60, 87.8, 116,
         "7b73c469c7af983ddf0937403e85d61bae30f01816bdd08c388827076bdd4812"),
        ("ntu60-xview", "NTU RGB+D 60 cross-view", "ntu_ShiftGCN_joint_xview.pt", 60, 95.1, 134,
         "0409e463da1836b49b4283fac9bcf32214625488a90c17a9f25f703b518293da"),
        ("ntu120-xsub", "NTU RGB+D 120 cross-subject", "ntu120_ShiftGCN_joint_xsub.pt", 120, 80.9, 115,
         "0d17f748bcafc3140edbb3d72104eeeb51d4b644d6b66c3b046036b003f40889"),
        ("ntu120-xset", "NTU RGB+D 120 cross-setup", "ntu120_ShiftGCN_joint_xsetup.pt", 120, 83.2, 117,
         "8ce39dad8ca302428fe5d85c64d77bd3c5ab90e0a81e7cead8c9177b6b6a7df1"),
    )
)
