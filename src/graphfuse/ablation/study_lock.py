"""The lock of a study directory: one ``graphfuse ablate`` per study at a time.

Shared by the runner (which holds the lock while it works) and the report (which labels a
study that is still running as live). It lives apart from both so that ``runner`` may import
``report`` (it writes the report at the end of a study) without ``report`` importing
``runner`` back: no import circle.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

__all__ = ["LOCK_FILE", "study_lock", "study_locked"]

#: The lock file inside a study directory (``<root>/<study>/.lock``).
LOCK_FILE = ".lock"


@contextlib.contextmanager
def study_lock(study_dir: Path) -> Iterator[None]:
    """One ``graphfuse ablate`` per study at a time (released by the OS if the process dies).

    Raises:
        RuntimeError: another process holds the lock of ``study_dir``.
    """
    study_dir.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    fh = open(study_dir / LOCK_FILE, "a+")
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            raise RuntimeError(f"another `graphfuse ablate` is running on {study_dir}") from e
        yield
    finally:
        fh.close()


def study_locked(study_dir: str | Path) -> bool:
    """Whether a `graphfuse ablate` is working on the study now (holds its lock)."""
    path = Path(study_dir) / LOCK_FILE
    if not path.is_file():
        return False
    try:
        import fcntl
    except ImportError:
        return False
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    return False
