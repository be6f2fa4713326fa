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


@main.command()
@click.argument("bundle", metavar="MODEL", type=click.Path(exists=True, dir_okay=False))
@click.option("-i", "--input", "input_path", required=True, type=click.Path(exists=True),
              help="An image file (anything Pillow opens), a directory of images (each one a "
                   "sample, in name order) or a .npy float32 array, (C, H, W) or (N, C, H, W), "
                   "already preprocessed.")
@click.option("-k", "--top-k", type=click.IntRange(min=1), default=5, show_default=True,
              help="Classes to show per sample (at most the number of classes).")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True,
              help="Runtime worker threads.")
@click.option("--json", "as_json", is_flag=True, help="Print the predictions as a JSON list.")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Save the raw float32 outputs (N, ...) to this .npy file.")
def run(bundle, input_path, top_k, threads, as_json, output):
    """Run an edge bundle (.ddqb) with the C runtime and show the top-k classes.

    Images are preprocessed from the bundle's metadata alone, with the same code as training
    (resize to the model's H x W, grayscale or RGB, scale to input_range, normalise with
    mean/std). Scores are softmax probabilities of the model's output logits. The kernel
    set is the runtime's choice for this CPU (override with the DDQ_KERNELS environment
    variable).

    \b
    Examples:
      ddq-edge run model.ddqb --input digit.png
      ddq-edge run model.ddqb --input batch.npy --top-k 3 --json -o logits.npy
    """
    import numpy as np

    from .bundle import BundleError
    from .predict import InputError, MetadataError, class_labels, class_scores, load_inputs
    from .predict import top_k as predict_top_k
    from .runtime import Runtime, RuntimeLoadError

    def named(path, error) -> str:
        """``path: message``, the path said once (runtime and bundle errors already start with it)."""
        message = str(error)
        return message if message.startswith(str(path)) else f"{path}: {message}"

    try:
        runtime = Runtime(bundle, threads=threads)
    except (BundleError, OSError) as error:
        _fail(named(bundle, error))
    except RuntimeLoadError as error:
        message = str(error).removeprefix(f"{bundle}: ")
        _fail(f"{bundle}: the runtime cannot run this graph: {message}")
    metadata = runtime.metadata
    try:
        x, names = load_inputs(input_path, metadata, runtime.input_shape)
    except MetadataError as error:
        _fail(f"{bundle}: {error}")
    except InputError as error:
        _fail(named(input_path, error))
    try:
        start = time.perf_counter()
        y = runtime.run(x)
        seconds = time.perf_counter() - start
    except (ValueError, TypeError) as error:
        _fail(named(input_path, error))
    scores = class_scores(y)
    predictions = None
    if scores is not None:
        try:
            predictions = predict_top_k(scores, class_labels(metadata, scores.shape[1]), top_k)
        except MetadataError as error:
            _fail(f"{bundle}: {error}")
    elif not output:
        _fail(f"{bundle}: the output {tuple(y.shape)} is not (N, classes): no top-k; "
              "save it with --output")
    if output:
        import io

        from .files import atomic_write_bytes

        buffer = io.BytesIO()
        np.save(buffer, y)
        try:
            atomic_write_bytes(output, buffer.getvalue())
        except OSError as error:
            _fail(f"{output}: cannot write: {error.strerror or error}")
    if as_json:
        click.echo(json.dumps([
            {"input": name, "index": i,
             "top_k": None if predictions is None else
             [{"rank": p.rank, "index": p.index, "label": p.label, "score": p.score}
              for p in predictions[i]]}
            for i, name in enumerate(names)], indent=2))
        return
    if predictions is not None:
        shown = len(predictions[0])
        click.echo(f"top {shown} of {scores.shape[1]} classes; score = softmax probability "
                   "of the output logits")
        width = max(len("input"), *(len(n) for n in names))
        label_width = max(len("label"), *(len(p.label) for row in predictions for p in row))
        click.echo(f"{'input':<{width}}  {'rank':>4}  {'class':>5}  {'label':<{label_width}}  "
                   f"{'score':>8}")
        for name, row in zip(names, predictions):
            for p in row:
                click.echo(f"{name if p.rank == 1 else '':<{width}}  {p.rank:>4}  {p.index:>5}  "
                           f"{p.label:<{label_width}}  {p.score:>8.4f}")
    else:
        click.echo(f"output shape {tuple(y.shape)} is not (N, classes): no top-k")
    n = x.shape[0]
    click.echo(f"ran {n} sample{'s' if n != 1 else ''} in {seconds * 1e3:.3f} ms "
               f"({seconds * 1e3 / n:.3f} ms/sample) with kernels {runtime.kernels}, "
               f"{runtime.threads} thread{'s' if runtime.threads != 1 else ''}")
    if output:
        click.echo(f"wrote {output} (float32 {tuple(y.shape)})")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the profiles as JSON.")
def devices(as_json):
    """List the device profiles (Raspberry Pi boards and Cortex cores) for `profile --device`."""
    from .devices import main_devices

    sys.exit(main_devices(as_json))


@main.group()
def emulator():
    """The emulated aarch64 lab (QEMU) that `profile --emulate` runs on."""


@emulator.command("setup")
@click.option("--force", is_flag=True, help="Rebuild everything, not only what is missing or stale.")
@click.option("--with-tflite-runtime", is_flag=True,
              help="Also an aarch64 site with tflite-runtime 2.14 (it needs numpy < 2).")
