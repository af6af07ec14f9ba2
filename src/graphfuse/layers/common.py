"""Helpers shared by the layers and the models built from them: the official weight
initialisation of the CTR/Shift-GCN code base, and constructor argument checks."""

from __future__ import annotations

from torch import nn

__all__ = ["conv_init", "bn_init", "check_positive_int", "check_nonnegative_int"]


def conv_init(conv: nn.Conv2d | nn.Conv1d) -> None:
    """The official ``conv_init`` (2s-AGCN / Shift-GCN): Kaiming normal weights (``fan_out``,
    gain sqrt(2)) and a zero bias, in place."""
    nn.init.kaiming_normal_(conv.weight, mode="fan_out")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def bn_init(bn: nn.modules.batchnorm._BatchNorm, scale: float = 1.0) -> None:
    """The official ``bn_init``: weight ``scale`` (1e-6 zero-initialises a residual branch),
    bias 0, in place."""
    nn.init.constant_(bn.weight, scale)
    nn.init.zeros_(bn.bias)


def check_positive_int(name: str, value: object) -> int:
    """``value`` if it is an ``int`` >= 1 (not a bool), else ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def check_nonnegative_int(name: str, value: object) -> int:
    """``value`` if it is an ``int`` >= 0 (not a bool), else ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    return value
