"""GRPO post-training of the VLM with LoRA (the paper's stage 3).

Each step takes one scene from the data recipe (warm-up = easy fast-mode positives, positive = the rest of the
positives, negative, recovery; configurable proportions), samples a group of G reasoning outputs from the LoRA policy,
turns each into the trajectory the deployed pipeline would drive (the bridge's flow plan on that output's cache, or
the VLM's action tokens), scores it (PDMS/EPDMS from the scorer, the negative penalty, the recovery reward, the
reasoning penalties), normalises the rewards within the group and takes one policy-gradient step with a KL penalty to
the frozen SFT policy (the same network with the LoRA adapters disabled).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.reasoning import Decision, decision_consistency
from ..eval import METRIC_NAMES, score_trajectory
from ..model.spanvla import SpanVLA
from ..scene import scene_from_dict
from ..text_format import FAST_MODE_TEXT
from .config import TrainConfig
from .data import ensure_dataset, observation, split_indices
from .loop import (
    StageLogger,
    cleanup_distributed,
    clip_and_step,
    load_trainer_state,
    make_optimizer,
    save_trainer_state,
    setup_distributed,
)
from .rewards import cot_penalty, group_advantages, negative_penalty, recovery_reward, total_reward
from .sft import begin_stage, stage_record, trainer_dir

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


def add_lora(model: SpanVLA, rank: int, alpha: int) -> None:
    """LoRA adapters on the language model's attention projections, injected in place (the model object stays a
    SpanVLA); every other VLM weight is frozen."""
    from peft import LoraConfig, inject_adapter_in_model

    for p in model.parameters():
        p.requires_grad_(False)
    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=LORA_TARGETS)
    inject_adapter_in_model(config, model.vlm.model.language_model)


def set_adapters(model: SpanVLA, enabled: bool) -> None:
    from peft.tuners.tuners_utils import BaseTunerLayer

    for module in model.modules():
        if isinstance(module, BaseTunerLayer):
            module.enable_adapters(enabled)


def merged_copy(model: SpanVLA) -> SpanVLA:
    """A plain SpanVLA with the LoRA deltas merged into the base weights."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for module in model.modules():
        if isinstance(module, BaseTunerLayer):
            module.merge()
    state = {}
    for name, tensor in model.state_dict().items():
        if "lora_" in name:
            continue
        state[name.replace(".base_layer.", ".")] = tensor
    plain = SpanVLA(model.config, model.tokenizer, model.codebook)
    plain.load_state_dict(state, strict=False)
    if plain.vlm.config.tie_word_embeddings:
        plain.vlm.tie_weights()
    for module in model.modules():
        if isinstance(module, BaseTunerLayer):
            module.unmerge()
    return plain.eval()


def parse_decision(text: str) -> Decision | None:
    """The decision a slow-mode reasoning states ("decision: decelerate, change lane left."), if any."""
    match = re.search(r"decision:\s*([a-z ]+),\s*([a-z ]+)", text)
    if not match:
        return None
    return Decision(match.group(1).strip().replace(" ", "_"), match.group(2).strip().replace(" ", "_"))


def pick_sample(reader, pools: dict[str, list[int]], mix: dict[str, float], rng: np.random.Generator) -> int:
    kinds = [k for k in mix if pools.get(k)]
    weights = np.array([mix[k] for k in kinds], dtype=np.float64)
    kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
    return int(rng.choice(pools[kind]))


def recipe_pools(reader, indices: list[int]) -> dict[str, list[int]]:
    pools: dict[str, list[int]] = {"warmup": [], "positive": [], "negative": [], "recovery": []}
    for index in indices:
        sample = reader.metadata(index)
        if not sample["has_scene"]:
            continue  # real-data samples have no scoring scene
        if sample["kind"] == "positive":
            pools["warmup" if sample["reasoning"]["mode"] == "fast" else "positive"].append(index)
        else:
            pools[sample["kind"]].append(index)
    return pools


