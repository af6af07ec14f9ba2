"""`graphfuse show`: skeleton sequences (NTU .skeleton, PIE pose tracks) as GIF / MP4 with predictions."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from graphfuse.data.ntu.reader import make_sequence, write_skeleton
from graphfuse.graphs import ntu25
from graphfuse.show import (
    BACKGROUND,
    Timeline,
    add_arguments,
    read_intention_clip,
    read_ntu_clip,
    render,
    run,
    timeline_from,
    write_animation,
)

BG = np.array(BACKGROUND)


def _standing_body(shift_x: float = 0.0, t: int = 6) -> np.ndarray:
    """(T, 25, 3) camera-space joints of a T-posed body, walking along x over the frames."""
    base = np.zeros((25, 3))
    base[:, 2] = 3.0  # 3 m from the camera
    y = {0: -0.1, 1: 0.2, 20: 0.45, 2: 0.55, 3: 0.7, 12: -0.1, 16: -0.1, 13: -0.5, 17: -0.5,
         14: -0.9, 18: -0.9, 15: -0.95, 19: -0.95}
    for j, v in y.items():
        base[j, 1] = v
    for side, sign in (((4, 5, 6, 7, 21, 22), -1), ((8, 9, 10, 11, 23, 24), 1)):
        for k, j in enumerate(side):
            base[j, 0] = sign * (0.2 + 0.15 * min(k, 3) + (0.05 if k >= 4 else 0.0))
            base[j, 1] = 0.45
    for j, x in ((12, -0.1), (13, -0.1), (14, -0.1), (15, -0.1), (16, 0.1), (17, 0.1), (18, 0.1), (19, 0.1)):
        base[j, 0] = x
    frames = np.repeat(base[None], t, axis=0)
    frames[:, :, 0] += shift_x + 0.05 * np.arange(t)[:, None]
    return frames


def _ntu_file(tmp_path: Path, *, empty_frame: int | None = 2, untracked: tuple[int, int] | None = (4, 7)) -> Path:
    """A 6-frame .skeleton file of one body (written by the project's writer, read by the real reader):
    ``empty_frame`` holds no body; joint ``untracked[1]`` (the left hand) is not tracked in frame ``untracked[0]``."""
    t = 6
    xyz = _standing_body(t=t)
    frames = np.array([f for f in range(t) if f != empty_frame])
    xyz = xyz[frames]
    state = np.full((len(frames), 25), 2, np.int32)
    if untracked is not None:
        state[list(frames).index(untracked[0]), untracked[1]] = 0
    color = np.stack([960 + 400 * xyz[..., 0] / xyz[..., 2], 540 - 400 * xyz[..., 1] / xyz[..., 2]], axis=-1)
    seq = make_sequence(t, frames, xyz, joint_tracking_state=state, color_xy=color, depth_xy=color / 4)
    return write_skeleton(tmp_path / "S001C001P001R001A001.skeleton", seq)


def _args(**kw) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    argv = [str(kw.pop("input"))]
    for k, v in kw.items():
        argv += [f"--{k.replace('_', '-')}", str(v)]
    return parser.parse_args(argv)


def _midpoint_colour(frame: np.ndarray, points: np.ndarray, a: int, b: int) -> np.ndarray:
    x, y = np.rint((points[a] + points[b]) / 2).astype(int)
    return frame[y, x]


def test_ntu_file_to_gif_has_every_frame_and_the_bones(tmp_path):
    path = _ntu_file(tmp_path)
    out = tmp_path / "clip.gif"
    assert run(_args(input=path, out=out, size=160, fps=10)) == 0
    from PIL import Image

    with Image.open(out) as im:
        assert im.n_frames == 6 and im.size == (160, 160)
        im.seek(1)
        decoded = np.asarray(im.convert("RGB"))
    clip = read_ntu_clip(path)
    rendering = render(clip, size=160)
    pts = rendering.points[1, 0]  # frame 1, body 0
    spine = (ntu25.JOINT_NAMES.index("spine_mid"), ntu25.JOINT_NAMES.index("spine_shoulder"))
    thigh = (ntu25.JOINT_NAMES.index("right_hip"), ntu25.JOINT_NAMES.index("right_knee"))
    for a, b in (spine, thigh):  # drawn: in the rendering and in the decoded GIF (palette-quantised)
        assert (_midpoint_colour(rendering.frames[1], pts, a, b) != BG).any()
        assert np.abs(_midpoint_colour(decoded, pts, a, b).astype(int) - BG).sum() > 60
    assert (np.abs(decoded.astype(int) - BG).sum(-1) > 60).mean() < 0.2  # mostly background


def test_missing_bodies_and_untracked_joints_are_not_drawn(tmp_path):
    clip = read_ntu_clip(_ntu_file(tmp_path))
    assert clip.joints.shape == (6, 2, 25, 2) and not clip.valid[:, 1].any()  # one body in the file
    assert not clip.valid[2].any()  # the frame without a body
    hand, wrist = ntu25.JOINT_NAMES.index("left_hand"), ntu25.JOINT_NAMES.index("left_wrist")
    assert not clip.valid[4, 0, hand] and clip.valid[3, 0, hand]
    r = render(clip, size=160)
    header = 160 // 22 + 12
    assert (r.frames[2, header:] == BG).all()  # nothing drawn below the caption
    # frame 4: the wrist -> hand bone is absent (the hand is not tracked); frame 3 has it
    far = 0.8 * r.points[3, 0, hand] + 0.2 * r.points[3, 0, wrist]  # beyond the wrist's joint dot
    x, y = np.rint(far).astype(int)
    assert (r.frames[3, y, x] != BG).any()
    x, y = np.rint(0.8 * r.points[4, 0, hand] + 0.2 * r.points[4, 0, wrist]).astype(int)
    assert (r.frames[4, y, x] == BG).all()


def test_views_and_the_official_body_selection(tmp_path):
    """Three bodies: the two of highest energy are drawn (select_bodies of preparation), in the
    chosen coordinates; camera y is flipped (up on screen)."""
    from graphfuse.data.ntu.prepare import select_bodies
    from graphfuse.data.ntu.reader import read_skeleton

    t = 5
    still = _standing_body(-1.0, t)
    still[:, :, 0] -= 0.05 * np.arange(t)[:, None]  # no motion: lowest energy
    moving = _standing_body(0.5, t)
    jumping = _standing_body(1.5, t)
    jumping[:, :, 1] += 0.3 * np.arange(t)[:, None] % 2
    xyz = np.stack([still, moving, jumping], axis=1).reshape(-1, 25, 3)
    seq = make_sequence(t, np.repeat(np.arange(t), 3), xyz)
    path = write_skeleton(tmp_path / "S001C001P001R001A050.skeleton", seq)
    clip = read_ntu_clip(path, view="xyz")
    selected, _ = select_bodies(read_skeleton(path), max_frame=t)  # (3, T, V, 2)
    expected = selected[:2].transpose(1, 3, 2, 0) * np.array([1.0, -1.0])
    np.testing.assert_array_equal(clip.joints, expected)
    assert not np.allclose(clip.joints[:, 0, 0, 0], still[:, 0, 0]) and clip.valid.all()
    with pytest.raises(ValueError, match="color coordinates are all zero"):
        read_ntu_clip(path, view="color")  # make_sequence leaves the 2D coordinates at zero
    with pytest.raises(ValueError, match="view must be one of"):
        read_ntu_clip(path, view="top")


def test_mp4_has_every_frame_and_the_size(tmp_path):
    import av

    clip = read_ntu_clip(_ntu_file(tmp_path))
    out = write_animation(render(clip, size=96).frames, tmp_path / "clip.mp4", fps=12)
    with av.open(str(out)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 6 and frames[0].shape == (96, 96, 3)
    with pytest.raises(ValueError, match="even width and height"):
        write_animation(np.zeros((2, 95, 96, 3), np.uint8), tmp_path / "odd.mp4")
    with pytest.raises(ValueError, match=r"\.gif or \.mp4"):
        write_animation(np.zeros((2, 96, 96, 3), np.uint8), tmp_path / "clip.avi")


def test_timeline_semantics():
    clip = read_ntu_clip.__globals__["SkeletonClip"](
        name="x", joints=np.zeros((6, 1, 25, 2)), valid=np.zeros((6, 1, 25), bool),
        edges=np.asarray(ntu25.EDGES), frames=np.arange(6), filled=np.zeros(6, bool), track="set01/video_0001/1_1_1")
    # skeleton action: prefixes of 2 and 4 frames hold from frame index 1 and 3 on
    tl = timeline_from((np.array([2, 4]), np.array([[0.9, 0.1], [0.2, 0.8]])), clip, ["a", "b"])
    assert tl.at(np.arange(6)).tolist() == [-1, 0, 0, 1, 1, 1] and tl.class_names == ["a", "b"]
    # crossing intention: windows ending at frames 2 and 4 (dict per track); class names of the wrong length
    tl = timeline_from({clip.track: (np.array([4, 2]), np.array([[0.2, 0.8], [0.9, 0.1]]))}, clip, ["only one"])
    assert tl.at(np.arange(6)).tolist() == [-1, -1, 0, 0, 1, 1] and tl.class_names == ["class 0", "class 1"]
    assert timeline_from({"another/track": (np.array([4]), np.ones((1, 2)))}, clip, None) is None


def test_prediction_text_and_strip_are_drawn(tmp_path):
    clip = read_ntu_clip(_ntu_file(tmp_path, empty_frame=None, untracked=None))
    plain = render(clip, size=160)
    tl = Timeline(np.array([1, 3]), np.array([[0.3, 0.7], [0.0, 1.0]]), ["wave", "clap"])
    shown = render(clip, size=160, timeline=tl)
    assert shown.frames.shape == plain.frames.shape == (6, 160, 160, 3)
    from graphfuse.show import STRIP_BACKGROUND, STRIP_PAST

    strip = shown.frames[:, -22:]  # the bottom strip (size // 7 = 22 rows), in its own colour
    assert (strip == STRIP_BACKGROUND).all(-1).mean(axis=(1, 2)).min() > 0.5
    assert not (plain.frames == STRIP_BACKGROUND).all(-1).any()
    line = 160 // 22
    caption = slice(3 + line + 4, 3 + 2 * line + 6)  # the second header line: "clap: 1.00" / "observing ..."
    assert (shown.frames[:, caption] != BG).any(axis=(1, 2, 3)).all()
    assert not np.array_equal(shown.frames[0, caption], shown.frames[5, caption])  # observing -> a class
    # the curve of p(clap) (the class predicted at the end): 1.0 from frame 3 on, drawn at the strip's top
    last = shown.frames[5, -22:]
    top_rows = last[:5]
    assert (np.abs(top_rows.astype(int) - STRIP_PAST).sum(-1) == 0).any()
    with pytest.raises(ValueError, match="not one of the model's classes"):
        render(clip, size=160, timeline=tl, strip_class="jump")


@pytest.fixture(scope="module")
def small_pie(tmp_path_factory):
    from graphfuse.data.synthetic.pie import generate_synthetic_pie

    root = tmp_path_factory.mktemp("pie")
    summary = generate_synthetic_pie(root, sets=("set03",), videos_per_set=1, peds_per_video=2)
    return root, summary["videos"][0]


def test_pie_track_through_the_pose_reader(small_pie, tmp_path):
    from graphfuse.data.intention.pie import read_pie_annotations
    from graphfuse.data.intention.poses import PoseSource

    root, video = small_pie
    xml = root / "annotations/set03/video_0001_annt.xml"
    clip = read_intention_clip(xml)
    tracks = read_pie_annotations(xml, "set03", "video_0001").pedestrians
    longest = max(sorted(tracks), key=lambda k: len(tracks[k].frames))
    assert clip.track == f"set03/video_0001/{longest}" and clip.kind == "intention"
    track = tracks[longest]
    pose, mask = PoseSource(root / "poses").track_poses("set03", "video_0001", longest, track.frames, track.boxes)
    np.testing.assert_array_equal(clip.frames, track.frames)
    np.testing.assert_array_equal(clip.joints[:, 0], pose[..., :2])
    np.testing.assert_array_equal(clip.filled, ~mask)
    other = next(p["ped_id"] for p in video["pedestrians"] if p["ped_id"] != longest)
    assert read_intention_clip(xml, root / "poses", other).num_frames == len(tracks[other].frames)
    with pytest.raises(ValueError, match=r"no pedestrian track '9_9_9' \(tracks: "):
        read_intention_clip(xml, track="9_9_9")
    with pytest.raises(FileNotFoundError, match="pose folder not found"):
        read_intention_clip(xml, tmp_path / "nowhere")
    out = tmp_path / "track.gif"
    assert run(_args(input=xml, out=out, size=128, track=longest)) == 0
    from PIL import Image

    with Image.open(out) as im:
        assert im.n_frames == len(track.frames) and im.size == (128, 128)


class _FakePredictor:
    """What graphfuse.infer.Predictor offers graphfuse.show (family, class names, data options, timeline)."""

    def __init__(self, family, result, class_names):
        self.family, self.result, self.class_names = family, result, class_names
        self.data_options = {"dataset": "synthetic-pie", "pose": {"format": "coco", "min_iou": 0.3}}
        self.calls = []

    def timeline(self, path, stride=1, **options):
        self.calls.append((Path(path), stride, options))
        return self.result


def test_run_with_a_checkpoint_draws_its_timeline(small_pie, tmp_path, monkeypatch, capsys):
    import graphfuse.infer

    root, _ = small_pie
    xml = root / "annotations/set03/video_0001_annt.xml"
    clip = read_intention_clip(xml)
    windows = clip.frames[15::5]
    probs = np.stack([np.linspace(0.9, 0.1, len(windows)), np.linspace(0.1, 0.9, len(windows)),
                      np.zeros(len(windows))], axis=1)
    fake = _FakePredictor("crossing_intention", {clip.track: (windows, probs)},
                          ["not crossing", "crossing", "irrelevant"])
    monkeypatch.setattr(graphfuse.infer, "load_predictor", lambda ckpt, device="cpu": fake)
    out = tmp_path / "pred.mp4"
    assert run(_args(input=xml, out=out, size=128, ckpt="model.ckpt", stride=5, strip_class="crossing")) == 0
    assert fake.calls == [(xml, 5, {"poses": None, "vehicle": None, "frames_dir": None})]
    assert "with predictions" in capsys.readouterr().out
    import av

    with av.open(str(out)) as container:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    assert frames.shape == (clip.num_frames, 128, 128, 3)
    assert (np.abs(frames[:, -16:].astype(int) - BG).sum(-1) > 30).any(axis=(1, 2)).all()  # the strip, every frame
    # an NTU file with this crossing-intention model is refused, naming both
    with pytest.raises(ValueError, match="NTU skeleton file but model.ckpt is a crossing_intention model"):
        run(_args(input=_ntu_file(tmp_path), out=tmp_path / "x.gif", ckpt="model.ckpt"))


def test_bad_options_are_refused(tmp_path):
    path = _ntu_file(tmp_path)
    with pytest.raises(ValueError, match="must end in .gif or .mp4"):
        run(_args(input=path, out=tmp_path / "x.png"))
    with pytest.raises(ValueError, match="--size must be even"):
        run(_args(input=path, out=tmp_path / "x.gif", size=161))
    with pytest.raises(FileNotFoundError, match="input not found"):
        run(_args(input=tmp_path / "missing.skeleton"))
    (tmp_path / "bad.skeleton").write_text("3\n1\n")
    from graphfuse.data.ntu.reader import SkeletonFormatError

    with pytest.raises(SkeletonFormatError, match="bad.skeleton"):
        run(_args(input=tmp_path / "bad.skeleton", out=tmp_path / "x.gif"))


# -- with a real checkpoint through graphfuse.infer ---------------------------------------------------
def _checkpoint(path: Path, model: dict, data: dict, class_names=None) -> Path:
    """A freshly initialised task saved in graphfuse's checkpoint format, its block holding ``data``
    (what the datamodule's inference_options() records)."""
    import torch
    import yaml

    from graphfuse.checkpoints import graphfuse_block, save_checkpoint
    from graphfuse.infer import _instantiate

    torch.manual_seed(0)
    task = _instantiate(model)
    save_checkpoint({"state_dict": task.state_dict(),
                     "graphfuse": graphfuse_block(config=yaml.safe_dump({"model": model}), data=data,
                                                  class_names=class_names, num_class=task.model.num_class)}, path)
    return path


@pytest.mark.slow
def test_show_with_real_checkpoints(small_pie, tmp_path):
    """The timelines of graphfuse.infer's predictors land on the frames of the clip (NTU prefixes;
    PIE windows keyed by the clip's track)."""
    from graphfuse.infer import load_predictor

    shiftgcn = {"class_path": "graphfuse.tasks.ActionRecognition", "init_args": {"model": {
        "class_path": "graphfuse.models.ShiftGCN", "init_args": {"num_class": 3, "num_person": 2}}}}
    ntu_ckpt = _checkpoint(tmp_path / "ntu.ckpt", shiftgcn, {
        "dataset": "ntu", "stream": "joint", "clip_len": 8, "frame_stride": 1, "input_names": ["x"],
        "input_shapes": {"x": [3, 8, 25, 2]}}, ["wave", "clap", "jump"])
    path = _ntu_file(tmp_path, empty_frame=None, untracked=None)
    out = tmp_path / "ntu.gif"
    assert run(_args(input=path, out=out, ckpt=ntu_ckpt, stride=2, size=96)) == 0
    from PIL import Image

    with Image.open(out) as im:
        assert im.n_frames == 6 and im.size == (96, 96)
    predictor = load_predictor(ntu_ckpt)
    clip = read_ntu_clip(path)
    tl = timeline_from(predictor.timeline(path, 2), clip, predictor.class_names)
    assert tl.available.tolist() == [1, 3, 5] and tl.class_names == ["wave", "clap", "jump"]
    np.testing.assert_allclose(tl.probabilities.sum(1), 1.0)

    root, _ = small_pie
    pedgraph = {"class_path": "graphfuse.tasks.CrossingIntention", "init_args": {"model": {
        "class_path": "graphfuse.models.PedGraph",
        "init_args": {"num_class": 3, "in_channels": 3, "use_velocity": True, "use_image": False}}}}
    pie_ckpt = _checkpoint(tmp_path / "pie.ckpt", pedgraph, {
        "dataset": "synthetic-pie", "labels": "three", "obs_length": 16, "in_channels": 3, "use_velocity": True,
        "use_image": False, "input_names": ["pose", "velocity"], "input_shapes": {"pose": [3, 16, 19]},
        "pose": {"format": "coco", "min_iou": 0.3, "fill": "interpolate", "has_depth": False}},
        ["not crossing", "crossing", "irrelevant"])
    xml = root / "annotations/set03/video_0001_annt.xml"
    clip = read_intention_clip(xml)
    result = load_predictor(pie_ckpt).timeline(xml, 20)
    assert clip.track in result
    tl = timeline_from(result, clip, ["not crossing", "crossing", "irrelevant"])
    assert tl.available[0] == clip.frames[15] and np.all(np.isin(tl.available, clip.frames))
    out = tmp_path / "pie.mp4"
    assert run(_args(input=xml, out=out, ckpt=pie_ckpt, stride=20, size=96)) == 0
    import av

    with av.open(str(out)) as container:
        assert sum(1 for _ in container.decode(video=0)) == clip.num_frames
