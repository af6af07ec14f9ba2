"""Checks of YAML files before LightningCLI / jsonargparse parse them (training configs given
with ``-c`` / ``--config`` to ``graphfuse fit|validate|test|predict|info``).

jsonargparse reports a config it cannot use without naming the file, and crashes on some
(bytes that are not UTF-8, deep nesting, an alias inside itself). Each config file is read
here first; a problem is one message naming the file: not UTF-8, not valid YAML, nested too
deeply, not a mapping, aliases that expand to a huge document ("billion laughs"), or a
number that is not finite (``.nan``, ``.inf``, ``1e400``) or an integer beyond 64 bits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

__all__ = ["MAX_YAML_VALUES", "expanded_size", "config_paths", "config_file_problem"]

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


def config_file_problem(path: str | Path) -> str | None:
    """What is wrong with the config file ``path`` (a message naming it), or None."""
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
