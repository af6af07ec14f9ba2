"""`graphfuse infer` for gait: a CASIA-B-layout silhouette folder -> the nearest gallery identities,
with the probe's input and embedding those of the test loop, and the gallery's distances the
protocol's part distance over the test loop's gallery embeddings.

Data: synthetic CASIA-B-format walkers (PNG silhouettes, 4 subjects: 001-002 train, 003-004
test; nm-01, nm-02 (gallery types), nm-05 (a probe type); views 000 and 090; 6 frames of 64
px rendered per sequence), prepared by the real CASIA-B pretreatment. A tiny GaitSet (channels
1/4/8/16, 32-d parts) with random weights: the comparisons do not need a trained model."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from test_infer import make_checkpoint

pytest.importorskip("cv2")
pytest.importorskip("graphfuse.models.gait")

from graphfuse.cli import main
from graphfuse.infer import load_predictor


@pytest.fixture(scope="module")
def casia(tmp_path_factory):
    from graphfuse.data.gait.datamodule import GaitDataModule
    from graphfuse.data.synthetic.gait import generate_synthetic_casia_b

    data = tmp_path_factory.mktemp("gait") / "synthetic-casia-b"
    generate_synthetic_casia_b(data, num_ids=4, num_train_ids=2, num_frames=6, raw_height=64, workers=1,
                               types=("nm-01", "nm-02", "nm-05"), views=("000", "090"))
    dm = GaitDataModule(str(data), p=2, k=2, frames=6, test_batch_size=3)
    model = {"class_path": "graphfuse.tasks.gait.GaitRecognition", "init_args": {"distance": "euc", "model": {
        "class_path": "graphfuse.models.gait.GaitSet", "init_args": {"channels": [1, 4, 8, 16], "hidden_dim": 32}}}}
    return make_checkpoint(data.parent / "gaitset.ckpt", model, dm), dm, data


def _test_loop_embeddings(predictor, dm) -> torch.Tensor:
    """``predict_step`` embeddings of every test sequence, in the test dataset's order."""
    out = []
    with torch.no_grad():
        for batch in dm.test_dataloader():
            out.append(predictor.task.predict_step(batch, 0)["embeddings"])
    return torch.cat(out)


def test_probe_and_gallery_equal_the_test_loop(casia):
    from graphfuse.metrics.gait import part_distance

    ckpt, dm, data = casia
    predictor = load_predictor(ckpt)
    assert predictor.family == "gait"
    ds = dm.dataset("test")
    names = ds.names
    probe = names.index("003-nm-05-090")
    samples = predictor.read([data / "raw" / "003" / "nm-05" / "090"], gallery=str(data))
    assert samples[0].name == "003-nm-05-090"
    torch.testing.assert_close(samples[0].inputs["silhouettes"], ds[probe]["silhouettes"], rtol=0, atol=0)
    emb = _test_loop_embeddings(predictor, dm)
    got = predictor.logits(samples)
    torch.testing.assert_close(got, emb[probe:probe + 1], rtol=1e-5, atol=1e-5)
    # the gallery: the test ids' nm-01 / nm-02 sequences of both views, as the test loop embeds them
    gallery = [i for i, n in enumerate(names) if n.split("-", 1)[1][:5] in ("nm-01", "nm-02")]
    g = predictor.adapter.load_gallery(str(data))
    assert g["names"] == [names[i] for i in gallery] and g["identities"] == ["003", "004"]
    torch.testing.assert_close(g["embeddings"], emb[gallery], rtol=1e-5, atol=1e-5)
    result = predictor.predict(samples, top_k=2)[0]
    dist = part_distance(emb[probe:probe + 1].double(), emb[gallery].double(), "euc")[0].numpy()
    ids = np.asarray([names[i][:3] for i in gallery])
    want = np.array([dist[ids == k].min() for k in ("003", "004")])
    np.testing.assert_allclose(result.probabilities, want, rtol=1e-5)
    assert [n for n, _ in result.top] == [["003", "004"][k] for k in np.argsort(want)]  # nearest first
    assert result.info["nearest_sequence"] == names[gallery[int(dist.argmin())]]
    assert result.to_dict()["distances"].keys() == {"003", "004"}


def test_a_silhouette_root_as_gallery_finds_the_probe_itself(casia, capsys):
    ckpt, _, data = casia
    probe = data / "raw" / "002" / "nm-01" / "000"  # a gallery-type sequence of the root: distance 0 to itself
    assert main(["infer", "--ckpt", str(ckpt), str(probe), "--gallery", str(data / "raw"), "--json",
                 "--top-k", "4"]) == 0
    r = json.loads(capsys.readouterr().out)["results"][0]
    assert r["name"] == "002-nm-01-000" and r["nearest_sequence"] == "002-nm-01-000"
    assert set(r["distances"]) == {"001", "002", "003", "004"}  # every subject of the root
    assert r["top"][0] == {"class": "002", "distance": pytest.approx(0.0, abs=1e-3)}
    assert [t["distance"] for t in r["top"]] == sorted(t["distance"] for t in r["top"])


def test_gait_needs_a_gallery_and_a_sequence(casia, tmp_path, capsys):
    ckpt, _, data = casia
    probe = data / "raw" / "003" / "nm-05" / "000"
    assert main(["infer", "--ckpt", str(ckpt), str(probe)]) == 2
    assert "give --gallery DIR" in capsys.readouterr().err
    empty = tmp_path / "001" / "nm-01" / "000"
    empty.mkdir(parents=True)
    assert main(["infer", "--ckpt", str(ckpt), str(empty), "--gallery", str(data)]) == 2
    err = capsys.readouterr().err
    assert f"{empty}: no PNG frame" in err and len(err.strip().splitlines()) == 1