@torch.no_grad()
def rollout(model: SpanVLA, sample: dict[str, Any], config: TrainConfig, generator: torch.Generator) -> dict[str, Any]:
    """One group member: sampled reasoning, its trajectory and every reward term."""
    cfg = config.grpo
    obs = observation(sample)

    def sample_token(logits: torch.Tensor) -> int:
        probs = torch.softmax(logits.float() / max(cfg.temperature, 1e-6), dim=-1)
        return int(torch.multinomial(probs.to(generator.device), 1, generator=generator))

    reasoning = model.reason(obs, cfg.max_reasoning_tokens, choose=sample_token)
    past, generated = reasoning.cache, reasoning.token_ids
    stop = {model.action_marker_id, model.tokenizer.eos_token_id}
    if generated[-1] != model.action_marker_id:
        past = model._forward(model._ids([[model.action_marker_id]]), past=past).past_key_values
    flow_path, kv = None, None
    if cfg.trajectory_source == "flow":
        kv = [(layer.keys, layer.values) for layer in past.layers]
        history = torch.tensor(obs.history_ego, dtype=torch.float32, device=model.device)[None]
        if cfg.flow_noise_std > 0:
            poses, flow_path = model.flow_sample_sde(kv, history, cfg.flow_noise_std, generator=generator)
            trajectory = poses[0].cpu().numpy()
        else:
            trajectory = model.flow_sample(kv, history)[0].cpu().numpy()
    else:
        trajectory = model.decode_actions(past, config.model.expert.num_poses)
    text = model.tokenizer.decode([t for t in generated if t not in stop], skip_special_tokens=False)
    scene = scene_from_dict(sample["scene"])
    scores = score_trajectory(scene, trajectory, config.model.expert.dt_s)
    rewards_cfg = cfg.rewards
    driving = scores[rewards_cfg.driving_metric]
    negative = negative_penalty(trajectory, list(sample["negatives"]), rewards_cfg.negative_radius_m)
    recovery = (
        recovery_reward(trajectory, sample["target"], rewards_cfg.recovery_scale_m)
        if sample["kind"] == "recovery"
        else 0.0
    )
    decision = parse_decision(text)
    if FAST_MODE_TEXT in text:
        consistency = 1.0
    elif decision is None:
        consistency = 0.0
    else:
        consistency = decision_consistency(decision, trajectory, obs.speed_mps, scene=scene)
    cot = cot_penalty(len(generated), consistency, rewards_cfg.length_budget_tokens)
    return {
        "tokens": generated,
        "text": text,
        "reward": total_reward(driving, negative, recovery, cot, rewards_cfg),
        "scores": scores,
        "negative": negative,
        "recovery": recovery,
        "cot": cot,
        "flow_path": flow_path,
        "kv": kv if flow_path is not None else None,
    }


