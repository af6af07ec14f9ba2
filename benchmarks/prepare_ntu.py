"""Benchmark: NTU RGB+D preparation (``graphfuse.data.ntu.prepare_ntu``).

Writes ``--files`` raw ``.skeleton`` files of realistic size (100-300 frames, 1-2 bodies,
7 significant digits per value and CRLF line ends, as the Kinect recorder wrote them) to a
temporary directory (or uses ``--raw DIR``), then times ``prepare_ntu`` on them with all
cores and with one process, and the ``graphfuse prepare ntu`` command as a user runs it
(``--command``, a new process: its start-up and imports included), and prints a table with
the load average before and after each run. The files are freshly written, so they are in
the page cache.

    python benchmarks/prepare_ntu.py [--files 1000] [--workers 0 1] [--command] [--seed 0]

(``--workers 0`` means all cores.) The official single-process ``ntu_gendata.py`` +
``pre_normalization`` spends about 40 ms of CPU per file of this generator
(``docs/benchmarks.md``, "NTU preparation", for the side-by-side and how it was run).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import shutil
import subprocess
import sys
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
        ids = (rng.integers(1, 18), rng.integers(1, 4), rng.integers(1, 41), rng.integers(1, 3), rng.integers(1, 61))
        name = "S{:03d}C{:03d}P{:03d}R{:03d}A{:03d}".format(*ids)
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
    ap.add_argument("--command", action="store_true",
                    help="also time `graphfuse prepare ntu` (python -m graphfuse.cli, all cores) as a new process")
    ap.add_argument("--raw", type=Path, default=None, help="use the .skeleton files in RAW instead of generating")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="gf-bench-ntu-"))
    try:
        if args.raw is None:
            raw = tmp / "raw"
            raw.mkdir()
            t0 = time.perf_counter()
            frames, size = make_raw(raw, args.files, args.seed)
            gen = time.perf_counter() - t0
            print(f"generated {args.files} files, {frames} frames, {size / 2**20:.0f} MiB in {gen:.1f} s")
        else:
            raw = args.raw
        n_files = len(list(raw.glob("*.skeleton")))
        print(f"machine: {_cpu_name()}, {os.cpu_count()} cores; numpy {np.__version__}\n")
        print("| run | files | wall s | ms/file | files/s | load average before / after |")
        print("|---|---:|---:|---:|---:|---|")
        runs: list[tuple[str, int | None]] = [(f"prepare_ntu, workers={os.cpu_count() if w == 0 else w}",
                                               os.cpu_count() if w == 0 else w) for w in args.workers]
        if args.command:
            runs.append(("graphfuse prepare ntu (new process)", None))
        for label, workers in runs:
            out = tmp / "out"
            before = os.getloadavg()[0]
            t0 = time.perf_counter()
            if workers is None:
                cmd = [sys.executable, "-m", "graphfuse.cli", "prepare", "ntu", "--root", str(raw), "--out", str(out),
                       "--benchmark", "ntu60-xsub"]
                done = subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                if done.returncode:
                    raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
                n = n_files  # (the official missing list may leave out a few of the random names)
            else:
                meta = prepare_ntu(raw, out, "ntu60-xsub", workers=workers, missing_list=[], progress=False)
                n = meta["counts"]["train"]["samples"] + meta["counts"]["test"]["samples"]
                assert n == n_files and not meta["skipped"]
            dt = time.perf_counter() - t0
            print(f"| {label} | {n} | {dt:.1f} | {1000 * dt / n:.1f} | {n / dt:.1f} | "
                  f"{before:.2f} / {os.getloadavg()[0]:.2f} |", flush=True)
            shutil.rmtree(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
