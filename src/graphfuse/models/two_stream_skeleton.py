"""Skeleton two-stream network: joint and bone Shift-GCN towers fused inside the network with
Feichtenhofer et al.'s fusion operators ("Convolutional Two-Stream Network Fusion for Video
Action Recognition", CVPR 2016; released code ``feichtenhofer/twostreamfusion``), the bridge
between the two-stream fusion study and the skeleton family (research brief
``mlgcn_twostream.md`` B.5).

The reference fuses the temporal (flow) tower *into* the spatial (RGB) tower at ``relu5_3``
(``fuseInto = 'spatial'``, ``fuseFrom = 'temporal'``): the concatenated maps go through the
fusion layer and continue through the spatial tower's remaining layers; the temporal tower is
kept with its own head and loss (``removeFuseFrom = 0``, ``backpropFuseFrom = 1``) and at test
time the prediction layers' raw scores of both towers are averaged (``cnn_train_dag.m``: the
mean over ``pred_layers``). Here the joint tower plays the spatial tower and the bone tower
the temporal one:

::

    joint (N,C,T,V,M) -> joint.data_bn -> joint.l1..lk ─┐ a
                                                         fusion (SpatialFusion, 2sumAB: 0.25 a + 0.75 b)
    bone  (N,C,T,V,M) -> bone.data_bn  -> bone.l1..lk  ─┘ b   -> joint.l(k+1)..l10 -> pool -> joint.fc
                                              └─ (keep_towers) bone.l(k+1)..l10 -> pool -> bone.fc

Module names are those of two :class:`~graphfuse.models.ShiftGCN` networks under ``joint.``
and ``bone.`` (plus ``fusion.``), so single-stream checkpoints load per tower
(:meth:`SkeletonTwoStream.load_tower`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor, nn

from graphfuse.layers.stream_fusion import ConvInit, SpatialFusion

from ._keys import key_summary
from .shiftgcn import ShiftGCN, official_weight_decay

__all__ = ["SkeletonTwoStream", "TowerLoad"]

SkeletonFusionKind = Literal["sum", "max", "concat", "conv"]
_KINDS = ("sum", "max", "concat", "conv")
_TOWERS = ("joint", "bone")


class TowerLoad(NamedTuple):
    """What :meth:`SkeletonTwoStream.load_tower` did with a single-stream state dict.

    Attributes:
        loaded: keys copied into the tower.
        dropped: keys of parts this network does not have (the bone tower's units after the
            fusion point and its ``fc`` when ``keep_towers=False``).
        reinitialised: keys whose tensor cannot be reused because concatenation widened the
            input (the first unit after the fusion point, or ``fc`` when fusing after ``l10``):
            they keep their fresh initialisation.
    """

    loaded: list[str]
    dropped: list[str]
    reinitialised: list[str]


def _under(key: str, prefixes: tuple[str, ...]) -> bool:
    """Whether ``key`` lies under one of the module ``prefixes`` (``'l6.'``, ``'fc.'``)."""
    return bool(prefixes) and key.startswith(prefixes)


def _unit_number(value: int | str) -> int:
    if isinstance(value, str) and value.startswith("l") and value[1:].isdigit():
        value = int(value[1:])
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= len(ShiftGCN.LAYERS):
        raise ValueError(
            f"fusion_unit must name a Shift-GCN unit 'l1'..'l{len(ShiftGCN.LAYERS)}' (or its number), got {value!r}"
        )
    return value


class SkeletonTwoStream(nn.Module):
    """Joint and bone Shift-GCN towers fused after unit ``fusion_unit`` (see the module docstring).

    Args:
        num_class: classes (60 for NTU60; set from the data by the task).
        fusion: :class:`~graphfuse.layers.stream_fusion.SpatialFusion` kind over the towers'
            ``(N*M, C, T, V)`` unit outputs: ``'sum'``, ``'max'``, ``'concat'`` (the next unit
            then takes ``2C`` channels and gets a 1x1-conv + BN residual projection) or
            ``'conv'`` (1x1 conv ``2C -> C`` + ReLU, initialised by ``fusion_init``).
            ``'bilinear'`` is refused: it sums over all locations, leaving nothing for the
            remaining units.
        fusion_unit: the unit after which the towers are fused, ``'l1'`` .. ``'l10'`` (or 1..10).
            Default ``'l10'``, the last one (the paper: fusing at the last conv layer, ReLU5,
            is best, Table 2). Fusing after ``l10`` leaves only pooling and ``fc`` after it.
        fusion_init: initial conv-fusion weight (``'2sumAB'``: ``0.25 joint + 0.75 bone``, the
            released model's choice, which favours the fused-from stream; ``'sumAB'``,
            ``'netA'`` (= joint), ``'netB'`` (= bone), ``'xavier'``, ``'xavierimproved'``).
        fusion_relu: the ReLU after the fusion conv (reference: yes).
        keep_towers: keep the bone tower after the fusion point, with its own units, head and
            loss (the reference's final model, ``removeFuseFrom = 0``); False removes them
            (``removeFuseFrom = 1``): one copy of the remaining units.
        tower_loss_weight: weight of the kept bone tower's cross-entropy in the training loss
            (the reference back-propagates both losses with weight 1, ``backpropFuseFrom = 1``).
            0 leaves the tower's units after the fusion point and its head untrained (as
            loaded: the reference's ``backpropFuseFrom = 0``); its units before the fusion
            point still learn through the fused loss.
        average_towers: with ``keep_towers``, the prediction (``forward``) is the mean of the
            fused and the bone tower's logits, as the reference averages both towers' raw
            prediction-layer scores at test time; False: the fused logits alone.
        init_seed_offset, num_point, num_person, in_channels, shift_grad, ... : passed to
            both :class:`~graphfuse.models.ShiftGCN` towers (``**shiftgcn_kwargs``; their
            ``num_class`` is this one).

    Attributes:
        fusion_unit: the unit number ``k``; ``fusion_channels``: its ``C``.

    ``forward(joint, bone)``: both ``(N, C, T, V, M)`` (the datamodule's ``streams: [joint,
    bone]`` batch entries) -> logits ``(N, num_class)``. :meth:`forward_loss_terms` also
    returns the per-tower logits that :class:`graphfuse.tasks.ActionRecognition` turns into
    the per-tower losses.
    """

    input_names: tuple[str, ...] = ("joint", "bone")

    def __init__(
        self,
        num_class: int = 60,
        fusion: SkeletonFusionKind = "conv",
        fusion_unit: int | str = "l10",
        fusion_init: ConvInit = "2sumAB",
        fusion_relu: bool = True,
        keep_towers: bool = True,
        tower_loss_weight: float = 1.0,
        average_towers: bool = True,
        **shiftgcn_kwargs: Any,
    ) -> None:
        super().__init__()
        if fusion == "bilinear":
            raise ValueError(
                "fusion='bilinear' sums over every (T, V) location (Feichtenhofer's bilinear fusion "
                "has no layers after it); mid-network skeleton fusion takes 'sum', 'max', 'concat' or 'conv'"
            )
        if fusion not in _KINDS:
            raise ValueError(f"fusion must be one of {_KINDS}, got {fusion!r}")
        if "num_class" in shiftgcn_kwargs:
            raise ValueError("num_class is an argument of SkeletonTwoStream itself")
        w = float(tower_loss_weight)
        if not math.isfinite(w) or w < 0:
            raise ValueError(f"tower_loss_weight must be finite and >= 0, got {tower_loss_weight!r}")
        k = _unit_number(fusion_unit)
        self.num_class = int(num_class)
        self.fusion_kind = fusion
        self.fusion_unit = k
        self.fusion_init = fusion_init
        self.keep_towers = bool(keep_towers)
        self.tower_loss_weight = w
        self.average_towers = bool(average_towers)
        self.joint = ShiftGCN(num_class=num_class, **shiftgcn_kwargs)
        # The second tower without the seed offset (it would re-seed the generator again).
        bone_kwargs = {key: v for key, v in shiftgcn_kwargs.items() if key != "init_seed_offset"}
        self.bone = ShiftGCN(num_class=num_class, **bone_kwargs)
        self.in_channels = self.joint.in_channels
        self.num_point = self.joint.num_point
        self.num_person = self.joint.num_person
        c = self.joint.unit_channels(k)
        self.fusion_channels = c
        self.fusion = SpatialFusion(fusion, c, init=fusion_init, match="error", relu=fusion_relu)
        #: Keys of the joint tower re-created for the widened (2C) input of concat fusion.
        self._widened: tuple[str, ...] = ()
        if fusion == "concat":
            if k < len(ShiftGCN.LAYERS):
                self.joint.add_module(f"l{k + 1}", self.joint.make_unit(k + 1, in_channels=2 * c))
                self._widened = (f"l{k + 1}.",)
            else:
                fc = nn.Linear(2 * c, num_class)
                nn.init.normal_(fc.weight, 0.0, math.sqrt(2.0 / num_class))  # as ShiftGCN's fc
                self.joint.fc = fc
                self._widened = ("fc.",)
        if not self.keep_towers:
            self.bone.truncate(k)

    # -- forward ------------------------------------------------------------------------------
    def _logits(self, joint: Tensor, bone: Tensor) -> tuple[Tensor, Tensor | None]:
        """(fused logits, bone-tower logits or None)."""
        n = joint.shape[0]
        if bone.shape != joint.shape:
            raise ValueError(
                f"SkeletonTwoStream: joint {tuple(joint.shape)} and bone {tuple(bone.shape)} must have the "
                "same shape (N, C, T, V, M)"
            )
        k = self.fusion_unit
        a = self.joint.forward_units(self.joint.embed(joint), 1, k)
        b = self.bone.forward_units(self.bone.embed(bone), 1, k)
        fused = self.joint.forward_units(self.fusion(a, b), k + 1)
        fused_logits = self.joint.fc(self.joint.pool_features(fused, n))
        if not self.keep_towers:
            return fused_logits, None
        tower = self.bone.forward_units(b, k + 1)
        return fused_logits, self.bone.fc(self.bone.pool_features(tower, n))

    def _prediction(self, fused: Tensor, tower: Tensor | None) -> Tensor:
        if tower is None or not self.average_towers:
            return fused
        return (fused + tower) / 2

    def forward(self, joint: Tensor, bone: Tensor) -> Tensor:
        """``joint, bone: (N, C, T, V, M)`` -> logits ``(N, num_class)``: the fused tower's, or
        with ``keep_towers`` and ``average_towers`` the mean of the fused and bone towers'."""
        return self._prediction(*self._logits(joint, bone))

    def forward_loss_terms(self, joint: Tensor, bone: Tensor) -> tuple[Tensor, dict[str, tuple[float, Tensor]]]:
        """The prediction (as :meth:`forward`) and the training loss's terms:
        ``{"fused": (1.0, fused logits), "bone": (tower_loss_weight, bone logits)}`` (``bone``
        only with ``keep_towers`` and a weight > 0). The task sums ``weight * loss(logits)``
        over the terms (the reference: one loss per tower, ``derOutputs`` weight 1 each)."""
        fused, tower = self._logits(joint, bone)
        terms: dict[str, tuple[float, Tensor]] = {"fused": (1.0, fused)}
        if tower is not None and self.tower_loss_weight > 0:
            terms["bone"] = (self.tower_loss_weight, tower)
        return self._prediction(fused, tower), terms

    def example_inputs(self, batch: int = 1, frames: int = 64, seed: int = 0) -> tuple[Tensor, Tensor]:
        """Random ``(joint, bone)`` of shape ``(batch, C, frames, V, M)`` (``graphfuse info``, tests)."""
        param = next(self.parameters())
        g = torch.Generator().manual_seed(seed)
        shape = (batch, self.in_channels, frames, self.num_point, self.num_person)
        return tuple(torch.randn(shape, generator=g).to(param) for _ in range(2))  # type: ignore[return-value]

    # -- weights ------------------------------------------------------------------------------
    def load_tower(self, which: Literal["joint", "bone"], state_dict: Mapping[str, Tensor]) -> TowerLoad:
        """Load a single-stream :class:`~graphfuse.models.ShiftGCN` state dict into one tower.

        ``state_dict``: the keys of a ShiftGCN built with the same options (an official
        checkpoint through :func:`graphfuse.models.shiftgcn.load_official_state_dict`, or a
        graphfuse run's ``state_dict`` whose keys start with ``model.``, a prefix stripped
        here, as is DataParallel's ``module.``). The ``joint`` tower takes the whole network
        (its units after the fusion point and its ``fc`` are the fused trunk and head, as the
        reference's spatial tower continues after fusion); the ``bone`` tower takes its part.

        Returns:
            :class:`TowerLoad`: what was loaded, dropped (parts removed by
            ``keep_towers=False``) and left re-initialised (widened by concat fusion).
        Raises:
            ValueError naming missing, unexpected or mis-shaped keys (nothing is loaded then).
        """
        if which not in _TOWERS:
            raise ValueError(f"which must be 'joint' or 'bone', got {which!r}")
        state = dict(state_dict)
        for prefix in ("model.", "module."):
            if state and all(key.startswith(prefix) for key in state):
                state = {key[len(prefix):]: v for key, v in state.items()}
        tower: ShiftGCN = getattr(self, which)
        own = tower.state_dict()
        widened = self._widened if which == "joint" else ()
        removed = tuple(f"l{j}." for j in range(tower.num_units + 1, len(ShiftGCN.LAYERS) + 1))
        removed += ("fc.",) if not hasattr(tower, "fc") else ()
        loaded, dropped, reinit = [], [], []
        unexpected, mis_shaped = [], []
        for key, value in state.items():
            if key in own and not _under(key, widened):
                if own[key].shape != value.shape:
                    mis_shaped.append(f"{key}: given {tuple(value.shape)} vs tower {tuple(own[key].shape)}")
                else:
                    loaded.append(key)
            elif _under(key, removed):
                dropped.append(key)
            elif _under(key, widened):
                reinit.append(key)
            else:
                unexpected.append(key)
        missing = [key for key in own if key not in state and not _under(key, widened)]
        problems = [f"{name} ({len(items)}): {key_summary(items)}" for name, items in
                    (("missing keys", missing), ("unexpected keys", unexpected),
                     ("shape mismatches", mis_shaped)) if items]
        if problems:
            raise ValueError(f"load_tower({which!r}): not a state dict of this tower's Shift-GCN: " + "; ".join(problems))
        result = tower.load_state_dict({key: state[key] for key in loaded}, strict=False)
        assert not result.unexpected_keys, result
        return TowerLoad(loaded, dropped, reinit)

    # -- recipe hook -----------------------------------------------------------------------------
    def param_groups(self, weight_decay: float = 1e-4) -> list[dict[str, Any]]:
        """Optimiser groups: Shift-GCN's official decays by name in both towers
        (:func:`~graphfuse.models.shiftgcn.official_weight_decay`: 1e-3 on ``Linear_weight``,
        0 on ``Feature_Mask``), and no decay on the fusion conv's bias (the reference:
        ``fusionBiasesLRWD = [2 0]``; its x2 learning rate on biases is a MatConvNet
        convention that graphfuse's Shift-GCN recipe does not follow). One group per decay,
        in the order of first appearance, each listing its parameter ``names``."""
        groups: dict[float, dict[str, Any]] = {}
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            wd = 0.0 if name == "fusion.conv.bias" else official_weight_decay(name, weight_decay)
            g = groups.setdefault(wd, {"params": [], "names": [], "weight_decay": wd})
            g["params"].append(p)
            g["names"].append(name)
        return list(groups.values())

    def extra_repr(self) -> str:
        return (
            f"num_class={self.num_class}, fusion={self.fusion_kind!r} after l{self.fusion_unit}, "
            f"keep_towers={self.keep_towers}, tower_loss_weight={self.tower_loss_weight}, "
            f"average_towers={self.average_towers}"
        )
