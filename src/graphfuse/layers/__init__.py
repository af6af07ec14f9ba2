"""Building blocks: one concern per file, plain ``nn.Module``s, no I/O or configuration."""

from .excitation import (
    ActionExcitation,
    ChannelExcitation,
    MotionExcitation,
    SpatioTemporalExcitation,
    TemporalShiftConv,
    action_state_dict_from_official,
)
from .decoupling_gcn import DecouplingGCN
from .fusion import CrossAttention, GatedFusion, NodeExpansion, VelocityEncoder
from .part_pooling import HorizontalPoolingPyramid, SeparateFCs
from .set_pooling import FrameBlock, SetPooling, set_max
from .shift import (
    NaiveShift,
    Shift,
    local_shift_index,
    naive_shift_offsets,
    naive_temporal_shift,
    spatial_shift,
    spatial_shift_index,
    spatial_shift_scale,
    temporal_shift,
)
from .temporal_attention import TemporalTransformer

__all__ = [
    "CrossAttention",
    "DecouplingGCN",
    "GatedFusion",
    "NodeExpansion",
    "TemporalTransformer",
    "VelocityEncoder",
    "FrameBlock",
    "HorizontalPoolingPyramid",
    "SeparateFCs",
    "SetPooling",
    "set_max",
    "ActionExcitation",
    "ChannelExcitation",
    "MotionExcitation",
    "SpatioTemporalExcitation",
    "TemporalShiftConv",
    "action_state_dict_from_official",
    "Shift",
    "spatial_shift",
    "spatial_shift_index",
    "spatial_shift_scale",
    "temporal_shift",
    "NaiveShift",
    "local_shift_index",
    "naive_shift_offsets",
    "naive_temporal_shift",
]
