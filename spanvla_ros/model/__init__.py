"""The SpanVLA model (PyTorch + transformers): the Qwen2.5-VL reasoner, discrete action tokens, the sparse-KV-cache
action expert and history-initialised flow matching, with safetensors checkpoints. Imports no ROS."""

from .action_tokens import ActionCodebook, ActionTokenError, deltas_to_poses, poses_to_deltas
from .expert import ActionExpert, ActionExpertConfig, selected_layers
from .flow import euler_integrate, flow_matching_loss, history_initialisation, sample_flow_time
from .spanvla import CheckpointError, Observation, Reasoning, SpanVLA, SpanVLAConfig
from .tokenizer import FAST_MODE_TEXT, train_tokenizer
from .vlm import VLMConfig, build_vlm

__all__ = [
    "FAST_MODE_TEXT",
    "ActionCodebook",
    "ActionExpert",
    "ActionExpertConfig",
    "ActionTokenError",
    "CheckpointError",
    "Observation",
    "Reasoning",
    "SpanVLA",
    "SpanVLAConfig",
    "VLMConfig",
    "build_vlm",
    "deltas_to_poses",
    "euler_integrate",
    "flow_matching_loss",
    "history_initialisation",
    "poses_to_deltas",
    "sample_flow_time",
    "selected_layers",
    "train_tokenizer",
]
