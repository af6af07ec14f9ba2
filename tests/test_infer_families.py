"""`graphfuse infer` for multi-label images, two-stream videos and JAAD videos: a raw file through
the family's adapter gives the test loader's input tensors bit for bit and the probabilities of
the task's ``predict_step`` (the test loop's per-sample records) on the same batch.

Data: small synthetic COCO-format images and UCF101-format videos generated here in their
original formats and prepared by the real pipelines; JAAD's real ``video_0001`` annotation and
vehicle XML (tests/data/intention/data/jaad) with pose results written for its boxes in the
COCO keypoint-results format, prepared by ``prepare_intention``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from test_infer import make_checkpoint, pedgraph

from graphfuse.cli import main
from graphfuse.infer import InferenceError, load_predictor

JAAD_DATA = Path(__file__).parent / "data" / "intention" / "data" / "jaad"


def _predict_step(predictor, batch: dict) -> dict:
    """The task's ``predict_step`` on a test-loader batch (what the test loop records)."""
    with torch.no_grad():
        return predictor.task.predict_step(batch, 0)


# -- multi-label images ---------------------------------------------------------------------------
def mlgcn(num_class: int = 20, in_channel: int = 300, size: int = 32) -> dict:
    return {"class_path": "graphfuse.tasks.multilabel.MultiLabelRecognition", "init_args": {"model": {
        "class_path": "graphfuse.models.mlgcn.MLGCN",
        "init_args": {"num_class": num_class, "backbone": "resnet18", "in_channel": in_channel, "hidden": 16,
                      "image_size": size}}}}


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    """30 synthetic COCO-format JPEGs of 32 px (20 train, 10 val = the test split), prepared, and
    an ML-GCN checkpoint (ResNet-18 trunk, 32 px input) whose label graph is the data's."""
    from graphfuse.data.multilabel.datamodule import MultiLabelDataModule
    from graphfuse.data.synthetic.coco import prepare_synthetic_coco

    data = tmp_path_factory.mktemp("coco") / "synthetic-coco"
    prepare_synthetic_coco(data, num_train=20, num_val=10, size=32, min_positives=0)
    dm = MultiLabelDataModule(str(data), image_size=32, val_fraction=0.0, train_eval_subset=0, eval_batch_size=4)
    graph = dm.label_graph()
    ckpt = make_checkpoint(data.parent / "mlgcn.ckpt", mlgcn(in_channel=graph["embeddings"].shape[1]), dm,
                           before_save=lambda task: task.model.set_label_graph(**graph))
    return ckpt, dm


def test_multilabel_image_equals_the_test_loop(coco):
    ckpt, dm = coco
    predictor = load_predictor(ckpt)
    assert predictor.family == "multilabel" and predictor.class_names == dm.class_names
    assert predictor.network.has_label_graph
    ds = dm.dataset("test")
    batch = next(iter(dm.test_dataloader()))  # the first 4 test images, as the test loop reads them
    files = [ds.image_root / ds.names[int(i)] for i in batch["id"]]
    samples = predictor.read(files)
    torch.testing.assert_close(torch.stack([s.inputs["image"] for s in samples]), batch["image"], rtol=0, atol=0)
    results = predictor.predict(samples, threshold=0.5)
    want = torch.sigmoid(_predict_step(predictor, batch)["scores"].double()).numpy()
    np.testing.assert_allclose(np.stack([r.probabilities for r in results]), want, rtol=0, atol=1e-12)
    for r, p in zip(results, want):  # exactly the labels at or above the threshold, most probable first
        assert [n for n, _ in r.top] == [dm.class_names[k] for k in np.argsort(-p, kind="stable") if p[k] >= 0.5]


def test_multilabel_threshold_and_json(coco, capsys):
    ckpt, dm = coco
    ds = dm.dataset("test")
    path = ds.image_root / ds.names[0]
    assert main(["infer", "--ckpt", str(ckpt), str(path), "--json", "--threshold", "0.52"]) == 0
    out = json.loads(capsys.readouterr().out)
    r = out["results"][0]
    assert out["family"] == "multilabel" and r["name"] == path.name and len(r["probabilities"]) == 20
    shown = {t["class"] for t in r["top"]}
    assert shown == {n for n, p in r["probabilities"].items() if p >= 0.52}
    assert main(["infer", "--ckpt", str(ckpt), str(path), "--threshold", "1.5"]) == 2
    assert "--threshold must be in [0, 1]" in capsys.readouterr().err


