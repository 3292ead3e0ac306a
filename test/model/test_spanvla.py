"""The SpanVLA object: reasoning with a cache, flow planning, AR action tokens, losses, and checkpoints."""

import copy
import json

import numpy as np
import pytest
import torch

from spanvla_ros.files import file_sha256
from spanvla_ros.model.action_tokens import ActionCodebook, deltas_to_poses
from spanvla_ros.model.expert import ActionExpertConfig
from spanvla_ros.model.flow import history_initialisation
from spanvla_ros.model.spanvla import CheckpointError, Observation, SpanVLA, SpanVLAConfig
from spanvla_ros.model.tokenizer import FAST_MODE_TEXT, THINK_END, THINK_START, train_tokenizer

CORPUS = [
    f"{THINK_START} lead vehicle brakes ahead; decelerate {THINK_END}",
    FAST_MODE_TEXT,
    "command: go straight. speed 10.0 m/s, acceleration 0.0 m/s2, history (-15.0,0.0)",
] * 20
NUM_ACTIONS = 16


def straight_trajectories(count=64, seed=0):
    rng = np.random.default_rng(seed)
    return np.stack(
        [deltas_to_poses(np.tile([rng.uniform(0, 8), 0.0, rng.uniform(-0.05, 0.05)], (10, 1))) for _ in range(count)]
    )


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    tokenizer = train_tokenizer(CORPUS, vocab_size=200, num_action_tokens=NUM_ACTIONS)
    codebook = ActionCodebook.fit(straight_trajectories(), NUM_ACTIONS)
    config = SpanVLAConfig(expert=ActionExpertConfig(width=32), num_action_tokens=NUM_ACTIONS, max_reasoning_tokens=8)
    return SpanVLA(config, tokenizer, codebook).eval()


