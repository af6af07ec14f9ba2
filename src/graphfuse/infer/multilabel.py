"""``graphfuse infer`` / ``export`` for multi-label image recognition (ML-GCN, HGAT_FC).

An image file is decoded by the datamodule's decoder
(:func:`graphfuse.data.multilabel.transforms.decode_image_file`) and prepared by its test
transform (:func:`graphfuse.data.multilabel.transforms.build_transform` ``("test", S)``: resize to
``S x S`` ignoring the aspect ratio, ImageNet mean / std), ``S`` the checkpoint's ``image_size``.
Probabilities are per-class sigmoids; the labels shown are those at or above ``--threshold``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from graphfuse.infer import ExportSpec, FamilyInference, InferenceError, Sample

__all__ = ["MultiLabelInference", "export_spec"]

#: ML-GCN's input side, when the checkpoint does not record one.
DEFAULT_IMAGE_SIZE = 448


def _image_size(data: dict[str, Any]) -> int:
    size = data.get("image_size") or (data.get("input_shapes") or {}).get("image", [None, None])[1]
    return int(size or DEFAULT_IMAGE_SIZE)


class MultiLabelInference(FamilyInference):
    """Image files -> labels above a threshold (module docstring)."""

    inputs_help = "JPEG image files -> labels with probability >= --threshold"
    multilabel = True

    def read(self, paths: Sequence[Path], **options: Any) -> list[Sample]:
        from graphfuse.data.multilabel.transforms import build_transform, decode_image_file

        transform = build_transform("test", _image_size(self.data))
        samples = []
        for path in paths:
            if not Path(path).is_file():
                raise FileNotFoundError(f"{path}: image not found")
            img = decode_image_file(path)
            if img.ndim != 3 or img.shape[0] != 3:
                raise InferenceError(f"{path}: decoded to shape {tuple(img.shape)}, expected (3, H, W)")
            samples.append(Sample(Path(path).name, {"image": transform(img, None)},
                                  {"file": str(path), "size": [int(img.shape[2]), int(img.shape[1])]}))
        return samples

    def probabilities(self, logits: torch.Tensor) -> tuple[np.ndarray, list[dict[str, Any]]]:
        return torch.sigmoid(logits.double()).numpy(), [{} for _ in range(logits.shape[0])]


def export_spec(network: Any, data: dict[str, Any], batch: int = 2) -> ExportSpec:
    """``image (batch, 3, S, S)``; batch dynamic."""
    s = _image_size(data)
    gen = torch.Generator().manual_seed(0)
    return ExportSpec(("image",), (torch.randn(batch, 3, s, s, generator=gen),), {"image": {0: "batch"}})
