"""Batch-all triplet loss per part, as GaitSet and OpenGait train with it.

Hermans, Beyer, Leibe, "In Defense of the Triplet Loss for Person Re-Identification" (2017)
name the batch-all variant; GaitSet (Chao et al., AAAI 2019) applies it to every horizontal
part separately; OpenGait's ``TripletLoss`` (``ShiqiYu/OpenGait``
``opengait/modeling/losses/triplet.py``) is the reference for the exact rule:

* per part ``p``: the Euclidean distances ``d[p, i, j]`` between the ``N`` embeddings;
* every triple ``(a, pos, neg)`` with ``label[pos] == label[a]`` (**``pos == a`` included**)
  and ``label[neg] != label[a]``: ``l = relu(d[a, pos] - d[a, neg] + margin)``;
* per part, the **mean over the non-zero terms** (``sum / (count + 1e-9)``; exactly 0 when
  every term is 0), then the **mean over the parts**.

Vectorised: the positives and negatives of every anchor are gathered into padded index
tables, giving one ``(P, N, K_max, M_max)`` tensor of terms (``K`` positives and ``M``
negatives per anchor: OpenGait's ``[p, n, K, N - K]`` for a P x K batch; unbalanced label
counts are masked, where OpenGait requires equal counts). No loop over triples or parts.

Distance: ``sqrt(relu(|x|^2 + |y|^2 - 2 x.y))`` as OpenGait, except (1) the self-distance
``d[p, i, i]`` is exactly 0 (the expansion leaves float rounding there, up to ~1e-3 for
embeddings of norm 10, that OpenGait feeds into the ``pos == a`` terms) and (2) the square
root has a finite gradient where the squared distance is 0 (taken as 0 there).

DDP (``gather=True`` and a process group of more than one rank): the embeddings and labels
of all ranks are all-gathered so the whole global P x K batch is mined (as OpenGait's
``gather_and_scale_wrapper``). The local slice keeps its gradient, the other ranks' are
constants; the loss's **gradient** is multiplied by the world size (DDP then averages the
ranks' gradients, giving the full batch's gradient), its **value** is not (OpenGait multiplies
both, so its logged triplet loss is ``world_size`` times ours). Ranks may hold different
batch sizes (padded for the collective).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["BatchAllTripletLoss", "gather_with_grad", "part_distances"]

#: OpenGait's ``AvgNonZeroReducer`` epsilon.
NONZERO_EPS = 1.0e-9


def part_distances(x: Tensor) -> Tensor:
    """``x (P, N, C)`` -> Euclidean distances ``(P, N, N)`` (see the module docstring: OpenGait's
    expansion, exact zero diagonal, finite gradient at 0)."""
    sq = (x * x).sum(-1)  # (P, N)
    d2 = F.relu(sq.unsqueeze(2) + sq.unsqueeze(1) - 2.0 * torch.bmm(x, x.transpose(1, 2)))
    n = x.shape[1]
    eye = torch.eye(n, dtype=torch.bool, device=x.device)
    positive = (d2 > 0) & ~eye
    return torch.where(positive, d2.clamp_min(torch.finfo(d2.dtype).tiny).sqrt(), torch.zeros_like(d2))


def _world() -> tuple[int, int]:
    """``(rank, world_size)`` of the default process group; ``(0, 1)`` without one."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_with_grad(x: Tensor) -> Tensor:
    """All ranks' ``x`` concatenated along dim 0 (rank order), the local part keeping its
    gradient (the others are constants); ``x`` itself without a process group. Ranks may hold
    different sizes along dim 0 (they are padded for the collective)."""
    import torch.distributed as dist

    rank, world = _world()
    if world == 1:
        return x
    size = torch.tensor([x.shape[0]], device=x.device, dtype=torch.long)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    counts = [int(s) for s in sizes]
    longest = max(counts)
    padded = x.detach()
    if x.shape[0] < longest:
        padded = torch.cat([padded, padded.new_zeros(longest - x.shape[0], *x.shape[1:])])
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded.contiguous())
    pieces = [x if r == rank else parts[r][:counts[r]] for r in range(world)]
    return torch.cat(pieces, dim=0)


