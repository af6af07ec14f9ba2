"""Run an ablation study: every (variant, seed) is an independent ``graphfuse fit`` process.

Layout of a study (``<root>/<study>/``)::

    study.yaml                  the spec as run (absolute base path, base config content)
    status.json                 state of every run: done / failed / running / submitted /
                                interrupted, command, return code, error tail (atomic writes)
    _logs/<variant>/seed<k>.log output of each run's process (appended per attempt)
    _attempts/<variant>/...     partial run directories set aside before a restart
    <variant>/seed<k>/          the run directory of the design (config.yaml, checkpoints,
                                metrics.csv, summary.json, ...), name <study>/<variant>,
                                version seed<k>
    report.md, report.csv, val_curves.png, bars.png      (graphfuse.ablation.report)

Each run is ``python -m graphfuse.cli fit -c BASE <overrides> --seed_everything=K
--data.init_args.seed=K --run.root=ROOT --run.name=<study>/<variant> --run.version=seed<k>``:
``seed_everything`` seeds the initialisation (same seed and shapes -> same initial weights
in every variant) and the datamodule's ``seed`` the :class:`EpochSeededSampler` (same seed
-> same data order and augmentation), so variants are paired by seed.

Ensemble variants (``name: {ensemble: {of: [...], weights: [...]}}``) train nothing: their
plan steps are ``fuse``. As soon as all member runs of a seed are finished (already on disk, or
when this invocation's runs finish them), :func:`graphfuse.ablation.fusion.fuse_run` writes
``<variant>/seed<k>/`` (``summary.json``, ``scores.npz``) in-process. A seed whose members are not
all finished (failed, submitted through ``--launcher``, not selected) is left "not yet
computable" and fused by a later invocation.

Resumption: a run whose ``summary.json`` has test metrics is finished and skipped; a run
with ``checkpoints/last.ckpt`` is resumed with ``--ckpt_path last`` (Lightning restores the
epoch, optimiser, scheduler and sampler epoch, so the result equals an uninterrupted run);
a run directory without a checkpoint (killed in its first epoch) is moved to ``_attempts/``
and restarted, since a run directory is never overwritten. A failed run is recorded in
``status.json`` and not retried unless ``retry_failed``.

Process ownership: each local run is started by :func:`spawn_child` in a process group of its
own and, on Linux, with ``PR_SET_PDEATHSIG``, so it dies with ``graphfuse ablate`` however
that ends: Ctrl-C or SIGTERM stop every run's process group (SIGTERM, then SIGKILL after a
grace period); a SIGKILLed ``ablate`` takes its runs along through the kernel (they get
SIGTERM, which Lightning turns into a clean stop). Commands given to ``--launcher`` submit
jobs that belong to the scheduler (``sbatch`` returns at once): those are not stopped with the
study; cancel them with the scheduler (``scancel``). Whatever starts a run, its directory has
one writer at a time: ``graphfuse fit`` locks it (see :func:`graphfuse.runs.lock_run_dir`),
and a run directory some process is still writing is neither set aside nor started again.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from graphfuse.config_files import ConfigError, names_base, resolve_config
from graphfuse.cpu_defaults import usable_cpus
from graphfuse.io import read_json_dict, write_json, write_text
from graphfuse.runs import run_dir_holder

from .fusion import fuse_run, missing_members
from .spec import ENSEMBLE_KEY, AblationSpec, ConfigCheck, SpecError, check_config, override_args
# The study lock lives in .study_lock (shared with .report, which runner imports); its names stay
# importable from here.
from .study_lock import LOCK_FILE, study_locked  # noqa: F401
from .study_lock import study_lock as _study_lock

__all__ = [
    "STATUS_FILE",
    "STUDY_FILE",
    "PlannedRun",
    "StudyResult",
    "run_dir_of",
    "run_state",
    "is_finished",
    "read_status",
    "build_command",
    "plan_study",
    "format_launcher",
    "check_launcher",
    "check_study_consistency",
    "LAUNCHER_FIELDS",
    "run_study",
    "study_locked",
    "spawn_child",
]

STATUS_FILE = "status.json"
STUDY_FILE = "study.yaml"
LOG_DIR = "_logs"
ATTEMPTS_DIR = "_attempts"
ERROR_TAIL_LINES = 40
#: Final state of an ensemble variant's seed whose member runs are not all finished.
NOT_COMPUTABLE = "not yet computable"

#: Placeholders of a ``--launcher`` template.
LAUNCHER_FIELDS = {
    "cmd": "the whole command, shell-quoted: python -m graphfuse.cli fit ...",
    "args": "graphfuse's arguments only: fit -c ... (for `torchrun ... -m graphfuse.cli {args}`)",
    "python": "the Python interpreter running `graphfuse ablate`",
    "run_dir": "the run directory <root>/<study>/<variant>/seed<k>",
    "log": "a log file for the run's output (<root>/<study>/_logs/<variant>/seed<k>.log)",
    "study": "the study name",
    "variant": "the variant name",
    "seed": "the seed",
    "job_name": "<study>-<variant>-seed<k>, '/' replaced by '-'",
}
_PLACEHOLDER_RE = re.compile(r"(?<!\$)\{([A-Za-z_]\w*)\}")


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def run_dir_of(root: str | Path, study: str, variant: str, seed: int) -> Path:
    """``<root>/<study>/<variant>/seed<k>``."""
    return Path(root) / study / variant / f"seed{seed}"


def is_finished(run_dir: str | Path) -> bool:
    """A run is finished when its ``summary.json`` holds test metrics (fit, then test at the
    selected epoch)."""
    summary = read_json_dict(Path(run_dir) / "summary.json")
    test = (summary or {}).get("test") or {}
    return bool(isinstance(test, dict) and test.get("metrics"))


def run_state(run_dir: str | Path) -> str:
    """``"done"`` (finished), ``"resumable"`` (has ``checkpoints/last.ckpt``), ``"partial"``
    (a non-empty directory without a checkpoint) or ``"absent"``."""
    run_dir = Path(run_dir)
    if is_finished(run_dir):
        return "done"
    if (run_dir / "checkpoints" / "last.ckpt").is_file():
        return "resumable"
    if run_dir.is_dir() and any(run_dir.iterdir()):
        return "partial"
    return "absent"


def read_status(study_dir: str | Path) -> dict[str, Any]:
    """``status.json`` of a study (``{"runs": {}}`` when absent)."""
    data = read_json_dict(Path(study_dir) / STATUS_FILE)
    if data is None:
        return {"runs": {}}
    data.setdefault("runs", {})
    return data


@dataclass
class PlannedRun:
    """One (variant, seed) of a study and what this invocation does with it.

    Attributes:
        action: ``"start"``, ``"resume"``, ``"skip"`` or ``"fuse"`` (an ensemble variant's seed:
            fused in-process once its members' runs are finished; ``command`` is then the
            equivalent ``graphfuse ensemble`` command, for information).
        reason: why (e.g. ``"finished"``, ``"failed earlier (--retry-failed reruns it)"``).
        command: the ``graphfuse fit`` command (argv).
        launcher_line: the command formatted into ``--launcher`` (None without a launcher).
        move_aside: a partial run directory is moved to ``_attempts/`` before the start.
    """

    variant: str
    seed: int
    run_dir: Path
    action: str
    reason: str
    command: list[str]
    log: Path
    launcher_line: str | None = None
    move_aside: bool = False

    @property
    def key(self) -> str:
        return f"{self.variant}/seed{self.seed}"

    def shell_command(self) -> str:
        return self.launcher_line if self.launcher_line is not None else shlex.join(self.command)


@dataclass
class StudyResult:
    """What :func:`run_study` did: the plan and the final state of every run (``{key: state}``)."""

    study_dir: Path
    plan: list[PlannedRun]
    states: dict[str, str] = field(default_factory=dict)
    interrupted: bool = False

    @property
    def failed(self) -> list[str]:
        return [k for k, s in self.states.items() if s == "failed"]


def build_command(
    spec: AblationSpec,
    variant: str,
    seed: int,
    root: str | Path,
    *,
    data_seed: bool = True,
    resume: bool = False,
    python: str | None = None,
) -> list[str]:
    """The ``graphfuse fit`` argv of one run (see the module docstring)."""
    root = Path(root).resolve()
    effective = spec.variant_overrides(variant)
    cmd = [python or sys.executable, "-m", "graphfuse.cli", "fit", "-c", str(spec.base)]
    if "trainer.enable_progress_bar" not in effective:
        cmd.append("--trainer.enable_progress_bar=false")  # a progress bar in a log file is noise
    cmd += override_args(effective)
    cmd.append(f"--seed_everything={seed}")
    if data_seed:
        cmd.append(f"--data.init_args.seed={seed}")
    cmd += [f"--run.root={root}", f"--run.name={spec.name}/{variant}", f"--run.version=seed{seed}"]
    if spec.select.get("mode") == "last":
        cmd.append("--run.select=last")
    if resume:
        cmd.append("--ckpt_path=last")
    return cmd


def format_launcher(template: str, run: PlannedRun, study: str) -> str:
    """Fill ``{cmd}``, ``{args}``, ``{run_dir}``, ... (see :data:`LAUNCHER_FIELDS`) into a launcher
    template. Other braces, such as shell ``${VAR}``, are left alone."""
    i = run.command.index("graphfuse.cli")
    values = {
        "cmd": shlex.join(run.command),
        "args": shlex.join(run.command[i + 1 :]),
        "python": shlex.quote(run.command[0]),
        "run_dir": shlex.quote(str(run.run_dir)),
        "log": shlex.quote(str(run.log)),
        "study": shlex.quote(study),
        "variant": shlex.quote(run.variant),
        "seed": str(run.seed),
        "job_name": shlex.quote(f"{study}-{run.variant}-seed{run.seed}".replace("/", "-")),
    }
    return _PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], template)


def check_launcher(template: str) -> None:
    """Raise :class:`SpecError` for a template with unknown placeholders or without ``{cmd}``/``{args}``."""
    names = set(_PLACEHOLDER_RE.findall(template))
    unknown = names - set(LAUNCHER_FIELDS)
    if unknown:
        raise SpecError(
            f"--launcher: unknown placeholder(s) {', '.join('{%s}' % n for n in sorted(unknown))}; "
            f"known: {', '.join('{%s}' % n for n in LAUNCHER_FIELDS)}"
        )
    if not names & {"cmd", "args"}:
        raise SpecError(
            "--launcher: the template must contain {cmd} (or {args}), e.g. 'sbatch --wrap \"{cmd}\"'"
        )


def plan_study(
    spec: AblationSpec,
    root: str | Path,
    checks: dict[str, ConfigCheck],
    *,
    variants: list[str] | None = None,
    seeds: list[int] | None = None,
    retry_failed: bool = False,
    launcher: str | None = None,
    python: str | None = None,
) -> list[PlannedRun]:
    """Decide, for every (variant, seed), whether to start, resume or skip it.

    Runs are ordered seed-major (all variants of the first seed, baseline first, then the next
    seed), so an interrupted study holds complete paired comparisons for its first seeds.
    """
    study_dir = Path(root) / spec.name
    status = read_status(study_dir)["runs"]
    plan = []
    selected = variants or spec.ordered_variants()
    for seed in seeds or spec.seeds:
        for variant in spec.trained_variants(selected):
            rd = run_dir_of(root, spec.name, variant, seed)
            key = f"{variant}/seed{seed}"
            prior = (status.get(key) or {}).get("state")
            state = run_state(rd)
            log = study_dir / LOG_DIR / variant / f"seed{seed}.log"
            action, reason, move = "start", "new", False
            if state == "done":
                action, reason = "skip", "finished"
            elif prior == "failed" and not retry_failed:
                action, reason = "skip", "failed earlier (--retry-failed reruns it)"
            elif prior == "submitted" and not retry_failed:
                action, reason = (
                    "skip",
                    "submitted through the launcher, not finished yet (--retry-failed resubmits)",
                )
            elif state == "resumable":
                action, reason = "resume", "unfinished; resuming from checkpoints/last.ckpt"
            elif state == "partial":
                action, reason, move = (
                    "start",
                    "unfinished without a checkpoint; set aside and restarted",
                    True,
                )
            data_seed = checks[variant].has_data_seed
            cmd = build_command(
                spec, variant, seed, root, data_seed=data_seed, resume=action == "resume", python=python
            )
            run = PlannedRun(variant, seed, rd.resolve(), action, reason, cmd, log.resolve(), None, move)
            if launcher is not None:
                run.launcher_line = format_launcher(launcher, run, spec.name)
            plan.append(run)
        # Ensemble variants of this seed, after the runs they fuse.
        seed_runs = {r.variant: r for r in plan if r.seed == seed}
        for variant in selected:
            if spec.is_ensemble(variant):
                plan.append(_plan_fuse(spec, root, variant, seed, seed_runs, python))
    return plan


def _fuse_command(spec: AblationSpec, root: str | Path, variant: str, seed: int, python: str | None) -> list[str]:
    """The ``graphfuse ensemble`` command equivalent to a fuse step (shown, not run)."""
    ens = spec.ensembles[variant]
    cmd = [python or sys.executable, "-m", "graphfuse.cli", "ensemble"]
    cmd += [str(run_dir_of(root, spec.name, m, seed).resolve()) for m in ens.members]
    cmd += ["--weights", ",".join(f"{w:g}" for w in ens.weights)]
    if ens.softmax:
        cmd.append("--softmax")
    return cmd


def _plan_fuse(
    spec: AblationSpec,
    root: str | Path,
    variant: str,
    seed: int,
    seed_runs: dict[str, PlannedRun],
    python: str | None,
) -> PlannedRun:
    study_dir = Path(root) / spec.name
    rd = run_dir_of(root, spec.name, variant, seed)
    missing = missing_members(spec, root, variant, seed)
    coming = [m for m in missing if m.rpartition("/")[0] in seed_runs
              and seed_runs[m.rpartition("/")[0]].action in ("start", "resume")]
    if is_finished(rd):
        action, reason = "skip", "finished"
    elif not missing:
        action, reason = "fuse", "members finished"
    elif len(coming) == len(missing):
        action, reason = "fuse", f"once its members' runs finish ({', '.join(missing)})"
    else:
        waiting = [m for m in missing if m not in coming]
        action, reason = "skip", f"not yet computable: member run(s) {', '.join(waiting)} not finished"
    log = study_dir / LOG_DIR / variant / f"seed{seed}.log"
    return PlannedRun(
        variant, seed, rd.resolve(), action, reason, _fuse_command(spec, root, variant, seed, python), log.resolve()
    )


# -- study bookkeeping ----------------------------------------------------------------------------------
def _load_base(path: Path) -> Any:
    """The base config as its runs see it: a base-plus-delta config with its ``_base_`` chain
    applied, so a change in any file of the chain is a change of the base."""
    if not names_base(path):
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    try:
        return resolve_config(path)
    except ConfigError as e:
        raise SpecError(str(e)) from None


def check_study_consistency(spec: AblationSpec, study_dir: Path) -> None:
    """Refuse to mix runs of different configurations under one study name.

    A variant whose effective overrides changed since its runs were made, or a base config
    whose content changed, would silently put different experiments in one table.
    """
    prev = None
    if (study_dir / STUDY_FILE).is_file():
        try:
            prev = yaml.safe_load((study_dir / STUDY_FILE).read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            raise SpecError(f"{study_dir / STUDY_FILE}: unreadable ({e})") from e
    if not isinstance(prev, dict):
        return

    def has_runs(variant: str) -> bool:
        d = study_dir / variant
        return d.is_dir() and any(p.is_dir() and p.name.startswith("seed") for p in d.iterdir())

    fix = f"use another study name, or move {study_dir} (or the variant's directory) away"
    ran = [v for v in spec.variants if has_runs(v)]
    if ran and prev.get("base_config") is not None and prev.get("base_config") != _load_base(spec.base):
        raise SpecError(
            f"{spec.path}: the base config {spec.base} changed since the runs in {study_dir} were made; "
            + fix
        )
    prev_variants = prev.get("variants") or {}
    prev_common = prev.get("overrides") or {}
    for v in ran:
        if v not in prev_variants:
            continue
        prev_v = prev_variants[v] or {}
        if spec.is_ensemble(v) or (isinstance(prev_v, dict) and ENSEMBLE_KEY in prev_v):
            before, now = prev_v, spec.variants[v]  # both normalised by spec_from_dict
        else:
            before = {**prev_common, **prev_v}
            now = spec.variant_overrides(v)
        if before != now:
            raise SpecError(
                f"{spec.path}: variant {v!r} changed since its runs in {study_dir} were made "
                f"(it was {before}, now {now}); " + fix
            )


def _write_study_file(spec: AblationSpec, study_dir: Path) -> None:
    data = spec.to_dict()
    data["spec_path"] = str(spec.path) if spec.path else None
    data["base_config"] = _load_base(spec.base)
    write_text(study_dir / STUDY_FILE, yaml.safe_dump(data, sort_keys=False))


class _Status:
    """``status.json``, updated from several threads, always written atomically."""

    def __init__(self, study_dir: Path, spec: AblationSpec) -> None:
        self.path = study_dir / STATUS_FILE
        self.data = read_status(study_dir)
        self.data["study"] = spec.name
        self.data["spec"] = str(spec.path) if spec.path else None
        self.lock = threading.Lock()

    def update(self, key: str, **fields: Any) -> None:
        with self.lock:
            entry = self.data["runs"].setdefault(key, {})
            entry.update(fields)
            self.data["updated"] = _now()
            write_json(self.path, self.data)


def _error_tail(log: Path, lines: int = ERROR_TAIL_LINES) -> tuple[str, str]:
    """(the last exception of the last attempt in a run's log, with its message lines; the
    last ``lines`` lines of that attempt)."""
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "", ""
    text = text.rsplit("\n=== attempt ", 1)[-1]
    all_lines = text.rstrip().splitlines()
    tail_lines = all_lines[-lines:]
    error = ""
    for i in range(len(all_lines) - 1, -1, -1):
        if re.match(r"^([A-Za-z_][\w.]*(Error|Exception|Interrupt)\b|error:)", all_lines[i]):
            # the exception line and its message (jsonargparse and friends span several lines)
            block = [
                ln.strip() for ln in all_lines[i : i + 12] if ln.strip() and not ln.startswith("Given value")
            ]
            error = " ".join(block)
            break
    if not error and tail_lines:
        error = tail_lines[-1].strip()
    return (error[:600] + " ...") if len(error) > 600 else error, "\n".join(tail_lines)


# -- child processes that die with the study ----------------------------------------------------------
#: Seconds a stopped run gets between SIGTERM (Lightning stops cleanly) and SIGKILL.
TERMINATE_GRACE_S = 60.0
_PR_SET_PDEATHSIG = 1


def _pdeathsig_preexec(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get ``sig`` when this process dies (Linux), or None.

    Everything is looked up before the fork; in the child only ``prctl`` and ``getppid`` run.
    If this process died between the fork and the ``prctl`` the child is already orphaned and
    would never be signalled, so it exits at once.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.restype = ctypes.c_int
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    parent = os.getpid()
    sig = int(sig)

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def spawn_child(args: Any, **popen_kwargs: Any) -> subprocess.Popen:
    """``subprocess.Popen`` for a run: the child gets a process group of its own (so that it and
    whatever it starts, DataLoader workers or DDP ranks, can be stopped together, and a Ctrl-C in
    the terminal reaches only ``graphfuse ablate``, which then stops its runs) and, on Linux,
    SIGTERM when the spawning process dies, even by SIGKILL.

    The death signal follows the *thread* that spawned the child, so a child must be spawned
    and waited for by the same long-lived thread (as :class:`_Executor` does)."""
    if os.name == "posix":
        popen_kwargs.setdefault("process_group", 0)
        preexec = _pdeathsig_preexec()
        if preexec is not None:
            popen_kwargs.setdefault("preexec_fn", preexec)
    return subprocess.Popen(args, **popen_kwargs)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    """Send ``sig`` to the process group of a child started by :func:`spawn_child` (to the child
    alone where there are no process groups). Nothing is sent once the child has been reaped:
    its pid, and so its group id, may belong to someone else by then."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.name == "posix":
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)


