"""``graphfuse infer``: a trained checkpoint on raw files in the dataset's original format.

Public API (stable; ``graphfuse.show`` uses it)::

    load_predictor(ckpt: str | Path, device: str = "cpu") -> Predictor
    Predictor.family        str, the registered family of the checkpoint's network
    Predictor.class_names   list[str] | None (index = class id)
    Predictor.data_options  dict, the checkpoint block's ``data`` (the datamodule's inference_options())
    Predictor.network       the network (torch.nn.Module, eval mode)
    Predictor.read(paths: Sequence[Path], **options) -> list[Sample]
    Predictor.predict(samples: Sequence[Sample], batch_size: int = 32) -> list[Result]
    Predictor.timeline(path, stride: int = 1, **options)
        -> (frames: np.ndarray (n,), probabilities: np.ndarray (n, K))       skeleton_action
        -> {track id: (frames (n,), probabilities (n, K))}                  crossing_intention
           (frames: the LAST observed frame of each window; K = the model's classes)
    Sample: .name (str), .inputs (dict name -> tensor without batch dim), .info (dict)
    Result: .name, .probabilities (np.ndarray (K,)), .top (list of (class name, probability)),
            .info (dict), .to_dict() (what ``--json`` prints)

``options`` of ``read`` / ``timeline`` are the family's (``stride``, ``poses``, ``vehicle``,
``frames_dir``, ...; :attr:`FamilyInference.options` declares them for the command line).

How a checkpoint becomes a predictor: :func:`graphfuse.checkpoints.load_checkpoint` (weights
only), :func:`~graphfuse.checkpoints.read_graphfuse_block`; the task and its network are built
from the block's resolved config (its ``model`` section: the run's classes and arguments), or,
for a converted checkpoint without a config, from the block's ``task`` / ``model`` class paths
and ``model_init`` / ``num_class``; the state dict is loaded strictly. The network's family
(:func:`graphfuse.families.family_of_network`) names the adapter (``Family.infer``) that reads
the family's raw files through its own readers and preparation, with the data options stored in
the block; this module has no family-specific branch.

A checkpoint whose data does not match the input (joint count, bodies, channels, image size,
...) is refused with both shapes named (:class:`ShapeMismatchError`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "ExportSpec",
    "FamilyInference",
    "InferenceError",
    "Predictor",
    "Result",
    "Sample",
    "ShapeMismatchError",
    "add_infer_arguments",
    "format_results",
    "infer_main",
    "load_model",
    "load_predictor",
]


class InferenceError(ValueError):
    """An input or checkpoint ``graphfuse infer`` / ``export`` cannot use; the message names it."""


class ShapeMismatchError(InferenceError):
    """The input's shape differs from what the checkpoint's model was trained on."""


@dataclass
class Sample:
    """One prepared input: ``inputs`` maps the network's input names to tensors without the
    batch dimension (exactly what the family's dataset yields for one item); ``info`` says where
    it comes from (file, track, frames, ...)."""

    name: str
    inputs: dict[str, torch.Tensor]
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Result:
    """The prediction for one :class:`Sample`.

    Attributes:
        name: the sample's name.
        probabilities: ``(K,)`` float64, one per class (softmax for single-label tasks,
            sigmoid per class for multi-label ones, the task's mapping for crossing intention;
            for gait the distance to each gallery identity, see ``score``).
        class_names: ``K`` names (``class <k>`` where the checkpoint has none).
        top: ``(name, probability)`` pairs, most probable first (the ``--top-k`` best, or for
            multi-label every class above the threshold).
        info: family extras (``crossing`` score, observed frames, ...).
        score: what the values are: ``"probability"``, or the family's (gait: ``"distance"``,
            ranked smallest first).
    """

    name: str
    probabilities: np.ndarray
    class_names: list[str]
    top: list[tuple[str, float]]
    info: dict[str, Any] = field(default_factory=dict)
    score: str = "probability"

    def to_dict(self) -> dict[str, Any]:
        """Plain values for ``--json`` (keys ``probability`` / ``probabilities``, or the family's
        score: gait's ``distance`` / ``distances`` to the gallery identities)."""
        plural = "probabilities" if self.score == "probability" else f"{self.score}s"
        return {
            "name": self.name,
            "top": [{"class": n, self.score: float(p)} for n, p in self.top],
            plural: {n: float(p) for n, p in zip(self.class_names, self.probabilities.tolist())},
            **{k: _plain(v) for k, v in self.info.items()},
        }


def _plain(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.integer, np.floating)):
        return v.item()
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    return v


