"""Trajectory validation before a plan is published (the role of Autoware's ``planning_validator``).

A plan ``[N, 3]`` in the ego rear-axle frame at plan time (one pose every ``dt_s``, the first at ``t = dt_s``) is
checked against limits a controller can follow: finite values, point spacing, curvature and the turn between
segments, lateral acceleration ``v²κ``, longitudinal acceleration, deceleration and jerk, steering angle and rate (from
the curvature and the wheelbase), how far its start departs from the ego (speed, position, heading), no backwards
motion while the ego drives forward, and a length the car could stop within. Every check reports its measured value
and its limit, so a rejection says which rule failed and by how much.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class ValidatorConfig:
    """Limits of a plan a car's controller may follow (defaults for a passenger car)."""

    max_point_interval_m: float = 40.0
    max_relative_angle_rad: float = 2.0
    max_curvature_1pm: float = 0.35
    max_lateral_acceleration_mps2: float = 9.8
    max_acceleration_mps2: float = 9.8
    max_deceleration_mps2: float = 9.8
    max_jerk_mps3: float = 50.0
    wheelbase_m: float = 2.8
    max_steering_rad: float = 0.8
    max_steering_rate_radps: float = 2.0
    max_velocity_deviation_mps: float = 10.0
    max_first_pose_deviation_m: float = 6.0
    max_first_heading_deviation_rad: float = 0.8
    #: A pose's heading may differ this much from the direction its positions travel (a tracker follows both).
    max_heading_inconsistency_rad: float = 0.35
    #: Above this ego speed, a plan must not move backwards (a reverse manoeuvre starts from a stop).
    forward_speed_mps: float = 1.0
    backward_tolerance_m: float = 0.2
    #: The plan must reach at least as far as braking at this deceleration would (within its horizon), plus the margin.
    stop_deceleration_mps2: float = 8.0
    stop_margin_m: float = 0.0
    #: Segments shorter than this carry no direction: turn and curvature checks skip them (a standing car).
    min_segment_m: float = 0.5

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not (value >= 0 if name == "stop_margin_m" else value > 0):
                raise ValueError(f"validator limit {name} must be > 0, got {value}")


#: The checks in report order.
CHECKS = (
    "finite",
    "point_interval",
    "relative_angle",
    "curvature",
    "lateral_acceleration",
    "acceleration",
    "deceleration",
    "jerk",
    "steering",
    "steering_rate",
    "velocity_deviation",
    "first_pose_deviation",
    "first_heading_deviation",
    "heading_consistency",
    "backward_motion",
    "forward_length",
)


@dataclass(frozen=True)
class CheckResult:
    name: str
    value: float
    limit: float

    @property
    def passed(self) -> bool:
        return bool(self.value <= self.limit)


