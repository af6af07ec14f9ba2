"""Tests of the synthetic NTU RGB+D generator (graphfuse.data.synthetic.ntu).

The written files are checked with a small independent parser written here (a plain loop
over lines, the way ``read_skeleton_file.m`` of shahroudy/NTURGB-D reads them) and, for a
round trip, with graphfuse's own reader.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from graphfuse.data.synthetic import ntu as syn
from graphfuse.graphs import ntu25

J = syn  # joint index constants (syn.SB, syn.R_HA, ...)
NAME_RE = re.compile(r"^S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})\.skeleton$")


# -- an independent parser -----------------------------------------------------------------------
def parse_text(raw: bytes) -> dict:
    """Parse a .skeleton file strictly: CRLF line ends, single spaces, exact token counts.

    Returns ``n_frames``, ``bodies_per_frame`` and per body record (frame order):
    ``frame``, ``body_id`` (int), ``info`` (9 floats), ``joints`` (25, 12) floats.
    """
    assert raw.endswith(b"\r\n"), "file must end with CRLF"
    lines = raw.split(b"\r\n")[:-1]
    assert all(b"\n" not in ln and b"\r" not in ln for ln in lines), "bare CR or LF inside a line"
    pos = 0

    def tokens(expected: int) -> list[bytes]:
        nonlocal pos
        toks = lines[pos].split(b" ")
        assert len(toks) == expected, f"line {pos + 1}: {len(toks)} tokens, not {expected}: {lines[pos]!r}"
        assert all(toks), f"line {pos + 1}: empty token (double space?)"
        pos += 1
        return toks

    n_frames = int(tokens(1)[0])
    per_frame, records = [], []
    for f in range(n_frames):
        nb = int(tokens(1)[0])
        per_frame.append(nb)
        for _ in range(nb):
            t = tokens(10)
            rec = {"frame": f, "body_id": int(t[0]), "info": [float(x) for x in t[1:]]}
            assert tokens(1) == [b"25"]
            rows = []
            for _ in range(25):
                t = tokens(12)
                assert re.fullmatch(rb"[0-2]", t[11]), t[11]
                rows.append([float(x) for x in t])
            rec["joints"] = np.array(rows)
            records.append(rec)
    assert pos == len(lines), "trailing lines after the last frame"
    return {"n_frames": n_frames, "bodies_per_frame": per_frame, "records": records}


def records_as_array(parsed: dict, n_bodies: int) -> tuple[np.ndarray, np.ndarray]:
    """``(F, n_bodies, 25, 12)`` values by order of appearance in each frame, and presence."""
    out = np.zeros((parsed["n_frames"], n_bodies, 25, 12))
    present = np.zeros((parsed["n_frames"], n_bodies), dtype=bool)
    slot = {}
    for rec in parsed["records"]:
        k = slot.get(rec["frame"], 0)
        slot[rec["frame"]] = k + 1
        out[rec["frame"], k] = rec["joints"]
        present[rec["frame"], k] = True
    return out, present


def find_samples(names: list[str], predicate) -> list[syn.SyntheticSample]:
    return [s for s in (syn.synthesize_sample(n) for n in names) if predicate(s)]


# Names of a small slice of the default dataset, used by several tests.
SLICE = syn.synthetic_sample_names(num_subjects=3, cameras=(1,), replications=(1, 2))


# -- constants and names -------------------------------------------------------------------------
def test_actions_and_split_constants():
    assert len(syn.ACTIONS) == 10 and len(set(syn.ACTIONS)) == 10
    assert syn.ACTIONS[0] == "waving" and syn.ACTIONS[9] == "handshake"
    assert syn.SYNTHETIC_TRAIN_SUBJECTS == (1, 2, 4, 5, 7, 9)


def test_default_names_counts_and_xsub_split():
    names = syn.synthetic_sample_names()
    assert len(names) == 600 == len(set(names))
    assert names == sorted(names)
    parsed = np.array([[int(g) for g in NAME_RE.match(n + ".skeleton").groups()] for n in names])
    setup, cam, perf, rep, act = parsed.T
    assert set(setup) == {1} and set(cam) == {1, 2, 3} and set(rep) == {1, 2}
    assert set(perf) == set(range(1, 11)) and set(act) == set(range(1, 11))
    test = ~np.isin(perf, syn.SYNTHETIC_TRAIN_SUBJECTS)
    assert test.sum() == 240 and set(perf[test]) == {3, 6, 8, 10}
    assert (np.bincount(act[test] - 1) == 24).all()


def test_name_options_and_errors():
    names = syn.synthetic_sample_names(num_subjects=2, cameras=(2,), replications=(1,), setups=(3, 5),
                                       actions=["handshake", 1])
    assert names == ["S003C002P001R001A001", "S003C002P001R001A010", "S003C002P002R001A001",
                     "S003C002P002R001A010", "S005C002P001R001A001", "S005C002P001R001A010",
                     "S005C002P002R001A001", "S005C002P002R001A010"]
    with pytest.raises(ValueError, match="cameras"):
        syn.synthetic_sample_names(cameras=(4,))
    with pytest.raises(ValueError, match="unknown synthetic action"):
        syn.synthetic_sample_names(actions=["dancing"])
    with pytest.raises(ValueError, match="1..10"):
        syn.synthetic_sample_names(actions=[11])
    with pytest.raises(ValueError, match="not an NTU sample name"):
        syn.synthesize_sample("P001A001")
    with pytest.raises(ValueError, match="A011"):
        syn.synthesize_sample("S001C001P001R001A011")


# -- writing a sample (SyntheticSample.to_sequence + the one writer, graphfuse.data.ntu.reader) ----
def make_sample(joints, present=None, *, body_ids=None, tracking=None, orientations=None, body_info=None,
                name="S001C001P001R001A001") -> syn.SyntheticSample:
    """A hand-made sample; defaults: all present, tracked, identity orientation, body record
    ``0 1 1 1 1 0 0 0 2``."""
    joints = np.asarray(joints, dtype=np.float64)
    F, B = joints.shape[:2]
    present = np.ones((F, B), bool) if present is None else np.asarray(present)
    if orientations is None:
        orientations = np.zeros((F, B, 25, 4))
        orientations[..., 0] = 1.0
    return syn.SyntheticSample(
        name=name, label=0, joints=joints, clean_joints=joints, present=present,
        body_ids=tuple(body_ids if body_ids is not None else [72057594037928936 + b for b in range(B)]),
        tracking=np.full((F, B, 25), 2, np.int8) if tracking is None else np.asarray(tracking),
        orientations=np.asarray(orientations, dtype=np.float64),
        body_info=np.tile([0, 1, 1, 1, 1, 0, 0, 0, 2.0], (F, B, 1)) if body_info is None else body_info,
        noise_body=np.zeros(B, bool), height=np.full(B, 1.7),
    )


def test_writer_hand_worked_example(tmp_path: Path):
    joints = np.zeros((3, 2, 25, 3))
    joints[..., 2] = 2.0
    joints[0, 0, 1] = (0.5, -0.25, 2.5)
    present = np.array([[True, False], [False, False], [True, True]])
    sample = make_sample(joints, present, body_ids=[72057594037931648, 72057594037931649])
    path = sample.write(tmp_path / "x.skeleton")
    assert path == tmp_path / "x.skeleton"
    raw = path.read_bytes()
    lines = raw.split(b"\r\n")
    assert lines[:4] == [b"3", b"1", b"72057594037931648 0 1 1 1 1 0 0 0 2", b"25"]
    # (0, 0, 2): depth (cx, cy); colour x = 959.5 + 1060.7 * 0.052 / 2 = 987.0782
    assert lines[4] == b"0 0 2 256 208.5 987.0782 539.5 1 0 0 0 2"
    # (0.5, -0.25, 2.5): depth (256 + 365.5 * 0.2, 208.5 + 365.5 * 0.1) = (329.1, 245.05)
    # colour (959.5 + 1060.7 * 0.552 / 2.5, 539.5 + 1060.7 * 0.1) = (1193.70256, 645.57)
    assert lines[5] == b"0.5 -0.25 2.5 329.1 245.05 1193.703 645.57 1 0 0 0 2"
    assert lines[29] == b"0"  # frame 2 has no body
    assert lines[30] == b"2"
    assert lines[31].startswith(b"72057594037931648 ") and lines[58].startswith(b"72057594037931649 ")
    parsed = parse_text(raw)
    assert parsed["bodies_per_frame"] == [1, 0, 2] and len(parsed["records"]) == 3
    # The sequence handed to the writer: records frame by frame, slots in body order.
    seq = sample.to_sequence()
    assert seq.path == "S001C001P001R001A001.skeleton"
    assert seq.body_frame.tolist() == [0, 2, 2] and seq.body_slot.tolist() == [0, 0, 1]
    assert seq.body_id.tolist() == [72057594037931648, 72057594037931648, 72057594037931649]
    assert seq.hand_left_state.dtype == np.int32 and seq.joint_tracking_state.dtype == np.int32


def test_writer_fields_and_zero_frames(tmp_path: Path):
    rng = np.random.default_rng(0)
    joints = rng.normal(0, 0.5, (4, 1, 25, 3)) + [0, 0, 3]
    tracking = rng.integers(0, 3, (4, 1, 25))
    quat = rng.normal(size=(4, 1, 25, 4))
    info = np.tile([1, 0, 3, 1, 2, 0, 0.125, -0.5, 2], (4, 1, 1))
    path = make_sample(joints, body_ids=[2**64 - 1], tracking=tracking, orientations=quat,
                       body_info=info).write(tmp_path / "y.skeleton")
    parsed = parse_text(path.read_bytes())
    vals, _ = records_as_array(parsed, 1)
    assert parsed["records"][0]["body_id"] == 2**64 - 1
    assert parsed["records"][0]["info"] == [1, 0, 3, 1, 2, 0, 0.125, -0.5, 2]
    np.testing.assert_allclose(vals[..., :3], joints, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(vals[..., 3:5], syn.project_depth(joints), rtol=1e-6)
    np.testing.assert_allclose(vals[..., 5:7], syn.project_color(joints), rtol=1e-6)
    np.testing.assert_allclose(vals[..., 7:11], quat, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(vals[..., 11], tracking)
    # 7 significant digits, as '%.7g' of each value (a plain loop as the reference).
    first = parsed["records"][0]["joints"][:, :11]
    ref = [[float("%.7g" % v) for v in row] for row in
           np.concatenate([joints[0, 0], syn.project_depth(joints[0, 0]), syn.project_color(joints[0, 0]),
                           quat[0, 0]], -1)]
    np.testing.assert_array_equal(first, ref)
    empty = make_sample(np.zeros((0, 0, 25, 3))).write(tmp_path / "z.skeleton")
    assert empty.read_bytes() == b"0\r\n"


def test_writer_rejects_bad_input(tmp_path: Path):
    good = np.zeros((2, 1, 25, 3)) + [0, 0, 2.0]
    bad_z = good.copy()
    bad_z[1, 0, 3, 2] = -1.0
    with pytest.raises(ValueError, match=r"bad\.skeleton: frame 1: joint with z <= 0"):
        make_sample(bad_z).write(tmp_path / "bad.skeleton")
    nan = good.copy()
    nan[1, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"bad\.skeleton: xyz of body record 1 \(frame 1\) must be finite"):
        make_sample(nan).write(tmp_path / "bad.skeleton")
    with pytest.raises(ValueError, match=r"bad\.skeleton: tracking must be int32 integers, found 1\.5"):
        make_sample(good, tracking=np.full((2, 1, 25), 1.5)).write(tmp_path / "bad.skeleton")
    with pytest.raises(ValueError, match="leanX/leanY must be int32 integers, found 0.5"):
        make_sample(good, body_info=np.full((2, 1, 9), 0.5)).write(tmp_path / "bad.skeleton")
    # An absent body's garbage is ignored.
    present = np.array([[True], [False]])
    make_sample(nan, present).write(tmp_path / "ok.skeleton")  # the NaN is in frame 1
    assert parse_text((tmp_path / "ok.skeleton").read_bytes())["bodies_per_frame"] == [1, 0]
    assert not (tmp_path / "bad.skeleton").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.skeleton"]  # no temporary files left


def test_module_has_no_writer_of_its_own():
    assert not hasattr(syn, "write_skeleton_file") and not hasattr(syn, "format_skeleton_text")


# -- rotations and forward kinematics ------------------------------------------------------------
def test_euler_convention_hand_worked():
    def rot(p, y, r):
        return syn.euler_to_matrix(np.radians(np.array([p, y, r], dtype=float)))

    down, fwd = np.array([0, -1.0, 0]), np.array([0, 0, -1.0])
    np.testing.assert_allclose(rot(90, 0, 0) @ down, fwd, atol=1e-12)        # pitch swings forward
    np.testing.assert_allclose(rot(0, 0, 90) @ down, [1, 0, 0], atol=1e-12)  # roll towards +x
    np.testing.assert_allclose(rot(0, 90, 0) @ fwd, [-1, 0, 0], atol=1e-12)  # yaw about vertical
    # pitch first, then roll: a forward arm rolled 90 degrees still points forward
    np.testing.assert_allclose(rot(90, 0, 90) @ down, fwd, atol=1e-12)
    m = syn.euler_to_matrix(np.random.default_rng(0).uniform(-3, 3, (50, 3)))
    np.testing.assert_allclose(m @ np.swapaxes(m, -1, -2), np.broadcast_to(np.eye(3), m.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(m), 1.0, atol=1e-12)


def test_forward_kinematics_matches_loop_reference():
    rng = np.random.default_rng(1)
    shape = syn.sample_body_shape(rng)
    angles = rng.uniform(-1.5, 1.5, (4, 25, 3))
    pos, rot = syn.forward_kinematics(shape.offsets, angles)

    def single(axis: int, a: float) -> np.ndarray:
        c, s = np.cos(a), np.sin(a)
        if axis == 0:
            return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
        if axis == 1:
            return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
        return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])

    parents = syn.KINEMATIC_PARENTS
    for t in range(4):
        g, p = {}, {}
        todo = list(range(25))
        while todo:  # visit joints once their parent is done
            for j in list(todo):
                par = parents[j]
                if par >= 0 and par not in g:
                    continue
                local = single(1, angles[t, j, 1]) @ single(2, angles[t, j, 2]) @ single(0, angles[t, j, 0])
                if par < 0:
                    g[j], p[j] = local, shape.offsets[j]
                else:
                    g[j], p[j] = g[par] @ local, p[par] + g[par] @ shape.offsets[j]
                todo.remove(j)
        np.testing.assert_allclose(pos[t], np.array([p[j] for j in range(25)]), atol=1e-12)
        np.testing.assert_allclose(rot[t], np.array([g[j] for j in range(25)]), atol=1e-12)


def test_fk_levels_follow_the_tree():
    depth = np.zeros(25, int)
    for level_index, level in enumerate(syn._FK_LEVELS):
        for j in level:
            assert level_index == 0 or depth[syn.KINEMATIC_PARENTS[j]] == level_index - 1
            depth[j] = level_index
    assert sorted(np.concatenate(syn._FK_LEVELS).tolist()) == list(range(25))


# -- generation: files, determinism, format ------------------------------------------------------
def test_generate_is_deterministic_and_worker_independent(tmp_path: Path):
    kw = dict(num_subjects=2, cameras=(1, 3), replications=(2,), actions=(3, 10), progress=False)
    a = syn.generate_synthetic_ntu(tmp_path / "a", seed=7, workers=1, **kw)
    b = syn.generate_synthetic_ntu(tmp_path / "b", seed=7, workers=2, **kw)
    c = syn.generate_synthetic_ntu(tmp_path / "c", seed=8, workers=1, **kw)
    assert [p.name for p in a] == [p.name for p in b] == [p.name for p in c]
    assert [p.name for p in a] == [
        "S001C001P001R002A003.skeleton", "S001C001P001R002A010.skeleton", "S001C001P002R002A003.skeleton",
        "S001C001P002R002A010.skeleton", "S001C003P001R002A003.skeleton", "S001C003P001R002A010.skeleton",
        "S001C003P002R002A003.skeleton", "S001C003P002R002A010.skeleton",
    ]
    assert sorted(x.name for x in (tmp_path / "a").iterdir()) == [p.name for p in a]  # no temp files left
    for pa, pb, pc in zip(a, b, c):
        assert pa.read_bytes() == pb.read_bytes()
        assert pa.read_bytes() != pc.read_bytes()
    # The file is exactly the sample of that name.
    s = syn.synthesize_sample(a[1].stem, seed=7)
    s.write(tmp_path / "again.skeleton")
    assert (tmp_path / "again.skeleton").read_bytes() == a[1].read_bytes()


@pytest.mark.parametrize("kind", ["leading_empty", "trailing_empty", "noise_body_single", "noise_body_pair"])
def test_written_files_parse_and_match_the_sample(tmp_path: Path, kind: str):
    pair = syn.synthetic_sample_names(num_subjects=10, cameras=(1, 2, 3), replications=(1,), actions=[10])
    predicate = {
        "leading_empty": (SLICE, lambda s: not s.present[0].any()),
        "trailing_empty": (SLICE, lambda s: not s.present[-1].any()),
        "noise_body_single": (SLICE, lambda s: s.noise_body.any()),
        "noise_body_pair": (pair, lambda s: s.noise_body.any()),
    }[kind]
    found = find_samples(*predicate)
    assert found, f"no sample with {kind} in the slice"
    s = found[0]
    raw = s.write(tmp_path / f"{s.name}.skeleton").read_bytes()
    parsed = parse_text(raw)
    n_frames, n_bodies = s.present.shape
    assert parsed["n_frames"] == n_frames
    np.testing.assert_array_equal(parsed["bodies_per_frame"], s.present.sum(1))
    vals, _ = records_as_array(parsed, n_bodies)
    # Bodies are listed in index order, so slot k of a frame is its k-th present body.
    order = np.cumsum(s.present, 1) - 1
    fr, bd = np.nonzero(s.present)
    got = vals[fr, order[fr, bd]]
    np.testing.assert_allclose(got[..., :3], s.joints[fr, bd], rtol=6e-7, atol=1e-9)
    np.testing.assert_allclose(got[..., 3:5], syn.project_depth(s.joints[fr, bd]), rtol=1e-6)
    np.testing.assert_allclose(got[..., 7:11], s.orientations[fr, bd], atol=1e-7)
    np.testing.assert_array_equal(got[..., 11], s.tracking[fr, bd])
    ids = [r["body_id"] for r in parsed["records"]]
    assert ids == [s.body_ids[b] for b in bd]
    assert all(2**56 < i < 2**57 for i in ids) and len(set(s.body_ids)) == n_bodies
    info = np.array([r["info"] for r in parsed["records"]])
    assert set(info[:, 0]) <= {0, 1, 2, 4, 8, 5, 6, 9, 10, 12}  # clippedEdges bit flags
    assert set(info[:, 2]) | set(info[:, 4]) <= {0, 1, 2, 3} and set(info[:, 1]) | set(info[:, 3]) <= {0, 1}
    assert (info[:, 5] == 0).all() and (info[:, 8] == 2).all() and (np.abs(info[:, 6:8]) <= 1).all()
    if kind == "leading_empty":
        assert parsed["bodies_per_frame"][0] == 0
    if kind == "trailing_empty":
        assert parsed["bodies_per_frame"][-1] == 0


def test_round_trip_through_graphfuse_reader(tmp_path: Path):
    from graphfuse.data.ntu.reader import read_skeleton

    for name in ("S001C002P003R001A010", "S001C001P001R002A002"):
        s = syn.synthesize_sample(name)
        seq = read_skeleton(s.write(tmp_path / f"{name}.skeleton"))
        fr, bd = np.nonzero(s.present)
        assert seq.num_frames == s.present.shape[0]
        np.testing.assert_array_equal(seq.body_frame, fr)
        np.testing.assert_array_equal(seq.body_id, np.array(s.body_ids, dtype=np.uint64)[bd])
        np.testing.assert_allclose(seq.xyz, s.joints[fr, bd], rtol=6e-7, atol=1e-9)
        np.testing.assert_allclose(seq.orientation, s.orientations[fr, bd], atol=1e-7)
        np.testing.assert_array_equal(seq.joint_tracking_state, s.tracking[fr, bd])
        np.testing.assert_allclose(seq.lean, s.body_info[fr, bd, 6:8], atol=1e-7)


# -- physical plausibility -----------------------------------------------------------------------
BONES = np.array([(c - 1, p - 1) for c, p in ntu25.BONE_PAIRS_1BASED if c != p])


def bone_lengths(x: np.ndarray) -> np.ndarray:
    return np.linalg.norm(x[..., BONES[:, 0], :] - x[..., BONES[:, 1], :], axis=-1)


@pytest.fixture(scope="module")
def slice_samples() -> list[syn.SyntheticSample]:
    return [syn.synthesize_sample(n) for n in SLICE]


def test_bone_lengths_constant(slice_samples):
    for s in slice_samples:
        for b in np.flatnonzero(~s.noise_body):
            frames = s.present[:, b]
            clean = bone_lengths(s.clean_joints[frames, b])
            np.testing.assert_allclose(clean, np.broadcast_to(clean[0], clean.shape), atol=1e-9)
            assert 0.02 < clean[0].min() and clean[0].max() < 0.6
            # With sensor noise, on joints tracked in both ends, lengths stay within ~2 cm.
            noisy = bone_lengths(s.joints[frames, b])
            tracked = (s.tracking[frames, b][:, BONES] == 2).all(-1)
            dev = np.abs(noisy - clean)[tracked]
            assert np.median(dev) < 0.006 and np.quantile(dev, 0.99) < 0.03, s.name


def test_subject_in_front_of_camera_and_upright(slice_samples):
    for s in slice_samples:
        x = s.joints[:, 0][s.present[:, 0]]
        z_base = x[:, J.SB, 2]
        assert 1.8 < z_base.min() and z_base.max() < 4.2, s.name
        if not s.present.shape[1] - s.noise_body.sum() == 2:
            assert 2.3 < z_base.mean() < 3.7, s.name
        pix = syn.project_depth(x[:, J.SM])
        assert ((pix > 0) & (pix < [512, 424])).all(), s.name
        assert (x[:, J.HEAD, 1] > x[:, J.SB, 1]).all(), s.name
        assert (x[:, J.HEAD, 1] - np.minimum(x[:, J.L_FT, 1], x[:, J.R_FT, 1]) > 0.7).all(), s.name


def test_views_of_one_performance_show_the_same_motion():
    names = [syn.sample_name(1, c, 4, 2, 7) for c in (1, 2, 3)]
    samples = [syn.synthesize_sample(n) for n in names]
    clean = [s.clean_joints[s.present[:, 0], 0] for s in samples]
    assert len({c.shape for c in clean}) == 1
    dist = [np.linalg.norm(c[:, :, None] - c[:, None], axis=-1) for c in clean]
    np.testing.assert_allclose(dist[0], dist[1], atol=1e-9)
    np.testing.assert_allclose(dist[0], dist[2], atol=1e-9)
    assert not np.allclose(clean[0], clean[1], atol=0.05)  # but seen from elsewhere
    # The recordings themselves differ (their own noise).
    assert not np.array_equal(samples[0].joints[samples[0].present[:, 0], 0] - clean[0],
                              samples[1].joints[samples[1].present[:, 0], 0] - clean[1])


def test_subject_proportions_are_per_subject():
    h = {(p, a): syn.synthesize_sample(syn.sample_name(1, 1, p, 1, a)).height[0]
         for p in (1, 2) for a in (1, 5)}
    assert h[1, 1] == h[1, 5] and h[2, 1] == h[2, 5] and h[1, 1] != h[2, 1]
    assert all(1.5 < v < 1.95 for v in h.values())


def test_body_counts_and_noise_bodies(slice_samples):
    for s in slice_samples:
        real = int((~s.noise_body).sum())
        assert real == (2 if s.label == syn.ACTIONS.index("handshake") else 1), s.name
        assert s.noise_body.sum() <= 1 and not s.noise_body[:real].any()  # noise body is last
        active = s.present[:, 0]
        np.testing.assert_array_equal(s.present[:, :real], np.repeat(active[:, None], real, 1))
        if s.noise_body.any():
            nb = s.present[:, -1]
            assert 5 <= nb.sum() <= 20 and not (nb & ~active).any()

            def energy(b):  # official read_xyz energy: sum of the per-axis std over frames x joints
                return s.joints[s.present[:, b], b].reshape(-1, 3).std(0).sum()

            assert energy(real) < 0.5 * min(energy(b) for b in range(real)), s.name


def test_handshake_hands_meet():
    for name in syn.synthetic_sample_names(num_subjects=3, cameras=(2,), actions=["handshake"]):
        s = syn.synthesize_sample(name)
        frames = s.present[:, 0]
        a, b = s.clean_joints[frames, 0], s.clean_joints[frames, 1]
        hands = np.linalg.norm(a[:, J.R_HA] - b[:, J.R_HA], axis=-1)
        pelvis = np.linalg.norm(a[:, J.SB] - b[:, J.SB], axis=-1)
        assert hands.min() < 0.2 and hands[0] > 0.8, name
        assert pelvis[0] > 1.4 and 0.5 < pelvis.min() < 1.3, name


def test_orientations(slice_samples):
    leaves = list(syn.LEAF_JOINTS)
    others = [j for j in range(25) if j not in leaves]
    for s in slice_samples[:12]:
        fr, bd = np.nonzero(s.present[:, ~s.noise_body])
        q = s.orientations[fr, bd]
        assert (q[:, leaves] == 0).all()
        np.testing.assert_allclose(np.linalg.norm(q[:, others], axis=-1), 1.0, atol=1e-6)
        # The quaternion's y axis lies along the bone from the parent (Kinect convention).
        w, v = q[:, others, :1], q[:, others, 1:]
        e_y = np.array([0.0, 1.0, 0.0])
        y_axis = e_y + 2 * w * np.cross(v, e_y) + 2 * np.cross(v, np.cross(v, e_y))
        x = s.clean_joints[fr, bd]
        par = syn.KINEMATIC_PARENTS.copy()
        bone = x[:, others] - x[:, np.where(par[others] < 0, J.SB, par[others])]
        bone[:, 0] = x[:, J.SM] - x[:, J.SB]
        cos = np.sum(y_axis * bone, -1) / np.linalg.norm(bone, axis=-1)
        assert np.quantile(cos, 0.01) > 0.99, s.name


# -- the actions differ ----------------------------------------------------------------------------
def features(s: syn.SyntheticSample) -> np.ndarray:
    """View-independent motion summary of body 0 (camera y is within a few degrees of vertical)."""
    x = s.joints[s.present[:, 0], 0]
    floor = np.minimum(x[:, J.L_FT, 1], x[:, J.R_FT, 1]).min()
    h = x[..., 1] - floor

    def pair(a, b):  # the two sides sorted by activity, so that handedness does not matter
        sa, sb = h[:, a].std(), h[:, b].std()
        hi, lo = (a, b) if sa >= sb else (b, a)
        return [h[:, hi].mean(), h[:, hi].std(), h[:, hi].max(), h[:, lo].mean(), h[:, lo].std()]

    hands = np.linalg.norm(x[:, J.L_WR] - x[:, J.R_WR], axis=-1)
    reach = np.linalg.norm((x[:, [J.L_WR, J.R_WR]] - x[:, [J.SM]])[..., [0, 2]], axis=-1)
    lean = np.linalg.norm((x[:, J.HEAD] - x[:, J.SB])[:, [0, 2]], axis=-1)
    speed = np.linalg.norm(np.diff(x, axis=0), axis=-1).mean(0) * 30
    return np.array([
        *pair(J.L_WR, J.R_WR), *pair(J.L_KN, J.R_KN), *pair(J.L_FT, J.R_FT),
        h[:, J.SB].mean(), h[:, J.SB].std(), h[:, J.HEAD].std(),
        hands.mean(), hands.std(), hands.min(), np.sort(reach.max(0)).tolist()[1], reach.mean(),
        lean.mean(), lean.max(), speed[[J.L_WR, J.R_WR]].max(), speed[[J.L_FT, J.R_FT]].max(), speed[J.HEAD],
        float((~s.noise_body).sum()),
    ], dtype=float)


def test_actions_are_distinguishable_across_subjects():
    train = [syn.synthesize_sample(n) for n in syn.synthetic_sample_names(num_subjects=2, cameras=(1, 2, 3))]
    test = [syn.synthesize_sample(syn.sample_name(1, c, 3, r, a))
            for c in (1, 3) for r in (1, 2) for a in range(1, 11)]
    ftr, fte = np.stack([features(s) for s in train]), np.stack([features(s) for s in test])
    ytr, yte = np.array([s.label for s in train]), np.array([s.label for s in test])
    mu, sd = ftr.mean(0), ftr.std(0) + 1e-9
    ztr, zte = (ftr - mu) / sd, (fte - mu) / sd
    centroids = np.stack([ztr[ytr == k].mean(0) for k in range(10)])
    pred = np.argmin(((zte[:, None] - centroids[None]) ** 2).sum(-1), 1)
    assert (pred == yte).mean() >= 0.85
    # ... and samples of one class are not copies of each other.
    same = [s for s in train if s.label == 0]
    assert len({s.joints.shape[0] for s in same}) > 1
    assert np.std([features(s)[1] for s in same]) > 0.01


def test_action_signatures():
    """Hand-checkable properties of each action for subject 1, camera 1, replication 1."""
    s = {a: syn.synthesize_sample(syn.sample_name(1, 1, 1, 1, a + 1)) for a in range(10)}

    def body0(a):
        return s[a].clean_joints[s[a].present[:, 0], 0]

    def up(x, j):  # height above the floor (lowest foot over the sequence)
        return x[:, j, 1] - np.minimum(x[:, J.L_FT, 1], x[:, J.R_FT, 1]).min()

    x = body0(0)  # waving: a hand above the head for a good part of the sequence
    assert (np.maximum(up(x, J.L_HA), up(x, J.R_HA)) > up(x, J.HEAD)).mean() > 0.4
    x = body0(1)  # jumping: both feet leave the floor
    assert np.minimum(up(x, J.L_FT), up(x, J.R_FT)).max() > 0.08
    x = body0(2)  # squatting: the pelvis drops by more than 25 cm
    assert np.ptp(up(x, J.SB)) > 0.25
    x = body0(3)  # kicking: a foot swings up by 30 cm and forwards, away from the other foot
    assert np.maximum(up(x, J.L_FT), up(x, J.R_FT)).max() > 0.3
    assert np.linalg.norm(x[:, J.L_FT] - x[:, J.R_FT], axis=-1).max() > 0.5
    x = body0(4)  # arm circles: both hands near shoulder height on average
    for hand, sh in ((J.L_HA, J.L_SH), (J.R_HA, J.R_SH)):
        assert abs(np.median(up(x, hand) - up(x, sh))) < 0.25
    x = body0(5)  # bowing: the head drops by more than 20 cm and moves forwards
    assert np.ptp(up(x, J.HEAD)) > 0.2
    x = body0(6)  # clapping: the hands meet
    assert np.linalg.norm(x[:, J.L_HA] - x[:, J.R_HA], axis=-1).min() < 0.1
    x = body0(7)  # stepping in place: each knee rises by more than 8 cm
    assert np.ptp(up(x, J.L_KN)) > 0.08 and np.ptp(up(x, J.R_KN)) > 0.08
    x = body0(8)  # reaching: a hand goes forwards (or up) near shoulder height, far from the chest
    hand = max((J.L_HA, J.R_HA), key=lambda j: np.ptp(up(x, j)))
    assert up(x, hand).max() > up(x, J.SSH).mean() - 0.3
    assert np.linalg.norm(x[:, hand] - x[:, J.SM], axis=-1).max() > 0.45
    assert s[9].present.shape[1] - s[9].noise_body.sum() == 2  # handshake: two people


# -- through the real preparation ----------------------------------------------------------------
def test_prepare_synthetic_ntu_end_to_end(tmp_path: Path):
    meta = syn.prepare_synthetic_ntu(tmp_path / "prep", seed=0, workers=1, progress=False,
                                     num_subjects=3, cameras=(1,), replications=(1,))
    assert meta["benchmark"] == "synthetic-xsub" and meta["num_class"] == 10
    train, test = meta["splits"]["train"]["samples"], meta["splits"]["test"]["samples"]
    assert len(train) == 20 and {n[8:12] for n in train} == {"P001", "P002"}
    assert len(test) == 10 and {n[8:12] for n in test} == {"P003"}
    data = np.load(tmp_path / "prep" / meta["splits"]["test"]["files"]["joint"], mmap_mode="r")
    assert data.shape == (10, 3, 300, 25, 2)
    hand = test.index("S001C001P003R001A010")
    assert np.abs(data[hand, :, :90, :, 1]).sum(0).all()  # the partner is kept as person 2
    # A stray file in the raw directory is refused rather than prepared.
    (tmp_path / "prep" / "raw" / "S001C001P009R001A001.skeleton").write_bytes(b"0\r\n")
    with pytest.raises(ValueError, match="did not write"):
        syn.prepare_synthetic_ntu(tmp_path / "prep", workers=1, progress=False,
                                  num_subjects=3, cameras=(1,), replications=(1,))
