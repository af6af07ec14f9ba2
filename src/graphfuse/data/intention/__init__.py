"""Pedestrian crossing intention data: PIE / JAAD readers (numpy only), the benchmark's crossing
sequences, poses, crops, preparation, and the dataset / datamodule that feed PedGraph.

The torch-dependent dataset and datamodule are imported lazily (``IntentionDataModule``,
``IntentionDataset``), so the readers and the preparation stay importable without torch.
"""

from typing import Any

from .jaad import (JAAD_LABEL_MAP, JAADTrack, JAADVideo, read_jaad_annotations,
                   read_jaad_appearance, read_jaad_attributes, read_jaad_split,
                   read_jaad_traffic, read_jaad_vehicle, read_jaad_video)
from .pie import (PIE_LABEL_MAP, PIE_SPLIT_SETS, PIETrack, PIEVideo, pie_split_videos,
                  read_pie_annotations, read_pie_attributes, read_pie_obd, read_pie_video)
from .poses import FILL_RULES, POSE_FORMATS, MissingPosesError, PoseSource
from .prepare import prepare_intention
from .sequences import CrossingSamples, CrossingTracks, build_samples, window_index

__all__ = [
    "JAAD_LABEL_MAP", "JAADTrack", "JAADVideo", "read_jaad_annotations", "read_jaad_appearance",
    "read_jaad_attributes", "read_jaad_split", "read_jaad_traffic", "read_jaad_vehicle",
    "read_jaad_video", "PIE_LABEL_MAP", "PIE_SPLIT_SETS", "PIETrack", "PIEVideo",
    "pie_split_videos", "read_pie_annotations", "read_pie_attributes", "read_pie_obd",
    "read_pie_video", "FILL_RULES", "POSE_FORMATS", "MissingPosesError", "PoseSource",
    "prepare_intention", "CrossingSamples", "CrossingTracks", "build_samples", "window_index",
    "IntentionDataModule", "IntentionDataset",
]


def __getattr__(name: str) -> Any:
    if name == "IntentionDataModule":
        from .datamodule import IntentionDataModule

        return IntentionDataModule
    if name == "IntentionDataset":
        from .dataset import IntentionDataset

        return IntentionDataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
