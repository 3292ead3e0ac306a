"""Batched LQR tracker and kinematic bicycle: turns planned poses into the states a car would actually drive.

As in NAVSIM's non-reactive simulation, a plan is not scored as drawn: it is interpolated to 10 Hz, tracked by an LQR
controller (longitudinal: along-track position and speed; lateral: lateral and heading error, gain-scheduled over
speed) and integrated with a kinematic bicycle (rear axle, first-order actuator lags, steering limits). Every function
works on a batch of proposals at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from functools import lru_cache

import numpy as np
from scipy.interpolate import CubicSpline
from scipy.linalg import solve_discrete_are

from ..scene import TrajectoryError, VehicleDimensions, wrap_angle


class StateIndex(IntEnum):
    """Columns of a simulated state array ``[B, T + 1, len(StateIndex)]`` (world frame, rear axle)."""

    X = 0
    Y = 1
    HEADING = 2
    SPEED = 3
    ACCELERATION = 4
    STEERING = 5
    YAW_RATE = 6


NUM_STATES = len(StateIndex)


@dataclass(frozen=True)
class TrackerConfig:
    """Controller weights and vehicle limits of the tracker + bicycle simulation."""

    max_steering_angle_rad: float = 0.6
    max_steering_rate_radps: float = 1.5
    max_acceleration_mps2: float = 4.0
    max_deceleration_mps2: float = 9.0
    acceleration_time_constant_s: float = 0.2
    steering_time_constant_s: float = 0.05
    preview_steps: int = 2
    # LQR weights: longitudinal state (along-track error [m], speed error [m/s]), input acceleration.
    q_longitudinal_position: float = 1.0
    q_longitudinal_speed: float = 2.0
    r_acceleration: float = 1.0
    # Lateral state (lateral error [m], heading error [rad]), input steering [rad].
    q_lateral: float = 1.0
    q_heading: float = 2.0
    r_steering: float = 8.0


@dataclass(frozen=True)
class Reference:
    """A reference to track, sampled every ``dt_s`` from t = 0: arrays ``[B, T + 1]``."""

    x: np.ndarray
    y: np.ndarray
    heading: np.ndarray
    speed: np.ndarray
    acceleration: np.ndarray
    yaw_rate: np.ndarray
    dt_s: float


def reference_from_poses(
    poses_world: np.ndarray,
    plan_dt_s: float,
    initial_pose: np.ndarray,
    initial_speed_mps: float,
    initial_yaw_rate_radps: float,
    num_steps: int,
    dt_s: float = 0.1,
) -> Reference:
    """Interpolate planned poses ``[B, N, 3]`` (world, at ``t = plan_dt_s * (1..N)``) to ``num_steps + 1`` samples.

    Position and heading are cubic splines through the current pose and the planned poses, clamped at t = 0 to the
    current velocity and yaw rate so the first metres continue the ego's motion instead of kinking.
    Raises TrajectoryError when the plan is shorter than ``num_steps * dt_s``.
    """
    poses_world = np.asarray(poses_world, dtype=np.float64)
    batch, num_poses, _ = poses_world.shape
    horizon_s = num_steps * dt_s
    if num_poses * plan_dt_s < horizon_s - 1e-9:
        raise TrajectoryError(
            f"the plan covers {num_poses * plan_dt_s:.2f} s ({num_poses} poses every {plan_dt_s} s); "
            f"scoring needs at least {horizon_s:.2f} s"
        )
    knots_t = np.arange(num_poses + 1) * plan_dt_s
    start = np.broadcast_to(np.asarray(initial_pose, dtype=np.float64), (batch, 3))
    knots = np.concatenate([start[:, None, :], poses_world], axis=1)  # [B, N + 1, 3]
    knots_heading = np.unwrap(knots[..., 2], axis=1)
    h0 = start[:, 2]
    v0 = np.stack([initial_speed_mps * np.cos(h0), initial_speed_mps * np.sin(h0)], axis=-1)  # [B, 2]
    xy_spline = CubicSpline(knots_t, knots[..., :2].transpose(1, 0, 2), axis=0, bc_type=((1, v0), "not-a-knot"))
    heading_spline = CubicSpline(
        knots_t, knots_heading.T, axis=0, bc_type=((1, np.full(batch, initial_yaw_rate_radps)), "not-a-knot")
    )
    t = np.arange(num_steps + 1) * dt_s
    xy = xy_spline(t).transpose(1, 0, 2)  # [B, T + 1, 2]
    velocity = xy_spline(t, 1).transpose(1, 0, 2)
    acceleration = xy_spline(t, 2).transpose(1, 0, 2)
    heading = heading_spline(t).T
    yaw_rate = heading_spline(t, 1).T
    cos_h, sin_h = np.cos(heading), np.sin(heading)
    return Reference(
        x=xy[..., 0],
        y=xy[..., 1],
        heading=wrap_angle(heading),
        speed=velocity[..., 0] * cos_h + velocity[..., 1] * sin_h,
        acceleration=acceleration[..., 0] * cos_h + acceleration[..., 1] * sin_h,
        yaw_rate=yaw_rate,
        dt_s=dt_s,
    )


def simulate(
    reference: Reference,
    initial_pose: np.ndarray,
    initial_speed_mps: float,
    initial_acceleration_mps2: float,
    initial_yaw_rate_radps: float,
    vehicle: VehicleDimensions,
    config: TrackerConfig = TrackerConfig(),
) -> np.ndarray:
    """Track ``reference`` from the ego's current state; return states ``[B, T + 1, NUM_STATES]`` (index 0 = now)."""
    batch, steps = reference.x.shape
    dt, wheelbase = reference.dt_s, vehicle.wheelbase_m
    states = np.zeros((batch, steps, NUM_STATES))
    speed0 = float(initial_speed_mps)
    steering0 = np.arctan(wheelbase * initial_yaw_rate_radps / speed0) if abs(speed0) > 0.2 else 0.0
    steering0 = float(np.clip(steering0, -config.max_steering_angle_rad, config.max_steering_angle_rad))
    states[:, 0, :3] = np.asarray(initial_pose, dtype=np.float64)
    states[:, 0, StateIndex.SPEED] = speed0
    states[:, 0, StateIndex.ACCELERATION] = initial_acceleration_mps2
    states[:, 0, StateIndex.STEERING] = steering0
    states[:, 0, StateIndex.YAW_RATE] = speed0 * np.tan(steering0) / wheelbase
    k_lon = _longitudinal_gain(dt, config.q_longitudinal_position, config.q_longitudinal_speed, config.r_acceleration)
    speed_grid, k_lat_grid = _lateral_gains(dt, wheelbase, config.q_lateral, config.q_heading, config.r_steering)
    accel_alpha = dt / (config.acceleration_time_constant_s + dt)
    steer_alpha = dt / (config.steering_time_constant_s + dt)
    max_steer_step = config.max_steering_rate_radps * dt

    for k in range(steps - 1):
        s = states[:, k]
        x, y, heading, speed = s[:, 0], s[:, 1], s[:, 2], s[:, 3]
        # Errors in the frame of the reference pose at this time.
        ref_h = reference.heading[:, k]
        dx, dy = x - reference.x[:, k], y - reference.y[:, k]
        along_error = dx * np.cos(ref_h) + dy * np.sin(ref_h)
        lateral_error = -dx * np.sin(ref_h) + dy * np.cos(ref_h)
        heading_error = wrap_angle(heading - ref_h)
        # Longitudinal LQR (feedforward + feedback on along-track and speed error).
        accel_cmd = reference.acceleration[:, k] - (k_lon[0] * along_error + k_lon[1] * (speed - reference.speed[:, k]))
        accel_cmd = np.clip(accel_cmd, -config.max_deceleration_mps2, config.max_acceleration_mps2)
        # Lateral LQR, gains scheduled over the current speed, plus curvature feedforward.
        gain_speed = np.clip(np.abs(speed), speed_grid[0], speed_grid[-1])
        k_y = np.interp(gain_speed, speed_grid, k_lat_grid[:, 0])
        k_h = np.interp(gain_speed, speed_grid, k_lat_grid[:, 1])
        # Curvature feed-forward previews the reference by the actuator lag: the spline starts at the current yaw
        # rate, so without a preview a controller stepped one tick at a time (the closed loop) would never turn.
        preview = min(k + config.preview_steps, steps - 1)
        curvature = reference.yaw_rate[:, preview] / np.maximum(np.abs(reference.speed[:, preview]), 0.5)
        steer_cmd = np.arctan(wheelbase * curvature) - (k_y * lateral_error + k_h * heading_error)
        steer_cmd = np.clip(steer_cmd, -config.max_steering_angle_rad, config.max_steering_angle_rad)
        # Actuators: first-order lags, steering-rate limit.
        accel = s[:, 4] + accel_alpha * (accel_cmd - s[:, 4])
        steer = s[:, 5] + np.clip(steer_alpha * (steer_cmd - s[:, 5]), -max_steer_step, max_steer_step)
        # Kinematic bicycle about the rear axle (forward Euler); the car does not reverse.
        yaw_rate = speed * np.tan(steer) / wheelbase
        new_speed = np.maximum(speed + accel * dt, 0.0)
        accel = np.where((speed + accel * dt) < 0.0, -speed / dt, accel)
        nxt = states[:, k + 1]
        nxt[:, 0] = x + speed * np.cos(heading) * dt
        nxt[:, 1] = y + speed * np.sin(heading) * dt
        nxt[:, 2] = wrap_angle(heading + yaw_rate * dt)
        nxt[:, 3] = new_speed
        nxt[:, 4] = accel
        nxt[:, 5] = steer
        nxt[:, 6] = new_speed * np.tan(steer) / wheelbase
    return states


