"""End to end on synthetic CASIA-B-format walkers: `graphfuse prepare synthetic-casia-b` (PNG
silhouettes through the real CASIA-B pretreatment), then `graphfuse fit` of the GaitSet quickstart's
recipe, shrunk to stay under 30 s (7 subjects, 3 train / 4 test, 6 frames of 64 px rendered per
sequence; a GaitSet with 1/4/8/16 channels; P x K = 3 x 4 sequences of 6 frames; Adam 3e-3 for 80
iterations instead of 1e-3 for 300; measured NM 52 %): the CASIA-B protocol's NM rank-1 beats chance (1 / 4 test subjects = 25 %), and
the run directory holds summary.json with the NM/BG/CL table and the rank-1 heat map."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "configs" / "synthetic-casia-b" / "gaitset" / "quickstart.yaml"

pytest.importorskip("graphfuse.data.synthetic.gait")
pytest.importorskip("graphfuse.models.gait")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from graphfuse.cli import main

    root = tmp_path_factory.mktemp("runs")
    data = tmp_path_factory.mktemp("data") / "synthetic-casia-b"
    assert main(["prepare", "synthetic-casia-b", "--out", str(data), "--ids", "7", "--train-ids", "3",
                 "--frames", "6", "--raw-height", "64", "--no-keep-raw", "--workers", "2"]) == 0
    main(["fit", "-c", str(QUICKSTART), f"--data.init_args.data_dir={data}", "--data.init_args.synthetic=false",
          "--data.init_args.p=3", "--data.init_args.k=4", "--data.init_args.frames=6",
          "--data.init_args.iterations_per_epoch=20", "--data.init_args.test_batch_size=32",
          "--model.init_args.model.init_args.channels=[1, 4, 8, 16]",
          "--model.init_args.model.init_args.hidden_dim=32", "--model.init_args.lr=0.003",
          "--model.init_args.milestones=[70]",
          "--trainer.max_steps=80", f"--run.root={root}", "--run.name=gait", "--trainer.enable_progress_bar=false"])
    return root / "gait" / "version_0"


@pytest.mark.slow
def test_quickstart_training_beats_chance(trained):
    summary = json.loads((trained / "summary.json").read_text())
    test = summary["test"]
    metrics = test["metrics"]
    chance = 100.0 / 4
    assert metrics["test/NM"] > 1.5 * chance, metrics
    for key in ("test/NM", "test/BG", "test/CL", "test/mAP_NM", "test/mAP_BG", "test/mAP_CL"):
        assert 0.0 <= metrics[key] <= 100.0
    gait = test["gait"]
    assert gait["protocol"] == "casia-b" and len(gait["views"]) == 11
    for cond in ("NM", "BG", "CL"):
        r = gait["single_view"][cond]
        assert len(r["matrix"]) == 11 and len(r["per_view"]) == 11
        assert r["mean"] == pytest.approx(metrics[f"test/{cond}"], abs=1e-3)
    assert "last state" in test["selection"] and summary["selection"]["rule"] == "last"
    assert Path(test["heatmaps"]).read_bytes()[:4] == b"\x89PNG"
    rows = (trained / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + 4  # 80 iterations in "epochs" of 20
    assert "train/nonzero_fraction" in rows[0].split(",")


def test_the_family_registers_its_commands_and_builds_the_info_input(tmp_path):
    import graphfuse.families.gait as fam
    from graphfuse.families import family_of_network, get_family
    from graphfuse.models.gait import GLN, GaitSet

    family = get_family("gait")
    assert family is fam.FAMILY
    assert [p.name for p in family.prepare] == ["casia-b", "oumvlp", "synthetic-casia-b"]
    assert [c.name for c in family.converters] == ["opengait"] and family.converters[0].released()
    net = GLN(channels=(1, 4, 4, 8), lateral_dim=8, hidden_dim=8)
    assert family_of_network(net) is family and family_of_network(GaitSet()) is family
    config = {"data": {"init_args": {"data_dir": str(tmp_path / "casia-b-128"), "frames": 12}}}
    sil, lengths = fam.example_input(net, config)
    assert sil.shape == (1, 12, 128, 88) and lengths is None
    config["data"]["init_args"]["data_dir"] = str(tmp_path / "casia-b-64")
    assert fam.example_input(net, config, frames=5)[0].shape == (1, 5, 64, 44)
    assert net(*fam.example_input(net, config, frames=5))["embeddings"].shape == (1, 8, 93)
