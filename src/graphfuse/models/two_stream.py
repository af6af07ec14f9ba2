"""Two-stream (RGB + optical flow) networks with convolutional fusion (Feichtenhofer et al. 2016).

C. Feichtenhofer, A. Pinz, A. Zisserman, "Convolutional Two-Stream Network Fusion for Video
Action Recognition", CVPR 2016; reference code: ``feichtenhofer/twostreamfusion`` (MATLAB /
MatConvNet: ``cnn_ucf101_spatial.m``, ``cnn_ucf101_temporal.m``, ``cnn_ucf101_fusion.m``,
``network_surgery/{insert_conv_layers,replace_last_layer}.m``). No Python implementation of it
is faithful; this one follows the released code where the paper is silent, and says where
it differs (docs/models_two_stream.md, "Image two-stream networks").

The network, for clips of ``T`` frames (``rgb: (N, 3, T, H, W)``, ``flow: (N, 2L, T, H, W)``):

1. **Two towers** of the same 2-D backbone (:data:`BACKBONES`: VGG-M-2048, any torchvision
   VGG, any torchvision ResNet/ResNeXt, and torchvision networks made of ``features``,
   ``avgpool``, ``classifier``) process the ``N*T`` frames as images. The spatial tower
   (``rgb``) takes RGB frames; the temporal tower (``flow``) takes ``2L`` stacked flow
   channels, its first convolution built from the ImageNet RGB filters
   (:func:`flow_conv1_weight`).
2. **Spatial fusion** (:class:`graphfuse.layers.stream_fusion.SpatialFusion`) at a named layer
   (``fusion_layer``: ``relu5`` of VGG-M, ``relu5_3`` of VGG-16, ``layer4`` of a ResNet, ...)
   fuses the temporal maps *into* the spatial tower (the reference's ``fuseInto='spatial'``);
   the spatial tower's remaining layers become the fused tower.
3. **Temporal fusion** (:class:`graphfuse.layers.stream_fusion.TemporalFusion`): ``'none'`` /
   ``'pool2d'``: the backbone's own last pooling per frame (the paper's "2D pooling"), the
   fused tower's scores averaged over the frames; ``'pool3d'``: the last pooling replaced by
   3-D max pooling over ``T x H' x W'`` (the reference's ``Pooling3D``, ``poolSize =
   [pool5 size, nFrames]``, temporal stride 2), in both towers; ``'conv3d_pool3d'``: the
   fusion itself is a 3x3x3 convolution of the concatenated maps (2C -> C, initialised as
   ``[0.25 I; 0.75 I]`` times a normalised 3-D Gaussian), then ReLU, then the 3-D pooling
   (the paper's final model).
4. **Optional second fusion at the prediction layer** (``prediction_fusion``): the temporal
   tower is kept up to its ``fc8`` (``keep_temporal_tower``) and its scores are averaged with
   the fused tower's (the reference averages the raw ``fc8`` outputs of both ``prediction``
   layers at test time, ``cnn_train_dag.m``); both towers' losses are back-propagated
   (``tower_loss``; reference ``backpropFuseFrom = 1``).

``fusion='none'`` is late fusion only: both towers complete, their softmax scores averaged
(the paper's "Sum at softmax", the original two-stream network); ``streams='rgb'`` /
``'flow'`` is one stream alone (the single-stream networks the fusion model starts from).

The temporal tower with ``keep_temporal_tower=False`` is cut after the fusion layer (its
layers beyond it are not built, as ``removeFuseFrom=1`` of the reference).

Layer names follow the reference (MatConvNet's ``conv5_3``, ``relu5_3``, ``pool5``, ``fc6``..
``fc8``; torchvision's ResNet names), so that ``fusion_layer`` reads as in the paper.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checkpoints import load_checkpoint
from ..layers.stream_fusion import SpatialFusion, TemporalFusion
from .vgg_m import MATCONVNET_VGG_M_FILE, VGGM, load_matconvnet_vgg_m

__all__ = [
    "BACKBONES",
    "FLOW_INPUT_SCALE",
    "Tower",
    "TwoStreamNet",
    "build_tower",
    "flow_conv1_weight",
    "fusion_layers",
    "load_imagenet_weights",
    "symmetric_channel_index",
    "torchvision_weights_file",
]

#: Scale of the video datamodule's flow input: ``(q - 128) / (255 * 0.226)`` for quantised flow
#: ``q`` (graphfuse.data.video.dataset, ``imagenet`` normalisation: the reference's ``q - 128``
#: on RGB's scale). Used to build a VGG-M flow ``conv1`` from MatConvNet's unnormalised filters.
FLOW_INPUT_SCALE = 255 * 0.226

#: Backbone names with their own rules; any other name is looked up in torchvision.
BACKBONES: tuple[str, ...] = ("vgg_m_2048", "vgg16", "resnet50", "<torchvision classification model>")

FusionKind = Literal["conv", "sum", "max", "concat", "bilinear", "none"]
TemporalKind = Literal["none", "pool2d", "pool3d", "conv3d_pool3d"]
Streams = Literal["both", "rgb", "flow"]


# ------------------------------------------------------------------------------------------
# towers: a backbone as named steps
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PoolRule:
    """How 3-D pooling enters a backbone.

    Attributes:
        step: the step it acts at (``pool5`` of a VGG; ``avgpool`` of a ResNet).
        replaces: True: 3-D max pooling replaces ``step`` (kernel/stride = that pool's, with
            ``T`` frames and temporal stride 2, as the reference's ``Pooling3D``); False: a
            temporal-only max pool (``T x 1 x 1``, stride 2) runs before ``step``, which is
            kept (global average pooling backbones; our rule, the reference has no ResNet
            fusion code).
        size, stride: the spatial kernel and stride of the 3-D pooling.
    """

    step: str
    replaces: bool
    size: tuple[int, int]
    stride: tuple[int, int]


class Tower(nn.Sequential):
    """A 2-D backbone as an ordered sequence of named steps (``conv1_1``, ``relu1_1``, ...,
    ``fc8``), so that it can be run between two named points and cut after one.

    Args:
        steps: ``(name, module)`` in execution order (parameter names are ``<step>.<param>``).
        pool: the :class:`PoolRule` of the backbone.
        fusion_points: named steps where the two streams can be fused, with their channels.
        conv1, fc8: names of the first convolution and the classifier layer.
        family: ``'vgg'``, ``'resnet'`` or ``'generic'`` (selects the flow ``conv1`` rule).
    """

    def __init__(
        self,
        steps: Sequence[tuple[str, nn.Module]],
        pool: PoolRule,
        fusion_points: Mapping[str, int],
        conv1: str,
        fc8: str,
        family: str,
    ) -> None:
        super().__init__(OrderedDict(steps))
        self.pool_rule = pool
        self.fusion_points = dict(fusion_points)
        self.conv1_name = conv1
        self.fc8_name = fc8
        self.family = family
        for m in self.modules():  # fused maps feed two consumers: no in-place activations
            if hasattr(m, "inplace"):
                m.inplace = False

    @property
    def names(self) -> list[str]:
        return list(self._modules)

    def step(self, name: str) -> nn.Module:
        module = self._modules.get(name)
        if module is None:
            raise KeyError(f"no step {name!r}; steps: {', '.join(self.names)}")
        return module

    def run(self, x: Tensor, start: str | None = None, stop: str | None = None) -> Tensor:
        """Run the steps after ``start`` (exclusive; None = from the first) up to ``stop``
        (inclusive; None = to the last)."""
        names = self.names
        i = 0 if start is None else names.index(start) + 1
        j = len(names) if stop is None else names.index(stop) + 1
        for name in names[i:j]:
            x = self._modules[name](x)
        return x

    def before(self, name: str) -> str | None:
        """The step before ``name`` (None for the first)."""
        names = self.names
        i = names.index(name)
        return names[i - 1] if i else None

    def cut_after(self, name: str) -> None:
        """Remove every step after ``name``."""
        names = self.names
        for n in names[names.index(name) + 1:]:
            delattr(self, n)

    def first_param_step_after(self, name: str) -> str | None:
        """The first step after ``name`` that has parameters (None when none has)."""
        names = self.names
        for n in names[names.index(name) + 1:]:
            if any(True for _ in self._modules[n].parameters()):
                return n
        return None


def _vgg_steps(model: nn.Module) -> tuple[list[tuple[str, nn.Module]], dict[str, int]]:
    """torchvision VGG (``features``, ``avgpool``, ``classifier``) as MatConvNet-named steps:
    ``conv{b}_{i}``, ``bn{b}_{i}`` (the ``_bn`` variants), ``relu{b}_{i}``, ``pool{b}``,
    ``avgpool``, ``flatten``, ``fc6``, ``relu6``, ``drop6``, ``fc7``, ``relu7``, ``drop7``, ``fc8``."""
    steps: list[tuple[str, nn.Module]] = []
    points: dict[str, int] = {}
    block, i, channels = 1, 1, 0
    for m in model.features:
        if isinstance(m, nn.Conv2d):
            steps.append((f"conv{block}_{i}", m))
            channels = m.out_channels
        elif isinstance(m, nn.BatchNorm2d):
            steps.append((f"bn{block}_{i}", m))
        elif isinstance(m, nn.ReLU):
            steps.append((f"relu{block}_{i}", m))
            points[f"relu{block}_{i}"] = channels
            i += 1
        elif isinstance(m, nn.MaxPool2d):
            steps.append((f"pool{block}", m))
            block, i = block + 1, 1
        else:  # pragma: no cover - torchvision's VGG has nothing else
            raise TypeError(f"unexpected VGG layer {m}")
    steps += [("avgpool", model.avgpool), ("flatten", nn.Flatten(1))]
    names = ["fc6", "relu6", "drop6", "fc7", "relu7", "drop7", "fc8"]
    if len(model.classifier) != len(names):  # pragma: no cover
        raise ValueError(f"unexpected VGG classifier {model.classifier}")
    steps += list(zip(names, model.classifier))
    return steps, points


def _resnet_steps(model: nn.Module) -> tuple[list[tuple[str, nn.Module]], dict[str, int]]:
    """torchvision ResNet / ResNeXt / Wide ResNet with torchvision's own child names."""
    steps = [(n, getattr(model, n)) for n in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2",
                                             "layer3", "layer4", "avgpool")]
    steps += [("flatten", nn.Flatten(1)), ("fc", model.fc)]
    points = {"relu": model.conv1.out_channels}
    for n in ("layer1", "layer2", "layer3", "layer4"):
        last = list(getattr(model, n).children())[-1]
        convs = [m for m in last.modules() if isinstance(m, nn.Conv2d)]
        points[n] = convs[-1].out_channels
    return steps, points


