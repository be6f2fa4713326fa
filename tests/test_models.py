"""Tests for ddq_edge.models: shapes, fx traceability, layouts and the registry."""

from __future__ import annotations

import operator

import pytest
import torch
from torch import fx, nn

from ddq_edge.models import ARCHITECTURES, build_model, mobilenet_v1, mobilenet_v2, resnet

ALLOWED_MODULES = (
    nn.Conv2d,
    nn.BatchNorm2d,
    nn.ReLU,
    nn.ReLU6,
    nn.Linear,
    nn.AdaptiveAvgPool2d,
    nn.MaxPool2d,
    nn.Dropout,
    nn.Flatten,
)

SMALL_MODELS = {
    "mobilenet_v2": lambda: mobilenet_v2(width=0.35, num_classes=10, input_size=32, in_channels=1),
    "mobilenet_v1": lambda: mobilenet_v1(width=0.25, num_classes=10, input_size=32, in_channels=1),
    "resnet": lambda: resnet(depth=8, num_classes=10, input_size=32, in_channels=1, width=8),
}


def _count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _residual_adds(graph_module: fx.GraphModule) -> int:
    return sum(
        node.op == "call_function" and node.target in (operator.add, torch.add)
        for node in graph_module.graph.nodes
    )


@pytest.mark.parametrize(
    ("size", "feature_size"), [(16, 2), (24, 3), (32, 4), (48, 3), (64, 2), (96, 3)]
)
def test_mobilenet_v2_small_input_rule(size: int, feature_size: int) -> None:
    model = mobilenet_v2(width=0.5, num_classes=10, input_size=size, in_channels=1).eval()
    x = torch.randn(2, 1, size, size)
    with torch.no_grad():
        assert model.features(x).shape == (2, 1280, feature_size, feature_size)
        assert model(x).shape == (2, 10)


@pytest.mark.parametrize(("size", "feature_size"), [(16, 2), (32, 4), (48, 3), (64, 2)])
def test_mobilenet_v1_small_input_rule(size: int, feature_size: int) -> None:
    model = mobilenet_v1(width=0.25, num_classes=7, input_size=size, in_channels=3).eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        assert model.features(x).shape == (2, 256, feature_size, feature_size)
        assert model(x).shape == (2, 7)


@pytest.mark.parametrize(("size", "feature_size"), [(16, 4), (32, 8), (64, 4), (96, 6)])
def test_resnet_feature_sizes(size: int, feature_size: int) -> None:
    model = resnet(depth=8, num_classes=5, input_size=size, in_channels=1, width=8).eval()
    x = torch.randn(2, 1, size, size)
    with torch.no_grad():
        assert model.features(x).shape == (2, 32, feature_size, feature_size)
        assert model(x).shape == (2, 5)


def test_mobilenet_v2_imagenet_layout_matches_torchvision() -> None:
    model = mobilenet_v2().eval()
    # torchvision's mobilenet_v2() has 3,504,872 parameters (BN affine included).
    assert _count_params(model) == 3_504_872
    with torch.no_grad():
        assert model.features(torch.randn(1, 3, 224, 224)).shape == (1, 1280, 7, 7)
    linear = model.classifier[1]
    assert isinstance(model.classifier[0], nn.Dropout) and model.classifier[0].p == 0.2
    assert (linear.in_features, linear.out_features) == (1280, 1000)


def test_mobilenet_v2_width_rounding() -> None:
    model = mobilenet_v2(width=0.5, num_classes=10, input_size=32, in_channels=1)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(conv.out_channels % 8 == 0 for conv in convs)
    assert convs[0].out_channels == 16 and convs[0].in_channels == 1
    # The last conv never shrinks below 1280, even for narrow widths.
    assert convs[-1].out_channels == 1280
    assert mobilenet_v2(width=1.4).classifier[1].in_features == 1792


def test_mobilenet_v1_and_resnet_param_counts() -> None:
    # MobileNetV1 1.0/224: 4,231,976 trainable parameters (as in Keras).
    assert _count_params(mobilenet_v1()) == 4_231_976
    # ResNet-20 with 1x1 conv+BN projections on the two stage transitions.
    assert _count_params(resnet(depth=20)) == 272_474


