"""Graph convolution on a label graph (Kipf & Welling, ICLR 2017), as ML-GCN's ``GraphConvolution``.

ML-GCN (Chen et al., CVPR 2019; ``megvii-research/ML-GCN`` ``models.py``) propagates the
label embeddings ``H (C, F_in)`` with ``H' = A_hat (H W)``: ``W (F_in, F_out)``, no bias by
default, the propagation matrix ``A_hat (C, C)`` given at call time. Parameter names and
shapes follow the reference (``weight (F_in, F_out)``, ``bias (1, 1, F_out)``), so ML-GCN's
``gc1.weight`` / ``gc2.weight`` load unchanged; initialisation ``U(-1/sqrt(F_out), 1/sqrt(F_out))``
as its ``reset_parameters``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .common import check_positive_int

__all__ = ["GraphConvolution"]


class GraphConvolution(nn.Module):
    """``H' = A_hat @ (H @ weight) (+ bias)``.

    Args:
        in_features: ``F_in``.
        out_features: ``F_out``.
        bias: add a learned bias ``(1, 1, F_out)`` (ML-GCN: False).

    Shapes: ``x (..., C, F_in)``, ``adj (C, C)`` -> ``(..., C, F_out)``.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = False) -> None:
        super().__init__()
        self.in_features = check_positive_int("in_features", in_features)
        self.out_features = check_positive_int("out_features", out_features)
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        if bias:
            self.bias: nn.Parameter | None = nn.Parameter(torch.empty(1, 1, out_features))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """ML-GCN's initialisation: uniform in ``±1 / sqrt(F_out)`` (weight and bias)."""
        bound = 1.0 / math.sqrt(self.out_features)
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor, adj: Tensor) -> Tensor:
        """``x (..., C, F_in)``, ``adj (C, C)`` -> ``(..., C, F_out)``."""
        if x.shape[-1] != self.in_features:
            raise ValueError(f"GraphConvolution expects {self.in_features} input features, got shape {tuple(x.shape)}")
        if adj.ndim != 2 or adj.shape[0] != adj.shape[1] or adj.shape[1] != x.shape[-2]:
            raise ValueError(f"adjacency {tuple(adj.shape)} does not match {x.shape[-2]} nodes")
        out = torch.matmul(adj, torch.matmul(x, self.weight))
        return out + self.bias if self.bias is not None else out

    def extra_repr(self) -> str:
        return f"{self.in_features} -> {self.out_features}, bias={self.bias is not None}"
