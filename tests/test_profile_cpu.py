"""``benchmarks/profile_cpu.py`` (where a Shift-GCN step's CPU time goes) runs, and its wall-clock
table adds up: the operator rows and the group shares come from the same timed calls."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "profile_cpu.py"


def test_the_wall_clock_breakdown_names_the_operators_and_adds_up():
    run = subprocess.run([sys.executable, str(SCRIPT), "--frames", "8", "--batch", "2", "--steps", "2",
                          "--warmup", "1", "--threads", "1", "--rows", "1000"],
                         capture_output=True, text=True, timeout=300, check=True)
    rows = dict(re.findall(r"^\| (\w+) \| [\d.]+ \| ([\d.]+) \|$", run.stdout, flags=re.MULTILINE))
    calls = dict(re.findall(r"^\| (\w+) \| ([\d.]+) \| [\d.]+ \|$", run.stdout, flags=re.MULTILINE))
    # ShiftGCN's 10 units: 1x1 convolutions (forward and backward), BatchNorms, the shifts' gathers
    # (index_select on one thread, layers.shift._take_columns)
    for op in ("convolution", "convolution_backward", "index_select", "native_batch_norm",
               "native_batch_norm_backward"):
        assert op in rows, run.stdout
    # per step, not per two steps or three (the untimed step under the timer is not counted): four
    # convolutions a unit (pointwise linear, temporal linear, two temporal shifts), plus l1's down
    # branch and l5's and l8's down and residual branches
    assert calls["convolution_backward"] == "45"
    total = float(re.search(r"sum of the operators ([\d.]+) s", run.stdout).group(1))
    groups = dict(re.findall(r"^\| ([^|]+?) \| ([\d.]+) \| \d+% \|$", run.stdout, flags=re.MULTILINE))
    assert "conv / matmul" in groups and "gather (index_select / index)" in groups
    assert abs(sum(float(ms) for ms in rows.values()) / 1e3 - total) <= 0.01 + 0.0005 * len(rows)
