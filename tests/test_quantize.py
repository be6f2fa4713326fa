"""quantize(): BN folding, layer replacement, activation placement, budget, pinning."""
import pytest
import torch
from torch import nn

import ddq_edge
from ddq_edge.quant import DDQConfig, DDQConv2d, DDQLinear, average_bits, budget_met


class ResidualNet(nn.Module):
    """A residual block, a max pool and a classifier: every placement rule is exercised."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU6())
        self.branch = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), nn.BatchNorm2d(8))
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Sequential(nn.Conv2d(8, 12, 1), nn.ReLU())
        self.fc = nn.Linear(12, 5)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.branch(x)
        x = self.head(self.pool(x))
        return self.fc(x.mean((2, 3)))


class Untraceable(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        y = self.body(x)
        if float(y.detach().sum()) > 1e9:  # data-dependent control flow: torch.fx cannot trace it
            y = -y
        return self.fc(y.mean((2, 3)))


def trained_like(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give BatchNorm non-trivial statistics, as a trained model has."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
    return model.eval()


@pytest.fixture
def example():
    return torch.randn(8, 3, 12, 10, generator=torch.Generator().manual_seed(1))


def test_quantize_at_eight_bits_tracks_the_float_model(example):
    model = trained_like(ResidualNet())
    q = ddq_edge.quantize(model, DDQConfig(), example_inputs=example).eval()
    assert not any(isinstance(m, nn.BatchNorm2d) for m in q.modules())
    ref = model(example)
    err = (q(example) - ref).abs().max() / ref.abs().max()
    assert err < 0.03
    assert isinstance(model.stem[0], nn.Conv2d)  # the input model is left untouched


def test_shared_tensors_are_quantized_once(example):
    q = ddq_edge.quantize(trained_like(ResidualNet()), DDQConfig(), example_inputs=example)
    branch = q.get_submodule("branch.0")
    # The stem output feeds the depthwise conv and the skip: one quantizer in the graph.
    assert q.ddq_placement.shared_inputs == {"branch.0": []}
    assert branch.quantize_input is False
    code = q.code
    assert "branch_0_input_quantizer" in code
    # The projection output and the sum are stored tensors no DDQ layer reads: 8-bit.
    assert q.ddq_placement.tensor_quantizers == ["branch_0", "add", "head_1", "fc"]
    for quantizer in q.tensor_quantizers.values():
        assert quantizer.current_bits() == 8 and quantizer.is_pinned


def test_untraceable_model_falls_back_to_eager(example):
    q = ddq_edge.quantize(trained_like(Untraceable()), DDQConfig(), example_inputs=example)
    assert q.ddq_mode.startswith("eager")
    assert isinstance(q.body[0], DDQConv2d) and isinstance(q.fc, DDQLinear)
    assert isinstance(q.body[1], nn.Identity)  # BN folded in the Sequential
    q(example).sum().backward()


def test_unsupported_layers_are_named(example):
    class WithConv1d(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.seq = nn.Conv1d(4, 4, 3)

        def forward(self, x):
            return self.seq(self.conv(x).flatten(2))

    with pytest.warns(UserWarning, match=r"seq \(Conv1d\)"):
        q = ddq_edge.quantize(WithConv1d(), DDQConfig(), example_inputs=example)
    assert q.ddq_skipped == ["seq (Conv1d)"]


def test_model_without_layers_is_an_error():
    with pytest.raises(ValueError, match="no Conv2d or Linear"):
        ddq_edge.quantize(nn.Sequential(nn.ReLU()), DDQConfig())


def test_budget_penalty_pushes_bits_down_and_enforce_guarantees_it(example):
    q = ddq_edge.quantize(trained_like(ResidualNet()), DDQConfig(target_bits=3.5),
                          example_inputs=example)
    penalty = ddq_edge.budget_penalty(q)
    assert float(penalty.detach()) > 0
    penalty.backward()
    grads = [m.weight_quantizer.gate_logits.grad for m in q.modules() if isinstance(m, DDQConv2d)]
    assert all(g is not None and float(g.sum()) > 0 for g in grads)  # descent lowers logits
    assert not budget_met(q)
    changes = ddq_edge.enforce_budget(q)
    assert changes and budget_met(q)
    w, a = average_bits(q)
    assert float(w.detach()) <= 3.5 and float(a.detach()) <= 3.5
    assert float(ddq_edge.budget_penalty(q).detach()) == 0


def test_enforce_budget_respects_pins_and_reports_impossible(example):
    q = ddq_edge.quantize(trained_like(ResidualNet()), DDQConfig(target_bits=2.0),
                          example_inputs=example)
    ddq_edge.set_bits(q, {"stem.0": (8, 8)})
    with pytest.raises(ValueError, match="cannot be met"):
        ddq_edge.enforce_budget(q)


def test_set_bits_pins_and_validates(example):
    q = ddq_edge.quantize(trained_like(ResidualNet()), DDQConfig(), example_inputs=example)
    ddq_edge.set_bits(q, {"fc": (3, None), "head.0": (None, 5)})
    report = {row["layer"]: row for row in ddq_edge.bit_report(q)["layers"]}
    assert (report["fc"]["weight_bits"], report["fc"]["act_bits"]) == (3, 8)
    assert report["head.0"]["act_bits"] == 5 and report["head.0"]["act_pinned"]
    with pytest.raises(KeyError, match="no DDQ layer named"):
        ddq_edge.set_bits(q, {"nope": (4, 4)})
    with pytest.raises(ValueError, match="weight_bits"):
        ddq_edge.set_bits(q, {"fc": (1, 4)})


def test_bit_report_counts_elements_and_macs(example):
    q = ddq_edge.quantize(trained_like(ResidualNet()), DDQConfig(), example_inputs=example)
    report = ddq_edge.bit_report(q)
    rows = {row["layer"]: row for row in report["layers"]}
    assert rows["stem.0"]["weight_elements"] == 8 * 3 * 3 * 3
    assert rows["stem.0"]["act_elements"] == 3 * 12 * 10
    assert rows["stem.0"]["macs"] == 8 * 12 * 10 * 27
    assert rows["branch.0"]["depthwise"]
    assert rows["stem.0"]["act_signed"] and rows["head.0"]["act_signed"]  # image; after the add
    assert not rows["fc"]["act_signed"]  # mean of a ReLU output
    assert report["average_weight_bits"] == pytest.approx(8) and report["budget_met"] is False


def test_torch_compile_matches_eager(example):
    q = ddq_edge.quantize(trained_like(ResidualNet()), DDQConfig(target_bits=4),
                          example_inputs=example)
    ddq_edge.enforce_budget(q)
    q.train()
    compiled = torch.compile(q, backend="aot_eager")
    out = compiled(example)
    assert torch.allclose(out, q(example), rtol=0, atol=1e-6)
    (out.sum() + ddq_edge.budget_penalty(compiled)).backward()
    gates = q.get_submodule("stem.0").weight_quantizer.gate_logits.grad
    assert gates is not None and float(gates.abs().sum()) > 0
