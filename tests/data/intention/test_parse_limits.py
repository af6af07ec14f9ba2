"""Hostile or broken annotation files: bounded field sizes, refused DTDs, typed one-line errors.

Every case builds a tiny file, so that even a reader without the limits would allocate at most
tens of megabytes (a 1 MB attribute over a handful of cells) and finish in well under a second.
"""

from pathlib import Path

import numpy as np
import pytest

from graphfuse.cli import main
from graphfuse.data.intention import (read_jaad_annotations, read_jaad_attributes, read_jaad_traffic,
                                      read_jaad_vehicle, read_pie_annotations, read_pie_attributes,
                                      read_pie_obd)
from graphfuse.data.intention import poses as P
from graphfuse.data.intention import xml as gx

DATA = Path(__file__).parent / "data"
JAAD_ANN = DATA / "jaad" / "annotations" / "video_0001.xml"
PIE_ANN = DATA / "pie" / "annotations" / "set05" / "video_0002_annt.xml"
MB = 1_000_000


def _write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def _vehicle(tmp_path: Path, action: str = "moving_slow", frame: str = "1", head: str = "") -> Path:
    return _write(tmp_path / "video_0001_vehicle.xml",
                  f'{head}<vehicle_info><frame action="stopped" id="0" />'
                  f'<frame action="{action}" id="{frame}" /></vehicle_info>')


@pytest.fixture
def no_huge_str_arrays(monkeypatch):
    """Fail if a reader builds a str array with huge cells (the files here are tiny, so even an
    unbounded reader allocates only tens of MB before this fires)."""
    real = np.asarray

    def guarded(a, *args, **kwargs):
        out = real(a, *args, **kwargs)
        if out.dtype.kind == "U":
            limit = 4 * getattr(gx, "MAX_FIELD_CHARS", 64)
            assert out.dtype.itemsize <= limit, f"str array of {out.dtype} built"
        return out

    monkeypatch.setattr(np, "asarray", guarded)


# ---------------------------------------------------------------------------------------------
# Finding 5: unbounded attribute sizes


def test_field_limit_is_documented_and_fits_real_values():
    assert 32 <= gx.MAX_FIELD_CHARS <= 256


def test_huge_attribute_in_jaad_vehicle(tmp_path, no_huge_str_arrays):
    path = _vehicle(tmp_path, action="x" * MB)
    with pytest.raises(ValueError, match=rf"{path}: .*'action'.* {MB} characters.*at most"):
        read_jaad_vehicle(path)


def test_attribute_at_the_limit_reaches_the_label_check(tmp_path):
    path = _vehicle(tmp_path, action="x" * gx.MAX_FIELD_CHARS)
    with pytest.raises(ValueError, match="unknown label"):  # not the length error
        read_jaad_vehicle(path)
    with pytest.raises(ValueError, match="characters"):
        read_jaad_vehicle(_vehicle(tmp_path, action="x" * (gx.MAX_FIELD_CHARS + 1)))


def test_huge_attribute_in_pie_obd(tmp_path, no_huge_str_arrays):
    path = _write(tmp_path / "video_0002_obd.xml",
                  '<vehicle_info><frame GPS_speed="6.1" OBD_speed="6.0" id="0" />'
                  f'<frame GPS_speed="{"1" * MB}" OBD_speed="6.0" id="1" /></vehicle_info>')
    with pytest.raises(ValueError, match=rf"{path}: obd: .*'GPS_speed'.* {MB} characters"):
        read_pie_obd(path)


def _jaad_annotations(tmp_path: Path, xtl: str = "1", occlusion: str = "none") -> Path:
    """A two-box JAAD annotation file (the real one has 569 boxes in a track: a huge value there
    would make an unbounded reader allocate gigabytes)."""
    box = ('<box frame="{f}" xtl="{x}" ytl="2" xbr="30" ybr="40" outside="0" occluded="0">'
           '<attribute name="id">0_1_3b</attribute><attribute name="old_id">ped1</attribute>'
           '<attribute name="occlusion">{o}</attribute></box>')
    return _write(tmp_path / "video_0001.xml",
                  "<annotations><meta><task><size>10</size><original_size><width>1920</width>"
                  "<height>1080</height></original_size></task></meta><track label=\"ped\">"
                  + box.format(f=0, x=1, o="none") + box.format(f=1, x=xtl, o=occlusion)
                  + "</track></annotations>")