class BatchAllTripletLoss(nn.Module):
    """``loss(embeddings (N, C, P), labels (N,)) -> (loss, stats)``; see the module docstring.

    Args:
        margin: the triplet margin (0.2).
        distance: ``'euclidean'`` (the only one; OpenGait's).
        gather: all-gather across DDP ranks (no-op without a process group).

    Returns:
        ``loss``: a scalar (float32); ``stats``: detached scalars ``nonzero_fraction`` (non-zero
        terms / all terms, over every part), ``mean_dist`` (mean of all pairwise distances,
        OpenGait's ``mean_dist`` averaged over parts), ``num_nonzero`` (non-zero terms per part,
        averaged: OpenGait's ``loss_num``) and ``hard_loss`` (the largest term, averaged over parts).
    """

    def __init__(self, margin: float = 0.2, distance: str = "euclidean", gather: bool = True) -> None:
        super().__init__()
        if not margin >= 0:
            raise ValueError(f"margin must be >= 0, got {margin!r}")
        if distance != "euclidean":
            raise ValueError(f"distance must be 'euclidean' (OpenGait's), got {distance!r}")
        self.margin = float(margin)
        self.distance = distance
        self.gather = bool(gather)

    def forward(self, embeddings: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        if embeddings.ndim != 3:
            raise ValueError(f"BatchAllTripletLoss expects embeddings (N, C, P), got {tuple(embeddings.shape)}")
        if labels.ndim != 1 or labels.shape[0] != embeddings.shape[0]:
            raise ValueError(f"BatchAllTripletLoss: labels must be (N,) = ({embeddings.shape[0]},), "
                             f"got {tuple(labels.shape)}")
        world = 1
        if self.gather:
            _, world = _world()
            if world > 1:
                embeddings = gather_with_grad(embeddings)
                labels = gather_with_grad(labels)
        x = embeddings.float().permute(2, 0, 1)  # (P, N, C)
        dist = part_distances(x)  # (P, N, N)
        loss, stats = self._batch_all(dist, labels)
        stats["mean_dist"] = dist.detach().mean()
        if world > 1:  # value L, gradient world * dL (DDP averages the ranks' gradients)
            loss = loss * world - loss.detach() * (world - 1)
        return loss, stats

    def _batch_all(self, dist: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        p, n, _ = dist.shape
        same = labels.view(n, 1) == labels.view(1, n)  # (N, N), diagonal true
        n_pos = same.sum(1)  # (N,) >= 1
        n_neg = n - n_pos
        k_max, m_max = int(n_pos.max()), int(n_neg.max())
        if m_max == 0:  # a single identity: no negatives, no triple
            zero = dist.sum() * 0.0
            return zero, {"nonzero_fraction": zero.detach(), "num_nonzero": zero.detach(),
                          "hard_loss": zero.detach()}
        # stable sorts put each row's positives (resp. negatives) first, in index order
        pos_idx = torch.argsort((~same).to(torch.uint8), dim=1, stable=True)[:, :k_max]  # (N, K)
        neg_idx = torch.argsort(same.to(torch.uint8), dim=1, stable=True)[:, :m_max]  # (N, M)
        cols_k = torch.arange(k_max, device=dist.device)
        cols_m = torch.arange(m_max, device=dist.device)
        valid = (cols_k.view(1, k_max, 1) < n_pos.view(n, 1, 1)) & (cols_m.view(1, 1, m_max) < n_neg.view(n, 1, 1))
        ap = dist.gather(2, pos_idx.unsqueeze(0).expand(p, n, k_max))  # (P, N, K)
        an = dist.gather(2, neg_idx.unsqueeze(0).expand(p, n, m_max))  # (P, N, M)
        terms = F.relu(ap.unsqueeze(3) - an.unsqueeze(2) + self.margin)  # (P, N, K, M)
        terms = terms * valid.unsqueeze(0)
        flat = terms.reshape(p, -1)
        count = (flat != 0).sum(1).to(flat.dtype)  # (P,)
        per_part = flat.sum(1) / (count + NONZERO_EPS)
        per_part = torch.where(count > 0, per_part, torch.zeros_like(per_part))
        total = valid.sum().to(flat.dtype) * p
        stats = {"nonzero_fraction": (count.sum() / total).detach(), "num_nonzero": count.mean().detach(),
                 "hard_loss": flat.detach().max(1).values.mean()}
        return per_part.mean(), stats
