"""Old path of :mod:`graphfuse.data.ntu.datamodule`, kept so that configs
(``class_path: graphfuse.data.datamodule.SkeletonDataModule``), run directories' ``config.yaml``
and checkpoints written before the move keep working. New code imports from the new module."""

from graphfuse.data.ntu.datamodule import SkeletonDataModule, stratified_holdout

__all__ = ["SkeletonDataModule", "stratified_holdout"]
