"""Procedural datasets written in the original file formats (default data and test data)."""

from graphfuse.data.synthetic.ntu import generate_synthetic_ntu, prepare_synthetic_ntu

__all__ = ["generate_synthetic_ntu", "prepare_synthetic_ntu"]
