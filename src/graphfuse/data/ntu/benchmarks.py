"""NTU RGB+D evaluation benchmarks and the official missing-skeleton lists.

Training ids follow the official Shift-GCN ``data_gen/ntu_gendata.py`` and
``data_gen/ntu120_gendata.py`` (the standard protocols of Shahroudy et al., CVPR 2016 and
Liu et al., TPAMI 2019); every sample not in the training set is in the test set (the
official "val" split).

The missing-skeleton lists are the files ``NTU_RGBD_samples_with_missing_skeletons.txt``
(302 ids) and ``NTU_RGBD120_samples_with_missing_skeletons.txt`` (535 ids, a superset)
of shahroudy/NTURGB-D (``Matlab/``), shipped unchanged as package resources.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Literal

from .reader import NTU_NAME_RE, parse_ntu_name

__all__ = [
    "Benchmark",
    "BENCHMARKS",
    "get_benchmark",
    "load_missing_list",
    "missing_skeletons",
    "MISSING_LIST_COUNTS",
]

Criterion = Literal["subject", "camera", "setup"]

_NTU60_XSUB = (1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38)
_NTU120_XSUB_EXTRA = (45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84,
                      85, 86, 89, 91, 92, 93, 94, 95, 97, 98, 100, 103)

#: Number of sample ids in each shipped list (checked when a list is loaded).
MISSING_LIST_COUNTS = {
    "ntu60_missing_skeletons.txt": 302,
    "ntu120_missing_skeletons.txt": 535,
}


@dataclass(frozen=True)
class Benchmark:
    """One train/test protocol.

    A sample ``SsssCcccPpppRrrrAaaa`` belongs to the benchmark when ``setup <= max_setup``
    and ``action <= max_action``; it is a training sample when its ``criterion`` id
    (performer, camera or setup) is in ``training_ids``. Its label is ``action - 1``.
    """

    name: str
    num_class: int
    criterion: Criterion
    training_ids: frozenset[int]
    missing_list: str | None  #: package resource of ids to exclude, or None
    max_action: int
    max_setup: int
    #: (train, test) sample counts on the complete official release, for checking.
    reference_counts: tuple[int, int] | None = None

    def split_of(self, name: str) -> Literal["train", "test"]:
        """``"train"`` or ``"test"`` for a sample name (see :func:`parse_ntu_name`)."""
        setup, camera, performer, _, _ = parse_ntu_name(name)
        key = {"subject": performer, "camera": camera, "setup": setup}[self.criterion]
        return "train" if key in self.training_ids else "test"

    def in_scope(self, name: str) -> bool:
        """Whether the sample belongs to this benchmark's dataset (setup and action range)."""
        setup, _, _, _, action = parse_ntu_name(name)
        return setup <= self.max_setup and action <= self.max_action


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark("ntu60-xsub", 60, "subject", frozenset(_NTU60_XSUB), "ntu60_missing_skeletons.txt",
                  60, 17, (40091, 16487)),
        Benchmark("ntu60-xview", 60, "camera", frozenset((2, 3)), "ntu60_missing_skeletons.txt",
                  60, 17, (37646, 18932)),
        Benchmark("ntu120-xsub", 120, "subject", frozenset(_NTU60_XSUB + _NTU120_XSUB_EXTRA),
                  "ntu120_missing_skeletons.txt", 120, 32, (63026, 50919)),
        Benchmark("ntu120-xset", 120, "setup", frozenset(range(2, 33, 2)), "ntu120_missing_skeletons.txt",
                  120, 32, (54468, 59477)),
        # The synthetic NTU-format dataset of graphfuse.data.synthetic: performers 1..10,
        # actions A001..A010, any setup; no missing list.
        Benchmark("synthetic-xsub", 10, "subject", frozenset((1, 2, 4, 5, 7, 9)), None, 10, 999),
    )
}


def get_benchmark(benchmark: str | Benchmark) -> Benchmark:
    """The :class:`Benchmark` called ``benchmark`` (or ``benchmark`` itself)."""
    if isinstance(benchmark, Benchmark):
        return benchmark
    try:
        return BENCHMARKS[benchmark]
    except KeyError:
        raise ValueError(f"unknown NTU benchmark {benchmark!r}; choose from {sorted(BENCHMARKS)}") from None


def _parse_ids(lines: Iterable[str]) -> frozenset[str]:
    # Keep lines that are sample ids; skip headers, blank lines and anything else.
    ids = set()
    for line in lines:
        text = line.strip().removesuffix(".skeleton")
        if NTU_NAME_RE.fullmatch(text):
            ids.add(text)
    return frozenset(ids)


def load_missing_list(
    source: str | os.PathLike | Iterable[str], expected: int | None = None
) -> frozenset[str]:
    """Sample ids (``SsssCcccPpppRrrrAaaa``) of a missing-skeleton list.

    ``source`` is a text file (one id per line; header lines and anything else that is not
    an id are skipped, as in the lists of shahroudy/NTURGB-D) or an iterable of ids (an
    empty one excludes nothing). A file without any id is an error; so is a count other
    than ``expected`` when given.
    """
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        with open(path, encoding="utf-8", errors="replace") as fh:
            ids = _parse_ids(fh)
        if not ids:
            raise ValueError(f"{path}: no NTU sample ids (SsssCcccPpppRrrrAaaa) found in this "
                             "missing-skeleton list")
        where = path
    else:
        items = {str(s).strip().removesuffix(".skeleton") for s in source}
        bad = sorted(s for s in items if not NTU_NAME_RE.fullmatch(s))
        if bad:
            raise ValueError(f"missing-skeleton list contains entries that are not NTU sample ids: {bad[:3]}")
        ids = frozenset(items)
        where = "missing-skeleton list"
    if expected is not None and len(ids) != expected:
        raise ValueError(f"{where}: expected {expected} sample ids, found {len(ids)}")
    return ids


def missing_skeletons(benchmark: str | Benchmark) -> frozenset[str]:
    """The shipped missing-skeleton ids of ``benchmark`` (empty when it has no list)."""
    bench = get_benchmark(benchmark)
    if bench.missing_list is None:
        return frozenset()
    res = resources.files("graphfuse.data").joinpath("resources", bench.missing_list)
    ids = _parse_ids(res.read_text(encoding="utf-8").splitlines())
    expected = MISSING_LIST_COUNTS[bench.missing_list]
    if len(ids) != expected:
        raise RuntimeError(f"packaged {bench.missing_list}: expected {expected} ids, found {len(ids)} "
                           "(the installation is damaged)")
    return ids
