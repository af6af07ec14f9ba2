"""VGG-M-2048 (Chatfield et al. BMVC 2014) and the reader of MatConvNet's ``imagenet-vgg-m-2048.mat``.

The .mat files are written here with :func:`scipy.io.savemat` in MatConvNet's two layouts
(``vl_simplenn`` ``layers`` cell array; DagNN ``params`` struct array), filters stored
``H x W x Cin x Cout`` as MatConvNet stores them, for a small network of VGG-M's shape; the
index mapping is checked against sums written out over the MATLAB arrays.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from graphfuse.models.vgg_m import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    MATCONVNET_VGG_M_FILE,
    VGGM,
    VGGM_LAYER_NAMES,
    fold_input_normalisation,
    load_matconvnet_vgg_m,
)

scipy_io = pytest.importorskip("scipy.io")

SMALL = {"channels": (4, 6, 8, 8, 8), "fc6": 12, "fc7": 10, "num_class": 5}


def test_layer_specs_match_chatfield_and_matconvnet() -> None:
    with torch.device("meta"):
        net = VGGM()
    assert [n for n, _ in net.named_children()] == list(VGGM_LAYER_NAMES)
    spec = {  # (out, kernel, stride, pad) of Chatfield et al. Table 1, CNN-M
        "conv1": (96, 7, 2, 0), "conv2": (256, 5, 2, 1), "conv3": (512, 3, 1, 1),
        "conv4": (512, 3, 1, 1), "conv5": (512, 3, 1, 1),
    }
    for name, (out, k, s, p) in spec.items():
        conv = getattr(net, name)
        assert (conv.out_channels, conv.kernel_size, conv.stride, conv.padding) == (out, (k, k), (s, s), (p, p))
    for name in ("norm1", "norm2"):
        lrn = getattr(net, name)
        assert (lrn.size, lrn.alpha, lrn.beta, lrn.k) == (5, 5e-4, 0.75, 2.0)
    for name in ("pool1", "pool2", "pool5"):
        pool = getattr(net, name)
        assert (pool.kernel_size, pool.stride, pool.ceil_mode) == (3, 2, True)
    assert (net.fc6.in_features, net.fc6.out_features, net.fc7.out_features, net.fc8.out_features) == (
        512 * 36, 4096, 2048, 1000)
    # sizes at 224 px (MatConvNet's vl_simplenn_display of imagenet-vgg-m-2048)
    x = torch.empty(1, 3, 224, 224, device="meta")
    sizes = {}
    for name, module in net.named_children():
        x = module(x)
        sizes[name] = tuple(x.shape[1:])
    assert sizes["conv1"] == (96, 109, 109) and sizes["pool1"] == (96, 54, 54)
    assert sizes["conv2"] == (256, 26, 26) and sizes["pool2"] == (256, 13, 13)
    assert sizes["conv5"] == (512, 13, 13) and sizes["pool5"] == (512, 6, 6) and sizes["avgpool"] == (512, 6, 6)
    assert sizes["fc8"] == (1000,)


def _count(cin: int, classes: int) -> int:
    layers = [(7 * 7 * cin, 96), (5 * 5 * 96, 256), (3 * 3 * 256, 512), (3 * 3 * 512, 512), (3 * 3 * 512, 512),
              (6 * 6 * 512, 4096), (4096, 2048), (2048, classes)]
    return sum(fan_in * out + out for fan_in, out in layers)


def test_parameter_count() -> None:
    with torch.device("meta"):
        assert sum(p.numel() for p in VGGM().parameters()) == _count(3, 1000) == 92_469_864
        assert sum(p.numel() for p in VGGM(num_class=101).parameters()) == _count(3, 101) == 90_627_813
        assert sum(p.numel() for p in VGGM(num_class=101, in_channels=20).parameters()) == _count(20, 101)


def test_lrn_is_matconvnets_formula() -> None:
    """vl_nnnormalize, param [5 2 1e-4 0.75]: y = x / (2 + 1e-4 * sum_{|c'-c|<=2} x_c'^2)^0.75, a float64 loop."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 7, 3, 4, generator=g, dtype=torch.float64) * 30
    ref = torch.empty_like(x)
    for c in range(7):
        lo, hi = max(0, c - 2), min(6, c + 2)
        ref[:, c] = x[:, c] / (2 + 1e-4 * (x[:, lo:hi + 1] ** 2).sum(dim=1)) ** 0.75
    torch.testing.assert_close(VGGM(**SMALL).norm1(x), ref)


def test_ceil_pooling_equals_matconvnet_bottom_right_padding() -> None:
    """MatConvNet's pool pad [0 1 0 1] (top bottom left right; padding never wins a max)."""
    for size in (13, 26, 54, 109, 8, 9):
        x = torch.randn(1, 2, size, size)
        ref = F.max_pool2d(F.pad(x, (0, 1, 0, 1), value=float("-inf")), 3, 2)
        torch.testing.assert_close(VGGM(**SMALL).pool1(x), ref)


# -- .mat files ----------------------------------------------------------------------------------
def _random_mat_layers(net: VGGM, seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """MatConvNet arrays ``H x W x Cin x Cout`` for each parametrised layer of ``net``."""
    rng = np.random.default_rng(seed)
    out = {}
    for name in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"):
        m = getattr(net, name)
        if isinstance(m, nn.Conv2d):
            shape = (m.kernel_size[0], m.kernel_size[1], m.in_channels, m.out_channels)
        elif name == "fc6":
            shape = (6, 6, net.conv5.out_channels, m.out_features)
        else:
            shape = (1, 1, m.in_features, m.out_features)
        out[name] = (rng.standard_normal(shape).astype(np.float32), rng.standard_normal((1, shape[-1])).astype(np.float32))
    return out


def _struct_array(dicts: list[dict]) -> np.ndarray:
    arr = np.empty((1, len(dicts)), dtype=object)
    for i, d in enumerate(dicts):
        arr[0, i] = d
    return arr


def _meta(avg: np.ndarray) -> dict:
    return {"normalization": {"averageImage": avg, "imageSize": np.array([[224.0, 224.0, 3.0]])}}


def write_simplenn(path: Path, arrays: dict, avg: np.ndarray, old_fields: bool = False,
                   lrn=(5.0, 2.0, 1e-4, 0.75)) -> Path:
    """A vl_simplenn file: ``layers`` = cell array of structs (conv with ``weights = {f, b}``, or
    the older ``filters`` / ``biases``; relu, lrn with ``param``, pool with ``pad``)."""
    layers = []
    for name in ("conv1", "relu1", "norm1", "pool1", "conv2", "relu2", "norm2", "pool2", "conv3", "relu3",
                 "conv4", "relu4", "conv5", "relu5", "pool5", "fc6", "relu6", "fc7", "relu7", "fc8", "prob"):
        if name in arrays:
            f, b = arrays[name]
            layer = {"name": name, "type": "conv", "stride": np.array([[1.0, 1.0]]), "pad": np.zeros((1, 4))}
            if old_fields:
                layer.update(filters=f, biases=b)
            else:
                w = np.empty((1, 2), dtype=object)
                w[0, 0], w[0, 1] = f, b
                layer["weights"] = w
        elif name.startswith("norm"):
            layer = {"name": name, "type": "lrn", "param": np.array([list(lrn)])}
        elif name.startswith("pool"):
            layer = {"name": name, "type": "pool", "method": "max", "pool": np.array([[3.0, 3.0]]),
                     "stride": np.array([[2.0, 2.0]]), "pad": np.array([[0.0, 1.0, 0.0, 1.0]])}
        else:
            layer = {"name": name, "type": "softmax" if name == "prob" else "relu"}
        layers.append(layer)
    cell = np.empty((1, len(layers)), dtype=object)
    for i, layer in enumerate(layers):
        cell[0, i] = layer
    scipy_io.savemat(str(path), {"layers": cell, "meta": _meta(avg)})
    return path


def write_dagnn(path: Path, arrays: dict, avg: np.ndarray) -> Path:
    params = []
    for name, (f, b) in arrays.items():
        params += [{"name": f"{name}f", "value": f}, {"name": f"{name}b", "value": b.reshape(-1, 1)}]
    layers = [{"name": "norm1", "type": "dagnn.LRN", "block": {"param": np.array([[5.0, 2.0, 1e-4, 0.75]])}}]
    scipy_io.savemat(str(path), {"params": _struct_array(params), "layers": _struct_array(layers),
                                 "meta": _meta(avg)})
    return path


AVG = np.array([122.68, 116.67, 104.01])


def test_simplenn_file_maps_matconvnet_indices(tmp_path: Path) -> None:
    net = VGGM(**SMALL)
    arrays = _random_mat_layers(net)
    path = write_simplenn(tmp_path / "vgg-m.mat", arrays, np.tile(AVG, (8, 8, 1)))
    state = load_matconvnet_vgg_m(path, net, input_normalisation="matconvnet")
    assert set(state) == set(net.state_dict())
    net.load_state_dict(state)
    net.eval()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 3, 7, 7, generator=g, dtype=torch.float64)
    f1, b1 = arrays["conv1"]
    # y[o] = b[o] + sum_{h,w,c} F[h, w, c, o] x[c, h, w] (vl_nnconv, a correlation)
    ref = b1[0].astype(np.float64) + np.einsum("hwco,chw->o", f1.astype(np.float64), x[0].numpy())
    torch.testing.assert_close(net.double().conv1(x)[0, :, 0, 0], torch.from_numpy(ref))
    p5 = torch.randn(1, 8, 6, 6, generator=g, dtype=torch.float64)
    f6, b6 = arrays["fc6"]
    ref6 = b6[0].astype(np.float64) + np.einsum("hwco,chw->o", f6.astype(np.float64), p5[0].numpy())
    torch.testing.assert_close(net.fc6(net.flatten(p5))[0], torch.from_numpy(ref6))
    f8, b8 = arrays["fc8"]
    v = torch.randn(1, 10, generator=g, dtype=torch.float64)
    torch.testing.assert_close(net.fc8(v)[0], torch.from_numpy(b8[0] + v[0].numpy() @ f8[0, 0].astype(np.float64)))


def test_old_fields_and_dagnn_files_read_the_same(tmp_path: Path) -> None:
    net = VGGM(**SMALL)
    arrays = _random_mat_layers(net, seed=3)
    avg = AVG.reshape(1, 1, 3)
    a = load_matconvnet_vgg_m(write_simplenn(tmp_path / "a.mat", arrays, avg), net)
    b = load_matconvnet_vgg_m(write_simplenn(tmp_path / "b.mat", arrays, avg, old_fields=True), net)
    c = load_matconvnet_vgg_m(write_dagnn(tmp_path / "c.mat", arrays, avg), net)
    for k in a:
        torch.testing.assert_close(a[k], b[k])
        torch.testing.assert_close(a[k], c[k])


def test_imagenet_normalisation_is_folded_into_conv1_exactly(tmp_path: Path) -> None:
    """conv1 on torchvision-normalised input == MatConvNet's conv1 on 0..255 RGB minus the
    average colour (VGG-M's conv1 has no padding)."""
    net = VGGM(**SMALL).double()
    arrays = _random_mat_layers(net, seed=5)
    path = write_simplenn(tmp_path / "v.mat", arrays, np.tile(AVG, (5, 5, 1)))
    raw = {k: v.double() for k, v in load_matconvnet_vgg_m(path, net, input_normalisation="matconvnet").items()}
    folded = {k: v.double() for k, v in load_matconvnet_vgg_m(path, net).items()}
    img = torch.rand(2, 3, 15, 15, dtype=torch.float64)  # RGB in 0..1
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float64).view(1, 3, 1, 1)
    mcn_input = img * 255 - torch.from_numpy(AVG).view(1, 3, 1, 1)
    ref = F.conv2d(mcn_input, raw["conv1.weight"], raw["conv1.bias"], stride=2)
    got = F.conv2d((img - mean) / std, folded["conv1.weight"], folded["conv1.bias"], stride=2)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-3)  # float32 weights
    w, b = fold_input_normalisation(torch.ones(1, 2, 1, 1), torch.zeros(1), [2.0, 3.0], [1.0, -1.0])
    assert w.flatten().tolist() == [2.0, 3.0] and b.tolist() == [0.0]


