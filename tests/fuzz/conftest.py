"""The fuzz suite's scratch folder; seeds are in ``_seeds.py``, mutations and the property in
``_fuzz.py`` (plain modules, so that hypothesis prints a failing example as its mutation
recipe rather than the seed bytes)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # _fuzz and _seeds

import _fuzz  # noqa: E402,F401  (registers the hypothesis profile)


@pytest.fixture(scope="session")
def fuzz_dir(tmp_path_factory) -> Path:
    """Scratch folder; every example writes a fresh file name here (``_fuzz.fresh_path``)."""
    return tmp_path_factory.mktemp("fuzz")
