"""Run directories: ``runs/<name>/<version>/`` and the files a run leaves behind.

Layout (see ``DESIGN.md``)::

    runs/<name>/<version>/
        config.yaml             resolved configuration (LightningCLI)
        checkpoints/best.ckpt   best epoch on the selection split (``--run.select last``: the last state)
        checkpoints/last.ckpt   end of the last finished epoch (resume point)
        metrics.csv             one row per epoch: train and val metrics, lr
        events.out.tfevents.*   TensorBoard
        curves.png              loss and the selection metric per epoch, train and val
        summary.json            final metrics, best epoch, protocol; test: metrics, per-class accuracy
                                (``per_class``), and a task's own ``test_report`` (e.g. gait)
        scores.npz              per-sample test scores keyed by sample name (+ task extras)
        confusion_test.png      test confusion matrix, row-normalised, class names on the axes

An existing run is never overwritten; ``--ckpt_path last`` resumes the newest version.

One writer per run directory: the process running ``graphfuse fit|validate|test|predict``
(global rank 0 under DDP) holds an ``flock`` on ``runs/<name>/.<version>.lock`` (beside the run
directory, so the directory itself stays empty until the run writes it) from the moment the
directory is chosen until it exits; the file holds its pid, host and start time. A second
writer stops with :class:`RunDirLockedError` naming that pid. The OS releases the lock when
the process dies, however it dies.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import socket
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from .io import atomic_path, output_error, write_json, write_text

__all__ = [
    "PROTOCOLS",
    "SELECTIONS",
    "LastStateCheckpoint",
    "MidEpochResume",
    "RunArtifacts",
    "RunDirLockedError",
    "SelectedLastCheckpoint",
    "lock_run_dir",
    "multilabel_per_class",
    "per_class_from_confusion",
    "plot_confusion",
    "read_metrics_csv",
    "release_run_locks",
    "resolve_run_dir",
    "run_dir_holder",
    "run_lock_path",
    "select_epoch",
    "selection_label",
    "selection_text",
    "tie_text",
]

#: Model-selection protocols. ``official`` reproduces kchengiva/Shift-GCN, which evaluates
#: on the test split every epoch and reports the best epoch (optimistic).
PROTOCOLS = {
    "holdout": "model selected on a validation split (held out from the training data, or the dataset's "
    "official validation split, e.g. PIE set05/06); test metrics reported at the selected epoch",
    "official": "OFFICIAL PROTOCOL: model selected on the TEST split (best-on-test epoch, as the reference "
    "code does); test numbers are optimistically biased and the 'val' metrics are test-split metrics",
}

#: Checkpoint-selection rules (``--run.select``): ``best`` = the epoch with the highest
#: validation metric (the task's monitor; default); ``last`` = the last state trained, for
#: recipes that select nothing (no validation split, e.g. the gait recipes).
SELECTIONS = {
    "best": "best epoch on the validation metric {monitor} (maximised); test metrics at that epoch",
    "last": "no model selection: the last state trained (the last epoch, or the last step of an iteration-based "
    "recipe) is tested; best.ckpt is that state",
}


def selection_text(select: str, monitor: str) -> str:
    """One line saying how the tested checkpoint was chosen (written in every output)."""
    if select not in SELECTIONS:
        raise ValueError(f"run.select must be one of {sorted(SELECTIONS)}, got {select!r}")
    return SELECTIONS[select].format(monitor=monitor)


_VERSION_RE = re.compile(r"^version_(\d+)$")


def _versions(base: Path) -> list[tuple[int, Path]]:
    if not base.is_dir():
        return []
    out = []
    for p in base.iterdir():
        m = _VERSION_RE.match(p.name)
        if m and p.is_dir():
            out.append((int(m.group(1)), p))
    return sorted(out)


def resolve_run_dir(root: str | Path, name: str, version: str | None, resume: bool) -> Path:
    """Pick the directory of a run.

    * ``resume``: ``version`` if given, else the newest ``version_k`` holding a ``last.ckpt``.
    * otherwise: ``version`` if given and not yet used, else the next free ``version_k``.
    """
    base = Path(root) / name
    if resume:
        if version is not None:
            run_dir = base / version
            if not (run_dir / "checkpoints" / "last.ckpt").is_file():
                raise FileNotFoundError(f"cannot resume: {run_dir}/checkpoints/last.ckpt does not exist")
            return run_dir
        for _, p in reversed(_versions(base)):
            if (p / "checkpoints" / "last.ckpt").is_file():
                return p
        raise FileNotFoundError(
            f"cannot resume: no run under {base} has checkpoints/last.ckpt (run.name={name!r}, run.root={str(root)!r})"
        )
    if version is not None:
        run_dir = base / version
        if run_dir.exists() and any(run_dir.iterdir()):
            raise FileExistsError(
                f"run directory {run_dir} already exists and is never overwritten; resume it with "
                "--ckpt_path last, or choose another --run.version"
            )
        return run_dir
    existing = _versions(base)
    k = existing[-1][0] + 1 if existing else 0
    return base / f"version_{k}"


# -- one writer per run directory --------------------------------------------------------------------
class RunDirLockedError(RuntimeError):
    """Another process is writing the run directory (its pid is in the message)."""


#: Environment variables holding a process's rank under the launchers Lightning supports
#: (its own subprocess launcher: LOCAL_RANK/NODE_RANK; torchrun: RANK; SLURM: SLURM_PROCID).
_RANK_VARS = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID")

_held: dict[str, int] = {}  # run directory -> fd of its lock file, held by this process


def _is_rank_zero() -> bool:
    for var in _RANK_VARS:
        try:
            if int(os.environ.get(var, "0")) != 0:
                return False
        except ValueError:
            continue
    return True


def run_lock_path(run_dir: str | Path) -> Path:
    """The lock file of a run directory: ``<root>/<name>/.<version>.lock``."""
    run_dir = Path(run_dir)
    return run_dir.parent / f".{run_dir.name}.lock"


def _holder_text(fd: int) -> str:
    try:
        text = os.pread(fd, 512, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    fields = dict(f.split("=", 1) for f in text.split() if "=" in f)
    if "pid" not in fields:
        return "another process (pid not recorded yet)"
    return f"pid {fields['pid']} on {fields.get('host', '?')} (since {fields.get('since', '?')})"


def lock_run_dir(run_dir: str | Path) -> Path | None:
    """Make this process the one writer of ``run_dir`` until it exits (or :func:`release_run_locks`).

    Returns the lock file, or None where nothing is locked (not POSIX, or a DDP rank other
    than 0: rank 0 writes the run). Taking a lock this process already holds is a no-op.

    Raises:
        RunDirLockedError: another process holds it; the message names its pid and host.
        graphfuse.io.OutputError: the run root cannot be written (read-only, full, no permission).
    """
    try:
        import fcntl
    except ImportError:  # not POSIX
        return None
    if not _is_rank_zero():
        return None
    run_dir = Path(os.path.abspath(run_dir))
    path = run_lock_path(run_dir)
    if str(run_dir) in _held:
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise output_error(exc, run_dir) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = _holder_text(fd)
        os.close(fd)
        raise RunDirLockedError(
            f"run directory {run_dir} is being written by {holder}; one writer at a time: wait for it "
            f"to end or stop it (lock file {path})"
        ) from None
    try:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid={os.getpid()} host={socket.gethostname()} since={stamp}\n".encode(), 0)
    except OSError as exc:
        os.close(fd)
        raise output_error(exc, run_dir) from None
    _held[str(run_dir)] = fd
    return path


def release_run_locks() -> None:
    """Release the run-directory locks this process holds (the OS does it at exit anyway).

    A run that wrote nothing (its command failed before the first file: missing data, a bad
    option found late) leaves no trace: its empty version folder and its lock file are
    removed, while the lock is still held, so the next run takes the same version number."""
    while _held:
        run_dir, fd = _held.popitem()
        try:
            path = Path(run_dir)
            if not path.exists() or (path.is_dir() and not any(path.iterdir())):
                if path.exists():
                    path.rmdir()
                run_lock_path(path).unlink(missing_ok=True)
        except OSError:
            pass  # a leftover lock file is harmless: the next run takes the next version
        finally:
            try:
                os.close(fd)
            except OSError:
                pass


def run_dir_holder(run_dir: str | Path) -> str | None:
    """Who is writing ``run_dir`` now (``"pid N on HOST (since T)"``), or None if nobody is."""
    try:
        import fcntl
    except ImportError:
        return None
    path = run_lock_path(Path(os.path.abspath(run_dir)))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return _holder_text(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def read_metrics_csv(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a run's ``metrics.csv`` with numbers parsed (empty cells -> NaN)."""
    rows = []
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            parsed: dict[str, Any] = {}
            for k, v in row.items():
                try:
                    parsed[k] = float(v) if v != "" else math.nan
                except ValueError:
                    parsed[k] = v
            if "epoch" in parsed:
                parsed["epoch"] = int(parsed["epoch"])
            rows.append(parsed)
    return rows


