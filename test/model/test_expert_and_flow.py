import numpy as np
import pytest
import torch

from spanvla_ros.model.action_tokens import ActionCodebook, ActionTokenError, deltas_to_poses, poses_to_deltas
from spanvla_ros.model.expert import ActionExpert, ActionExpertConfig, selected_layers
from spanvla_ros.model.flow import euler_integrate, flow_matching_loss, history_initialisation

LAYERS, KV_HEADS, HEAD_DIM, SEQ = 6, 2, 16, 12


def cache(batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        (
            torch.randn(batch, KV_HEADS, SEQ, HEAD_DIM, generator=g),
            torch.randn(batch, KV_HEADS, SEQ, HEAD_DIM, generator=g),
        )
        for _ in range(LAYERS)
    ]


def expert(interval=2):
    torch.manual_seed(0)
    return ActionExpert(ActionExpertConfig(width=32, layer_interval=interval), LAYERS, KV_HEADS, HEAD_DIM).eval()


def inputs(batch=2):
    g = torch.Generator().manual_seed(1)
    return torch.randn(batch, 10, 3, generator=g), torch.rand(batch, generator=g), torch.randn(batch, 4, 3, generator=g)


def test_layer_selection_interval():
    assert selected_layers(6, 1) == [0, 1, 2, 3, 4, 5]
    assert selected_layers(6, 2) == [1, 3, 5]
    assert selected_layers(6, 4) == [1, 5]
    assert selected_layers(6, 100) == [5]


def test_expert_output_shape():
    actions, tau, history = inputs()
    assert expert()(actions, tau, history, cache()).shape == (2, 10, 3)


def test_sparse_cache_is_real():
    model = expert(interval=2)
    actions, tau, history = inputs()
    kv = cache()
    base = model(actions, tau, history, kv)
    for layer in range(LAYERS):
        changed = list(kv)
        changed[layer] = (kv[layer][0] + 1.0, kv[layer][1] * 2.0)
        moved = not torch.allclose(model(actions, tau, history, changed), base)
        assert moved == (layer in model.layers), layer


def test_masked_cache_positions_are_ignored():
    model = expert()
    actions, tau, history = inputs()
    kv = cache()
    mask = torch.ones(2, SEQ, dtype=torch.bool)
    mask[:, -3:] = False
    base = model(actions, tau, history, kv, mask)
    garbage = [(k.clone(), v.clone()) for k, v in kv]
    for k, v in garbage:
        k[:, :, -3:] = 50.0
        v[:, :, -3:] = -50.0
    torch.testing.assert_close(model(actions, tau, history, garbage, mask), base)


def test_zero_velocity_plan_equals_the_history_initialisation():
    history = torch.tensor([[[-15.0, 0.0, 0.0], [-10.0, 0.0, 0.0], [-5.0, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    start = history_initialisation(history, 0.5, 10, 0.5)
    np.testing.assert_allclose(start[0, :, 0].numpy(), 5.0 * np.arange(1, 11), atol=1e-5)
    plan = euler_integrate(lambda a, tau: torch.zeros_like(a), start, 5)
    torch.testing.assert_close(plan, start)


def test_history_initialisation_follows_a_constant_turn():
    speed, yaw_rate, dt = 8.0, 0.2, 0.5
    t = np.arange(-3, 1) * dt
    # History on an arc that ends at the origin heading 0.
    hist = np.stack(
        [speed / yaw_rate * np.sin(yaw_rate * t), speed / yaw_rate * (1 - np.cos(yaw_rate * t)), yaw_rate * t], -1
    )
    start = history_initialisation(torch.tensor(hist[None], dtype=torch.float64), dt, 4, dt)[0].numpy()
    tf = np.arange(1, 5) * dt
    expected = np.stack(
        [speed / yaw_rate * np.sin(yaw_rate * tf), speed / yaw_rate * (1 - np.cos(yaw_rate * tf)), yaw_rate * tf], -1
    )
    np.testing.assert_allclose(start, expected, atol=0.05)


def test_flow_loss_is_zero_for_the_exact_velocity():
    target, start, tau = torch.randn(4, 10, 3), torch.randn(4, 10, 3), torch.rand(4)
    assert flow_matching_loss(lambda a, t: target - start, target, start, tau).item() == pytest.approx(0.0)
    assert flow_matching_loss(lambda a, t: torch.zeros_like(a), target, start, tau).item() > 0.1
    # One Euler step of the exact velocity lands on the target.
    torch.testing.assert_close(euler_integrate(lambda a, t: target - start, start, 1), target)


def test_codebook_round_trips_within_its_quantisation_error(tmp_path):
    rng = np.random.default_rng(0)
    trajectories = []
    for _ in range(200):
        speed, yaw_rate = rng.uniform(0, 15), rng.uniform(-0.3, 0.3)
        deltas = np.tile([speed * 0.5, 0.0, yaw_rate * 0.5], (10, 1))
        trajectories.append(deltas_to_poses(deltas))
    trajectories = np.stack(trajectories)
    codebook = ActionCodebook.fit(trajectories, 128, seed=0)
    errors = [np.abs(codebook.decode(codebook.encode(t))[:, :2] - t[:, :2]).max() for t in trajectories]
    assert np.median(errors) < 0.5 and max(errors) < 1.5
    np.testing.assert_allclose(deltas_to_poses(poses_to_deltas(trajectories[3])), trajectories[3], atol=1e-9)
    loaded = ActionCodebook.load(codebook.save(tmp_path / "codebook.safetensors"))
    np.testing.assert_array_equal(loaded.centers, codebook.centers)
    with pytest.raises(ActionTokenError, match="in \\[0, 128\\)"):
        codebook.decode(np.array([0, 999]))


def test_the_sde_sampler_spreads_plans_and_scores_its_own_steps():
    from spanvla_ros.model.flow import euler_integrate, sde_integrate, sde_log_prob

    drift = torch.tensor([1.0, -0.5, 0.1])
    velocity = lambda a, tau: drift.expand_as(a)  # noqa: E731
    start = torch.zeros(4, 10, 3)
    path = sde_integrate(velocity, start, 5, noise_std=0.2, generator=torch.Generator().manual_seed(3))
    assert path.shape == (4, 6, 10, 3)
    assert path[:, -1].std(dim=0).mean() > 0.05  # the members of a group differ
    # The noise is what the path's log-probability measures: -Σε²/2 per member, from the same draws.
    generator = torch.Generator().manual_seed(3)
    noise = torch.stack([torch.randn(4, 10, 3, generator=generator) for _ in range(5)], dim=1)
    log_prob, means = sde_log_prob(velocity, path, 0.2)
    torch.testing.assert_close(log_prob, -0.5 * (noise**2).sum(dim=(1, 2, 3)), rtol=1e-4, atol=1e-3)
    torch.testing.assert_close(means, path[:, :-1] + 0.2 * drift)
    # Without noise it is the Euler flow.
    torch.testing.assert_close(
        sde_integrate(velocity, start, 5, noise_std=0.0)[:, -1], euler_integrate(velocity, start, 5)
    )
