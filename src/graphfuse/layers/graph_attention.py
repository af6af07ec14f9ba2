"""Batched graph attention (Velickovic et al., GAT, ICLR 2018), as HGAT's ``BGATLayer``.

The research notes' HGAT_FC (public code by Xingxiangrui, 2019; brief
``shared/research/mlgcn_twostream.md`` A.0) attends over the nodes of a small, fully connected
graph per sample: ``x (B, N, F_in)``::

    h = x @ W                                   (B, N, F_out)
    e[b, i, j] = LeakyReLU_alpha(a^T [h_i || h_j]) = LeakyReLU(h_i . a_1 + h_j . a_2)
    att = softmax_j(e)  (masked to the edges of ``adj`` when one is given)
    out = ELU(att @ h + beta * h)               (beta: learned scalar, 1 at start)

Parameter names and shapes are BGATLayer's: ``W (F_in, F_out)``, ``a (2 F_out, 1)``,
``beta (1,)``; xavier-uniform initialisation with gain 1.414 (as pyGAT and BGATLayer).

Differences from the public code, all behaviour-preserving or fixes:

* the scores are computed as ``h a_1 + (h a_2)^T`` (current pyGAT) instead of building the
  ``(B, N, N, 2 F_out)`` pair tensor: the same numbers without the quadratic memory;
* ``adj`` (optional) masks non-edges with ``-inf`` before the softmax, as pyGAT does with
  ``-9e15``; BGATLayer has no mask (``adj=None`` here), and its "masked" sibling multiplied
  the logits by the 0/1 mask, which leaves masked pairs at weight ``exp(0)`` (not excluded);
* ``residual=False`` drops the ``beta * h`` term (``group_clsgat_with_supple_loss.py``);
* the ``segelf.beta`` typo of the HGAT_FC file (a NameError) does not exist here.

Node padding: ``node_mask`` excludes padded nodes as keys, so graphs of different sizes can
share one batched call; with ``groups=G`` the layer holds ``G`` independent GATs and runs them
on ``(B, G, N, F)`` at once (HGAT's per-group class GATs, padded to the largest group).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .common import check_positive_int

__all__ = ["GraphAttention"]


class GraphAttention(nn.Module):
    """One batched single-head graph-attention layer (BGATLayer), optionally ``groups`` of
    independent layers applied at once.

    Args:
        in_features: ``F_in``.
        out_features: ``F_out``.
        alpha: negative slope of the LeakyReLU on the scores (0.2).
        dropout: dropout on the attention weights in training (BGAT: 0).
        residual: add ``beta * h`` before the ELU (BGAT: True).
        activation: apply the ELU (BGAT: True).
        groups: None (one layer: ``W (F_in, F_out)``, ``a (2 F_out, 1)``, ``beta (1,)``) or
            ``G``: ``G`` independent layers on ``G`` graphs of one sample at once (``W (G, F_in,
            F_out)``, ``a (G, 2 F_out, 1)``, ``beta (G,)``; HGAT's per-group class GATs
            without a Python loop over the groups).

    Shapes: ``x (B, N, F_in)`` -> ``(B, N, F_out)`` (grouped: ``(B, G, N, F_in)`` ->
    ``(B, G, N, F_out)``); ``adj`` 0/1 edges broadcastable to ``(B, N, N)`` (grouped
    ``(B, G, N, N)``), None = all pairs; ``node_mask`` bool broadcastable to ``(B, N)``
    (grouped ``(B, G, N)``), False = padding, excluded as a key.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        alpha: float = 0.2,
        dropout: float = 0.0,
        residual: bool = True,
        activation: bool = True,
        groups: int | None = None,
    ) -> None:
        super().__init__()
        self.in_features = check_positive_int("in_features", in_features)
        self.out_features = check_positive_int("out_features", out_features)
        self.groups = None if groups is None else check_positive_int("groups", groups)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        self.alpha = float(alpha)
        self.dropout = float(dropout)
        self.activation = bool(activation)
        lead = () if self.groups is None else (self.groups,)
        self.W = nn.Parameter(torch.empty(*lead, in_features, out_features))
        self.a = nn.Parameter(torch.empty(*lead, 2 * out_features, 1))
        if residual:
            self.beta: nn.Parameter | None = nn.Parameter(torch.ones(self.groups or 1))
        else:
            self.register_parameter("beta", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """xavier-uniform with gain 1.414 for ``W`` and ``a`` (per group); ``beta = 1``."""
        with torch.no_grad():
            for w in ([self.W] if self.groups is None else list(self.W)):
                nn.init.xavier_uniform_(w, gain=1.414)
            for a in ([self.a] if self.groups is None else list(self.a)):
                nn.init.xavier_uniform_(a, gain=1.414)
        if self.beta is not None:
            nn.init.ones_(self.beta)

    def _weights(self) -> tuple[Tensor, Tensor]:
        """``W (G, F_in, F_out)`` and ``a (G, 2 F_out)`` with ``G = 1`` for a single layer."""
        if self.groups is None:
            return self.W.unsqueeze(0), self.a.reshape(1, -1)
        return self.W, self.a.squeeze(-1)

    def _scores(self, h: Tensor, a: Tensor, adj: Tensor | None, node_mask: Tensor | None) -> Tensor:
        """Attention weights ``(B, G, N, N)`` of projected nodes ``h (B, G, N, F_out)``."""
        f = self.out_features
        s_query = torch.einsum("bgno,go->bgn", h, a[:, :f])
        s_key = torch.einsum("bgno,go->bgn", h, a[:, f:])
        e = F.leaky_relu(s_query.unsqueeze(-1) + s_key.unsqueeze(-2), self.alpha)  # (B, G, N, N)
        n = h.shape[2]
        allowed = None
        if adj is not None:
            allowed = adj.to(torch.bool)
            if self.groups is None:  # (N, N) or (B, N, N) -> (B|1, 1, N, N)
                allowed = allowed.reshape(-1, 1, n, n)
        if node_mask is not None:
            keys = node_mask.to(torch.bool)
            keys = keys.reshape(-1, 1, 1, n) if self.groups is None else keys.unsqueeze(-2)  # key axis last
            allowed = keys if allowed is None else allowed & keys
        if allowed is None:
            att = torch.softmax(e, dim=-1)
        else:
            e = e.masked_fill(~allowed, float("-inf"))
            # A query without any allowed key (a padded node) gets zeros, not NaN.
            none = ~allowed.any(dim=-1, keepdim=True)
            att = torch.softmax(e.masked_fill(none, 0.0), dim=-1).masked_fill(none, 0.0)
        return F.dropout(att, self.dropout, training=self.training)

    def attention(self, x: Tensor, adj: Tensor | None = None, node_mask: Tensor | None = None) -> Tensor:
        """The attention weights for input nodes ``x`` (rows sum to 1 over the allowed keys):
        ``(B, N, N)``, grouped ``(B, G, N, N)``."""
        w, a = self._weights()
        xg = x.unsqueeze(1) if self.groups is None else x
        att = self._scores(torch.einsum("bgnf,gfo->bgno", xg, w), a, adj, node_mask)
        return att.squeeze(1) if self.groups is None else att

    def forward(self, x: Tensor, adj: Tensor | None = None, node_mask: Tensor | None = None) -> Tensor:
        """``x (B, N, F_in)`` -> ``(B, N, F_out)``; grouped ``(B, G, N, F_in)`` -> ``(B, G, N, F_out)``."""
        if self.groups is None:
            if x.ndim != 3 or x.shape[-1] != self.in_features:
                raise ValueError(f"GraphAttention expects (B, N, {self.in_features}), got {tuple(x.shape)}")
            xg = x.unsqueeze(1)
        else:
            if x.ndim != 4 or x.shape[1] != self.groups or x.shape[-1] != self.in_features:
                raise ValueError(f"GraphAttention expects (B, {self.groups}, N, {self.in_features}), "
                                 f"got {tuple(x.shape)}")
            xg = x
        w, a = self._weights()
        h = torch.einsum("bgnf,gfo->bgno", xg, w)
        out = self._scores(h, a, adj, node_mask) @ h
        if self.beta is not None:
            out = out + self.beta.reshape(1, -1, 1, 1) * h
        out = F.elu(out) if self.activation else out
        return out.squeeze(1) if self.groups is None else out

    def extra_repr(self) -> str:
        return (f"{self.in_features} -> {self.out_features}, alpha={self.alpha}, dropout={self.dropout}, "
                f"residual={self.beta is not None}" + (f", groups={self.groups}" if self.groups else ""))
