"""The family registry: one place where a model family says what it adds to the shared tools.

A family (skeleton action recognition, pedestrian crossing intention, ...) declares, in its
own module of this package, one :class:`Family`:

* ``prepare``: its ``graphfuse prepare <name>`` subcommands, each with its argparse arguments
  and the function that runs it (and prints its summary);
* ``converters``: its ``graphfuse convert <name> IN OUT`` subcommands, each a function
  ``convert(input_path, output_path, **options) -> Path`` with its extra CLI options and the
  table of released checkpoints it reads (:class:`graphfuse.models.weights.Weights`);
* ``networks`` and ``example_input``: the networks whose ``graphfuse info`` example input the
  family builds, and the function that builds it from the config and the prepared data's
  ``meta.json``;
* ``components``: the modules that define its datamodules, so short class names resolve in
  configs (:func:`graphfuse.engine.import_components`).

``graphfuse.cli``, ``graphfuse.engine``, ``graphfuse.info`` and ``graphfuse.convert`` loop over
:func:`families`; adding a family adds its module and one line to :data:`BUILTIN_FAMILIES`.
Everything a family names is given as a ``"module:attribute"`` string (or a callable) and
imported only when used, so ``graphfuse --help`` and the readers import no torch, and the
registry imports nothing of the layers below it.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BUILTIN_FAMILIES",
    "BOUND_HELP",
    "Converter",
    "Family",
    "Option",
    "PrepareCommand",
    "converters",
    "data_init_args",
    "example_input_of",
    "families",
    "family_of_network",
    "get_family",
    "prepare_commands",
    "register_family",
    "resolve",
    "unregister_family",
]

#: The ONE registration list of the built-in families: each module registers its
#: :class:`Family` when imported. A new family adds its module here.
BUILTIN_FAMILIES: tuple[str, ...] = (
    "graphfuse.families.skeleton_action",
    "graphfuse.families.crossing_intention",
    "graphfuse.families.multilabel",
    "graphfuse.families.two_stream",
    "graphfuse.families.gait",
)

#: Help of the ``--bound NAME=LO:HI`` option of ``prepare`` commands and ``graphfuse check``.
BOUND_HELP = ("plausibility bound NAME=LO:HI overriding a default (repeatable): joint_m=-20:20, "
              "pixel_frames=-1:2, speed_kmh=0:300, acc_g=-16:16, gyro_dps=-2000:2000, angle=-360:360, "
              "latitude=-90:90, longitude=-180:180 (see docs/data_ntu.md, docs/data_intention.md)")

#: ``"package.module:attribute"`` imported on first use, or the object itself.
Ref = Any


def resolve(ref: Ref) -> Any:
    """The object a ``"module:attribute"`` reference names (imported now); anything else as is."""
    if not isinstance(ref, str):
        return ref
    module, sep, attr = ref.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"a family reference must be 'module:attribute', got {ref!r}")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def data_init_args(config: Any) -> dict[str, Any]:
    """``data.init_args`` of a parsed config (a jsonargparse Namespace or a dict) as a dict;
    empty without a data section. What a family's ``example_input`` reads its data options from."""
    data = config.get("data") if config is not None and hasattr(config, "get") else None
    init = data.get("init_args") if data is not None and hasattr(data, "get") else None
    if init is None:
        return {}
    return dict(init) if isinstance(init, dict) else dict(vars(init))


