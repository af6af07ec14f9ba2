"""Ablation study specification: a YAML file naming a base config, a baseline and variants.

Example (``configs/ablations/synthetic_ntu.yaml``)::

    name: synthetic-ntu-quickstart         # runs/<name>/<variant>/seed<k>/
    description: clip length, learning rate and batch size of the quickstart recipe
    base: ../synthetic-ntu/shiftgcn/quickstart.yaml   # relative to this file (or the cwd)
    baseline: baseline
    seeds: [0, 1, 2]                       # default [0, 1, 2]
    metrics: [test/top1, test/mean_class]  # default; the first one is the headline
    select: {monitor: val/top1, mode: max} # default = the task's own selection metric (below)
    overrides: {trainer.max_epochs: 10}    # applied to every variant (optional)
    variants:
      baseline: {}
      clip_32: {data.init_args.clip_len: 32}

A variant may instead be a late fusion of other variants' runs (no training; see
:class:`EnsembleVariant` and docs/ablation.md)::

      joint_bone: {ensemble: {of: [baseline, clip_32], weights: [0.6, 0.4], softmax: false}}

``select`` is the model-selection rule every run applies: the best epoch on the task's
``monitor`` (``val/top1`` for ``ActionRecognition``, ``val/balanced_acc`` for
``CrossingIntention``, or ``model.init_args.monitor`` where the task has that argument),
maximised. Left out, it is what the base config's task records; given, it must equal that.
``select: last`` is the rule of recipes that select nothing (no validation split): every run
tests its last state (``--run.select last``); ``mode`` is then ``last``.

Every override is a dotted key of the resolved LightningCLI config, exactly as on the
``graphfuse fit`` command line without the leading ``--``. :func:`check_config` parses the
base config with each variant's full override list through graphfuse's own CLI parser, so
an unknown key or an invalid value is an error naming the variant and the key before
anything runs.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from graphfuse.config_files import (
    MAX_YAML_VALUES,
    ConfigError,
    config_file_problem,
    expanded_size,
    resolve_config,
    with_resolved_configs,
)

__all__ = [
    "SpecError",
    "AblationSpec",
    "load_spec",
    "spec_from_dict",
    "override_args",
    "parse_seeds",
    "check_config",
    "ConfigCheck",
    "DEFAULT_SEEDS",
    "DEFAULT_METRICS",
    "DEFAULT_SELECT",
    "RESERVED_KEYS",
    "config_monitor",
    "EnsembleVariant",
    "ENSEMBLE_KEY",
]

DEFAULT_SEEDS = (0, 1, 2)
#: Largest seed: ``seed_everything`` (numpy's legacy seeding) takes 32-bit seeds.
MAX_SEED = 2**32 - 1
#: test metrics at the epoch selected on validation, as every run's summary.json reports them.
DEFAULT_METRICS = ("test/top1", "test/mean_class")
#: The selection rule of a run whose task declares no ``monitor`` (``ModelCheckpoint(monitor="val/top1",
#: mode="max")`` in the CLI); a task's own ``monitor`` replaces ``val/top1`` (see :func:`config_monitor`).
DEFAULT_SELECT = {"monitor": "val/top1", "mode": "max"}
SPEC_KEYS = ("name", "description", "base", "baseline", "variants", "seeds", "metrics", "select", "overrides")
#: Keys the runner sets itself: the seed (so that variants are paired by seed) and the run
#: directory. ``run.test_after_fit`` too: a study's table needs the test metrics.
RESERVED_KEYS = ("seed_everything", "data.init_args.seed", "ckpt_path", "config")
RESERVED_PREFIXES = ("run.",)
#: Summary fields reportable besides ``test/*``, ``val/*``, ``train/*`` metrics.
SUMMARY_FIELDS = ("train_time_s", "trainable_parameters", "best_epoch", "epochs_trained")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
_METRIC_RE = re.compile(r"^(test|val|train)/[A-Za-z0-9_.-]+$")


class SpecError(ValueError):
    """An invalid ablation spec; the message names the spec file, the variant and the key."""


#: The one key of an ensemble variant: ``name: {ensemble: {of: [...], weights: [...], softmax: false}}``.
ENSEMBLE_KEY = "ensemble"
_ENSEMBLE_FIELDS = ("of", "weights", "softmax")


@dataclass(frozen=True)
class EnsembleVariant:
    """A variant that trains nothing: per seed, the late fusion (:func:`graphfuse.ensemble.ensemble`,
    samples matched by id) of its members' runs of that seed.

    Attributes:
        members: trained variants of the same spec (not ensembles), at least two, distinct.
        weights: one weight per member (default all 1), as ``graphfuse ensemble --weights``.
        softmax: fuse softmax probabilities instead of raw logits.
    """

    members: tuple[str, ...]
    weights: tuple[float, ...]
    softmax: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The spec form, ``{"ensemble": {"of": [...], "weights": [...], "softmax": bool}}``."""
        return {ENSEMBLE_KEY: {"of": list(self.members), "weights": list(self.weights), "softmax": self.softmax}}

    @property
    def mode(self) -> str:
        return "softmax" if self.softmax else "logits"

    def describe(self) -> str:
        """``0.6 joint + 0.4 bone (logits)``."""
        terms = " + ".join(f"{w:g} {m}" for m, w in zip(self.members, self.weights))
        return f"{terms} ({self.mode})"


