"""JSON and pickle inputs users can hand us: deep nesting and non-UTF-8 bytes give one-line
ValueErrors naming the file (never RecursionError / UnicodeDecodeError without a path)."""

import pickle

import pytest

from graphfuse import io as gf_io
from graphfuse.data.intention.dataset import load_intention_meta
from graphfuse.data.ntu.official import read_official_labels
from graphfuse.data.ntu.dataset import load_meta

DEEP = "[" * 100_000 + "]" * 100_000


def test_read_json_errors_name_the_file(tmp_path):
    p = tmp_path / "x.json"
    p.write_text(DEEP)
    with pytest.raises(ValueError, match=rf"^{p}: JSON nesting too deep"):
        gf_io.read_json(p)
    p.write_bytes(b'{"a": "caf\xe9"}')
    with pytest.raises(ValueError, match=rf"^{p}: not UTF-8 text: invalid byte 0xe9 at byte offset 10$"):
        gf_io.read_json(p)
    p.write_text('{"a": }')
    with pytest.raises(ValueError, match=rf"^{p}: malformed JSON \(Expecting value: line 1 column 7"):
        gf_io.read_json(p)
    p.write_text('{"a": [1, {"b": null}]}')
    assert gf_io.read_json(p) == {"a": [1, {"b": None}]}
    assert gf_io.read_json_dict(p) == {"a": [1, {"b": None}]}
    p.write_text(DEEP)
    assert gf_io.read_json_dict(p) is None  # unreadable summary: None, as for malformed JSON


@pytest.mark.parametrize("loader", [load_intention_meta, load_meta])
def test_meta_json_deep_and_non_utf8(tmp_path, loader):
    meta = tmp_path / "meta.json"
    meta.write_text('{"format": ' + DEEP + "}")
    with pytest.raises(ValueError, match=rf"{meta}: .*nesting too deep"):
        loader(tmp_path)
    meta.write_bytes(b'{"format": "\xff"}')
    with pytest.raises(ValueError, match=rf"{meta}: .*0xff at byte offset 12"):
        loader(tmp_path)


def test_official_label_pickle_with_deep_names(tmp_path):
    # A pickle nesting 100000 lists loads without recursion (the unpickler is iterative) but
    # turning its names into strings would recurse: it must be a ValueError naming the file.
    n = 100_000
    data = b"\x80\x02" + b"]" * n + b"a" * (n - 1) + b"]K\x01a\x86."
    path = tmp_path / "train_label.pkl"
    path.write_bytes(data)
    names, _ = pickle.loads(data)
    assert isinstance(names, list)
    with pytest.raises(ValueError, match=rf"{path}: .*sample name 0 is a list, not a string"):
        read_official_labels(path)


def test_cli_reports_bad_label_pickle_in_one_line(tmp_path, capsys):
    from graphfuse.cli import main

    src = tmp_path / "official"
    src.mkdir()
    for part in ("train", "val"):
        (src / f"{part}_data_joint.npy").write_bytes(b"")
        (src / f"{part}_label.pkl").write_bytes(b"\x80\x02]")  # truncated pickle
    rc = main(["prepare", "ntu-official", "--root", str(src), "--out", str(tmp_path / "out"),
               "--benchmark", "ntu60-xsub"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"graphfuse prepare: error: {src / 'train_label.pkl'}: ")
