"""Readers of the official UCF101 and HMDB51 split files (stdlib and numpy only; no torch).

UCF101 (Soomro et al. 2012; ``UCF101TrainTestSplits-RecognitionTask.zip`` -> ``ucfTrainTestlist/``):

* ``classInd.txt``: one line ``<label> <ClassName>`` per class, labels 1..101 in order;
* ``trainlist0<k>.txt``: ``<ClassName>/v_<ClassName>_g<GG>_c<CC>.avi <label>``;
* ``testlist0<k>.txt``: ``<ClassName>/v_<ClassName>_g<GG>_c<CC>.avi`` (no label).

The official archive has CRLF line ends; copies in repositories often LF: both read. The class
part of a video's name is compared case-insensitively with its folder: the split lists say
``HandstandPushups/v_HandstandPushups_g08_c01.avi`` while the released file is named
``v_HandStandPushups_g08_c01.avi`` (the preparation finds such files case-insensitively).
Labels are 0-based here (``classInd`` label - 1), in ``classInd.txt`` order.

HMDB51 (Kuehne et al. 2011; ``test_train_splits.rar`` -> ``testTrainMulti_7030_splits/``): one file
``<class>_test_split<k>.txt`` per class and split, one line ``<video>.avi <flag> `` per video of the
class, flag 1 = training, 2 = testing, 0 = not used in this split (70/30 split: 70 train, 30 test per
class). A video's name is ``<source>_<class>_<body>_<camera>_<people>_<view>_<quality>_<clip>.avi``
(e.g. ``April_09_brush_hair_u_nm_np1_ba_goo_0.avi``). HMDB51 has no class index file: labels are
the positions of the class names sorted alphabetically (the order every public loader uses).

Every error is one :class:`SplitFormatError` (a ``ValueError``) naming the file and the line.
Expected counts: UCF101 split 1 / 2 / 3: 9,537 / 9,586 / 9,624 train and 3,783 / 3,734 / 3,696
test videos; HMDB51, every split: 3,570 train, 1,530 test (1,666 unused).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "EXPECTED_COUNTS",
    "HMDB_FLAGS",
    "SplitFormatError",
    "VideoEntry",
    "VideoSplit",
    "parse_hmdb_name",
    "parse_ucf_name",
    "read_class_ind",
    "read_hmdb51_split",
    "read_hmdb_split_file",
    "read_ucf101_split",
    "read_ucf_list",
]

#: (train, test) videos per dataset and official split.
EXPECTED_COUNTS: dict[str, dict[int, tuple[int, int]]] = {
    "ucf101": {1: (9537, 3783), 2: (9586, 3734), 3: (9624, 3696)},
    "hmdb51": {1: (3570, 1530), 2: (3570, 1530), 3: (3570, 1530)},
}
#: HMDB51 split-file flags.
HMDB_FLAGS = {0: "unused", 1: "train", 2: "test"}

_MAX_FILE_BYTES = 16 << 20  # the largest official split file is 390 kB
_CLASS_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_UCF_RE = re.compile(r"^v_(?P<cls>[A-Za-z0-9]+)_g(?P<group>\d{2})_c(?P<clip>\d{2})\.avi$")
# Printable ASCII without space, '/', '\\' (HMDB51 source titles hold !#&()+-.;@[]_~).
_HMDB_TITLE = r"[!-.0-\[\]-~]+"
_HMDB_TAGS = (r"_(?P<body>[a-z])_(?P<camera>cm|nm)_(?P<people>np\d+)_(?P<view>ba|fr|le|ri)"
              r"_(?P<quality>bad|goo|med)_(?P<clip>\d+)\.avi$")
_HMDB_FILE_RE = re.compile(r"^(?P<cls>[a-z0-9_]+)_test_split(?P<split>\d+)\.txt$")


class SplitFormatError(ValueError):
    """A split or class-index file does not follow the official format (message names the file)."""


@dataclass(frozen=True)
class VideoEntry:
    """One video of a split list.

    Attributes:
        name: the video's name without ``.avi`` (``v_ApplyEyeMakeup_g08_c01``); unique in a dataset.
        path: path of the ``.avi`` relative to the dataset's video folder, as the list gives it
            (``ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi``; HMDB51: ``<class>/<video>.avi``).
        label: 0-based class index.
        group: what a hold-out split keeps together: UCF101's group ``gGG`` (same actors and
            scene), HMDB51's source title (clips cut from one source video).
    """

    name: str
    path: str
    label: int
    group: str


@dataclass
class VideoSplit:
    """One official split: class names (label order) and the train / test videos."""

    dataset: str
    split: int
    classes: list[str]
    train: list[VideoEntry] = field(default_factory=list)
    test: list[VideoEntry] = field(default_factory=list)
    unused: list[VideoEntry] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"train": len(self.train), "test": len(self.test), "unused": len(self.unused)}


# ---------------------------------------------------------------------------------------------
# text
# ---------------------------------------------------------------------------------------------
def _read_lines(path: str | os.PathLike) -> list[str]:
    """The file's lines (CRLF or LF; a UTF-8 BOM dropped; trailing blank lines dropped)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: split file not found")
    size = p.stat().st_size
    if size > _MAX_FILE_BYTES:
        raise SplitFormatError(f"{p}: {size} bytes, far larger than any official split file "
                               f"({_MAX_FILE_BYTES} bytes at most)")
    data = p.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SplitFormatError(f"{p}: line {line}: byte 0x{data[exc.start]:02x} is not ASCII "
                               "(the official split files are ASCII text)") from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise SplitFormatError(f"{p}: line {line}: NUL byte in a text file")
    lines = text.replace("\r\n", "\n").split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def _fail(path: str | os.PathLike, lineno: int, what: str, line: str | None = None) -> SplitFormatError:
    shown = f" ({line[:80]!r})" if line is not None else ""
    return SplitFormatError(f"{path}: line {lineno}: {what}{shown}")


