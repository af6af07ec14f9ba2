"""The two-stream family's registration: its prepare subcommands (run on the synthetic download)
and the example input of `graphfuse info`."""

from __future__ import annotations

import argparse

import pytest
import torch

from graphfuse.families import families, get_family, unregister_family


@pytest.fixture
def family():
    before = {f.name for f in families()}
    import graphfuse.families.two_stream as mod  # registers the family on first import

    if "two_stream" not in {f.name for f in families()}:  # imported earlier, then unregistered by a test
        from graphfuse.families import register_family

        register_family(mod.FAMILY)
    yield get_family("two_stream")
    if "two_stream" not in before:
        unregister_family("two_stream")


def test_prepare_commands(family, video_raw, tmp_path, capsys):
    cmds = {p.name: p for p in family.prepare}
    assert set(cmds) == {"ucf101", "hmdb51", "synthetic-ucf101"}
    parser = argparse.ArgumentParser()
    cmds["ucf101"].add_arguments(parser)
    args = parser.parse_args(["--root", str(video_raw), "--out", str(tmp_path / "out"), "--flow", "none",
                              "--size", "0", "--jobs", "1"])
    assert (args.split, args.size, args.skip_bad, args.splits) == (1, 0, False, None)
    cmds["ucf101"].run(args)
    out = capsys.readouterr().out
    assert "prepared ucf101 split 1 (3 classes)" in out and "train  12 videos (official: 9537)" in out
    hp = argparse.ArgumentParser()
    cmds["hmdb51"].add_arguments(hp)
    with pytest.raises(FileNotFoundError, match="testTrainMulti_7030_splits"):
        cmds["hmdb51"].run(hp.parse_args(["--root", str(video_raw), "--out", str(tmp_path / "h")]))


def test_example_input(family):
    from graphfuse.families import resolve

    class Net(torch.nn.Module):
        input_names = ("rgb", "flow")

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

    config = {"data": {"init_args": {"num_frames": 3, "crop_size": 56, "flow_stack": 4}}}
    rgb, flow = resolve(family.example_input)(Net(), config)
    assert rgb.shape == (1, 3, 3, 56, 56) and flow.shape == (1, 8, 3, 56, 56)
    (flow_only,) = resolve(family.example_input)(type("F", (Net,), {"input_names": ("flow",)})(), None, frames=2)
    assert flow_only.shape == (1, 20, 2, 224, 224)
    with pytest.raises(ValueError, match="does not provide"):
        resolve(family.example_input)(type("J", (Net,), {"input_names": ("joint",)})(), None)
