"""Adaptive graph convolution blocks of Pedestrian Graph+ (Cadena et al., "Pedestrian Graph+:
A Fast Pedestrian Crossing Prediction Model Based on Graph Convolutional Networks", IEEE T-ITS
23(11), 2022), faithful to the official ``RodrigoGantier/Pedestrian_graph_plus``
(``models/ped_graph23.py``: ``unit_gcn``, ``unit_tcn``, ``TCN_GCN_unit``).

The graph is not a skeleton: each of the ``K`` (3) subsets has a learnable ``V x V``
adjacency ``PA[k]`` initialised to the identity, whose columns are L2-normalised (+1e-4) at
every forward pass.  Module, parameter and buffer names equal the official ones
(``gcn1.PA``, ``gcn1.conv_d.{k}``, ``gcn1.down``, ``gcn1.bn``, ``tcn1.conv``, ``tcn1.bn``,
``residual.conv``/``residual.bn``), so a released checkpoint loads with ``strict=True``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .common import bn_init, conv_init

__all__ = ["AdaptiveGCNUnit", "AdaptiveGraphConv", "TemporalConv", "column_l2_normalise"]


def column_l2_normalise(a: Tensor, eps: float = 1e-4) -> Tensor:
    """``a[..., i, j] / (||a[..., :, j]||_2 + eps)``: each column of each ``V x V`` matrix
    scaled to unit norm (official ``unit_gcn.L2_norm``, norm over ``dim=1`` of ``(K, V, V)``).

    Shapes: ``(..., V, V) -> (..., V, V)``.
    """
    return a / (torch.linalg.vector_norm(a, ord=2, dim=-2, keepdim=True) + eps)


class AdaptiveGraphConv(nn.Module):
    """Official ``unit_gcn`` with ``adaptive=True``: learnable adjacency per subset.

    ``y = ReLU( BN( sum_k conv_d[k](x @ A_k) ) + down(x) )`` with ``A_k`` the column-normalised
    ``PA[k]`` and ``(x @ A_k)[n, c, t, w] = sum_v x[n, c, t, v] A_k[v, w]``.  ``down`` is a 1x1
    Conv + BN when ``Cin != Cout``, else the identity.

    Initialisation (official): ``PA[k] = I``; ``conv_d[k]`` weight ``N(0, 2 / (Cout*Cin*K))``,
    bias 0; ``down`` Kaiming normal (fan_out), bias 0, BN gamma 1; ``bn`` gamma ``1e-6`` (the
    block starts as its residual).

    Args:
        in_channels, out_channels: ``Cin``, ``Cout``.
        num_nodes: ``V`` (19 for the PedGraph+ pose graph).
        num_subsets: ``K`` (3 in PedGraph+).
    Shapes: ``(N, Cin, T, V) -> (N, Cout, T, V)``.
    """

    def __init__(
        self, in_channels: int, out_channels: int, num_nodes: int = 19, num_subsets: int = 3
    ) -> None:
        super().__init__()
        if num_subsets < 1:
            raise ValueError(f"num_subsets must be >= 1, got {num_subsets}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.num_nodes = num_nodes
        self.num_subsets = num_subsets
        self.PA = nn.Parameter(torch.eye(num_nodes).repeat(num_subsets, 1, 1))
        self.conv_d = nn.ModuleList(nn.Conv2d(in_channels, out_channels, 1) for _ in range(num_subsets))
        for conv in self.conv_d:
            # official conv_branch_init: std sqrt(2 / (n * k1 * k2 * branches))
            nn.init.normal_(conv.weight, 0.0, math.sqrt(2.0 / (out_channels * in_channels * num_subsets)))
            nn.init.zeros_(conv.bias)
        if in_channels != out_channels:
            self.down: nn.Module = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels)
            )
            conv_init(self.down[0])
            bn_init(self.down[1], 1.0)
        else:
            self.down = nn.Identity()
        self.bn = nn.BatchNorm2d(out_channels)
        bn_init(self.bn, 1e-6)

    def adjacency(self) -> Tensor:
        """The normalised adjacencies ``(K, V, V)`` the forward pass uses."""
        return column_l2_normalise(self.PA)

    def forward(self, x: Tensor) -> Tensor:
        """x: ``(N, Cin, T, V)`` -> ``(N, Cout, T, V)``."""
        n, c, t, v = x.shape
        if c != self.in_channels or v != self.num_nodes:
            raise ValueError(
                f"AdaptiveGraphConv expects (N, {self.in_channels}, T, {self.num_nodes}), "
                f"got {tuple(x.shape)}"
            )
        a = self.adjacency()
        # All subsets at once: (N, C, T, V) x (K, V, W) -> (N, K*C, T, W); then the K 1x1
        # convolutions summed = one 1x1 convolution over the K*C stacked channels with the
        # weights concatenated along the input axis and the biases summed.
        xa = torch.einsum("nctv,kvw->nkctw", x, a).reshape(n, self.num_subsets * c, t, v)
        weight = torch.cat([conv.weight for conv in self.conv_d], dim=1)
        bias = torch.stack([conv.bias for conv in self.conv_d]).sum(0)
        y = self.bn(F.conv2d(xa, weight, bias))
        return F.relu(y + self.down(x))

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, num_nodes={self.num_nodes}, "
            f"num_subsets={self.num_subsets}"
        )


class TemporalConv(nn.Module):
    """Official ``unit_tcn``: ``BN(Conv2d(kernel (k, 1), padding (k-1)//2, stride (s, 1)))``,
    no activation.  Init: Kaiming normal (fan_out), bias 0, BN gamma 1.

    Also the unit residual of :class:`AdaptiveGCNUnit` (``k = 1``).

    Shapes: ``(N, Cin, T, V) -> (N, Cout, T', V)`` with ``T' = ceil(T / s)`` for odd ``k``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 5, stride: int = 1) -> None:
        super().__init__()
        pad = (kernel_size - 1) // 2
        self.conv = nn.Conv2d(
            in_channels, out_channels, (kernel_size, 1), padding=(pad, 0), stride=(stride, 1)
        )
        self.bn = nn.BatchNorm2d(out_channels)
        conv_init(self.conv)
        bn_init(self.bn, 1.0)

    def forward(self, x: Tensor) -> Tensor:
        return self.bn(self.conv(x))


class AdaptiveGCNUnit(nn.Module):
    """Official ``TCN_GCN_unit``: ``ReLU( tcn1(gcn1(x)) + residual(x) )``.

    ``gcn1`` is :class:`AdaptiveGraphConv` (``Cin -> Cout``), ``tcn1`` a ``5 x 1``
    :class:`TemporalConv` (``Cout -> Cout``, stride ``s``).  The unit residual is none
    (``residual=False``, PedGraph+'s first block), the identity (``Cin == Cout`` and
    ``s == 1``) or a 1x1 :class:`TemporalConv` (strided), module ``residual``.

    Shapes: ``(N, Cin, T, V) -> (N, Cout, T', V)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_nodes: int = 19,
        num_subsets: int = 3,
        stride: int = 1,
        residual: bool = True,
        kernel_size: int = 5,
    ) -> None:
        super().__init__()
        self.gcn1 = AdaptiveGraphConv(in_channels, out_channels, num_nodes, num_subsets)
        self.tcn1 = TemporalConv(out_channels, out_channels, kernel_size=kernel_size, stride=stride)
        self.has_residual = bool(residual)
        if not residual:
            self.residual: nn.Module | None = None
        elif in_channels == out_channels and stride == 1:
            self.residual = nn.Identity()
        else:
            self.residual = TemporalConv(in_channels, out_channels, kernel_size=1, stride=stride)

    def forward(self, x: Tensor) -> Tensor:
        """x: ``(N, Cin, T, V)`` -> ``(N, Cout, T', V)``."""
        y = self.tcn1(self.gcn1(x))
        if self.residual is not None:
            y = y + self.residual(x)
        return F.relu(y)
