"""Crossing sequences of the pedestrian action benchmark (numpy only, no torch).

Two stages, as in the benchmark of Kotseruba, Rasouli and Tsotsos, "Benchmark for evaluating
pedestrian action prediction", WACV 2021 (ykotseruba/PedestrianActionBenchmark, MIT):

1. **Crossing tracks** — the official ``generate_data_trajectory_sequence(image_set,
   seq_type='crossing', data_split_type='default', fstride=1)`` of ``pie_data.py`` (aras62/PIE)
   and ``jaad_data.py`` (ykotseruba/JAAD), i.e. their ``_get_crossing``:

   * videos in sorted order (PIE: sets in the split's order, videos sorted), pedestrians
     sorted by id; every considered pedestrian counts in ``num_pedestrians``;
   * each track is cut after its event frame: ``frames[:frames.index(crossing_point) + 1]``.
     PIE always uses ``crossing_point``; JAAD uses it for behaviour-annotated (``'b'``)
     pedestrians, and for the others — and for ``'b'`` pedestrians whose ``crossing_point``
     is -1 — ``end_idx = -3``, which keeps all frames but the last two;
   * JAAD groups (``'p'`` in the id) are skipped; ``sample_type='beh'`` keeps ``'b'`` only;
   * tracks shorter than ``min_track_size`` frames (after the cut) are dropped;
   * binary label = ``activities`` = ``int(crossing > 0)`` (PIE: the attribute ``crossing``
     1/0/-1; JAAD non-``'b'`` pedestrians: 0).

2. **Windows** — ``action_predict.py::ActionPredict.get_data_sequence``: for a track of
   length L the windows start at ``L - obs - tte_max, ..., L - obs - tte_min`` with stride
   ``int((1 - overlap) * obs)`` (``obs`` when overlap is 0, at least 1), and each window's time
   to event is ``tte = L - (start + obs)``. With an int ``time_to_event`` there is one window,
   ``[L - obs - tte, L - tte)``. The benchmark sets ``min_track_size = obs + tte_max`` so every
   grid start is >= 0; with a smaller ``min_track_size`` the official slicing would produce
   broken windows for negative starts, so here grid points with ``start < 0`` are not formed
   (the grid itself stays anchored at ``L - obs - tte_max``, as the official one).

Three-class labels (Pedestrian Graph+, RodrigoGantier/Pedestrian_graph_plus, ``irr``):
0 not crossing, 1 crossing, 2 irrelevant. PIE: irrelevant = attribute ``crossing == -1``.
JAAD: irrelevant = a pedestrian without ``'b'`` (PedGraph+'s ``jaad_dataloader23.py``); a
``'b'`` pedestrian whose ``crossing`` is -1 has binary label 0 in the official code and PedGraph+
therefore treats it as class 0 — ``jaad_beh_irrelevant=True`` makes it class 2 instead.

Balancing (off by default) follows ``balance_samples_count`` of both official interfaces:
``np.random.seed(42)``, shuffle the indices of the majority binary class, and remove the first
``|#pos - #neg|`` of them. It can be applied to tracks (as the official function, which takes
the output of ``generate_data_trajectory_sequence``) or to windows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from .jaad import JAADVideo
from .pie import PIEVideo

#: Benchmark overlap per dataset (``train_test.py``: 0.6 for PIE, 0.8 for JAAD).
DEFAULT_OVERLAP: dict[str, float] = {"pie": 0.6, "jaad": 0.8}
#: Ego channels stored per dataset (PIE: km/h from the OBD file; JAAD: vehicle action 0..4).
EGO_CHANNELS: dict[str, tuple[str, ...]] = {"pie": ("GPS_speed", "OBD_speed"),
                                           "jaad": ("vehicle_act",)}
BALANCE_MODES: tuple[str, ...] = ("none", "tracks", "samples")


@dataclass
class CrossingTracks:
    """K crossing tracks (already cut at the event frame), concatenated over F frames.

    keys: K ids "setXX/video_XXXX/<ped_id>" (PIE) or "video_XXXX/<ped_id>" (JAAD);
    offsets: (K+1,) int64, track k is rows ``offsets[k]:offsets[k+1]``; frames: (F,) int64;
    boxes: (F, 4) float64 x1 y1 x2 y2 px; ego: (F, E) float64; label: (K,) int64 binary;
    label3: (K,) int64 0/1/2; image_size: (K, 2) int64 (width, height);
    num_pedestrians: pedestrians considered before the length filter (the official count).
    """

    keys: list[str]
    offsets: np.ndarray
    frames: np.ndarray
    boxes: np.ndarray
    ego: np.ndarray
    label: np.ndarray
    label3: np.ndarray
    image_size: np.ndarray
    num_pedestrians: int = 0
    ego_channels: tuple[str, ...] = ()

    @property
    def lengths(self) -> np.ndarray:
        """(K,) int64 frames per track."""
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.keys)

    def select(self, keep: np.ndarray) -> CrossingTracks:
        """Tracks where ``keep`` (K,) bool is True (order kept); num_pedestrians unchanged."""
        keep = np.asarray(keep, dtype=bool)
        if keep.shape != (len(self),):
            raise ValueError(f"keep mask must have shape ({len(self)},), got {keep.shape}")
        lengths = self.lengths[keep]
        rows = _ranges(self.offsets[:-1][keep], lengths)
        return CrossingTracks(
            keys=[k for k, m in zip(self.keys, keep.tolist()) if m],
            offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            frames=self.frames[rows], boxes=self.boxes[rows], ego=self.ego[rows],
            label=self.label[keep], label3=self.label3[keep], image_size=self.image_size[keep],
            num_pedestrians=self.num_pedestrians, ego_channels=self.ego_channels)

    @staticmethod
    def concatenate(parts: list[CrossingTracks]) -> CrossingTracks:
        """Join track sets (e.g. one per video) in order; pedestrian counts add up."""
        if not parts:
            return empty_tracks()
        lengths = np.concatenate([p.lengths for p in parts])
        return CrossingTracks(
            keys=[k for p in parts for k in p.keys],
            offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            frames=np.concatenate([p.frames for p in parts]),
            boxes=np.concatenate([p.boxes for p in parts]),
            ego=np.concatenate([p.ego for p in parts]),
            label=np.concatenate([p.label for p in parts]),
            label3=np.concatenate([p.label3 for p in parts]),
            image_size=np.concatenate([p.image_size for p in parts]),
            num_pedestrians=sum(p.num_pedestrians for p in parts),
            ego_channels=parts[0].ego_channels)


def empty_tracks(num_ego: int = 0, ego_channels: tuple[str, ...] = ()) -> CrossingTracks:
    """A CrossingTracks with no track."""
    return CrossingTracks([], np.zeros(1, np.int64), np.zeros(0, np.int64),
                          np.zeros((0, 4)), np.zeros((0, num_ego)), np.zeros(0, np.int64),
                          np.zeros(0, np.int64), np.zeros((0, 2), np.int64), 0, ego_channels)


@dataclass
class CrossingSamples:
    """N observation windows of T = obs_length frames.

    ids: N ids "<track key>/<first frame>"; track: (N,) int64 index into the tracks;
    start: (N,) int64 window start within the track; rows: (N, T) int64 rows of the
    concatenated track arrays; tte: (N,) int64 frames from the window's end to the event;
    frames: (N, T) int64; boxes: (N, T, 4) float64; ego: (N, T, E) float64;
    label / label3: (N,) int64; image_size: (N, 2) int64.
    """

    ids: list[str]
    track: np.ndarray
    start: np.ndarray
    rows: np.ndarray
    tte: np.ndarray
    frames: np.ndarray
    boxes: np.ndarray
    ego: np.ndarray
    label: np.ndarray
    label3: np.ndarray
    image_size: np.ndarray
    options: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def select(self, keep: np.ndarray) -> CrossingSamples:
        """Samples where ``keep`` (N,) bool is True, in order."""
        keep = np.asarray(keep, dtype=bool)
        if keep.shape != (len(self),):
            raise ValueError(f"keep mask must have shape ({len(self)},), got {keep.shape}")
        return CrossingSamples(
            [i for i, m in zip(self.ids, keep.tolist()) if m], self.track[keep], self.start[keep],
            self.rows[keep], self.tte[keep], self.frames[keep], self.boxes[keep], self.ego[keep],
            self.label[keep], self.label3[keep], self.image_size[keep], dict(self.options))


# --------------------------------------------------------------------------- options

def tte_range(time_to_event: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """(tte_min, tte_max) from an int (one window) or a [min, max] pair."""
    if isinstance(time_to_event, (int, np.integer)):
        lo = hi = int(time_to_event)
    else:
        vals = list(time_to_event)
        if len(vals) != 2:
            raise ValueError(f"time_to_event must be an int or a [min, max] pair, got {time_to_event!r}")
        lo, hi = int(vals[0]), int(vals[1])
    if lo < 0 or hi < lo:
        raise ValueError(f"time_to_event must satisfy 0 <= min <= max, got {time_to_event!r}")
    return lo, hi


def benchmark_stride(obs_length: int, overlap: float) -> int:
    """Window stride of ``get_data_sequence``: ``obs`` if overlap == 0, else
    ``int((1 - overlap) * obs)`` in float arithmetic (0.8, 16 -> 3; 0.6, 16 -> 6), at least 1."""
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    stride = obs_length if overlap == 0 else int((1 - overlap) * obs_length)
    return max(stride, 1)


def default_min_track_size(obs_length: int, time_to_event: int | tuple[int, int]) -> int:
    """``train_test.py``: ``min_track_size = obs_length + tte_max`` (76 for 16, [30, 60])."""
    return int(obs_length) + tte_range(time_to_event)[1]


# --------------------------------------------------------------------------- tracks

def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + n)`` for each (s, n), without a Python loop."""
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    first = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(starts, lengths) + (np.arange(total, dtype=np.int64) - first)