def flow_terms(
    model: SpanVLA, reference_expert, sample: dict[str, Any], member: dict[str, Any], noise_std: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The action expert's share of a member's policy gradient: the log-probability of its sampled flow path (per
    coordinate and step) under the current expert, and the KL of the current expert's step distributions to the
    frozen SFT expert's (Gaussians of equal variance: the squared distance of their means)."""
    history = torch.tensor(observation(sample).history_ego, dtype=torch.float32, device=model.device)[None]
    path, kv = member["flow_path"], member["kv"]
    log_prob, means = model.flow_path_log_prob(kv, history, path, noise_std)
    with torch.no_grad():
        _, reference_means = model.flow_path_log_prob(kv, history, path, noise_std, expert=reference_expert)
    variance = noise_std**2 / (path.shape[1] - 1)
    elements = means[0].numel()
    kl = ((means - reference_means) ** 2).sum() / (2.0 * variance) / elements
    return log_prob[0] / elements, kl


def sequence_logprobs(model: SpanVLA, sample: dict[str, Any], tokens: list[int]) -> torch.Tensor:
    """Per-token log-probabilities ``[T]`` of ``tokens`` after the sample's prompt."""
    input_ids, pixel_values, grid = model.prompt(observation(sample))
    full = torch.cat([input_ids, model._ids([tokens])], dim=1)
    logits = model._forward(full, pixel_values, grid).logits[0, input_ids.shape[1] - 1 : -1]
    return torch.log_softmax(logits.float(), dim=-1).gather(1, full[0, input_ids.shape[1] :, None])[:, 0]


def grpo(config: TrainConfig, *, init: str | Path, resume: bool = False, progress: bool = True) -> Path:
    """GRPO from ``init`` (the stage-2 checkpoint); returns ``<out>/grpo/checkpoint`` (LoRA merged)."""
    env = setup_distributed()
    cfg = config.grpo
    stage_dir = Path(config.out_dir) / "grpo"
    checkpoint = stage_dir / "checkpoint"
    reader = ensure_dataset(config.data, progress=False)
    train, _ = split_indices(reader, config.data.validation_fraction)
    pools = recipe_pools(reader, train)
    mix = {
        "warmup": cfg.mix_warmup,
        "positive": cfg.mix_positive,
        "negative": cfg.mix_negative,
        "recovery": cfg.mix_recovery,
    }
    model = SpanVLA.load(init).to(env.device)
    add_lora(model, cfg.lora_rank, cfg.lora_alpha)
    train_expert = cfg.trajectory_source == "flow" and cfg.flow_noise_std > 0
    reference_expert = None
    if train_expert:
        reference_expert = copy.deepcopy(model.expert).eval().requires_grad_(False)
        model.expert.requires_grad_(True)
    optimizer, scheduler = make_optimizer(model.parameters(), cfg.optim)
    resuming = begin_stage(checkpoint, stage_record(config, "grpo", init), resume, env)
    start = 0
    if resuming:
        from safetensors.torch import load_file

        adapters = load_file(str(trainer_dir(checkpoint) / "lora.safetensors"))
        model.load_state_dict(adapters, strict=False)
        start = load_trainer_state(trainer_dir(checkpoint), optimizer, scheduler)["step"]
    logger = StageLogger("grpo", stage_dir, cfg.optim.steps, env, start)
    rng = np.random.default_rng(config.seed + 1000 * env.rank + start)
    generator = torch.Generator().manual_seed(config.seed + env.rank + start)
    history: list[dict[str, float]] = []
    for step in range(start, cfg.optim.steps):
        sample = reader[pick_sample(reader, pools, mix, rng)]
        model.eval()
        group = [rollout(model, sample, config, generator) for _ in range(cfg.group_size)]
        advantages = group_advantages(np.array([g["reward"] for g in group]))
        model.train()
        losses, kls = [], []
        for member, advantage in zip(group, advantages, strict=True):
            logp = sequence_logprobs(model, sample, member["tokens"])
            with torch.no_grad():
                set_adapters(model, False)
                reference = sequence_logprobs(model, sample, member["tokens"])
                set_adapters(model, True)
            delta = reference - logp
            kl = (torch.exp(delta) - delta - 1.0).mean()  # k3 estimator of KL(π‖π_ref)
            objective = logp.mean()
            if train_expert:
                flow_logp, flow_kl = flow_terms(model, reference_expert, sample, member, cfg.flow_noise_std)
                objective = objective + flow_logp
                kl = kl + flow_kl
            losses.append(-float(advantage) * objective + cfg.kl_weight * kl)
            kls.append(kl.item())
        loss = torch.stack(losses).mean()
        loss.backward()
        clip_and_step(model, optimizer, scheduler, cfg.optim.grad_clip)
        rewards = np.array([g["reward"] for g in group])
        scalars = {
            "grpo/reward_mean": float(rewards.mean()),
            "grpo/reward_std": float(rewards.std()),
            "grpo/kl": float(np.mean(kls)),
            "grpo/reasoning_tokens": float(np.mean([len(g["tokens"]) for g in group])),
            "grpo/loss": loss.item(),
        }
        for metric in METRIC_NAMES:
            scalars[f"grpo/pass_{metric}"] = float(np.mean([g["scores"][metric] >= 1.0 for g in group]))
        scalars["grpo/pdms"] = float(np.mean([g["scores"]["pdms"] for g in group]))
        scalars["grpo/pdms_std"] = float(np.std([g["scores"]["pdms"] for g in group]))
        history.append(scalars)
        logger.step(step + 1, scalars, cfg.group_size)
        if env.is_main and ((step + 1) % cfg.optim.checkpoint_every == 0 or step + 1 == cfg.optim.steps):
            _save(model, checkpoint, optimizer, scheduler, step + 1)
    logger.close()
    cleanup_distributed()
    return checkpoint


def _save(model: SpanVLA, checkpoint: Path, optimizer, scheduler, step: int) -> None:
    from safetensors.torch import save_file

    merged_copy(model).save(checkpoint)
    # What GRPO trains: the LoRA adapters and (Flow-GRPO) the action expert; a resume restores both.
    adapters = {
        k: v.detach().contiguous() for k, v in model.state_dict().items() if "lora_" in k or k.startswith("expert.")
    }
    directory = trainer_dir(checkpoint)
    save_trainer_state(directory, optimizer, scheduler, step)
    save_file(adapters, str(directory / "lora.safetensors"))
