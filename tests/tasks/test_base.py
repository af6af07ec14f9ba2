"""The base task: dict batches by input name, finite checks naming the samples, DDP
de-duplication by id, the param-group hook vs plain groups (Shift-GCN's official split pinned
by parameter name), and num_class written once (the task's output-size rule on a config)."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from graphfuse.models import PedGraph, ShiftGCN
from graphfuse.tasks import ActionRecognition, CrossingIntention
from graphfuse.tasks.action import param_groups_by_weight_decay
from graphfuse.tasks.base import (
    GraphfuseTask,
    network_param_groups,
    plain_param_groups,
    resolve_output_size,
    unique_by_id,
)


class _TwoInputs(nn.Module):
    """Logits from two named inputs ``a: (N, 2)`` and ``b: (N, 2)``; records what it got."""

    input_names = ("a", "b")

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 3)
        self.seen: list[set[str]] = []

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        self.seen.append({"a", "b"})
        return self.fc(a + b)


class _Task(GraphfuseTask):
    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        self.init_metrics()

    def build_metrics(self, stage: str) -> MetricCollection:
        return MetricCollection({"top1": MulticlassAccuracy(3, average="micro")}, prefix=f"{stage}/")

    def compute_loss(self, logits, target):
        return nn.functional.cross_entropy(logits, target)

    def test_record(self, logits, batch):
        return {"scores": logits.float(), "labels": batch["target"]}

    def empty_test_record(self):
        return {"scores": torch.zeros(0, 3), "labels": torch.zeros(0, dtype=torch.long)}


def _batch(n: int = 4, **extra) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "a": torch.randn(n, 2, generator=g),
        "b": torch.randn(n, 2, generator=g),
        "target": torch.arange(n) % 3,
        "id": torch.arange(10, 10 + n),
        **extra,
    }


# ---- dict contract -------------------------------------------------------------------------------
def test_the_network_gets_its_named_inputs_only():
    task = _Task(_TwoInputs())
    batch = _batch(velocity=torch.zeros(4, 7))  # an entry the network does not take is ignored
    inputs = task.model_inputs(batch)
    assert set(inputs) == {"a", "b"} and inputs["a"] is batch["a"]
    torch.testing.assert_close(task(**inputs), task.model.fc(batch["a"] + batch["b"]))
    with pytest.raises(KeyError, match="'b'.*_TwoInputs"):
        task.model_inputs({k: v for k, v in batch.items() if k != "b"})


def test_models_declare_their_input_names():
    assert ShiftGCN.input_names == ("x",)
    assert ActionRecognition(ShiftGCN(num_class=10)).input_names == ("x",)
    assert PedGraph(in_channels=3, use_velocity=True, use_image=False).input_names == ("pose", "velocity")
    assert PedGraph(in_channels=3, use_velocity=False, use_image=True).input_names == ("pose", "image")
    task = CrossingIntention(PedGraph(in_channels=3, use_image=False))
    with pytest.raises(ValueError, match="data.init_args.use_velocity"):
        task.model_inputs({"pose": torch.zeros(1, 3, 4, 19), "target": torch.zeros(1), "id": torch.zeros(1)})


def test_action_task_on_a_skeleton_dict_batch():
    torch.manual_seed(0)
    net = ShiftGCN(num_class=5)
    task = ActionRecognition(net)
    assert task.num_class == 5
    x = torch.randn(2, 3, 8, 25, 2)
    batch = {"x": x, "target": torch.tensor([1, 4]), "id": torch.tensor([7, 3])}
    task.eval()
    with torch.no_grad():
        torch.testing.assert_close(task(**task.model_inputs(batch)), net(x))
        torch.testing.assert_close(task(x), net(x))  # positional still works
        out = task.predict_step(batch, 0)
    assert out["index"].tolist() == [7, 3] and out["scores"].shape == (2, 5)
    assert out["labels"].tolist() == [1, 4]
    with pytest.raises(ValueError, match="num_class=6 but the network has num_class=5"):
        ActionRecognition(net, num_class=6)


# ---- finite checks -------------------------------------------------------------------------------
def _attach(task: GraphfuseTask, names: list[str] | None = None) -> None:
    dm = SimpleNamespace(split_names=lambda stage: names) if names is not None else None
    task._trainer = SimpleNamespace(datamodule=dm, world_size=1, current_epoch=0)  # what the checks read


def test_non_finite_training_input_names_the_samples():
    task = _Task(_TwoInputs())
    _attach(task, [f"sample{i:02d}" for i in range(20)])
    batch = _batch()
    batch["b"][2, 1] = float("nan")
    with pytest.raises(FloatingPointError, match=r"non-finite b in train batch 5.*'sample12'") as exc:
        task._shared_step(batch, "train", 5)
    assert "sample10" not in str(exc.value)  # only the offending sample
    # evaluation does not check its inputs, but the logits they give are checked at every stage
    with pytest.raises(FloatingPointError, match=r"non-finite logits in val batch 0.*'sample12'"):
        task._shared_step(batch, "val", 0)


def test_non_finite_logits_without_sample_names_give_indices():
    task = _Task(_TwoInputs())
    _attach(task)
    with torch.no_grad():
        task.model.fc.bias[0] = float("inf")
    match = r"logits in test batch 1 .*sample indices \[10, 11, 12, 13\]"
    with pytest.raises(FloatingPointError, match=match):
        task._shared_step(_batch(), "test", 1)


# ---- DDP gathering -------------------------------------------------------------------------------
def test_unique_by_id_keeps_one_row_per_sample():
    ids = torch.tensor([3, 0, 1, 3, 2, 0])
    scores = torch.tensor([[30.0], [0.0], [10.0], [31.0], [20.0], [1.0]])
    labels = torch.tensor([3, 0, 1, 3, 2, 0])
    uid, us, ul = unique_by_id(ids, scores, labels)
    assert uid.tolist() == [0, 1, 2, 3] and ul.tolist() == [0, 1, 2, 3]
    assert us[:, 0].tolist() == [0.0, 10.0, 20.0, 30.0]  # the first copy of each id (stable)


def test_test_scores_gathered_over_two_ranks_are_deduplicated_by_id():
    """Rank 0 holds samples 0, 1, 2; rank 1 holds 3, 4 and a padded copy of 0
    (DistributedSampler): the gathered results have each sample once, in id order."""
    task = _Task(_TwoInputs())
    scores = torch.arange(9.0).view(3, 3)
    local = {"index": torch.tensor([0, 1, 2]), "scores": scores, "labels": torch.tensor([0, 1, 2])}
    other = {"index": torch.tensor([3, 4, 0]), "scores": 100 + scores, "labels": torch.tensor([0, 1, 0])}
    task._test_records = [local]
    queue = [other["index"], other["scores"], other["labels"]]
    task.all_gather = lambda t: torch.stack([t, queue.pop(0)])  # what each rank would receive
    task._trainer = SimpleNamespace(world_size=2, datamodule=None)
    task.on_test_epoch_end()
    res = task.test_results
    assert res["index"].tolist() == [0, 1, 2, 3, 4]
    torch.testing.assert_close(res["scores"][:3], local["scores"])  # sample 0 from rank 0, once
    torch.testing.assert_close(res["scores"][3:], other["scores"][:2])
    assert res["labels"].tolist() == [0, 1, 2, 0, 1]


def test_empty_test_epoch_gives_empty_results():
    task = _Task(_TwoInputs())
    task._trainer = SimpleNamespace(world_size=1, datamodule=None)
    task.on_test_epoch_start()
    task.on_test_epoch_end()
    assert task.test_results["index"].shape == (0,) and task.test_results["scores"].shape == (0, 3)


# ---- recipes belong to models --------------------------------------------------------------------
def test_plain_groups_for_a_network_without_the_hook():
    net = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    net[1].bias.requires_grad_(False)
    (group,) = network_param_groups(net, 0.01)
    assert group["weight_decay"] == 0.01 and group["names"] == ["0.weight", "0.bias", "1.weight"]
    assert group == plain_param_groups(net, 0.01)[0]
    task = _Task(net)
    (g,) = task.param_groups(0.01)
    assert set(g) == {"params", "weight_decay"} and len(g["params"]) == 3


def test_a_hook_that_forgets_a_parameter_is_refused():
    class _Bad(nn.Linear):
        def param_groups(self, weight_decay):
            return [{"params": [self.weight], "weight_decay": weight_decay}]

    with pytest.raises(ValueError, match="every trainable parameter exactly once"):
        network_param_groups(_Bad(2, 2), 0.1)


#: Shift-GCN's official weight-decay split (kchengiva/Shift-GCN main.py), by parameter name.
_LINEAR_WEIGHTS = [f"l{i}.gcn1.Linear_weight" for i in range(1, 11)]
_FEATURE_MASKS = [f"l{i}.gcn1.Feature_Mask" for i in range(1, 11)]


def test_shiftgcn_hook_pins_the_official_split_by_name():
    net = ShiftGCN(num_class=60)
    groups = net.param_groups(1e-4)
    by_wd = {g["weight_decay"]: g["names"] for g in groups}
    assert set(by_wd) == {1e-4, 1e-3, 0.0}
    assert by_wd[1e-3] == _LINEAR_WEIGHTS
    assert by_wd[0.0] == _FEATURE_MASKS
    rest = [n for n, _ in net.named_parameters() if n not in _LINEAR_WEIGHTS + _FEATURE_MASKS]
    assert by_wd[1e-4] == rest and len(rest) == 174 - 20
    assert {"fc.weight", "fc.bias", "data_bn.weight", "l1.gcn1.Linear_bias", "l1.tcn1.bn.bias"} <= set(rest)
    # the default decay is the task's weight_decay; the two exceptions stay
    assert {g["weight_decay"] for g in net.param_groups(5e-4)} == {5e-4, 1e-3, 0.0}


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"excitation": "me", "excitation_placement": "parallel"},
        {"excitation": "ce", "excitation_placement": "parallel", "excitation_replace_tcn": True},
        {"excitation": "action", "excitation_placement": "serial"},
    ],
)
def test_the_task_optimiser_keeps_the_recipe_of_earlier_versions(options):
    """Same parameters, same decays, same group order as the suffix rule the task applied to
    every network before (so optimiser states of earlier checkpoints load unchanged)."""
    net = ShiftGCN(num_class=10, **options)
    old = param_groups_by_weight_decay(net, 1e-4, {"Linear_weight": 1e-3, "Feature_Mask": 0.0})
    new = ActionRecognition(net).configure_optimizers()["optimizer"].param_groups
    assert [g["weight_decay"] for g in new] == [g["weight_decay"] for g in old]
    for g_new, g_old in zip(new, old):
        assert [id(p) for p in g_new["params"]] == [id(p) for p in g_old["params"]]
        assert "names" not in g_new


def test_intention_optimiser_is_one_plain_group():
    task = CrossingIntention(PedGraph(in_channels=3, use_image=False), weight_decay=1e-3)
    (g,) = task.param_groups(1e-3)
    assert g["weight_decay"] == 1e-3 and len(g["params"]) == len(list(task.model.parameters()))


# ---- num_class written once ----------------------------------------------------------------------
def _cfg(
    task: str, net: str, net_init: dict, task_init: dict | None = None, data: dict | None = None
) -> dict:
    network = {"class_path": net, "init_args": net_init}
    return {
        "model": {"class_path": task, "init_args": {**(task_init or {}), "model": network}},
        "data": {"class_path": "x.Y", "init_args": data or {}},
    }


_ACTION, _SHIFT = "graphfuse.tasks.ActionRecognition", "graphfuse.models.ShiftGCN"
_INTENT, _PED = "graphfuse.tasks.CrossingIntention", "graphfuse.models.PedGraph"


def test_output_size_rules():
    assert ActionRecognition.output_size({"num_class": 120}) == 120
    assert ActionRecognition.output_size(None) is None
    assert ActionRecognition.output_size(None, num_class=60) == 60
    assert CrossingIntention.output_size(None, {"labels": "three"}, loss="bce") == 3
    assert CrossingIntention.output_size(None, {"labels": "binary"}, loss="bce") == 1
    assert CrossingIntention.output_size(None, {"labels": "binary"}, loss="ce") == 2
    assert CrossingIntention.output_size(None, {}) == 3  # the datamodule's default labels


def test_resolve_output_size_from_meta():
    cfg = _cfg(_ACTION, _SHIFT, {"num_class": 60})  # 60: ShiftGCN's default, i.e. not set
    assert resolve_output_size(cfg, {"num_class": 120}) == 120
    assert cfg["model"]["init_args"]["model"]["init_args"]["num_class"] == 120
    cfg = _cfg(_ACTION, _SHIFT, {"num_class": 60})
    assert resolve_output_size(cfg, None) == 60  # no data: the network's own value
    # a stated value the data contradicts is an error naming the key
    with pytest.raises(ValueError, match="init_args.model.init_args.num_class=10 but the data needs 120"):
        resolve_output_size(_cfg(_ACTION, _SHIFT, {"num_class": 10}), {"num_class": 120})
    # the meta callable is read only by tasks whose rule needs it
    cfg = _cfg(_INTENT, _PED, {"num_class": 3}, {"loss": "bce"}, {"labels": "binary"})
    assert resolve_output_size(cfg, lambda: pytest.fail("meta.json read")) == 1
    cfg = _cfg(_INTENT, _PED, {"num_class": 2}, {"loss": "bce"}, {"labels": "binary"})
    assert resolve_output_size(cfg, None) == 2  # 2 one-hot columns with BCE: accepted, kept
    cfg = _cfg(_INTENT, _PED, {"num_class": 3}, {"loss": "ce"}, {"labels": "three"})
    assert resolve_output_size(cfg, None) == 3
    # no task rule or no network num_class: nothing to do
    assert resolve_output_size({"model": {"class_path": "torch.nn.Linear", "init_args": {}}}, None) is None


def test_a_task_num_class_the_data_contradicts_names_the_key():
    cfg = _cfg(_ACTION, _SHIFT, {"num_class": 60}, {"num_class": 60}, {"data_dir": "d"})
    with pytest.raises(ValueError, match=r"model.init_args.num_class=60 but the data has 10 classes \(d\)"):
        resolve_output_size(cfg, {"num_class": 10})
    # the configs of earlier versions state it twice, in agreement with the data: unchanged
    cfg = _cfg(_ACTION, _SHIFT, {"num_class": 120}, {"num_class": 120})
    assert resolve_output_size(cfg, {"num_class": 120}) == 120


# ---- bfloat16 on a CPU that emulates it ------------------------------------------------------------
@pytest.mark.parametrize("native", [True, False])
def test_bf16_training_on_a_cpu_without_bf16_instructions_warns(monkeypatch, native):
    """Emulated bfloat16 made a Shift-GCN step 10x slower than float32: the task says so once,
    when the trainer configures it, naming the way out; a CPU with the instructions (or
    float32) gets no warning."""
    import lightning as L

    monkeypatch.setattr("platform.machine", lambda: "x86_64")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    for precision, expect in (("bf16-mixed", not native), ("32-true", False)):
        task = _Task(_TwoInputs())
        task.trainer = L.Trainer(accelerator="cpu", devices=1, precision=precision, logger=False,
                                 enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            task.configure_model()
            task.configure_model()  # once per task
        ours = [w for w in seen if "bfloat16 instructions" in str(w.message)]
        assert len(ours) == (1 if expect else 0), (precision, native, [str(w.message) for w in seen])
        if expect:
            assert "--trainer.precision 32-true" in str(ours[0].message)


def test_bf16_instruction_check_reads_torch_and_knows_its_limits(monkeypatch):
    from graphfuse.cpu_defaults import cpu_has_bf16_instructions, emulated_bf16_warning

    monkeypatch.setattr("platform.machine", lambda: "x86_64")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert cpu_has_bf16_instructions() is True  # AMX alone is enough
    assert emulated_bf16_warning("bf16-mixed") is None
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert cpu_has_bf16_instructions() is False
    assert "bf16-true" in emulated_bf16_warning("bf16-true")
    assert emulated_bf16_warning("16-mixed") is None and emulated_bf16_warning("32-true") is None
    monkeypatch.setattr("platform.machine", lambda: "aarch64")  # x86 checks say nothing there
    assert cpu_has_bf16_instructions() is None and emulated_bf16_warning("bf16-mixed") is None
