"""Supervised stages. Stage 1 (``sft_vlm``): next-token loss on the reasoning (slow and fast modes) and the discrete
action tokens. Stage 2 (``sft_bridge``): the flow loss with the VLM frozen — its caches (prompt + reasoning + action
marker) are computed once without gradient and the action expert alone learns on them. With ``sft_bridge.vlm_lr`` > 0
the flow loss trains the VLM too (π0-style co-training), and ``sft_bridge.language_weight`` keeps stage 1's
next-token loss beside it (knowledge insulation: the reasoning the car decodes stays the kind the expert trained on).

Both run as plain processes or under ``torchrun`` on the ranks' devices (each rank takes its own share of every batch):
DDP, or for stage 1 FSDP2 (``sft_vlm.strategy: fsdp``, ``--strategy fsdp``), with checkpoints saved unsharded."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..config import config_to_dict
from ..data.reasoning import DRIVING_STATE_UNITS, driving_state
from ..files import file_sha256
from ..model.flow import history_initialisation
from ..model.spanvla import SpanVLA, SpanVLAConfig
from ..scene import scene_from_dict
from .config import SFTVLMConfig, TrainConfig
from .data import build_tokenizer_and_codebook, ensure_dataset, observation, split_indices
from .loop import (
    Distributed,
    StageLogger,
    autocast,
    cleanup_distributed,
    clip_and_step,
    full_optimizer_state,
    full_state_dict,
    is_sharded,
    load_trainer_state,
    make_optimizer,
    save_trainer_state,
    setup_distributed,
    shard_fsdp,
    wrap_ddp,
    write_weight_digest,
)

log = logging.getLogger(__name__)


class LanguageObjective(nn.Module):
    """Mean next-token loss of a list of samples (reasoning text, then the action marker and action tokens), plus,
    with ``weights.driving_state_weight`` > 0, the driving-state regression of :class:`DrivingStateHead`."""

    def __init__(self, model: SpanVLA, weights: SFTVLMConfig) -> None:
        super().__init__()
        self.model = model
        self.weights = weights
        # On the model's device, so that DDP and FSDP on GPUs see one device and the head reads the cache in place.
        self.driving_state_head = DrivingStateHead(model).to(model.device) if weights.driving_state_weight > 0 else None
        #: The last call's mean terms, for logging.
        self.terms: dict[str, float] = {}

    def forward(self, samples: list[dict[str, Any]]) -> torch.Tensor:
        language, state = [], []
        for sample in samples:
            loss, past, context = stage1_loss(self.model, sample, self.weights)
            language.append(loss)
            if self.driving_state_head is not None:
                state.append(self.driving_state_head.loss(past, context, sample))
        total = torch.stack(language).mean()
        self.terms = {"language": total.item()}
        if state:
            state_loss = torch.stack(state).mean()
            self.terms["driving_state"] = state_loss.item()
            total = total + self.weights.driving_state_weight * state_loss
        return total


class DrivingStateHead(nn.Module):
    """A linear read of the driving state (``data.reasoning.driving_state``, in ``DRIVING_STATE_UNITS``) from the
    last VLM layer's cached values at the action marker, the context's last position. Trained beside stage 1, it makes
    the cache the action expert cross-attends to carry the lane relation, the lead's gap and closing speed (which only
    the change between the frames shows) and the route ahead; it is not saved with the model."""

    def __init__(self, model: SpanVLA) -> None:
        super().__init__()
        reader = model.expert.blocks[-1]  # the expert block that cross-attends to the same layer's cache
        self.layer = model.expert.layers[-1]
        self.linear = nn.Linear(reader.kv_heads * reader.head_dim, len(DRIVING_STATE_UNITS))
        self.register_buffer("units", torch.tensor(DRIVING_STATE_UNITS), persistent=False)

    def forward(self, past, context: int) -> torch.Tensor:
        """The predicted state ``[6]`` in its own units, from a pass whose context is ``context`` positions long."""
        values = past.layers[self.layer].values[0, :, context - 1]
        return self.linear(values.reshape(-1).to(self.linear.weight.dtype)) * self.units

    def loss(self, past, context: int, sample: dict[str, Any]) -> torch.Tensor:
        """Mean squared error in ``DRIVING_STATE_UNITS``; 0 for a sample without a scene (real data), still on the
        graph so that every rank's head takes part in the gradient reduction."""
        predicted = self.forward(past, context).float() / self.units
        if not sample["scene"]:
            return 0.0 * predicted.sum()
        truth = torch.tensor(driving_state(scene_from_dict(sample["scene"])).vector(), dtype=torch.float32)
        return (predicted - truth.to(self.units.device) / self.units).pow(2).mean()