def _sigterm_to_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _gpu_slots(gpus: list[str], jobs: int) -> list[list[str]]:
    """GPU ids of each of ``jobs`` slots: disjoint shares when there are enough, else round-robin."""
    if len(gpus) >= jobs:
        per = len(gpus) // jobs
        return [gpus[k * per : (k + 1) * per] for k in range(jobs)]
    return [[gpus[k % len(gpus)]] for k in range(jobs)]


class _Executor:
    def __init__(
        self,
        spec: AblationSpec,
        study_dir: Path,
        status: _Status,
        env: dict[str, str],
        out: Callable[[str], None],
        slot_gpus: list[list[str]] | None = None,
    ) -> None:
        self.spec = spec
        self.study_dir = study_dir
        self.status = status
        self.env = env
        self.out = out
        # One slot per parallel job; with --gpus each slot owns its share of the GPUs.
        self.slot_gpus = slot_gpus
        self.slots: queue.Queue[int] = queue.Queue()
        for k in range(len(slot_gpus) if slot_gpus else 1):
            self.slots.put(k)
        self.procs: dict[str, subprocess.Popen] = {}
        self.procs_lock = threading.Lock()
        self.stopping = False

    def _set_aside(self, run: PlannedRun) -> None:
        dest = (
            self.study_dir / ATTEMPTS_DIR / run.variant / f"seed{run.seed}.{time.strftime('%Y%m%d-%H%M%S')}"
        )
        k = 0
        while dest.exists():
            k += 1
            dest = dest.with_name(dest.name.split("~")[0] + f"~{k}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(run.run_dir), str(dest))
        self.out(f"  {run.key}: partial run directory moved to {dest}")

    def execute(self, run: PlannedRun) -> str:
        """Run one (variant, seed); return its final state. Never raises for a failing run."""
        if self.stopping:
            return "not started"
        try:
            return self._execute(run)
        except Exception as e:  # e.g. the launcher could not be started: record it, go on
            self.status.update(run.key, state="failed", ended=_now(), error=f"{type(e).__name__}: {e}")
            self.out(f"[{time.strftime('%H:%M:%S')}] failed {run.key}: {type(e).__name__}: {e}")
            return "failed"

    def _execute(self, run: PlannedRun) -> str:
        holder = run_dir_holder(run.run_dir)
        if holder is not None:  # e.g. an earlier study's run that is still alive
            raise RuntimeError(
                f"run directory {run.run_dir} is being written by {holder}; not touched (one writer at a "
                "time): stop that process or wait for it, then rerun the study"
            )
        if run.move_aside and run.run_dir.exists():
            self._set_aside(run)
        run.log.parent.mkdir(parents=True, exist_ok=True)
        launched = run.launcher_line is not None
        out_path = run.log.with_suffix(".launcher.log") if launched else run.log
        t0 = time.time()
        self.status.update(
            run.key,
            variant=run.variant,
            seed=run.seed,
            state="running",
            action=run.action,
            command=run.command,
            launcher_line=run.launcher_line,
            log=str(out_path),
            run_dir=str(run.run_dir),
            started=_now(),
            ended=None,
            returncode=None,
            error=None,
        )
        self.out(f"[{time.strftime('%H:%M:%S')}] {run.action:6s} {run.key}   (log: {out_path})")
        with open(out_path, "a", encoding="utf-8") as fh:
            fh.write(f"\n=== attempt {_now()}: {run.shell_command()}\n")
            fh.flush()
            slot = None
            if launched:
                proc = spawn_child(
                    run.launcher_line,
                    shell=True,
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            else:
                env = self.env
                slot = self.slots.get() if self.slot_gpus else None
                if slot is not None:
                    env = {**env, "CUDA_VISIBLE_DEVICES": ",".join(self.slot_gpus[slot])}
                    fh.write(f"=== CUDA_VISIBLE_DEVICES={env['CUDA_VISIBLE_DEVICES']}\n")
                    fh.flush()
                try:
                    proc = spawn_child(
                        run.command, stdout=fh, stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL
                    )
                except BaseException:
                    if slot is not None:
                        self.slots.put(slot)
                    raise
            with self.procs_lock:
                self.procs[run.key] = proc
            # On KeyboardInterrupt the process stays registered, for terminate_all.
            rc = proc.wait()
            with self.procs_lock:
                self.procs.pop(run.key, None)
            if slot is not None:
                self.slots.put(slot)
        duration = round(time.time() - t0, 1)
        error, tail = "", ""
        if is_finished(run.run_dir):
            state = "done"
        elif self.stopping:
            state = "interrupted"
        elif rc != 0:
            state = "failed"
            error, tail = _error_tail(out_path)
        elif launched:
            state = "submitted"
        else:
            state = "interrupted"  # exited cleanly without test metrics, e.g. a SIGINT Lightning caught
        self.status.update(
            run.key,
            state=state,
            returncode=rc,
            ended=_now(),
            duration_s=duration,
            error=error or None,
            error_tail=tail or None,
        )
        msg = f"[{time.strftime('%H:%M:%S')}] {state:6s} {run.key}   ({duration:.0f} s)"
        if state == "failed":
            msg += f"\n    {error}\n    full log: {out_path}"
        self.out(msg)
        return state

    def fuse(self, run: PlannedRun, root: Path) -> str:
        """Fuse an ensemble variant's seed in-process; return ``"done"`` or ``"failed"`` (never raises)."""
        self.status.update(
            run.key, variant=run.variant, seed=run.seed, state="running", action="fuse", command=run.command,
            launcher_line=None, log=None, run_dir=str(run.run_dir), started=_now(), ended=None,
            returncode=None, error=None, error_tail=None,
        )
        try:
            summary = fuse_run(self.spec, root, run.variant, run.seed)
        except Exception as e:  # members that cannot be fused: record it, go on
            error = f"{type(e).__name__}: {e}"
            self.status.update(run.key, state="failed", ended=_now(), error=error[:600])
            self.out(f"[{time.strftime('%H:%M:%S')}] failed {run.key}: {error}")
            return "failed"
        self.status.update(run.key, state="done", ended=_now())
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in summary["test"]["metrics"].items())
        self.out(f"[{time.strftime('%H:%M:%S')}] fused  {run.key}   ({metrics})")
        return "done"

    def not_computable(self, run: PlannedRun, missing: list[str]) -> str:
        why = f"not yet computable: member run(s) {', '.join(missing)} not finished"
        self.status.update(
            run.key, variant=run.variant, seed=run.seed, state="waiting", action="fuse",
            run_dir=str(run.run_dir), error=why, ended=_now(),
        )
        self.out(f"  {run.key}: {why} (a later `graphfuse ablate` fuses it)")
        return NOT_COMPUTABLE

    def terminate_all(self) -> None:
        self.stopping = True
        with self.procs_lock:
            running = dict(self.procs)
        procs = list(running.values())
        for key in running:
            self.status.update(key, state="interrupted", ended=_now())
        for p in procs:  # only the processes this runner started, with what they started
            _signal_group(p, signal.SIGTERM)
        deadline = time.monotonic() + TERMINATE_GRACE_S
        for p in procs:
            try:
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(p, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(timeout=10)


def run_study(
    spec: AblationSpec,
    root: str | Path = "runs",
    *,
    jobs: int = 1,
    dry_run: bool = False,
    launcher: str | None = None,
    retry_failed: bool = False,
    variants: list[str] | None = None,
    seeds: list[int] | None = None,
    threads_per_job: int | None = None,
    write_report: bool = True,
    first_alone: bool | None = None,
    gpus: list[str] | None = None,
    out: Callable[[str], None] | None = None,
) -> StudyResult:
    """Validate, plan and run a study; write its report at the end.

    Args:
        spec: the study (from :func:`graphfuse.ablation.spec.load_spec`).
        root: directory holding all runs.
        jobs: runs in parallel (local processes, or launcher commands).
        dry_run: print the plan and the commands; run and write nothing.
        launcher: template of an external launch command (see :data:`LAUNCHER_FIELDS`).
        retry_failed: rerun failed runs and resubmit submitted, unfinished ones.
        variants: run only these variants (default: all).
        seeds: run these seeds instead of the spec's.
        threads_per_job: ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` of each local run; default
            ``cores // jobs`` when ``jobs > 1``, untouched otherwise.
        write_report: write ``report.md`` etc. when the runs end.
        first_alone: with ``jobs > 1``, run the first run alone before the others, so that a
            dataset prepared on first use is prepared once; default: when no run of the study
            has finished yet.
        gpus: GPU ids shared among the ``jobs`` slots of local runs through
            ``CUDA_VISIBLE_DEVICES``: with at least ``jobs`` ids each slot owns
            ``len(gpus) // jobs`` of them, otherwise slots share them round-robin.
        out: where progress lines go (default ``print``).

    Raises:
        SpecError: an invalid spec, override, variant name or launcher template, before
            anything runs.
    """
    out = out or (lambda s: print(s, flush=True))
    if jobs < 1:
        raise SpecError(f"--jobs must be >= 1, got {jobs}")
    if variants:
        unknown = [v for v in variants if v not in spec.variants]
        if unknown:
            raise SpecError(f"--variants: unknown variant(s) {unknown}; the spec has {list(spec.variants)}")
        variants = [v for v in spec.ordered_variants() if v in variants]
    if launcher is not None:
        check_launcher(launcher)
    root = Path(root)
    study_dir = (root / spec.name).resolve()
    check_study_consistency(spec, study_dir)
    checks = check_config(spec, variants)
    plan = plan_study(
        spec, root, checks, variants=variants, seeds=seeds, retry_failed=retry_failed, launcher=launcher
    )
    fuse_steps = [r for r in plan if r.action == "fuse"]
    todo = [r for r in plan if r.action not in ("skip", "fuse")]
    counts: dict[str, int] = {}
    for r in plan:
        counts[r.action] = counts.get(r.action, 0) + 1
    summary = ", ".join(f"{n} {a}" for a, n in counts.items())
    no_seed = [v for v, c in checks.items() if not c.has_data_seed]

    env = dict(os.environ)
    if launcher is None and (jobs > 1 or threads_per_job):
        n = threads_per_job or max(1, usable_cpus() // jobs)
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(n)
        threads_note = f", {n} CPU thread(s) per run (OMP_NUM_THREADS)"
    else:
        threads_note = ""
    out(f"study {spec.name}: {len(plan)} runs ({summary}) in {study_dir}; {jobs} at a time{threads_note}")
    for v in no_seed:
        out(
            f"  note: the datamodule of {v!r} has no 'seed' argument; "
            "its data order follows seed_everything only"
        )

    if dry_run:
        for r in plan:
            out(f"# {r.key}: {r.action} ({r.reason})")
            if r.action == "fuse":
                out("#   (in-process; equivalent to:) " + r.shell_command())
            elif r.action != "skip":
                if r.move_aside:
                    out(f"#   (would move {r.run_dir} to {study_dir / ATTEMPTS_DIR / r.variant}/)")
                out(r.shell_command())
        return StudyResult(
            study_dir, plan, {r.key: ("dry-run" if r.action != "skip" else "skipped") for r in plan}
        )

    result = StudyResult(study_dir, plan)
    with _study_lock(study_dir):
        _write_study_file(spec, study_dir)
        status = _Status(study_dir, spec)
        execu = _Executor(
            spec, study_dir, status, env, out, slot_gpus=_gpu_slots(gpus, jobs) if gpus else None
        )
        pool = ThreadPoolExecutor(max_workers=jobs) if jobs > 1 else None
        # `kill` (SIGTERM, as a scheduler ending a job sends) stops the study like Ctrl-C: the
        # runs this process started are stopped and recorded rather than orphaned.
        prev_sigterm = None
        if threading.current_thread() is threading.main_thread():
            prev_sigterm = signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
        pending = list(fuse_steps)

        def fuse_ready() -> None:
            """Fuse every pending ensemble seed whose member runs are all finished."""
            for r in list(pending):
                if not execu.stopping and not missing_members(spec, root, r.variant, r.seed):
                    pending.remove(r)
                    result.states[r.key] = execu.fuse(r, root)

        try:
            fuse_ready()
            if pool is None:
                for r in todo:
                    result.states[r.key] = execu.execute(r)
                    fuse_ready()
            else:
                if first_alone is None:
                    # Nothing finished yet: data may be prepared on first use (e.g.
                    # `synthetic: true`), which concurrent runs would race to do.
                    first_alone = not any(run_state(r.run_dir) == "done" for r in plan)
                if first_alone and todo:
                    result.states[todo[0].key] = execu.execute(todo[0])
                    fuse_ready()
                    todo = todo[1:]
                futures = {pool.submit(execu.execute, r): r for r in todo}
                for f in as_completed(futures):
                    result.states[futures[f].key] = f.result()
                    fuse_ready()
            for r in pending:
                result.states[r.key] = execu.not_computable(r, missing_members(spec, root, r.variant, r.seed))
            pending.clear()
        except KeyboardInterrupt:
            out("interrupted: stopping the running runs (they resume from their last checkpoint next time)")
            execu.terminate_all()
            result.interrupted = True
        finally:
            if pool is not None:
                execu.stopping = True  # queued runs that have not started return at once
                pool.shutdown(wait=True, cancel_futures=True)
            if prev_sigterm is not None:
                signal.signal(signal.SIGTERM, prev_sigterm)
        final = read_status(study_dir)["runs"]
        for r in plan:
            if r.action == "fuse" and r.key not in result.states:  # interrupted before it could be fused
                result.states[r.key] = "done" if is_finished(r.run_dir) else NOT_COMPUTABLE
            elif r.action == "skip" and r.variant in spec.ensembles and not is_finished(r.run_dir):
                result.states[r.key] = NOT_COMPUTABLE
            elif r.key not in result.states or result.states[r.key] == "not started":
                st = run_state(r.run_dir)
                result.states[r.key] = (
                    "done"
                    if st == "done"
                    else (final.get(r.key) or {}).get("state", "not started" if st == "absent" else st)
                )
    if write_report:
        from .report import write_report as _write_report

        paths = _write_report(study_dir)
        out(f"report: {paths['md']}")
    n_failed = len(result.failed)
    out(
        f"study {spec.name}: "
        + ", ".join(
            f"{sum(1 for s in result.states.values() if s == k)} {k}"
            for k in sorted(set(result.states.values()))
        )
        + (f"; {n_failed} failed (see status.json and report.md)" if n_failed else "")
    )
    return result