def event_cut_length(frames: np.ndarray, event_frame: int, what: str,
                     allow_minus_one: bool) -> int:
    """Number of leading frames kept by the official crossing cut.

    ``event_frame == -1`` (JAAD only: non-'b' pedestrians and 'b' ones without a crossing
    point) -> ``end_idx = -3`` -> all frames but the last two. Otherwise the track is cut
    right after the first occurrence of the event frame, which must be annotated."""
    n = len(frames)
    if allow_minus_one and event_frame == -1:
        return max(n - 2, 0)
    hit = np.flatnonzero(np.asarray(frames) == event_frame)
    if hit.size == 0:  # the official ``frame_ids.index(event_frame)`` fails here as well
        raise ValueError(f"{what}: event frame (crossing_point) {event_frame} is not among the "
                         f"track's annotated frames {int(frames[0])}..{int(frames[-1])}")
    return int(hit[0]) + 1


def _lookup(table_frames: np.ndarray, values: np.ndarray, frames: np.ndarray, what: str) -> np.ndarray:
    """values[table_frames == f] for each f of ``frames`` (vectorised); missing frames raise."""
    order = np.argsort(table_frames, kind="stable")
    pos = np.clip(np.searchsorted(table_frames, frames, sorter=order), 0, max(len(order) - 1, 0))
    if len(order) == 0:
        raise ValueError(f"{what}: no ego-vehicle annotation at all")
    idx = order[pos]
    bad = table_frames[idx] != frames
    if bad.any():
        raise ValueError(f"{what}: no ego-vehicle annotation for frame(s) {frames[bad][:5].tolist()}")
    return values[idx]


