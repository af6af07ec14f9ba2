"""Gait recognition data: silhouette sequences (CASIA-B, OU-MVLP, OpenGait's pickles).

* :mod:`~graphfuse.data.gait.readers`: the datasets' original files (PNG folders, OpenGait's
  ``.pkl`` folders through the restricted unpickler); numpy and OpenCV only.
* :mod:`~graphfuse.data.gait.pretreat`: GaitSet/OpenGait's silhouette pretreatment, vectorised
  over a sequence's frames.
* :mod:`~graphfuse.data.gait.prepare`: ``graphfuse prepare casia-b`` / ``oumvlp``: one uint8
  frame array with per-sequence offsets and ``meta.json`` (see ``docs/data_gait.md``).
* :mod:`~graphfuse.data.gait.sequences`: :class:`GaitSequences`, the numpy-only accessor of a
  prepared folder.
* :mod:`~graphfuse.data.gait.dataset`: frame sampling (``fixed_unordered``, ``fixed_ordered``,
  all frames at test), the load-time side cut and the test collation (sequences concatenated
  along the frame axis with their lengths).
* :mod:`~graphfuse.data.gait.datamodule`: :class:`GaitDataModule` (P x K training batches,
  whole-sequence test batches of any size).

Nothing is imported here, so importing the package costs nothing (OpenCV is imported by the
readers and the pretreatment only).
"""
