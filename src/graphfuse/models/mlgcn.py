"""Multi-label image recognition: ML-GCN, the ResNet GMP / GAP baselines, and the notes' HGAT_FC.

**ML-GCN** (Chen, Wei, Wang, Guo, "Multi-Label Image Recognition with Graph Convolutional
Networks", CVPR 2019; ``megvii-research/ML-GCN`` ``models.py`` ``GCNResnet``)::

    image (N, 3, S, S) -> ResNet conv1..layer4 (``features``) -> global max pool -> x (N, D)
    inp (C, 300) word embeddings -> gc1 300->1024 -> LeakyReLU(0.2) -> gc2 1024->D   (on A_hat)
    logits = x @ W^T,  W = gc2 output (C, D): one classifier per label

The label graph is held as buffers (``A``: the re-weighted co-occurrence adjacency exactly as
ML-GCN's ``A``; ``inp``: the embeddings), so a checkpoint is self-contained. The task fills
them from the training split at set-up (:meth:`MLGCN.set_label_graph`); without data they are
the identity and one-hot embeddings (the paper's one-hot ablation), so ``graphfuse info`` and
the gradient tests work. Released checkpoint: :func:`convert_mlgcn` (key rule in its docstring).

**Baselines** (:class:`ResNetBaseline`): the same trunk, global max (GMP, 81.9 mAP on COCO in
ML-GCN's README) or average (GAP, 77.3) pooling and one linear classifier.

**HGAT_FC** (:class:`HGATFC`; research notes, public code by Xingxiangrui 2019, brief
``shared/research/mlgcn_twostream.md`` A.0/A.1): GMP features -> reduce FC 2048 -> 1024 -> 512
-> one residual FC block per supercategory group -> a graph attention over the groups -> one
FC per class from its group's vector -> a graph attention inside each group -> per-class
residual block and logit. The classes are gathered by **supercategory** (the correct
permutation; the public code cut ML-GCN's alphabetical classes into contiguous chunks, which
``groups='contiguous'`` reproduces for comparison). Ablations: ``group_level`` /
``class_level`` = ``'gat'`` | ``'fc'`` | ``'none'``.

Backbones are torchvision ResNets (any name, e.g. ``resnet18`` for the CPU quickstart);
ImageNet weights come only from a local file (``backbone_weights``), read through
:func:`graphfuse.checkpoints.load_checkpoint`; nothing is ever downloaded.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphfuse.graphs.label_graph import (
    ADJACENCY_FORMS,
    coco_class_names,
    coco_supercategories,
    group_permutation,
    label_adjacency,
)
from graphfuse.layers.common import check_positive_int
from graphfuse.layers.graph_attention import GraphAttention
from graphfuse.layers.graph_conv import GraphConvolution

from ._keys import check_state_dict
from .weights import Weights

__all__ = [
    "HGATFC",
    "MLGCN",
    "WEIGHTS",
    "ResNetBaseline",
    "build_resnet_trunk",
    "convert_mlgcn",
    "expected_backbone_files",
    "gen_adj",
    "mlgcn_state_dict",
]

PoolKind = Literal["max", "avg"]
LevelKind = Literal["gat", "fc", "none"]


# ------------------------------------------------------------------------------------------
# the trunk
# ------------------------------------------------------------------------------------------
def expected_backbone_files(backbone: str) -> list[str]:
    """The file names of torchvision's ImageNet weights for ``backbone`` (its Weights enum's
    URL base names, default first), e.g. ``['resnet101-cd907fc2.pth', 'resnet101-63fe2227.pth']``."""
    from torchvision.models import get_model_weights

    enum = get_model_weights(backbone)
    default = enum.DEFAULT
    ordered = [default] + [w for w in enum if w is not default]
    return [Path(w.url).name for w in ordered]


def _check_backbone_name(backbone: str) -> None:
    import torchvision.models as tvm
    from torchvision.models import list_models

    names = [m for m in list_models(module=tvm) if "resne" in m]
    if backbone not in names:
        raise ValueError(f"backbone must be a torchvision ResNet ({', '.join(sorted(names))}), got {backbone!r}")


def _load_backbone_weights(net: nn.Module, backbone: str, path: str | os.PathLike) -> None:
    from graphfuse.checkpoints import load_checkpoint

    p = Path(path)
    if not p.is_file():
        files = expected_backbone_files(backbone)
        raise FileNotFoundError(
            f"backbone_weights {p}: file not found. torchvision's ImageNet weights for {backbone} are "
            f"{' or '.join(files)} (https://download.pytorch.org/models/{files[0]}); download the file "
            "yourself and pass its path (graphfuse never downloads)"
        )
    obj = load_checkpoint(p)
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(f"backbone_weights {p}: not a state dict of tensors")
    state = {(k.removeprefix("module.")): v for k, v in obj.items()}
    expected = {k: v.shape for k, v in net.state_dict().items()}
    # The classifier of the ImageNet model is not used; a file without it is fine.
    for k in ("fc.weight", "fc.bias"):
        if k not in state:
            expected.pop(k)
    # torchvision < 0.4 files have no BatchNorm num_batches_tracked counters.
    for k in [k for k in expected if k.endswith("num_batches_tracked") and k not in state]:
        state[k] = torch.zeros((), dtype=torch.long)
    check_state_dict(state, expected, f"backbone_weights {p}", f"not torchvision {backbone} weights")
    net.load_state_dict(state, strict=False)


def build_resnet_trunk(backbone: str = "resnet101", weights: str | os.PathLike | None = None) -> tuple[nn.Sequential, int]:
    """``(features, D)``: torchvision ``backbone``'s ``conv1, bn1, relu, maxpool, layer1..4`` as
    one ``nn.Sequential`` (ML-GCN's ``features``, keys ``features.0 ... features.7``) and its
    output channels ``D`` (2048 for ResNet-50/101, 512 for ResNet-18/34).

    ``weights``: a local file of torchvision's ImageNet weights (its state dict, with or
    without ``fc``), or None for random initialisation.

    Raises:
        FileNotFoundError: naming the file torchvision's weights enum expects.
        ValueError: an unknown backbone, or a file whose keys or shapes do not match.
    """
    from torchvision.models import get_model

    _check_backbone_name(backbone)
    net = get_model(backbone, weights=None)
    if weights is not None:
        _load_backbone_weights(net, backbone, weights)
    features = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4)
    return features, int(net.fc.in_features)


def _pool(kind: str) -> nn.Module:
    if kind == "max":
        return nn.AdaptiveMaxPool2d(1)  # ML-GCN: MaxPool2d(14, 14) at 448 px, i.e. global
    if kind == "avg":
        return nn.AdaptiveAvgPool2d(1)
    raise ValueError(f"pool must be 'max' or 'avg', got {kind!r}")


class _ImageNetwork(nn.Module):
    """What every network of this family shares: the ``image`` input, the trunk, the pooled
    features, ``example_inputs`` for ``graphfuse info`` and the backbone lr multiplier."""

    input_names: tuple[str, ...] = ("image",)

    def _init_trunk(self, num_class: int, backbone: str, backbone_weights: str | None, pool: str,
                    image_size: int, backbone_lr_mult: float, channels_last_on_gpu: bool = True) -> None:
        #: On a GPU the trunk runs in channels-last memory format (NHWC: tensor-core
        #: convolutions, notably under bf16 autocast); the result equals NCHW's up to rounding.
        self.channels_last_on_gpu = bool(channels_last_on_gpu)
        self.num_class = check_positive_int("num_class", num_class)
        self.image_size = check_positive_int("image_size", image_size)
        if not backbone_lr_mult >= 0:
            raise ValueError(f"backbone_lr_mult must be >= 0, got {backbone_lr_mult}")
        self.backbone_lr_mult = float(backbone_lr_mult)
        self.backbone = backbone
        #: The ImageNet weights file the trunk started from (None: random initialisation).
        self.backbone_weights = backbone_weights
        self.features, self.feature_dim = build_resnet_trunk(backbone, backbone_weights)
        self.pooling = _pool(pool)

    def _check_image(self, image: Tensor) -> None:
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"{type(self).__name__} expects images (N, 3, H, W), got {tuple(image.shape)}")

    def forward_features(self, image: Tensor) -> Tensor:
        """``image (N, 3, H, W)`` -> pooled trunk features ``(N, D)``."""
        self._check_image(image)
        if self.channels_last_on_gpu and image.is_cuda:
            # a channels-last input makes every convolution of the trunk run channels-last
            image = image.contiguous(memory_format=torch.channels_last)
        return self.pooling(self.features(image)).flatten(1)

    def example_inputs(self, batch: int = 1, frames: int | None = None, *, image_size: int | None = None,
                       seed: int = 0) -> tuple[Tensor]:
        """``(image (batch, 3, S, S),)`` ImageNet-normalised-like random values, ``S`` =
        ``image_size`` or the model's (448 for ML-GCN); ``frames`` is ignored (images)."""
        s = int(image_size or self.image_size)
        g = torch.Generator().manual_seed(seed)
        return (torch.randn(batch, 3, s, s, generator=g),)

    def param_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """Two groups: the pretrained trunk with ``lr_mult = backbone_lr_mult`` (ML-GCN's
        ``lrp``: its ``get_config_optim`` gives ``features`` ``lr * lrp``) and everything else
        with ``lr_mult = 1``; ``weight_decay`` on both (ML-GCN: 1e-4 on every parameter). The
        task multiplies its base lr by ``lr_mult``."""
        trunk = [(n, p) for n, p in self.named_parameters() if n.startswith("features.") and p.requires_grad]
        head = [(n, p) for n, p in self.named_parameters() if not n.startswith("features.") and p.requires_grad]
        groups = []
        for named, mult in ((trunk, self.backbone_lr_mult), (head, 1.0)):
            if named:
                groups.append({"params": [p for _, p in named], "names": [n for n, _ in named],
                               "weight_decay": weight_decay, "lr_mult": mult})
        return groups


