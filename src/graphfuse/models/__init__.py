"""Models: one file per family; every ablation knob is a constructor argument."""

from .shiftgcn import ShiftGCN

__all__ = ["ShiftGCN"]
