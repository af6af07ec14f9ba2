"""Decoupling graph convolution as used by the doing_project (DP) PedGraph+ backbone variant.

DP (``sellenzh/doing_project``, MIT, commit ``2a163b6``): class ``decoupling_gcn`` of
``GCN_module/gcn_0807/models/ped_graph0807.py`` (= ``GCN_module/Gated_Fusion/ped_graph.py``),
which follows the DC-GCN pattern of Cheng et al., "Decoupling GCN with DropGraph Module for
Skeleton-Based Action Recognition", ECCV 2020 (``kchengiva/DecoupleGCN-DropGraph``).
Summary in ``shared/research/pedgraph_pie.md`` section 2.2.

Computation, for input ``x (N, Cin, T, V)``, K subsets (3), G groups (8), ``Cout`` divisible by G:

1. channel mixing ``y = x^T W + b`` with ``W (Cin, K*Cout)`` (``Linear_weight``, init
   N(0, sqrt(0.5 / (K*Cout)))) and ``b (1, K*Cout, 1, 1)`` (``Linear_bias``, init 1e-6),
   then ``BatchNorm2d(K*Cout)`` (``bn0``); the channels are split subset-major into
   ``(K, Cout)``;
2. a learnable adjacency ``DecoupleA (K, G, V, V)`` (init: the identity for every subset and
   group); channel ``c`` of subset ``k`` uses group ``c mod G`` (DP tiles the G groups
   ``Cout / G`` times with ``repeat``). DP normalises the tiled ``(1, Cout, V, V)`` tensor of
   each subset with ``torch.norm(.., dim=1) + 1e-4``, i.e. **over the channel axis**, not
   over the joints (its comment says "N,V,V" but the tensor is 4-D): every entry ``(v, w)`` is
   divided by ``sqrt((Cout/G) * sum_g A[k, g, v, w]^2) + 1e-4``. At the identity
   initialisation the diagonal thus becomes ``1/sqrt(Cout)``. Reproduced as is;
3. ``out[n, c, t, w] = sum_k sum_v y[n, k, c, t, v] * A_norm[k, c mod G, v, w]``;
4. ``BatchNorm2d(Cout)`` (``bn``, gamma initialised to 1e-6), plus the down residual
   (identity if ``Cin == Cout`` else ``Conv2d(Cin, Cout, 1) + BatchNorm2d``, ``down``), ReLU.

DP also constructs ``self.linear = nn.Linear(Cin, Cout)`` and never uses it; it only adds
parameters. ``unused_linear=True`` registers it (named ``linear``) so that parameter counts
equal DP's; it never takes part in the forward pass.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from .common import check_positive_int

__all__ = ["DecouplingGCN"]


class DecouplingGCN(nn.Module):
    """DC-GCN style graph convolution with a learnable, group-decoupled adjacency (DP).

    Args:
        in_channels: Cin.
        out_channels: Cout; must be divisible by ``groups``.
        num_nodes: V (19 for the PedGraph+ graph).
        subsets: K, the number of adjacency subsets (DP: 3).
        groups: G, adjacency groups shared by the channels ``c mod G`` (DP: 8).
        residual: add the down residual (identity or 1x1 conv + BN) before the final ReLU (DP:
            always on inside the GCN; the block-level residual of ``TCN_GCN_unit`` is separate).
        adjacency: initial adjacency ``(K, V, V)`` (array or tensor); default the identity for
            every subset, as DP.
        unused_linear: register DP's unused ``nn.Linear(Cin, Cout)`` for equal parameter counts.

    Shapes: ``x (N, Cin, T, V)`` -> ``(N, Cout, T, V)``. Parameter and buffer names follow DP:
    ``Linear_weight``, ``Linear_bias``, ``DecoupleA``, ``bn0``, ``bn``, ``down.0`` / ``down.1``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_nodes: int = 19,
        subsets: int = 3,
        groups: int = 8,
        residual: bool = True,
        adjacency: Tensor | np.ndarray | None = None,
        unused_linear: bool = False,
    ) -> None:
        super().__init__()
        for name, value in (
            ("in_channels", in_channels),
            ("out_channels", out_channels),
            ("num_nodes", num_nodes),
            ("subsets", subsets),
            ("groups", groups),
        ):
            check_positive_int(name, value)
        if out_channels % groups:
            raise ValueError(f"out_channels={out_channels} is not divisible by groups={groups}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.num_nodes = num_nodes
        self.subsets = subsets
        self.groups = groups
        self.residual = bool(residual)

        if adjacency is None:
            a0 = torch.eye(num_nodes).expand(subsets, num_nodes, num_nodes)
        else:
            a0 = torch.as_tensor(np.asarray(adjacency), dtype=torch.float32)
            if a0.shape != (subsets, num_nodes, num_nodes):
                raise ValueError(
                    f"adjacency must have shape ({subsets}, {num_nodes}, {num_nodes}), got {tuple(a0.shape)}"
                )
        # (K, G, V, V): the same initial matrix for every group, as DP's repeat(1, groups, 1, 1)
        self.DecoupleA = nn.Parameter(a0.unsqueeze(1).repeat(1, groups, 1, 1).contiguous())

        width = out_channels * subsets
        self.Linear_weight = nn.Parameter(torch.empty(in_channels, width))
        nn.init.normal_(self.Linear_weight, 0.0, math.sqrt(0.5 / width))
        self.Linear_bias = nn.Parameter(torch.full((1, width, 1, 1), 1e-6))
        self.bn0 = nn.BatchNorm2d(width)
        self.bn = nn.BatchNorm2d(out_channels)
        nn.init.constant_(self.bn.weight, 1e-6)  # the block starts close to its residual
        nn.init.zeros_(self.bn.bias)
        if self.residual and in_channels != out_channels:
            conv = nn.Conv2d(in_channels, out_channels, kernel_size=1)
            nn.init.kaiming_normal_(conv.weight, mode="fan_out")
            nn.init.zeros_(conv.bias)
            self.down: nn.Module | None = nn.Sequential(conv, nn.BatchNorm2d(out_channels))
        else:
            self.down = None
        self.relu = nn.ReLU()
        if unused_linear:
            self.linear = nn.Linear(in_channels, out_channels)  # DP's dead layer; never called

    def normalized_adjacency(self) -> Tensor:
        """``DecoupleA`` normalised as DP does: ``(K, G, V, V)``, one matrix per subset and group.

        Entry ``(k, g, v, w)`` is divided by the L2 norm over the ``Cout`` tiled channel copies,
        ``sqrt((Cout/G) * sum_g A[k, g, v, w]^2)``, plus 1e-4.
        """
        copies = self.out_channels // self.groups
        # vector_norm, not sqrt(sum of squares): its gradient at a zero norm is 0 (sqrt's is
        # infinite), and the identity start has all-zero off-diagonal entries.
        norm = math.sqrt(copies) * torch.linalg.vector_norm(self.DecoupleA, dim=1, keepdim=True) + 1e-4
        return self.DecoupleA / norm

    def forward(self, x: Tensor) -> Tensor:
        """``x (N, Cin, T, V)`` -> ``(N, Cout, T, V)``."""
        if x.dim() != 4 or x.shape[1] != self.in_channels or x.shape[3] != self.num_nodes:
            raise ValueError(
                f"DecouplingGCN: expected (N, {self.in_channels}, T, {self.num_nodes}), got {tuple(x.shape)}"
            )
        n, _, t, v = x.shape
        y = torch.einsum("nctv,cd->ndtv", x, self.Linear_weight) + self.Linear_bias
        y = self.bn0(y)
        # (N, K*Cout, T, V) -> (N, K, Cout/G, G, T, V): channel c = r*G + g uses group g = c mod G
        y = y.view(n, self.subsets, self.out_channels // self.groups, self.groups, t, v)
        y = torch.einsum("nkrgtv,kgvw->nrgtw", y, self.normalized_adjacency())
        y = self.bn(y.reshape(n, self.out_channels, t, v))
        if self.residual:
            y = y + (x if self.down is None else self.down(x))
        return self.relu(y)
