"""Holding a plan to the road's speed limit: the same path, driven no faster than the limit."""

from __future__ import annotations

import numpy as np


def limit_speed(
    poses_ego: np.ndarray, dt_s: float, speed_mps: float, limit_mps: float, deceleration_mps2: float
) -> np.ndarray:
    """The plan ``[N, 3]`` (ego frame, the ego at the origin, the i-th pose at ``(i+1)·dt_s``) re-timed along its own
    path so that no step is faster than the limit; an ego already above it comes down at ``deceleration_mps2``.
    Each step keeps the plan's speed where that is lower (braking for a lead stays as planned). Positions and
    headings are interpolated along the path, so the path itself is unchanged."""
    poses = np.asarray(poses_ego, dtype=np.float64)
    if not (np.isfinite(limit_mps) and limit_mps > 0 and deceleration_mps2 > 0):
        raise ValueError(f"a speed limit needs limit > 0 and deceleration > 0, got {limit_mps}, {deceleration_mps2}")
    points = np.vstack([np.zeros(2), poses[:, :2]])
    steps = np.hypot(*np.diff(points, axis=0).T)
    along = np.concatenate([[0.0], np.cumsum(steps)])
    t = dt_s * np.arange(1, len(poses) + 1)
    allowed = np.maximum(limit_mps, max(float(speed_mps), 0.0) - deceleration_mps2 * t)
    travelled = np.cumsum(np.minimum(steps / dt_s, allowed) * dt_s)
    if np.allclose(travelled, along[1:]):
        return poses.copy()
    headings = np.unwrap(np.concatenate([[0.0], poses[:, 2]]))
    out = np.empty_like(poses)
    out[:, 0] = np.interp(travelled, along, points[:, 0])
    out[:, 1] = np.interp(travelled, along, points[:, 1])
    out[:, 2] = np.interp(travelled, along, headings)
    return out
