"""The VLM: Hugging Face ``Qwen2_5_VLForConditionalGeneration``, built from a tiny config or loaded with
``from_pretrained`` from a local checkpoint directory (never downloaded).

Images are patchified here in Qwen2-VL's layout (``Qwen2VLProcessor`` needs torchvision, which does not import beside
this torch build). The image-token mask (``mm_token_type_ids``) is always passed: without it Qwen2.5-VL silently falls
back to 1-D rope positions for the image tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from transformers import PreTrainedTokenizerFast, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import (
    Qwen2_5_VLVisionAttention,
    apply_rotary_pos_emb_vision,
)

from .. import inputs
from .expert import KVLayer
from .tokenizer import IMAGE_PAD, VIDEO_PAD, VISION_END, VISION_START


@dataclass(frozen=True)
class VLMConfig:
    """Either a local pretrained checkpoint (``pretrained_path``) or the tiny from-scratch default's sizes."""

    pretrained_path: str | None = None
    hidden_size: int = 256
    intermediate_size: int = 640
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    vision_depth: int = 2
    vision_hidden_size: int = 64
    vision_heads: int = 2
    patch_size: int = 14
    spatial_merge_size: int = 2
    temporal_patch_size: int = 2
    image_size: int = 112
    max_positions: int = 4096
    #: Optional shapes of a larger from-scratch VLM (Qwen2.5-VL-3B's in ``spanvla bench gpu``); None: the tiny rule.
    vision_intermediate_size: int | None = None
    window_size: int | None = None
    fullatt_block_indexes: tuple[int, ...] | None = None
    #: The LM vocabulary, at least the tokenizer's (a real VLM's 151,936 rows cost what they cost at the LM head).
    vocab_size: int | None = None
    tie_word_embeddings: bool = False


#: Qwen2.5-VL-3B-Instruct's shapes (its config.json), for latency and memory measurements with random weights.
QWEN2_5_VL_3B = VLMConfig(
    hidden_size=2048,
    intermediate_size=11008,
    num_layers=36,
    num_heads=16,
    num_kv_heads=2,
    vision_depth=32,
    vision_hidden_size=1280,
    vision_heads=16,
    vision_intermediate_size=3420,
    window_size=112,
    fullatt_block_indexes=(7, 15, 23, 31),
    image_size=448,
    max_positions=128000,
    vocab_size=151936,
    tie_word_embeddings=True,
)


def build_vlm(config: VLMConfig, tokenizer: PreTrainedTokenizerFast) -> Qwen2_5_VLForConditionalGeneration:
    """The VLM: ``from_pretrained(config.pretrained_path)`` (local files only) or a fresh tiny model whose vocabulary
    and vision-marker ids come from ``tokenizer``."""
    if config.pretrained_path:
        path = Path(config.pretrained_path)
        if not path.is_dir():
            raise FileNotFoundError(f"pretrained VLM directory not found: {path}")
        return batch_window_attention(Qwen2_5_VLForConditionalGeneration.from_pretrained(path, local_files_only=True))
    return batch_window_attention(Qwen2_5_VLForConditionalGeneration(qwen_config(config, tokenizer)))


def qwen_config(config: VLMConfig, tokenizer: PreTrainedTokenizerFast) -> Qwen2_5_VLConfig:
    """The Hugging Face config of the from-scratch VLM (vocabulary and vision-marker ids from ``tokenizer``)."""
    head_dim = config.hidden_size // config.num_heads
    # mrope sections split head_dim/2 rotary frequencies over (time, height, width).
    quarter = head_dim // 2 // 4
    mrope = [head_dim // 2 - 2 * quarter * 3 // 2, quarter * 3 // 2, quarter * 3 // 2]
    ids = tokenizer.convert_tokens_to_ids([IMAGE_PAD, VIDEO_PAD, VISION_START, VISION_END])
    return Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=max(len(tokenizer), config.vocab_size or 0),
            hidden_size=config.hidden_size,
            intermediate_size=config.intermediate_size,
            num_hidden_layers=config.num_layers,
            num_attention_heads=config.num_heads,
            num_key_value_heads=config.num_kv_heads,
            max_position_embeddings=config.max_positions,
            rope_scaling={"type": "mrope", "mrope_section": mrope},
            bos_token_id=None,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
        vision_config=dict(
            depth=config.vision_depth,
            hidden_size=config.vision_hidden_size,
            intermediate_size=config.vision_intermediate_size or 2 * config.vision_hidden_size,
            num_heads=config.vision_heads,
            out_hidden_size=config.hidden_size,
            patch_size=config.patch_size,
            spatial_merge_size=config.spatial_merge_size,
            temporal_patch_size=config.temporal_patch_size,
            window_size=config.window_size or config.patch_size * config.spatial_merge_size * 2,
            fullatt_block_indexes=list(config.fullatt_block_indexes or [config.vision_depth - 1]),
        ),
        image_token_id=ids[0],
        video_token_id=ids[1],
        vision_start_token_id=ids[2],
        vision_end_token_id=ids[3],
        **({"tie_word_embeddings": True} if config.tie_word_embeddings else {}),
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


class BatchedWindowAttention(Qwen2_5_VLVisionAttention):
    """Qwen2.5-VL's vision attention with all its windows in one ``scaled_dot_product_attention`` call.

    Outside flash-attention, transformers runs the windows (and, in the full-attention blocks, the images) one by one
    in a Python loop: 2.4 ms a layer for six 448² images on an H200 against 0.07 ms batched. Equal windows are a batch
    dimension; unequal ones (an image whose side is not a multiple of the window) one call with a block-diagonal mask.
    Same parameters and state-dict names as the class it replaces, same result."""

    def forward(self, hidden_states, cu_seqlens, position_embeddings=None, **kwargs):
        tokens = hidden_states.shape[0]
        qkv = self.qkv(hidden_states).reshape(tokens, 3, self.num_heads, -1).permute(1, 0, 2, 3)
        query, key, value = qkv.unbind(0)
        cos, sin = position_embeddings
        query, key = apply_rotary_pos_emb_vision(query, key, cos, sin)
        query, key, value = (t.transpose(0, 1) for t in (query, key, value))  # [heads, tokens, d]
        lengths = (cu_seqlens[1:] - cu_seqlens[:-1]).tolist()
        heads, _, dim = query.shape
        if len(set(lengths)) == 1:
            windows, length = len(lengths), lengths[0]
            split = lambda t: t.reshape(heads, windows, length, dim).transpose(0, 1)  # noqa: E731
            out = F.scaled_dot_product_attention(split(query), split(key), split(value), scale=self.scaling)
            out = out.transpose(0, 1).reshape(heads, tokens, dim)
        else:
            segment = torch.repeat_interleave(
                torch.arange(len(lengths), device=query.device), torch.tensor(lengths, device=query.device)
            )
            mask = segment[:, None] == segment[None, :]
            out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=self.scaling)
        return self.proj(out.transpose(0, 1).reshape(tokens, -1))


