"""The DDQ quantizer: matrix form == fast form, bits from gates, uniform grids, gradients."""
import pytest
import torch

from ddq_edge.quant import DDQConfig, DDQQuantizer, matrix_form
from ddq_edge.quant.matrix_form import full_gates
from ddq_edge.quant.ste import FakeQuantize, round_ste

KINDS = [("weight", True), ("activation", False), ("activation", True)]


def make_quantizer(role: str, signed: bool, bits: int, max_bits: int = 8, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    q = DDQQuantizer(role, DDQConfig(max_bits=max_bits), channels=1).double()
    sample = torch.randn(4096, generator=gen, dtype=torch.float64) * 1.7
    q.calibrate(sample if signed else sample.abs())
    q.set_gates(bits)
    return q, gen


def sweep(q: DDQQuantizer, gen: torch.Generator, n: int = 20000) -> torch.Tensor:
    """Random inputs covering the grid and beyond it on both sides."""
    r = float(q.range.detach().abs())
    return (torch.rand(n, generator=gen, dtype=torch.float64) * 2.6 - 1.3) * r


@pytest.mark.parametrize("role,signed", KINDS)
@pytest.mark.parametrize("bits", range(2, 9))
def test_matrix_form_equals_fast_form(role, signed, bits):
    q, gen = make_quantizer(role, signed, bits, seed=bits)
    x = sweep(q, gen)
    fast = q(x)
    matrix = matrix_form(q, x)
    step = float(q.integer_grid().scale)
    # Same integer level for every element (exact), and the same value to rounding error.
    assert torch.equal(torch.round(fast / step), torch.round(matrix / step))
    assert torch.allclose(fast, matrix, rtol=0, atol=1e-12 * float(q.range.detach().abs()))


@pytest.mark.parametrize("max_bits", [4, 6, 8])
def test_bits_are_the_sum_of_cumulative_gates(max_bits):
    gen = torch.Generator().manual_seed(max_bits)
    q = DDQQuantizer("weight", DDQConfig(max_bits=max_bits, min_bits=2), channels=1)
    for _ in range(50):
        logits = torch.randn(max_bits - 2, generator=gen)
        with torch.no_grad():
            q.gate_logits.copy_(logits)
        gates = full_gates(q)
        assert float(q.bits().detach()) == float(torch.cumprod(gates, 0).detach().sum())
        leading_on = 2 + int(torch.cumprod((logits >= 0).int(), 0).sum())
        assert q.current_bits() == leading_on


@pytest.mark.parametrize("role,signed", KINDS)
@pytest.mark.parametrize("bits", range(2, 9))
def test_merged_grid_is_uniform_and_contains_zero(role, signed, bits):
    q, gen = make_quantizer(role, signed, bits, seed=100 + bits)
    values = torch.unique(q(sweep(q, gen, 200000)))
    step = float(q.integer_grid().scale)
    expected = 2**bits - 1 if role == "weight" else 2**bits
    assert len(values) == expected
    gaps = values[1:] - values[:-1]
    assert torch.allclose(gaps, torch.full_like(gaps, step), rtol=1e-9, atol=0)
    assert (values == 0).any()
    grid = q.integer_grid()
    assert grid.qmax - grid.qmin + 1 == expected
    assert step == pytest.approx(float(q.base_step().detach()) * 2 ** (8 - bits))


@pytest.mark.parametrize("role,signed", KINDS)
def test_gradients_reach_range_and_gates(role, signed):
    q, gen = make_quantizer(role, signed, bits=4, seed=7)
    x = sweep(q, gen, 5000).requires_grad_()
    target = torch.randn(5000, generator=gen, dtype=torch.float64)
    loss = ((q(x) - target) ** 2).sum()
    loss.backward()
    assert q.range.grad is not None and float(q.range.grad.abs().sum()) > 0
    assert q.gate_logits.grad is not None and float(q.gate_logits.grad.abs().sum()) > 0
    assert float(x.grad.abs().sum()) > 0


def test_matrix_form_passes_gradients_to_gates_and_range():
    q, gen = make_quantizer("activation", False, bits=5, seed=3)
    x = sweep(q, gen, 2000)
    matrix_form(q, x).pow(2).sum().backward()
    assert float(q.range.grad.abs().sum()) > 0
    assert float(q.gate_logits.grad.abs().sum()) > 0


def test_pinned_bits_do_not_learn():
    q, gen = make_quantizer("weight", True, bits=6)
    q.pin(3)
    assert q.current_bits() == 3 and q.is_pinned
    q(sweep(q, gen)).sum().backward()
    assert float(q.gate_logits.grad.abs().sum()) == 0
    with pytest.raises(ValueError, match="outside"):
        q.pin(9)


@pytest.mark.parametrize("step_shape", [(16, 1, 1, 1), ()])
def test_fused_fake_quantize_matches_composed_ops(step_shape):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(16, 3, 3, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    step = (torch.rand(step_shape, generator=gen, dtype=torch.float64) * 0.3 + 0.05).requires_grad_()
    bounds = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (-7.0, 7.0, 1.0)]
    upstream = torch.randn(16, 3, 3, 3, generator=gen, dtype=torch.float64)
    fused = FakeQuantize.apply(x, step, *bounds)
    qmin, qmax, zero = bounds
    composed = (torch.clamp(round_ste(x / step) + zero, qmin, qmax) - zero) * step
    assert torch.equal(fused, composed)
    inputs = [x, step, *bounds]
    g_fused = torch.autograd.grad((fused * upstream).sum(), inputs)
    g_composed = torch.autograd.grad((composed * upstream).sum(), inputs)
    for a, b in zip(g_fused, g_composed):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-12)


def test_rounding_is_half_up():
    q = DDQQuantizer("activation", DDQConfig(learn_bits=False, init_bits=8), channels=1)
    q.calibrate(torch.tensor([0.0, 255.0]))  # unsigned, step 1 at 8 bits
    assert float(q.integer_grid().scale) == pytest.approx(1.0)
    out = q(torch.tensor([0.5, 1.5, 2.5, 2.4999]))
    assert out.tolist() == [1.0, 2.0, 3.0, 2.0]


@pytest.mark.parametrize("kwargs,match", [
    ({"target_bits": 1.5}, "below min_bits"),
    ({"target_bits": 4, "target_act_bits": 1}, "below min_bits"),
    ({"min_bits": 1}, "min_bits"),
    ({"max_bits": 9}, "max_bits"),
    ({"init_bits": 9}, "init_bits"),
])
def test_config_rejects_impossible_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DDQConfig(**kwargs)
