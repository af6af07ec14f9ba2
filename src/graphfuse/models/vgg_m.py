"""VGG-M-2048 (Chatfield et al., BMVC 2014) and a reader of MatConvNet's released model file.

VGG-M-2048 is the "CNN-M" network of K. Chatfield, K. Simonyan, A. Vedaldi, A. Zisserman,
"Return of the Devil in the Details: Delving Deep into Convolutional Nets", BMVC 2014
(Table 1), with a 2048-d ``fc7``. It is the backbone of the ablations (Tables 1-2) of
Feichtenhofer, Pinz, Zisserman, "Convolutional Two-Stream Network Fusion for Video Action
Recognition", CVPR 2016; its released weights are MatConvNet's ``imagenet-vgg-m-2048.mat``
(http://www.vlfeat.org/matconvnet/pretrained/; a Caffe import of VGG's ``VGG_CNN_M_2048``).
torchvision has no VGG-M, so it is built here, layer by layer, with MatConvNet's layer names:

=========  ===========================================  ===================================
layer      this module                                  MatConvNet (``vl_simplenn``)
=========  ===========================================  ===================================
conv1      Conv2d(3, 96, 7, stride 2, pad 0) + ReLU     conv 7x7x3x96, stride 2, pad 0
norm1      LocalResponseNorm(5, alpha=5e-4, beta=.75,    lrn param [5 2 1e-4 0.75]
           k=2)                                         (y = x / (k + alpha sum x^2)^beta)
pool1      MaxPool2d(3, 2, ceil_mode=True)              max 3x3, stride 2, pad [0 1 0 1]
conv2      Conv2d(96, 256, 5, stride 2, pad 1) + ReLU   conv 5x5x96x256, stride 2, pad 1
norm2      as norm1                                     lrn [5 2 1e-4 0.75]
pool2      MaxPool2d(3, 2, ceil_mode=True)              max 3x3, stride 2, pad [0 1 0 1]
conv3..5   Conv2d(., 512, 3, pad 1) + ReLU              conv 3x3x.x512, stride 1, pad 1
pool5      MaxPool2d(3, 2, ceil_mode=True)              max 3x3, stride 2, pad [0 1 0 1]
fc6        Linear(512*6*6, 4096) + ReLU + Dropout       conv 6x6x512x4096
fc7        Linear(4096, 2048) + ReLU + Dropout          conv 1x1x4096x2048
fc8        Linear(2048, num_class)                      conv 1x1x2048x1000
=========  ===========================================  ===================================

Sizes at 224 x 224: conv1 109, pool1 54, conv2 26, pool2 13, conv3-5 13, pool5 6.

* **LRN.** MatConvNet's ``vl_nnnormalize`` with ``param = [N kappa alpha beta]`` computes
  ``x / (kappa + alpha * sum_{window} x^2)^beta``; Caffe (and :class:`torch.nn.LocalResponseNorm`)
  divide ``alpha`` by the window size, so MatConvNet's ``alpha = 1e-4`` is torch's ``5e-4``
  (Caffe's ``VGG_CNN_M_2048`` prototxt: ``local_size 5, alpha 0.0005, beta 0.75, k 2``).
* **Pooling.** MatConvNet pads the max pools by one row/column at the bottom/right
  (``pad = [0 1 0 1]``), which reproduces Caffe's ceil rounding; ``ceil_mode=True`` gives the
  same windows (padding never wins a max).
* **fc6** is a 6x6 convolution in MatConvNet; here an :class:`~torch.nn.AdaptiveAvgPool2d`
  to 6x6 (the identity at 224 px, the reference size; as torchvision's VGG does at 7x7) and
  a Linear over the ``(C, H, W)``-ordered flattened map, so that smaller inputs run too.
* **The temporal (flow) network** of the reference (``cnn_ucf101_temporal.m`` of
  feichtenhofer/twostreamfusion) drops ``norm2`` "as in Simonyan et al. NIPS'14":
  ``VGGM(lrn2=False)``.

* **Random initialisation** (no ImageNet weights): He et al.'s ``N(0, 2 / fan_in)`` for every
  conv and fc layer, biases 0 (:meth:`VGGM.reset_parameters`; PyTorch's layer defaults make a
  random VGG-M's logits constant).

The parameter count of :class:`VGGM` with 1000 classes is 92,469,864; with 101 classes
90,627,813 (tested against a count written out layer by layer).

:func:`load_matconvnet_vgg_m` reads ``imagenet-vgg-m-2048.mat`` with :func:`scipy.io.loadmat`
(both MatConvNet's ``vl_simplenn`` ``layers`` format and the DagNN ``params`` format) into a
state dict of :class:`VGGM`. It never downloads anything.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MATCONVNET_VGG_M_FILE",
    "VGGM",
    "VGGM_LAYER_NAMES",
    "fold_input_normalisation",
    "load_matconvnet_vgg_m",
]

#: File name of MatConvNet's released ImageNet VGG-M-2048.
MATCONVNET_VGG_M_FILE = "imagenet-vgg-m-2048.mat"
#: torchvision's ImageNet normalisation (what the video datamodule's ``rgb`` is normalised with).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: The steps of :class:`VGGM`, in execution order (MatConvNet's layer names; ``avgpool`` and
#: ``flatten`` are ours, see the module docstring).
VGGM_LAYER_NAMES: tuple[str, ...] = (
    "conv1", "relu1", "norm1", "pool1",
    "conv2", "relu2", "norm2", "pool2",
    "conv3", "relu3", "conv4", "relu4", "conv5", "relu5", "pool5",
    "avgpool", "flatten", "fc6", "relu6", "drop6", "fc7", "relu7", "drop7", "fc8",
)
#: The parametrised layers (MatConvNet's names) and their kind.
_PARAM_LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")


class VGGM(nn.Sequential):
    """VGG-M-2048 as an ordered sequence of named layers (:data:`VGGM_LAYER_NAMES`).

    Args:
        num_class: outputs of ``fc8`` (ImageNet: 1000).
        in_channels: input channels of ``conv1`` (3 for RGB, 2L = 20 for stacked flow).
        channels: output channels of conv1..conv5 (VGG-M: 96, 256, 512, 512, 512); smaller
            values build a small network of the same shape (tests, CPU quickstarts).
        fc6: width of ``fc6`` (4096).
        fc7: width of ``fc7`` (2048, the "-2048" of the name).
        dropout: dropout rate after ``fc6`` and ``fc7`` (VGG-M's ImageNet training: 0.5).
        lrn2: whether ``norm2`` is there (False for the reference's temporal network, which
            removes it; it is then an :class:`~torch.nn.Identity`).
        pool5_size: spatial size ``fc6`` reads (6 at 224 px input).

    Input ``(N, in_channels, H, W)``, output logits ``(N, num_class)``.
    """

    def __init__(
        self,
        num_class: int = 1000,
        in_channels: int = 3,
        channels: Sequence[int] = (96, 256, 512, 512, 512),
        fc6: int = 4096,
        fc7: int = 2048,
        dropout: float = 0.5,
        lrn2: bool = True,
        pool5_size: int = 6,
    ) -> None:
        if len(channels) != 5:
            raise ValueError(f"VGGM: channels must list 5 widths (conv1..conv5), got {list(channels)}")
        c1, c2, c3, c4, c5 = (int(c) for c in channels)

        def lrn() -> nn.Module:
            return nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2.0)

        def pool() -> nn.Module:
            return nn.MaxPool2d(3, 2, ceil_mode=True)

        layers: list[tuple[str, nn.Module]] = [
            ("conv1", nn.Conv2d(in_channels, c1, 7, stride=2)), ("relu1", nn.ReLU()),
            ("norm1", lrn()), ("pool1", pool()),
            ("conv2", nn.Conv2d(c1, c2, 5, stride=2, padding=1)), ("relu2", nn.ReLU()),
            ("norm2", lrn() if lrn2 else nn.Identity()), ("pool2", pool()),
            ("conv3", nn.Conv2d(c2, c3, 3, padding=1)), ("relu3", nn.ReLU()),
            ("conv4", nn.Conv2d(c3, c4, 3, padding=1)), ("relu4", nn.ReLU()),
            ("conv5", nn.Conv2d(c4, c5, 3, padding=1)), ("relu5", nn.ReLU()),
            ("pool5", pool()),
            ("avgpool", nn.AdaptiveAvgPool2d(pool5_size)), ("flatten", nn.Flatten(1)),
            ("fc6", nn.Linear(c5 * pool5_size * pool5_size, fc6)), ("relu6", nn.ReLU()),
            ("drop6", nn.Dropout(dropout)),
            ("fc7", nn.Linear(fc6, fc7)), ("relu7", nn.ReLU()), ("drop7", nn.Dropout(dropout)),
            ("fc8", nn.Linear(fc7, num_class)),
        ]
        super().__init__(OrderedDict(layers))
        self.num_class = int(num_class)
        self.in_channels = int(in_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Random initialisation for training from scratch: He et al.'s (ICCV 2015) normal init
        ``N(0, 2 / fan_in)`` for every convolution and fully connected layer, biases 0.

        Why not PyTorch's layer defaults: ``kaiming_uniform_(a=sqrt(5))`` has variance
        ``1 / (3 fan_in)``, so each conv + ReLU stage keeps about 1/6 of the signal's second
        moment; after VGG-M's eight layers (and two LRNs) the logits of a random network are
        constant to ~1e-3 and the gradients of conv1..conv5 ~1e-4, so a small VGG-M trained from
        scratch stays at chance (the two-stream quickstart did: loss ln K at every epoch). The
        ``N(0, 2 / fan_in)`` variance keeps the activations' scale through the ReLUs; the LRNs
        (``k = 2``) then only divide by about ``2 ** 0.75``. MatConvNet's ImageNet examples
        (``cnn_imagenet_init.m``) offer ``'gaussian'`` (``0.01 randn``, its default, used with
        batch normalisation) and ``'xavierimproved'`` (He et al.: ``randn * sqrt(2 / (h w C_out))``);
        this is He et al.'s forward-preserving (``fan_in``) form of the latter. The released
        ImageNet weights (:func:`load_matconvnet_vgg_m`) replace all of this.
        """
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(m.bias)


# ------------------------------------------------------------------------------------------
# MatConvNet .mat files
# ------------------------------------------------------------------------------------------
def _unwrap(x: Any) -> Any:
    """Strip MATLAB's 1x1 cell / struct wrappers that :func:`scipy.io.loadmat` keeps."""
    while isinstance(x, np.ndarray) and x.dtype == object and x.size == 1:
        x = x.flat[0]
    return x


def _text(x: Any) -> str:
    x = _unwrap(x)
    if isinstance(x, np.ndarray):
        return "".join(str(c) for c in x.ravel()) if x.dtype.kind in "US" else str(x)
    return str(x)


def _field(struct: Any, name: str) -> Any:
    """Field ``name`` of a MATLAB struct read with ``struct_as_record=False`` (None if absent)."""
    struct = _unwrap(struct)
    return getattr(struct, name, None) if hasattr(struct, "_fieldnames") else None


def _elements(x: Any) -> list[Any]:
    """The elements of a MATLAB cell array or struct array, in order."""
    if isinstance(x, np.ndarray) and x.dtype == object:
        return [_unwrap(e) for e in x.ravel(order="F")]
    if isinstance(x, np.ndarray) and x.dtype.names is None and x.dtype != object:
        return [x]
    return [_unwrap(x)]


def _matconvnet_shape(module: nn.Module) -> tuple[int, ...]:
    """MatConvNet's filter shape ``H x W x Cin x Cout`` of one of our layers."""
    if isinstance(module, nn.Conv2d):
        co, ci, h, w = module.weight.shape
        return (h, w, ci, co)
    assert isinstance(module, nn.Linear)
    return tuple(module.weight.shape[::-1])


def _as_shape(arr: np.ndarray, shape: Sequence[int], what: str, path: Path) -> np.ndarray:
    """``arr`` reshaped to ``shape`` when it holds exactly that array up to the singleton
    dimensions MATLAB drops at the end (a 1x1x2048x1000 fc8 stays 4-D, a 3x3x1 filter loses
    its last 1); otherwise a ValueError naming the file and the layer."""
    arr = np.asarray(arr)
    strip = tuple(shape)
    while len(strip) > 2 and strip[-1] == 1:
        strip = strip[:-1]
    if arr.shape not in (tuple(shape), strip) or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{path}: {what} has shape {arr.shape} ({arr.dtype}), expected {tuple(shape)}")
    return arr.reshape(shape)


def _to_torch_weight(arr: np.ndarray, module: nn.Module, pool5: int) -> Tensor:
    """A MatConvNet filter bank ``H x W x Cin x Cout`` as the weight of ``module``.

    Conv: ``(Cout, Cin, H, W)`` (both libraries correlate, indices kept as they are). Linear
    (MatConvNet's fully connected layers are convolutions; fc6 is 6x6): ``(Cout, Cin*H*W)``
    in the ``(C, H, W)`` order of :class:`torch.nn.Flatten` on ``(N, C, H, W)``.
    """
    t = torch.from_numpy(np.ascontiguousarray(arr.transpose(3, 2, 0, 1)).astype(np.float32))
    if isinstance(module, nn.Linear):
        t = t.reshape(t.shape[0], -1)
    return t


def _layer_arrays_simplenn(layers: Any, path: Path) -> tuple[dict[str, tuple[Any, Any]], dict[str, Any]]:
    """``{name: (filters, biases)}`` and ``{name: layer struct}`` of a ``vl_simplenn`` ``layers``
    cell array (``weights = {filters, biases}``, or the older ``filters`` / ``biases`` fields)."""
    arrays: dict[str, tuple[Any, Any]] = {}
    structs: dict[str, Any] = {}
    for i, layer in enumerate(_elements(layers)):
        name = _text(_field(layer, "name")) if _field(layer, "name") is not None else f"layer{i + 1}"
        structs[name] = layer
        if _text(_field(layer, "type")) != "conv":
            continue
        weights = _field(layer, "weights")
        if weights is not None:
            pair = _elements(weights) if isinstance(weights, np.ndarray) and weights.dtype == object else []
            if len(pair) != 2:
                raise ValueError(f"{path}: layer {name!r}: 'weights' must be a cell {{filters, biases}}")
            arrays[name] = (pair[0], pair[1])
        elif _field(layer, "filters") is not None:
            arrays[name] = (_field(layer, "filters"), _field(layer, "biases"))
        else:
            raise ValueError(f"{path}: conv layer {name!r} has neither 'weights' nor 'filters'")
    return arrays, structs


def _layer_arrays_dagnn(params: Any, layers: Any, path: Path) -> tuple[dict[str, tuple[Any, Any]], dict[str, Any]]:
    """The same from a DagNN file: ``params(i).name`` = ``<layer>f`` / ``<layer>b``."""
    values = {_text(_field(p, "name")): _field(p, "value") for p in _elements(params)}
    arrays = {name: (values[f"{name}f"], values.get(f"{name}b")) for name in _PARAM_LAYERS if f"{name}f" in values}
    structs: dict[str, Any] = {}
    if layers is not None:
        for layer in _elements(layers):
            if _field(layer, "name") is not None:
                structs[_text(_field(layer, "name"))] = _field(layer, "block") or layer
    return arrays, structs


def _average_colour(meta: Any) -> np.ndarray | None:
    """Per-channel mean of ``meta.normalization.averageImage`` (an image or a 1x1x3 colour), as
    the reference's ``mean(mean(averageImage, 1), 2)``; None when absent."""
    norm = _field(meta, "normalization") if meta is not None else None
    avg = _field(norm, "averageImage") if norm is not None else None
    if avg is None:
        return None
    avg = np.asarray(avg, dtype=np.float64)
    if avg.size == 3:
        return avg.reshape(3)
    if avg.ndim == 3 and avg.shape[2] == 3:
        return avg.reshape(-1, 3).mean(axis=0)
    return None


def load_matconvnet_vgg_m(
    path: str | os.PathLike,
    model: VGGM | None = None,
    input_normalisation: str = "imagenet",
) -> dict[str, Tensor]:
    """Read MatConvNet's ``imagenet-vgg-m-2048.mat`` into a state dict of :class:`VGGM`.

    Both formats are read with :func:`scipy.io.loadmat`: the ``vl_simplenn`` file (a
    ``layers`` cell array whose conv layers hold ``weights = {filters, biases}``, or the older
    ``filters`` / ``biases`` fields) and the DagNN file (a ``params`` struct array named
    ``conv1f``, ``conv1b``, ...). Filters are ``H x W x Cin x Cout`` there.

    Args:
        path: the ``.mat`` file (a local file; nothing is downloaded).
        model: the network whose shapes the file must match (default: ``VGGM()``, 1000 classes).
        input_normalisation: ``"imagenet"`` (default): fold MatConvNet's input convention
            (RGB in 0..255 minus the average colour of ``meta.normalization.averageImage``)
            into ``conv1`` so that the network takes torchvision's ImageNet-normalised input
            (``(x - mean) / std`` of x in 0..1), the video datamodule's ``rgb``. Exact, since
            VGG-M's ``conv1`` has no padding. ``"matconvnet"``: keep the filters as released.

    Returns:
        ``{name: tensor}`` with the keys of ``model.state_dict()``.

    Raises:
        FileNotFoundError: no such file (the message names the file to obtain).
        ValueError: not a readable MatConvNet VGG-M file (v7.3/HDF5 files, missing layers,
            wrong shapes or LRN parameters); the message names the file and the layer.
        ImportError: scipy is not installed.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"{p}: MatConvNet's VGG-M-2048 weights not found; graphfuse never downloads weights: get "
            f"{MATCONVNET_VGG_M_FILE} from http://www.vlfeat.org/matconvnet/pretrained/ yourself and pass its path"
        )
    try:
        from scipy.io import loadmat
    except ImportError as exc:  # pragma: no cover - scipy is in the video extra
        raise ImportError("reading MatConvNet .mat files needs scipy (pip install 'graphfuse[video]')") from exc
    if input_normalisation not in ("imagenet", "matconvnet"):
        raise ValueError(f"input_normalisation must be 'imagenet' or 'matconvnet', got {input_normalisation!r}")
    model = model if model is not None else VGGM()
    try:
        mat = loadmat(str(p), squeeze_me=False, struct_as_record=False)
    except NotImplementedError as exc:  # MATLAB v7.3 (HDF5)
        raise ValueError(f"{p}: a MATLAB v7.3 (HDF5) file; re-save it with save(..., '-v7') ({exc})") from exc
    except Exception as exc:  # scipy raises many types for a bad file
        raise ValueError(f"{p}: not a readable MATLAB .mat file ({type(exc).__name__}: {exc})") from exc
    root: Any = mat
    if "net" in mat and "layers" not in mat:
        root = {k: _field(mat["net"], k) for k in ("layers", "params", "meta", "normalization")}
    layers, params = root.get("layers"), root.get("params")
    if params is not None:
        arrays, structs = _layer_arrays_dagnn(params, layers, p)
    elif layers is not None:
        arrays, structs = _layer_arrays_simplenn(layers, p)
    else:
        raise ValueError(f"{p}: no 'layers' or 'params' variable: not a MatConvNet network file")
    missing = [n for n in _PARAM_LAYERS if n not in arrays]
    if missing:
        raise ValueError(f"{p}: no layer(s) {', '.join(missing)} (found: {', '.join(arrays) or 'none'}); "
                         f"not a VGG-M file")
    for lrn_name in ("norm1", "norm2"):
        s = structs.get(lrn_name)
        param = _field(s, "param") if s is not None else None
        if param is not None:
            got = np.asarray(param, dtype=np.float64).ravel()
            if got.shape != (4,) or not np.allclose(got, [5, 2, 1e-4, 0.75], rtol=1e-5):
                raise ValueError(f"{p}: {lrn_name} has LRN parameters {got.tolist()}, VGG-M has [5, 2, 1e-4, 0.75]")
    modules = dict(model.named_children())
    pool5 = modules["avgpool"].output_size if "avgpool" in modules else 6
    state: dict[str, Tensor] = {}
    for name in _PARAM_LAYERS:
        module = modules[name]
        filters, biases = arrays[name]
        shape = _matconvnet_shape(module)
        if isinstance(module, nn.Linear) and name == "fc6":
            co, ci = module.weight.shape
            side = round((ci / modules["conv5"].out_channels) ** 0.5)
            shape = (side, side, modules["conv5"].out_channels, co)
        elif isinstance(module, nn.Linear):
            shape = (1, 1) + shape
        w = _as_shape(np.asarray(filters), shape, f"layer {name!r} filters", p)
        b = _as_shape(np.asarray(biases).reshape(-1), (shape[-1],), f"layer {name!r} biases", p)
        state[f"{name}.weight"] = _to_torch_weight(w, module, pool5)
        state[f"{name}.bias"] = torch.from_numpy(b.astype(np.float32))
    if input_normalisation == "imagenet":
        avg = _average_colour(root.get("meta") if root.get("meta") is not None else root.get("normalization"))
        if avg is None:
            raise ValueError(f"{p}: no meta.normalization.averageImage to fold into conv1; pass "
                             "input_normalisation='matconvnet' to keep MatConvNet's input convention")
        w, b = fold_input_normalisation(state["conv1.weight"], state["conv1.bias"],
                                        scale=[255.0 * s for s in IMAGENET_STD],
                                        shift=[255.0 * m - a for m, a in zip(IMAGENET_MEAN, avg.tolist())])
        state["conv1.weight"], state["conv1.bias"] = w, b
    return state


def fold_input_normalisation(
    weight: Tensor, bias: Tensor, scale: Sequence[float], shift: Sequence[float]
) -> tuple[Tensor, Tensor]:
    """Fold an input map ``x' = scale_c * x + shift_c`` (per input channel) into a convolution.

    ``conv(x'; W, b) = conv(x; W * scale, b + sum_{c,h,w} W[:, c, h, w] * shift_c)`` exactly
    when the convolution has no zero padding (VGG-M's ``conv1``); with padding the border
    outputs differ (the padded zeros are not shifted).

    Args:
        weight: ``(Cout, Cin, kh, kw)``; bias: ``(Cout,)``; scale, shift: ``Cin`` values each.
    Returns:
        the new ``(weight, bias)``.
    """
    s = torch.as_tensor(list(scale), dtype=torch.float64).view(1, -1, 1, 1)
    t = torch.as_tensor(list(shift), dtype=torch.float64).view(1, -1, 1, 1)
    w64 = weight.detach().double()
    new_bias = bias.detach().double() + (w64 * t).sum(dim=(1, 2, 3))
    return (w64 * s).to(weight.dtype), new_bias.to(bias.dtype)