def emulator_setup(force, with_tflite_runtime):
    """Build and cache the lab: an aarch64 Python with onnxruntime and LiteRT, per-core roots,
    the instruction-count plugin and the aarch64 ddq-edge runtime."""
    from .emulation import cli_setup

    sys.exit(cli_setup(force, tflite=with_tflite_runtime))


@emulator.command("status")
def emulator_status():
    """What the lab holds and whether the host has the tools it needs."""
    from .emulation import cli_status

    sys.exit(cli_status())


@main.command()
@click.argument("bundle", metavar="MODEL", type=click.Path(exists=True, dir_okay=False))
@click.option("--device", help="Device profile id (see `ddq-edge devices`), e.g. rpi4.")
@click.option("--emulate", is_flag=True,
              help="Also count retired instructions on the device's core under qemu-aarch64 and "
                   "estimate its latency with the profile's cost model.")
@click.option("--baselines", default="float,int8", show_default=True,
              help="Baseline groups built from the same model: float (LiteRT, ONNX Runtime), "
                   "int8 (LiteRT QS8, ONNX Runtime QDQ); '' for none.")
@click.option("--baselines-dir", type=click.Path(file_okay=False),
              help="Where the baseline models are kept (default: a cache folder per bundle).")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--rounds", type=click.IntRange(min=3), default=50, show_default=True,
              help="Interleaved native rounds (one inference per engine each).")
@click.option("--emulated-runs", type=click.IntRange(min=1), default=3, show_default=True,
              help="Inferences counted per engine under QEMU.")
@click.option("--no-native", is_flag=True, help="Skip the native wall-clock measurement.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False),
              help="Write JSON, the table and PNG plots into this folder.")
def profile(bundle, device, emulate, baselines, baselines_dir, threads, rounds, emulated_runs,
            no_native, as_json, report_dir):
    """How fast is MODEL against float and int8 baselines of the same model?

    Natively: interleaved wall-clock medians and p90 of every engine, peak memory, model
    sizes. With --emulate on a --device: retired guest instructions per inference under
    qemu-aarch64 (deterministic), per-op instructions of the ddq-edge runtime, a latency
    estimate from the device's cost model, and QEMU's own wall time (not the device's).

    \b
    Examples:
      ddq-edge profile model.ddqb
      ddq-edge profile model.ddqb --device rpi4 --emulate --report profile-rpi4
    """
    from .devices import DeviceProfileError
    from .emulation import EmulatorUnavailable
    from .profiling.profile import ProfileError, ProfileRequest, format_table
    from .profiling.profile import profile as run_profile

    request = ProfileRequest(Path(bundle), device=device, emulate=emulate, baselines=baselines,
                             threads=threads, rounds=rounds, emulated_runs=emulated_runs,
                             baselines_dir=Path(baselines_dir) if baselines_dir else None,
                             native=not no_native)
    progress = (lambda m: click.echo(m, err=True)) if as_json else (lambda m: click.echo(f"... {m}"))
    try:
        result = run_profile(request, progress)
    except (ProfileError, DeviceProfileError, EmulatorUnavailable) as error:
        _fail(str(error))
    if report_dir:
        from .profiling.report import write_report

        files = write_report(result, Path(report_dir))
        progress(f"wrote {', '.join(str(f) for f in files.values())}")
    click.echo(json.dumps(result, indent=1) if as_json else format_table(result))


@main.command()
@click.option("-o", "--output", "folder", type=click.Path(file_okay=False), default="runs/demo",
              show_default=True, help="The report folder.")
@click.option("--emulate/--no-emulate", default=None,
              help="Profile on emulated Pi 4 and Pi 5 cores (default: when QEMU and the aarch64 "
                   "cross compiler are installed).")
@click.option("--devices", default="rpi4,rpi5", show_default=True, help="Devices to emulate.")
@click.option("--quick", is_flag=True, help="One epoch per training phase (a smoke test, not the result).")
@click.pass_context
def demo(ctx, folder, emulate, devices, quick):
    """The whole product on the built-in task, written up in one folder.

    Trains MobileNetV2 x0.5 on the harder digits task with DDQ under a 4-bit budget, converts
    it to an edge bundle, checks the C runtime against the numpy reference bit for bit,
    profiles it natively against LiteRT and ONNX Runtime (float and int8) and, where QEMU is
    available, on emulated Raspberry Pi 4 and 5 cores. Writes summary.md, demo.json and PNGs.
    """
    from .demo import run_demo
    from .emulation import EmulatorUnavailable

    def train_step(checkpoint: Path) -> dict:
        epochs = {"float_epochs": 1, "search_epochs": 1, "finetune_epochs": 1} if quick else {}
        ctx.invoke(train, output=str(checkpoint), **epochs)
        return json.loads(checkpoint.with_suffix(".json").read_text())

    mode = "auto" if emulate is None else ("always" if emulate else "never")
    device_ids = tuple(d.strip() for d in devices.split(",") if d.strip())
    try:
        result = run_demo(Path(folder), train_step, emulate=mode, devices=device_ids,
                          progress=lambda m: click.echo(m))
    except EmulatorUnavailable as error:
        _fail(str(error))
    total = sum(result.steps.values())
    click.echo(f"demo done in {total / 60:.1f} min: {result.folder / 'summary.md'}")


if __name__ == "__main__":
    main()
