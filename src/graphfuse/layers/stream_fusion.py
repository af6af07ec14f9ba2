"""Two-stream fusion operators of Feichtenhofer, Pinz & Zisserman, "Convolutional Two-Stream
Network Fusion for Video Action Recognition" (CVPR 2016), faithful to the released MATLAB /
MatConvNet code ``feichtenhofer/twostreamfusion`` (``cnn_ucf101_fusion.m``,
``network_surgery/insert_conv_layers.m``, ``matconvnet/matlab/+dagnn/{Conv3D,Pooling3D}.m``).

* :class:`SpatialFusion` (paper Sec. 3.1) combines two feature maps ``a`` (the stream fused
  *into*, the reference's ``netA`` = spatial / RGB) and ``b`` (the stream fused *from*,
  ``netB`` = temporal / flow) of the same shape ``(N, C, *S)`` at every location:
  ``sum`` ``a + b``; ``max`` ``max(a, b)``; ``concat`` ``[a; b]`` (2C channels); ``conv``
  ``ReLU(W [a; b] + bias)``, a 1x1 convolution 2C -> C (the reference inserts conv + ReLU);
  ``bilinear`` ``sum_s a_s b_s^T`` (C*C values, spatial layout discarded), optionally
  signed-square-rooted and L2-normalised.
* :class:`TemporalFusion` (paper Sec. 3.2) over ``(N, C, T, H, W)``: ``pool2d`` (each frame's
  map pooled on its own), ``pool3d`` (max over ``T' x H' x W'`` cuboids), ``conv3d_pool3d``
  (3x3x3 conv initialised as a weighted identity times a normalised 3-D Gaussian, ReLU, then
  3-D max pooling: the paper's final model).
* :func:`match_size` makes two maps the same spatial size first (the paper: "by padding or
  upsampling" when they differ).

The conv-fusion initialisations (``init``) are those of ``insert_conv_layers.m``'s
``init_weight``; the channel layout is the reference's concatenation ``[a; b]``
(``dagnn.Concat`` of ``[spatial, temporal]``), so "the first half" multiplies ``a``:

==================  ===================================================================
``init``            conv-fusion weight ``W (C x 2C)`` (``I`` = C x C identity)
==================  ===================================================================
``'2sumAB'``        ``[0.25 I, 0.75 I]``: ``0.25 a + 0.75 b`` (the released final model)
``'sumAB'``         ``[I, I]``: ``a + b`` (weights 1, not 0.5)
``'netA'``          ``[I, 0]``: passes ``a``
``'netB'``          ``[0, I]``: passes ``b``
``'xavier'``        ``'Xavier'``: uniform in ``+-sqrt(3 / (h w 2C))``
``'xavierimproved'`` the function's own default: normal, std ``sqrt(2 / (h w C))``
``'identity'``      3-D conv only, ``C -> C``: ``I`` (for an input that is already one map)
==================  ===================================================================

All biases start at 0 (``zeros(1, out)`` in the reference). The reference trains the fusion
biases with learning rate x2 and no weight decay (``setLrWd``: ``fusionBiasesLRWD [2 0]``);
that is a recipe, left to the model's ``param_groups``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "CONV_INITS",
    "MATCH_RULES",
    "SPATIAL_KINDS",
    "TEMPORAL_KINDS",
    "SpatialFusion",
    "TemporalFusion",
    "fusion_weight",
    "gaussian_kernel3d",
    "match_size",
    "signed_sqrt",
]

SpatialKind = Literal["sum", "max", "concat", "conv", "bilinear"]
TemporalKind = Literal["none", "pool2d", "pool3d", "conv3d_pool3d"]
ConvInit = Literal["2sumAB", "sumAB", "netA", "netB", "xavier", "xavierimproved", "identity"]
MatchRule = Literal["upsample", "pad", "error"]
SPATIAL_KINDS: tuple[str, ...] = ("sum", "max", "concat", "conv", "bilinear")
TEMPORAL_KINDS: tuple[str, ...] = ("none", "pool2d", "pool3d", "conv3d_pool3d")
CONV_INITS: tuple[str, ...] = ("2sumAB", "sumAB", "netA", "netB", "xavier", "xavierimproved", "identity")
MATCH_RULES: tuple[str, ...] = ("upsample", "pad", "error")
#: Weights of ``a`` and ``b`` of the two-stream initialisations (``insert_conv_layers.m``).
_AB_WEIGHTS: dict[str, tuple[float, float]] = {
    "2sumAB": (0.25, 0.75),
    "sumAB": (1.0, 1.0),
    "netA": (1.0, 0.0),
    "netB": (0.0, 1.0),
}
_INTERPOLATION = {1: "linear", 2: "bilinear", 3: "trilinear"}


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


# ------------------------------------------------------------------------------------------
# size matching
# ------------------------------------------------------------------------------------------
def match_size(a: Tensor, b: Tensor, rule: MatchRule = "upsample") -> tuple[Tensor, Tensor]:
    """Bring ``a: (N, C, *Sa)`` and ``b: (N, C', *Sb)`` to the same trailing (spatial) size.

    The target size is the element-wise maximum of ``Sa`` and ``Sb``; a map already of that
    size is returned unchanged (the same tensor).

    * ``'upsample'``: resize to the target with linear / bilinear / trilinear interpolation
      (1, 2 or 3 trailing dims; ``align_corners=False``). A map smaller in one dim and larger
      in another is resized in both to the maximum.
    * ``'pad'``: zero-pad each trailing dim symmetrically to the target; an odd difference
      puts the extra element at the end (``left = d // 2``, ``right = d - d // 2``).
    * ``'error'``: ``ValueError`` naming both shapes.

    The batch size and the number of trailing dims must agree (``ValueError`` otherwise);
    channels may differ (``concat``-style callers). For skeleton features ``(N, C, T, V)`` the
    joint axis ``V`` is the same graph in both streams and never needs matching; resizing it
    would interpolate between unrelated joints, so keep the two streams on one graph.
    """
    _check_choice("match", rule, MATCH_RULES)
    if a.dim() != b.dim() or a.dim() < 3:
        raise ValueError(
            f"match_size: a and b need the same layout (N, C, *spatial) with >= 1 spatial dim; "
            f"got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"match_size: batch sizes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    sa, sb = tuple(a.shape[2:]), tuple(b.shape[2:])
    if sa == sb:
        return a, b
    if rule == "error":
        raise ValueError(
            f"the two streams' maps differ in size: {tuple(a.shape)} vs {tuple(b.shape)} "
            "(match='error'; use 'upsample' or 'pad')"
        )
    target = tuple(max(x, y) for x, y in zip(sa, sb))
    return _resize(a, target, rule), _resize(b, target, rule)


def _resize(x: Tensor, target: tuple[int, ...], rule: str) -> Tensor:
    size = tuple(x.shape[2:])
    if size == target:
        return x
    if rule == "pad":
        pads: list[int] = []
        for s, t in reversed(list(zip(size, target))):  # F.pad lists the last dim first
            d = t - s
            pads += [d // 2, d - d // 2]
        return F.pad(x, pads)
    mode = _INTERPOLATION.get(len(target))
    if mode is None:
        raise ValueError(f"match='upsample' handles 1 to 3 spatial dims, got {len(target)} ({tuple(x.shape)})")
    return F.interpolate(x, size=target, mode=mode, align_corners=False)


# ------------------------------------------------------------------------------------------
# initialisations
# ------------------------------------------------------------------------------------------
def fusion_weight(
    init: ConvInit, in_channels: int, out_channels: int, kernel_volume: int = 1,
    generator: torch.Generator | None = None,
) -> Tensor:
    """The ``(out, in)`` channel-mixing matrix of a fusion convolution, as
    ``insert_conv_layers.m: init_weight`` builds it (float32).

    ``2sumAB`` / ``sumAB`` / ``netA`` / ``netB`` need ``in == 2 * out`` (the input is ``[a; b]``)
    and give ``[wa I, wb I]``; ``identity`` needs ``in == out``. The random ones draw
    ``(out, in)`` values: ``xavier`` uniform ``+-sqrt(3 / (k in))``, ``xavierimproved`` normal
    with std ``sqrt(2 / (k out))``, ``k = kernel_volume`` (``h * w`` in the reference).
    """
    _check_choice("init", init, CONV_INITS)
    if init in _AB_WEIGHTS:
        if in_channels != 2 * out_channels:
            raise ValueError(
                f"init={init!r} fuses [a; b]: needs in_channels == 2 * out_channels, "
                f"got {in_channels} -> {out_channels}"
            )
        wa, wb = _AB_WEIGHTS[init]
        eye = torch.eye(out_channels)
        return torch.cat([wa * eye, wb * eye], dim=1)
    if init == "identity":
        if in_channels != out_channels:
            raise ValueError(f"init='identity' needs in_channels == out_channels, got {in_channels} -> {out_channels}")
        return torch.eye(out_channels)
    if init == "xavier":
        bound = math.sqrt(3.0 / (kernel_volume * in_channels))
        return (torch.rand(out_channels, in_channels, generator=generator) * 2 - 1) * bound
    std = math.sqrt(2.0 / (kernel_volume * out_channels))
    return torch.randn(out_channels, in_channels, generator=generator) * std


def gaussian_kernel3d(size: int = 3, sigma: float = 1.0, dtype: torch.dtype = torch.float32) -> Tensor:
    """``(size, size, size)`` normalised isotropic Gaussian: ``G(x, y, z) ~ exp(-(x²+y²+z²) /
    (2 sigma²))`` on the integer grid centred at 0, divided by its sum (``cnn_ucf101_fusion.m``:
    ``ndgrid(-1:1, -1:1, -1:1)``, ``sigma = 1``, ``G3 ./ sum(G3(:))``)."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"gaussian kernel size must be odd and positive, got {size}")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    r = torch.arange(size, dtype=torch.float64) - size // 2
    g1 = torch.exp(-(r * r) / (2.0 * sigma * sigma))
    g = g1[:, None, None] * g1[None, :, None] * g1[None, None, :]
    return (g / g.sum()).to(dtype)


class _SignedSqrt(torch.autograd.Function):
    """``sign(y) sqrt(|y|)`` with the backward ``0.5 / sqrt(|y| + eps)`` (finite at ``y = 0``)."""

    @staticmethod
    def forward(ctx, y: Tensor, eps: float) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(y)
        ctx.eps = eps
        return torch.sign(y) * torch.sqrt(torch.abs(y))

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        (y,) = ctx.saved_tensors
        return grad * 0.5 / torch.sqrt(torch.abs(y) + ctx.eps), None


def signed_sqrt(y: Tensor, eps: float = 1e-8) -> Tensor:
    """``sign(y) * sqrt(|y|)`` element-wise (bilinear-pooling normalisation, Lin et al. ICCV
    2015); the gradient uses ``sqrt(|y| + eps)`` so that zeros give a finite gradient."""
    return _SignedSqrt.apply(y, eps)


# ------------------------------------------------------------------------------------------
# spatial fusion
# ------------------------------------------------------------------------------------------
class SpatialFusion(nn.Module):
    """Fuse two streams' feature maps at one layer (Feichtenhofer et al. 2016, Sec. 3.1).

    Args:
        kind: ``'sum'`` ``a + b``; ``'max'`` ``max(a, b)``; ``'concat'`` ``[a; b]`` over
            channels; ``'conv'`` ``ReLU(W [a; b] + bias)`` with a 1x1 convolution ``2C -> C``
            (module ``conv``, an ``nn.Conv1d(2C, C, 1)`` applied to the flattened locations);
            ``'bilinear'`` ``y = sum_s a_s b_s^T`` over all locations ``s``, flattened to
            ``(N, C*C)`` with ``y[i*C + j] = sum_s a[i, s] b[j, s]``.
        channels: ``C`` of each input.
        init: initial ``W`` of ``'conv'`` (module docstring table; default the released
            model's ``'2sumAB'``: ``0.25 a + 0.75 b``). Ignored by the other kinds.
        signed_sqrt: ``'bilinear'``: ``y <- sign(y) sqrt(|y|)``.
        l2_normalize: ``'bilinear'``: ``y <- y / max(||y||_2, 1e-12)``.
        match: size rule when ``a`` and ``b`` differ spatially (:func:`match_size`).
        relu: ``'conv'``: the ReLU the reference inserts after the fusion conv
            (``insert_conv_layers``: ``addReLU = true``). At a ReLU layer (the paper's fusion
            points) the inputs are >= 0, so ``2sumAB`` then starts exactly as
            ``0.25 a + 0.75 b``.

    Attributes:
        out_channels: ``C`` (sum, max, conv), ``2C`` (concat), ``C*C`` (bilinear).

    Shapes: ``a, b: (N, C, *S)`` with any trailing dims ``S`` (``(H, W)``, ``(T, H, W)``,
    skeleton ``(T, V)``) -> ``(N, out_channels, *S)``; ``'bilinear'`` -> ``(N, C*C)``.
    """

    def __init__(
        self,
        kind: SpatialKind,
        channels: int,
        init: ConvInit = "2sumAB",
        signed_sqrt: bool = True,
        l2_normalize: bool = True,
        match: MatchRule = "upsample",
        relu: bool = True,
    ) -> None:
        super().__init__()
        _check_choice("kind", kind, SPATIAL_KINDS)
        _check_choice("init", init, CONV_INITS)
        _check_choice("match", match, MATCH_RULES)
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive int, got {channels!r}")
        if kind == "conv" and init == "identity":
            raise ValueError("init='identity' is for a C -> C convolution; conv fusion maps [a; b] (2C) -> C")
        self.kind = kind
        self.channels = channels
        self.init = init
        self.signed_sqrt = bool(signed_sqrt)
        self.l2_normalize = bool(l2_normalize)
        self.match = match
        self.relu = bool(relu)
        self.out_channels = {"concat": 2 * channels, "bilinear": channels * channels}.get(kind, channels)
        self.conv: nn.Conv1d | None = None
        if kind == "conv":
            self.conv = nn.Conv1d(2 * channels, channels, kernel_size=1)
            self.reset_parameters()

    def reset_parameters(self) -> None:
        """Set the conv-fusion weight per ``init`` and its bias to 0."""
        if self.conv is None:
            return
        with torch.no_grad():
            w = fusion_weight(self.init, 2 * self.channels, self.channels)
            self.conv.weight.copy_(w.unsqueeze(-1))
            self.conv.bias.zero_()

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        """``a``: the stream fused into (reference ``netA``), ``b``: the other (``netB``), both
        ``(N, C, *S)`` -> see the class docstring."""
        for name, x in (("a", a), ("b", b)):
            if x.dim() < 3 or x.shape[1] != self.channels:
                raise ValueError(
                    f"SpatialFusion({self.kind!r}, channels={self.channels}): {name} must be "
                    f"(N, {self.channels}, *spatial), got {tuple(x.shape)}"
                )
        a, b = match_size(a, b, self.match)
        if self.kind == "sum":
            return a + b
        if self.kind == "max":
            return torch.maximum(a, b)
        if self.kind == "concat":
            return torch.cat([a, b], dim=1)
        if self.kind == "conv":
            assert self.conv is not None
            spatial = a.shape[2:]
            x = torch.cat([a.flatten(2), b.flatten(2)], dim=1)  # (N, 2C, L)
            y = self.conv(x)
            if self.relu:
                y = F.relu(y)
            return y.unflatten(2, spatial)
        # bilinear: sum over locations of the outer products
        y = torch.bmm(a.flatten(2), b.flatten(2).transpose(1, 2)).flatten(1)  # (N, C*C)
        if self.signed_sqrt:
            y = signed_sqrt(y)
        if self.l2_normalize:
            y = F.normalize(y, p=2.0, dim=1, eps=1e-12)
        return y

    def extra_repr(self) -> str:
        s = f"kind={self.kind!r}, channels={self.channels}, out_channels={self.out_channels}"
        if self.kind == "conv":
            s += f", init={self.init!r}, relu={self.relu}"
        if self.kind == "bilinear":
            s += f", signed_sqrt={self.signed_sqrt}, l2_normalize={self.l2_normalize}"
        return s + f", match={self.match!r}"


# ------------------------------------------------------------------------------------------
# temporal fusion
# ------------------------------------------------------------------------------------------
def _triple(name: str, value: int | Sequence[int]) -> tuple[int, int, int]:
    t = (value,) * 3 if isinstance(value, int) else tuple(value)
    if len(t) != 3 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in t):
        raise ValueError(f"{name} must be a positive int or three positive ints (T, H, W), got {value!r}")
    return t  # type: ignore[return-value]


class TemporalFusion(nn.Module):
    """Fuse over time the stacked maps of ``T`` frames (Feichtenhofer et al. 2016, Sec. 3.2).

    Args:
        kind:
            * ``'none'``: identity.
            * ``'pool2d'``: "2D pooling": every frame's map max-pooled spatially on its own
              (``H' x W'`` = ``pool_size[1:]``, stride ``pool_stride[1:]``); time is left
              alone, ``T`` frames out. (In the reference each frame is then classified and
              the predictions averaged; that is the model's part.)
            * ``'pool3d'``: 3-D max pooling of ``T' x H' x W'`` cuboids (``pool_size``,
              ``pool_stride``, no padding; output size ``floor((in - k) / s) + 1`` as
              MatConvNet's ``Pooling3D``).
            * ``'conv3d_pool3d'``: ``Conv3d(channels -> out_channels, 3x3x3, padding 1)``
              initialised as ``W[o, i, t, h, w] = M[o, i] * G[t, h, w]`` (``M`` from ``init``,
              ``G`` :func:`gaussian_kernel3d` with ``sigma``), bias 0, then ReLU, then the
              3-D max pooling of ``'pool3d'`` (reference: ``conv53D``, ``relu3D5``,
              ``pool3D5``). Module ``conv``.
        channels: input channels. The paper's final model applies the 3-D conv to the
            concatenation of both streams (``SpatialFusion('concat', 512)`` -> 1024 channels
            -> 512).
        out_channels: output channels of ``'conv3d_pool3d'``; default ``channels // 2`` for
            the two-stream inits (``[a; b]`` input) and ``channels`` for the others. The
            pooling kinds keep ``channels``.
        init: ``M`` of the 3-D conv: ``'2sumAB'`` (reference: ``[0.25 I; 0.75 I]``, so the
            initial output is the Gaussian-smoothed ``0.25 a + 0.75 b``), ``'sumAB'``,
            ``'netA'``, ``'netB'``, ``'identity'`` (``I``: the Gaussian-smoothed input), or the
            random ``'xavier'`` / ``'xavierimproved'`` (no Gaussian; ``k = 27``).
        pool_size: ``(T', H', W')``; default ``(5, 2, 2)``: the reference replaces VGG-16's
            2x2 ``pool5`` by ``Pooling3D`` with ``poolSize = [2 2 nFrames]``, ``nFrames = 5``.
        pool_stride: ``(T, H, W)`` strides; default ``(2, 2, 2)`` (``[pool5 stride, 2]``).
        sigma: standard deviation of the Gaussian (reference 1).
        kernel_size: temporal/spatial support of the 3-D conv (reference 3, odd).
        relu: the ReLU after the 3-D conv (reference ``relu3D5``).

    Attributes:
        out_channels: channels of the output.

    Shapes: ``x: (N, C, T, H, W) -> (N, C', T', H', W')``.
    """

    def __init__(
        self,
        kind: TemporalKind,
        channels: int,
        pool_size: int | Sequence[int] = (5, 2, 2),
        pool_stride: int | Sequence[int] = (2, 2, 2),
        sigma: float = 1.0,
        out_channels: int | None = None,
        init: ConvInit = "2sumAB",
        kernel_size: int = 3,
        relu: bool = True,
    ) -> None:
        super().__init__()
        _check_choice("kind", kind, TEMPORAL_KINDS)
        _check_choice("init", init, CONV_INITS)
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive int, got {channels!r}")
        self.kind = kind
        self.channels = channels
        self.pool_size = _triple("pool_size", pool_size)
        self.pool_stride = _triple("pool_stride", pool_stride)
        self.sigma = float(sigma)
        self.init = init
        self.kernel_size = int(kernel_size)
        self.relu = bool(relu)
        self.conv: nn.Conv3d | None = None
        if kind == "conv3d_pool3d":
            if out_channels is None:
                if init in _AB_WEIGHTS and channels % 2:
                    raise ValueError(f"init={init!r} fuses [a; b]: channels must be even, got {channels}")
                out_channels = channels // 2 if init in _AB_WEIGHTS else channels
            if self.kernel_size < 1 or self.kernel_size % 2 == 0:
                raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
            self.conv = nn.Conv3d(channels, out_channels, self.kernel_size, padding=self.kernel_size // 2)
            self.out_channels = int(out_channels)
            self.reset_parameters()
        else:
            if out_channels is not None and out_channels != channels:
                raise ValueError(f"kind={kind!r} keeps the channels: out_channels must be None or {channels}")
            self.out_channels = channels

    def reset_parameters(self) -> None:
        """The reference initialisation of the 3-D conv (see ``init``), bias 0."""
        if self.conv is None:
            return
        k = self.kernel_size
        out, cin = self.out_channels, self.channels
        with torch.no_grad():
            if self.init == "xavier":  # random per tap, the 1x1 rules with h*w -> k**3
                w = (torch.rand(out, cin, k, k, k) * 2 - 1) * math.sqrt(3.0 / (k**3 * cin))
            elif self.init == "xavierimproved":
                w = torch.randn(out, cin, k, k, k) * math.sqrt(2.0 / (k**3 * out))
            else:
                m = fusion_weight(self.init, cin, out)
                w = m[:, :, None, None, None] * gaussian_kernel3d(k, self.sigma)
            self.conv.weight.copy_(w)
            assert self.conv.bias is not None
            self.conv.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        """``x: (N, C, T, H, W)`` -> ``(N, out_channels, T', H', W')``."""
        if x.dim() != 5 or x.shape[1] != self.channels:
            raise ValueError(
                f"TemporalFusion({self.kind!r}) expects (N, {self.channels}, T, H, W), got {tuple(x.shape)}"
            )
        if self.kind == "none":
            return x
        if self.kind == "pool2d":
            _, ph, pw = self.pool_size
            _, sh, sw = self.pool_stride
            return F.max_pool3d(x, kernel_size=(1, ph, pw), stride=(1, sh, sw))
        if self.conv is not None:
            x = self.conv(x)
            if self.relu:
                x = F.relu(x)
        t, h, w = x.shape[2:]
        if t < self.pool_size[0] or h < self.pool_size[1] or w < self.pool_size[2]:
            raise ValueError(
                f"TemporalFusion({self.kind!r}): pool_size (T', H', W') = {self.pool_size} is larger than "
                f"the maps (T, H, W) = {(t, h, w)}"
            )
        return F.max_pool3d(x, kernel_size=self.pool_size, stride=self.pool_stride)

    def extra_repr(self) -> str:
        s = f"kind={self.kind!r}, channels={self.channels}, out_channels={self.out_channels}"
        if self.kind != "none":
            s += f", pool_size={self.pool_size}, pool_stride={self.pool_stride}"
        if self.kind == "conv3d_pool3d":
            s += f", init={self.init!r}, sigma={self.sigma}, relu={self.relu}"
        return s
