"""Gait losses: the batch-all triplet loss per part against a float64 loop over every triple
(OpenGait's rule: anchor == positive included, mean over the non-zero terms per part, then over
parts), its all-zero and degenerate cases, its DDP gathering on two gloo processes, and the
scaled cross-entropy against a hand computation."""

from __future__ import annotations

import math

import pytest
import torch

from graphfuse.losses.cross_entropy import ScaledCrossEntropy
from graphfuse.losses.triplet import BatchAllTripletLoss, part_distances

pytestmark = pytest.mark.usefixtures("one_thread")


def _loop_reference(emb: torch.Tensor, labels: list[int], margin: float) -> tuple[float, float]:
    """Every (a, p, n) triple, part by part, in float64 with explicit norms."""
    e = emb.detach().double()
    n, _, parts = e.shape
    part_losses, nonzero, total = [], 0, 0
    for k in range(parts):
        terms = []
        for a in range(n):
            for p in range(n):
                if labels[p] != labels[a]:
                    continue
                for q in range(n):
                    if labels[q] == labels[a]:
                        continue
                    d_ap = torch.linalg.vector_norm(e[a, :, k] - e[p, :, k]).item()
                    d_an = torch.linalg.vector_norm(e[a, :, k] - e[q, :, k]).item()
                    terms.append(max(d_ap - d_an + margin, 0.0))
        nz = [t for t in terms if t != 0]
        nonzero += len(nz)
        total += len(terms)
        part_losses.append(sum(nz) / len(nz) if nz else 0.0)
    return sum(part_losses) / parts, nonzero / total


@pytest.mark.parametrize("labels", [[0, 0, 1, 1, 2, 2], [0, 1, 0, 2, 2, 2, 1], [3, 3, 3, 5]])
def test_triplet_equals_a_loop_over_every_triple(labels):
    g = torch.Generator().manual_seed(len(labels))
    emb = torch.randn(len(labels), 5, 3, generator=g) * 0.3
    loss, stats = BatchAllTripletLoss(margin=0.2)(emb, torch.tensor(labels))
    want, frac = _loop_reference(emb, labels, 0.2)
    assert 0 < frac < 1  # both active and inactive terms
    assert loss.item() == pytest.approx(want, rel=1e-5, abs=1e-6)
    assert stats["nonzero_fraction"].item() == pytest.approx(frac)
    d = part_distances(emb.permute(2, 0, 1).double())
    assert stats["mean_dist"].item() == pytest.approx(d.mean().item(), rel=1e-5)


def test_triplet_all_zero_and_degenerate_batches():
    loss_fn = BatchAllTripletLoss(margin=0.2)
    # two far-apart identities: every term is zero -> loss exactly 0 (OpenGait's rule), no NaN
    emb = torch.cat([torch.zeros(2, 4, 2), torch.full((2, 4, 2), 10.0)]).requires_grad_()
    loss, stats = loss_fn(emb, torch.tensor([0, 0, 1, 1]))
    assert loss.item() == 0.0 and stats["nonzero_fraction"].item() == 0.0
    loss.backward()
    assert torch.count_nonzero(emb.grad) == 0
    # one identity only: no negatives, loss 0 with a graph
    one = torch.randn(3, 4, 2, requires_grad=True)
    loss, _ = loss_fn(one, torch.tensor([7, 7, 7]))
    loss.backward()
    assert loss.item() == 0.0 and torch.count_nonzero(one.grad) == 0
    # identical embeddings (e.g. blank silhouettes): margin is the loss, the gradient is finite
    same = torch.ones(4, 3, 2, requires_grad=True)
    loss, stats = loss_fn(same, torch.tensor([0, 0, 1, 1]))
    assert loss.item() == pytest.approx(0.2) and stats["nonzero_fraction"].item() == 1.0
    loss.backward()
    assert torch.isfinite(same.grad).all()


