"""The planner logic, once, over any backend: ``reason(images, prompt inputs)`` → text + KV cache, and
``plan(reasoning, history)`` → trajectory. Prompt building, tokenisation (``tokenizers`` only), rope positions,
decoding (``spanvla_ros.decoding``) and sparse layer selection live here; backends only run graphs."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..decoding import decode_tokens, greedy
from ..inputs import VisionGeometry, image_grid, prompt_text, rope_positions
from .backends.base import Backend


class InputError(ValueError):
    """Bad model input: wrong image count or size, non-finite ego state."""


@dataclass
class ReasoningResult:
    """The generated text and the cache over prompt + reasoning, still on the backend's device (``cache.length``
    positions; ``cache.host()`` copies its K/V ``[L, 1, kv_heads, S, d]`` out)."""

    text: str
    token_ids: list[int]
    cache: Any
    timings_ms: dict[str, float] = field(default_factory=dict)


class SpanVLARuntime:
    """One inference interface for the node and the benchmarks, backed by ``backend``."""

    def __init__(self, backend: Backend, tokenizer_file: str | Path) -> None:
        from tokenizers import Tokenizer

        self.backend = backend
        self.meta = backend.meta
        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self.geometry = VisionGeometry(
            self.meta["patch_size"], self.meta["spatial_merge_size"], self.meta["temporal_patch_size"]
        )

    @classmethod
    def from_checkpoint_or_export(cls, backend_name: str, artifact: str | Path, **options) -> SpanVLARuntime:
        """The torch backend reads a checkpoint directory; onnxruntime/tensorrt read an export directory."""
        from .backends import load_backend

        backend = load_backend(backend_name, artifact, **options)
        return cls(backend, Path(artifact) / "tokenizer.json")

    def reason(
        self,
        images: np.ndarray,
        command: str,
        speed_mps: float,
        acceleration_mps2: float,
        history_ego: np.ndarray,
        max_new_tokens: int | None = None,
    ) -> ReasoningResult:
        """Prefill the prompt (cameras × frames ``[I, H, W, 3]`` uint8) and decode greedily until the action marker,
        EOS or the token budget."""
        meta = self.meta
        images = np.asarray(images)
        expected = (meta["num_images"], meta["image_size"], meta["image_size"], 3)
        if images.shape != expected or images.dtype != np.uint8:
            raise InputError(f"images must be uint8 {list(expected)}, got {images.dtype} {list(images.shape)}")
        history = np.asarray(history_ego, dtype=np.float64)
        if not (np.isfinite(history).all() and np.isfinite(speed_mps) and np.isfinite(acceleration_mps2)):
            raise InputError("ego history, speed and acceleration must be finite")
        timings: dict[str, float] = {}
        start = time.perf_counter()
        grid = image_grid(images.shape, images.dtype, self.geometry)
        text = prompt_text(command, speed_mps, acceleration_mps2, history, grid, meta["spatial_merge_size"])
        ids = np.asarray(self.tokenizer.encode(text).ids, dtype=np.int64)
        positions, delta = rope_positions(ids, meta["image_token_id"], grid, meta["spatial_merge_size"])
        timings["preprocess_ms"] = 1e3 * (time.perf_counter() - start)
        start = time.perf_counter()
        backend = self.backend
        budget = max_new_tokens or meta["max_reasoning_tokens"]
        embeds = backend.encode_images(backend.pixel_values(images, self.geometry))
        logits, cache = backend.prefill(ids[None], embeds, positions, len(ids) + budget + 1)
        timings["prefill_ms"] = 1e3 * (time.perf_counter() - start)
        start = time.perf_counter()
        try:
            step = lambda token: backend.decode(token, cache.length + delta, cache)  # noqa: E731
            stop = (meta["action_marker_id"], meta["eos_token_id"])
            generated = decode_tokens(logits, step, greedy, budget, stop)
        finally:
            cache = backend.finish(cache)
        timings["decode_ms"] = 1e3 * (time.perf_counter() - start)
        timings["tokens"] = float(len(generated))
        return ReasoningResult(self.tokenizer.decode(generated, skip_special_tokens=False), generated, cache, timings)

    def plan(self, reasoning: ReasoningResult, history_ego: np.ndarray) -> np.ndarray:
        """Poses ``[N, 3]`` (ego frame) from the flow expert on the reasoning's cache."""
        history = np.asarray(history_ego, dtype=np.float32)
        if history.shape != (self.meta["history_len"], 3) or not np.isfinite(history).all():
            raise InputError(f"history must be finite [{self.meta['history_len']}, 3], got {list(history.shape)}")
        return self.backend.flow(history, reasoning.cache)
