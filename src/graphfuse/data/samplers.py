"""Seeded samplers shared by every datamodule (numpy and torch's ``Sampler`` only).

* :class:`EpochSeededSampler` makes the data order and the per-item augmentation seed a pure
  function of ``(seed, epoch, index)``, so a run resumed at epoch ``k`` sees exactly the
  batches of an uninterrupted run, whatever the number of workers or the global RNG state.
* :class:`BalancedEpochSampler` adds class-balanced oversampling (PedGraph+'s ``balance``).
* :class:`NoSingletonBatchSampler` never yields a batch of one sample (BatchNorm cannot train
  on one) while still using every sample once per epoch.
* :class:`PKSampler` draws metric-learning batches of ``P`` identities x ``K`` samples each
  (gait recognition's triplet batches), sharded across DDP ranks without duplicates.

Samplers yield ``(index, item_seed)`` pairs; a dataset's ``__getitem__((i, seed))`` seeds its
transform's ``numpy.random.Generator`` with ``seed``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from torch.utils.data import BatchSampler, DistributedSampler, Sampler

__all__ = [
    "BalancedEpochSampler",
    "EpochSeededSampler",
    "EpochState",
    "NoSingletonBatchSampler",
    "PKSampler",
    "item_seeds",
    "pk_batch",
    "stratified_holdout",
    "unpack_item",
]

_U64 = np.uint64


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser (Steele et al. 2014) on uint64 arrays; a well-mixed bijection."""
    x = np.asarray(x, dtype=_U64)
    with np.errstate(over="ignore"):
        z = x + _U64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
        return z ^ (z >> _U64(31))


def item_seeds(seed: int, epoch: int, indices: np.ndarray | Sequence[int]) -> np.ndarray:
    """Deterministic per-item seeds ``hash(seed, epoch, index)`` as uint64, vectorised.

    Platform independent (pure uint64 arithmetic), unlike Python's ``hash``.

    Shapes: ``indices (K,) -> (K,)`` uint64.
    """
    h = _splitmix64(_splitmix64(np.asarray(seed, dtype=_U64)) ^ np.asarray(epoch, dtype=_U64))
    return _splitmix64(h ^ np.asarray(indices, dtype=np.int64).astype(_U64))


def unpack_item(item: int | tuple[int, int]) -> tuple[int, np.random.Generator | None]:
    """A dataset's ``__getitem__`` argument as ``(index, rng)``: ``(i, seed)`` from a seeded
    sampler gives ``default_rng(seed)``, a plain index ``i`` gives no generator (the dataset
    then draws from fresh OS entropy if it augments, which is not reproducible)."""
    if isinstance(item, tuple):
        index, seed = item
        return int(index), np.random.default_rng(int(seed))
    return int(item), None


class EpochState:
    """The epoch and resume state every graphfuse sampler shares: :meth:`set_epoch` selects
    the epoch whose order (and per-item seeds) the next iteration yields, :meth:`skip_next`
    makes that iteration start after its first items (a run resumed mid-epoch:
    :class:`graphfuse.runs.MidEpochResume`); later iterations are whole epochs again."""

    epoch: int = 0
    _skip: int = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order and seeds :meth:`__iter__` yields."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)

    def skip_next(self, num_items: int) -> None:
        """Make the next iteration start after its first ``num_items`` items."""
        if num_items < 0:
            raise ValueError(f"num_items must be >= 0, got {num_items}")
        self._skip = int(num_items)

    def _take_skip(self) -> int:
        skip, self._skip = self._skip, 0
        return skip


