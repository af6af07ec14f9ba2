"""`fit` / `test` without prepared data: one error line (exit 2) naming the folder and the
prepare command of the config's dataset."""

from __future__ import annotations

from pathlib import Path

import pytest

from graphfuse.cli import main
from graphfuse.data.intention.datamodule import IntentionDataModule, intention_prepare_command
from graphfuse.data.ntu.datamodule import SkeletonDataModule

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("data_dir", "use_image", "expected"),
    [
        ("data/jaad-all-obs32", True, "graphfuse prepare jaad --root <JAAD dir> --out data/jaad-all-obs32 --poses <pose dir> --images"),
        ("data/pie-obs32", False, "graphfuse prepare pie --root <PIE dir> --out data/pie-obs32 --poses <pose dir>`"),
        ("/data/JAAD/prepared", False, "graphfuse prepare jaad "),
        ("data/synthetic-pie", False, "graphfuse prepare synthetic-pie --out data/synthetic-pie`"),
        ("data/crossing", False, "graphfuse prepare pie|jaad "),
        ("data/pie-and-jaad", False, "graphfuse prepare pie|jaad "),
        ("data/piedmont", False, "graphfuse prepare pie|jaad "),  # words, not substrings
    ],
)
def test_intention_missing_error_names_the_dataset(tmp_path, monkeypatch, data_dir, use_image, expected):
    monkeypatch.chdir(tmp_path)  # relative data_dir: not the checkout's data/ (a benchmark may have made it)
    assert "{data_dir}" in intention_prepare_command(data_dir, use_image=use_image)
    dm = IntentionDataModule(data_dir, use_image=use_image)
    with pytest.raises(FileNotFoundError) as err:
        dm.prepare_data()
    message = str(err.value)
    assert expected in message and data_dir in message
    assert ("--images" in message) == use_image


@pytest.mark.parametrize(
    ("command", "config", "folder", "prepare"),
    [
        ("fit", "configs/jaad/pedgraph/pedgraph_plus.yaml", "jaad-all-obs32", "graphfuse prepare jaad "),
        ("test", "configs/pie/pedgraph/pedgraph_plus.yaml", "pie-obs32", "graphfuse prepare pie "),
        ("fit", "configs/ntu60-xsub/shiftgcn/joint.yaml", "ntu60-xsub", "graphfuse prepare ntu "),
    ],
)
def test_fit_and_test_without_prepared_data_print_one_line(tmp_path, capsys, command, config, folder, prepare):
    data_dir = tmp_path / "data" / folder
    rc = main([command, "-c", str(REPO / config), f"--data.init_args.data_dir={data_dir}",
               f"--run.root={tmp_path / 'runs'}", "--trainer.accelerator=cpu"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith(f"graphfuse {command}: error:")]
    assert len(lines) == 1, err
    assert str(data_dir) in lines[0] and prepare in lines[0]
    assert not data_dir.exists()  # nothing is written where the data is expected
    # ... nor a run: no empty version folder, no lock file left behind
    runs = tmp_path / "runs"
    assert not runs.exists() or not [p for p in runs.rglob("*") if p.is_file() or p.name.startswith("version_")]


def test_ntu_missing_error_names_the_ntu_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="graphfuse prepare ntu "):
        SkeletonDataModule(str(tmp_path / "none")).prepare_data()
