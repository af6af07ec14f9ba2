"""Inference latency per family, batch 1, CPU: ``Predictor.predict`` on one sample (the task's
forward, the family's probability step and the result ranking; reading and preparing a raw file
are timed separately where a file is given).

    python benchmarks/inference_latency.py [--configs CONFIG[@FRAMES] ...] [CKPT:INPUT ...]
                                           [--repeats 10] [--budget 10] [--threads 1]

* ``--configs`` (default: :data:`DEFAULT_CONFIGS`, the reference configuration of every family
  and its CPU quickstart): the network of a training config, built exactly as ``graphfuse info``
  builds it (``graphfuse.info.build_model``: random weights, no data read), fed the family's
  example input of one sample (``graphfuse.families.example_input_of``: the config's clip
  length, image size, crop, observation length; ``@FRAMES`` where the config leaves it to the
  prepared data). The latency of a network does not depend on its weights or its input values.
* ``CKPT:INPUT``: a trained checkpoint on a raw file of its family (``graphfuse infer``'s
  path); the file's reading and preparation are timed too.

Each line gives the median of ``--repeats`` timed runs after one warm-up (fewer when a model's
runs exceed ``--budget`` seconds, at least 3), the network's forward alone beside it (the
family adapter's batch and forward: gait's embeddings), and the load average
(docs/inference.md, "Latency"). Gait has no ``predict`` time without a gallery (``n/a``): its
forward is the cost; the distances to a gallery add little.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from graphfuse.infer import InferenceError, Predictor, Sample, load_predictor

REPO = Path(__file__).resolve().parents[1]

#: ``(config, frames)``: each family's reference configuration and its CPU quickstart; frames for
#: the configs whose observation length comes from prepared data.
DEFAULT_CONFIGS: tuple[tuple[str, int | None], ...] = (
    ("configs/ntu60-xsub/shiftgcn/joint.yaml", None),
    ("configs/synthetic-ntu/shiftgcn/quickstart.yaml", None),
    ("configs/pie/pedgraph/pedgraph_plus.yaml", 32),
    ("configs/synthetic-pie/pedgraph/quickstart.yaml", None),
    ("configs/coco2014/mlgcn/mlgcn_released.yaml", None),
    ("configs/synthetic-coco/mlgcn/quickstart.yaml", None),
    ("configs/ucf101/two_stream/vgg16_3dconv_3dpool.yaml", None),
    ("configs/synthetic-ucf101/two_stream/quickstart.yaml", None),
    ("configs/casia-b/gaitset/gaitset.yaml", None),
    ("configs/synthetic-casia-b/gaitset/quickstart.yaml", None),
)


def timed(fn: Callable[[], Any], repeats: int, budget: float) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs after one warm-up (at least 3 runs, fewer
    than ``repeats`` once ``budget`` seconds are spent)."""
    fn()
    times: list[float] = []
    spent = 0.0
    while len(times) < repeats and (len(times) < 3 or spent < budget):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        spent += times[-1]
    return statistics.median(times)


def from_config(config: str, frames: int | None) -> tuple[Predictor, list[Sample], str]:
    """A predictor of the config's network (random weights) and one example sample."""
    from graphfuse.info import build_model, example_input

    task, cfg = build_model([str(REPO / config) if not Path(config).is_file() else config])
    network = getattr(task, "model", task)
    task.eval()
    example = list(example_input(network, cfg, frames=frames) or ())
    names = list(getattr(task, "input_names", None) or getattr(network, "input_names", None) or ["x"])
    if len(names) < len([t for t in example if t is not None]):
        raise ValueError(f"{config}: {len(example)} example inputs for the input names {names}")
    # an absent optional input (None: PedGraph without velocity, gait's lengths) is left out
    sample = Sample(Path(config).stem, {n: t[0] for n, t in zip(names, example) if t is not None})
    block = {"data": {}, "num_class": getattr(network, "num_class", None)}
    return Predictor(task, network, block, config), [sample], type(network).__name__


def measure(predictor: Predictor, samples: list[Sample], repeats: int, budget: float) -> tuple[float | None, float]:
    """``(predict, forward)`` median seconds for one sample; predict None where the family's
    results need more than the sample (gait: a gallery; the forward is its cost)."""
    inputs = predictor.adapter.collate(samples)

    def forward() -> None:
        with torch.no_grad():
            predictor.adapter.forward(inputs)

    try:
        predictor.predict(samples)
    except InferenceError:
        predict = None
    else:
        predict = timed(lambda: predictor.predict(samples), repeats, budget)
    return predict, timed(forward, repeats, budget)


def line(family: str, what: str, shapes: str, predict: float | None, forward: float, extra: str = "") -> str:
    load = "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    shown = "      n/a" if predict is None else f"{predict * 1000:9.1f}"
    return (f"{family:18s} {what:48s} {shapes:34s} predict {shown} ms  forward "
            f"{forward * 1000:9.1f} ms{extra}  threads {torch.get_num_threads()}  load {load}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pairs", nargs="*", metavar="CKPT:INPUT", help="a checkpoint and a raw file of its family")
    parser.add_argument("--configs", nargs="*", default=None, metavar="CONFIG[@FRAMES]",
                        help="training configs (default: every family's reference config and quickstart; "
                        "none with CKPT:INPUT pairs)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--budget", type=float, default=10.0, help="seconds of timed runs per model (>= 3 runs)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    configs = ([(c.partition("@")[0], int(c.partition("@")[2]) if c.partition("@")[2] else None)
                for c in args.configs] if args.configs is not None
               else ([] if args.pairs else list(DEFAULT_CONFIGS)))
    for config, frames in configs:
        try:
            predictor, samples, net = from_config(config, frames)
        except InferenceError as exc:  # e.g. a family without its infer hook yet
            print(f"{'?':18s} {config.removeprefix('configs/'):48s} skipped: {exc}", flush=True)
            continue
        shapes = " ".join(str(tuple(v.shape)) for v in samples[0].inputs.values())
        predict, forward = measure(predictor, samples, args.repeats, args.budget)
        print(line(predictor.family, f"{net} {config.removeprefix('configs/')}", shapes, predict, forward),
              flush=True)
    for pair in args.pairs:
        ckpt, _, path = pair.rpartition(":")
        predictor = load_predictor(ckpt)
        read = timed(lambda: predictor.read([path]), min(args.repeats, 3), args.budget)  # noqa: B023
        samples = predictor.read([path])[:1]
        shapes = " ".join(str(tuple(v.shape)) for v in samples[0].inputs.values())
        predict, forward = measure(predictor, samples, args.repeats, args.budget)
        print(line(predictor.family, f"{type(predictor.network).__name__} {Path(ckpt).name}", shapes, predict,
                   forward, f"  read {read * 1000:.1f} ms ({Path(path).name})"), flush=True)


if __name__ == "__main__":
    main()
