"""Skeleton action recognition (NTU RGB+D 60/120; Shift-GCN): the family's registration.

* ``graphfuse prepare ntu | ntu-official | synthetic-ntu`` (``graphfuse.data.ntu``,
  ``graphfuse.data.synthetic.ntu``);
* ``graphfuse convert shiftgcn`` (``graphfuse.convert.convert_shiftgcn``; released weights in
  :data:`graphfuse.models.shiftgcn.WEIGHTS`);
* ``graphfuse info``: one input ``(1, C, T, V, M)`` per input name of the network (``x``; the
  skeleton two-stream network's ``joint`` and ``bone``).

Imports nothing heavy at module level: every function imports what it runs.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from . import BOUND_HELP, Converter, Family, PrepareCommand, data_init_args, register_family

__all__ = ["FAMILY", "example_input", "print_prepared"]

# -- prepare --------------------------------------------------------------------------------------
def _ntu_arguments(ntu: argparse.ArgumentParser) -> None:
    ntu.add_argument("--root", required=True, help="directory holding the raw .skeleton files")
    ntu.add_argument("--out", required=True, help="output directory (arrays + meta.json)")
    ntu.add_argument("--benchmark", required=True,
                     choices=["ntu60-xsub", "ntu60-xview", "ntu120-xsub", "ntu120-xset", "synthetic-xsub"])
    ntu.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    ntu.add_argument("--skip-bad", action="store_true",
                     help="skip malformed files and list them in meta.json instead of stopping")
    ntu.add_argument("--missing-list", default=None, help="missing-skeleton list (default: the official one)")
    ntu.add_argument("--write-streams", default="",
                     help="comma-separated derived streams to store too: bone,joint_motion,bone_motion")
    ntu.add_argument("--bound", action="append", default=None, metavar="NAME=LO:HI", help=BOUND_HELP)


def _run_ntu(args: argparse.Namespace) -> None:
    from graphfuse.data.ntu import prepare_ntu

    streams = tuple(s for s in args.write_streams.split(",") if s)
    result = prepare_ntu(
        args.root, args.out, args.benchmark, workers=args.workers,
        on_error="skip" if args.skip_bad else "raise", missing_list=args.missing_list,
        write_streams=streams, bounds=args.bound,
    )
    print_prepared(result, args.out)


def _official_arguments(off: argparse.ArgumentParser) -> None:
    off.add_argument("--root", required=True, help="directory with {train,val}_data_joint.npy and {train,val}_label.pkl")
    off.add_argument("--out", required=True)
    off.add_argument("--benchmark", required=True,
                     choices=["ntu60-xsub", "ntu60-xview", "ntu120-xsub", "ntu120-xset"])


def _run_official(args: argparse.Namespace) -> None:
    from graphfuse.data.ntu import import_official_dir

    print_prepared(import_official_dir(args.root, args.out, args.benchmark), args.out)


def _synthetic_arguments(syn: argparse.ArgumentParser) -> None:
    syn.add_argument("--out", required=True, help="output directory (raw files go to OUT/raw)")
    syn.add_argument("--seed", type=int, default=0)
    syn.add_argument("--workers", type=int, default=None)


def _run_synthetic(args: argparse.Namespace) -> None:
    from graphfuse.data.synthetic.ntu import prepare_synthetic_ntu

    print_prepared(prepare_synthetic_ntu(args.out, seed=args.seed, workers=args.workers), args.out)


def print_prepared(meta: dict, out: str) -> None:
    """The summary ``graphfuse prepare ntu|ntu-official|synthetic-ntu`` prints."""
    counts = meta.get("counts", {})
    print(f"prepared {meta.get('benchmark', '?')} ({meta.get('num_class', '?')} classes) in {out}")
    for split, c in counts.items():
        n = c.get("samples", c) if isinstance(c, dict) else c
        print(f"  {split:6s} {n} samples")
    skipped = meta.get("skipped") or []
    if skipped:
        print(f"  skipped {len(skipped)} bad files (listed in meta.json), e.g. {skipped[0]}")


# -- info -----------------------------------------------------------------------------------------
#: Frames of a whole NTU sequence as the datamodule feeds it (the official 300, before stride).
DEFAULT_FRAMES = 300


def input_shape_for(
    network: Any,
    config: Any = None,
    frames: int | None = None,
    channels: int | None = None,
    joints: int | None = None,
    persons: int | None = None,
) -> tuple[int, int, int, int, int]:
    """``(1, C, T, V, M)`` for a skeleton network.

    ``C, V, M`` default to the network's ``in_channels``, ``num_point``, ``num_person``.
    ``T`` defaults to the config's ``data.init_args.clip_len``; when that is unset (whole
    sequences) to ``ceil(300 / frame_stride)``, the length the datamodule feeds.
    """
    c = channels if channels is not None else getattr(network, "in_channels", None)
    v = joints if joints is not None else getattr(network, "num_point", None)
    m = persons if persons is not None else getattr(network, "num_person", None)
    missing = [n for n, val in (("--channels", c), ("--joints", v), ("--persons", m)) if val is None]
    if missing:
        raise ValueError(
            f"cannot infer the input shape of {type(network).__name__} (no in_channels / num_point / "
            f"num_person attributes); give {', '.join(missing)}"
        )
    if frames is None:
        data = data_init_args(config) if config is not None else {}
        clip_len = data.get("clip_len")
        stride = int(data.get("frame_stride") or 1)
        frames = int(clip_len) if clip_len else math.ceil(DEFAULT_FRAMES / stride)
    for name, val in (("frames", frames), ("channels", c), ("joints", v), ("persons", m)):
        if int(val) < 1:
            raise ValueError(f"{name} must be >= 1, got {val}")
    return (1, int(c), int(frames), int(v), int(m))


def example_input(network: Any, config: Any, *, frames: int | None = None, channels: int | None = None,
                  joints: int | None = None, persons: int | None = None, **_: Any) -> tuple[Any, ...]:
    """One random skeleton batch ``x: (1, C, T, V, M)`` for ``network(x)``; one such tensor per
    input name for a network with several (``SkeletonTwoStream``: ``joint``, ``bone``).

    ``C, V, M``: the network's ``in_channels``, ``num_point``, ``num_person`` (its config);
    ``T``: the config's ``data.init_args.clip_len``, or for whole sequences (``clip_len:
    null``) ``ceil(300 / frame_stride)``, the length the datamodule feeds
    (:func:`input_shape_for`). Given ``frames`` / ``channels`` / ``joints`` /
    ``persons`` win.
    """
    import torch

    shape = input_shape_for(network, config, frames, channels, joints, persons)
    param = next(network.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    gen = torch.Generator(device).manual_seed(0)
    names = tuple(getattr(network, "input_names", None) or ("x",))
    return tuple(torch.randn(*shape, device=device, dtype=dtype, generator=gen) for _ in names)


FAMILY = register_family(Family(
    name="skeleton_action",
    description="skeleton action recognition: NTU RGB+D 60/120, Shift-GCN, joint + bone two-stream fusion",
    prepare=(
        PrepareCommand("ntu", "NTU RGB+D 60/120 from raw .skeleton files", _ntu_arguments, _run_ntu),
        PrepareCommand("ntu-official", "register arrays made by the official Shift-GCN scripts",
                       _official_arguments, _run_official),
        PrepareCommand("synthetic-ntu", "generate and prepare the synthetic NTU-format dataset",
                       _synthetic_arguments, _run_synthetic),
    ),
    converters=(
        Converter(
            name="shiftgcn",
            help="official Shift-GCN .pt -> graphfuse checkpoint",
            input_help="official state dict (.pt, e.g. ntu_ShiftGCN_joint_xsub.pt)",
            convert="graphfuse.convert:convert_shiftgcn",
            weights="graphfuse.models.shiftgcn:WEIGHTS",
            usage="IN.pt OUT.ckpt",
        ),
    ),
    networks=("graphfuse.models.shiftgcn:ShiftGCN", "graphfuse.models.two_stream_skeleton:SkeletonTwoStream"),
    example_input=example_input,
    components=("graphfuse.data.ntu.datamodule",),
    infer="graphfuse.infer.skeleton:SkeletonActionInference",
    export="graphfuse.infer.skeleton:export_spec",
))
