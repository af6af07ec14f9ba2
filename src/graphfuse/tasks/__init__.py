"""LightningModules, one per task type."""

from .action import ActionRecognition

__all__ = ["ActionRecognition"]
