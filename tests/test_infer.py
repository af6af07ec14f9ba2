"""`graphfuse infer`: raw files through the family's readers and preparation give the test
loop's inputs and probabilities; mismatched checkpoints are refused naming both shapes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from graphfuse.checkpoints import graphfuse_block, save_checkpoint
from graphfuse.cli import main
from graphfuse.infer import ShapeMismatchError, _instantiate, load_predictor


def make_checkpoint(path: Path, model: dict, datamodule, *, before_save=None, **block) -> Path:
    """A checkpoint in graphfuse's format: a freshly initialised task built from ``model`` (a
    config's model section) and the datamodule's inference options, as a run would save it;
    ``before_save(task)`` may fill data-derived state first (ML-GCN's label graph, as the task's
    ``setup`` does in a run)."""
    torch.manual_seed(0)
    task = _instantiate(model)
    if before_save is not None:
        before_save(task)
    data = datamodule.inference_options() if datamodule is not None else {}
    data.update(block.pop("data", {}))
    names = data.pop("class_names", None)
    cfg = yaml.safe_dump({"model": model})
    save_checkpoint({"state_dict": task.state_dict(),
                     "graphfuse": graphfuse_block(config=cfg, data=data, class_names=names,
                                                  num_class=task.model.num_class, **block)}, path)
    return path


def shiftgcn(num_class: int = 10, num_person: int = 2) -> dict:
    return {"class_path": "graphfuse.tasks.ActionRecognition", "init_args": {"model": {
        "class_path": "graphfuse.models.ShiftGCN", "init_args": {"num_class": num_class, "num_person": num_person}}}}


def pedgraph() -> dict:
    return {"class_path": "graphfuse.tasks.CrossingIntention", "init_args": {"model": {
        "class_path": "graphfuse.models.PedGraph",
        "init_args": {"num_class": 3, "in_channels": 3, "use_velocity": True, "use_image": False}}}}


@pytest.fixture(scope="module")
def ntu_ckpt(synthetic_ntu, tmp_path_factory):
    from graphfuse.data.ntu.datamodule import SkeletonDataModule

    dm = SkeletonDataModule(str(synthetic_ntu), clip_len=8)
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "ntu.ckpt", shiftgcn(), dm), dm


@pytest.fixture(scope="module")
def pie_ckpt(synthetic_pie, tmp_path_factory):
    from graphfuse.data.intention.datamodule import IntentionDataModule

    dm = IntentionDataModule(str(synthetic_pie))
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "pie.ckpt", pedgraph(), dm), dm


def test_skeleton_file_equals_the_test_loop(ntu_ckpt, synthetic_ntu):
    ckpt, dm = ntu_ckpt
    predictor = load_predictor(ckpt)
    assert predictor.family == "skeleton_action" and predictor.class_names is None
    ds = dm.build_dataset("test")
    rows = [0, 7, 23]
    files = [synthetic_ntu / "raw" / f"{ds.names[i]}.skeleton" for i in rows]
    samples = predictor.read(files)
    batch = {"x": torch.stack([ds[i]["x"] for i in rows])}
    for s, i in zip(samples, rows):
        assert torch.equal(s.inputs["x"], ds[i]["x"])  # the same prepared input, bit for bit
    results = predictor.predict(samples, top_k=5)
    with torch.no_grad():  # the test loop's logits: the task's forward on the loader's batch
        logits = predictor.task(**predictor.task.model_inputs(batch))
    want = torch.softmax(logits.double(), -1).numpy()
    np.testing.assert_allclose(np.stack([r.probabilities for r in results]), want, rtol=0, atol=1e-12)
    assert [len(r.top) for r in results] == [5, 5, 5]
    assert results[0].top[0][1] == pytest.approx(want[0].max())


def test_skeleton_timeline_prefixes(ntu_ckpt, synthetic_ntu):
    ckpt, dm = ntu_ckpt
    predictor = load_predictor(ckpt)
    name = dm.build_dataset("test").names[0]
    path = synthetic_ntu / "raw" / f"{name}.skeleton"
    frames, probs = predictor.timeline(path, stride=25)
    total = predictor.read([path])[0].info["frames"]
    assert frames[-1] == total and frames[0] == 25 and np.all(np.diff(frames) > 0)
    assert probs.shape == (len(frames), 10)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-9)
    # the last prefix is the whole file
    # (batched with other prefixes: float32 reductions may round differently)
    np.testing.assert_allclose(probs[-1], predictor.predict(predictor.read([path]))[0].probabilities, atol=1e-5)


def test_cli_json_parses(ntu_ckpt, synthetic_ntu, capsys):
    ckpt, dm = ntu_ckpt
    name = dm.build_dataset("test").names[1]
    assert main(["infer", "--ckpt", str(ckpt), str(synthetic_ntu / "raw" / f"{name}.skeleton"),
                 "--json", "--top-k", "3"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["family"] == "skeleton_action" and len(out["results"]) == 1
    r = out["results"][0]
    assert len(r["top"]) == 3 and r["top"][0]["probability"] >= r["top"][1]["probability"]
    assert sum(r["probabilities"].values()) == pytest.approx(1.0)
    assert main(["infer", "--ckpt", str(ckpt), str(synthetic_ntu / "raw" / f"{name}.skeleton")]) == 0
    table = capsys.readouterr().out
    assert f"{name}.skeleton" in table and " 1. class " in table


def test_mismatched_checkpoint_is_refused_naming_both_shapes(synthetic_ntu, tmp_path, capsys):
    from graphfuse.data.ntu.datamodule import SkeletonDataModule

    dm = SkeletonDataModule(str(synthetic_ntu), clip_len=8)
    ckpt = make_checkpoint(tmp_path / "one_body.ckpt", shiftgcn(num_person=1), dm,
                           data={"input_shapes": {"x": [3, 8, 25, 1]}})
    name = dm.build_dataset("test").names[0]
    path = synthetic_ntu / "raw" / f"{name}.skeleton"
    with pytest.raises(ShapeMismatchError, match=r"\(3, 8, 25, 2\).*\(3, 8, 25, 1\)"):
        load_predictor(ckpt).read([path])
    assert main(["infer", "--ckpt", str(ckpt), str(path)]) == 2
    err = capsys.readouterr().err
    assert "(3, 8, 25, 2)" in err and "(3, 8, 25, 1)" in err and len(err.strip().splitlines()) == 1


def test_bad_skeleton_file_gets_the_readers_error(ntu_ckpt, tmp_path, capsys):
    ckpt, _ = ntu_ckpt
    bad = tmp_path / "S001C001P001R001A001.skeleton"
    bad.write_text("3\nnot a number\n")
    assert main(["infer", "--ckpt", str(ckpt), str(bad)]) == 2
    assert str(bad) in capsys.readouterr().err


def test_pie_video_equals_the_test_loop(pie_ckpt, synthetic_pie):
    ckpt, dm = pie_ckpt
    predictor = load_predictor(ckpt)
    assert predictor.family == "crossing_intention"
    assert predictor.class_names == ["not crossing", "crossing", "irrelevant"]
    ds = dm.build_dataset("test")
    i = 5
    set_id, video_id, ped, _first = ds.names[i].split("/")
    xml = synthetic_pie / "raw" / "annotations" / set_id / f"{video_id}_annt.xml"
    samples = predictor.read([xml], stride=1)
    match = [s for s in samples if s.name == ds.names[i]]
    assert len(match) == 1 and match[0].info["track"] == f"{set_id}/{video_id}/{ped}"
    item = ds[i]
    for k in ("pose", "velocity"):
        assert torch.equal(match[0].inputs[k], item[k])
    result = predictor.predict(match)[0]
    from graphfuse.metrics.intention import crossing_score

    with torch.no_grad():
        logits = predictor.task(**predictor.task.model_inputs({k: item[k][None] for k in ("pose", "velocity")}))
    score, probs = crossing_score(logits, predictor.task.three_to_binary)
    np.testing.assert_allclose(result.probabilities, probs[0].double().numpy(), atol=1e-7)
    assert result.info["crossing"] == pytest.approx(float(score[0]), abs=1e-7)
    # the windows of one track, every 8 frames, as a timeline per track
    timeline = predictor.timeline(xml, stride=8)
    frames, p = timeline[match[0].info["track"]]
    assert p.shape == (len(frames), 3) and np.all(np.diff(frames) == 8)


def test_pie_json_from_the_command_line(pie_ckpt, synthetic_pie, capsys):
    ckpt, dm = pie_ckpt
    set_id, video_id = dm.build_dataset("test").names[0].split("/")[:2]
    xml = synthetic_pie / "raw" / "annotations" / set_id / f"{video_id}_annt.xml"
    assert main(["infer", "--ckpt", str(ckpt), str(xml), "--stride", "30", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["results"] and all(0.0 <= r["crossing"] <= 1.0 for r in out["results"])
    assert {r["track"] for r in out["results"]} and all(r["frames"][1] - r["frames"][0] == 15 for r in out["results"])
