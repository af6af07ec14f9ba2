"""Convert official released weights into checkpoints the ``graphfuse`` CLI evaluates.

``graphfuse convert shiftgcn ntu_ShiftGCN_joint_xsub.pt shiftgcn_joint_xsub.ckpt`` then::

    graphfuse test -c configs/ntu60-xsub/shiftgcn/joint.yaml --ckpt_path shiftgcn_joint_xsub.ckpt
"""

from __future__ import annotations

from pathlib import Path

import lightning
import torch

from .checkpoints import save_checkpoint

__all__ = ["convert_pedgraph", "convert_shiftgcn", "wrap_state_dict"]


def wrap_state_dict(state_dict: dict[str, torch.Tensor], prefix: str = "model.", **info: object) -> dict:
    """A Lightning checkpoint holding ``state_dict`` under the task's ``prefix``.

    Only tensors and plain values, so it loads with ``torch.load(weights_only=True)``.
    """
    return {
        "state_dict": {prefix + k: v for k, v in state_dict.items()},
        "pytorch-lightning_version": lightning.__version__,
        "epoch": 0,
        "global_step": 0,
        "graphfuse": {"format_version": 1, **{k: v for k, v in info.items()}},
    }


def convert_shiftgcn(input_path: str | Path, output_path: str | Path) -> Path:
    """Official Shift-GCN ``.pt`` state dict -> graphfuse checkpoint (strict key check).

    The number of classes is read from ``fc.weight``; the weights are loaded into a
    :class:`graphfuse.models.ShiftGCN` with ``strict=True`` before writing, so a file that
    does not match the official architecture fails here, naming the offending keys.
    """
    from .models.shiftgcn import ShiftGCN, load_official_state_dict

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
    ckpt = wrap_state_dict(
        {k: v.detach().clone() for k, v in model.state_dict().items()},
        converted_from=str(input_path),
        model="graphfuse.models.ShiftGCN",
        num_class=num_class,
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
    ckpt = wrap_state_dict({k: v.detach().clone() for k, v in model.state_dict().items()}, **info)
    save_checkpoint(ckpt, output_path)
    return output_path
