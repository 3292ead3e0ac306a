"""TensorRT backend (TensorRT 10 named-tensor API): engines built from the ONNX export with optimisation profiles for
the dynamic axes, cached by :class:`~spanvla_ros.runtime.engine_cache.EngineCache`, run with ``set_input_shape``,
``set_tensor_address`` and ``execute_async_v3`` on torch CUDA buffers (no index bindings, no pycuda needed). Outputs
stay torch CUDA tensors and feed the next engine as they are: the K/V never leave the GPU, and only the argmax of the
logits crosses to the host.

The full TensorRT builder cannot be installed in this project's CI machines; this path is written to the TensorRT 10
Python API documentation, its cache and bookkeeping are unit-tested without TensorRT, and it runs where TensorRT and a
GPU exist (``spanvla export engines``, then ``--backend tensorrt``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from ...files import file_sha256
from ..artefact import read_export
from ..engine_cache import EngineCache, EngineCacheError, EngineKey
from .base import BackendUnavailableError, GraphBackend

log = logging.getLogger(__name__)
GRAPHS = ("vision", "prefill", "decode", "flow")
#: numpy dtype of each TensorRT DataType name (TensorRT reports ``DataType.FLOAT`` etc.).
TRT_TO_NUMPY = {
    "FLOAT": np.float32,
    "HALF": np.float16,
    "INT32": np.int32,
    "INT64": np.int64,
    "BOOL": np.bool_,
    "INT8": np.int8,
    "UINT8": np.uint8,
}


def profile_shapes(meta: dict[str, Any], max_batch: int = 4, max_sequence: int = 1024) -> dict[str, dict]:
    """Optimisation profiles (min, opt, max) per graph input for the dynamic axes of the export."""
    L, H, D = meta["num_layers"], meta["kv_heads"], meta["head_dim"]
    image_tokens = meta["num_images"] * meta["tokens_per_image"]
    opt_seq = image_tokens + 64
    patches = meta["num_images"] * (meta["image_size"] // meta["patch_size"]) ** 2
    channels = 3 * meta["temporal_patch_size"] * meta["patch_size"] ** 2
    history = meta["history_len"]

    def seq(b_min, b_opt, b_max, shape):  # shape(b, s)
        return (shape(b_min, 1), shape(b_opt, opt_seq), shape(b_max, max_sequence))

    return {
        "vision": {"pixel_values": ((patches, channels),) * 3},
        "prefill": {
            "input_ids": seq(1, 1, max_batch, lambda b, s: (b, s)),
            "image_embeds": (
                (1, meta["hidden_size"]),
                (image_tokens, meta["hidden_size"]),
                (image_tokens * max_batch, meta["hidden_size"]),
            ),
            "position_ids": seq(1, 1, max_batch, lambda b, s: (3, b, s)),
            "attention_mask": seq(1, 1, max_batch, lambda b, s: (b, s)),
        },
        "decode": {
            "input_ids": ((1, 1), (1, 1), (max_batch, 1)),
            "position_ids": ((3, 1, 1), (3, 1, 1), (3, max_batch, 1)),
            "attention_mask": seq(1, 1, max_batch, lambda b, s: (b, s + 1)),
            "past_keys": seq(1, 1, max_batch, lambda b, s: (L, b, H, s, D)),
            "past_values": seq(1, 1, max_batch, lambda b, s: (L, b, H, s, D)),
        },
        "flow": {
            "history": ((1, history, 3), (1, history, 3), (max_batch, history, 3)),
            "keys": seq(1, 1, max_batch, lambda b, s: (L, b, H, s, D)),
            "values": seq(1, 1, max_batch, lambda b, s: (L, b, H, s, D)),
            "kv_mask": seq(1, 1, max_batch, lambda b, s: (b, s)),
        },
    }


def gpu_identity() -> tuple[str, str]:
    import torch

    if not torch.cuda.is_available():
        raise BackendUnavailableError("no CUDA GPU visible to torch")
    major, minor = torch.cuda.get_device_capability()
    return torch.cuda.get_device_name(), f"{major}.{minor}"


def build_engines(
    export_dir: str | Path,
    engines_dir: str | Path,
    precision: str = "fp16",
    workspace_mb: int = 4096,
    rebuild: bool = False,
) -> dict[str, Path]:
    """Build (or reuse) one engine per graph; first builds take minutes, progress is logged per optimiser phase."""
    import tensorrt as trt

    export_dir = Path(export_dir)
    document = read_export(export_dir)
    cache = EngineCache(engines_dir)
    gpu, capability = gpu_identity()
    profiles = profile_shapes(document["meta"])
    built = {}
    for graph in GRAPHS:
        onnx_path = export_dir / f"{graph}.onnx"
        key = EngineKey(file_sha256(onnx_path), trt.__version__, gpu, capability, precision)
        if not rebuild:
            try:
                built[graph] = cache.lookup(graph, key)
                continue
            except EngineCacheError as reason:
                log.info("building the %s engine: %s", graph, reason)
        built[graph] = cache.store(graph, key, _build(trt, onnx_path, profiles[graph], precision, workspace_mb))
    return built


class _Progress:
    """TensorRT builder progress → log lines (IProgressMonitor is optional across TensorRT builds)."""

    def __init__(self, trt: Any, graph: str) -> None:
        base = getattr(trt, "IProgressMonitor", object)

        class Monitor(base):  # type: ignore[misc, valid-type]
            def __init__(self) -> None:
                if base is not object:
                    base.__init__(self)

            def phase_start(self, phase_name, parent_phase, num_steps):
                log.info(
                    "[%s] %s%s (%d steps)", graph, f"{parent_phase} / " if parent_phase else "", phase_name, num_steps
                )

            def step_complete(self, phase_name, step):
                return True

            def phase_finish(self, phase_name):
                log.info("[%s] %s done", graph, phase_name)

        self.monitor = Monitor() if base is not object else None


def _build(trt: Any, onnx_path: Path, shapes: dict[str, tuple], precision: str, workspace_mb: int) -> bytes:
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineCacheError(f"TensorRT cannot parse {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif precision == "bf16":
        config.set_flag(trt.BuilderFlag.BF16)
    progress = _Progress(trt, onnx_path.stem)
    if progress.monitor is not None:
        config.progress_monitor = progress.monitor
    profile = builder.create_optimization_profile()
    for name, (low, opt, high) in shapes.items():
        profile.set_shape(name, low, opt, high)
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineCacheError(f"TensorRT failed to build an engine for {onnx_path.name}")
    return bytes(serialized)


class TensorRTBackend(GraphBackend):
    name = "tensorrt"

    def __init__(self, export_dir: Path, engines_dir: Path, precision: str = "fp16", allow_build: bool = False):
        import tensorrt as trt
        import torch

        self.meta = read_export(export_dir)["meta"]
        self._torch = torch
        if allow_build:
            paths = build_engines(export_dir, engines_dir, precision)
        else:
            gpu, capability = gpu_identity()
            cache = EngineCache(engines_dir)
            paths = {
                g: cache.lookup(
                    g, EngineKey(file_sha256(export_dir / f"{g}.onnx"), trt.__version__, gpu, capability, precision)
                )
                for g in GRAPHS
            }
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engines, self.contexts = {}, {}
        for graph, path in paths.items():
            engine = runtime.deserialize_cuda_engine(path.read_bytes())
            if engine is None:
                raise EngineCacheError(f"{path}: TensorRT could not deserialize the engine")
            self.engines[graph] = engine
            self.contexts[graph] = engine.create_execution_context()
        self.stream = torch.cuda.Stream()

    @classmethod
    def unavailable_reason(cls) -> str | None:
        try:
            import tensorrt  # noqa: F401
        except ImportError:
            return (
                "TensorRT is not installed (its PyPI packages fetch from NVIDIA's index; install TensorRT 10 "
                "from NVIDIA on the target)"
            )
        try:
            import torch
        except ImportError:
            return "torch (CUDA build) is needed for device buffers"
        if not torch.cuda.is_available():
            return "no CUDA GPU is visible"
        return None

    @classmethod
    def from_artifact(cls, artifact: Path, **options: Any) -> TensorRTBackend:
        return cls(
            artifact,
            Path(options.get("engines_dir", artifact / "engines")),
            options.get("precision", "fp16"),
            options.get("allow_build", False),
        )

    def run_graph(self, graph: str, feeds: dict[str, Any]) -> list[Any]:
        """Named-tensor execution: set shapes and addresses by name, run on our stream; outputs stay on the GPU."""
        torch = self._torch
        engine, context = self.engines[graph], self.contexts[graph]
        keep = []
        for name, value in feeds.items():
            if torch.is_tensor(value):
                tensor = value.contiguous()
            else:
                tensor = torch.from_numpy(np.ascontiguousarray(value)).cuda(non_blocking=True)
            tensor.record_stream(self.stream)  # read on our stream: not reused before the engine is done
            keep.append(tensor)
            context.set_input_shape(name, tuple(tensor.shape))
            context.set_tensor_address(name, tensor.data_ptr())
        outputs = {}
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            if engine.get_tensor_mode(name).name != "OUTPUT":
                continue
            dtype = TRT_TO_NUMPY[engine.get_tensor_dtype(name).name]
            out = torch.empty(tuple(context.get_tensor_shape(name)), dtype=_torch_dtype(torch, dtype), device="cuda")
            context.set_tensor_address(name, out.data_ptr())
            outputs[name] = out
        self.stream.wait_stream(torch.cuda.current_stream())  # inputs copied on the default stream
        if not context.execute_async_v3(self.stream.cuda_stream):
            raise RuntimeError(f"TensorRT execution of {graph} failed")
        torch.cuda.current_stream().wait_stream(self.stream)
        return list(outputs.values())

    def to_host(self, value: Any) -> np.ndarray:
        return value.float().cpu().numpy() if self._torch.is_tensor(value) else np.asarray(value)

    def logits(self, value: Any) -> Any:
        return value[0, -1]  # stays on the GPU: ``greedy`` takes its argmax there


def _torch_dtype(torch: Any, dtype: type) -> Any:
    return {
        np.float32: torch.float32,
        np.float16: torch.float16,
        np.int32: torch.int32,
        np.int64: torch.int64,
        np.bool_: torch.bool,
        np.int8: torch.int8,
        np.uint8: torch.uint8,
    }[dtype]
