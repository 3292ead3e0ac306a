"""The safe fallback plan: brake straight ahead to a standstill."""

from __future__ import annotations

import numpy as np


def stop_poses(speed_mps: float, num_poses: int, dt_s: float, deceleration_mps2: float) -> np.ndarray:
    """Poses ``[N, 3]`` (ego frame, the i-th at ``(i+1)·dt_s``) braking at ``deceleration_mps2`` along x, then
    holding the stop point."""
    speed = max(float(speed_mps), 0.0) if np.isfinite(speed_mps) else 0.0
    t = np.arange(1, num_poses + 1) * dt_s
    tc = np.minimum(t, speed / deceleration_mps2)
    x = speed * tc - 0.5 * deceleration_mps2 * tc**2
    return np.column_stack([x, np.zeros(num_poses), np.zeros(num_poses)])
