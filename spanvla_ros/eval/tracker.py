"""Batched LQR tracker and kinematic bicycle with the semantics of NAVSIM's PDM simulator.

A plan is not scored as drawn: the current pose is put in front of the planned poses, the sequence is interpolated
linearly (headings unwrapped) to 10 Hz, and a car drives it:

* a velocity and a curvature profile are fitted to the interpolated poses by regularised least squares (jerk and
  curvature-rate penalties), as nuPlan's LQR tracker does;
* each tick, a stopping P controller (reference and ego both slower than 0.2 m/s) or a one-step LQR on the speed the
  profile asks for ``tracking_horizon`` ticks ahead gives the acceleration; a lateral LQR over the same horizon (states
  lateral error, heading error, steering angle; input steering rate), linearised along the fitted velocity and
  curvature, gives the steering rate;
* a kinematic bicycle about the rear axle integrates the commands (forward Euler) after first-order actuator lags; the
  steering angle is clipped to ±π/3, acceleration is not limited and the car may reverse.

Written from the semantics of NAVSIM's ``PDMSimulator``, ``BatchLQRTracker`` and ``BatchKinematicBicycleModel``
(v1.1 and v2 share them); cross-checked against that code in ``test/eval/data/navsim_golden.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from ..scene import TrajectoryError, VehicleDimensions, interpolate_poses, wrap_angle


class StateIndex(IntEnum):
    """Columns of a simulated state array ``[B, T + 1, NUM_STATES]`` (world frame, rear axle; speeds and
    accelerations along / across the car's heading)."""

    X = 0
    Y = 1
    HEADING = 2
    SPEED = 3  # longitudinal, signed (negative when reversing)
    ACCELERATION = 4  # longitudinal
    STEERING = 5
    YAW_RATE = 6
    STEERING_RATE = 7
    YAW_ACCELERATION = 8
    LATERAL_SPEED = 9
    LATERAL_ACCELERATION = 10


NUM_STATES = len(StateIndex)


@dataclass(frozen=True)
class TrackerConfig:
    """Controller weights and vehicle limits (NAVSIM's defaults)."""

    # Longitudinal one-step LQR: weight on the speed error at the horizon, on the acceleration.
    q_longitudinal: float = 10.0
    r_longitudinal: float = 1.0
    # Lateral LQR: weights on lateral error [m], heading error [rad], steering angle [rad]; on the steering rate.
    q_lateral: tuple[float, float, float] = (1.0, 10.0, 0.0)
    r_lateral: float = 1.0
    tracking_horizon: int = 10
    # Regularisation of the velocity and curvature profile fits.
    jerk_penalty: float = 1e-4
    curvature_rate_penalty: float = 1e-2
    # Below this speed (ego and reference) a P controller brings the car to the reference speed.
    stopping_proportional_gain: float = 0.5
    stopping_velocity_mps: float = 0.2
    max_steering_angle_rad: float = float(np.pi / 3)
    acceleration_time_constant_s: float = 0.2
    steering_time_constant_s: float = 0.05


def initial_state(
    pose: np.ndarray,
    speed_mps: float,
    acceleration_mps2: float = 0.0,
    yaw_rate_radps: float = 0.0,
    steering_rad: float = 0.0,
) -> np.ndarray:
    """A state ``[NUM_STATES]`` from a logged ego status. NAVSIM's logged states carry no steering angle (0), so a
    car that is turning starts with straight wheels; pass ``steering_rad`` to start from a known angle."""
    state = np.zeros(NUM_STATES)
    state[:3] = np.asarray(pose, dtype=np.float64)
    state[StateIndex.SPEED] = speed_mps
    state[StateIndex.ACCELERATION] = acceleration_mps2
    state[StateIndex.YAW_RATE] = yaw_rate_radps
    state[StateIndex.STEERING] = steering_rad
    return state


def interpolate_plan(
    poses_world: np.ndarray, plan_dt_s: float, initial_pose: np.ndarray, num_steps: int, dt_s: float = 0.1
) -> np.ndarray:
    """The reference ``[B, num_steps + 1, 3]``: the current pose followed by the planned poses ``[B, N, 3]`` (at
    ``t = plan_dt_s * (1..N)``), linearly interpolated every ``dt_s`` (headings unwrapped, then wrapped); times past
    the plan's end hold its last pose."""
    poses_world = np.asarray(poses_world, dtype=np.float64)
    batch, num_poses, _ = poses_world.shape
    start = np.broadcast_to(np.asarray(initial_pose, dtype=np.float64), (batch, 3))
    knots = np.concatenate([start[:, None, :], poses_world], axis=1)  # [B, N + 1, 3]
    return interpolate_poses(np.arange(num_poses + 1) * plan_dt_s, knots, np.arange(num_steps + 1) * dt_s)


def fit_velocity_and_curvature(
    poses: np.ndarray, dt_s: float, jerk_penalty: float, curvature_rate_penalty: float
) -> tuple[np.ndarray, np.ndarray]:
    """Speed and curvature profiles ``[B, T]`` that explain the displacements between poses ``[B, T + 1, 3]``.

    Speed: ``v_k = v_0 + dt·Σ_{j<k} a_j`` with each displacement ``v_k·dt`` along the pose's heading, least squares
    with a small penalty on the accelerations. Curvature: each heading change ``v_k·κ_k·dt`` with
    ``κ_k = κ_0 + dt·Σ_{j<k} κ̇_j``, least squares with a penalty on ``κ̇`` (and a tiny one on ``κ_0``, so a standing
    start stays well posed).
    """
    batch, num_poses, _ = poses.shape
    steps = num_poses - 1
    if steps < 3:
        raise TrajectoryError(f"the reference needs at least 4 poses to fit a speed profile, got {num_poses}")
    displacement = np.diff(poses[..., :2], axis=1)  # [B, M, 2]
    heading_change = wrap_angle(np.diff(poses[..., 2], axis=1))  # [B, M]
    lower = np.tril(np.ones((steps, steps)))  # [k, j]: j <= k

    # Speed fit: unknowns (v_0, a_0 .. a_{M-2}); rows interleave x and y of each displacement.
    direction = np.stack([np.cos(poses[:, :-1, 2]), np.sin(poses[:, :-1, 2])], axis=-1)  # [B, M, 2]
    design = np.empty((batch, steps, 2, steps))
    design[..., 0] = direction * dt_s
    design[..., 1:] = direction[..., None] * (dt_s * dt_s) * np.tril(np.ones((steps, steps - 1)), -1)[None, :, None, :]
    design = design.reshape(batch, 2 * steps, steps)
    # nuPlan's "jerk" penalty matrix: its second assignment overwrites the first, so every row but the last
    # penalises an acceleration itself and only the last one a difference. Kept as is: the scores depend on it.
    difference = np.zeros((steps - 2, steps))
    difference[:, 1:-1] = -np.eye(steps - 2)
    difference[-1, -1] = 1.0
    solution = _regularised_least_squares(
        design, displacement.reshape(batch, -1), jerk_penalty * (difference.T @ difference)
    )
    speed = solution[:, :1] + np.pad(np.cumsum(solution[:, 1:] * dt_s, axis=1), ((0, 0), (1, 0)))  # [B, M]

    # Curvature fit: unknowns (κ_0, κ̇_0 .. κ̇_{M-2}).
    design = np.broadcast_to(lower, (batch, steps, steps)).copy()
    design[:, :, 0] = speed * dt_s
    design[:, 1:, 1:] *= (speed[:, 1:] * dt_s * dt_s)[..., None]
    regulariser = curvature_rate_penalty * np.eye(steps)
    regulariser[0, 0] = 1e-10
    solution = _regularised_least_squares(design, heading_change, regulariser)
    curvature = solution[:, :1] + np.pad(np.cumsum(solution[:, 1:] * dt_s, axis=1), ((0, 0), (1, 0)))
    return speed, curvature


def simulate(
    reference: np.ndarray,
    start: np.ndarray,
    vehicle: VehicleDimensions,
    dt_s: float = 0.1,
    config: TrackerConfig = TrackerConfig(),
    num_steps: int | None = None,
) -> np.ndarray:
    """Drive the reference poses ``[B, T + 1, 3]`` (index 0 = now) from ``start`` (``[NUM_STATES]`` or
    ``[B, NUM_STATES]``); return states ``[B, num_steps + 1, NUM_STATES]`` (default ``num_steps = T``)."""
    batch, num_poses, _ = reference.shape
    num_steps = num_poses - 1 if num_steps is None else num_steps
    speed_profile, curvature_profile = fit_velocity_and_curvature(
        reference, dt_s, config.jerk_penalty, config.curvature_rate_penalty
    )
    profile_length = speed_profile.shape[1]
    horizon = config.tracking_horizon
    wheelbase = vehicle.wheelbase_m
    q_lat = config.q_lateral
    states = np.zeros((batch, num_steps + 1, NUM_STATES))
    states[:, 0] = np.broadcast_to(np.asarray(start, dtype=np.float64), (batch, NUM_STATES))
    accel_alpha = dt_s / (dt_s + config.acceleration_time_constant_s)
    steer_alpha = dt_s / (dt_s + config.steering_time_constant_s)
    lon_gain = (
        horizon * dt_s * config.q_longitudinal / ((horizon * dt_s) ** 2 * config.q_longitudinal + config.r_longitudinal)
    )
    for k in range(num_steps):
        s = states[:, k]
        speed, steering = s[:, StateIndex.SPEED], s[:, StateIndex.STEERING]
        # Tracking errors against the reference pose of this tick.
        ref = reference[:, min(k, num_poses - 1)]
        dx, dy = s[:, 0] - ref[:, 0], s[:, 1] - ref[:, 1]
        lateral_error = -dx * np.sin(ref[:, 2]) + dy * np.cos(ref[:, 2])
        heading_error = wrap_angle_symmetric(s[:, 2] - ref[:, 2])
        target = min(k + horizon, profile_length - 1)
        target_speed = speed_profile[:, target]
        curvature = np.empty((batch, horizon))
        available = max(target - k, 0)
        curvature[:, :available] = curvature_profile[:, k:target]
        curvature[:, available:] = curvature_profile[:, target, None]

        stopping = (target_speed <= config.stopping_velocity_mps) & (speed <= config.stopping_velocity_mps)
        accel_cmd = np.where(
            stopping,
            -config.stopping_proportional_gain * (speed - target_speed),
            -lon_gain * (speed - target_speed),
        )
        # Lateral LQR: roll the linear time-varying error dynamics over the horizon at the speeds the acceleration
        # command gives. The product of the step matrices stays unit upper-triangular, so it is kept as 3 entries.
        a01 = np.zeros(batch)
        a02 = np.zeros(batch)
        a12 = np.zeros(batch)
        b0 = np.zeros(batch)
        b1 = np.zeros(batch)
        b2 = np.zeros(batch)
        g0 = np.zeros(batch)
        g1 = np.zeros(batch)
        for i in range(horizon):
            v_dt = (speed + i * accel_cmd * dt_s) * dt_s
            a02 = a02 + v_dt * a12
            a01 = a01 + v_dt
            a12 = a12 + v_dt / wheelbase
            b0 = b0 + v_dt * b1
            b1 = b1 + v_dt / wheelbase * b2
            b2 = b2 + dt_s
            g0 = g0 + v_dt * g1
            g1 = g1 - v_dt * curvature[:, i]
        e0 = lateral_error + a01 * heading_error + a02 * steering + g0
        e1 = wrap_angle_symmetric(heading_error + a12 * steering + g1)
        e2 = wrap_angle_symmetric(steering)
        steer_rate_cmd = -(b0 * q_lat[0] * e0 + b1 * q_lat[1] * e1 + b2 * q_lat[2] * e2) / (
            b0 * b0 * q_lat[0] + b1 * b1 * q_lat[1] + b2 * b2 * q_lat[2] + config.r_lateral
        )
        steer_rate_cmd = np.where(stopping, 0.0, steer_rate_cmd)

        # Bicycle: first-order lags on the commands, then one Euler step about the rear axle.
        accel = accel_alpha * (accel_cmd - s[:, StateIndex.ACCELERATION]) + s[:, StateIndex.ACCELERATION]
        lagged_steering = steer_alpha * ((dt_s * steer_rate_cmd + steering) - steering) + steering
        steering_rate = (lagged_steering - steering) / dt_s
        nxt = states[:, k + 1]
        nxt[:, 0] = s[:, 0] + speed * np.cos(s[:, 2]) * dt_s
        nxt[:, 1] = s[:, 1] + speed * np.sin(s[:, 2]) * dt_s
        nxt[:, 2] = wrap_angle(s[:, 2] + speed * np.tan(steering) / wheelbase * dt_s)
        nxt[:, StateIndex.SPEED] = speed + accel * dt_s
        nxt[:, StateIndex.ACCELERATION] = accel
        nxt[:, StateIndex.STEERING] = np.clip(
            steering + steering_rate * dt_s, -config.max_steering_angle_rad, config.max_steering_angle_rad
        )
        nxt[:, StateIndex.STEERING_RATE] = steering_rate
        nxt[:, StateIndex.YAW_RATE] = nxt[:, StateIndex.SPEED] * np.tan(nxt[:, StateIndex.STEERING]) / wheelbase
        nxt[:, StateIndex.YAW_ACCELERATION] = (nxt[:, StateIndex.YAW_RATE] - s[:, StateIndex.YAW_RATE]) / dt_s
    return states


def track_poses(
    poses_world: np.ndarray,
    plan_dt_s: float,
    start: np.ndarray,
    vehicle: VehicleDimensions,
    num_steps: int,
    dt_s: float = 0.1,
    config: TrackerConfig = TrackerConfig(),
) -> np.ndarray:
    """Interpolate and drive planned world poses ``[B, N, 3]`` from the state ``start``; return simulated states
    ``[B, num_steps + 1, NUM_STATES]``. Raises TrajectoryError when the plan is shorter than ``num_steps * dt_s``."""
    poses_world = np.asarray(poses_world, dtype=np.float64)
    num_poses = poses_world.shape[1]
    if num_poses * plan_dt_s < num_steps * dt_s - 1e-9:
        raise TrajectoryError(
            f"the plan covers {num_poses * plan_dt_s:.2f} s ({num_poses} poses every {plan_dt_s} s); "
            f"scoring needs at least {num_steps * dt_s:.2f} s"
        )
    start = np.asarray(start, dtype=np.float64)
    reference = interpolate_plan(poses_world, plan_dt_s, start[..., :3], num_steps, dt_s)
    return simulate(reference, start, vehicle, dt_s, config)


def wrap_angle_symmetric(angle_rad: np.ndarray) -> np.ndarray:
    """Wrap to (-pi, pi] the way ``arctan2(sin, cos)`` does (the LQR's angle errors)."""
    return np.arctan2(np.sin(angle_rad), np.cos(angle_rad))


def _regularised_least_squares(design: np.ndarray, target: np.ndarray, regulariser: np.ndarray) -> np.ndarray:
    """``argmin_x |A x - y|² + xᵀ R x`` for a batch: ``design [B, R, C]``, ``target [B, R]``, ``regulariser [C, C]``."""
    design_t = design.transpose(0, 2, 1)
    normal = design_t @ design + regulariser
    rhs = np.einsum("bcr,br->bc", design_t, target)
    try:
        return np.linalg.solve(normal, rhs[..., None])[..., 0]
    except np.linalg.LinAlgError:
        return np.einsum("bcd,bd->bc", np.linalg.pinv(normal), rhs)
