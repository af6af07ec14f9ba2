"""Pedestrian Graph+ (Cadena, Qian, Wang, Yang, "Pedestrian Graph+: A Fast Pedestrian Crossing
Prediction Model Based on Graph Convolutional Networks", IEEE T-ITS 23(11):21050-21061, 2022),
faithful to the official ``RodrigoGantier/Pedestrian_graph_plus`` (``models/ped_graph23.py``,
class ``pedMondel``), and the fusion / backbone variants of the research notes
(``sellenzh/doing_project``, ``GCN_module/Gated_Fusion``; see ``shared/research/pedgraph_pie.md``
sections 1.2 and 2).

PedGraph+ (``backbone='gcn'``, ``fusion='gate'``)::

    pose (N, C, T, 19) -> data_bn over C*V (channel-major) -> l1: C -> 32 (no unit residual)
        -> [gates] -> l2: 32 -> 64 -> [gates] -> GAP over (T, V) -> h (N, 64)
        -> h + h * sigmoid(BN(Linear(SiLU(h)))) -> Dropout(0.25) -> Linear(64, num_class)

Context branches, each gating the pose channels by ``sigmoid(global average)`` after a block:

* image crop ``(N, 3|4, H, W)``: ``conv0`` 3x3 -> ``conv1`` 3x3 -> ``conv2`` 2x2
  (``Cimg -> 32 -> 32 -> 64``, Conv-BN-SiLU, no padding; 192x64 -> 190x62 -> 188x60 -> 187x59);
* velocity ``(N, 2, Tv)``: ``v0`` k3 -> ``v1`` k3 -> ``v2`` k2 (``2 -> 32 -> 32 -> 64``,
  Conv1d-BN-SiLU, no padding; ``Tv >= 6``).

The official forward computes the image gate after ``l1`` but never assigns the product (a
no-op); ``official_image_gate_bug=True`` reproduces that (the converter of released weights sets
it), the default applies the image gate after both blocks as the paper describes.

Variants of the notes (constructor arguments; layers from :mod:`graphfuse.layers.fusion`,
:mod:`graphfuse.layers.temporal_attention`, :mod:`graphfuse.layers.decoupling_gcn`):

* ``backbone='dcgcn_tat'``: each block is a decoupling GCN (DC-GCN) plus the unit residual, then a
  per-joint temporal transformer (``TemporalTransformer``, ending in ReLU) instead of the 5x1
  temporal convolution (DP ``ped_graph0807.py`` / ``Gated_Fusion/ped_graph.py``).
* ``fusion='cross_gated'`` (DP ``Gated_Fusion/ped_graph.py`` ... ``save/ped_graph.py``): a
  velocity stream ``vel1`` (2 -> 32 on the last ``T`` frames), ``vel2`` (32 -> 64) runs beside
  the ``v0/v1/v2`` gate chain; after block ``i``: ``pose_mul = pose * sigmoid(GAP(v_i))``,
  ``pose_att = cross_i(pose, velocity_i)``, ``pose = gated_i(pose_mul, pose_att)``, then the
  image gate.
* ``fusion='two_stage'`` (DP ``file10.py``): no gate chain; ``pose_att = cross_i(pose,
  velocity_i)``, ``node = vel_node_i(velocity_i)`` (``NodeExpansion`` to ``(N, C, T, 19)``),
  ``pose = gated_ii(gated_i(pose, pose_att), node)``, then the image gate.

Official checkpoints: :func:`load_official_state_dict`, :func:`official_config`,
:func:`parse_official_flags`; ``graphfuse.convert.convert_pedgraph`` writes a Lightning
checkpoint.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Mapping
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphfuse.layers.adaptive_gcn import AdaptiveGCNUnit, TemporalConv
from graphfuse.layers.common import check_positive_int
from graphfuse.layers.decoupling_gcn import DecouplingGCN
from graphfuse.layers.fusion import CrossAttention, GatedFusion, NodeExpansion, VelocityEncoder
from graphfuse.layers.temporal_attention import TemporalTransformer

from ._keys import check_state_dict
from .weights import Weights

BackboneKind = Literal["gcn", "dcgcn_tat"]
FusionKind = Literal["gate", "cross_gated", "two_stage"]
_BACKBONES = ("gcn", "dcgcn_tat")
_FUSIONS = ("gate", "cross_gated", "two_stage")

__all__ = [
    "OFFICIAL_FLAGS",
    "WEIGHTS",
    "ConvBNSiLU2d",
    "DCGCNTATUnit",
    "PedGraph",
    "load_official",
    "load_official_state_dict",
    "official_config",
    "parse_official_flags",
]

#: Logdir flag letters of the official release (``weigths/<dataset>-23-<flags>[-h2d]``).
OFFICIAL_FLAGS = {"I": "image", "V": "velocity", "S": "seg", "F": "forecast", "T": "time_crop"}

#: Minimum length of a sequence through the velocity gate chain (k3, k3, k2, no padding)
#: and minimum image side through the image branch (3x3, 3x3, 2x2, no padding).
_MIN_VELOCITY_FRAMES = 6
_MIN_IMAGE_SIDE = 6


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


class ConvBNSiLU2d(nn.Sequential):
    """Official image stage: ``Conv2d(bias=False, no padding) -> BatchNorm2d -> SiLU`` (PyTorch
    default init); submodules ``0``, ``1``, ``2`` as the official ``nn.Sequential`` (checkpoint
    keys ``conv{i}.0.weight``, ``conv{i}.1.running_mean``, ...).

    Training mode runs the three modules as built (BatchNorm on batch statistics). Eval mode
    computes the same function faster, which matters at batch 1, where the image branch is most
    of PedGraph+'s CPU latency (docs/benchmarks.md, "PedGraph (CPU inference)"):

    * the BatchNorm (running statistics) is folded into the convolution,
      ``W' = W * s``, ``b' = beta - mean * s`` (+ ``b * s`` for a conv bias) with
      ``s = gamma / sqrt(var + eps)``: one pass over the activations less (the crop's are
      ~0.7 M values per stage). The folded weights (a few thousand values) are recomputed per
      call, so nothing is cached that a weight update or ``load_state_dict`` would make stale,
      and a compiled or exported graph sees plain tensor arithmetic;
    * a 4-D input is made channels-last (NHWC): oneDNN runs these convolutions 1.2-1.6x faster
      on it than on NCHW at batch 1 (1-2 threads), and the SiLU runs in place. The output stays
      channels-last, so the next stage needs no conversion; the gates' mean over H and W reads
      it without a copy.

    The eval result equals the modules' to float rounding (the folding reassociates the
    BatchNorm's arithmetic and oneDNN sums the NHWC convolution in another order: ~1e-6
    relative in float32, ~1e-15 in float64). A BatchNorm without running statistics
    normalises by the batch in eval mode too, which cannot be folded: the modules run as built.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.SiLU(),
        )

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        """x ``(N, Cin, H, W)`` -> ``(N, Cout, H', W')`` (channels-last in eval mode)."""
        conv, bn = self[0], self[1]
        if self.training or bn.running_mean is None or bn.running_var is None or x.dim() != 4:
            return super().forward(x)
        scale = torch.rsqrt(bn.running_var + bn.eps)
        if bn.weight is not None:
            scale = scale * bn.weight
        shift = -bn.running_mean * scale
        if bn.bias is not None:
            shift = shift + bn.bias
        if conv.bias is not None:
            shift = shift + conv.bias * scale
        weight = conv.weight * scale[:, None, None, None]
        x = x.contiguous(memory_format=torch.channels_last)
        y = F.conv2d(x, weight, shift, conv.stride, conv.padding, conv.dilation, conv.groups)
        return F.silu(y, inplace=True)  # y is this call's own tensor