# ------------------------------------------------------------------------------------------
# ML-GCN
# ------------------------------------------------------------------------------------------
def gen_adj(a: Tensor) -> Tensor:
    """ML-GCN's ``gen_adj``: ``D^-1/2 A^T D^-1/2``, ``D`` the row sums of ``A`` (torch)."""
    d = a.sum(1).pow(-0.5)
    return (a * d[None, :]).t() * d[None, :]


class MLGCN(_ImageNetwork):
    """ML-GCN (Chen et al., CVPR 2019) with a torchvision ResNet trunk.

    Args:
        num_class: labels ``C`` (80 on COCO; set from the data's ``meta.json``).
        backbone: torchvision ResNet name (ML-GCN: ``resnet101``).
        backbone_weights: local file of torchvision's ImageNet weights; None = random init.
        in_channel: word-embedding size (300-d GloVe).
        hidden: output size of ``gc1`` (1024); ``gc2`` outputs the trunk's ``D``.
        t: co-occurrence threshold of the binary graph (0.4).
        p: re-weighting (0.2; the released code's 0.25 = p / (1 - p)).
        adj_form: ``'released'`` (``gen_A`` stored, ``gen_adj`` applied: the published
            numbers) or ``'paper'`` (Eq. 8 stored and used as is); see
            :mod:`graphfuse.graphs.label_graph`.
        pool: ``'max'`` (ML-GCN) or ``'avg'``.
        image_size: input side the model is used at (448), for ``example_inputs``.
        negative_slope: LeakyReLU slope between the GCN layers (0.2).
        backbone_lr_mult: lr multiplier of the trunk (ML-GCN's ``lrp`` 0.1).
        channels_last_on_gpu: run the trunk in channels-last memory format on a GPU (faster
            convolutions, bf16 autocast included: ``--trainer.precision bf16-mixed``); no effect on CPU.

    State (as ML-GCN's ``GCNResnet``): ``features.*``, ``gc1.weight (in_channel, hidden)``,
    ``gc2.weight (hidden, D)``, ``A (C, C)``; plus ``inp (C, in_channel)`` (ML-GCN feeds it
    with every batch).

    ``forward(image (N, 3, H, W)) -> logits (N, C)``.
    """

    def __init__(
        self,
        num_class: int = 80,
        backbone: str = "resnet101",
        backbone_weights: str | None = None,
        in_channel: int = 300,
        hidden: int = 1024,
        t: float = 0.4,
        p: float = 0.2,
        adj_form: Literal["released", "paper"] = "released",
        pool: PoolKind = "max",
        image_size: int = 448,
        negative_slope: float = 0.2,
        backbone_lr_mult: float = 0.1,
        channels_last_on_gpu: bool = True,
    ) -> None:
        super().__init__()
        if adj_form not in ADJACENCY_FORMS:
            raise ValueError(f"adj_form must be one of {ADJACENCY_FORMS}, got {adj_form!r}")
        self._init_trunk(num_class, backbone, backbone_weights, pool, image_size, backbone_lr_mult,
                         channels_last_on_gpu)
        self.in_channel = check_positive_int("in_channel", in_channel)
        self.t, self.p, self.adj_form = float(t), float(p), adj_form
        self.gc1 = GraphConvolution(in_channel, check_positive_int("hidden", hidden))
        self.gc2 = GraphConvolution(hidden, self.feature_dim)
        self.relu = nn.LeakyReLU(negative_slope)
        self.register_buffer("A", torch.eye(self.num_class))
        self.register_buffer("inp", self.default_embeddings(self.num_class, in_channel))
        #: Whether ``A`` / ``inp`` hold a real label graph (set from data or a state dict).
        self.has_label_graph = False
        self.register_load_state_dict_post_hook(MLGCN._mark_loaded)

    @staticmethod
    def _mark_loaded(module: nn.Module, incompatible_keys: Any) -> None:
        module.has_label_graph = True

    @staticmethod
    def default_embeddings(num_class: int, in_channel: int) -> Tensor:
        """One-hot label inputs ``(C, in_channel)`` (the paper's one-hot ablation) when
        ``C <= in_channel``, else fixed unit-norm random rows (seed 0)."""
        if num_class <= in_channel:
            return torch.eye(num_class, in_channel)
        g = torch.Generator().manual_seed(0)
        e = torch.randn(num_class, in_channel, generator=g)
        return e / e.norm(dim=1, keepdim=True)

    def set_label_graph(self, counts: Any, cooccurrence: Any, embeddings: Any = None, **_: Any) -> None:
        """Fill ``A`` from training label statistics (``counts (C,)``, ``cooccurrence (C, C)``)
        by ``adj_form`` with ``t`` and ``p``, and ``inp`` from ``embeddings (C, in_channel)``
        (None keeps the one-hot default). Further keys of the datamodule's ``label_graph()``
        are ignored.

        Raises:
            ValueError: shapes that do not match ``num_class`` / ``in_channel``, non-finite values.
        """
        c = self.num_class
        counts = np.asarray(counts)
        if counts.shape != (c,):
            raise ValueError(f"label graph: counts of shape {counts.shape}, the model has {c} classes")
        a = label_adjacency(counts, np.asarray(cooccurrence), self.t, self.p, self.adj_form)
        with torch.no_grad():
            self.A.copy_(torch.as_tensor(a, dtype=self.A.dtype))
            if embeddings is not None:
                e = torch.as_tensor(np.asarray(embeddings), dtype=self.inp.dtype)
                if e.shape != (c, self.in_channel):
                    raise ValueError(f"label graph: embeddings of shape {tuple(e.shape)}, the model takes "
                                     f"({c}, {self.in_channel}) (num_class, in_channel)")
                if not torch.isfinite(e).all():
                    raise ValueError("label graph: non-finite word embeddings")
                self.inp.copy_(e)
        self.has_label_graph = True

    def propagation(self) -> Tensor:
        """The matrix the GCN multiplies with: ``gen_adj(A)`` (released) or ``A`` (paper)."""
        return gen_adj(self.A) if self.adj_form == "released" else self.A

    def classifiers(self) -> Tensor:
        """The label classifiers ``W (C, D)``: the GCN over ``inp`` on the label graph."""
        adj = self.propagation().detach()
        return self.gc2(self.relu(self.gc1(self.inp, adj)), adj)

    def forward(self, image: Tensor) -> Tensor:
        """``image (N, 3, H, W)`` -> logits ``(N, C)``."""
        x = self.forward_features(image)
        return x @ self.classifiers().t()


