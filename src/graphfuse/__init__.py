"""graphfuse: graph-convolution and fusion models for human-centric recognition."""

__version__ = "0.1.0"
