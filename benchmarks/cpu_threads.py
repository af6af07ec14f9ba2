"""Benchmark: the CPU default of the ``graphfuse`` command (OpenMP wait policy, thread count),
quiet and beside another CPU-heavy program.

Each measurement is a fresh process (OpenMP reads ``OMP_WAIT_POLICY`` and ``GOMP_SPINCOUNT`` once, at start) that runs
Shift-GCN training steps as the quickstart does (batch 16, 48-frame clips, 10 classes, SGD) and
prints samples/s. "loaded" starts a second process beside it that keeps every core busy with
torch matrix products (another training job, as on a shared workstation), and stops it after.

    python benchmarks/cpu_threads.py [--steps 8] [--repeats 2]

Results: docs/benchmarks.md, "CPU threads".
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

STEP_CODE = r"""
import time, torch
from graphfuse.models import ShiftGCN
torch.manual_seed(0)
net = ShiftGCN(num_class=10)
opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
x = torch.randn(16, 3, 48, 25, 2); y = torch.randint(0, 10, (16,))
def step():
    opt.zero_grad(); torch.nn.functional.cross_entropy(net(x), y).backward(); opt.step()
for _ in range(2): step()
t = time.perf_counter()
for _ in range({steps}): step()
print({steps} * 16 / (time.perf_counter() - t))
"""

LOAD_CODE = r"""
import torch
a = torch.randn(1024, 1024)
while True:
    a = torch.tanh(a @ a) * 0.5
"""

#: (label, environment) of each measured setting.
SETTINGS = (
    ("OpenMP default (spinning wait), all cores", {"OMP_WAIT_POLICY": None}),
    ("OMP_WAIT_POLICY=PASSIVE (sleep at once), all cores", {"OMP_WAIT_POLICY": "PASSIVE"}),
    ("OMP_WAIT_POLICY=PASSIVE, GOMP_SPINCOUNT=1000 (spin briefly, then sleep; graphfuse's default)",
     {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "1000"}),
    ("OMP_WAIT_POLICY=PASSIVE, GOMP_SPINCOUNT=10000", {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "10000"}),
    ("one thread (OMP_NUM_THREADS=1)", {"OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"}),
)


def _env(extra: dict[str, str | None]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "GOMP_SPINCOUNT")}
    env.update({k: v for k, v in extra.items() if v is not None})
    return env


def measure(extra: dict[str, str | None], steps: int) -> float:
    out = subprocess.run([sys.executable, "-c", STEP_CODE.format(steps=steps)], env=_env(extra),
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    print(f"cores: {os.cpu_count()}; Shift-GCN training, batch 16, T=48; samples/s (best of {args.repeats})")
    print("| setting | quiet | loaded (a torch matmul loop beside it) |\n|---|---:|---:|")
    for label, extra in SETTINGS:
        quiet = max(measure(extra, args.steps) for _ in range(args.repeats))
        # The competing program keeps its own default (spinning) OpenMP settings.
        load = subprocess.Popen([sys.executable, "-c", LOAD_CODE], env=_env({}))
        try:
            time.sleep(3)  # let it start its threads
            loaded = max(measure(extra, args.steps) for _ in range(args.repeats))
        finally:
            load.kill()
            load.wait()
        print(f"| {label} | {quiet:.1f} | {loaded:.1f} |", flush=True)


if __name__ == "__main__":
    main()