@dataclass
class ExportSpec:
    """What ``graphfuse export`` traces: ``args`` (positional inputs of ``network(*args)``, a
    ``None`` for an absent optional input), their ``names`` (ONNX input names; ``None`` entries
    have none), and per present input the dynamic dimensions ``{dim: name}`` (``0: "batch"``
    always; a time axis where the network allows it)."""

    names: tuple[str | None, ...]
    args: tuple[torch.Tensor | None, ...]
    dynamic: dict[str, dict[int, str]]


class FamilyInference:
    """Base of a family's ``graphfuse infer`` adapter (``Family.infer``).

    A subclass reads raw files into :class:`Sample` through the family's readers, preparation
    and evaluation transforms (:meth:`read`), and may override how probabilities are computed
    (:meth:`probabilities`) and how the results rank classes (:meth:`top`).

    Attributes:
        inputs_help: what ``INPUT`` is, for ``graphfuse infer --help``.
        options: extra command-line options of the family (:class:`graphfuse.families.Option`);
            their values reach :meth:`read` / :meth:`timeline` as keywords.
        multilabel: results list every class above ``threshold`` instead of the ``top_k`` best.
        score: what :meth:`probabilities` returns per class (``"probability"``; gait: ``"distance"``).
        ascending: rank the smallest values first (distances).
    """

    inputs_help: str = ""
    options: tuple[Any, ...] = ()
    multilabel: bool = False
    score: str = "probability"
    ascending: bool = False

    def __init__(self, network: nn.Module, task: nn.Module, block: Mapping[str, Any]) -> None:
        self.network = network
        self.task = task
        self.block = dict(block)
        self.data: dict[str, Any] = dict(block.get("data") or {})

    # -- what a family defines ------------------------------------------------------------------
    def read(self, paths: Sequence[Path], **options: Any) -> list[Sample]:
        """The samples of the raw files ``paths``."""
        raise NotImplementedError

    def timeline(self, path: Path, stride: int = 1, **options: Any) -> Any:
        """The prediction over time of one input (see the module docstring)."""
        raise InferenceError(f"{type(self).__name__} has no timeline")

    def expected_shapes(self) -> dict[str, list[int | None]]:
        """Per-sample input shapes the checkpoint was trained on (``None``: any size), from the
        block's ``input_shapes``; used by :meth:`check_shapes`."""
        shapes = self.data.get("input_shapes") or {}
        return {str(k): list(v) for k, v in shapes.items() if isinstance(v, (list, tuple))}

    def probabilities(self, logits: torch.Tensor) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """``(N, K)`` probabilities of ``logits`` and per-row extras; default softmax."""
        return torch.softmax(logits.double(), dim=-1).numpy(), [{} for _ in range(logits.shape[0])]

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The network's output for a collated batch as the test loop computes it: default the
        task's forward on its ``model_inputs`` (``(N, K)`` logits)."""
        model_inputs = getattr(self.task, "model_inputs", None)
        inputs = model_inputs(batch) if callable(model_inputs) else batch
        return self.task(**inputs)

    def names(self, k: int) -> list[str] | None:
        """Names of the ``k`` scores when they are not the checkpoint's classes (gait: the
        gallery identities); None: the checkpoint's class names."""
        return None

    # -- shared ----------------------------------------------------------------------------------
    def check_shapes(self, samples: Sequence[Sample]) -> None:
        """Refuse a sample whose input shape differs from the checkpoint's (both named)."""
        expected = self.expected_shapes()
        for s in samples:
            for name, t in s.inputs.items():
                want = expected.get(name)
                if want is None:
                    continue
                got = list(t.shape)
                if len(got) != len(want) or any(w is not None and w != g for w, g in zip(want, got)):
                    shown = "(" + ", ".join("any" if w is None else str(w) for w in want) + ")"
                    layout = self.data.get("layout")
                    raise ShapeMismatchError(
                        f"{s.info.get('file', s.name)}: input {name!r} has shape {tuple(got)}, but the checkpoint's "
                        f"model takes {name!r} of shape {shown}" + (f" ({layout} without N)" if layout else "")
                        + "; this input does not match the data the model was trained on")

    def collate(self, samples: Sequence[Sample]) -> dict[str, torch.Tensor]:
        """A batch of ``samples``: every input stacked along a new first dimension."""
        names = list(samples[0].inputs)
        return {n: torch.stack([s.inputs[n] for s in samples]) for n in names}