def test_multilabel_bad_image_gets_the_decoders_error(coco, tmp_path, capsys):
    ckpt, _ = coco
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    assert main(["infer", "--ckpt", str(ckpt), str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and len(err.strip().splitlines()) == 1


# -- two-stream videos ----------------------------------------------------------------------------
def tiny_two_stream(num_class: int = 2, num_frames: int = 2, flow_stack: int = 4) -> dict:
    return {"class_path": "graphfuse.tasks.ActionRecognition", "init_args": {"model": {
        "class_path": "graphfuse.models.two_stream.TwoStreamNet",
        "init_args": {"num_class": num_class, "backbone": "vgg_m_2048",
                      "backbone_options": {"channels": [8, 8, 8, 8, 8], "fc6": 16, "fc7": 16},
                      "fusion": "conv", "fusion_layer": "relu5", "temporal": "conv3d_pool3d",
                      "num_frames": num_frames, "flow_channels": 2 * flow_stack, "dropout": 0.5,
                      "freeze_rgb_below_fusion": False}}}}


@pytest.fixture(scope="module")
def ucf(tmp_path_factory):
    """12 synthetic UCF101-format .avi videos (2 classes, 12-14 frames of 64 px; 4 in the test
    split) prepared with TV-L1 flow by the real path, and a tiny two-stream checkpoint (VGG-M
    with 8 channels, conv fusion at relu5, 3D conv + pooling, 2 frames, 4-frame flow stacks)."""
    pytest.importorskip("cv2")
    pytest.importorskip("av")
    from graphfuse.data.synthetic.ucf101 import prepare_synthetic_ucf101
    from graphfuse.data.video.datamodule import VideoDataModule

    data = tmp_path_factory.mktemp("ucf") / "synthetic-ucf101"
    prepare_synthetic_ucf101(data, classes=2, per_class=6, frames=(12, 14), progress=False, jobs=1)
    dm = VideoDataModule(str(data), num_frames=2, flow_stack=4, stride=[2, 4], crop_size=64, test_protocol="center",
                         eval_batch_size=4)
    return make_checkpoint(data.parent / "two_stream.ckpt", tiny_two_stream(), dm), dm, data


def test_two_stream_video_equals_the_test_loop(ucf):
    ckpt, dm, data = ucf
    predictor = load_predictor(ckpt)
    assert predictor.family == "two_stream" and predictor.class_names == ["SlideRightStripes", "SlideRightDots"]
    ds = dm.dataset("test")
    batch = next(iter(dm.test_dataloader()))  # the 4 test videos
    assert len(batch["id"]) == 4
    names = [ds.names[int(i)] for i in batch["id"]]
    files = [data / "raw" / "UCF-101" / n.split("_")[1] / f"{n}.avi" for n in names]
    samples = predictor.read(files)
    for key in ("rgb", "flow"):  # decoding, TV-L1 (the data's parameters), JPEG quantisation, crop: identical
        torch.testing.assert_close(torch.stack([s.inputs[key] for s in samples]), batch[key], rtol=0, atol=0)
    results = predictor.predict(samples, top_k=1)
    want = torch.softmax(_predict_step(predictor, batch)["scores"].double(), -1).numpy()
    np.testing.assert_allclose(np.stack([r.probabilities for r in results]), want, rtol=0, atol=1e-12)
    assert [r.top[0][0] for r in results] == [predictor.class_names[k] for k in want.argmax(1)]


def test_two_stream_preparation_options_from_the_block():
    from graphfuse.data.video.flow import TVL1_DEFAULT, TVL1_FAST
    from graphfuse.infer.video import DEFAULT_FRAME_SIZE, flow_parameters, frame_size

    params = {**TVL1_DEFAULT.as_dict(), "warps": 3}
    assert flow_parameters({"flow_format": {"params": params}}).warps == 3
    assert flow_parameters({"dataset": "synthetic-ucf101", "flow_format": {"source": "tvl1"}}) == TVL1_FAST
    assert flow_parameters({"dataset": "ucf101", "flow_format": {"source": "tvl1"}}) == TVL1_DEFAULT
    with pytest.raises(InferenceError, match=r"unknown TV-L1 parameter\(s\) \['iterations'\]"):
        flow_parameters({"flow_format": {"params": {"iterations": 3}}})
    assert frame_size({"frame_size": None}) is None and frame_size({"frame_size": 128}) == 128
    assert frame_size({}) == DEFAULT_FRAME_SIZE
    with pytest.raises(InferenceError, match="frame_size"):
        frame_size({"frame_size": "big"})


def test_two_stream_missing_video_is_named(ucf, tmp_path, capsys):
    ckpt, _, _ = ucf
    missing = tmp_path / "v_Nothing_g01_c01.avi"
    assert main(["infer", "--ckpt", str(ckpt), str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err


def test_a_network_that_fails_on_the_input_is_one_line(ucf, tmp_path, capsys):
    from graphfuse.data.video.datamodule import VideoDataModule

    _, _, data = ucf
    dm = VideoDataModule(str(data), num_frames=2, flow_stack=4, crop_size=32, test_protocol="center")
    ckpt = make_checkpoint(tmp_path / "small.ckpt", tiny_two_stream(), dm)  # 32 px: VGG-M pools to nothing
    video = next((data / "raw" / "UCF-101").rglob("*.avi"))
    assert main(["infer", "--ckpt", str(ckpt), str(video)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert f"{video}: the checkpoint's network fails on the prepared input (rgb (3, 2, 32, 32), flow (8, 2, 32, 32))" in err


# -- JAAD ----------------------------------------------------------------------------------------
def _write_jaad_poses(root: Path) -> None:
    """COCO keypoint results (AlphaPose style, ``image_id`` = frame file name) for every box of
    every track of ``video_0001``, with every 7th frame of a track missing (the fill rule's job)."""
    from graphfuse.data.intention.jaad import read_jaad_annotations

    video = read_jaad_annotations(root / "annotations" / "video_0001.xml")
    rng = np.random.default_rng(0)
    template = rng.uniform(0.1, 0.9, size=(17, 2))
    entries = []
    for _, t in sorted(video.tracks.items()):  # a loop over tracks
        keep = np.ones(len(t.frames), bool)
        keep[3::7] = False
        boxes = t.boxes[keep]
        xy = boxes[:, None, :2] + template * (boxes[:, None, 2:] - boxes[:, None, :2])
        xy = np.round(xy + rng.normal(0.0, 1.0, size=xy.shape), 2)
        kp = np.concatenate([xy, np.full((*xy.shape[:2], 1), 0.9)], axis=2).reshape(len(xy), -1)
        wh = boxes[:, 2:] - boxes[:, :2]
        entries += [{"image_id": f"{int(f):05d}.png", "category_id": 1, "keypoints": k, "score": 0.9,
                     "box": [*b[:2], *s]} for f, k, b, s in zip(t.frames[keep].tolist(), kp.tolist(),
                                                                   boxes.tolist(), wh.tolist())]
    (root / "poses").mkdir()
    (root / "poses" / "video_0001.json").write_text(json.dumps(entries))


@pytest.fixture(scope="module")
def jaad(tmp_path_factory):
    """JAAD's real video_0001 (annotations, vehicle, ...) as both the train and the test split,
    poses written for its boxes, prepared by the benchmark's defaults (16 observed frames)."""
    from graphfuse.data.intention.datamodule import IntentionDataModule
    from graphfuse.data.intention.prepare import prepare_intention

    base = tmp_path_factory.mktemp("jaad")
    root = base / "JAAD"
    shutil.copytree(JAAD_DATA, root, ignore=shutil.ignore_patterns("split_ids"))
    split = root / "split_ids" / "default"
    split.mkdir(parents=True)
    for name, text in (("train", "video_0001\n"), ("val", ""), ("test", "video_0001\n")):
        (split / f"{name}.txt").write_text(text)
    _write_jaad_poses(root)
    prepared = base / "prepared"
    prepare_intention("jaad", root, prepared, poses=root / "poses", splits=("train", "test"))
    dm = IntentionDataModule(str(prepared), eval_batch_size=64)
    return make_checkpoint(base / "jaad.ckpt", pedgraph(), dm), dm, root


def test_jaad_video_equals_the_test_loop(jaad):
    ckpt, dm, root = jaad
    predictor = load_predictor(ckpt)
    assert predictor.family == "crossing_intention" and predictor.data_options["dataset"] == "jaad"
    batch = next(iter(dm.test_dataloader()))
    names = [dm.dataset("test").names[int(i)] for i in batch["id"]]
    assert len(names) >= 5 and all(n.startswith("video_0001/") for n in names)
    samples = {s.name: s for s in predictor.read([root / "annotations" / "video_0001.xml"], stride=1)}
    chosen = [samples[n] for n in names]  # every prepared test window is among the video's windows
    for key in ("pose", "velocity"):
        torch.testing.assert_close(torch.stack([s.inputs[key] for s in chosen]), batch[key], rtol=0, atol=0)
    results = predictor.predict(chosen)
    record = _predict_step(predictor, batch)
    np.testing.assert_allclose(np.stack([r.probabilities for r in results]), record["probs"].double().numpy(),
                               rtol=0, atol=1e-7)
    np.testing.assert_allclose([r.info["crossing"] for r in results], record["scores"].double().numpy(),
                               rtol=0, atol=1e-7)
    # groups are not pedestrians; every other track (behavioural or not) gets windows
    tracks = {s.info["track"] for s in samples.values()}
    assert tracks == {"video_0001/0_1_2", "video_0001/0_1_2b", "video_0001/0_1_3b", "video_0001/0_1_4"}


def test_jaad_timeline_and_missing_vehicle(jaad, tmp_path, capsys):
    ckpt, _, root = jaad
    predictor = load_predictor(ckpt)
    xml = root / "annotations" / "video_0001.xml"
    timeline = predictor.timeline(xml, stride=50)
    frames, probs = timeline["video_0001/0_1_3b"]
    assert probs.shape == (len(frames), 3) and np.all(np.diff(frames) == 50)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-6)
    copy = tmp_path / "JAAD"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("annotations_vehicle"))
    assert main(["infer", "--ckpt", str(ckpt), str(copy / "annotations" / "video_0001.xml")]) == 2
    err = capsys.readouterr().err
    assert "video_0001_vehicle.xml" in err and "--vehicle" in err
