"""One-line messages for the command-line and config mistakes of ``graphfuse fit|test|...``.

jsonargparse reports an unknown key in three shapes, none of them one line:

* ``unrecognized arguments: --trainer.max_epocs=1`` (a top-level key on the command line),
* ``Subcommand 'fit' does not accept option 'trainer.max_epocs'`` (the same key in a config file),
* a nested key of a class given by ``class_path`` (``--model.init_args.learning_rate=1`` or
  ``learning_rate:`` under ``model.init_args`` in a file) as about ten lines about union types,
  the real cause (``Option 'learning_rate' is not accepted`` by ``'graphfuse.tasks...'``) in the
  middle.

:func:`condense` turns each into one line naming the key and, when one is close, the valid key
the user probably meant (``did you mean --trainer.max_epochs?``); any other message keeps its
content, with the lines about union subtypes dropped, joined into one line.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import re
from collections.abc import Iterable

__all__ = ["class_options", "closest", "condense"]

_UNRECOGNIZED = re.compile(r"unrecognized arguments: (.+)")
_NOT_ACCEPTED_SUB = re.compile(r"Subcommand '(\w+)' does not accept option '([^']+)'")
_CLASS_OPTION = re.compile(r"Problem with given class_path '([\w.]+)':\s*Option '([^']+)' is not accepted")
_PARSER_KEY = re.compile(r'Parser key "([^"]+)"')
#: Lines of jsonargparse's union-type reports that say nothing about the user's mistake.
_NOISE = (
    "Does not validate against any of the Union subtypes",
    "Subtypes:",
    "Errors:",
    "Expected a <class 'NoneType'>",
    "Given value type:",
)


def closest(key: str, candidates: Iterable[str]) -> str | None:
    """The candidate most similar to ``key`` (difflib ratio at least 0.6), or None. Dotted keys
    are compared on their last part too, so ``trainer.max_epocs`` finds ``trainer.max_epochs``."""
    cands = sorted(set(candidates))
    best = difflib.get_close_matches(key, cands, n=1, cutoff=0.6)
    if best:
        return best[0]
    prefix, _, last = key.rpartition(".")
    same_parent = {c.rpartition(".")[2]: c for c in cands if c.rpartition(".")[0] == prefix}
    best = difflib.get_close_matches(last, list(same_parent), n=1, cutoff=0.6)
    return same_parent[best[0]] if best else None


def class_options(class_path: str) -> list[str]:
    """The keyword parameters of ``class_path``'s constructor (and of its bases that receive
    ``**kwargs``); empty if it cannot be imported."""
    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return []
    out: list[str] = []
    for klass in inspect.getmro(cls) if inspect.isclass(cls) else [cls]:
        init = getattr(klass, "__init__", None)
        try:
            params = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            continue
        out += [p.name for p in params if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return out


def _suggest(key: str, candidates: Iterable[str], dashes: str) -> str:
    best = closest(key, candidates)
    return f" (did you mean {dashes}{best}?)" if best else ""


def condense(message: str, option_keys: Iterable[str] = ()) -> str:
    """One line for jsonargparse's parse error ``message``.

    Args:
        message: the error text.
        option_keys: the subcommand parser's keys (``trainer.max_epochs``, ``data``, ...), the
            candidates for a misspelled top-level key.
    """
    keys = list(option_keys)
    m = _UNRECOGNIZED.search(message)
    if m:
        parts = []
        for token in m.group(1).split():
            if not token.startswith("-"):
                parts.append(f"unexpected value {token!r}")
                continue
            key = token.split("=", 1)[0].lstrip("-")
            parts.append(f"unknown option --{key}{_suggest(key, keys, '--')}")
        return "; ".join(parts)
    m = _NOT_ACCEPTED_SUB.search(message)
    if m:
        key = m.group(2)
        return f"unknown option {key}{_suggest(key, keys, '')}"
    found = _CLASS_OPTION.findall(message)
    if found:
        class_path, option = found[-1]  # the innermost class
        parent = _PARSER_KEY.search(message)
        where = f"{parent.group(1)}.init_args.{option}" if parent else option
        params = class_options(class_path)
        hint = _suggest(option, params, "")
        if not hint and params:  # nothing close: say what it takes
            shown = ", ".join(params[:12]) + (", ..." if len(params) > 12 else "")
            hint = f" (it takes: {shown})"
        return f"unknown option {where}: {class_path} has no parameter {option!r}{hint}"
    lines = [ln.strip().lstrip("- ").strip() for ln in message.splitlines()]
    lines = [ln for ln in lines if ln and not any(ln.startswith(n) for n in _NOISE)]
    return " ".join(lines)
