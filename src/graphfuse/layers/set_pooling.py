"""Set pooling: the order-free aggregation of a gait sequence's frame features (GaitSet).

GaitSet (Chao, He, Zhang, Feng, "GaitSet: Regarding Gait as a Set for Cross-View Gait
Recognition", AAAI 2019) treats a sequence as an unordered **set** of silhouettes: a
per-frame CNN, then an element-wise **max over the frames** (OpenGait's
``PackSequenceWrapper(torch.max)``; ``ShiqiYu/OpenGait`` ``opengait/modeling/modules.py``).

Layout. graphfuse keeps frames **stacked on the leading axis**: a tensor ``(T, C, H, W)``
holds the frames of every sequence of a batch one after the other, sequence ``i`` being the
``lengths[i]`` rows after those of sequences ``0..i-1``. The training batch (``N``
sequences of ``S`` frames each) is the special case ``lengths = [S] * N``; the test batch
(sequences of any length concatenated, OpenGait's ``all_ordered`` collate) is the general
case. A per-frame block then needs no folding of a set axis (OpenGait's ``SetBlockWrapper``
transposes ``[n, c, s, h, w]`` to ``[n*s, c, h, w]`` and back); :class:`FrameBlock` only
keeps OpenGait's ``forward_block`` parameter prefix so that its checkpoints load strictly.

Pooling with lengths is one segment reduction (``torch.segment_reduce``), no loop over the
sequences; equal lengths use a reshape and ``torch.max``. Gradient at ties: ``torch.max``
(the equal-length path, OpenGait's training path) sends the whole gradient to one frame;
``segment_reduce`` splits it evenly among the tied frames. Both are subgradients of the
max; the pooled values are identical.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["FrameBlock", "SetPooling", "check_lengths", "set_max"]


def check_lengths(lengths: Tensor, total: int, where: str = "set pooling") -> Tensor:
    """``lengths`` as a 1-D int64 tensor on its device, checked: every entry ``>= 1`` and the
    sum equal to ``total`` (the number of stacked frames); ``ValueError`` naming ``where`` else.

    (One host synchronisation: the check reads the values.)
    """
    if not isinstance(lengths, Tensor):
        lengths = torch.as_tensor(lengths)
    if lengths.ndim != 1 or lengths.numel() == 0:
        raise ValueError(f"{where}: lengths must be a non-empty 1-D tensor, got shape {tuple(lengths.shape)}")
    if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
        raise ValueError(f"{where}: lengths must be integers, got {lengths.dtype}")
    lengths = lengths.long()
    low, s = int(lengths.min()), int(lengths.sum())
    if low < 1:
        bad = int(torch.nonzero(lengths < 1)[0, 0])
        raise ValueError(f"{where}: sequence {bad} has {int(lengths[bad])} frames; every sequence needs >= 1")
    if s != total:
        raise ValueError(f"{where}: lengths sum to {s} frames but the input holds {total}")
    return lengths


def set_max(x: Tensor, lengths: Tensor | None = None, *, set_size: int | None = None) -> Tensor:
    """Max over the frames of each sequence.

    Args:
        x: ``(T, ...)`` stacked frame features (see the module docstring).
        lengths: ``(N,)`` frames per sequence, summing to ``T``; sequences of any lengths.
        set_size: instead of ``lengths``: every sequence has ``set_size`` frames (``T`` a multiple).

    Returns:
        ``(N, ...)``: element-wise max over each sequence's frames.
    """
    if (lengths is None) == (set_size is None):
        raise ValueError("set_max: give exactly one of lengths and set_size")
    total = x.shape[0]
    if set_size is not None:
        if set_size < 1 or total % set_size:
            raise ValueError(f"set_max: {total} frames do not split into sets of {set_size}")
        return x.reshape(total // set_size, set_size, *x.shape[1:]).max(dim=1).values
    lengths = check_lengths(lengths, total, "set_max")  # type: ignore[arg-type]
    n = lengths.numel()
    if total % n == 0 and bool((lengths == total // n).all()):
        return x.reshape(n, total // n, *x.shape[1:]).max(dim=1).values
    return torch.segment_reduce(x, "max", lengths=lengths.to(x.device), axis=0)


class SetPooling(nn.Module):
    """:func:`set_max` as a module (no parameters): ``(T, ...)`` frames -> ``(N, ...)`` sets."""

    def forward(self, x: Tensor, lengths: Tensor | None = None, set_size: int | None = None) -> Tensor:
        return set_max(x, lengths, set_size=set_size)


class FrameBlock(nn.Module):
    """Applies ``forward_block`` to every frame of a stacked ``(T, C, H, W)`` tensor.

    The frames already sit on the batch axis, so this is the block itself; the wrapper exists
    for the parameter names: OpenGait's ``SetBlockWrapper`` holds its block as
    ``forward_block``, so GaitSet's first block's weights are ``set_block1.forward_block.0.conv.weight``.
    """

    def __init__(self, forward_block: nn.Module) -> None:
        super().__init__()
        self.forward_block = forward_block

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_block(x)
