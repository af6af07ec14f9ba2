"""Model cost: parameters, buffers and FLOPs per sample of any config's model.

``graphfuse info -c CONFIG [--dotted.key=value ...] [--frames T]`` builds the ``model``
section of a training config with the same parser as ``graphfuse fit`` (LightningCLI), but
instantiates the model only: no datamodule is built and no data is read. The example input
comes from the network's family (:mod:`graphfuse.families`): derived from the config and the
prepared data's ``meta.json`` (e.g. ``T`` = the datamodule's ``clip_len``, or the prepared
``obs_length``), never guessed; ``--frames`` / ``--channels`` / ``--joints`` / ``--persons``
override it.

FLOPs are counted by :class:`torch.utils.flop_counter.FlopCounterMode` on one forward pass
in eval mode for an input ``(1, C, T, V, M)``. That counter counts **a multiply-add as 2
FLOPs** (``2 * M * N * K`` for a matrix product) and only counts operators that have a FLOP
formula: matrix products (``mm``, ``addmm``, ``bmm``, ``einsum`` through them),
convolutions and attention. Gathers and index operations, BatchNorm, activations, additions
and pooling are not counted. ``MACs = FLOPs / 2`` is reported beside it, the unit in which
the skeleton-recognition literature usually quotes "FLOPs" (see ``docs/models_shiftgcn.md``,
"Model cost").
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .families.skeleton_action import DEFAULT_FRAMES, input_shape_for

__all__ = [
    "ModelCost",
    "count_flops",
    "model_cost",
    "build_model",
    "network_of",
    "input_shape_for",
    "observed_frames",
    "example_input",
    "format_cost",
    "info_main",
    "add_info_arguments",
    "DEFAULT_FRAMES",
]

#: Frames of a full NTU RGB+D sample (the official padded length), used when a config
#: feeds whole sequences (``clip_len: null``).


@dataclass
class ModelCost:
    """Cost of one model for one input.

    Attributes:
        input_shape: the input the FLOPs were counted for, e.g. ``(1, C, T, V, M)``.
        trainable_params: elements of parameters with ``requires_grad``.
        frozen_params: elements of parameters without ``requires_grad``.
        buffers: elements of all buffers (BatchNorm statistics, index arrays, ...).
        persistent_buffers: elements of the buffers saved in the state dict.
        flops: FLOPs of one forward pass, FlopCounterMode convention (multiply-add = 2).
        flops_by_op: FLOPs per operator (``'aten.addmm'``, ``'aten.convolution'``, ...).
        flops_by_module: FLOPs per direct child module of the network.
    """

    input_shape: tuple[int, ...]
    trainable_params: int
    frozen_params: int
    buffers: int
    persistent_buffers: int
    flops: int
    flops_by_op: dict[str, int] = field(default_factory=dict)
    flops_by_module: dict[str, int] = field(default_factory=dict)

    @property
    def macs(self) -> float:
        """Multiply-accumulates: ``flops / 2``."""
        return self.flops / 2


def count_flops(module: nn.Module, *inputs: Any) -> tuple[int, dict[str, int], dict[str, int]]:
    """FLOPs of ``module(*inputs)`` under :class:`~torch.utils.flop_counter.FlopCounterMode`.

    Runs under ``torch.no_grad()`` in the module's current mode (call ``.eval()`` first for
    inference cost). A multiply-add counts as 2 FLOPs.

    Returns:
        ``(total, by_op, by_child)``: the total, a dict operator -> FLOPs, and a dict
        direct child module name -> FLOPs (modules with no counted FLOPs omitted).
    """
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False, depth=None)
    with torch.no_grad(), counter:
        module(*inputs)
    counts = counter.get_flop_counts()
    by_op = {str(op): int(v) for op, v in counts.get("Global", {}).items()}
    root = type(module).__name__
    by_child: dict[str, int] = {}
    for name, ops in counts.items():
        parts = name.split(".")
        if len(parts) == 2 and parts[0] == root:
            total = int(sum(ops.values()))
            if total:
                by_child[parts[1]] = total
    return int(counter.get_total_flops()), by_op, by_child


def model_cost(module: nn.Module, input_shape: Sequence[int] | None = None,
               inputs: Sequence[torch.Tensor | None] | None = None) -> ModelCost:
    """Parameter and buffer counts of ``module`` and its FLOPs for a zero-free random input.

    The module is put in eval mode (BatchNorm uses running statistics; its training mode
    is restored afterwards). ``input_shape`` includes the batch dimension (use 1 for "per
    sample"). Models with several inputs (PedGraph: pose, velocity, image) pass ``inputs``
    instead (e.g. ``network.example_inputs(1, frames)``); ``input_shape`` then records the
    first input's shape.
    """
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in module.parameters() if not p.requires_grad)
    buffers = sum(b.numel() for b in module.buffers())
    state_keys = set(module.state_dict().keys())
    persistent = sum(b.numel() for name, b in module.named_buffers() if name in state_keys)
    param = next(module.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    if inputs is None:
        if input_shape is None:
            raise ValueError("model_cost needs input_shape or inputs")
        gen = torch.Generator(device).manual_seed(0)
        inputs = (torch.randn(*input_shape, device=device, dtype=dtype, generator=gen),)
    else:
        inputs = tuple(t.to(device) if t is not None else None for t in inputs)
        input_shape = tuple(inputs[0].shape)
    was_training = module.training
    module.eval()
    try:
        flops, by_op, by_child = count_flops(module, *inputs)
    finally:
        module.train(was_training)
    return ModelCost(tuple(int(s) for s in input_shape), int(trainable), int(frozen), int(buffers),
                     int(persistent), flops, by_op, by_child)


# ---------------------------------------------------------------------------------------- configs
def build_model(config: Sequence[str], overrides: Sequence[str] = ()) -> tuple[nn.Module, Any]:
    """Instantiate the ``model`` section of training config(s), nothing else.

    Parses exactly as ``graphfuse fit -c CONFIG ... OVERRIDES`` (LightningCLI; later
    configs and dotted overrides win), then instantiates only ``model`` (the LightningModule
    with its network). No datamodule or trainer is built and no data is read.

    Returns:
        ``(lightning_module, config)`` with ``config`` the parsed jsonargparse namespace.
    """
    from .engine import import_components

    import_components()
    args: list[str] = []
    for c in config:
        args += ["--config", str(c)]
    args += list(overrides)
    with warnings.catch_warnings():
        # `graphfuse info` hands its own argv over on purpose.
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
        cli = _model_only_cli()(args=args, run=False)
    return cli.model, cli.config


def _model_only_cli() -> type:
    # Defined on demand: importing lightning is deferred until a config is built.
    from .engine import GraphfuseCLI

    class ModelOnlyCLI(GraphfuseCLI):
        """GraphfuseCLI that parses a full config but instantiates the model only."""

        def before_instantiate_classes(self) -> None:  # no run directory
            return

        def instantiate_classes(self) -> None:
            cfg = self.config.clone()
            # The network's num_class by the task's rule, as `fit` would set it, from an
            # existing meta.json only (or what synthetic data would hold); nothing is generated.
            from .engine import resolve_network_output_size

            resolve_network_output_size(cfg, generate=False)
            # Leave the datamodule out: building it may read or generate data.
            cfg.data = None
            # jsonargparse >= 4.49 renamed instantiate_classes to instantiate
            instantiate = getattr(self.parser, "instantiate", None) or self.parser.instantiate_classes
            init = instantiate(cfg)
            self.config_init = init
            self.model = init.get("model")
            self.datamodule = None
            self.trainer = None

    return ModelOnlyCLI


def network_of(module: nn.Module) -> nn.Module:
    """The network inside a task (its ``model`` attribute), else ``module`` itself."""
    inner = getattr(module, "model", None)
    return inner if isinstance(inner, nn.Module) else module


def observed_frames(config: Any) -> int:
    """Observation length of an intention config's data, derived from the prepared
    ``meta.json`` (or, for ``synthetic: true``, from the synthetic generator's default); see
    :func:`graphfuse.families.crossing_intention.observed_frames`. Raises ``ValueError``
    asking for ``--frames`` when neither exists."""
    from .families.crossing_intention import observed_frames as _observed_frames

    return _observed_frames(config)


def example_input(
    network: nn.Module,
    config: Any = None,
    frames: int | None = None,
    channels: int | None = None,
    joints: int | None = None,
    persons: int | None = None,
) -> tuple[torch.Tensor | None, ...] | None:
    """The example input of ``network`` for ``graphfuse info``, built by the family that
    declares the network (:func:`graphfuse.families.family_of_network`) from the config and the
    prepared data's ``meta.json``; ``None`` for a network no family declares (``info`` then
    uses :func:`input_shape_for` from the network's attributes)."""
    from .families import example_input_of

    return example_input_of(network, config, frames=frames, channels=channels, joints=joints, persons=persons)


def _si(x: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3f} {unit}"
    return f"{x:.0f} "


def format_cost(cost: ModelCost, title: str = "") -> str:
    """A human-readable report of :class:`ModelCost`."""
    skeleton = len(cost.input_shape) == 5  # (N, C, T, V, M)
    t, m = (cost.input_shape[2], cost.input_shape[4]) if skeleton else (None, None)
    lines = [title] if title else []
    lines += [
        f"trainable parameters   {cost.trainable_params:,}",
        f"frozen parameters      {cost.frozen_params:,}",
        f"buffers (elements)     {cost.buffers:,}  ({cost.persistent_buffers:,} in the state dict)",
        f"input                  {tuple(cost.input_shape)}"
        + (f"  (N, C, T, V, M): T={t} frames, M={m} bodies" if skeleton else ""),
        f"FLOPs per sample       {cost.flops:,}  ({_si(cost.flops)}FLOPs; torch.utils.flop_counter: "
        "1 multiply-add = 2 FLOPs)",
        f"MACs per sample        {int(cost.macs):,}  ({_si(cost.macs)}MAC = FLOPs / 2)",
    ]
    if cost.flops_by_op:
        lines.append("FLOPs by operator:")
        for op, f in sorted(cost.flops_by_op.items(), key=lambda kv: -kv[1]):
            lines.append(f"  {op:24s} {f:>16,}  {100 * f / max(cost.flops, 1):5.1f} %")
    if cost.flops_by_module:
        lines.append("FLOPs by module:")
        for name, f in cost.flops_by_module.items():
            lines.append(f"  {name:24s} {f:>16,}  {100 * f / max(cost.flops, 1):5.1f} %")
    lines.append(
        "Not counted: gathers/index ops (spatial shifts), BatchNorm, activations, additions, pooling."
    )
    if skeleton and m and m > 1:
        lines.append(f"All {m} bodies are computed (zero-padded bodies too), as the reference forward does.")
    return "\n".join(lines)


def info_main(
    config: Sequence[str],
    overrides: Sequence[str] = (),
    frames: int | None = None,
    channels: int | None = None,
    joints: int | None = None,
    persons: int | None = None,
) -> ModelCost:
    """``graphfuse info``: build the config's model, print its cost, return it."""
    task, cfg = build_model(config, overrides)
    net = network_of(task)
    inputs = example_input(net, cfg, frames, channels, joints, persons)
    if inputs is not None:  # the network's family builds it (several inputs: PedGraph)
        cost = model_cost(net, inputs=inputs)
    elif hasattr(net, "example_inputs"):  # a multi-input network of no family: T must be given
        if frames is None:
            raise ValueError(f"{type(net).__name__} belongs to no registered family; give --frames T")
        cost = model_cost(net, inputs=net.example_inputs(1, frames))
    else:
        shape = input_shape_for(net, cfg, frames, channels, joints, persons)
        cost = model_cost(net, shape)
    print(format_cost(cost, title=f"{type(net).__name__} from {', '.join(map(str, config))}"))
    return cost


def add_info_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``graphfuse info`` (dotted ``--key=value`` overrides are passed through)."""
    parser.add_argument("-c", "--config", action="append", required=True,
                        help="training config (YAML); repeatable, later ones win")
    parser.add_argument("--frames", type=int, default=None,
                        help="T of the input (default: data clip_len, else ceil(300 / frame_stride))")
    parser.add_argument("--channels", type=int, default=None, help="C (default: the model's in_channels)")
    parser.add_argument("--joints", type=int, default=None, help="V (default: the model's num_point)")
    parser.add_argument("--persons", type=int, default=None, help="M (default: the model's num_person)")
