"""ML-GCN, the ResNet baselines and HGAT_FC: shapes, the GCN classifier formula, the label graph,
HGAT's class permutation and parameter counts, ML-GCN's checkpoint layout, local backbone weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from graphfuse.checkpoints import load_checkpoint
from graphfuse.graphs.label_graph import coco_class_names, released_adjacency
from graphfuse.models.mlgcn import (
    HGATFC,
    MLGCN,
    WEIGHTS,
    ResNetBaseline,
    convert_mlgcn,
    expected_backbone_files,
    gen_adj,
    mlgcn_state_dict,
)

COUNTS = np.array([10, 5, 4, 2])
CO = np.array([[0, 4, 1, 2], [4, 0, 2, 0], [1, 2, 0, 0], [2, 0, 0, 0]])


def _image(n: int = 2, s: int = 32) -> torch.Tensor:
    return torch.randn(n, 3, s, s, generator=torch.Generator().manual_seed(0))


def test_mlgcn_logits_are_image_features_times_gcn_classifiers() -> None:
    torch.manual_seed(0)
    m = MLGCN(num_class=4, backbone="resnet18", in_channel=6, hidden=8).eval()
    emb = np.random.default_rng(0).normal(size=(4, 6)).astype(np.float32)
    m.set_label_graph(counts=COUNTS, cooccurrence=CO, embeddings=emb, num_images=12)
    np.testing.assert_allclose(m.A.numpy(), released_adjacency(COUNTS, CO), rtol=1e-6)
    x = _image()
    with torch.no_grad():
        logits = m(x)
        feats = m.features(x).amax(dim=(2, 3)).double()  # global max pooling
        a = m.A.double()
        d = a.sum(1).pow(-0.5)
        adj = torch.diag(d) @ a.t() @ torch.diag(d)
        h = F.leaky_relu(adj @ torch.from_numpy(emb).double() @ m.gc1.weight.double(), 0.2)
        w = adj @ h @ m.gc2.weight.double()
    assert logits.shape == (2, 4)
    torch.testing.assert_close(logits.double(), feats @ w.t(), rtol=1e-4, atol=1e-4)
    assert m.has_label_graph


def test_mlgcn_defaults_without_data_and_the_paper_form() -> None:
    m = MLGCN(num_class=5, backbone="resnet18", in_channel=8)
    assert torch.equal(m.A, torch.eye(5)) and torch.equal(m.inp, torch.eye(5, 8)) and not m.has_label_graph
    torch.testing.assert_close(gen_adj(m.A), torch.eye(5))
    p = MLGCN(num_class=4, backbone="resnet18", adj_form="paper")
    p.set_label_graph(COUNTS, CO)
    torch.testing.assert_close(p.propagation(), p.A)
    torch.testing.assert_close(p.A.sum(1), torch.ones(4))
    with pytest.raises(ValueError, match="embeddings of shape"):
        p.set_label_graph(COUNTS, CO, embeddings=np.zeros((4, 7)))
    with pytest.raises(ValueError, match="adj_form"):
        MLGCN(adj_form="sym", backbone="resnet18")


def _mlgcn_released_layout(num_class: int = 80) -> dict[str, torch.Tensor]:
    """A state dict in the layout of ML-GCN's gcn_resnet101 (torch 0.3: no num_batches_tracked),
    built from torchvision's ResNet-101 key names, random values."""
    from torchvision.models import resnet101

    g = torch.Generator().manual_seed(0)
    rename = {"conv1": "features.0", "bn1": "features.1", "layer1": "features.4", "layer2": "features.5",
              "layer3": "features.6", "layer4": "features.7"}
    state = {}
    for k, v in resnet101().state_dict().items():
        head, _, rest = k.partition(".")
        if head == "fc" or k.endswith("num_batches_tracked"):
            continue
        state[f"{rename[head]}.{rest}"] = torch.rand(v.shape, generator=g)
    state["gc1.weight"] = torch.rand(300, 1024, generator=g)
    state["gc2.weight"] = torch.rand(1024, 2048, generator=g)
    state["A"] = torch.rand(num_class, num_class, generator=g)
    return state


