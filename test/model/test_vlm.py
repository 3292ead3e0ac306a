"""The tiny Qwen2.5-VL: patchify, multimodal rope positions, cached decoding, and the expert on its real KV cache."""

import numpy as np
import pytest
import torch

from spanvla_ros.model.expert import ActionExpert, ActionExpertConfig
from spanvla_ros.model.tokenizer import (
    FAST_MODE_TEXT,
    IMAGE_PAD,
    THINK_END,
    THINK_START,
    action_token_ids,
    train_tokenizer,
)
from spanvla_ros.model.vlm import VLMConfig, build_vlm, cache_layers, image_placeholder, image_token_types, patchify

CORPUS = [
    f"{THINK_START} lead vehicle ahead brakes; decelerate and keep lane {THINK_END}",
    f"{FAST_MODE_TEXT}",
    "critical: vehicle, front-left, cutting in. decision: yield, keep lane.",
    "ego speed 12.3 m/s acceleration -0.4 m/s2 history (-6.1, 0.0) (-4.0, 0.1) command: go straight",
] * 20


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    tokenizer = train_tokenizer(CORPUS, vocab_size=300, num_action_tokens=32)
    config = VLMConfig()
    model = build_vlm(config, tokenizer).eval()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, size=(2, 112, 112, 3), dtype=np.uint8)
    pixel_values, grid = patchify(images, config)
    text = (
        "".join(image_placeholder(g, config.spatial_merge_size) for g in grid) + "command: go straight " + THINK_START
    )
    input_ids = tokenizer(text, return_tensors="pt").input_ids
    return tokenizer, config, model, pixel_values, grid, input_ids


def test_tokenizer_keeps_special_tokens_whole(tiny):
    tokenizer = tiny[0]
    ids = tokenizer(f"{THINK_START}x{THINK_END}{IMAGE_PAD}").input_ids
    assert tokenizer.convert_ids_to_tokens(ids)[0] == THINK_START
    assert len(action_token_ids(tokenizer, 32)) == 32


def test_tiny_vlm_is_a_few_million_parameters_at_most(tiny):
    model = tiny[2]
    assert 0.3e6 < sum(p.numel() for p in model.parameters()) < 10e6


def test_patchify_layout_and_errors(tiny):
    config, pixel_values, grid = tiny[1], tiny[3], tiny[4]
    assert grid.tolist() == [[1, 8, 8], [1, 8, 8]]
    assert pixel_values.shape == (2 * 64, 3 * 2 * 14 * 14)
    with pytest.raises(ValueError, match="multiple of"):
        patchify(np.zeros((1, 100, 100, 3), np.uint8), config)
    with pytest.raises(ValueError, match="uint8"):
        patchify(np.zeros((1, 112, 112, 3), np.float32), config)


