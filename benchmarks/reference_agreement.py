"""The numpy reference against the PyTorch DDQ model on a whole test split, and bundle size.

    ddq-edge train -o runs/ddq-model.pt
    python benchmarks/reference_agreement.py runs/ddq-model.pt --out benchmarks/results/reference_agreement.json

Converts the checkpoint to a bundle, runs the bundle with ``ddq_edge.reference`` on every test
image of the checkpoint's task and compares with the PyTorch model: top-1 agreement, top-1 of
each, exact agreement of output codes, the largest logit difference; then the bundle's size
against Σ bits × parameters / 8; then the bundle exported to ONNX (QDQ) and run in
onnxruntime against the reference.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

import ddq_edge
from ddq_edge.bundle import read_bundle
from ddq_edge.conversion import convert
from ddq_edge.converters.onnx_export import export_onnx
from ddq_edge.data import get_task
from ddq_edge.inspect import summarize
from ddq_edge.reference import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--bundle", type=Path, help="default: CHECKPOINT with .ddqb")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/reference_agreement.json"))
    args = parser.parse_args()

    model = ddq_edge.load_checkpoint(args.checkpoint)
    task = get_task(model.ddq_task["name"])
    bundle = convert(args.checkpoint, args.bundle or args.checkpoint.with_suffix(".ddqb"))
    x, y = task.test.tensors
    start = time.perf_counter()
    reference = run(bundle, x.numpy())
    seconds = time.perf_counter() - start
    with torch.no_grad():
        torch_logits = model(x).numpy()
    agree = reference.argmax(1) == torch_logits.argmax(1)
    summary = summarize(bundle)["totals"]
    graph = read_bundle(bundle)
    onnx_path = export_onnx(graph, bundle.with_suffix(".onnx"))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    onnx_logits = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    out_scale = float(graph.tensors[graph.ops[-1].inputs[0]].quant.scale[0])
    code_diff = np.abs(np.rint(onnx_logits / out_scale) - np.rint(reference / out_scale))
    result = {
        "checkpoint": str(args.checkpoint), "bundle": str(bundle), "test_images": len(y),
        "top1_agreement": float(agree.mean()),
        "top1_reference": float((reference.argmax(1) == y.numpy()).mean()),
        "top1_pytorch": float((torch_logits.argmax(1) == y.numpy()).mean()),
        "exact_logits": float(np.mean(reference == torch_logits)),
        "max_logit_difference": float(np.abs(reference - torch_logits).max()),
        "reference_seconds": seconds,
        "bundle_bytes": summary["file_bytes"], "ideal_bytes": summary["ideal_bytes"],
        "size_ratio": summary["file_bytes"] / summary["ideal_bytes"],
        "size_limit_bytes": int(1.05 * summary["ideal_bytes"] + 16 * 1024),
        "onnx_top1_agreement": float(np.mean(onnx_logits.argmax(1) == reference.argmax(1))),
        "onnx_exact_codes": float(np.mean(code_diff == 0)),
        "onnx_max_code_difference": int(code_diff.max()),
    }
    for key, value in result.items():
        print(f"{key:22} {value}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