def test_released_checkpoint_layout_loads_strictly_and_converts(tmp_path: Path) -> None:
    released = _mlgcn_released_layout()
    emb = np.random.default_rng(0).normal(size=(80, 300)).astype(np.float32)
    model = MLGCN()
    model.load_state_dict(mlgcn_state_dict(released, emb), strict=True)
    assert torch.equal(model.A, released["A"]) and torch.equal(model.gc1.weight, released["gc1.weight"])
    assert torch.equal(model.features[7][2].bn3.running_var, released["features.7.2.bn3.running_var"])
    assert model.has_label_graph
    # the converter: ML-GCN's file (a torch.save'd dict) -> a graphfuse checkpoint
    src = tmp_path / "checkpoint" / "coco" / "coco_checkpoint.pth.tar"
    src.parent.mkdir(parents=True)
    torch.save({"epoch": 20, "arch": None, "state_dict": {"module." + k: v for k, v in released.items()},
                "best_score": torch.tensor(83.0)}, src)
    np.save(tmp_path / "emb.npy", emb)
    with pytest.raises(ValueError, match="give --embeddings"):
        convert_mlgcn(src, tmp_path / "out.ckpt")
    out = convert_mlgcn(src, tmp_path / "out.ckpt", embeddings=str(tmp_path / "emb.npy"))
    ckpt = load_checkpoint(out)
    assert torch.equal(ckpt["state_dict"]["model.A"], released["A"])
    assert torch.equal(ckpt["state_dict"]["model.inp"], torch.from_numpy(emb))
    block = ckpt["graphfuse"]
    assert block["num_class"] == 80 and block["class_names"] == coco_class_names("mlgcn")
    assert block["release"] == "mlgcn_coco2014" and block["released_best_score"] == pytest.approx(83.0)
    bad = dict(released)
    bad.pop("gc2.weight")
    torch.save({"state_dict": bad}, tmp_path / "bad.pth.tar")
    with pytest.raises(ValueError, match="missing keys \\(1\\): gc2.weight"):
        convert_mlgcn(tmp_path / "bad.pth.tar", tmp_path / "bad.ckpt", embeddings=str(tmp_path / "emb.npy"))
    assert {w.name for w in WEIGHTS} == {"mlgcn_coco2014", "mlgcn_voc2007"}


def test_baselines_pool_max_or_average() -> None:
    torch.manual_seed(0)
    gmp = ResNetBaseline(num_class=3, backbone="resnet18", pool="max").eval()
    gap = ResNetBaseline(num_class=3, backbone="resnet18", pool="avg").eval()
    gap.load_state_dict(gmp.state_dict())
    x = _image()
    with torch.no_grad():
        f = gmp.features(x)
        torch.testing.assert_close(gmp(x), gmp.fc(f.amax(dim=(2, 3))))
        torch.testing.assert_close(gap(x), gmp.fc(f.mean(dim=(2, 3))))
    groups = gmp.param_groups(1e-4)
    assert [g["lr_mult"] for g in groups] == [0.1, 1.0]
    assert groups[1]["names"] == ["fc.weight", "fc.bias"]
    assert gmp.example_inputs(2)[0].shape == (2, 3, 448, 448)
    assert gmp.input_names == ("image",)


def _bl(i: int, o: int) -> int:  # BasicLinear: Linear + BatchNorm1d
    return i * o + o + 2 * o


def _rlb(c: int) -> int:  # ResidualLinearBlock(c, reduction 2)
    return _bl(c, c // 2) + _bl(c // 2, c)


def _head(d: int, group_level: str, class_level: str, sizes: list[int], c: int = 80) -> int:
    """HGAT_FC head parameters counted from the module list of the notes' file."""
    g = len(sizes)
    n = _bl(d, 1024) + _bl(1024, 512) + g * _rlb(512)
    n += {"gat": 512 * 512 + 2 * 512 + 1, "fc": _bl(g * 512, g * 512), "none": 0}[group_level]
    n += c * _bl(512, 256)
    n += {"gat": g * (256 * 256 + 2 * 256 + 1), "fc": g * _bl(256, 256), "none": 0}[class_level]
    n += c * (_rlb(256) + 256 + 1)
    return n


SIZES = [1, 8, 5, 10, 5, 10, 7, 10, 6, 6, 5, 7]


@pytest.mark.parametrize("group_level", ["gat", "fc", "none"])
@pytest.mark.parametrize("class_level", ["gat", "fc", "none"])
def test_hgat_variants_shapes_and_parameter_counts(group_level: str, class_level: str) -> None:
    torch.manual_seed(0)
    m = HGATFC(backbone="resnet18", group_level=group_level, class_level=class_level)
    head = sum(p.numel() for n, p in m.named_parameters() if not n.startswith("features."))
    assert head == _head(512, group_level, class_level, SIZES)
    out = m(_image(3))
    assert out.shape == (3, 80) and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None for p in m.parameters())


