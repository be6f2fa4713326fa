"""The ddq-edge CLI: train end to end on a small setting, and clear errors on bad input."""
import json

import pytest
from click.testing import CliRunner

import ddq_edge
from ddq_edge.cli import main
from ddq_edge.data import get_task
from ddq_edge.training import evaluate


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "model.pt"
    args = ["train", "--task", "digits", "--width", "0.25", "--float-epochs", "2",
            "--search-epochs", "1", "--finetune-epochs", "1", "--batch-size", "64", "-o", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return out, result.output


def test_train_writes_a_checkpoint_that_restores_the_trained_model(trained):
    out, output = trained
    report = json.loads(out.with_suffix(".json").read_text())
    assert "DDQ top-1" in output and "average: weights" in output
    model = ddq_edge.load_checkpoint(out)
    # The restored model scores exactly what the trained one scored at the end of training.
    assert evaluate(model, get_task("digits").test) == report["ddq"]["top1"]
    assert ddq_edge.bit_report(model)["layers"] == report["ddq"]["bits"]["layers"]
    assert report["ddq"]["bits"]["budget_met"]
    assert model.ddq_task["labels"] == [str(i) for i in range(10)]


@pytest.mark.parametrize("args,message", [
    (["--task", "mnist"], "unknown task 'mnist'"),
    (["--target-bits", "1"], "below min_bits=2"),
])
def test_train_rejects_bad_input(args, message, tmp_path):
    result = CliRunner().invoke(main, ["train", *args, "-o", str(tmp_path / "m.pt")])
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "m.pt").exists()
