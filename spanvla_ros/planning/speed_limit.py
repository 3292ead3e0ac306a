"""Re-timing a plan along its own path: held to the road's speed limit, or braked for an obstacle. The path itself is
unchanged; only how fast the car moves along it."""

from __future__ import annotations

import numpy as np
from scipy.interpolate import PchipInterpolator


def limit_speed(
    poses_ego: np.ndarray, dt_s: float, speed_mps: float, limit_mps: float, deceleration_mps2: float
) -> np.ndarray:
    """The plan ``[N, 3]`` (ego frame, the ego at the origin, the i-th pose at ``(i+1)·dt_s``) re-timed along its own
    path so that no step is faster than the limit; an ego already above it comes down at ``deceleration_mps2``.
    Each step keeps the plan's speed where that is lower (braking for a lead stays as planned)."""
    if not (np.isfinite(limit_mps) and limit_mps > 0 and deceleration_mps2 > 0):
        raise ValueError(f"a speed limit needs limit > 0 and deceleration > 0, got {limit_mps}, {deceleration_mps2}")
    return _retimed(poses_ego, dt_s, speed_mps, limit_mps, deceleration_mps2)


def brake_along_path(poses_ego: np.ndarray, dt_s: float, speed_mps: float, deceleration_mps2: float) -> np.ndarray:
    """The plan re-timed to brake along its path at ``deceleration_mps2`` from ``speed_mps`` to a standstill; steps
    the plan already drives slower stay as planned."""
    if not deceleration_mps2 > 0:
        raise ValueError(f"braking needs a deceleration > 0, got {deceleration_mps2}")
    return _retimed(poses_ego, dt_s, speed_mps, 0.0, deceleration_mps2)


def _retimed(
    poses_ego: np.ndarray, dt_s: float, speed_mps: float, floor_mps: float, deceleration_mps2: float
) -> np.ndarray:
    """Each step no faster on average than the profile ``max(floor, speed − deceleration·t)`` over it, nor than the
    plan's own step; positions follow a shape-preserving spline through the plan's points by arc length, so that
    closely spaced poses of a slowed plan do not show the corners of its polyline as sharp turns."""
    poses = np.asarray(poses_ego, dtype=np.float64)
    points = np.vstack([np.zeros(2), poses[:, :2]])
    steps = np.hypot(*np.diff(points, axis=0).T)
    along = np.concatenate([[0.0], np.cumsum(steps)])
    t = dt_s * np.arange(len(poses) + 1)
    profile = distance_under(t, max(float(speed_mps), 0.0), floor_mps, deceleration_mps2)
    travelled = np.cumsum(np.minimum(steps, np.diff(profile)))
    if np.allclose(travelled, along[1:]):
        return poses.copy()
    headings = np.unwrap(np.concatenate([[0.0], poses[:, 2]]))
    keep = np.concatenate([[True], steps > 1e-6])  # a spline needs strictly increasing arc lengths
    out = np.empty_like(poses)
    if keep.sum() >= 3:
        out[:, :2] = PchipInterpolator(along[keep], points[keep], axis=0)(travelled)
    else:
        out[:, 0] = np.interp(travelled, along, points[:, 0])
        out[:, 1] = np.interp(travelled, along, points[:, 1])
    out[:, 2] = np.interp(travelled, along, headings)
    return out


def distance_under(t: np.ndarray, speed_mps: float, floor_mps: float, deceleration_mps2: float) -> np.ndarray:
    """Distance covered by ``t`` at the speed ``max(floor, speed − deceleration·t)``."""
    if speed_mps <= floor_mps:
        return floor_mps * t
    slowing_s = (speed_mps - floor_mps) / deceleration_mps2
    during = np.minimum(t, slowing_s)
    return speed_mps * during - 0.5 * deceleration_mps2 * during**2 + floor_mps * np.maximum(t - slowing_s, 0.0)
