"""``graphfuse infer`` / ``export`` for pedestrian crossing intention (PIE, JAAD; PedGraph+).

``INPUT``: a video's annotation XML in the dataset's original layout
(``<root>/annotations/setXX/video_XXXX_annt.xml`` for PIE, ``<root>/annotations/video_XXXX.xml``
for JAAD). Beside it the command reads what the model's training data used:

* the ego-vehicle file (``--vehicle``; default ``<root>/annotations_vehicle/setXX/video_XXXX_obd.xml``
  for PIE, ``<root>/annotations_vehicle/video_XXXX_vehicle.xml`` for JAAD);
* the pose folder (``--poses``; default ``<root>/poses``) in the format, matching IoU and fill
  rule recorded in the checkpoint (``data.pose``: what ``graphfuse prepare`` used);
* the extracted frames (``--frames-dir``) when the model has an image branch.

Every pedestrian track of the video (JAAD groups excluded, as the benchmark) is cut into
observation windows of the checkpoint's ``obs_length`` frames, one every ``--stride`` frames
(default 1). No crossing label is needed. The windows are written in the prepared format
(:mod:`graphfuse.data.intention.prepare`) to a temporary folder and read back through
:class:`graphfuse.data.intention.dataset.IntentionDataset` with the checkpoint's options: the
test loop's own normalisation (pixels / image size, depth / 80, speeds / 120, ImageNet crops).
The crossing probability is the task's :func:`graphfuse.metrics.intention.crossing_score`.

Where this differs from a prepared split: tracks are not cut at the crossing event (there is
none to know), so a window's pose fill (``interpolate``) may see matched frames after the
event that the prepared split cut away.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from graphfuse.families import Option
from graphfuse.infer import ExportSpec, FamilyInference, InferenceError, Sample

__all__ = ["CrossingIntentionInference", "export_spec", "video_windows"]


def _dataset_kind(data: dict[str, Any]) -> str:
    return "jaad" if str(data.get("dataset") or "pie") == "jaad" else "pie"


def video_windows(annotation: Path, *, dataset: str, obs_length: int, stride: int, poses: Path,
                  pose_options: dict[str, Any], vehicle: Path | None = None) -> dict[str, Any]:
    """The observation windows of every pedestrian track of one video (numpy only).

    Returns ``ids`` (N ``"<track key>/<first frame>"``), ``track`` (N track keys), ``frames``
    (N, T), ``boxes`` (N, T, 4), ``ego`` (N, T, E), ``pose`` (N, T, 19, 4), ``pose_mask`` (N, T),
    ``image_size`` (N, 2), ``ego_channels``, ``has_depth``.
    """
    from graphfuse.data.intention.poses import PoseSource
    from graphfuse.data.intention.sequences import EGO_CHANNELS

    annotation = Path(annotation)
    if not annotation.is_file():
        raise FileNotFoundError(f"{annotation}: annotation XML not found")
    fmt = str(pose_options.get("format") or "coco")
    source = PoseSource(poses, fmt=fmt, dataset=dataset, min_iou=float(pose_options.get("min_iou", 0.3)),
                        fill=str(pose_options.get("fill") or "interpolate"))
    if dataset == "pie":
        from graphfuse.data.intention.pie import read_pie_annotations, read_pie_obd

        set_id, video_id = annotation.parent.name, annotation.name.removesuffix("_annt.xml")
        video = read_pie_annotations(annotation, set_id, video_id)
        vehicle = vehicle or annotation.parents[2] / "annotations_vehicle" / set_id / f"{video_id}_obd.xml"
        if not Path(vehicle).is_file():
            raise FileNotFoundError(f"{vehicle}: PIE vehicle (OBD) XML not found; give --vehicle")
        video.obd = read_pie_obd(vehicle)
        peds = {pid: (t.frames, t.boxes) for pid, t in video.pedestrians.items()}

        def ego_of(frames: np.ndarray, what: str) -> np.ndarray:
            try:
                return np.stack([video.ego_at(c, frames) for c in EGO_CHANNELS["pie"]], axis=-1)
            except (KeyError, ValueError) as exc:
                raise ValueError(f"{vehicle}: {what}: {exc}") from None
        prefix = f"{set_id}/{video_id}"
    else:
        from graphfuse.data.intention.jaad import read_jaad_annotations, read_jaad_vehicle
        from graphfuse.data.intention.sequences import _lookup

        set_id, video_id = None, annotation.stem
        video = read_jaad_annotations(annotation)
        vehicle = vehicle or annotation.parents[1] / "annotations_vehicle" / f"{video_id}_vehicle.xml"
        if not Path(vehicle).is_file():
            raise FileNotFoundError(f"{vehicle}: JAAD vehicle XML not found; give --vehicle")
        vframes, vaction = read_jaad_vehicle(vehicle)
        peds = {pid: (t.frames, t.boxes) for pid, t in video.tracks.items() if "p" not in pid}

        def ego_of(frames: np.ndarray, what: str) -> np.ndarray:
            return _lookup(vframes, vaction, frames, f"{vehicle}: {what}")[:, None].astype(np.float64)
        prefix = video_id
    cols: dict[str, list[Any]] = {k: [] for k in ("ids", "track", "frames", "boxes", "ego", "pose", "pose_mask")}
    for pid in sorted(peds):  # a loop over tracks
        frames, boxes = peds[pid]
        if len(frames) < obs_length:
            continue
        key = f"{prefix}/{pid}"
        pose, mask = source.track_poses(set_id, video_id, pid, frames, boxes)
        ego = ego_of(frames, f"pedestrian {pid!r}")
        starts = np.arange(0, len(frames) - obs_length + 1, stride, dtype=np.int64)
        rows = starts[:, None] + np.arange(obs_length, dtype=np.int64)
        cols["ids"] += [f"{key}/{int(f)}" for f in frames[starts]]
        cols["track"] += [key] * len(starts)
        for name, arr in (("frames", frames), ("boxes", boxes), ("ego", ego), ("pose", pose), ("pose_mask", mask)):
            cols[name].append(np.asarray(arr)[rows])
    if not cols["ids"]:
        raise InferenceError(f"{annotation}: no pedestrian track of at least {obs_length} frames (the model's "
                             "observation length)")
    out: dict[str, Any] = {k: (v if k in ("ids", "track") else np.concatenate(v)) for k, v in cols.items()}
    out["image_size"] = np.tile(np.asarray([video.width, video.height], np.int64), (len(out["ids"]), 1))
    out["ego_channels"] = list(EGO_CHANNELS[dataset])
    out["has_depth"] = bool(source.has_depth)
    out["set_id"], out["video_id"] = set_id, video_id
    return out


class CrossingIntentionInference(FamilyInference):
    """PIE / JAAD annotation XML -> crossing probability per track and window (module docstring)."""

    inputs_help = ("PIE/JAAD annotation XML (annotations/setXX/video_XXXX_annt.xml) -> crossing probability "
                   "per pedestrian track and observation window")
    options = (
        Option(("--poses",), {"default": None, "metavar": "DIR",
                                  "help": "crossing intention: the pose folder, as given to `graphfuse prepare` "
                                       "(default <dataset root>/poses)"}),
        Option(("--vehicle",), {"default": None, "metavar": "XML",
                                    "help": "crossing intention: the video's vehicle XML (default: beside the "
                                         "annotations, annotations_vehicle/...)"}),
    )

    def _windows(self, path: Path, stride: int, poses: str | None, vehicle: str | None) -> dict[str, Any]:
        d = self.data
        obs = d.get("obs_length") or (d.get("input_shapes") or {}).get("pose", [None, None])[1]
        if not obs:
            raise InferenceError("the checkpoint records no observation length (data.obs_length)")
        dataset = _dataset_kind(d)
        root = path.parents[2] if dataset == "pie" else path.parents[1]
        pose_dir = Path(poses) if poses else root / "poses"
        if not pose_dir.exists():
            raise FileNotFoundError(f"{pose_dir}: pose folder not found; give --poses (the folder given to "
                                    "`graphfuse prepare --poses`)")
        return video_windows(path, dataset=dataset, obs_length=int(obs), stride=int(stride), poses=pose_dir,
                             pose_options=dict(d.get("pose") or {}),
                             vehicle=Path(vehicle) if vehicle else None)

    def _dataset_of(self, windows: dict[str, Any], tmp: Path, frames_dir: str | None) -> Any:
        """The windows written in the prepared format and read back by IntentionDataset."""
        from graphfuse.data.intention.dataset import IntentionDataset
        from graphfuse.data.intention.prepare import FORMAT, VERSION
        from graphfuse.io import save_npy, write_json

        d = self.data
        n, t = windows["frames"].shape
        split = tmp / "test"
        split.mkdir(parents=True)
        write_json(split / "ids.json", windows["ids"])
        for name in ("label", "label3", "tte"):
            save_npy(split / f"{name}.npy", np.zeros(n, np.int64))
        save_npy(split / "frames.npy", windows["frames"].astype(np.int64))
        save_npy(split / "boxes.npy", windows["boxes"].astype(np.float32))
        save_npy(split / "ego.npy", windows["ego"].astype(np.float32))
        save_npy(split / "image_size.npy", windows["image_size"].astype(np.int64))
        save_npy(split / "pose.npy", windows["pose"].astype(np.float32))
        save_npy(split / "pose_mask.npy", windows["pose_mask"])
        use_image = bool(d.get("use_image"))
        if use_image:
            if not frames_dir:
                raise InferenceError("the checkpoint's model has an image branch: give --frames-dir (the extracted "
                                     "frames, images/<set>/<video>/%05d.png as for `graphfuse prepare --images`)")
            from graphfuse.data.intention.crops import crop_samples

            size = tuple((d.get("input_shapes") or {}).get("image", [3, 192, 64])[1:])
            keys = [i.rsplit("/", 1)[0] for i in windows["ids"]]
            save_npy(split / "crops.npy", crop_samples(frames_dir, _dataset_kind(d), keys, windows["frames"][:, -1],
                                                       windows["boxes"][:, -1], size=size))
        write_json(tmp / "meta.json", {
            "format": FORMAT, "version": VERSION, "dataset": d.get("dataset") or _dataset_kind(d),
            "options": {"obs_length": int(t)}, "ego_channels": windows["ego_channels"],
            "pose": {**dict(d.get("pose") or {}), "has_depth": windows["has_depth"]},
            "splits": {"test": {"samples": n}}})
        in_channels = int(d.get("in_channels") or 3)
        return IntentionDataset(tmp, "test", labels=d.get("labels") or "three",
                                use_velocity=bool(d.get("use_velocity", True)), use_image=use_image,
                                use_depth=(in_channels == 4) if windows["has_depth"] else None)

    def read(self, paths: Sequence[Path], stride: int | None = None, poses: str | None = None,
             vehicle: str | None = None, frames_dir: str | None = None, **options: Any) -> list[Sample]:
        if len(paths) > 1 and vehicle:
            raise InferenceError("--vehicle names one video's vehicle XML: give one annotation XML with it")
        samples: list[Sample] = []
        for path in paths:
            windows = self._windows(path, stride or 1, poses, vehicle)
            with tempfile.TemporaryDirectory(prefix="graphfuse-infer-") as tmp:
                ds = self._dataset_of(windows, Path(tmp), frames_dir)
                names = [n for n in ds.names]
                for i in range(len(ds)):  # a loop over windows (the dataset's items)
                    item = ds[i]
                    inputs = {k: v for k, v in item.items() if k not in ("target", "id")}
                    f = windows["frames"][i]
                    samples.append(Sample(names[i], inputs, {
                        "file": str(path), "track": windows["track"][i],
                        "frames": [int(f[0]), int(f[-1])]}))
        return samples

    def expected_shapes(self) -> dict[str, list[int | None]]:
        shapes = super().expected_shapes()
        if "pose" not in shapes:
            c = getattr(self.network, "in_channels", None)
            shapes["pose"] = [c, None, 19]
        return shapes

    def probabilities(self, logits: torch.Tensor) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """The task's class probabilities and crossing score (``crossing_score``, as ``test_record``)."""
        from graphfuse.metrics.intention import crossing_score

        mode = getattr(self.task, "three_to_binary", "pedgraph")
        score, probs = crossing_score(logits.float(), mode)
        return probs.double().numpy(), [{"crossing": float(s)} for s in score.tolist()]

    def timeline(self, path: Path, stride: int = 1, predictor: Any = None, poses: str | None = None,
                 vehicle: str | None = None, frames_dir: str | None = None, **options: Any
                 ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``{track key: (last observed frame (n,), class probabilities (n, K))}``."""
        samples = predictor.read([path], stride=stride, poses=poses, vehicle=vehicle, frames_dir=frames_dir)
        results = predictor.predict(samples)
        out: dict[str, tuple[list[int], list[np.ndarray]]] = {}
        for s, r in zip(samples, results):
            frames, probs = out.setdefault(s.info["track"], ([], []))
            frames.append(s.info["frames"][1])
            probs.append(r.probabilities)
        return {k: (np.asarray(f, np.int64), np.stack(p)) for k, (f, p) in out.items()}


def export_spec(network: Any, data: dict[str, Any], batch: int = 2) -> ExportSpec:
    """``network.example_inputs(batch, T)`` (pose, velocity or None, image or None), ``T`` the
    observation length; batch dynamic."""
    t = data.get("obs_length") or (data.get("input_shapes") or {}).get("pose", [None, None])[1]
    if not t:
        import inspect

        from graphfuse.data.synthetic.pie import prepare_synthetic_pie

        t = inspect.signature(prepare_synthetic_pie).parameters["obs_length"].default
    args = tuple(network.example_inputs(batch, int(t)))
    names = ("pose", "velocity", "image")[:len(args)]
    return ExportSpec(tuple(n if a is not None else None for n, a in zip(names, args)), args,
                      {n: {0: "batch"} for n, a in zip(names, args) if a is not None})
