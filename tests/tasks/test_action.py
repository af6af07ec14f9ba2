import torch
from torch import nn

from graphfuse.tasks.action import ActionRecognition, param_groups_by_weight_decay


class _Toy(nn.Module):
    def __init__(self, k=6):
        super().__init__()
        self.Linear_weight = nn.Parameter(torch.randn(3, 4))
        self.Feature_Mask = nn.Parameter(torch.zeros(1, 4))
        self.fc = nn.Linear(4, k)
        self.register_buffer("shift_in", torch.arange(4))

    def forward(self, x):  # (N, C, T, V, M) -> (N, k)
        f = x.mean(dim=(2, 3, 4))  # (N, C)
        return self.fc(f @ self.Linear_weight * (torch.tanh(self.Feature_Mask) + 1))


def test_official_weight_decay_groups():
    groups = param_groups_by_weight_decay(_Toy(), 1e-4, {"Linear_weight": 1e-3, "Feature_Mask": 0.0})
    by_wd = {g["weight_decay"]: sorted(g["names"]) for g in groups}
    assert by_wd == {1e-3: ["Linear_weight"], 0.0: ["Feature_Mask"], 1e-4: ["fc.bias", "fc.weight"]}


def test_lr_schedule_matches_official_adjust_learning_rate():
    # _Toy has no param_groups hook: the explicit suffix overrides give it Shift-GCN's decays
    task = ActionRecognition(
        _Toy(), num_class=6, lr=0.1, milestones=[60, 80, 100],
        weight_decay_overrides={"Linear_weight": 1e-3, "Feature_Mask": 0.0},
    )
    opt_cfg = task.configure_optimizers()
    opt, sched = opt_cfg["optimizer"], opt_cfg["lr_scheduler"]["scheduler"]
    lrs = []
    for epoch in range(140):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    # official: lr = 0.1 * 0.1 ** #(steps <= epoch), epoch 0-based
    expected = [0.1 * 0.1 ** sum(e >= s for s in (60, 80, 100)) for e in range(140)]
    assert all(abs(a - b) < 1e-12 for a, b in zip(lrs, expected))
    # SGD with Nesterov and the per-parameter decays
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["nesterov"] and opt.defaults["momentum"] == 0.9
    assert sorted(g["weight_decay"] for g in opt.param_groups) == [0.0, 1e-4, 1e-3]


def test_warmup_is_linear_then_steps():
    task = ActionRecognition(_Toy(), num_class=6, lr=1.0, milestones=[3], warmup_epochs=2)
    cfg = task.configure_optimizers()
    opt, sched = cfg["optimizer"], cfg["lr_scheduler"]["scheduler"]
    lrs = []
    for _ in range(5):
        lrs.append(round(opt.param_groups[0]["lr"], 6))
        opt.step()
        sched.step()
    assert lrs == [0.5, 1.0, 1.0, 0.1, 0.1]


def test_metrics_micro_top1_and_macro_mean_class():
    task = ActionRecognition(_Toy(k=6), num_class=6)
    # 4 samples of class 0 all right, 1 sample of class 1 wrong -> top1 0.8, mean-class (1+0)/2
    logits = torch.full((5, 6), -5.0)
    logits[:4, 0] = 5.0
    logits[4, 2] = 5.0
    y = torch.tensor([0, 0, 0, 0, 1])
    task.test_metrics.update(logits, y)
    out = task.test_metrics.compute()
    assert abs(out["test/top1"].item() - 0.8) < 1e-6
    # mean over the classes present in the targets: (4/4 + 0/1) / 2; class 2 (only predicted) not counted
    assert abs(out["test/mean_class"].item() - 0.5) < 1e-6
    assert abs(out["test/top5"].item() - 0.8) < 1e-6  # class 1 logit ties at -5 with four others