@dataclass(frozen=True)
class PrepareCommand:
    """One ``graphfuse prepare <name>`` subcommand.

    Attributes:
        name: the subcommand, e.g. ``'ntu'``.
        help: one line for ``graphfuse prepare --help``.
        add_arguments: ``(parser) -> None``; declares the subcommand's options.
        run: ``(args: argparse.Namespace) -> None`` (or its ``"module:attribute"``); prepares
            the data and prints its summary. Bad input raises ``OSError``/``ValueError``/
            ``KeyError`` naming the file (printed as one line, exit 2).
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Ref


@dataclass(frozen=True)
class Option:
    """One extra command-line option of a converter: ``parser.add_argument(*flags, **kwargs)``;
    its value is passed to the converter as the keyword argparse derives (``--flags`` ->
    ``flags``)."""

    flags: tuple[str, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Converter:
    """One ``graphfuse convert <name> IN OUT`` subcommand.

    Attributes:
        name: the subcommand, e.g. ``'shiftgcn'``.
        help: one line for ``graphfuse convert --help``.
        input_help: help of the ``input`` argument (which released file it reads).
        convert: ``(input_path, output_path, **options) -> Path`` (or its reference); writes
            a graphfuse checkpoint and returns its path.
        weights: the released checkpoints it reads: a sequence of
            :class:`graphfuse.models.weights.Weights` or its reference (``"module:WEIGHTS"``).
        options: extra options, passed to ``convert`` as keywords.
        usage: the arguments shown in ``graphfuse --help`` (e.g. ``'IN.pt OUT.ckpt'``).
    """

    name: str
    help: str
    input_help: str
    convert: Ref
    weights: Ref = ()
    options: tuple[Option, ...] = ()
    usage: str = "IN OUT.ckpt"

    def released(self) -> tuple[Any, ...]:
        """The :class:`~graphfuse.models.weights.Weights` table (imports it)."""
        return tuple(resolve(self.weights))


@dataclass(frozen=True)
class Family:
    """A model family's contributions to the shared tools (see the module docstring).

    Attributes:
        name: short name, e.g. ``'skeleton_action'``.
        description: one line.
        prepare: its ``graphfuse prepare`` subcommands.
        converters: its ``graphfuse convert`` subcommands.
        networks: the network classes (``"module:Class"`` or classes) whose ``graphfuse
            info`` input this family builds.
        example_input: ``(network, config, *, frames, channels, joints, persons) -> tuple``
            of input tensors (``None`` for an absent optional input), batch 1, for
            ``network(*inputs)``; derived from ``config`` (the parsed training config) and the
            prepared data's ``meta.json``, with the given ``info`` options (``None`` = not
            given) taking precedence. Raises ``ValueError`` naming the option to give when a
            size cannot be derived.
        components: modules to import so short class names in configs resolve (datamodules).
        infer: the family's ``graphfuse infer`` adapter: a class (or its ``"module:Class"``)
            constructed as ``Adapter(network, task, block)`` that reads raw files in the
            dataset's original format into samples through the family's readers and preparation
            and turns the network's logits into results (:class:`graphfuse.infer.FamilyInference`
            is the base it extends). None: ``graphfuse infer`` refuses the family's checkpoints.
        export: ``(network, data_options, batch) -> graphfuse.infer.ExportSpec`` (or its
            reference): the example inputs of ``graphfuse export`` and which of their dimensions
            are dynamic. None: the family's networks are not exported.
    """

    name: str
    description: str
    prepare: tuple[PrepareCommand, ...] = ()
    converters: tuple[Converter, ...] = ()
    networks: tuple[Ref, ...] = ()
    example_input: Ref = None
    components: tuple[str, ...] = ()
    infer: Ref = None
    export: Ref = None


_REGISTRY: dict[str, Family] = {}
_builtins_loaded = False


def _load_builtins() -> None:
    global _builtins_loaded
    if _builtins_loaded:
        return
    _builtins_loaded = True
    for module in BUILTIN_FAMILIES:
        importlib.import_module(module)


def register_family(family: Family) -> Family:
    """Add ``family`` to the registry (a family module calls this once, at import).

    Raises:
        ValueError when its name, one of its ``prepare`` subcommands or one of its converter
        names is already taken by another family.
    """
    if not isinstance(family, Family):
        raise TypeError(f"register_family expects a Family, got {type(family).__name__}")
    existing = _REGISTRY.get(family.name)
    if existing is not None and existing is not family:
        raise ValueError(f"family {family.name!r} is already registered")
    for other in _REGISTRY.values():
        if other.name == family.name:
            continue
        for kind, mine, theirs in (
            ("prepare subcommand", {p.name for p in family.prepare}, {p.name for p in other.prepare}),
            ("converter", {c.name for c in family.converters}, {c.name for c in other.converters}),
        ):
            clash = sorted(mine & theirs)
            if clash:
                raise ValueError(f"family {family.name!r}: {kind} {clash[0]!r} is already registered by "
                                 f"family {other.name!r}")
    _REGISTRY[family.name] = family
    return family


def unregister_family(name: str) -> Family:
    """Remove a family (tests register toy families and remove them afterwards)."""
    _load_builtins()
    try:
        return _REGISTRY.pop(name)
    except KeyError:
        raise KeyError(f"no family {name!r}; registered: {', '.join(_REGISTRY) or 'none'}") from None


def families() -> tuple[Family, ...]:
    """Every registered family, the built-in ones first (in :data:`BUILTIN_FAMILIES` order)."""
    _load_builtins()
    return tuple(_REGISTRY.values())


def get_family(name: str) -> Family:
    """The registered family ``name``; ``KeyError`` listing the registered ones otherwise."""
    _load_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"no family {name!r}; registered: {', '.join(_REGISTRY) or 'none'}") from None


def family_of_network(network: Any) -> Family | None:
    """The family that declares ``network``'s class (or a base class of it) in ``networks``;
    ``None`` when no family does. Imports only the modules of families that declare networks."""
    for family in families():
        for ref in family.networks:
            cls = resolve(ref)
            if isinstance(network, cls):
                return family
    return None


def example_input_of(network: Any, config: Any = None, **dims: Any) -> tuple[Any, ...] | None:
    """The one-sample example input of ``network``, built by the family that declares it from the
    config and the prepared data's ``meta.json`` (``dims``: ``frames``, ``channels``, ``joints``,
    ``persons`` overrides); ``None`` for a network no family declares or builds an input for.
    Used by ``graphfuse info`` and by the model summary of ``fit``."""
    family = family_of_network(network)
    if family is None or family.example_input is None:
        return None
    return tuple(resolve(family.example_input)(network, config, **dims))


def prepare_commands() -> Sequence[PrepareCommand]:
    """Every family's ``prepare`` subcommands, in registration order."""
    return [p for f in families() for p in f.prepare]


def converters() -> Sequence[Converter]:
    """Every family's converters, in registration order."""
    return [c for f in families() for c in f.converters]
