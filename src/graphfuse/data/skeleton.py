"""Old path of :mod:`graphfuse.data.ntu.dataset` (and of the samplers, now in
:mod:`graphfuse.data.samplers`), kept so that imports, configs and run directories written
before the move keep working. New code imports from the new modules."""

from graphfuse.data.ntu.dataset import (
    FORMAT_VERSION,
    STREAMS,
    SUPPORTED_FORMAT_VERSIONS,
    SkeletonDataset,
    Stream,
    Transform,
    bone,
    compute_stream,
    load_meta,
    motion,
    resolve_file,
)
from graphfuse.data.samplers import EpochSeededSampler, _splitmix64, item_seeds

__all__ = [
    "STREAMS",
    "FORMAT_VERSION",
    "SUPPORTED_FORMAT_VERSIONS",
    "Stream",
    "Transform",
    "compute_stream",
    "bone",
    "motion",
    "load_meta",
    "resolve_file",
    "SkeletonDataset",
    "EpochSeededSampler",
    "item_seeds",
    "_splitmix64",
]
