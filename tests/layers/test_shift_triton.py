"""The fused Triton shift kernels against the PyTorch path, in Triton's CPU interpreter.

The checks live in ``triton_shift_checks.py``; they run here in a fresh Python process (see
that file's docstring: the interpreter cannot run in a process where inductor has compiled).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

CHECKS = Path(__file__).with_name("triton_shift_checks.py")


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton not installed")
def test_triton_shift_kernels_match_the_torch_path() -> None:
    env = {**os.environ, "TRITON_INTERPRET": "1", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("GRAPHFUSE_SHIFT_KERNELS", None)
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(CHECKS)],
        capture_output=True, text=True, env=env, cwd=CHECKS.parents[2], timeout=600, check=False,
    )
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]
    assert " passed" in out.stdout and "skipped" not in out.stdout.splitlines()[-1], out.stdout[-2000:]