def stage1_loss(model: SpanVLA, sample: dict[str, Any], weights: SFTVLMConfig) -> tuple[torch.Tensor, Any, int]:
    """Stage 1's weighted next-token loss of one sample, with the pass's cache and context length
    (``SpanVLA.teacher_forced``)."""
    loss, past, context = model.teacher_forced(
        observation(sample),
        sample["reasoning"]["text"],
        sample["target"],
        weights.action_token_weight / max(weights.reasoning_weight, 1e-9),
    )
    return weights.reasoning_weight * loss, past, context


class FlowObjective(nn.Module):
    """Mean flow-matching loss of a padded batch of cached VLM contexts (the expert's parameters only)."""

    def __init__(self, model: SpanVLA, history_noise_std: float = 0.0) -> None:
        super().__init__()
        self.model = model
        self.expert = model.expert  # registered so DDP sees exactly the trainable parameters
        self.history_noise_std = history_noise_std

    def forward(self, kv_layers, history, target, kv_mask, generator=None) -> torch.Tensor:
        return self.model.flow_loss(
            kv_layers, history, target, kv_mask, generator=generator, history_noise_std=self.history_noise_std
        )


def new_model(config: TrainConfig, reader, train_indices) -> SpanVLA:
    tokenizer, codebook = build_tokenizer_and_codebook(reader, train_indices, config.model, config.seed)
    model_config = SpanVLAConfig(
        vlm=config.model.vlm,
        expert=config.model.expert,
        num_action_tokens=config.model.num_action_tokens,
        max_reasoning_tokens=config.model.max_reasoning_tokens,
    )
    torch.manual_seed(config.seed)
    return SpanVLA(model_config, tokenizer, codebook)


