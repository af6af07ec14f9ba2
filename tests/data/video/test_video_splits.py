"""The UCF101 and HMDB51 split readers on the real split files (tests/data/video, LICENSE-NOTE.md)."""

from __future__ import annotations

import numpy as np
import pytest
from _video_files import HMDB, hmdb_lists, ucf_lists

from graphfuse.data.video.splits import (
    EXPECTED_COUNTS,
    SplitFormatError,
    parse_hmdb_name,
    parse_ucf_name,
    read_class_ind,
    read_hmdb51_split,
    read_hmdb_split_file,
    read_ucf101_split,
    read_ucf_list,
)


@pytest.mark.parametrize("crlf", [False, True])
def test_ucf101_split1_real_files(tmp_path, crlf):
    d = ucf_lists(tmp_path, crlf=crlf)
    s = read_ucf101_split(d, 1)
    assert (len(s.train), len(s.test)) == EXPECTED_COUNTS["ucf101"][1] == (9537, 3783)
    assert len(s.classes) == 101 and s.classes[0] == "ApplyEyeMakeup" and s.classes[-1] == "YoYo"
    assert s.classes[36] == "HandstandPushups"  # classInd label 37
    first, last = s.train[0], s.test[-1]
    assert (first.name, first.path, first.label, first.group) == (
        "v_ApplyEyeMakeup_g08_c01", "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", 0, "g08")
    assert (last.name, last.label, last.group) == ("v_YoYo_g07_c04", 100, "g07")
    # Split 1 tests on groups 1-7 and trains on 8-25, every class in both.
    assert {e.group for e in s.test} == {f"g{g:02d}" for g in range(1, 8)}
    assert {e.group for e in s.train} == {f"g{g:02d}" for g in range(8, 26)}
    labels = np.array([e.label for e in s.train])
    assert np.array_equal(np.unique(labels), np.arange(101))
    assert np.bincount(labels)[0] == 101  # ApplyEyeMakeup: 145 clips, 44 of them in testlist01 (groups 1-7)


def test_ucf101_class_ind_format(tmp_path):
    p = tmp_path / "classInd.txt"
    p.write_bytes(b"1 A\r\n2 B\r\n\r\n")
    assert read_class_ind(p) == ["A", "B"]
    for bad, what in [(b"1 A\n3 B\n", "label 3 where 2"), (b"1 A\n2 A\n", "listed twice"),
                      (b"A 1\n", "expected '<label> <ClassName>'"), (b"", "no classes"),
                      (b"1 A\n\n2 B\n", "empty line"), (b"1 A\xff\n", "not ASCII"), (b"1 A/B\n", "characters")]:
        p.write_bytes(bad)
        with pytest.raises(SplitFormatError, match="classInd.txt") as ei:
            read_class_ind(p)
        assert what in str(ei.value)


@pytest.mark.parametrize("line, what", [
    ("Nope/v_Nope_g01_c01.avi 1", "class 'Nope' is not in classInd.txt"),
    ("A/v_A_g1_c01.avi 1", "outside UCF101's scheme"),
    ("A/clip.avi 1", "outside UCF101's scheme"),
    ("A/v_B_g01_c01.avi 1", "names class 'B' but lies in folder 'A'"),
    ("A/v_A_g01_c01.avi 2", "disagrees with classInd.txt"),
    ("A/v_A_g01_c01.avi", "missing the label"),
    ("v_A_g01_c01.avi 1", "expected '<Class>/<video>.avi'"),
    ("A/v_A_g01_c01.avi 1 extra", "expected '<Class>/<video>.avi [<label>]'"),
])
def test_ucf_trainlist_errors_name_file_and_line(tmp_path, line, what):
    p = tmp_path / "trainlist01.txt"
    p.write_text(f"A/v_A_g02_c01.avi 1\n{line}\n")
    with pytest.raises(SplitFormatError) as ei:
        read_ucf_list(p, ["A", "B"], labelled=True)
    assert str(p) in str(ei.value) and "line 2" in str(ei.value) and what in str(ei.value)


def test_ucf_list_case_of_handstand_and_duplicates(tmp_path):
    p = tmp_path / "testlist01.txt"
    # The released files are v_HandStandPushups_*: a list naming them so is the same class.
    p.write_text("HandstandPushups/v_HandStandPushups_g01_c01.avi\n")
    (e,) = read_ucf_list(p, ["HandstandPushups"], labelled=False)
    assert e.label == 0 and e.name == "v_HandStandPushups_g01_c01"
    p.write_text("HandstandPushups/v_HandstandPushups_g01_c01.avi\nHandstandPushups/v_HandStandPushups_g01_c01.avi\n")
    with pytest.raises(SplitFormatError, match="already listed on line 1"):
        read_ucf_list(p, ["HandstandPushups"], labelled=False)
    p.write_text("HandstandPushups/v_HandstandPushups_g01_c01.avi 1\n")
    with pytest.raises(SplitFormatError, match="without a label"):
        read_ucf_list(p, ["HandstandPushups"], labelled=False)


