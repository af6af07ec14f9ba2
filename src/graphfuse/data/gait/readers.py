"""Readers of gait silhouette datasets in their original on-disk formats (numpy + OpenCV, no torch).

Layouts read (``docs/data_gait.md``):

CASIA-B as distributed (``GaitDatasetB-silh``)
    ``<root>/<id>/<type>/<view>/*.png``: ids ``001``-``124``; types ``nm-01``..``nm-06``,
    ``bg-01``, ``bg-02``, ``cl-01``, ``cl-02``; views ``000``..``180`` in steps of 18. Frame
    files (``<id>-<type>-<view>-<frame:03d>.png``) are taken in file-name order, as OpenGait's
    ``sorted(img_paths)``.
OpenGait's pretreated pickles
    ``<root>/<id>/<type>/<view>/<view>.pkl``: a pickled uint8 ``(T, S, S)`` array, read with
    :func:`graphfuse.io.restricted_load` (builtins and numpy arrays only, so a crafted pickle
    cannot run code); anything but a uint8 ``(T, S, S)`` array is refused, naming the file.
OU-MVLP as distributed
    ``<root>/Silhouette_<view>-<seq>/<id>/*.png``: views ``000``..``090`` and ``180``..``270`` in
    steps of 15, sequences ``00`` and ``01``, ids ``00001``-``10307``.
OU-MVLP in OpenGait's rearranged layout (``datasets/OUMVLP/rearrange_OUMVLP.py``)
    ``<root>/<id>/<seq>/<view>/``, holding the PNGs or, once pretreated, ``<view>.pkl``.

Entries whose name starts with ``.`` and plain files other than the frames (``Thumbs.db``, a
README) are ignored; a *folder* outside the naming scheme, an unreadable PNG (bad signature or
``cv2.imdecode`` fails) and an empty sequence folder are errors naming the path
(:class:`GaitDataError`, a ValueError), or with ``skip_bad=True`` entries ``{"path", "reason"}``
of the returned ``skipped`` list (a bad PNG skips that frame, anything else the sequence).
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

__all__ = [
    "CASIA_B_TYPES",
    "CASIA_B_VIEWS",
    "MAX_PIXELS",
    "OUMVLP_SEQS",
    "OUMVLP_VIEWS",
    "PNG_SIGNATURE",
    "GaitDataError",
    "SequenceSource",
    "cv2_module",
    "detect_oumvlp_layout",
    "list_casia_b",
    "list_oumvlp",
    "read_opengait_pkl",
    "read_png",
    "read_png_sequence",
    "read_sequence",
]

CASIA_B_TYPES: tuple[str, ...] = (*(f"nm-{i:02d}" for i in range(1, 7)), "bg-01", "bg-02", "cl-01", "cl-02")
CASIA_B_VIEWS: tuple[str, ...] = tuple(f"{a:03d}" for a in range(0, 181, 18))
CASIA_B_MAX_ID = 124
OUMVLP_VIEWS: tuple[str, ...] = (*(f"{a:03d}" for a in range(0, 91, 15)), *(f"{a:03d}" for a in range(180, 271, 15)))
OUMVLP_SEQS: tuple[str, ...] = ("00", "01")
OUMVLP_MAX_ID = 10307
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Largest frame decoded (pixels). CASIA-B frames are 320 x 240, OU-MVLP's 1280 x 980; a PNG
#: header declaring more is refused before OpenCV allocates the image (a decompression bomb).
MAX_PIXELS = 1 << 25
_OUMVLP_DIST = re.compile(r"^Silhouette_(\d{3})-(\d{2})$")

Kind = Literal["png", "pkl"]


class GaitDataError(ValueError):
    """Bad gait input (a folder outside the naming scheme, an unreadable PNG or pickle, an empty
    sequence); the message names the path."""


@dataclass(frozen=True)
class SequenceSource:
    """One sequence on disk.

    Attributes:
        id, type, view: the sequence key (``type`` is ``00``/``01`` for OU-MVLP).
        path: the sequence folder (PNG frames) or the ``.pkl`` file.
        kind: ``"png"`` or ``"pkl"``.
        files: the PNG frames in name order (empty for a pickle).
    """

    id: str
    type: str
    view: str
    path: str
    kind: Kind
    files: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.id, self.type, self.view)

    @property
    def bound(self) -> int:
        """Upper bound on the frames this sequence yields (PNG: the file count)."""
        return len(self.files)


def _visible(p: Path) -> bool:
    return not p.name.startswith(".")


def _subdirs(folder: Path, check: Callable[[str], str | None], skipped: list[dict] | None) -> list[Path]:
    """Visible sub-folders of ``folder`` whose names pass ``check`` (None: valid; else the reason).
    Plain files are ignored; a bad folder name raises, or is listed in ``skipped``."""
    try:
        entries = sorted(p for p in folder.iterdir() if _visible(p))
    except OSError as exc:
        raise GaitDataError(f"{folder}: cannot list the folder ({exc.strerror or exc})") from None
    good = []
    for p in entries:
        if not p.is_dir():
            continue
        reason = check(p.name)
        if reason is None:
            good.append(p)
        elif skipped is None:
            raise GaitDataError(f"{p}: folder outside the naming scheme: {reason}")
        else:
            skipped.append({"path": str(p), "reason": f"folder outside the naming scheme: {reason}"})
    return good


def _id_check(digits: int, max_id: int) -> Callable[[str], str | None]:
    def check(name: str) -> str | None:
        if re.fullmatch(rf"\d{{{digits}}}", name) and 1 <= int(name) <= max_id:
            return None
        return f"expected a subject id {'0' * (digits - 1)}1..{max_id:0{digits}d}"
    return check


def _one_of(values: tuple[str, ...], what: str) -> Callable[[str], str | None]:
    def check(name: str) -> str | None:
        return None if name in values else f"expected a {what} ({', '.join(values)})"
    return check


def _sequence(key: tuple[str, str, str], folder: Path, source: str, skipped: list[dict] | None,
              ) -> SequenceSource | None:
    """The sequence in ``folder``: its PNG frames, or ``<view>.pkl`` (``source``: png/pkl/auto)."""
    try:
        entries = [p for p in folder.iterdir() if _visible(p)]
    except OSError as exc:
        raise GaitDataError(f"{folder}: cannot list the folder ({exc.strerror or exc})") from None
    sub = sorted(p for p in entries if p.is_dir())
    if sub:
        reason = f"folder outside the naming scheme: a sequence folder holds frames, not folders ({sub[0].name})"
        if skipped is None:
            raise GaitDataError(f"{sub[0]}: {reason}")
        skipped.append({"path": str(sub[0]), "reason": reason})
    pngs = sorted(str(p) for p in entries if p.suffix.lower() == ".png" and p.is_file())
    pkls = sorted(p for p in entries if p.suffix == ".pkl" and p.is_file())
    pkl = folder / f"{key[2]}.pkl"
    reason = None
    if source == "pkl" or (source == "auto" and pkls and not pngs):
        if pkl.is_file():
            return SequenceSource(*key, str(pkl), "pkl")
        reason = (f"no {pkl.name} (OpenGait's pickle of this view)" if not pkls else
                  f"expected OpenGait's {pkl.name}, found {pkls[0].name}")
    elif pngs:
        return SequenceSource(*key, str(folder), "png", tuple(pngs))
    else:
        reason = "empty sequence: no PNG frame" + (" and no .pkl" if source == "auto" else "")
    if skipped is None:
        raise GaitDataError(f"{folder}: {reason}")
    skipped.append({"path": str(folder), "reason": reason})
    return None


def _root(root: str | os.PathLike, what: str) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{what} folder not found: {root}")
    return root


def _source_arg(source: str) -> str:
    if source not in ("auto", "png", "pkl"):
        raise ValueError(f"source must be 'auto', 'png' or 'pkl', got {source!r}")
    return source


def _one_kind(sources: list[SequenceSource], root: Path) -> list[SequenceSource]:
    kinds = {s.kind for s in sources}
    if len(kinds) > 1:
        first = {k: next(s for s in sources if s.kind == k) for k in kinds}
        raise GaitDataError(f"{root}: mixes PNG sequence folders ({first['png'].path}) and OpenGait pickles "
                            f"({first['pkl'].path}); choose one with --from-pkl or the PNG route")
    return sorted(sources, key=lambda s: s.key)


def _walk_id_type_view(root: Path, checks: tuple[Callable[[str], str | None], ...], source: str,
                       skip: list[dict] | None) -> list[SequenceSource]:
    """The sequences of a ``<root>/<id>/<type>/<view>/`` tree (CASIA-B; OU-MVLP in OpenGait's
    layout, ``<id>/<seq>/<view>``), each level's folder names checked by ``checks``."""
    out = []
    for d_id in _subdirs(root, checks[0], skip):
        for d_type in _subdirs(d_id, checks[1], skip):
            for d_view in _subdirs(d_type, checks[2], skip):
                s = _sequence((d_id.name, d_type.name, d_view.name), d_view, source, skip)
                if s is not None:
                    out.append(s)
    return out


