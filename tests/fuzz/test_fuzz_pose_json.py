"""Fuzz the pose JSON readers: COCO keypoint results (AlphaPose / MMPose) and OpenPose frames.

Property: the detections come back with finite keypoints in their stored dtype (float32: a
``1e39`` coordinate must not become ``inf``) and finite boxes, or the reader raises a
``ValueError`` / ``FileNotFoundError`` naming the file (malformed, deeply nested or non-UTF-8
JSON included).
"""

from __future__ import annotations

from _fuzz import check_numbers, fresh_path, fuzz_settings, mutate, mutations, reads_or_refuses, sub, whole
from _seeds import coco, openpose
from hypothesis import example, given

from graphfuse.data.intention.poses import read_coco_results, read_openpose_frame, read_openpose_video

FIRST_KP = rb'(?<="keypoints":\[)[^,\]]*'
FIRST_OP = rb'(?<="pose_keypoints_2d": \[)[^,\]]*'
DEEP_LIST = b"[" * 100_000 + b"]" * 100_000
DEEP_DICT = b'{"a":' * 50_000 + b"1" + b"}" * 50_000

#: Mutations of the issue: 1e39 / 1e30 / non-finite keypoints, huge and 20-digit numbers,
#: deeply nested JSON, non-UTF-8 and UTF-16 files, empty and truncated files.
COMMON = [
    [("empty",)],
    [("truncate", 100)],
    [whole(DEEP_LIST)],
    [whole(DEEP_DICT)],
    [("encode", "utf-16")],
    [("encode", "latin-1")],
    [("encode", "utf-8-sig")],  # a BOM: tolerable either way, never a crash
    [("insert", 2, b"\xff")],
    [whole(b"\xed\xa0\x80")],  # an encoded surrogate: not UTF-8
    [whole(b'"\\ud800"')],
    [whole(b"null")],
    [whole(b"1e400")],
    [whole(b"[" + b"1," * 100_000 + b"1]")],
]
COCO_SPECIFIC = [
    [sub(FIRST_KP, v)] for v in (b"1e39", b"-1e39", b"1e30", b"NaN", b"Infinity", b"-Infinity", b"1e400",
                                 b"99999999999999999999", b'"12"', b"true", b"null", b"[]")
] + [
    [sub(FIRST_KP, b"1e39", 0)],
    [sub(rb'(?<="image_id":)"[^"]*"', b"99999999999999999999")],
    [sub(rb'(?<="image_id":)"[^"]*"', b"-99999999999999999999")],
    [sub(rb'(?<="image_id":)"[^"]*"', b'"' + b"9" * 5000 + b'.png"')],
    [sub(rb'(?<="image_id":)"[^"]*"', b"1e39")],
    [sub(rb'(?<="category_id":)1', b"99999999999999999999")],
    [sub(rb'(?<="box":\[)[^\]]*', b"1e308,0,1e308,10")],  # x + w overflows to inf
    [sub(rb'(?<="box":\[)[^,]*', b"1e39")],
    [sub(rb'(?<="box":\[)[^,]*', b"NaN")],
    [sub(rb'(?<="box":)\[[^\]]*\]', b'"' + b"A" * (1 << 20) + b'"')],
    [sub(rb'(?<="keypoints":)\[', b"[" + b"1.5," * 200_000)],
]
OPENPOSE_SPECIFIC = [
    [sub(FIRST_OP, v)] for v in (b"1e39", b"1e30", b"NaN", b"Infinity", b"1e400", b"99999999999999999999",
                                 b'"1"', b"null")
] + [
    [sub(FIRST_OP, b"1e39", 0)],
    [sub(rb'(?<="people": )\[', b"[" * 50_000)],
    [sub(rb'(?<="version": )1.3', b"99999999999999999999")],
    [sub(rb'(?<="pose_keypoints_2d": )\[', b"[[")],
]


def _check_detections(det) -> None:
    check_numbers(det)
    assert det.keypoints.dtype.kind == "f" and det.keypoints.shape[1:] == (19, 4)


def _with_examples(test, recipes):
    for ops in recipes:
        test = example(ops=ops)(test)
    return test


def test_seeds_are_valid(fuzz_dir):
    p = fresh_path(fuzz_dir, "video_0001.json")
    p.write_bytes(coco())
    det = read_coco_results(p)
    assert len(det.frames) == 4
    _check_detections(det)
    q = fresh_path(fuzz_dir, "video_0001_000000000034_keypoints.json")
    q.write_bytes(openpose())
    kp = read_openpose_frame(q)
    assert kp.shape == (2, 19, 4)
    check_numbers(kp)


@fuzz_settings(max_examples=800)
@given(ops=mutations())
def test_coco_results(fuzz_dir, ops):
    path = fresh_path(fuzz_dir, "video_0001.json")
    path.write_bytes(mutate(coco(), ops))
    try:
        det = reads_or_refuses(lambda: read_coco_results(path), path)
        if det is not None:
            _check_detections(det)
    finally:
        path.unlink()


test_coco_results = _with_examples(test_coco_results, COMMON + COCO_SPECIFIC)


@fuzz_settings(max_examples=600)
@given(ops=mutations())
def test_openpose_frame(fuzz_dir, ops):
    path = fresh_path(fuzz_dir, "video_0001_000000000034_keypoints.json")
    path.write_bytes(mutate(openpose(), ops))
    try:
        kp = reads_or_refuses(lambda: read_openpose_frame(path), path)
        if kp is not None:
            check_numbers(kp)
            assert kp.shape[1:] == (19, 4)
    finally:
        path.unlink()


test_openpose_frame = _with_examples(test_openpose_frame, COMMON + OPENPOSE_SPECIFIC)


@fuzz_settings(max_examples=100)
@given(ops=mutations())
@example(ops=[sub(FIRST_OP, b"1e39")])
@example(ops=[whole(DEEP_LIST)])
@example(ops=[("encode", "latin-1")])
def test_openpose_video(fuzz_dir, ops):
    """A video folder of two frame files, the second one mutated: errors name that file."""
    folder = fresh_path(fuzz_dir, "video_0001")
    folder.mkdir()
    (folder / "video_0001_000000000033_keypoints.json").write_bytes(openpose())
    bad = folder / "video_0001_000000000034_keypoints.json"
    bad.write_bytes(mutate(openpose(), ops))
    try:
        det = reads_or_refuses(lambda: read_openpose_video(folder), bad)
        if det is not None:
            _check_detections(det)
    finally:
        for f in folder.iterdir():
            f.unlink()
        folder.rmdir()
