"""Convert official released weights into checkpoints the ``graphfuse`` CLI evaluates.

``graphfuse convert shiftgcn ntu_ShiftGCN_joint_xsub.pt shiftgcn_joint_xsub.ckpt`` then::

    graphfuse test -c configs/ntu60-xsub/shiftgcn/joint.yaml --ckpt_path shiftgcn_joint_xsub.ckpt
"""

from __future__ import annotations

from pathlib import Path

import lightning
import torch

from .io import atomic_path

__all__ = ["convert_shiftgcn", "wrap_state_dict"]


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
    with atomic_path(output_path, suffix=".ckpt") as tmp:
        torch.save(ckpt, tmp)
    return output_path