def _parse_ensemble(source: str, variant: str, value: Any) -> EnsembleVariant:
    """Structure of one ensemble definition (members are checked against the spec later)."""
    where = f"{source}: variant {variant!r}: ensemble"
    if not isinstance(value, dict):
        raise SpecError(
            f"{where}: expected a mapping {{of: [variant, ...], weights: [w, ...], softmax: false}}, "
            f"got {type(value).__name__}"
        )
    unknown = [k for k in value if k not in _ENSEMBLE_FIELDS]
    if unknown:
        raise SpecError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(_ENSEMBLE_FIELDS)}"
        )
    members = value.get("of")
    if not isinstance(members, list) or len(members) < 2 or not all(isinstance(m, str) for m in members):
        raise SpecError(f"{where}: 'of' must list at least two variant names, got {members!r}")
    if len(set(members)) != len(members):
        raise SpecError(f"{where}: 'of' names a variant twice: {members}")
    weights_raw = value.get("weights")
    if weights_raw is None:
        weights = [1.0] * len(members)
    else:
        if not isinstance(weights_raw, list) or not all(
            isinstance(w, (int, float)) and not isinstance(w, bool) for w in weights_raw
        ):
            raise SpecError(f"{where}: 'weights' must be a list of numbers, got {weights_raw!r}")
        if len(weights_raw) != len(members):
            raise SpecError(
                f"{where}: {len(weights_raw)} weight(s) for {len(members)} member(s) {members}; give one per member"
            )
        weights = [float(w) for w in weights_raw]
        if not all(math.isfinite(w) and w >= 0 for w in weights) or not any(w > 0 for w in weights):
            raise SpecError(f"{where}: weights must be finite, >= 0 and not all 0, got {weights_raw}")
    soft = value.get("softmax", False)
    if not isinstance(soft, bool):
        raise SpecError(f"{where}: 'softmax' must be true or false, got {soft!r}")
    return EnsembleVariant(tuple(members), tuple(weights), soft)


def _is_ensemble_entry(ovr: Any) -> bool:
    return isinstance(ovr, dict) and ENSEMBLE_KEY in ovr


