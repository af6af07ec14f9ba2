"""Gait recognition from silhouettes: GaitSet and GLN (Gait Lateral Network), as OpenGait builds them.

* **GaitSet** (Chao, He, Zhang, Feng, "GaitSet: Regarding Gait as a Set for Cross-View Gait
  Recognition", AAAI 2019): a per-frame CNN in three blocks, the set-level ("MGP") path on
  set-pooled maps, horizontal pyramid pooling and one FC per part -> ``(N, 256, 62)``.
* **GLN** (Hou, Cao, Liu, Huang, "Gait Lateral Network: Learning Discriminative and Compact
  Representations for Gait Recognition", ECCV 2020): the same convolutions with the pooling
  at the start of each stage, silhouette-level and set-level features of three stages merged
  by an FPN-like top-down lateral path -> ``(N, 256, 93)``; phase 2 adds the compact block
  (BN, dropout, ReLU, FC 23,808 -> 256, BN, classifier).

Both follow OpenGait (Fan et al., "OpenGait: Revisiting Gait Recognition Toward Better
Practicality", CVPR 2023; ``ShiqiYu/OpenGait`` ``opengait/modeling/models/{gaitset,gln}.py``):
the same layers, shapes and **parameter names** (``set_block1.forward_block.0.conv.weight``,
``Head.fc_bin``, ``encoder_bn.running_mean``, ...), so an OpenGait checkpoint loads strictly
(:func:`convert_opengait`). OpenGait has no licence; nothing is copied, the code is written
from the papers and the brief ``shared/research/gait_gln.md``.

Inputs (the gait contract): training ``silhouettes (N, S, H, W)`` in ``[0, 1]``, ``lengths``
``None``; test ``silhouettes (1, sum(lengths), H, W)`` (sequences of any lengths concatenated
along the frame axis) with ``lengths (N,)``, pooled per sequence. Frames are processed stacked
on the batch axis ``(T, C, H, W)`` (:mod:`graphfuse.layers.set_pooling`). Output: a dict,
``embeddings (N, C, P)``, plus ``logits (N, num_class)`` and ``compact (N, 256)`` for GLN with
the compact block.

Where graphfuse differs from OpenGait (details in ``docs/models_gait.md``):

* GLN phase 2 runs: the logits are ``(N, num_class)`` (OpenGait's ``[n, 1, c]`` meets a
  cross-entropy that expects ``[n, c, p]``, OpenGait issue #109).
* ``lateral=False`` (the notes' "lateral connections off") and the inference ``embedding``
  choice are options OpenGait lacks; ``compact_order='notes'`` is the notes' BN, ReLU,
  dropout order (mathematically the same block: ReLU and dropout commute).
* Set pooling with lengths is one segment reduction, not a loop over the sequences, so any
  test batch size works.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphfuse.layers.common import check_positive_int
from graphfuse.layers.part_pooling import HorizontalPoolingPyramid, SeparateFCs, check_bins
from graphfuse.layers.set_pooling import FrameBlock, check_lengths, set_max

from ._keys import check_state_dict
from .weights import Weights, release_info

__all__ = [
    "GLN",
    "WEIGHTS",
    "GaitSet",
    "compact_layout_permutation",
    "convert_opengait",
    "init_opengait_parameters",
    "opengait_state_dict",
]

EmbeddingKind = Literal["parts", "compact", "compact_bn"]
CompactOrder = Literal["opengait", "notes"]
_EMBEDDINGS = ("parts", "compact", "compact_bn")
_ORDERS = ("opengait", "notes")
#: The task a converted checkpoint names (G4's retrieval task).
TASK = "graphfuse.tasks.gait.GaitRecognition"


# -- building blocks ------------------------------------------------------------------------------
class _Conv(nn.Module):
    """A bias-free ``Conv2d`` held as ``.conv`` (OpenGait's ``BasicConv2d``: no BN, no
    activation; the key is ``<block>.<i>.conv.weight``)."""

    def __init__(self, c_in: int, c_out: int, kernel: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=1, padding=kernel // 2, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


def _conv_pair(c_in: int, c_out: int, first_kernel: int, pool: bool) -> nn.Sequential:
    """conv ``first_kernel`` c_in -> c_out, LeakyReLU, conv 3x3 c_out -> c_out, LeakyReLU
    (slope 0.01), then a 2x2 max pool when ``pool``: GaitSet's blocks, GLN's stages.
    Parameter indices 0 and 2, as OpenGait's ``nn.Sequential``."""
    layers: list[nn.Module] = [_Conv(c_in, c_out, first_kernel), nn.LeakyReLU(inplace=True),
                               _Conv(c_out, c_out, 3), nn.LeakyReLU(inplace=True)]
    if pool:
        layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


