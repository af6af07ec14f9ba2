"""Metadata of released (official) checkpoints, kept beside the model that loads them.

In the spirit of torchvision's ``WeightsEnum``: each model module that has released weights
holds a ``WEIGHTS`` tuple of :class:`Weights`, one entry per released file (e.g.
:data:`graphfuse.models.shiftgcn.WEIGHTS`, :data:`graphfuse.models.pedgraph.WEIGHTS`).
``graphfuse convert --list`` prints them; ``graphfuse convert <converter> IN OUT`` checks the
input's sha256 against the entry of the same file name and records the entry in the checkpoint.

Facts are recorded only where they are known:

* ``sha256`` is the digest of the file as published in the official repository at the commit
  named in ``source``; ``None`` means it was not recorded.
* ``reported`` is ``None`` when the authors report no number for that file (most ablation
  checkpoints); ``source`` and ``protocol`` then say so.

This module imports no torch: listing the tables is cheap.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Weights", "file_sha256", "find_weights", "release_info"]


@dataclass(frozen=True)
class Weights:
    """One released checkpoint.

    Attributes:
        name: short unique name, e.g. ``'shiftgcn_ntu60_xsub_joint'``.
        file: path of the file in the official release, e.g.
            ``'save_models/ntu_ShiftGCN_joint_xsub.pt'``; its base name (and, for releases
            whose files share a base name such as ``best.pth``, its parent folder) identifies it.
        converter: the ``graphfuse convert`` subcommand that reads it (``'shiftgcn'``).
        num_class: output classes of the released model (read from its classifier weights).
        config: graphfuse config to evaluate it with (relative to the repository root), or
            ``None`` when no shipped config matches.
        config_overrides: dotted ``--key=value`` arguments to add to ``config`` so that the
            model (and the data options it needs) equal the released model's.
        metric: the reported metric, e.g. ``'top-1 (%)'``; ``None`` with ``reported``.
        reported: the reported value of ``metric``; ``None`` when none is reported for this file.
        source: where ``reported`` (or the file) comes from: paper, README, notebook; with the
            repository commit the sha256 was taken at.
        protocol: split and evaluation protocol of ``reported`` (e.g. best-on-test epoch).
        sha256: hex digest of the released file, ``None`` when not recorded.
        notes: anything a user must know to evaluate it (data settings graphfuse lacks, ...).
    """

    name: str
    file: str
    converter: str
    num_class: int
    config: str | None
    source: str
    protocol: str
    metric: str | None = None
    reported: float | None = None
    sha256: str | None = None
    config_overrides: tuple[str, ...] = field(default_factory=tuple)
    notes: str = ""

    def __post_init__(self) -> None:
        if (self.metric is None) != (self.reported is None):
            raise ValueError(f"{self.name}: give both metric and reported, or neither")
        hexdigits = set("0123456789abcdef")
        if self.sha256 is not None and (len(self.sha256) != 64 or not set(self.sha256) <= hexdigits):
            raise ValueError(f"{self.name}: sha256 must be 64 lower-case hex digits, got {self.sha256!r}")
        if self.num_class < 1:
            raise ValueError(f"{self.name}: num_class must be >= 1, got {self.num_class}")

    @property
    def reported_text(self) -> str:
        """``'87.8 top-1 (%)'`` or ``'not reported'``."""
        return "not reported" if self.reported is None else f"{self.reported:g} {self.metric}"

    def matches(self, path: str | os.PathLike) -> bool:
        """Whether ``path`` names this release file: its path below the release's top folder
        (``ntu_ShiftGCN_joint_xsub.pt``; ``pie-23-IVSFT/best.pth``, as the release reuses the
        base name ``best.pth``) ends ``path``."""
        released = Path(self.file).parts
        ident = released[1:] if len(released) > 1 else released  # below the release's top folder
        return Path(path).parts[-len(ident):] == ident


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def find_weights(path: str | os.PathLike, table: Iterable[Weights]) -> Weights | None:
    """The entry of ``table`` whose file ``path`` names (:meth:`Weights.matches`), else ``None``.

    A renamed file matches nothing; that is fine: conversion reads the architecture from the
    weights, and the table only adds the provenance.
    """
    found: Sequence[Weights] = [w for w in table if w.matches(path)]
    return found[0] if len(found) == 1 else None


def release_info(input_path: str | Path, table: Iterable[Any]) -> dict[str, Any]:
    """What a converted checkpoint records about its input: ``source_sha256`` and, when the
    path names a released file of ``table`` (:func:`find_weights`),
    ``release`` (its name) and ``release_sha256_ok`` (``True``/``False``; ``None`` when the
    release's sha256 is unknown). A mismatch warns: the file is not the published one (the
    conversion itself still checks every key and shape)."""
    import warnings

    digest = file_sha256(input_path)
    info: dict[str, Any] = {"source_sha256": digest}
    release = find_weights(input_path, table)
    if release is not None:
        ok = None if release.sha256 is None else digest == release.sha256
        info.update(release=release.name, release_sha256_ok=ok)
        if ok is False:
            warnings.warn(f"{input_path}: sha256 {digest} differs from the released {release.file} "
                          f"({release.sha256}); converting it anyway", stacklevel=3)
    return info