@dataclass
class AblationSpec:
    """A parsed ablation spec (see the module docstring).

    Attributes:
        name: study name; its runs live in ``<root>/<name>/<variant>/seed<k>/``.
        base: absolute path of the base config.
        baseline: name of the variant the others are compared with.
        variants: ``{variant: {dotted.key: value}}`` in spec order; an ensemble variant's entry is
            its normalised spec form ``{"ensemble": {"of": [...], "weights": [...], "softmax": ...}}``.
        seeds: seeds run for every variant (same seed -> same data order and initialisation).
        metrics: reported metrics; the first is the headline of the bar chart.
        select: the model-selection rule: ``{monitor: <the task's monitor>, mode: max}`` (only
            the rule the runs apply is accepted).
        overrides: overrides applied to every variant before its own.
        description: free text for the report.
        path: the spec file (None when built from a dict).
        ensembles: ``{variant: EnsembleVariant}`` of the variants that fuse other variants' runs.
    """

    name: str
    base: Path
    baseline: str
    variants: dict[str, dict[str, Any]]
    seeds: list[int] = field(default_factory=lambda: list(DEFAULT_SEEDS))
    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS))
    select: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_SELECT))
    overrides: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    path: Path | None = None
    ensembles: dict[str, EnsembleVariant] = field(default_factory=dict)

    def variant_overrides(self, variant: str) -> dict[str, Any]:
        """The effective overrides of ``variant``: the common ones, then its own (which win).
        An ensemble variant has none (its members are trained; it is not)."""
        if variant in self.ensembles:
            return {}
        return {**self.overrides, **self.variants[variant]}

    def is_ensemble(self, variant: str) -> bool:
        return variant in self.ensembles

    def trained_variants(self, variants: list[str] | None = None) -> list[str]:
        """The variants that are trained (of ``variants``, default all), baseline first."""
        return [v for v in (variants or self.ordered_variants()) if v not in self.ensembles]

    def ordered_variants(self) -> list[str]:
        """Variant names, baseline first, then in spec order."""
        return [self.baseline] + [v for v in self.variants if v != self.baseline]

    def to_dict(self) -> dict[str, Any]:
        """A YAML-ready dict (``base`` absolute) that :func:`spec_from_dict` reads back."""
        return {
            "name": self.name,
            "description": self.description,
            "base": str(self.base),
            "baseline": self.baseline,
            "seeds": list(self.seeds),
            "metrics": list(self.metrics),
            "select": dict(self.select),
            "overrides": dict(self.overrides),
            "variants": {k: dict(v) for k, v in self.variants.items()},
        }


def _where(source: str, variant: str | None) -> str:
    return (
        f"{source}: variant {variant!r}"
        if variant is not None
        else f"{source}: overrides (common to all variants)"
    )


