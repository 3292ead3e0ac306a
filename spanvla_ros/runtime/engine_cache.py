"""The TensorRT engine cache: engines are stored under ``engines/`` next to a manifest keyed by the ONNX file's
sha256, the TensorRT version, the GPU name and compute capability, and the precision. A stale or corrupt engine is
never used: loading checks the key and the engine file's own sha256, then rebuilds (when allowed) or refuses with
the reason. Pure Python (no TensorRT import), so its rules are tested on any machine."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from ..files import file_sha256

PRECISIONS = ("fp16", "fp32")


class EngineCacheError(RuntimeError):
    """A cached engine cannot be used here; the message says which key field differs or what is corrupt."""


@dataclass(frozen=True)
class EngineKey:
    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    precision: str

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")

    @property
    def digest(self) -> str:
        """A short hash of the whole key, used in the engine file name."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


class EngineCache:
    """``<root>/<graph>.<key digest>.engine`` + ``<root>/<graph>.<key digest>.json`` (the key and the engine's
    sha256)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def paths(self, graph: str, key: EngineKey) -> tuple[Path, Path]:
        stem = f"{graph}.{key.digest}"
        return self.root / f"{stem}.engine", self.root / f"{stem}.json"

    def store(self, graph: str, key: EngineKey, engine_bytes: bytes) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        engine, manifest = self.paths(graph, key)
        engine.write_bytes(engine_bytes)
        manifest.write_text(
            json.dumps({"graph": graph, "key": asdict(key), "engine_sha256": file_sha256(engine)}, indent=2) + "\n"
        )
        return engine

    def lookup(self, graph: str, key: EngineKey) -> Path:
        """The engine file for exactly this key; raises EngineCacheError saying why there is none usable."""
        engine, manifest = self.paths(graph, key)
        if not manifest.is_file() or not engine.is_file():
            stale = self._stale_reason(graph, key)
            raise EngineCacheError(
                f"no cached {graph} engine for this configuration" + (f" ({stale})" if stale else "")
            )
        record = json.loads(manifest.read_text())
        if record.get("key") != asdict(key):
            raise EngineCacheError(f"{manifest}: key mismatch ({_differences(record.get('key', {}), asdict(key))})")
        if file_sha256(engine) != record.get("engine_sha256"):
            raise EngineCacheError(f"{engine}: engine file is corrupt (sha256 differs from its manifest)")
        return engine

    def _stale_reason(self, graph: str, key: EngineKey) -> str:
        """Why other cached engines of this graph do not fit (e.g. built with another TensorRT version)."""
        reasons = []
        for manifest in sorted(self.root.glob(f"{graph}.*.json")):
            record = json.loads(manifest.read_text())
            reasons.append(f"{manifest.name}: {_differences(record.get('key', {}), asdict(key))}")
        return "; ".join(reasons)


def _differences(cached: dict, wanted: dict) -> str:
    diffs = [f"{k} is {cached.get(k)!r}, need {v!r}" for k, v in wanted.items() if cached.get(k) != v]
    return ", ".join(diffs) or "identical"
