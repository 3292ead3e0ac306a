"""The model artefact in one place: where the shipped checkpoint lives and how ``model:`` names resolve, what a runtime
needs to know about a model besides its weights (``runtime_meta``, written into ``export.json``), and reading an
export directory with its manifest checked. Imports neither torch nor a backend."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..files import file_sha256

if TYPE_CHECKING:
    from ..model.spanvla import SpanVLA

SOURCE_ROOT = Path(__file__).resolve().parents[2]


def default_checkpoint() -> Path:
    import sys

    # ament's search path first, then the source checkout, then the install prefix's share folder (pip, colcon).
    candidates = [SOURCE_ROOT / "models" / "default", Path(sys.prefix) / "share" / "spanvla_ros" / "models" / "default"]
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        try:
            candidates.insert(0, Path(get_package_share_directory("spanvla_ros")) / "models" / "default")
        except (PackageNotFoundError, OSError):  # not installed, or AMENT_PREFIX_PATH unset
            pass
    except ImportError:
        pass
    for candidate in candidates:
        if (candidate / "manifest.json").is_file():
            return candidate
    raise FileNotFoundError(
        "the default checkpoint is missing: expected models/default (run `make weights` to train it) in "
        + " or ".join(str(c) for c in candidates)
    )


def resolve_model(spec: str) -> str:
    """A model artefact named as the tools take it: ``model:default`` (or ``default`` / empty) is the shipped
    checkpoint; ``model:PATH`` or ``PATH`` is that directory (a checkpoint, or an export for onnxruntime/tensorrt)."""
    if spec in ("model:default", "default", ""):
        return str(default_checkpoint())
    return spec.removeprefix("model:")


class ArtifactError(ValueError):
    """An export directory is incomplete, tampered with, or does not match what is asked of it."""


def read_export(directory: Path) -> dict[str, Any]:
    """``export.json`` of an export directory, every listed file present with its recorded sha256."""
    path = directory / "export.json"
    if not path.is_file():
        raise ArtifactError(f"{directory}: no export.json (run `spanvla export onnx` first)")
    document = json.loads(path.read_text())
    for name, digest in document["files"].items():
        file = directory / name
        if not file.is_file():
            raise ArtifactError(f"{directory}: {name} is missing")
        if file_sha256(file) != digest:
            raise ArtifactError(f"{file}: sha256 does not match export.json (truncated, corrupt or replaced)")
    return document


def runtime_meta(model: SpanVLA, num_images: int) -> dict[str, Any]:
    """Everything a runtime needs besides the weights: shapes, token ids, layer selection, flow settings."""
    text = model.vlm.config.text_config
    vlm, expert = model.config.vlm, model.config.expert
    tokens_per_image = (vlm.image_size // vlm.patch_size) ** 2 // vlm.spatial_merge_size**2
    return {
        "num_layers": text.num_hidden_layers,
        "kv_heads": text.num_key_value_heads,
        "head_dim": getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads,
        "hidden_size": text.hidden_size,
        "vocab_size": text.vocab_size,
        "image_token_id": model.vlm.config.image_token_id,
        "action_marker_id": int(model.action_marker_id),
        "eos_token_id": int(model.tokenizer.eos_token_id),
        "action_token_ids": [int(t) for t in model.action_ids],
        "selected_layers": list(model.expert.layers),
        "num_images": num_images,
        "image_size": vlm.image_size,
        "patch_size": vlm.patch_size,
        "spatial_merge_size": vlm.spatial_merge_size,
        "temporal_patch_size": vlm.temporal_patch_size,
        "tokens_per_image": tokens_per_image,
        "num_poses": expert.num_poses,
        "dt_s": expert.dt_s,
        "history_len": expert.history_len,
        "history_dt_s": expert.history_dt_s,
        "flow_steps": expert.num_steps,
        "pose_scale": list(expert.pose_scale),
        "action_scale": None if expert.action_scale is None else [list(row) for row in expert.action_scale],
        "max_reasoning_tokens": model.config.max_reasoning_tokens,
    }
