"""``graphfuse infer`` for gait recognition (GaitSet, GLN): silhouette sequences -> the nearest
identities of a gallery.

``INPUT``: a sequence of silhouettes in CASIA-B's layout, the folder of one sequence's PNG frames
(``<id>/<type>/<view>/*.png``, frames in name order; the id, type and view in the path only name
the result), or OpenGait's pretreated ``<view>.pkl`` of one sequence (read with the restricted
unpickler). It is read and pretreated as ``graphfuse prepare casia-b`` does
(:func:`graphfuse.data.gait.readers.read_sequence`, :func:`graphfuse.data.gait.pretreat.pretreat_frames`
at the checkpoint's frame size ``S``) and loaded as the test loader loads a prepared sequence
(:class:`graphfuse.data.gait.dataset.GaitDataset`, ``all_ordered``: every frame, ``uint8 / 255``,
``S // 64 * 10`` columns cut from each side), so a probe has exactly the input its prepared
copy would have in ``graphfuse test``.

``--gallery DIR``:

* a prepared gait folder (``meta.json`` of ``graphfuse prepare casia-b | oumvlp |
  synthetic-casia-b``): its test partition's gallery sequences under the folder's protocol
  (:data:`graphfuse.metrics.gait.PROTOCOLS`: CASIA-B nm-01..04, OU-MVLP ``01``), every view;
* or a silhouette root in CASIA-B's layout (``<id>/<type>/<view>/``): its sequences of the
  CASIA-B gallery types when it has any, else all of them, prepared as the probes.

Embeddings are the network's inference embedding in ``eval()`` mode (GLN's ``embedding``
option; ``{"embeddings": (N, C, P)}``), sequences concatenated along the frame axis with their
``lengths`` (:func:`graphfuse.data.gait.dataset.collate_sequences`, the test loader's batches);
the distance is the checkpoint task's (``distance``: ``euc`` = mean over the ``P`` parts of
the per-part Euclidean distance, ``cos``; :func:`graphfuse.metrics.gait.part_distance`, the
protocol's). Each probe's result lists the gallery identities by their nearest sequence's
distance, smallest first (``--top-k``), and names the nearest gallery sequence.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from graphfuse.families import Option
from graphfuse.infer import FamilyInference, InferenceError, Sample

__all__ = ["GaitInference", "read_probe"]

#: Sequences per embedding batch (frames of all of them go through the network at once).
GALLERY_BATCH = 8


def _size(data: Mapping[str, Any]) -> int:
    size = data.get("size") or (data.get("input_shapes") or {}).get("silhouettes", [None, None])[1]
    if not size:
        raise InferenceError("the checkpoint records no silhouette size (data.size); it was not trained on a "
                             "prepared gait folder")
    return int(size)


def _sample(name: str, frames: np.ndarray, info: dict[str, Any]) -> Sample:
    """A pretreated ``uint8 (T, S, S)`` sequence as the test loader loads it (side cut, / 255)."""
    from graphfuse.data.gait.dataset import side_cut

    cut = side_cut(frames.shape[1])
    raw = frames[:, :, cut:frames.shape[2] - cut] if cut else frames
    sil = torch.from_numpy(np.ascontiguousarray(raw, dtype=np.float32) / np.float32(255.0))
    return Sample(name, {"silhouettes": sil, "lengths": torch.tensor(sil.shape[0], dtype=torch.long)},
                  {**info, "frames": int(sil.shape[0])})


def _source(path: Path) -> Any:
    """The :class:`~graphfuse.data.gait.readers.SequenceSource` of a sequence folder or ``.pkl``."""
    from graphfuse.data.gait.readers import SequenceSource

    parts = (path.parent if path.suffix == ".pkl" else path).parts
    key = tuple((["?", "?", "?"] + list(parts))[-3:])
    if path.is_file() and path.suffix == ".pkl":
        return SequenceSource(*key, str(path), "pkl")
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: silhouette sequence not found (a folder of PNG frames or a .pkl)")
    pngs = sorted(str(p) for p in path.iterdir() if p.suffix.lower() == ".png" and p.is_file()
                  and not p.name.startswith("."))
    if not pngs:
        raise InferenceError(f"{path}: no PNG frame in the folder (a sequence folder holds <id>-<type>-<view>-"
                             "<frame>.png silhouettes)")
    return SequenceSource(*key, str(path), "png", tuple(pngs))


def read_probe(path: str | os.PathLike, size: int) -> Sample:
    """One silhouette sequence (folder of PNGs or OpenGait ``.pkl``) as a prepared test item."""
    from graphfuse.data.gait.pretreat import pretreat_frames
    from graphfuse.data.gait.readers import read_sequence

    path = Path(path)
    source = _source(path)
    data, names, _ = read_sequence(source, size=size)
    if source.kind == "pkl":
        frames = np.asarray(data)
    else:
        res = pretreat_frames(data, size, names)
        frames = res.frames
        if frames.shape[0] == 0:
            raise InferenceError(f"{path}: empty sequence: all {len(names)} frames dropped by the pretreatment "
                                 f"({res.below_threshold} with a pixel sum <= 10000, {res.no_centre} without a "
                                 "centre column)")
    name = "-".join(source.key) if "?" not in source.key else path.name
    return _sample(name, frames, {"file": str(path)})


class GaitInference(FamilyInference):
    """Silhouette sequences -> nearest gallery identities (module docstring)."""

    inputs_help = ("silhouette sequence folders (<id>/<type>/<view>/*.png, or OpenGait .pkl) -> nearest "
                   "identities of --gallery")
    options = (
        Option(("--gallery",), {"default": None, "metavar": "DIR",
                                "help": "gait: a prepared gait folder (its test partition's gallery sequences, "
                                        "CASIA-B nm-01..04) or a CASIA-B-layout silhouette root"}),
    )
    score = "distance"
    ascending = True

    def __init__(self, network: Any, task: Any, block: Any) -> None:
        super().__init__(network, task, block)
        hparams = getattr(task, "hparams", None) or {}
        self.distance = str(hparams.get("distance") or "euc")  # the task's evaluation distance
        self._gallery: dict[str, Any] | None = None
        self._gallery_path: str | None = None

    # -- the gallery ------------------------------------------------------------------------------
    def _gallery_samples(self, gallery: Path) -> tuple[list[Sample], str]:
        """The gallery's sequences as test items, and a description."""
        from graphfuse.metrics.gait import get_protocol

        size = _size(self.data)
        if (gallery / "meta.json").is_file():
            from graphfuse.data.gait.dataset import GaitDataset
            from graphfuse.data.gait.sequences import GaitSequences

            seqs = GaitSequences(gallery)
            if seqs.size != size:
                raise InferenceError(f"{gallery}: the gallery's silhouettes are {seqs.size}x{seqs.size}, the "
                                     f"checkpoint's model takes {size}x{size}")
            protocol = get_protocol(str(seqs.meta.get("protocol", "casia-b")))
            test = seqs.split_indices("test")
            rows = test[np.isin(seqs.types[test], np.asarray(protocol.gallery))]
            if rows.size == 0:
                raise InferenceError(f"{gallery}: no test sequence of the gallery types {list(protocol.gallery)}")
            ds = GaitDataset(seqs, rows, "all_ordered", with_lengths=True)
            names = ds.names
            samples = []
            for i in range(len(ds)):  # a loop over gallery sequences
                item = ds[i]
                samples.append(Sample(names[i], {"silhouettes": item["silhouettes"], "lengths": item["lengths"]},
                                      {"id": str(ds.ids[i])}))
            return samples, f"{gallery} (test partition, {protocol.name} gallery {', '.join(protocol.gallery)})"
        if not gallery.is_dir():
            raise FileNotFoundError(f"{gallery}: gallery folder not found (a prepared gait folder or a CASIA-B "
                                    "silhouette root)")
        from graphfuse.data.gait.readers import list_casia_b

        sources, _ = list_casia_b(gallery, source="png")
        types = get_protocol("casia-b").gallery
        chosen = [s for s in sources if s.type in types] or sources
        samples = []
        for s in chosen:  # a loop over gallery sequences (files)
            sample = read_probe(s.path, size)
            sample.info["id"] = s.id
            samples.append(sample)
        return samples, f"{gallery} ({len(chosen)} sequences)"

    def load_gallery(self, gallery: str | os.PathLike) -> dict[str, Any]:
        """Embed the gallery once per path: ``{"embeddings" (G, C, P), "ids" (G,), "names",
        "identities" (sorted distinct ids), "where"}``."""
        if self._gallery is not None and self._gallery_path == str(gallery):
            return self._gallery
        samples, where = self._gallery_samples(Path(gallery))
        device = next((p.device for p in self.network.parameters()), torch.device("cpu"))
        out = []
        with torch.no_grad():
            for i in range(0, len(samples), GALLERY_BATCH):  # batches of sequences
                batch = {k: v.to(device) for k, v in self.collate(samples[i:i + GALLERY_BATCH]).items()}
                out.append(self.forward(batch).float().cpu())
        ids = np.asarray([s.info["id"] for s in samples], dtype=str)
        self._gallery = {"embeddings": torch.cat(out), "ids": ids, "names": [s.name for s in samples],
                         "identities": sorted(set(ids.tolist())), "where": where}
        self._gallery_path = str(gallery)
        return self._gallery

    # -- FamilyInference ------------------------------------------------------------------------------
    def read(self, paths: Sequence[Path], gallery: str | None = None, **options: Any) -> list[Sample]:
        if not gallery:
            raise InferenceError("gait: give --gallery DIR (a prepared gait folder, or a CASIA-B silhouette root): "
                                 "the identities a sequence is matched against")
        self.load_gallery(gallery)
        size = _size(self.data)
        return [read_probe(p, size) for p in paths]

    def collate(self, samples: Sequence[Sample]) -> dict[str, torch.Tensor]:
        """The test loader's batch: frames concatenated, ``silhouettes (1, sum T, H, W)``, ``lengths (N,)``."""
        lengths = [s.inputs.get("lengths", torch.tensor(s.inputs["silhouettes"].shape[0])) for s in samples]
        return {"silhouettes": torch.cat([s.inputs["silhouettes"] for s in samples]).unsqueeze(0),
                "lengths": torch.stack(lengths).long()}

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``(N, C, P)`` inference embeddings (a ``(N, C)`` one gets ``P = 1``, as the task does)."""
        out = self.task.model(**self.task.model_inputs(batch))
        emb = out.get("embeddings") if isinstance(out, Mapping) else None
        if emb is None:
            raise InferenceError(f"{type(self.network).__name__} returned no 'embeddings'")
        return emb.unsqueeze(-1) if emb.ndim == 2 else emb

    def names(self, k: int) -> list[str] | None:
        return list(self._gallery["identities"]) if self._gallery is not None else None

    def probabilities(self, logits: torch.Tensor) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """``(N, I)`` distance of each probe to each gallery identity (its nearest sequence of that
        identity) and the nearest gallery sequence."""
        from graphfuse.metrics.gait import part_distance

        if self._gallery is None:
            raise InferenceError("gait: no gallery loaded (read the probes with gallery=...)")
        g = self._gallery
        dist = part_distance(logits.double(), g["embeddings"].double(), self.distance)  # (N, G)
        identities = np.asarray(g["identities"])
        code = torch.from_numpy(np.searchsorted(identities, g["ids"]))
        per_id = torch.full((dist.shape[0], len(identities)), float("inf"), dtype=torch.float64)
        per_id = per_id.scatter_reduce(1, code.expand(dist.shape[0], -1), dist, reduce="amin")
        nearest = dist.argmin(dim=1).tolist()
        extras = [{"nearest_sequence": g["names"][j], "gallery": g["where"], "distance_kind": self.distance}
                  for j in nearest]
        return per_id.numpy(), extras
