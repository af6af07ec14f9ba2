"""Gait recognition (CASIA-B, OU-MVLP; GaitSet, GLN): the family's registration.

* ``graphfuse prepare casia-b | oumvlp`` (:mod:`graphfuse.data.gait.prepare`: the silhouette
  PNG folders as distributed, or OpenGait's pretreated ``.pkl`` folders through the restricted
  unpickler) and ``graphfuse prepare synthetic-casia-b`` (:mod:`graphfuse.data.synthetic.gait`);
* ``graphfuse convert opengait IN.pt OUT.ckpt`` (:func:`graphfuse.models.gait.convert_opengait`;
  OpenGait's released checkpoints in :data:`graphfuse.models.gait.WEIGHTS`);
* ``graphfuse info``: ``silhouettes (1, T, S, S - 2 * (S // 64 * 10))``, ``T`` = the config's
  ``data.init_args.frames`` (30), ``S`` = the prepared data's frame size (``meta.json: size``;
  without prepared data 128 for a folder named ``...-128``, else 64).

Imports nothing heavy at module level: every function imports what it runs.
"""

from __future__ import annotations

import argparse
from typing import Any

from . import Converter, Family, Option, PrepareCommand, data_init_args, register_family

__all__ = ["DEFAULT_FRAMES", "DEFAULT_SIZE", "FAMILY", "example_input"]

#: Frames per training sequence of the recipes (OpenGait's ``frames_num_fixed``).
DEFAULT_FRAMES = 30
#: Stored frame side of the default pretreatment (``graphfuse prepare casia-b --size 64``).
DEFAULT_SIZE = 64


# -- prepare --------------------------------------------------------------------------------------
def _casia_b_arguments(p: argparse.ArgumentParser) -> None:
    from graphfuse.data.gait.prepare import add_casia_b_arguments  # numpy only

    add_casia_b_arguments(p)


def _oumvlp_arguments(p: argparse.ArgumentParser) -> None:
    from graphfuse.data.gait.prepare import add_oumvlp_arguments  # numpy only

    add_oumvlp_arguments(p)


def _synthetic_arguments(p: argparse.ArgumentParser) -> None:
    from graphfuse.data.synthetic.gait import add_arguments  # numpy only

    add_arguments(p)


def _run_synthetic(args: argparse.Namespace) -> None:
    from graphfuse.data.synthetic.gait import run

    run(args)


# -- info -----------------------------------------------------------------------------------------
def _prepared_size(data: dict[str, Any]) -> int:
    """``meta.json: size`` of the config's prepared folder; without one, the synthetic generator's
    ``size`` option, else 128 when the folder's name says so (``data/casia-b-128``, the GLN
    configs' folder), else :data:`DEFAULT_SIZE`."""
    from pathlib import Path

    from graphfuse.data.base import path_words
    from graphfuse.io import read_json_dict

    data_dir = str(data.get("data_dir") or "data/synthetic-casia-b")
    meta = read_json_dict(Path(data_dir) / "meta.json") if Path(data_dir, "meta.json").is_file() else None
    guess = 128 if "128" in path_words(data_dir) else DEFAULT_SIZE
    size = (meta or {}).get("size") or (data.get("synthetic_options") or {}).get("size") or guess
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"{data_dir}/meta.json: size must be a positive integer, got {size!r}")
    return size


def example_input(network: Any, config: Any, frames: int | None = None, **_: Any) -> tuple[Any, ...]:
    """``(silhouettes, None)``: the network's ``example_inputs`` of batch 1 with ``frames``
    frames (the ``info`` option, else ``data.init_args.frames``, else 30) of the loaded frame
    shape ``S x (S - 2 * (S // 64 * 10))`` (64 x 44, 128 x 88), on the network's device and dtype."""
    import torch

    data = data_init_args(config)
    t = frames if frames is not None else data.get("frames") or DEFAULT_FRAMES
    if isinstance(t, bool) or not isinstance(t, int) or t < 1:
        raise ValueError(f"data.init_args.frames must be a positive integer, got {t!r}")
    size = _prepared_size(data)
    height, width = size, size - 2 * (size // 64 * 10)
    make = getattr(network, "example_inputs", None)
    if callable(make):
        sil = make(batch=1, frames=t, height=height, width=width)[0]
    else:
        sil = torch.zeros(1, t, height, width)
    param = next(network.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    return (sil.to(device=device, dtype=dtype), None)


FAMILY = register_family(Family(
    name="gait",
    description="gait recognition from silhouettes: CASIA-B, OU-MVLP, GaitSet, GLN",
    prepare=(
        PrepareCommand("casia-b", "CASIA-B silhouettes (<id>/<type>/<view>/*.png or OpenGait .pkl) -> frames + "
                       "meta.json", _casia_b_arguments, "graphfuse.data.gait.prepare:run_casia_b"),
        PrepareCommand("oumvlp", "OU-MVLP silhouettes (Silhouette_<view>-<seq>/<id>/ or OpenGait's layout) -> "
                       "frames + meta.json", _oumvlp_arguments, "graphfuse.data.gait.prepare:run_oumvlp"),
        PrepareCommand("synthetic-casia-b", "generate and prepare the synthetic CASIA-B-format walkers",
                       _synthetic_arguments, _run_synthetic),
    ),
    converters=(
        Converter(
            name="opengait",
            help="an OpenGait GaitSet / GLN checkpoint (.pt) -> graphfuse checkpoint",
            input_help="OpenGait checkpoint, e.g. GaitSet-40000.pt, GLN_P1-40000.pt, GLN_P2-40000.pt",
            convert="graphfuse.models.gait:convert_opengait",
            weights="graphfuse.models.gait:WEIGHTS",
            options=(
                Option(("--model",), {"default": None, "choices": ["gaitset", "gln"],
                                      "help": "the network (default: read from the keys)"}),
                Option(("--phase",), {"default": None, "type": int, "choices": [1, 2],
                                      "help": "GLN phase (default: read from the keys)"}),
                Option(("--compact-layout",), {
                    "default": "v1.0", "choices": ["v1.0", "head"],
                    "help": "GLN phase 2: the compact block's flattening of OpenGait v1.0 (the released file) "
                            "or of later versions"}),
            ),
            usage="IN.pt OUT.ckpt [--model gaitset|gln] [--phase 1|2]",
        ),
    ),
    networks=(
        "graphfuse.models.gait:GaitSet",
        "graphfuse.models.gait:GLN",
    ),
    example_input=example_input,
    components=("graphfuse.data.gait.datamodule", "graphfuse.tasks.gait"),
    infer="graphfuse.infer.gait:GaitInference",
    export=None,  # forward returns a dict of part embeddings of variable-length frame sets
))
