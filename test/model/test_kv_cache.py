"""The preallocated KV buffer: written in place, it gives what transformers' DynamicCache gives, in eager and in
static (CUDA-graph) form."""

import numpy as np
import pytest
import torch
from test_spanvla import observation

from spanvla_ros.benchmarks.model import tiny_model
from spanvla_ros.inputs import rope_positions


@pytest.fixture(scope="module")
def prompt():
    model = tiny_model()
    ids, pixel_values, grid = model.prompt(observation())
    with torch.no_grad():
        embeds = model.vlm.model.visual(pixel_values, grid_thw=grid).pooler_output
    positions, delta = rope_positions(ids[0].numpy(), model.vlm.config.image_token_id, grid.numpy(), 2)
    return model, ids, embeds, torch.from_numpy(positions), delta


@torch.no_grad()
def test_buffer_prefill_and_decode_match_the_growing_cache(prompt):
    model, ids, embeds, positions, delta = prompt
    logits, keys, values = model.prefill(ids, embeds, positions, torch.ones_like(ids))
    buffer = model.new_kv_buffer(ids.shape[1] + 4)
    data_pointer = buffer.keys.data_ptr()
    torch.testing.assert_close(model.prefill_into(buffer, ids, embeds, positions), logits[:, 0])
    for token in (7, 11, 13):
        position = torch.full((3, 1, 1), buffer.length + delta)
        length = keys.shape[3]
        logits, keys, values = model.decode_step(
            torch.tensor([[token]]), position, torch.ones(1, length + 1, dtype=torch.int64), keys, values
        )
        torch.testing.assert_close(model.decode_into(buffer, torch.tensor([[token]]), position), logits[:, 0])
    assert buffer.length == keys.shape[3] == ids.shape[1] + 3
    assert buffer.keys.data_ptr() == data_pointer  # written in place, never reallocated
    np.testing.assert_allclose(buffer.host()[0], keys.numpy(), atol=1e-6)
    np.testing.assert_allclose(buffer.host()[1], values.numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="do not fit"):
        model.decode_into(buffer, torch.tensor([[7]]), position + 1)
        model.decode_into(buffer, torch.tensor([[7]]), position + 2)


@torch.no_grad()
def test_static_decode_over_the_whole_buffer_matches_eager(prompt):
    """Fixed shapes, a device-side write position and a mask over positions ≥ length: what a CUDA graph replays."""
    model, ids, embeds, positions, delta = prompt
    eager, static = model.new_kv_buffer(ids.shape[1] + 8), model.new_kv_buffer(ids.shape[1] + 8)
    model.prefill_into(eager, ids, embeds, positions)
    model.prefill_into(static, ids, embeds, positions)
    static.keys[:, :, :, static.length :] = 1e3  # stale data past the length must not leak into attention
    write = torch.zeros(1, dtype=torch.int64)
    attend = torch.zeros(1, static.max_length, dtype=torch.bool)
    for token in (3, 5, 8, 2):
        position = torch.full((3, 1, 1), eager.length + delta)
        expected = model.decode_into(eager, torch.tensor([[token]]), position)
        write.fill_(static.length)
        attend[:, : static.length + 1] = True
        got = model.decode_static(static, torch.tensor([[token]]), position, write, attend)
        static.advance(1)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(static.host()[0], eager.host()[0], atol=1e-5)