class EpochSeededSampler(EpochState, Sampler):
    """Yields ``(index, item_seed)`` with order and seeds a function of ``(seed, epoch)`` only.

    The permutation of epoch ``e`` is ``default_rng([seed, e]).permutation(indices)`` and the
    seed of each item is ``item_seeds(seed, e, index)``; neither reads the global RNG or
    depends on worker processes. Hence resuming at epoch ``k`` replays exactly the data and
    augmentation of an uninterrupted run, and all variants of an ablation with the same
    ``seed`` see the same data in the same order. Lightning calls :meth:`set_epoch` at the
    start of every training epoch, also through ``DistributedSamplerWrapper`` under DDP
    (which materialises this sampler's tuples and shards them by rank).

    Args:
        n: length of the dataset the indices address.
        seed: non-negative data-order seed.
        shuffle: permute every epoch (training); False keeps ``indices`` order.
        indices: optional subset of ``range(n)`` to draw from; default all.
    """

    def __init__(
        self, n: int, seed: int = 0, shuffle: bool = True, indices: Sequence[int] | np.ndarray | None = None
    ) -> None:
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.n = int(n)
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        if indices is None:
            self.indices = np.arange(self.n, dtype=np.int64)
        else:
            idx = np.asarray(indices, dtype=np.int64).reshape(-1)
            if idx.size and (idx.min() < 0 or idx.max() >= self.n):
                raise ValueError(f"indices must lie in [0, {self.n})")
            self.indices = idx
        self.epoch = 0
        self._skip = 0

    def order(self) -> np.ndarray:
        """``(len,)`` int64 dataset indices of the current epoch, in order."""
        if not self.shuffle:
            return self.indices.copy()
        return np.random.default_rng([self.seed, self.epoch]).permutation(self.indices)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = self.order()
        seeds = item_seeds(self.seed, self.epoch, order)
        skip = self._take_skip()
        return iter(list(zip(order[skip:].tolist(), seeds[skip:].tolist())))

    def __len__(self) -> int:
        return int(self.indices.size)

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(n={self.n}, seed={self.seed}, shuffle={self.shuffle}, epoch={self.epoch})"


class BalancedEpochSampler(EpochSeededSampler):
    """Class-balanced oversampling per epoch, seeded by ``(seed, epoch)``.

    Every class ``c`` with ``n_c`` samples is brought to ``max_c n_c`` draws: each of its
    samples ``floor(r_c)`` times (``r_c = max n / n_c``) plus ``round((r_c - floor r_c) n_c)``
    distinct samples drawn without replacement; then the whole list is permuted. Every sample
    appears at least once per epoch (nothing dropped), as PedGraph+'s ``balance`` option
    repeats minority samples ``max(n) / n_c`` times. Yields ``(index, item_seed)``; repeated
    copies of a sample get different seeds (seeds hash the position in the epoch).

    Args:
        labels: ``(N,)`` integer labels of the dataset, in its order.
        seed: non-negative data-order seed.
    """

    def __init__(self, labels: np.ndarray, seed: int = 0) -> None:
        labels = np.asarray(labels, dtype=np.int64)
        super().__init__(labels.size, seed=seed, shuffle=True)
        self.labels = labels
        classes, counts = np.unique(labels, return_counts=True)
        self._classes, self._counts = classes, counts
        top = int(counts.max()) if counts.size else 0
        self._length = int(len(classes) * top) if counts.size else 0

    def order(self) -> np.ndarray:
        """``(num_classes * max_c n_c,)`` int64 dataset indices of the current epoch, in order."""
        rng = np.random.default_rng([self.seed, self.epoch, 1])
        top = int(self._counts.max()) if self._counts.size else 0
        parts = []
        for c, n_c in zip(self._classes.tolist(), self._counts.tolist()):  # loop over classes (few)
            members = np.flatnonzero(self.labels == c)
            reps, extra = divmod(top, n_c)
            parts.append(np.tile(members, reps))
            parts.append(rng.choice(members, size=extra, replace=False))
        order = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        return rng.permutation(order).astype(np.int64)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = self.order()
        positions = np.arange(order.size, dtype=np.int64)
        seeds = item_seeds(self.seed, self.epoch, positions + self.n)  # distinct per copy
        skip = self._take_skip()
        return iter(list(zip(order[skip:].tolist(), seeds[skip:].tolist())))

    def __len__(self) -> int:
        return self._length