def test_huge_box_attribute_and_child_text_in_annotations(tmp_path, no_huge_str_arrays):
    assert len(read_jaad_annotations(_jaad_annotations(tmp_path)).tracks["0_1_3b"].frames) == 2
    bad = _jaad_annotations(tmp_path, xtl="4" * MB)
    with pytest.raises(ValueError, match=rf"{bad}: track '0_1_3b': .*'xtl'.* {MB} characters"):
        read_jaad_annotations(bad)
    bad = _jaad_annotations(tmp_path, occlusion="n" * MB)
    with pytest.raises(ValueError, match=rf"{bad}: .*'occlusion'.* {MB} characters"):
        read_jaad_annotations(bad)


def test_huge_values_in_attribute_files_and_texts(tmp_path):
    pie = _write(tmp_path / "pie_attributes.xml",
                 f'<ped_attributes><pedestrian id="1_1_1" age="{"a" * MB}" /></ped_attributes>')
    with pytest.raises(ValueError, match=rf"{pie}: pedestrian '1_1_1': .*'age'.* {MB} characters"):
        read_pie_attributes(pie)
    jaad = _write(tmp_path / "jaad_attributes.xml",
                  f'<ped_attributes><pedestrian id="{"0" * MB}" age="adult" /></ped_attributes>')
    with pytest.raises(ValueError, match=rf"{jaad}: .*'id'.* {MB} characters"):
        read_jaad_attributes(jaad)
    traffic = _write(tmp_path / "traffic.xml",
                     f"<traffic_scene><road_type>{'s' * MB}</road_type></traffic_scene>")
    with pytest.raises(ValueError, match=rf"{traffic}: .*road_type.* {MB} characters"):
        read_jaad_traffic(traffic)


def test_error_messages_stay_short(tmp_path):
    path = _vehicle(tmp_path, action="x" * MB)
    with pytest.raises(ValueError) as err:
        read_jaad_vehicle(path)
    assert len(str(err.value)) < 500


@pytest.mark.parametrize("head, what", [
    ('<!DOCTYPE v [<!ENTITY a "moving_slow">]>', "DTD"),
    ('<!DOCTYPE v [<!ENTITY a SYSTEM "file:///etc/hostname">]>', "DTD"),
    ('<!DOCTYPE vehicle_info SYSTEM "http://example.invalid/v.dtd">', "DTD"),
])
def test_dtd_and_entities_refused(tmp_path, head, what):
    path = _vehicle(tmp_path, action="&a;" if "ENTITY" in head else "moving_slow", head=head)
    with pytest.raises(ValueError, match=rf"{path}: .*{what}.*refused"):
        read_jaad_vehicle(path)


def test_billion_laughs_refused_quickly(tmp_path):
    ents = '<!ENTITY a0 "lol">' + "".join(
        f'<!ENTITY a{i} "{("&a%d;" % (i - 1)) * 10}">' for i in range(1, 10))
    path = _vehicle(tmp_path, action="&a9;", head=f"<!DOCTYPE v [{ents}]>")
    with pytest.raises(ValueError, match=rf"{path}: XML with a DTD .*refused"):
        read_jaad_vehicle(path)


def test_malformed_and_non_utf8_xml_name_the_file(tmp_path):
    path = _write(tmp_path / "v.xml", b'<vehicle_info><frame action="\xff\xfe" id="0" /></vehicle_info>')
    with pytest.raises(ValueError, match=rf"{path}: malformed XML"):
        read_jaad_vehicle(path)


# ---------------------------------------------------------------------------------------------
# Finding 6: typed numbers, one-line errors naming the file


