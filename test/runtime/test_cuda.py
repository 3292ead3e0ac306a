"""The CUDA paths, on a machine with a CUDA GPU (``bench/gpu_check.sh`` runs these first): the model's methods on the
device in bf16, training steps there, and the runtime pipeline with CUDA graphs against eager execution."""

import copy

import numpy as np
import pytest
import torch

from spanvla_ros.benchmarks.model import tiny_model
from spanvla_ros.model.spanvla import Observation

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not torch.cuda.is_available(), reason="no CUDA GPU here: bench/gpu_check.sh runs these on a GPU machine"
    ),
]
HISTORY = np.array([[-15.0, 0.0, 0.0], [-10.0, 0.0, 0.0], [-5.0, 0.0, 0.0], [0.0, 0.0, 0.0]])


def observation(seed=0):
    rng = np.random.default_rng(seed)
    return Observation(rng.integers(0, 255, (2, 112, 112, 3), dtype=np.uint8), "go straight", 10.0, 0.0, HISTORY)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_model_methods_run_on_cuda(dtype):
    model = tiny_model().to("cuda", dtype)
    obs = observation()
    reasoning = model.reason(obs, max_new_tokens=6)
    assert reasoning.kv_layers[0][0].device.type == "cuda"
    plan = model.plan(reasoning, HISTORY)
    reference = tiny_model().plan(tiny_model().reason(obs, max_new_tokens=6), HISTORY)
    assert plan.shape == (10, 3) and np.isfinite(plan).all()
    if dtype == torch.float32:
        np.testing.assert_allclose(plan, reference, atol=1e-2)
    assert model.plan_autoregressive(obs, num_actions=3).shape == (3, 3)
    model.train()
    loss = model.language_loss(obs, "decision: keep lane", plan)
    loss.backward()
    history = torch.tensor(HISTORY[None], dtype=torch.float32, device="cuda")
    target = torch.tensor(plan[None], dtype=torch.float32, device="cuda")
    flow = model.flow_loss(reasoning.kv_layers, history, target, generator=torch.Generator().manual_seed(0))
    flow.backward()
    poses, path = model.flow_sample_sde(reasoning.kv_layers, history, 0.1, generator=torch.Generator().manual_seed(0))
    log_prob, _ = model.flow_path_log_prob(reasoning.kv_layers, history, path, 0.1)
    assert torch.isfinite(log_prob).all() and poses.device.type == "cuda"


def test_pipeline_with_cuda_graphs_matches_eager_on_cuda(tmp_path):
    from spanvla_ros.runtime import SpanVLARuntime
    from spanvla_ros.runtime.backends.torch_backend import TorchBackend

    model = tiny_model()
    tokenizer = tmp_path / "tokenizer.json"
    model.tokenizer.backend_tokenizer.save(str(tokenizer))
    eager = SpanVLARuntime(TorchBackend(copy.deepcopy(model), device="cuda", cuda_graphs=False), tokenizer)
    graphs_backend = TorchBackend(copy.deepcopy(model), device="cuda", cuda_graphs=True)
    graphs = SpanVLARuntime(graphs_backend, tokenizer)
    obs = observation(1)
    args = (obs.images, obs.command, obs.speed_mps, obs.acceleration_mps2, HISTORY)
    for _ in range(2):  # the second pass replays the captured graphs on the reused working buffer
        a, b = eager.reason(*args, max_new_tokens=12), graphs.reason(*args, max_new_tokens=12)
        assert a.token_ids == b.token_ids
        np.testing.assert_allclose(graphs.plan(b, HISTORY), eager.plan(a, HISTORY), atol=1e-3)
    assert graphs_backend.graph_status == {"decode": "captured", "flow": "captured"}
    # A finished pass keeps its own copy: the next pass reuses the working buffer without touching it.
    kept = graphs.plan(b, HISTORY)
    graphs.reason(observation(2).images, "turn left", 5.0, 0.0, HISTORY, max_new_tokens=12)
    np.testing.assert_allclose(graphs.plan(b, HISTORY), kept, atol=1e-5)


