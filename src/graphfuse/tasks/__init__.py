"""LightningModules, one per task type."""

from .action import ActionRecognition
from .intention import CrossingIntention

__all__ = ["ActionRecognition", "CrossingIntention"]
