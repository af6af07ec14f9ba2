"""Losses with a paper's exact rule (gait: OpenGait's batch-all triplet and scaled cross-entropy)."""

from .cross_entropy import ScaledCrossEntropy
from .triplet import BatchAllTripletLoss

__all__ = ["BatchAllTripletLoss", "ScaledCrossEntropy"]
