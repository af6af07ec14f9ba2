"""Models: one file per family; every ablation knob is a constructor argument."""

from .gait import GLN, GaitSet
from .pedgraph import PedGraph
from .shiftgcn import ShiftGCN

__all__ = ["GLN", "GaitSet", "PedGraph", "ShiftGCN"]