def sft_vlm(
    config: TrainConfig, *, init: str | Path | None = None, resume: bool = False, progress: bool = True
) -> Path:
    """Stage 1; returns the checkpoint directory ``<out>/sft_vlm/checkpoint``."""
    env = setup_distributed()
    stage_dir = Path(config.out_dir) / "sft_vlm"
    reader = ensure_dataset(config.data, progress=progress and env.is_main)
    train, validation = split_indices(reader, config.data.validation_fraction)
    checkpoint = stage_dir / "checkpoint"
    resuming = begin_stage(checkpoint, stage_record(config, "sft_vlm", init), resume, env)
    if resuming:
        model = SpanVLA.load(checkpoint)
    elif init is not None:
        model = SpanVLA.load(init)
    else:
        model = new_model(config, reader, train)
    model.to(env.device).train()
    for p in model.expert.parameters():
        p.requires_grad_(False)  # stage 1 trains the VLM only
    cfg = config.sft_vlm
    objective = LanguageObjective(model, cfg)
    if cfg.strategy == "fsdp":
        objective = shard_fsdp(objective, model.vlm, env, cfg.optim.mixed_precision)
    else:
        objective = wrap_ddp(objective, env)
    sharded = objective if is_sharded(objective) else None
    language = objective.module if hasattr(objective, "module") and not sharded else objective
    head = language.driving_state_head
    trained = list(model.vlm.parameters()) + ([] if head is None else list(head.parameters()))
    optimizer, scheduler = make_optimizer(trained, cfg.optim)
    start = load_trainer_state(trainer_dir(checkpoint), optimizer, scheduler, sharded)["step"] if resuming else 0
    if resuming and head is not None:
        _load_head(head, trainer_dir(checkpoint))
    logger = StageLogger("sft-vlm", stage_dir, cfg.optim.steps, env, start)
    rng = np.random.default_rng(config.seed + 1000 * env.rank + start)
    with_scene = head is not None  # only the driving-state head reads the scene
    for step in range(start, cfg.optim.steps):
        chosen = rng.choice(train, size=max(cfg.optim.batch_size // env.world_size, 1))
        batch = [reader.sample(int(i), scene=with_scene) for i in chosen]
        with autocast(env, cfg.optim.mixed_precision and sharded is None):  # FSDP casts by its own policy
            loss = objective(batch)
        loss.backward()
        norm = clip_and_step(model.vlm, optimizer, scheduler, cfg.optim.grad_clip)
        scalars = {"sft_vlm/loss": loss.item(), "sft_vlm/grad_norm": norm, "sft_vlm/lr": scheduler.get_last_lr()[0]}
        if head is not None:
            scalars["sft_vlm/driving_state_loss"] = language.terms["driving_state"]
        if validation and ((step + 1) % cfg.optim.eval_every == 0 or step + 1 == cfg.optim.steps):
            scalars["sft_vlm/val_loss"] = _validation_loss(objective, reader, validation, scene=with_scene)
        logger.step(step + 1, scalars, len(batch))
        if (step + 1) % cfg.optim.checkpoint_every == 0 or step + 1 == cfg.optim.steps:
            if sharded is not None:  # every rank takes part in gathering the shards
                _checkpoint_sharded(model, sharded, checkpoint, optimizer, scheduler, step + 1, env)
            elif env.is_main:
                _checkpoint(model, checkpoint, optimizer, scheduler, step + 1)
            if head is not None:
                _save_head(head, trainer_dir(checkpoint), env)
    logger.close()
    write_weight_digest(model.vlm, stage_dir, env)
    del objective
    cleanup_distributed()
    return checkpoint


@torch.no_grad()
def _validation_loss(objective: nn.Module, reader, indices, *, scene: bool, limit: int = 16) -> float:
    """The training objective on validation samples (through the wrapped objective, so FSDP gathers its shards)."""
    objective.eval()
    losses = [objective([reader.sample(i, scene=scene)]).item() for i in indices[:limit]]
    objective.train()
    return float(np.mean(losses))


DRIVING_STATE_HEAD = "driving_state_head.safetensors"


def _save_head(head: nn.Module, directory: Path, env: Distributed) -> None:
    """The driving-state head beside the trainer state (gathered from its shards under FSDP: a collective)."""
    state = {k: (v.full_tensor() if hasattr(v, "full_tensor") else v) for k, v in head.state_dict().items()}
    if env.is_main:
        directory.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(directory / DRIVING_STATE_HEAD))


def _load_head(head: nn.Module, directory: Path) -> None:
    """The saved head back into ``head`` (each rank's shard of it under FSDP)."""
    path = directory / DRIVING_STATE_HEAD
    if not path.is_file():  # its six outputs relearn within a few steps; the VLM it shaped is resumed
        log.warning("no %s: the driving-state head starts over", path)
        return
    saved = load_file(str(path))
    with torch.no_grad():
        for name, parameter in head.named_parameters():
            full = saved[name].to(parameter.device, parameter.dtype)
            if hasattr(parameter, "device_mesh"):  # an FSDP2 DTensor: keep this rank's shard
                from torch.distributed.tensor import distribute_tensor

                full = distribute_tensor(full, parameter.device_mesh, parameter.placements)
            parameter.copy_(full)


def _checkpoint(model: SpanVLA, directory: Path, optimizer, scheduler, step: int) -> None:
    """The model as a self-contained SpanVLA checkpoint; the optimizer and scheduler beside it in ``trainer/``."""
    model.save(directory)
    save_trainer_state(trainer_dir(directory), optimizer, scheduler, step)


def _checkpoint_sharded(
    model: SpanVLA, objective: nn.Module, directory: Path, optimizer, scheduler, step: int, env: Distributed
) -> None:
    """FSDP: the shards gathered to rank 0 (collective), which writes the usual unsharded SpanVLA checkpoint (a
    plain model rebuilt from the full state) and the full optimizer state keyed by parameter name."""
    state = full_state_dict(objective)
    optimizer_state = full_optimizer_state(objective, optimizer)
    if not env.is_main:
        return
    plain = SpanVLA(model.config, model.tokenizer, model.codebook)
    prefix = "model."  # LanguageObjective.model
    plain.load_state_dict({k.removeprefix(prefix): v for k, v in state.items()}, strict=False)
    if plain.vlm.config.tie_word_embeddings:
        plain.vlm.tie_weights()
    plain.save(directory)
    save_trainer_state(trainer_dir(directory), optimizer, scheduler, step, optimizer_state=optimizer_state)


def trainer_dir(checkpoint: Path) -> Path:
    return checkpoint.parent / "trainer"


STAGE_RECORD = "stage.json"


def stage_record(config: TrainConfig, stage: str, init: str | Path | None) -> dict[str, Any]:
    """What a stage's result depends on: its own config section (but its step counts), the data, the seed, and the
    weights it starts from (their sha256; the model shapes when it starts from scratch). A checkpoint made from another
    record is stale."""
    data = config_to_dict(config.data)
    data.pop("workers", None)  # how many processes generate the data does not change it
    section = config_to_dict(getattr(config, stage))
    for key in ("steps", "eval_every", "checkpoint_every"):  # a run may be resumed to train longer
        section["optim"].pop(key, None)
    record = {"stage": stage, "seed": config.seed, "data": data, stage: section}
    if init is None:
        record["model"] = config_to_dict(config.model)
    else:
        record["init_sha256"] = file_sha256(Path(init) / "model.safetensors")
    return json.loads(json.dumps(record))  # as it reads back from the file


def can_resume(checkpoint: Path, record: dict[str, Any] | None = None) -> bool:
    """A checkpoint with its trainer state, and (given ``record``) made by the same recipe."""
    if not ((trainer_dir(checkpoint) / "trainer_state.json").is_file() and (checkpoint / "manifest.json").is_file()):
        return False
    if record is None:
        return True
    recorded = checkpoint.parent / STAGE_RECORD
    if not recorded.is_file():
        return False
    defaults = stage_record(TrainConfig(), record["stage"], None)
    stored = json.loads(recorded.read_text())
    return {key: _with_defaults(value, defaults.get(key)) for key, value in stored.items()} == record


def _with_defaults(stored: Any, defaults: Any) -> Any:
    """``stored`` with each key it lacks taken from ``defaults`` (recursively): an option added to the config after a
    stage was trained reads as its default, so adding one with the old behaviour as its default does not make every
    finished stage stale."""
    if not isinstance(stored, dict) or not isinstance(defaults, dict):
        return stored
    return {**defaults, **{k: _with_defaults(v, defaults.get(k)) for k, v in stored.items()}}


def begin_stage(checkpoint: Path, record: dict[str, Any], resume: bool, env: Distributed) -> bool:
    """Whether the stage resumes from ``checkpoint``. A fresh start forgets a checkpoint of another recipe (so an
    interrupted run is never resumed from it) and records this stage's recipe beside the checkpoint."""
    resuming = resume and can_resume(checkpoint, record)
    if env.is_main and not resuming:
        if can_resume(checkpoint):
            log.warning("%s was trained with another recipe or from other weights: starting the stage over", checkpoint)
        (trainer_dir(checkpoint) / "trainer_state.json").unlink(missing_ok=True)
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        (checkpoint.parent / STAGE_RECORD).write_text(json.dumps(record, indent=1) + "\n")
    return resuming


def context_cache(model: SpanVLA, sample: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """The VLM's K/V of the selected layers over prompt + reasoning + action marker: ``[n_sel, kv, S, d]`` (with
    gradient when called outside ``no_grad``: co-training)."""
    obs = observation(sample)
    input_ids, pixel_values, grid = model.prompt(obs)
    reasoning = model.tokenizer(sample["reasoning"]["text"], return_tensors="pt").input_ids
    reasoning = reasoning.to(input_ids.device)
    marker = model._ids([[model.action_marker_id]])
    full = torch.cat([input_ids, reasoning, marker], dim=1)
    out = model._forward(full, pixel_values, grid)
    return _selected_layers(model, out.past_key_values, full.shape[1])


def context_and_language_loss(
    model: SpanVLA, sample: dict[str, Any], weights: SFTVLMConfig
) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Co-training with the language loss kept: one teacher-forced pass over prompt + reasoning + marker + action
    tokens gives the expert's context (as ``context_cache``) and stage 1's weighted next-token loss."""
    loss, past, context = stage1_loss(model, sample, weights)
    return _selected_layers(model, past, context), loss


def _selected_layers(model: SpanVLA, past, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    layers = model.expert.layers
    keys = torch.stack([past.layers[i].keys[0, :, :length] for i in layers])
    values = torch.stack([past.layers[i].values[0, :, :length] for i in layers])
    return keys, values


def pad_caches(caches: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[list, torch.Tensor]:
    """Pad per-sample caches to one length; returns per-VLM-layer (K, V) batches ``[B, kv, S, d]`` and the mask."""
    length = max(k.shape[2] for k, _ in caches)
    n_sel, kv_heads, _, dim = caches[0][0].shape
    like = caches[0][0]
    keys = torch.zeros(len(caches), n_sel, kv_heads, length, dim, dtype=like.dtype, device=like.device)
    values = torch.zeros_like(keys)
    mask = torch.zeros(len(caches), length, dtype=torch.bool, device=like.device)
    for b, (k, v) in enumerate(caches):
        keys[b, :, :, : k.shape[2]] = k
        values[b, :, :, : v.shape[2]] = v
        mask[b, : k.shape[2]] = True
    return [(keys[:, i], values[:, i]) for i in range(n_sel)], mask


def sft_bridge(config: TrainConfig, *, init: str | Path, resume: bool = False, progress: bool = True) -> Path:
    """Stage 2 from the stage-1 checkpoint ``init``; returns ``<out>/sft_bridge/checkpoint``."""
    env = setup_distributed()
    stage_dir = Path(config.out_dir) / "sft_bridge"
    checkpoint = stage_dir / "checkpoint"
    reader = ensure_dataset(config.data, progress=False)
    train, validation = split_indices(reader, config.data.validation_fraction)
    resuming = begin_stage(checkpoint, stage_record(config, "sft_bridge", init), resume, env)
    model = SpanVLA.load(checkpoint if resuming else init).to(env.device)
    co_train = config.sft_bridge.vlm_lr > 0
    insulated = co_train and config.sft_bridge.language_weight > 0  # π0's knowledge insulation
    model.vlm.train(co_train)
    for p in model.vlm.parameters():
        p.requires_grad_(co_train)  # frozen: no gradient reaches the VLM; co-training: the flow loss trains it too
    model.expert.train()
    cfg = config.sft_bridge.optim
    from tqdm import tqdm

    own = _rank_share(train + validation, env)
    histories: dict[int, torch.Tensor] = {}
    targets: dict[int, torch.Tensor] = {}
    caches: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # frozen VLM only: computed once here
    desc = "sft-bridge: samples" if co_train else "sft-bridge: VLM caches"
    bar = tqdm(own, desc=desc, unit="sample", disable=not (progress and env.is_main))
    with torch.no_grad():
        for i in bar:  # each sample read once (its images are decoded on every read)
            sample = reader.sample(i, scene=False)
            histories[i] = torch.tensor(sample["ego_history"], dtype=torch.float32, device=env.device)
            targets[i] = torch.tensor(sample["target"], dtype=torch.float32, device=env.device)
            if not co_train:
                caches[i] = context_cache(model, sample)
    own_train = [i for i in train if i in histories]
    if not resuming and config.sft_bridge.action_scale == "residual":
        model.set_action_scale(residual_action_scale(model, [histories[i] for i in own_train],
                                                     [targets[i] for i in own_train], env))  # fmt: skip
    objective = wrap_ddp(FlowObjective(model, config.sft_bridge.history_noise_std), env)
    groups = [{"params": model.expert.parameters()}]
    if co_train:
        groups.append({"params": model.vlm.parameters(), "lr": config.sft_bridge.vlm_lr})
    optimizer, scheduler = make_optimizer(groups, cfg)
    start = load_trainer_state(trainer_dir(checkpoint), optimizer, scheduler)["step"] if resuming else 0
    logger = StageLogger("sft-bridge", stage_dir, cfg.steps, env, start)
    rng = np.random.default_rng(config.seed + 1000 * env.rank + start)
    generator = torch.Generator().manual_seed(config.seed + env.rank + start)
    for step in range(start, cfg.steps):
        chosen = [int(i) for i in rng.choice(own_train, size=max(cfg.batch_size // env.world_size, 1))]
        language = None
        if insulated:
            pairs = [context_and_language_loss(model, reader.sample(i, scene=False), config.sft_vlm) for i in chosen]
            batch = [context for context, _ in pairs]
            language = torch.stack([loss for _, loss in pairs]).mean()
        elif co_train:
            batch = [context_cache(model, reader.sample(i, scene=False)) for i in chosen]
        else:
            batch = [caches[i] for i in chosen]
        selected, mask = pad_caches(batch)
        history = torch.stack([histories[i] for i in chosen])
        target = torch.stack([targets[i] for i in chosen])
        flow = objective(model.sparse_kv_layers(selected), history, target, mask, generator=generator)
        loss = flow if language is None else flow + config.sft_bridge.language_weight * language
        loss.backward()
        norm = clip_and_step(model if co_train else model.expert, optimizer, scheduler, cfg.grad_clip)
        scalars = {"sft_bridge/loss": loss.item(), "sft_bridge/grad_norm": norm}
        if language is not None:
            scalars |= {"sft_bridge/flow_loss": flow.item(), "sft_bridge/language_loss": language.item()}
        own_val = [i for i in validation if i in histories]
        if own_val and ((step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps):
            scalars["sft_bridge/val_ade_m"] = _validation_ade(model, reader, caches, histories, targets, own_val)
        logger.step(step + 1, scalars, len(chosen))
        if env.is_main and ((step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps):
            _checkpoint(model, checkpoint, optimizer, scheduler, step + 1)
    logger.close()
    write_weight_digest(model.expert, stage_dir, env)
    del objective
    cleanup_distributed()
    return checkpoint


def residual_action_scale(model: SpanVLA, histories: list, targets: list, env: Distributed) -> np.ndarray:
    """``[N, 3]``: the RMS over training samples of each future pose's departure from the history extrapolation (the
    flow's start), floored at 1/50 of ``pose_scale`` (averaged over the ranks' shares)."""
    expert = model.config.expert
    history, target = torch.stack(histories).cpu(), torch.stack(targets).cpu()
    start = history_initialisation(history, expert.history_dt_s, expert.num_poses, expert.dt_s)
    mean_square = ((target - start) ** 2).mean(dim=0)
    if env.enabled:
        mean_square = mean_square.to(env.device)
        torch.distributed.all_reduce(mean_square)
        mean_square = mean_square.cpu() / env.world_size
    floor = torch.tensor(expert.pose_scale) / 50.0
    return torch.maximum(mean_square.sqrt(), floor).numpy()


def _rank_share(indices: list[int], env: Distributed) -> list[int]:
    return indices[env.rank :: env.world_size] if env.enabled else indices


@torch.no_grad()
def _validation_ade(model: SpanVLA, reader, caches, histories, targets, indices, limit: int = 64) -> float:
    """Mean displacement (m) of flow plans against the targets on validation samples (caches computed here when
    the VLM is being co-trained)."""
    model.expert.eval()
    chosen = indices[:limit]
    contexts = [caches[i] if i in caches else context_cache(model, reader.sample(i, scene=False)) for i in chosen]
    selected, mask = pad_caches(contexts)
    history = torch.stack([histories[i] for i in chosen])
    plans = model.flow_sample(model.sparse_kv_layers(selected), history, kv_mask=mask)
    target = torch.stack([targets[i] for i in chosen])
    model.expert.train()
    return float(torch.linalg.norm(plans[..., :2] - target[..., :2], dim=-1).mean())
