"""The VLM's KV cache as preallocated device buffers ``[L, B, kv_heads, S_max, d]`` and a filled length.

transformers' ``DynamicCache`` concatenates on every token (the whole cache is copied per decoded token) and the
runtime used to pass it through numpy between steps (host ↔ device per token on a GPU). ``KVBuffer`` is written in
place: prefill fills ``[0, S)``, each decoded token writes position ``length``. Its ``cache()`` is a transformers
``Cache`` whose layers write into the buffer, so the model's own attention code runs on it unchanged.

Two ways to read it back during attention:
* eager (``cache()``): each layer returns views ``[:length]``: no copy, no wasted attention;
* static (``cache(write_position=...)``): each layer writes at a device-side position and returns the whole buffer;
  the caller masks positions ``≥ length``. Every shape and address stays fixed from token to token, which is what a
  CUDA graph or ``torch.compile(mode="reduce-overhead")`` needs.
"""

from __future__ import annotations

import numpy as np
import torch
from transformers.cache_utils import Cache, DynamicLayer


class KVBuffer:
    """Every layer's keys and values, preallocated; ``length`` positions are filled."""

    def __init__(
        self,
        num_layers: int,
        batch: int,
        kv_heads: int,
        max_length: int,
        head_dim: int,
        dtype: torch.dtype,
        device: torch.device | str,
    ) -> None:
        shape = (num_layers, batch, kv_heads, max_length, head_dim)
        self.keys = torch.zeros(shape, dtype=dtype, device=device)
        self.values = torch.zeros(shape, dtype=dtype, device=device)
        self.length = 0

    @property
    def max_length(self) -> int:
        return self.keys.shape[3]

    def cache(self, write_position: torch.Tensor | None = None) -> Cache:
        """A transformers cache over this buffer for one forward pass; call :meth:`advance` after it."""
        return Cache(layers=[BufferLayer(self, i, write_position) for i in range(self.keys.shape[0])])

    def reserve(self, tokens: int) -> None:
        if self.length + tokens > self.max_length:
            raise ValueError(f"the KV buffer holds {self.max_length} positions; {self.length} + {tokens} do not fit")

    def advance(self, tokens: int) -> None:
        self.length += tokens

    def layers(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(keys, values) views ``[B, kv, length, d]`` of every layer (no copy; the expert reads its own layers)."""
        return [(self.keys[i, :, :, : self.length], self.values[i, :, :, : self.length]) for i in range(len(self.keys))]

    def trimmed(self) -> KVBuffer:
        """A copy holding just the filled positions (the original can be reused at once)."""
        copy = KVBuffer.__new__(KVBuffer)
        copy.keys = self.keys[:, :, :, : self.length].clone()
        copy.values = self.values[:, :, :, : self.length].clone()
        copy.length = self.length
        return copy

    def host(self) -> tuple[np.ndarray, np.ndarray]:
        """Keys and values ``[L, B, kv, length, d]`` as float32 numpy (for tests and debugging; copies)."""
        n = self.length
        return (
            self.keys[:, :, :, :n].float().cpu().numpy(),
            self.values[:, :, :, :n].float().cpu().numpy(),
        )


class BufferLayer(DynamicLayer):
    """One layer of a :class:`KVBuffer` as a transformers cache layer (writes in place, never concatenates)."""

    def __init__(self, buffer: KVBuffer, index: int, write_position: torch.Tensor | None = None) -> None:
        super().__init__()
        self.buffer, self.index, self.write_position = buffer, index, write_position
        self.keys, self.values = buffer.keys[index], buffer.values[index]
        self.dtype, self.device = self.keys.dtype, self.keys.device
        self.is_initialized = True

    def lazy_initialization(self, key_states, value_states) -> None:  # the buffer is allocated already
        return None

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        keys, values = self.buffer.keys[self.index], self.buffer.values[self.index]
        if self.write_position is not None:  # static: fixed shapes, a device-side index
            keys.index_copy_(2, self.write_position, key_states.to(keys.dtype))
            values.index_copy_(2, self.write_position, value_states.to(values.dtype))
            return keys, values
        start, tokens = self.buffer.length, key_states.shape[-2]
        keys[:, :, start : start + tokens] = key_states
        values[:, :, start : start + tokens] = value_states
        return keys[:, :, : start + tokens], values[:, :, : start + tokens]

    def get_seq_length(self) -> int:
        return self.buffer.length

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        if self.write_position is not None:
            return self.buffer.max_length, 0
        return self.buffer.length + query_length, 0

    def get_max_length(self) -> int:
        return self.buffer.max_length
