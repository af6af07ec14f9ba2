"""``torch.compile(fullgraph=True)`` and ``torch.export`` of Shift-GCN and PedGraph+ (issue 14, item 1).

The compiled models must equal the eager ones: outputs and every parameter gradient of a training
step, and eval-mode outputs; the exported programs (``torch.export.export(strict=False)``) must
give the eager outputs.  Inductor on CPU (gcc) is used; tiny shapes keep the compile short.

Tolerances: inductor fuses and reorders float32 arithmetic (e.g. BatchNorm statistics, the
bilinear taps), so results differ from eager by rounding only: outputs ``rtol=1e-4, atol=1e-5``,
gradients ``rtol=1e-3, atol=1e-5`` (relative to the largest entry of each gradient, the official
sign rule of ``ypos`` excepted, which is exact: +-0.01 or 1e-4).  Export runs the eager kernels:
``atol=1e-6``.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from _tiny_models import TinyShiftGCN

from graphfuse.models.pedgraph import PedGraph

pytestmark = pytest.mark.slow


def _shiftgcn(**kwargs) -> tuple[torch.nn.Module, tuple[torch.Tensor, ...], torch.Tensor]:
    torch.manual_seed(0)
    model = TinyShiftGCN(num_class=5, **kwargs)  # two real units (l1, a strided l2): fast compiles
    with torch.no_grad():  # ypos spread over several frames, xpos over both signs
        for m in model.modules():
            if hasattr(m, "ypos"):
                m.ypos.uniform_(-3, 3)
                m.xpos.uniform_(-1e-3, 1e-3)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 8, 25, 2, generator=g)
    return model, (x,), torch.tensor([1, 3])


def _pedgraph() -> tuple[torch.nn.Module, tuple[torch.Tensor, ...], torch.Tensor]:
    torch.manual_seed(0)
    model = PedGraph(num_class=3, dropout=0.0)
    return model, tuple(model.example_inputs(2, 8, image_size=(12, 8))), torch.tensor([0, 2])


def _step(fn, model: torch.nn.Module, inputs, target) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One training step through ``fn`` (the module or its compiled wrapper); ``model``'s grads."""
    out = fn(*inputs)
    F.cross_entropy(out, target).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return out.detach(), grads


def _check_compiled(build, backend: str = "inductor", inference: bool = False) -> None:
    model, inputs, target = build()
    eager = copy.deepcopy(model)
    compiled = torch.compile(model, fullgraph=True, backend=backend)
    # One compile process: a pool of workers costs more to start than these tiny graphs take.
    with torch._inductor.config.patch(compile_threads=1):
        _compare(model, eager, compiled, inputs, target, inference)


def _compare(model, eager, compiled, inputs, target, inference: bool) -> None:
    out_e, grad_e = _step(eager.train(), eager, inputs, target)
    out_c, grad_c = _step(compiled.train(), model, inputs, target)
    torch.testing.assert_close(out_c, out_e, rtol=1e-4, atol=1e-5)
    assert grad_c.keys() == grad_e.keys()
    for name, g in grad_e.items():
        scale = max(1.0, float(g.abs().max()))
        torch.testing.assert_close(grad_c[name], g, rtol=1e-3, atol=1e-5 * scale, msg=name)
    # BatchNorm running statistics moved the same way.
    for (name, b_e), (_, b_c) in zip(eager.named_buffers(), model.named_buffers()):
        if b_e.is_floating_point():
            torch.testing.assert_close(b_c, b_e, rtol=1e-4, atol=1e-6, msg=name)
    if inference:  # the eval graph (BatchNorm running statistics, no autograd): another compile
        with torch.no_grad():
            torch.testing.assert_close(compiled.eval()(*inputs), eager.eval()(*inputs), rtol=1e-4, atol=1e-5)


def _check_export(build) -> None:
    model, inputs, _ = build()
    model.eval()
    program = torch.export.export(model, inputs, strict=False)
    with torch.no_grad():
        expected = model(*inputs)
        got = program.module()(*inputs)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)


def test_shiftgcn_compiles_fullgraph_and_equals_eager():
    """Inductor (generated C++), training step: the official sign rule of the shifts' gradient."""
    _check_compiled(_shiftgcn)


def test_direct_temporal_shift_captures_whole_and_equals_eager(monkeypatch: pytest.MonkeyPatch):
    """The formulation a compiled model uses on GPUs (``_ShiftDirect``: four gathered taps that
    inductor fuses, instead of a gather and a depthwise convolution), forced on the CPU: whole
    graph, outputs and gradients equal to the eager conv formulation."""
    from graphfuse.layers import shift as S

    class NotTheConvPath:
        @staticmethod
        def apply(*args: object) -> None:
            raise AssertionError("the conv formulation was traced")

    monkeypatch.setattr(S, "_DIRECT_DEVICES", {"cpu"})
    model, inputs, target = _shiftgcn()
    eager = copy.deepcopy(model)
    out_e, grad_e = _step(eager.train(), eager, inputs, target)  # before the patch below
    monkeypatch.setattr(S, "_ShiftConv", NotTheConvPath)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    out_c, grad_c = _step(compiled.train(), model, inputs, target)
    torch.testing.assert_close(out_c, out_e, rtol=1e-5, atol=1e-6)
    for name, g in grad_e.items():
        torch.testing.assert_close(grad_c[name], g, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize(
    "build",
    [
        lambda: _shiftgcn(shift_grad="autograd", excitation="action", excitation_units=[2]),
        _pedgraph,
    ],
    ids=["shiftgcn-autograd-action", "pedgraph"],
)
def test_training_and_inference_graphs_capture_whole(build):
    """Whole-graph capture (``fullgraph=True``) of the other variants' and PedGraph's training
    and eval paths, through AOT autograd without inductor's C++ compile (capture is what can
    fail; inductor's generated code is covered above on Shift-GCN: a second C++ compile of
    PedGraph cost CI 23 s and tests torch more than graphfuse)."""
    _check_compiled(build, backend="aot_eager", inference=True)


def test_shiftgcn_exports():
    _check_export(_shiftgcn)


def test_pedgraph_exports():
    _check_export(_pedgraph)


def test_task_compile_option_compiles_in_place():
    """``compile`` (GraphfuseTask): the network is compiled in place at ``configure_model``;
    parameter names (checkpoints) are unchanged and the hook is idempotent."""
    from graphfuse.tasks.base import GraphfuseTask

    model, _, _ = _pedgraph()
    keys = list(model.state_dict())
    task = GraphfuseTask(model, compile=True)
    assert task.compile_network
    task.configure_model()
    compiled = task.model._compiled_call_impl
    assert compiled is not None
    task.configure_model()
    assert task.model._compiled_call_impl is compiled
    assert list(task.model.state_dict()) == keys
    assert not GraphfuseTask(_pedgraph()[0]).compile_network