def test_triplet_gradient_matches_float64_autograd_reference():
    g = torch.Generator().manual_seed(3)
    emb = (torch.randn(6, 4, 2, generator=g) * 0.2).requires_grad_()
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    loss, _ = BatchAllTripletLoss(margin=0.3)(emb, labels)
    loss.backward()
    # reference: explicit differences (torch.cdist-free) in float64
    e = emb.detach().double().requires_grad_()
    x = e.permute(2, 0, 1)
    diff = x.unsqueeze(2) - x.unsqueeze(1)
    d = torch.where(torch.eye(6, dtype=torch.bool), torch.zeros(()), (diff.pow(2).sum(-1) + 1e-30).sqrt())
    same = labels.view(-1, 1) == labels.view(1, -1)
    mask = same.view(1, 6, 6, 1) & ~same.view(1, 6, 1, 6)
    t = torch.relu(d.unsqueeze(3) - d.unsqueeze(2) + 0.3) * mask
    cnt = (t != 0).flatten(1).sum(1)
    ref = (t.flatten(1).sum(1) / cnt).mean()
    ref.backward()
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)
    assert torch.allclose(emb.grad.double(), e.grad, rtol=1e-3, atol=1e-5)


def test_triplet_argument_checks():
    with pytest.raises(ValueError, match="euclidean"):
        BatchAllTripletLoss(distance="cosine")
    with pytest.raises(ValueError, match=r"\(N, C, P\)"):
        BatchAllTripletLoss()(torch.zeros(4, 3), torch.zeros(4))
    with pytest.raises(ValueError, match=r"labels must be \(N,\)"):
        BatchAllTripletLoss()(torch.zeros(4, 3, 2), torch.zeros(3))


def test_scaled_cross_entropy_by_hand():
    logits = torch.tensor([[0.1, -0.2, 0.05], [0.0, 0.3, -0.1]])
    labels = torch.tensor([2, 1])
    s, eps, k = 16.0, 0.1, 3
    want = 0.0
    for row, y in zip(logits.tolist(), labels.tolist()):
        z = [s * v for v in row]
        lse = math.log(sum(math.exp(v) for v in z))
        logp = [v - lse for v in z]
        want += -(1 - eps) * logp[y] - eps / k * sum(logp)
    want /= 2
    ce = ScaledCrossEntropy()
    assert ce(logits, labels).item() == pytest.approx(want, rel=1e-6)
    # OpenGait's (N, K, P) layout: the labels repeat over the parts, mean over samples and parts
    three = torch.stack([logits, logits * 0.5], dim=-1)
    both = (ce(logits, labels) + ce(logits * 0.5, labels)) / 2
    assert ce(three, labels).item() == pytest.approx(both.item(), rel=1e-6)
    assert ScaledCrossEntropy.accuracy(logits, labels).item() == 0.5  # row 1 argmax 1 = its label
    assert ScaledCrossEntropy.accuracy(logits, torch.tensor([0, 1])).item() == 1.0
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\)"):
        ce(logits, torch.tensor([-1, 0]))


def _ddp_worker(rank: int, world: int, init_file: str, emb: torch.Tensor, labels: torch.Tensor, queue) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        n = emb.shape[0] // world
        local = emb[rank * n:(rank + 1) * n].clone().requires_grad_()
        loss, stats = BatchAllTripletLoss()(local, labels[rank * n:(rank + 1) * n])
        loss.backward()
        # DDP averages the ranks' parameter gradients, each holding only its local part's
        # contribution: local.grad / world is what this rank's part adds to the average
        queue.put((rank, loss.item(), stats["nonzero_fraction"].item(), (local.grad / world).tolist()))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two forked gloo processes
def test_triplet_under_ddp_mines_the_whole_batch(tmp_path):
    import torch.multiprocessing as mp

    g = torch.Generator().manual_seed(0)
    emb = torch.randn(8, 4, 3, generator=g) * 0.3
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])  # each rank alone holds no positive pair but the anchor
    full = emb.clone().requires_grad_()
    want, stats = BatchAllTripletLoss()(full, labels)
    want.backward()
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_ddp_worker, args=(r, 2, str(tmp_path / "init"), emb, labels, queue))
             for r in range(2)]
    for p in procs:
        p.start()
    results = sorted(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    for rank, value, frac, grad in results:
        assert value == pytest.approx(want.item(), rel=1e-5)  # the loss's value is not scaled
        assert frac == pytest.approx(stats["nonzero_fraction"].item())
        assert torch.allclose(torch.tensor(grad), full.grad[rank * 4:(rank + 1) * 4], rtol=1e-4, atol=1e-6)
