"""``graphfuse infer`` / ``export`` for skeleton action recognition (NTU RGB+D ``.skeleton`` files).

A file goes through exactly what ``graphfuse prepare ntu`` and the test loader do to it:

1. :func:`graphfuse.data.ntu.prepare.process_file`: the reader, the official body selection
   (two bodies of highest energy) and the plausibility checks; placed in the ``(3, max_frame,
   25, 2)`` float32 array of the prepared split (``max_frame`` 300 unless the block says
   otherwise);
2. :func:`graphfuse.data.ntu.normalize.pre_normalize` (Shift-GCN's ``pre_normalization``);
3. the stream(s) of the checkpoint (:func:`graphfuse.data.ntu.streams.compute_stream`, as
   :class:`~graphfuse.data.ntu.dataset.SkeletonDataset` derives them);
4. the datamodule's evaluation transform (frame stride, test-mode uniform clip), built by
   :class:`~graphfuse.data.ntu.datamodule.SkeletonDataModule` from the block's options.

The timeline runs the model on every prefix ``[0, f)`` of the sequence (``f`` = stride, 2
stride, ..., and the last frame), each prepared as a file of ``f`` frames would be (the bodies
are the ones selected over the whole file).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from graphfuse.infer import ExportSpec, FamilyInference, InferenceError, Sample

__all__ = ["DEFAULT_MAX_FRAME", "SkeletonActionInference", "export_spec"]

#: Padded length of a prepared NTU sample (``graphfuse prepare ntu``'s ``max_frame``).
DEFAULT_MAX_FRAME = 300


class SkeletonActionInference(FamilyInference):
    """NTU ``.skeleton`` files -> actions (see the module docstring)."""

    inputs_help = "NTU RGB+D .skeleton files -> top-k actions"

    def __init__(self, network: Any, task: Any, block: Any) -> None:
        super().__init__(network, task, block)
        from graphfuse.data.ntu.datamodule import SkeletonDataModule

        d = self.data
        self.max_frame = int(d.get("max_frame") or DEFAULT_MAX_FRAME)
        streams = d.get("streams")
        self.streams: list[str] | None = list(streams) if streams else None
        self.stream = str(d.get("stream") or "joint")
        names = getattr(network, "input_names", None)
        self.input_names = list(names) if names else (self.streams or ["x"])
        # The datamodule builds its own evaluation transform from these options (no data read).
        dm = SkeletonDataModule("<inference>", stream=self.stream if self.stream in (
            "joint", "bone", "joint_motion", "bone_motion") else "joint",
            clip_len=d.get("clip_len"), frame_stride=int(d.get("frame_stride") or 1), streams=self.streams)
        self.transform = dm._eval_transform()

    def expected_shapes(self) -> dict[str, list[int | None]]:
        shapes = super().expected_shapes()
        net = self.network
        c, v, m = (getattr(net, a, None) for a in ("in_channels", "num_point", "num_person"))
        for name in self.input_names:
            want = shapes.get(name) or [c, None, v, m]
            shapes[name] = [want[0], want[1] if self.data.get("clip_len") else None, want[2], want[3]]
        return shapes

    # -- preparation -----------------------------------------------------------------------------
    def _raw(self, path: Path) -> tuple[np.ndarray, int]:
        """``(3, T, 25, 2)`` float64 bodies as prepare reads them, and the valid frame count."""
        from graphfuse.data.ntu.prepare import process_file

        return process_file(path, self.max_frame)

    def _prepare(self, raws: Sequence[np.ndarray], num_frames: Sequence[int]) -> dict[str, np.ndarray]:
        """Padded, normalised, stream-derived, transformed inputs of several sequences: name ->
        ``(N, C, T', V, M)`` float32."""
        from graphfuse.data.ntu.normalize import pre_normalize
        from graphfuse.data.ntu.streams import compute_stream

        v, m = raws[0].shape[2], raws[0].shape[3]
        batch = np.zeros((len(raws), raws[0].shape[0], self.max_frame, v, m), dtype=np.float32)
        for i, a in enumerate(raws):  # placement per sequence, as graphfuse prepare ntu
            batch[i, :, : a.shape[1]] = a
        x = pre_normalize(batch)
        streams = self.streams or [self.stream]
        out: dict[str, list[np.ndarray]] = {n: [] for n in self.input_names}
        for i in range(len(raws)):  # per sequence: the dataset's item path
            stacked = np.concatenate([compute_stream(x[i], s) for s in streams], axis=0)
            if self.transform is not None:
                stacked = self.transform(stacked, int(num_frames[i]), np.random.default_rng())
            parts = np.split(np.ascontiguousarray(stacked, dtype=np.float32), len(streams), axis=0)
            for name, part in zip(self.input_names, parts):
                out[name].append(part)
        return {k: np.stack(v) for k, v in out.items()}

    def read(self, paths: Sequence[Path], **options: Any) -> list[Sample]:
        samples = []
        for path in paths:
            data, n = self._raw(path)
            if data.shape[2] != 25:
                raise InferenceError(f"{path}: {data.shape[2]} joints, the NTU layout has 25")
            prepared = self._prepare([data], [n])
            samples.append(Sample(path.name, {k: torch.from_numpy(v[0]) for k, v in prepared.items()},
                                  {"file": str(path), "frames": int(data.shape[1]), "valid_frames": int(n)}))
        return samples

    def timeline(self, path: Path, stride: int = 1, predictor: Any = None, **options: Any
                 ) -> tuple[np.ndarray, np.ndarray]:
        """``(frames (n,), probabilities (n, K))``: the model on each prefix of ``f`` frames."""
        data, _ = self._raw(path)
        total = int(data.shape[1])
        ends = np.unique(np.concatenate([np.arange(stride, total + 1, stride), [total]])).astype(np.int64)
        present = np.abs(data).sum(axis=(0, 2)) != 0  # (T, M): a body in that frame
        valid = np.cumsum(present.any(axis=1))  # frames with a body among the first f
        probs = []
        for i in range(0, len(ends), 32):  # chunks of prefixes
            chunk = ends[i:i + 32]
            raws = [data[:, :f] for f in chunk]
            counts = [max(int(valid[f - 1]), 1) for f in chunk]
            prepared = self._prepare(raws, counts)
            samples = [Sample(f"{path.name}[:{f}]", {k: torch.from_numpy(v[j]) for k, v in prepared.items()})
                       for j, f in enumerate(chunk)]
            self.check_shapes(samples)
            probs.append(np.stack([r.probabilities for r in predictor.predict(samples)]))
        return ends, np.concatenate(probs)


def export_spec(network: Any, data: dict[str, Any], batch: int = 2) -> ExportSpec:
    """``(batch, C, T, V, M)`` random inputs in the network's input order; batch dynamic (T is
    kept static: Shift-GCN's temporal shift and pooling are traced for one length)."""
    names = list(getattr(network, "input_names", None) or ["x"])
    shapes = data.get("input_shapes") or {}
    c, v, m = (getattr(network, a, None) for a in ("in_channels", "num_point", "num_person"))
    args = []
    gen = torch.Generator().manual_seed(0)
    for n in names:
        s = list(shapes.get(n) or [c, None, v, m])
        t = s[1] or (-(-DEFAULT_MAX_FRAME // int(data.get("frame_stride") or 1)))
        shape = (batch, int(s[0] or c), int(t), int(s[2] or v), int(s[3] or m))
        args.append(torch.randn(*shape, generator=gen))
    return ExportSpec(tuple(names), tuple(args), {n: {0: "batch"} for n in names})