def test_missing_file_names_the_released_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=MATCONVNET_VGG_M_FILE):
        load_matconvnet_vgg_m(tmp_path / "nope.mat")


def test_bad_files_name_the_file_and_layer(tmp_path: Path) -> None:
    net = VGGM(**SMALL)
    arrays = _random_mat_layers(net)
    arrays["conv3"] = (arrays["conv3"][0][:, :, :5], arrays["conv3"][1])
    path = write_simplenn(tmp_path / "bad.mat", arrays, AVG.reshape(1, 1, 3))
    with pytest.raises(ValueError, match=r"bad\.mat: layer 'conv3' filters has shape \(3, 3, 5, 8\)"):
        load_matconvnet_vgg_m(path, net)
    good = _random_mat_layers(net)
    path = write_simplenn(tmp_path / "lrn.mat", good, AVG.reshape(1, 1, 3), lrn=(5, 1, 1e-4, 0.75))
    with pytest.raises(ValueError, match="norm1 has LRN parameters"):
        load_matconvnet_vgg_m(path, net)
    del good["fc7"]
    path = write_simplenn(tmp_path / "short.mat", good, AVG.reshape(1, 1, 3))
    with pytest.raises(ValueError, match=r"short\.mat: no layer\(s\) fc7"):
        load_matconvnet_vgg_m(path, net)
    (tmp_path / "junk.mat").write_bytes(b"not a mat file at all")
    with pytest.raises(ValueError, match=r"junk\.mat"):
        load_matconvnet_vgg_m(tmp_path / "junk.mat", net)
