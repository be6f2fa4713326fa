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


# --- ddq-edge run ----------------------------------------------------------------------------
# Bundles from ddq_edge.testing.random_graphs, no training: seed 30 is RGB (3, 5, 9) -> 8
# classes, seed 23 grayscale (1, 10, 5) -> 5 classes; both end in fully_connected + dequantize.
RUN_LABELS = ["cat", "dog", "bird", "fish", "frog", "horse", "ship", "truck"]


def _run_bundle(directory, seed, metadata):
    from ddq_edge.bundle import write_bundle
    from ddq_edge.testing.random_graphs import random_graph

    graph, _ = random_graph(seed)
    graph.metadata = metadata
    return graph, write_bundle(graph, directory / f"seed{seed}.ddqb")


@pytest.fixture(scope="module")
def rgb_bundle(tmp_path_factory):
    meta = {"input_shape": [3, 5, 9], "layout": "NCHW", "labels": RUN_LABELS,
            "preprocessing": {"mean": [0.5, 0.4, 0.3], "std": [0.2, 0.25, 0.3],
                              "input_range": [0.0, 1.0]}}
    return _run_bundle(tmp_path_factory.mktemp("run"), 30, meta)


def _png(path, size, mode="RGB", seed=0):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path)
    return path


def _softmax(y):
    import numpy as np

    z = y.astype(np.float64) - y.max(axis=1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)


def _check_top_k(entries, y, labels, k):
    """JSON entries hold, per sample, the k most probable classes of y in order (ties: lower index)."""
    import numpy as np

    probs = _softmax(y)
    assert len(entries) == len(y)
    for i, (entry, row) in enumerate(zip(entries, probs)):
        assert entry["index"] == i
        order = np.argsort(-row, kind="stable")[:k]
        assert [p["index"] for p in entry["top_k"]] == order.tolist()
        assert [p["rank"] for p in entry["top_k"]] == list(range(1, k + 1))
        assert [p["label"] for p in entry["top_k"]] == [labels[j] for j in order]
        scores = [p["score"] for p in entry["top_k"]]
        assert scores == sorted(scores, reverse=True)
        assert np.allclose(scores, row[order], rtol=0, atol=1e-12)


def test_run_image_uses_training_preprocessing_and_matches_the_reference(rgb_bundle, tmp_path):
    import numpy as np

    from ddq_edge import reference
    from ddq_edge.data import preprocess_image

    graph, bundle = rgb_bundle
    image = _png(tmp_path / "photo.png", (23, 17))  # resized to 9 x 5 by the preprocessing
    out = tmp_path / "y.npy"
    result = CliRunner().invoke(main, ["run", str(bundle), "--input", str(image), "--json",
                                       "--output", str(out)])
    assert result.exit_code == 0, result.output
    pre = graph.metadata["preprocessing"]
    x = preprocess_image(image, (3, 5, 9), pre["mean"], pre["std"]).numpy()
    y = np.load(out)
    assert y.dtype == np.float32 and y.shape == (1, 8)
    assert np.array_equal(y, reference.run(graph, x))
    entries = json.loads(result.stdout)
    assert entries[0]["input"] == str(image)
    _check_top_k(entries, y, RUN_LABELS, 5)  # default top-k

    table = CliRunner().invoke(main, ["run", str(bundle), "--input", str(image)])
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0] == "top 5 of 8 classes; score = softmax probability of the output logits"
    best = entries[0]["top_k"][0]
    assert lines[2].split() == [str(image), "1", str(best["index"]), best["label"],
                                f"{best['score']:.4f}"]
    assert len(lines) == 2 + 5 + 1
    kernels = ddq_edge.Runtime(bundle).kernels
    assert lines[-1].startswith("ran 1 sample in ") and lines[-1].endswith(
        f"with kernels {kernels}, 1 thread")


