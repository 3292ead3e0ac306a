"""Training configuration: one YAML file (``config/train_default.yaml``) mapped one to one onto these frozen
dataclasses; an unknown key is an error before anything starts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..config import config_from_dict, load_config
from ..data.generate import GenerationConfig
from ..model.expert import ActionExpertConfig
from ..model.vlm import VLMConfig
from .rewards import RewardConfig


@dataclass(frozen=True)
class DataConfig:
    """The training dataset: generated into ``dir`` from ``episodes`` seeded episodes with ``generation`` unless it
    already exists (then it must have been made from the same seeds and generation config)."""

    dir: str = "runs/train/data"
    episodes: int = 120
    seed: int = 0
    workers: int = 2
    validation_fraction: float = 0.1
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    #: Further finished datasets trained on together with ``dir`` (DAgger rounds: ``spanvla data dagger``).
    extra_dirs: tuple[str, ...] = ()
    #: Each extra dataset is read this many times: a DAgger round is small against the base set.
    extra_repeat: int = 1


@dataclass(frozen=True)
class ModelConfig:
    vlm: VLMConfig = field(default_factory=VLMConfig)
    expert: ActionExpertConfig = field(default_factory=ActionExpertConfig)
    num_action_tokens: int = 256
    max_reasoning_tokens: int = 48
    vocab_size: int = 1024


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warm-up then cosine decay; gradient clipping; bf16 autocast where the device supports it."""

    steps: int = 300
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 20
    grad_clip: float = 1.0
    mixed_precision: bool = True
    eval_every: int = 100
    checkpoint_every: int = 100


@dataclass(frozen=True)
class SFTVLMConfig:
    optim: OptimConfig = field(default_factory=OptimConfig)
    reasoning_weight: float = 1.0
    action_token_weight: float = 1.0
    #: "ddp" (the VLM replicated on every rank) or "fsdp" (FSDP2: each decoder layer and vision block sharded, then
    #: the model; bf16 parameters with fp32 gradient reduction on GPUs): a 3B VLM's training state does not fit
    #: replicated on one GPU. Stages 2 and 3 train the action expert / LoRA adapters and stay DDP.
    strategy: str = "ddp"
    #: > 0: beside the next-token loss, a linear head regresses the driving state (``data.reasoning.driving_state``:
    #: lane offset and heading error, lead gap and closing speed, route heading ahead; from the stored scene) from the
    #: last VLM layer's cached values at the action marker, so that the cache the action expert reads carries it. The
    #: head is a training aid: it is not part of the checkpoint, and nothing at run time changes.
    driving_state_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.driving_state_weight < 0:
            raise ValueError(f"sft_vlm.driving_state_weight must be >= 0, got {self.driving_state_weight}")
        if self.strategy not in ("ddp", "fsdp"):
            raise ValueError(f"sft_vlm.strategy must be 'ddp' or 'fsdp', got {self.strategy!r}")


@dataclass(frozen=True)
class SFTBridgeConfig:
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(steps=1500, batch_size=32, lr=1e-3))
    #: 0: the VLM is frozen and its caches are computed once (the paper's stage 2). > 0: π0-style co-training — the
    #: flow loss also trains the VLM at this learning rate, its caches recomputed with gradient every step, so what
    #: the cache carries is shaped by the trajectory (the planner otherwise ignored the camera).
    vlm_lr: float = 0.0
    #: Co-training only: the stage-1 next-token loss (reasoning and action tokens, ``sft_vlm``'s weights) kept at this
    #: weight beside the flow loss (π0's knowledge insulation). At 0 the flow loss alone taught the VLM to emit action
    #: tokens where its reasoning was, so the cache the car decodes is not the one the expert trained on.
    language_weight: float = 0.0
    #: The flow's units per future pose: "config" (the model's) or "residual" (set at the stage's start to the RMS of
    #: each pose's departure from the history extrapolation over the training samples, at least 1/50 of
    #: ``pose_scale``): a near pose's error then costs as much as a far one's.
    action_scale: str = "config"
    #: Gaussian noise on the expert's history in training (normalised units: 0.05 is 1 m along, 0.2 m across and
    #: 0.02 rad of heading), against copying the history. It is as large as the drift the expert must notice; over
    #: three training seeds 0.05 and 0 drove alike in closed loop (README "Driving"), and the recipe uses 0.
    history_noise_std: float = 0.0

    def __post_init__(self) -> None:
        if self.history_noise_std < 0:
            raise ValueError(f"sft_bridge.history_noise_std must be >= 0, got {self.history_noise_std}")
        if self.action_scale not in ("config", "residual"):
            raise ValueError(f"sft_bridge.action_scale must be 'config' or 'residual', got {self.action_scale!r}")


