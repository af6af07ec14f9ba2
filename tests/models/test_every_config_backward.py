"""Every shipped config's network trains: built from the config's ``model`` section exactly as
``graphfuse info`` builds it (LightningCLI, no data read), one forward and backward pass on a
tiny random input (batch 2, 8 frames), and every parameter receives a finite gradient that is
not identically zero, unless an explicit allow-list below says why it cannot (after timm's
``test_model_backward``).

An allow-listed parameter must then get a gradient of exactly zero: the list names dead
parameters, it does not hide small ones, and a stale entry fails.

A new family adds nothing here for its configs to be checked: its networks need an
``example_inputs(batch, frames)`` method (as :class:`~graphfuse.models.PedGraph`) or the
skeleton attributes ``in_channels`` / ``num_point`` / ``num_person`` (as
:class:`~graphfuse.models.ShiftGCN`); see docs/architecture.md.
"""

from __future__ import annotations

import inspect
import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from torch import nn

from graphfuse.info import build_model, network_of
from graphfuse.models import PedGraph, ShiftGCN

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted(p for p in (REPO / "configs").rglob("*.yaml") if "ablations" not in p.parts)
BATCH, FRAMES = 2, 8
#: Image crops of the PedGraph image branch, smaller than PedGraph+'s 192x64 (the branch pools
#: globally, so any size tests the same parameters).
IMAGE_SIZE = (32, 16)
#: Image side of the image networks (ML-GCN, two-stream towers): their heads pool globally.
IMAGE_TEST_SIZE = 64
#: Output size supplied when a config (written for prepared data that is absent here) leaves
#: the network's ``num_class`` to the data and the build needs one.
FALLBACK_NUM_CLASS = 10


@dataclass(frozen=True)
class Dead:
    """Parameters that get no gradient in a network, by construction.

    Attributes:
        pattern: regular expression matched (``re.search``) against the parameter name.
        applies: whether the network is one where they are dead.
        why: the reason, printed when a test fails.
    """

    pattern: str
    applies: Callable[[nn.Module], bool]
    why: str


ALLOWED_DEAD = [
    Dead(
        r"(^|\.)tcn1\.shift_(in|out)\.xpos$",
        lambda net: any(isinstance(m, ShiftGCN) and m.shift_grad == "official" for m in net.modules()),
        "Shift-GCN's temporal shift moves along T by ypos only; the official CUDA extension returns "
        "grad_xpos = 0 (shift_grad='official' reproduces it; 'autograd' trains xpos): 2 per unit, "
        "20 in the 10-unit network",
    ),
    Dead(
        r"^cross[12]\.attention\.linear_[qk]\.(weight|bias)$",
        lambda net: isinstance(net, PedGraph)
        and getattr(getattr(net, "cross1", None), "velocity_tokens", None) == "single",
        "PedGraph cross attention with cross_velocity_tokens='single': the attention weight over one "
        "key is identically 1, so no gradient reaches the query and key projections (8 parameters; "
        "PedGraph warns at construction)",
    ),
]


def _config_id(path: Path) -> str:
    return str(path.relative_to(REPO / "configs"))


