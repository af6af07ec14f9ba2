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
from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import Tensor, nn

from graphfuse.layers.adaptive_gcn import AdaptiveGCNUnit, TemporalConv
from graphfuse.layers.decoupling_gcn import DecouplingGCN
from graphfuse.layers.fusion import CrossAttention, GatedFusion, NodeExpansion, VelocityEncoder
from graphfuse.layers.temporal_attention import TemporalTransformer
from ._keys import check_state_dict

BackboneKind = Literal["gcn", "dcgcn_tat"]
FusionKind = Literal["gate", "cross_gated", "two_stage"]
_BACKBONES = ("gcn", "dcgcn_tat")
_FUSIONS = ("gate", "cross_gated", "two_stage")

__all__ = [
    "OFFICIAL_FLAGS",
    "DCGCNTATUnit",
    "PedGraph",
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


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _conv_bn_silu_2d(cin: int, cout: int, k: int) -> nn.Sequential:
    # official image stage: Conv2d(bias=False, no padding) + BN + SiLU, PyTorch default init
    return nn.Sequential(nn.Conv2d(cin, cout, k, bias=False), nn.BatchNorm2d(cout), nn.SiLU())


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
            the pose and of the heads, or ``'nodes'`` = 19 node tokens through an MLP
            ``1 -> hidden -> ... -> 19`` of ``cross_node_mlp_layers`` layers with hidden width
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
        _check_positive_int("num_class", num_class)
        _check_positive_int("in_channels", in_channels)
        _check_positive_int("num_nodes", num_nodes)
        _check_positive_int("image_channels", image_channels)
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
            self.conv0 = _conv_bn_silu_2d(image_channels, c1, 3)
            self.conv1 = _conv_bn_silu_2d(c1, c1, 3)
            self.conv2 = _conv_bn_silu_2d(c1, c2, 2)

        # -- velocity: the PedGraph+ gate chain (kept by 'cross_gated', dropped by file10) --
        self._gate_chain = self.uses_velocity and fusion in ("gate", "cross_gated")
        if self._gate_chain:
            self.v0 = _conv_bn_silu_1d(2, c1, 3)
            self.v1 = _conv_bn_silu_1d(c1, c1, 3)
            self.v2 = _conv_bn_silu_1d(c1, c2, 2)

        # -- velocity stream, cross attention, gated fusion (the notes' variants) -----------
        if fusion != "gate":
            _check_positive_int("cross_node_mlp_hidden_mult", cross_node_mlp_hidden_mult)
            _check_positive_int("node_hidden_mult", node_hidden_mult)
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