def pie_crossing_tracks(videos: Iterable[PIEVideo], min_track_size: int) -> CrossingTracks:
    """Crossing tracks of PIE videos (official ``pie_data.py::_get_crossing``, default split).

    ``videos`` must come in the official order (sets of the split in order, videos sorted);
    pedestrians are taken sorted by id. Ego: [GPS_speed, OBD_speed] (km/h) per frame from
    the OBD file (``PIEVideo.ego_at``)."""
    chans = EGO_CHANNELS["pie"]
    parts: list[CrossingTracks] = []
    for v in videos:
        keys, frs, bxs, egos, lab, lab3, n_ped = [], [], [], [], [], [], 0
        for pid in sorted(v.pedestrians):
            t = v.pedestrians[pid]
            what = f"PIE {v.set_id}/{v.video_id} pedestrian {pid!r}"
            n_ped += 1
            attrs = t.attributes
            if "crossing" not in attrs or "crossing_point" not in attrs:
                raise ValueError(f"{what}: attributes lack 'crossing' or 'crossing_point'")
            n = event_cut_length(t.frames, int(attrs["crossing_point"]), what, allow_minus_one=False)
            if n < min_track_size:
                continue
            fr = t.frames[:n]
            try:
                ego = np.stack([v.ego_at(c, fr) for c in chans], axis=-1)
            except (KeyError, ValueError) as exc:
                raise ValueError(f"{what}: {exc}") from exc
            crossing = int(attrs["crossing"])
            keys.append(f"{v.set_id}/{v.video_id}/{pid}")
            frs.append(fr)
            bxs.append(t.boxes[:n])
            egos.append(ego)
            lab.append(int(crossing > 0))
            lab3.append(2 if crossing == -1 else int(crossing > 0))
        parts.append(_part(keys, frs, bxs, egos, lab, lab3, (v.width, v.height), n_ped, chans))
    return CrossingTracks.concatenate(parts) if parts else empty_tracks(len(chans), chans)


