"""``benchmarks/gpu.sh`` (every GPU check in one call) runs from the source tree without
jsonargparse and entmax, as on the GPU machine that lacks them: its smoke mode on the CPU, with
both packages made unimportable."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None, reason="needs bash and timeout")
def test_gpu_script_smoke_runs_every_step_without_jsonargparse_and_entmax(tmp_path: Path) -> None:
    block = tmp_path / "block"
    block.mkdir()
    for name in ("jsonargparse", "entmax"):
        (block / f"{name}.py").write_text(f"raise ImportError('{name} is not on the GPU machine')\n")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(block), "GPU_SH_SMOKE": "1", "PYTHON": sys.executable,
           "CUDA_VISIBLE_DEVICES": ""}
    env.pop("GRAPHFUSE_SHIFT_KERNELS", None)
    run = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu.sh"), str(out)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=400, check=False)
    summary = (out / "summary.md").read_text()
    assert run.returncode == 0, summary + run.stdout[-3000:] + (out / "full.log").read_text()[-5000:]
    for step in ("env", "kernels", "train", "infer", "bf16", "gait", "loading"):
        assert f"- {step}: rc 0" in summary
    assert "| 16 | 2 | 1 | fp32 | default | torch |" in summary  # the training table has its row
    assert "bf16 autocast |" in summary and "gaitset | 64 x 44 |" in summary
    assert "skipped: jsonargparse missing" in summary  # the config-driven step said why it did not run
