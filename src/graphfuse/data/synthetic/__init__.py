"""Procedural datasets written in the original file formats (default data and test data)."""

from graphfuse.data.synthetic.ntu import generate_synthetic_ntu, prepare_synthetic_ntu
from graphfuse.data.synthetic.pie import generate_synthetic_pie, prepare_synthetic_pie

__all__ = ["generate_synthetic_ntu", "prepare_synthetic_ntu", "generate_synthetic_pie", "prepare_synthetic_pie"]
