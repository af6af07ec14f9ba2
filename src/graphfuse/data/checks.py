"""Value checks of prepared data: finite in the stored dtype and within plausible bounds.

Numbers that are finite in float64 can overflow to ``inf`` when stored as float32, and a
finite but absurd value (a joint 10^30 m away) trains silently into ``inf`` statistics.
Preparation therefore checks every value that it stores, after the cast to the stored dtype,
against :data:`DEFAULT_BOUNDS` (overridable), and records what it checked in
``meta.json["value_check"]``. Folders without that record (prepared by an earlier version,
or arrays registered with ``graphfuse prepare ntu-official``) are checked once by
``graphfuse check DIR`` (:func:`check_prepared`); the datamodules refuse a folder whose
``meta.json`` records no passed check (:func:`require_checked`).

Bounds (``NAME=LO:HI`` on the command line, ``{NAME: (LO, HI)}`` in Python):

``joint_m`` (-20:20)
    NTU camera-space joint coordinates in metres, every axis (Kinect v2 sees up to 8 m).
    Checked on the raw ``.skeleton`` coordinates of the bodies read. The stored arrays are
    centred on a joint and rotated, so a stored joint coordinate is checked against
    ``2 sqrt(3) max(|LO|, |HI|)`` (69.3 m by default), bone and motion streams against
    twice that and ``bone_motion`` against four times that.
``pixel_frames`` (-1:2)
    Pixel coordinates (boxes, 2D joints) in frame sizes: ``LO W <= x <= HI W`` and
    ``LO H <= y <= HI H`` with the sample's ``image_size`` (W, H), i.e. at most one frame
    size outside the frame.
``speed_kmh`` (0:300)
    Vehicle speeds (PIE ``GPS_speed``, ``OBD_speed``).
``acc_g`` (-16:16), ``gyro_dps`` (-2000:2000)
    PIE accelerometer (``accX/Y/Z``, g) and gyroscope (``gyroX/Y/Z``, deg/s): the full scale
    of common vehicle IMUs.
``angle`` (-360:360)
    PIE ``heading_angle``, ``pitch``, ``roll``, ``yaw`` (degrees or radians: PIE documents
    no unit; the set05 sample holds radians for pitch, roll and yaw).
``latitude`` (-90:90), ``longitude`` (-180:180)
    PIE GPS position in degrees.

Other stored floating-point values (pose depth and score, JAAD ``vehicle_act``, OBD fields
not listed) must be finite. Every check is vectorised over samples, frames and joints.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_BOUNDS",
    "OBD_FIELD_BOUNDS",
    "ValueCheckError",
    "resolve_bounds",
    "parse_bound",
    "first_outside",
    "fmt_value",
    "stored_joint_limit",
    "check_obd",
    "check_intention_arrays",
    "check_record",
    "check_prepared",
    "require_checked",
]

#: Default plausibility bounds, name -> (low, high); see the module docstring.
DEFAULT_BOUNDS: dict[str, tuple[float, float]] = {
    "joint_m": (-20.0, 20.0),
    "pixel_frames": (-1.0, 2.0),
    "speed_kmh": (0.0, 300.0),
    "acc_g": (-16.0, 16.0),
    "gyro_dps": (-2000.0, 2000.0),
    "angle": (-360.0, 360.0),
    "latitude": (-90.0, 90.0),
    "longitude": (-180.0, 180.0),
}
#: PIE OBD field -> the bound that applies to it (other fields: finite only).
OBD_FIELD_BOUNDS: dict[str, str] = {
    "GPS_speed": "speed_kmh", "OBD_speed": "speed_kmh",
    "accX": "acc_g", "accY": "acc_g", "accZ": "acc_g",
    "gyroX": "gyro_dps", "gyroY": "gyro_dps", "gyroZ": "gyro_dps",
    "heading_angle": "angle", "pitch": "angle", "roll": "angle", "yaw": "angle",
    "latitude": "latitude", "longitude": "longitude",
}
#: Stored NTU streams: multiple of the stored joint limit (differences of two joints or frames).
STREAM_FACTORS: dict[str, float] = {"joint": 1.0, "bone": 2.0, "joint_motion": 2.0, "bone_motion": 4.0}
_REL_TOL = 1e-5  # float32 rounding of the rotation in the pre-normalisation
_CHUNK_BYTES = 64 << 20  # values checked at once by graphfuse check


class ValueCheckError(ValueError):
    """A stored or input value is not finite or outside its plausibility bound."""


# ---- bounds --------------------------------------------------------------------------------------

def parse_bound(spec: str) -> tuple[str, tuple[float, float]]:
    """``"NAME=LO:HI"`` -> ``(NAME, (LO, HI))``."""
    name, sep, rng = str(spec).partition("=")
    lo, sep2, hi = rng.partition(":")
    try:
        if not (sep and sep2):
            raise ValueError
        pair = (float(lo), float(hi))
    except ValueError:
        raise ValueError(f"bound {spec!r}: expected NAME=LO:HI, e.g. joint_m=-25:25 "
                         f"(names: {', '.join(DEFAULT_BOUNDS)})") from None
    return name.strip(), pair


def resolve_bounds(bounds: Mapping[str, Sequence[float]] | Iterable[str] | None = None) -> dict[str, tuple[float, float]]:
    """The defaults updated by ``bounds`` (a mapping name -> (lo, hi), or ``NAME=LO:HI`` strings).

    Raises ValueError for an unknown name, a non-finite limit or ``lo > hi``.
    """
    out = dict(DEFAULT_BOUNDS)
    if bounds is None:
        return out
    items = bounds.items() if isinstance(bounds, Mapping) else (parse_bound(s) for s in bounds)
    for name, pair in items:
        if name not in DEFAULT_BOUNDS:
            raise ValueError(f"unknown bound {name!r}; choose from {', '.join(DEFAULT_BOUNDS)}")
        try:
            lo, hi = (float(v) for v in pair)
        except (TypeError, ValueError):
            raise ValueError(f"bound {name}: expected (low, high), got {pair!r}") from None
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise ValueError(f"bound {name}: need finite low <= high, got {lo:g}:{hi:g}")
        out[name] = (lo, hi)
    return out


def _as_json(bounds: Mapping[str, tuple[float, float]]) -> dict[str, list[float]]:
    return {k: [float(lo), float(hi)] for k, (lo, hi) in bounds.items()}


def fmt_value(v: Any) -> str:
    """A value for an error message: ``1e+30``, ``400``, ``nan``, ``-inf``."""
    return f"{float(v):g}"


def first_outside(values: np.ndarray, lo: Any = None, hi: Any = None) -> int | None:
    """Flat index of the first value that is not finite or not within ``[lo, hi]`` (arrays
    broadcastable to ``values``; None: finite only), or None."""
    values = np.asarray(values)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(values)
        if lo is not None:
            ok &= values >= lo
        if hi is not None:
            ok &= values <= hi
    if ok.all():
        return None
    return int(np.argmin(ok.reshape(-1)))


def _what(v: float, lo: float | None, hi: float | None, bound: str | None) -> str:
    if not np.isfinite(v):
        return f"value {fmt_value(v)} is not finite"
    return (f"value {fmt_value(v)} is outside the plausible range {fmt_value(lo)}..{fmt_value(hi)} "
            f"(bound {bound}; override with --bound {bound}=LO:HI)")


def stored_joint_limit(bounds: Mapping[str, tuple[float, float]], stream: str = "joint") -> float:
    """Largest |value| of a stored (centred, rotated) NTU ``stream`` from the ``joint_m`` bound."""
    lo, hi = bounds["joint_m"]
    return STREAM_FACTORS[stream] * 2.0 * math.sqrt(3.0) * max(abs(lo), abs(hi)) * (1.0 + _REL_TOL)


# ---- preparation: inputs --------------------------------------------------------------------------

def check_obd(obd: Mapping[str, np.ndarray], path: str | os.PathLike,
              bounds: Mapping[str, tuple[float, float]] | None = None) -> None:
    """PIE OBD fields (``read_pie_obd``) within their bounds; errors name file, frame, field, value."""
    bounds = resolve_bounds(bounds) if bounds is None else bounds
    frames = np.asarray(obd["frames"])
    for key, values in obd.items():  # a loop over the ~14 fields
        if key == "frames":
            continue
        bound = OBD_FIELD_BOUNDS.get(key)
        lo, hi = bounds[bound] if bound else (None, None)
        i = first_outside(values, lo, hi)
        if i is not None:
            raise ValueCheckError(f"{path}: frame {int(frames[i])}: {key} "
                                  f"{_what(float(values[i]), lo, hi, bound)}")


# ---- prepared arrays --------------------------------------------------------------------------------

def _sample_error(array: str, ids: Sequence[str], index: tuple[int, ...], v: float,
                  lo: Any, hi: Any, bound: str | None, where: str) -> ValueCheckError:
    sid = ids[index[0]] if index[0] < len(ids) else f"#{index[0]}"
    return ValueCheckError(f"{array}: sample {sid}: {where}: {_what(v, lo, hi, bound)}")


def _check(array: str, values: np.ndarray, ids: Sequence[str], lo: Any, hi: Any, bound: str | None,
           where, offset: int = 0) -> None:
    i = first_outside(values, lo, hi)
    if i is None:
        return
    idx = np.unravel_index(i, values.shape)
    idx = (int(idx[0]) + offset, *map(int, idx[1:]))
    v = float(values.reshape(-1)[i])
    pick = lambda b: None if b is None else float(np.broadcast_to(b, values.shape).reshape(-1)[i])  # noqa: E731
    raise _sample_error(array, ids, idx, v, pick(lo), pick(hi), bound, where(idx))


def check_intention_arrays(split: str, arrays: Mapping[str, np.ndarray], ids: Sequence[str],
                           image_size: np.ndarray, ego_channels: Sequence[str],
                           bounds: Mapping[str, tuple[float, float]]) -> list[str]:
    """Check one split's float arrays (``boxes``, ``ego``, ``pose``, any other float array):
    finite in their dtype; boxes and pose x, y within ``pixel_frames`` of the sample's
    (W, H); ego channels within their OBD bound. Returns the names checked."""
    wh = np.asarray(image_size, dtype=np.float64).reshape(-1, 2)
    i = first_outside(wh, 1, None)
    if i is not None:
        raise ValueCheckError(f"{split}/image_size.npy: sample {ids[i // 2] if i // 2 < len(ids) else i // 2}: "
                              f"frame size {wh.reshape(-1)[i]:g} is not a positive number")
    f_lo, f_hi = bounds["pixel_frames"]
    checked = []
    for name, arr in arrays.items():  # a loop over the few arrays of a split
        arr = np.asarray(arr)
        if arr.dtype.kind != "f":
            continue
        label = f"{split}/{name}.npy"
        checked.append(label)
        n = arr.shape[0]
        if name == "boxes":  # (N, T, 4) x1 y1 x2 y2
            size = np.tile(wh, 2)[:, None, :]  # (N, 1, 4): W H W H
            _check(label, arr, ids, f_lo * size, f_hi * size, "pixel_frames",
                   lambda ix: f"frame index {ix[1]}, box {'x1 y1 x2 y2'.split()[ix[2]]}")
        elif name == "pose":  # (N, T, V, 4) x y depth score
            size = wh.reshape(n, 1, 1, 2)
            xy = arr[..., :2]
            _check(label, xy, ids, f_lo * size, f_hi * size, "pixel_frames",
                   lambda ix: f"frame index {ix[1]}, joint {ix[2]}, {'xy'[ix[3]]}")
            _check(label, arr, ids, None, None, None,
                   lambda ix: f"frame index {ix[1]}, joint {ix[2]}, channel {ix[3]}")
        elif name == "ego":  # (N, T, E)
            for c, chan in enumerate(ego_channels):  # a loop over the 1-2 channels
                bound = OBD_FIELD_BOUNDS.get(chan)
                lo, hi = bounds[bound] if bound else (None, None)
                _check(label, arr[..., c], ids, lo, hi, bound, lambda ix, chan=chan: f"frame index {ix[1]}, {chan}")
            _check(label, arr, ids, None, None, None, lambda ix: f"frame index {ix[1]}, channel {ix[2]}")
        else:
            _check(label, arr, ids, None, None, None, lambda ix: f"index {ix[1:]}")
    return checked


def check_record(by: str, bounds: Mapping[str, tuple[float, float]], arrays: Sequence[str],
                 checks: Sequence[str], error: str | None = None) -> dict[str, Any]:
    """The ``meta.json["value_check"]`` record."""
    from graphfuse import __version__

    rec: dict[str, Any] = {
        "result": "failed" if error else "passed",
        "by": by,
        "checks": list(checks),
        "bounds": _as_json(bounds),
        "arrays": list(arrays),
        "graphfuse_version": __version__,
    }
    if error:
        rec["error"] = error
    return rec


NTU_CHECKS = ("raw camera-space joints of the bodies read within joint_m on every axis (float64)",
              "every stored value finite after the cast to float32",
              "stored joints within 2 sqrt(3) max|joint_m| (bone and joint_motion x2, bone_motion x4)")
INTENTION_CHECKS = ("PIE OBD fields finite and within their bounds (speed_kmh, acc_g, gyro_dps, angle, "
                    "latitude, longitude) in every frame",
                    "every stored float value finite in its stored dtype",
                    "boxes and pose x, y within pixel_frames of the sample's frame size",
                    "ego speeds within speed_kmh")


def _check_ntu(data_dir: Path, meta: dict, bounds: Mapping[str, tuple[float, float]]) -> list[str]:
    from graphfuse.data.ntu.dataset import resolve_file

    checked = []
    for split, info in meta["splits"].items():
        ids = list(info.get("samples", []))
        for stream, fname in (info.get("files") or {}).items():
            path = resolve_file(data_dir, fname)
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
            label = str(fname)
            if arr.dtype.kind != "f":
                raise ValueCheckError(f"{label}: stored as {arr.dtype}, expected float32")
            if len(ids) != arr.shape[0]:
                raise ValueCheckError(f"{label}: {arr.shape[0]} samples but meta.json lists {len(ids)}")
            limit = stored_joint_limit(bounds, stream) if stream in STREAM_FACTORS else None
            per_sample = max(1, int(np.prod(arr.shape[1:], dtype=np.int64)) * arr.dtype.itemsize)
            step = max(1, _CHUNK_BYTES // per_sample)
            for a in range(0, arr.shape[0], step):  # a loop over chunks of samples
                chunk = np.asarray(arr[a:a + step])
                lo = None if limit is None else -limit
                _check(label, chunk, ids, lo, limit, "joint_m",
                       lambda ix: f"channel {ix[1]}, frame {ix[2]}, joint {ix[3]}, person {ix[4]}"
                       if len(ix) == 5 else f"index {ix[1:]}", offset=a)
            checked.append(label)
    return checked


def _check_intention(data_dir: Path, meta: dict, bounds: Mapping[str, tuple[float, float]]) -> list[str]:
    checked = []
    for split in meta["splits"]:
        d = data_dir / split
        from graphfuse.io import read_json

        ids = read_json(d / "ids.json")
        image_size = np.load(d / "image_size.npy", allow_pickle=False)
        arrays = {p.stem: np.load(p, mmap_mode="r", allow_pickle=False) for p in sorted(d.glob("*.npy"))}
        arrays.pop("image_size", None)
        checked += check_intention_arrays(split, arrays, ids, image_size, meta.get("ego_channels", []), bounds)
    return checked


def _kind(meta: dict) -> str:
    if meta.get("format") == "graphfuse-intention":
        return "intention"
    if meta.get("dataset") == "ntu" or meta.get("layout") == "N C T V M":
        return "ntu"
    if meta.get("format") in ("graphfuse-multilabel", "graphfuse-video", "graphfuse-gait"):
        held = "uint8 silhouette frames" if meta["format"] == "graphfuse-gait" else "JPEG images and integer labels"
        raise ValueError(f"a {meta['format']} folder holds {held}, checked when it was "
                         "prepared (meta.json 'value_check'); graphfuse check scans the float arrays of "
                         "skeleton and crossing-intention folders only")
    raise ValueError("meta.json describes neither an NTU skeleton folder nor a crossing-intention "
                     "folder; nothing to check")


def check_prepared(data_dir: str | os.PathLike,
                   bounds: Mapping[str, Sequence[float]] | Iterable[str] | None = None) -> dict[str, Any]:
    """``graphfuse check DIR``: check every stored float array of a prepared folder and record
    the result in ``meta.json["value_check"]`` (also a failure). Returns the record; raises
    :class:`ValueCheckError` naming the array, sample id and value on the first bad value."""
    from graphfuse.io import read_json, write_json

    data_dir = Path(data_dir)
    meta_path = data_dir / "meta.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path}: no prepared data here")
    meta = read_json(meta_path)  # strict UTF-8, bounded depth; errors name the file
    if not isinstance(meta, dict) or not isinstance(meta.get("splits"), dict):
        raise ValueError(f"{meta_path}: expected an object with 'splits'")
    bounds = resolve_bounds(bounds)
    try:
        kind = _kind(meta)
    except ValueError as exc:
        raise ValueError(f"{meta_path}: {exc}") from None
    checks = NTU_CHECKS[1:] if kind == "ntu" else INTENTION_CHECKS[1:]
    used = {k: v for k, v in bounds.items() if (k == "joint_m") == (kind == "ntu")}  # recorded
    try:
        arrays = (_check_ntu if kind == "ntu" else _check_intention)(data_dir, meta, bounds)
    except ValueCheckError as exc:
        meta["value_check"] = check_record("graphfuse check", used, [], checks, error=str(exc))
        write_json(meta_path, meta)
        raise
    meta["value_check"] = record = check_record("graphfuse check", used, arrays, checks)
    write_json(meta_path, meta)
    return record


def require_checked(meta: Mapping[str, Any], data_dir: str | os.PathLike) -> None:
    """Refuse a prepared folder whose ``meta.json`` records no passed value check."""
    rec = meta.get("value_check")
    if isinstance(rec, Mapping) and rec.get("result") == "passed":
        return
    if isinstance(rec, Mapping):
        raise ValueCheckError(f"{data_dir}: the value check recorded in meta.json failed ({rec.get('error')}); "
                              f"fix or prepare the data again, then run `graphfuse check {data_dir}`")
    raise ValueCheckError(f"{data_dir}: meta.json records no value check (data prepared by an earlier "
                          f"graphfuse, or registered with `graphfuse prepare ntu-official`); run "
                          f"`graphfuse check {data_dir}` once before training on it")
