"""Checks of YAML files before LightningCLI / jsonargparse parse them (training configs given
with ``-c`` / ``--config`` to ``graphfuse fit|validate|test|predict|info``).

jsonargparse reports a config it cannot use without naming the file, and crashes on some
(bytes that are not UTF-8, deep nesting, an alias inside itself). Each config file is read
here first; a problem is one message naming the file: not UTF-8, not valid YAML, nested too
deeply, not a mapping, aliases that expand to a huge document ("billion laughs"), or a
number that is not finite (``.nan``, ``.inf``, ``1e400``) or an integer beyond 64 bits.

Base-plus-delta configs: a config may extend another through a top-level ``_base_: <path>``
key (MMEngine's convention; the path is relative to the file naming it, and may itself name
a ``_base_``). graphfuse resolves the chain before LightningCLI parses (:func:`resolve_config`,
merge rule in :func:`merge_configs`): the delta states only what differs from its base. Every
file of a chain passes the checks above; a missing base or a cycle is one error naming the files.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "MAX_YAML_VALUES",
    "BASE_KEY",
    "DELETE_KEY",
    "ConfigError",
    "expanded_size",
    "config_paths",
    "config_file_problem",
    "config_values",
    "missing_config_files",
    "with_resolved_configs",
    "config_chain",
    "merge_configs",
    "names_base",
    "resolve_config",
    "resolved_config_text",
]

#: Values (mapping entries, list items, scalars) a config or spec may hold once its YAML
#: aliases are expanded: far above any real file, far below a document whose aliases multiply.
MAX_YAML_VALUES = 100_000


def expanded_size(obj: Any) -> int:
    """Number of values in ``obj`` counting every alias expansion (shared objects) again,
    computed once per distinct object (no recursion, so any depth is fine); a structure that
    contains itself counts as too large (``MAX_YAML_VALUES + 1``)."""
    sizes: dict[int, int] = {}
    visiting: set[int] = set()
    stack: list[tuple[Any, bool]] = [(obj, False)]
    while stack:  # iterative post-order over the distinct containers
        node, done = stack.pop()
        children = (list(node.keys()) + list(node.values()) if isinstance(node, dict)
                    else list(node) if isinstance(node, (list, tuple)) else None)
        if children is None or id(node) in sizes:
            continue
        if not done:
            if id(node) in visiting:  # inside itself (`&a [*a]`): infinite once expanded
                return MAX_YAML_VALUES + 1
            visiting.add(id(node))
            stack.append((node, True))
            stack.extend((c, False) for c in children
                         if isinstance(c, (dict, list, tuple)) and id(c) not in sizes)
            continue
        total = 1 + sum(sizes.get(id(c), 1) for c in children)
        sizes[id(node)] = min(total, MAX_YAML_VALUES + 1)
    return sizes.get(id(obj), 1)


def _bad_number(obj: Any) -> str | None:
    """The first float in ``obj`` that is not finite or integer outside int64, with its dotted
    location (None: all fine).
    Call only on a structure that :func:`expanded_size` accepted (finite, no cycles)."""
    stack: list[tuple[str, Any]] = [("", obj)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, float) and not math.isfinite(node):
            return f"{where or 'the document'} is {node!r}; config values must be finite numbers"
        if isinstance(node, str) and len(node) < 400 and _non_finite_text(node):  # YAML 1.1 reads
            # "1e400" (no dot) as text, which jsonargparse then converts to a float: inf
            return f"{where or 'the document'} is {node!r}, not a finite number"
        if isinstance(node, int) and not isinstance(node, bool) and not -(2**63) <= node < 2**63:
            return f"{where or 'the document'} is {node}, outside the 64-bit integer range"
        if isinstance(node, dict):
            stack.extend((f"{where}.{k}" if where else str(k), v) for k, v in node.items())
        elif isinstance(node, (list, tuple)):
            stack.extend((f"{where}[{i}]", v) for i, v in enumerate(node))
    return None


def _non_finite_text(text: str) -> bool:
    try:
        return not math.isfinite(float(text))
    except ValueError:
        return False


def config_paths(argv: Sequence[str]) -> list[str]:
    """The config files named in a command line (``-c PATH``, ``--config PATH``, ``--config=PATH``)
    that exist as files (jsonargparse also takes inline YAML there)."""
    out = []
    for i, a in enumerate(argv):
        value = None
        if a in ("-c", "--config") and i + 1 < len(argv):
            value = argv[i + 1]
        elif isinstance(a, str) and a.startswith("--config="):
            value = a.partition("=")[2]
        if isinstance(value, str) and value and Path(value).is_file():
            out.append(value)
    return out


#: Suffixes that make a ``-c`` value a file name rather than inline YAML.
CONFIG_SUFFIXES = (".yaml", ".yml", ".json")


def missing_config_files(argv: Sequence[str]) -> list[str]:
    """The config options of a command line that name a file (a ``.yaml``/``.yml``/``.json``
    name) that does not exist, in order: reported before anything else is parsed."""
    return [v for _, v in config_values(argv)
            if v.lower().endswith(CONFIG_SUFFIXES) and "\n" not in v and not Path(v).is_file()]


def config_values(argv: Sequence[str]) -> list[tuple[int, str]]:
    """``(index in argv, value)`` of every config option of a command line (``-c VALUE``,
    ``--config VALUE``, ``--config=VALUE``), in order; a value may be a path or inline YAML."""
    out = []
    for i, a in enumerate(argv):
        if a in ("-c", "--config") and i + 1 < len(argv):
            out.append((i + 1, str(argv[i + 1])))
        elif isinstance(a, str) and a.startswith("--config="):
            out.append((i, a.partition("=")[2]))
    return out


def with_resolved_configs(argv: Sequence[str]) -> tuple[list[str], list[str | None]]:
    """``argv`` with every config file that names a ``_base_`` replaced by its resolved YAML
    text (jsonargparse reads a config option's value as a path or as YAML content), and, per
    config option in order, the file it replaced (None: left as it was).

    Files without ``_base_`` and inline YAML pass unchanged. Call after
    :func:`config_file_problem` accepted the files; raises :class:`ConfigError` otherwise.
    """
    out = [str(a) for a in argv]
    replaced: list[str | None] = []
    for i, value in config_values(out):
        if value and Path(value).is_file() and names_base(value):
            text = resolved_config_text(value)
            out[i] = text if out[i] == value else f"--config={text}"
            replaced.append(value)
        else:
            replaced.append(None)
    return out, replaced


def config_file_problem(path: str | Path) -> str | None:
    """What is wrong with the config file ``path`` or a file of its ``_base_`` chain (a message
    naming the file), or None."""
    problem = _single_file_problem(path)
    if problem is None and names_base(path):
        try:
            resolve_config(path)
        except ConfigError as e:
            return str(e)
    return problem


def _single_file_problem(path: str | Path) -> str | None:
    """What is wrong with the one config file ``path`` (its bases unread), or None."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        return f"{path}: not UTF-8 text ({e.reason} at byte {e.start})"
    except OSError as e:
        return f"{path}: cannot read the config ({e.strerror or e})"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        return f"{path}: not valid YAML: {e}"
    except RecursionError:
        return f"{path}: YAML nested too deeply"
    if not isinstance(data, dict):
        return f"{path}: a config is a YAML mapping of options, got {type(data).__name__}"
    if expanded_size(data) > MAX_YAML_VALUES:
        return (f"{path}: more than {MAX_YAML_VALUES} values once YAML aliases are expanded (or an alias "
                "inside itself); a config is a short mapping")
    bad = _bad_number(data)
    if bad is not None:
        return f"{path}: {bad}"
    return None


# ------------------------------------------------------------------------ base-plus-delta configs
#: The top-level key naming the config(s) a config extends (MMEngine's convention).
BASE_KEY = "_base_"
#: In a mapping of a delta, ``_delete_: true`` replaces the base's mapping instead of merging.
DELETE_KEY = "_delete_"
#: Longest ``_base_`` chain (a config, its base, the base's base, ...).
MAX_BASE_DEPTH = 16


class ConfigError(ValueError):
    """A config file that cannot be used, or a ``_base_`` chain that cannot be resolved; the
    message names the file(s)."""


def _read_config(path: Path) -> dict[str, Any]:
    """The mapping in the config file ``path`` after the safety checks of
    :func:`_single_file_problem`; raises :class:`ConfigError` naming the file."""
    problem = _single_file_problem(path)
    if problem:
        raise ConfigError(problem)
    return yaml.safe_load(path.read_bytes().decode("utf-8"))


def _base_paths(path: Path, cfg: dict[str, Any]) -> list[Path]:
    """The files named by ``cfg``'s ``_base_`` (one path or a list), relative to ``path``'s folder."""
    bases = cfg.get(BASE_KEY)
    names = bases if isinstance(bases, list) else [bases]
    if not names or not all(isinstance(n, str) and n.strip() and "\0" not in n for n in names):
        raise ConfigError(f"{path}: {BASE_KEY} must be the relative path of a config file (or a list of "
                          f"them), got {bases!r}")
    out = []
    for name in names:
        shown = name if len(name) <= 200 else name[:200] + "..."
        try:
            base = (path.parent / Path(name).expanduser()).resolve()
            found = base.is_file()
        except (OSError, RuntimeError) as e:  # a name too long, ~user of no user, a symlink loop
            raise ConfigError(f"{path}: {BASE_KEY} {shown!r}: {e}") from None
        if not found:
            raise ConfigError(f"{path}: {BASE_KEY} {shown!r} not found (looked for {base})")
        out.append(base)
    return out


def _strip_delete(node: Any) -> Any:
    """``node`` without ``_delete_`` keys (a replaced mapping keeps none of them)."""
    if isinstance(node, dict):
        return {k: _strip_delete(v) for k, v in node.items() if k != DELETE_KEY}
    if isinstance(node, list):
        return [_strip_delete(v) for v in node]
    return node


def _class_name(class_path: Any) -> Any:
    return class_path.rpartition(".")[2] if isinstance(class_path, str) else class_path


def merge_configs(base: Any, delta: Any, where: str = "") -> Any:
    """``delta`` applied to ``base`` (neither is modified), the rule of ``_base_`` configs:

    - mappings merge key by key, recursively; a key only in the base keeps the base's value;
    - lists, scalars and ``null`` in the delta replace the base's value (a list is never
      merged item by item);
    - a mapping whose ``class_path`` names another class than the base's (compared by the
      name after the last dot, so ``PedGraph`` and ``graphfuse.models.PedGraph`` are one class)
      replaces the base's mapping: the old class's ``init_args`` do not carry over;
    - a mapping with ``_delete_: true`` replaces the base's mapping (MMEngine's key; the key
      itself is dropped).
    """
    if not isinstance(delta, dict) or not isinstance(base, dict):
        return _strip_delete(copy.deepcopy(delta))
    if DELETE_KEY in delta:
        if delta[DELETE_KEY] is not True:
            raise ConfigError(f"{where or 'the config'}.{DELETE_KEY} must be true, got {delta[DELETE_KEY]!r}")
        return _strip_delete(copy.deepcopy(delta))
    if "class_path" in delta and "class_path" in base and _class_name(delta["class_path"]) != _class_name(
            base["class_path"]):
        return _strip_delete(copy.deepcopy(delta))
    out = copy.deepcopy(base)
    for key, value in delta.items():
        out[key] = merge_configs(out[key], value, f"{where}.{key}" if where else str(key)) if key in out else (
            _strip_delete(copy.deepcopy(value)))
    return out


def _nested_base_key(node: Any, where: str = "") -> str | None:
    """The dotted location of a ``_base_`` key below the top level of ``node`` (None: none)."""
    stack: list[tuple[str, Any]] = [(where, node)]
    while stack:
        at, item = stack.pop()
        if isinstance(item, dict):
            for k, v in item.items():
                here = f"{at}.{k}" if at else str(k)
                if k == BASE_KEY and at:
                    return here
                stack.append((here, v))
        elif isinstance(item, list):
            stack.extend((f"{at}[{i}]", v) for i, v in enumerate(item))
    return None


def config_chain(path: str | Path) -> list[Path]:
    """The files of ``path``'s ``_base_`` chain, ``path`` first, then its bases in the order
    they are read (depth first). Every file passes the safety checks.

    Raises:
        ConfigError: a file with a problem, a missing base, a cycle (naming its files), or a
            chain longer than :data:`MAX_BASE_DEPTH`.
    """
    chain: list[Path] = []
    _resolve(Path(path), (), chain)
    return chain


def resolve_config(path: str | Path) -> dict[str, Any]:
    """The config in ``path`` with its ``_base_`` chain applied (:func:`merge_configs`), as the
    mapping LightningCLI parses: no ``_base_`` or ``_delete_`` key left. A file without
    ``_base_`` is returned as read.

    Raises:
        ConfigError: see :func:`config_chain`.
    """
    return _resolve(Path(path), (), [])


def _resolve(path: Path, stack: tuple[Path, ...], chain: list[Path]) -> dict[str, Any]:
    key = path.resolve()
    if key in stack:
        cycle = " -> ".join(str(p) for p in (*stack[stack.index(key):], key))
        raise ConfigError(f"{stack[-1]}: {BASE_KEY} cycle: {cycle}")
    if len(stack) >= MAX_BASE_DEPTH:
        raise ConfigError(f"{path}: {BASE_KEY} chain deeper than {MAX_BASE_DEPTH} files (from {stack[0]})")
    chain.append(path)
    cfg = _read_config(path)
    nested = _nested_base_key({k: v for k, v in cfg.items() if k != BASE_KEY})
    if nested:
        raise ConfigError(f"{path}: {nested}: {BASE_KEY} is read at the top level of a config only")
    if BASE_KEY not in cfg:
        if DELETE_KEY in cfg or _has_delete(cfg):
            raise ConfigError(f"{path}: {DELETE_KEY} needs a {BASE_KEY} to delete from")
        return cfg
    merged: Any = {}
    for base in _base_paths(path, cfg):
        merged = merge_configs(merged, _resolve(base, (*stack, key), chain))
    delta = {k: v for k, v in cfg.items() if k != BASE_KEY}
    try:
        merged = merge_configs(merged, delta)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    if expanded_size(merged) > MAX_YAML_VALUES:
        raise ConfigError(f"{path}: more than {MAX_YAML_VALUES} values once its {BASE_KEY} chain is merged")
    return merged


def _has_delete(node: Any) -> bool:
    if isinstance(node, dict):
        return DELETE_KEY in node or any(_has_delete(v) for v in node.values())
    if isinstance(node, list):
        return any(_has_delete(v) for v in node)
    return False


def names_base(path: str | Path) -> bool:
    """Whether the config file ``path`` has a top-level ``_base_`` key (False for a file that
    cannot be read: :func:`config_file_problem` reports it)."""
    try:
        cfg = yaml.safe_load(Path(path).read_bytes().decode("utf-8"))
    except (OSError, ValueError, yaml.YAMLError, RecursionError):  # ValueError: not UTF-8
        return False
    return isinstance(cfg, dict) and BASE_KEY in cfg


def resolved_config_text(path: str | Path) -> str:
    """:func:`resolve_config` of ``path`` as YAML text (keys in the order of the files)."""
    return yaml.safe_dump(resolve_config(path), sort_keys=False, allow_unicode=True)