def test_cached_decoding_matches_a_full_forward_and_needs_the_image_mask(tiny):
    tokenizer, config, model, pixel_values, grid, input_ids = tiny
    image_id = model.config.image_token_id
    extra = tokenizer(" lead vehicle", return_tensors="pt").input_ids
    full_ids = torch.cat([input_ids, extra], dim=1)
    with torch.no_grad():
        full = model(
            input_ids=full_ids,
            pixel_values=pixel_values,
            image_grid_thw=grid,
            mm_token_type_ids=image_token_types(full_ids, image_id),
        ).logits
        model.model.rope_deltas = None
        prefill = model(
            input_ids=input_ids,
            pixel_values=pixel_values,
            image_grid_thw=grid,
            mm_token_type_ids=image_token_types(input_ids, image_id),
            use_cache=True,
        )
        cache = prefill.past_key_values
        step_logits = []
        for i in range(extra.shape[1]):
            token = extra[:, i : i + 1]
            out = model(
                input_ids=token,
                past_key_values=cache,
                use_cache=True,
                mm_token_type_ids=torch.zeros_like(token, dtype=torch.int32),
            )
            cache = out.past_key_values
            step_logits.append(out.logits[:, -1])
        model.model.rope_deltas = None
        no_mask = model(input_ids=full_ids, pixel_values=pixel_values, image_grid_thw=grid).logits
    torch.testing.assert_close(prefill.logits, full[:, : input_ids.shape[1]], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(torch.stack(step_logits, 1), full[:, input_ids.shape[1] :], atol=1e-4, rtol=1e-4)
    assert (no_mask - full).abs().max() > 1e-3  # without the mask the image positions are wrong


def test_action_expert_runs_on_the_real_cache(tiny):
    tokenizer, config, model, pixel_values, grid, input_ids = tiny
    with torch.no_grad():
        out = model(
            input_ids=input_ids,
            pixel_values=pixel_values,
            image_grid_thw=grid,
            mm_token_type_ids=image_token_types(input_ids, model.config.image_token_id),
            use_cache=True,
        )
    layers = cache_layers(out.past_key_values)
    text = model.config.text_config
    assert len(layers) == text.num_hidden_layers
    head_dim = text.hidden_size // text.num_attention_heads
    assert layers[0][0].shape == (1, text.num_key_value_heads, input_ids.shape[1], head_dim)
    expert = ActionExpert(ActionExpertConfig(width=32), text.num_hidden_layers, text.num_key_value_heads, head_dim)
    velocity = expert(torch.zeros(1, 10, 3), torch.zeros(1), torch.zeros(1, 4, 3), layers)
    assert velocity.shape == (1, 10, 3) and torch.isfinite(velocity).all()


def test_numpy_rope_positions_match_the_model(tiny):
    from spanvla_ros.inputs import rope_positions

    tokenizer, config, model, pixel_values, grid, input_ids = tiny
    expected, delta = model.model.get_rope_index(
        input_ids, mm_token_type_ids=image_token_types(input_ids, model.config.image_token_id), image_grid_thw=grid
    )
    positions, our_delta = rope_positions(input_ids[0].numpy(), model.config.image_token_id, grid.numpy(), 2)
    np.testing.assert_array_equal(positions, expected.numpy())
    assert our_delta == int(delta.reshape(-1)[0])


@pytest.mark.parametrize("image_size", [112, 140])
def test_batched_window_attention_matches_transformers_window_loop(tiny, image_size):
    """One SDPA over all windows gives what transformers' per-window loop gives: equal windows (112²) and unequal
    ones at the image edge (140²: 5 merged units a side, windows of 2)."""
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLVisionAttention

    from spanvla_ros.model.vlm import BatchedWindowAttention

    _, config, model, _, _, _ = tiny
    images = np.random.default_rng(1).integers(0, 255, size=(3, image_size, image_size, 3), dtype=np.uint8)
    pixel_values, grid = patchify(images, config)
    visual = model.model.visual
    assert all(isinstance(block.attn, BatchedWindowAttention) for block in visual.blocks)
    with torch.no_grad():
        batched = visual(pixel_values, grid_thw=grid).pooler_output
        for block in visual.blocks:
            block.attn.__class__ = Qwen2_5_VLVisionAttention
        try:
            looped = visual(pixel_values, grid_thw=grid).pooler_output
        finally:
            for block in visual.blocks:
                block.attn.__class__ = BatchedWindowAttention
    assert batched.shape == looped.shape == (3 * (image_size // 28) ** 2, config.hidden_size)
    torch.testing.assert_close(batched, looped, atol=1e-5, rtol=1e-4)


def test_padding_the_vision_mlp_leaves_the_image_embeddings_unchanged():
    """``pad_vision_mlp`` (the CUDA backend's transform: Qwen2.5-VL's 3420-wide vision MLP runs 2.5× faster at
    3456) widens every block's MLP to a multiple of the given size with zero units: same image embeddings."""
    from spanvla_ros.model.vlm import pad_vision_mlp

    torch.manual_seed(0)
    tokenizer = train_tokenizer(CORPUS, vocab_size=300, num_action_tokens=32)
    config = VLMConfig(vision_intermediate_size=100)
    model = build_vlm(config, tokenizer).eval()
    images = np.random.default_rng(1).integers(0, 255, size=(2, 112, 112, 3), dtype=np.uint8)
    pixel_values, grid = patchify(images, config)
    with torch.no_grad():
        before = model.model.visual(pixel_values, grid_thw=grid)
        before = getattr(before, "pooler_output", before)
        assert pad_vision_mlp(model, multiple=64) == 128
        after = model.model.visual(pixel_values, grid_thw=grid)
        after = getattr(after, "pooler_output", after)
    mlp = model.model.visual.blocks[0].mlp
    assert (mlp.gate_proj.out_features, mlp.up_proj.out_features, mlp.down_proj.in_features) == (128, 128, 128)
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-6)
    assert pad_vision_mlp(model, multiple=64) == 128  # already padded: unchanged
