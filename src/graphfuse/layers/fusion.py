"""Pose/velocity fusion layers of the doing_project (DP) ablation on Pedestrian Graph+.

Reference: ``sellenzh/doing_project`` (MIT) at commit ``2a163b6``, folder
``GCN_module/Gated_Fusion/``: ``cross_model.py`` (base ``CrossTransformer``), ``file03/06/07.py``
and ``save/cross_model.py`` (node tokens), ``gated_fusion.py`` / ``file02/04/05.py`` /
``save/gated_fusion.py`` (``GatedFusion`` and its ``FC`` variants), ``ped_graph.py``,
``file08.py`` ... ``file12.py``, ``file-v7.py`` / ``save/ped_graph.py`` (velocity encoders,
two-stage gating), and ``notes.md`` (the results). Summary and caveats in
``shared/research/pedgraph_pie.md`` sections 2.3-2.6.

Every variant of the notes is an option of one class here:

* :class:`CrossAttention` - pose joints attend to the velocity. With one velocity token per
  frame (DP's base, file03, file06) the attention weight over a single key is identically 1,
  so the output is ``W_o (W_v v_t + b_v) + b_o`` for every joint: **independent of the pose and
  of the number of heads**. The notes' "8 heads vs 2 heads" comparison is therefore noise. Only
  node tokens (file07 / ``save/``) make the attention real.
* :class:`GatedFusion` - ``z1 = FC1(x)``, ``z2 = FC2(y)``, ``z = sigmoid(z1 + z2)``,
  ``out = z * z1 + (1 - z) * z2``, with FC a 1x1 conv, a linear layer or an MLP (each then
  BN + ReLU), and optional trailing 1x1 conv blocks (DP's base: two, the *same* module twice).
  Because z1, z2 >= 0 (they leave a ReLU), z >= 0.5: the gate always leans towards ``x``.
* :class:`VelocityEncoder` - the ego-speed encoders (Linear + BN + ReLU, MLP, Conv1d stacks).
* :class:`NodeExpansion` - the ``1 -> units -> ... -> V`` MLP that turns each channel's scalar
  into one value per joint (node tokens; two-stage gating of file10).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from torch import Tensor, nn

from .common import check_nonnegative_int, check_positive_int
from .temporal_attention import ATTENTION_KINDS, MultiHeadAttention

__all__ = ["CrossAttention", "GatedFusion", "VelocityEncoder", "NodeExpansion"]

_TOKENS = ("single", "nodes")
_GATE_FC = ("conv", "linear", "mlp")
_VEL_KINDS = ("linear", "mlp", "conv1d")
_ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU}


def _check_shape(name: str, x: Tensor, dims: int, channels: int) -> None:
    if x.dim() != dims or x.shape[1] != channels:
        want = ", ".join(["N", str(channels)] + ["T", "V"][: dims - 2])
        raise ValueError(f"{name}: expected shape ({want}), got {tuple(x.shape)}")


class NodeExpansion(nn.Sequential):
    """Expand every channel's scalar to one value per node with a small MLP.

    ``Linear(1, hidden) -> ReLU -> ... -> Linear(hidden, V) -> ReLU``: ``num_layers`` linear
    layers, each followed by a ReLU, the last one included, as DP (``mlp`` of
    ``save/cross_model.py``: 1 -> C -> C -> 19; ``vel_node`` of ``file10.py``: 1 -> 3C -> 3C -> 19;
    the notes' 08 v1: 1 -> C -> 19). ``num_layers=1`` is ``Linear(1, V) -> ReLU``.

    The same weights act on every (sample, channel, frame); subclassing ``nn.Sequential``
    keeps DP's parameter names (``0.weight``, ``2.weight``, ...).

    Args:
        channels: C; only used for the default hidden width.
        num_nodes: V, the output length (DP: 19).
        num_layers: number of linear layers (DP: 3; notes 08 v1: 2).
        hidden: hidden width (default ``channels``; file10 uses ``3 * channels``).

    Shapes: ``x (N, C, T)`` -> ``(N, C, T, V)``.
    """

    def __init__(
        self, channels: int, num_nodes: int = 19, num_layers: int = 3, hidden: int | None = None
    ) -> None:
        check_positive_int("channels", channels)
        check_positive_int("num_nodes", num_nodes)
        check_positive_int("num_layers", num_layers)
        hidden = channels if hidden is None else check_positive_int("hidden", hidden)
        widths = [1] + [hidden] * (num_layers - 1) + [num_nodes]
        modules: list[nn.Module] = []
        for w_in, w_out in zip(widths[:-1], widths[1:]):
            modules += [nn.Linear(w_in, w_out), nn.ReLU()]
        super().__init__(*modules)
        self.channels = channels
        self.num_nodes = num_nodes

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        """``x (N, C, T)`` -> ``(N, C, T, V)``."""
        if x.dim() != 3:
            raise ValueError(f"NodeExpansion: expected (N, C, T), got {tuple(x.shape)}")
        return super().forward(x.unsqueeze(-1))


class CrossAttention(nn.Module):
    """Cross attention from pose joints (queries) to velocity tokens (keys and values).

    DP ``CrossTransformer`` (``cross_model.py``; node tokens in ``file07.py`` and
    ``save/cross_model.py``). Per frame, the V joints of the pose are the queries; the keys and
    values are

    * ``"single"``: one velocity token per frame (DP's base). Degenerate: the attention
      weight over one key is 1, so the output is the same projection of the velocity for
      every joint, independent of the pose and of ``num_heads``; a warning says so at
      construction when ``num_heads > 1``;
    * ``"nodes"``: V tokens ``velocity + NodeExpansion(velocity)`` (each channel's scalar
      repeated over the joints plus a learnt per-joint offset, ``mlp`` in DP).

    Attention: :class:`~graphfuse.layers.temporal_attention.MultiHeadAttention` with Q/K/V/O
    ``Linear(C, C)``, scaled dot product, ``entmax15`` (DP) or ``softmax``, no dropout.
    Output ``attention + pose`` (DP's residual).

    Args:
        channels: C of pose and velocity.
        num_heads: attention heads (DP: 8); C must be divisible by it.
        attention: ``"entmax15"`` (DP) or ``"softmax"``.
        velocity_tokens: ``"single"`` (DP base, notes 00-07) or ``"nodes"`` (notes 08 on).
        node_mlp_layers: linear layers of the node MLP (DP final: 3; notes 08 v1: 2).
        node_mlp_hidden: its hidden width (default ``channels``, as DP).
        num_nodes: V (19 for the PedGraph+ graph); the pose must have this many joints in the
            ``"nodes"`` mode.

    Shapes: ``pose (N, C, T, V)``, ``velocity (N, C, T)`` -> ``(N, C, T, V)``.
    """

    def __init__(
        self,
        channels: int,
        num_heads: int = 8,
        attention: str = "entmax15",
        velocity_tokens: str = "single",
        node_mlp_layers: int = 3,
        node_mlp_hidden: int | None = None,
        num_nodes: int = 19,
    ) -> None:
        super().__init__()
        check_positive_int("channels", channels)
        if attention not in ATTENTION_KINDS:
            raise ValueError(f"attention must be one of {ATTENTION_KINDS}, got {attention!r}")
        if velocity_tokens not in _TOKENS:
            raise ValueError(f"velocity_tokens must be one of {_TOKENS}, got {velocity_tokens!r}")
        self.channels = channels
        self.num_heads = num_heads
        self.velocity_tokens = velocity_tokens
        self.num_nodes = check_positive_int("num_nodes", num_nodes)
        self.attention = MultiHeadAttention(channels, num_heads, attention)
        if velocity_tokens == "nodes":
            self.mlp = NodeExpansion(channels, num_nodes, node_mlp_layers, node_mlp_hidden)
        elif num_heads > 1:
            warnings.warn(
                f"CrossAttention(velocity_tokens='single', num_heads={num_heads}): with one velocity "
                f"token per frame the attention weight is identically 1, so the output does not depend "
                f"on the pose (apart from the residual) nor on the number of heads; use "
                f"velocity_tokens='nodes' for a real attention",
                UserWarning,
                stacklevel=2,
            )

    @property
    def degenerate(self) -> bool:
        """True when the attention has a single key (output independent of pose and heads)."""
        return self.velocity_tokens == "single"

    def tokens(self, velocity: Tensor) -> Tensor:
        """Key/value tokens: ``velocity (N, C, T)`` -> ``(N*T, L, C)`` with L = 1 or V."""
        n, c, t = velocity.shape
        if self.velocity_tokens == "single":
            return velocity.permute(0, 2, 1).reshape(n * t, 1, c)
        nodes = velocity.unsqueeze(-1) + self.mlp(velocity)  # (N, C, T, V): repeat + offsets
        return nodes.permute(0, 2, 3, 1).reshape(n * t, self.num_nodes, c)

    def forward(self, pose: Tensor, velocity: Tensor) -> Tensor:
        """``pose (N, C, T, V)``, ``velocity (N, C, T)`` -> ``(N, C, T, V)``."""
        _check_shape("CrossAttention pose", pose, 4, self.channels)
        _check_shape("CrossAttention velocity", velocity, 3, self.channels)
        n, c, t, v = pose.shape
        if velocity.shape[0] != n or velocity.shape[2] != t:
            raise ValueError(
                f"CrossAttention: velocity {tuple(velocity.shape)} does not match pose {tuple(pose.shape)} "
                f"in N or T"
            )
        if self.velocity_tokens == "nodes" and v != self.num_nodes:
            raise ValueError(
                f"CrossAttention: pose has V={v} joints, node tokens were built for {self.num_nodes}"
            )
        queries = pose.permute(0, 2, 3, 1).reshape(n * t, v, c)
        kv = self.tokens(velocity)
        out = self.attention(queries, kv, kv).reshape(n, t, v, c).permute(0, 3, 1, 2)
        return out + pose


class _GateFC(nn.Module):
    """One FC branch of :class:`GatedFusion` (DP ``FC``): transform, then BN2d + ReLU.

    ``"conv"``: ``Conv2d(C, C, 1)`` (``gated_fusion.py``, file02/03); ``"linear"``:
    ``Linear(C, C)`` on the channel axis (file04); ``"mlp"``: ``mlp_layers`` linear layers
    C -> kC -> ... -> kC -> C on the channel axis, each followed by ReLU, the last included
    (file05: 4 layers, k = 3; ``save/``: 3 layers, k = 3). Attribute names are DP's
    (``conv`` / ``linear`` / ``layers``, ``bn``, ``act``).
    """

    def __init__(self, channels: int, fc: str, mlp_layers: int, mlp_hidden_mult: int) -> None:
        super().__init__()
        self.kind = fc
        if fc == "conv":
            self.conv = nn.Conv2d(channels, channels, kernel_size=1)
        elif fc == "linear":
            self.linear = nn.Linear(channels, channels)
        else:
            hidden = mlp_hidden_mult * channels
            widths = [channels] + [hidden] * (mlp_layers - 1) + [channels]
            modules: list[nn.Module] = []
            for w_in, w_out in zip(widths[:-1], widths[1:]):
                modules += [nn.Linear(w_in, w_out), nn.ReLU()]
            self.layers = nn.Sequential(*modules)
        self.bn = nn.BatchNorm2d(channels)
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        """``x (N, C, T, V)`` -> ``(N, C, T, V)``."""
        if self.kind == "conv":
            h = self.conv(x)
        else:
            body = self.linear if self.kind == "linear" else self.layers
            h = body(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.act(self.bn(h))


class GatedFusion(nn.Module):
    """Gated fusion of two feature maps (DP ``GatedFusion``).

    ``z1 = FC1(x)``, ``z2 = FC2(y)``, ``z = sigmoid(z1 + z2)``, ``out = z * z1 + (1 - z) * z2``,
    then ``trailing_convs`` blocks ``Conv2d(C, C, 1) -> BN2d -> ReLU``.

    Args:
        channels: C of both inputs.
        fc: ``"conv"`` (DP base: Conv2d 1x1 + BN + ReLU), ``"linear"`` (notes 06: Linear + BN +
            ReLU) or ``"mlp"`` (notes 07: MLP + BN + ReLU).
        mlp_layers: number of linear layers of the ``"mlp"`` FC (notes 07 v1: 2, v2-v5: 3,
            v6: 4, v7: 5; DP final: 3).
        mlp_hidden_mult: its hidden width in multiples of C (v1, v2: 2; v3 and final: 3; v4: 4;
            v5: 5).
        trailing_convs: number of trailing conv blocks (DP base: 2; notes 01 on: 0).
        share_trailing: when True (DP base) the trailing blocks are one module applied
            ``trailing_convs`` times (DP appends the same ``nn.Sequential`` twice to its
            ``ModuleList``, so the weights are shared); when False each block has its own weights.

    Shapes: ``x, y (N, C, T, V)`` -> ``(N, C, T, V)``.
    """

    def __init__(
        self,
        channels: int,
        fc: str = "conv",
        mlp_layers: int = 3,
        mlp_hidden_mult: int = 3,
        trailing_convs: int = 0,
        share_trailing: bool = True,
    ) -> None:
        super().__init__()
        check_positive_int("channels", channels)
        if fc not in _GATE_FC:
            raise ValueError(f"fc must be one of {_GATE_FC}, got {fc!r}")
        check_positive_int("mlp_layers", mlp_layers)
        check_positive_int("mlp_hidden_mult", mlp_hidden_mult)
        check_nonnegative_int("trailing_convs", trailing_convs)
        self.channels = channels
        self.fc1 = _GateFC(channels, fc, mlp_layers, mlp_hidden_mult)
        self.fc2 = _GateFC(channels, fc, mlp_layers, mlp_hidden_mult)
        self.sig = nn.Sigmoid()
        self.share_trailing = bool(share_trailing)
        self.layer = nn.ModuleList()
        if trailing_convs and self.share_trailing:
            self.conv = self._trailing_block(channels)  # DP's name for the shared block
            for _ in range(trailing_convs):
                self.layer.append(self.conv)
        else:
            for _ in range(trailing_convs):
                self.layer.append(self._trailing_block(channels))

    @staticmethod
    def _trailing_block(channels: int) -> nn.Sequential:
        conv = nn.Conv2d(channels, channels, kernel_size=1)
        return nn.Sequential(conv, nn.BatchNorm2d(channels), nn.ReLU())

    def gate(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Return ``(z, z1, z2)`` for inspection; ``z = sigmoid(FC1(x) + FC2(y))``."""
        z1 = self.fc1(x)
        z2 = self.fc2(y)
        return self.sig(z1 + z2), z1, z2

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """``x, y (N, C, T, V)`` -> ``(N, C, T, V)``."""
        _check_shape("GatedFusion x", x, 4, self.channels)
        _check_shape("GatedFusion y", y, 4, self.channels)
        if x.shape != y.shape:
            raise ValueError(f"GatedFusion: x {tuple(x.shape)} and y {tuple(y.shape)} differ")
        z, z1, z2 = self.gate(x, y)
        out = z * z1 + (1 - z) * z2
        for block in self.layer:  # loop over layers only
            out = block(out)
        return out


class VelocityEncoder(nn.Module):
    """Encoder of the ego-velocity series for the cross attention (DP ``vel0``/``vel1``/``vel2``).

    Kinds (hidden widths are multiples of ``out_channels``, as DP's ``ch * k``):

    * ``"linear"`` (DP base ``ped_graph.py``): ``Linear(Cin, Cout) -> BN1d -> ReLU``
      (``num_layers`` must be 1).
    * ``"mlp"`` (file08; notes 08 v3/v4: 3 layers hidden 2C/3C, v5: 2 layers hidden 3C):
      ``num_layers`` linear layers on the channel axis, each followed by ReLU (the last included).
    * ``"conv1d"`` (file09: 1 layer; file-v7 / ``save/``: 2 layers 2 -> 2C -> C; file11: hidden
      3C; notes 08 v8: 3 layers 2 -> 2C -> 3C -> C): ``Conv1d(k=1, bias)`` + BN1d + activation per
      layer; the activations default to DP's: SiLU after the first layer, ReLU after the others
      (file-v7: BN, SiLU, Conv, BN, ReLU).

    ``extra_bn_relu`` appends ``BN1d(Cout) -> ReLU``: DP's model applies its ``bn0``/``relu0``
    (``bn1``/``relu1`` at stage 2) after the ``mlp`` and ``conv1d`` encoders of file08, file09,
    file-v7, file10 and file11 (file12 drops them), so set it to reproduce those files.

    Args:
        in_channels: Cin (2 ego-speed channels at stage 1; 32 at stage 2 where DP re-encodes the
            stage-1 output).
        out_channels: Cout.
        kind: ``"linear"``, ``"mlp"`` or ``"conv1d"``.
        num_layers: layers of the ``"mlp"`` / ``"conv1d"`` stacks.
        hidden_mult: width of every hidden layer in multiples of Cout.
        hidden_mults: per-hidden-layer multiples, overriding ``hidden_mult``
            (``[2, 3]`` gives Cin -> 2C -> 3C -> C). Must have ``num_layers - 1`` entries; when
            ``num_layers`` is left at 1 it is taken as ``len(hidden_mults) + 1``.
        extra_bn_relu: append BN1d + ReLU (see above).
        activations: per-layer activation names (``"relu"`` / ``"silu"``) overriding the
            defaults (``"linear"`` and ``"mlp"``: all ReLU; ``"conv1d"``: SiLU then ReLU). file10
            stage 1 uses ``["relu", "relu"]``.

    Shapes: ``x (N, Cin, T)`` -> ``(N, Cout, T)``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kind: str = "linear",
        num_layers: int = 1,
        hidden_mult: int = 2,
        hidden_mults: Sequence[int] | None = None,
        extra_bn_relu: bool = False,
        activations: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        check_positive_int("in_channels", in_channels)
        check_positive_int("out_channels", out_channels)
        check_positive_int("num_layers", num_layers)
        check_positive_int("hidden_mult", hidden_mult)
        if kind not in _VEL_KINDS:
            raise ValueError(f"kind must be one of {_VEL_KINDS}, got {kind!r}")
        if hidden_mults is not None:
            hidden_mults = [check_positive_int("hidden_mults entry", m) for m in hidden_mults]
            if num_layers == 1:
                num_layers = len(hidden_mults) + 1
            elif len(hidden_mults) != num_layers - 1:
                raise ValueError(
                    f"hidden_mults has {len(hidden_mults)} entries; num_layers={num_layers} needs "
                    f"{num_layers - 1}"
                )
        else:
            hidden_mults = [hidden_mult] * (num_layers - 1)
        if kind == "linear" and num_layers != 1:
            raise ValueError(
                f"kind='linear' is one Linear layer; got num_layers={num_layers} (use kind='mlp')"
            )
        if activations is None:
            if kind == "conv1d":
                activations = ["silu"] + ["relu"] * (num_layers - 1)
            else:
                activations = ["relu"] * num_layers
        activations = list(activations)
        if len(activations) != num_layers or any(a not in _ACTIVATIONS for a in activations):
            raise ValueError(
                f"activations must be {num_layers} names from {sorted(_ACTIVATIONS)}, got {activations!r}"
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kind = kind
        self.num_layers = num_layers
        widths = [in_channels] + [m * out_channels for m in hidden_mults] + [out_channels]
        modules: list[nn.Module] = []
        for i, (w_in, w_out) in enumerate(zip(widths[:-1], widths[1:])):
            act = _ACTIVATIONS[activations[i]]()
            if kind == "conv1d":
                modules += [nn.Conv1d(w_in, w_out, kernel_size=1, bias=True), nn.BatchNorm1d(w_out), act]
            elif kind == "mlp":
                modules += [nn.Linear(w_in, w_out), act]
            else:  # linear: the Linear only; its BN1d (which needs channels first) follows below
                modules += [nn.Linear(w_in, w_out)]
        self.layers = nn.Sequential(*modules)
        if kind == "linear":
            self.bn = nn.BatchNorm1d(out_channels)
            self.act = _ACTIVATIONS[activations[0]]()
        self.extra = (
            nn.Sequential(nn.BatchNorm1d(out_channels), nn.ReLU()) if extra_bn_relu else None
        )

    def forward(self, x: Tensor) -> Tensor:
        """``x (N, Cin, T)`` -> ``(N, Cout, T)``."""
        _check_shape("VelocityEncoder input", x, 3, self.in_channels)
        if self.kind == "conv1d":
            h = self.layers(x)
        else:
            h = self.layers(x.transpose(1, 2)).transpose(1, 2)  # Linear acts on the channel axis
            if self.kind == "linear":
                h = self.act(self.bn(h))
        if self.extra is not None:
            h = self.extra(h)
        return h
