"""Readers of the PIE and JAAD pedestrian-intention annotation files (numpy only)."""

from .jaad import (JAAD_LABEL_MAP, JAADTrack, JAADVideo, read_jaad_annotations,
                   read_jaad_appearance, read_jaad_attributes, read_jaad_split,
                   read_jaad_traffic, read_jaad_vehicle, read_jaad_video)
from .pie import (PIE_LABEL_MAP, PIE_SPLIT_SETS, PIETrack, PIEVideo, pie_split_videos,
                  read_pie_annotations, read_pie_attributes, read_pie_obd, read_pie_video)

__all__ = [
    "JAAD_LABEL_MAP", "JAADTrack", "JAADVideo", "read_jaad_annotations", "read_jaad_appearance",
    "read_jaad_attributes", "read_jaad_split", "read_jaad_traffic", "read_jaad_vehicle",
    "read_jaad_video", "PIE_LABEL_MAP", "PIE_SPLIT_SETS", "PIETrack", "PIEVideo",
    "pie_split_videos", "read_pie_annotations", "read_pie_attributes", "read_pie_obd",
    "read_pie_video",
]
