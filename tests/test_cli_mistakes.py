"""The first-hour command-line mistakes: each is one line on stderr naming the key (and the
closest valid one), exit code 2, before any data is read or any training starts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from graphfuse.cli import main
from graphfuse.parse_errors import class_options, closest, condense

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "configs/synthetic-ntu/shiftgcn/quickstart.yaml"


def _one_error_line(capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as exc:
        main(["fit", "-c", str(QUICKSTART), *args])
    assert exc.value.code == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1, err
    assert err[0].startswith("graphfuse fit: error: ")
    return err[0]


def test_misspelled_top_level_key_suggests_the_valid_one(capsys):
    line = _one_error_line(capsys, "--trainer.max_epocs=1")
    assert "unknown option --trainer.max_epocs (did you mean --trainer.max_epochs?)" in line


def test_an_abbreviated_key_is_not_accepted(capsys, tmp_path):
    # argparse would take --trainer.max_epoch as --trainer.max_epochs and train silently.
    line = _one_error_line(capsys, "--trainer.max_epoch=1", f"--run.root={tmp_path}")
    assert "did you mean --trainer.max_epochs?" in line
    assert not any(tmp_path.iterdir())  # nothing ran


def test_misspelled_nested_key_names_the_class_and_the_closest_parameter(capsys):
    line = _one_error_line(capsys, "--data.init_args.batch_sise=2")
    assert "data.init_args.batch_sise" in line and "did you mean batch_size?" in line
    line = _one_error_line(capsys, "--model.init_args.learning_rate=0.1")
    assert "ActionRecognition has no parameter 'learning_rate'" in line
    assert "lr" in line.split("it takes:")[1]  # nothing close: the parameters are listed


def test_misspelled_key_in_a_config_file_names_the_file(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"_base_": str(QUICKSTART), "trainer": {"max_epocs": 1}}))
    with pytest.raises(SystemExit):
        main(["fit", "-c", str(bad)])
    err = capsys.readouterr().err.strip().splitlines()
    expected = (f"graphfuse fit: error: {bad}: unknown option trainer.max_epocs "
                "(did you mean trainer.max_epochs?)")
    assert err == [expected]


def test_missing_config_file_is_reported_first_in_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["fit", "-c", "no/such/config.yaml", "--trainer.max_epocs=1"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.strip() == "graphfuse fit: error: config file not found: no/such/config.yaml"


def test_condense_keeps_other_messages_on_one_line():
    msg = ('Parser key "trainer.max_epochs":\n  Does not validate against any of the Union subtypes\n'
           "  Subtypes: [int, NoneType]\n  Errors:\n    - Expected a <class 'int'>\n"
           "    - Expected a <class 'NoneType'>\n  Given value type: <class 'str'>\n  Given value: x")
    assert condense(msg) == ("Parser key \"trainer.max_epochs\": Expected a <class 'int'> Given value: x")


def test_closest_and_class_options():
    assert closest("trainer.max_epocs", ["trainer.max_epochs", "trainer.min_epochs"]) == "trainer.max_epochs"
    assert closest("zzz", ["trainer.max_epochs"]) is None
    opts = class_options("graphfuse.data.ntu.datamodule.SkeletonDataModule")
    assert "batch_size" in opts and "data_dir" in opts  # including the base class's parameters
    assert class_options("no.such.Class") == []