class ResNetBaseline(_ImageNetwork):
    """ResNet + global pooling + one linear classifier: ML-GCN README's baselines (GMP 81.9,
    GAP 77.3 mAP on COCO).

    Args:
        num_class, backbone, backbone_weights, image_size, backbone_lr_mult, channels_last_on_gpu: as
            :class:`MLGCN`.
        pool: ``'max'`` (GMP) or ``'avg'`` (GAP).

    ``forward(image (N, 3, H, W)) -> logits (N, C)``; parameters ``features.*``, ``fc.*``.
    """

    def __init__(
        self,
        num_class: int = 80,
        backbone: str = "resnet101",
        backbone_weights: str | None = None,
        pool: PoolKind = "max",
        image_size: int = 448,
        backbone_lr_mult: float = 0.1,
        channels_last_on_gpu: bool = True,
    ) -> None:
        super().__init__()
        self._init_trunk(num_class, backbone, backbone_weights, pool, image_size, backbone_lr_mult,
                         channels_last_on_gpu)
        self.fc = nn.Linear(self.feature_dim, self.num_class)

    def forward(self, image: Tensor) -> Tensor:
        """``image (N, 3, H, W)`` -> logits ``(N, C)``."""
        return self.fc(self.forward_features(image))


# ------------------------------------------------------------------------------------------
# HGAT_FC
# ------------------------------------------------------------------------------------------
class BasicLinear(nn.Module):
    """``Linear -> BatchNorm1d -> ReLU`` (HGAT's ``utils.BasicLinear``, inferred from the
    author's parallel re-implementation: the utils source is not public). ``(B, F_in) -> (B, F_out)``."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_features, out_features)
        self.bn = nn.BatchNorm1d(out_features)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.fc(x)))


class GroupedBasicLinear(nn.Module):
    """``G`` independent :class:`BasicLinear` blocks applied at once: ``(B, G, F_in) -> (B, G, F_out)``.

    Weight ``(G, F_in, F_out)``, bias ``(G, F_out)`` (each initialised as ``nn.Linear``:
    uniform in ``±1/sqrt(F_in)``); the BatchNorm over ``G * F_out`` features is exactly ``G``
    separate ``BatchNorm1d(F_out)``. Same parameter count as ``G`` BasicLinear modules.
    """

    def __init__(self, groups: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.groups, self.in_features, self.out_features = groups, in_features, out_features
        bound = 1.0 / in_features**0.5
        self.weight = nn.Parameter(torch.empty(groups, in_features, out_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(groups, out_features).uniform_(-bound, bound))
        self.bn = nn.BatchNorm1d(groups * out_features)

    def linear(self, x: Tensor) -> Tensor:
        """The grouped affine map only: ``(B, G, F_in) -> (B, G, F_out)``."""
        return torch.einsum("bgi,gio->bgo", x, self.weight) + self.bias

    def forward(self, x: Tensor) -> Tensor:
        y = self.linear(x)
        b = y.shape[0]
        return F.relu(self.bn(y.reshape(b, -1)).reshape(b, self.groups, self.out_features))


class GroupedResidualLinearBlock(nn.Module):
    """``G`` HGAT ``ResidualLinearBlock(C, r)``: ``x + BL(C/r -> C)(BL(C -> C/r)(x))`` per group
    (no activation after the sum, as the author's parallel version). ``(B, G, C) -> (B, G, C)``."""

    def __init__(self, groups: int, channels: int, reduction: int = 2) -> None:
        super().__init__()
        self.fc1 = GroupedBasicLinear(groups, channels, channels // reduction)
        self.fc2 = GroupedBasicLinear(groups, channels // reduction, channels)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.fc2(self.fc1(x))


class HGATFC(_ImageNetwork):
    """The research notes' HGAT_FC: hierarchical (group, class) graph attention on GMP features.

    Args:
        num_class: labels ``C`` (80 on COCO).
        backbone, backbone_weights, pool, image_size, backbone_lr_mult, channels_last_on_gpu: as
            :class:`MLGCN`.
        class_names: the data's class names in label order (``meta.json``; the task fills it
            in). With ``supercategories`` None they are looked up in COCO's table. None with
            ``num_class == 80``: COCO in ML-GCN's alphabetical order.
        supercategories: the supercategory of each class in label order (``meta.json``); the
            groups. Synthetic data brings its own.
        groups: ``'supercategory'`` (classes gathered by supercategory: the correct
            permutation, brief A.1) or ``'contiguous'`` (the public code: the same group sizes
            cut from the classes in label order, which for ML-GCN's alphabetical order are
            meaningless groups; for comparison).
        reduce_channels: hidden size of the reduce FC (1024).
        group_channels: group vector size (512).
        class_channels: class vector size (256).
        group_level: over the group vectors ``(B, G, 512)``: ``'gat'`` (one
            :class:`~graphfuse.layers.graph_attention.GraphAttention` over the G groups),
            ``'fc'`` (the notes' ablation ``fc_replace_GALayer1``: ``BasicLinear(G*512 ->
            G*512)`` on the flattened vector, reshaped correctly ``(B, G*512)``; about 37.8 M
            parameters at G = 12), ``'none'`` (the stored file, where the call is commented out).
        class_level: inside each group ``(B, n_g, 256)``: ``'gat'`` (one GAT per group; held as
            one grouped :class:`~graphfuse.layers.graph_attention.GraphAttention` ``gat2``; the
            attention vector of a one-class group, person on COCO, gets no gradient: softmax
            over one node is 1),
            ``'fc'`` (the file's ``fc_replace_GALayer2``: one ``BasicLinear(256 -> 256)`` per
            group applied to each class vector of the group, reshaped ``(B*n_g, 256)``; it does
            not mix the classes), ``'none'`` (the stored file).
        gat_residual: the ``beta * h`` residual of the GAT layers (BGATLayer: True).
        alpha: LeakyReLU slope of the attention scores (0.2).

    Attributes:
        perm: ``(C,)`` buffer, the class index at each group-order position.
        group_sizes, group_names: the groups in order.

    ``forward(image (N, 3, H, W)) -> logits (N, C)`` in label order (the group order is undone).
    """

    def __init__(
        self,
        num_class: int = 80,
        backbone: str = "resnet101",
        backbone_weights: str | None = None,
        class_names: Sequence[str] | None = None,
        supercategories: Sequence[str] | None = None,
        groups: Literal["supercategory", "contiguous"] = "supercategory",
        reduce_channels: int = 1024,
        group_channels: int = 512,
        class_channels: int = 256,
        group_level: LevelKind = "gat",
        class_level: LevelKind = "gat",
        gat_residual: bool = True,
        alpha: float = 0.2,
        pool: PoolKind = "max",
        image_size: int = 448,
        backbone_lr_mult: float = 0.1,
        channels_last_on_gpu: bool = True,
    ) -> None:
        super().__init__()
        for name, value in (("group_level", group_level), ("class_level", class_level)):
            if value not in ("gat", "fc", "none"):
                raise ValueError(f"{name} must be 'gat', 'fc' or 'none', got {value!r}")
        if groups not in ("supercategory", "contiguous"):
            raise ValueError(f"groups must be 'supercategory' or 'contiguous', got {groups!r}")
        self._init_trunk(num_class, backbone, backbone_weights, pool, image_size, backbone_lr_mult,
                         channels_last_on_gpu)
        c = self.num_class
        names = list(class_names) if class_names is not None else None
        if supercategories is None:
            if names is None:
                if c != 80:
                    raise ValueError(f"HGATFC with {c} classes needs supercategories (or COCO class_names); "
                                     "the task fills them from the data's meta.json")
                names = coco_class_names("mlgcn")
            sups = coco_supercategories(names)
        else:
            sups = [str(s) for s in supercategories]
        if len(sups) != c or (names is not None and len(names) != c):
            raise ValueError(f"HGATFC: {c} classes but {len(sups)} supercategories"
                             + (f" and {len(names)} class names" if names is not None else ""))
        perm, sizes, group_names = group_permutation(sups, names)
        if groups == "contiguous":
            perm = list(range(c))  # the public code: consecutive label indices per group
        self.groups_mode, self.group_level, self.class_level = groups, group_level, class_level
        self.group_sizes, self.group_names = sizes, group_names
        g = len(sizes)
        self.register_buffer("perm", torch.as_tensor(perm, dtype=torch.long), persistent=False)
        self.register_buffer("inverse_perm", torch.argsort(self.perm), persistent=False)
        group_of_position = torch.repeat_interleave(torch.arange(g), torch.as_tensor(sizes))
        self.register_buffer("group_of_position", group_of_position, persistent=False)
        nmax = max(sizes)
        # position of each class (group order) in a (G, nmax) padded layout, and the valid mask
        offsets = torch.cumsum(torch.as_tensor([0] + sizes[:-1]), 0)
        slot = torch.arange(c) - offsets[group_of_position] + group_of_position * nmax
        self.register_buffer("padded_slot", slot, persistent=False)
        mask = torch.zeros(g * nmax, dtype=torch.bool)
        mask[slot] = True
        self.register_buffer("padded_mask", mask.reshape(g, nmax), persistent=False)
        self.max_group = nmax

        self.reduce_fc = nn.Sequential(BasicLinear(self.feature_dim, reduce_channels),
                                       BasicLinear(reduce_channels, group_channels))
        self.group_fcs = GroupedResidualLinearBlock(g, group_channels, 2)
        if group_level == "gat":
            self.gat1 = GraphAttention(group_channels, group_channels, alpha=alpha, residual=gat_residual)
        elif group_level == "fc":
            self.fc_replace_gat1 = BasicLinear(g * group_channels, g * group_channels)
        self.class_fcs = GroupedBasicLinear(c, group_channels, class_channels)
        if class_level == "gat":
            # G independent GATs (BGATLayer's W, a, beta per group), run at once on padded groups
            self.gat2 = GraphAttention(class_channels, class_channels, alpha=alpha, residual=gat_residual, groups=g)
        elif class_level == "fc":
            self.fc_replace_gat2 = nn.ModuleList(BasicLinear(class_channels, class_channels) for _ in range(g))
        self.class_blocks = GroupedResidualLinearBlock(c, class_channels, 2)
        self.class_out_weight = nn.Parameter(torch.empty(c, class_channels))
        self.class_out_bias = nn.Parameter(torch.empty(c))
        bound = 1.0 / class_channels**0.5  # nn.Linear(256, 1) init, per class
        nn.init.uniform_(self.class_out_weight, -bound, bound)
        nn.init.uniform_(self.class_out_bias, -bound, bound)
        self.group_channels, self.class_channels = group_channels, class_channels

    def _class_level(self, x: Tensor) -> Tensor:
        """``x (B, C, 256)`` in group order -> the same after the class-level stage."""
        if self.class_level == "none":
            return x
        b, _, f = x.shape
        g = len(self.group_sizes)
        if self.class_level == "gat":
            # Pad the groups to (B, G, nmax, F) and run the G GATs at once; padded nodes are
            # masked as keys and dropped afterwards.
            padded = x.new_zeros(b, g * self.max_group, f)
            padded[:, self.padded_slot] = x
            out = self.gat2(padded.reshape(b, g, self.max_group, f), node_mask=self.padded_mask)
            return out.reshape(b, g * self.max_group, -1)[:, self.padded_slot]
        # fc: one BasicLinear per group on each class vector (B * n_g rows), a loop over groups
        chunks = torch.split(x, self.group_sizes, dim=1)
        outs = [fc(chunk.reshape(-1, f)).reshape(b, -1, f) for fc, chunk in zip(self.fc_replace_gat2, chunks)]
        return torch.cat(outs, 1)

    def forward(self, image: Tensor) -> Tensor:
        """``image (N, 3, H, W)`` -> logits ``(N, C)`` in label order."""
        x = self.reduce_fc(self.forward_features(image))  # (B, 512)
        b = x.shape[0]
        g = len(self.group_sizes)
        x = self.group_fcs(x.unsqueeze(1).expand(b, g, x.shape[1]))  # (B, G, 512)
        if self.group_level == "gat":
            x = self.gat1(x)
        elif self.group_level == "fc":
            x = self.fc_replace_gat1(x.reshape(b, g * self.group_channels)).reshape(b, g, self.group_channels)
        x = self.class_fcs(x[:, self.group_of_position])  # (B, C, 256): class k from its group's vector
        x = self.class_blocks(self._class_level(x))
        logits = (x * self.class_out_weight).sum(-1) + self.class_out_bias  # (B, C), group order
        return logits[:, self.inverse_perm]  # back to label order


# ------------------------------------------------------------------------------------------
# ML-GCN's released checkpoints
# ------------------------------------------------------------------------------------------
def _read_embeddings(path: str | os.PathLike) -> np.ndarray:
    """``(C, D)`` float array from ML-GCN's ``*_glove_word2vec.pkl`` (restricted unpickler) or a ``.npy``."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"embeddings {p}: file not found (ML-GCN's data/coco/coco_glove_word2vec.pkl)")
    if p.suffix == ".npy":
        arr = np.load(p, allow_pickle=False)
    else:
        from graphfuse.io import restricted_load

        arr = restricted_load(p)
    arr = np.asarray(arr)
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.floating) or not np.isfinite(arr).all():
        raise ValueError(f"embeddings {p}: expected a finite float (C, D) array, got {arr.dtype} {arr.shape}")
    return arr


def mlgcn_state_dict(released: Mapping[str, Tensor], embeddings: Any, where: str = "ML-GCN checkpoint") -> dict[str, Tensor]:
    """Map the state dict of ML-GCN's ``GCNResnet`` to :class:`MLGCN`'s.

    Key rule: every key is kept as it is (``features.0.weight`` ... ``features.7.2.bn3.*``,
    ``gc1.weight``, ``gc2.weight``, ``A``), after stripping a ``module.`` prefix
    (DataParallel); BatchNorm ``num_batches_tracked`` counters missing in files of PyTorch <
    0.4 are added as 0; ``inp`` (which ML-GCN passes with every batch, not in its state) is
    added from ``embeddings (C, in_channel)``.
    """
    state = {(k.removeprefix("module.")): v for k, v in released.items()}
    for k in [k for k in state if k.endswith(".running_mean")]:
        state.setdefault(k[: -len("running_mean")] + "num_batches_tracked", torch.zeros((), dtype=torch.long))
    e = torch.as_tensor(np.asarray(embeddings), dtype=torch.float32)
    if "A" in state and e.shape[0] != state["A"].shape[0]:
        raise ValueError(f"{where}: embeddings have {e.shape[0]} rows but A is {tuple(state['A'].shape)}")
    state["inp"] = e
    return state


def convert_mlgcn(input_path: str | Path, output_path: str | Path, embeddings: str | None = None,
                  **options: Any) -> Path:
    """ML-GCN's released ``coco_checkpoint.pth.tar`` / ``voc_checkpoint.pth.tar`` -> graphfuse checkpoint.

    The file (``torch.save`` of ``{'epoch', 'arch', 'state_dict', 'best_score'}``) is read with
    :func:`graphfuse.checkpoints.load_checkpoint` (``weights_only=True``). The classes come
    from ``A``, ``in_channel`` / ``hidden`` from ``gc1.weight``; the state is mapped by
    :func:`mlgcn_state_dict` and loaded into :class:`MLGCN` (ResNet-101, released adjacency
    form) with ``strict=True``. ``embeddings``: ML-GCN's ``data/coco/coco_glove_word2vec.pkl``
    (``voc_glove_word2vec.pkl``), read with the restricted unpickler, or a ``.npy``; required,
    since the released model was trained on them.

    Raises:
        ValueError: missing embeddings, or a file that is not ML-GCN's layout (naming the keys).
    """
    import lightning

    from graphfuse.checkpoints import BLOCK_KEY, graphfuse_block, load_checkpoint, save_checkpoint

    from .weights import find_weights, release_info

    if options:
        raise TypeError(f"convert_mlgcn takes only 'embeddings', got {', '.join(sorted(options))}")
    input_path, output_path = Path(input_path), Path(output_path)
    if embeddings is None:
        raise ValueError(f"{input_path}: give --embeddings, ML-GCN's word vectors the model was trained with "
                         "(data/coco/coco_glove_word2vec.pkl or data/voc/voc_glove_word2vec.pkl of megvii-research/ML-GCN)")
    obj = load_checkpoint(input_path)
    state = obj.get("state_dict") if isinstance(obj, Mapping) else None
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{input_path}: expected ML-GCN's checkpoint dict with a 'state_dict' of tensors")
    for key in ("A", "gc1.weight"):
        if key not in state and "module." + key not in state:
            raise ValueError(f"{input_path}: no {key!r} in the state dict; not an ML-GCN checkpoint")
    get = (lambda k: state[k] if k in state else state["module." + k])
    num_class = int(get("A").shape[0])
    in_channel, hidden = (int(s) for s in get("gc1.weight").shape)
    mapped = mlgcn_state_dict(state, _read_embeddings(embeddings), str(input_path))
    model = MLGCN(num_class=num_class, in_channel=in_channel, hidden=hidden)
    check_state_dict(mapped, {k: v.shape for k, v in model.state_dict().items()}, str(input_path),
                     "not ML-GCN's gcn_resnet101 layout")
    model.load_state_dict(mapped, strict=True)
    release = find_weights(input_path, WEIGHTS)
    info: dict[str, Any] = {"converted_from": str(input_path), **release_info(input_path, WEIGHTS),
                            "embeddings": str(embeddings)}
    for key in ("epoch", "best_score"):
        value = obj.get(key)
        if isinstance(value, Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, (int, float)):
            info[f"released_{key}"] = value
    names = coco_class_names("mlgcn") if num_class == 80 else None
    data = {"image_size": 448, "class_order": "mlgcn" if num_class == 80 else "voc",
            "test_transform": "resize to 448x448 (ML-GCN Warp)", "normalisation": "ImageNet mean/std",
            "input_names": ["image"], "input_shapes": {"image": [3, 448, 448]}}
    config = None
    if release is not None and release.config:
        cfg = Path(__file__).resolve().parents[3] / release.config
        config = cfg.read_text(encoding="utf-8") if cfg.is_file() else None
    ckpt = {
        "state_dict": {"model." + k: v.detach().clone() for k, v in model.state_dict().items()},
        "pytorch-lightning_version": lightning.__version__,
        "epoch": 0,
        "global_step": 0,
        BLOCK_KEY: graphfuse_block(config=config, data=data, class_names=names, num_class=num_class,
                                   model="graphfuse.models.mlgcn.MLGCN",
                                   task="graphfuse.tasks.multilabel.MultiLabelRecognition", **info),
    }
    save_checkpoint(ckpt, output_path)
    return output_path


_SOURCE = "ML-GCN README (megvii-research/ML-GCN), checkpoint/coco and checkpoint/voc (Google Drive / Baidu)"
_PROTOCOL = ("ML-GCN's engine: evaluated on the test split (COCO val2014 / VOC2007 test), the best "
             "epoch also selected on it; mAP over classes, non-interpolated AP")

#: ML-GCN's released checkpoints (sha256 not recorded: the files are on Google Drive / Baidu).
WEIGHTS: tuple[Weights, ...] = (
    Weights(
        name="mlgcn_coco2014", file="checkpoint/coco/coco_checkpoint.pth.tar", converter="mlgcn",
        num_class=80, config="configs/coco2014/mlgcn/mlgcn_released.yaml", source=_SOURCE, protocol=_PROTOCOL,
        metric="mAP (%)", reported=83.0,
        notes="convert with --embeddings data/coco/coco_glove_word2vec.pkl; data prepared in ML-GCN's "
              "alphabetical class order (class_order mlgcn)",
    ),
    Weights(
        name="mlgcn_voc2007", file="checkpoint/voc/voc_checkpoint.pth.tar", converter="mlgcn",
        num_class=20, config="configs/voc2007/mlgcn/mlgcn.yaml", source=_SOURCE, protocol=_PROTOCOL,
        metric="mAP (%)", reported=94.0,
        notes="convert with --embeddings data/voc/voc_glove_word2vec.pkl",
    ),
)