def test_stage2_trains_on_cuda(tmp_path):
    model = tiny_model().to("cuda")
    reasoning = model.reason(observation(), max_new_tokens=4)
    optimizer = torch.optim.AdamW(model.expert.parameters(), lr=1e-3)
    history = torch.tensor(HISTORY[None], dtype=torch.float32, device="cuda")
    target = torch.tensor([[[2.0 * (i + 1), 0.0, 0.0] for i in range(10)]], device="cuda")
    losses = []
    for _ in range(20):
        loss = model.flow_loss(reasoning.kv_layers, history, target, generator=torch.Generator().manual_seed(0))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_stage1_with_the_driving_state_head_trains_on_cuda():
    """The stage-1 objective with its driving-state head on a CUDA model: the head follows the model onto the device
    (it is made after the model moved there) and a step lowers the head's loss."""
    from spanvla_ros.scene import Agent, scene_to_dict, straight_road_scene
    from spanvla_ros.training.config import SFTVLMConfig
    from spanvla_ros.training.sft import LanguageObjective

    model = tiny_model().to("cuda").train()
    objective = LanguageObjective(model, SFTVLMConfig(driving_state_weight=1.0))
    assert {p.device.type for p in objective.driving_state_head.parameters()} == {"cuda"}
    lead = Agent.constant_velocity("lead", (30.0, 0.0, 0.0), 8.0, 41)
    obs = observation()
    sample = {
        "images": obs.images,
        "command": obs.command,
        "speed_mps": obs.speed_mps,
        "acceleration_mps2": 0.0,
        "ego_history": HISTORY,
        "reasoning": {"text": "decision: keep lane"},
        "target": [[2.0 * (i + 1), 0.0, 0.0] for i in range(10)],
        "scene": scene_to_dict(straight_road_scene(agents=(lead,))),
    }
    optimizer = torch.optim.Adam([*model.vlm.parameters(), *objective.driving_state_head.parameters()], lr=3e-3)
    losses = []
    for _ in range(10):
        optimizer.zero_grad()
        objective([sample]).backward()
        optimizer.step()
        losses.append(objective.terms["driving_state"])
    assert losses[-1] < losses[0]


def test_frames_are_patchified_on_the_gpu_as_on_the_host():
    from spanvla_ros.inputs import VisionGeometry, patchify
    from spanvla_ros.runtime.backends.torch_backend import TorchBackend

    backend = TorchBackend(tiny_model(), device="cuda", num_images=2)
    frames = observation(5).images
    pixels = backend.pixel_values(frames, VisionGeometry())
    assert pixels.device.type == "cuda"
    # CUDA divides by a scalar through its reciprocal: within an ulp of the host's pixels, not bit for bit.
    torch.testing.assert_close(pixels.cpu(), torch.from_numpy(patchify(frames, VisionGeometry())[0]), rtol=0, atol=1e-6)


def test_the_cuda_backend_pads_the_vision_mlp_and_embeds_the_same():
    """A vision MLP 100 wide (as Qwen2.5-VL's 3420, not a multiple of 128): the CUDA backend pads it to 128 and
    embeds the frames as the unpadded model does."""
    from spanvla_ros.benchmarks.model import bench_tokenizer, random_codebook
    from spanvla_ros.model import SpanVLA, SpanVLAConfig
    from spanvla_ros.model.vlm import VLMConfig
    from spanvla_ros.runtime.backends.torch_backend import TorchBackend

    def model():
        torch.manual_seed(0)
        config = SpanVLAConfig(vlm=VLMConfig(vision_intermediate_size=100))
        return SpanVLA(config, bench_tokenizer(), random_codebook()).eval()

    pixels = torch.randn(2 * 64, 3 * 2 * 14 * 14)
    grid = torch.tensor([[1, 8, 8]] * 2)
    with torch.no_grad():
        expected = model().image_embeddings(pixels, grid)
    backend = TorchBackend(model(), device="cuda", num_images=2)
    assert backend.model.vlm.model.visual.blocks[0].mlp.gate_proj.out_features == 128
    torch.testing.assert_close(backend.encode_images(pixels).cpu(), expected, rtol=1e-4, atol=1e-4)
    assert backend.vision_status == "compiled"  # by default on CUDA, and the same embeddings in fp32
