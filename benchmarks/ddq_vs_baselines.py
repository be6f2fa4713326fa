"""Accuracy of DDQ against float, min-max PTQ and LSQ at equal budgets, from one float model.

    python benchmarks/ddq_vs_baselines.py --out benchmarks/results/ddq_vs_baselines.json

Every quantized method starts from the same pre-trained float model and the quantization-
aware ones get the same number of epochs (DDQ: search + fine-tune; LSQ: the same total).
Prints a markdown table and writes JSON with per-layer bits and training histories.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from ddq_edge import DDQConfig
from ddq_edge.checkpoint import load_checkpoint, save_checkpoint
from ddq_edge.data import get_task
from ddq_edge.training import PhaseSettings, TrainPlan, build_for_task, evaluate
from ddq_edge.training.recipes import ptq_minmax, train_ddq, train_float, train_lsq

# ddqN: DDQ at an N-bit budget; -ste: without the noise-loss term; -bops: budget on BOPs.
METHODS = ("ptq8", "ptq4", "lsq4", "lsq3", "ddq4", "ddq3", "ddq4-ste", "ddq4-bops")


def run_method(method: str, float_model, task, plan: TrainPlan) -> dict:
    if method.startswith("ptq"):
        return ptq_minmax(float_model, task, int(method[3:]))[1]
    if method.startswith("lsq"):
        settings = PhaseSettings(epochs=plan.search_epochs + plan.finetune_epochs, lr=plan.ddq_lr,
                                 batch_size=plan.batch_size)
        return train_lsq(float_model, task, int(method[3:]), settings, seed=plan.seed)[1]
    target = float(method[3])
    config = DDQConfig(target_bits=target, penalty_weight=plan.penalty_weight,
                       sensitivity=not method.endswith("-ste"),
                       budget="bops" if method.endswith("-bops") else "bits")
    return train_ddq(float_model, task, config, plan.search_phase(), plan.finetune_phase(),
                     seed=plan.seed)[1]


def table(float_top1: float, results: dict) -> str:
    lines = ["| method | top-1 % | vs float | avg weight bits | avg act bits | BOPs bits |",
             "|---|---|---|---|---|---|",
             f"| float | {float_top1:.2f} | — | 32 | 32 | 32 |"]
    for method, r in results.items():
        b = r["bits"]
        lines.append(f"| {method} | {r['top1']:.2f} | {r['top1'] - float_top1:+.2f} | "
                     f"{b['average_weight_bits']:.2f} | {b['average_act_bits']:.2f} | "
                     f"{b['effective_bops_bits']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="digits-hard")
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--methods", default=",".join(METHODS))
    defaults = TrainPlan()
    parser.add_argument("--float-epochs", type=int, default=defaults.float_epochs)
    parser.add_argument("--search-epochs", type=int, default=defaults.search_epochs)
    parser.add_argument("--finetune-epochs", type=int, default=defaults.finetune_epochs)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--float-checkpoint", type=Path, help="reuse (or write) the float model here")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/ddq_vs_baselines.json"))
    args = parser.parse_args()

    plan = TrainPlan(task=args.task, arch_kwargs={"width": args.width}, seed=args.seed,
                     float_epochs=args.float_epochs, search_epochs=args.search_epochs,
                     finetune_epochs=args.finetune_epochs)
    task = get_task(plan.task, seed=plan.seed)
    torch.manual_seed(plan.seed)
    start = time.perf_counter()
    if args.float_checkpoint and args.float_checkpoint.exists():
        float_model = load_checkpoint(args.float_checkpoint)
        float_top1 = evaluate(float_model, task.test)
    else:
        float_model = build_for_task(plan.arch, task, **plan.arch_kwargs)
        float_top1 = train_float(float_model, task, plan.float_phase(), seed=plan.seed)["top1"]
        if args.float_checkpoint:
            save_checkpoint(float_model, args.float_checkpoint)
    float_model.eval()
    results = {}
    for method in args.methods.split(","):
        results[method] = run_method(method, float_model, task, plan)
        print(table(float_top1, results), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"plan": plan.__dict__, "float_top1": float_top1,
                                    "results": results, "seconds": time.perf_counter() - start,
                                    "torch": torch.__version__}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
