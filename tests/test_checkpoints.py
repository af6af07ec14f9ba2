"""Checkpoints never run code: URLs are refused before anything is fetched, local files load
with weights_only=True through graphfuse's own checkpoint IO, writes are atomic in the
destination directory, and a file that does not load gives one line naming it."""

from __future__ import annotations

import errno
import http.server
import os
import threading
from pathlib import Path

import pytest
import torch

from graphfuse.checkpoints import (
    CheckpointError,
    SafeCheckpointIO,
    is_remote,
    load_checkpoint,
    save_checkpoint,
)
from graphfuse.cli import main


def _error_lines(err: str) -> list[str]:
    """The lines graphfuse printed about the error (Lightning may log an INFO line beside)."""
    return [line for line in err.strip().splitlines() if not line.startswith(("INFO:", "[rank"))]

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "configs" / "synthetic-ntu" / "shiftgcn" / "quickstart.yaml"


class _Evil:
    """Unpickling this calls ``open(canary, 'w')``: the file appears if the pickle ever runs."""

    def __init__(self, canary: Path):
        self.canary = str(canary)

    def __reduce__(self):
        return (open, (self.canary, "w"))


def _evil_checkpoint(path: Path, canary: Path) -> Path:
    torch.save({"epoch": 0, "global_step": 0, "state_dict": {}, "payload": _Evil(canary)}, path)
    assert path.stat().st_size > 0 and not canary.exists()
    return path


def test_the_evil_checkpoint_does_run_code_when_unpickled(tmp_path):
    """The test payload is live: Lightning's old path (weights_only=False) would execute it."""
    canary = tmp_path / "pwned"
    ck = _evil_checkpoint(tmp_path / "evil.ckpt", canary)
    torch.load(ck, weights_only=False)
    assert canary.exists()


@pytest.fixture
def evil_server(tmp_path):
    """An HTTP server on 127.0.0.1 serving an evil checkpoint; records every request."""
    canary = tmp_path / "pwned"
    body = _evil_checkpoint(tmp_path / "evil.ckpt", canary).read_bytes()
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server API)
            requests.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/evil.ckpt", canary, requests
    finally:
        server.shutdown()
        server.server_close()


def _eval_args(sub, data_dir, root, ckpt, *extra):
    return [
        sub, "-c", str(QUICKSTART), f"--data.init_args.data_dir={data_dir}", "--data.init_args.synthetic=false",
        "--data.init_args.clip_len=16", "--data.init_args.batch_size=10",
        "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
        f"--run.root={root}", "--run.name=evil", "--ckpt_path", ckpt, *extra,
    ]


@pytest.mark.parametrize("sub", ["test", "validate", "predict", "fit"])
def test_a_checkpoint_url_is_refused_before_it_is_fetched(sub, evil_server, synthetic_ntu, tmp_path, capsys):
    url, canary, requests = evil_server
    assert main(_eval_args(sub, synthetic_ntu, tmp_path / "runs", url)) == 2
    err = capsys.readouterr().err
    assert url in err and "local files only" in err
    assert len(_error_lines(err)) == 1
    assert requests == [] and not canary.exists()


@pytest.mark.parametrize("sub", ["test", "validate", "predict"])
def test_a_local_malicious_checkpoint_is_refused_and_never_executed(sub, synthetic_ntu, tmp_path, capsys):
    canary = tmp_path / "pwned"
    ck = _evil_checkpoint(tmp_path / "evil.ckpt", canary)
    assert main(_eval_args(sub, synthetic_ntu, tmp_path / "runs", str(ck))) == 2
    err = capsys.readouterr().err
    assert str(ck) in err and "never unpickles code" in err
    assert not canary.exists()


def test_weights_only_false_is_refused(synthetic_ntu, tmp_path, capsys):
    canary = tmp_path / "pwned"
    ck = _evil_checkpoint(tmp_path / "evil.ckpt", canary)
    assert main(_eval_args("test", synthetic_ntu, tmp_path / "runs", str(ck), "--weights_only=false")) == 2
    assert "--weights_only false is not supported" in capsys.readouterr().err
    assert not canary.exists()


def test_every_trainer_load_goes_through_the_safe_io(synthetic_ntu, tmp_path, monkeypatch):
    """Past the early check (here bypassed), the trainer itself loads through SafeCheckpointIO."""
    import graphfuse.engine as engine

    canary = tmp_path / "pwned"
    ck = _evil_checkpoint(tmp_path / "evil.ckpt", canary)
    seen = []
    real = engine.load_checkpoint
    monkeypatch.setattr(engine, "load_checkpoint", lambda p: seen.append(p))  # skip the early check only
    with pytest.raises(CheckpointError, match="never unpickles code"):
        engine.GraphfuseCLI(args=_eval_args("test", synthetic_ntu, tmp_path / "runs", str(ck)))
    assert seen and not canary.exists()
    monkeypatch.setattr(engine, "load_checkpoint", real)


