"""GRPO rewards: ``r = r_driving − w_N·r_negative + w_R·r_recovery − λ_C·r_cot``.

* ``r_driving``: PDMS (v1) or EPDMS (v2) of the trajectory in the sample's scene, from the project's scorer;
* ``r_negative``: an L2-shaped penalty inside an activation radius around each negative trajectory:
  ``(1 − d / R)²`` for mean pose distance ``d < R`` (R ≈ 1.7 m as in the paper), else 0;
* ``r_recovery``: a bounded L2 reward for closeness to the recovery target: ``max(0, 1 − d / S)``;
* ``r_cot``: reasoning length (tokens over the budget) plus inconsistency between the stated decision and the
  trajectory (1 − consistency).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RewardConfig:
    driving_metric: str = "pdms"
    negative_weight: float = 5.0
    negative_radius_m: float = 1.7
    recovery_weight: float = 1.0
    recovery_scale_m: float = 2.0
    cot_weight: float = 0.1
    length_budget_tokens: int = 32


def mean_pose_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean Euclidean distance between corresponding (x, y) of two trajectories ``[N, 3]``."""
    n = min(len(a), len(b))
    return float(np.mean(np.linalg.norm(np.asarray(a)[:n, :2] - np.asarray(b)[:n, :2], axis=1)))


def negative_penalty(trajectory: np.ndarray, negatives: list[np.ndarray] | np.ndarray, radius_m: float) -> float:
    """The largest ``(1 − d/R)²`` over the negatives the trajectory comes within ``R`` of."""
    penalties = [max(0.0, 1.0 - mean_pose_distance(trajectory, n) / radius_m) ** 2 for n in negatives]
    return max(penalties, default=0.0)


def recovery_reward(trajectory: np.ndarray, recovery_target: np.ndarray, scale_m: float) -> float:
    return max(0.0, 1.0 - mean_pose_distance(trajectory, recovery_target) / scale_m)


def cot_penalty(num_tokens: int, consistency: float, budget_tokens: int) -> float:
    """Length beyond nothing, relative to the budget (capped at 1), plus inconsistency."""
    return min(num_tokens / max(budget_tokens, 1), 1.0) + (1.0 - consistency)


def total_reward(driving: float, negative: float, recovery: float, cot: float, config: RewardConfig) -> float:
    return driving - config.negative_weight * negative + config.recovery_weight * recovery - config.cot_weight * cot


def group_advantages(rewards: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """GRPO: rewards normalised within the group (zero mean, unit std; all-equal groups give zeros)."""
    rewards = np.asarray(rewards, dtype=np.float64)
    return (rewards - rewards.mean()) / (rewards.std() + eps)
