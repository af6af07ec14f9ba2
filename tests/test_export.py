"""`graphfuse export`: ONNX (dynamo exporter) and torch.export archives of checkpoints, checked
against the eager network with onnxruntime; metadata records names, shapes and classes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _tiny_models import TinyShiftGCN
from test_infer import make_checkpoint, pedgraph

from graphfuse.cli import main
from graphfuse.export import RELATIVE_TOLERANCE, export_checkpoint
from graphfuse.infer import InferenceError, load_model

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def pedgraph_ckpt(tmp_path_factory):
    data = {"obs_length": 16, "input_names": ["pose", "velocity"], "input_shapes": {"pose": [3, 16, 19]},
            "class_names": ["not crossing", "crossing", "irrelevant"]}

    class Options:  # the datamodule's inference_options() of prepared 16-frame PIE data
        def inference_options(self):
            return dict(data)

    return make_checkpoint(tmp_path_factory.mktemp("export") / "pedgraph.ckpt", pedgraph(), Options())


def test_pedgraph_onnx_parity_and_metadata(pedgraph_ckpt, tmp_path, capsys):
    out = tmp_path / "pedgraph.onnx"
    assert main(["export", "--ckpt", str(pedgraph_ckpt), "--format", "onnx", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "parity: max abs diff" in printed and "input  pose: ('batch', 3, 16, 19)" in printed
    model = onnx.load(str(out))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["family"] == "crossing_intention" and meta["graphfuse_version"]
    assert json.loads(meta["class_names"]) == ["not crossing", "crossing", "irrelevant"]
    assert json.loads(meta["inputs"]) == {"pose": ["batch", 3, 16, 19], "velocity": ["batch", 2, 16]}
    assert json.loads(meta["outputs"]) == {"logits": ["batch", 3]}
    # onnxruntime at batch sizes other than the traced one equals the eager network
    _, network, _ = load_model(pedgraph_ckpt)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["pose", "velocity"]
    for batch in (1, 5):
        gen = torch.Generator().manual_seed(batch)
        pose, vel = torch.randn(batch, 3, 16, 19, generator=gen), torch.randn(batch, 2, 16, generator=gen)
        with torch.no_grad():
            want = network(pose, vel).numpy()
        got = session.run(["logits"], {"pose": pose.numpy(), "velocity": vel.numpy()})[0]
        assert np.abs(got - want).max() / np.abs(want).max() <= RELATIVE_TOLERANCE


def test_pedgraph_pt2_archive(pedgraph_ckpt, tmp_path):
    report = export_checkpoint(pedgraph_ckpt, "pt2", tmp_path / "pedgraph.pt2")
    assert report["max_rel_diff"] <= RELATIVE_TOLERANCE
    program = torch.export.load(str(tmp_path / "pedgraph.pt2"))
    out = program.module()(torch.zeros(3, 3, 16, 19), torch.zeros(3, 2, 16))
    assert out.shape == (3, 3)


def test_a_failed_parity_check_is_an_error(pedgraph_ckpt, tmp_path, monkeypatch):
    import graphfuse.export as ex

    monkeypatch.setattr(ex, "RELATIVE_TOLERANCE", -1.0)
    with pytest.raises(ValueError, match="parity check failed"):
        ex.export_checkpoint(pedgraph_ckpt, "pt2", tmp_path / "x.pt2")


class DataDependentShiftGCN(TinyShiftGCN):
    """A network torch.export cannot trace: Python control flow on a tensor's value."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if float(x.abs().max()) > 1e6:
            return super().forward(x / 1e6)
        return super().forward(x)


def _net(cls: type, **init) -> dict:
    return {"class_path": "graphfuse.tasks.ActionRecognition", "init_args": {"model": {
        "class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": {"num_class": 5, **init}}}}


class _Options:
    """Stands in for a datamodule: its ``inference_options()``."""

    def __init__(self, **data) -> None:
        self.data = data

    def inference_options(self) -> dict:
        return dict(self.data)


def _ort_equals_eager(session, network, inputs: dict[str, torch.Tensor]) -> float:
    """``max|onnxruntime - eager| / max|eager|`` on ``inputs`` (a batch)."""
    assert [i.name for i in session.get_inputs()] == list(inputs)
    with torch.no_grad():
        want = network(*inputs.values()).numpy()
    got = session.run(["logits"], {k: v.numpy() for k, v in inputs.items()})[0]
    return float(np.abs(got - want).max() / np.abs(want).max())