# ---------------------------------------------------------------------------------------- loading
def _import(path: str) -> Any:
    import importlib

    module, _, name = path.rpartition(".")
    if not module:
        raise InferenceError(f"not a class path: {path!r}")
    return getattr(importlib.import_module(module), name)


def _instantiate(spec: Any) -> Any:
    """A ``{class_path, init_args}`` tree of a resolved config, built (nested ones first)."""
    if isinstance(spec, dict) and "class_path" in spec:
        cls = _import(str(spec["class_path"]))
        args = {k: _instantiate(v) for k, v in (spec.get("init_args") or {}).items()}
        return cls(**args)
    if isinstance(spec, dict):
        return {k: _instantiate(v) for k, v in spec.items()}
    if isinstance(spec, list):
        return [_instantiate(v) for v in spec]
    return spec


def _build_task(block: Mapping[str, Any], source: str) -> nn.Module:
    """The task (with its network) the block describes: its resolved config's ``model``
    section, else the ``task`` / ``model`` class paths with ``model_init`` or ``num_class``."""
    import yaml

    config = block.get("config")
    if config:
        try:
            parsed = yaml.safe_load(config)
        except yaml.YAMLError as exc:
            raise InferenceError(f"{source}: the checkpoint's config is not YAML ({exc})") from None
        model = parsed.get("model") if isinstance(parsed, dict) else None
        if not isinstance(model, dict) or "class_path" not in model:
            raise InferenceError(f"{source}: the checkpoint's config has no model section")
        from graphfuse.engine import import_components

        import_components()
        return _instantiate(model)
    net_path, task_path = block.get("model"), block.get("task")
    if not net_path:
        raise InferenceError(f"{source}: the checkpoint names no network class and holds no config; "
                             "it cannot be used without its run's config")
    init = dict(block.get("model_init") or {})
    if not init and block.get("num_class") is not None:
        init = {"num_class": int(block["num_class"])}
    network = _import(str(net_path))(**init)
    if not task_path:
        return network
    return _import(str(task_path))(model=network)


def load_model(ckpt: str | os.PathLike, device: str = "cpu") -> tuple[nn.Module, nn.Module, dict[str, Any]]:
    """``(task, network, block)`` of a checkpoint, weights loaded strictly, eval mode."""
    from graphfuse.checkpoints import load_checkpoint, read_graphfuse_block

    source = str(ckpt)
    checkpoint = load_checkpoint(ckpt, map_location="cpu")
    block = read_graphfuse_block(checkpoint, ckpt)
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise InferenceError(f"{source}: no state_dict in the checkpoint")
    task = _build_task(block, source)
    network = getattr(task, "model", None)
    if not isinstance(network, nn.Module):
        network, state = task, {k.removeprefix("model."): v for k, v in state.items()}
    try:
        task.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise InferenceError(f"{source}: the weights do not fit the network its block describes ({first})") from None
    task.to(device).eval()
    return task, network, block


