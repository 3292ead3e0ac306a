"""torch eager vs ONNX Runtime (and TensorRT where it runs) on this machine, measured side by side in one run:
``plan`` (the whole flow on a fixed cache) and ``reason`` (prefill + 16 greedy tokens)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..runtime.backends import available_backends
from ..runtime.pipeline import SpanVLARuntime
from .common import machine_info, median_seconds


def run(
    repeats: int = 20,
    backends: tuple[str, ...] = ("torch", "onnxruntime"),
    export_dir: str | None = None,
    checkpoint: str | None = None,
) -> dict[str, Any]:
    import torch

    from ..model.spanvla import SpanVLA
    from ..runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
    from ..runtime.backends.torch_backend import TorchBackend
    from ..runtime.export import export_onnx
    from .model import tiny_model

    model = SpanVLA.load(checkpoint) if checkpoint else tiny_model()
    workdir = Path(export_dir) if export_dir else Path(tempfile.mkdtemp(prefix="spanvla_export_"))
    if not (workdir / "export.json").is_file():
        export_onnx(model, workdir, num_images=2)
    runtimes: dict[str, SpanVLARuntime] = {
        "torch": SpanVLARuntime(TorchBackend(model), workdir / "tokenizer.json"),
        "onnxruntime": SpanVLARuntime(OnnxRuntimeBackend(workdir), workdir / "tokenizer.json"),
    }
    if "tensorrt" in backends:
        from ..runtime.backends.tensorrt_backend import TensorRTBackend

        runtimes["tensorrt"] = SpanVLARuntime(
            TensorRTBackend(workdir, workdir / "engines", allow_build=True), workdir / "tokenizer.json"
        )
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (2, 112, 112, 3), dtype=np.uint8)
    history = np.array([[-15.0, 0.0, 0.0], [-10.0, 0.0, 0.0], [-5.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    result: dict[str, Any] = {
        "benchmark": "runtime",
        "created_unix": time.time(),
        "repeats": repeats,
        "torch_threads": torch.get_num_threads(),
        "available": available_backends(),
    }
    for name in backends:
        runtime = runtimes[name]
        reasoning = runtime.reason(images, "straight", 10.0, 0.0, history, max_new_tokens=16)
        prefix = {"torch": "torch", "onnxruntime": "ort", "tensorrt": "trt"}[name]
        result[f"{prefix}_plan_ms_median"] = 1e3 * median_seconds(
            lambda r=runtime, c=reasoning: r.plan(c, history), repeats=repeats
        )
        result[f"{prefix}_reason_ms_median"] = 1e3 * median_seconds(
            lambda r=runtime: r.reason(images, "straight", 10.0, 0.0, history, max_new_tokens=16),
            repeats=max(repeats // 4, 3),
        )
    result["torch_over_ort_plan_ratio"] = result["torch_plan_ms_median"] / result["ort_plan_ms_median"]
    result["torch_over_ort_reason_ratio"] = result["torch_reason_ms_median"] / result["ort_reason_ms_median"]
    result["machine"] = machine_info()
    return result
