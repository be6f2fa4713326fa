"""The ``ddq-edge`` command line."""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import click

from . import __version__

EXIT_BAD_INPUT = 2


def _fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_BAD_INPUT)


def _bits_table(report: dict) -> str:
    lines = [f"{'layer':<28} {'type':<7} {'w bits':>6} {'a bits':>6} {'weights':>9} {'MACs':>11}"]
    for row in report["layers"]:
        kind = "dw" if row["depthwise"] else row["type"].lower()
        lines.append(f"{row['layer']:<28} {kind:<7} {row['weight_bits']:>6} {row['act_bits']:>6} "
                     f"{row['weight_elements']:>9,} {row['macs']:>11,}")
    lines.append(f"average: weights {report['average_weight_bits']:.2f} bits, activations "
                 f"{report['average_act_bits']:.2f} bits (targets {report['target_bits']:g} / "
                 f"{report['target_act_bits']:g}; met: {report['budget_met']})")
    return "\n".join(lines)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ddq-edge")
def main() -> None:
    """Differentiable Dynamic Quantization and low-bit deployment to ARM edge devices.

    Learn per-layer bitwidths with DDQ (train), then deploy the result.
    """


@main.command()
@click.option("--task", default="digits-hard", show_default=True,
              help="Built-in task: digits (clean, 16x16), digits-hard (16x16: affine, noise, "
                   "clutter) or digits-hard-32 (the same at 32x32).")
@click.option("--arch", default="mobilenet_v2", show_default=True,
              type=click.Choice(["mobilenet_v2", "mobilenet_v1", "resnet"]))
@click.option("--width", type=float, default=0.5, show_default=True,
              help="Width multiplier (MobileNets) or base width (resnet, integer).")
@click.option("--target-bits", type=float, default=4.0, show_default=True,
              help="Budget: average weight bits and average activation bits.")
@click.option("--float-epochs", type=int, default=None, help="Float pre-training epochs.")
@click.option("--search-epochs", type=int, default=None, help="DDQ epochs learning bits under the budget.")
@click.option("--finetune-epochs", type=int, default=None, help="Epochs after the bits are frozen.")
@click.option("--batch-size", type=int, default=128, show_default=True)
@click.option("--penalty-weight", type=float, default=None, help="Scale of the budget penalty.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--float-checkpoint", type=click.Path(exists=True, dir_okay=False),
              help="Start from this float checkpoint instead of pre-training.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default="ddq-model.pt",
              show_default=True, help="Where to write the DDQ checkpoint.")