def init_opengait_parameters(module: nn.Module) -> None:
    """OpenGait's ``BaseModel.init_parameters``, in place, from torch's global RNG: Xavier-uniform
    weights and zero biases for every Conv1d/2d/3d and Linear; BatchNorm weights ~ N(1, 0.02)
    and zero biases. ``SeparateFCs.fc_bin`` keeps its own Xavier-uniform start (OpenGait's
    loop does not visit it either)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def _check_channels(channels: Sequence[int]) -> tuple[int, int, int, int]:
    out = tuple(channels)
    if len(out) != 4:
        raise ValueError(f"channels must be 4 integers (input, block 1, 2, 3), got {channels!r}")
    for i, c in enumerate(out):
        check_positive_int(f"channels[{i}]", c)
    return out  # type: ignore[return-value]


class _GaitNetwork(nn.Module):
    """What GaitSet and GLN share: the input contract, stacking the frames, ``example_inputs``."""

    input_names: tuple[str, ...] = ("silhouettes", "lengths")
    in_channels: int

    def _frames(self, silhouettes: Tensor, lengths: Tensor | None) -> tuple[Tensor, dict[str, Any]]:
        """``(T, C0, H, W)`` stacked frames and the set-pooling keywords (``set_size`` for the
        training layout, checked ``lengths`` for the test layout)."""
        name = type(self).__name__
        if not isinstance(silhouettes, Tensor) or not silhouettes.is_floating_point():
            raise ValueError(f"{name}: silhouettes must be a floating-point tensor in [0, 1], got "
                             f"{getattr(silhouettes, 'dtype', type(silhouettes).__name__)}")
        if silhouettes.ndim != 4:
            raise ValueError(f"{name}: silhouettes must be (N, S, H, W) (or (1, sum(lengths), H, W) with "
                             f"lengths), got {tuple(silhouettes.shape)}")
        n, s, h, w = silhouettes.shape
        if self.in_channels != 1:
            raise ValueError(f"{name}: built for {self.in_channels} input channels; silhouettes have one")
        if lengths is None:
            if n * s == 0:
                raise ValueError(f"{name}: empty silhouettes {tuple(silhouettes.shape)}")
            return silhouettes.reshape(n * s, 1, h, w), {"set_size": s}
        if n != 1:
            raise ValueError(f"{name}: with lengths, silhouettes must be (1, sum(lengths), H, W) (sequences "
                             f"concatenated along the frame axis), got {tuple(silhouettes.shape)}")
        lengths = check_lengths(lengths, s, f"{name} lengths")
        return silhouettes.reshape(s, 1, h, w), {"lengths": lengths}

    def example_inputs(self, batch: int = 1, frames: int | None = 30, height: int = 64, width: int = 44,
                       seed: int = 0) -> tuple[Tensor, None]:
        """``(silhouettes (batch, frames, height, width), None)``: random binary silhouettes
        (a filled ellipse per frame, jittered), the training layout; ``lengths`` absent."""
        t = 30 if frames is None else int(frames)
        g = torch.Generator().manual_seed(seed)
        yy = torch.linspace(-1, 1, height).view(1, 1, height, 1)
        xx = torch.linspace(-1, 1, width).view(1, 1, 1, width)
        cx = (torch.rand(batch, t, 1, 1, generator=g) - 0.5) * 0.2
        ry = 0.8 + 0.1 * torch.rand(batch, t, 1, 1, generator=g)
        rx = 0.3 + 0.1 * torch.rand(batch, t, 1, 1, generator=g)
        sil = (((xx - cx) / rx) ** 2 + (yy / ry) ** 2 <= 1).float()
        return sil, None


# -- GaitSet ----------------------------------------------------------------------------------------
class GaitSet(_GaitNetwork):
    """GaitSet as OpenGait's ``GaitSet`` (``configs/gaitset/gaitset.yaml``).

    ::

        frames (T, 1, H, W) -> set_block1 (conv5x5, conv3x3, pool) -> set_block2 (conv, conv, pool)
                            -> set_block3 (conv, conv)                      [per frame]
        gl = gl_block2(max_t block1) + max_t block2;  gl = gl_block3(gl) + max_t block3
        HPP(max_t block3) ++ HPP(gl)  (62 parts)  -> Head: SeparateFCs(62, c3 -> hidden_dim)

    Args:
        channels: ``(input, block 1, block 2, block 3)``: CASIA-B ``(1, 32, 64, 128)``
            (2,594,592 parameters), OU-MVLP / GREW ``(1, 64, 128, 256)`` (6,313,536).
        hidden_dim: embedding channels (256).
        bins: horizontal pyramid bin counts; the map height after two poolings (H / 4) must be
            a multiple of each (64 px input for 16 bins).
        num_class: training identities; unused by GaitSet (triplet loss only), kept so the
            task's output-size rule and the checkpoint record it.
    """

    def __init__(self, channels: Sequence[int] = (1, 32, 64, 128), hidden_dim: int = 256,
                 bins: Sequence[int] = (16, 8, 4, 2, 1), num_class: int | None = None) -> None:
        super().__init__()
        c0, c1, c2, c3 = self.channels = _check_channels(channels)
        self.in_channels = c0
        self.hidden_dim = check_positive_int("hidden_dim", hidden_dim)
        self.bins = check_bins(bins)
        self.num_class = None if num_class is None else check_positive_int("num_class", num_class)
        self.set_block1 = FrameBlock(_conv_pair(c0, c1, 5, pool=True))
        self.set_block2 = FrameBlock(_conv_pair(c1, c2, 3, pool=True))
        self.set_block3 = FrameBlock(_conv_pair(c2, c3, 3, pool=False))
        self.gl_block2 = _conv_pair(c1, c2, 3, pool=True)
        self.gl_block3 = _conv_pair(c2, c3, 3, pool=False)
        self.HPP = HorizontalPoolingPyramid(self.bins)
        self.Head = SeparateFCs(2 * sum(self.bins), c3, self.hidden_dim)
        init_opengait_parameters(self)

    @property
    def num_parts(self) -> int:
        return 2 * sum(self.bins)

    def forward(self, silhouettes: Tensor, lengths: Tensor | None = None) -> dict[str, Tensor]:
        """``{"embeddings": (N, hidden_dim, 2 * sum(bins))}``; see the module docstring."""
        x, pool = self._frames(silhouettes, lengths)
        outs = self.set_block1(x)
        gl = self.gl_block2(set_max(outs, **pool))
        outs = self.set_block2(outs)
        gl = self.gl_block3(gl + set_max(outs, **pool))
        outs = set_max(self.set_block3(outs), **pool)
        gl = gl + outs
        feature = torch.cat([self.HPP(outs), self.HPP(gl)], dim=-1)
        return {"embeddings": self.Head(feature)}


# -- GLN --------------------------------------------------------------------------------------------
class GLN(_GaitNetwork):
    """GLN as OpenGait's ``GLN`` (``configs/gln/gln_phase1.yaml``, ``gln_phase2.yaml``).

    ::

        S0 = max_t sil_stage_0(frames)                                  (H)
        S1 = max_t sil_stage_1(pool(sil_0)),  T1 = set_stage_1(max_t pool(sil_0)) + S1     (H/2)
        S2 = max_t sil_stage_2(pool(sil_1)),  T2 = set_stage_2(pool(T1)) + S2              (H/4)
        L3 = lateral_layer3([S2, T2]);  L2 = lateral_layer2([S1, T1]) + up(L3);  L1 = lateral_layer1([S0, S0]) + up(L2)
        F  = Head(HPP(smooth_layer1 L1) ++ HPP(smooth_layer2 L2) ++ HPP(smooth_layer3 L3))   (N, hidden, 93)

    (``[a, b]``: channel concatenation; stage 0 has no set branch, so ``S0`` is concatenated
    with itself, as OpenGait; ``up``: nearest x2.) Compact block (``compact=True``, phase 2)::

        z = encoder_bn(F.flatten(1));  z = reduce_fc(ReLU(Dropout(z)));  compact = z
        logits = reduce_cls(reduce_bn(z))                                  (N, num_class)

    Args:
        channels: as :class:`GaitSet` (CASIA-B ``(1, 32, 64, 128)``).
        lateral_dim: channels of the lateral path (256).
        hidden_dim: embedding channels and compact size (256).
        bins: pyramid bins; each level's height (H, H/2, H/4) must be a multiple of every bin
            count (64 px input for 16 bins).
        lateral: ``True``: the top-down path (each level adds the upsampled level above, FPN);
            ``False`` (the notes' "lateral connections off"): every level keeps only its own
            1x1 lateral conv and smoothing conv, no top-down addition. Same parameters and
            names, so checkpoints interchange; only the information flow between levels goes.
        compact: build the compact block (GLN phase 2): 14,703,904 parameters at CASIA-B sizes
            (8,541,984 without).
        compact_dropout: the block's dropout probability (0.9).
        compact_order: ``'opengait'``: BN, Dropout, ReLU, Linear, BN; ``'notes'``: BN, ReLU,
            Dropout, Linear, BN. The two compute the same function (``relu(dropout(x)) ==
            dropout(relu(x))`` for the same mask: dropout scales by a positive factor or zeroes),
            so the option only documents the notes' order.
        embedding: the inference embedding (``eval()`` mode): ``'parts'`` = ``F`` ``(N, 256, 93)``
            as OpenGait; ``'compact'`` = the 256-d reduce feature ``(N, 256, 1)`` (the
            paper's compact representation); ``'compact_bn'`` = it after ``reduce_bn``. Training
            always returns ``F`` (the triplet loss is on ``F`` in both phases, as OpenGait).
        num_class: training identities (74 for CASIA-B): the classifier's outputs.
    """

    def __init__(self, channels: Sequence[int] = (1, 32, 64, 128), lateral_dim: int = 256,
                 hidden_dim: int = 256, bins: Sequence[int] = (16, 8, 4, 2, 1), lateral: bool = True,
                 compact: bool = False, compact_dropout: float = 0.9, compact_order: CompactOrder = "opengait",
                 embedding: EmbeddingKind = "parts", num_class: int = 74) -> None:
        super().__init__()
        c0, c1, c2, c3 = self.channels = _check_channels(channels)
        self.in_channels = c0
        self.lateral_dim = check_positive_int("lateral_dim", lateral_dim)
        self.hidden_dim = check_positive_int("hidden_dim", hidden_dim)
        self.bins = check_bins(bins)
        self.lateral = bool(lateral)
        self.compact = bool(compact)
        if not 0.0 <= float(compact_dropout) < 1.0:
            raise ValueError(f"compact_dropout must be in [0, 1), got {compact_dropout!r}")
        self.compact_dropout = float(compact_dropout)
        if compact_order not in _ORDERS:
            raise ValueError(f"compact_order must be one of {_ORDERS}, got {compact_order!r}")
        self.compact_order = compact_order
        if embedding not in _EMBEDDINGS:
            raise ValueError(f"embedding must be one of {_EMBEDDINGS}, got {embedding!r}")
        if embedding != "parts" and not self.compact:
            raise ValueError(f"embedding={embedding!r} needs the compact block (compact=True)")
        self.embedding = embedding
        self.num_class = check_positive_int("num_class", num_class)

        self.sil_stage_0 = FrameBlock(_conv_pair(c0, c1, 5, pool=False))
        self.sil_stage_1 = FrameBlock(_conv_pair(c1, c2, 3, pool=False))
        self.sil_stage_2 = FrameBlock(_conv_pair(c2, c3, 3, pool=False))
        self.set_stage_1 = _conv_pair(c1, c2, 3, pool=False)
        self.set_stage_2 = _conv_pair(c2, c3, 3, pool=False)
        self.MaxP = nn.MaxPool2d(kernel_size=2, stride=2)  # OpenGait's MaxP_sil / MaxP_set (no parameters)
        d = self.lateral_dim
        self.lateral_layer1 = nn.Conv2d(2 * c1, d, kernel_size=1, bias=False)
        self.lateral_layer2 = nn.Conv2d(2 * c2, d, kernel_size=1, bias=False)
        self.lateral_layer3 = nn.Conv2d(2 * c3, d, kernel_size=1, bias=False)
        self.smooth_layer1 = nn.Conv2d(d, d, kernel_size=3, padding=1, bias=False)
        self.smooth_layer2 = nn.Conv2d(d, d, kernel_size=3, padding=1, bias=False)
        self.smooth_layer3 = nn.Conv2d(d, d, kernel_size=3, padding=1, bias=False)
        self.HPP = HorizontalPoolingPyramid(self.bins)
        self.Head = SeparateFCs(self.num_parts, d, self.hidden_dim)
        if self.compact:
            flat = self.num_parts * self.hidden_dim
            self.encoder_bn = nn.BatchNorm1d(flat)
            self.reduce_dp = nn.Dropout(p=self.compact_dropout)
            self.reduce_ac = nn.ReLU(inplace=True)
            self.reduce_fc = nn.Linear(flat, self.hidden_dim, bias=False)
            self.reduce_bn = nn.BatchNorm1d(self.hidden_dim)
            self.reduce_cls = nn.Linear(self.hidden_dim, self.num_class, bias=False)
        init_opengait_parameters(self)
        if self.compact:  # OpenGait freezes both BN biases (at 0): BNNeck-style, no shift
            self.encoder_bn.bias.requires_grad_(False)
            self.reduce_bn.bias.requires_grad_(False)

    @property
    def num_parts(self) -> int:
        return 3 * sum(self.bins)

    def _top_down(self, x: Tensor, below: Tensor) -> Tensor:
        """``below + nearest-upsample(x)`` to ``below``'s size (x2 when the sizes halve exactly)."""
        if not self.lateral:
            return below
        return below + F.interpolate(x, size=below.shape[-2:], mode="nearest")

    def features(self, silhouettes: Tensor, lengths: Tensor | None = None) -> Tensor:
        """``F``: the 93-part feature ``(N, hidden_dim, 3 * sum(bins))``."""
        x, pool = self._frames(silhouettes, lengths)
        sil0 = self.sil_stage_0(x)
        s0 = set_max(sil0, **pool)
        sil1_in = self.MaxP(sil0)
        sil1 = self.sil_stage_1(sil1_in)
        sil2 = self.sil_stage_2(self.MaxP(sil1))
        s1 = set_max(sil1, **pool)
        t1 = self.set_stage_1(set_max(sil1_in, **pool)) + s1
        s2 = set_max(sil2, **pool)
        t2 = self.set_stage_2(self.MaxP(t1)) + s2
        l3 = self.lateral_layer3(torch.cat((s2, t2), dim=1))
        l2 = self._top_down(l3, self.lateral_layer2(torch.cat((s1, t1), dim=1)))
        l1 = self._top_down(l2, self.lateral_layer1(torch.cat((s0, s0), dim=1)))
        parts = torch.cat([self.HPP(self.smooth_layer1(l1)), self.HPP(self.smooth_layer2(l2)),
                           self.HPP(self.smooth_layer3(l3))], dim=-1)
        return self.Head(parts)

    def forward(self, silhouettes: Tensor, lengths: Tensor | None = None) -> dict[str, Tensor]:
        """``{"embeddings": (N, C, P)}``, with the compact block also ``"logits" (N, num_class)``
        and ``"compact" (N, hidden_dim)``; in ``eval()`` mode ``embeddings`` is the chosen
        inference embedding (``(N, hidden_dim, 1)`` for the compact ones)."""
        feature = self.features(silhouettes, lengths)
        out = {"embeddings": feature}
        if not self.compact:
            return out
        z = self.encoder_bn(feature.flatten(1))  # channel-major, as OpenGait's feature.view(n, -1)
        if self.compact_order == "opengait":
            z = self.reduce_ac(self.reduce_dp(z))
        else:
            z = self.reduce_dp(self.reduce_ac(z))
        reduced = self.reduce_fc(z)
        bn_reduced = self.reduce_bn(reduced)
        out["logits"] = self.reduce_cls(bn_reduced)  # (N, num_class): the fix of OpenGait #109
        out["compact"] = reduced
        if not self.training and self.embedding != "parts":
            out["embeddings"] = (reduced if self.embedding == "compact" else bn_reduced).unsqueeze(-1)
        return out


# -- OpenGait checkpoints -----------------------------------------------------------------------------
def compact_layout_permutation(parts: int, channels: int) -> Tensor:
    """Index ``perm`` with ``ours[..., i] = released[..., perm[i]]`` for the compact block's
    flattened axis: ours (and OpenGait's since June 2022, #59) flattens ``F (n, c, p)``
    channel-major (``i = c * parts + p``); OpenGait v1.0 (December 2021, which trained the
    released ``GLN_P2-40000.pt``) flattened ``(n, p, c)`` part-major (``j = p * channels + c``)."""
    c = torch.arange(channels).view(channels, 1)
    p = torch.arange(parts).view(1, parts)
    return (p * channels + c).reshape(-1)


def opengait_state_dict(obj: Any, where: str) -> dict[str, Tensor]:
    """The model state of a loaded OpenGait checkpoint: ``obj["model"]`` (``BaseModel.save_ckpt``
    writes ``{"model", "optimizer", "scheduler", "iteration"}``) or a bare state dict; a
    ``module.`` prefix on every key (a DDP-wrapped save) is removed."""
    state = obj.get("model", obj) if isinstance(obj, Mapping) else None
    if not isinstance(state, Mapping) or not state or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{where}: expected OpenGait's checkpoint {{'model': state_dict, 'optimizer': ..., "
                         "'iteration': ...}} (or a bare state dict of tensors)")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return dict(state)


def _infer_model(state: Mapping[str, Tensor], model: str | None, phase: int | None, where: str
                 ) -> tuple[str, int | None]:
    if "set_block1.forward_block.0.conv.weight" in state:
        found, found_phase = "gaitset", None
    elif "sil_stage_0.forward_block.0.conv.weight" in state:
        found, found_phase = "gln", (2 if "encoder_bn.weight" in state else 1)
    else:
        raise ValueError(f"{where}: neither GaitSet's set_block1.forward_block.0.conv.weight nor GLN's "
                         "sil_stage_0.forward_block.0.conv.weight in the state dict; not an OpenGait GaitSet/GLN "
                         "checkpoint")
    if model is not None and model.lower() != found:
        raise ValueError(f"{where}: --model {model} given, but the file holds {found}")
    if phase is not None:
        if found != "gln":
            raise ValueError(f"{where}: --phase applies to GLN only; the file holds GaitSet")
        if int(phase) != found_phase:
            raise ValueError(f"{where}: --phase {phase} given, but the file holds GLN phase {found_phase} "
                             f"({'with' if found_phase == 2 else 'without'} the compact block)")
    return found, found_phase


def _build_from_state(state: Mapping[str, Tensor], kind: str, phase: int | None, where: str) -> nn.Module:
    """The graphfuse network whose shapes the state dict's say (channels, parts, classes)."""
    prefix = "set_block" if kind == "gaitset" else "sil_stage_"
    first = "1" if kind == "gaitset" else "0"
    try:
        c1, c0 = (int(s) for s in state[f"{prefix}{first}.forward_block.0.conv.weight"].shape[:2])
        c2 = int(state[f"{prefix}{int(first) + 1}.forward_block.0.conv.weight"].shape[0])
        c3 = int(state[f"{prefix}{int(first) + 2}.forward_block.0.conv.weight"].shape[0])
        parts, _, hidden = (int(s) for s in state["Head.fc_bin"].shape)
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{where}: missing or malformed key {exc}; not OpenGait's {kind} layout") from None
    levels = 2 if kind == "gaitset" else 3
    bins = (16, 8, 4, 2, 1)
    if parts != levels * sum(bins):
        raise ValueError(f"{where}: Head.fc_bin has {parts} parts; OpenGait's {kind} has {levels} x 31 = "
                         f"{levels * 31} (bins 16, 8, 4, 2, 1)")
    if kind == "gaitset":
        return GaitSet(channels=(c0, c1, c2, c3), hidden_dim=hidden, bins=bins)
    lateral_dim = int(state["lateral_layer1.weight"].shape[0]) if "lateral_layer1.weight" in state else 256
    num_class = int(state["reduce_cls.weight"].shape[0]) if "reduce_cls.weight" in state else 74
    return GLN(channels=(c0, c1, c2, c3), lateral_dim=lateral_dim, hidden_dim=hidden, bins=bins,
               compact=phase == 2, num_class=num_class)


def convert_opengait(input_path: str | Path, output_path: str | Path, model: str | None = None,
                     phase: int | str | None = None, compact_layout: str = "v1.0", **options: Any) -> Path:
    """An OpenGait GaitSet / GLN checkpoint (``<save_name>-<iteration>.pt``) -> graphfuse checkpoint.

    The file is read with :func:`graphfuse.checkpoints.load_checkpoint` (``weights_only=True``;
    OpenGait's ``{"model", "optimizer", "scheduler", "iteration"}`` holds only tensors and plain
    values). The network (GaitSet or GLN, the GLN phase, channels, parts, classes) is read from
    the keys and shapes; ``model`` (``gaitset`` | ``gln``) and ``phase`` (1 | 2), when given, must
    agree. The state is loaded with ``strict=True`` after a key/shape check naming the offenders.

    ``compact_layout`` (GLN phase 2 only): ``'v1.0'`` (default) for a file written by OpenGait
    v1.0 (December 2021; the released ``GLN_P2-40000.pt``), whose compact block flattened the
    feature part-major; ``'head'`` for one written after June 2022 (#59: channel-major, our
    layout; such phase-2 runs need the #109 fix). ``encoder_bn`` and ``reduce_fc``'s input
    columns are permuted accordingly (:func:`compact_layout_permutation`); the network's
    function is unchanged.
    """
    import lightning

    from graphfuse.checkpoints import BLOCK_KEY, graphfuse_block, load_checkpoint, save_checkpoint

    if options:
        raise TypeError(f"convert_opengait takes only model, phase and compact_layout, got {', '.join(sorted(options))}")
    if compact_layout not in ("v1.0", "head"):
        raise ValueError(f"compact_layout must be 'v1.0' or 'head', got {compact_layout!r}")
    input_path, output_path = Path(input_path), Path(output_path)
    where = str(input_path)
    obj = load_checkpoint(input_path)
    state = opengait_state_dict(obj, where)
    kind, found_phase = _infer_model(state, model, None if phase is None else int(phase), where)
    net = _build_from_state(state, kind, found_phase, where)
    check_state_dict(state, {k: v.shape for k, v in net.state_dict().items()}, where,
                     f"not OpenGait's {'GaitSet' if kind == 'gaitset' else f'GLN phase {found_phase}'} layout")
    if kind == "gln" and found_phase == 2 and compact_layout == "v1.0":
        perm = compact_layout_permutation(net.num_parts, net.hidden_dim)
        for key in ("weight", "bias", "running_mean", "running_var"):
            state[f"encoder_bn.{key}"] = state[f"encoder_bn.{key}"][perm]
        state["reduce_fc.weight"] = state["reduce_fc.weight"][:, perm]
    net.load_state_dict(state, strict=True)
    info = release_info(input_path, WEIGHTS)
    iteration = obj.get("iteration") if isinstance(obj, Mapping) else None
    if isinstance(iteration, Tensor) and iteration.numel() == 1:
        iteration = iteration.item()
    if isinstance(iteration, int):
        info["released_iteration"] = iteration
    init: dict[str, Any] = {"channels": list(net.channels), "hidden_dim": net.hidden_dim, "bins": list(net.bins)}
    if isinstance(net, GLN):
        init.update(lateral_dim=net.lateral_dim, compact=net.compact, num_class=net.num_class)
        info["compact_layout"] = compact_layout if net.compact else None
    release = next((w for w in WEIGHTS if w.name == info.get("release")), None)
    # OpenGait's inputs: GaitSet 64 x 44; its CASIA-B GLN 128 x 88 (unknown for an unreleased GLN file)
    h = 64 if isinstance(net, GaitSet) else (128 if release is not None else None)
    data = {"input_names": ["silhouettes", "lengths"], "layout": "silhouettes (1, sum(lengths), H, W), lengths (N,)",
            "normalisation": "uint8 / 255, side cut (W // 64) * 10 px per side (OpenGait BaseSilCuttingTransform)",
            "sampling": "all frames in order (OpenGait all_ordered)",
            "input_height": h}
    ckpt = {
        "state_dict": {"model." + k: v.detach().clone() for k, v in net.state_dict().items()},
        "pytorch-lightning_version": lightning.__version__,
        "epoch": 0,
        "global_step": 0,
        BLOCK_KEY: graphfuse_block(
            config=_config_text(release.config if release is not None else None), data=data,
            num_class=getattr(net, "num_class", None) or (release.num_class if release is not None else None),
            model=f"graphfuse.models.gait.{type(net).__name__}", task=TASK, converted_from=str(input_path),
            model_init=init, **info),
    }
    save_checkpoint(ckpt, output_path)
    return output_path


def _config_text(config: str | None) -> str | None:
    if not config:
        return None
    path = Path(__file__).resolve().parents[3] / config
    try:
        return path.read_text(encoding="utf-8") if path.is_file() else None
    except (OSError, UnicodeDecodeError):
        return None


_SOURCE = ("OpenGait docs/1.model_zoo.md (ShiqiYu/OpenGait 0efafd4); files from its GitHub releases "
           "(v1.0 pretrained_casiab_model.zip, v1.1 pretrained_oumvlp_model.zip); not yet verified by graphfuse")
_CASIA = ("CASIA-B, OpenGait single-view-gallery protocol: gallery nm-01..04, probes nm-05/06 (NM), bg-01/02, "
          "cl-01/02; rank-1 per probe view x gallery view, identical view excluded, mean over views; the last "
          "iteration (40k) evaluated")

#: OpenGait's released GaitSet / GLN checkpoints (sha256 not recorded: the files were not downloaded here).
WEIGHTS: tuple[Weights, ...] = (
    Weights(
        name="opengait_gaitset_casiab", file="output/CASIA-B/GaitSet/GaitSet/checkpoints/GaitSet-40000.pt",
        converter="opengait", num_class=74, config="configs/casia-b/gaitset/gaitset.yaml", source=_SOURCE,
        protocol=_CASIA, metric="rank-1 NM (%)", reported=95.8,
        notes="BG 90.0, CL 75.4 rank-1; mAP NM/BG/CL 85.9/81.4/77.0 (cross-view gallery); 64x44 input",
    ),
    Weights(
        name="opengait_gln_p1_casiab", file="output/CASIA-B/GLN/GLN_P1/checkpoints/GLN_P1-40000.pt",
        converter="opengait", num_class=74, config="configs/casia-b/gln/phase1.yaml", source=_SOURCE,
        protocol=_CASIA, metric="rank-1 NM (%)", reported=96.4,
        notes="OpenGait's GLN row (without the compact block): BG 93.1, CL 81.0; 128x88 input (prepare with "
              "--size 128). OpenGait issue #106 reports this file testing below 50% (cause unconfirmed)",
    ),
    Weights(
        name="opengait_gln_p2_casiab", file="output/CASIA-B/GLN/GLN_P2/checkpoints/GLN_P2-40000.pt",
        converter="opengait", num_class=74, config="configs/casia-b/gln/phase2.yaml", source=_SOURCE,
        protocol=_CASIA,
        notes="no number reported for phase 2 (the model zoo's GLN row is without the compact block); written by "
              "OpenGait v1.0: convert with the default --compact-layout v1.0; 128x88 input",
    ),
    Weights(
        name="opengait_gaitset_oumvlp", file="output/OUMVLP/GaitSet/GaitSet/checkpoints/GaitSet-250000.pt",
        converter="opengait", num_class=5153, config="configs/oumvlp/gaitset/gaitset.yaml", source=_SOURCE,
        protocol="OU-MVLP: probe 00, gallery 01, 14 views, identical view excluded (/13), the last iteration",
        metric="rank-1 (%)", reported=87.2,
        notes="channels (1, 64, 128, 256), 6,313,536 parameters; mAP 92.2",
    ),
)