def test_shiftgcn_onnx_parity(tmp_path):
    data = {"clip_len": 8, "input_names": ["x"], "input_shapes": {"x": [3, 8, 25, 2]}}
    ckpt = make_checkpoint(tmp_path / "shiftgcn.ckpt", _net(TinyShiftGCN), _Options(**data))
    report = export_checkpoint(ckpt, "onnx", tmp_path / "shiftgcn.onnx")
    assert report["inputs"] == {"x": ["batch", 3, 8, 25, 2]} and report["max_rel_diff"] <= RELATIVE_TOLERANCE
    _, network, _ = load_model(ckpt)
    assert isinstance(network, TinyShiftGCN) and network.temporal_shift == "adaptive" and network.num_units == 2
    session = ort.InferenceSession(str(tmp_path / "shiftgcn.onnx"), providers=["CPUExecutionProvider"])
    for batch in (1, 4):
        x = torch.randn(batch, 3, 8, 25, 2, generator=torch.Generator().manual_seed(batch))
        assert _ort_equals_eager(session, network, {"x": x}) <= RELATIVE_TOLERANCE


def test_a_network_export_cannot_trace_is_refused_in_one_line(tmp_path, capsys):
    data = {"clip_len": 8, "input_names": ["x"], "input_shapes": {"x": [3, 8, 25, 2]}}
    ckpt = make_checkpoint(tmp_path / "branchy.ckpt", _net(DataDependentShiftGCN), _Options(**data))
    with pytest.raises(InferenceError, match=r"DataDependentShiftGCN cannot be exported by torch.export: \w+"):
        export_checkpoint(ckpt, "pt2", tmp_path / "branchy.pt2")
    assert main(["export", "--ckpt", str(ckpt), "--format", "onnx", str(tmp_path / "branchy.onnx")]) == 2
    err = capsys.readouterr().err
    assert "DataDependentShiftGCN cannot be exported to ONNX" in err and len(err.strip().splitlines()) == 1


def test_mlgcn_onnx_has_one_input_and_the_label_graph_inside(tmp_path):
    model = {"class_path": "graphfuse.tasks.multilabel.MultiLabelRecognition", "init_args": {"model": {
        "class_path": "graphfuse.models.mlgcn.MLGCN",
        "init_args": {"num_class": 4, "backbone": "resnet18", "in_channel": 6, "hidden": 8, "image_size": 32}}}}
    emb = np.random.default_rng(0).normal(size=(4, 6)).astype(np.float32)
    graph = {"counts": np.array([10, 5, 4, 2]), "embeddings": emb, "num_images": 12,
             "cooccurrence": np.array([[0, 4, 1, 2], [4, 0, 2, 0], [1, 2, 0, 0], [2, 0, 0, 0]])}
    ckpt = make_checkpoint(tmp_path / "mlgcn.ckpt", model,
                           _Options(image_size=32, input_names=["image"], input_shapes={"image": [3, 32, 32]},
                                    class_names=["a", "b", "c", "d"]),
                           before_save=lambda task: task.model.set_label_graph(**graph))
    out = tmp_path / "mlgcn.onnx"
    report = export_checkpoint(ckpt, "onnx", out)
    assert report["inputs"] == {"image": ["batch", 3, 32, 32]} and report["outputs"] == {"logits": ["batch", 4]}
    _, network, _ = load_model(ckpt)
    assert not torch.equal(network.A, torch.eye(4))  # the data's label graph, not the identity default
    image = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert _ort_equals_eager(session, network, {"image": image}) <= RELATIVE_TOLERANCE
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["family"] == "multilabel" and json.loads(meta["class_names"]) == ["a", "b", "c", "d"]


def test_two_stream_onnx_and_pt2_take_rgb_and_flow(tmp_path):
    from test_infer_families import tiny_two_stream

    data = {"num_frames": 2, "flow_stack": 4, "crop_size": 64, "input_names": ["rgb", "flow"],
            "input_shapes": {"rgb": [3, 2, 64, 64], "flow": [8, 2, 64, 64]}, "test_views": 1}
    ckpt = make_checkpoint(tmp_path / "ts.ckpt", tiny_two_stream(), _Options(**data))
    report = export_checkpoint(ckpt, "onnx", tmp_path / "ts.onnx")
    assert report["inputs"] == {"rgb": ["batch", 3, 2, 64, 64], "flow": ["batch", 8, 2, 64, 64]}
    _, network, _ = load_model(ckpt)
    gen = torch.Generator().manual_seed(0)
    session = ort.InferenceSession(str(tmp_path / "ts.onnx"), providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        inputs = {"rgb": torch.randn(batch, 3, 2, 64, 64, generator=gen),
                  "flow": torch.randn(batch, 8, 2, 64, 64, generator=gen)}
        assert _ort_equals_eager(session, network, inputs) <= RELATIVE_TOLERANCE
    assert export_checkpoint(ckpt, "pt2", tmp_path / "ts.pt2")["max_rel_diff"] <= RELATIVE_TOLERANCE
