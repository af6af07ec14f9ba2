"""Building blocks: plain ``nn.Module``s and functions, one concern per file."""

from .shift import Shift, spatial_shift, spatial_shift_index, spatial_shift_scale, temporal_shift

__all__ = ["Shift", "spatial_shift", "spatial_shift_index", "spatial_shift_scale", "temporal_shift"]