def test_run_npy_batch_top_k_json_and_output(rgb_bundle, tmp_path):
    import numpy as np

    from ddq_edge import reference

    graph, bundle = rgb_bundle
    x = np.random.default_rng(1).normal(0, 1.5, (3, 3, 5, 9)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "y.npy"
    args = ["run", str(bundle), "--input", str(tmp_path / "x.npy"), "-o", str(out)]
    result = CliRunner().invoke(main, [*args, "--top-k", "3", "--threads", "2"])
    assert result.exit_code == 0, result.output
    y = np.load(out)
    assert np.array_equal(y, reference.run(graph, x))
    lines = result.output.splitlines()
    assert "softmax" in lines[0] and lines[0].startswith("top 3 of 8 classes")
    assert [line.split()[0] for line in lines[2:11:3]] == [f"{tmp_path / 'x.npy'}[{i}]" for i in range(3)]
    assert "3 samples" in lines[-2] and lines[-2].endswith("2 threads")
    assert lines[-1] == f"wrote {out} (float32 (3, 8))"

    # --json; --top-k above the number of classes gives all of them; one sample without batch dim
    for k, data, expected in ((100, x, 8), (2, x, 2), (1, x[1], 1)):
        np.save(tmp_path / "x.npy", data)
        result = CliRunner().invoke(main, [*args, "--top-k", str(k), "--json"])
        assert result.exit_code == 0, result.output
        entries = json.loads(result.stdout)
        assert all(set(e) == {"input", "index", "top_k"} for e in entries)
        assert all(set(p) == {"rank", "index", "label", "score"} for e in entries for p in e["top_k"])
        _check_top_k(entries, reference.run(graph, data), RUN_LABELS, expected)
    assert entries[0]["input"] == str(tmp_path / "x.npy")


def test_run_directory_of_grayscale_images_with_input_range(tmp_path):
    import numpy as np

    from ddq_edge import reference
    from ddq_edge.data import preprocess_image

    meta = {"input_shape": [1, 10, 5], "layout": "NCHW", "labels": list("abcde"),
            "preprocessing": {"mean": [0.1], "std": [0.6], "input_range": [-1.0, 1.0]}}
    graph, bundle = _run_bundle(tmp_path, 23, meta)
    images = tmp_path / "images"
    images.mkdir()
    files = [_png(images / "b.png", (7, 12), "L", 1), _png(images / "a.bmp", (5, 10), "RGB", 2)]
    (images / "notes.txt").write_text("not an image")
    out = tmp_path / "y.npy"
    result = CliRunner().invoke(main, ["run", str(bundle), "--input", str(images), "--json",
                                       "-o", str(out)])
    assert result.exit_code == 0, result.output
    raw = np.concatenate([preprocess_image(f, (1, 10, 5), [0.0], [1.0]).numpy() for f in files[::-1]])
    x = ((raw * 2.0 - 1.0) - np.float32(0.1)) / np.float32(0.6)
    y = np.load(out)
    assert np.array_equal(y, reference.run(graph, x))
    entries = json.loads(result.stdout)
    assert [e["input"] for e in entries] == [str(f) for f in files[::-1]]  # sorted by name
    _check_top_k(entries, y, list("abcde"), 5)


@pytest.mark.parametrize("case,message", [
    ("missing model", "File '{dir}/nope.ddqb' does not exist"),
    ("missing input", "Path '{dir}/nope.png' does not exist"),
    ("junk bundle", "error: {dir}/junk.ddqb: bad magic: not a .ddqb edge bundle"),
    ("junk image", "error: {dir}/junk.png: cannot read as an image: cannot identify image file"),
    ("wrong shape", "error: {dir}/x.npy: expected shape (3, 5, 9) or (N, 3, 5, 9), got (2, 3, 9, 5)"),
    ("float64", "error: {dir}/x.npy: expected a float32 array, got float64"),
    ("unsupported graph", "error: {dir}/two.ddqb: the runtime cannot run this graph: the graph has "
                          "1 inputs and 2 outputs"),
    ("no preprocessing", "error: {dir}/bare.ddqb: bundle metadata: no preprocessing"),
])
def test_run_rejects_bad_input(rgb_bundle, tmp_path, case, message):
    import numpy as np

    from ddq_edge.bundle import write_bundle
    from ddq_edge.testing.random_graphs import random_graph

    _, bundle = rgb_bundle
    image = _png(tmp_path / "ok.png", (9, 5))
    model, data = str(bundle), str(image)
    if case == "missing model":
        model = str(tmp_path / "nope.ddqb")
    elif case == "missing input":
        data = str(tmp_path / "nope.png")
    elif case == "junk bundle":
        model = str(tmp_path / "junk.ddqb")
        (tmp_path / "junk.ddqb").write_bytes(b"this is not a bundle at all, just some bytes")
    elif case == "junk image":
        data = str(tmp_path / "junk.png")
        (tmp_path / "junk.png").write_bytes(b"\x89PNG but not really")
    elif case in ("wrong shape", "float64"):
        data = str(tmp_path / "x.npy")
        np.save(data, np.zeros((2, 3, 9, 5), np.float32) if case == "wrong shape"
                else np.zeros((3, 5, 9)))
    elif case == "unsupported graph":
        graph, _ = random_graph(30)
        graph.outputs = ["output", graph.ops[1].outputs[0]]
        model = str(write_bundle(graph, tmp_path / "two.ddqb"))
    elif case == "no preprocessing":
        graph, _ = random_graph(30)
        model = str(write_bundle(graph, tmp_path / "bare.ddqb"))
    out = tmp_path / "y.npy"
    result = CliRunner().invoke(main, ["run", model, "--input", data, "-o", str(out)])
    assert result.exit_code == 2
    assert message.format(dir=tmp_path) in result.output
    if message.startswith("error:"):
        assert result.output.count("\n") == 1  # one line
    assert not out.exists()