def _scalar(v: Any) -> float:
    if isinstance(v, torch.Tensor):
        return float(v.detach().float().cpu())
    return float(v)


class LastStateCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` without a monitor that also saves at the end of every training
    epoch when it saves every ``every_n_train_steps`` (Lightning's does one or the other), so
    the final state of a run is always saved.

    Used for ``best.ckpt`` under ``--run.select last`` and for ``last.ckpt`` with
    ``--run.every_n_steps``. Its own class gives it a checkpoint state key distinct from the
    plain ``ModelCheckpoint`` writing ``last.ckpt``.
    """

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._every_n_epochs == 0 and not self._should_skip_saving_checkpoint(trainer):
            self._save_topk_checkpoint(trainer, self._monitor_candidates(trainer))


class SelectedLastCheckpoint(LastStateCheckpoint):
    """``best.ckpt`` under ``--run.select last``: a :class:`LastStateCheckpoint` with its own
    state key (it may save on the same triggers as the one writing ``last.ckpt``)."""


class MidEpochResume(L.Callback):
    """Resume mid-epoch exactly: when the fit restarts from a checkpoint saved inside an epoch
    (``--run.every_n_steps``), the training sampler skips the batches already trained in that
    epoch, so the rest of the epoch sees the batches an uninterrupted run would (graphfuse's
    samplers make the order a function of ``(seed, epoch)``: :class:`graphfuse.data.samplers.EpochSeededSampler`).

    Lightning restores the loop counters but restarts a plain ``DataLoader`` from the epoch's
    first batch. graphfuse's datamodules position their sampler when they build the training
    loader (:meth:`graphfuse.data.base.PreparedDataModule.start_where_resumed`, with or without
    worker processes); for other loaders this hook skips, which needs a sampler with
    ``skip_next(num_items)`` and ``num_workers=0``. Under several processes, or when neither
    applies, it warns that the resumed epoch repeats batches.
    """

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loop = trainer.fit_loop
        if not getattr(loop, "restarted_mid_epoch", False):
            return
        done = int(loop.epoch_loop.batch_progress.current.processed)
        if done <= 0:
            return
        dl = trainer.train_dataloader
        batch_sampler = getattr(dl, "batch_sampler", None)
        sampler = getattr(batch_sampler, "sampler", None) if batch_sampler is not None else getattr(dl, "sampler", None)
        batch_size = getattr(batch_sampler, "batch_size", None) or getattr(dl, "batch_size", None)
        if getattr(sampler, "resumed_mid_epoch", False):
            return  # positioned when the loader was built
        skip = getattr(sampler, "skip_next", None)
        # With worker processes the loader's iterator (created before this hook) has already
        # drawn the epoch's indices, so a skip would land on the next epoch: not applied.
        if trainer.world_size > 1 or not callable(skip) or not batch_size or getattr(dl, "num_workers", 0) > 0:
            import warnings

            warnings.warn(
                f"resuming mid-epoch ({done} batches of epoch {trainer.current_epoch} done): the training loader "
                "cannot skip them (needs a graphfuse datamodule or sampler and one process), so the epoch starts again",
                stacklevel=2,
            )
            return
        skip(done * int(batch_size))


def select_epoch(rows: list[dict[str, Any]], monitor: str, select: str = "best") -> tuple[dict[str, Any] | None, list[int]]:
    """The selected row of per-epoch ``rows`` and the other epochs tied with it.

    ``select="last"``: the last row, no ties. ``select="best"``: the first row with the highest
    ``monitor`` value (rows without it, or NaN, are skipped). Ties keep the earliest epoch, as
    Lightning's ``ModelCheckpoint(mode="max")`` does: it replaces its best only on a strict
    improvement. The second item lists the later epochs with exactly the same value.
    """
    if select == "last":
        return (rows[-1] if rows else None), []
    best = None
    for r in rows:
        v = r.get(monitor)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        if best is None or v > best[monitor]:
            best = r
    if best is None:
        return None, []
    ties = [r["epoch"] for r in rows if r is not best and r.get(monitor) == best[monitor]]
    return best, ties


def selection_label(row: dict[str, Any] | None, monitor: str, select: str = "best") -> str:
    """The curves' marker label: ``selected: epoch k (val/top1 = 0.8125)`` or ``last epoch``."""
    if row is None:
        return ""
    if select == "last":
        return f"last epoch ({row['epoch']})"
    return f"selected: epoch {row['epoch']} ({monitor} = {_scalar(row[monitor]):.4g})"


def tie_text(epoch: Any, tied: list[int] | None) -> str:
    """``5 (tied with epochs 6, 8; the first is kept)``, or just ``5`` without ties."""
    if not tied:
        return f"{epoch}"
    noun = "epoch" if len(tied) == 1 else "epochs"
    return f"{epoch} (tied with {noun} {', '.join(str(e) for e in tied)}; the first is kept)"


class RunArtifacts(L.Callback):
    """Writes ``metrics.csv``, ``curves.png``, ``summary.json``, ``scores.npz`` into a run directory.

    Args:
        run_dir: the run directory.
        protocol: ``"holdout"`` or ``"official"`` (see :data:`PROTOCOLS`); written into every output.
        monitor: the selection metric, maximised: the task's ``monitor`` (``val/top1`` for
            action recognition, ``val/balanced_acc`` for crossing intention); recorded in
            ``summary.json`` and plotted in ``curves.png``.
        select: ``"best"`` (the epoch with the highest ``monitor``) or ``"last"`` (the last
            epoch: recipes that select nothing); see :data:`SELECTIONS`. Written into
            ``summary.json`` (``selection``) and ``scores.npz`` (``selection``).
    """

    def __init__(
        self, run_dir: str | Path, protocol: str = "holdout", monitor: str = "val/top1", select: str = "best"
    ) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {sorted(PROTOCOLS)}, got {protocol!r}")
        selection_text(select, monitor)  # validates
        self.run_dir = Path(run_dir)
        self.protocol = protocol
        self.monitor = monitor
        self.select = select
        self.rows: list[dict[str, Any]] = []
        self._restored_rows: list[dict[str, Any]] | None = None
        self.train_time_s = 0.0
        self._t0: float | None = None
        #: the task's ``curve_metric``: the second panel of curves.png when nothing is logged
        #: under the monitor during training
        self.curve_metric: str | None = None

    # -- persistence across resume ------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"train_time_s": self.train_time_s + self._elapsed(), "rows": json.dumps(self.rows)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.train_time_s = float(state_dict.get("train_time_s", 0.0))
        self._restored_rows = json.loads(state_dict["rows"]) if "rows" in state_dict else None

    def _elapsed(self) -> float:
        return time.perf_counter() - self._t0 if self._t0 is not None else 0.0

    # -- fit -------------------------------------------------------------------------------------
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # (not on_fit_start: a resumed run's loop state is restored only after that hook)
        # A resumed run continues the rows stored in its checkpoint (metrics.csv may hold
        # epochs after the checkpoint, from the interrupted attempt).
        restored = getattr(self, "_restored_rows", None) or []
        self.rows = [r for r in restored if r["epoch"] < trainer.current_epoch]
        self.curve_metric = getattr(pl_module, "curve_metric", None)
        self._t0 = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metrics = {k: _scalar(v) for k, v in trainer.callback_metrics.items() if not k.endswith("_step")}
        row: dict[str, Any] = {"epoch": trainer.current_epoch, **dict(sorted(metrics.items()))}
        row["protocol"] = self.protocol
        self.rows = [r for r in self.rows if r["epoch"] != row["epoch"]] + [row]
        if trainer.is_global_zero:
            self._write_metrics()
            self._plot_curves()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.train_time_s += self._elapsed()
        self._t0 = None
        if trainer.is_global_zero:
            self._write_summary(trainer, pl_module, fit_done=True)

    # -- test -----------------------------------------------------------------------------------------
    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Write the test outputs (global rank 0 only).

        * ``scores.npz`` when the task's ``test_results`` has ``index``, ``scores`` and ``labels``;
        * ``confusion_test.png`` and ``summary.json["test"]["per_class"]`` when it also has
          ``confusion`` (single-label: a ``(K, K)`` confusion matrix; multi-label: ``labels`` is
          ``(N, K)`` and ``confusion`` the label/prediction co-occurrence);
        * ``summary.json["test"]``: the ``test/*`` metrics, the checkpoint and its epoch, and
          whatever the task's ``test_report(run_dir) -> dict`` returns (merged in, dicts
          recursively), for tasks whose results are not per-class scores (e.g. gait: the
          probe-view x gallery-view table). A task without these entries gets no
          classification artefacts instead of an error.
        """
        if not trainer.is_global_zero:
            return
        results = getattr(pl_module, "test_results", None) or {}
        report_fn = getattr(pl_module, "test_report", None)
        if not results and not callable(report_fn):
            return
        test: dict[str, Any] = {
            "metrics": {k: _scalar(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")},
        }
        ckpt = getattr(trainer, "ckpt_path", None)
        test["checkpoint"] = str(ckpt) if ckpt else None
        test["epoch"] = self._ckpt_epoch(ckpt)
        if all(k in results for k in ("index", "scores", "labels")):
            test.update(self._write_scores(trainer, results))
        confusion = results.get("confusion")
        if isinstance(confusion, torch.Tensor) and "labels" in results:
            names = self._class_names(trainer, pl_module, int(confusion.shape[0]))
            labels = results["labels"].numpy()
            multilabel = labels.ndim == 2
            if multilabel and "scores" in results:  # per-label figures from the scores (logit >= 0)
                test["per_class"] = multilabel_per_class(results["scores"].numpy(), labels, names)
            elif not multilabel:
                test["per_class"] = per_class_from_confusion(confusion.numpy(), names)
            test["confusion"] = str(self.run_dir / "confusion_test.png")
            support = (labels == 1).sum(axis=0) if multilabel else None
            self._plot_confusion(confusion.numpy(), names, multilabel=multilabel, support=support)
        if callable(report_fn):
            try:
                self.run_dir.mkdir(parents=True, exist_ok=True)  # the report may write its own files there
            except OSError as exc:
                raise output_error(exc, self.run_dir) from None
            report = report_fn(self.run_dir)
            if report is not None:
                if not isinstance(report, dict):
                    raise TypeError(
                        f"{type(pl_module).__name__}.test_report(run_dir) must return a dict, got {type(report).__name__}"
                    )
                test = _merge(test, report)
        self._write_summary(trainer, pl_module, test=test)

    def _write_scores(self, trainer: L.Trainer, results: dict[str, torch.Tensor]) -> dict[str, Any]:
        """``scores.npz``: per-sample scores and labels keyed by sample name, plus the task's
        further per-sample arrays; returns the summary entries (``num_samples``, ``scores``)."""
        names = self._sample_names(trainer, "test")
        index = results["index"].numpy()
        scores = results["scores"].numpy().astype(np.float32)
        labels = results["labels"].numpy()
        if names is not None:
            ids = np.asarray([names[i] for i in index])
        else:
            ids = np.asarray([str(i) for i in index])
        # Further per-sample arrays a task provides (e.g. class probabilities) go in as well.
        extra = {
            k: v.numpy() for k, v in results.items()
            if k not in ("index", "scores", "labels", "confusion", "names", "protocol")
            and isinstance(v, torch.Tensor) and v.ndim >= 1 and v.shape[0] == len(ids)
        }
        with atomic_path(self.run_dir / "scores.npz", suffix=".npz") as tmp, open(tmp, "wb") as fh:
            np.savez(fh, names=ids, scores=scores, labels=labels, protocol=np.asarray(self.protocol),
                     selection=np.asarray(self.select), **extra)
        return {"num_samples": len(ids), "scores": str(self.run_dir / "scores.npz")}

    @staticmethod
    def _class_names(trainer: L.Trainer, pl_module: L.LightningModule, k: int) -> list[str] | None:
        """Names of the ``k`` rows of the test confusion matrix, first found of:

        1. the task's ``test_class_names()`` (a task whose confusion is not over the model's
           labels, e.g. crossing intention's binary matrix of a three-label model);
        2. the datamodule's ``inference_options()["class_names"]`` (what checkpoints record),
           else its ``class_names`` attribute;
        3. the loaded checkpoint's ``graphfuse`` block (``class_names``).

        Names of the wrong length are not used; None = none found (indices are shown)."""
        dm = getattr(trainer, "datamodule", None)
        block = getattr(pl_module, "loaded_block", None)
        sources = (
            lambda: getattr(pl_module, "test_class_names", None)(),
            lambda: dm.inference_options().get("class_names"),
            lambda: getattr(dm, "class_names", None),
            lambda: block.get("class_names") if isinstance(block, dict) else None,
        )
        for source in sources:
            try:
                names = source()
            except Exception:  # noqa: BLE001, S112 - names are best effort (a missing hook, no prepared data)
                continue
            if isinstance(names, (list, tuple)) and len(names) == k:
                return [str(n) for n in names]
        return None

    # -- helpers ------------------------------------------------------------------------------------------
    @staticmethod
    def _sample_names(trainer: L.Trainer, stage: str) -> list[str] | None:
        dm = getattr(trainer, "datamodule", None)
        fn = getattr(dm, "split_names", None)
        return list(fn(stage)) if callable(fn) else None

    @staticmethod
    def _ckpt_epoch(ckpt: str | None) -> int | None:
        if not ckpt or not Path(ckpt).is_file():
            return None
        try:
            return int(torch.load(ckpt, map_location="cpu", weights_only=True).get("epoch"))
        except Exception:  # noqa: BLE001 - a converted checkpoint may carry no epoch
            return None

    def _write_metrics(self) -> None:
        columns: list[str] = []
        for r in self.rows:
            columns += [k for k in r if k not in columns]
        columns = ["epoch"] + sorted(c for c in columns if c not in ("epoch", "protocol")) + ["protocol"]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for r in self.rows:
            writer.writerow({c: ("" if isinstance(r.get(c), float) and math.isnan(r[c]) else r.get(c, "")) for c in columns})
        write_text(self.run_dir / "metrics.csv", buf.getvalue())

    def best_row(self) -> dict[str, Any] | None:
        """The selected epoch's row: with ``select="last"`` the last epoch; else the first epoch
        with the highest monitored value (ties keep the earliest, as ModelCheckpoint)."""
        return select_epoch(self.rows, self.monitor, self.select)[0]

    def _write_summary(self, trainer: L.Trainer, pl_module: L.LightningModule, fit_done: bool = False,
                       test: dict[str, Any] | None = None) -> None:
        path = self.run_dir / "summary.json"
        summary: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
        summary.update(
            {
                "run_dir": str(self.run_dir),
                "protocol": {"name": self.protocol, "description": PROTOCOLS[self.protocol]},
                "monitor": self.monitor,
                "selection": {"rule": self.select, "description": selection_text(self.select, self.monitor)},
                "trainable_parameters": int(sum(p.numel() for p in pl_module.parameters() if p.requires_grad)),
            }
        )
        if fit_done:
            best, tied = select_epoch(self.rows, self.monitor, self.select)
            summary.update(
                {
                    "epochs_trained": len(self.rows),
                    "best_epoch": best["epoch"] if best else None,
                    # later epochs with the same selection value (the first is kept)
                    "tied_epochs": tied,
                    "best": {k: v for k, v in (best or {}).items() if k not in ("epoch", "protocol")},
                    "train_time_s": round(self.train_time_s, 2),
                    "checkpoints": {
                        "best": str(self.run_dir / "checkpoints" / "best.ckpt"),
                        "last": str(self.run_dir / "checkpoints" / "last.ckpt"),
                    },
                    "curves": str(self.run_dir / "curves.png"),
                }
            )
        if test is not None:
            summary["test"] = test
        write_json(path, summary)

    def _plot_curves(self) -> dict[str, Any] | None:
        """Draw ``curves.png``; the selected epoch (so far) is marked by a vertical line on each
        panel. Returns the marker (``{"x": epoch, "label": ...}``), or None when none is drawn."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        epochs = [r["epoch"] for r in self.rows]
        # The second panel shows the selection metric (val/top1 -> train/top1 and val/top1).
        sel = self.monitor.split("/", 1)[1] if "/" in self.monitor else self.monitor
        panels = [("loss", "loss"), (sel, "top-1 accuracy" if sel == "top1" else f"{sel} (selection metric)")]
        logged = {k.split("/", 1)[-1] for r in self.rows for k in r}
        if sel not in logged and self.curve_metric:
            # Nothing is logged under the monitor during training (gait: no validation split,
            # the test protocol runs once): the task names the training curve to show instead.
            panels[1] = (self.curve_metric, f"{self.curve_metric} (training)")
        fig, axes = plt.subplots(1, len(panels), figsize=(10, 4))
        selected, _ = select_epoch(self.rows, self.monitor, self.select)
        marker = None
        if selected is not None:
            marker = {"x": selected["epoch"], "label": selection_label(selected, self.monitor, self.select)}
        for ax, (key, label) in zip(axes, panels):
            if marker is not None:
                ax.axvline(marker["x"], color="grey", ls="--", lw=1, label=marker["label"])
            # train_eval: a fixed train subset evaluated in eval mode (multi-label: the running
            # train mAP is below val for reasons docs/models_mlgcn.md explains).
            for stage, style in (("train", "-o"), ("train_eval", "-^"), ("val", "-s")):
                ys = [r.get(f"{stage}/{key}", math.nan) for r in self.rows]
                if not all(isinstance(y, float) and math.isnan(y) for y in ys):
                    names = {"train_eval": "train subset, eval mode",
                             "val": "val" if self.protocol == "holdout" else "val (= TEST split)"}
                    ax.plot(epochs, ys, style, ms=3, label=names.get(stage, stage))
            if key == "loss":
                ax.set_yscale("log")  # early epochs can be orders of magnitude above the rest
            ax.set_xlabel("epoch")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            ax.legend()
        title = f"{self.run_dir}"
        if self.protocol == "official":
            title += "\nofficial protocol: selection on the test split"
        fig.suptitle(title, fontsize=9)
        fig.tight_layout()
        with atomic_path(self.run_dir / "curves.png", suffix=".png") as tmp:
            fig.savefig(tmp, dpi=100, format="png")
        plt.close(fig)
        return marker

    def _plot_confusion(self, confusion: np.ndarray, names: list[str] | None = None, multilabel: bool = False,
                        support: np.ndarray | None = None) -> None:
        """Draw ``confusion_test.png``: :func:`plot_confusion` with this run's protocol in the title."""
        what = "label/prediction co-occurrence" if multilabel else "confusion"
        title = f"test {what} (row-normalised)" + (" - official protocol" if self.protocol == "official" else "")
        plot_confusion(self.run_dir / "confusion_test.png", confusion, names, title=title,
                       row_totals=support if multilabel else None,
                       xlabel="predicted label" if multilabel else "predicted class",
                       ylabel="true label present" if multilabel else "true class")


# -- per-class results and the confusion picture ------------------------------------------------
def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated with ``extra``; where both hold a dict under a key, merged recursively."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _ratio(num: np.ndarray, den: np.ndarray) -> list[float | None]:
    """``num / den`` per entry, None where ``den`` is 0 (JSON ``null``: no NaN in summary.json)."""
    return [float(n) / float(d) if d > 0 else None for n, d in zip(num.tolist(), den.tolist())]


def _per_class_rows(names: list[str] | None, support: np.ndarray, correct: np.ndarray,
                    predicted: np.ndarray) -> list[dict[str, Any]]:
    k = len(support)
    labels = names if names is not None else [str(i) for i in range(k)]
    recall, precision = _ratio(correct, support), _ratio(correct, predicted)
    return [
        {"index": i, "class": labels[i], "support": int(support[i]), "correct": int(correct[i]),
         "recall": recall[i], "precision": precision[i]}
        for i in range(k)
    ]


def per_class_from_confusion(confusion: np.ndarray, names: list[str] | None = None) -> list[dict[str, Any]]:
    """Per-class accuracy of a single-label classifier from its confusion matrix
    ``confusion[true, predicted]`` ``(K, K)``: one row per class with ``index``, ``class``
    (its name, or the index as text), ``support`` (test samples of the class = row sum),
    ``correct`` (the diagonal), ``recall`` = correct / support (the class's accuracy; None
    without samples) and ``precision`` = correct / column sum (None when never predicted)."""
    c = np.asarray(confusion, dtype=np.int64)
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise ValueError(f"confusion matrix must be square (K, K), got shape {c.shape}")
    return _per_class_rows(names, c.sum(axis=1), np.diag(c), c.sum(axis=0))


def multilabel_per_class(scores: np.ndarray, labels: np.ndarray, names: list[str] | None = None) -> list[dict[str, Any]]:
    """Per-label accuracy of a multi-label classifier: ``scores (N, K)`` logits (a label is
    predicted where its logit is >= 0, as :class:`graphfuse.metrics.multilabel.LabelPredictionCooccurrence`),
    ``labels (N, K)`` in {1 present, 0 absent, -1 difficult: ignored}. Rows as
    :func:`per_class_from_confusion`: ``support`` = images with the label, ``recall`` = the
    fraction of them where it is predicted, ``precision`` = the fraction of predictions (on
    non-difficult entries) that are right."""
    scores, labels = np.asarray(scores), np.asarray(labels)
    if scores.shape != labels.shape or scores.ndim != 2:
        raise ValueError(f"multi-label scores {scores.shape} and labels {labels.shape} must both be (N, K)")
    positive = labels == 1
    predicted = (scores >= 0) & (labels != -1)
    return _per_class_rows(names, positive.sum(axis=0), (positive & predicted).sum(axis=0), predicted.sum(axis=0))


def _short(name: str, width: int = 28) -> str:
    return name if len(name) <= width else name[: width - 1] + "\u2026"


def plot_confusion(path: str | Path, confusion: np.ndarray, names: list[str] | None = None, *, title: str = "",
                   row_totals: np.ndarray | None = None, xlabel: str = "predicted class",
                   ylabel: str = "true class") -> list[str]:
    """Draw a row-normalised confusion matrix ``(K, K)`` as a PNG (atomic write), readable
    from 2 to ~120 classes: the figure grows with ``K`` (up to 24 inches), tick labels are
    ``"<index>: <name>"`` (names cut to 28 characters; the index alone without ``names``) in
    a font sized to the rows, column labels rotated 90 degrees, and cell percentages written
    in for ``K <= 15``. Rows are divided by ``row_totals`` when given (multi-label: the images
    holding the label, so the diagonal is the label's recall), else by their sum; empty rows
    stay 0. Returns the tick labels drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c = np.asarray(confusion, dtype=np.float64)
    k = c.shape[0]
    totals = c.sum(axis=1) if row_totals is None else np.asarray(row_totals, dtype=np.float64)
    norm = c / np.maximum(totals, 1)[:, None]
    labels = [str(i) for i in range(k)] if names is None else [f"{i}: {_short(n)}" for i, n in enumerate(names)]
    longest = max(len(t) for t in labels)
    side = float(np.clip(3.0 + 0.16 * k, 5.0, 24.0))
    font = float(np.clip(side * 72 * 0.6 / k * 0.75, 3.0, 10.0))  # ~3/4 of a row's height, in points
    margin = min(longest * font * 0.6 / 72 + 1.0, 6.0)  # inches for the tick labels
    fig, ax = plt.subplots(figsize=(side + margin + 1.0, side + margin))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    ticks = np.arange(k)
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.set_xticklabels(labels, rotation=90, fontsize=font)
    ax.set_yticklabels(labels, fontsize=font)
    if k <= 15:
        for i, j in zip(*np.nonzero(norm >= 0.005)):
            ax.text(j, i, f"{100 * norm[i, j]:.0f}", ha="center", va="center", fontsize=font,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    fig.tight_layout()
    with atomic_path(Path(path), suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return labels
