"""Paths of the real split files copied into this folder (see LICENSE-NOTE.md) and helpers to
unpack them into a temporary folder in their original layout."""

from __future__ import annotations

import gzip
import tarfile
from pathlib import Path

DATA = Path(__file__).resolve().parent
UCF = DATA / "ucf101"
HMDB = DATA / "hmdb51"


def ucf_lists(dest: Path, crlf: bool = False) -> Path:
    """``dest/ucfTrainTestlist/{classInd,trainlist01,testlist01}.txt`` (split 1), LF or CRLF."""
    d = dest / "ucfTrainTestlist"
    d.mkdir(parents=True, exist_ok=True)
    files = {"classInd.txt": (UCF / "classInd.txt").read_bytes(),
             "trainlist01.txt": gzip.decompress((UCF / "trainlist01.txt.gz").read_bytes()),
             "testlist01.txt": gzip.decompress((UCF / "testlist01.txt.gz").read_bytes())}
    for name, data in files.items():
        (d / name).write_bytes(data.replace(b"\n", b"\r\n") if crlf else data)
    return d


def hmdb_lists(dest: Path) -> Path:
    """``dest/testTrainMulti_7030_splits/<class>_test_split1.txt`` (51 files)."""
    with tarfile.open(HMDB / "split1.tar.gz") as tar:
        tar.extractall(dest, filter="data")
    return dest / "testTrainMulti_7030_splits"
