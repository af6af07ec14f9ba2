"""Readers of the multi-label image datasets' original files (numpy and json only, no torch).

* **MS-COCO** ``annotations/instances_{train,val}<year>.json`` (Lin et al., ECCV 2014; the
  instances schema of cocodataset/cocoapi): :func:`read_coco_instances` turns the
  annotations into one row of 0/1 labels per image, exactly as ML-GCN's ``coco.py``
  (megvii-research/ML-GCN, Chen et al., CVPR 2019) builds its ``{phase}_anno.json``: every
  annotation counts, crowd annotations (``iscrowd: 1``) included; an image keeps the images
  list's order; an image without any annotation is dropped and counted (2014: 82,783 ->
  82,081 train and 40,504 -> 40,137 val images).
* **PASCAL VOC 2007** ``VOCdevkit/VOC2007/{Annotations/*.xml, ImageSets/Main/{trainval,test}.txt}``
  (Everingham et al., IJCV 2010): :func:`read_voc2007`. A class whose every instance in an
  image is marked ``difficult`` gets the label ``-1`` (VOC's own ``<class>_<set>.txt`` files
  write ``0`` there, and ML-GCN's ``voc.py`` reads those); a class with at least one
  non-difficult instance gets ``1``.
* :func:`check_jpeg`: a cheap check that an image file exists and looks like a whole JPEG
  (SOI marker at the start, EOI marker near the end), naming the file otherwise.

Class orders (``class_order``; brief A.1, the class-order trap):

``mlgcn``
    alphabetical by category name (Python's ``sorted``), ML-GCN's order: its label index k
    is ``sorted(names)[k]`` and its released ``coco_adj.pkl`` / ``coco_glove_word2vec.pkl``
    follow it (person is index 49). The default, to compare with published numbers.
``coco``
    by COCO category id (person, bicycle, car, ... toothbrush): the supercategory-grouped
    order of the COCO paper.
``voc``
    VOC's 20 classes in the devkit's (alphabetical) order.

Untrusted input: every field the readers use is type-checked; ids must be integers that fit
in int64, names and file names are bounded in length, file names must be relative paths
without ``..``; any violation is one ``ValueError`` naming the file and the entry.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import defusedxml
import defusedxml.ElementTree as SafeET
import numpy as np

from graphfuse.io import read_json

__all__ = [
    "CLASS_ORDERS",
    "COCO_SPLIT_NAMES",
    "VOC_CLASSES",
    "VOC_SPLIT_NAMES",
    "CocoLabels",
    "VocLabels",
    "check_jpeg",
    "coco_paths",
    "order_categories",
    "read_coco_instances",
    "read_voc2007",
    "read_voc_annotation",
    "read_voc_split_ids",
    "voc_dir",
]

ClassOrder = Literal["mlgcn", "coco"]
#: Class orders a COCO folder can be prepared in (see the module docstring).
CLASS_ORDERS: tuple[str, ...] = ("mlgcn", "coco")
#: graphfuse split -> COCO's split name in the file names (``instances_val2014.json``).
COCO_SPLIT_NAMES: dict[str, str] = {"train": "train", "test": "val"}
#: graphfuse split -> VOC's image set (``ImageSets/Main/<set>.txt``).
VOC_SPLIT_NAMES: dict[str, str] = {"train": "trainval", "test": "test"}
#: VOC's 20 classes in the devkit's order (also ML-GCN's ``voc.object_categories``).
VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)
#: Longest category / supercategory name accepted (COCO's longest is 14 characters).
MAX_NAME_CHARS = 64
#: Longest image file name accepted (COCO's are ``COCO_train2014_000000000009.jpg``).
MAX_FILE_CHARS = 255
#: Bytes at the end of a JPEG searched for the end-of-image marker (some writers pad after it).
JPEG_TAIL_BYTES = 4096
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_VOC_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _clip(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


# ---------------------------------------------------------------------------------------------
# COCO


@dataclass
class CocoLabels:
    """Labels of one COCO instances file (one row per kept image).

    Attributes:
        path: the instances JSON.
        class_order: ``'mlgcn'`` or ``'coco'``.
        class_names: ``C`` category names in that order.
        category_ids: ``C`` COCO category ids in that order.
        supercategories: ``C`` supercategory names in that order.
        file_names: ``n`` image file names (relative to the split's image folder), in the
            order of the file's ``images`` list.
        image_ids: ``(n,)`` int64 COCO image ids.
        labels: ``(n, C)`` int8, 1 present, 0 absent.
        num_images: images listed in the file (before dropping).
        num_annotations: annotations in the file.
        dropped_without_labels: images without any annotation, dropped (as ML-GCN does).
        skipped: images left out because of a bad annotation (``on_error='skip'``): dicts
            ``{"file", "image_id", "reason"}``; annotations naming an unknown image are listed
            with ``image_id`` and no ``file``.
    """

    path: str
    class_order: str
    class_names: list[str]
    category_ids: list[int]
    supercategories: list[str]
    file_names: list[str]
    image_ids: np.ndarray
    labels: np.ndarray
    num_images: int
    num_annotations: int
    dropped_without_labels: int
    skipped: list[dict[str, Any]] = field(default_factory=list)


def coco_paths(root: str | os.PathLike, year: int | str, split: str) -> tuple[Path, Path]:
    """``(instances JSON, image folder)`` of graphfuse split ``train`` / ``test`` (COCO's
    ``train`` / ``val``) under a COCO root: ``root/annotations/instances_val2014.json`` and
    ``root/val2014/``."""
    if split not in COCO_SPLIT_NAMES:
        raise ValueError(f"split must be one of {sorted(COCO_SPLIT_NAMES)}, got {split!r}")
    name = f"{COCO_SPLIT_NAMES[split]}{year}"
    root = Path(root)
    return root / "annotations" / f"instances_{name}.json", root / name


def _is_int(v: Any) -> bool:
    return type(v) is int and _INT64_MIN <= v <= _INT64_MAX


def _name(value: Any, path: Path, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME_CHARS:
        raise ValueError(f"{path}: {what} must be a non-empty string of at most {MAX_NAME_CHARS} "
                         f"characters, got {_clip(value)}")
    return value


def _safe_file_name(value: Any, path: Path, what: str) -> str:
    """A relative POSIX file name without ``..`` (it is joined to the image folder)."""
    if not isinstance(value, str) or not value or len(value) > MAX_FILE_CHARS or "\x00" in value \
            or "\\" in value:
        raise ValueError(f"{path}: {what}: file_name must be a non-empty string of at most "
                         f"{MAX_FILE_CHARS} characters without NUL or backslash, got {_clip(value)}")
    p = PurePosixPath(value)
    if p.is_absolute() or any(part in ("..", "") for part in value.split("/")):
        raise ValueError(f"{path}: {what}: file_name {_clip(value)} must be a relative path inside "
                         "the image folder (no leading '/', no '..')")
    return value


def order_categories(categories: list[dict[str, Any]], order: str) -> list[int]:
    """Positions of ``categories`` (each with ``id`` and ``name``) in class order ``order``:
    ``'mlgcn'`` sorts by name, ``'coco'`` by id."""
    if order == "mlgcn":
        return sorted(range(len(categories)), key=lambda i: categories[i]["name"])
    if order == "coco":
        return sorted(range(len(categories)), key=lambda i: categories[i]["id"])
    raise ValueError(f"class_order must be one of {CLASS_ORDERS}, got {order!r}")


def _int_column(items: list[Any], key: str, path: Path, what: str) -> np.ndarray:
    """``items[i][key]`` for every entry as int64, each an integer within int64 (not a bool,
    not a float); the first offender is named."""
    values = [it.get(key) if type(it) is dict else None for it in items]
    bad = [i for i, v in enumerate(values) if not _is_int(v)]
    if bad:
        i = bad[0]
        it = items[i]
        if type(it) is not dict:
            raise ValueError(f"{path}: {what} {i} must be a JSON object, got {_clip(it)}")
        raise ValueError(f"{path}: {what} {i}: '{key}' must be an integer within int64, got "
                         f"{_clip(it.get(key))}")
    return np.asarray(values, dtype=np.int64).reshape(-1)


def read_coco_instances(
    path: str | os.PathLike,
    class_order: ClassOrder = "mlgcn",
    on_error: Literal["raise", "skip"] = "raise",
) -> CocoLabels:
    """Multi-label targets of a COCO ``instances_*.json`` (see the module docstring).

    Args:
        path: the instances file.
        class_order: ``'mlgcn'`` (alphabetical, ML-GCN) or ``'coco'`` (category id order).
        on_error: an annotation naming an unknown category id or an unknown image id raises
            (``'raise'``), or (``'skip'``) leaves out the image it belongs to (an unknown
            category: the image's labels would be incomplete) / the annotation itself (an
            unknown image), listed in :attr:`CocoLabels.skipped`.

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: naming the file and entry: not UTF-8, malformed JSON, a missing or mistyped
            field, duplicate category or image ids or category names, and (``on_error='raise'``)
            an annotation naming an unknown category or image.
    """
    path = Path(path)
    if class_order not in CLASS_ORDERS:
        raise ValueError(f"class_order must be one of {CLASS_ORDERS}, got {class_order!r}")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if not path.is_file():
        raise FileNotFoundError(f"COCO instances file not found: {path}")
    data = read_json(path)  # ValueError naming the file: not UTF-8, malformed, nested too deep
    if type(data) is not dict:
        raise ValueError(f"{path}: expected a JSON object with 'images', 'annotations' and 'categories'")
    lists = {}
    for key in ("images", "annotations", "categories"):
        value = data.get(key)
        if type(value) is not list:
            raise ValueError(f"{path}: '{key}' must be a list, got {_clip(value)}")
        lists[key] = value
    images, anns, cats = lists["images"], lists["annotations"], lists["categories"]

    # Categories: id, name, supercategory.
    if not cats:
        raise ValueError(f"{path}: 'categories' is empty")
    cat_ids = _int_column(cats, "id", path, "category")
    cat_list = [{"id": int(cid), "name": _name(c.get("name"), path, f"category {i}: 'name'"),
                 "supercategory": _name(c.get("supercategory"), path, f"category {i}: 'supercategory'")}
                for i, (c, cid) in enumerate(zip(cats, cat_ids.tolist()))]
    for key in ("id", "name"):
        seen: dict[Any, int] = {}
        for i, c in enumerate(cat_list):
            if c[key] in seen:
                raise ValueError(f"{path}: categories {seen[c[key]]} and {i} share the {key} {_clip(c[key])}")
            seen[c[key]] = i
    order = order_categories(cat_list, class_order)
    ordered = [cat_list[i] for i in order]
    num_class = len(ordered)
    sorted_cat_ids = np.sort(cat_ids)
    # column of each category id (searchsorted position in the sorted ids -> class index)
    col_of_sorted = np.empty(num_class, np.int64)
    col_of_sorted[np.searchsorted(sorted_cat_ids, np.asarray([c["id"] for c in ordered], np.int64))] = \
        np.arange(num_class)

    # Images: id, file_name.
    image_ids = _int_column(images, "id", path, "image")
    file_names = [_safe_file_name(im.get("file_name"), path, f"image {i} (id {iid})")
                  for i, (im, iid) in enumerate(zip(images, image_ids.tolist()))]
    n = image_ids.size
    img_order = np.argsort(image_ids, kind="stable")
    sorted_img = image_ids[img_order]
    dup = np.flatnonzero(sorted_img[1:] == sorted_img[:-1]) if n > 1 else np.zeros(0, np.int64)
    if dup.size:
        raise ValueError(f"{path}: image id {int(sorted_img[dup[0]])} is listed twice in 'images'")

    # Annotations: image_id, category_id (every annotation counts, crowd ones included).
    ann_img = _int_column(anns, "image_id", path, "annotation")
    ann_cat = _int_column(anns, "category_id", path, "annotation")
    skipped: list[dict[str, Any]] = []
    skip_rows = np.zeros(n, dtype=bool)

    def ann_name(i: int) -> str:
        aid = anns[i].get("id")
        return f"annotation {i} (id {aid})" if _is_int(aid) else f"annotation {i}"

    pos = np.searchsorted(sorted_img, ann_img) if n else np.zeros(ann_img.size, np.int64)
    pos_c = np.minimum(pos, max(n - 1, 0))
    known_img = (pos < n) & (sorted_img[pos_c] == ann_img) if n else np.zeros(ann_img.size, bool)
    rows = img_order[pos_c] if n else pos_c
    cpos = np.searchsorted(sorted_cat_ids, ann_cat)
    cpos_c = np.minimum(cpos, num_class - 1)
    known_cat = (cpos < num_class) & (sorted_cat_ids[cpos_c] == ann_cat)
    bad_img = np.flatnonzero(~known_img)
    if bad_img.size:
        i = int(bad_img[0])
        msg = f"{ann_name(i)} names image id {int(ann_img[i])}, which 'images' does not list"
        if on_error == "raise":
            raise ValueError(f"{path}: {msg} ({bad_img.size} such annotations)")
        skipped += [{"image_id": int(ann_img[j]), "reason": f"{path.name}: {ann_name(int(j))} names an "
                     "image id that 'images' does not list"} for j in bad_img.tolist()]
    bad_cat = np.flatnonzero(known_img & ~known_cat)
    if bad_cat.size:
        i = int(bad_cat[0])
        if on_error == "raise":
            raise ValueError(f"{path}: {ann_name(i)} (image {file_names[int(rows[i])]}) names category id "
                             f"{int(ann_cat[i])}, which 'categories' does not list ({bad_cat.size} such "
                             "annotations)")
        bad_rows = np.unique(rows[bad_cat])
        skip_rows[bad_rows] = True
        for r in bad_rows.tolist():  # a loop over the skipped images (few)
            j = int(bad_cat[np.flatnonzero(rows[bad_cat] == r)[0]])
            skipped.append({"file": file_names[r], "image_id": int(image_ids[r]),
                            "reason": f"{path.name}: {ann_name(j)} names unknown category id {int(ann_cat[j])}"})
    good = known_img & known_cat
    labels = np.zeros((n, num_class), dtype=np.int8)
    labels[rows[good], col_of_sorted[cpos_c[good]]] = 1
    has_label = labels.any(axis=1)
    keep = has_label & ~skip_rows
    dropped = int((~has_label & ~skip_rows).sum())
    keep_idx = np.flatnonzero(keep)
    return CocoLabels(
        path=str(path),
        class_order=class_order,
        class_names=[c["name"] for c in ordered],
        category_ids=[c["id"] for c in ordered],
        supercategories=[c["supercategory"] for c in ordered],
        file_names=[file_names[i] for i in keep_idx.tolist()],
        image_ids=image_ids[keep_idx],
        labels=labels[keep_idx],
        num_images=int(n),
        num_annotations=len(anns),
        dropped_without_labels=dropped,
        skipped=skipped,
    )


# ---------------------------------------------------------------------------------------------
# VOC


@dataclass
class VocLabels:
    """Labels of one VOC image set (``trainval`` or ``test``).

    Attributes:
        root: the ``VOC2007`` folder.
        image_set: ``'trainval'`` or ``'test'``.
        class_names: VOC's 20 classes (:data:`VOC_CLASSES`).
        ids: ``n`` image ids (``'000005'``), in the order of ``ImageSets/Main/<set>.txt``.
        file_names: ``n`` file names relative to ``JPEGImages/`` (``'000005.jpg'``).
        labels: ``(n, 20)`` int8: 1 present, -1 only difficult instances, 0 absent.
        dropped_without_labels: images whose annotation has no object of a VOC class.
        skipped: images left out (``on_error='skip'``): ``{"file", "reason"}``.
    """

    root: str
    image_set: str
    class_names: list[str]
    ids: list[str]
    file_names: list[str]
    labels: np.ndarray
    dropped_without_labels: int
    skipped: list[dict[str, Any]] = field(default_factory=list)


def _parse_xml(path: Path) -> ET.Element:
    """Root of an annotation XML parsed with ``defusedxml`` (DTDs, entities and external
    references refused), as ``graphfuse.data.intention.xml.parse_xml`` does for PIE / JAAD."""
    if not path.is_file():
        raise FileNotFoundError(f"VOC annotation file not found: {path}")
    try:
        return SafeET.parse(path, forbid_dtd=True, forbid_entities=True, forbid_external=True).getroot()
    except defusedxml.DefusedXmlException as exc:
        raise ValueError(f"{path}: XML construct refused ({type(exc).__name__}); VOC annotations need "
                         "no DTD, entity or external reference") from None
    except ET.ParseError as exc:
        raise ValueError(f"{path}: malformed XML ({exc})") from None


def read_voc_annotation(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """``(names, difficult)`` of the ``<object>`` elements of one VOC annotation file:
    each object's ``<name>`` (a VOC class) and ``(K,)`` bool ``<difficult>`` (0 / 1; a
    missing element counts as 0, as the VOC devkit's ``VOCreadxml`` does).

    Raises:
        FileNotFoundError / ValueError naming the file (and the object): malformed XML, a
        DTD, an object without a name, a name that is not a VOC class, a ``difficult`` that is
        not 0 or 1.
    """
    path = Path(path)
    root = _parse_xml(path)
    if root.tag != "annotation":
        raise ValueError(f"{path}: root element is <{_clip(root.tag)}>, expected <annotation>")
    names: list[str] = []
    difficult: list[bool] = []
    for k, obj in enumerate(root.findall("object")):  # a loop over the objects of one file (few)
        name_el = obj.find("name")
        name = (name_el.text or "").strip() if name_el is not None else ""
        if name not in VOC_CLASSES:
            raise ValueError(f"{path}: object {k}: <name> {_clip(name)} is not one of the 20 VOC classes")
        d_el = obj.find("difficult")
        d_text = (d_el.text or "").strip() if d_el is not None else "0"
        if d_text not in ("0", "1"):
            raise ValueError(f"{path}: object {k} ({name}): <difficult> must be 0 or 1, got {_clip(d_text)}")
        names.append(name)
        difficult.append(d_text == "1")
    return names, np.asarray(difficult, dtype=bool)


def read_voc_split_ids(path: str | os.PathLike) -> list[str]:
    """Image ids of ``ImageSets/Main/<set>.txt`` (one id per line; blank lines ignored)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"VOC image set file not found: {path}")
    data = path.read_bytes()
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not ASCII text (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None
    ids = []
    for lineno, line in enumerate(text.splitlines(), 1):  # a loop over lines of one file
        tok = line.strip()
        if not tok:
            continue
        tok = tok.split()[0]
        if not _VOC_ID.match(tok) or tok.strip(".") == "":
            raise ValueError(f"{path}: line {lineno}: {_clip(tok)} is not an image id")
        ids.append(tok)
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ValueError(f"{path}: image id {dup} is listed twice")
    return ids


def voc_dir(root: str | os.PathLike) -> Path:
    """The ``VOC2007`` folder under ``root``: ``root/VOCdevkit/VOC2007``, ``root/VOC2007`` or
    ``root`` itself (whichever holds ``Annotations/``)."""
    root = Path(root)
    for cand in (root / "VOCdevkit" / "VOC2007", root / "VOC2007", root):
        if (cand / "Annotations").is_dir():
            return cand
    raise FileNotFoundError(f"no VOC 2007 folder under {root}: expected VOCdevkit/VOC2007/Annotations/")


def read_voc2007(
    root: str | os.PathLike, image_set: str, on_error: Literal["raise", "skip"] = "raise"
) -> VocLabels:
    """Labels of VOC 2007 ``trainval`` or ``test`` from the annotation XML (see the module
    docstring for the difficult rule).

    Args:
        root: a folder holding ``VOCdevkit/VOC2007`` (or that folder itself).
        image_set: ``'trainval'`` or ``'test'``.
        on_error: a bad annotation file raises, or (``'skip'``) leaves the image out, listed.
    """
    if image_set not in ("trainval", "test", "train", "val"):
        raise ValueError(f"image_set must be trainval, test, train or val, got {image_set!r}")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    voc = voc_dir(root)
    ids = read_voc_split_ids(voc / "ImageSets" / "Main" / f"{image_set}.txt")
    index = {c: k for k, c in enumerate(VOC_CLASSES)}
    labels = np.zeros((len(ids), len(VOC_CLASSES)), dtype=np.int8)
    ok = np.ones(len(ids), dtype=bool)
    skipped: list[dict[str, Any]] = []
    for r, image_id in enumerate(ids):  # a loop over files
        xml_path = voc / "Annotations" / f"{image_id}.xml"
        try:
            names, difficult = read_voc_annotation(xml_path)
        except (ValueError, FileNotFoundError) as exc:
            if on_error == "raise":
                raise
            ok[r] = False
            skipped.append({"file": f"{image_id}.jpg", "reason": str(exc)})
            continue
        if names:
            cols = np.asarray([index[n] for n in names], dtype=np.int64)
            easy = np.zeros(len(VOC_CLASSES), dtype=bool)
            hard = np.zeros(len(VOC_CLASSES), dtype=bool)
            easy[cols[~difficult]] = True
            hard[cols[difficult]] = True
            labels[r] = np.where(easy, 1, np.where(hard, -1, 0))
    has_label = (labels != 0).any(axis=1)
    keep = ok & has_label
    keep_idx = np.flatnonzero(keep).tolist()
    return VocLabels(
        root=str(voc),
        image_set=image_set,
        class_names=list(VOC_CLASSES),
        ids=[ids[i] for i in keep_idx],
        file_names=[f"{ids[i]}.jpg" for i in keep_idx],
        labels=labels[keep_idx],
        dropped_without_labels=int((ok & ~has_label).sum()),
        skipped=skipped,
    )


# ---------------------------------------------------------------------------------------------
# images


def check_jpeg(path: str | os.PathLike) -> None:
    """A cheap check that ``path`` is a whole JPEG file: it exists, starts with the SOI marker
    ``FF D8 FF`` and has the EOI marker ``FF D9`` in its last :data:`JPEG_TAIL_BYTES` bytes (a
    truncated download has none). Corrupt data between the markers is found only by decoding
    (``graphfuse prepare ... --verify-images decode``).

    Raises:
        FileNotFoundError: naming the missing file.
        ValueError: naming the file and what is wrong.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(3)
            size = os.fstat(fh.fileno()).st_size
            fh.seek(max(0, size - JPEG_TAIL_BYTES))
            tail = fh.read(JPEG_TAIL_BYTES)
    except FileNotFoundError:
        raise FileNotFoundError(f"image file not found: {path}") from None
    except IsADirectoryError:
        raise ValueError(f"{path}: is a directory, expected a JPEG image") from None
    if head != b"\xff\xd8\xff":
        raise ValueError(f"{path}: not a JPEG file (starts with {head.hex(' ') or 'nothing'}, expected ff d8 ff)")
    if b"\xff\xd9" not in tail or size < 4:
        raise ValueError(f"{path}: truncated JPEG (no end-of-image marker ff d9 in its last "
                         f"{JPEG_TAIL_BYTES} bytes)")
