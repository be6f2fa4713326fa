"""Two-process DistributedDataParallel (gloo, CPU): ranks stay identical, gates included."""
import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import TensorDataset

import ddq_edge
from ddq_edge.models import build_model
from ddq_edge.quant import DDQConfig
from ddq_edge.training import PhaseSettings, fit

WORLD = 2


def _dataset(seed: int = 0) -> TensorDataset:
    gen = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(64, 1, 12, 12, generator=gen), torch.randint(0, 3, (64,), generator=gen))


def _initial_model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model("resnet", depth=8, width=8, num_classes=3, input_size=12, in_channels=1).eval()
    return ddq_edge.quantize(model, DDQConfig(target_bits=3, gate_init_margin=0.002),
                             example_inputs=_dataset().tensors[0][:16])


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        model = _initial_model()
        if rank == 1:  # a rank that calibrated differently must be overwritten by rank 0
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(0.5)
        settings = PhaseSettings(epochs=2, lr=2e-3, gate_lr=5e-3, batch_size=8, use_budget_penalty=True)
        fit(model, _dataset(), settings, seed=0, show_progress=False)
        torch.save(model.state_dict(), os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_two_process_ddp_keeps_parameters_and_gates_identical(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    states = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    assert states[0].keys() == states[1].keys()
    # The gradient statistics each rank observes in its last backward are local (DDP
    # broadcasts rank 0's buffers at every forward); everything else must be identical.
    local = [k for k in states[0] if k.endswith("sensitivity")]
    assert any(float(states[r][k].sum()) > 0 for r in range(WORLD) for k in local)
    for key in states[0]:
        if key not in local:
            assert torch.equal(states[0][key], states[1][key]), key
    before = _initial_model().state_dict()
    gates = [k for k in before if k.endswith("gate_logits") and "tensor_quantizers" not in k]
    assert gates and any(not torch.equal(before[k], states[0][k]) for k in gates)
    weights = [k for k in before if k.endswith(".weight")]
    assert any(not torch.equal(before[k], states[0][k]) for k in weights)
