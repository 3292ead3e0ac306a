"""The backend interface: the four graph computations, numpy in and out. Prompting, tokenisation, rope positions,
greedy decoding and layer selection live once, in :mod:`spanvla_ros.runtime.pipeline`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np


class BackendUnavailableError(RuntimeError):
    """The backend cannot run here (a missing library or GPU); the message says why and what is available."""


class Backend(ABC):
    name: str = "backend"
    meta: dict[str, Any]

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """None when the backend can run on this machine, else why not."""
        return None

    @abstractmethod
    def encode_images(self, pixel_values: np.ndarray) -> np.ndarray:
        """``[patches, C]`` float32 → image embeddings ``[image_tokens, hidden]``."""

    @abstractmethod
    def prefill(self, input_ids, image_embeds, position_ids, attention_mask) -> tuple[np.ndarray, ...]:
        """→ logits ``[B, S, V]``, keys and values ``[L, B, kv_heads, S, head_dim]``."""

    @abstractmethod
    def decode(self, input_ids, position_ids, attention_mask, past_keys, past_values) -> tuple[np.ndarray, ...]:
        """One token per batch item with the past K/V → logits ``[B, 1, V]`` and the grown K/V."""

    @abstractmethod
    def flow(self, history, keys, values, kv_mask) -> np.ndarray:
        """Selected layers' K/V ``[n_sel, B, kv_heads, S, d]`` + history ``[B, H, 3]`` → poses ``[B, N, 3]``."""


class GraphBackend(Backend):
    """A backend that runs the exported graphs by name (ONNX Runtime sessions, TensorRT engines): the graphs' named
    inputs are fed here, once for every such backend."""

    @abstractmethod
    def run_graph(self, graph: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run graph ``graph`` on named inputs; outputs in the graph's order."""

    def encode_images(self, pixel_values):
        return self.run_graph("vision", {"pixel_values": np.asarray(pixel_values, np.float32)})[0]

    def prefill(self, input_ids, image_embeds, position_ids, attention_mask):
        feeds = {
            "input_ids": input_ids,
            "image_embeds": image_embeds,
            "position_ids": position_ids,
            "attention_mask": attention_mask,
        }
        return tuple(self.run_graph("prefill", feeds))

    def decode(self, input_ids, position_ids, attention_mask, past_keys, past_values):
        feeds = {
            "input_ids": input_ids,
            "position_ids": position_ids,
            "attention_mask": attention_mask,
            "past_keys": past_keys,
            "past_values": past_values,
        }
        return tuple(self.run_graph("decode", feeds))

    def flow(self, history, keys, values, kv_mask):
        feeds = {
            "history": np.asarray(history, np.float32),
            "keys": keys,
            "values": values,
            "kv_mask": np.asarray(kv_mask, bool),
        }
        return self.run_graph("flow", feeds)[0]