@click.option("--report", type=click.Path(dir_okay=False),
              help="JSON report path (default: OUTPUT with .json).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
def train(task, arch, width, target_bits, float_epochs, search_epochs, finetune_epochs,
          batch_size, penalty_weight, seed, float_checkpoint, output, report, as_json):
    """Pre-train a float model, learn its bits with DDQ under a budget, write a checkpoint.

    \b
    Runs under torchrun for data-parallel training on several processes or GPUs:
      torchrun --nproc_per_node 2 -m ddq_edge.cli train
    Example, a 3-bit budget on the default task:
      ddq-edge train --target-bits 3 -o ddq3.pt
    """
    import torch

    from .checkpoint import load_checkpoint, save_checkpoint
    from .data import get_task
    from .training import (TrainPlan, build_for_task, evaluate, init_distributed_from_env,
                           train_ddq, train_float)
    from .training.loop import is_main_process

    plan = TrainPlan(task=task, arch=arch, target_bits=target_bits, batch_size=batch_size, seed=seed,
                     arch_kwargs={"width": int(width) if arch == "resnet" else width})
    for name, value in (("float_epochs", float_epochs), ("search_epochs", search_epochs),
                        ("finetune_epochs", finetune_epochs), ("penalty_weight", penalty_weight)):
        if value is not None:
            setattr(plan, name, value)
    try:
        config = plan.ddq_config()
        data = get_task(plan.task, seed=plan.seed)
    except ValueError as error:
        _fail(str(error))
    init_distributed_from_env()
    torch.manual_seed(plan.seed)
    start = time.perf_counter()
    if float_checkpoint:
        model = load_checkpoint(float_checkpoint)
        float_result = {"top1": evaluate(model, data.test), "from": str(float_checkpoint)}
    else:
        model = build_for_task(plan.arch, data, **plan.arch_kwargs)
        float_result = train_float(model, data, plan.float_phase(), seed=plan.seed)
    model.eval()
    qmodel, ddq_result = train_ddq(model, data, config, plan.search_phase(), plan.finetune_phase(),
                                   seed=plan.seed)
    if not is_main_process():
        return
    task_meta = {"name": data.name, "input_shape": list(data.input_shape), "mean": list(data.mean),
                 "std": list(data.std), "labels": list(data.labels), "layout": "NCHW"}
    summary = {"plan": asdict(plan), "float": float_result, "ddq": ddq_result,
               "seconds": time.perf_counter() - start, "checkpoint": str(output)}
    save_checkpoint(qmodel, output, task=task_meta, extra={"float_top1": float_result["top1"],
                                                           "ddq_top1": ddq_result["top1"]})
    report_path = Path(report) if report else Path(output).with_suffix(".json")
    report_path.write_text(json.dumps(summary, indent=2))
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(_bits_table(ddq_result["bits"]))
    click.echo(f"float top-1 {float_result['top1']:.2f}%  DDQ top-1 {ddq_result['top1']:.2f}%  "
               f"({summary['seconds']:.0f} s)")
    click.echo(f"wrote {output} and {report_path}")


@main.command()
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Bundle path (default: CHECKPOINT with .ddqb).")
def convert(checkpoint, output):
    """Lower a DDQ checkpoint to an edge bundle (.ddqb): integer graph, bit-packed weights.

    \b
    Example:
      ddq-edge convert ddq-model.pt -o model.ddqb && ddq-edge inspect model.ddqb
    """
    from .checkpoint import CheckpointError
    from .conversion import convert as convert_model
    from ddq_edge.converters.torch_ddq import ConversionError

    out = Path(output) if output else Path(checkpoint).with_suffix(".ddqb")
    try:
        path = convert_model(checkpoint, out)
    except (CheckpointError, ConversionError, ValueError) as error:
        _fail(f"{checkpoint}: {error}")
    click.echo(f"wrote {path} ({path.stat().st_size:,} bytes)")


@main.command()
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def inspect(bundle, as_json):
    """Per-layer op, shapes, weight/activation bits, parameters, packed bytes and MACs."""
    from .bundle import BundleError
    from .inspect import summarize

    try:
        summary = summarize(bundle)
    except BundleError as error:
        _fail(str(error))
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(f"{'op':<30} {'kind':<16} {'input':<16} {'output':<16} {'w':>2} {'a':>2} "
               f"{'params':>9} {'packed B':>9} {'MACs':>11}")
    for row in summary["ops"]:
        click.echo(f"{row['name'][:30]:<30} {row['kind']:<16} {'x'.join(map(str, row['input_shape'])):<16} "
                   f"{'x'.join(map(str, row['output_shape'])):<16} {row['weight_bits'] or '':>2} "
                   f"{row['act_bits'] or '':>2} {row['params']:>9,} {row['packed_bytes']:>9,} "
                   f"{row['macs']:>11,}")
    t = summary["totals"]
    click.echo(f"total: {t['params']:,} parameters, {t['macs']:,} MACs, weights "
               f"{t['packed_bytes']:,} B packed; file {t['file_bytes']:,} B = "
               f"{t['file_bytes'] / t['ideal_bytes']:.3f} x the packed ideal "
               f"({t['ideal_bytes']:,} B); average bits w {t['average_weight_bits']:.2f} "
               f"/ a {t['average_act_bits']:.2f}")


if __name__ == "__main__":
    main()
