"""The SpanVLA computation split into the graphs every backend runs (torch eagerly, or exported to ONNX/TensorRT);
each wraps one of the model's own steps (``prefill``, ``decode_step``, ``flow_velocity``, ``flow_sample``).

* ``VisionGraph``: pixel patches → image embeddings (Qwen2.5-VL's vision tower; a fixed image count and size, since
  its window-attention bookkeeping depends on the grid).
* ``PrefillGraph``: token ids + image embeddings + 3-axis rope positions → logits and every layer's K/V. Image
  embeddings are merged with ``where``/``cumsum`` (``masked_scatter`` does not export).
* ``DecodeGraph``: one token with the past K/V (dynamic length) → logits and the grown K/V.
* ``FlowGraph``: the action expert's whole few-step flow (history-initialised start, fixed step count) on the
  cache → poses in metres. ``FlowStepGraph``: one velocity evaluation. Both take every layer's K/V as decoding left
  it and read the selected layers inside, so the cache goes from decode to flow without a gather on the host.

K/V are stacked ``[layers, batch, kv_heads, seq, head_dim]``.
"""

from __future__ import annotations

import torch
from torch import nn

from ..model.spanvla import SpanVLA


class VisionGraph(nn.Module):
    def __init__(self, model: SpanVLA, grid_thw: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("grid_thw", grid_thw, persistent=False)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model.image_embeddings(pixel_values, self.grid_thw)


class PrefillGraph(nn.Module):
    def __init__(self, model: SpanVLA) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids, image_embeds, position_ids, attention_mask):
        return self.model.prefill(input_ids, image_embeds, position_ids, attention_mask)


class DecodeGraph(nn.Module):
    def __init__(self, model: SpanVLA) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids, position_ids, attention_mask, past_keys, past_values):
        return self.model.decode_step(input_ids, position_ids, attention_mask, past_keys, past_values)


class FlowStepGraph(nn.Module):
    """Velocity ``[B, N, 3]`` (normalised units) at (actions, τ) given the history and the selected layers' K/V."""

    def __init__(self, model: SpanVLA) -> None:
        super().__init__()
        self.model = model

    def forward(self, actions, tau, history, keys, values, kv_mask):
        return self.model.flow_velocity(actions, tau, history, stacked_layers(keys, values), kv_mask)


class FlowGraph(nn.Module):
    """The whole flow: history init, ``num_steps`` Euler steps, de-normalised poses ``[B, N, 3]``."""

    def __init__(self, model: SpanVLA, num_steps: int | None = None) -> None:
        super().__init__()
        self.model = model
        self.num_steps = num_steps or model.config.expert.num_steps

    def forward(self, history, keys, values, kv_mask):
        layers = stacked_layers(keys, values)
        return self.model.flow_sample(layers, history, kv_mask, num_steps=self.num_steps, init="history")


def stacked_layers(keys: torch.Tensor, values: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per-layer (K, V) of stacked ``[L, B, kv, S, d]`` (views; the expert reads only its selected layers)."""
    return [(keys[i], values[i]) for i in range(keys.shape[0])]