def _generic_steps(model: nn.Module) -> tuple[list[tuple[str, nn.Module]], dict[str, int]]:
    """A torchvision network made of ``features``, ``avgpool`` and ``classifier``
    (EfficientNet, MobileNet, ConvNeXt, AlexNet, ...): steps ``features_<i>``, ``avgpool``,
    ``flatten`` (unless the classifier flattens), ``classifier_<i>``."""
    steps: list[tuple[str, nn.Module]] = []
    points: dict[str, int] = {}
    channels = 0
    for i, m in enumerate(model.features):
        steps.append((f"features_{i}", m))
        convs = [c for c in m.modules() if isinstance(c, nn.Conv2d)] if not isinstance(m, nn.Conv2d) else [m]
        if convs:
            channels = convs[-1].out_channels
        if channels:
            points[f"features_{i}"] = channels
    steps.append(("avgpool", model.avgpool))
    classifier = list(model.classifier) if isinstance(model.classifier, nn.Sequential) else [model.classifier]
    if not any(isinstance(m, nn.Flatten) for m in classifier):
        steps.append(("flatten", nn.Flatten(1)))
    steps += [(f"classifier_{i}", m) for i, m in enumerate(classifier)]
    return steps, points


def torchvision_weights_file(name: str) -> tuple[str, str]:
    """``(file name, url)`` of torchvision's default ImageNet weights of ``name`` (what
    ``torchvision.models.get_model(name, weights='DEFAULT')`` would download)."""
    import torchvision

    try:
        enum = torchvision.models.get_model_weights(name)
    except (ValueError, KeyError) as exc:
        raise ValueError(f"torchvision has no weights for {name!r}") from exc
    url = enum.DEFAULT.url
    return url.rsplit("/", 1)[-1], url