def list_casia_b(root: str | os.PathLike, *, source: str = "auto", skip_bad: bool = False,
                 ) -> tuple[list[SequenceSource], list[dict[str, str]]]:
    """The sequences of a CASIA-B folder ``<root>/<id>/<type>/<view>/`` (PNGs or OpenGait pickles).

    ``source``: ``png``, ``pkl`` (``<view>.pkl`` in every view folder) or ``auto`` (a view folder
    holding only ``.pkl`` files is a pickle; the root must not mix the two). Returns the sources
    sorted by (id, type, view) and the skipped entries (empty unless ``skip_bad``).
    """
    root = _root(root, "CASIA-B")
    source = _source_arg(source)
    skipped: list[dict[str, str]] = []
    skip = skipped if skip_bad else None
    out = _walk_id_type_view(root, (_id_check(3, CASIA_B_MAX_ID), _one_of(CASIA_B_TYPES, "CASIA-B walking condition"),
                                    _one_of(CASIA_B_VIEWS, "CASIA-B view")), source, skip)
    if not out:
        raise GaitDataError(f"{root}: no CASIA-B sequence (<id>/<type>/<view>/*.png or <view>.pkl) found")
    return _one_kind(out, root), skipped


def detect_oumvlp_layout(root: str | os.PathLike) -> str:
    """``distributed`` (``Silhouette_<view>-<seq>/``) or ``opengait`` (``<id>/<seq>/<view>/``),
    from the names of ``root``'s visible sub-folders."""
    root = _root(root, "OU-MVLP")
    names = [p.name for p in root.iterdir() if _visible(p) and p.is_dir()]
    dist = sum(bool(_OUMVLP_DIST.match(n)) for n in names)
    ids = sum(bool(re.fullmatch(r"\d{5}", n)) for n in names)
    if dist and not ids:
        return "distributed"
    if ids and not dist:
        return "opengait"
    raise GaitDataError(f"{root}: cannot tell the OU-MVLP layout: expected Silhouette_<view>-<seq> folders "
                        f"(as distributed) or <id> folders (OpenGait's rearranged layout); pass --layout")


