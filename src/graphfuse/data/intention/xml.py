"""Shared XML helpers for the PIE and JAAD annotation readers (numpy only, no torch).

The official interfaces (``pie_data.py`` of aras62/PIE, ``jaad_data.py`` of ykotseruba/JAAD)
parse CVAT-style XML with ``xml.etree``; these helpers do the same parsing but build numpy
arrays per track and raise one clear exception naming the file and element on bad input.

Limits (annotation files are untrusted input):

* parsing goes through ``defusedxml`` with DTDs, entity declarations and external references
  forbidden: a file holding ``<!DOCTYPE ...>`` is refused outright (the PIE and JAAD files
  have none), so no entity is ever expanded and nothing outside the file is read;
* every text or attribute value (and attribute name) the readers use is at most
  :data:`MAX_FIELD_CHARS` characters, checked *before* any numpy string array is built (an
  ``np.asarray(..., dtype=str)`` cell is as wide as the longest value, so one huge value
  would otherwise make every cell huge);
* integers convert to int64 and floats to float64: non-integer text in an integer field and
  integers outside the int64 range raise ValueError naming the file, element and value;
  frame counts and sizes are range-checked (:func:`required_int`: ``<size>`` in
  ``0 .. 2**31 - 1``, ``<width>`` / ``<height>`` positive), and a float attribute must be
  finite and within its documented range (:func:`scalar_attr`: ``intention_prob`` in [0, 1]).
"""

from __future__ import annotations

import itertools
import math
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import defusedxml
import defusedxml.ElementTree as SafeET
import numpy as np

#: Longest text or attribute value (or attribute name) a reader accepts, in characters.
#: Legitimate values are numbers (at most 20 characters in the released PIE OBD files, e.g.
#: ``2.77555756156289e-17``), ids (``0_1_2b``, ``5_2_1751``) and labels
#: (``crossing-irrelevant``); 64 leaves ample headroom while capping a numpy string cell at
#: 256 bytes.
MAX_FIELD_CHARS = 64

_INT64 = np.iinfo(np.int64)