def test_ucf_train_test_overlap_and_missing_file(tmp_path):
    d = tmp_path / "lists"
    d.mkdir()
    (d / "classInd.txt").write_text("1 A\n")
    (d / "trainlist01.txt").write_text("A/v_A_g02_c01.avi 1\n")
    (d / "testlist01.txt").write_text("A/v_A_g02_c01.avi\n")
    with pytest.raises(SplitFormatError, match="also in trainlist01.txt"):
        read_ucf101_split(d, 1)
    with pytest.raises(FileNotFoundError, match="trainlist02.txt"):
        read_ucf101_split(d, 2)


def test_parse_names():
    assert parse_ucf_name("v_YoYo_g25_c05.avi") == ("YoYo", 25, 5)
    assert parse_ucf_name("v_YoYo_g25_c05.mp4") is None
    f = parse_hmdb_name("Brushing_Her_Hair__[_NEW_AUDIO_]_UPDATED!!!!_brush_hair_h_cm_np1_fr_goo_0.avi", "brush_hair")
    assert f == {"source": "Brushing_Her_Hair__[_NEW_AUDIO_]_UPDATED!!!!", "body": "h", "camera": "cm",
                 "people": "np1", "view": "fr", "quality": "goo", "clip": "0"}
    assert parse_hmdb_name("April_09_brush_hair_u_nm_np1_ba_goo_0.avi", "cartwheel") is None


def test_hmdb_flags_file_real():
    cls, k, rows = read_hmdb_split_file(HMDB / "brush_hair_test_split1.txt")
    assert (cls, k, len(rows)) == ("brush_hair", 1, 107)
    flags = np.bincount([f for _, f, _ in rows], minlength=3)
    assert flags.tolist() == [7, 70, 30]  # unused / train / test: the 70/30 protocol
    assert rows[0] == ("April_09_brush_hair_u_nm_np1_ba_goo_0", 1, "April_09")


def test_hmdb51_split1_real_files(tmp_path):
    s = read_hmdb51_split(hmdb_lists(tmp_path), 1)
    assert (len(s.train), len(s.test)) == EXPECTED_COUNTS["hmdb51"][1] == (3570, 1530)
    assert len(s.unused) == 1666 and len(s.classes) == 51
    assert s.classes == sorted(s.classes) and s.classes[0] == "brush_hair" and s.classes[-1] == "wave"
    per_class = np.bincount([e.label for e in s.train], minlength=51)
    assert (per_class == 70).all() and (np.bincount([e.label for e in s.test], minlength=51) == 30).all()
    assert s.train[0].path == "brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi"
    with pytest.raises(FileNotFoundError, match="_test_split2.txt"):
        read_hmdb51_split(hmdb_lists(tmp_path / "x"), 2)


@pytest.mark.parametrize("content, what", [
    (b"April_09_brush_hair_u_nm_np1_ba_goo_0.avi 3 \n", "flag '3'"),
    (b"April_09_brush_hair_u_nm_np1_ba_goo_0.avi\n", "expected '<video>.avi <flag>'"),
    (b"April_09_cartwheel_u_nm_np1_ba_goo_0.avi 1 \n", "outside HMDB51's scheme"),
    (b"April_09_brush_hair_u_nm_np1_xx_goo_0.avi 1 \n", "outside HMDB51's scheme"),
    (b"A_brush_hair_u_nm_np1_ba_goo_0.avi 1 \nA_brush_hair_u_nm_np1_ba_goo_0.avi 2 \n", "already listed"),
    (b"", "no videos"),
])
def test_hmdb_file_errors(tmp_path, content, what):
    p = tmp_path / "brush_hair_test_split1.txt"
    p.write_bytes(content)
    with pytest.raises(SplitFormatError) as ei:
        read_hmdb_split_file(p)
    assert str(p) in str(ei.value) and what in str(ei.value)


def test_hmdb_bad_file_name_and_video_in_two_classes(tmp_path):
    p = tmp_path / "brush_hair_split1.txt"
    p.write_text("A_brush_hair_u_nm_np1_ba_goo_0.avi 1 \n")
    with pytest.raises(SplitFormatError, match="<class>_test_split<k>.txt"):
        read_hmdb_split_file(p)
    d = tmp_path / "s"
    d.mkdir()
    (d / "brush_hair_test_split1.txt").write_text("A_brush_hair_u_nm_np1_ba_goo_0.avi 1 \n")
    (d / "hair_test_split1.txt").write_text("A_brush_hair_u_nm_np1_ba_goo_0.avi 2 \n")  # source "A_brush", class "hair"
    with pytest.raises(SplitFormatError, match="hair_test_split1.txt: video 'A_brush_hair_u_nm_np1_ba_goo_0' is also "
                                               "listed in brush_hair_test_split1.txt"):
        read_hmdb51_split(d, 1)
