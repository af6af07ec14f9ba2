"""Models: one file per family; every ablation knob is a constructor argument."""

from .pedgraph import PedGraph
from .shiftgcn import ShiftGCN

__all__ = ["PedGraph", "ShiftGCN"]
