"""Training stages on a tiny dataset and a tiny model: losses fall, the frozen VLM stays frozen, resume continues,
torchrun ranks agree, rewards are right, bad input stops before training."""

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from spanvla_ros.config import ConfigError
from spanvla_ros.data.dataset import DatasetError
from spanvla_ros.model import SpanVLA
from spanvla_ros.training import load_train_config
from spanvla_ros.training.rewards import (
    RewardConfig,
    cot_penalty,
    group_advantages,
    negative_penalty,
    recovery_reward,
    total_reward,
)

ROOT = Path(__file__).resolve().parents[2]
TINY = {
    "seed": 0,
    "data": {
        "episodes": 2,
        "seed": 3,
        "workers": 1,
        "validation_fraction": 0.3,
        "generation": {"episode_s": 7.0, "warmup_s": 1.0, "envs": ["highway", "two-way"], "flaw_probability": 1.0},
    },
    "model": {
        "vlm": {
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_layers": 2,
            "num_heads": 2,
            "num_kv_heads": 1,
            "vision_depth": 1,
            "vision_hidden_size": 32,
            "vision_heads": 1,
        },
        "expert": {"width": 32, "self_attention_heads": 2},
        "num_action_tokens": 32,
        "max_reasoning_tokens": 8,
        "vocab_size": 200,
    },
    "sft_vlm": {"optim": {"steps": 2, "batch_size": 2, "eval_every": 2, "checkpoint_every": 2, "lr": 3e-3}},
    "sft_bridge": {"optim": {"steps": 3, "batch_size": 4, "eval_every": 3, "checkpoint_every": 3}},
    "grpo": {"optim": {"steps": 1, "batch_size": 1, "checkpoint_every": 1}, "group_size": 3, "max_reasoning_tokens": 5},
}


def write_config(tmp: Path, data_dir: Path, **overrides) -> Path:
    document = json.loads(json.dumps(TINY))
    document["data"]["dir"] = str(data_dir)
    document["out_dir"] = str(tmp / "out")
    for section, values in overrides.items():
        document[section] = {**document.get(section, {}), **values}
    path = tmp / "train.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from spanvla_ros.config import config_from_dict
    from spanvla_ros.data.generate import GenerationConfig, generate_dataset

    out = tmp_path_factory.mktemp("train_data") / "data"
    config = config_from_dict(GenerationConfig, TINY["data"]["generation"])
    generate_dataset(out, episodes=2, seed=3, config=config, progress=False)
    return out


@pytest.fixture(scope="module")
def stage1(dataset, tmp_path_factory):
    from spanvla_ros.training.sft import sft_vlm

    tmp = tmp_path_factory.mktemp("stage1")
    config = load_train_config(write_config(tmp, dataset))
    return sft_vlm(config, progress=False), config


