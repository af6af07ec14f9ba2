"""Multi-label image recognition (MS-COCO, PASCAL VOC 2007; ML-GCN, HGAT_FC): the family's registration.

* ``graphfuse prepare coco | voc2007 | synthetic-coco`` (``graphfuse.data.multilabel.prepare``,
  ``graphfuse.data.synthetic.coco``);
* ``graphfuse convert mlgcn`` (``graphfuse.models.mlgcn.convert_mlgcn``; released weights in
  :data:`graphfuse.models.mlgcn.WEIGHTS`);
* ``graphfuse info``: one input ``image (1, 3, S, S)``, ``S`` = the config's
  ``data.init_args.image_size`` (default 448, ML-GCN's).

Imports nothing heavy at module level: every function imports what it runs.
"""

from __future__ import annotations

import argparse
from typing import Any

from . import Converter, Family, Option, PrepareCommand, data_init_args, register_family

__all__ = ["DEFAULT_IMAGE_SIZE", "FAMILY", "example_input", "print_prepared"]

#: Input side of ML-GCN (``--image-size 448`` of its demo scripts).
DEFAULT_IMAGE_SIZE = 448


# -- prepare --------------------------------------------------------------------------------------
def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output directory (arrays + meta.json)")
    emb = p.add_mutually_exclusive_group()
    emb.add_argument("--glove", default=None, metavar="FILE",
                     help="GloVe text file (word v1 ... vD per line) for the class-name embeddings; multi-word "
                     "names are averaged, a missing word is an error")
    emb.add_argument("--word-vectors", default=None, metavar="FILE.pkl",
                     help="ML-GCN's released <dataset>_glove_word2vec.pkl (read with the restricted unpickler)")
    p.add_argument("--adj", default=None, metavar="FILE.pkl",
                   help="ML-GCN's released <dataset>_adj.pkl: store its counts as the label graph")
    p.add_argument("--skip-bad", action="store_true",
                   help="leave out images with a bad annotation or a missing / corrupt file and list them in "
                   "meta.json instead of stopping")
    p.add_argument("--verify-images", default="header", choices=["none", "header", "decode"],
                   help="image check: header (SOI/EOI markers, default), decode (every image), none (existence)")
    p.add_argument("--workers", type=int, default=None, help="threads for --verify-images decode")
    p.add_argument("--overwrite", action="store_true", help="replace an existing prepared folder")


def _coco_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", required=True, help="COCO folder holding annotations/ and train2014/ val2014/")
    p.add_argument("--year", type=int, default=2014, choices=[2014, 2017])
    p.add_argument("--class-order", default="mlgcn", choices=["mlgcn", "coco"],
                   help="mlgcn: alphabetical by name, ML-GCN's order and its .pkl files' (default); "
                   "coco: category id order")
    _common(p)


def _voc_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", required=True, help="folder holding VOCdevkit/VOC2007")
    _common(p)


def _synthetic_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output directory (raw COCO-format files go to OUT/raw)")
    from graphfuse.data.synthetic.coco import DEFAULT_MIN_POSITIVES, DEFAULT_NUM_TRAIN, DEFAULT_NUM_VAL  # numpy only

    p.add_argument("--num-train", type=int, default=DEFAULT_NUM_TRAIN,
                   help=f"training images (default {DEFAULT_NUM_TRAIN})")
    p.add_argument("--num-val", type=int, default=DEFAULT_NUM_VAL,
                   help=f"val images, the test split (default {DEFAULT_NUM_VAL})")
    p.add_argument("--min-positives", type=int, default=DEFAULT_MIN_POSITIVES,
                   help=f"fewest images of every class per split (default {DEFAULT_MIN_POSITIVES})")
    p.add_argument("--size", type=int, default=96, help="image side in pixels (default 96)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--class-order", default="mlgcn", choices=["mlgcn", "coco"])
    p.add_argument("--overwrite", action="store_true", help="replace an existing prepared folder")


def _run_coco(args: argparse.Namespace) -> None:
    from graphfuse.data.multilabel.prepare import prepare_coco

    print_prepared(prepare_coco(
        args.root, args.out, year=args.year, class_order=args.class_order, glove=args.glove,
        word_vectors=args.word_vectors, adj=args.adj, skip_bad=args.skip_bad, verify=args.verify_images,
        workers=args.workers, overwrite=args.overwrite), args.out)