def jaad_crossing_tracks(videos: Iterable[JAADVideo], min_track_size: int,
                         sample_type: str = "beh", jaad_beh_irrelevant: bool = False) -> CrossingTracks:
    """Crossing tracks of JAAD videos (official ``jaad_data.py::_get_crossing``).

    ``videos`` must come sorted by id (the official ``sorted(video_ids)``). sample_type 'beh'
    keeps 'b' pedestrians (JAAD_beh); 'all' keeps every non-group track (JAAD_all). Ego: the
    vehicle action code 0..4 per frame (JAAD has no speed)."""
    if sample_type not in ("beh", "all"):
        raise ValueError(f"sample_type must be 'beh' or 'all', got {sample_type!r}")
    chans = EGO_CHANNELS["jaad"]
    parts: list[CrossingTracks] = []
    for v in videos:
        keys, frs, bxs, egos, lab, lab3, n_ped = [], [], [], [], [], [], 0
        for pid in sorted(v.tracks):
            t = v.tracks[pid]
            if "p" in pid:  # groups of people
                continue
            beh = "b" in pid
            if sample_type == "beh" and not beh:
                continue
            what = f"JAAD {v.video_id} pedestrian {pid!r}"
            n_ped += 1
            if beh:
                if "crossing_point" not in t.attributes or "crossing" not in t.attributes:
                    raise ValueError(f"{what}: behaviour-annotated pedestrian without "
                                     "'crossing'/'crossing_point' in annotations_attributes")
                event = int(t.attributes["crossing_point"])
                crossing = int(t.attributes["crossing"])
            else:
                event, crossing = -1, 0
            n = event_cut_length(t.frames, event, what, allow_minus_one=True)
            if n < min_track_size:
                continue
            fr = t.frames[:n]
            if v.vehicle_frames is None or v.vehicle_action is None:
                raise ValueError(f"{what}: video has no annotations_vehicle data")
            act = _lookup(v.vehicle_frames, v.vehicle_action, fr, what)
            keys.append(f"{v.video_id}/{pid}")
            frs.append(fr)
            bxs.append(t.boxes[:n])
            egos.append(act[:, None].astype(np.float64))
            lab.append(int(crossing > 0))
            if not beh:
                lab3.append(2)
            elif crossing == -1 and jaad_beh_irrelevant:
                lab3.append(2)
            else:
                lab3.append(int(crossing > 0))
        parts.append(_part(keys, frs, bxs, egos, lab, lab3, (v.width, v.height), n_ped, chans))
    return CrossingTracks.concatenate(parts) if parts else empty_tracks(len(chans), chans)


