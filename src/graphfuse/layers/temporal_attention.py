"""Temporal transformer over each joint's time series ("TAT") and the attention it is made of.

Follows the backbone variant of the research repository ``sellenzh/doing_project`` (DP, MIT)
at commit ``2a163b6``: ``GCN_module/gcn_0807/models/ped_graph0807.py`` (identical to
``GCN_module/Gated_Fusion/ped_graph.py``), class ``TCN_GCN_unit`` and the ``Encoder`` /
``EncoderLayer`` / ``MultiHeadAttention`` / ``FeedForwardNet`` classes it uses. See
``shared/research/pedgraph_pie.md`` section 2.2.

What DP computes after the graph convolution (and what :class:`TemporalTransformer` does):

1. embed each (joint, frame) feature vector with ``Linear(C -> 3C, bias=False)`` divided by
   ``sqrt(3C)``, and arrange one sequence per joint: ``(N*V, T, 3C)``;
2. five encoder blocks, each ``x <- x + Encoder(x)`` (an outer residual around every block),
   where ``Encoder(x) = LayerNorm(EncoderLayer(x))`` and ``EncoderLayer`` is pre-LN:
   ``x <- x + MHSA(LN(x))``, ``x <- x + FFN(LN(x))``; MHSA has 8 heads, Q/K/V/O ``Linear(3C, 3C)``
   with bias, scaled dot product, **entmax15** normalisation, no mask; the FFN is
   ``Linear(3C, 6C) -> Mish -> Linear(6C, 3C)``. DP constructs an attention dropout (0.3) but
   never applies it and passes no FFN dropout, so the computation has no dropout at all;
3. ``Linear(3C -> C)`` and a reshape back to ``(N, C, T, V)``, then ReLU.

DP has **no positional encoding**: every operation of steps 1-2 acts per frame or is a
self-attention without positions, so the module is permutation-equivariant over time
(permuting the input frames permutes the output frames). ``positional_encoding=True`` adds
the sinusoidal encoding of Vaswani et al. (2017) to the embedded sequence (an option that DP
never had).

DP's reshape in step 3 is ``view(N, C, T, V)`` applied to a tensor laid out as
``(N, V, T, C)`` without a permute, so it scrambles the channel and joint axes (for V = 19 and
C = 32 the memory of one sample is simply re-read in another order). ``layout="correct"``
permutes properly; ``layout="official"`` reproduces the scramble bit for bit.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .common import check_positive_int

__all__ = [
    "ATTENTION_KINDS",
    "attention_weights",
    "MultiHeadAttention",
    "FeedForwardNet",
    "EncoderLayer",
    "Encoder",
    "TemporalTransformer",
    "sinusoidal_positional_encoding",
]

ATTENTION_KINDS = ("entmax15", "softmax")
_LAYOUTS = ("correct", "official")


def _check_attention(attention: str) -> str:
    if attention not in ATTENTION_KINDS:
        raise ValueError(f"attention must be one of {ATTENTION_KINDS}, got {attention!r}")
    return attention


def attention_weights(scores: Tensor, kind: str = "entmax15") -> Tensor:
    """Normalise attention ``scores (..., Lq, Lk)`` over the key axis.

    ``"entmax15"`` is the 1.5-entmax of Peters, Niculae and Martins (ACL 2019) from the
    ``entmax`` package, as DP uses (sparse: some weights are exactly 0); ``"softmax"`` is the
    usual softmax. With a single key both give weight 1 (up to rounding).
    """
    if kind == "entmax15":
        from entmax import entmax15  # imported lazily: a softmax-only model does not need it

        return entmax15(scores, dim=-1)
    if kind == "softmax":
        return torch.softmax(scores, dim=-1)
    raise ValueError(f"attention must be one of {ATTENTION_KINDS}, got {kind!r}")


class MultiHeadAttention(nn.Module):
    """Multi-head scaled dot-product attention (DP ``MultiHeadAttention``).

    ``q (B, Lq, D)``, ``k, v (B, Lk, D)`` -> ``(B, Lq, D)``. Q/K/V/O are ``Linear(D, D)`` with
    bias; each head sees ``D / num_heads`` channels; scores are divided by
    ``sqrt(D / num_heads)`` and normalised by :func:`attention_weights`. Parameter names
    (``linear_q``, ``linear_k``, ``linear_v``, ``output``) are DP's.
    """

    def __init__(self, channels: int, num_heads: int = 8, attention: str = "entmax15") -> None:
        super().__init__()
        check_positive_int("channels", channels)
        check_positive_int("num_heads", num_heads)
        if channels % num_heads:
            raise ValueError(f"channels={channels} is not divisible by num_heads={num_heads}")
        self.channels = channels
        self.num_heads = num_heads
        self.head_dim = channels // num_heads
        self.attention = _check_attention(attention)
        self.linear_q = nn.Linear(channels, channels)
        self.linear_k = nn.Linear(channels, channels)
        self.linear_v = nn.Linear(channels, channels)
        self.output = nn.Linear(channels, channels)

    def _split(self, x: Tensor) -> Tensor:
        # (B, L, D) -> (B, H, L, D/H): head h owns channels [h*D/H, (h+1)*D/H), as DP's view
        b, length, _ = x.shape
        return x.view(b, length, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """``q (B, Lq, D)``, ``k, v (B, Lk, D)`` -> ``(B, Lq, D)``."""
        b, lq, _ = q.shape
        qh = self._split(self.linear_q(q))
        kh = self._split(self.linear_k(k))
        vh = self._split(self.linear_v(v))
        scores = torch.matmul(qh, kh.transpose(-2, -1)) / math.sqrt(self.head_dim)
        out = torch.matmul(attention_weights(scores, self.attention), vh)  # (B, H, Lq, D/H)
        out = out.transpose(1, 2).reshape(b, lq, self.channels)
        return self.output(out)


class FeedForwardNet(nn.Module):
    """``Linear(D, hidden) -> Mish -> Linear(hidden, D)`` on the last axis (DP ``FeedForwardNet``)."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.upscale = nn.Linear(channels, hidden)
        self.activation = nn.Mish()  # x * tanh(softplus(x)), DP's hand-written Mish
        self.downscale = nn.Linear(hidden, channels)

    def forward(self, x: Tensor) -> Tensor:
        """``x (..., D)`` -> ``(..., D)``."""
        return self.downscale(self.activation(self.upscale(x)))


