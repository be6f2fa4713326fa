"""Checkpoints: architecture spec + DDQ config + weights and quantizer state, in one file."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .files import atomic_write_bytes
from .quant import DDQConfig, quantize
from .quant.budget import bit_report, unwrap

FORMAT = "ddq-edge/checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message names the file and the problem."""


def save_checkpoint(model: nn.Module, path: str | Path, *, task: dict[str, Any] | None = None,
                    extra: dict[str, Any] | None = None) -> Path:
    """Write ``model`` (float or DDQ) with what is needed to rebuild it.

    ``task`` is metadata a deployment needs (input shape, mean/std, labels); ``extra`` is
    any JSON-like data to keep beside it (e.g. a training report).
    """
    model = unwrap(model)
    config = getattr(model, "ddq_config", None)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "arch": getattr(model, "ddq_arch", None),
        "ddq_config": config.to_dict() if config is not None else None,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "task": task,
        "bits": bit_report(model) if config is not None else None,
        "extra": extra,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw checkpoint dictionary, validated for format and version."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(error).__name__}: {error})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a ddq-edge checkpoint (field 'format' should be {FORMAT!r})")
    if int(payload.get("version", 0)) > VERSION:
        raise CheckpointError(f"{path}: checkpoint version {payload['version']} is newer than this "
                              f"ddq-edge reads ({VERSION}); upgrade ddq-edge")
    return payload


def _check_state(path: Path, model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
              for k in sorted(set(expected) & set(state)) if state[k].shape != expected[k].shape]
    problems = []
    if missing:
        problems.append(f"missing keys {missing[:8]}{' ...' if len(missing) > 8 else ''}")
    if extra:
        problems.append(f"unexpected keys {extra[:8]}{' ...' if len(extra) > 8 else ''}")
    if shapes:
        problems.append("shape mismatch " + "; ".join(shapes[:8]))
    if problems:
        raise CheckpointError(f"{path}: does not fit the {type(model).__name__} it describes: "
                              + "; ".join(problems))


def load_checkpoint(path: str | Path, model: nn.Module | None = None) -> nn.Module:
    """Rebuild the model saved at ``path``, in eval mode.

    Models from the built-in zoo rebuild themselves from the stored architecture spec;
    for your own architecture pass a freshly built float ``model`` and it is quantized
    the same way and loaded. Missing or extra keys and shape mismatches are errors.
    """
    from .models import build_model

    path = Path(path)
    payload = read_checkpoint(path)
    arch = payload.get("arch")
    if model is None:
        if not arch:
            raise CheckpointError(f"{path}: holds no architecture spec (not a zoo model); "
                                  "pass model=<your float model> to load_checkpoint")
        try:
            model = build_model(arch["name"], **arch.get("kwargs", {}))
        except (ValueError, TypeError) as error:
            raise CheckpointError(f"{path}: field 'arch': {error}") from None
    if payload.get("ddq_config") is not None:
        try:
            config = DDQConfig.from_dict(payload["ddq_config"])
        except (ValueError, TypeError) as error:
            raise CheckpointError(f"{path}: field 'ddq_config': {error}") from None
        model = quantize(model, config)
    _check_state(path, model, payload["state_dict"])
    model.load_state_dict(payload["state_dict"])
    model.ddq_task = payload.get("task")
    return model.eval()
