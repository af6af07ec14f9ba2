"""Fuzz the PIE and JAAD annotation readers (all eight XML files of a video).

Property: each reader returns finite numbers (float64, as read), positive frame sizes and
non-negative frame counts, or raises a ``ValueError`` / ``FileNotFoundError`` naming the file;
PIE OBD values read and checked as preparation does (:func:`graphfuse.data.checks.check_obd`)
are within their documented bounds. DTDs and
entities never expand: a billion-laughs document is refused quickly, and an external entity
never brings another file's content into the output.
"""

from __future__ import annotations

import pytest
from _fuzz import check_numbers, fresh_path, fuzz_settings, mutate, mutations, reads_or_refuses, sub, whole
from _seeds import XML_FILES, xml
from hypothesis import example, given

from graphfuse.data.checks import OBD_FIELD_BOUNDS, check_obd, resolve_bounds
from graphfuse.data.intention import jaad, pie


def _read_obd_as_prepared(path):
    """``read_pie_obd`` then the OBD check of ``prepare_intention`` (plausibility bounds)."""
    obd = pie.read_pie_obd(path)
    check_obd(obd, path)
    return obd


def _check_obd_bounds(obd) -> None:
    bounds = resolve_bounds()
    for key, values in obd.items():
        if key in OBD_FIELD_BOUNDS:
            lo, hi = bounds[OBD_FIELD_BOUNDS[key]]
            assert ((values >= lo) & (values <= hi)).all(), f"{key} outside {lo}..{hi}: {values}"

READERS = {
    "pie_annotations": pie.read_pie_annotations,
    "pie_attributes": pie.read_pie_attributes,
    "pie_obd": _read_obd_as_prepared,
    "jaad_annotations": jaad.read_jaad_annotations,
    "jaad_attributes": jaad.read_jaad_attributes,
    "jaad_appearance": jaad.read_jaad_appearance,
    "jaad_traffic": jaad.read_jaad_traffic,
    "jaad_vehicle": jaad.read_jaad_vehicle,
}
COUNTS = {"num_frames": (0, 2**31 - 1), "width": (1, 2**31 - 1), "height": (1, 2**31 - 1)}

CANARY = b"CANARYSECRET"  # the content of a local file an external entity points at
LOL = (b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
       + b"".join(b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
                  for i in range(1, 10)) + b"]>\n")
XXE = b'<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY xxe SYSTEM "@CANARY@">]>\n'
DTD = b'<?xml version="1.0"?>\n<!DOCTYPE x SYSTEM "@CANARY@">\n'
INTERNAL = b'<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY w "walking">]>\n'
FIVE_MB, TWO_HUNDRED_KB = 5 << 20, 200 << 10


def _attr(name: bytes) -> bytes:
    return rb'(?<= ' + name + rb'=")[^"]*'


def _text(tag: bytes) -> bytes:
    return rb"(?<=<" + tag + rb">)[^<]*"


