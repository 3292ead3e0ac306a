"""Inference backends behind one interface; each is imported lazily by name so a deployment without torch (or
without TensorRT) still runs the others."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from .base import Backend, BackendUnavailableError

BACKENDS = {
    "torch": "spanvla_ros.runtime.backends.torch_backend:TorchBackend",
    "onnxruntime": "spanvla_ros.runtime.backends.onnxruntime_backend:OnnxRuntimeBackend",
    "tensorrt": "spanvla_ros.runtime.backends.tensorrt_backend:TensorRTBackend",
}


def available_backends() -> dict[str, str]:
    """Each backend name → "available" or the reason it is not (checked without loading any model)."""
    status = {}
    for name, target in BACKENDS.items():
        module_name, class_name = target.split(":")
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
            reason = cls.unavailable_reason()
        except ImportError as exc:
            reason = f"cannot import: {exc}"
        status[name] = "available" if reason is None else reason
    return status


def load_backend(name: str, artifact: str | Path, **options: Any) -> Backend:
    """Create backend ``name`` over ``artifact`` (a checkpoint directory for torch, an export directory otherwise)."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend '{name}': choose one of {', '.join(BACKENDS)}")
    module_name, class_name = BACKENDS[name].split(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except ImportError as exc:
        raise BackendUnavailableError(f"backend '{name}' cannot be imported here: {exc}") from exc
    reason = cls.unavailable_reason()
    if reason is not None:
        others = {k: v for k, v in available_backends().items() if v == "available"}
        raise BackendUnavailableError(f"backend '{name}' is unavailable: {reason}. Available: {sorted(others)}")
    return cls.from_artifact(Path(artifact), **options)


__all__ = ["BACKENDS", "Backend", "BackendUnavailableError", "available_backends", "load_backend"]
