"""Old path of :mod:`graphfuse.data.ntu.streams` (numpy only), kept so that imports written
before the move keep working. New code imports from the new module."""

from graphfuse.data.ntu.streams import STREAMS, bone, compute_stream, motion

__all__ = ["STREAMS", "bone", "motion", "compute_stream"]
