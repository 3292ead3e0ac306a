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
from transformers import PreTrainedTokenizerFast, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

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


def build_vlm(config: VLMConfig, tokenizer: PreTrainedTokenizerFast) -> Qwen2_5_VLForConditionalGeneration:
    """The VLM: ``from_pretrained(config.pretrained_path)`` (local files only) or a fresh tiny model whose vocabulary
    and vision-marker ids come from ``tokenizer``."""
    if config.pretrained_path:
        path = Path(config.pretrained_path)
        if not path.is_dir():
            raise FileNotFoundError(f"pretrained VLM directory not found: {path}")
        return Qwen2_5_VLForConditionalGeneration.from_pretrained(path, local_files_only=True)
    head_dim = config.hidden_size // config.num_heads
    # mrope sections split head_dim/2 rotary frequencies over (time, height, width).
    quarter = head_dim // 2 // 4
    mrope = [head_dim // 2 - 2 * quarter * 3 // 2, quarter * 3 // 2, quarter * 3 // 2]
    ids = tokenizer.convert_tokens_to_ids([IMAGE_PAD, VIDEO_PAD, VISION_START, VISION_END])
    hf_config = Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
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
            intermediate_size=2 * config.vision_hidden_size,
            num_heads=config.vision_heads,
            out_hidden_size=config.hidden_size,
            patch_size=config.patch_size,
            spatial_merge_size=config.spatial_merge_size,
            temporal_patch_size=config.temporal_patch_size,
            window_size=config.patch_size * config.spatial_merge_size * 2,
            fullatt_block_indexes=[config.vision_depth - 1],
        ),
        image_token_id=ids[0],
        video_token_id=ids[1],
        vision_start_token_id=ids[2],
        vision_end_token_id=ids[3],
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return Qwen2_5_VLForConditionalGeneration(hf_config)


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