def _check_overrides(source: str, variant: str | None, ovr: Any) -> dict[str, Any]:
    where = _where(source, variant)
    if ovr is None:
        return {}
    if not isinstance(ovr, dict):
        raise SpecError(
            f"{where}: expected a mapping of dotted config keys to values, got {type(ovr).__name__}"
        )
    out: dict[str, Any] = {}
    for key, value in ovr.items():
        if not isinstance(key, str) or not key:
            raise SpecError(f"{where}: override keys must be non-empty strings, got {key!r}")
        if key.startswith("-"):
            raise SpecError(f"{where}: write override keys without leading dashes: {key!r}")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\+?", key):
            raise SpecError(f"{where}: {key!r} is not a dotted config key (e.g. model.init_args.lr)")
        bare = key.rstrip("+")
        if bare in RESERVED_KEYS or bare.startswith(RESERVED_PREFIXES):
            raise SpecError(
                f"{where}: {key!r} is set by `graphfuse ablate` itself (seeds come from `seeds`, "
                "so that every variant sees the same data order and initialisation per seed; the run "
                "directory is <root>/<study>/<variant>/seed<k>); remove it from the spec"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise SpecError(f"{where}: {key!r} has a non-finite value {value!r}")
        if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
            raise SpecError(f"{where}: {key!r} = {value} is outside the 64-bit integer range")
        out[key] = value
    return out


def _resolve_base(base: Any, spec_dir: Path | None, source: str) -> Path:
    if not isinstance(base, str) or not base or "\0" in base or len(base) > 4096:
        shown = base if not isinstance(base, str) or len(base) <= 80 else base[:80] + "..."
        raise SpecError(f"{source}: 'base' must be the path of a config file, got {shown!r}")
    try:
        p = Path(base).expanduser()
    except RuntimeError:  # "~user/..." naming no user
        raise SpecError(f"{source}: base config {base!r}: no such user's home directory") from None
    candidates = (
        [p] if p.is_absolute() else ([spec_dir / p] if spec_dir is not None else []) + [Path.cwd() / p]
    )
    for c in candidates:
        try:
            if c.is_file():
                return c.resolve()
        except OSError:  # e.g. a path component longer than the file system allows
            continue
    tried = ", ".join(str(c) for c in candidates)
    raise SpecError(f"{source}: base config {base!r} not found (tried {tried})")


def spec_from_dict(
    raw: Any, source: str = "<spec>", spec_dir: Path | None = None, path: Path | None = None
) -> AblationSpec:
    """Validate the structure of a spec mapping (not yet against the config: see :func:`check_config`)."""
    if not isinstance(raw, dict):
        raise SpecError(f"{source}: an ablation spec is a YAML mapping, got {type(raw).__name__}")
    unknown = [k for k in raw if k not in SPEC_KEYS]
    if unknown:
        raise SpecError(
            f"{source}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(SPEC_KEYS)}"
        )
    for k in ("name", "base", "baseline", "variants"):
        if k not in raw:
            raise SpecError(f"{source}: missing required key {k!r}")
    name = raw["name"]
    if not isinstance(name, str) or not all(_NAME_RE.match(part) for part in name.split("/")):
        raise SpecError(
            f"{source}: 'name' must be letters, digits, '_', '.', '+', '-' (segments may be "
            f"separated by '/'), got {name!r}"
        )
    base = _resolve_base(raw["base"], spec_dir, source)

    variants_raw = raw["variants"]
    if not isinstance(variants_raw, dict) or not variants_raw:
        raise SpecError(f"{source}: 'variants' must be a non-empty mapping {{name: {{dotted.key: value}}}}")
    variants: dict[str, dict[str, Any]] = {}
    ensembles: dict[str, EnsembleVariant] = {}
    for vname, ovr in variants_raw.items():
        if not isinstance(vname, str) or not _NAME_RE.match(vname):
            raise SpecError(
                f"{source}: variant name {vname!r} must start with a letter or digit and use only "
                "letters, digits, '_', '.', '+', '-' (it becomes a directory name)"
            )
        if _is_ensemble_entry(ovr):
            others = [k for k in ovr if k != ENSEMBLE_KEY]
            if others:
                raise SpecError(
                    f"{source}: variant {vname!r}: an ensemble variant trains nothing, so it takes no overrides "
                    f"(found {', '.join(map(repr, others))}); put them on its member variants"
                )
            ensembles[vname] = _parse_ensemble(source, vname, ovr[ENSEMBLE_KEY])
            variants[vname] = ensembles[vname].to_dict()
        else:
            variants[vname] = _check_overrides(source, vname, ovr)
    for vname, ens in ensembles.items():
        for m in ens.members:
            if m == vname:
                raise SpecError(f"{source}: variant {vname!r}: an ensemble cannot be its own member")
            if m not in variants:
                raise SpecError(
                    f"{source}: variant {vname!r}: ensemble member {m!r} is not a variant of this spec "
                    f"({', '.join(variants)})"
                )
            if m in ensembles:
                raise SpecError(
                    f"{source}: variant {vname!r}: ensemble member {m!r} is itself an ensemble; list the "
                    "trained variants to fuse instead"
                )
    if ensembles and len(ensembles) == len(variants):
        raise SpecError(f"{source}: every variant is an ensemble; an ensemble fuses trained variants")
    baseline = raw["baseline"]
    if baseline not in variants:
        raise SpecError(f"{source}: baseline {baseline!r} is not one of the variants ({', '.join(variants)})")

    seeds_raw = raw.get("seeds", list(DEFAULT_SEEDS))
    if isinstance(seeds_raw, int) and not isinstance(seeds_raw, bool):
        raise SpecError(f"{source}: 'seeds' is a list of seeds, e.g. [0, 1, 2]; got {seeds_raw!r}")
    seeds = parse_seeds(seeds_raw, source)

    metrics_raw = raw.get("metrics", list(DEFAULT_METRICS))
    if isinstance(metrics_raw, str):
        metrics_raw = [metrics_raw]
    if not isinstance(metrics_raw, list) or not metrics_raw:
        raise SpecError(f"{source}: 'metrics' must be a non-empty list, got {metrics_raw!r}")
    for m in metrics_raw:
        if not isinstance(m, str) or not (_METRIC_RE.match(m) or m in SUMMARY_FIELDS):
            raise SpecError(
                f"{source}: metric {m!r} is not 'test/<name>', 'val/<name>', 'train/<name>' "
                f"or one of {', '.join(SUMMARY_FIELDS)}"
            )
    if len(set(metrics_raw)) != len(metrics_raw):
        raise SpecError(f"{source}: 'metrics' lists a metric twice: {metrics_raw}")

    # The rule the runs apply: the base config's task monitor (statically read; check_config
    # confirms it on every variant's resolved config).
    recorded = {"monitor": _base_monitor(base) or DEFAULT_SELECT["monitor"], "mode": "max"}
    select = raw.get("select", dict(recorded))
    if select in ("best", None):
        select = dict(recorded)
    elif select == "last":  # recipes that select nothing: every run tests its last state (--run.select last)
        select = {**recorded, "mode": "last"}
        recorded = dict(select)
    if not isinstance(select, dict) or set(select) - {"monitor", "mode"}:
        raise SpecError(f"{source}: 'select' must be {{monitor: ..., mode: ...}}, got {select!r}")
    select = {**recorded, **select}
    if select != recorded:
        raise SpecError(
            f"{source}: select {select} is not supported: every run selects its checkpoint as the best epoch "
            f"on its task's monitor, {recorded['monitor']} ({recorded['mode']}) for {base.name}, and is tested "
            "at that epoch (leave 'select' out to use it)"
        )
    description = raw.get("description") or ""
    if not isinstance(description, str):
        raise SpecError(f"{source}: 'description' must be text")
    if ensembles:
        _check_ensemble_task(source, base, next(iter(ensembles)))
    return AblationSpec(
        name=name,
        base=base,
        baseline=baseline,
        variants=variants,
        seeds=seeds,
        metrics=list(metrics_raw),
        select=select,
        overrides=_check_overrides(source, None, raw.get("overrides")),
        description=description,
        path=path,
        ensembles=ensembles,
    )


def parse_seeds(seeds: Any, source: str = "--seeds") -> list[int]:
    """A non-empty list of distinct non-negative ints (strings like ``"0,1,2"`` are split)."""
    if isinstance(seeds, str):
        seeds = [s for s in re.split(r"[,\s]+", seeds) if s]
    if not isinstance(seeds, (list, tuple)) or not seeds:
        raise SpecError(f"{source}: seeds must be a non-empty list of integers, got {seeds!r}")
    out = []
    for s in seeds:
        try:
            k = int(s) if not isinstance(s, (bool, float)) else None
        except (TypeError, ValueError):
            k = None
        if k is None or k < 0 or (isinstance(s, str) and not s.strip().isdigit()):
            raise SpecError(f"{source}: seed {s!r} is not a non-negative integer")
        if k > MAX_SEED:
            raise SpecError(f"{source}: seed {k} is too large (seeds are at most {MAX_SEED}, as numpy's)")
        out.append(k)
    if len(set(out)) != len(out):
        raise SpecError(f"{source}: seeds repeat: {out}")
    return out


def load_spec(path: str | Path) -> AblationSpec:
    """Read and structurally validate an ablation spec file.

    Raises:
        SpecError: unknown or missing keys, bad names, seeds or metrics, a missing base config,
            a reserved override key; the message names the file and the variant.
    """
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: ablation spec not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise SpecError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except yaml.YAMLError as e:
        raise SpecError(f"{path}: not valid YAML: {e}") from e
    except RecursionError:
        raise SpecError(f"{path}: not a usable spec (YAML nested too deeply)") from None
    if expanded_size(raw) > MAX_YAML_VALUES:
        raise SpecError(f"{path}: more than {MAX_YAML_VALUES} values once YAML aliases are expanded (or an "
                        "alias inside itself); an ablation spec is a short mapping")
    return spec_from_dict(raw, source=str(path), spec_dir=path.resolve().parent, path=path.resolve())


def _cli_value(value: Any) -> str:
    # jsonargparse reads command-line values as YAML; JSON is YAML, and keeps lists, dicts,
    # booleans and null unambiguous. Strings are passed as they are.
    if isinstance(value, str):
        return value
    return json.dumps(value)


def override_args(overrides: dict[str, Any]) -> list[str]:
    """``{"model.init_args.lr": 0.05}`` -> ``["--model.init_args.lr=0.05"]``."""
    return [f"--{k}={_cli_value(v)}" for k, v in overrides.items()]


def _task_class(class_path: str) -> Any:
    """The task class named by a config's ``model.class_path`` (full path or a short name)."""
    import importlib

    if "." in class_path:
        module, _, name = class_path.rpartition(".")
        return getattr(importlib.import_module(module), name)
    from graphfuse import tasks

    return getattr(tasks, class_path)


def config_monitor(model_cfg: Any) -> str | None:
    """The selection metric of a config's ``model`` entry (``{class_path, init_args}``): its
    ``init_args.monitor`` when set, else the task class's ``monitor`` attribute, else
    ``val/top1``. None when the task class cannot be resolved."""
    from graphfuse.engine import task_monitor

    if not isinstance(model_cfg, dict):
        return None
    init = model_cfg.get("init_args") or {}
    if isinstance(init, dict) and isinstance(init.get("monitor"), str):
        return init["monitor"]
    class_path = model_cfg.get("class_path")
    if not isinstance(class_path, str):
        return None
    try:
        cls = _task_class(class_path)
        return task_monitor(cls)
    except (ImportError, AttributeError, ValueError):
        return None


def _base_monitor(base: Path) -> str | None:
    try:
        cfg = resolve_config(base)  # a base-plus-delta config with its _base_ chain applied
    except (OSError, ConfigError):
        return None  # check_config reports an unreadable base config
    return config_monitor(cfg.get("model")) if isinstance(cfg, dict) else None


def _is_action_task(model_cfg: Any) -> bool | None:
    """Whether a config's ``model`` entry is an :class:`ActionRecognition` task (None: unknown)."""
    if not isinstance(model_cfg, dict) or not isinstance(model_cfg.get("class_path"), str):
        return None
    try:
        cls = _task_class(model_cfg["class_path"])
    except (ImportError, AttributeError, ValueError):
        return None
    from graphfuse.tasks import ActionRecognition

    return isinstance(cls, type) and issubclass(cls, ActionRecognition)


def _ensemble_task_error(where: str, what: str) -> SpecError:
    return SpecError(
        f"{where}: ensemble variants support action recognition only for now ({what} is not an "
        "ActionRecognition task); fuse crossing-intention runs by hand, or drop the ensemble variant"
    )


def _check_ensemble_task(source: str, base: Path, variant: str) -> None:
    try:
        cfg = resolve_config(base)
    except (OSError, ConfigError):
        return  # check_config reports an unreadable base config
    model = cfg.get("model") if isinstance(cfg, dict) else None
    if _is_action_task(model) is False:
        raise _ensemble_task_error(f"{source}: variant {variant!r}", f"the base config's model {model.get('class_path')}")


@dataclass
class ConfigCheck:
    """What :func:`check_config` learnt from a variant's resolved config."""

    has_data_seed: bool
    protocol: str
    resolved: dict[str, Any]
    monitor: str = DEFAULT_SELECT["monitor"]


class _ParserReady(Exception):
    pass


def _graphfuse_parser() -> Any:
    """graphfuse's own ``fit`` parser (LightningCLI + jsonargparse), built without running anything."""
    from graphfuse import engine

    engine.import_components()

    class _ParseOnly(engine.GraphfuseCLI):
        def parse_arguments(self, parser: Any, args: Any) -> None:
            raise _ParserReady(parser)

    try:
        _ParseOnly(args=["fit"], parser_kwargs={"exit_on_error": False})
    except _ParserReady as ready:
        return ready.args[0]
    raise RuntimeError("GraphfuseCLI did not reach argument parsing")


def _condense(msg: str, limit: int = 1500) -> str:
    msg = str(msg).strip()
    return msg if len(msg) <= limit else msg[:limit] + " ..."


def _has_key(ns: Any, key: str) -> bool:
    try:
        return key in ns
    except Exception:  # a path through a non-namespace value (a list, a scalar)
        return False


def check_config(spec: AblationSpec, variants: list[str] | None = None) -> dict[str, ConfigCheck]:
    """Parse the base config with every variant's overrides through graphfuse's CLI parser.

    Nothing is instantiated (no data is read, no model built). For a failing variant, the
    overrides are applied one at a time to find the first one that breaks the parse, and the
    error says whether its key does not exist in the resolved config or its value is invalid.

    Returns:
        ``{variant: ConfigCheck}``.

    Raises:
        SpecError: naming the spec, the variant and the key.
    """
    parser = _graphfuse_parser()
    source = str(spec.path or "<spec>")
    problem = config_file_problem(spec.base)  # the file and its _base_ chain, as `fit` checks them
    if problem:
        raise SpecError(f"{source}: base config {problem}")
    try:  # a base-plus-delta config reaches the parser resolved, as `graphfuse fit` passes it
        base_args, _ = with_resolved_configs(["fit", "-c", str(spec.base)])
    except ConfigError as e:
        raise SpecError(f"{source}: base config {e}") from None

    def parse(extra: list[str]) -> Any:
        return parser.parse_args(base_args + extra)

    try:
        base_cfg = parse([])
    except Exception as e:  # jsonargparse raises ArgumentError subclasses, and others on odd input
        raise SpecError(f"{source}: base config {spec.base} does not parse: {_condense(e)}") from e

    out: dict[str, ConfigCheck] = {}
    selected = variants or spec.ordered_variants()
    # An ensemble variant is not parsed; its members are (they must be action-recognition runs).
    to_check = spec.trained_variants(selected)
    for e in selected:
        if e in spec.ensembles:
            to_check += [m for m in spec.ensembles[e].members if m not in to_check]
    for variant in to_check:
        effective = spec.variant_overrides(variant)
        items = list(effective.items())
        args = override_args(effective)
        try:
            cfg = parse(args)
        except Exception as full_error:
            prev = base_cfg
            for i, (key, value) in enumerate(items):
                try:
                    prev_i = parse(args[: i + 1])
                except Exception as e:
                    who = _where(source, variant if key in spec.variants[variant] else None)
                    if key in spec.overrides and key not in spec.variants[variant]:
                        who += f" (checked with variant {variant!r})"
                    if not _has_key(prev.fit, key.rstrip("+")):
                        raise SpecError(
                            f"{who}: override {key!r} does not exist in the resolved config of {spec.base} "
                            f"(`graphfuse fit -c {spec.base} --print_config` lists the keys).\n{_condense(e)}"
                        ) from e
                    raise SpecError(f"{who}: override {key!r} = {value!r} is invalid:\n{_condense(e)}") from e
                prev = prev_i
            raise SpecError(
                f"{_where(source, variant)}: the overrides do not parse together:\n{_condense(full_error)}"
            ) from full_error
        fit = cfg.fit
        resolved = fit.as_dict()
        monitor = config_monitor(resolved.get("model")) or DEFAULT_SELECT["monitor"]
        if monitor != spec.select["monitor"]:
            raise SpecError(
                f"{_where(source, variant)}: its runs would select on {monitor} (the task's monitor), but the "
                f"study selects on {spec.select['monitor']}; every variant of a study must select on the same "
                "metric (set 'select' to match, or drop the override that changes it)"
            )
        out[variant] = ConfigCheck(
            has_data_seed="data.init_args.seed" in fit,
            protocol=str(fit.get("protocol") or "holdout"),
            resolved=resolved,
            monitor=monitor,
        )
    for e in selected:
        for m in spec.ensembles[e].members if e in spec.ensembles else ():
            if _is_action_task(out[m].resolved.get("model")) is False:
                raise _ensemble_task_error(
                    f"{source}: variant {e!r}", f"member {m!r}'s model {out[m].resolved['model'].get('class_path')}"
                )
    return out
