"""The family registry (`graphfuse.families`) and the released-weights tables (`models/weights.py`).

A toy family registered here, in the test, gets `graphfuse prepare toy`, `graphfuse convert toy`,
rows in `graphfuse convert --list` and `graphfuse info` without any edit of shared code."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch
import yaml

from graphfuse.cli import main
from graphfuse.families import (
    BUILTIN_FAMILIES,
    Converter,
    Family,
    Option,
    PrepareCommand,
    families,
    family_of_network,
    get_family,
    register_family,
    unregister_family,
)
from graphfuse.models.weights import Weights, find_weights

REPO = Path(__file__).resolve().parents[1]

# -- the toy family ----------------------------------------------------------------------------------
# Its network, task and datamodule live in a module written to a temporary folder, as a new family's
# would live in graphfuse (configs name them by class path).
TOY_MODULE = '''
"""A toy family: a 1x1 temporal convolution over (N, C, T) sequences."""
import json
from pathlib import Path

import torch
from lightning.pytorch import LightningDataModule, LightningModule
from torch import nn


class ToyNet(nn.Module):
    def __init__(self, in_channels: int = 2, num_class: int = 3) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.conv = nn.Conv1d(in_channels, num_class, 1)

    def forward(self, x):  # (N, C, T) -> (N, num_class)
        return self.conv(x).mean(dim=2)


class ToyTask(LightningModule):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model


class ToyData(LightningDataModule):
    def __init__(self, data_dir: str = "data/toy", batch_size: int = 4) -> None:
        super().__init__()
        self.data_dir = data_dir
'''


def _run_toy_prepare(args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"benchmark": "toy", "options": {"frames": args.frames}, "num_class": 3}
    (out / "meta.json").write_text(json.dumps(meta))
    print(f"prepared toy ({args.frames} frames) in {out}")


def _toy_prepare_arguments(p) -> None:
    p.add_argument("--out", required=True)
    p.add_argument("--frames", type=int, default=5)


def toy_convert(input_path, output_path, scale: float = 1.0) -> Path:
    """The one converter signature: (input_path, output_path, **options) -> Path."""
    value = float(Path(input_path).read_text()) * scale
    from graphfuse.checkpoints import save_checkpoint

    save_checkpoint({"state_dict": {"model.w": torch.tensor([value])}}, output_path)
    return Path(output_path)


def toy_example_input(network, config, *, frames=None, **_):
    """T from the prepared data's meta.json (options.frames), C from the network."""
    data_dir = Path(str(config["data"]["init_args"]["data_dir"]))
    t = frames or json.loads((data_dir / "meta.json").read_text())["options"]["frames"]
    return (torch.ones(1, network.in_channels, t),)


TOY_FILE_CONTENT = "2.5"
TOY_SHA256 = hashlib.sha256(TOY_FILE_CONTENT.encode()).hexdigest()