# -------------------------------------------------------------------------------------- predictor
class Predictor:
    """A checkpoint ready for raw files of its family (see the module docstring)."""

    def __init__(self, task: nn.Module, network: nn.Module, block: Mapping[str, Any], source: str = "") -> None:
        from graphfuse.families import family_of_network, resolve

        fam = family_of_network(network)
        if fam is None:
            raise InferenceError(f"{source}: {type(network).__name__} belongs to no registered family")
        if fam.infer is None:
            raise InferenceError(f"{source}: family {fam.name!r} has no `graphfuse infer` support yet")
        self.family: str = fam.name
        self.task = task
        self.network = network
        self.block = dict(block)
        self.source = source
        self.data_options: dict[str, Any] = dict(block.get("data") or {})
        self.adapter: FamilyInference = resolve(fam.infer)(network, task, self.block)
        names = block.get("class_names")
        self.class_names: list[str] | None = list(names) if names else None

    @property
    def device(self) -> torch.device:
        p = next(self.network.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    def names(self, k: int) -> list[str]:
        """Class names for ``k`` outputs (``class <i>`` where the checkpoint has none)."""
        own = self.adapter.names(k)
        if own is not None:
            return list(own)
        if self.class_names is not None and len(self.class_names) == k:
            return list(self.class_names)
        return [f"class {i}" for i in range(k)]

    def read(self, paths: Sequence[str | os.PathLike], **options: Any) -> list[Sample]:
        """Samples of raw files, checked against the checkpoint's input shapes."""
        samples = self.adapter.read([Path(p) for p in paths], **options)
        self.adapter.check_shapes(samples)
        return samples

    @torch.no_grad()
    def logits(self, samples: Sequence[Sample], batch_size: int = 32) -> torch.Tensor:
        """``(N, K)`` float logits of the task's forward (as ``test_step`` computes them; the
        adapter's :meth:`FamilyInference.forward`: gait's ``(N, C, P)`` embeddings)."""
        out = []
        for i in range(0, len(samples), batch_size):
            batch = self.adapter.collate(samples[i:i + batch_size])
            batch = {k: v.to(self.device) for k, v in batch.items()}
            try:
                out.append(self.adapter.forward(batch).detach().float().cpu())
            except RuntimeError as exc:  # e.g. an input too small for the network's pooling
                chunk = samples[i:i + batch_size]
                shapes = ", ".join(f"{k} {tuple(v.shape[1:])}" for k, v in batch.items())
                first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
                raise InferenceError(f"{chunk[0].info.get('file', chunk[0].name)}: the checkpoint's network fails "
                                     f"on the prepared input ({shapes}): {first}") from None
        k = int(self.block.get("num_class") or 0)
        return torch.cat(out) if out else torch.zeros(0, k)

    def predict(self, samples: Sequence[Sample], *, top_k: int = 5, threshold: float = 0.5,
                batch_size: int = 32) -> list[Result]:
        """One :class:`Result` per sample."""
        if not samples:
            return []
        logits = self.logits(samples, batch_size)
        probs, extras = self.adapter.probabilities(logits)
        names = self.names(probs.shape[1])
        results = []
        for s, p, extra in zip(samples, probs, extras):
            ranked = np.argsort(p if self.adapter.ascending else -p, kind="stable")
            if self.adapter.multilabel:
                order = [int(i) for i in ranked if p[i] >= threshold]
            else:
                order = [int(i) for i in ranked[:max(int(top_k), 1)]]
            results.append(Result(s.name, p, names, [(names[i], float(p[i])) for i in order],
                                  {**s.info, **extra}, self.adapter.score))
        return results

    def timeline(self, path: str | os.PathLike, stride: int = 1, **options: Any) -> Any:
        """The family's prediction over time of one input (module docstring)."""
        if int(stride) < 1:
            raise InferenceError(f"stride must be >= 1, got {stride}")
        return self.adapter.timeline(Path(path), int(stride), predictor=self, **options)


def load_predictor(ckpt: str | os.PathLike, device: str = "cpu") -> Predictor:
    """A :class:`Predictor` for a graphfuse checkpoint (trained or converted)."""
    task, network, block = load_model(ckpt, device)
    return Predictor(task, network, block, str(ckpt))


# ------------------------------------------------------------------------------------ the command
def format_results(results: Sequence[Result], family: str) -> str:
    """A readable table: one block per sample, its classes with probabilities."""
    lines: list[str] = []
    for r in results:
        head = r.name
        extra = {k: v for k, v in r.info.items() if k in ("crossing", "frames", "track", "observed", "nearest_sequence")}
        if extra:
            head += "  (" + ", ".join(f"{k} {_short(v)}" for k, v in extra.items()) + ")"
        lines.append(head)
        if not r.top:
            lines.append("  (no class above the threshold)")
        width = max((len(n) for n, _ in r.top), default=0)
        for rank, (n, p) in enumerate(r.top, 1):
            lines.append(f"  {rank:2d}. {n:<{width}s}  {p:.4f}")
    return "\n".join(lines) + ("\n" if lines else "")


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    if isinstance(v, (list, tuple)) and len(v) == 2:
        return f"{v[0]}-{v[1]}"
    return str(v)


def add_infer_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``graphfuse infer`` (every family's extra options included)."""
    from graphfuse.families import families, resolve

    parser.add_argument("--ckpt", required=True, help="graphfuse checkpoint (trained, or from `graphfuse convert`)")
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="raw files: " + "; ".join(
                            f"{f.name}: {resolve(f.infer).inputs_help}" for f in families() if f.infer is not None))
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--top-k", type=int, default=5, help="classes shown per sample (default 5)")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="multi-label: show the labels with probability >= T (default 0.5)")
    parser.add_argument("--stride", type=int, default=None,
                        help="frames between observation windows (crossing intention; default 1)")
    parser.add_argument("--frames-dir", default=None,
                        help="extracted frames of the videos (models with an image branch)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    seen: set[str] = {"--json", "--top-k", "--threshold", "--stride", "--frames-dir", "--device", "--ckpt"}
    for fam in families():
        if fam.infer is None:
            continue
        for opt in resolve(fam.infer).options:
            if opt.flags[0] in seen:
                continue
            seen.add(opt.flags[0])
            parser.add_argument(*opt.flags, **opt.kwargs)


def infer_main(args: argparse.Namespace) -> list[Result]:
    """``graphfuse infer``: read, predict, print (table or JSON)."""
    predictor = load_predictor(args.ckpt, device=args.device)
    options = {}
    for opt in predictor.adapter.options:
        dest = opt.kwargs.get("dest") or opt.flags[0].lstrip("-").replace("-", "_")
        options[dest] = getattr(args, dest, None)
    if args.stride is not None:
        options["stride"] = args.stride
    if args.frames_dir is not None:
        options["frames_dir"] = args.frames_dir
    if not math.isfinite(args.threshold) or not 0.0 <= args.threshold <= 1.0:
        raise InferenceError(f"--threshold must be in [0, 1], got {args.threshold}")
    samples = predictor.read(args.inputs, **options)
    results = predictor.predict(samples, top_k=args.top_k, threshold=args.threshold)
    if args.json:
        print(json.dumps({"checkpoint": str(args.ckpt), "family": predictor.family,
                          "results": [r.to_dict() for r in results]}, indent=1))
    else:
        print(f"{args.ckpt}: {predictor.family}, {len(results)} sample(s)")
        print(format_results(results, predictor.family), end="")
    return results