class NoSingletonBatchSampler(BatchSampler):
    """``BatchSampler`` that never yields a batch of one sample (``drop_last=False``).

    BatchNorm cannot train on a batch of one; when ``len(sampler) % batch_size == 1`` the
    last sample joins the previous batch instead of being dropped, so every sample of the
    epoch is still used exactly once. Used in single-process training only: under DDP
    Lightning would swap its inner sampler for a plain ``DistributedSampler`` (losing the
    seeded order), so a datamodule then passes the sampler directly (a rank may then get a
    last batch of one: use ``drop_last`` or another batch size if the model has BatchNorm1d).
    """

    def __iter__(self) -> Iterator[list[Any]]:
        batch: list[Any] = []
        pending: list[Any] | None = None
        for idx in self.sampler:
            batch.append(idx)
            if len(batch) == self.batch_size:
                if pending is not None:
                    yield pending
                pending, batch = batch, []
        if self.drop_last:
            if pending is not None:
                yield pending
            return
        if len(batch) == 1 and pending is not None:
            yield pending + batch
        else:
            if pending is not None:
                yield pending
            if batch:
                yield batch

    def __len__(self) -> int:
        n = len(self.sampler)  # type: ignore[arg-type]
        if self.drop_last:
            return n // self.batch_size
        full, rest = divmod(n, self.batch_size)
        return full + (1 if rest > 1 or (rest == 1 and full == 0) else 0)