def test_hgat_resnet101_counts_of_the_notes() -> None:
    m = HGATFC()
    trunk = sum(p.numel() for n, p in m.named_parameters() if n.startswith("features."))
    head = sum(p.numel() for n, p in m.named_parameters() if not n.startswith("features."))
    assert trunk == 42_500_160  # ResNet-101 without fc (brief: about 42.5 M)
    assert head == 22_757_981 == _head(2048, "gat", "gat", SIZES)  # brief: about 22.8 M
    # the FC replacing the group GAT adds BasicLinear(6144, 6144): about 37.8 M
    assert _head(2048, "fc", "gat", SIZES) - head == 37_767_168 - 263_169


def test_hgat_class_permutation_round_trip() -> None:
    names = coco_class_names("mlgcn")
    m = HGATFC(backbone="resnet18").eval()
    assert m.group_sizes == SIZES and m.perm[0] == names.index("person")
    with torch.no_grad():
        m.class_out_weight.zero_()
        m.class_out_bias.copy_(torch.arange(80, dtype=torch.float32))  # head k = position k
    out = m(_image(1))
    # class perm[k] receives head k: logits in label order
    assert torch.equal(out[0, m.perm], torch.arange(80, dtype=torch.float32))
    assert out[0, names.index("person")] == 0 and out[0, names.index("bicycle")] == 1
    contiguous = HGATFC(backbone="resnet18", groups="contiguous").eval()
    assert torch.equal(contiguous.perm, torch.arange(80)) and contiguous.group_sizes == SIZES
    # the public code's group 1 in ML-GCN's order: apple .. bench, not vehicles
    assert names[1:9] == ["apple", "backpack", "banana", "baseball bat", "baseball glove", "bear", "bed", "bench"]


def test_hgat_groups_of_synthetic_data_come_from_supercategories() -> None:
    sups = ["animal"] * 5 + ["vehicle"] * 4 + ["kitchen"] * 6 + ["shape"] * 5
    m = HGATFC(num_class=20, backbone="resnet18", supercategories=sups)
    assert m.group_names == ["vehicle", "animal", "kitchen", "shape"] and m.group_sizes == [4, 5, 6, 5]
    assert m.perm.tolist()[:4] == [5, 6, 7, 8]
    assert m(_image(2)).shape == (2, 20)
    with pytest.raises(ValueError, match="needs supercategories"):
        HGATFC(num_class=20, backbone="resnet18")


def test_backbone_weights_come_from_a_local_file_only(tmp_path: Path) -> None:
    from torchvision.models import resnet18

    assert expected_backbone_files("resnet101") == ["resnet101-cd907fc2.pth", "resnet101-63fe2227.pth"]
    with pytest.raises(FileNotFoundError, match="resnet101-cd907fc2.pth"):
        MLGCN(backbone_weights=str(tmp_path / "missing.pth"))
    ref = resnet18()
    state = ref.state_dict()
    torch.save(state, tmp_path / "resnet18-f37072fd.pth")
    m = ResNetBaseline(num_class=2, backbone="resnet18", backbone_weights=str(tmp_path / "resnet18-f37072fd.pth"))
    assert torch.equal(m.features[0].weight, state["conv1.weight"])
    assert torch.equal(m.features[7][1].bn2.running_mean, state["layer4.1.bn2.running_mean"])
    torch.save({k: v for k, v in state.items() if not k.startswith("layer4")}, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match="missing keys"):
        ResNetBaseline(backbone="resnet18", backbone_weights=str(tmp_path / "partial.pth"))
    with pytest.raises(ValueError, match="torchvision ResNet"):
        MLGCN(backbone="vgg16")


def test_channels_last_trunk_gives_the_same_logits():
    """The GPU channels-last path (``channels_last_on_gpu``) changes the memory format only: on
    CPU the same conversion gives the same logits as NCHW up to rounding."""
    from graphfuse.models.mlgcn import MLGCN

    torch.manual_seed(0)
    net = MLGCN(num_class=6, backbone="resnet18", in_channel=8, hidden=16, image_size=64).eval()
    (x,) = net.example_inputs(2)
    with torch.no_grad():
        ref = net(x)
        out = net(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    assert net.channels_last_on_gpu and not MLGCN(num_class=6, backbone="resnet18", in_channel=8, hidden=16,
                                                     channels_last_on_gpu=False).channels_last_on_gpu
