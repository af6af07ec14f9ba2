"""NTU RGB+D 60/120: raw ``.skeleton`` reader, benchmarks, official pre-normalisation,
preparation into ``.npy`` + ``meta.json``, derived streams, and the dataset, transforms and
datamodule that feed Shift-GCN (see ``docs/data_ntu.md``).

Equal to the official Shift-GCN ``data_gen`` scripts (kchengiva/Shift-GCN), vectorised
and parallel; readers need numpy only. The torch-dependent dataset and datamodule are
imported lazily (``SkeletonDataset``, ``SkeletonDataModule``), so the readers and the
preparation stay importable without torch.
"""

from typing import Any

from .benchmarks import BENCHMARKS, Benchmark, get_benchmark, load_missing_list, missing_skeletons
from .normalize import pre_normalize, rotation_matrix
from .official import import_official, import_official_dir
from .prepare import STREAMS, EmptySkeletonError, prepare_ntu, process_file, select_bodies
from .reader import (
    FLOAT_KINECT,
    FLOAT_REPR,
    SkeletonFormatError,
    SkeletonSequence,
    format_skeleton,
    make_sequence,
    parse_ntu_name,
    parse_skeleton,
    read_skeleton,
    write_skeleton,
)

__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "get_benchmark",
    "load_missing_list",
    "missing_skeletons",
    "pre_normalize",
    "rotation_matrix",
    "import_official",
    "import_official_dir",
    "STREAMS",
    "EmptySkeletonError",
    "prepare_ntu",
    "process_file",
    "select_bodies",
    "FLOAT_KINECT",
    "FLOAT_REPR",
    "SkeletonFormatError",
    "SkeletonSequence",
    "format_skeleton",
    "make_sequence",
    "parse_ntu_name",
    "parse_skeleton",
    "read_skeleton",
    "write_skeleton",
    "compute_stream",
    "UniformSample",
    "FrameSubsample",
    "Compose",
    "SkeletonDataset",
    "SkeletonDataModule",
]

_LAZY = {
    "compute_stream": "streams",
    "UniformSample": "transforms",
    "FrameSubsample": "transforms",
    "Compose": "transforms",
    "SkeletonDataset": "dataset",
    "SkeletonDataModule": "datamodule",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
