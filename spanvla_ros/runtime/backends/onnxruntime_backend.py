"""ONNX Runtime backend over an export directory (CPUExecutionProvider here; the CUDA provider when present)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..artefact import ArtifactError, read_export
from .base import BackendUnavailableError, GraphBackend


class OnnxRuntimeBackend(GraphBackend):
    name = "onnxruntime"

    def __init__(self, directory: Path, providers: list[str] | None = None, threads: int = 0) -> None:
        import onnxruntime as ort

        self.directory = Path(directory)
        document = read_export(self.directory)
        self.meta = document["meta"]
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        available = ort.get_available_providers()
        providers = providers or [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        try:
            self.sessions = {
                name: ort.InferenceSession(str(self.directory / f"{name}.onnx"), options, providers=providers)
                for name in ("vision", "prefill", "decode", "flow")
            }
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable models
            raise ArtifactError(f"{self.directory}: ONNX Runtime cannot load the graphs: {exc}") from exc
        self.providers = providers

    @classmethod
    def unavailable_reason(cls) -> str | None:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return "onnxruntime is not installed (pip install onnxruntime)"
        return None

    @classmethod
    def from_artifact(cls, artifact: Path, **options: Any) -> OnnxRuntimeBackend:
        if not (artifact / "export.json").is_file():
            raise BackendUnavailableError(f"{artifact} is not an ONNX export directory (no export.json)")
        return cls(artifact, providers=options.get("providers"), threads=options.get("threads", 0))

    def run_graph(self, graph, feeds):
        return self.sessions[graph].run(None, feeds)
