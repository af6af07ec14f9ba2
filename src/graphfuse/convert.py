"""Convert official released weights into checkpoints the ``graphfuse`` CLI evaluates.

``graphfuse convert shiftgcn ntu_ShiftGCN_joint_xsub.pt shiftgcn_joint_xsub.ckpt`` then::

    graphfuse test -c configs/ntu60-xsub/shiftgcn/joint.yaml --ckpt_path shiftgcn_joint_xsub.ckpt

Every converter has one signature, ``convert(input_path, output_path, **options) -> Path``,
and is declared by its family (:mod:`graphfuse.families`) with its extra options and the table
of the released checkpoints it reads (:class:`graphfuse.models.weights.Weights`).
``graphfuse convert --list`` prints those tables (:func:`format_weights_table`). A converted
file whose path names a released file (``ntu_ShiftGCN_joint_xsub.pt``,
``pie-23-IVSFT/best.pth``) is checked against the release's sha256 (a mismatch warns), and its
checkpoint records the release's name; every converted checkpoint records the input's sha256.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import lightning
import torch

from .checkpoints import save_checkpoint
from .models.weights import release_info

__all__ = [
    "convert_pedgraph",
    "convert_shiftgcn",
    "convert_with",
    "format_weights_table",
    "release_info",
    "wrap_state_dict",
]


def wrap_state_dict(
    state_dict: dict[str, torch.Tensor],
    prefix: str = "model.",
    *,
    config: str | None = None,
    data: dict[str, Any] | None = None,
    class_names: list[str] | None = None,
    num_class: int | None = None,
    model: str | None = None,
    task: str | None = None,
    **info: object,
) -> dict:
    """A Lightning checkpoint holding ``state_dict`` under the task's ``prefix``, with the
    versioned ``graphfuse`` block (:func:`graphfuse.checkpoints.graphfuse_block`; ``info``
    adds the conversion's own entries: ``converted_from``, ``release``, ...).

    Only tensors and plain values, so it loads with ``torch.load(weights_only=True)``.
    """
    from .checkpoints import BLOCK_KEY, graphfuse_block

    return {
        "state_dict": {prefix + k: v for k, v in state_dict.items()},
        "pytorch-lightning_version": lightning.__version__,
        "epoch": 0,
        "global_step": 0,
        BLOCK_KEY: graphfuse_block(config=config, data=data, class_names=class_names, num_class=num_class,
                                   model=model, task=task, **info),
    }


def _release_config(release_name: str | None, table: Iterable[Any]) -> str | None:
    """The YAML text of the shipped config matching a released file (``Weights.config``,
    relative to the repository root), or None (no match, or not in a source checkout)."""
    if release_name is None:
        return None
    for w in table:
        if w.name == release_name and w.config:
            path = Path(__file__).resolve().parents[2] / w.config
            try:
                return path.read_text(encoding="utf-8") if path.is_file() else None
            except (OSError, UnicodeDecodeError):
                return None
    return None


def _ntu_class_names(num_class: int) -> list[str] | None:
    """NTU RGB+D action names A1..A<num_class> (60 or 120 classes), else None."""
    if num_class not in (60, 120):
        return None
    from importlib import resources

    text = resources.files("graphfuse.data").joinpath("resources", "ntu120_classes.txt").read_text("utf-8")
    return [ln for ln in text.splitlines() if ln and not ln.startswith("#")][:num_class]


def convert_shiftgcn(input_path: str | Path, output_path: str | Path, **options: Any) -> Path:
    """Official Shift-GCN ``.pt`` state dict -> graphfuse checkpoint (strict key check).

    The number of classes is read from ``fc.weight``; the weights are loaded into a
    :class:`graphfuse.models.ShiftGCN` with ``strict=True`` before writing, so a file that
    does not match the official architecture fails here, naming the offending keys.
    """
    from .models.shiftgcn import ShiftGCN, load_official_state_dict

    if options:
        raise TypeError(f"convert_shiftgcn takes no options, got {', '.join(sorted(options))}")
    input_path, output_path = Path(input_path), Path(output_path)
    state = load_official_state_dict(input_path)
    if "fc.weight" not in state:
        raise KeyError(f"{input_path}: no 'fc.weight' in the state dict; not a Shift-GCN checkpoint")
    num_class = int(state["fc.weight"].shape[0])
    model = ShiftGCN(num_class=num_class)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{input_path}: does not match the official Shift-GCN layout: {exc}") from exc
    from .models.shiftgcn import WEIGHTS

    release = release_info(input_path, WEIGHTS)
    # The official protocol's input: the whole 300-frame padded sequence, normalised at
    # preparation by Shift-GCN's pre_normalization, both bodies.
    data = {
        "stream": "joint" if "bone" not in input_path.name and "motion" not in input_path.name else None,
        "clip_len": None,
        "frame_stride": 1,
        "sampling": "full padded sequence",
        "normalisation": "Shift-GCN pre_normalization at preparation (graphfuse.data.ntu.normalize)",
        "joint_layout": "ntu25",
        "layout": "N C T V M",
        "input_names": ["x"],
        "input_shapes": {"x": [3, 300, 25, 2]},
    }
    ckpt = wrap_state_dict(
        {k: v.detach().clone() for k, v in model.state_dict().items()},
        converted_from=str(input_path),
        model="graphfuse.models.ShiftGCN",
        task="graphfuse.tasks.ActionRecognition",
        num_class=num_class,
        class_names=_ntu_class_names(num_class),
        config=_release_config(release.get("release"), WEIGHTS),
        data=data,
        **release,
    )
    save_checkpoint(ckpt, output_path)
    return output_path


def convert_pedgraph(input_path: str | Path, output_path: str | Path, flags: str | None = None) -> Path:
    """Official PedGraph+ ``weigths/<dataset>-23-<flags>/best.pth`` -> graphfuse checkpoint.

    The file is read with ``torch.load(weights_only=True)``.  The configuration (pose channels,
    image / velocity branches, image channels, classes) is read from the keys and shapes; the
    modality flags (``I`` image, ``V`` velocity, ``S`` segmentation channel, ``F`` forecast,
    ``T`` time crop, suffix ``-h2d`` for 2D pose) come from ``flags`` or, when ``None``, from
    the name of the file's directory if it is an official logdir name (``pie-23-IVSFT``), and
    must agree with the weights.  The model is a :class:`graphfuse.models.PedGraph` with
    ``official_image_gate_bug=True`` (the official forward), loaded with ``strict=True``.

    The checkpoint's ``graphfuse`` entry records ``model_init`` (the constructor arguments)
    and the flags; ``F`` and ``T`` are data settings (30 forecast frames, time crop), not
    model ones.
    """
    from .models.pedgraph import PedGraph, load_official_state_dict, official_config, parse_official_flags

    input_path, output_path = Path(input_path), Path(output_path)
    if flags is None:
        try:
            parsed = parse_official_flags(input_path.parent.name)
            flags = input_path.parent.name if parsed["dataset"] is not None else None
        except ValueError:
            flags = None  # not an official logdir name: keys and shapes only
    init = official_config(input_path, flags=flags)
    model = load_official_state_dict(PedGraph(**init), input_path)
    info: dict[str, object] = {
        "converted_from": str(input_path),
        "model": "graphfuse.models.PedGraph",
        "model_init": init,
        "num_class": init["num_class"],
    }
    if flags is not None:
        parsed = parse_official_flags(flags)
        info["official_flags"] = parsed["flags"]
        info["dataset"] = parsed["dataset"]
        info["forecast"] = parsed["forecast"]
        info["time_crop"] = parsed["time_crop"]
    from .models.pedgraph import WEIGHTS

    info.update(release_info(input_path, WEIGHTS))
    names = {3: ["not crossing", "crossing", "irrelevant"], 2: ["not crossing", "crossing"]}
    inputs = ["pose"] + (["velocity"] if init.get("use_velocity") else []) + (["image"] if init.get("use_image") else [])
    data: dict[str, Any] = {
        "joint_layout": "coco19",
        "input_names": inputs,
        "forecast": info.get("forecast"),
        "time_crop": info.get("time_crop"),
    }
    ckpt = wrap_state_dict(
        {k: v.detach().clone() for k, v in model.state_dict().items()},
        task="graphfuse.tasks.CrossingIntention",
        class_names=names.get(int(init["num_class"])),
        config=_release_config(info.get("release"), WEIGHTS),  # type: ignore[arg-type]
        data=data,
        **info,
    )
    save_checkpoint(ckpt, output_path)
    return output_path


# -- released weights -----------------------------------------------------------------------------
def convert_with(
    converter: Any, input_path: str | Path, output_path: str | Path, **options: Any
) -> list[str]:
    """Run a family's :class:`~graphfuse.families.Converter`; return the lines ``graphfuse
    convert`` prints: ``wrote OUT`` and, for a released file, its reported number and the
    ``graphfuse test`` command that evaluates it."""
    import sys

    from .families import resolve
    from .models.weights import file_sha256, find_weights

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = resolve(converter.convert)(input_path, output_path, **options)
    for w in caught:  # one line each on stderr (a sha256 mismatch), no source line
        print(f"graphfuse convert: warning: {w.message}", file=sys.stderr)
    lines = [f"wrote {out}"]
    release = find_weights(input_path, converter.released())
    if release is not None and release.sha256 is not None and file_sha256(input_path) != release.sha256:
        release = None  # not the published file (warned above)
    if release is not None:
        reported = "no number reported" if release.reported is None else f"reported {release.reported_text}"
        lines.append(f"released file {release.file}: {release.num_class} classes, {reported} "
                     f"({release.source})")
        if release.config:
            lines.append("evaluate with: graphfuse test -c " + " ".join(
                [release.config, *release.config_overrides, f"--ckpt_path {out}"]))
        if release.notes:
            lines.append(f"note: {release.notes}")
    return lines


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def format_weights_table(family_list: Sequence[Any] | None = None) -> str:
    """``graphfuse convert --list``: per family and converter, a Markdown table of the released
    checkpoints (file, sha256 or ``unknown``, classes, config with its overrides, reported
    number, source, protocol, notes)."""
    from .families import families

    out: list[str] = []
    for family in families() if family_list is None else family_list:
        for converter in family.converters:
            table = converter.released()
            out.append(f"{family.name}: graphfuse convert {converter.name} {converter.usage} "
                       f"({len(table)} released checkpoints)")
            out.append("")
            out.append("| file | sha256 | classes | config | reported | source | protocol | notes |")
            out.append("|---|---|---|---|---|---|---|---|")
            for w in table:
                config = " ".join([w.config, *w.config_overrides]) if w.config else "none shipped"
                out.append("| " + " | ".join(_cell(c) for c in (
                    w.file, w.sha256 or "unknown", w.num_class, config, w.reported_text, w.source,
                    w.protocol, w.notes or "-")) + " |")
            out.append("")
    return "\n".join(out) + ("\n" if out else "")