# ---------------------------------------------------------------------------------------------
# UCF101
# ---------------------------------------------------------------------------------------------
def read_class_ind(path: str | os.PathLike) -> list[str]:
    """Class names of ``classInd.txt`` in label order (list index = 0-based label).

    Raises:
        SplitFormatError: a line other than ``<k> <Name>``, labels not 1, 2, ... in order,
            a duplicate name, an empty file.
    """
    names: list[str] = []
    for i, raw in enumerate(_read_lines(path), start=1):
        line = raw.strip()
        if not line:
            raise _fail(path, i, "empty line inside the class list")
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise _fail(path, i, "expected '<label> <ClassName>'", raw)
        label, name = int(parts[0]), parts[1]
        if label != len(names) + 1:
            raise _fail(path, i, f"label {label} where {len(names) + 1} was expected (labels run 1, 2, ...)", raw)
        if not _CLASS_RE.match(name):
            raise _fail(path, i, f"class name {name!r} has characters outside [A-Za-z0-9_-]", raw)
        if name in names:
            raise _fail(path, i, f"class {name!r} listed twice", raw)
        names.append(name)
    if not names:
        raise SplitFormatError(f"{path}: no classes")
    return names


def parse_ucf_name(file_name: str) -> tuple[str, int, int] | None:
    """``v_<Class>_g<GG>_c<CC>.avi`` -> ``(Class, GG, CC)``; None outside the naming scheme."""
    m = _UCF_RE.match(file_name)
    if m is None:
        return None
    return m["cls"], int(m["group"]), int(m["clip"])


def read_ucf_list(path: str | os.PathLike, classes: list[str], *, labelled: bool | None = None) -> list[VideoEntry]:
    """The videos of ``trainlist0k.txt`` (``labelled``) or ``testlist0k.txt``.

    Args:
        path: the list file.
        classes: class names of ``classInd.txt`` (:func:`read_class_ind`).
        labelled: True: every line carries ``<label>`` (trainlist), which must match the class
            folder; False: no label (testlist); None: either (a given label is checked).

    Raises:
        SplitFormatError: a line outside ``<Class>/v_<Class>_gGG_cCC.avi [<label>]``, a class not
            in ``classInd.txt``, a label that disagrees with the folder, a video listed twice.
    """
    index = {c: k for k, c in enumerate(classes)}
    entries: list[VideoEntry] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(_read_lines(path), start=1):
        parts = raw.split()
        if not parts:
            raise _fail(path, i, "empty line inside the list")
        if len(parts) > 2:
            raise _fail(path, i, "expected '<Class>/<video>.avi [<label>]'", raw)
        if labelled is True and len(parts) != 2:
            raise _fail(path, i, "missing the label (a trainlist line is '<Class>/<video>.avi <label>')", raw)
        if labelled is False and len(parts) != 1:
            raise _fail(path, i, "a testlist line is '<Class>/<video>.avi' without a label", raw)
        rel = parts[0]
        folder, sep, fname = rel.partition("/")
        if not sep or "/" in fname:
            raise _fail(path, i, "expected '<Class>/<video>.avi'", raw)
        if folder not in index:
            raise _fail(path, i, f"class {folder!r} is not in classInd.txt", raw)
        parsed = parse_ucf_name(fname)
        if parsed is None:
            raise _fail(path, i, f"video name {fname!r} is outside UCF101's scheme v_<Class>_g<GG>_c<CC>.avi", raw)
        cls, group, _clip = parsed
        if cls.lower() != folder.lower():
            raise _fail(path, i, f"video {fname!r} names class {cls!r} but lies in folder {folder!r}", raw)
        label = index[folder]
        if len(parts) == 2 and (not parts[1].isdigit() or int(parts[1]) != label + 1):
            raise _fail(path, i, f"label {parts[1]!r} disagrees with classInd.txt ({folder} = {label + 1})", raw)
        name = fname[: -len(".avi")]
        if name.lower() in seen:
            raise _fail(path, i, f"video {name!r} already listed on line {seen[name.lower()]}", raw)
        seen[name.lower()] = i
        entries.append(VideoEntry(name=name, path=rel, label=label, group=f"g{group:02d}"))
    if not entries:
        raise SplitFormatError(f"{path}: no videos")
    return entries


