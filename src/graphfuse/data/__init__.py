"""Readers, preparation, datasets and datamodules.

Dataset-layer names are re-exported lazily so that importing a reader (``graphfuse.data.ntu``)
does not import torch or lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "SkeletonDataset": "graphfuse.data.skeleton",
    "EpochSeededSampler": "graphfuse.data.skeleton",
    "compute_stream": "graphfuse.data.skeleton",
    "UniformSample": "graphfuse.data.transforms",
    "SkeletonDataModule": "graphfuse.data.datamodule",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