def _run_voc(args: argparse.Namespace) -> None:
    from graphfuse.data.multilabel.prepare import prepare_voc2007

    print_prepared(prepare_voc2007(
        args.root, args.out, glove=args.glove, word_vectors=args.word_vectors, adj=args.adj,
        skip_bad=args.skip_bad, verify=args.verify_images, workers=args.workers, overwrite=args.overwrite), args.out)


def _run_synthetic(args: argparse.Namespace) -> None:
    from graphfuse.data.synthetic.coco import prepare_synthetic_coco

    print_prepared(prepare_synthetic_coco(
        args.out, num_train=args.num_train, num_val=args.num_val, size=args.size, seed=args.seed,
        min_positives=args.min_positives, class_order=args.class_order, overwrite=args.overwrite), args.out)


def print_prepared(meta: dict, out: str) -> None:
    """The summary ``graphfuse prepare coco|voc2007|synthetic-coco`` prints."""
    print(f"prepared {meta.get('dataset', '?')} ({meta.get('num_class', '?')} classes, order "
          f"{meta.get('class_order', '?')}) in {out}")
    dropped = meta.get("dropped_without_labels") or {}
    for split, n in (meta.get("splits") or {}).items():
        print(f"  {split:5s} {n:7d} images ({dropped.get(split, 0)} without labels dropped)")
    if meta.get("word_embeddings"):
        print(f"  word embeddings: {meta.get('embedding_dim')}-d from {meta.get('word_embeddings_source')}")
    graph = meta.get("label_graph") or {}
    if "equals_train_labels" in graph:
        print(f"  label graph from {graph.get('source')}; equals the training labels' counts: "
              f"{graph['equals_train_labels']}")
    skipped = meta.get("skipped") or []
    if skipped:
        first = skipped[0]
        print(f"  skipped {len(skipped)} (listed in meta.json), e.g. {first.get('file', first.get('image_id'))}: "
              f"{first.get('reason')}")


# -- info -----------------------------------------------------------------------------------------
def example_input(network: Any, config: Any, **_: Any) -> tuple[Any, ...]:
    """``(image,)``: zeros ``(1, 3, S, S)`` with ``S`` = ``data.init_args.image_size`` of the
    config (default :data:`DEFAULT_IMAGE_SIZE`), on the network's device and dtype."""
    import torch

    size = data_init_args(config).get("image_size") or DEFAULT_IMAGE_SIZE
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"data.init_args.image_size must be a positive integer, got {size!r}")
    param = next(network.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    return (torch.zeros(1, 3, size, size, device=device, dtype=dtype),)


FAMILY = register_family(Family(
    name="multilabel",
    description="multi-label image recognition: MS-COCO, VOC 2007, ML-GCN, HGAT_FC",
    prepare=(
        PrepareCommand("coco", "MS-COCO multi-label targets from the instances JSON and images",
                       _coco_arguments, _run_coco),
        PrepareCommand("voc2007", "PASCAL VOC 2007 multi-label targets from the annotation XML",
                       _voc_arguments, _run_voc),
        PrepareCommand("synthetic-coco", "generate and prepare the synthetic COCO-format dataset",
                       _synthetic_arguments, _run_synthetic),
    ),
    converters=(
        Converter(
            name="mlgcn",
            help="ML-GCN's released checkpoint -> graphfuse checkpoint",
            input_help="ML-GCN checkpoint (e.g. coco_checkpoint.pth.tar)",
            convert="graphfuse.models.mlgcn:convert_mlgcn",
            weights="graphfuse.models.mlgcn:WEIGHTS",
            options=(Option(("--embeddings",), dict(
                default=None, metavar="FILE",
                help="ML-GCN's coco_glove_word2vec.pkl / voc_glove_word2vec.pkl (or .npy) the model was trained with")),),
            usage="IN.pth.tar OUT.ckpt --embeddings FILE.pkl",
        ),
    ),
    networks=(
        "graphfuse.models.mlgcn:MLGCN",
        "graphfuse.models.mlgcn:ResNetBaseline",
        "graphfuse.models.mlgcn:HGATFC",
    ),
    example_input=example_input,
    components=("graphfuse.data.multilabel.datamodule",),
    infer="graphfuse.infer.multilabel:MultiLabelInference",
    export="graphfuse.infer.multilabel:export_spec",
))
