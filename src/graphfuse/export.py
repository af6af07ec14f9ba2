"""``graphfuse export --ckpt CKPT --format onnx|pt2 OUT``: hand a trained network to an engineer.

* **ONNX** through ``torch.onnx.export(..., dynamo=True)`` (the ``torch.export``-based
  exporter; needs the ``export`` extra: onnx, onnxscript, onnxruntime), with a dynamic batch
  dimension (named ``batch``) on every input. The file's ``metadata_props`` record the
  family, the graphfuse version, the class names (JSON), the input and output names with their
  shapes (JSON; a dynamic dimension by its name) and the checkpoint's data options (JSON: how a
  raw file becomes the input, e.g. normalisation, clip length, observation length).
* **pt2**: a ``torch.export`` archive (:func:`torch.export.save`), loadable with
  :func:`torch.export.load` and run with ``.module()(*inputs)``.

The network alone is exported (``logits`` out; probabilities are the caller's: softmax for
single-label tasks, sigmoid for multi-label, :func:`graphfuse.metrics.intention.crossing_score`
for crossing intention). The example inputs and their dynamic dimensions come from the
family's ``export`` hook (:class:`graphfuse.infer.ExportSpec`); an absent optional input
(PedGraph without velocity or image) is left out of the exported graph.

What each family exports (``tests/test_export.py`` checks Shift-GCN, PedGraph, ML-GCN and
the two-stream network; HGAT_FC was checked by hand, ONNX and pt2 at 32 px, relative
difference 2.5e-7; the ResNet baselines are not checked): Shift-GCN ``x (batch, C, T, V, M)``
(T static: the adaptive temporal shift and pooling are traced for one length); PedGraph
``pose``, ``velocity`` (and ``image`` with an image branch); ML-GCN, the ResNet baselines and
HGAT_FC one ``image (batch, 3, S, S)`` input: ML-GCN's label graph ``A`` and word embeddings
``inp`` are buffers, so the file holds them as constants (the exporter may fold the GCN
classifiers computed from them into one constant matrix); two-stream networks ``rgb (batch, 3, T, S, S)`` and ``flow (batch,
2L, T, S, S)``, one clip per row (the multi-view test protocols' ``K`` views are rows whose
scores the caller averages, as the network does for ``(N, K, ...)`` inputs).

A network the exporter cannot trace (Python control flow on a tensor's value, an unsupported
operator) is refused with one line naming the network, the format and the exporter's reason
(:class:`graphfuse.infer.InferenceError`, exit 2); so is a network that fails on the example
input its checkpoint's data options describe.

**Parity** (unless ``--no-check``): the exported program is run (onnxruntime for ONNX, the
loaded archive for pt2) on a fresh random input with a batch size different from the traced
one (so the dynamic batch is exercised) and compared with the eager network in float32: the
largest absolute difference and the largest relative difference ``max|a - b| / max|b|``
(relative to the output's scale, so logits near zero do not inflate it) are printed; a
relative difference above ``1e-4`` is an error.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["RELATIVE_TOLERANCE", "add_export_arguments", "export_checkpoint", "export_main"]

#: The parity bar in float32: ``max|exported - eager| / max|eager|``.
RELATIVE_TOLERANCE = 1e-4


class _Present(nn.Module):
    """``network(*args)`` called with only the present inputs (None kept in their places)."""

    def __init__(self, network: nn.Module, present: list[bool]) -> None:
        super().__init__()
        self.network = network
        self.present = present

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        it = iter(inputs)
        args = [next(it) if p else None for p in self.present]
        return self.network(*args)


def _fresh(args: tuple[torch.Tensor, ...], batch: int, seed: int = 1) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(batch, *a.shape[1:], generator=gen, dtype=a.dtype) for a in args)


def _differences(got: np.ndarray, want: np.ndarray) -> tuple[float, float]:
    got64, want64 = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got64.shape != want64.shape:
        raise ValueError(f"exported output shape {got64.shape} differs from the network's {want64.shape}")
    abs_diff = float(np.max(np.abs(got64 - want64))) if want64.size else 0.0
    scale = float(np.max(np.abs(want64))) if want64.size else 0.0
    return abs_diff, abs_diff / scale if scale > 0 else abs_diff


@contextlib.contextmanager
def _quiet_torch_logs() -> Iterator[None]:
    """torch's loggers at ERROR and its prints swallowed while exporting: a failed trace logs and
    prints pages (warnings, the traced graph) before it raises, and the error raised here names
    the reason in one line; a successful one prints progress lines the report replaces."""
    loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)
               if name == "torch" or name.startswith("torch.")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        # the ONNX exporter prints its progress, and a failed trace's graph, itself
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _reason(exc: BaseException) -> str:
    """The first informative line of an exporter's error (they run to pages), at most 300 characters."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[0] if lines else type(exc).__name__
    if text.startswith("Failed to export the model with torch.export") and len(lines) > 1:
        text = next((ln for ln in lines[1:] if not ln.startswith(("-", "#", "This is step"))), text)
    text = re.sub(r"<class '(?:[\w.]+\.)?(\w+)'>", r"\1", f"{type(exc).__name__}: {text}")
    return text if len(text) <= 300 else text[:297] + "..."