def _conv_bn_silu_1d(cin: int, cout: int, k: int) -> nn.Sequential:
    # official velocity stage: Conv1d(bias=False, no padding) + BN + SiLU
    return nn.Sequential(nn.Conv1d(cin, cout, k, bias=False), nn.BatchNorm1d(cout), nn.SiLU())


class DCGCNTATUnit(nn.Module):
    """The notes' block (DP ``TCN_GCN_unit`` of ``ped_graph0807.py``):
    ``ReLU(TAT(gcn(x) + residual(x)))``.

    ``gcn`` is :class:`graphfuse.layers.decoupling_gcn.DecouplingGCN` (``Cin -> Cout``, with its
    own 1x1 down residual), ``residual`` the unit residual (none for the first block, else a
    1x1 Conv + BN as DP's ``conv_residual``, or the identity when ``Cin == Cout``), and
    ``temporal`` the per-joint :class:`~graphfuse.layers.temporal_attention.TemporalTransformer`
    (embedding ``Cout -> embed_mult*Cout``, encoder blocks, projection back, ReLU).

    Shapes: ``(N, Cin, T, V) -> (N, Cout, T, V)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_nodes: int = 19,
        residual: bool = True,
        groups: int = 8,
        unused_linear: bool = False,
        **tat_options: Any,
    ) -> None:
        super().__init__()
        self.gcn = DecouplingGCN(
            in_channels,
            out_channels,
            num_nodes=num_nodes,
            subsets=3,
            groups=groups,
            unused_linear=unused_linear,
        )
        if not residual:
            self.residual: nn.Module | None = None
        elif in_channels == out_channels:
            self.residual = nn.Identity()
        else:
            self.residual = TemporalConv(in_channels, out_channels, kernel_size=1)
        self.temporal = TemporalTransformer(out_channels, **tat_options)

    def forward(self, x: Tensor) -> Tensor:
        """x: ``(N, Cin, T, V)`` -> ``(N, Cout, T, V)``."""
        y = self.gcn(x)
        if self.residual is not None:
            y = y + self.residual(x)
        return self.temporal(y)  # ends in ReLU (DP: relu(linear(...).view(...)))


class PedGraph(nn.Module):
    """Pedestrian Graph+ crossing-intention classifier and the notes' fusion variants.

    Args:
        num_class: logits per sample: 3 in PedGraph+ (no-cross, cross, irrelevant), 2 for the
            binary benchmark labels (or 1 for a single BCE logit).
        in_channels: pose channels ``C``: 4 (x/w, y/h, depth/80, score; official "3D") or 3
            (x/w, y/h, score; official ``-h2d``).
        num_nodes: pose nodes ``V`` (19: COCO-17 + neck + mid-hip).
        use_velocity: ego-velocity branch (official flag ``V``); ``forward`` then needs
            ``velocity (N, 2, Tv)``.
        use_image: image-crop branch (official flag ``I``); ``forward`` then needs
            ``image (N, image_channels, H, W)`` (official 192x64).
        image_channels: 3 (RGB) or 4 (segmentation map + RGB, official flag ``S``).
        official_image_gate_bug: reproduce the official forward, where the image gate after
            the first block is computed but not applied (the image gates only after ``l2``).
            Default False: gate after both blocks, as the paper describes. The notes' DP
            models share the bug in ``ped_graph0807.py`` and ``Gated_Fusion/ped_graph.py``
            (notes 00 to 08 v2); ``file08.py`` onward and ``save/ped_graph.py`` apply the gate.
        dropout: dropout before the classifier (official 0.25).
        backbone: ``'gcn'`` (PedGraph+ adaptive GCN + 5x1 TCN blocks) or ``'dcgcn_tat'``
            (decoupling GCN + temporal transformer, the notes' backbone).
        fusion: how velocity enters: ``'gate'`` (PedGraph+ sigmoid-GAP gating),
            ``'cross_gated'`` (cross attention + gated fusion, notes 00-08) or ``'two_stage'``
            (notes 09, DP ``file10.py``). The variants need ``use_velocity=True``.
        dcgcn_groups: channel groups of the decoupling GCN adjacency (DP: 8).
        dcgcn_unused_linear: register DP's never-used ``Linear(Cin, Cout)`` of ``decoupling_gcn``
            (parameters only; for parameter counts equal to DP's).
        tat_embed_mult, tat_layers, tat_heads, tat_attention, tat_ffn_mult,
        tat_positional_encoding, tat_layout: options of ``TemporalTransformer`` (DP: 3, 5, 8,
            ``'entmax15'``, 2, False; ``tat_layout='official'`` reproduces DP's channel/joint
            scramble, ``'correct'`` permutes).
        cross_heads, cross_attention, cross_velocity_tokens, cross_node_mlp_layers,
        cross_node_mlp_hidden_mult: options of ``CrossAttention`` (heads 8, entmax15; tokens
            ``'single'`` = one velocity token per frame, which makes the output independent of
            the pose and of the heads and leaves ``cross{1,2}.attention.linear_{q,k}`` without
            a gradient (a ``UserWarning`` says so at construction), or ``'nodes'`` = 19 node
            tokens through an MLP ``1 -> hidden -> ... -> 19`` of ``cross_node_mlp_layers`` layers with hidden width
            ``cross_node_mlp_hidden_mult * C``).
        gate_fc, gate_mlp_layers, gate_mlp_hidden_mult, gate_trailing_convs,
        gate_share_trailing: options of ``GatedFusion`` (FC ``'conv'`` 1x1+BN, ``'linear'`` or
            ``'mlp'``; notes 00 had 2 shared trailing convs, later none).
        vel_encoder, vel_layers, vel_hidden_mult, vel_hidden_mults, vel_extra_bn_relu,
        vel_activations, vel2_activations: options of the ``VelocityEncoder`` stages ``vel1``
            (2 -> 32) and ``vel2`` (32 -> 64) (``'linear'``, ``'mlp'`` or ``'conv1d'``; notes
            best: ``'conv1d'``, 2 layers, hidden x2, extra BN + ReLU). ``vel_activations``
            names the activation of each layer (``'relu'``/``'silu'``; default the encoder's:
            SiLU then ReLU for ``'conv1d'``) of both stages, or of ``vel1`` only when
            ``vel2_activations`` is given (file10: ``['relu', 'relu']`` at stage 1,
            ``['silu', 'relu']`` at stage 2).
        node_layers, node_hidden_mult: ``NodeExpansion`` of ``fusion='two_stage'`` (file10:
            3 layers ``1 -> 3C -> 3C -> 19``).

    The fusion-layer defaults are those of the layers (:mod:`graphfuse.layers.fusion`); the
    notes' configurations set them explicitly. Options of a component the configuration does
    not build are validated by that component only when it is built (so an ablation can switch
    a fusion off alone).

    ``forward(pose, velocity=None, image=None) -> logits (N, num_class)`` with
    ``pose (N, C, T, V)``, ``velocity (N, 2, Tv)`` and ``image (N, Cimg, H, W)``. An input the
    model was not built to use is ignored; a missing required input is a ``ValueError``.
    Module, parameter and buffer names of the PedGraph+ configuration equal the official
    ``pedMondel`` (:func:`load_official_state_dict`): 70,769 parameters for I+V+S, 3D,
    3 classes.
    """

    channels = (32, 64)
    feature_dim = 64

    def __init__(
        self,
        num_class: int = 3,
        in_channels: int = 4,
        num_nodes: int = 19,
        use_velocity: bool = True,
        use_image: bool = True,
        image_channels: int = 4,
        official_image_gate_bug: bool = False,
        dropout: float = 0.25,
        backbone: BackboneKind = "gcn",
        fusion: FusionKind = "gate",
        dcgcn_groups: int = 8,
        dcgcn_unused_linear: bool = False,
        tat_embed_mult: int = 3,
        tat_layers: int = 5,
        tat_heads: int = 8,
        tat_attention: Literal["entmax15", "softmax"] = "entmax15",
        tat_ffn_mult: int = 2,
        tat_positional_encoding: bool = False,
        tat_layout: Literal["correct", "official"] = "correct",
        cross_heads: int = 8,
        cross_attention: Literal["entmax15", "softmax"] = "entmax15",
        cross_velocity_tokens: Literal["single", "nodes"] = "single",
        cross_node_mlp_layers: int = 3,
        cross_node_mlp_hidden_mult: int = 1,
        gate_fc: Literal["conv", "linear", "mlp"] = "conv",
        gate_mlp_layers: int = 3,
        gate_mlp_hidden_mult: int = 3,
        gate_trailing_convs: int = 0,
        gate_share_trailing: bool = True,
        vel_encoder: Literal["linear", "mlp", "conv1d"] = "linear",
        vel_layers: int = 1,
        vel_hidden_mult: int = 2,
        vel_hidden_mults: list[int] | None = None,
        vel_extra_bn_relu: bool = False,
        vel_activations: list[str] | None = None,
        vel2_activations: list[str] | None = None,
        node_layers: int = 3,
        node_hidden_mult: int = 3,
    ) -> None:
        super().__init__()
        check_positive_int("num_class", num_class)
        check_positive_int("in_channels", in_channels)
        check_positive_int("num_nodes", num_nodes)
        check_positive_int("image_channels", image_channels)
        _check_choice("backbone", backbone, _BACKBONES)
        _check_choice("fusion", fusion, _FUSIONS)
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        if fusion != "gate" and not use_velocity:
            raise ValueError(
                f"fusion={fusion!r} fuses the ego velocity and needs use_velocity=True "
                "(use fusion='gate' for a model without velocity)"
            )
        self.num_class = num_class
        self.in_channels = in_channels
        self.num_nodes = num_nodes
        self.uses_velocity = bool(use_velocity)
        self.uses_image = bool(use_image)
        self.image_channels = image_channels
        self.official_image_gate_bug = bool(official_image_gate_bug)
        self.backbone = backbone
        self.fusion = fusion
        c1, c2 = self.channels

        self.data_bn = nn.BatchNorm1d(in_channels * num_nodes)
        nn.init.ones_(self.data_bn.weight)
        nn.init.zeros_(self.data_bn.bias)

        # -- blocks ---------------------------------------------------------------------
        if backbone == "gcn":
            self.l1: nn.Module = AdaptiveGCNUnit(in_channels, c1, num_nodes, residual=False)
            self.l2: nn.Module = AdaptiveGCNUnit(c1, c2, num_nodes)
        else:
            tat = {
                "embed_mult": tat_embed_mult,
                "num_layers": tat_layers,
                "num_heads": tat_heads,
                "attention": tat_attention,
                "ffn_mult": tat_ffn_mult,
                "positional_encoding": tat_positional_encoding,
                "layout": tat_layout,
            }
            dc = {"groups": dcgcn_groups, "unused_linear": dcgcn_unused_linear}
            self.l1 = DCGCNTATUnit(in_channels, c1, num_nodes, residual=False, **dc, **tat)
            self.l2 = DCGCNTATUnit(c1, c2, num_nodes, residual=True, **dc, **tat)

        # -- image branch ---------------------------------------------------------------
        if self.uses_image:
            self.conv0 = ConvBNSiLU2d(image_channels, c1, 3)
            self.conv1 = ConvBNSiLU2d(c1, c1, 3)
            self.conv2 = ConvBNSiLU2d(c1, c2, 2)

        # -- velocity: the PedGraph+ gate chain (kept by 'cross_gated', dropped by file10) --
        self._gate_chain = self.uses_velocity and fusion in ("gate", "cross_gated")
        if self._gate_chain:
            self.v0 = _conv_bn_silu_1d(2, c1, 3)
            self.v1 = _conv_bn_silu_1d(c1, c1, 3)
            self.v2 = _conv_bn_silu_1d(c1, c2, 2)

        # -- velocity stream, cross attention, gated fusion (the notes' variants) -----------
        if fusion != "gate":
            check_positive_int("cross_node_mlp_hidden_mult", cross_node_mlp_hidden_mult)
            check_positive_int("node_hidden_mult", node_hidden_mult)
            if cross_velocity_tokens == "single":
                # The attention weights over one key are identically 1 (softmax and entmax alike),
                # so nothing flows back into the queries and keys: dead parameters.
                warnings.warn(
                    f"PedGraph(fusion={fusion!r}, cross_velocity_tokens='single'): with one velocity token "
                    "per frame the cross attention's weight is identically 1, so "
                    "cross1/cross2.attention.linear_q and .linear_k never receive a gradient (they stay "
                    "at their initial values); use cross_velocity_tokens='nodes' for an attention that "
                    "learns",
                    UserWarning,
                    stacklevel=2,
                )
            enc = {
                "kind": vel_encoder,
                "num_layers": vel_layers,
                "hidden_mult": vel_hidden_mult,
                "hidden_mults": None if vel_hidden_mults is None else list(vel_hidden_mults),
                "extra_bn_relu": vel_extra_bn_relu,
            }
            act1 = None if vel_activations is None else list(vel_activations)
            act2 = act1 if vel2_activations is None else list(vel2_activations)
            self.vel1 = VelocityEncoder(2, c1, activations=act1, **enc)
            self.vel2 = VelocityEncoder(c1, c2, activations=act2, **enc)
            for i, ch in ((1, c1), (2, c2)):
                self.add_module(
                    f"cross{i}",
                    CrossAttention(
                        ch,
                        num_heads=cross_heads,
                        attention=cross_attention,
                        velocity_tokens=cross_velocity_tokens,
                        node_mlp_layers=cross_node_mlp_layers,
                        node_mlp_hidden=cross_node_mlp_hidden_mult * ch,
                        num_nodes=num_nodes,
                    ),
                )
                gate = {
                    "fc": gate_fc,
                    "mlp_layers": gate_mlp_layers,
                    "mlp_hidden_mult": gate_mlp_hidden_mult,
                    "trailing_convs": gate_trailing_convs,
                    "share_trailing": gate_share_trailing,
                }
                self.add_module(f"gated{i}", GatedFusion(ch, **gate))
                if fusion == "two_stage":
                    # DP file10 names: gated1 -> gated11, gated2 -> gated22
                    self.add_module(f"gated{i}{i}", GatedFusion(ch, **gate))
                    self.add_module(
                        f"vel_node{i}",
                        NodeExpansion(
                            ch,
                            num_nodes=num_nodes,
                            num_layers=node_layers,
                            hidden=node_hidden_mult * ch,
                        ),
                    )

        # -- head -----------------------------------------------------------------------
        self.drop = nn.Dropout(dropout)
        self.att = nn.Sequential(nn.SiLU(), nn.Linear(c2, c2, bias=False), nn.BatchNorm1d(c2), nn.Sigmoid())
        self.linear = nn.Linear(c2, num_class)
        nn.init.normal_(self.linear.weight, 0.0, math.sqrt(2.0 / num_class))

    # ----------------------------------------------------------------------------------
    def _check_inputs(self, pose: Tensor, velocity: Tensor | None, image: Tensor | None) -> None:
        if pose.dim() != 4 or pose.shape[1] != self.in_channels or pose.shape[3] != self.num_nodes:
            raise ValueError(
                f"PedGraph expects pose (N, {self.in_channels}, T, {self.num_nodes}), got {tuple(pose.shape)}"
            )
        n, t = pose.shape[0], pose.shape[2]
        if self.uses_velocity:
            if velocity is None:
                raise ValueError("PedGraph built with use_velocity=True needs `velocity` (N, 2, T); got None")
            if velocity.dim() != 3 or velocity.shape[0] != n or velocity.shape[1] != 2:
                raise ValueError(f"PedGraph expects velocity ({n}, 2, T), got {tuple(velocity.shape)}")
            tv = velocity.shape[2]
            if self._gate_chain and tv < _MIN_VELOCITY_FRAMES:
                raise ValueError(
                    f"velocity has {tv} frames; the velocity convolutions (k 3, 3, 2) "
                    f"need >= {_MIN_VELOCITY_FRAMES}"
                )
            if self.fusion != "gate" and tv < t:
                raise ValueError(
                    f"velocity has {tv} frames but the pose {t}; fusion={self.fusion!r} uses the last "
                    "T velocity frames"
                )
        if self.uses_image:
            if image is None:
                raise ValueError(
                    "PedGraph built with use_image=True needs `image` "
                    f"(N, {self.image_channels}, H, W); got None"
                )
            if image.dim() != 4 or image.shape[0] != n or image.shape[1] != self.image_channels:
                raise ValueError(
                    f"PedGraph expects image ({n}, {self.image_channels}, H, W), got {tuple(image.shape)}"
                )
            if min(image.shape[2:]) < _MIN_IMAGE_SIDE:
                raise ValueError(
                    f"image of size {tuple(image.shape[2:])}: the image convolutions need "
                    f"sides >= {_MIN_IMAGE_SIDE}"
                )

    @staticmethod
    def _gate(x: Tensor, branch: Tensor) -> Tensor:
        """``x (N, C, T, V) * sigmoid(mean of branch over its trailing axes)`` per channel."""
        g = torch.sigmoid(branch.flatten(2).mean(-1))  # (N, C)
        return x * g[:, :, None, None]

    def _fuse_velocity(self, i: int, x: Tensor, v: Tensor | None, s: Tensor | None) -> Tensor:
        """Velocity fusion after block ``i`` (1 or 2): x ``(N, C, T, V)``, gate-chain features
        ``v (N, C, Tv')`` and stream features ``s (N, C, T)``."""
        if self.fusion == "gate":
            assert v is not None
            return self._gate(x, v)
        cross = getattr(self, f"cross{i}")
        gated = getattr(self, f"gated{i}")
        att = cross(x, s)
        if self.fusion == "cross_gated":
            assert v is not None
            return gated(self._gate(x, v), att)
        node = getattr(self, f"vel_node{i}")(s)  # (N, C, T, V)
        return getattr(self, f"gated{i}{i}")(gated(x, att), node)

    def forward_features(
        self, pose: Tensor, velocity: Tensor | None = None, image: Tensor | None = None
    ) -> Tensor:
        """Pooled features ``(N, 64)`` (global average over T and V of the last block)."""
        self._check_inputs(pose, velocity, image)
        n, c, t, v = pose.shape
        # data_bn over features c*V + v (official permute(0, 1, 3, 2).view(N, C*V, T))
        x = self.data_bn(pose.permute(0, 1, 3, 2).reshape(n, c * v, t))
        x = x.view(n, c, v, t).permute(0, 1, 3, 2)
        f = self.conv0(image) if self.uses_image else None
        vg = self.v0(velocity) if self._gate_chain else None
        vs = self.vel1(velocity[:, :, -t:]) if self.fusion != "gate" else None

        x = self.l1(x)
        if self.uses_velocity:
            vg = self.v1(vg) if vg is not None else None
            x = self._fuse_velocity(1, x, vg, vs)
        if self.uses_image:
            f = self.conv1(f)
            if not self.official_image_gate_bug:
                x = self._gate(x, f)

        x = self.l2(x)
        if self.uses_velocity:
            vg = self.v2(vg) if vg is not None else None
            vs = self.vel2(vs) if vs is not None else None
            x = self._fuse_velocity(2, x, vg, vs)
        if self.uses_image:
            x = self._gate(x, self.conv2(f))
        return x.mean(dim=(2, 3))

    def forward_head(self, features: Tensor) -> Tensor:
        """features ``(N, 64)`` -> logits ``(N, num_class)`` (channel attention, dropout, linear)."""
        h = features + self.att(features) * features
        return self.linear(self.drop(h))

    def forward(self, pose: Tensor, velocity: Tensor | None = None, image: Tensor | None = None) -> Tensor:
        """pose ``(N, C, T, V)``, velocity ``(N, 2, Tv)``, image ``(N, Cimg, H, W)``
        -> logits ``(N, num_class)``."""
        return self.forward_head(self.forward_features(pose, velocity, image))

    @property
    def input_names(self) -> tuple[str, ...]:
        """The batch entries :meth:`forward` takes, by name: ``pose``, plus ``velocity`` /
        ``image`` when the model was built to use them (graphfuse's dict-batch contract)."""
        return ("pose",) + ("velocity",) * self.uses_velocity + ("image",) * self.uses_image

    def example_inputs(
        self, batch: int = 1, frames: int = 32, image_size: tuple[int, int] = (192, 64), seed: int = 0
    ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Random inputs ``(pose, velocity or None, image or None)`` of the shapes this model
        takes (image 192x64 as PedGraph+), for ``model(*example_inputs(...))``."""
        g = torch.Generator().manual_seed(seed)
        dtype = self.linear.weight.dtype
        device = self.linear.weight.device
        pose = torch.rand(batch, self.in_channels, frames, self.num_nodes, generator=g, dtype=dtype)
        vel = torch.rand(batch, 2, frames, generator=g, dtype=dtype) if self.uses_velocity else None
        img = (
            torch.randn(batch, self.image_channels, *image_size, generator=g, dtype=dtype)
            if self.uses_image
            else None
        )
        moved = tuple(None if x is None else x.to(device) for x in (pose, vel, img))
        return moved  # type: ignore[return-value]


# ----------------------------------------------------------------------------------------
# official checkpoints
# ----------------------------------------------------------------------------------------
_LOGDIR = re.compile(r"^(?:(?P<dataset>[A-Za-z]+)-)?23(?:-(?P<rest>.*))?$")


def parse_official_flags(name: str) -> dict[str, Any]:
    """Modalities of an official logdir name (``pie-23-IVSFT``, ``jaad-23-IVFT-h2d``,
    ``pie-23``) or of its flag part alone (``IVSFT``, ``IVSFT-h2d``, ``h2d``, ``''``).

    Follows ``final_pie_test.py``: the letters I (image), V (velocity), S (segmentation
    channel), F (forecast), T (time crop); the suffix ``h2d`` means 2D pose (3 channels).

    Returns:
        ``{'dataset': str | None, 'image', 'velocity', 'seg', 'forecast', 'time_crop': bool,
        'h3d': bool, 'flags': str}``.
    Raises:
        ValueError for a letter outside ``IVSFT`` or a malformed name.
    """
    name = name.strip()
    dataset = None
    m = _LOGDIR.match(name)
    rest = name
    if m is not None:
        dataset = m.group("dataset")
        rest = m.group("rest") or ""
    parts = [p for p in rest.split("-") if p] if rest else []
    h3d = True
    if parts and parts[-1] == "h2d":
        h3d = False
        parts = parts[:-1]
    if len(parts) > 1:
        raise ValueError(f"official flags {name!r}: expected '<dataset>-23-<IVSFT letters>[-h2d]'")
    letters = parts[0] if parts else ""
    bad = sorted(set(letters) - set(OFFICIAL_FLAGS))
    if bad or len(set(letters)) != len(letters):
        raise ValueError(
            f"official flags {name!r}: letters must be distinct among {''.join(OFFICIAL_FLAGS)} "
            f"(I image, V velocity, S seg, F forecast, T time crop), got {letters!r}"
        )
    out: dict[str, Any] = {"dataset": dataset, "h3d": h3d, "flags": letters + ("" if h3d else "-h2d")}
    for letter, key in OFFICIAL_FLAGS.items():
        out[key] = letter in letters
    return out


def _strip_prefix(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    keys = list(state)
    for prefix in ("module.", "model."):
        if keys and all(k.startswith(prefix) for k in keys):
            state = {k[len(prefix) :]: v for k, v in state.items()}
            keys = list(state)
    return dict(state)


def _read_state_dict(source: Mapping[str, Tensor] | str | os.PathLike) -> tuple[dict[str, Tensor], str]:
    """A state dict from a mapping or a file (``torch.load(weights_only=True)``), with the
    ``module.`` / ``model.`` prefixes stripped; also a name for error messages."""
    if isinstance(source, Mapping):
        obj: Any = source
        where = "state dict"
    else:
        from ..checkpoints import load_checkpoint

        where = os.fspath(source)
        obj = load_checkpoint(where)  # weights_only=True, local files only; errors name the file
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(
            f"{where}: expected a non-empty dict of tensors (a state dict), got {type(obj).__name__}"
        )
    return _strip_prefix(obj), where


def official_config(
    state_dict: Mapping[str, Tensor] | str | os.PathLike, flags: str | None = None
) -> dict[str, Any]:
    """:class:`PedGraph` keyword arguments that rebuild an official ``pedMondel`` checkpoint.

    The configuration is read from the keys and shapes (``data_bn`` -> ``in_channels``,
    ``conv0`` -> ``use_image`` / ``image_channels``, ``v0`` -> ``use_velocity``, ``linear``
    -> ``num_class``, ``l1.gcn1.PA`` -> ``num_nodes``); ``flags`` (a logdir name or its flag
    part, :func:`parse_official_flags`), when given, must agree with them.  Always
    ``official_image_gate_bug=True``, ``backbone='gcn'``, ``fusion='gate'``.

    Raises:
        ValueError naming the disagreement or the missing key.
    """
    state, where = _read_state_dict(state_dict)
    for key in ("data_bn.weight", "l1.gcn1.PA", "linear.weight"):
        if key not in state:
            raise ValueError(f"{where}: no {key!r}; not a PedGraph+ (pedMondel) checkpoint")
    num_nodes = int(state["l1.gcn1.PA"].shape[-1])
    bn = int(state["data_bn.weight"].numel())
    if bn % num_nodes:
        raise ValueError(f"{where}: data_bn has {bn} features, not a multiple of {num_nodes} nodes")
    use_image = "conv0.0.weight" in state
    kwargs: dict[str, Any] = {
        "num_class": int(state["linear.weight"].shape[0]),
        "in_channels": bn // num_nodes,
        "num_nodes": num_nodes,
        "use_velocity": "v0.0.weight" in state,
        "use_image": use_image,
        "image_channels": int(state["conv0.0.weight"].shape[1]) if use_image else 3,
        "official_image_gate_bug": True,
        "backbone": "gcn",
        "fusion": "gate",
    }
    if flags is not None:
        f = parse_official_flags(flags)
        expected = {
            "use_image": f["image"],
            "use_velocity": f["velocity"],
            "in_channels": 4 if f["h3d"] else 3,
        }
        if f["image"]:
            expected["image_channels"] = 4 if f["seg"] else 3
        elif f["seg"]:
            kwargs["image_channels"] = 4  # S without I: the model has no image branch
        wrong = [
            f"{k}: flags {flags!r} say {v!r}, weights say {kwargs[k]!r}"
            for k, v in expected.items()
            if kwargs[k] != v
        ]
        if wrong:
            raise ValueError(f"{where}: flags and weights disagree: " + "; ".join(wrong))
    return kwargs


def load_official_state_dict(
    model: PedGraph, state_dict: Mapping[str, Tensor] | str | os.PathLike
) -> PedGraph:
    """Load an official PedGraph+ ``best.pth`` (a ``pedMondel`` state dict) into ``model``.

    ``state_dict`` is a mapping or a path (read with ``torch.load(weights_only=True)``); a
    ``module.`` or Lightning ``model.`` prefix is stripped.  Keys and shapes are checked
    against ``model`` and loaded with ``strict=True``.  To reproduce the official outputs
    build ``model`` with :func:`official_config` (``official_image_gate_bug=True``).

    Returns:
        ``model``.
    Raises:
        ValueError naming the missing / unexpected / mis-shaped keys.
    """
    state, where = _read_state_dict(state_dict)
    expected = {k: v.shape for k, v in model.state_dict().items()}
    check_state_dict(state, expected, str(where), "does not match this PedGraph configuration")
    model.load_state_dict(state, strict=True)
    return model


def load_official(path: str | os.PathLike, model: PedGraph | None = None) -> dict[str, Tensor]:
    """The converter-side loader every family offers: ``load_official(path, model=None)`` ->
    a checked state dict for ``model.load_state_dict(..., strict=True)``.

    ``path`` is an official ``best.pth`` (or a mapping); ``module.`` / ``model.`` prefixes are
    stripped. Keys and shapes are checked against ``model``, by default the model
    :func:`official_config` reads from the weights themselves.
    """
    state, where = _read_state_dict(path)
    if model is None:
        model = PedGraph(**official_config(state))
    expected = {k: v.shape for k, v in model.state_dict().items()}
    check_state_dict(state, expected, str(where), "does not match this PedGraph configuration")
    return state


# ----------------------------------------------------------------------------------------
# released weights (RodrigoGantier/Pedestrian_graph_plus weigths/: 20 PIE and 21 JAAD
# best.pth plus jaad-23-IVFT-h2d/last.pth; every one has 3 classes, read from its weights)
# ----------------------------------------------------------------------------------------
_RELEASE_FILES = (  # (logdir, file, sha256 of the file at commit 3b9f78a)
    ("jaad-23-FT", "best.pth", "ab1d5b793188b4f818d027e18c4428f1ec54fd6c06bba3dd31a7ddb576bd86f0"),
    ("jaad-23-IFT", "best.pth", "555673414109bb11753886b614d9eaeb29b8d61715a88ac767ebe0591a131f87"),
    ("jaad-23-IS", "best.pth", "38feea0828ae6b1f6dc4fe9304fd34ca1144cb59a3065a59e21797adef7ae2f5"),
    ("jaad-23-ISF", "best.pth", "7c2fbc9159b01be972c69a603661ccb0d6c0303c1a3f815650099d571c58f979"),
    ("jaad-23-ISFT", "best.pth", "c5ff5a5860556a3109a10073ec26fe45dfacaf9ba19efd40a01e94621dd19699"),
    ("jaad-23-IV", "best.pth", "5fbb1d0a519cc08d40aa58c8aa532047d87b2539e24c641db54764be82c16a3c"),
    ("jaad-23-IVF", "best.pth", "8744ce297eed7097687ba8397d9493a7995fb4cd5655baeeeff8e0c454ca9ab6"),
    ("jaad-23-IVFT-h2d", "best.pth", "8b305eb50303b25902febb9188c9f4ac54ee82d826edf291bf0d7b40d13adcd2"),
    ("jaad-23-IVFT-h2d", "last.pth", "2e19826617937ec86cc55dfc7b59455e41bfb483d6a98a1d9c69cb78941eb73a"),
    ("jaad-23-IVFT", "best.pth", "acb24dcf347293ad3b415c348b4a6cd7f12cf838997115a3dc065e4b9f56abc3"),
    ("jaad-23-IVS", "best.pth", "1dd633127a76c17f9abe6967e56d3a87df0daf1503f2c5fa6bdbf5be2cfa5c59"),
    ("jaad-23-IVSF-h2d", "best.pth", "62dec61aa8858f44e51198be45d522c139980f2c5a88fa3a29087d6e6ac44536"),
    ("jaad-23-IVSF", "best.pth", "5636d22ceaf369c41f11c3e77e1ec5f27704e705a9d91dae2264f1480a9f3317"),
    ("jaad-23-IVSFT-h2d", "best.pth", "06b4b71adcb1f72bd683c9f05169434a5d45a893c1ffea8b9948128556f5c06d"),
    ("jaad-23-IVSFT", "best.pth", "e0395a0032c914a7feacd5fcad1b449e719315076fe62fa06e6277a4b5963d42"),
    ("jaad-23-VF", "best.pth", "c35239ed7c93273a812eb4e1ae40d23fe7b426d0ae7686e5cfebd80824d63129"),
    ("jaad-23-VFT", "best.pth", "835335605220f2ff4d18d92dde66789a3263c72843ba9abfbb78fa1489bbac60"),
    ("jaad-23-VS", "best.pth", "9635fc7df50f892257dfa6b1cc429430e8fd38033636ba6e84017e0ddf5dfa3a"),
    ("jaad-23-VSF", "best.pth", "310fbc819243bfe0385fbc752ee58490837d1ae6e7230c09f5a8f8fd5b69720b"),
    ("jaad-23-VSFT", "best.pth", "6826e36c9498f5331c1cbe13aa3a2654ea664ed14af1b3e2969586f15073ab92"),
    ("jaad-23-h2d", "best.pth", "68854a3c0a9c5ca60a74c3553ab425474f33f8fe3e3bd5f59c40749003506326"),
    ("jaad-23", "best.pth", "365ff0803695fd524fc333f9f252337f935a14355c55f1c0e9d87a98412a872a"),
    ("pie-23-FT", "best.pth", "dbc0a29e2b8ede2eeb8bbf0648a2362fe902085866c374404e821a8cde44317c"),
    ("pie-23-IFT", "best.pth", "bbd9d31ce2ca1dbe459816c0d45648978c3a02998817c046d249bc9ffe50d3ea"),
    ("pie-23-IS", "best.pth", "7f318f474c1cecd5e9061bad0560e070c07430722edb36814309d3fd764fab44"),
    ("pie-23-ISF", "best.pth", "8717b8e0736c372085db83369de4740ca49d88c1b1391ab8166bf25bb5b883ec"),
    ("pie-23-ISFT", "best.pth", "21f7b63712a7bb46e3144b9334cba772991e201d87a180c00fdb0fe0511a48d7"),
    ("pie-23-IV", "best.pth", "972bfe4d7a4414f7da667952245176d378de5bf3e39c6a07b51d7f458d6baeba"),
    ("pie-23-IVF", "best.pth", "38dca35f26f4b5a1c9e65457c113ad045e21b749f7fc3b70d976cf7371870849"),
    ("pie-23-IVFT-h2d", "best.pth", "5dafe777344f0337ac61abd7c67fadb15ed993219054416733fdab18a05ae8f4"),
    ("pie-23-IVFT", "best.pth", "b80d64af96b9e457483310a983c3f95049cae159737302484aabda34e46659ae"),
    ("pie-23-IVS", "best.pth", "75a98ac5db800e082899e9c57ce121171dea21d014a94331095629bbde023076"),
    ("pie-23-IVSF", "best.pth", "b14acc44b5552b29156752920f468e7038a6f0546f366f3e4e0bb2549b88a657"),
    ("pie-23-IVSFT-h2d", "best.pth", "968faa2f93f4b2f39a3f9fcdca874d87a89c7020cdad7416765bfdd43931551c"),
    ("pie-23-IVSFT", "best.pth", "930862988f851b85266886b6b0c549a599c946fe12752633dbd8bb487d89abcb"),
    ("pie-23-VF", "best.pth", "943eae04a225591aa6400afa6252f5992949bb56fbb596a308a98876a729dda9"),
    ("pie-23-VFT", "best.pth", "ef125e2ca236d5449f9481b4579656f5bc3c6c0a9ee750f384c339e8083a481b"),
    ("pie-23-VS", "best.pth", "6d319b9c94296a62e327b08cd64a13141086eb8466e9127a41150961de2a56d4"),
    ("pie-23-VSF", "best.pth", "b24ded68ac57c76d123165e4a5f9b2b94e6839fa8d3c2eb164ad6ca2c5bd0c89"),
    ("pie-23-VSFT", "best.pth", "9e7265721af6cf74be5f77397e9cb6bcc9ce272f8de51e0c0ac32e80889bbc75"),
    ("pie-23-h2d", "best.pth", "29e4d6b002f32e118b936d6a1623d7a5927362ec4e4d2a7ec69ba4034b59c2ce"),
    ("pie-23", "best.pth", "a086924261575aa0d7984ede3e7e1885cfdb0c37720ededd39f42d014b079825"),
)

#: The model keys of ``configs/<dataset>/pedgraph/pedgraph_plus.yaml`` (the official recipe
#: as graphfuse runs it: 2D pose, velocity, RGB crop).
_RECIPE = {"in_channels": 3, "use_velocity": True, "use_image": True, "image_channels": 3}


def _release_overrides(flags: dict[str, Any]) -> tuple[str, ...]:
    """Dotted overrides of the recipe config that build the released model (and feed it)."""
    model = {
        "in_channels": 4 if flags["h3d"] else 3,
        "use_velocity": flags["velocity"],
        "use_image": flags["image"],
        "image_channels": 4 if flags["image"] and flags["seg"] else 3,
    }
    out = [f"--model.init_args.model.init_args.{k}={str(v).lower()}" for k, v in model.items() if _RECIPE[k] != v]
    out.append("--model.init_args.model.init_args.official_image_gate_bug=true")
    out += [f"--data.init_args.{k}={str(model[k]).lower()}" for k in ("use_velocity", "use_image")
            if _RECIPE[k] != model[k]]
    if flags["h3d"]:
        out.append("--data.init_args.use_depth=true")
    return tuple(out)


def _release_notes(flags: dict[str, Any]) -> str:
    notes = []
    if flags["forecast"]:
        notes.append("trained with 30 forecast pose frames (T = 62) and future ego speed, which graphfuse's "
                     "data does not provide")
    if flags["image"] and flags["seg"]:
        notes.append("its crops carry a segmentation channel the authors' unreleased script made")
    if flags["h3d"]:
        notes.append("3D poses: its pose carries a depth channel (C = 4) as the authors estimated it")
    return "; ".join(notes)


def _release_weights(logdir: str, file: str, sha256: str) -> Weights:
    flags = parse_official_flags(logdir)
    dataset = flags["dataset"]
    jaad_ivsft = logdir == "jaad-23-IVSFT" and file == "best.pth"
    return Weights(
        name=f"pedgraph_{logdir.replace('-', '_').lower()}" + ("" if file == "best.pth" else "_last"),
        file=f"weigths/{logdir}/{file}",
        converter="pedgraph",
        num_class=3,
        config=f"configs/{dataset}/pedgraph/pedgraph_plus.yaml",
        config_overrides=_release_overrides(flags),
        metric="accuracy (%)" if jaad_ivsft else None,
        reported=86.36 if jaad_ivsft else None,
        source=("official Colab notebook Pedestrian_graph_plus.ipynb (saved output of final_jaad_test.py "
                "--ckpt ./weigths/jaad-23-IVSFT/best.pth)" if jaad_ivsft else
                "RodrigoGantier/Pedestrian_graph_plus weigths/ (sha256 of the file at commit 3b9f78a)"),
        protocol=("JAAD all, the official preprocessed test split (5,821 samples), 3 classes mapped to "
                  "crossing / not crossing as final_jaad_test.py, accuracy" if jaad_ivsft else
                  "no number reported for this file" + (" (the paper's PIE accuracy 0.89, a 3rd-party "
                  "transcription, names no release file)" if logdir == "pie-23-IVSFT" else "")),
        sha256=sha256,
        notes=_release_notes(flags),
    )


#: The released PedGraph+ checkpoints (:class:`graphfuse.models.weights.Weights`); convert one
#: with ``graphfuse convert pedgraph weigths/<logdir>/best.pth OUT.ckpt``.
WEIGHTS: tuple[Weights, ...] = tuple(_release_weights(*row) for row in _RELEASE_FILES)
