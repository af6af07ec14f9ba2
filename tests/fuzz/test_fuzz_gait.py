"""Fuzz the gait readers (graphfuse.data.gait.readers): PNG silhouettes and OpenGait's pickles.

Property: a mutated PNG frame either reads into a 2D uint8 image (which the pretreatment turns
into uint8 ``(T, S, S)`` frames, or refuses with a ValueError naming the frame) or raises one
``GaitDataError`` (a ``ValueError``) naming the file; a mutated OpenGait ``.pkl`` either reads
into a uint8 ``(T, S, S)`` array with ``T >= 1`` or raises a ``ValueError`` naming the file.
Seeds: a frame of the CASIA-B-layout fixture in ``tests/data/gait`` and the pickle OpenGait's
``pretreatment.py`` writes for it (``pickle.dump`` of the uint8 array).
"""

from __future__ import annotations

import functools
import pickle
from pathlib import Path

import numpy as np
from _fuzz import fresh_path, fuzz_settings, mutate, mutations, reads_or_refuses, whole
from hypothesis import example, given

from graphfuse.data.gait.pretreat import pretreat_frames
from graphfuse.data.gait.readers import read_opengait_pkl, read_png

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "gait" / "casia-b"


@functools.cache
def _seeds() -> dict[str, bytes]:
    png = (FIXTURE / "001" / "nm-01" / "000" / "001-nm-01-000-002.png").read_bytes()
    frames = pretreat_frames([read_png(FIXTURE / "001" / "nm-01" / "000" / f"001-nm-01-000-00{k}.png")
                              for k in (1, 2)], 64).frames
    return {"png": png, "pkl": pickle.dumps(frames[:, ::8, ::8].copy(), protocol=4)}  # (2, 8, 8): small


def test_seeds_are_valid(fuzz_dir):
    p = fresh_path(fuzz_dir, "frame.png")
    p.write_bytes(_seeds()["png"])
    assert read_png(p).shape == (240, 320)
    p = fresh_path(fuzz_dir, "000.pkl")
    p.write_bytes(_seeds()["pkl"])
    assert read_opengait_pkl(p).shape == (2, 8, 8)


@fuzz_settings(max_examples=250)
@given(ops=mutations())
@example(ops=[whole(b"")])
@example(ops=[("truncate", 40)])
@example(ops=[("flip", 19, 0xFF)])  # the IHDR width
@example(ops=[("flip", 0, 0x88)])  # the signature
def test_png_reads_or_refuses(ops, fuzz_dir):
    p = fresh_path(fuzz_dir, "frame.png")
    p.write_bytes(mutate(_seeds()["png"], ops))
    img = reads_or_refuses(lambda: read_png(p), p)
    if img is None:
        return
    assert isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.ndim == 2 and img.size > 0
    out = reads_or_refuses(lambda: pretreat_frames([img], 64, [str(p)]), p)
    if out is not None:
        assert out.frames.dtype == np.uint8 and out.frames.shape[1:] == (64, 64)
        assert out.frames.shape[0] + out.dropped == 1


@fuzz_settings(max_examples=250)
@given(ops=mutations())
@example(ops=[whole(b"")])
@example(ops=[whole(pickle.dumps({"frames": np.zeros((2, 8, 8), np.uint8)}))])
@example(ops=[whole(pickle.dumps(np.zeros((2, 8, 8), np.float64)))])
@example(ops=[whole(pickle.dumps([np.zeros((8, 8), np.uint8)]))])
@example(ops=[whole(b"cos\nsystem\n(S'true'\ntR.")])
def test_opengait_pickle_reads_or_refuses(ops, fuzz_dir):
    p = fresh_path(fuzz_dir, "000.pkl")
    p.write_bytes(mutate(_seeds()["pkl"], ops))
    arr = reads_or_refuses(lambda: read_opengait_pkl(p), p)
    if arr is not None:
        assert isinstance(arr, np.ndarray) and arr.dtype == np.uint8 and arr.ndim == 3
        assert arr.shape[0] >= 1 and arr.shape[1] == arr.shape[2]