@pytest.mark.parametrize("name", sorted(SMALL_MODELS))
def test_fx_trace_matches_eager(name: str) -> None:
    model = SMALL_MODELS[name]().eval()
    traced = fx.symbolic_trace(model)
    x = torch.randn(3, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(traced(x), model(x), atol=1e-6)


@pytest.mark.parametrize("name", sorted(SMALL_MODELS))
def test_only_allowed_leaf_modules(name: str) -> None:
    traced = fx.symbolic_trace(SMALL_MODELS[name]())
    called = [
        traced.get_submodule(node.target) for node in traced.graph.nodes if node.op == "call_module"
    ]
    assert called
    assert all(isinstance(module, ALLOWED_MODULES) for module in called), {
        type(module).__name__ for module in called
    }


@pytest.mark.parametrize("name", sorted(SMALL_MODELS))
def test_every_conv_feeds_only_its_batchnorm(name: str) -> None:
    traced = fx.symbolic_trace(SMALL_MODELS[name]())
    conv_nodes = [
        node
        for node in traced.graph.nodes
        if node.op == "call_module" and isinstance(traced.get_submodule(node.target), nn.Conv2d)
    ]
    assert conv_nodes
    for node in conv_nodes:
        assert traced.get_submodule(node.target).bias is None
        users = list(node.users)
        assert len(users) == 1
        assert isinstance(traced.get_submodule(users[0].target), nn.BatchNorm2d)


@pytest.mark.parametrize(
    ("build", "adds"),
    [
        (lambda: mobilenet_v2(), 10),
        (lambda: mobilenet_v2(width=0.5, input_size=32), 10),
        (lambda: mobilenet_v1(), 0),
        (lambda: resnet(depth=20), 9),
    ],
)
def test_residual_add_count(build, adds: int) -> None:
    assert _residual_adds(fx.symbolic_trace(build())) == adds


def test_resnet_projection_shortcuts() -> None:
    model = resnet(depth=20)
    shortcuts = [m.shortcut for m in model.modules() if hasattr(m, "shortcut")]
    projections = [s for s in shortcuts if s is not None]
    assert len(shortcuts) == 9 and len(projections) == 2
    for projection in projections:
        assert isinstance(projection[0], nn.Conv2d) and projection[0].kernel_size == (1, 1)
        assert isinstance(projection[1], nn.BatchNorm2d)


@pytest.mark.parametrize("depth", [7, 10, 2])
def test_resnet_rejects_bad_depth(depth: int) -> None:
    with pytest.raises(ValueError, match=f"depth: expected 6n\\+2.*got {depth}"):
        resnet(depth=depth)


def test_initialisation() -> None:
    torch.manual_seed(0)
    model = mobilenet_v2(width=0.5, num_classes=10, input_size=32)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            assert torch.equal(module.weight, torch.ones_like(module.weight))
            assert torch.equal(module.bias, torch.zeros_like(module.bias))
        elif isinstance(module, nn.Linear):
            assert torch.equal(module.bias, torch.zeros_like(module.bias))
    last_conv = model.features[-1][0]
    fan_out = last_conv.out_channels * last_conv.kernel_size[0] * last_conv.kernel_size[1]
    assert last_conv.weight.std().item() == pytest.approx((2.0 / fan_out) ** 0.5, rel=0.05)


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="width"):
        mobilenet_v2(width=0)
    with pytest.raises(ValueError, match="dropout"):
        mobilenet_v2(dropout=1.0)
    with pytest.raises(ValueError, match="input_size"):
        mobilenet_v1(input_size=0)


def test_registry_contents() -> None:
    assert set(ARCHITECTURES) == {"mobilenet_v2", "mobilenet_v1", "resnet"}
    assert ARCHITECTURES["mobilenet_v2"] is mobilenet_v2


def test_build_model_records_and_rebuilds() -> None:
    kwargs = {"depth": 8, "num_classes": 4, "in_channels": 1, "width": 8}
    model = build_model("resnet", **kwargs)
    assert model.ddq_arch == {"name": "resnet", "kwargs": kwargs}
    assert model.ddq_arch["kwargs"] is not kwargs
    rebuilt = build_model(model.ddq_arch["name"], **model.ddq_arch["kwargs"])
    rebuilt.load_state_dict(model.state_dict())
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), rebuilt.eval()(x))


def test_build_model_unknown_name() -> None:
    with pytest.raises(ValueError, match="'vgg'.*mobilenet_v2, mobilenet_v1, resnet"):
        build_model("vgg")


def test_build_model_unknown_keyword() -> None:
    with pytest.raises(TypeError, match="mobilenet_v1 got unknown keyword argument.*dropout"):
        build_model("mobilenet_v1", dropout=0.1)