def list_oumvlp(root: str | os.PathLike, *, layout: str = "auto", source: str = "auto",
                skip_bad: bool = False) -> tuple[list[SequenceSource], list[dict[str, str]]]:
    """The sequences of an OU-MVLP folder, as distributed or in OpenGait's rearranged layout
    (``layout``: ``auto``, ``distributed``, ``opengait``). Types are the sequence numbers
    ``00``/``01``. Returns the sources sorted by (id, seq, view) and the skipped entries."""
    root = _root(root, "OU-MVLP")
    source = _source_arg(source)
    if layout == "auto":
        layout = detect_oumvlp_layout(root)
    if layout not in ("distributed", "opengait"):
        raise ValueError(f"layout must be 'auto', 'distributed' or 'opengait', got {layout!r}")
    skipped: list[dict[str, str]] = []
    skip = skipped if skip_bad else None
    id_check = _id_check(5, OUMVLP_MAX_ID)
    out = []
    if layout == "distributed":
        if source == "pkl":
            raise ValueError("OU-MVLP as distributed holds PNGs; OpenGait's pickles use the rearranged layout")

        def dist_check(name: str) -> str | None:
            m = _OUMVLP_DIST.match(name)
            if m and m.group(1) in OUMVLP_VIEWS and m.group(2) in OUMVLP_SEQS:
                return None
            return "expected Silhouette_<view>-<seq> with an OU-MVLP view (000..090, 180..270) and seq 00/01"

        for d_vs in _subdirs(root, dist_check, skip):
            view, seq = _OUMVLP_DIST.match(d_vs.name).groups()  # type: ignore[union-attr]
            for d_id in _subdirs(d_vs, id_check, skip):
                s = _sequence((d_id.name, seq, view), d_id, "png", skip)
                if s is not None:
                    out.append(s)
    else:
        out = _walk_id_type_view(root, (id_check, _one_of(OUMVLP_SEQS, "OU-MVLP sequence"),
                                        _one_of(OUMVLP_VIEWS, "OU-MVLP view")), source, skip)
    if not out:
        raise GaitDataError(f"{root}: no OU-MVLP sequence found ({layout} layout)")
    return _one_kind(out, root), skipped


