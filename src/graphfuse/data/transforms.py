"""Old path of :mod:`graphfuse.data.ntu.transforms`, kept so that imports written before the
move keep working. New code imports from the new module."""

from graphfuse.data.ntu.transforms import Compose, FrameSubsample, UniformSample

__all__ = ["UniformSample", "FrameSubsample", "Compose"]