@dataclass(frozen=True)
class ValidationResult:
    """Every check's measured value and limit; ``failures`` are the ones over their limit."""

    checks: tuple[CheckResult, ...] = field(default_factory=tuple)

    @property
    def valid(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        return tuple(check for check in self.checks if not check.passed)

    def summary(self) -> str:
        """``"ok"`` or the failed checks as ``name value > limit``."""
        if self.valid:
            return "ok"
        return "; ".join(f"{c.name} {c.value:.3g} > {c.limit:.3g}" for c in self.failures)


def path_headings(poses_ego: np.ndarray, min_segment_m: float = 0.5) -> np.ndarray:
    """The direction of travel at each pose of a plan ``[N, 3]`` (ego frame, the ego at the origin before the first
    pose): the chord from the previous to the next point, which on an arc is the tangent; the last pose continues the
    turn of its incoming segment. Where the car barely moves (a chord under ``min_segment_m``) the direction is
    undefined and the pose's own heading is kept."""
    poses = np.asarray(poses_ego, dtype=np.float64)
    points = np.vstack([np.zeros(2), poses[:, :2]])  # [N + 1]: pose i is points[i + 1]
    following = np.vstack([points[2:], points[-1:]])  # the next point; the last pose's own position
    chord = following - points[:-1]
    length = np.hypot(chord[:, 0], chord[:, 1])
    direction = np.arctan2(chord[:, 1], chord[:, 0])
    if len(poses) >= 2:
        segments = np.diff(points[-3:], axis=0)  # the last two segments
        before, last = np.arctan2(segments[:, 1], segments[:, 0])
        direction[-1] = last + 0.5 * np.angle(np.exp(1j * (last - before)))
    return np.where(length >= min_segment_m, direction, poses[:, 2])


def validate_trajectory(
    poses_ego: np.ndarray, dt_s: float, ego_speed_mps: float, config: ValidatorConfig = ValidatorConfig()
) -> ValidationResult:
    """Check a plan ``[N, 3]`` (ego frame at plan time, first pose at ``t = dt_s``) driven from ``ego_speed_mps``."""
    poses = np.asarray(poses_ego, dtype=np.float64)
    if poses.ndim != 2 or poses.shape[1] != 3 or len(poses) == 0 or not (dt_s > 0):
        return ValidationResult((CheckResult("finite", np.inf, 0.0),))
    if not (np.isfinite(poses).all() and np.isfinite(ego_speed_mps)):
        return ValidationResult((CheckResult("finite", np.inf, 0.0),))
    speed_now = float(ego_speed_mps)
    points = np.vstack([np.zeros(3), poses])  # the ego at t = 0, then the plan
    step = np.diff(points[:, :2], axis=0)  # [N, 2]
    length = np.hypot(step[:, 0], step[:, 1])
    # Signed speed along each pose's heading: negative when the plan moves backwards.
    along = step[:, 0] * np.cos(points[:-1, 2]) + step[:, 1] * np.sin(points[:-1, 2])
    segment_speed = along / dt_s  # [N]; the first segment runs from the ego to the first pose
    # Acceleration and jerk of the plan itself; how its start departs from the ego is the deviation checks' job.
    acceleration = np.diff(segment_speed[1:]) / dt_s if len(poses) > 2 else np.zeros(1)
    jerk = np.diff(acceleration) / dt_s if len(acceleration) > 1 else np.zeros(1)

    moving = length >= config.min_segment_m
    direction = np.arctan2(step[:, 1], step[:, 0])
    both_moving = moving[1:] & moving[:-1]
    signed_turn = np.where(both_moving, np.angle(np.exp(1j * np.diff(direction))), 0.0)  # [N - 1]
    turn = np.abs(signed_turn)
    signed_curvature = signed_turn / np.maximum(0.5 * (length[1:] + length[:-1]), 1e-9)
    curvature = np.abs(signed_curvature)
    mid_speed = np.abs(0.5 * (segment_speed[1:] + segment_speed[:-1]))
    lateral_acceleration = mid_speed**2 * curvature
    steering = np.arctan(config.wheelbase_m * signed_curvature)
    steering_rate = np.abs(np.diff(steering)) / dt_s if len(steering) > 1 else np.zeros(1)

    expected_first = np.array([speed_now * dt_s, 0.0])
    first_deviation = float(np.hypot(*(poses[0, :2] - expected_first)))
    first_heading = float(abs(np.angle(np.exp(1j * poses[0, 2]))))
    heading_gap = np.abs(np.angle(np.exp(1j * (poses[:, 2] - path_headings(poses, config.min_segment_m)))))
    backwards = float(max(0.0, -along.min())) if speed_now > config.forward_speed_mps else 0.0
    # At least as far as braking at the stop-check deceleration would take the car within the plan's horizon.
    braking = config.stop_deceleration_mps2
    horizon_s = min(len(poses) * dt_s, max(speed_now, 0.0) / braking)
    needed = speed_now * horizon_s - 0.5 * braking * horizon_s**2 + config.stop_margin_m if speed_now > 0 else 0.0
    shortfall = float(max(0.0, needed - length.sum() - 1e-6))

    def worst(values: np.ndarray) -> float:
        return float(np.max(values)) if np.size(values) else 0.0

    c = config
    return ValidationResult(
        (
            CheckResult("finite", 0.0, 0.0),
            CheckResult("point_interval", worst(length), c.max_point_interval_m),
            CheckResult("relative_angle", worst(turn), c.max_relative_angle_rad),
            CheckResult("curvature", worst(curvature), c.max_curvature_1pm),
            CheckResult("lateral_acceleration", worst(lateral_acceleration), c.max_lateral_acceleration_mps2),
            CheckResult("acceleration", worst(acceleration), c.max_acceleration_mps2),
            CheckResult("deceleration", worst(-acceleration), c.max_deceleration_mps2),
            CheckResult("jerk", worst(np.abs(jerk)), c.max_jerk_mps3),
            CheckResult("steering", worst(np.abs(steering)), c.max_steering_rad),
            CheckResult("steering_rate", worst(steering_rate), c.max_steering_rate_radps),
            CheckResult("velocity_deviation", float(abs(segment_speed[0] - speed_now)), c.max_velocity_deviation_mps),
            CheckResult("first_pose_deviation", first_deviation, c.max_first_pose_deviation_m),
            CheckResult("first_heading_deviation", first_heading, c.max_first_heading_deviation_rad),
            CheckResult("heading_consistency", worst(heading_gap), c.max_heading_inconsistency_rad),
            CheckResult("backward_motion", backwards, c.backward_tolerance_m),
            CheckResult("forward_length", shortfall, 0.0),
        )
    )
