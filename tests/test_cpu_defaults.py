"""The ``graphfuse`` command's CPU default: OpenMP threads wait passively unless the user says
otherwise (a spinning wait made training up to 10x slower beside another CPU-heavy program)."""

from __future__ import annotations

import os
import subprocess
import sys


def _policy_seen_by_the_command(env: dict[str, str]) -> str:
    code = "import os, graphfuse.cli, torch; print(os.environ.get('OMP_WAIT_POLICY'))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_the_command_sets_a_passive_wait_policy_before_torch():
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    assert _policy_seen_by_the_command(env) == "PASSIVE"


def test_a_policy_the_user_exports_wins():
    env = {**os.environ, "OMP_WAIT_POLICY": "ACTIVE"}
    assert _policy_seen_by_the_command(env) == "ACTIVE"
