"""SpanVLA: the VLM reasons (slow ``<think>`` chain of thought or fast "Directly predict the final action"), its KV
cache over vision, text and reasoning tokens is handed to the action expert, which flows from the extrapolated history
to the planned trajectory in a few Euler steps. ``plan_autoregressive`` is the slow baseline: the VLM writes discrete
action tokens one by one.

Reads top to bottom: prompt → ``reason`` (prefill + cached greedy decoding) → ``plan`` (flow on the cache) →
losses → ``save`` / ``load``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import PreTrainedTokenizerFast
from transformers.cache_utils import DynamicCache

from ..config import config_from_dict, config_to_dict
from ..decoding import decode_tokens, greedy
from ..files import file_sha256
from ..inputs import prompt_text
from .action_tokens import ActionCodebook, ActionTokenError
from .expert import ActionExpert, ActionExpertConfig, KVLayer
from .flow import (
    euler_integrate,
    flow_matching_loss,
    gaussian,
    history_initialisation,
    sample_flow_time,
    sde_integrate,
    sde_log_prob,
)
from .kv_cache import KVBuffer
from .tokenizer import ACTION, action_token_ids
from .vlm import VLMConfig, build_vlm, cache_layers, image_token_types, patchify

FILES = ("config.json", "model.safetensors", "codebook.safetensors", "tokenizer.json", "tokenizer_config.json")


class CheckpointError(ValueError):
    """A checkpoint directory is missing files, or a file's sha256 does not match its manifest."""


@dataclass(frozen=True)
class SpanVLAConfig:
    vlm: VLMConfig = field(default_factory=VLMConfig)
    expert: ActionExpertConfig = field(default_factory=ActionExpertConfig)
    num_action_tokens: int = 256
    max_reasoning_tokens: int = 48


@dataclass
class Observation:
    """What the car gives the model: camera frames ``[I, H, W, 3]`` uint8 (cameras × history frames), the command,
    and the ego state; ``history_ego [H, 3]`` oldest first, the last pose the origin."""

    images: np.ndarray
    command: str
    speed_mps: float
    acceleration_mps2: float
    history_ego: np.ndarray


@dataclass
class Reasoning:
    """The VLM's output: the generated text and the KV cache over prompt + reasoning (``[1, kv_heads, S, d]``)."""

    text: str
    token_ids: list[int]
    kv_layers: list[KVLayer]
    #: The transformers cache itself, for callers that go on decoding (the GRPO rollout, action tokens).
    cache: Any = None


