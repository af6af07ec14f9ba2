"""Benchmark: NTU RGB+D preparation (``graphfuse.data.ntu.prepare_ntu``).

Writes ``--files`` raw ``.skeleton`` files of realistic size (100-300 frames, 1-2 bodies,
7 significant digits per value and CRLF line ends, as the Kinect recorder wrote them) to a
temporary directory, then times ``prepare_ntu`` on them with all cores and with one
process, and prints a table. The files are freshly written, so they are in the page cache.

    python benchmarks/prepare_ntu.py [--files 1000] [--workers 0 1] [--seed 0]

(``--workers 0`` means all cores.) For reference, the official single-process
``ntu_gendata.py`` + ``pre_normalization`` takes about 64 ms per file.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from graphfuse.data.ntu import FLOAT_KINECT, make_sequence, prepare_ntu, write_skeleton
from graphfuse.graphs import ntu25

# A standing pose, metres from the spine base (x right, y up), for plausible joint spreads.
_POSE = np.array([
    [0, 0, 0], [0, .30, 0], [0, .55, 0], [0, .68, 0], [-.18, .48, 0], [-.22, .23, 0], [-.24, 0, 0],
    [-.25, -.07, 0], [.18, .48, 0], [.22, .23, 0], [.24, 0, 0], [.25, -.07, 0], [-.08, -.02, 0],
    [-.09, -.42, 0], [-.1, -.8, 0], [-.1, -.85, .08], [.08, -.02, 0], [.09, -.42, 0], [.1, -.8, 0],
    [.1, -.85, .08], [0, .48, 0], [-.26, -.13, 0], [-.22, -.06, .03], [.26, -.13, 0], [.22, -.06, .03],
])
assert _POSE.shape == (ntu25.NUM_JOINTS, 3)


def _write_one(job: tuple[str, int]) -> tuple[int, int]:
    path, seed = job
    rng = np.random.default_rng(seed)
    T = int(rng.integers(100, 301))
    nb = int(rng.integers(1, 3))
    t = np.arange(T)[:, None, None]
    bodies = []
    for _ in range(nb):  # 1-2 bodies: a loop of at most two in a benchmark data generator
        amp = rng.uniform(0, 0.15, (1, 25, 3))
        freq = rng.uniform(0.02, 0.2, (1, 25, 3))
        pos = [rng.uniform(-1, 1), rng.uniform(-0.3, 0.3), rng.uniform(2.3, 4.0)]
        bodies.append(_POSE + pos + amp * np.sin(freq * t + rng.uniform(0, 6.3, (1, 25, 3))))
    xyz = np.stack(bodies, 1).reshape(T * nb, 25, 3)
    B = T * nb
    depth = np.stack([256 + 365 * xyz[..., 0] / xyz[..., 2], 212 - 365 * xyz[..., 1] / xyz[..., 2]], -1)
    color = np.stack([960 + 1060 * xyz[..., 0] / xyz[..., 2], 540 - 1060 * xyz[..., 1] / xyz[..., 2]], -1)
    quat = rng.normal(size=(B, 25, 4))
    quat /= np.linalg.norm(quat, axis=-1, keepdims=True)
    seq = make_sequence(
        T, np.repeat(np.arange(T), nb), xyz,
        body_id=np.uint64(72057594037927936) + rng.integers(0, 10**6, B).astype(np.uint64),
        depth_xy=depth, color_xy=color, orientation=quat, lean=rng.normal(0, 0.1, (B, 2)),
        joint_tracking_state=rng.choice([1, 2], (B, 25), p=[.1, .9]).astype(np.int32),
    )
    write_skeleton(path, seq, float_format=FLOAT_KINECT)  # 7 significant digits, as the dataset
    return T, os.path.getsize(path)


def make_raw(directory: Path, n: int, seed: int) -> tuple[int, int]:
    rng = np.random.default_rng(seed)
    jobs, names = [], set()
    while len(jobs) < n:
        name = "S%03dC%03dP%03dR%03dA%03d" % (rng.integers(1, 18), rng.integers(1, 4), rng.integers(1, 41),
                                               rng.integers(1, 3), rng.integers(1, 61))
        if name not in names:
            names.add(name)
            jobs.append((str(directory / f"{name}.skeleton"), seed * 1_000_003 + len(jobs)))
    with mp.get_context().Pool(os.cpu_count()) as pool:
        stats = pool.map(_write_one, jobs, chunksize=8)
    return sum(s[0] for s in stats), sum(s[1] for s in stats)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1], help="0 = all cores")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="gf-bench-ntu-"))
    try:
        raw = tmp / "raw"
        raw.mkdir()
        t0 = time.perf_counter()
        frames, size = make_raw(raw, args.files, args.seed)
        gen = time.perf_counter() - t0
        print(f"machine: {_cpu_name()}, {os.cpu_count()} cores; numpy {np.__version__}")
        print(f"generated {args.files} files, {frames} frames, {size / 2**20:.0f} MiB in {gen:.1f} s\n")
        print(f"| {'workers':>7} | {'files':>5} | {'wall s':>7} | {'ms/file':>7} | {'files/s':>7} |")
        print(f"|{'-' * 9}|{'-' * 7}|{'-' * 9}|{'-' * 9}|{'-' * 9}|")
        for w in args.workers:
            workers = os.cpu_count() if w == 0 else w
            out = tmp / f"out{workers}"
            t0 = time.perf_counter()
            meta = prepare_ntu(raw, out, "ntu60-xsub", workers=workers, missing_list=[], progress=False)
            dt = time.perf_counter() - t0
            n = meta["counts"]["train"]["samples"] + meta["counts"]["test"]["samples"]
            assert n == args.files and not meta["skipped"]
            print(f"| {workers:>7} | {n:>5} | {dt:>7.1f} | {1000 * dt / n:>7.1f} | {n / dt:>7.1f} |")
            shutil.rmtree(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