class EncoderLayer(nn.Module):
    """Pre-LN transformer layer (DP ``EncoderLayer``): ``x + MHSA(LN(x))`` then ``x + FFN(LN(x))``."""

    def __init__(self, channels: int, num_heads: int, hidden: int, attention: str = "entmax15") -> None:
        super().__init__()
        self.attention = MultiHeadAttention(channels, num_heads, attention)
        self.attention_norm = nn.LayerNorm(channels)
        self.feedforward = FeedForwardNet(channels, hidden)
        self.feedforward_norm = nn.LayerNorm(channels)

    def forward(self, x: Tensor) -> Tensor:
        """``x (B, L, D)`` -> ``(B, L, D)``."""
        y = self.attention_norm(x)
        x = x + self.attention(y, y, y)
        return x + self.feedforward(self.feedforward_norm(x))


class Encoder(nn.Module):
    """One DP ``Encoder`` block: ``LayerNorm(EncoderLayer(x))`` (the outer residual is the caller's)."""

    def __init__(self, channels: int, num_heads: int, hidden: int, attention: str = "entmax15") -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.layers = EncoderLayer(channels, num_heads, hidden, attention)

    def forward(self, x: Tensor) -> Tensor:
        """``x (B, L, D)`` -> ``(B, L, D)``."""
        return self.norm(self.layers(x))


