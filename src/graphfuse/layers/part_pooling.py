"""Horizontal part pooling and per-part fully connected layers (GaitSet's HPM, GLN's head).

* :class:`HorizontalPoolingPyramid`: for each bin count ``b`` (GaitSet / OpenGait:
  16, 8, 4, 2, 1) the map is cut into ``b`` horizontal strips of equal height; a strip's
  feature is the **mean plus the max** over its pixels (Fu et al., "Horizontal Pyramid
  Matching for Person Re-identification", AAAI 2019; GaitSet's "HPM"). ``(N, C, H, W)`` ->
  ``(N, C, sum(bins))``, parts ordered bin count by bin count, top strip first, as OpenGait's
  ``HorizontalPoolingPyramid`` (the original GaitSet code orders the bins 1, 2, 4, 8, 16;
  irrelevant for retrieval).
* :class:`SeparateFCs`: one independent linear map per part, no bias, held as one parameter
  ``fc_bin`` of shape ``(parts, c_in, c_out)`` (OpenGait's name and layout), Xavier-uniform.

Difference from OpenGait: OpenGait views the map as ``(n, c, b, -1)``, which cuts rows in
the middle when ``H`` is not a multiple of ``b`` (but ``H * W`` is); here ``H % b != 0`` is an
error naming the bin.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["HorizontalPoolingPyramid", "SeparateFCs", "check_bins"]


def check_bins(bins: Sequence[int]) -> tuple[int, ...]:
    """``bins`` as a tuple of positive ints; ``ValueError`` for an empty or bad one."""
    out = tuple(bins)
    if not out or not all(isinstance(b, int) and not isinstance(b, bool) and b >= 1 for b in out):
        raise ValueError(f"bins must be a non-empty sequence of positive integers, got {bins!r}")
    return out


class HorizontalPoolingPyramid(nn.Module):
    """``(N, C, H, W)`` -> ``(N, C, sum(bins))``: mean + max over each of ``b`` horizontal
    strips, for every ``b`` in ``bins`` (no parameters)."""

    def __init__(self, bins: Sequence[int] = (16, 8, 4, 2, 1)) -> None:
        super().__init__()
        self.bins = check_bins(bins)

    @property
    def num_parts(self) -> int:
        """Parts per map: ``sum(bins)`` (31 for 16, 8, 4, 2, 1)."""
        return sum(self.bins)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4:
            raise ValueError(f"HorizontalPoolingPyramid expects (N, C, H, W), got {tuple(x.shape)}")
        n, c, h, _ = x.shape
        parts = []
        for b in self.bins:  # a loop over the pyramid's levels (5), not over data
            if h % b:
                raise ValueError(f"HorizontalPoolingPyramid: map height {h} is not a multiple of the bin count {b}")
            z = x.reshape(n, c, b, -1)  # each strip's rows are contiguous in memory
            parts.append(z.mean(-1) + z.max(-1).values)  # max: the gradient goes to one pixel, as OpenGait's
        return torch.cat(parts, dim=-1)

    def extra_repr(self) -> str:
        return f"bins={self.bins}"


class SeparateFCs(nn.Module):
    """One linear map per part: ``(N, c_in, P)`` -> ``(N, c_out, P)``, ``out[:, :, p] =
    x[:, :, p] @ fc_bin[p]``; no bias.

    ``fc_bin`` ``(P, c_in, c_out)`` starts Xavier-uniform with PyTorch's fans of a 3-D tensor
    (``fan_in = c_in * c_out``, ``fan_out = P * c_out``), as OpenGait's. ``norm=True`` normalises
    each part's matrix over ``c_in`` first (OpenGait's option; off for GaitSet and GLN).
    """

    def __init__(self, parts_num: int, in_channels: int, out_channels: int, norm: bool = False) -> None:
        super().__init__()
        for name, v in (("parts_num", parts_num), ("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"SeparateFCs: {name} must be a positive integer, got {v!r}")
        self.parts_num, self.in_channels, self.out_channels = parts_num, in_channels, out_channels
        self.norm = bool(norm)
        self.fc_bin = nn.Parameter(nn.init.xavier_uniform_(torch.empty(parts_num, in_channels, out_channels)))

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 3 or x.shape[1] != self.in_channels or x.shape[2] != self.parts_num:
            raise ValueError(f"SeparateFCs expects (N, {self.in_channels}, {self.parts_num}), got {tuple(x.shape)}")
        w = F.normalize(self.fc_bin, dim=1) if self.norm else self.fc_bin
        # (P, N, c_in) @ (P, c_in, c_out): one batched matmul over the parts
        out = torch.bmm(x.permute(2, 0, 1), w)
        return out.permute(1, 2, 0).contiguous()

    def extra_repr(self) -> str:
        return f"parts_num={self.parts_num}, in_channels={self.in_channels}, out_channels={self.out_channels}, " \
               f"norm={self.norm}"
