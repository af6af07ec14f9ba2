"""Gait recognition data: silhouette sequences (CASIA-B, OU-MVLP, OpenGait's pickles).

* :mod:`~graphfuse.data.gait.readers`: the datasets' original files (PNG folders, OpenGait's
  ``.pkl`` folders through the restricted unpickler); numpy and OpenCV only.
* :mod:`~graphfuse.data.gait.pretreat`: GaitSet/OpenGait's silhouette pretreatment, vectorised
  over a sequence's frames.
* :mod:`~graphfuse.data.gait.prepare`: ``graphfuse prepare casia-b`` / ``oumvlp``: one uint8
  frame array with per-sequence offsets and ``meta.json`` (see ``docs/data_gait.md``).
* :mod:`~graphfuse.data.gait.sequences`: :class:`GaitSequences`, the numpy-only accessor of a
  prepared folder.

Nothing is imported here, so importing the package costs nothing (OpenCV is imported by the
readers and the pretreatment only).
"""