def batch_window_attention(vlm: Qwen2_5_VLForConditionalGeneration) -> Qwen2_5_VLForConditionalGeneration:
    """Every vision block's attention becomes :class:`BatchedWindowAttention` (in place; weights untouched)."""
    for block in vlm.model.visual.blocks:
        block.attn.__class__ = BatchedWindowAttention
    return vlm


def pad_vision_mlp(vlm: Qwen2_5_VLForConditionalGeneration, multiple: int = 128) -> int:
    """Zero-pad every vision block's MLP width up to a multiple of ``multiple`` (in place; inference only: the
    checkpoint's shapes change) and return the new width. The padded units read 0 and add 0, so the output is the
    same; Qwen2.5-VL's 3420 is a width cuBLAS has no fast kernel for: on an H200 one block's MLP over six 448² images
    took 729 µs at 3420 and 288 µs at 3456."""
    width = vlm.model.visual.blocks[0].mlp.gate_proj.out_features
    padded = -(-width // multiple) * multiple
    if padded == width:
        return width
    for block in vlm.model.visual.blocks:
        mlp = block.mlp
        mlp.gate_proj, mlp.up_proj = (_padded_linear(layer, rows=padded) for layer in (mlp.gate_proj, mlp.up_proj))
        mlp.down_proj = _padded_linear(mlp.down_proj, columns=padded)
    return padded


@torch.no_grad()
def _padded_linear(layer: nn.Linear, rows: int | None = None, columns: int | None = None) -> nn.Linear:
    """``layer`` with zero output rows (and bias) or zero input columns added up to ``rows`` / ``columns``."""
    weight = layer.weight
    out_features, in_features = rows or layer.out_features, columns or layer.in_features
    padded = nn.Linear(in_features, out_features, bias=layer.bias is not None, device=weight.device, dtype=weight.dtype)
    padded.weight.zero_()
    padded.weight[: weight.shape[0], : weight.shape[1]] = weight
    if layer.bias is not None:
        padded.bias.zero_()
        padded.bias[: layer.bias.shape[0]] = layer.bias
    return padded


def patchify(images: np.ndarray, config: VLMConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`spanvla_ros.inputs.patchify` as torch tensors, with the VLM config's patch geometry."""
    pixel_values, grid = inputs.patchify(images, vision_geometry(config))
    return torch.from_numpy(pixel_values), torch.from_numpy(grid)


def vision_geometry(config: VLMConfig) -> inputs.VisionGeometry:
    return inputs.VisionGeometry(config.patch_size, config.spatial_merge_size, config.temporal_patch_size)


def image_placeholder(grid_thw: torch.Tensor, merge: int) -> str:
    return inputs.image_placeholder(np.asarray(grid_thw), merge)


def image_token_types(input_ids: torch.Tensor, image_token_id: int) -> torch.Tensor:
    """``mm_token_type_ids``: 1 where the token is an image placeholder, else 0."""
    return (input_ids == image_token_id).to(torch.int32)


def cache_layers(past_key_values) -> list[KVLayer]:
    """Every layer's (keys, values) ``[B, kv_heads, S, head_dim]`` from a transformers cache object."""
    return [(layer.keys, layer.values) for layer in past_key_values.layers]
