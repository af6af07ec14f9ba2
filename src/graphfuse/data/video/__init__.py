"""Video data for two-stream networks: UCF101 and HMDB51 from their original files.

* :mod:`~graphfuse.data.video.splits`: the official split files (numpy/stdlib only);
* :mod:`~graphfuse.data.video.decode`: ``.avi`` decoding (and encoding) with PyAV;
* :mod:`~graphfuse.data.video.flow`: TV-L1 flow (OpenCV contrib), the community +-20 quantisation
  to JPEG pairs, registration of precomputed flow folders;
* :mod:`~graphfuse.data.video.prepare`: ``graphfuse prepare ucf101 | hmdb51`` (resumable, parallel);
* :mod:`~graphfuse.data.video.sampling`: which frames and crops a clip reads (numpy);
* :mod:`~graphfuse.data.video.dataset`, :mod:`~graphfuse.data.video.datamodule`: the torch side.

See ``docs/data_video.md``. This package's ``__init__`` imports nothing (PyAV, OpenCV and torch
load only with the module that needs them), so the split readers work on a machine without them.
"""
