"""The backend interface. Tensors stay on the backend's device from the vision tower through prefill and decoding to
the flow: the host hands in token ids, rope positions and the ego history, and gets back logits to choose the next
token from (on a GPU only their argmax crosses, as one integer) and the final poses. Prompting, tokenisation, rope
positions, greedy decoding and layer selection live once, in :mod:`spanvla_ros.runtime.pipeline`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from ...inputs import VisionGeometry, patchify


class BackendUnavailableError(RuntimeError):
    """The backend cannot run here (a missing library or GPU); the message says why and what is available."""


class Backend(ABC):
    """Backend-native values (torch tensors, ONNX Runtime ``OrtValue``) pass between these calls untouched; a cache
    is whatever the backend keeps K/V in, with a ``length`` and ``host()`` → numpy ``[L, 1, kv, length, d]``."""

    name: str = "backend"
    meta: dict[str, Any]

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """None when the backend can run on this machine, else why not."""
        return None

    def pixel_values(self, images: np.ndarray, geometry: VisionGeometry) -> Any:
        """Camera frames ``[I, H, W, 3]`` uint8 → the vision tower's input ``[patches, C]`` float32, as
        :meth:`encode_images` takes it (here patchified on the host)."""
        return patchify(images, geometry)[0]

    @abstractmethod
    def encode_images(self, pixel_values: Any) -> Any:
        """``[patches, C]`` float32 (numpy, or :meth:`pixel_values`' value) → image embeddings
        ``[image_tokens, hidden]`` on the device."""

    @abstractmethod
    def prefill(self, input_ids: np.ndarray, image_embeds: Any, position_ids: np.ndarray, max_length: int):
        """Prompt ``[1, S]`` → (the last position's logits ``[V]``, a cache holding the prompt with room for
        ``max_length`` positions in all)."""

    @abstractmethod
    def decode(self, token: int, position: int, cache: Any) -> Any:
        """Feed one token at rope position ``position``; the cache grows by one → the next logits ``[V]``."""

    @abstractmethod
    def flow(self, history: np.ndarray, cache: Any) -> np.ndarray:
        """The action expert's flow on the cache's selected layers + ``history [H, 3]`` → poses ``[N, 3]``."""

    def finish(self, cache: Any) -> Any:
        """The cache a finished reasoning pass keeps (plans may read it while the next pass runs): a backend that
        reuses a working buffer from pass to pass returns a copy here."""
        return cache


class GraphCache:
    """K/V of every layer ``[L, 1, kv, S, d]`` as a graph backend's native values (they stay on its device)."""

    def __init__(self, backend: GraphBackend, keys: Any, values: Any, length: int) -> None:
        self.backend, self.keys, self.values, self.length = backend, keys, values, length

    def host(self) -> tuple[np.ndarray, np.ndarray]:
        return self.backend.to_host(self.keys), self.backend.to_host(self.values)


class GraphBackend(Backend):
    """A backend that runs the exported graphs by name (ONNX Runtime sessions, TensorRT engines); their named inputs
    are fed here, once for every such backend. The exported decode graph takes the past K/V and returns the grown
    K/V, so the cache is the graph outputs themselves, kept on the device between calls."""

    @abstractmethod
    def run_graph(self, graph: str, feeds: dict[str, Any]) -> list[Any]:
        """Run graph ``graph`` on named inputs (numpy or native values); native outputs in the graph's order."""

    @abstractmethod
    def to_host(self, value: Any) -> np.ndarray:
        """A native value as numpy (copies from the device)."""

    def logits(self, value: Any) -> Any:
        """The last position's logits ``[V]`` of a ``[B, 1, V]`` output, in a form ``greedy`` reads."""
        return self.to_host(value)[0, -1]

    def encode_images(self, pixel_values):
        return self.run_graph("vision", {"pixel_values": np.asarray(pixel_values, np.float32)})[0]

    def prefill(self, input_ids, image_embeds, position_ids, max_length):
        feeds = {
            "input_ids": np.asarray(input_ids, np.int64),
            "image_embeds": image_embeds,
            "position_ids": np.asarray(position_ids, np.int64),
            "attention_mask": np.ones(np.shape(input_ids), np.int64),
        }
        logits, keys, values = self.run_graph("prefill", feeds)
        return self.logits(logits), GraphCache(self, keys, values, np.shape(input_ids)[1])

    def decode(self, token, position, cache):
        feeds = {
            "input_ids": np.array([[token]], np.int64),
            "position_ids": np.full((3, 1, 1), position, np.int64),
            "attention_mask": np.ones((1, cache.length + 1), np.int64),
            "past_keys": cache.keys,
            "past_values": cache.values,
        }
        logits, cache.keys, cache.values = self.run_graph("decode", feeds)
        cache.length += 1
        return self.logits(logits)

    def flow(self, history, cache):
        feeds = {
            "history": np.asarray(history, np.float32)[None],
            "keys": cache.keys,
            "values": cache.values,
            "kv_mask": np.ones((1, cache.length), bool),
        }
        return self.to_host(self.run_graph("flow", feeds)[0])[0]
