"""Shared XML helpers for the PIE and JAAD annotation readers (numpy only, no torch).

The official interfaces (``pie_data.py`` of aras62/PIE, ``jaad_data.py`` of ykotseruba/JAAD)
parse CVAT-style XML with ``xml.etree``; these helpers do the same parsing but build numpy
arrays per track and raise one clear exception naming the file and element on bad input.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


def parse_xml(path: str | Path) -> ET.Element:
    """Parse an XML file and return its root; missing or malformed files raise clearly."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    try:
        return ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise ValueError(f"{path}: malformed XML ({exc})") from exc


def required_text(root: ET.Element, xpath: str, path: Path) -> str:
    """Text of the element at ``xpath``; a missing element raises naming file and path."""
    el = root.find(xpath)
    if el is None or el.text is None:
        raise ValueError(f"{path}: missing required element <{xpath}>")
    return el.text


def required_attrs(
    elements: Sequence[ET.Element], names: Sequence[str], path: Path, what: str
) -> list[list[str]]:
    """Read XML attributes ``names`` of every element: rows (len(elements), len(names)) of str.

    Raises ValueError naming ``what`` (e.g. the track id) and the first element lacking one.
    """
    rows = [[el.get(n) for n in names] for el in elements]
    for row, el in zip(rows, elements):
        if None in row:
            missing = names[row.index(None)]
            raise ValueError(
                f"{path}: {what}: <{el.tag} {_short(el)}> lacks required attribute '{missing}'"
            )
    return rows  # type: ignore[return-value]


def child_attribute_texts(
    boxes: Sequence[ET.Element], names: Sequence[str], path: Path, what: str
) -> dict[str, list[str]]:
    """Texts of ``<attribute name=...>`` children of each box, one list per name.

    A box lacking one of ``names`` raises ValueError naming file, track and frame.
    """
    out: dict[str, list[str]] = {n: [] for n in names}
    for b in boxes:
        # One pass over the box's children (the etree iteration the format requires).
        found = {a.get("name"): a.text for a in b.iter("attribute")}
        for n in names:
            v = found.get(n)
            if v is None:
                raise ValueError(
                    f"{path}: {what}: box at frame {b.get('frame')} lacks attribute '{n}'"
                )
            out[n].append(v)
    return out


def map_labels(
    values: Sequence[str], mapping: Mapping[str, int], path: Path, what: str
) -> np.ndarray:
    """Map text labels to ints through ``mapping``, vectorised over the values.

    Returns (len(values),) int64. Unknown labels raise ValueError naming the file.
    """
    arr = np.asarray(values, dtype=str)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    uniq, inverse = np.unique(arr, return_inverse=True)
    unknown = [u for u in uniq.tolist() if u not in mapping]
    if unknown:
        raise ValueError(
            f"{path}: {what}: unknown label(s) {unknown}; expected one of {sorted(mapping)}"
        )
    lut = np.array([mapping[u] for u in uniq.tolist()], dtype=np.int64)
    return lut[inverse.reshape(-1)]


def to_float(rows: Sequence[Sequence[str]], path: Path, what: str) -> np.ndarray:
    """Convert string rows to a float64 array, naming the file on a non-numeric value."""
    try:
        return np.asarray(rows, dtype=str).astype(np.float64)
    except ValueError as exc:
        raise ValueError(f"{path}: {what}: non-numeric value ({exc})") from exc


def to_int(values: Sequence[str], path: Path, what: str) -> np.ndarray:
    """Convert strings to an int64 array, naming the file on a non-integer value."""
    try:
        return np.asarray(values, dtype=str).astype(np.int64)
    except ValueError as exc:
        raise ValueError(f"{path}: {what}: non-integer value ({exc})") from exc


def check_boxes(boxes: np.ndarray, frames: np.ndarray, path: Path, what: str) -> None:
    """Reject boxes with x2 < x1 or y2 < y1 (boxes: (F, 4) x1 y1 x2 y2), naming the frame."""
    bad = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1]) | ~np.isfinite(boxes).all(1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{path}: {what}: invalid box at frame {int(frames[i])}: {boxes[i].tolist()} "
            "(need x1 <= x2 and y1 <= y2)"
        )


def scalar_attr(value: str, key: str, mapping: Mapping[str, Mapping[str, int]], path: Path,
                what: str, float_keys: Sequence[str] = ()) -> int | float:
    """Official attribute-value rule: int if it parses (float for ``float_keys``), else the
    text label mapped through ``mapping[key]`` (as ``_get_ped_attributes`` does)."""
    try:
        return float(value) if key in float_keys else int(value)
    except ValueError:
        pass
    table = mapping.get(key)
    if table is None or value not in table:
        raise ValueError(f"{path}: {what}: attribute {key}={value!r} is not a number nor a known label")
    return table[value]


def _short(el: ET.Element) -> str:
    return " ".join(f'{k}="{v}"' for k, v in list(el.attrib.items())[:3])