def _state_dict_of(obj: Any, path: Path) -> dict[str, Tensor]:
    """The state dict inside a loaded checkpoint: a plain ``{name: tensor}`` dict, or a
    Lightning / graphfuse checkpoint's ``state_dict`` (``model.`` prefix removed), or a
    ``{'model': ...}`` / ``{'state_dict': ...}`` wrapper."""
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    elif isinstance(obj, Mapping) and "model" in obj and isinstance(obj["model"], Mapping):
        obj = obj["model"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(f"{path}: not a state dict (a mapping from names to tensors)")
    if obj and all(k.startswith("model.") for k in obj):
        obj = {k[len("model."):]: v for k, v in obj.items()}
    return dict(obj)


def load_imagenet_weights(backbone: str, model: nn.Module, path: str | os.PathLike) -> None:
    """Load ImageNet weights from a local file into a freshly built (1000-class) backbone.

    * VGG-M-2048: MatConvNet's ``imagenet-vgg-m-2048.mat`` (:func:`~graphfuse.models.vgg_m.load_matconvnet_vgg_m`,
      converted to take ImageNet-normalised input) or a ``.pt``/``.pth`` state dict of
      :class:`~graphfuse.models.vgg_m.VGGM`;
    * torchvision backbones: torchvision's own ``.pth`` file (e.g. ``vgg16-397923af.pth``),
      read with :func:`graphfuse.checkpoints.load_checkpoint` (``weights_only=True``).

    Loads with ``strict=True``. Raises FileNotFoundError naming the file torchvision (or
    MatConvNet) distributes when ``path`` does not exist; nothing is downloaded.
    """
    p = Path(path)
    if not p.is_file():
        if backbone == "vgg_m_2048":
            expected = f"{MATCONVNET_VGG_M_FILE} (http://www.vlfeat.org/matconvnet/pretrained/)"
        else:
            try:
                fname, url = torchvision_weights_file(backbone)
                expected = f"torchvision's {fname} ({url})"
            except ValueError:
                expected = f"a state dict of torchvision's {backbone}"
        raise FileNotFoundError(
            f"{p}: ImageNet weights of {backbone} not found; graphfuse never downloads weights: save "
            f"{expected} there yourself, or give the path where it is"
        )
    if backbone == "vgg_m_2048" and p.suffix.lower() == ".mat":
        assert isinstance(model, VGGM)
        state = load_matconvnet_vgg_m(p, model)
    else:
        state = _state_dict_of(load_checkpoint(p), p)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{p}: does not match {backbone}'s layers: {exc}") from exc


def _torchvision_model(name: str, options: Mapping[str, Any]) -> nn.Module:
    import torchvision

    try:
        return torchvision.models.get_model(name, weights=None, **dict(options))
    except ValueError as exc:
        known = ", ".join(sorted(torchvision.models.list_models(module=torchvision.models)))
        raise ValueError(f"backbone {name!r}: not vgg_m_2048 nor a torchvision classification model "
                         f"({known})") from exc


def build_tower(
    backbone: str,
    num_class: int,
    in_channels: int = 3,
    weights: str | os.PathLike | None = None,
    flow_conv1: Literal["auto", "average", "symmetric"] = "auto",
    dropout: float | None = None,
    options: Mapping[str, Any] | None = None,
    temporal: bool = False,
    generator: torch.Generator | None = None,
) -> Tower:
    """One tower: the backbone with ImageNet ``weights`` (optional), a new ``num_class``-way
    classifier, and for ``in_channels != 3`` a first convolution built from the RGB filters.

    Args:
        backbone: ``'vgg_m_2048'`` or a torchvision classification model name.
        num_class: outputs of the new classifier (``fc8``), initialised as the reference's
            ``replace_last_layer``: weights ``0.01 * randn``, biases 0.
        in_channels: 3 (RGB) or ``2L`` (stacked flow).
        weights: ImageNet weights file (:func:`load_imagenet_weights`); None = random init.
        flow_conv1: rule for ``in_channels != 3`` (:func:`flow_conv1_weight`); ``'auto'``:
            ``'symmetric'`` for ResNets (the reference's DagNN rule), ``'average'`` otherwise
            (its ``vl_simplenn`` rule, used for VGG-M and VGG-16).
        dropout: rate of the classifier's dropout layers (None: the backbone's own).
        options: extra constructor options of the backbone (e.g. VGG-M's ``channels``).
        temporal: the temporal network: VGG-M without ``norm2`` (``cnn_ucf101_temporal.m``
            removes it "as in Simonyan et al. NIPS'14").
    """
    options = dict(options or {})
    if backbone == "vgg_m_2048":
        if temporal:
            options.setdefault("lrn2", False)
        model: nn.Module = VGGM(num_class=1000, in_channels=3, **options)
        if weights is not None and in_channels != 3 and Path(weights).suffix.lower() == ".mat":
            # MatConvNet's own filters (input q - 128 on the 0..255 scale, as the reference feeds
            # flow), rescaled for the datamodule's flow (q - 128) / FLOW_INPUT_SCALE
            state = load_matconvnet_vgg_m(weights, model, input_normalisation="matconvnet")
            state["conv1.weight"] = state["conv1.weight"] * FLOW_INPUT_SCALE
            model.load_state_dict(state)
        elif weights is not None:
            load_imagenet_weights(backbone, model, weights)
        steps = list(model.named_children())
        channels = {f"relu{i}": getattr(model, f"conv{i}").out_channels for i in range(1, 6)}
        pool = PoolRule("pool5", True, (3, 3), (2, 2))
        tower = Tower(steps, pool, channels, "conv1", "fc8", "vgg")
    else:
        model = _torchvision_model(backbone, options)
        if weights is not None:
            load_imagenet_weights(backbone, model, weights)
        from torchvision.models import VGG, ResNet

        if isinstance(model, VGG):
            steps, points = _vgg_steps(model)
            p5 = dict(steps)[[n for n, _ in steps if n.startswith("pool")][-1]]
            ks, st = p5.kernel_size, p5.stride
            ks = (ks, ks) if isinstance(ks, int) else tuple(ks)
            st = (st, st) if isinstance(st, int) else tuple(st)
            pool = PoolRule([n for n, _ in steps if n.startswith("pool")][-1], True, ks, st)  # type: ignore[arg-type]
            tower = Tower(steps, pool, points, "conv1_1", "fc8", "vgg")
        elif isinstance(model, ResNet):
            steps, points = _resnet_steps(model)
            tower = Tower(steps, PoolRule("avgpool", False, (1, 1), (1, 1)), points, "conv1", "fc", "resnet")
        elif all(hasattr(model, a) for a in ("features", "avgpool", "classifier")):
            steps, points = _generic_steps(model)
            first = next(n for n, m in steps if any(isinstance(c, nn.Conv2d) for c in m.modules()))
            fc8 = [n for n, m in steps if isinstance(m, nn.Linear)][-1]
            tower = Tower(steps, PoolRule("avgpool", False, (1, 1), (1, 1)), points, first, fc8, "generic")
        else:
            raise ValueError(f"backbone {backbone!r}: graphfuse builds towers of VGG-M, torchvision VGGs, "
                             "ResNets and networks made of features/avgpool/classifier; not this one")
    _replace_classifier(tower, num_class, generator)
    if in_channels != 3:
        rule = flow_conv1 if flow_conv1 != "auto" else ("symmetric" if tower.family == "resnet" else "average")
        _replace_first_conv(tower, in_channels, rule)
    if dropout is not None:
        for m in tower.modules():
            if isinstance(m, nn.Dropout):
                m.p = float(dropout)
    return tower


def _replace_classifier(tower: Tower, num_class: int, generator: torch.Generator | None = None) -> None:
    """A new ``num_class``-way last layer: weights ``0.01 * randn``, biases 0
    (``replace_last_layer.m`` and the ``any(sz == 1000)`` rule of ``cnn_ucf101_*.m``)."""
    old = tower.step(tower.fc8_name)
    if isinstance(old, nn.Sequential):  # pragma: no cover - generic classifiers end in a Linear
        raise TypeError(f"unexpected classifier {old}")
    assert isinstance(old, nn.Linear)
    new = nn.Linear(old.in_features, num_class)
    with torch.no_grad():
        new.weight.copy_(0.01 * torch.randn(new.weight.shape, generator=generator))
        new.bias.zero_()
    setattr(tower, tower.fc8_name, new)


def _first_conv(tower: Tower) -> tuple[nn.Module, str, nn.Conv2d]:
    """The module holding the first convolution, the attribute name, and the convolution."""
    parent: nn.Module = tower
    name = tower.conv1_name
    module = tower.step(name)
    while not isinstance(module, nn.Conv2d):
        child_name, child = next((n, c) for n, c in module.named_children()
                                 if any(isinstance(x, nn.Conv2d) for x in c.modules()))
        parent, name, module = module, child_name, child
    return parent, name, module


def symmetric_channel_index(source: int, target: int) -> list[int]:
    """Source channel of each of ``target`` channels under MATLAB's
    ``padarray(W, [0 0 target-source 0], 'symmetric', 'post')``: the channels mirrored with
    the edge repeated, e.g. 3 -> 8: ``[0, 1, 2, 2, 1, 0, 0, 1]`` (R G B B G R R G)."""
    out = []
    for c in range(target):
        q = c % (2 * source)
        out.append(q if q < source else 2 * source - 1 - q)
    return out


def flow_conv1_weight(weight: Tensor, in_channels: int, rule: Literal["average", "symmetric"]) -> Tensor:
    """The first convolution of the temporal network from the RGB filters ``weight (O, 3, k, k)``.

    * ``'average'``: the mean over the colour channels, repeated over the ``in_channels``:
      ``repmat(mean(W, 3), [1 1 20 1])`` of ``cnn_ucf101_temporal.m`` for ``vl_simplenn``
      networks (VGG-M, VGG-16); no rescaling.
    * ``'symmetric'``: the RGB channels padded symmetrically to ``in_channels``
      (``padarray(..., 'symmetric', 'post')``, :func:`symmetric_channel_index`), the same
      file's rule for DagNN networks (ResNets); no rescaling either.

    Returns ``(O, in_channels, k, k)``.
    """
    if rule == "average":
        return weight.mean(dim=1, keepdim=True).expand(-1, in_channels, -1, -1).clone()
    if rule == "symmetric":
        return weight[:, symmetric_channel_index(weight.shape[1], in_channels)].clone()
    raise ValueError(f"flow_conv1 rule must be 'average' or 'symmetric', got {rule!r}")


def _replace_first_conv(tower: Tower, in_channels: int, rule: Literal["average", "symmetric"]) -> None:
    parent, name, conv = _first_conv(tower)
    new = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode)
    with torch.no_grad():
        new.weight.copy_(flow_conv1_weight(conv.weight, in_channels, rule))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    setattr(parent, name, new)


