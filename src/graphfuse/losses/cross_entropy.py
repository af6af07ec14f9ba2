"""Scaled cross-entropy with label smoothing (OpenGait's ``CrossEntropyLoss``; GLN phase 2).

OpenGait (``ShiqiYu/OpenGait`` ``opengait/modeling/losses/ce.py``) multiplies the logits by
``scale`` (16) and applies ``F.cross_entropy`` with ``label_smoothing`` (0.1), the labels
repeated over the parts of ``[n, c, p]`` logits; the mean runs over samples and parts. Here
``(N, K)`` logits (GLN's classifier after the #109 fix) are the one-part case; ``(N, K, P)``
is accepted as OpenGait's. The loss is computed in float32 (OpenGait casts ``.float()``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ScaledCrossEntropy"]


class ScaledCrossEntropy(nn.Module):
    """``loss(logits (N, K) | (N, K, P), labels (N,)) -> scalar``:
    ``cross_entropy(scale * logits, labels, label_smoothing)``, mean over samples (and parts).

    Smoothing as PyTorch's: the target is ``(1 - eps)`` on the label plus ``eps / K`` on every
    class (OpenGait v1.0 wrote the same mix by hand). Labels outside ``[0, K)`` (e.g. the ``-1``
    of test identities) raise ``ValueError``.
    """

    def __init__(self, scale: float = 16.0, label_smoothing: float = 0.1) -> None:
        super().__init__()
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale!r}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
        self.scale = float(scale)
        self.label_smoothing = float(label_smoothing)

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        target = self._check(logits, labels)
        return F.cross_entropy(logits.float() * self.scale, target, label_smoothing=self.label_smoothing)

    def _check(self, logits: Tensor, labels: Tensor) -> Tensor:
        if logits.ndim not in (2, 3):
            raise ValueError(f"ScaledCrossEntropy expects logits (N, K) or (N, K, P), got {tuple(logits.shape)}")
        n, k = logits.shape[:2]
        if labels.ndim != 1 or labels.shape[0] != n:
            raise ValueError(f"ScaledCrossEntropy: labels must be ({n},), got {tuple(labels.shape)}")
        labels = labels.long()
        if n and (int(labels.min()) < 0 or int(labels.max()) >= k):
            raise ValueError(f"ScaledCrossEntropy: labels must be in [0, {k}) (training identities), got "
                             f"min {int(labels.min())} max {int(labels.max())}")
        return labels if logits.ndim == 2 else labels.view(n, 1).expand(n, logits.shape[2])

    @staticmethod
    @torch.no_grad()
    def accuracy(logits: Tensor, labels: Tensor) -> Tensor:
        """Top-1 accuracy of ``logits`` (argmax over the class axis 1), over samples and parts
        (OpenGait's ``log_accuracy``)."""
        pred = logits.argmax(dim=1)
        target = labels.view(-1, *([1] * (pred.ndim - 1)))
        return (pred == target).float().mean()
