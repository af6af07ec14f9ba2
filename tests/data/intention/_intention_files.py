"""Reference values read straight from the real PIE sample files (plain regex, independent
of the readers under test)."""

from __future__ import annotations

import re
from pathlib import Path

DATA = Path(__file__).parent / "data"


def obd_by_frame() -> dict[int, tuple[float, float]]:
    """Frame -> (GPS_speed, OBD_speed) of PIE set05/video_0002."""
    txt = (DATA / "pie/annotations_vehicle/set05/video_0002_obd.xml").read_text()
    out = {}
    for r in re.findall(r"<frame ([^>]*)/>", txt):
        a = dict(re.findall(r'(\w+)="([^"]*)"', r))
        out[int(a["id"])] = (float(a["GPS_speed"]), float(a["OBD_speed"]))
    return out


def pie_boxes(pid: str) -> dict[int, list[float]]:
    """Frame -> box (x1, y1, x2, y2) of pedestrian ``pid`` in PIE set05/video_0002."""
    txt = (DATA / "pie/annotations/set05/video_0002_annt.xml").read_text()
    chunk = [c for c in txt.split("<track ")[1:] if f'<attribute name="id">{pid}<' in c][0]
    out = {}
    for b in re.findall(r"<box ([^>]*)>", chunk):
        a = dict(re.findall(r'(\w+)="([^"]*)"', b))
        out[int(a["frame"])] = [float(a[k]) for k in ("xtl", "ytl", "xbr", "ybr")]
    return out
