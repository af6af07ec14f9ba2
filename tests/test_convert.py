"""Official-layout Shift-GCN weights -> `graphfuse convert shiftgcn` -> `graphfuse test` gives
the logits of the model holding those weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from graphfuse.cli import main
from graphfuse.data.ntu.datamodule import SkeletonDataModule
from graphfuse.models import ShiftGCN

QUICKSTART = Path(__file__).resolve().parents[1] / "configs" / "synthetic-ntu" / "shiftgcn" / "quickstart.yaml"


def _official_like_weights(num_class: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(3)
    model = ShiftGCN(num_class=num_class)
    with torch.no_grad():  # make every tensor non-trivial, BN statistics included
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                t.add_(0.1 * torch.randn_like(t))
                if name.endswith("running_var"):
                    t.abs_().add_(0.5)
    return model.state_dict()


def test_convert_then_test_reproduces_the_logits(synthetic_ntu, tmp_path):
    state = _official_like_weights(10)
    official = tmp_path / "ntu_ShiftGCN_joint_xsub.pt"
    torch.save(state, official, _use_new_zipfile_serialization=False)  # the legacy format of the releases
    converted = tmp_path / "converted.ckpt"
    assert main(["convert", "shiftgcn", str(official), str(converted)]) == 0

    main(["test", "-c", str(QUICKSTART), f"--data.init_args.data_dir={synthetic_ntu}",
          "--data.init_args.synthetic=false", f"--ckpt_path={converted}", f"--run.root={tmp_path / 'runs'}",
          "--run.name=converted", "--trainer.enable_progress_bar=false"])
    with np.load(tmp_path / "runs/converted/version_0/scores.npz", allow_pickle=False) as z:
        got = dict(zip(z["names"].tolist(), z["scores"]))

    model = ShiftGCN(num_class=10)
    model.load_state_dict(state, strict=True)
    model.eval()
    dm = SkeletonDataModule(str(synthetic_ntu), clip_len=48, batch_size=16)
    dm.setup("test")
    names = dm.split_names("test")
    with torch.no_grad():
        for batch in dm.test_dataloader():
            logits = model(batch["x"])
            for i, row in zip(batch["id"].tolist(), logits.numpy()):
                np.testing.assert_allclose(got[names[i]], row, rtol=1e-5, atol=1e-5)
    assert len(got) == len(names)


def test_convert_refuses_a_foreign_state_dict(tmp_path, capsys):
    bad = tmp_path / "other.pt"
    torch.save({"fc.weight": torch.zeros(10, 256), "conv.weight": torch.zeros(1)}, bad)
    assert main(["convert", "shiftgcn", str(bad), str(tmp_path / "out.ckpt")]) == 2
    err = capsys.readouterr().err
    assert "other.pt: not a Shift-GCN state dict" in err and "unexpected keys (1): conv.weight" in err
    assert "(293 more)" in err and len(err) < 1000
    assert not (tmp_path / "out.ckpt").exists()
