"""Pedestrian crossing intention (PIE, JAAD; Pedestrian Graph+): the family's registration.

* ``graphfuse prepare pie | jaad | synthetic-pie`` (``graphfuse.data.intention.prepare``,
  ``graphfuse.data.synthetic.pie``);
* ``graphfuse convert pedgraph`` (``graphfuse.convert.convert_pedgraph``; released weights in
  :data:`graphfuse.models.pedgraph.WEIGHTS`);
* ``graphfuse info``: ``(pose, velocity, image)`` from ``PedGraph.example_inputs`` with the
  observation length of the prepared data (:func:`observed_frames`).

Imports nothing heavy at module level: every function imports what it runs.
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import BOUND_HELP, Converter, Family, Option, PrepareCommand, data_init_args, register_family

__all__ = ["FAMILY", "example_input", "observed_frames", "print_prepared"]


# -- prepare --------------------------------------------------------------------------------------
def _arguments(name: str) -> Callable[[argparse.ArgumentParser], None]:
    """The ``add_arguments`` of ``graphfuse prepare <name>`` (pie, jaad, synthetic-pie)."""

    def add(ip: argparse.ArgumentParser) -> None:
        if name == "synthetic-pie":
            ip.add_argument("--out", required=True, help="output directory (raw files go to OUT/raw)")
            ip.add_argument("--seed", type=int, default=0)
        else:
            ip.add_argument("--root", required=True,
                            help="dataset folder holding annotations/, annotations_attributes/, ...")
            ip.add_argument("--out", required=True, help="output directory (arrays + meta.json)")
            ip.add_argument("--poses", default=None,
                            help="pose folder (see docs/data_intention.md); without it no pose.npy is written")
            ip.add_argument("--pose-format", default="coco", choices=["coco", "openpose", "pab", "pedgraph"])
            ip.add_argument("--pose-min-iou", type=float, default=0.3,
                            help="minimum IoU between a detection and the pedestrian box (default 0.3)")
            ip.add_argument("--pose-fill", default="interpolate", choices=["interpolate", "hold", "zero"],
                            help="how frames without a matched detection are filled (the mask keeps them apart)")
            ip.add_argument("--on-missing-pose", default="raise", choices=["raise", "skip"],
                            help="a video without a pose file: stop (default) or skip it and list it in meta.json")
            ip.add_argument("--images", default=None,
                            help="extracted frames (images/<set>/<video>/%%05d.png) for pedestrian crops")
            ip.add_argument("--overwrite", action="store_true", help="replace an existing prepared folder")
            ip.add_argument("--bound", action="append", default=None, metavar="NAME=LO:HI", help=BOUND_HELP)
        if name == "jaad":
            ip.add_argument("--sample-type", default="beh", choices=["beh", "all"],
                            help="beh: pedestrians with behaviour tags; all: every pedestrian (JAAD_all)")
            ip.add_argument("--subset", default="default", choices=["default", "high_visibility", "all_videos"])
        ip.add_argument("--obs-length", type=int, default=16, help="observed frames (benchmark 16; PedGraph+ 32)")
        ip.add_argument("--tte", type=int, nargs=2, default=(30, 60), metavar=("MIN", "MAX"),
                        help="time to event range in frames (default 30 60)")
        ip.add_argument("--overlap", type=float, default=None, help="window overlap (default PIE 0.6, JAAD 0.8)")
        ip.add_argument("--min-track-size", type=int, default=None, help="default obs-length + 60")
        ip.add_argument("--balance", default="off", choices=["off", "tracks", "samples"],
                        help="balance the train split by dropping majority-class tracks or windows, as "
                        "balance_samples_count of the official PIE/JAAD interfaces (default off)")
        if name != "synthetic-pie":
            ip.add_argument("--splits", default="train,val,test",
                            help="comma-separated splits to prepare (e.g. test for a partial download)")

    return add


def _run(name: str) -> Callable[[argparse.Namespace], None]:
    """The ``run`` of ``graphfuse prepare <name>``: prepare, then print the summary."""

    def run(args: argparse.Namespace) -> None:
        print_prepared(_prepare(name, args), args.out)

    return run


def _prepare(name: str, args: argparse.Namespace) -> dict:
    common = dict(obs_length=args.obs_length, time_to_event=tuple(args.tte), overlap=args.overlap,
                  min_track_size=args.min_track_size,
                  balance=False if args.balance == "off" else args.balance)
    if name == "synthetic-pie":
        from graphfuse.data.synthetic.pie import prepare_synthetic_pie

        return prepare_synthetic_pie(args.out, seed=args.seed, **common)
    from graphfuse.data.intention.prepare import prepare_intention

    extra = dict(sample_type=args.sample_type, subset=args.subset) if name == "jaad" else {}
    return prepare_intention(
        name, args.root, args.out, poses=args.poses, pose_format=args.pose_format,
        pose_min_iou=args.pose_min_iou, pose_fill=args.pose_fill, images=args.images,
        on_missing_pose=args.on_missing_pose, overwrite=args.overwrite, bounds=args.bound,
        splits=tuple(s for s in args.splits.split(",") if s), **extra, **common)


def print_prepared(meta: dict, out: str) -> None:
    """The summary ``graphfuse prepare pie|jaad|synthetic-pie`` prints."""
    print(f"prepared {meta.get('dataset', '?')} crossing sequences in {out}")
    for split, c in (meta.get("splits") or {}).items():
        print(f"  {split:5s} {c['samples']:6d} samples ({c['positive']} crossing, {c['negative']} not; "
              f"{c['irrelevant']} of them irrelevant), {c['tracks']} tracks, {c['pedestrians']} pedestrians")
    pose = meta.get("pose")
    if pose:
        print(f"  poses: {pose.get('matched_frames')} matched frames, {pose.get('missing_frames')} filled "
              f"({pose.get('fill')})")
    for reason, ids in (meta.get("skipped") or {}).items():
        if ids:
            print(f"  skipped ({reason}): {len(ids)}, e.g. {ids[0]} (listed in meta.json)")


# -- info -----------------------------------------------------------------------------------------
def observed_frames(config: Any) -> int:
    """Observation length ``T`` of an intention config's data, derived, never guessed:

    * ``options.obs_length`` of ``<data_dir>/meta.json`` when the data is prepared;
    * else, with ``synthetic: true`` (the datamodule generates the data there on first use),
      the observation length :func:`graphfuse.data.synthetic.pie.prepare_synthetic_pie`
      writes by default;
    * else a ``ValueError`` asking to prepare the data or give ``--frames``.
    """
    from graphfuse.io import read_json

    data = data_init_args(config)
    data_dir = data.get("data_dir")
    meta = Path(str(data_dir)) / "meta.json" if data_dir else None
    if meta is not None and meta.is_file():
        obs = (read_json(meta).get("options") or {}).get("obs_length")
        if not isinstance(obs, int) or isinstance(obs, bool) or obs < 1:
            raise ValueError(f"{meta}: options.obs_length must be a positive integer, got {obs!r}")
        return obs
    if data.get("synthetic"):
        from graphfuse.data.synthetic.pie import prepare_synthetic_pie

        return int(inspect.signature(prepare_synthetic_pie).parameters["obs_length"].default)
    where = f"{meta}" if meta is not None else "the config (no data.init_args.data_dir)"
    raise ValueError(f"cannot derive the observed frames: no prepared data at {where}; prepare it "
                     "(graphfuse prepare pie|jaad --obs-length T ...) or give --frames T")


def example_input(network: Any, config: Any, *, frames: int | None = None, **_: Any) -> tuple[Any, ...]:
    """``(pose (1, C, T, 19), velocity (1, 2, T) or None, image (1, C_img, 192, 64) or None)``
    from ``network.example_inputs``; ``T`` = ``frames`` or :func:`observed_frames`."""
    t = frames if frames is not None else observed_frames(config)
    if int(t) < 1:
        raise ValueError(f"frames must be >= 1, got {t}")
    return tuple(network.example_inputs(1, int(t)))


FAMILY = register_family(Family(
    name="crossing_intention",
    description="pedestrian crossing intention: PIE, JAAD, Pedestrian Graph+",
    prepare=(
        PrepareCommand("pie", "PIE crossing sequences from the original annotation XML",
                       _arguments("pie"), _run("pie")),
        PrepareCommand("jaad", "JAAD crossing sequences from the original annotation XML",
                       _arguments("jaad"), _run("jaad")),
        PrepareCommand("synthetic-pie", "generate and prepare the synthetic PIE-format dataset",
                       _arguments("synthetic-pie"), _run("synthetic-pie")),
    ),
    converters=(
        Converter(
            name="pedgraph",
            help="official Pedestrian Graph+ best.pth -> graphfuse checkpoint",
            input_help="weigths/<dataset>-23-<flags>/best.pth of Pedestrian_graph_plus",
            convert="graphfuse.convert:convert_pedgraph",
            weights="graphfuse.models.pedgraph:WEIGHTS",
            options=(Option(("--flags",), dict(
                default=None,
                help="modality flags of the run, e.g. IVSFT or IVSFT-h2d (default: from the folder name)")),),
            usage="best.pth OUT.ckpt [--flags IVSFT]",
        ),
    ),
    networks=("graphfuse.models.pedgraph:PedGraph",),
    example_input=example_input,
    components=("graphfuse.data.intention.datamodule",),
    infer="graphfuse.infer.intention:CrossingIntentionInference",
    export="graphfuse.infer.intention:export_spec",
))