def export_checkpoint(ckpt: str | os.PathLike, fmt: str, out: str | os.PathLike, *, opset: int | None = None,
                      batch: int = 2, check: bool = True) -> dict[str, Any]:
    """Export a checkpoint's network; returns ``{"path", "format", "inputs", "outputs",
    "max_abs_diff", "max_rel_diff"}`` (diffs None without ``check``). Raises ``ValueError``
    when the parity bar is exceeded or the family declares no export."""
    from graphfuse import __version__
    from graphfuse.families import family_of_network, resolve
    from graphfuse.infer import InferenceError, load_model

    if fmt not in ("onnx", "pt2"):
        raise ValueError(f"--format must be onnx or pt2, got {fmt!r}")
    if batch < 1:
        raise ValueError(f"--batch must be >= 1, got {batch}")
    out = Path(out)
    _, network, block = load_model(ckpt)
    network = network.float().eval()
    fam = family_of_network(network)
    if fam is None or fam.export is None:
        raise InferenceError(f"{ckpt}: {type(network).__name__} has no export hook in its family")
    data = dict(block.get("data") or {})
    spec = resolve(fam.export)(network, data, max(batch, 2))  # batch 1 would be specialised by torch.export
    present = [a is not None for a in spec.args]
    args = tuple(a for a in spec.args if a is not None)
    names = [n for n, a in zip(spec.names, spec.args) if a is not None]
    wrapper = _Present(network, present).eval()
    dims: dict[str, Any] = {}
    dynamic_shapes = []
    for name in names:
        entry = {}
        for d, dim_name in spec.dynamic.get(name, {}).items():
            dims.setdefault(dim_name, torch.export.Dim(dim_name, min=1, max=4096))
            entry[d] = dims[dim_name]
        dynamic_shapes.append(entry)
    what = f"{ckpt}: {type(network).__name__}"
    try:
        with torch.no_grad():
            logits = wrapper(*args)
    except (RuntimeError, ValueError) as exc:
        raise InferenceError(f"{what} does not run on its example input "
                             f"({', '.join(str(tuple(a.shape)) for a in args)}): {_reason(exc)}") from None
    shapes = {n: [spec.dynamic.get(n, {}).get(i, int(s)) for i, s in enumerate(a.shape)] for n, a in zip(names, args)}
    out_shape = ["batch", *[int(s) for s in logits.shape[1:]]]
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "pt2":
        try:
            with torch.no_grad(), _quiet_torch_logs():
                program = torch.export.export(wrapper, args, dynamic_shapes=(tuple(dynamic_shapes),))
        except Exception as exc:  # noqa: BLE001 - torch.export raises many types; one line names the reason
            raise InferenceError(f"{what} cannot be exported by torch.export: {_reason(exc)}") from None
        torch.export.save(program, str(out))
    else:
        try:
            import onnx
            import onnxscript  # noqa: F401 - the dynamo exporter's dependency, checked up front
        except ImportError:
            raise InferenceError("ONNX export needs the export extra: pip install 'graphfuse[export]' "
                                 "(onnx, onnxscript, onnxruntime)") from None
        kwargs: dict[str, Any] = {"dynamo": True, "input_names": names, "output_names": ["logits"],
                                  "dynamic_shapes": (tuple(dynamic_shapes),), "external_data": False,
                                  "verbose": False}
        if opset is not None:
            kwargs["opset_version"] = int(opset)
        try:
            with torch.no_grad(), warnings.catch_warnings(), _quiet_torch_logs():
                # the exporter warns that a dynamic axis shared by several inputs keeps one name
                warnings.filterwarnings("ignore", message=".*axis name.*will not be used", category=UserWarning)
                torch.onnx.export(wrapper, args, str(out), **kwargs)
        except Exception as exc:  # noqa: BLE001 - the exporter raises many types; one line names the reason
            raise InferenceError(f"{what} cannot be exported to ONNX: {_reason(exc)}") from None
        model = onnx.load(str(out))
        meta = {
            "graphfuse_version": __version__, "family": fam.name,
            "network": f"{type(network).__module__}.{type(network).__qualname__}",
            "class_names": json.dumps(block.get("class_names")),
            "inputs": json.dumps(shapes), "outputs": json.dumps({"logits": out_shape}),
            "data_options": json.dumps(data),
        }
        del model.metadata_props[:]
        for k, v in meta.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = k, str(v)
        onnx.save(model, str(out))
    report: dict[str, Any] = {"path": str(out), "format": fmt, "inputs": shapes, "outputs": {"logits": out_shape},
                              "max_abs_diff": None, "max_rel_diff": None}
    if check:
        fresh = _fresh(args, max(batch, 2) + 1)
        with torch.no_grad():
            want = wrapper(*fresh).numpy()
        if fmt == "pt2":
            loaded = torch.export.load(str(out)).module()
            with torch.no_grad():
                got = loaded(*fresh).numpy()
        else:
            try:
                import onnxruntime as ort
            except ImportError:
                raise InferenceError("the parity check needs onnxruntime (the export extra); or pass --no-check") from None
            session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
            got = session.run(["logits"], {n: a.numpy() for n, a in zip(names, fresh)})[0]
        abs_diff, rel_diff = _differences(got, want)
        report.update(max_abs_diff=abs_diff, max_rel_diff=rel_diff)
        if not rel_diff <= RELATIVE_TOLERANCE:
            raise ValueError(f"{out}: parity check failed: the exported {fmt} differs from the network by "
                             f"{abs_diff:.3g} (relative {rel_diff:.3g} > {RELATIVE_TOLERANCE:g}) on batch {len(want)}")
    return report