def read_ucf101_split(list_dir: str | os.PathLike, split: int = 1) -> VideoSplit:
    """Split ``split`` (1, 2, 3) of ``list_dir`` (the official ``ucfTrainTestlist/`` folder).

    Raises:
        FileNotFoundError: a file of the split is missing (named).
        SplitFormatError: a malformed file, or a video in both the train and the test list.
    """
    if split not in (1, 2, 3):
        raise ValueError(f"UCF101 has splits 1, 2, 3; got {split!r}")
    d = Path(list_dir)
    class_file, train_file, test_file = d / "classInd.txt", d / f"trainlist0{split}.txt", d / f"testlist0{split}.txt"
    classes = read_class_ind(class_file)
    train = read_ucf_list(train_file, classes, labelled=True)
    test = read_ucf_list(test_file, classes, labelled=False)
    both = {e.name.lower() for e in train} & {e.name.lower() for e in test}
    if both:
        raise SplitFormatError(f"{test_file}: {len(both)} video(s) also in {train_file.name}, e.g. {min(both)!r}")
    return VideoSplit("ucf101", split, classes, train, test, [], [str(class_file), str(train_file), str(test_file)])


# ---------------------------------------------------------------------------------------------
# HMDB51
# ---------------------------------------------------------------------------------------------
def parse_hmdb_name(file_name: str, class_name: str) -> dict[str, str] | None:
    """The fields of an HMDB51 video name of class ``class_name`` (``source``, ``body``,
    ``camera``, ``people``, ``view``, ``quality``, ``clip``); None outside the scheme."""
    m = re.match(rf"^(?P<source>{_HMDB_TITLE})_{re.escape(class_name)}{_HMDB_TAGS}", file_name)
    return None if m is None else m.groupdict()


def read_hmdb_split_file(path: str | os.PathLike) -> tuple[str, int, list[tuple[str, int, str]]]:
    """One ``<class>_test_split<k>.txt``: ``(class, k, [(video name without .avi, flag, source), ...])``.

    Raises:
        SplitFormatError: a file name outside ``<class>_test_split<k>.txt``, a line other than
            ``<video>.avi <flag>``, a flag outside 0/1/2, a video name outside the HMDB51 scheme
            for this class, a video listed twice, an empty file.
    """
    p = Path(path)
    m = _HMDB_FILE_RE.match(p.name)
    if m is None:
        raise SplitFormatError(f"{p}: file name is not '<class>_test_split<k>.txt'")
    cls, k = m["cls"], int(m["split"])
    rows: list[tuple[str, int, str]] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(_read_lines(p), start=1):
        parts = raw.split()
        if len(parts) != 2:
            raise _fail(p, i, "expected '<video>.avi <flag>'", raw)
        video, flag = parts
        if flag not in ("0", "1", "2"):
            raise _fail(p, i, f"flag {flag!r} is not 0 (unused), 1 (train) or 2 (test)", raw)
        fields = parse_hmdb_name(video, cls)
        if fields is None:
            raise _fail(p, i, f"video name {video!r} is outside HMDB51's scheme "
                              f"<source>_{cls}_<body>_<cm|nm>_np<N>_<ba|fr|le|ri>_<bad|goo|med>_<clip>.avi", raw)
        name = video[: -len(".avi")]
        if name in seen:
            raise _fail(p, i, f"video {name!r} already listed on line {seen[name]}", raw)
        seen[name] = i
        rows.append((name, int(flag), fields["source"]))
    if not rows:
        raise SplitFormatError(f"{p}: no videos")
    return cls, k, rows


def read_hmdb51_split(split_dir: str | os.PathLike, split: int = 1) -> VideoSplit:
    """Split ``split`` (1, 2, 3) from the ``<class>_test_split<split>.txt`` files of ``split_dir``.

    Classes are the file names' classes sorted alphabetically (label = position). Video paths
    are ``<class>/<video>.avi`` (the layout of the extracted per-class archives).

    Raises:
        FileNotFoundError: no split file for ``split`` in ``split_dir``.
        SplitFormatError: a malformed file, or a video listed under two classes.
    """
    if split not in (1, 2, 3):
        raise ValueError(f"HMDB51 has splits 1, 2, 3; got {split!r}")
    d = Path(split_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"{d}: HMDB51 split folder not found")
    files = sorted(p for p in d.iterdir() if p.name.endswith(f"_test_split{split}.txt"))
    if not files:
        raise FileNotFoundError(f"{d}: no '<class>_test_split{split}.txt' files (HMDB51 split files)")
    parsed = [read_hmdb_split_file(f) for f in files]
    classes = sorted(c for c, _, _ in parsed)
    out = VideoSplit("hmdb51", split, classes, files=[str(f) for f in files])
    owner: dict[str, Path] = {}
    for f, (cls, _k, rows) in zip(files, parsed):
        label = classes.index(cls)
        for name, flag, source in rows:
            if name in owner:
                raise SplitFormatError(f"{f}: video {name!r} is also listed in {owner[name].name}")
            owner[name] = f
            entry = VideoEntry(name=name, path=f"{cls}/{name}.avi", label=label, group=source)
            (out.unused, out.train, out.test)[flag].append(entry)
    return out