def test_reward_terms_match_hand_computed_values():
    straight = np.column_stack([np.arange(1, 11) * 5.0, np.zeros(10), np.zeros(10)])
    shifted = straight + [0.0, 0.85, 0.0]  # 0.85 m from the negative: half the 1.7 m radius
    assert negative_penalty(shifted, [straight], 1.7) == pytest.approx(0.25)
    assert negative_penalty(straight + [0.0, 2.0, 0.0], [straight], 1.7) == 0.0
    assert recovery_reward(shifted, straight, 2.0) == pytest.approx(1 - 0.85 / 2.0)
    assert cot_penalty(16, 0.5, 32) == pytest.approx(0.5 + 0.5)
    config = RewardConfig(negative_weight=5.0, recovery_weight=1.0, cot_weight=0.1)
    assert total_reward(0.9, 0.25, 0.575, 1.0, config) == pytest.approx(0.9 - 1.25 + 0.575 - 0.1)
    advantages = group_advantages(np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(advantages, [-1.2247, 0.0, 1.2247], atol=1e-3)
    assert np.all(group_advantages(np.array([0.5, 0.5])) == 0.0)


def test_one_step_lowers_the_language_and_flow_losses(stage1):
    from spanvla_ros.training.config import SFTVLMConfig
    from spanvla_ros.training.data import SampleReader
    from spanvla_ros.training.sft import FlowObjective, LanguageObjective, context_cache, pad_caches

    checkpoint, config = stage1
    model = SpanVLA.load(checkpoint).train()
    reader = SampleReader(config.data.dir)
    batch = [reader[0], reader[1]]
    objective = LanguageObjective(model, SFTVLMConfig(reasoning_weight=1.0, action_token_weight=1.0))
    optimizer = torch.optim.SGD(model.vlm.parameters(), lr=0.05)
    before = objective(batch)
    before.backward()
    optimizer.step()
    with torch.no_grad():
        after = objective(batch)
    assert after.item() < before.item()

    caches = [context_cache(model, s) for s in batch]
    selected, mask = pad_caches(caches)
    history = torch.tensor(np.stack([s["ego_history"] for s in batch]), dtype=torch.float32)
    target = torch.tensor(np.stack([s["target"] for s in batch]), dtype=torch.float32)
    flow = FlowObjective(model)
    optimizer = torch.optim.SGD(model.expert.parameters(), lr=0.005)  # one small step: a large one can overshoot
    loss = lambda: flow(
        model.sparse_kv_layers(selected),
        history,
        target,
        mask,  # noqa: E731
        generator=torch.Generator().manual_seed(0),
    )
    before = loss()
    before.backward()
    optimizer.step()
    with torch.no_grad():
        assert loss().item() < before.item()


def test_grpo_step_lowers_its_surrogate_on_a_fixed_group(stage1):
    from spanvla_ros.training.data import SampleReader
    from spanvla_ros.training.grpo import add_lora, rollout, sequence_logprobs

    checkpoint, config = stage1
    model = SpanVLA.load(checkpoint)
    add_lora(model, 4, 8)
    reader = SampleReader(config.data.dir)
    sample = next(reader[i] for i in range(len(reader)) if reader[i]["scene"])
    generator = torch.Generator().manual_seed(0)
    group = [rollout(model.eval(), sample, config, generator) for _ in range(3)]
    advantages = [1.0, -0.5, -0.5]
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)

    def surrogate():
        return torch.stack(
            [-a * sequence_logprobs(model, sample, g["tokens"]).mean() for g, a in zip(group, advantages, strict=True)]
        ).mean()

    before = surrogate()
    before.backward()
    optimizer.step()
    with torch.no_grad():
        assert surrogate().item() < before.item()


def test_flow_grpo_samples_differing_plans_and_its_step_favours_the_better_one(stage1):
    import copy

    from spanvla_ros.training.data import SampleReader
    from spanvla_ros.training.grpo import add_lora, flow_terms, rollout

    checkpoint, config = stage1
    model = SpanVLA.load(checkpoint)
    add_lora(model, 4, 8)
    assert config.grpo.flow_noise_std > 0  # the default samples the flow stochastically
    reader = SampleReader(config.data.dir)
    sample = next(reader[i] for i in range(len(reader)) if reader[i]["scene"])
    generator = torch.Generator().manual_seed(0)
    group = [rollout(model.eval(), sample, config, generator) for _ in range(4)]
    plans = np.stack([g["flow_path"][0, -1].numpy() for g in group])
    assert plans.std(axis=0).mean() > 1e-3  # a group's plans differ, so their rewards can
    reference = copy.deepcopy(model.expert).requires_grad_(False)
    model.expert.requires_grad_(True)
    optimizer = torch.optim.SGD(model.expert.parameters(), lr=0.05)
    advantages = [1.0, -1.0 / 3, -1.0 / 3, -1.0 / 3]
    noise = config.grpo.flow_noise_std

    def surrogate():
        terms = [flow_terms(model, reference, sample, g, noise) for g in group]
        return torch.stack([-a * logp for (logp, _), a in zip(terms, advantages, strict=True)]).sum(), terms

    before, terms = surrogate()
    assert all(kl.item() == pytest.approx(0.0, abs=1e-9) for _, kl in terms)  # no step yet: the expert is the SFT one
    before.backward()
    optimizer.step()
    with torch.no_grad():
        after, terms = surrogate()
    assert after.item() < before.item()
    assert all(kl.item() > 0 for _, kl in terms)