@pytest.mark.parametrize("reader, src, old, new, match", [
    (read_jaad_annotations, JAAD_ANN, "<width>1920</width>", "<width>2.5</width>",
     r"<\./meta/task/original_size/width> is '2\.5', not an integer"),
    (read_jaad_annotations, JAAD_ANN, "<height>1080</height>", "<height>99999999999999999999</height>",
     r"original_size/height> is '99999999999999999999', outside the int64 range"),
    (read_pie_annotations, PIE_ANN, "<size>", "<size>1.5e3", r"<\./meta/task/size> is '1\.5e3"),
    # Negative frame counts and non-positive frame sizes (fuzz suite): refused, naming the element.
    (read_pie_annotations, PIE_ANN, "<size>9000</size>", "<size>-1</size>",
     r"<\./meta/task/size> is '-1', outside the valid range 0\.\.2147483647"),
    (read_pie_annotations, PIE_ANN, "<size>9000</size>", "<size>2147483648</size>",
     r"<\./meta/task/size> is '2147483648', outside the valid range"),
    (read_pie_annotations, PIE_ANN, "<width>1920</width>", "<width>-1920</width>",
     r"<\./meta/task/original_size/width> is '-1920', outside the valid range 1\.\."),
    (read_pie_annotations, PIE_ANN, "<height>1080</height>", "<height>0</height>",
     r"<\./meta/task/original_size/height> is '0', outside the valid range 1\.\."),
    (read_jaad_annotations, JAAD_ANN, "<size>600</size>", "<size>-1</size>",
     r"<\./meta/task/size> is '-1', outside the valid range 0\.\."),
    (read_jaad_annotations, JAAD_ANN, "<width>1920</width>", "<width>0</width>",
     r"<\./meta/task/original_size/width> is '0', outside the valid range 1\.\."),
    (read_jaad_annotations, JAAD_ANN, "<height>1080</height>", "<height>-1080</height>",
     r"<\./meta/task/original_size/height> is '-1080', outside the valid range 1\.\."),
])
def test_meta_integers(tmp_path, reader, src, old, new, match):
    text = src.read_text()
    assert old in text
    path = _write(tmp_path / src.name, text.replace(old, new, 1))
    with pytest.raises(ValueError, match=rf"{path}: .*{match}"):
        reader(path)


def test_twenty_digit_integers(tmp_path):
    path = _vehicle(tmp_path, frame="9" * 20)
    with pytest.raises(ValueError, match=rf"{path}: vehicle: .*'{'9' * 20}' .*outside the int64 range"):
        read_jaad_vehicle(path)
    with pytest.raises(ValueError, match=r"vehicle: .*'2\.5' .*not an integer"):
        read_jaad_vehicle(_vehicle(tmp_path, frame="2.5"))
    attrs = _write(tmp_path / "a.xml",
                   f'<ped_attributes><pedestrian id="1_1_1" crossing_point="{"9" * 20}" /></ped_attributes>')
    with pytest.raises(ValueError, match=rf"{attrs}: pedestrian '1_1_1': .*crossing_point.*int64"):
        read_pie_attributes(attrs)


def test_int64_bounds_still_accepted(tmp_path):
    big = str(np.iinfo(np.int64).max)
    frames, _ = read_jaad_vehicle(_vehicle(tmp_path, frame=big))
    assert frames.tolist() == [0, np.iinfo(np.int64).max]


def _deep_json(n: int = 100_000) -> str:
    return "[" * n + "]" * n


def test_deep_json_pose_files(tmp_path):
    coco = _write(tmp_path / "video_0001.json", _deep_json())
    with pytest.raises(ValueError, match=rf"{coco}: .*nesting too deep"):
        P.read_coco_results(coco)
    op = _write(tmp_path / "x_000000000000_keypoints.json", '{"people": ' + _deep_json() + "}")
    with pytest.raises(ValueError, match=rf"{op}: .*nesting too deep"):
        P.read_openpose_frame(op)


def test_non_utf8_json_pose_files(tmp_path):
    coco = _write(tmp_path / "video_0001.json", b'[{"image_id": "\xff"}]')
    with pytest.raises(ValueError, match=rf"{coco}: not UTF-8 .*0xff at byte offset 15"):
        P.read_coco_results(coco)


def test_cli_prepare_jaad_reports_bad_width_in_one_line(jaad_root, tmp_path, capsys):
    root = jaad_root
    ann = root / "annotations" / "video_0001.xml"
    ann.write_text(ann.read_text().replace("<width>1920</width>", "<width>2.5</width>", 1))
    rc = main(["prepare", "jaad", "--root", str(root), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"graphfuse prepare: error: {ann}: ") and "'2.5', not an integer" in err
