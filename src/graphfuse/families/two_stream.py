"""Two-stream action recognition (UCF101, HMDB51; Feichtenhofer et al. 2016): the family's registration.

* ``graphfuse prepare ucf101 | hmdb51 | synthetic-ucf101`` (``graphfuse.data.video.prepare``,
  ``graphfuse.data.synthetic.ucf101``);
* ``graphfuse info``: ``rgb (1, 3, T, S, S)`` and ``flow (1, 2L, T, S, S)`` in the order of the
  network's ``input_names`` (``T``, ``L``, ``S`` from the config's ``data.init_args``:
  ``num_frames`` 5, ``flow_stack`` 10, ``crop_size`` 224).

Imports nothing heavy at module level: every function imports what it runs.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from . import Family, PrepareCommand, data_init_args, register_family

__all__ = ["FAMILY", "example_input", "input_shapes"]


# -- prepare --------------------------------------------------------------------------------------
def _video_arguments(name: str):
    layout = ("ROOT/UCF-101/<Class>/*.avi and ROOT/ucfTrainTestlist/" if name == "ucf101" else
              "ROOT/<class>/*.avi (or ROOT/hmdb51_org/<class>/) and ROOT/testTrainMulti_7030_splits/")

    def add(p: argparse.ArgumentParser) -> None:
        p.add_argument("--root", required=True, help=f"the extracted download: {layout}")
        p.add_argument("--out", required=True, help="output folder (frames/, flow/, meta.json); a rerun resumes it")
        p.add_argument("--split", type=int, default=1, choices=[1, 2, 3], help="official split (default 1)")
        p.add_argument("--flow", default="tvl1",
                       help="tvl1 (compute TV-L1, default), none (RGB only), or a folder of precomputed flow "
                            "DIR/u/<video>/frame%%06d.jpg, DIR/v/... to register")
        p.add_argument("--jobs", type=int, default=None, help="processes (default: all cores)")
        p.add_argument("--size", type=int, default=256, help="short side of the stored frames (0: keep; default 256)")
        p.add_argument("--skip-bad", action="store_true",
                       help="skip unreadable or missing videos and list them in meta.json instead of stopping")
        p.add_argument("--splits", default=None, help="folder of the split files when not under --root")

    return add


def _run_video(name: str):
    def run(args: argparse.Namespace) -> None:
        from graphfuse.data.video.prepare import prepare_video_dataset

        start = time.perf_counter()
        meta = prepare_video_dataset(name, args.root, args.out, split=args.split, flow=args.flow, jobs=args.jobs,
                                     size=args.size or None, skip_bad=args.skip_bad, splits=args.splits)
        print_prepared(meta, args.out, time.perf_counter() - start)

    return run


def _synthetic_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output folder (the generated videos go to OUT/raw)")
    p.add_argument("--classes", type=int, default=6, help="number of classes, 2..10 (default 6)")
    p.add_argument("--per-class", type=int, default=12, help="videos per class, a multiple of 2 (default 12)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=None, help="processes (default: all cores)")


def _run_synthetic(args: argparse.Namespace) -> None:
    from graphfuse.data.synthetic.ucf101 import prepare_synthetic_ucf101

    start = time.perf_counter()
    meta = prepare_synthetic_ucf101(args.out, classes=args.classes, per_class=args.per_class, seed=args.seed,
                                    jobs=args.jobs)
    print_prepared(meta, args.out, time.perf_counter() - start)


def print_prepared(meta: dict, out: str, seconds: float | None = None) -> None:
    """The summary ``graphfuse prepare ucf101|hmdb51|synthetic-ucf101`` prints."""
    from graphfuse.data.video.prepare import summarize

    lines = summarize(meta)
    lines[0] += f" in {out}" + (f" ({seconds:.1f} s)" if seconds is not None else "")
    print("\n".join(lines))


# -- info -----------------------------------------------------------------------------------------
def input_shapes(config: Any = None, frames: int | None = None) -> dict[str, tuple[int, ...]]:
    """``{"rgb": (1, 3, T, S, S), "flow": (1, 2L, T, S, S)}`` from the config's data options
    (``num_frames``, ``flow_stack``, ``crop_size``; defaults 5, 10, 224); ``frames`` overrides T."""
    data = data_init_args(config) if config is not None else {}
    t = int(frames if frames is not None else data.get("num_frames") or 5)
    flow_stack = int(data.get("flow_stack") or 10)
    s = int(data.get("crop_size") or 224)
    for name, v in (("frames", t), ("flow_stack", flow_stack), ("crop_size", s)):
        if v < 1:
            raise ValueError(f"{name} must be >= 1, got {v}")
    return {"rgb": (1, 3, t, s, s), "flow": (1, 2 * flow_stack, t, s, s)}


def example_input(network: Any, config: Any, *, frames: int | None = None, **_: Any) -> tuple[Any, ...]:
    """Random inputs for ``network(*inputs)`` in the order of ``network.input_names`` (default
    ``("rgb", "flow")``), shapes from :func:`input_shapes`."""
    import torch

    names = tuple(getattr(network, "input_names", None) or ("rgb", "flow"))
    shapes = input_shapes(config, frames)
    unknown = [n for n in names if n not in shapes]
    if unknown:
        raise ValueError(f"{type(network).__name__} takes inputs {unknown} that video data does not provide "
                         f"(it provides {sorted(shapes)})")
    param = next(network.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    gen = torch.Generator(device).manual_seed(0)
    return tuple(torch.randn(*shapes[n], device=device, dtype=dtype, generator=gen) for n in names)


FAMILY = register_family(Family(
    name="two_stream",
    description="two-stream action recognition: UCF101 / HMDB51 RGB + TV-L1 flow, Feichtenhofer et al. 2016 fusion",
    prepare=(
        PrepareCommand("ucf101", "UCF101 from the .avi files and ucfTrainTestlist/ (frames, TV-L1 flow)",
                       _video_arguments("ucf101"), _run_video("ucf101")),
        PrepareCommand("hmdb51", "HMDB51 from the .avi files and the 1/2/0 split files (frames, TV-L1 flow)",
                       _video_arguments("hmdb51"), _run_video("hmdb51")),
        PrepareCommand("synthetic-ucf101", "generate and prepare the synthetic UCF101-format videos",
                       _synthetic_arguments, _run_synthetic),
    ),
    networks=("graphfuse.models.two_stream:TwoStreamNet",),
    example_input=example_input,
    components=("graphfuse.data.video.datamodule",),
    infer="graphfuse.infer.video:TwoStreamInference",
    export="graphfuse.infer.video:export_spec",
))