def test_stage2_leaves_the_vlm_bit_identical(stage1, tmp_path):
    from spanvla_ros.training.sft import sft_bridge

    checkpoint, config = stage1
    config = dataclasses.replace(config, out_dir=str(tmp_path / "out"))
    result = sft_bridge(config, init=checkpoint, progress=False)
    before, after = SpanVLA.load(checkpoint), SpanVLA.load(result)
    for (name, a), (_, b) in zip(before.vlm.state_dict().items(), after.vlm.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    changed = any(
        not torch.equal(a, b)
        for a, b in zip(before.expert.state_dict().values(), after.expert.state_dict().values(), strict=True)
    )
    assert changed


def test_stage2_co_training_trains_the_vlm_through_the_flow_loss(stage1, tmp_path):
    """π0-style (``sft_bridge.vlm_lr`` > 0): the flow loss's gradient reaches the VLM through its cache."""
    from spanvla_ros.training.sft import sft_bridge

    checkpoint, config = stage1
    bridge = dataclasses.replace(config.sft_bridge, vlm_lr=1e-3)
    config = dataclasses.replace(config, out_dir=str(tmp_path / "out"), sft_bridge=bridge)
    result = sft_bridge(config, init=checkpoint, progress=False)
    before, after = SpanVLA.load(checkpoint), SpanVLA.load(result)
    moved = [
        name
        for (name, a), (_, b) in zip(before.vlm.state_dict().items(), after.vlm.state_dict().items(), strict=True)
        if not torch.equal(a, b)
    ]
    assert any("visual" in name for name in moved) and any("language_model" in name for name in moved)


def test_knowledge_insulation_keeps_the_language_loss_and_the_same_context(stage1, dataset, tmp_path):
    """``sft_bridge.language_weight`` > 0: one teacher-forced pass gives the expert the same context as
    ``context_cache`` and stage 1's next-token loss, which the stage logs and trains beside the flow loss."""
    from spanvla_ros.data.dataset import SampleReader
    from spanvla_ros.training.sft import context_and_language_loss, context_cache, sft_bridge

    checkpoint, config = stage1
    model, sample = SpanVLA.load(checkpoint).eval(), SampleReader(dataset)[0]
    with torch.no_grad():
        (keys, values), language = context_and_language_loss(model, sample, config.sft_vlm)
        expected_keys, expected_values = context_cache(model, sample)
        stage1_loss = model.language_loss(observation_of(sample), sample["reasoning"]["text"], sample["target"])
    torch.testing.assert_close(keys, expected_keys, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(values, expected_values, rtol=1e-5, atol=1e-5)
    assert language.item() == pytest.approx(stage1_loss.item(), rel=1e-5)

    bridge = dataclasses.replace(config.sft_bridge, vlm_lr=1e-3, language_weight=1.0)
    config = dataclasses.replace(config, out_dir=str(tmp_path / "out"), sft_bridge=bridge)
    sft_bridge(config, init=checkpoint, progress=False)
    lines = (tmp_path / "out" / "sft_bridge" / "scalars.jsonl").read_text().splitlines()
    scalars = json.loads(lines[-1])
    assert len(lines) == config.sft_bridge.optim.steps and scalars["step"] == config.sft_bridge.optim.steps
    assert scalars["sft_bridge/language_loss"] > 0
    total = scalars["sft_bridge/flow_loss"] + scalars["sft_bridge/language_loss"]
    assert scalars["sft_bridge/loss"] == pytest.approx(total, rel=1e-5)


def test_residual_action_scale_gives_each_pose_its_own_units(stage1, tmp_path):
    """``sft_bridge.action_scale: residual``: the flow's units per pose are the RMS of the targets' departure from the
    history extrapolation (growing with the horizon), saved with the checkpoint and used by its plans."""
    from spanvla_ros.data.dataset import SampleReader
    from spanvla_ros.model.flow import history_initialisation
    from spanvla_ros.training.sft import sft_bridge

    checkpoint, config = stage1
    bridge = dataclasses.replace(config.sft_bridge, action_scale="residual")
    config = dataclasses.replace(config, out_dir=str(tmp_path / "out"), sft_bridge=bridge)
    model = SpanVLA.load(sft_bridge(config, init=checkpoint, progress=False))
    scale = np.array(model.config.expert.action_scale)
    assert scale.shape == (model.config.expert.num_poses, 3)
    assert scale[-1, 0] > scale[0, 0] and scale[-1, 1] > scale[0, 1]  # far poses depart further
    reader = SampleReader(Path(config.data.dir))
    history = torch.tensor(np.stack([reader[i]["ego_history"] for i in range(len(reader))]), dtype=torch.float32)
    target = np.stack([reader[i]["target"] for i in range(len(reader))])
    expert = model.config.expert
    rms = np.sqrt(((target - history_initialisation(history, 0.5, expert.num_poses, expert.dt_s).numpy()) ** 2).mean(0))
    floor = np.array(expert.pose_scale) / 50
    assert np.all(scale >= floor - 1e-6) and np.all(scale <= np.maximum(rms, floor) * 1.5 + 1e-6)
    torch.testing.assert_close(model.action_scale, torch.tensor(scale, dtype=torch.float32))
    with pytest.raises(ValueError, match="action_scale must be"):
        dataclasses.replace(expert, action_scale=((1.0, 1.0, 1.0),))


def test_the_driving_state_head_shapes_the_cache_and_stays_out_of_the_checkpoint(stage1, dataset, tmp_path):
    """``sft_vlm.driving_state_weight`` > 0: a linear head reads the driving state from the last VLM layer's cached
    values at the action marker. Its loss falls with training, its gradient reaches the VLM's value projection (what
    the action expert reads), a sample without a scene costs nothing, and the stage keeps the head beside its trainer
    state, not in the model checkpoint. A negative weight is refused."""
    from safetensors.torch import load_file

    from spanvla_ros.data.reasoning import DRIVING_STATE_UNITS, driving_state
    from spanvla_ros.scene import scene_from_dict
    from spanvla_ros.training.config import SFTVLMConfig
    from spanvla_ros.training.data import SampleReader
    from spanvla_ros.training.sft import DRIVING_STATE_HEAD, LanguageObjective, sft_vlm, stage1_loss

    checkpoint, config = stage1
    model = SpanVLA.load(checkpoint).train()
    reader = SampleReader(config.data.dir)
    batch = [reader[i] for i in range(4)]
    plain = LanguageObjective(model, SFTVLMConfig())
    plain(batch)
    assert plain.driving_state_head is None and set(plain.terms) == {"language"}

    objective = LanguageObjective(model, SFTVLMConfig(driving_state_weight=1.0))
    head = objective.driving_state_head
    _, past, context = stage1_loss(model, batch[0], objective.weights)
    assert head(past, context).shape == (len(DRIVING_STATE_UNITS),)
    truth = driving_state(scene_from_dict(batch[0]["scene"])).vector()
    assert np.all(np.isfinite(truth))

    loss = objective(batch)
    assert loss.item() == pytest.approx(objective.terms["language"] + objective.terms["driving_state"], rel=1e-5)
    loss.backward()
    value_projection = model.vlm.model.language_model.layers[head.layer].self_attn.v_proj.weight
    assert value_projection.grad is not None and value_projection.grad.abs().sum() > 0

    optimizer = torch.optim.Adam([*model.vlm.parameters(), *head.parameters()], lr=3e-3)
    first = objective.terms["driving_state"]
    for _ in range(15):
        optimizer.zero_grad()
        objective(batch).backward()
        optimizer.step()
    with torch.no_grad():
        objective(batch)
    assert objective.terms["driving_state"] < 0.5 * first

    sceneless = {**batch[0], "scene": {}}
    assert head.loss(*stage1_loss(model, sceneless, objective.weights)[1:], sceneless).item() == 0.0

    with_head = load_train_config(write_config(tmp_path, dataset, sft_vlm={"driving_state_weight": 1.0}))
    trained = sft_vlm(with_head, progress=False)
    assert set(load_file(str(trained / "model.safetensors"))) == set(load_file(str(checkpoint / "model.safetensors")))
    saved = load_file(str(trained.parent / "trainer" / DRIVING_STATE_HEAD))
    assert saved["linear.weight"].shape == head.linear.weight.shape
    with pytest.raises(ValueError, match="driving_state_weight must be >= 0"):
        load_train_config(write_config(tmp_path, dataset, sft_vlm={"driving_state_weight": -1.0}))


def test_history_noise_is_part_of_the_bridge_recipe(dataset, tmp_path):
    """A bridge trained with another history noise is another recipe's (never resumed); a negative noise is refused."""
    from spanvla_ros.training.sft import stage_record

    clean = load_train_config(write_config(tmp_path, dataset))
    noisy = load_train_config(write_config(tmp_path, dataset, sft_bridge={"history_noise_std": 0.05}))
    assert clean.sft_bridge.history_noise_std == 0.0 and noisy.sft_bridge.history_noise_std == 0.05
    init = tmp_path / "init"
    init.mkdir()
    (init / "model.safetensors").write_bytes(b"weights")
    assert stage_record(clean, "sft_bridge", init) != stage_record(noisy, "sft_bridge", init)
    with pytest.raises(ValueError, match="history_noise_std must be >= 0"):
        load_train_config(write_config(tmp_path, dataset, sft_bridge={"history_noise_std": -0.1}))


def observation_of(sample):
    from spanvla_ros.training.data import observation

    return observation(sample)


def test_resume_continues_the_step_count_and_optimizer_state(dataset, tmp_path):
    from spanvla_ros.training.sft import sft_vlm

    config = load_train_config(write_config(tmp_path, dataset))
    checkpoint = sft_vlm(config, progress=False)
    state = json.loads((checkpoint.parent / "trainer" / "trainer_state.json").read_text())
    assert state["step"] == 2
    longer = dataclasses.replace(
        config,
        sft_vlm=dataclasses.replace(
            config.sft_vlm, optim=dataclasses.replace(config.sft_vlm.optim, steps=4, checkpoint_every=4)
        ),
    )
    sft_vlm(longer, resume=True, progress=False)
    state = json.loads((checkpoint.parent / "trainer" / "trainer_state.json").read_text())
    assert state["step"] == 4
    assert all(v == 4 for k, v in state["scalars"].items() if k.endswith(".step")) or state["scalars"] == {}
    from safetensors.torch import load_file

    steps = [
        v
        for k, v in load_file(str(checkpoint.parent / "trainer" / "optimizer.safetensors")).items()
        if k.endswith(".step")
    ]
    assert steps and all(float(s) == 4.0 for s in steps)  # AdamW's per-parameter step counted on, not restarted


def test_a_stage_of_another_recipe_is_started_over_not_resumed_or_reused(stage1, tmp_path):
    """The bridge resumed (and the recipe's finished-stage check passed) only for the recipe and initial weights it
    was trained with: a changed learning rate or a re-trained stage 1 starts it over; an option added since, at its
    default, does not."""
    from spanvla_ros.training.recipe import _finished
    from spanvla_ros.training.sft import sft_bridge

    checkpoint, config = stage1
    config = dataclasses.replace(config, out_dir=str(tmp_path / "out"))
    sft_bridge(config, init=checkpoint, progress=False)
    assert _finished(config, "sft_bridge", checkpoint) is not None
    # A stage trained before an option existed: the missing key reads as its default, so the stage stays finished...
    record_path = tmp_path / "out" / "sft_bridge" / "stage.json"
    record = json.loads(record_path.read_text())
    assert record["sft_bridge"].pop("history_noise_std") == 0.0
    record_path.write_text(json.dumps(record))
    assert _finished(config, "sft_bridge", checkpoint) is not None
    # ...unless the recipe now sets it to something else.
    noised = dataclasses.replace(config, sft_bridge=dataclasses.replace(config.sft_bridge, history_noise_std=0.05))
    assert _finished(noised, "sft_bridge", checkpoint) is None
    log = tmp_path / "out" / "sft_bridge" / "scalars.jsonl"
    steps = config.sft_bridge.optim.steps

    longer = dataclasses.replace(
        config,
        sft_bridge=dataclasses.replace(
            config.sft_bridge, optim=dataclasses.replace(config.sft_bridge.optim, steps=steps + 1)
        ),
    )
    sft_bridge(longer, init=checkpoint, resume=True, progress=False)  # same recipe, longer: resumed
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [*range(1, steps + 1), steps + 1]

    other = dataclasses.replace(
        longer,
        sft_bridge=dataclasses.replace(longer.sft_bridge, optim=dataclasses.replace(longer.sft_bridge.optim, lr=5e-4)),
    )
    assert _finished(other, "sft_bridge", checkpoint) is None
    sft_bridge(other, init=checkpoint, resume=True, progress=False)  # another learning rate: from step 0
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == list(range(1, steps + 2))

    assert _finished(other, "sft_bridge", retrained_copy(checkpoint, tmp_path / "retrained")) is None


def retrained_copy(checkpoint: Path, out: Path) -> Path:
    """A copy of ``checkpoint`` with other weights, as a re-trained stage would leave it."""
    shutil.copytree(checkpoint, out)
    model = SpanVLA.load(out)
    with torch.no_grad():
        next(model.vlm.parameters()).add_(0.01)
    model.save(out)
    return out


def test_a_dagger_round_is_reused_only_for_the_learner_that_drove_it(stage1, tmp_path):
    """A DAgger round's data and fine-tuned stages belong to the checkpoint that drove it: run again for the same
    learner, the round is kept as it is; for another learner (a re-trained checkpoint) it is driven again."""
    from spanvla_ros.training.recipe import dagger_round

    checkpoint, config = stage1
    tiny = {"steps": 1, "batch_size": 2, "eval_every": 1, "checkpoint_every": 1}
    config = load_train_config(
        write_config(
            tmp_path,
            config.data.dir,
            dagger={"rounds": 1, "episodes": 1, "seed": 900, "workers": 1, "sft_vlm": tiny, "sft_bridge": tiny},
            sft_bridge={"optim": tiny, "action_scale": "residual"},
        )
    )
    round_dir = Path(config.out_dir) / "dagger_1"
    learned, counts = dagger_round(config, 1, checkpoint, progress=False)
    assert counts["total"] > 0
    # The round's bridge fine-tunes in the learner's flow units (dagger.action_scale: learner), not re-derived ones.
    units = SpanVLA.load(learned).config.expert.action_scale
    assert units == SpanVLA.load(checkpoint).config.expert.action_scale
    with pytest.raises(ValueError, match="dagger.action_scale must be"):
        load_train_config(write_config(tmp_path, config.data.dir, dagger={"action_scale": "wider"}))
    recorded = json.loads((round_dir / "learner.json").read_text())
    manifest = round_dir / "data" / "manifest.json"
    first = manifest.stat().st_mtime_ns

    assert dagger_round(config, 1, checkpoint, progress=False)[0] == learned
    assert manifest.stat().st_mtime_ns == first  # the same learner: nothing driven again

    other = retrained_copy(checkpoint, tmp_path / "other_learner")
    dagger_round(config, 1, other, progress=False)
    assert json.loads((round_dir / "learner.json").read_text()) != recorded
    assert manifest.stat().st_mtime_ns != first

    # More episodes asked of the same learner: the round is driven again, not read from the shorter one.
    more = dataclasses.replace(config, dagger=dataclasses.replace(config.dagger, episodes=2))
    dagger_round(more, 1, other, progress=False)
    assert json.loads(manifest.read_text())["seeds"] == [900, 901]
    driven = manifest.stat().st_mtime_ns

    # A learner held to the lane's speed limit drives other states: the round is driven again, and says so.
    limited = dataclasses.replace(more, dagger=dataclasses.replace(more.dagger, learner_speed_limit=True))
    dagger_round(limited, 1, other, progress=False)
    assert json.loads((round_dir / "learner.json").read_text())["learner_speed_limit"] is True
    assert manifest.stat().st_mtime_ns != driven
    # So does one whose core also follows the route and guards against collisions.
    layered = dataclasses.replace(
        limited, dagger=dataclasses.replace(limited.dagger, learner_route=True, learner_collision_guard=True)
    )
    dagger_round(layered, 1, other, progress=False)
    record = json.loads((round_dir / "learner.json").read_text())
    assert record["learner_route"] is True and record["learner_collision_guard"] is True


def _children(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended while we looked
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def torchrun(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    """Two gloo ranks under torchrun. A run past ``timeout`` fails with the ranks' Python stacks (each rank dumps
    them on SIGUSR1) instead of a bare timeout."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    command = [
        str(Path(sys.executable).parent / "torchrun"),
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(29500 + (os.getpid() + len(args[-1])) % 1000),
        "-m",
        "spanvla_ros.cli",
        *args,
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env, start_new_session=True
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        for rank in _children(process.pid):
            os.kill(rank, signal.SIGUSR1)
        time.sleep(3)
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"torchrun ran past {timeout} s; stdout: {stdout[-500:]}\nranks' stacks:\n{stderr[-6000:]}")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def test_torchrun_two_ranks_end_with_the_same_weights(stage1, tmp_path):
    checkpoint, config = stage1
    config_path = write_config(tmp_path, Path(config.data.dir))
    result = torchrun(["train", "sft-bridge", "--config", str(config_path), "--init", str(checkpoint)])
    assert result.returncode == 0, result.stderr[-2000:]
    digests = [(tmp_path / "out" / "sft_bridge" / f"rank{r}.sha256").read_text() for r in (0, 1)]
    assert digests[0] == digests[1]


def test_stage1_fsdp_and_ddp_on_two_ranks_train_the_same_weights(dataset, tmp_path):
    """FSDP2 (each decoder layer and vision block sharded over 2 gloo ranks, then the model) takes the same steps
    as DDP on the same batches (the driving-state head included): its unsharded safetensors checkpoint holds the same
    weights, loads as a plain SpanVLA, and a resumed FSDP run restores the optimizer state saved by parameter name
    and the head's weights."""
    from safetensors.torch import load_file

    results = {}
    for strategy in ("ddp", "fsdp"):
        directory = tmp_path / strategy
        directory.mkdir()
        config_path = write_config(directory, dataset, sft_vlm={"driving_state_weight": 1.0})
        result = torchrun(["train", "sft-vlm", "--config", str(config_path), "--strategy", strategy])
        assert result.returncode == 0, result.stderr[-3000:]
        checkpoint = directory / "out" / "sft_vlm" / "checkpoint"
        results[strategy] = load_file(str(checkpoint / "model.safetensors"))
        SpanVLA.load(checkpoint)  # a plain, self-contained checkpoint
    ddp, fsdp = results["ddp"], results["fsdp"]
    assert ddp.keys() == fsdp.keys()
    for name in ddp:
        torch.testing.assert_close(fsdp[name], ddp[name], atol=2e-5, rtol=1e-4, msg=name)
    trainer = tmp_path / "fsdp" / "out" / "sft_vlm" / "trainer"
    saved = load_file(str(trainer / "optimizer.safetensors"))
    assert any(k.startswith("model.vlm.") and k.endswith(".exp_avg") for k in saved)  # keyed by parameter name
    longer = {"optim": {**TINY["sft_vlm"]["optim"], "steps": 3}, "driving_state_weight": 1.0}
    head = load_file(str(trainer / "driving_state_head.safetensors"))["linear.weight"]
    config_path = write_config(tmp_path / "fsdp", dataset, sft_vlm=longer)
    result = torchrun(["train", "sft-vlm", "--config", str(config_path), "--strategy", "fsdp", "--resume"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((trainer / "trainer_state.json").read_text())["step"] == 3
    steps = [v for k, v in load_file(str(trainer / "optimizer.safetensors")).items() if k.endswith(".step")]
    assert steps and all(float(s) == 3.0 for s in steps)  # AdamW's counts continued from the gathered state
    resumed = load_file(str(trainer / "driving_state_head.safetensors"))["linear.weight"]
    assert (resumed - head).abs().max() < 0.05  # one more small step from the saved head, not a fresh one


def test_bad_inputs_stop_before_training(dataset, tmp_path):
    from spanvla_ros.training.sft import sft_vlm

    with pytest.raises(ConfigError, match="unknown key"):
        load_train_config(write_config(tmp_path, dataset, sft_vlm={"optim": {"stepz": 1}}))
    broken = tmp_path / "broken"
    broken.mkdir()
    for file in Path(dataset).iterdir():
        (broken / file.name).write_bytes(file.read_bytes())
    shard = next(broken.glob("shard_*.npz"))
    shard.write_bytes(shard.read_bytes()[:-100])
    with pytest.raises(DatasetError, match="sha256 does not match"):
        sft_vlm(load_train_config(write_config(tmp_path, broken)), progress=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "manifest.json").write_text(json.dumps({"format": "spanvla-dataset", "shards": [], "counts": {}}))
    with pytest.raises(DatasetError, match="empty"):
        sft_vlm(load_train_config(write_config(tmp_path, empty)), progress=False)
    # A dataset made from another recipe (a stale one is how a checkpoint went stale) is refused, not trained on.
    other = write_config(tmp_path, dataset, data={"generation": {**TINY["data"]["generation"], "episode_s": 8.0}})
    with pytest.raises(DatasetError, match="other config"):
        sft_vlm(load_train_config(other), progress=False)
    with pytest.raises(DatasetError, match="other seeds"):
        sft_vlm(load_train_config(write_config(tmp_path, dataset, data={"seed": 4})), progress=False)
    assert not (tmp_path / "out" / "sft_vlm" / "checkpoint").exists()