def build_network(config: Path) -> tuple[nn.Module, Any]:
    """The network of ``config`` (the task's ``model``) and the parsed config, built as
    ``graphfuse info`` builds it. The output size comes from the data by the task's rule when
    the prepared data exists, else from the config, else the network's default; should the
    build still need one, ``FALLBACK_NUM_CLASS`` is supplied."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # known construction warnings are tested on their own
        try:
            task, cfg = build_model([str(config)])
        except Exception as first:  # noqa: BLE001 - retried once with an explicit output size
            override = f"--model.init_args.model.init_args.num_class={FALLBACK_NUM_CLASS}"
            try:
                task, cfg = build_model([str(config)], [override])
            except Exception:
                raise first from None
    return network_of(task), cfg


def example_inputs(net: nn.Module, seed: int = 0) -> tuple[torch.Tensor | None, ...]:
    """A tiny random batch for ``net(*inputs)``: ``example_inputs(BATCH, FRAMES)`` where the
    network offers it, else a skeleton ``x: (BATCH, C, FRAMES, V, M)``."""
    if hasattr(net, "example_inputs"):
        if isinstance(net, PedGraph):
            return net.example_inputs(BATCH, FRAMES, image_size=IMAGE_SIZE, seed=seed)
        if "image_size" in inspect.signature(net.example_inputs).parameters:
            # image networks pool globally: a small image exercises every parameter
            return tuple(net.example_inputs(BATCH, FRAMES, image_size=IMAGE_TEST_SIZE))
        return tuple(net.example_inputs(BATCH, FRAMES))
    shape = [getattr(net, a, None) for a in ("in_channels", "num_point", "num_person")]
    if None in shape:
        raise AssertionError(
            f"{type(net).__name__}: no example_inputs(batch, frames) and no in_channels / num_point / "
            f"num_person; give the network an example_inputs method"
        )
    c, v, m = shape
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(BATCH, c, FRAMES, v, m, generator=g),)


def gradient_problems(net: nn.Module) -> tuple[list[str], list[str]]:
    """One training-mode forward and backward of ``net`` on :func:`example_inputs`.

    The loss is the outputs against fixed random weights (a plain mean or sum of the logits
    can cancel a gradient by symmetry, e.g. through a softmax). Returns (problems, the names of
    the allow-listed parameters found dead).
    """
    torch.manual_seed(0)
    net.train()
    out = net(*example_inputs(net))
    if isinstance(out, dict):  # gait networks: {"embeddings" (N,C,P), "logits", "compact"}
        out = torch.cat([v.flatten(1) for v in out.values()], dim=1)
    assert torch.is_tensor(out) and out.shape[0] == BATCH, f"output {type(out)} {getattr(out, 'shape', '')}"
    problems = [] if torch.isfinite(out).all() else ["non-finite output"]
    g = torch.Generator().manual_seed(1)
    (out * torch.randn(out.shape, generator=g, dtype=out.dtype)).sum().backward()
    rules = [d for d in ALLOWED_DEAD if d.applies(net)]
    dead_ok: list[str] = []
    for name, p in net.named_parameters():
        if not p.requires_grad:
            continue
        rule = next((d for d in rules if re.search(d.pattern, name)), None)
        if p.grad is None:
            if rule is None:
                problems.append(f"{name}: no gradient (not in the computation)")
            else:
                dead_ok.append(name)
            continue
        if not torch.isfinite(p.grad).all():
            problems.append(f"{name}: non-finite gradient")
        elif rule is None and not p.grad.any():
            problems.append(f"{name}: gradient identically zero")
        elif rule is not None and p.grad.any():
            problems.append(f"{name}: allow-listed as dead ({rule.why}) but gets a gradient")
        elif rule is not None:
            dead_ok.append(name)
    return problems, dead_ok


#: Networks already checked, by their resolved config section: configs that differ only in
#: data, trainer or optimiser share one check.
_CHECKED: dict[str, tuple[str, list[str]]] = {}


@pytest.mark.parametrize("config", CONFIGS, ids=_config_id)
def test_every_parameter_gets_a_finite_gradient(config: Path) -> None:
    net, cfg = build_network(config)
    section = cfg.get("model") if hasattr(cfg, "get") else None
    key = f"{type(net).__qualname__}:" + json.dumps(
        section.as_dict() if hasattr(section, "as_dict") else repr(section), sort_keys=True, default=str
    )
    if key in _CHECKED:
        first, problems = _CHECKED[key]
        assert not problems, f"same network as {first}:\n" + "\n".join(problems)
        return
    problems, _ = gradient_problems(net)
    _CHECKED[key] = (_config_id(config), problems)
    assert not problems, "\n".join(problems)


def test_configs_are_found() -> None:
    ids = {_config_id(p) for p in CONFIGS}
    assert "synthetic-ntu/shiftgcn/quickstart.yaml" in ids and "pie/pedgraph/pedgraph_plus.yaml" in ids
    assert len(ids) >= 50


def test_official_shift_xpos_is_dead_and_autograd_trains_it() -> None:
    """The allow-list's first entry, both ways: 20 dead ``xpos`` under the official rule, none
    with ``shift_grad='autograd'``."""
    torch.manual_seed(0)
    problems, dead = gradient_problems(ShiftGCN(num_class=FALLBACK_NUM_CLASS))
    assert not problems, problems
    assert len(dead) == 20 and all(re.search(r"^l\d+\.tcn1\.shift_(in|out)\.xpos$", n) for n in dead)
    torch.manual_seed(0)
    problems, dead = gradient_problems(ShiftGCN(num_class=FALLBACK_NUM_CLASS, shift_grad="autograd"))
    assert not problems and not dead, (problems, dead)


def test_pedgraph_single_velocity_token_warns_and_its_queries_and_keys_are_dead() -> None:
    """The second entry: ``cross_velocity_tokens='single'`` warns at construction that q/k get no
    gradient, and they get none (8 parameters); node tokens train them and do not warn so."""
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match=r"linear_q and \.linear_k never receive a gradient"):
        single = PedGraph(fusion="cross_gated", cross_velocity_tokens="single", cross_heads=1)
    problems, dead = gradient_problems(single)
    assert not problems, problems
    assert sorted(dead) == sorted(
        f"cross{i}.attention.linear_{w}.{t}" for i in (1, 2) for w in "qk" for t in ("weight", "bias")
    )
    for fusion in ("cross_gated", "two_stage"):
        torch.manual_seed(0)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            nodes = PedGraph(fusion=fusion, cross_velocity_tokens="nodes", cross_heads=1)
        problems, dead = gradient_problems(nodes)
        assert not problems and not dead, (fusion, problems, dead)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PedGraph(fusion="gate")  # no cross attention at all: nothing to warn about