class SpanVLA(nn.Module):
    def __init__(self, config: SpanVLAConfig, tokenizer: PreTrainedTokenizerFast, codebook: ActionCodebook) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer
        self.codebook = codebook
        if codebook.size != config.num_action_tokens:
            raise ValueError(f"codebook has {codebook.size} tokens, config says {config.num_action_tokens}")
        self.vlm = build_vlm(config.vlm, tokenizer)
        text = self.vlm.config.text_config
        head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
        self.expert = ActionExpert(config.expert, text.num_hidden_layers, text.num_key_value_heads, head_dim)
        self.register_buffer(
            "action_ids", torch.tensor(action_token_ids(tokenizer, config.num_action_tokens)), persistent=False
        )
        self.action_marker_id = tokenizer.convert_tokens_to_ids(ACTION)
        # Poses are normalised in float32 whatever the weights' precision: 0.4 in bf16 is 0.4004.
        self._scales: dict[tuple[str, torch.device], torch.Tensor] = {}

    # --- where the model lives: every tensor a method makes goes there ---------------------------------------------

    @property
    def device(self) -> torch.device:
        return self.expert.head.weight.device

    @property
    def dtype(self) -> torch.dtype:
        """The language model's weight dtype (fp32, bf16 or fp16)."""
        return self.vlm.model.language_model.embed_tokens.weight.dtype

    @property
    def pose_scale(self) -> torch.Tensor:
        """The history's units ``[3]``, float32 on the model's device (one tensor per device, so a captured graph
        keeps its address)."""
        return self._scale("pose", self.config.expert.pose_scale)

    @property
    def action_scale(self) -> torch.Tensor:
        """The flow's units: ``[N, 3]`` per future pose, or ``pose_scale`` when the config sets none."""
        scale = self.config.expert.action_scale
        return self.pose_scale if scale is None else self._scale("action", scale)

    def _scale(self, name: str, values) -> torch.Tensor:
        key = (name, self.device)
        if key not in self._scales:
            self._scales[key] = torch.tensor(values, dtype=torch.float32, device=self.device)
        return self._scales[key]

    def set_action_scale(self, scale: np.ndarray | None) -> None:
        """Replace the flow's units (before the expert is trained: what it learned is in the old units)."""
        rows = None if scale is None else tuple(tuple(float(v) for v in row) for row in np.asarray(scale))
        expert = dataclasses.replace(self.config.expert, action_scale=rows)
        self.config = dataclasses.replace(self.config, expert=expert)
        self._scales.clear()

    def _ids(self, ids) -> torch.Tensor:
        return torch.as_tensor(ids, dtype=torch.int64).to(self.device)

    # --- prompt ----------------------------------------------------------------------------------------------------

    def prompt(self, observation: Observation) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``input_ids [1, S]``, ``pixel_values``, ``image_grid_thw`` for one observation."""
        pixel_values, grid = patchify(observation.images, self.config.vlm)
        o = observation
        text = prompt_text(
            o.command, o.speed_mps, o.acceleration_mps2, o.history_ego, grid.numpy(), self.config.vlm.spatial_merge_size
        )
        device = self.device
        input_ids = self.tokenizer(text, return_tensors="pt").input_ids.to(device)
        return input_ids, pixel_values.to(device, self.vlm.model.visual.dtype), grid.to(device)

    def _forward(self, input_ids, pixel_values=None, grid=None, past=None, labels=None):
        if past is None:
            self.vlm.model.rope_deltas = None  # a new prompt: recompute the multimodal rope offsets
        return self.vlm(
            input_ids=input_ids,
            pixel_values=pixel_values,
            image_grid_thw=grid,
            mm_token_type_ids=image_token_types(input_ids, self.vlm.config.image_token_id),
            past_key_values=past,
            use_cache=True,
            labels=labels,
        )

    # --- reasoning -------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def reason(
        self, observation: Observation, max_new_tokens: int | None = None, choose: Callable[[Any], int] = greedy
    ) -> Reasoning:
        """Cached decoding until the action marker, EOS or the token budget (``choose``: greedy, or a sampler);
        returns text and cache."""
        input_ids, pixel_values, grid = self.prompt(observation)
        out = self._forward(input_ids, pixel_values, grid)
        past = out.past_key_values

        def step(token: int) -> torch.Tensor:
            return self._forward(self._ids([[token]]), past=past).logits[0, -1]

        stop = (self.action_marker_id, self.tokenizer.eos_token_id)
        budget = max_new_tokens or self.config.max_reasoning_tokens
        generated = decode_tokens(out.logits[0, -1], step, choose, budget, stop)
        text = self.tokenizer.decode(generated, skip_special_tokens=False)
        return Reasoning(text, generated, cache_layers(past), past)

    # --- the steps the runtime backends and exported graphs run (explicit rope positions) -----------------------------

    def embed_prompt(self, input_ids: torch.Tensor, image_embeds: torch.Tensor) -> torch.Tensor:
        """Token embeddings with the vision tower's ``image_embeds`` merged at the image tokens (by
        ``where``/``cumsum``: ``masked_scatter`` does not export)."""
        embeds = self.vlm.model.language_model.embed_tokens(input_ids)
        is_image = input_ids == self.vlm.config.image_token_id
        index = (torch.cumsum(is_image.to(torch.int64), dim=1) - 1).clamp(min=0)
        return torch.where(is_image[..., None], image_embeds[index].to(embeds.dtype), embeds)

    def _language(self, embeds, position_ids, attention_mask, cache) -> torch.Tensor:
        """The language model on a cache → logits of the last position ``[B, V]`` (float32)."""
        out = self.vlm.model.language_model(
            inputs_embeds=embeds,
            position_ids=position_ids,
            attention_mask=attention_mask,
            use_cache=True,
            past_key_values=cache,
        )
        return self.vlm.lm_head(out.last_hidden_state[:, -1]).float()

    def prefill(
        self, input_ids: torch.Tensor, image_embeds: torch.Tensor, position_ids: torch.Tensor, attention_mask
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The exported graph: prompt ``input_ids [B, S]`` → the last position's logits ``[B, 1, V]`` and every
        layer's K/V ``[L, B, kv_heads, S, d]``; ``position_ids [3, B, S]``."""
        cache = DynamicCache(config=self.vlm.model.language_model.config)
        logits = self._language(self.embed_prompt(input_ids, image_embeds), position_ids, attention_mask, cache)
        keys, values = stack_cache(cache)
        return logits[:, None], keys, values

    def decode_step(
        self, input_ids: torch.Tensor, position_ids: torch.Tensor, attention_mask, past_keys, past_values
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The exported graph: one token on the stacked past K/V → logits ``[B, 1, V]`` and the grown K/V."""
        language_model = self.vlm.model.language_model
        cache = DynamicCache(config=language_model.config)
        for layer in range(past_keys.shape[0]):
            cache.update(past_keys[layer], past_values[layer], layer)
        logits = self._language(language_model.embed_tokens(input_ids), position_ids, attention_mask, cache)
        keys, values = stack_cache(cache)
        return logits[:, None], keys, values

    def new_kv_buffer(self, max_length: int, batch: int = 1) -> KVBuffer:
        """A preallocated K/V buffer for every VLM layer on the model's device, in its dtype."""
        text = self.vlm.config.text_config
        head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
        return KVBuffer(
            text.num_hidden_layers, batch, text.num_key_value_heads, max_length, head_dim, self.dtype, self.device
        )

    def prefill_into(
        self, buffer: KVBuffer, input_ids: torch.Tensor, image_embeds: torch.Tensor, position_ids: torch.Tensor
    ) -> torch.Tensor:
        """Prefill the prompt into ``buffer`` (written in place from its current length) → last logits ``[B, V]``."""
        buffer.reserve(input_ids.shape[1])
        logits = self._language(self.embed_prompt(input_ids, image_embeds), position_ids, None, buffer.cache())
        buffer.advance(input_ids.shape[1])
        return logits

    def decode_into(self, buffer: KVBuffer, input_ids: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
        """One token per batch item on ``buffer`` (its K/V written at ``buffer.length``) → logits ``[B, V]``."""
        buffer.reserve(1)
        embeds = self.vlm.model.language_model.embed_tokens(input_ids)
        logits = self._language(embeds, position_ids, None, buffer.cache())
        buffer.advance(1)
        return logits

    def decode_static(
        self,
        buffer: KVBuffer,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor,
        write_position: torch.Tensor,
        attend: torch.Tensor,
    ) -> torch.Tensor:
        """:meth:`decode_into` with every shape fixed, for CUDA-graph capture: the token's K/V go to the device-side
        ``write_position [1]``, attention runs over the whole buffer where ``attend [B, S_max]`` is True (the caller
        sets it for ``[0, length]``). The caller advances ``buffer.length``."""
        text = self.vlm.config.text_config
        mask = attend[:, None, None, :]
        masks = {kind: mask for kind in set(getattr(text, "layer_types", None) or ["full_attention"])}
        embeds = self.vlm.model.language_model.embed_tokens(input_ids)
        return self._language(embeds, position_ids, masks, buffer.cache(write_position))

    def image_embeddings(self, pixel_values: torch.Tensor, grid_thw: torch.Tensor) -> torch.Tensor:
        """The vision tower's output for patchified frames ``[tokens, hidden]``, the merged image tokens the language
        model reads (newer transformers wrap it in an output object as ``pooler_output``)."""
        visual = self.vlm.model.visual
        out = visual(pixel_values.to(visual.dtype), grid_thw=grid_thw)
        return getattr(out, "pooler_output", out)

    def sparse_kv_layers(self, selected: list[KVLayer]) -> list[KVLayer | None]:
        """A per-VLM-layer list with the expert's selected layers' (K, V) in place (it reads only those)."""
        layers: list[KVLayer | None] = [None] * self.vlm.config.text_config.num_hidden_layers
        for index, layer in enumerate(self.expert.layers):
            layers[layer] = selected[index]
        return layers

    def flow_velocity(
        self, actions, tau, history: torch.Tensor, kv_layers, kv_mask=None, expert: nn.Module | None = None
    ) -> torch.Tensor:
        """One evaluation of the action expert (or of ``expert``, e.g. GRPO's frozen reference): velocity
        ``[B, N, 3]`` (normalised units) at (actions, τ). The flow's state stays float32; the expert runs in its
        weights' dtype."""
        expert = expert or self.expert
        dtype = expert.head.weight.dtype
        history_n = (history.float() / self.pose_scale).to(dtype)
        return expert(actions.to(dtype), tau.to(dtype), history_n, kv_layers, kv_mask).float()

    # --- planning --------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def plan(
        self,
        reasoning: Reasoning,
        history_ego: np.ndarray | torch.Tensor,
        num_steps: int | None = None,
        init: str | None = None,
        generator: torch.Generator | None = None,
    ) -> np.ndarray:
        """Future poses ``[N, 3]`` (ego frame, metres/radians) by the flow expert on the reasoning's cache."""
        history = torch.as_tensor(np.asarray(history_ego), dtype=torch.float32).to(self.device)[None]
        poses = self.flow_sample(reasoning.kv_layers, history, num_steps=num_steps, init=init, generator=generator)
        return poses[0].cpu().numpy()

    def flow_sample(
        self, kv_layers, history: torch.Tensor, kv_mask=None, num_steps=None, init=None, generator=None
    ) -> torch.Tensor:
        """Batched flow sampling: ``history [B, H, 3]`` → poses ``[B, N, 3]``."""
        cfg = self.config.expert
        start = self._start(history, init or cfg.init, generator)
        velocity = lambda a, tau: self.flow_velocity(a, tau, history, kv_layers, kv_mask)  # noqa: E731
        return euler_integrate(velocity, start, num_steps or cfg.num_steps) * self.action_scale

    def flow_sample_sde(
        self, kv_layers, history: torch.Tensor, noise_std: float, kv_mask=None, generator=None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Stochastic flow sampling for GRPO: poses ``[B, N, 3]`` and the normalised path ``[B, K + 1, N, 3]`` that
        :meth:`flow_path_log_prob` scores."""
        cfg = self.config.expert
        start = self._start(history, cfg.init, generator)
        velocity = lambda a, tau: self.flow_velocity(a, tau, history, kv_layers, kv_mask)  # noqa: E731
        path = sde_integrate(velocity, start, cfg.num_steps, noise_std, generator)
        return path[:, -1] * self.action_scale, path

    def flow_path_log_prob(
        self, kv_layers, history: torch.Tensor, path: torch.Tensor, noise_std: float, kv_mask=None, expert=None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probability ``[B]`` of a sampled path under the current action expert (or ``expert``), and its step
        means."""
        velocity = lambda a, tau: self.flow_velocity(a, tau, history, kv_layers, kv_mask, expert)  # noqa: E731
        return sde_log_prob(velocity, path, noise_std)

    def _start(self, history: torch.Tensor, init: str, generator: torch.Generator | None) -> torch.Tensor:
        cfg = self.config.expert
        history = history.float()
        if init == "noise":
            return gaussian((history.shape[0], cfg.num_poses, 3), generator, history.device)
        return history_initialisation(history, cfg.history_dt_s, cfg.num_poses, cfg.dt_s) / self.action_scale

    @torch.no_grad()
    def plan_autoregressive(
        self, observation: Observation, num_actions: int | None = None, constrained: bool = True
    ) -> np.ndarray:
        """The slow baseline: the VLM writes ``num_actions`` action tokens one at a time after the action marker
        (restricted to the action vocabulary when ``constrained``; otherwise a non-action token is an
        ActionTokenError). Returns the decoded poses ``[num_actions, 3]``."""
        input_ids, pixel_values, grid = self.prompt(observation)
        past = self._forward(input_ids, pixel_values, grid).past_key_values
        return self.decode_actions(past, num_actions or self.config.expert.num_poses, constrained)

    @torch.no_grad()
    def decode_actions(self, past, num_actions: int, constrained: bool = True) -> np.ndarray:
        """Write the action marker and ``num_actions`` action tokens onto the cache ``past`` (which grows)."""
        out = self._forward(self._ids([[self.action_marker_id]]), past=past)
        ids = []
        lookup = {int(t): i for i, t in enumerate(self.action_ids.tolist())}
        for _ in range(num_actions):
            logits = out.logits[0, -1]
            token = int(self.action_ids[logits[self.action_ids].argmax()]) if constrained else int(logits.argmax())
            if token not in lookup:
                raise ActionTokenError(
                    f"the VLM wrote '{self.tokenizer.decode([token])}' where an action token was expected"
                )
            ids.append(lookup[token])
            out = self._forward(self._ids([[token]]), past=out.past_key_values)
        # Each token is one 0.5 s step: more actions than poses extend the horizon.
        return self.codebook.decode(np.array(ids))

    # --- training losses -------------------------------------------------------------------------------------------

    def language_loss(
        self,
        observation: Observation,
        target_text: str,
        target_poses: np.ndarray | None = None,
        action_weight: float = 1.0,
    ) -> torch.Tensor:
        """Next-token loss on the reasoning text, then (optionally) the action marker and the action tokens."""
        return self.teacher_forced(observation, target_text, target_poses, action_weight)[0]

    def teacher_forced(
        self,
        observation: Observation,
        target_text: str,
        target_poses: np.ndarray | None = None,
        action_weight: float = 1.0,
    ) -> tuple[torch.Tensor, Any, int]:
        """One forward pass over prompt + reasoning (+ marker + action tokens): the next-token loss, the cache and the
        context length ``prompt + reasoning + marker``. The cache's first that many positions are the action expert's
        context (causal attention: the action tokens after the marker do not change them), so co-training gets both
        from one pass."""
        input_ids, pixel_values, grid = self.prompt(observation)
        target = self._ids(self.tokenizer(target_text, return_tensors="pt").input_ids)
        pieces, weights = [target], [torch.ones(target.shape[1])]
        if target_poses is not None:
            tokens = self.action_ids[self._ids(self.codebook.encode(target_poses))]
            marker = self._ids([[self.action_marker_id]])
            pieces += [marker, tokens[None]]
            weights += [torch.ones(1), torch.full((len(tokens),), action_weight)]
        full = torch.cat([input_ids, *pieces], dim=1)
        out = self._forward(full, pixel_values, grid)
        logits = out.logits[0, input_ids.shape[1] - 1 : -1].float()
        per_token = nn.functional.cross_entropy(logits, full[0, input_ids.shape[1] :], reduction="none")
        w = torch.cat(weights).to(per_token.device)
        context = input_ids.shape[1] + target.shape[1] + (target_poses is not None)
        return (per_token * w).sum() / w.sum(), out.past_key_values, context

    def flow_loss(
        self,
        kv_layers,
        history: torch.Tensor,
        target_poses: torch.Tensor,
        kv_mask=None,
        generator: torch.Generator | None = None,
        history_noise_std: float = 0.0,
    ) -> torch.Tensor:
        """Flow-matching loss ``[]`` on a cache (VLM frozen: pass a cache computed under ``no_grad``), the history
        optionally noised by ``history_noise_std`` (normalised units)."""
        cfg = self.config.expert
        history, target_poses = history.float().to(self.device), target_poses.float().to(self.device)
        noisy_history = history + history_noise_std * gaussian(history.shape, generator, self.device)
        start = self._start(noisy_history, cfg.init, generator)
        tau = sample_flow_time(
            history.shape[0],
            logit_mean=cfg.tau_logit_mean,
            logit_std=cfg.tau_logit_std,
            generator=generator,
            device=self.device,
        )
        velocity = lambda a, t: self.flow_velocity(a, t, noisy_history, kv_layers, kv_mask)  # noqa: E731
        return flow_matching_loss(velocity, target_poses / self.action_scale, start, tau)

    # --- files -----------------------------------------------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        """Write config, safetensors weights, tokenizer, codebook and a sha256 manifest of every file."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "config.json").write_text(json.dumps(config_to_dict(self.config), indent=2))
        state = {k: v.detach().contiguous() for k, v in self.state_dict().items()}
        save_file(_dedupe_shared(state), str(directory / "model.safetensors"))
        self.codebook.save(directory / "codebook.safetensors")
        self.tokenizer.save_pretrained(directory)
        manifest = {
            p.name: file_sha256(p) for p in sorted(directory.iterdir()) if p.is_file() and p.name != "manifest.json"
        }
        (directory / "manifest.json").write_text(json.dumps({"files": manifest}, indent=2))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> SpanVLA:
        """Rebuild from ``save`` output; refuse a missing file or one whose sha256 differs from the manifest."""
        directory = Path(directory)
        manifest_path = directory / "manifest.json"
        if not manifest_path.is_file():
            raise CheckpointError(f"{directory}: no manifest.json (not a SpanVLA checkpoint)")
        manifest = json.loads(manifest_path.read_text())["files"]
        for name in FILES:
            if name not in manifest or not (directory / name).is_file():
                raise CheckpointError(f"{directory}: missing {name}")
        for name, digest in manifest.items():
            path = directory / name
            if not path.is_file() or file_sha256(path) != digest:
                raise CheckpointError(f"{path}: sha256 does not match manifest.json (corrupt or tampered file)")
        config = _config_from_json(json.loads((directory / "config.json").read_text()))
        tokenizer = PreTrainedTokenizerFast.from_pretrained(directory, local_files_only=True)
        model = cls(config, tokenizer, ActionCodebook.load(directory / "codebook.safetensors"))
        state = load_file(str(directory / "model.safetensors"))
        missing, unexpected = model.load_state_dict(state, strict=False)
        tied = {"vlm.lm_head.weight"} if model.vlm.config.tie_word_embeddings else set()
        if set(missing) - tied or unexpected:
            raise CheckpointError(f"{directory}: weights do not fit the config (missing {missing}, extra {unexpected})")
        if tied:
            model.vlm.tie_weights()
        return model.eval()


def _config_from_json(data: dict) -> SpanVLAConfig:
    expert = dict(data.get("expert", {}))
    expert.pop("history_noise_std", None)  # a stage-2 training setting that older checkpoints kept in the model
    if "pose_scale" in expert:
        expert["pose_scale"] = tuple(expert["pose_scale"])
    if expert.get("action_scale") is not None:
        expert["action_scale"] = tuple(tuple(row) for row in expert["action_scale"])
    return config_from_dict(SpanVLAConfig, {**data, "expert": expert}, source="config.json")


def _dedupe_shared(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses tensors that share memory (tied embeddings); keep the first name of each storage."""
    seen, out = set(), {}
    for name, tensor in state.items():
        key = (tensor.data_ptr(), tensor.shape)
        if key in seen:
            continue
        seen.add(key)
        out[name] = tensor
    return out


def stack_cache(cache: DynamicCache) -> tuple[torch.Tensor, torch.Tensor]:
    """Keys and values of every layer stacked ``[L, B, kv_heads, S, d]``."""
    return torch.stack([layer.keys for layer in cache.layers]), torch.stack([layer.values for layer in cache.layers])
