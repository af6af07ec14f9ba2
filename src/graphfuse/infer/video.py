"""``graphfuse infer`` / ``export`` for two-stream action recognition (UCF101 / HMDB51 videos).

A video file goes through ``graphfuse prepare ucf101``'s own per-video step
(:func:`graphfuse.data.video.prepare.process_video`: PyAV decoding, frames resized to the
checkpoint's ``frame_size`` short side (``None``: kept as decoded, as ``prepare
synthetic-ucf101`` does; absent from the block: 256, ``prepare ucf101``'s default), TV-L1 flow
with the parameters the training data was prepared with (``flow_format.params`` of the block,
i.e. ``meta.json``'s ``flow.params``; where the block does not record them: ``TVL1_FAST`` for
``synthetic-ucf101`` data, else OpenCV's defaults ``TVL1_DEFAULT``, also for a model trained on
precomputed, registered flow), quantised to JPEG exactly
as prepared) into a temporary prepared folder, and is read back by
:class:`graphfuse.data.video.dataset.VideoClipDataset` with the checkpoint's test protocol,
clip length, flow stack, crop and normalisation: the test loop's views (averaged over ``K`` by
the network, as in the test loop).

Where inference can differ from the test loop: a model trained on registered precomputed flow
(e.g. the community's GPU TV-L1 folders) gets CPU TV-L1 flow with OpenCV's default parameters
here, which is close but not identical.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from graphfuse.infer import ExportSpec, FamilyInference, InferenceError, Sample

__all__ = ["DEFAULT_FRAME_SIZE", "TwoStreamInference", "export_spec", "flow_parameters", "frame_size"]

#: ``graphfuse prepare ucf101``'s default short side of the stored frames.
DEFAULT_FRAME_SIZE = 256


def flow_parameters(data: dict[str, Any]) -> Any:
    """The TV-L1 parameters of the checkpoint's training data (``data.flow_format.params``); where
    the block records none: :data:`~graphfuse.data.video.flow.TVL1_FAST` for ``synthetic-ucf101``
    data (its generator's fixed preset), else OpenCV's defaults
    (:data:`~graphfuse.data.video.flow.TVL1_DEFAULT`, ``graphfuse prepare ucf101``'s)."""
    from dataclasses import fields

    from graphfuse.data.video.flow import TVL1_DEFAULT, TVL1Params

    params = (data.get("flow_format") or {}).get("params")
    if not isinstance(params, dict):
        if data.get("dataset") == "synthetic-ucf101":  # prepare_synthetic_ucf101 always uses TVL1_FAST
            from graphfuse.data.video.flow import TVL1_FAST

            return TVL1_FAST
        return TVL1_DEFAULT
    known = {f.name for f in fields(TVL1Params)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise InferenceError(f"the checkpoint's flow_format.params has unknown TV-L1 parameter(s) {unknown}; "
                             f"known: {sorted(known)}")
    return TVL1Params(**params)


def frame_size(data: dict[str, Any]) -> int | None:
    """Short side the frames are stored at: the block's ``frame_size`` (None = as decoded), or
    :data:`DEFAULT_FRAME_SIZE` when the block has no such entry."""
    if "frame_size" not in data:
        return DEFAULT_FRAME_SIZE
    size = data["frame_size"]
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, int) or size < 2:
        raise InferenceError(f"the checkpoint's frame_size must be a positive even integer or null, got {size!r}")
    return int(size)


class TwoStreamInference(FamilyInference):
    """Video files -> top-k actions (module docstring)."""

    inputs_help = "video files (.avi, .mp4) -> top-k actions (RGB + TV-L1 flow as graphfuse prepare ucf101)"

    def _prepare(self, path: Path, tmp: Path) -> Any:
        from graphfuse.data.video.dataset import VideoClipDataset
        from graphfuse.data.video.prepare import JPEG_QUALITY, VideoTask, _sampling_length, process_video

        d = self.data
        streams = list(d.get("streams") or ["rgb", "flow"])
        if not path.is_file():
            raise FileNotFoundError(f"{path}: video not found")
        name = path.stem
        rec = process_video(VideoTask(name=name, path=str(path), out=str(tmp), size=frame_size(d),
                                      flow="tvl1" if "flow" in streams else "none", tvl1=flow_parameters(d),
                                      jpeg_quality=int(d.get("jpeg_quality") or JPEG_QUALITY), threads=1))
        if "error" in rec:
            raise InferenceError(rec["error"])
        meta = {
            "splits": {"test": {"videos": [name], "labels": [0], "num_frames": [rec["num_frames"]],
                                "length": [_sampling_length(rec["num_frames"], rec.get("num_flow"))],
                                "width": [rec["width"]], "height": [rec["height"]]}},
            "frames": {"dir": "frames"},
            "flow": {"source": "tvl1" if "flow" in streams else "none", "dir": "flow" if "flow" in streams else None},
        }
        return VideoClipDataset(tmp, meta, "test", streams=streams, num_frames=int(d.get("num_frames") or 5),
                                flow_stack=int(d.get("flow_stack") or 10),
                                stride=tuple(d.get("stride") or (5, 15)),  # type: ignore[arg-type]
                                crop_size=int(d.get("crop_size") or 224),
                                protocol=d.get("test_protocol") or "center",
                                normalization=d.get("normalization") or "imagenet")

    def read(self, paths: Sequence[Path], **options: Any) -> list[Sample]:
        samples = []
        for path in paths:
            with tempfile.TemporaryDirectory(prefix="graphfuse-infer-") as tmp:
                item = self._prepare(Path(path), Path(tmp))[0]
            inputs = {k: v for k, v in item.items() if k not in ("target", "id")}
            samples.append(Sample(Path(path).name, inputs, {"file": str(path)}))
        return samples

    def expected_shapes(self) -> dict[str, list[int | None]]:
        views = self.data.get("test_views")
        shapes = super().expected_shapes()
        if isinstance(views, int) and views > 1:  # multi-view protocols: (K, C, T, S, S) per video
            shapes = {k: [views, *v] for k, v in shapes.items()}
        return shapes


def export_spec(network: Any, data: dict[str, Any], batch: int = 2) -> ExportSpec:
    """``rgb (batch, 3, T, S, S)``, ``flow (batch, 2L, T, S, S)`` in the network's input order; batch dynamic."""
    from graphfuse.families.two_stream import input_shapes

    names = tuple(getattr(network, "input_names", None) or ("rgb", "flow"))
    shapes = input_shapes({"data": {"init_args": {k: data.get(k) for k in ("num_frames", "flow_stack", "crop_size")}}})
    gen = torch.Generator().manual_seed(0)
    args = tuple(torch.randn(batch, *shapes[n][1:], generator=gen) for n in names)
    return ExportSpec(names, args, {n: {0: "batch"} for n in names})