def observation(seed=0):
    rng = np.random.default_rng(seed)
    history = np.array([[-15.0, 0.0, 0.0], [-10.0, 0.0, 0.0], [-5.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    return Observation(rng.integers(0, 255, (2, 112, 112, 3), dtype=np.uint8), "go straight", 10.0, 0.0, history)


def test_reason_returns_text_and_a_cache_over_prompt_and_reasoning(model):
    reasoning = model.reason(observation())
    prompt_len = model.prompt(observation())[0].shape[1]
    assert 1 <= len(reasoning.token_ids) <= 8
    assert len(reasoning.kv_layers) == model.vlm.config.text_config.num_hidden_layers
    assert reasoning.kv_layers[0][0].shape[2] == prompt_len + len(reasoning.token_ids)
    assert isinstance(reasoning.text, str)


def test_plan_with_zero_velocity_is_the_history_initialisation(model):
    reasoning = model.reason(observation())
    with torch.no_grad():
        weight, bias = model.expert.head.weight.clone(), model.expert.head.bias.clone()
        model.expert.head.weight.zero_()
        model.expert.head.bias.zero_()
        try:
            plan = model.plan(reasoning, observation().history_ego)
        finally:
            model.expert.head.weight.copy_(weight)
            model.expert.head.bias.copy_(bias)
    expected = history_initialisation(torch.tensor(observation().history_ego[None], dtype=torch.float32), 0.5, 10, 0.5)
    np.testing.assert_allclose(plan, expected[0].numpy(), atol=1e-5)
    assert plan.shape == (10, 3)


def test_autoregressive_plan_decodes_action_tokens(model):
    poses = model.plan_autoregressive(observation(), num_actions=10)
    assert poses.shape == (10, 3) and np.isfinite(poses).all()
    assert model.plan_autoregressive(observation(), num_actions=4).shape == (4, 3)


def test_save_load_gives_identical_outputs_and_refuses_tampering(model, tmp_path):
    reasoning = model.reason(observation())
    g = torch.Generator().manual_seed(0)
    before = model.plan(reasoning, observation().history_ego, init="noise", generator=g)
    directory = model.save(tmp_path / "ckpt")
    loaded = SpanVLA.load(directory)
    reasoning2 = loaded.reason(observation())
    assert reasoning2.token_ids == reasoning.token_ids
    after = loaded.plan(reasoning2, observation().history_ego, init="noise", generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(after, before, atol=1e-6)
    weights = directory / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256 does not match"):
        SpanVLA.load(directory)


def test_history_noise_is_a_training_setting_and_old_configs_still_load(model, tmp_path):
    """The history noise belongs to stage 2, not to the model: flow_loss takes it as an argument (0 = the clean
    history), and a checkpoint whose config.json still carries ``history_noise_std`` loads."""
    obs = observation()
    reasoning = model.reason(obs, max_new_tokens=1)
    history = torch.tensor(obs.history_ego, dtype=torch.float32)[None]
    target = torch.tensor(model.plan(reasoning, obs.history_ego), dtype=torch.float32)[None]

    def loss(noise: float) -> float:
        g = torch.Generator().manual_seed(0)
        return model.flow_loss(reasoning.kv_layers, history, target, generator=g, history_noise_std=noise).item()

    assert loss(0.0) == loss(0.0)
    assert loss(0.5) != loss(0.0)
    directory = model.save(tmp_path / "ckpt")
    config = json.loads((directory / "config.json").read_text())
    config["expert"]["history_noise_std"] = 0.05
    (directory / "config.json").write_text(json.dumps(config))
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["files"]["config.json"] = file_sha256(directory / "config.json")
    (directory / "manifest.json").write_text(json.dumps(manifest))
    assert SpanVLA.load(directory).config.expert == model.config.expert


def test_vlm_saved_with_save_pretrained_loads_through_the_pretrained_path(model, tmp_path):
    from spanvla_ros.model.vlm import VLMConfig, build_vlm

    model.vlm.save_pretrained(tmp_path / "vlm")
    loaded = build_vlm(VLMConfig(pretrained_path=str(tmp_path / "vlm")), model.tokenizer)
    for (name, a), (_, b) in zip(model.vlm.state_dict().items(), loaded.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
    with pytest.raises(FileNotFoundError, match="not found"):
        build_vlm(VLMConfig(pretrained_path=str(tmp_path / "missing")), model.tokenizer)


def test_flow_loss_overfits_16_samples(model):
    """Stage-2 style: VLM frozen (cache under no_grad), the expert alone learns; loss falls at least 10x."""
    torch.manual_seed(0)
    observations = [observation(seed) for seed in range(16)]
    with torch.no_grad():
        caches = [model.reason(o, max_new_tokens=1).kv_layers for o in observations]
    kv = [(torch.cat([c[i][0] for c in caches]), torch.cat([c[i][1] for c in caches])) for i in range(len(caches[0]))]
    history = torch.tensor(np.stack([o.history_ego for o in observations]), dtype=torch.float32)
    rng = np.random.default_rng(1)
    targets = torch.tensor(
        np.stack(
            [
                deltas_to_poses(np.tile([5.0 + rng.uniform(-2, 2), 0, rng.uniform(-0.05, 0.05)], (10, 1)))
                for _ in range(16)
            ]
        ),
        dtype=torch.float32,
    )
    optimizer = torch.optim.AdamW(model.expert.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    model.expert.train()
    losses = []
    for _ in range(300):
        loss = model.flow_loss(kv, history, targets, generator=g)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.expert.eval()
    assert np.mean(losses[-20:]) < np.mean(losses[:5]) / 10, (losses[:5], losses[-20:])
    assert all(p.grad is None for p in model.vlm.parameters())


def test_unconstrained_decoding_reports_a_non_action_token(model):
    from spanvla_ros.model.action_tokens import ActionTokenError

    with torch.no_grad():
        bias = model.vlm.lm_head.weight.new_zeros(model.vlm.lm_head.weight.shape[0])
        bias[model.tokenizer.eos_token_id] = 1e4  # force a text token where an action belongs
        handle = model.vlm.lm_head.register_forward_hook(lambda m, i, out: out + bias)
        try:
            with pytest.raises(ActionTokenError, match="where an action token was expected"):
                model.plan_autoregressive(observation(), num_actions=3, constrained=False)
            assert model.plan_autoregressive(observation(), num_actions=3).shape == (3, 3)
        finally:
            handle.remove()


def test_language_loss_covers_reasoning_and_action_tokens(model):
    target = straight_trajectories(1)[0]
    with torch.no_grad():
        text_only = model.language_loss(observation(), f"{THINK_START} decelerate {THINK_END}")
        with_actions = model.language_loss(observation(), f"{THINK_START} decelerate {THINK_END}", target)
    assert torch.isfinite(text_only) and torch.isfinite(with_actions)
    assert not torch.isclose(text_only, with_actions)


# --- precision: every method with the weights in bf16 / fp16 ----------------------------------------------------------
# Each tensor a method makes takes the model's device and dtype: one made in fp32 on the CPU beside bf16 weights
# raises in the first matmul, as a CPU tensor beside CUDA weights does. The CUDA run is in test/model/test_cuda.py.


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_every_method_runs_in_half_precision_and_stays_near_fp32(model, dtype):
    model = copy.deepcopy(model).to(dtype)
    assert model.dtype == dtype and model.pose_scale.dtype == torch.float32
    obs = observation()
    reasoning = model.reason(obs)
    assert reasoning.kv_layers[0][0].dtype == dtype
    plan = model.plan(reasoning, obs.history_ego)
    reference = model.plan(model.reason(obs), obs.history_ego)
    assert plan.dtype == np.float32 and np.isfinite(plan).all()
    # Half-precision weights move the plan by centimetres, not metres (the flow's state stays float32).
    assert np.abs(plan[:, :2] - reference[:, :2]).max() < 1.0
    assert model.plan_autoregressive(obs, num_actions=3).shape == (3, 3)
    loss = model.language_loss(obs, "lead vehicle brakes ahead", reference)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    layers = [(k.to(dtype), v.to(dtype)) for k, v in reasoning.kv_layers]
    history = torch.tensor(obs.history_ego, dtype=torch.float32)[None]
    target = torch.tensor(reference, dtype=torch.float32)[None]
    flow = model.flow_loss(layers, history, target, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(flow)
    poses, path = model.flow_sample_sde(layers, history, 0.1, generator=torch.Generator().manual_seed(0))
    log_prob, _ = model.flow_path_log_prob(layers, history, path, 0.1)
    assert poses.dtype == torch.float32 and torch.isfinite(log_prob).all()


def test_pose_scale_is_exact_float32_after_a_cast(model):
    model = copy.deepcopy(model).to(torch.bfloat16)
    scale = model.pose_scale.tolist()
    assert scale == pytest.approx(list(model.config.expert.pose_scale), abs=1e-7)
    assert "pose_scale" not in model.state_dict()