def add_export_arguments(parser: Any) -> None:
    """Options of ``graphfuse export``."""
    parser.add_argument("--ckpt", required=True, help="graphfuse checkpoint (trained, or from `graphfuse convert`)")
    parser.add_argument("--format", required=True, choices=["onnx", "pt2"], dest="export_format",
                        help="onnx (torch.onnx dynamo exporter) or pt2 (torch.export archive)")
    parser.add_argument("output", metavar="OUT", help="file to write (.onnx / .pt2)")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's)")
    parser.add_argument("--batch", type=int, default=2, help="batch of the traced example (default 2; dynamic anyway)")
    parser.add_argument("--no-check", action="store_true", help="skip the parity check against the network")


def export_main(args: Any) -> dict[str, Any]:
    """``graphfuse export``: export, print the shapes and the parity result."""
    report = export_checkpoint(args.ckpt, args.export_format, args.output, opset=args.opset, batch=args.batch,
                               check=not args.no_check)
    print(f"wrote {report['path']} ({report['format']})")
    for n, s in report["inputs"].items():
        print(f"  input  {n}: {tuple(s)}")
    print(f"  output logits: {tuple(report['outputs']['logits'])}")
    if report["max_abs_diff"] is not None:
        print(f"  parity: max abs diff {report['max_abs_diff']:.3g}, max rel diff {report['max_rel_diff']:.3g} "
              f"(bar {RELATIVE_TOLERANCE:g})")
    return report