def sinusoidal_positional_encoding(
    length: int, channels: int, *, dtype: torch.dtype = torch.float32, device: torch.device | None = None
) -> Tensor:
    """Sinusoidal positional encoding of Vaswani et al., "Attention Is All You Need" (2017).

    Returns ``(length, channels)`` with ``PE[t, 2i] = sin(t / 10000^(2i/channels))`` and
    ``PE[t, 2i+1] = cos(t / 10000^(2i/channels))`` (an odd last channel gets the sine only).
    """
    position = torch.arange(length, dtype=torch.float64, device=device).unsqueeze(1)
    even = torch.arange(0, channels, 2, dtype=torch.float64, device=device)
    angle = position / torch.pow(torch.tensor(10000.0, dtype=torch.float64, device=device), even / channels)
    pe = torch.zeros(length, channels, dtype=torch.float64, device=device)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle[:, : channels // 2])
    return pe.to(dtype)


class _ScaledEmbedding(nn.Module):
    """``Linear(C -> D, bias=False) / sqrt(D)``: DP's ``Embedding_module`` (name ``embed.linear`` kept)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.linear = nn.Linear(in_channels, out_channels, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x) / math.sqrt(self.out_channels)


class TemporalTransformer(nn.Module):
    """Per-joint transformer over time (DP's "TAT" inside ``TCN_GCN_unit``).

    Args:
        channels: C, input and output channels.
        embed_mult: the embedding width is ``embed_mult * C`` (DP: 3).
        num_layers: number of encoder blocks, each with an outer residual (DP: 5).
        num_heads: attention heads (DP: 8); ``embed_mult * C`` must be divisible by it.
        attention: ``"entmax15"`` (DP) or ``"softmax"``.
        ffn_mult: FFN hidden width is ``ffn_mult * embed_mult * C`` (DP: 2, i.e. 6C).
        positional_encoding: add :func:`sinusoidal_positional_encoding` (amplitude 1, as
            Vaswani et al.) to the scaled embedding before the first block. DP: False (none),
            which makes the module permutation-equivariant over frames.
        layout: ``"correct"`` maps the ``(N*V, T, C)`` sequences back to ``(N, C, T, V)`` with
            a permute; ``"official"`` reproduces DP's ``view(N, C, T, V)`` of the
            ``(N, V, T, C)``-ordered memory without a permute (it scrambles channels and joints;
            only for faithfulness to DP's trained behaviour).
        final_relu: apply DP's ReLU after the output projection (default True; DP applies it
            in ``TCN_GCN_unit`` right after the reshape).

    Shapes: ``x (N, C, T, V)`` -> ``(N, C, T, V)``. Parameter names follow DP
    (``embed.linear``, ``tat.<i>.layers.attention.linear_q`` ..., ``linear``).
    """

    def __init__(
        self,
        channels: int,
        embed_mult: int = 3,
        num_layers: int = 5,
        num_heads: int = 8,
        attention: str = "entmax15",
        ffn_mult: int = 2,
        positional_encoding: bool = False,
        layout: str = "correct",
        final_relu: bool = True,
    ) -> None:
        super().__init__()
        check_positive_int("channels", channels)
        check_positive_int("embed_mult", embed_mult)
        check_positive_int("num_layers", num_layers)
        check_positive_int("num_heads", num_heads)
        check_positive_int("ffn_mult", ffn_mult)
        _check_attention(attention)
        if layout not in _LAYOUTS:
            raise ValueError(f"layout must be one of {_LAYOUTS}, got {layout!r}")
        self.channels = channels
        self.feature_dims = embed_mult * channels
        if self.feature_dims % num_heads:
            raise ValueError(
                f"embed width {self.feature_dims} (= embed_mult * channels) is not divisible by "
                f"num_heads={num_heads}"
            )
        self.positional_encoding = bool(positional_encoding)
        self.layout = layout
        self.final_relu = bool(final_relu)
        self.embed = _ScaledEmbedding(channels, self.feature_dims)
        self.tat = nn.ModuleList(
            Encoder(self.feature_dims, num_heads, ffn_mult * self.feature_dims, attention)
            for _ in range(num_layers)
        )
        self.linear = nn.Linear(self.feature_dims, channels)

    def forward(self, x: Tensor) -> Tensor:
        """``x (N, C, T, V)`` -> ``(N, C, T, V)``."""
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"expected (N, {self.channels}, T, V), got {tuple(x.shape)}")
        n, c, t, v = x.shape
        # one sequence per (sample, joint): (N, V, T, C) -> (N*V, T, D)
        seq = self.embed(x.permute(0, 3, 2, 1)).reshape(n * v, t, self.feature_dims)
        if self.positional_encoding:
            pe = sinusoidal_positional_encoding(t, self.feature_dims, dtype=seq.dtype, device=seq.device)
            seq = seq + pe  # (T, D) broadcast over the N*V sequences
        for block in self.tat:  # loop over layers only
            seq = block(seq) + seq
        y = self.linear(seq)  # (N*V, T, C), memory ordered (N, V, T, C)
        if self.layout == "official":
            y = y.contiguous().view(n, c, t, v)  # DP's reinterpretation without a permute
        else:
            y = y.reshape(n, v, t, c).permute(0, 3, 2, 1)
        return torch.relu(y) if self.final_relu else y