#: Mutations of the issue for every reader: empty, truncated, wrong encodings, deep nesting,
#: DTDs and entities (billion laughs, external entity, external DTD), huge attributes.
COMMON = [
    [("empty",)],
    [("truncate", 40)],
    [("encode", "utf-16")],
    [("encode", "latin-1")],
    [("insert", 1, b"\xff\xfe")],
    [whole(b"<a>" * 100_000 + b"</a>" * 100_000)],
    [sub(rb"^", LOL), sub(rb'(?<==")[^"]*', b"&lol9;")],
    [sub(rb"^", XXE), sub(rb'(?<==")[^"]*', b"&xxe;")],
    [sub(rb"^", DTD)],
    [sub(rb"^", INTERNAL), sub(rb'(?<==")[^"]*', b"&w;")],
    [sub(rb'(?<==")[^"]*', b"1" * FIVE_MB)],
    [sub(rb'(?<==")[^"]*', b"A" * TWO_HUNDRED_KB)],
    [sub(rb'="[^"]*"', b'="' + b"9" * TWO_HUNDRED_KB + b'"', 0)],
]
#: Reader-specific ones: non-finite / huge / float32-overflowing numbers, negative counts,
#: 20-digit integers, non-integers where integers go, entities in returned text.
SPECIFIC = {
    "pie_annotations": [
        [sub(_attr(b"xtl"), v)] for v in (b"1e39", b"nan", b"1e400", b"1e30", b"-inf")
    ] + [
        [sub(_attr(b"frame"), b"99999999999999999999")], [sub(_attr(b"frame"), b"2.5")],
        [sub(_attr(b"outside"), b"99999999999999999999")],
        [sub(_text(b"size"), b"-1")], [sub(_text(b"size"), b"99999999999999999999")],
        [sub(_text(b"size"), b"2.5")], [sub(_text(b"width"), b"2.5")], [sub(_text(b"width"), b"-1920")],
        [sub(_text(b"height"), b"0")], [sub(_text(b"width"), b" 1920 ")],
        [sub(rb"^", XXE), sub(rb'(?<=<attribute name="id">)[^<]*', b"&xxe;")],
        [sub(rb'(?<=<attribute name="id">)[^<]*', b"A" * FIVE_MB)],
    ],
    "pie_attributes": [
        [sub(_attr(b"intention_prob"), v)] for v in (b"nan", b"1e400", b"inf", b"5", b"-1e39")
    ] + [
        [sub(_attr(b"num_lanes"), b"99999999999999999999")],
        [sub(_attr(b"crossing_point"), b"-99999999999999999999")],
        [sub(_attr(b"num_lanes"), b"2.5")],
        [sub(rb"^", XXE), sub(_attr(b"id"), b"&xxe;")],
    ],
    "pie_obd": [
        [sub(_attr(b"OBD_speed"), v)] for v in (b"nan", b"1e400", b"1e39", b"1e30", b"-inf", b"NaN")
    ] + [
        [sub(_attr(b"latitude"), b"1e39", 0)], [sub(_attr(b"accX"), b"1" * FIVE_MB)],
        [sub(_attr(b"accX"), b"1" * TWO_HUNDRED_KB)],
        [sub(_attr(b"id"), b"99999999999999999999")], [sub(_attr(b"id"), b"2.5")], [sub(_attr(b"id"), b"-1")],
    ],
    "jaad_annotations": [
        [sub(_attr(b"ybr"), v)] for v in (b"1e39", b"nan", b"1e400", b"1e30")
    ] + [
        [sub(_attr(b"frame"), b"99999999999999999999")], [sub(_text(b"size"), b"-1")],
        [sub(_text(b"size"), b"99999999999999999999")], [sub(_text(b"width"), b"2.5")],
        [sub(_text(b"height"), b"-1080")],
        [sub(rb"^", XXE), sub(_text(b"weather"), b"&xxe;")],
        [sub(rb"^", LOL), sub(_text(b"weather"), b"&lol9;")],
        [sub(_text(b"weather"), b"A" * FIVE_MB)],
    ],
    "jaad_attributes": [
        [sub(_attr(b"decision_point"), b"99999999999999999999")], [sub(_attr(b"num_lanes"), b"-1")],
        [sub(_attr(b"group_size"), b"2.5")], [sub(_attr(b"crossing"), b"nan")],
        [sub(rb"^", XXE), sub(_attr(b"old_id"), b"&xxe;")],
    ],
    "jaad_appearance": [
        [sub(_attr(b"frame"), b"99999999999999999999")], [sub(_attr(b"frame"), b"1e39")],
        [sub(_attr(b"baby"), b"nan")], [sub(_attr(b"cap"), b"-99999999999999999999")],
    ],
    "jaad_traffic": [
        [sub(_attr(b"id"), b"99999999999999999999")], [sub(_attr(b"ped_crossing"), b"2.5")],
        [sub(_text(b"road_type"), b"&lol9;"), sub(rb"^", LOL)],
    ],
    "jaad_vehicle": [
        [sub(_attr(b"id"), b"99999999999999999999")], [sub(_attr(b"id"), b"nan")],
        [sub(_attr(b"action"), b"&xxe;"), sub(rb"^", XXE)],
    ],
}


def _property(reader: str, directory, ops) -> None:
    canary = directory / "canary.txt"
    if not canary.exists():
        canary.write_bytes(CANARY)
    path = fresh_path(directory, XML_FILES[reader][1])
    path.write_bytes(mutate(xml(reader), ops).replace(b"@CANARY@", canary.as_uri().encode()))
    try:
        out = reads_or_refuses(lambda: READERS[reader](path), path)
        if out is not None:
            check_numbers(out, ints=COUNTS)
            if reader == "pie_obd":
                _check_obd_bounds(out)
            assert CANARY.decode() not in repr(out), "an external entity was resolved"
    finally:
        path.unlink()


@pytest.mark.parametrize("reader", sorted(READERS))
def test_seed_is_valid(reader, fuzz_dir):
    path = fresh_path(fuzz_dir, XML_FILES[reader][1])
    path.write_bytes(xml(reader))
    out = READERS[reader](path)
    check_numbers(out, ints=COUNTS)
    assert out


def _fuzz_test(reader: str, max_examples: int):
    @fuzz_settings(max_examples=max_examples)
    @given(ops=mutations())
    def test(fuzz_dir, ops):
        _property(reader, fuzz_dir, ops)

    for ops in COMMON + SPECIFIC[reader]:
        test = example(ops=ops)(test)
    test.__name__ = f"test_{reader}"
    return test


# One test per reader (a failure names the reader; examples are budgeted per reader).
test_pie_annotations = _fuzz_test("pie_annotations", 400)
test_pie_attributes = _fuzz_test("pie_attributes", 300)
test_pie_obd = _fuzz_test("pie_obd", 300)
test_jaad_annotations = _fuzz_test("jaad_annotations", 400)
test_jaad_attributes = _fuzz_test("jaad_attributes", 300)
test_jaad_appearance = _fuzz_test("jaad_appearance", 200)
test_jaad_traffic = _fuzz_test("jaad_traffic", 300)
test_jaad_vehicle = _fuzz_test("jaad_vehicle", 300)