def cv2_module() -> Any:
    """The ``cv2`` module, or an ImportError saying how to install it (OpenCV is the one image
    library of the project: its cubic resize is what OpenGait's pretreatment uses)."""
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("gait silhouettes need OpenCV: pip install 'graphfuse[gait]' "
                          "(or: pip install opencv-contrib-python-headless)") from exc
    return cv2


def read_png(path: str | os.PathLike) -> np.ndarray:
    """One frame as a uint8 grayscale array (``cv2.IMREAD_GRAYSCALE``, as OpenGait's ``cv2.imread``).

    Raises GaitDataError naming the file if it does not start with the PNG signature or OpenCV
    cannot decode it, OSError if it cannot be read.
    """
    cv2 = cv2_module()
    data = Path(path).read_bytes()
    if not data.startswith(PNG_SIGNATURE):
        raise GaitDataError(f"{path}: not a PNG file (bad signature)")
    # The first chunk is IHDR: length 13, then width and height (big-endian uint32).
    if len(data) < 33 or data[8:16] != b"\x00\x00\x00\rIHDR":
        raise GaitDataError(f"{path}: unreadable PNG (no IHDR header chunk)")
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if not (0 < width and 0 < height and width * height <= MAX_PIXELS):
        raise GaitDataError(f"{path}: PNG header declares a {width} x {height} image (at most {MAX_PIXELS} "
                            "pixels are read)")
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_GRAYSCALE)
    if img is None or img.ndim != 2 or img.size == 0:
        raise GaitDataError(f"{path}: unreadable PNG (OpenCV cannot decode it; truncated or corrupt)")
    return img


def read_png_sequence(source: SequenceSource, *, skip_bad: bool = False,
                      ) -> tuple[list[np.ndarray], list[str], list[dict[str, str]]]:
    """The PNG frames of ``source`` in name order: (frames, their paths, skipped bad frames)."""
    frames, names, skipped = [], [], []
    for f in source.files:  # a loop over files
        try:
            img = read_png(f)
        except (GaitDataError, OSError) as exc:
            if not skip_bad:
                if isinstance(exc, GaitDataError):
                    raise
                raise GaitDataError(f"{f}: cannot read ({exc.strerror or exc})") from None
            skipped.append({"path": str(f), "reason": str(exc).removeprefix(f"{f}: ")})
            continue
        frames.append(img)
        names.append(str(f))
    return frames, names, skipped


def read_opengait_pkl(path: str | os.PathLike, size: int | None = None) -> np.ndarray:
    """OpenGait's pretreated sequence: a pickled uint8 ``(T, S, S)`` array, ``T >= 1``.

    Unpickled with :func:`graphfuse.io.restricted_load`: a pickle asking for anything outside
    builtins and numpy arrays (code execution) is refused, and so is any value other than a uint8
    ``(T, S, S)`` array (a dict, a float array, a list of frames), with a GaitDataError naming the
    file. ``size``: the expected ``S`` (None: any).
    """
    from graphfuse.io import restricted_load

    try:
        arr = restricted_load(path)
    except pickle.UnpicklingError as exc:  # UnsafePickleError too; messages name the file
        raise GaitDataError(str(exc)) from None
    if not isinstance(arr, np.ndarray):
        raise GaitDataError(f"{path}: expected OpenGait's pickled uint8 (T, S, S) array, got a {type(arr).__name__}")
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[1] != arr.shape[2] or arr.shape[0] < 1:
        raise GaitDataError(f"{path}: expected OpenGait's pickled uint8 (T, S, S) array with T >= 1, "
                            f"got {arr.dtype} {arr.shape}")
    if size is not None and arr.shape[1] != size:
        raise GaitDataError(f"{path}: frames are {arr.shape[1]}x{arr.shape[2]}, expected {size}x{size} "
                            f"(pretreated with OpenGait's -r {arr.shape[1]}? pass --size {arr.shape[1]})")
    return np.ascontiguousarray(arr)


def read_sequence(source: SequenceSource, *, size: int | None = None, skip_bad: bool = False,
                  ) -> tuple[list[np.ndarray] | np.ndarray, list[str], list[dict[str, str]]]:
    """A sequence's raw data: PNG frames (a list of 2D uint8 arrays) or a pickle's pretreated
    ``(T, S, S)`` array, with the frame paths and the skipped bad frames."""
    if source.kind == "pkl":
        return read_opengait_pkl(source.path, size), [source.path], []
    return read_png_sequence(source, skip_bad=skip_bad)
