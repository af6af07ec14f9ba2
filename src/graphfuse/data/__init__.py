"""Readers, preparation, datasets and datamodules.

Layout: :mod:`graphfuse.data.base` (the prepared-data datamodule every family's datamodule
subclasses), :mod:`graphfuse.data.samplers` (seeded samplers), :mod:`graphfuse.data.checks`
(value checks of prepared data), and one package per dataset family,
``data/<family>/{readers, prepare, dataset, datamodule}.py`` (``ntu``, ``intention``), with
``data/synthetic/`` writing each family's real on-disk format.

Dataset-layer names are re-exported lazily so that importing a reader (``graphfuse.data.ntu``)
does not import torch or lightning. ``graphfuse.data.skeleton``, ``.datamodule``,
``.transforms`` and ``.streams`` are the old paths of the NTU modules, kept as re-exports.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "PreparedDataModule": "graphfuse.data.base",
    "EpochSeededSampler": "graphfuse.data.samplers",
    "BalancedEpochSampler": "graphfuse.data.samplers",
    "NoSingletonBatchSampler": "graphfuse.data.samplers",
    "SkeletonDataset": "graphfuse.data.ntu.dataset",
    "compute_stream": "graphfuse.data.ntu.streams",
    "UniformSample": "graphfuse.data.ntu.transforms",
    "SkeletonDataModule": "graphfuse.data.ntu.datamodule",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
