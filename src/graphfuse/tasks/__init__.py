"""LightningModules, one per task type, on the shared base :class:`GraphfuseTask`."""

from .action import ActionRecognition
from .base import GraphfuseTask
from .intention import CrossingIntention

__all__ = ["ActionRecognition", "CrossingIntention", "GraphfuseTask"]
