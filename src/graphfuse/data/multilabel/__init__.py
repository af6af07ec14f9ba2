"""Multi-label image recognition data (MS-COCO, PASCAL VOC 2007, synthetic COCO-format):
readers of the original files (numpy only), GloVe / ML-GCN ``.pkl`` inputs of the label
graph, preparation into ``.npy`` + ``meta.json``, and the transforms, dataset and datamodule
that feed ML-GCN (docs/data_multilabel.md).

The torch-dependent modules (``transforms``, ``dataset``, ``datamodule``) are imported
lazily, so the readers and the preparation stay importable without torch.
"""

from typing import Any

from .glove import label_statistics, read_adj_pkl, read_glove_class_embeddings, read_word_vectors_pkl, reorder
from .prepare import FORMAT, FORMAT_VERSION, load_multilabel_meta, prepare_coco, prepare_voc2007
from .readers import (
    CLASS_ORDERS,
    VOC_CLASSES,
    CocoLabels,
    VocLabels,
    check_jpeg,
    read_coco_instances,
    read_voc2007,
    read_voc_annotation,
)

__all__ = [
    "CLASS_ORDERS",
    "FORMAT",
    "FORMAT_VERSION",
    "VOC_CLASSES",
    "CocoLabels",
    "MultiLabelDataModule",
    "MultiLabelImageDataset",
    "MultiScaleCrop",
    "VocLabels",
    "build_transform",
    "check_jpeg",
    "label_statistics",
    "load_multilabel_meta",
    "prepare_coco",
    "prepare_voc2007",
    "read_adj_pkl",
    "read_coco_instances",
    "read_glove_class_embeddings",
    "read_voc2007",
    "read_voc_annotation",
    "read_word_vectors_pkl",
    "reorder",
]

_LAZY = {
    "MultiLabelDataModule": "datamodule",
    "MultiLabelImageDataset": "dataset",
    "MultiScaleCrop": "transforms",
    "build_transform": "transforms",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
