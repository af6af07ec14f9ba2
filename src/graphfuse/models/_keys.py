"""Helpers shared by the official-weight loaders of the models."""

from __future__ import annotations


def key_summary(items: list[str], n: int = 8) -> str:
    """The first ``n`` items of a key list for an error message, and how many more."""
    return ", ".join(items[:n]) + (f", ... ({len(items) - n} more)" if len(items) > n else "")