def track_poses(
    poses_world: np.ndarray,
    plan_dt_s: float,
    initial_pose: np.ndarray,
    initial_speed_mps: float,
    initial_acceleration_mps2: float,
    initial_yaw_rate_radps: float,
    vehicle: VehicleDimensions,
    num_steps: int,
    dt_s: float = 0.1,
    config: TrackerConfig = TrackerConfig(),
) -> np.ndarray:
    """Interpolate and track planned world poses ``[B, N, 3]``; return simulated states ``[B, num_steps + 1, 7]``."""
    reference = reference_from_poses(
        poses_world, plan_dt_s, initial_pose, initial_speed_mps, initial_yaw_rate_radps, num_steps, dt_s
    )
    return simulate(
        reference, initial_pose, initial_speed_mps, initial_acceleration_mps2, initial_yaw_rate_radps, vehicle, config
    )


@lru_cache(maxsize=16)
def _longitudinal_gain(dt: float, q_position: float, q_speed: float, r_accel: float) -> tuple[float, float]:
    a = np.array([[1.0, dt], [0.0, 1.0]])
    b = np.array([[0.5 * dt * dt], [dt]])
    gain = _dlqr(a, b, np.diag([q_position, q_speed]), np.array([[r_accel]]))
    return float(gain[0, 0]), float(gain[0, 1])


@lru_cache(maxsize=16)
def _lateral_gains(
    dt: float, wheelbase: float, q_lateral: float, q_heading: float, r_steering: float
) -> tuple[np.ndarray, np.ndarray]:
    """Infinite-horizon LQR gains ``[S, 2]`` for the linearised lateral error dynamics at each grid speed."""
    speeds = np.linspace(0.5, 40.0, 80)
    gains = np.zeros((len(speeds), 2))
    q, r = np.diag([q_lateral, q_heading]), np.array([[r_steering]])
    for i, v in enumerate(speeds):
        a = np.array([[1.0, v * dt], [0.0, 1.0]])
        b = np.array([[0.5 * v * v * dt * dt / wheelbase], [v * dt / wheelbase]])
        gains[i] = _dlqr(a, b, q, r)[0]
    return speeds, gains


def _dlqr(a: np.ndarray, b: np.ndarray, q: np.ndarray, r: np.ndarray) -> np.ndarray:
    p = solve_discrete_are(a, b, q, r)
    return np.linalg.solve(r + b.T @ p @ b, b.T @ p @ a)
