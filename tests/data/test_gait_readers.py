"""Gait readers and pretreatment: hand-made silhouettes with known crops and centres, OpenGait's
corner cases, an independent float64 / loop reimplementation, bad PNGs, pickles and folders."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from graphfuse.data.gait.pretreat import PIXEL_THRESHOLD, pretreat_frames, resized_width
from graphfuse.data.gait.readers import (
    CASIA_B_TYPES,
    CASIA_B_VIEWS,
    OUMVLP_VIEWS,
    GaitDataError,
    detect_oumvlp_layout,
    list_casia_b,
    list_oumvlp,
    read_opengait_pkl,
    read_png,
    read_png_sequence,
)

FIXTURE = Path(__file__).parent / "gait" / "casia-b"


# ---- an independent reference: OpenGait's steps written plainly, one frame at a time ------------

def reference_pretreat(frames: list[np.ndarray], size: int) -> np.ndarray:
    """Per frame, with Python loops and float64 sums (no vectorisation shared with the code)."""
    out = []
    half = size // 2
    for img in frames:
        if float(img.astype(np.float64).sum()) <= 10000:
            continue
        rows = [r for r in range(img.shape[0]) if float(img[r].astype(np.float64).sum()) != 0]
        crop = img[rows[0]:rows[-1] + 1]
        width = int(size * (crop.shape[1] / crop.shape[0]))
        small = cv2.resize(crop, (width, size), interpolation=cv2.INTER_CUBIC)
        total = float(small.astype(np.float64).sum())
        running, centre = 0.0, None
        for c in range(small.shape[1]):
            running += float(small[:, c].astype(np.float64).sum())
            if running > total / 2:
                centre = c
                break
        if not centre:  # no centre, or column 0: dropped as OpenGait
            continue
        left, right = centre - half, centre + half
        if left <= 0 or right >= small.shape[1]:
            pad = np.zeros((size, half), dtype=np.float64)
            small = np.concatenate([pad, small.astype(np.float64), pad], axis=1)
            left, right = left + half, right + half
        out.append(small[:, left:right].astype(np.uint8))
    return np.asarray(out, dtype=np.uint8).reshape(-1, size, size)


def _blank(h: int = 240, w: int = 320) -> np.ndarray:
    return np.zeros((h, w), dtype=np.uint8)


# ---- pretreatment on hand-made silhouettes --------------------------------------------------------

def test_rectangle_known_crop_and_centre():
    # 64 rows tall: the resize to height 64 keeps the 320 width (int(64 * 320 / 64)) and is a copy.
    img = _blank()
    img[100:164, 150:170] = 255  # 20 columns of equal mass: half is reached after 10 of them
    res = pretreat_frames(img[None], 64)
    assert res.frames.shape == (1, 64, 64) and res.kept.tolist() == [0]
    # cumulative mass through column 159 is exactly half (not > half): the centre is column 160,
    # the crop columns 128..191, so the rectangle lands in output columns 22..41, every row.
    expected = np.zeros((64, 64), dtype=np.uint8)
    expected[:, 22:42] = 255
    np.testing.assert_array_equal(res.frames[0], expected)


def test_rows_cropped_first_to_last_non_empty_row():
    img = _blank()
    img[10:21, 150:170] = 255  # two blobs with a gap: rows 10..73 = 64 rows kept, gap included
    img[63:74, 150:170] = 255
    out = pretreat_frames(img[None], 64).frames[0]
    rows = np.flatnonzero(out.any(axis=1))
    assert rows.tolist() == [*range(11), *range(53, 64)]


def test_centre_rule_is_strictly_more_than_half():
    img = _blank(64, 320)
    img[:, 100] = 255  # two columns of equal mass: cumsum at 100 equals half, not more
    img[:, 101] = 255
    out = pretreat_frames(img[None], 64).frames[0]
    # centre 101 -> crop 69..132 -> columns 100, 101 at output 31, 32 (a >= rule would give 32, 33)
    assert np.flatnonzero(out.any(axis=0)).tolist() == [31, 32]
    # a hand-worked uneven distribution, in units of 64 x 85: columns 200..203 hold 1, 3, 3, 1
    # (total 8, half 4); running sums 1, 4 (not > 4), 7 -> the centre is column 202, so the crop
    # starts at 170 and columns 200..203 land in output columns 30..33 (a >= rule: 31..34)
    img = _blank(64, 320)
    img[:, 200], img[:, 201], img[:, 202] = 85, 255, 255
    img[:32, 203] = 170
    out = pretreat_frames(img[None], 64).frames[0]
    assert out[0, 32] == 255 and out[0, 31] == 255 and out[0, 30] == 85 and out[0, 33] == 170


@pytest.mark.parametrize("left", [True, False])
def test_zero_padding_at_the_borders(left):
    img = _blank(64, 320)
    cols = slice(0, 10) if left else slice(310, 320)
    img[:, cols] = 255
    out = pretreat_frames(img[None], 64).frames[0]
    # centre = first column + 5; crop starts 32 columns to its left, padded with zeros
    assert np.flatnonzero(out.any(axis=0)).tolist() == list(range(27, 37))
    assert out[:, 27:37].min() == 255


def test_centre_in_column_zero_is_dropped_as_opengait():
    img = _blank(64, 320)
    img[:, 0] = 255  # the centre is column 0: OpenGait's `if not x_center` drops the frame
    img[:, 1] = 10
    res = pretreat_frames(np.stack([img, np.roll(img, 5, axis=1)]), 64)
    assert res.kept.tolist() == [1] and res.no_centre == 1 and res.below_threshold == 0


def test_pixel_threshold_drops_sum_at_most_10000():
    at = _blank()
    at[100:104, 150:160] = 250  # 40 pixels x 250 = 10000: dropped (<=)
    above = at.copy()
    above[104, 155] = 1  # 10001: kept
    res = pretreat_frames(np.stack([at, above, _blank()]), 64)
    assert int(at.sum(dtype=np.int64)) == PIXEL_THRESHOLD
    assert res.kept.tolist() == [1] and res.below_threshold == 2
    np.testing.assert_array_equal(res.frames, reference_pretreat([at, above], 64))


def test_resized_width_is_opengaits_float_expression():
    assert resized_width(320, 160, 64) == 128
    assert resized_width(320, 150, 64) == int(64 * (320 / 150)) == 136
    assert resized_width(320, 239, 128) == 171


@pytest.mark.parametrize("size", [64, 128])
def test_matches_independent_reference_on_random_silhouettes(size):
    rng = np.random.default_rng(size)
    frames = []
    for k in range(12):
        img = _blank()
        for _ in range(rng.integers(1, 4)):
            centre = (int(rng.integers(-10, 330)), int(rng.integers(20, 220)))
            axes = (int(rng.integers(3, 40)), int(rng.integers(5, 90)))
            cv2.ellipse(img, centre, axes, float(rng.uniform(0, 180)), 0, 360, int(rng.integers(120, 256)), -1)
        if k % 5 == 0:
            img = cv2.GaussianBlur(img, (5, 5), 0)  # grey edges, as real silhouettes have
        frames.append(img)
    frames.append(_blank())  # dropped
    res = pretreat_frames(np.stack(frames), size)
    np.testing.assert_array_equal(res.frames, reference_pretreat(frames, size))
    assert res.frames.dtype == np.uint8 and res.frames.shape[1:] == (size, size)


def test_fixture_frames_match_reference_and_mixed_sizes():
    src, _ = list_casia_b(FIXTURE)
    frames, names, skipped = read_png_sequence(src[1])  # 001/nm-01/090: its first frame is empty
    assert not skipped and len(frames) == 4
    res = pretreat_frames(frames, 64, names)
    assert res.kept.tolist() == [1, 2, 3] and res.below_threshold == 1
    np.testing.assert_array_equal(res.frames, reference_pretreat(frames, 64))
    # frames of different sizes in one sequence: processed per size, order kept
    mixed = [frames[1], cv2.resize(frames[2], (200, 150), interpolation=cv2.INTER_NEAREST), frames[3]]
    np.testing.assert_array_equal(pretreat_frames(mixed, 64).frames, reference_pretreat(mixed, 64))


def test_too_narrow_frame_is_an_error_naming_it():
    img = np.full((200, 1), 255, dtype=np.uint8)  # int(64 * 1 / 200) == 0: cv2.resize cannot
    with pytest.raises(ValueError, match="narrow.png"):
        pretreat_frames([img], 64, ["narrow.png"])
    with pytest.raises(ValueError, match="even"):
        pretreat_frames([img], 63)
    with pytest.raises(ValueError, match="uint8"):
        pretreat_frames([img.astype(np.float32)], 64)


# ---- CASIA-B folders ------------------------------------------------------------------------------

def test_list_casia_b_fixture():
    sources, skipped = list_casia_b(FIXTURE)
    assert skipped == []
    assert [s.key for s in sources] == [("001", "nm-01", "000"), ("001", "nm-01", "090"),
                                        ("075", "nm-01", "000"), ("075", "nm-01", "090")]
    assert all(s.kind == "png" and len(s.files) == 4 for s in sources)
    assert [Path(f).name for f in sources[0].files] == [f"001-nm-01-000-{k:03d}.png" for k in range(1, 5)]
    assert len(CASIA_B_TYPES) == 10 and CASIA_B_VIEWS[-1] == "180" and len(CASIA_B_VIEWS) == 11


def _copy_fixture(tmp_path: Path) -> Path:
    root = tmp_path / "casia"
    shutil.copytree(FIXTURE, root)
    return root


@pytest.mark.parametrize("bad", ["125", "01", "abc", "001/xx-01", "001/nm-07", "001/nm-01/017"])
def test_folder_outside_the_naming_scheme(tmp_path, bad):
    root = _copy_fixture(tmp_path)
    (root / bad).mkdir(parents=True, exist_ok=True)
    with pytest.raises(GaitDataError, match=f"{root / bad}.*naming scheme"):
        list_casia_b(root)
    sources, skipped = list_casia_b(root, skip_bad=True)
    assert len(sources) == 4 and [s["path"] for s in skipped] == [str(root / bad)]


def test_stray_files_and_hidden_entries_are_ignored(tmp_path):
    root = _copy_fixture(tmp_path)
    (root / "Thumbs.db").write_bytes(b"x")
    (root / ".git").mkdir()
    (root / "001" / "nm-01" / "000" / "notes.txt").write_text("x")
    assert len(list_casia_b(root)[0]) == 4


def test_empty_sequence_folder(tmp_path):
    root = _copy_fixture(tmp_path)
    empty = root / "001" / "bg-01" / "018"
    empty.mkdir(parents=True)
    with pytest.raises(GaitDataError, match=f"{empty}: empty sequence"):
        list_casia_b(root)
    sources, skipped = list_casia_b(root, skip_bad=True)
    assert len(sources) == 4 and skipped[0]["path"] == str(empty)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        list_casia_b(tmp_path / "nowhere")


# ---- PNG frames ------------------------------------------------------------------------------------

def test_read_png_grayscale_as_opencv_imread():
    f = min(FIXTURE.rglob("*.png"))
    np.testing.assert_array_equal(read_png(f), cv2.imread(str(f), cv2.IMREAD_GRAYSCALE))


def test_unreadable_pngs(tmp_path):
    good = min(FIXTURE.rglob("*.png")).read_bytes()
    cases = {
        "text.png": b"not an image",
        "jpeg.png": cv2.imencode(".jpg", np.zeros((8, 8), np.uint8))[1].tobytes(),  # decodable, not PNG
        "truncated.png": good[:60],
        "empty.png": b"",
        "bomb.png": good[:16] + (60000).to_bytes(4, "big") + (60000).to_bytes(4, "big") + good[24:],
    }
    for name, data in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(GaitDataError, match=name):
            read_png(p)


def test_bad_png_in_a_sequence_is_an_error_or_a_listed_skip(tmp_path):
    root = _copy_fixture(tmp_path)
    bad = root / "075" / "nm-01" / "000" / "075-nm-01-000-002.png"
    bad.write_bytes(bad.read_bytes()[:50])
    src = list_casia_b(root)[0][2]
    with pytest.raises(GaitDataError, match=str(bad)):
        read_png_sequence(src)
    frames, names, skipped = read_png_sequence(src, skip_bad=True)
    assert len(frames) == 3 and str(bad) not in names and skipped[0]["path"] == str(bad)


# ---- OpenGait pickles -----------------------------------------------------------------------------

class _Evil:
    def __init__(self, canary: str) -> None:
        self.canary = canary

    def __reduce__(self):
        return (os.system, (f"touch {self.canary}",))


def test_opengait_pickle_reads_uint8_array_only(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (5, 64, 64), dtype=np.uint8)
    good = tmp_path / "090.pkl"
    with open(good, "wb") as fh:
        pickle.dump(arr, fh)  # what OpenGait's pretreatment writes
    np.testing.assert_array_equal(read_opengait_pkl(good), arr)
    with pytest.raises(GaitDataError, match="pass --size 64"):
        read_opengait_pkl(good, size=128)
    canary = tmp_path / "canary"
    hostile = {
        "dict.pkl": {"frames": arr},
        "float.pkl": arr.astype(np.float32),
        "list.pkl": list(arr),
        "flat.pkl": arr[0],
        "zero.pkl": arr[:0],
        "rect.pkl": arr[:, :, :44],
        "evil.pkl": _Evil(str(canary)),
    }
    for name, obj in hostile.items():
        p = tmp_path / name
        p.write_bytes(pickle.dumps(obj))
        with pytest.raises(ValueError, match=name):
            read_opengait_pkl(p)
    assert not canary.exists()
    (tmp_path / "junk.pkl").write_bytes(b"\x80\x04junk")
    with pytest.raises(ValueError, match="junk.pkl"):
        read_opengait_pkl(tmp_path / "junk.pkl")


def test_pickle_folders_are_detected(tmp_path):
    root = tmp_path / "pkl"
    for sid, view in (("001", "000"), ("075", "090")):
        d = root / sid / "nm-01" / view
        d.mkdir(parents=True)
        (d / f"{view}.pkl").write_bytes(pickle.dumps(np.zeros((2, 64, 64), np.uint8)))
    sources, _ = list_casia_b(root)
    assert [s.kind for s in sources] == ["pkl", "pkl"] and sources[1].path.endswith("075/nm-01/090/090.pkl")
    wrong = root / "075" / "nm-01" / "000"
    wrong.mkdir()
    (wrong / "090.pkl").write_bytes(b"")
    with pytest.raises(GaitDataError, match="expected OpenGait's 000.pkl"):
        list_casia_b(root)
    shutil.rmtree(wrong)
    mixed = root / "075" / "nm-01" / "018"
    shutil.copytree(FIXTURE / "075" / "nm-01" / "000", mixed)
    with pytest.raises(GaitDataError, match="mixes PNG"):
        list_casia_b(root)


# ---- OU-MVLP ---------------------------------------------------------------------------------------

def _oumvlp_both_layouts(tmp_path: Path) -> tuple[Path, Path]:
    frames = sorted((FIXTURE / "001" / "nm-01" / "000").glob("*.png"))
    dist, rear = tmp_path / "dist", tmp_path / "rear"
    for sid in ("00001", "00002"):
        for seq in ("00", "01"):
            for view in ("000", "270"):
                a = dist / f"Silhouette_{view}-{seq}" / sid
                b = rear / sid / seq / view
                a.mkdir(parents=True)
                b.mkdir(parents=True)
                for k, f in enumerate(frames[: 2 + int(sid[-1])]):
                    shutil.copy(f, a / f"{k + 1:04d}.png")
                    shutil.copy(f, b / f"{k + 1:04d}.png")
    return dist, rear


def test_oumvlp_layouts_list_the_same_sequences(tmp_path):
    dist, rear = _oumvlp_both_layouts(tmp_path)
    assert detect_oumvlp_layout(dist) == "distributed" and detect_oumvlp_layout(rear) == "opengait"
    a, _ = list_oumvlp(dist)
    b, _ = list_oumvlp(rear, layout="opengait")
    assert [s.key for s in a] == [s.key for s in b] and len(a) == 8
    assert a[0].key == ("00001", "00", "000") and [len(s.files) for s in a] == [len(s.files) for s in b]
    assert len(OUMVLP_VIEWS) == 14
    (dist / "Silhouette_100-00").mkdir()  # 100 is no OU-MVLP view
    with pytest.raises(GaitDataError, match="Silhouette_100-00"):
        list_oumvlp(dist)
    (tmp_path / "mixed").mkdir()
    (tmp_path / "mixed" / "00001").mkdir()
    (tmp_path / "mixed" / "Silhouette_000-00").mkdir()
    with pytest.raises(GaitDataError, match="layout"):
        detect_oumvlp_layout(tmp_path / "mixed")
