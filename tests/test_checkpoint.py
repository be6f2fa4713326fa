"""Checkpoints restore the same function; bad checkpoints are clear errors."""
import pytest
import torch

import ddq_edge
from ddq_edge.checkpoint import CheckpointError, read_checkpoint
from ddq_edge.models import build_model
from ddq_edge.quant import DDQConfig


def small_ddq_model(seed: int = 0):
    torch.manual_seed(seed)
    model = build_model("mobilenet_v2", width=0.25, num_classes=4, input_size=16, in_channels=1).eval()
    x = torch.randn(6, 1, 16, 16)
    q = ddq_edge.quantize(model, DDQConfig(target_bits=4), example_inputs=x)
    # Move some bits and ranges so the checkpoint has non-default state to restore.
    ddq_edge.enforce_budget(q)
    with torch.no_grad():
        q.get_submodule("classifier.1").weight_quantizer.range.mul_(0.9)
    return q.eval(), x


def test_round_trip_restores_the_same_outputs(tmp_path):
    q, x = small_ddq_model()
    path = ddq_edge.save_checkpoint(q, tmp_path / "m.pt", task={"name": "toy"})
    restored = ddq_edge.load_checkpoint(path)
    assert torch.equal(restored(x), q(x))
    assert ddq_edge.bit_report(restored)["layers"] == ddq_edge.bit_report(q)["layers"]
    assert restored.ddq_task == {"name": "toy"}
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left nothing behind


def test_float_checkpoint_round_trip(tmp_path):
    model = build_model("resnet", depth=8, num_classes=3, input_size=16, in_channels=1).eval()
    path = ddq_edge.save_checkpoint(model, tmp_path / "f.pt")
    x = torch.randn(2, 1, 16, 16)
    assert torch.equal(ddq_edge.load_checkpoint(path)(x), model(x))


def _tamper(tmp_path, edit):
    q, _ = small_ddq_model()
    path = ddq_edge.save_checkpoint(q, tmp_path / "m.pt")
    payload = read_checkpoint(path)
    edit(payload)
    torch.save(payload, path)
    return path


def test_missing_and_extra_keys_are_named(tmp_path):
    def edit(p):
        p["state_dict"].pop("classifier.1.weight")
        p["state_dict"]["surprise.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"missing keys \['classifier.1.weight'\].*unexpected keys \['surprise.weight'\]"):
        ddq_edge.load_checkpoint(_tamper(tmp_path, edit))


def test_wrong_shapes_are_named(tmp_path):
    def edit(p):
        p["state_dict"]["classifier.1.weight"] = torch.zeros(7, 3)
    with pytest.raises(CheckpointError, match=r"classifier.1.weight: checkpoint \(7, 3\) vs model"):
        ddq_edge.load_checkpoint(_tamper(tmp_path, edit))


def test_unknown_architecture(tmp_path):
    def edit(p):
        p["arch"] = {"name": "alexnet", "kwargs": {}}
    with pytest.raises(CheckpointError, match="field 'arch'.*unknown architecture 'alexnet'"):
        ddq_edge.load_checkpoint(_tamper(tmp_path, edit))


def test_budget_below_min_bits_in_checkpoint(tmp_path):
    def edit(p):
        p["ddq_config"]["target_bits"] = 1.0
    with pytest.raises(CheckpointError, match="ddq_config.*below min_bits"):
        ddq_edge.load_checkpoint(_tamper(tmp_path, edit))


def test_newer_version_and_foreign_files(tmp_path):
    def edit(p):
        p["version"] = 99
    with pytest.raises(CheckpointError, match="version 99 is newer"):
        ddq_edge.load_checkpoint(_tamper(tmp_path, edit))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt: not a readable checkpoint"):
        ddq_edge.load_checkpoint(junk)
    torch.save({"hello": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a ddq-edge checkpoint"):
        ddq_edge.load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        ddq_edge.load_checkpoint(tmp_path / "missing.pt")
