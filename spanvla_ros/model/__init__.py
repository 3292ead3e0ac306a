"""The SpanVLA model (PyTorch): discrete action tokens, the sparse-KV-cache action expert and history-initialised
flow matching. Imports no ROS."""

from .action_tokens import ActionCodebook, ActionTokenError, deltas_to_poses, poses_to_deltas
from .expert import ActionExpert, ActionExpertConfig, selected_layers
from .flow import euler_integrate, flow_matching_loss, history_initialisation, sample_flow_time

__all__ = [
    "ActionCodebook",
    "ActionExpert",
    "ActionExpertConfig",
    "ActionTokenError",
    "deltas_to_poses",
    "euler_integrate",
    "flow_matching_loss",
    "history_initialisation",
    "poses_to_deltas",
    "sample_flow_time",
    "selected_layers",
]
