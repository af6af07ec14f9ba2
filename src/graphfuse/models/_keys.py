"""Helpers shared by the official-weight loaders of the models."""

from __future__ import annotations


def key_summary(items: list[str], n: int = 8) -> str:
    """The first ``n`` items of a key list for an error message, and how many more."""
    return ", ".join(items[:n]) + (f", ... ({len(items) - n} more)" if len(items) > n else "")


def check_state_dict(state: dict, expected: dict, where: str, what: str) -> None:
    """Raise ``ValueError("{where}: {what}: ...")`` naming missing, unexpected and mis-shaped
    keys of ``state`` against ``expected`` (key -> shape, or None to skip the shape check)."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mis_shaped = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(s)}"
                  for k, s in expected.items() if s is not None and k in state and state[k].shape != s]
    parts = [f"{name} ({len(items)}): {key_summary(items)}"
             for name, items in (("missing keys", missing), ("unexpected keys", unexpected),
                                 ("shape mismatches", mis_shaped)) if items]
    if parts:
        raise ValueError(f"{where}: {what}: " + "; ".join(parts))