@pytest.fixture
def toy_family(tmp_path, monkeypatch):
    (tmp_path / "toy_family_module.py").write_text(textwrap.dedent(TOY_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    weights = (Weights(name="toy_v1", file="releases/toy_v1.txt", converter="toy", num_class=3,
                       config="configs/toy/toy.yaml", metric="top-1 (%)", reported=12.5,
                       source="the toy paper", protocol="toy test split", sha256=TOY_SHA256),)
    family = register_family(Family(
        name="toy",
        description="a toy family",
        prepare=(PrepareCommand("toy", "prepare the toy dataset", _toy_prepare_arguments, _run_toy_prepare),),
        converters=(Converter(name="toy", help="toy weights -> checkpoint", input_help="a toy weights file",
                              convert=toy_convert, weights=weights,
                              options=(Option(("--scale",), dict(type=float, default=1.0)),),
                              usage="IN.txt OUT.ckpt [--scale S]"),),
        networks=("toy_family_module:ToyNet",),
        example_input=toy_example_input,
        components=("toy_family_module",),
    ))
    yield family
    unregister_family("toy")
    sys.modules.pop("toy_family_module", None)


def test_builtin_families_are_registered():
    names = [f.name for f in families()]
    assert names[:5] == ["skeleton_action", "crossing_intention", "multilabel", "two_stream", "gait"]
    prepare = {p.name: f.name for f in families() for p in f.prepare}
    assert prepare == {"ntu": "skeleton_action", "ntu-official": "skeleton_action", "synthetic-ntu": "skeleton_action",
                       "pie": "crossing_intention", "jaad": "crossing_intention", "synthetic-pie": "crossing_intention",
                       "coco": "multilabel", "voc2007": "multilabel", "synthetic-coco": "multilabel",
                       "ucf101": "two_stream", "hmdb51": "two_stream", "synthetic-ucf101": "two_stream",
                       "casia-b": "gait", "oumvlp": "gait", "synthetic-casia-b": "gait"}
    assert {c.name: f.name for f in families() for c in f.converters} == {
        "shiftgcn": "skeleton_action", "pedgraph": "crossing_intention", "mlgcn": "multilabel", "opengait": "gait"}
    with pytest.raises(KeyError, match="no family 'nope'; registered: skeleton_action, crossing_intention, multilabel, two_stream, gait"):
        get_family("nope")


def test_family_of_network():
    from graphfuse.models import PedGraph, ShiftGCN

    assert family_of_network(ShiftGCN(num_class=5)).name == "skeleton_action"
    assert family_of_network(PedGraph()).name == "crossing_intention"
    assert family_of_network(torch.nn.Linear(2, 2)) is None


def test_a_clashing_family_is_refused():
    clash = Family(name="other", description="", prepare=(PrepareCommand("ntu", "", lambda p: None, print),))
    with pytest.raises(ValueError, match="prepare subcommand 'ntu' is already registered by family 'skeleton_action'"):
        register_family(clash)
    with pytest.raises(ValueError, match="converter 'pedgraph'"):
        register_family(Family(name="other", description="", converters=(Converter("pedgraph", "", "", print),)))
    assert "other" not in [f.name for f in families()]


def test_a_toy_family_gets_prepare_convert_list_and_info(toy_family, tmp_path, capsys, monkeypatch):
    # prepare
    data = tmp_path / "data"
    assert main(["prepare", "toy", "--out", str(data), "--frames", "7"]) == 0
    assert capsys.readouterr().out == f"prepared toy (7 frames) in {data}\n"
    assert json.loads((data / "meta.json").read_text())["options"]["frames"] == 7
    # the usage lists it
    assert main(["--help"]) == 0
    usage = capsys.readouterr().out
    assert "synthetic-casia-b | toy   (`graphfuse prepare --help`)" in usage
    assert "| toy IN.txt OUT.ckpt [--scale S] | --list" in usage
    # convert, with the converter's own option; the file is the released one (sha256 matches)
    release = tmp_path / "releases" / "toy_v1.txt"
    release.parent.mkdir()
    release.write_text(TOY_FILE_CONTENT)
    out = tmp_path / "toy.ckpt"
    assert main(["convert", "toy", str(release), str(out), "--scale", "2"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"wrote {out}"
    assert printed[1] == "released file releases/toy_v1.txt: 3 classes, reported 12.5 top-1 (%) (the toy paper)"
    assert printed[2] == f"evaluate with: graphfuse test -c configs/toy/toy.yaml --ckpt_path {out}"
    assert torch.load(out, weights_only=True)["state_dict"]["model.w"].item() == 5.0
    # --list has its rows, after the built-in families'
    assert main(["convert", "--list"]) == 0
    listing = capsys.readouterr().out
    assert listing.index("skeleton_action: graphfuse convert shiftgcn") < listing.index("toy: graphfuse convert toy")
    assert (f"| releases/toy_v1.txt | {TOY_SHA256} | 3 | configs/toy/toy.yaml | 12.5 top-1 (%) | the toy paper "
            "| toy test split | - |") in listing
    # info: the family's example input, T from the prepared meta.json
    config = tmp_path / "toy.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"class_path": "toy_family_module.ToyTask",
                  "init_args": {"model": {"class_path": "toy_family_module.ToyNet", "init_args": {"in_channels": 2}}}},
        "data": {"class_path": "toy_family_module.ToyData", "init_args": {"data_dir": str(data)}},
    }))
    monkeypatch.chdir(tmp_path)
    assert main(["info", "-c", str(config)]) == 0
    report = capsys.readouterr().out
    assert "input                  (1, 2, 7)" in report
    assert "trainable parameters   9\n" in report  # conv 2 -> 3, k 1: 6 weights + 3 biases
    assert f"FLOPs per sample       {2 * 2 * 3 * 7:,}" in report  # 1x1 conv over 7 frames, 1 MAC = 2 FLOPs
    assert main(["info", "-c", str(config), "--frames", "4"]) == 0
    assert "input                  (1, 2, 4)" in capsys.readouterr().out


def test_import_components_imports_every_family_component(toy_family):
    from graphfuse.engine import import_components

    sys.modules.pop("toy_family_module", None)
    import_components()
    assert "toy_family_module" in sys.modules
    assert "graphfuse.data.intention.datamodule" in sys.modules


