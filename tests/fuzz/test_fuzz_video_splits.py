"""Fuzz the UCF101 / HMDB51 split-file readers (graphfuse.data.video.splits).

Property: a mutated ``classInd.txt``, ``trainlist01.txt``, ``testlist01.txt`` or
``<class>_test_split1.txt`` either reads into entries whose labels lie in ``[0, classes)``,
whose names are unique and follow the dataset's naming scheme, or raises one ``ValueError``
(``SplitFormatError``) naming the file. Seeds: the first lines of the real files in
``tests/data/video`` (CRLF, as the official UCF101 archive; LF for HMDB51 as copied).
"""

from __future__ import annotations

import functools
import gzip
from pathlib import Path

from _fuzz import fresh_path, fuzz_settings, mutate, mutations, reads_or_refuses, sub, whole
from hypothesis import example, given

from graphfuse.data.video.splits import (
    parse_hmdb_name,
    parse_ucf_name,
    read_class_ind,
    read_hmdb_split_file,
    read_ucf_list,
)

VIDEO = Path(__file__).resolve().parents[1] / "data" / "video"


@functools.cache
def _seeds() -> dict[str, bytes]:
    class_ind = (VIDEO / "ucf101" / "classInd.txt").read_bytes().replace(b"\n", b"\r\n")
    train = gzip.decompress((VIDEO / "ucf101" / "trainlist01.txt.gz").read_bytes()).split(b"\n")
    test = gzip.decompress((VIDEO / "ucf101" / "testlist01.txt.gz").read_bytes()).split(b"\n")
    # a few lines of the first and of a later class, so labels 1 and 37 both appear
    train_seed = b"\r\n".join(train[:3] + [ln for ln in train if ln.startswith(b"HandstandPushups/")][:2]) + b"\r\n"
    test_seed = b"\r\n".join(test[:3]) + b"\r\n"
    hmdb = b"\n".join((VIDEO / "hmdb51" / "brush_hair_test_split1.txt").read_bytes().split(b"\n")[:6]) + b"\n"
    return {"classInd.txt": class_ind, "trainlist01.txt": train_seed, "testlist01.txt": test_seed,
            "brush_hair_test_split1.txt": hmdb}


def _classes() -> list[str]:
    return read_class_ind(VIDEO / "ucf101" / "classInd.txt")


def _check_entries(entries, num_classes: int, ucf: bool) -> None:
    names = [e.name for e in entries]
    assert len({n.lower() for n in names}) == len(names), "duplicate videos accepted"
    for e in entries:
        assert 0 <= e.label < num_classes, f"label {e.label} outside [0, {num_classes})"
        if ucf:
            assert parse_ucf_name(e.path.split("/")[1]) is not None


def _hmdb_path(fuzz_dir: Path) -> Path:
    """A fresh folder holding ``brush_hair_test_split1.txt`` (the reader takes the class from the name)."""
    d = fresh_path(fuzz_dir, "hmdb")
    d.mkdir()
    return d / "brush_hair_test_split1.txt"


def test_seeds_are_valid(fuzz_dir):
    s = _seeds()
    for name, data in s.items():
        p = _hmdb_path(fuzz_dir) if name.startswith("brush_hair") else fresh_path(fuzz_dir, name)
        p.write_bytes(data)
        if name == "classInd.txt":
            assert len(read_class_ind(p)) == 101
        elif name.startswith("brush_hair"):
            assert len(read_hmdb_split_file(p)[2]) == 6
        else:
            assert len(read_ucf_list(p, _classes(), labelled=name.startswith("train"))) >= 3


@fuzz_settings(max_examples=250)
@given(ops=mutations())
@example(ops=[("number", 0, b"0")])
@example(ops=[("number", 2, b"99999999999999999999")])
@example(ops=[("encode", "utf-16")])
@example(ops=[("encode", "latin-1")])
@example(ops=[("insert", 0, b"\x00")])
@example(ops=[whole(b"1 A\r\n1 B\r\n")])
@example(ops=[("empty",)])
def test_class_ind(fuzz_dir, ops):
    path = fresh_path(fuzz_dir, "classInd.txt")
    path.write_bytes(mutate(_seeds()["classInd.txt"], ops))
    out = reads_or_refuses(lambda: read_class_ind(path), path)
    if out is not None:
        assert len(out) == len(set(out)) >= 1
    path.unlink()


@fuzz_settings(max_examples=300)
@given(ops=mutations())
@example(ops=[("number", 2, b"102")])  # label outside classInd
@example(ops=[("number", 0, b"-1")])
@example(ops=[sub(rb"ApplyEyeMakeup/", b"NoSuchClass/")])
@example(ops=[sub(rb"_g08_", b"_g8_")])
@example(ops=[sub(rb"\.avi", b".mp4")])
@example(ops=[sub(rb" 1\r\n", b"\r\n")])
@example(ops=[("duplicate", 0, 50)])
@example(ops=[("big", 10, 1 << 20, b"9")])
def test_ucf_trainlist(fuzz_dir, ops):
    path = fresh_path(fuzz_dir, "trainlist01.txt")
    path.write_bytes(mutate(_seeds()["trainlist01.txt"], ops))
    classes = _classes()
    out = reads_or_refuses(lambda: read_ucf_list(path, classes, labelled=True), path)
    if out is not None:
        _check_entries(out, len(classes), ucf=True)
    path.unlink()


@fuzz_settings(max_examples=150)
@given(ops=mutations())
@example(ops=[sub(rb"\.avi", b".avi 5")])
@example(ops=[("truncate", 20)])
def test_ucf_testlist(fuzz_dir, ops):
    path = fresh_path(fuzz_dir, "testlist01.txt")
    path.write_bytes(mutate(_seeds()["testlist01.txt"], ops))
    classes = _classes()
    out = reads_or_refuses(lambda: read_ucf_list(path, classes, labelled=None), path)
    if out is not None:
        _check_entries(out, len(classes), ucf=True)
    path.unlink()


@fuzz_settings(max_examples=250)
@given(ops=mutations())
@example(ops=[("number", 0, b"3")])
@example(ops=[sub(rb" 1 ", b" 9 ")])
@example(ops=[sub(rb"_brush_hair_", b"_cartwheel_")])
@example(ops=[sub(rb"_goo_", b"_great_")])
@example(ops=[sub(rb"\n", b"\r\n", 0)])  # CRLF reads the same
@example(ops=[("encode", "utf-8-sig")])
def test_hmdb_split_file(fuzz_dir, ops):
    path = _hmdb_path(fuzz_dir)
    path.write_bytes(mutate(_seeds()["brush_hair_test_split1.txt"], ops))
    out = reads_or_refuses(lambda: read_hmdb_split_file(path), path.parent)  # the message names the folder too
    if out is not None:
        cls, k, rows = out
        assert cls == "brush_hair" and k == 1
        assert len({r[0] for r in rows}) == len(rows)
        for name, flag, _source in rows:
            assert flag in (0, 1, 2) and parse_hmdb_name(name + ".avi", cls) is not None
    path.unlink()