# -- P x K identity batches (metric learning) ----------------------------------------------
def pk_batch(
    members: np.ndarray, counts: np.ndarray, p: int, k: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One global ``P x K`` batch: ``p`` distinct identities, ``k`` samples of each.

    An identity with at least ``k`` samples gives ``k`` distinct ones (drawn without
    replacement); one with fewer gives ``k`` drawn with replacement (OpenGait's
    ``TripletSampler`` / ``sync_random_sample_list``). Vectorised over the ``p`` identities.

    Args:
        members: ``(num_ids, width)`` int64 sample indices of each identity, padded with -1
            (``width >= k``).
        counts: ``(num_ids,)`` number of samples of each identity (>= 1).
        p, k: identities per batch (``<= num_ids``) and samples per identity.
        rng: the generator the draws come from.

    Returns:
        ``(indices (p * k,), ids (p,))``: identity-major (the ``k`` samples of ``ids[0]`` first,
        in random order), and the drawn identities (rows of ``members``) in batch order.
    """
    num_ids, width = members.shape
    ids = rng.choice(num_ids, size=p, replace=False)
    c = counts[ids]
    keys = rng.random((p, width))
    keys[np.arange(width)[None, :] >= c[:, None]] = np.inf  # padding sorts last
    distinct = np.argsort(keys, axis=1, kind="stable")[:, :k]  # a random k-subset, random order
    repeated = np.minimum((rng.random((p, k)) * c[:, None]).astype(np.int64), c[:, None] - 1)
    pos = np.where((c >= k)[:, None], distinct, repeated)
    return members[ids[:, None], pos].reshape(-1), ids


class PKSampler(EpochState, DistributedSampler):
    """``P x K`` batches for metric learning (OpenGait's ``TripletSampler``), seeded and sharded.

    Every global batch holds ``p`` distinct identities and ``k`` samples of each (without
    replacement; with replacement for an identity with fewer than ``k`` samples:
    :func:`pk_batch`). Batch ``b`` of epoch ``e`` is drawn from ``default_rng([seed, e, b])``,
    so all ranks (which share ``seed``) draw the same global batch without communicating,
    and a run resumed mid-epoch replays the same batches. Each rank takes its slice by
    striding, ``global[rank::num_replicas]`` (OpenGait's rule), so the shards of one global
    batch are disjoint and cover it; the triplet loss gathers the embeddings back, so the whole
    ``P x K`` batch is mined.

    Iteration-based recipes train for ``trainer.max_steps`` batches: an "epoch" is just
    ``batches_per_epoch`` batches (the unit of the per-epoch metrics rows). The sampler yields
    this rank's ``(index, item_seed)`` pairs flat, batch after batch: a ``DataLoader`` with
    ``batch_size = p * k // num_replicas`` cuts them into the rank's batches.

    It subclasses ``DistributedSampler`` only so that Lightning, which swaps any other sampler
    for its own ``DistributedSampler`` under DDP, keeps it (its sharding is its own; nothing of
    the parent class is used).

    Args:
        labels: ``(N,)`` integer identity of each dataset item.
        p: identities per global batch (<= number of identities).
        k: samples per identity.
        batches_per_epoch: global batches per epoch.
        seed: non-negative seed shared by all ranks.
        num_replicas: world size (``p * k`` must be divisible by it).
        rank: this process's global rank.
    """

    def __init__(
        self, labels: np.ndarray | Sequence[int], p: int, k: int, batches_per_epoch: int, seed: int = 0,
        num_replicas: int = 1, rank: int = 0,
    ) -> None:
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        if p < 1 or k < 1 or batches_per_epoch < 1:
            raise ValueError(f"p, k and batches_per_epoch must be >= 1, got {p}, {k}, {batches_per_epoch}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not within world size {num_replicas}")
        if (p * k) % num_replicas:
            raise ValueError(f"the P x K batch ({p} x {k} = {p * k}) must be divisible by the world size {num_replicas}")
        uniq, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
        if uniq.size < p:
            raise ValueError(f"P x K sampling needs at least p={p} identities; the data has {uniq.size}")
        order = np.argsort(inverse, kind="stable")
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        width = max(int(counts.max()), int(k))
        members = np.full((uniq.size, width), -1, dtype=np.int64)
        rows = np.repeat(np.arange(uniq.size), counts)
        members[rows, np.arange(labels.size) - np.repeat(starts, counts)] = order
        self.labels = labels
        self.identities = uniq
        self.members, self.counts = members, counts.astype(np.int64)
        self.p, self.k = int(p), int(k)
        self.batches_per_epoch = int(batches_per_epoch)
        self.seed = int(seed)
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.batch_size = self.p * self.k // self.num_replicas  # per rank
        # DistributedSampler's public attributes, for code that reads them.
        self.shuffle, self.drop_last = True, False
        self.num_samples = self.batches_per_epoch * self.batch_size
        self.total_size = self.num_samples * self.num_replicas
        self.epoch = 0
        self._skip = 0

    def global_batch(self, epoch: int, batch: int) -> np.ndarray:
        """``(p * k,)`` dataset indices of global batch ``batch`` of ``epoch`` (identity-major)."""
        rng = np.random.default_rng([self.seed, int(epoch), int(batch), 7])
        return pk_batch(self.members, self.counts, self.p, self.k, rng)[0]

    def rank_batch(self, epoch: int, batch: int) -> np.ndarray:
        """``(p * k / num_replicas,)``: this rank's slice of :meth:`global_batch`."""
        return self.global_batch(epoch, batch)[self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        skip = self._take_skip()
        epoch, n = self.epoch, self.batch_size
        first = min(skip // n, self.batches_per_epoch)
        for b in range(first, self.batches_per_epoch):  # one batch at a time: the epoch may be long
            idx = self.rank_batch(epoch, b)
            # distinct per position of the epoch (a sample drawn twice gets two frame draws)
            seeds = item_seeds(self.seed, epoch, b * self.p * self.k + self.rank + self.num_replicas * np.arange(n))
            start = skip - b * n if b == first else 0
            yield from zip(idx[start:].tolist(), seeds[start:].tolist())

    def __len__(self) -> int:
        return self.num_samples

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(p={self.p}, k={self.k}, identities={self.identities.size}, "
                f"batches_per_epoch={self.batches_per_epoch}, seed={self.seed}, rank={self.rank}/"
                f"{self.num_replicas}, epoch={self.epoch})")


# -- validation hold-out -------------------------------------------------------------------
def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split sample positions into (train, val), stratified by class, reproducibly.

    Class ``c`` with ``n_c`` samples gives ``k_c = round(fraction * n_c)`` samples to val
    (round half to even), at least 1 when ``n_c >= 2`` and at most ``n_c - 1``, so every
    class keeps a training sample; a single-sample class stays in train. Which samples go is
    decided by one ``numpy.random.default_rng(seed)`` draw per sample (PCG64, identical on
    every platform), so the split depends only on ``(labels, fraction, seed)``.

    Args:
        labels: ``(N,)`` integer labels, in the prepared split's order.
        fraction: in ``(0, 1)``.
        seed: non-negative seed.

    Returns:
        ``(train_idx, val_idx)``: sorted, disjoint int64 arrays covering ``range(N)``.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {fraction}")
    n = labels.size
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    keys = np.random.default_rng(seed).random(n)
    order = np.lexsort((keys, labels))  # by class, then by random key
    sorted_labels = labels[order]
    _classes, start, size = np.unique(sorted_labels, return_index=True, return_counts=True)
    k = np.rint(fraction * size).astype(np.int64)
    k = np.where(size >= 2, np.clip(k, 1, size - 1), 0)
    rank = np.arange(n) - np.repeat(start, size)  # position within its class block
    take = rank < np.repeat(k, size)
    val = np.sort(order[take])
    train = np.sort(order[~take])
    return train, val
