"""Small instances of the real networks for tests that compile, trace or export them (seconds,
not minutes). Importable from tests as ``_tiny_models`` (and by config class paths)."""

from __future__ import annotations

from graphfuse.models.shiftgcn import ShiftGCN


class TinyShiftGCN(ShiftGCN):
    """The real Shift-GCN (its units, non-local spatial shift, adaptive temporal shift, data BN,
    pooling) with two units instead of ten: l1 (3 -> 16) and a strided l2 (16 -> 32, projection
    residual, the strided adaptive shift), so that tracing takes seconds, not a minute."""

    LAYERS = (("C", 16, 1, False), (16, 32, 2, True))
    feature_dim = 32