def test_an_unregistered_family_is_gone(toy_family, capsys):
    unregister_family("toy")
    with pytest.raises(SystemExit):
        main(["prepare", "toy", "--out", "x"])
    assert "invalid choice: 'toy'" in capsys.readouterr().err
    register_family(toy_family)  # for the fixture's teardown


def test_convert_without_a_converter_or_with_both(capsys):
    with pytest.raises(SystemExit):
        main(["convert"])
    assert "graphfuse convert: error: the following arguments are required: model" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["convert", "--list", "shiftgcn", "in.pt", "out.ckpt"])
    assert "give --list or a converter, not both" in capsys.readouterr().err


def test_the_registry_imports_no_torch():
    code = ("import sys; from graphfuse.families import families; fams = families(); "
            "[f.prepare for f in fams]; assert 'torch' not in sys.modules, 'torch imported'; print(len(fams))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(len(BUILTIN_FAMILIES))


# -- the released-weights tables -------------------------------------------------------------------------
def test_convert_list_prints_the_shiftgcn_and_pedgraph_rows(capsys):
    assert main(["convert", "--list"]) == 0
    out = capsys.readouterr().out
    assert "skeleton_action: graphfuse convert shiftgcn IN.pt OUT.ckpt (4 released checkpoints)" in out
    assert "crossing_intention: graphfuse convert pedgraph best.pth OUT.ckpt [--flags IVSFT] (42 released" in out
    row = next(line for line in out.splitlines() if line.startswith("| save_models/ntu_ShiftGCN_joint_xsub.pt |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:5] == ["save_models/ntu_ShiftGCN_joint_xsub.pt",
                         "7b73c469c7af983ddf0937403e85d61bae30f01816bdd08c388827076bdd4812", "60",
                         "configs/ntu60-xsub/shiftgcn/joint.yaml", "87.8 top-1 (%)"]
    assert "best-on-test epoch (116 of 140" in cells[6]
    jaad = next(line for line in out.splitlines() if line.startswith("| weigths/jaad-23-IVSFT/best.pth |"))
    assert "| 3 | configs/jaad/pedgraph/pedgraph_plus.yaml " in jaad and "| 86.36 accuracy (%) |" in jaad
    assert "| weigths/jaad-23-IVFT-h2d/last.pth |" in out


def test_shiftgcn_weights_table():
    from graphfuse.models.shiftgcn import WEIGHTS

    # the four joint-stream files of kchengiva/Shift-GCN save_models/ and their README top-1
    assert {(Path(w.file).name, w.num_class, w.reported) for w in WEIGHTS} == {
        ("ntu_ShiftGCN_joint_xsub.pt", 60, 87.8), ("ntu_ShiftGCN_joint_xview.pt", 60, 95.1),
        ("ntu120_ShiftGCN_joint_xsub.pt", 120, 80.9), ("ntu120_ShiftGCN_joint_xsetup.pt", 120, 83.2)}
    for w in WEIGHTS:
        assert (REPO / w.config).is_file() and w.sha256 is not None and w.converter == "shiftgcn"
    assert find_weights("/somewhere/ntu_ShiftGCN_joint_xview.pt", WEIGHTS).config.endswith("ntu60-xview/shiftgcn/joint.yaml")
    assert find_weights("/somewhere/renamed.pt", WEIGHTS) is None


def test_pedgraph_weights_table_configs_build_the_released_models(one_thread):
    """Each entry's config plus its overrides builds the model its logdir flags describe
    (``official_config`` checks flags against keys and shapes, raising on a disagreement)."""
    from graphfuse.info import build_model, network_of
    from graphfuse.models.pedgraph import WEIGHTS, official_config, parse_official_flags

    assert len(WEIGHTS) == 42 and len({w.file for w in WEIGHTS}) == 42
    assert sum(w.file.startswith("weigths/pie-23") for w in WEIGHTS) == 20
    assert sum(w.file.endswith("/best.pth") and "jaad-23" in w.file for w in WEIGHTS) == 21
    assert all(w.num_class == 3 and w.sha256 for w in WEIGHTS)
    assert [w.name for w in WEIGHTS if w.reported is not None] == ["pedgraph_jaad_23_ivsft"]
    built: dict[tuple, dict] = {}
    for w in WEIGHTS:
        assert (REPO / w.config).is_file()
        key = (w.config, w.config_overrides)
        if key not in built:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                task, _ = build_model([str(REPO / w.config)], list(w.config_overrides))
            net = network_of(task)
            assert net.official_image_gate_bug is True
            built[key] = net.state_dict()
        logdir = Path(w.file).parent.name
        kwargs = official_config(built[key], flags=logdir)  # raises if flags and model disagree
        assert kwargs["in_channels"] == (3 if not parse_official_flags(logdir)["h3d"] else 4)


def test_weights_validation_and_matching():
    w = Weights(name="x", file="weigths/pie-23-IV/best.pth", converter="pedgraph", num_class=3, config=None,
                source="s", protocol="p")
    assert w.matches("/a/b/pie-23-IV/best.pth") and not w.matches("/a/pie-23-IVS/best.pth")
    assert not w.matches("best.pth") and w.reported_text == "not reported"
    with pytest.raises(ValueError, match="both metric and reported"):
        Weights(name="x", file="f", converter="c", num_class=3, config=None, source="s", protocol="p", reported=1.0)
    with pytest.raises(ValueError, match="64 lower-case hex"):
        Weights(name="x", file="f", converter="c", num_class=3, config=None, source="s", protocol="p", sha256="abc")


# -- one loader signature, provenance in converted checkpoints --------------------------------------------
def test_load_official_has_one_signature(tmp_path):
    from graphfuse.models import PedGraph, ShiftGCN
    from graphfuse.models import pedgraph, shiftgcn

    sg = ShiftGCN(num_class=7)
    torch.save(sg.state_dict(), tmp_path / "sg.pt", _use_new_zipfile_serialization=False)
    ShiftGCN(num_class=7).load_state_dict(shiftgcn.load_official(tmp_path / "sg.pt"), strict=True)
    ShiftGCN(num_class=7).load_state_dict(shiftgcn.load_official(tmp_path / "sg.pt", ShiftGCN(num_class=7)))
    pg = PedGraph(use_image=False, in_channels=3)
    torch.save({"module." + k: v for k, v in pg.state_dict().items()}, tmp_path / "best.pth")
    state = pedgraph.load_official(tmp_path / "best.pth")
    PedGraph(**pedgraph.official_config(state)).load_state_dict(state, strict=True)
    with pytest.raises(ValueError, match="does not match this PedGraph configuration"):
        pedgraph.load_official(tmp_path / "best.pth", PedGraph())  # the image branch is missing


def test_converted_checkpoints_record_the_input_and_the_release(tmp_path, capsys):
    from graphfuse.models import ShiftGCN

    path = tmp_path / "ntu_ShiftGCN_joint_xsub.pt"  # a released name, not the released file
    torch.save(ShiftGCN(num_class=60).state_dict(), path, _use_new_zipfile_serialization=False)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert main(["convert", "shiftgcn", str(path), str(tmp_path / "out.ckpt")]) == 0
    captured = capsys.readouterr()
    assert captured.out == f"wrote {tmp_path / 'out.ckpt'}\n"  # no release claimed for another file
    assert "differs from the released save_models/ntu_ShiftGCN_joint_xsub.pt" in captured.err
    info = torch.load(tmp_path / "out.ckpt", weights_only=True)["graphfuse"]
    assert info["source_sha256"] == digest
    assert info["release"] == "shiftgcn_ntu60_xsub_joint" and info["release_sha256_ok"] is False


# -- info's example inputs are derived, never guessed ---------------------------------------------------
def test_observed_frames_come_from_the_prepared_data(tmp_path):
    from graphfuse.info import observed_frames

    def config(**init):
        return {"data": {"class_path": "x", "init_args": init}}

    (tmp_path / "meta.json").write_text(json.dumps({"options": {"obs_length": 23}}))
    assert observed_frames(config(data_dir=str(tmp_path))) == 23
    # synthetic: what the datamodule would generate there (the generator's default)
    assert observed_frames(config(data_dir=str(tmp_path / "none"), synthetic=True)) == 16
    with pytest.raises(ValueError, match="no prepared data at .*none/meta.json.*give --frames T"):
        observed_frames(config(data_dir=str(tmp_path / "none")))
    (tmp_path / "meta.json").write_text(json.dumps({"options": {"obs_length": "16"}}))
    with pytest.raises(ValueError, match="obs_length must be a positive integer"):
        observed_frames(config(data_dir=str(tmp_path)))


def test_info_asks_for_frames_without_prepared_data(tmp_path, capsys, monkeypatch, one_thread):
    monkeypatch.chdir(tmp_path)  # data/pie-obs32 does not exist here
    config = REPO / "configs" / "pie" / "pedgraph" / "pedgraph_plus.yaml"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["info", "-c", str(config)]) == 2
        assert "give --frames T" in capsys.readouterr().err
        assert main(["info", "-c", str(config), "--frames", "32"]) == 0
    assert "input                  (1, 3, 32, 19)" in capsys.readouterr().out