def _part(keys, frs, bxs, egos, lab, lab3, size, n_ped, chans) -> CrossingTracks:
    if not keys:
        t = empty_tracks(len(chans), chans)
        t.num_pedestrians = n_ped
        return t
    lengths = np.array([len(f) for f in frs], dtype=np.int64)
    return CrossingTracks(
        keys=keys, offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        frames=np.concatenate(frs).astype(np.int64),
        boxes=np.concatenate(bxs).astype(np.float64),
        ego=np.concatenate(egos).astype(np.float64),
        label=np.asarray(lab, dtype=np.int64), label3=np.asarray(lab3, dtype=np.int64),
        image_size=np.tile(np.asarray(size, dtype=np.int64), (len(keys), 1)),
        num_pedestrians=n_ped, ego_channels=tuple(chans))


# --------------------------------------------------------------------------- windows

def window_index(lengths: np.ndarray, obs_length: int, time_to_event: int | tuple[int, int],
                 overlap: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Benchmark windows of tracks with ``lengths`` (K,), vectorised.

    Returns (track (N,), start (N,), tte (N,)) int64, ordered by track then start, exactly
    the order of ``get_data_sequence``'s ``range(start_idx, end_idx + 1, olap_res)``."""
    if obs_length < 1:
        raise ValueError(f"obs_length must be >= 1, got {obs_length}")
    lengths = np.asarray(lengths, dtype=np.int64)
    lo, hi = tte_range(time_to_event)
    stride = benchmark_stride(obs_length, overlap)
    first = lengths - obs_length - hi
    last = lengths - obs_length - lo
    k0 = np.maximum((-first + stride - 1) // stride, 0)  # first grid point with start >= 0
    k1 = np.where(last >= first, (last - first) // stride, -1)
    count = np.maximum(k1 - k0 + 1, 0)
    track = np.repeat(np.arange(len(lengths), dtype=np.int64), count)
    k = np.arange(int(count.sum()), dtype=np.int64) - np.repeat(np.cumsum(count) - count, count)
    start = first[track] + (k + k0[track]) * stride
    tte = lengths[track] - (start + obs_length)
    return track, start, tte


def build_samples(tracks: CrossingTracks, obs_length: int = 16,
                  time_to_event: int | tuple[int, int] = (30, 60), overlap: float = 0.6) -> CrossingSamples:
    """Cut the benchmark's observation windows out of ``tracks`` (see :func:`window_index`)."""
    track, start, tte = window_index(tracks.lengths, obs_length, time_to_event, overlap)
    rows = (tracks.offsets[:-1][track] + start)[:, None] + np.arange(obs_length, dtype=np.int64)
    frames = tracks.frames[rows]
    keys = np.asarray(tracks.keys, dtype=str) if len(tracks) else np.zeros(0, dtype=str)
    ids = np.char.add(np.char.add(keys[track], "/"), frames[:, 0].astype(str)) if len(track) else []
    return CrossingSamples(
        ids=list(np.asarray(ids).tolist()), track=track, start=start, rows=rows, tte=tte,
        frames=frames, boxes=tracks.boxes[rows],
        ego=tracks.ego[rows],
        label=tracks.label[track], label3=tracks.label3[track],
        image_size=tracks.image_size[track],
        options={"obs_length": obs_length, "time_to_event": list(tte_range(time_to_event)),
                 "overlap": overlap, "stride": benchmark_stride(obs_length, overlap)})


def balance_mask(labels: np.ndarray, seed: int = 42) -> np.ndarray:
    """Keep-mask of the official ``balance_samples_count`` (PIE and JAAD interfaces).

    labels: (N,) binary 0/1. With ``np.random.seed(seed)``, the indices of the majority class
    are shuffled and the first ``|#pos - #neg|`` are removed. Returns (N,) bool."""
    labels = np.asarray(labels)
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("balancing needs binary 0/1 labels")
    n_pos = int(np.count_nonzero(labels))
    n_neg = len(labels) - n_pos
    keep = np.ones(len(labels), dtype=bool)
    if n_pos == n_neg:
        return keep
    rm = np.flatnonzero(labels == (0 if n_neg > n_pos else 1))
    np.random.RandomState(seed).shuffle(rm)  # = np.random.seed(seed); np.random.shuffle(rm)
    keep[rm[:abs(n_neg - n_pos)]] = False
    return keep
