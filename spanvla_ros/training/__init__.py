"""Training: SFT of the VLM (reasoning + action tokens), SFT of the bridge (flow, VLM frozen), GRPO with LoRA and
negative/recovery rewards, and the recipe that produces the embedded default checkpoint. Runs as a plain process
or under ``torchrun`` (DDP)."""

from .config import TrainConfig, load_train_config

__all__ = ["TrainConfig", "load_train_config"]