def test_a_config_cannot_replace_the_checkpoint_io(synthetic_ntu, tmp_path, capsys):
    ck = tmp_path / "ok.ckpt"
    torch.save({"state_dict": {}}, ck)
    args = _eval_args("test", synthetic_ntu, tmp_path / "runs", str(ck),
                      "--trainer.plugins=lightning.fabric.plugins.TorchCheckpointIO")
    assert main(args) == 2
    assert "TorchCheckpointIO replaces graphfuse's checkpoint IO" in capsys.readouterr().err


@pytest.mark.parametrize("path", ["http://127.0.0.1/x.ckpt", "https://example.org/a", "s3://bucket/k.ckpt",
                                  "memory://x", "registry:org/model", "HTTP://x"])
def test_remote_locations_are_recognised(path):
    assert is_remote(path)
    with pytest.raises(CheckpointError, match="local files only"):
        load_checkpoint(path)


@pytest.mark.parametrize("path", ["runs/a/checkpoints/last.ckpt", "/abs/best.ckpt", "c:/x.ckpt", "httpd.ckpt"])
def test_local_paths_are_not_remote(path):
    assert not is_remote(path)


def test_empty_and_truncated_checkpoints_give_one_line_naming_the_file(tmp_path):
    good = tmp_path / "good.ckpt"
    torch.save({"epoch": 3, "state_dict": {"w": torch.ones(1000)}}, good)
    empty = tmp_path / "empty.ckpt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty\.ckpt \(0 bytes\): empty file") as e:
        load_checkpoint(empty)
    assert "\n" not in str(e.value)
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"cut\.ckpt \([\d,]+ bytes\): not a readable checkpoint") as e:
        load_checkpoint(cut)
    assert "\n" not in str(e.value)
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.ckpt")
    assert load_checkpoint(good)["epoch"] == 3


def _run_with_checkpoints(root: Path, last_bytes: bytes | None, best_ok: bool) -> Path:
    ckdir = root / "tiny" / "version_0" / "checkpoints"
    ckdir.mkdir(parents=True)
    (ckdir.parent / "config.yaml").write_text("{}\n")
    if best_ok:
        torch.save({"epoch": 4, "state_dict": {}}, ckdir / "best.ckpt")
    if last_bytes is not None:
        (ckdir / "last.ckpt").write_bytes(last_bytes)
    return ckdir


def test_a_broken_last_checkpoint_offers_best_and_never_uses_it(tmp_path):
    ckdir = _run_with_checkpoints(tmp_path, b"", best_ok=True)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(ckdir / "last.ckpt")
    msg = str(e.value)
    assert str(ckdir / "last.ckpt") in msg and "(0 bytes)" in msg
    assert f"--ckpt_path {ckdir / 'best.ckpt'}" in msg


def test_resume_on_a_broken_last_checkpoint_is_one_line(synthetic_ntu, tmp_path, capsys):
    ckdir = _run_with_checkpoints(tmp_path / "runs", b"PK\x03\x04 truncated", best_ok=True)
    args = ["fit", "-c", str(QUICKSTART), f"--data.init_args.data_dir={synthetic_ntu}",
            "--data.init_args.synthetic=false", f"--run.root={tmp_path / 'runs'}", "--run.name=tiny",
            "--ckpt_path=last"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(_error_lines(err)) == 1
    assert str(ckdir / "last.ckpt") in err and "best.ckpt" in err


def test_save_is_atomic_in_the_destination_directory(tmp_path, monkeypatch):
    target = tmp_path / "ck" / "last.ckpt"
    save_checkpoint({"epoch": 1}, target)
    assert load_checkpoint(target)["epoch"] == 1
    # A write that fails half way (a full disk) leaves the previous file intact and no temporary.
    real_save = torch.save

    def failing_save(obj, fh, *a, **k):
        fh.write(b"PK\x03\x04 partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError):
        save_checkpoint({"epoch": 2}, target)
    monkeypatch.setattr(torch, "save", real_save)
    assert load_checkpoint(target)["epoch"] == 1
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"]
    # The temporary lives beside the target, never in the system temp dir (a cross-device move
    # is a copy, and a copy can be cut short under the final name).
    renames = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (renames.append((Path(a), Path(b))), real_replace(a, b)))
    SafeCheckpointIO().save_checkpoint({"epoch": 3}, target)
    assert renames and renames[-1][0].parent == target.parent and renames[-1][1] == target
    assert load_checkpoint(target)["epoch"] == 3


@pytest.mark.parametrize("model", ["shiftgcn", "pedgraph"])
def test_convert_refuses_urls_and_malicious_files(model, evil_server, tmp_path, capsys):
    url, canary, requests = evil_server
    assert main(["convert", model, url, str(tmp_path / "out.ckpt")]) == 2
    assert "local files only" in capsys.readouterr().err and requests == []
    ck = _evil_checkpoint(tmp_path / "evil.pt", canary)
    assert main(["convert", model, str(ck), str(tmp_path / "out.ckpt")]) == 2
    err = capsys.readouterr().err
    assert str(ck) in err and "never unpickles code" in err and len(_error_lines(err)) == 1
    assert not canary.exists() and not (tmp_path / "out.ckpt").exists()
