"""The SpanVLA computation split into the graphs every backend runs (torch eagerly, or exported to ONNX/TensorRT).

* ``VisionGraph``: pixel patches → image embeddings (Qwen2.5-VL's vision tower; a fixed image count and size, since
  its window-attention bookkeeping depends on the grid).
* ``PrefillGraph``: token ids + image embeddings + 3-axis rope positions → logits and every layer's K/V. Image
  embeddings are merged with ``where``/``cumsum`` (``masked_scatter`` does not export).
* ``DecodeGraph``: one token with the past K/V (dynamic length) → logits and the grown K/V.
* ``FlowGraph``: the action expert's whole few-step flow (history-initialised start, fixed step count) on the
  selected layers' K/V → poses in metres. ``FlowStepGraph``: one velocity evaluation.

K/V are stacked ``[layers, batch, kv_heads, seq, head_dim]``.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.cache_utils import DynamicCache

from ..model.flow import euler_integrate, history_initialisation
from ..model.spanvla import SpanVLA


def _stack(cache: DynamicCache) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.stack([layer.keys for layer in cache.layers]), torch.stack([layer.values for layer in cache.layers])


class VisionGraph(nn.Module):
    def __init__(self, model: SpanVLA, grid_thw: torch.Tensor) -> None:
        super().__init__()
        self.visual = model.vlm.model.visual
        self.register_buffer("grid_thw", grid_thw, persistent=False)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        out = self.visual(pixel_values, grid_thw=self.grid_thw)
        return getattr(out, "pooler_output", out)


class PrefillGraph(nn.Module):
    def __init__(self, model: SpanVLA) -> None:
        super().__init__()
        self.language_model = model.vlm.model.language_model
        self.lm_head = model.vlm.lm_head
        self.image_token_id = model.vlm.config.image_token_id

    def forward(self, input_ids, image_embeds, position_ids, attention_mask):
        embeds = self.language_model.embed_tokens(input_ids)
        is_image = input_ids == self.image_token_id
        index = (torch.cumsum(is_image.to(torch.int64), dim=1) - 1).clamp(min=0)
        embeds = torch.where(is_image[..., None], image_embeds[index].to(embeds.dtype), embeds)
        out = self.language_model(
            inputs_embeds=embeds,
            position_ids=position_ids,
            attention_mask=attention_mask,
            use_cache=True,
            past_key_values=DynamicCache(config=self.language_model.config),
        )
        keys, values = _stack(out.past_key_values)
        return self.lm_head(out.last_hidden_state), keys, values


class DecodeGraph(nn.Module):
    def __init__(self, model: SpanVLA) -> None:
        super().__init__()
        self.language_model = model.vlm.model.language_model
        self.lm_head = model.vlm.lm_head

    def forward(self, input_ids, position_ids, attention_mask, past_keys, past_values):
        cache = DynamicCache(config=self.language_model.config)
        for layer in range(past_keys.shape[0]):
            cache.update(past_keys[layer], past_values[layer], layer)
        out = self.language_model(
            inputs_embeds=self.language_model.embed_tokens(input_ids),
            position_ids=position_ids,
            attention_mask=attention_mask,
            use_cache=True,
            past_key_values=cache,
        )
        keys, values = _stack(out.past_key_values)
        return self.lm_head(out.last_hidden_state), keys, values


class FlowStepGraph(nn.Module):
    """Velocity ``[B, N, 3]`` (normalised units) at (actions, τ) given the history and the selected layers' K/V."""

    def __init__(self, model: SpanVLA) -> None:
        super().__init__()
        self.expert = model.expert
        self.num_layers = model.vlm.config.text_config.num_hidden_layers
        self.register_buffer("pose_scale", model.pose_scale.clone(), persistent=False)

    def forward(self, actions, tau, history, keys, values, kv_mask):
        layers: list = [None] * self.num_layers
        for i, layer in enumerate(self.expert.layers):
            layers[layer] = (keys[i], values[i])
        return self.expert(actions, tau, history / self.pose_scale, layers, kv_mask)


class FlowGraph(nn.Module):
    """The whole flow: history init, ``num_steps`` Euler steps, de-normalised poses ``[B, N, 3]``."""

    def __init__(self, model: SpanVLA, num_steps: int | None = None) -> None:
        super().__init__()
        self.step = FlowStepGraph(model)
        cfg = model.config.expert
        self.num_steps = num_steps or cfg.num_steps
        self.num_poses, self.dt_s, self.history_dt_s = cfg.num_poses, cfg.dt_s, cfg.history_dt_s

    def forward(self, history, keys, values, kv_mask):
        scale = self.step.pose_scale
        start = history_initialisation(history, self.history_dt_s, self.num_poses, self.dt_s) / scale
        velocity = lambda a, tau: self.step(a, tau, history, keys, values, kv_mask)  # noqa: E731
        return euler_integrate(velocity, start, self.num_steps) * scale
