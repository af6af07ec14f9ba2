"""`graphfuse info`: parameters, buffers and FLOPs of a config's model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from graphfuse.info import build_model, count_flops, input_shape_for, model_cost, network_of

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "configs" / "synthetic-ntu" / "shiftgcn" / "quickstart.yaml"
NTU60_JOINT = REPO / "configs" / "ntu60-xsub" / "shiftgcn" / "joint.yaml"


def test_flops_of_a_tiny_module_equal_hand_computation() -> None:
    # conv 3->4, 3x3, padding 1 on 5x6: 4*5*6 outputs x 3*3*3 MACs; linear 120 -> 7: 120*7 MACs.
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 5 * 6, 7))
    total, by_op, _ = count_flops(net, torch.randn(2, 3, 5, 6))
    conv_macs = 2 * (4 * 5 * 6) * (3 * 3 * 3)  # batch 2
    lin_macs = 2 * 120 * 7
    assert by_op == {"aten.convolution": 2 * conv_macs, "aten.addmm": 2 * lin_macs}  # 1 MAC = 2 FLOPs
    assert total == 2 * (conv_macs + lin_macs)
    cost = model_cost(net, (1, 3, 5, 6))
    assert cost.flops == conv_macs + lin_macs  # batch 1: half of the above
    assert cost.macs == cost.flops / 2
    assert cost.trainable_params == (4 * 27 + 4) + (120 * 7 + 7)
    assert cost.buffers == 0


def test_buffers_and_frozen_parameters_are_counted() -> None:
    net = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    net[0].bias.requires_grad_(False)
    cost = model_cost(net, (4, 3))
    assert (cost.trainable_params, cost.frozen_params) == (6 + 2 + 2, 2)
    assert cost.buffers == cost.persistent_buffers == 2 + 2 + 1  # running mean, var, num_batches_tracked
    assert net.training  # training mode restored


def test_quickstart_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the config's data_dir is relative: nothing may appear here
    task, cfg = build_model([str(QUICKSTART)])
    net = network_of(task)
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == 680_257  # 10 classes
    assert input_shape_for(net, cfg) == (1, 3, 48, 25, 2)  # clip_len 48
    assert list(tmp_path.iterdir()) == []  # no datamodule built, no synthetic data generated


def test_ntu60_joint_config_and_overrides(one_thread) -> None:
    task, cfg = build_model([str(NTU60_JOINT)])
    net = network_of(task)
    cost = model_cost(net, (1, 3, 8, 25, 2))
    assert cost.trainable_params == 693_107  # research brief section 1.7
    # 64,075 int64 shift-index entries + 78,032 BatchNorm statistics (brief section 1.7), plus
    # the 64,075 entries of the derived inverse permutations (non-persistent buffers)
    assert cost.persistent_buffers == 64_075 + 78_032
    assert cost.buffers == cost.persistent_buffers + 64_075
    assert input_shape_for(net, cfg) == (1, 3, 300, 25, 2)  # clip_len null: whole sequences
    _, cfg3 = build_model([str(NTU60_JOINT)], ["--data.init_args.frame_stride=3"])
    assert input_shape_for(net, cfg3) == (1, 3, 100, 25, 2)
    assert input_shape_for(net, cfg, frames=16, persons=1) == (1, 3, 16, 25, 1)
    task120, _ = build_model([str(NTU60_JOINT)], ["--model.init_args.model.init_args.num_class=120"])
    assert sum(p.numel() for p in task120.model.parameters()) == 708_527  # brief: NTU120


def _shiftgcn_hand_macs(t: int, v: int = 25, m: int = 2, c_in: int = 3, num_class: int = 10) -> tuple[int, int]:
    """(matrix-product MACs, convolution MACs) of Shift-GCN for one sample, by hand."""
    layers = [(c_in, 64, 1, False), (64, 64, 1, True), (64, 64, 1, True), (64, 64, 1, True),
              (64, 128, 2, True), (128, 128, 1, True), (128, 128, 1, True), (128, 256, 2, True),
              (256, 256, 1, True), (256, 256, 1, True)]
    mm = conv = 0
    for cin, cout, stride, residual in layers:
        t_out = t // stride
        mm += t * v * cin * cout  # spatial pointwise einsum (Linear_weight)
        if cin != cout:
            conv += t * v * cin * cout  # gcn down 1x1
        conv += t * v * cout * cout  # temporal_linear 1x1 (at the input frame rate)
        # the two temporal shifts as depthwise 2x2 bilinear kernels (4 taps per output)
        conv += 4 * t * v * cout + 4 * t_out * v * cout
        if residual and (cin != cout or stride != 1):
            conv += t_out * v * cin * cout  # strided 1x1 unit residual
        t = t_out
    return m * mm + 256 * num_class, m * conv


def test_shiftgcn_flops_match_the_hand_count(one_thread) -> None:
    from graphfuse.models import ShiftGCN

    net = ShiftGCN(num_class=10)
    cost = model_cost(net, (1, 3, 8, 25, 2))
    mm, conv = _shiftgcn_hand_macs(8)
    fc = 256 * 10
    # On the CPU the spatial pointwise product runs as a 1x1 convolution (oneDNN,
    # graphfuse.layers.shift.joint_linear): only fc is an addmm there.
    assert cost.flops_by_op == {"aten.addmm": 2 * fc, "aten.convolution": 2 * (conv + mm - fc)}
    assert cost.flops_by_module["fc"] == 2 * 256 * 10


def test_cli_prints_the_report(capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_thread) -> None:
    from graphfuse.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["info", "-c", str(QUICKSTART), "--frames", "8", "--trainer.max_epochs=3"]) == 0
    out = capsys.readouterr().out
    assert "trainable parameters   680,257" in out
    assert "(1, 3, 8, 25, 2)" in out
    assert "1 multiply-add = 2 FLOPs" in out and "MACs per sample" in out
    mm, conv = _shiftgcn_hand_macs(8)
    assert f"{2 * (mm + conv):,}" in out
    assert list(tmp_path.iterdir()) == []
