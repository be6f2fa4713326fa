"""Converter: DDQ models (zoo and hand-written) lower to integer graphs that match PyTorch."""
import numpy as np
import pytest
import torch
from torch import nn

import ddq_edge
from ddq_edge.bundle import read_bundle
from ddq_edge.conversion import convert, to_graph
from ddq_edge.converters.torch_ddq import ConversionError
from ddq_edge.models import build_model
from ddq_edge.quant import DDQConfig, ddq_layers
from ddq_edge.reference import run, run_all, run_integer


def bn(c):
    return nn.BatchNorm2d(c)


class OddResidual(nn.Module):
    """Odd channel counts, a stride-2 depthwise conv, max pool, residual add, ReLU after add."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 7, 3, padding=1, bias=False), bn(7), nn.ReLU6())
        self.dw = nn.Sequential(nn.Conv2d(7, 7, 3, stride=2, padding=1, groups=7, bias=False), bn(7), nn.ReLU6())
        self.pw = nn.Sequential(nn.Conv2d(7, 13, 1, bias=False), bn(13))
        self.skip = nn.Sequential(nn.Conv2d(7, 13, 1, stride=2, bias=False), bn(13))
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.head = nn.Sequential(nn.Conv2d(13, 11, 3, padding=(1, 0)), nn.ReLU())
        self.fc = nn.Linear(11, 5)

    def forward(self, x):
        x = self.stem(x)
        y = self.relu(self.pw(self.dw(x)) + self.skip(x))
        y = self.head(self.pool(y))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1))


class TwoBranch(nn.Module):
    """One tensor read by two convs and an add (a shared input quantizer), mean pooling."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(2, 6, 1)
        self.b = nn.Conv2d(2, 6, 3, padding=1)
        self.c = nn.Conv2d(6, 6, 1)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        s = torch.relu(self.a(x)) + torch.relu(self.b(x))
        return self.fc(self.c(s).mean((2, 3)))


def with_statistics(model: nn.Module, seed: int) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.2)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    return model.eval()


def random_bits(model: nn.Module, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ddq_edge.set_bits(model, {name: (int(rng.integers(2, 9)), int(rng.integers(2, 9)))
                              for name, _ in ddq_layers(model)})


def output_codes(model: nn.Module, x: torch.Tensor, graph) -> np.ndarray:
    """The PyTorch DDQ model's logits as integer codes on the output grid."""
    out_tensor = graph.tensors[graph.ops[-1].inputs[0]]
    scale, zero = float(out_tensor.quant.scale[0]), out_tensor.quant.zero_point
    with torch.no_grad():
        return np.round(model(x).numpy() / scale).astype(np.int64) + zero


CASES = [
    ("odd_residual", OddResidual, (3, 13, 9)),
    ("two_branch", TwoBranch, (2, 8, 11)),
    ("mobilenet_v2", lambda: build_model("mobilenet_v2", width=0.35, num_classes=4, input_size=16,
                                         in_channels=1), (1, 16, 16)),
    ("resnet8", lambda: build_model("resnet", depth=8, width=8, num_classes=4, input_size=12,
                                    in_channels=2), (2, 12, 12)),
]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name,factory,shape", CASES, ids=[c[0] for c in CASES])
def test_reference_matches_the_pytorch_ddq_model(name, factory, shape, seed):
    torch.manual_seed(seed)
    x = torch.randn(64, *shape)
    q = ddq_edge.quantize(with_statistics(factory(), seed), DDQConfig(), example_inputs=x).eval()
    random_bits(q, seed)
    graph = to_graph(q, x[:1])
    for tensor_name, value in run_all(graph, x.numpy()).items():  # stored shapes are right
        assert value.shape[1:] == graph.tensors[tensor_name].shape[1:], tensor_name
    codes = run_integer(graph, x.numpy()).astype(np.int64)
    expected = output_codes(q, x, graph)
    diff = np.abs(codes - expected)
    # Training rounds like the integer graph (half up, bias on the accumulator grid, one
    # rounding per requantization); only float32 accumulation in PyTorch landing within
    # ~1e-7 of a rounding boundary can move a code.
    assert np.mean(diff == 0) >= 0.95, f"{name}: only {np.mean(diff == 0):.1%} exact"
    assert diff.max() <= 2, f"{name}: max code difference {diff.max()}"


def test_bundle_round_trip_runs_identically(tmp_path):
    torch.manual_seed(3)
    x = torch.randn(8, 3, 13, 9)
    q = ddq_edge.quantize(with_statistics(OddResidual(), 3), DDQConfig(), example_inputs=x).eval()
    random_bits(q, 3)
    path = convert(q, tmp_path / "m.ddqb", example_input=x[:1])
    graph = read_bundle(path)
    assert np.array_equal(run(path, x.numpy()), run(to_graph(q, x[:1]), x.numpy()))
    report = {row["layer"]: [row["weight_bits"], row["act_bits"]]
              for row in ddq_edge.bit_report(q)["layers"]}
    assert graph.metadata["bits"] == report
    assert graph.metadata["converter_version"] == ddq_edge.__version__


def test_unsupported_op_is_named_and_nothing_is_written(tmp_path):
    class Sigmoid(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)

        def forward(self, x):
            return torch.sigmoid(self.conv(x))

    x = torch.randn(2, 1, 6, 6)
    q = ddq_edge.quantize(Sigmoid(), DDQConfig(), example_inputs=x)
    with pytest.raises(ConversionError, match="unsupported op 'sigmoid'"):
        convert(q, tmp_path / "bad.ddqb", example_input=x)
    assert list(tmp_path.iterdir()) == []


def test_accumulator_overflow_is_rejected():
    fan_in = 70_000  # 70k products of 8-bit weights and 8-bit activations exceed int32
    x = torch.rand(2, fan_in)
    q = ddq_edge.quantize(nn.Sequential(nn.Linear(fan_in, 2)), DDQConfig(), example_inputs=x)
    with pytest.raises(ConversionError, match="accumulator could overflow"):
        to_graph(q, x[:1])


def test_untraceable_models_are_refused():
    class Eager(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)

        def forward(self, x):
            return self.conv(x) if float(x.detach().sum()) > -1e9 else -x

    x = torch.randn(2, 1, 6, 6)
    q = ddq_edge.quantize(Eager(), DDQConfig(), example_inputs=x)
    with pytest.raises(ConversionError, match="torch.fx"):
        to_graph(q, x)