def parse_xml(path: str | Path) -> ET.Element:
    """Parse an XML file and return its root; missing or malformed files raise clearly.

    DTDs (hence entity declarations and external references) are refused with a ValueError
    naming the file, as is malformed XML (including bytes that are not valid in the declared
    encoding)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    try:
        return SafeET.parse(path, forbid_dtd=True, forbid_entities=True,
                            forbid_external=True).getroot()
    except defusedxml.DTDForbidden:
        raise ValueError(f"{path}: XML with a DTD (<!DOCTYPE ...>) refused; annotation files "
                         "need none, and its entities or external references are never expanded"
                         ) from None
    except defusedxml.EntitiesForbidden:
        raise ValueError(f"{path}: XML entity declaration refused") from None
    except defusedxml.ExternalReferenceForbidden:
        raise ValueError(f"{path}: XML external reference refused") from None
    except defusedxml.DefusedXmlException as exc:
        raise ValueError(f"{path}: XML construct refused ({type(exc).__name__})") from None
    except ET.ParseError as exc:
        raise ValueError(f"{path}: malformed XML ({exc})") from exc


def clip(value: object, limit: int = 24) -> str:
    """``repr`` of ``value`` cut to about ``limit`` characters (``2 * limit`` for non-strings),
    for error messages about untrusted values."""
    if isinstance(value, str):
        return repr(value) if len(value) <= limit else repr(value[:limit]) + f"... ({len(value)} characters)"
    text = repr(value)
    return text if len(text) <= 2 * limit else text[: 2 * limit] + "..."


def _plain(value: str | None, limit: int = 24) -> str:
    """``value`` as is when short (a frame number), else :func:`clip`-ped."""
    return str(value) if value is None or len(value) <= limit else clip(value, limit)


def _too_long(path: Path, what: str, field: str, value: str) -> ValueError:
    return ValueError(f"{path}: {what}: {field} is {len(value)} characters long (at most "
                      f"{MAX_FIELD_CHARS} allowed): {clip(value)}")


def bounded(value: str | None, path: Path, what: str, name: str) -> str | None:
    """``value`` (an attribute ``name`` of ``what``) if at most MAX_FIELD_CHARS long; None passes."""
    if value is not None and len(value) > MAX_FIELD_CHARS:
        raise _too_long(path, what, f"attribute '{name}'", value)
    return value


def child_texts(el: ET.Element, path: Path, what: str) -> dict[str, str]:
    """``{tag: text}`` of the children of ``el`` (missing text -> ''), each bounded."""
    out: dict[str, str] = {}
    for c in el:
        tag, text = str(c.tag), c.text or ""
        if len(tag) > MAX_FIELD_CHARS:
            raise _too_long(path, what, "an element name", tag)
        if len(text) > MAX_FIELD_CHARS:
            raise _too_long(path, what, f"the text of <{tag}>", text)
        out[tag] = text
    return out


def required_text(root: ET.Element, xpath: str, path: Path) -> str:
    """Text of the element at ``xpath``; a missing element or an over-long text raises naming
    file and path."""
    el = root.find(xpath)
    if el is None or el.text is None:
        raise ValueError(f"{path}: missing required element <{xpath}>")
    if len(el.text) > MAX_FIELD_CHARS:
        raise _too_long(path, f"<{xpath}>", "the text", el.text)
    return el.text


def _int_problem(text: str) -> str | None:
    """Why ``text`` is not an int64 (as Python's ``int`` parses it), or None when it is."""
    try:
        n = int(text)
    except ValueError:
        return "not an integer"
    return None if _INT64.min <= n <= _INT64.max else "outside the int64 range"


#: Largest count or size :func:`required_int` accepts by default (int32: frame counts and
#: frame sizes are far below it).
MAX_COUNT = 2**31 - 1


def required_int(root: ET.Element, xpath: str, path: Path, *, minimum: int = 0,
                 maximum: int = MAX_COUNT) -> int:
    """:func:`required_text` at ``xpath`` as an integer within ``[minimum, maximum]`` (by
    default a count: ``0 .. 2**31 - 1``; a frame size passes ``minimum=1``), naming file, path
    and text when it is not one (``<width>2.5</width>``, a 20-digit number, ``<size>-1``,
    ``<height>0``)."""
    text = required_text(root, xpath, path)
    problem = _int_problem(text)
    if problem:
        raise ValueError(f"{path}: <{xpath}> is {text!r}, {problem}")
    value = int(text)
    if not minimum <= value <= maximum:
        raise ValueError(f"{path}: <{xpath}> is {text!r}, outside the valid range "
                         f"{minimum}..{maximum}")
    return value


def required_attrs(
    elements: Sequence[ET.Element], names: Sequence[str], path: Path, what: str
) -> list[list[str]]:
    """Read XML attributes ``names`` of every element: rows (len(elements), len(names)) of str.

    Raises ValueError naming ``what`` (e.g. the track id) and the first element lacking one
    or holding a value longer than :data:`MAX_FIELD_CHARS`.
    """
    for n in names:
        if len(n) > MAX_FIELD_CHARS:
            raise _too_long(path, what, "an attribute name", n)
    rows = [[el.get(n) for n in names] for el in elements]
    for row, el in zip(rows, elements):
        if None in row:
            missing = names[row.index(None)]
            raise ValueError(
                f"{path}: {what}: <{el.tag} {_short(el)}> lacks required attribute '{missing}'"
            )
    if rows and max(map(len, itertools.chain.from_iterable(rows))) > MAX_FIELD_CHARS:
        for row, el in zip(rows, elements):  # error path only: find the first offender
            for n, v in zip(names, row):
                if len(v) > MAX_FIELD_CHARS:
                    raise _too_long(path, what, f"<{el.tag} {_short(el)}> attribute '{n}'", v)
    return rows  # type: ignore[return-value]


def child_attribute_texts(
    boxes: Sequence[ET.Element], names: Sequence[str], path: Path, what: str
) -> dict[str, list[str]]:
    """Texts of ``<attribute name=...>`` children of each box, one list per name.

    A box lacking one of ``names``, or whose text is longer than :data:`MAX_FIELD_CHARS`,
    raises ValueError naming file, track and frame.
    """
    out: dict[str, list[str]] = {n: [] for n in names}
    for b in boxes:
        # One pass over the box's children (the etree iteration the format requires).
        found = {a.get("name"): a.text for a in b.iter("attribute")}
        for n in names:
            v = found.get(n)
            if v is None:
                raise ValueError(
                    f"{path}: {what}: box at frame {_plain(b.get('frame'))} lacks attribute '{n}'"
                )
            out[n].append(v)
    for n, values in out.items():
        if values and max(map(len, values)) > MAX_FIELD_CHARS:
            i = next(i for i, v in enumerate(values) if len(v) > MAX_FIELD_CHARS)
            raise _too_long(path, what, f"box at frame {_plain(boxes[i].get('frame'))}: attribute "
                            f"'{n}'", values[i])
    return out


def _str_array(values: Sequence[str] | Sequence[Sequence[str]] | np.ndarray, path: Path,
               what: str) -> np.ndarray:
    """``np.asarray(values, dtype=str)`` once every value is known to be at most
    MAX_FIELD_CHARS long (so no cell, hence no array, is built oversized)."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "U":
        if values.dtype.itemsize <= 4 * MAX_FIELD_CHARS:
            return values
        flat: Iterable[str] = values.reshape(-1).tolist()
    else:
        seq = list(values)
        flat = seq if not seq or isinstance(seq[0], str) else itertools.chain.from_iterable(seq)
        flat = list(flat)
        if not flat or max(map(len, flat)) <= MAX_FIELD_CHARS:
            return np.asarray(seq, dtype=str)
    raise _too_long(path, what, "a value", next(v for v in flat if len(v) > MAX_FIELD_CHARS))


def map_labels(
    values: Sequence[str], mapping: Mapping[str, int], path: Path, what: str
) -> np.ndarray:
    """Map text labels to ints through ``mapping``, vectorised over the values.

    Returns (len(values),) int64. Unknown or over-long labels raise ValueError naming the file.
    """
    arr = _str_array(values, path, what)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    uniq, inverse = np.unique(arr, return_inverse=True)
    unknown = [u for u in uniq.tolist() if u not in mapping]
    if unknown:
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise ValueError(
            f"{path}: {what}: unknown label(s) {unknown[:5]}{more}; expected one of {sorted(mapping)}"
        )
    lut = np.array([mapping[u] for u in uniq.tolist()], dtype=np.int64)
    return lut[inverse.reshape(-1)]


def to_float(rows: Sequence[Sequence[str]] | np.ndarray, path: Path, what: str) -> np.ndarray:
    """Convert string rows to a float64 array, naming the file on a non-numeric value."""
    arr = _str_array(rows, path, what)
    try:
        return arr.astype(np.float64)
    except ValueError as exc:
        raise ValueError(f"{path}: {what}: non-numeric value ({exc})") from exc


def to_int(values: Sequence[str] | np.ndarray, path: Path, what: str) -> np.ndarray:
    """Convert strings (any shape) to an int64 array, naming the file and the first value that
    is not an integer or lies outside the int64 range."""
    arr = _str_array(values, path, what)
    try:
        return arr.astype(np.int64)
    except (ValueError, OverflowError):
        pass
    cols = arr.shape[-1] if arr.ndim > 1 else 1
    for i, v in enumerate(arr.reshape(-1).tolist()):  # error path only: find the first offender
        problem = _int_problem(v)
        if problem:
            where = f"row {i // cols}, column {i % cols}" if arr.ndim > 1 else f"entry {i}"
            raise ValueError(f"{path}: {what}: value {v!r} ({where}) is {problem}")
    raise AssertionError(f"{path}: {what}: int64 conversion failed on valid integers")


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
                what: str, float_keys: Sequence[str] = (),
                float_ranges: Mapping[str, tuple[float, float]] | None = None) -> int | float:
    """Official attribute-value rule: int if it parses (float for ``float_keys``), else the
    text label mapped through ``mapping[key]`` (as ``_get_ped_attributes`` does). Values (and
    names) longer than MAX_FIELD_CHARS, integers outside int64, floats that are not finite
    (``nan``, ``inf``, ``1e400``) and floats outside ``float_ranges[key]`` (closed interval,
    e.g. ``(0.0, 1.0)`` for a probability) raise ValueError naming file, ``what`` and value."""
    if len(key) > MAX_FIELD_CHARS:
        raise _too_long(path, what, "an attribute name", key)
    bounded(value, path, what, key)
    try:
        number = float(value) if key in float_keys else int(value)
    except ValueError:
        pass
    else:
        if isinstance(number, int) and not _INT64.min <= number <= _INT64.max:
            raise ValueError(f"{path}: {what}: attribute {key}={value!r} is outside the int64 range")
        if isinstance(number, float):
            if not math.isfinite(number):
                raise ValueError(f"{path}: {what}: attribute {key}={value!r} is not a finite number")
            lo, hi = (float_ranges or {}).get(key, (-math.inf, math.inf))
            if not lo <= number <= hi:
                raise ValueError(f"{path}: {what}: attribute {key}={value!r} is outside the valid "
                                 f"range {lo:g}..{hi:g}")
        return number
    table = mapping.get(key)
    if table is None or value not in table:
        raise ValueError(f"{path}: {what}: attribute {key}={value!r} is not a number nor a known label")
    return table[value]


def describe(el: ET.Element) -> str:
    """``<tag a='..' b='..'>`` with the first three attributes, values cut short (for messages)."""
    return f"<{el.tag} {_short(el)}>"


def _short(el: ET.Element) -> str:
    return " ".join(f"{k[:24]}={clip(v)}" for k, v in list(el.attrib.items())[:3])
