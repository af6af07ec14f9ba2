"""NTU RGB+D 60/120: raw ``.skeleton`` reader, benchmarks, official pre-normalisation and
preparation into ``.npy`` + ``meta.json`` (see ``docs/data_ntu.md``).

Equal to the official Shift-GCN ``data_gen`` scripts (kchengiva/Shift-GCN), vectorised
and parallel; readers need numpy only.
"""

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
]