def fusion_layers(backbone: str, options: Mapping[str, Any] | None = None) -> dict[str, int]:
    """The named layers of ``backbone`` where the streams can be fused, with their channels
    (built on the meta device: no memory, no weights)."""
    with torch.device("meta"):
        tower = build_tower(backbone, 10, options=options)
    return dict(tower.fusion_points)


# ------------------------------------------------------------------------------------------
# the network
# ------------------------------------------------------------------------------------------
def _frames(x: Tensor) -> Tensor:
    """``(N, C, T, H, W)`` -> ``(N*T, C, H, W)`` (frame-major within a clip)."""
    n, c, t, h, w = x.shape
    return x.transpose(1, 2).reshape(n * t, c, h, w)


def _clip(x: Tensor, n: int) -> Tensor:
    """``(N*T, C, H, W)`` -> ``(N, C, T, H, W)``."""
    nt, c, h, w = x.shape
    return x.reshape(n, nt // n, c, h, w).transpose(1, 2)


def _clip_scores(scores: Tensor, n: int) -> Tensor:
    """Per-frame scores ``(N*T', K)`` averaged over each clip's frames -> ``(N, K)``."""
    return scores.reshape(n, -1, scores.shape[-1]).mean(dim=1)


class TwoStreamNet(nn.Module):
    """RGB + optical-flow network with convolutional fusion (Feichtenhofer et al., CVPR 2016).

    Args:
        num_class: classes (UCF101 101, HMDB51 51; graphfuse sets it from the data).
        backbone: ``'vgg_m_2048'`` (Tables 1-2), ``'vgg16'`` (the final model), or any
            torchvision classification model name (``'resnet50'``, ...).
        fusion: ``'conv'`` (the paper's choice), ``'sum'``, ``'max'``, ``'concat'``,
            ``'bilinear'`` (then a linear classifier on the ``C*C`` features replaces the
            fused tower's remaining layers; the paper trains an SVM), or ``'none'`` (late
            fusion only: both towers complete, softmax scores averaged).
        fusion_layer: the named layer fused at (:func:`fusion_layers`): ``relu1``..``relu5``
            of VGG-M, ``relu{b}_{i}`` of VGG-16 (``relu5_3``), ``relu`` / ``layer1``..``layer4``
            of a ResNet; None = the last convolutional one (the paper's choice).
        fusion_init: initialisation of the conv fusion (``'2sumAB'``: ``0.25 a + 0.75 b``,
            ``'sumAB'``, ``'netA'``, ``'netB'``, ``'xavier'``, ``'xavierimproved'``).
        temporal: ``'none'`` / ``'pool2d'`` (the backbone's pooling per frame, scores averaged
            over frames; the same network), ``'pool3d'``, ``'conv3d_pool3d'`` (module docstring).
        prediction_fusion: also fuse at the prediction layer: the clip scores are the mean of
            the fused tower's and the temporal tower's ``fc8`` outputs (needs
            ``keep_temporal_tower``).
        keep_temporal_tower: keep the temporal tower after the fusion layer (its own pooling
            and classifier; reference ``removeFuseFrom = 0``).
        tower_loss: each kept tower's own loss instead of the prediction's (reference
            ``backpropFuseFrom = 1``; :meth:`forward_loss_terms`).
        flow_channels: ``2L`` stacked flow channels (L = 10 -> 20).
        num_frames: ``T`` frames per clip (reference ``nFrames = 5``): the temporal extent of
            the 3-D pooling.
        streams: ``'both'``, or ``'rgb'`` / ``'flow'`` alone (single-stream networks: their
            ``fusion`` must be ``'none'``).
        backbone_weights: ImageNet weights of the backbone (a local file;
            :func:`load_imagenet_weights`), for both towers; None = random initialisation.
        rgb_weights, flow_weights: a trained single-stream network to start the tower from
            (a graphfuse checkpoint of ``TwoStreamNet(streams='rgb'|'flow')``, or a tower
            state dict), loaded after ``backbone_weights`` with ``strict=True``; the fusion
            model of the reference starts from its trained RGB and flow networks.
        flow_conv1: rule for the temporal tower's first convolution
            (:func:`flow_conv1_weight`): ``'auto'`` (ResNets ``'symmetric'``, others
            ``'average'``), ``'average'``, ``'symmetric'``.
        dropout: dropout rate of the towers' classifiers (reference fusion training 0.85;
            None keeps the backbone's).
        freeze_rgb_below_fusion: do not train the spatial tower below the fusion layer (the
            reference back-propagates only down to ``relu5_3`` of the spatial network,
            ``backpropDepth``; the temporal tower is trained throughout).
        match: size rule when the two maps differ (SpatialFusion's ``match``).
        backbone_options: extra backbone constructor options (e.g. a small VGG-M:
            ``{channels: [16, 32, 64, 64, 64], fc6: 128, fc7: 64}``).
        seed: seed of the new layers' random initialisation (classifiers); None = torch's
            global generator.

    Inputs ``rgb: (N, 3, T, H, W)`` (ImageNet-normalised) and ``flow: (N, 2L, T, H, W)``
    (channels ``u0, v0, u1, v1, ...``); output clip logits ``(N, num_class)``.
    """

    def __init__(
        self,
        num_class: int = 101,
        backbone: str = "vgg16",
        fusion: FusionKind = "conv",
        fusion_layer: str | None = None,
        fusion_init: str = "2sumAB",
        temporal: TemporalKind = "conv3d_pool3d",
        prediction_fusion: bool = True,
        keep_temporal_tower: bool = True,
        tower_loss: bool = True,
        flow_channels: int = 20,
        num_frames: int = 5,
        streams: Streams = "both",
        backbone_weights: str | None = None,
        rgb_weights: str | None = None,
        flow_weights: str | None = None,
        flow_conv1: Literal["auto", "average", "symmetric"] = "auto",
        dropout: float | None = 0.85,
        freeze_rgb_below_fusion: bool = True,
        match: Literal["upsample", "pad", "error"] = "upsample",
        backbone_options: dict[str, Any] | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if fusion not in ("conv", "sum", "max", "concat", "bilinear", "none"):
            raise ValueError(f"fusion must be conv, sum, max, concat, bilinear or none, got {fusion!r}")
        if temporal not in ("none", "pool2d", "pool3d", "conv3d_pool3d"):
            raise ValueError(f"temporal must be none, pool2d, pool3d or conv3d_pool3d, got {temporal!r}")
        if streams not in ("both", "rgb", "flow"):
            raise ValueError(f"streams must be both, rgb or flow, got {streams!r}")
        if streams != "both" and fusion != "none":
            raise ValueError(f"streams={streams!r} is one stream alone: set fusion='none' (got {fusion!r})")
        if fusion == "none" or streams != "both":
            prediction_fusion, keep_temporal_tower = False, True
        if prediction_fusion and not keep_temporal_tower:
            raise ValueError("prediction_fusion needs keep_temporal_tower=True (the temporal tower's fc8 "
                             "scores are fused)")
        if fusion != "none" and keep_temporal_tower and not (prediction_fusion or tower_loss):
            raise ValueError("keep_temporal_tower=True with neither prediction_fusion nor tower_loss: the "
                             "temporal tower's classifier would not be used; drop it (keep_temporal_tower=False)")
        if temporal == "conv3d_pool3d" and fusion not in ("conv", "none"):
            raise ValueError("temporal='conv3d_pool3d' is the conv fusion with a 3x3x3 kernel: it needs "
                             f"fusion='conv' (got {fusion!r})")
        if fusion == "bilinear" and temporal in ("pool3d", "conv3d_pool3d"):
            raise ValueError("bilinear fusion discards the spatial layout: temporal must be 'none' or 'pool2d'")
        if num_frames < 1 or flow_channels < 1:
            raise ValueError(f"num_frames and flow_channels must be >= 1, got {num_frames}, {flow_channels}")
        self.num_class = int(num_class)
        self.backbone = backbone
        self.fusion_kind = fusion
        self.temporal = temporal
        self.prediction_fusion = bool(prediction_fusion)
        self.keep_temporal_tower = bool(keep_temporal_tower)
        self.tower_loss = bool(tower_loss)
        self.flow_channels = int(flow_channels)
        self.num_frames = int(num_frames)
        self.streams = streams
        self.input_names: tuple[str, ...] = ("rgb", "flow") if streams == "both" else (streams,)
        gen = torch.Generator().manual_seed(seed) if seed is not None else None

        def tower(in_channels: int, weights_file: str | None, which: str) -> Tower:
            t = build_tower(backbone, self.num_class, in_channels, backbone_weights, flow_conv1, dropout,
                            backbone_options, temporal=in_channels != 3, generator=gen)
            if weights_file is not None:
                _load_tower(t, weights_file, which)
            return t

        self.rgb: Tower | None = tower(3, rgb_weights, "rgb") if streams in ("both", "rgb") else None
        self.flow: Tower | None = (tower(self.flow_channels, flow_weights, "flow")
                                   if streams in ("both", "flow") else None)
        ref = self.rgb if self.rgb is not None else self.flow
        assert ref is not None
        self.pool_rule = ref.pool_rule
        self.fusion: SpatialFusion | None = None
        self.temporal_fusion: TemporalFusion | None = None
        self.bilinear_fc: nn.Linear | None = None
        self.fusion_layer: str | None = None
        if fusion == "none":
            return
        assert self.rgb is not None and self.flow is not None
        points = self.rgb.fusion_points
        if fusion_layer is None:
            fusion_layer = _last_conv_point(self.rgb)
        if fusion_layer not in points:
            raise ValueError(f"fusion_layer={fusion_layer!r} is not a fusion point of {backbone}: "
                             f"{', '.join(points)}")
        names = self.rgb.names
        if names.index(fusion_layer) >= names.index(self.pool_rule.step):
            raise ValueError(f"fusion_layer={fusion_layer!r} is after {self.pool_rule.step}: fuse at a "
                             "convolutional layer (the paper's finding: ReLU5)")
        if temporal == "conv3d_pool3d" and fusion_layer != _last_conv_point(self.rgb):
            raise ValueError(f"temporal='conv3d_pool3d' fuses at the last convolutional layer "
                             f"({_last_conv_point(self.rgb)}) where the 3-D pooling follows; got {fusion_layer!r}")
        self.fusion_layer = fusion_layer
        c = points[fusion_layer]
        spatial_kind = "concat" if temporal == "conv3d_pool3d" else fusion
        self.fusion = SpatialFusion(spatial_kind, c, init=fusion_init if fusion == "conv" else "2sumAB",
                                    match=match)
        if temporal == "conv3d_pool3d":
            self.temporal_fusion = TemporalFusion("conv3d_pool3d", 2 * c, out_channels=c, init=fusion_init,
                                                  pool_size=self._pool3d_size(), pool_stride=self._pool3d_stride())
        if fusion == "bilinear":
            self.bilinear_fc = nn.Linear(c * c, self.num_class)
            with torch.no_grad():
                self.bilinear_fc.weight.copy_(0.01 * torch.randn(self.bilinear_fc.weight.shape, generator=gen))
                self.bilinear_fc.bias.zero_()
            self.rgb.cut_after(fusion_layer)
        elif fusion == "concat":
            self._widen_after_concat(fusion_layer)
        if not self.keep_temporal_tower:
            self.flow.cut_after(fusion_layer)
        if freeze_rgb_below_fusion:
            for name in names[: names.index(fusion_layer) + 1]:
                for p in self.rgb.step(name).parameters():
                    p.requires_grad_(False)

    # -- construction helpers ------------------------------------------------------------------
    def _pool3d_size(self) -> tuple[int, int, int]:
        return (self.num_frames, *self.pool_rule.size) if self.pool_rule.replaces else (self.num_frames, 1, 1)

    def _pool3d_stride(self) -> tuple[int, int, int]:
        return (2, *self.pool_rule.stride) if self.pool_rule.replaces else (2, 1, 1)

    def _widen_after_concat(self, fusion_layer: str) -> None:
        """After concatenation the next parametrised layer of the fused tower reads ``2C``
        channels: it is rebuilt as ``[0.5 W_rgb, 0.5 W_flow]`` with bias ``0.5 (b_rgb + b_flow)``,
        i.e. it starts as the mean of the two towers' own next layers (our choice; the paper
        does not say how its concatenation network was initialised)."""
        assert self.rgb is not None and self.flow is not None
        name = self.rgb.first_param_step_after(fusion_layer)
        a, b = (self.rgb.step(name), self.flow.step(name)) if name else (None, None)
        if isinstance(a, nn.Conv2d) and isinstance(b, nn.Conv2d) and a.groups == 1:
            new: nn.Module = nn.Conv2d(2 * a.in_channels, a.out_channels, a.kernel_size, a.stride, a.padding,
                                       a.dilation, 1, a.bias is not None)
        elif isinstance(a, nn.Linear) and isinstance(b, nn.Linear):
            new = nn.Linear(2 * a.in_features, a.out_features, a.bias is not None)
        else:
            raise ValueError(f"concat fusion at {fusion_layer!r} of {self.backbone}: the next layer "
                             f"({name}: {type(a).__name__}) cannot be widened to 2C inputs; fuse at the last "
                             "convolutional layer or use conv fusion")
        with torch.no_grad():
            new.weight.copy_(0.5 * torch.cat([a.weight, b.weight], dim=1))
            if new.bias is not None:
                new.bias.copy_(0.5 * (a.bias + b.bias))
        setattr(self.rgb, name, new)

    # -- forward -------------------------------------------------------------------------------
    def _pool_and_head(self, tower: Tower, x: Tensor, n: int, start: str | None) -> Tensor:
        """Run ``tower`` from after ``start`` through its pooling and classifier on per-frame
        maps ``x (N*T, C, h, w)``; with 3-D pooling the frames are pooled jointly. Returns clip
        scores ``(N, K)`` (frame scores averaged)."""
        rule = self.pool_rule
        before_pool = tower.before(rule.step)
        if start is None or tower.names.index(start) < tower.names.index(rule.step):
            x = tower.run(x, start, before_pool)
            start = before_pool
        if self.temporal in ("pool3d", "conv3d_pool3d"):
            x = _clip(x, n)
            k, s = self._pool3d_size(), self._pool3d_stride()
            if x.shape[2] < k[0]:
                raise ValueError(f"3-D pooling over num_frames={k[0]} frames but the clips have {x.shape[2]}")
            x = F.max_pool3d(x, k, s)
            x = _frames(x)
            if rule.replaces:
                start = rule.step
        return _clip_scores(tower.run(x, start, None), n)

    def forward(self, rgb: Tensor | None = None, flow: Tensor | None = None) -> Tensor:
        """``rgb: (N, 3, T, H, W)``, ``flow: (N, 2L, T, H, W)`` -> clip logits ``(N, num_class)``."""
        return self.forward_loss_terms(rgb, flow)[0]

    def forward_loss_terms(
        self, rgb: Tensor | None = None, flow: Tensor | None = None
    ) -> tuple[Tensor, dict[str, tuple[float, Tensor]]]:
        """The prediction and, with ``tower_loss``, each tower's loss term.

        Returns ``(logits (N, K), {name: (weight, logits_k)})``: the loss is then
        ``sum_k weight_k CE(logits_k)`` (:class:`graphfuse.tasks.ActionRecognition`'s
        multi-head hook), the prediction is used for metrics and scores. With ``tower_loss``:
        ``{'fused': (1, fused tower), 'temporal': (1, temporal tower)}`` for a kept temporal
        tower (the reference back-propagates both ``softmaxlog`` losses with weight 1, and
        averages the two towers' scores at test time), ``{'rgb', 'flow'}`` under late fusion;
        otherwise no terms (the loss is the prediction's cross-entropy).

        Positional inputs follow :attr:`input_names` (a flow-only network's one input is ``flow``).
        Multi-view test batches ``(N, K, C, T, H, W)`` (the video datamodule's ``released`` and
        ``25x10`` protocols) are evaluated as ``N K`` clips and the prediction and the terms
        averaged over the ``K`` views of each video (the released code averages the prediction
        layers' outputs over clips and flips).
        """
        if self.streams == "flow" and flow is None:
            rgb, flow = None, rgb
        given = [x for x in (rgb, flow) if x is not None]
        if given and all(x.dim() == 6 for x in given):
            n, k = given[0].shape[:2]
            if any(x.shape[:2] != (n, k) for x in given):
                raise ValueError(f"rgb and flow views differ: {[tuple(x.shape) for x in given]}")
            flat = [None if x is None else x.flatten(0, 1) for x in (rgb, flow)]
            pred, terms = self.forward_loss_terms(*flat)

            def per_video(t: Tensor) -> Tensor:
                return t.reshape(n, k, -1).mean(dim=1)

            return per_video(pred), {name: (w, per_video(t)) for name, (w, t) in terms.items()}
        for name, x, want in (("rgb", rgb, 3), ("flow", flow, self.flow_channels)):
            if name in self.input_names and (x is None or x.dim() != 5 or x.shape[1] != want):
                shape = None if x is None else tuple(x.shape)
                raise ValueError(f"TwoStreamNet: {name} must be (N, {want}, T, H, W), got {shape}")
        if rgb is not None and flow is not None and self.streams == "both" and rgb.shape[0] != flow.shape[0]:
            raise ValueError(f"rgb and flow batch sizes differ: {tuple(rgb.shape)} vs {tuple(flow.shape)}")
        if self.streams == "rgb":
            assert self.rgb is not None and rgb is not None
            return self._pool_and_head(self.rgb, _frames(rgb), rgb.shape[0], None), {}
        if self.streams == "flow":
            assert self.flow is not None and flow is not None
            return self._pool_and_head(self.flow, _frames(flow), flow.shape[0], None), {}
        assert self.rgb is not None and self.flow is not None and rgb is not None and flow is not None
        n = rgb.shape[0]
        if self.fusion is None:  # late fusion: average of the softmax scores
            sa = self._pool_and_head(self.rgb, _frames(rgb), n, None)
            sb = self._pool_and_head(self.flow, _frames(flow), n, None)
            both = torch.stack([F.log_softmax(sa, dim=-1), F.log_softmax(sb, dim=-1)])
            fused = torch.logsumexp(both, dim=0) - math.log(2.0)
            return fused, ({"rgb": (1.0, sa), "flow": (1.0, sb)} if self.tower_loss else {})
        layer = self.fusion_layer
        assert layer is not None
        fa = self.rgb.run(_frames(rgb), None, layer)
        fb = self.flow.run(_frames(flow), None, layer)
        temporal_scores = None
        if self.keep_temporal_tower:
            temporal_scores = self._pool_and_head(self.flow, fb, n, layer)
        if self.bilinear_fc is not None:
            fused_scores = _clip_scores(self.bilinear_fc(self.fusion(fa, fb)), n)
        elif self.temporal_fusion is not None:  # 3-D conv fusion + 3-D pooling
            x = self.temporal_fusion(self.fusion(_clip(fa, n), _clip(fb, n)))
            # fused at the last conv layer: continue after the replaced pooling (VGG) or with
            # the kept global pooling (ResNet)
            start = self.pool_rule.step if self.pool_rule.replaces else layer
            fused_scores = _clip_scores(self.rgb.run(_frames(x), start, None), n)
        else:
            fused_scores = self._pool_and_head(self.rgb, self.fusion(fa, fb), n, layer)
        if temporal_scores is None:
            return fused_scores, {}
        terms = {"fused": (1.0, fused_scores), "temporal": (1.0, temporal_scores)} if self.tower_loss else {}
        if self.prediction_fusion:
            return 0.5 * (fused_scores + temporal_scores), terms
        return fused_scores, terms

    # -- recipe, inputs -------------------------------------------------------------------------
    def param_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """Weights with ``weight_decay``, biases and normalisation parameters without (the
        reference's ``setLrWd``: biases ``[lr 2, wd 0]``; the x2 bias learning rate is not
        reproduced here)."""
        decay: list[tuple[str, nn.Parameter]] = []
        free: list[tuple[str, nn.Parameter]] = []
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            (free if p.ndim <= 1 else decay).append((name, p))
        groups = [{"params": [p for _, p in decay], "names": [n for n, _ in decay], "weight_decay": weight_decay}]
        if free:
            groups.append({"params": [p for _, p in free], "names": [n for n, _ in free], "weight_decay": 0.0})
        return groups

    def min_input_size(self) -> int:
        """The smallest square input (pixels) the network runs on (cheap example inputs)."""
        if self.backbone == "vgg_m_2048":
            return 64
        return 32

    def example_inputs(self, batch: int = 1, frames: int | None = None, size: int | None = None,
                       seed: int = 0) -> tuple[Tensor, ...]:
        """Random ``(rgb, flow)`` (or the one stream of a single-stream network) of ``batch``
        clips of ``frames`` frames (default ``num_frames``) at ``size x size`` pixels
        (default :meth:`min_input_size`, cheap; the paper's crops are 224)."""
        t = self.num_frames if frames is None else int(frames)
        if self.temporal in ("pool3d", "conv3d_pool3d"):
            t = max(t, self.num_frames)
        s = self.min_input_size() if size is None else int(size)
        g = torch.Generator().manual_seed(seed)
        out = {"rgb": torch.randn(batch, 3, t, s, s, generator=g),
               "flow": torch.randn(batch, self.flow_channels, t, s, s, generator=g)}
        return tuple(out[name] for name in self.input_names)


def _last_conv_point(tower: Tower) -> str:
    """The last fusion point before the backbone's final pooling (VGG-M ``relu5``, VGG-16
    ``relu5_3``, ResNet ``layer4``)."""
    names = tower.names
    pool = names.index(tower.pool_rule.step)
    return [n for n in tower.fusion_points if names.index(n) < pool][-1]


def _load_tower(tower: Tower, path: str | os.PathLike, which: str) -> None:
    """Load a trained single-stream network into ``tower`` (strict): a graphfuse checkpoint
    of ``TwoStreamNet(streams=which)`` (keys ``model.<which>.*``) or a tower state dict."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: {which}_weights not found (a checkpoint of a single-stream "
                                f"TwoStreamNet(streams={which!r}) run, e.g. runs/<name>/<version>/checkpoints/best.ckpt)")
    state = _state_dict_of(load_checkpoint(p), p)
    prefix = f"{which}."
    if any(k.startswith(prefix) for k in state):
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    try:
        tower.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{p}: does not match the {which} tower: {exc}") from exc

