"""ONNX export of the SpanVLA graphs, each checked with ``onnx.checker`` and compared to PyTorch on the same inputs.

Opset 18, exported by tracing with batch 2 where the batch is dynamic (a batch-1 example would fix it to 1). Dynamic
axes: ``prefill`` batch and sequence; ``decode`` batch and past length; ``flow``/``flow_step`` batch and cache
length. ``vision`` is static: its window attention is laid out for one image count and size (``export.json`` says
which). The directory also holds the tokenizer, the action codebook and ``export.json`` (shapes, token ids, layer
selection, flow settings, sha256 of every file, the parity measured at export) — a runtime rebuilds everything from it.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..files import file_sha256
from ..inputs import patchify, prompt_text, rope_positions
from ..model.spanvla import SpanVLA
from ..model.vlm import vision_geometry
from .artefact import ArtifactError, read_export, runtime_meta
from .graphs import DecodeGraph, FlowGraph, FlowStepGraph, PrefillGraph, VisionGraph

OPSET = 18
GRAPH_FILES = ("vision.onnx", "prefill.onnx", "decode.onnx", "flow.onnx", "flow_step.onnx")
#: Largest |ORT − torch| accepted at export (float32 graphs on the CPU).
EXPORT_TOLERANCE = 1e-3


class ExportError(RuntimeError):
    """An exported graph failed the ONNX checker or disagrees with PyTorch."""


def example_inputs(model: SpanVLA, num_images: int, batch: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """A synthetic observation turned into every graph's inputs (numpy)."""
    rng = np.random.default_rng(seed)
    size = model.config.vlm.image_size
    images = rng.integers(0, 255, (num_images, size, size, 3), dtype=np.uint8)
    history = np.array([[-15.0, 0.1, 0.0], [-10.0, 0.05, 0.0], [-5.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    pixel_values, grid = patchify(images, vision_geometry(model.config.vlm))
    merge = model.config.vlm.spatial_merge_size
    text = prompt_text("straight", 10.0, 0.0, history, grid, merge)
    ids = np.asarray(model.tokenizer(text).input_ids, dtype=np.int64)
    positions, _ = rope_positions(ids, model.vlm.config.image_token_id, grid, merge)
    return {
        "pixel_values": pixel_values,
        "grid_thw": grid,
        "input_ids": np.repeat(ids[None], batch, 0),
        "position_ids": np.repeat(positions, batch, 1),
        "attention_mask": np.ones((batch, len(ids)), dtype=np.int64),
        "history": np.repeat(history[None].astype(np.float32), batch, 0),
    }


def export_onnx(
    model: SpanVLA, out_dir: str | Path, *, num_images: int = 2, checkpoint_dir: str | Path | None = None
) -> dict[str, Any]:
    """Export every graph to ``out_dir``; return ``export.json``'s content. Raises ExportError on a failed check."""
    import onnx

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    meta = runtime_meta(model, num_images)
    ex = example_inputs(model, num_images, batch=2)
    t = {k: torch.from_numpy(v) for k, v in ex.items()}
    graphs = {
        "vision": VisionGraph(model, t["grid_thw"]),
        "prefill": PrefillGraph(model),
        "decode": DecodeGraph(model),
        "flow": FlowGraph(model),
        "flow_step": FlowStepGraph(model),
    }
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python control flow baked for fixed shapes
        image_embeds = graphs["vision"](t["pixel_values"])
        _, keys, values = graphs["prefill"](t["input_ids"], image_embeds, t["position_ids"], t["attention_mask"])
        step_ids = t["input_ids"][:, :1]
        step_pos = t["position_ids"][:, :, -1:] + 1
        step_mask = torch.ones(2, keys.shape[3] + 1, dtype=torch.int64)
        kv_mask = torch.ones(2, keys.shape[3], dtype=torch.bool)
        actions = torch.zeros(2, meta["num_poses"], 3)
        tau = torch.zeros(2)
        specs = {
            "vision": ((t["pixel_values"],), ["pixel_values"], ["image_embeds"], {}),
            "prefill": (
                (t["input_ids"], image_embeds, t["position_ids"], t["attention_mask"]),
                ["input_ids", "image_embeds", "position_ids", "attention_mask"],
                ["logits", "keys", "values"],
                {
                    "input_ids": {0: "batch", 1: "seq"},
                    "image_embeds": {0: "image_tokens"},
                    "position_ids": {1: "batch", 2: "seq"},
                    "attention_mask": {0: "batch", 1: "seq"},
                    "logits": {0: "batch", 1: "seq"},
                    "keys": {1: "batch", 3: "seq"},
                    "values": {1: "batch", 3: "seq"},
                },
            ),
            "decode": (
                (step_ids, step_pos, step_mask, keys, values),
                ["input_ids", "position_ids", "attention_mask", "past_keys", "past_values"],
                ["logits", "keys", "values"],
                {
                    "input_ids": {0: "batch"},
                    "position_ids": {1: "batch"},
                    "attention_mask": {0: "batch", 1: "total"},
                    "past_keys": {1: "batch", 3: "past"},
                    "past_values": {1: "batch", 3: "past"},
                    "logits": {0: "batch"},
                    "keys": {1: "batch", 3: "total"},
                    "values": {1: "batch", 3: "total"},
                },
            ),
            "flow": (
                (t["history"], keys, values, kv_mask),
                ["history", "keys", "values", "kv_mask"],
                ["poses"],
                {
                    "history": {0: "batch"},
                    "keys": {1: "batch", 3: "cache"},
                    "values": {1: "batch", 3: "cache"},
                    "kv_mask": {0: "batch", 1: "cache"},
                    "poses": {0: "batch"},
                },
            ),
            "flow_step": (
                (actions, tau, t["history"], keys, values, kv_mask),
                ["actions", "tau", "history", "keys", "values", "kv_mask"],
                ["velocity"],
                {
                    "actions": {0: "batch"},
                    "tau": {0: "batch"},
                    "history": {0: "batch"},
                    "keys": {1: "batch", 3: "cache"},
                    "values": {1: "batch", 3: "cache"},
                    "kv_mask": {0: "batch", 1: "cache"},
                    "velocity": {0: "batch"},
                },
            ),
        }
        for name, (args, inputs, outputs, axes) in specs.items():
            path = out / f"{name}.onnx"
            torch.onnx.export(
                graphs[name],
                args,
                str(path),
                input_names=inputs,
                output_names=outputs,
                dynamic_axes=axes or None,
                opset_version=OPSET,
                dynamo=False,
            )
            try:
                onnx.checker.check_model(str(path), full_check=True)
            except onnx.checker.ValidationError as exc:
                raise ExportError(f"{path.name} failed the ONNX checker: {exc}") from exc
    parity = check_parity(model, out, num_images)
    if max(parity.values()) > EXPORT_TOLERANCE:
        raise ExportError(f"exported graphs disagree with PyTorch beyond {EXPORT_TOLERANCE}: {parity}")
    model.tokenizer.backend_tokenizer.save(str(out / "tokenizer.json"))
    model.codebook.save(out / "codebook.safetensors")
    checkpoint_manifest = None
    if checkpoint_dir is not None and (Path(checkpoint_dir) / "manifest.json").is_file():
        checkpoint_manifest = file_sha256(Path(checkpoint_dir) / "manifest.json")
    files = {name: file_sha256(out / name) for name in (*GRAPH_FILES, "tokenizer.json", "codebook.safetensors")}
    document = {
        "opset": OPSET,
        "meta": meta,
        "files": files,
        "parity_max_abs": parity,
        "checkpoint_manifest_sha256": checkpoint_manifest,
    }
    (out / "export.json").write_text(json.dumps(document, indent=2) + "\n")
    return document


def check_parity(model: SpanVLA, out: Path, num_images: int) -> dict[str, float]:
    """Max |ORT − torch| per graph on one fresh example (batch 1, a different seed from the export)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    sessions = {
        n: ort.InferenceSession(str(out / f"{n}.onnx"), options, providers=["CPUExecutionProvider"])
        for n in ("vision", "prefill", "decode", "flow", "flow_step")
    }
    ex = example_inputs(model, num_images, batch=1, seed=1)
    graphs = {
        "vision": VisionGraph(model, torch.from_numpy(ex["grid_thw"])),
        "prefill": PrefillGraph(model),
        "decode": DecodeGraph(model),
        "flow": FlowGraph(model),
    }

    def reference(graph: str, **feeds: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            out = graphs[graph](*(torch.from_numpy(np.asarray(v)) for v in feeds.values()))
        return [o.numpy() for o in (out if isinstance(out, tuple) else (out,))]

    errors: dict[str, float] = {}
    (embeds,) = reference("vision", pixel_values=ex["pixel_values"])
    errors["vision"] = _err(sessions["vision"].run(None, {"pixel_values": ex["pixel_values"]})[0], embeds)
    feed = {
        "input_ids": ex["input_ids"],
        "image_embeds": embeds,
        "position_ids": ex["position_ids"],
        "attention_mask": ex["attention_mask"],
    }
    logits, keys, values = reference("prefill", **feed)
    got = sessions["prefill"].run(None, feed)
    errors["prefill"] = max(_err(got[0], logits), _err(got[1], keys))
    step = {
        "input_ids": ex["input_ids"][:, -1:],
        "position_ids": ex["position_ids"][:, :, -1:] + 1,
        "attention_mask": np.ones((1, keys.shape[3] + 1), np.int64),
        "past_keys": keys,
        "past_values": values,
    }
    step_logits, _, _ = reference("decode", **step)
    errors["decode"] = _err(sessions["decode"].run(None, step)[0], step_logits)
    flow_feed = {"history": ex["history"], "keys": keys, "values": values, "kv_mask": np.ones((1, keys.shape[3]), bool)}
    errors["flow"] = _err(sessions["flow"].run(None, flow_feed)[0], reference("flow", **flow_feed)[0])
    return errors


def _err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def verify_export(export_dir: str | Path, checkpoint_dir: str | Path) -> None:
    """Check that an export was made from this checkpoint's architecture; raise ArtifactError naming what differs."""
    document = read_export(Path(export_dir))
    model = SpanVLA.load(checkpoint_dir)
    expected = runtime_meta(model, document["meta"]["num_images"])
    differences = [
        f"{key}: export has {document['meta'].get(key)!r}, checkpoint has {value!r}"
        for key, value in expected.items()
        if document["meta"].get(key) != value
    ]
    if differences:
        raise ArtifactError(f"{export_dir} does not match the checkpoint {checkpoint_dir}: " + "; ".join(differences))
