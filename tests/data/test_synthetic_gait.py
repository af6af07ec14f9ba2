"""Tests of the synthetic CASIA-B generator (graphfuse.data.synthetic.gait).

The PNGs are checked as files (signature, 8-bit grayscale, 0/255, CASIA-B's names), then read
back through the real preparation (graphfuse.data.gait.prepare.prepare_casia_b) and the
prepared folder's accessor. Silhouette statistics check that bags and coats change what they
should, and a gait-energy-image nearest-neighbour baseline checks that identity is learnable.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from graphfuse.data.gait.pretreat import pretreat_frames
from graphfuse.data.gait.sequences import GaitSequences
from graphfuse.data.synthetic import gait as syn

IDS, TRAIN_IDS, FRAMES = 4, 2, 12
VIEWS = ("000", "090", "162")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synthetic-casia-b")
    meta = syn.generate_synthetic_casia_b(out, num_ids=IDS, num_train_ids=TRAIN_IDS, num_frames=FRAMES,
                                          views=VIEWS, seed=3, workers=1)
    return out, meta


def _expected_files() -> set[str]:
    return {f"{s}/{t}/{v}/{s}-{t}-{v}-{k:03d}.png"
            for s in syn.subject_ids(IDS) for t in syn.TYPES for v in VIEWS for k in range(1, FRAMES + 1)}


def test_casia_b_constants() -> None:
    assert syn.TYPES == ("nm-01", "nm-02", "nm-03", "nm-04", "nm-05", "nm-06", "bg-01", "bg-02", "cl-01", "cl-02")
    assert syn.VIEWS == ("000", "018", "036", "054", "072", "090", "108", "126", "144", "162", "180")
    assert syn.frame_name("001", "nm-01", "090", 7) == "001-nm-01-090-007.png"
    assert syn.subject_ids(3) == ["001", "002", "003"]


def test_layout_names_and_png_format(prepared: tuple[Path, dict]) -> None:
    out, _ = prepared
    raw = out / "raw"
    files = {p.relative_to(raw).as_posix() for p in raw.rglob("*") if p.is_file()}
    assert files == _expected_files()
    for rel in sorted(files)[::97]:  # a sample across ids, types and views
        data = (raw / rel).read_bytes()
        assert data[:8] == PNG_SIGNATURE
        assert data[24:26] == b"\x08\x00", rel  # IHDR: bit depth 8, colour type 0 (grayscale)
        img = cv2.imread(str(raw / rel), cv2.IMREAD_UNCHANGED)
        assert img.dtype == np.uint8 and img.shape == (120, 160), rel
        assert set(np.unique(img).tolist()) <= {0, 255}, rel


def test_prepared_meta_and_frame_counts(prepared: tuple[Path, dict]) -> None:
    out, meta = prepared
    raw = out / "raw"
    n_seq = IDS * len(syn.TYPES) * len(VIEWS)
    assert meta["format"] == "graphfuse-gait" and meta["dataset"] == "synthetic-casia-b"
    assert meta["protocol"] == "casia-b" and meta["size"] == 64
    assert meta["partition"] == {"train": ["001", "002"], "test": ["003", "004"]}
    assert meta["num_class"] == TRAIN_IDS and meta["num_sequences"] == n_seq
    assert meta == json.loads((out / "meta.json").read_text())
    gs = GaitSequences(out)
    assert len(gs) == n_seq
    keys = list(zip(gs.ids, gs.types, gs.views))
    assert keys == sorted(keys)
    # Each sequence keeps exactly its frames above the pixel-sum threshold, and some frames
    # (the near-empty ones) fall below it.
    sums = {}
    for p in raw.rglob("*.png"):
        sums.setdefault(tuple(p.parent.relative_to(raw).parts), []).append(
            int(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE).sum(dtype=np.int64)))
    kept = {k: sum(s > 10000 for s in v) for k, v in sums.items()}
    assert [kept[k] for k in keys] == gs.lengths.tolist()
    dropped = n_seq * FRAMES - meta["num_frames"]
    assert dropped == meta["pretreatment"]["dropped_frames"] > 0
    assert all(min(v) > 10000 or min(v) <= 10000 // 255 * 255 for v in sums.values())  # bad frames are near-empty
    settings = json.loads((out / "synthetic_casia_b.json").read_text())
    assert settings["seed"] == 3 and settings["num_ids"] == IDS and settings["views"] == list(VIEWS)


def test_deterministic_and_independent_of_workers(tmp_path: Path) -> None:
    a = syn.render_sequence(5, "002", "bg-01", "036", num_frames=8)
    assert np.array_equal(a, syn.render_sequence(5, "002", "bg-01", "036", num_frames=8))
    assert not np.array_equal(a, syn.render_sequence(6, "002", "bg-01", "036", num_frames=8))
    kw = {"num_ids": 2, "num_frames": 4, "raw_height": 64, "seed": 5, "types": ("nm-01", "cl-02"),
          "views": ("018", "126")}
    assert syn.write_synthetic_casia_b(tmp_path / "one", workers=1, **kw) == 2 * 2 * 2 * 4
    syn.write_synthetic_casia_b(tmp_path / "two", workers=2, **kw)
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*.png"))
    assert len(files) == 32
    for rel in files:
        assert (tmp_path / "one" / rel).read_bytes() == (tmp_path / "two" / rel).read_bytes(), rel
    img = cv2.imread(str(tmp_path / "one" / files[0]), cv2.IMREAD_UNCHANGED)
    assert img.shape == (64, 85)  # raw_height x round(raw_height * 4 / 3)


def _nonempty(frames: np.ndarray) -> np.ndarray:
    return frames[frames.reshape(len(frames), -1).sum(1, dtype=np.int64) > 10000]


def _band_width(frames: np.ndarray, lo: float, hi: float) -> float:
    """Mean silhouette width (columns spanned) in rows ``lo..hi`` of the body height, relative
    to the body height, over the frames."""
    widths = []
    for f in _nonempty(frames) > 0:  # a loop over a handful of frames in a test
        rows = np.flatnonzero(f.any(1))
        top, h = rows[0], rows[-1] - rows[0] + 1
        band = f[top + int(lo * h): top + int(hi * h)]
        cols = np.flatnonzero(band.any(0))
        widths.append((cols[-1] - cols[0] + 1) / h)
    return float(np.mean(widths))


def _band_area(frames: np.ndarray, lo: float, hi: float) -> float:
    """Mean foreground area in rows ``lo..hi`` of the body height, relative to its square."""
    areas = []
    for f in _nonempty(frames) > 0:  # a loop over a handful of frames in a test
        rows = np.flatnonzero(f.any(1))
        top, h = rows[0], rows[-1] - rows[0] + 1
        areas.append(f[top + int(lo * h): top + int(hi * h)].sum() / h**2)
    return float(np.mean(areas))


def _area(frames: np.ndarray) -> float:
    """Mean foreground area relative to the squared body height."""
    fg = _nonempty(frames) > 0
    heights = np.array([np.ptp(np.flatnonzero(f.any(1))) + 1 for f in fg])
    return float(np.mean(fg.sum((1, 2)) / heights**2))


def _runs_per_row(frames: np.ndarray, lo: float, hi: float) -> float:
    """Mean number of foreground runs per row in rows ``lo..hi`` of the body height (two
    separate legs give 2, a filled region 1)."""
    counts = []
    for f in _nonempty(frames) > 0:  # a loop over a handful of frames in a test
        rows = np.flatnonzero(f.any(1))
        top, h = rows[0], rows[-1] - rows[0] + 1
        band = f[top + int(lo * h): top + int(hi * h)].astype(np.int8)
        counts.append((np.diff(band, axis=1) == 1).sum(1).mean())
    return float(np.mean(counts))


def _without(walk: syn.Walk) -> syn.Walk:
    """The same walk in normal clothes and without a bag."""
    return replace(walk, condition="nm", bag_kind="", coat_length=0.0, coat_width=1.0)


@pytest.mark.parametrize("subject", ["001", "002", "003"])
def test_coat_widens_the_torso_and_hides_the_legs(subject: str) -> None:
    walk = syn.sample_walk(0, subject, "cl-01")
    assert walk.condition == "cl" and walk.coat_width > 1 and walk.coat_length > 0

    def render(view: str, w: syn.Walk) -> np.ndarray:
        return syn.render_sequence(0, subject, "cl-01", view, num_frames=25, walk=w)

    # the same walk with and without the coat (and the same camera effects)
    for view in ("000", "180"):  # torso band below the shoulders, above the hips: wider
        assert _band_width(render(view, walk), 0.25, 0.42) > 1.05 * _band_width(render(view, _without(walk)),
                                                                                0.25, 0.42), view
    side_cl, side_nm = render("090", walk), render("090", _without(walk))
    assert _band_area(side_cl, 0.25, 0.42) > 1.15 * _band_area(side_nm, 0.25, 0.42)
    # thighs (upper half of the legs): two legs seen apart without the coat, one filled skirt with it
    assert _runs_per_row(side_nm, 0.58, 0.7) > _runs_per_row(side_cl, 0.58, 0.7) + 0.2
    assert _band_area(side_cl, 0.5, 0.7) > 1.2 * _band_area(side_nm, 0.5, 0.7)


def test_bag_adds_to_the_silhouette() -> None:
    kinds = set()
    for subject in ("001", "002", "003", "004"):
        for bg in ("bg-01", "bg-02"):
            walk = syn.sample_walk(0, subject, bg)
            kinds.add(walk.bag_kind)
            ratios = [_area(syn.render_sequence(0, subject, bg, view, num_frames=12, walk=walk))
                      / _area(syn.render_sequence(0, subject, bg, view, num_frames=12, walk=_without(walk)))
                      for view in ("072", "090", "108")]  # where every kind of bag shows
            # the same walk and camera with and without the bag
            assert min(ratios) > 1.0 and np.mean(ratios) > 1.04, (subject, bg, walk.bag_kind, ratios)
    assert kinds == {"shoulder", "backpack", "hand"}
    assert {syn.sample_walk(0, "001", t).bag_kind for t in ("nm-01", "cl-01")} == {""}
    sides = {syn.sample_walk(0, f"{i:03d}", "bg-01").bag_side for i in range(1, 9)}
    assert sides == {-1.0, 1.0}


def test_ids_sequences_and_views_differ() -> None:
    a, b = syn.sample_identity(0, "001"), syn.sample_identity(0, "002")
    assert a == syn.sample_identity(0, "001")
    diffs = [abs(x - y) / abs(x) for x, y in zip(a.__dict__.values(), b.__dict__.values())]
    assert sum(d > 0.01 for d in diffs) >= 15  # identities differ in many parameters
    base = syn.render_sequence(0, "001", "nm-01", "090", num_frames=8)
    for other in (syn.render_sequence(0, "002", "nm-01", "090", num_frames=8),
                  syn.render_sequence(0, "001", "nm-02", "090", num_frames=8),
                  syn.render_sequence(0, "001", "nm-01", "072", num_frames=8)):
        assert base.shape == other.shape and not np.array_equal(base, other)
    # front and side views differ in the silhouette's aspect: wide strides only from the side
    front = syn.render_sequence(0, "001", "nm-01", "000", num_frames=30)
    side = syn.render_sequence(0, "001", "nm-01", "090", num_frames=30)
    assert _band_width(side, 0.75, 1.0) > 1.3 * _band_width(front, 0.75, 1.0)
    # the walker crosses the frame in the side view and stays put in the front view
    def centre_x(frames: np.ndarray) -> np.ndarray:
        fg = _nonempty(frames) > 0
        return (fg.sum(1) * np.arange(fg.shape[2])).sum(1) / fg.sum((1, 2))
    assert np.ptp(centre_x(side)) > 20 and np.ptp(centre_x(front)) < 10
    # the 11 views of a walk share its phase and bag: the cameras film one walk
    assert syn.sample_walk(0, "004", "bg-01") == syn.sample_walk(0, "004", "bg-01")


def test_walker_kinematics() -> None:
    ident, walk = syn.sample_identity(0, "005"), syn.sample_walk(0, "005", "nm-01")
    kp = syn.walker_keypoints(ident, walk, 50)
    assert kp.shape == (50, 21, 3) and np.isfinite(kp).all()
    feet = kp[:, [syn.AN_L, syn.AN_R, syn.TO_L, syn.TO_R], 1]
    assert np.allclose(feet.min(1), 0.045 * ident.build)  # the lowest foot point is on the ground
    thigh = np.linalg.norm(kp[:, syn.KN_L] - kp[:, syn.HIP_L], axis=-1)
    assert np.allclose(thigh, ident.thigh)
    assert 0.6 < syn.walking_speed(kp) < 2.0  # m/s
    # the legs alternate: left and right ankles are half a cycle apart
    dz = kp[:, syn.AN_L, 2] - kp[:, syn.AN_R, 2]
    assert dz.max() > 0.2 and dz.min() < -0.2


def _gei(frames: np.ndarray) -> np.ndarray:
    return pretreat_frames(frames, 64).frames[:, :, 10:54].astype(np.float32).mean(0).ravel() / 255


def test_gei_nearest_neighbour_learnable_and_conditions_ordered() -> None:
    """Identity is learnable (far above chance for a GEI nearest neighbour, same view) and a
    coat makes it harder than normal walking (gallery nm-01..04 as CASIA-B's protocol)."""
    subjects = syn.subject_ids(8)
    feats = {(s, t): _gei(syn.render_sequence(1, s, t, "090", num_frames=25))
             for s in subjects for t in syn.TYPES if t not in ("bg-01", "bg-02")}
    gallery = [(s, t) for s in subjects for t in ("nm-01", "nm-02", "nm-03", "nm-04")]
    g = np.stack([feats[k] for k in gallery])

    def rank1(types: tuple[str, ...]) -> float:
        probes = [(s, t) for s in subjects for t in types]
        d = ((np.stack([feats[k] for k in probes])[:, None] - g[None]) ** 2).sum(-1)
        return float(np.mean([gallery[j][0] == p[0] for p, j in zip(probes, d.argmin(1))]))

    nm, cl = rank1(("nm-05", "nm-06")), rank1(("cl-01", "cl-02"))
    assert nm >= 0.5  # chance: 1/8
    assert cl < nm


def test_cli_arguments_and_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    syn.add_arguments(parser)
    args = parser.parse_args(["--out", str(tmp_path / "d"), "--ids", "2", "--train-ids", "1", "--frames", "2",
                              "--raw-height", "48", "--workers", "1", "--no-keep-raw"])
    assert (args.size, args.seed, args.keep_raw) == (64, 0, False)
    meta = syn.run(args)
    assert meta["num_sequences"] <= 2 * 10 * 11 and meta["num_class"] == 1
    assert not (tmp_path / "d" / "raw").exists() and (tmp_path / "d" / "frames.npy").is_file()
    assert "synthetic CASIA-B" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        parser.parse_args(["--out", "x", "--size", "96"])


def test_refuses_bad_arguments_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="num_train_ids"):
        syn.generate_synthetic_casia_b(tmp_path / "a", num_ids=3, num_train_ids=3)
    (tmp_path / "b" / "raw" / "125").mkdir(parents=True)
    with pytest.raises(ValueError, match="125"):
        syn.generate_synthetic_casia_b(tmp_path / "b", num_ids=3, num_train_ids=2)
    # a frame a longer earlier run left behind would be read as part of the sequence
    stale = tmp_path / "c" / "raw" / "001" / "nm-01" / "090" / "001-nm-01-090-031.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"")
    with pytest.raises(ValueError, match="001-nm-01-090-031.png"):
        syn.generate_synthetic_casia_b(tmp_path / "c", num_ids=3, num_train_ids=2)
    assert syn._foreign_entries(tmp_path / "c" / "raw", ["001"], ["nm-01"], ["090"], 31) == []
    with pytest.raises(ValueError, match="view"):
        syn.render_sequence(0, "001", "nm-01", "045")
    with pytest.raises(ValueError, match="type"):
        syn.sample_walk(0, "001", "xx-01")
    with pytest.raises(ValueError, match="type"):
        syn.write_synthetic_casia_b(tmp_path / "d", num_ids=1, types=("nm-07",))