@dataclass(frozen=True)
class GRPOConfig:
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(steps=40, batch_size=1, lr=3e-4, warmup_steps=5))
    group_size: int = 8
    temperature: float = 1.0
    max_reasoning_tokens: int = 24
    kl_weight: float = 0.05
    lora_rank: int = 8
    lora_alpha: int = 16
    trajectory_source: str = "flow"  # "flow" (the deployed bridge) or "action_tokens"
    #: Flow-GRPO: each group member's plan is sampled with this much SDE noise (normalised units per √τ) and the
    #: action expert learns from its per-step log-probabilities; 0 = the deterministic flow (only the reasoning
    #: differs within a group, and the plans barely do).
    flow_noise_std: float = 0.1
    mix_warmup: float = 0.25
    mix_positive: float = 0.25
    mix_negative: float = 0.375
    mix_recovery: float = 0.125
    rewards: RewardConfig = field(default_factory=RewardConfig)


@dataclass(frozen=True)
class DAggerConfig:
    """Closed-loop data aggregation after GRPO: each round drives the newest checkpoint in the embedded world
    (``episodes`` episodes from ``seed``), labels the states it reaches with the expert, and fine-tunes the VLM and the
    bridge on the base data plus every round so far (each round read ``repeat`` times)."""

    rounds: int = 0
    episodes: int = 120
    seed: int = 50_000
    workers: int = 2
    repeat: int = 3
    #: The round's bridge keeps the learner's flow units ("learner") or derives them again from the round's data
    #: ("residual", as ``sft_bridge.action_scale: residual``): the recovery states widen them ~1.8× at the first pose,
    #: and the expert relearns in units it was not trained in (kept: +0.039 [+0.004, +0.073]
    #: closed loop over 180 episodes, README "Driving").
    action_scale: str = "learner"
    #: The learner drives with the lane's speed limit, as the planning core holds plans to it on the car
    #: (``DeployedPlanner(map_speed_limit=True)``); off, it drives as the model alone would. Measured on: the round's
    #: checkpoint drove worse, 0.461 against 0.588 (−0.127 [−0.176, −0.080], 60 episodes from seed 70000).
    learner_speed_limit: bool = False
    #: The learner's core also gets the object list (collision guard) and the route (route keeping). The shipped round
    #: was driven before either existed, so both are off to reproduce it; a round driven with them reaches other states
    #: (fewer crashes, none off the road) and is not measured.
    learner_collision_guard: bool = False
    learner_route: bool = False
    sft_vlm: OptimConfig = field(
        default_factory=lambda: OptimConfig(steps=300, lr=3e-4, warmup_steps=10, eval_every=100, checkpoint_every=100)
    )
    sft_bridge: OptimConfig = field(
        default_factory=lambda: OptimConfig(
            steps=1000, batch_size=32, lr=5e-4, warmup_steps=20, eval_every=250, checkpoint_every=250
        )
    )

    def __post_init__(self) -> None:
        if self.action_scale not in ("learner", "residual"):
            raise ValueError(f"dagger.action_scale must be 'learner' or 'residual', got {self.action_scale!r}")


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    out_dir: str = "runs/train"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    sft_vlm: SFTVLMConfig = field(default_factory=SFTVLMConfig)
    sft_bridge: SFTBridgeConfig = field(default_factory=SFTBridgeConfig)
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    dagger: DAggerConfig = field(default_factory=DAggerConfig)


def load_train_config(path: str | Path | None) -> TrainConfig:
    """The config from YAML (``None``: the built-in defaults)."""
    if path is None:
        return TrainConfig()
    config = load_config(TrainConfig, path)
    if config.grpo.trajectory_source not in ("flow", "action_tokens"):
        raise ValueError(
            f"grpo.trajectory_source must be 'flow' or 'action_tokens', got {config.grpo.trajectory_source!r}"
        )
    return config


__all__ = ["TrainConfig", "config_from_dict", "load_train_config"]
