"""Ablation studies: spec -> runs -> report (``graphfuse ablate SPEC``, ``graphfuse report runs/<study>``).

* :mod:`.spec`: the YAML spec, validated against graphfuse's own config parser.
* :mod:`.runner`: one ``graphfuse fit`` process per (variant, seed); resumable, parallel,
  failure-isolated, optionally through an external launcher.
* :mod:`.stats`: mean +- std over seeds, paired / Welch t intervals, Student's t quantiles.
* :mod:`.report`: ``report.md``, ``report.csv`` and plots from the run directories.
"""

from .cli import ablate_main, report_main

__all__ = ["ablate_main", "report_main"]
