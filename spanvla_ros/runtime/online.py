"""The planning core as it runs on a vehicle, without ROS: bounded input buffers (per-camera frame history at 2 Hz,
the odometry track), input checks, planning cycles (opened by odometry or a timer, planned once their inputs are in),
the reasoning/planning split, output validation with its fallback, the safe stop, timings, counters and the health of
every input.

Drivers (``spanvla_ros.runtime.drivers``) run it: a threaded one for the ROS node, a synchronous one with the caller's
clock for the bag replay, the closed-loop evaluation, the demo's drive and tests — so what is scored and replayed is
what runs on the car. Times are seconds on the inputs' clock (message stamps, sim time in a simulator).
Thread use: inputs and cycles may come from executor threads while a worker runs ``run_reasoning``; every state
change happens under one lock, and the slow model call runs outside it.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np
import shapely

from ..inputs import square_image
from ..observation import ObservationSpec, ego_inputs, frame_picks
from ..planning import limit_speed, stop_poses
from ..planning.collision_guard import GuardResult, Obstacles, guard_plan
from ..planning.route_keeping import MAX_EXTENT_M, RouteFit, follow_route
from ..planning.validator import ValidationResult, ValidatorConfig, path_headings, validate_trajectory
from ..scene import DrivingCommand, VehicleDimensions, ego_to_world, interpolate_poses, world_to_ego
from .pipeline import ReasoningResult, SpanVLARuntime

#: Free-text and CARLA RoadOption names accepted as driving commands (case-insensitive).
COMMAND_ALIASES = {
    "left": "left",
    "turn left": "left",
    "changelaneleft": "left",
    "straight": "straight",
    "go straight": "straight",
    "lanefollow": "straight",
    "right": "right",
    "turn right": "right",
    "changelaneright": "right",
    "unknown": "unknown",
    "void": "unknown",
}
MAX_IMAGE_SIDE_PX = 8192
#: An object whose box centre lies this close to the ego's box centre is the ego itself (object lists may carry it).
EGO_MATCH_M = 1.0
#: Latency samples kept per series (the newest), for the reports' percentiles and a long-running node's memory.
TIMING_WINDOW = 100_000
TIMINGS = ("planning_ms", "reasoning_ms", "reasoning_age_ms", "cycle_delay_ms")
#: What a plan that fails validation becomes: published as is, the last valid plan (while it is young enough), a stop.
INVALID_PLAN_HANDLING = ("publish", "last_valid", "stop")
#: Where a published plan's headings come from: the direction its positions travel, or the model's own headings.
PLAN_HEADINGS = ("path", "model")


class Level(IntEnum):
    """Diagnostic levels, numbered as ``diagnostic_msgs/DiagnosticStatus``."""

    OK = 0
    WARN = 1
    ERROR = 2


class InputRejected(ValueError):
    """An input message was dropped; the message says why."""


@dataclass(frozen=True)
class Status:
    name: str
    level: Level
    message: str
    values: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OnlineConfig:
    """Deployment knobs of the online planner (the model's shapes come from the artefact)."""

    planning_rate_hz: float = 10.0
    reasoning_rate_hz: float = 2.0
    camera_timeout_s: float = 1.0
    odometry_timeout_s: float = 0.5
    #: Plans go on from a reasoning this old (WARN beyond ``reasoning_warn_s``); older → stop (ERROR).
    reasoning_warn_s: float = 3.0
    reasoning_timeout_s: float = 10.0
    stop_deceleration_mps2: float = 3.0
    max_reasoning_tokens: int | None = None
    #: An odometry step longer than this (or faster than ``max_speed_mps``) is a relocalisation: history restarts.
    odometry_jump_m: float = 10.0
    #: Odometry reporting a speed beyond this is dropped as implausible; it also bounds the stop trajectory.
    max_speed_mps: float = 70.0
    #: A speed change or turn faster than these between two odometry messages (over at least 0.1 s) cannot be
    #: driven: the history restarts from the new message.
    max_acceleration_mps2: float = 15.0
    max_yaw_rate_radps: float = 2.5
    validator: ValidatorConfig = field(default_factory=ValidatorConfig)
    invalid_plan_handling: str = "last_valid"
    #: "path": each pose's heading is the direction its positions travel, so a small bias in the model's headings
    #: cannot turn the car on every replan (it integrates at 10 Hz); "model": the action expert's headings as made.
    plan_headings: str = "path"
    #: With a speed limit (``set_speed_limit``, e.g. from the map), a plan is re-timed along its path so that it
    #: never exceeds the limit; an ego above it comes down at this rate. The model does not see the limit, and its
    #: plans barely slow (README "Driving": capped, the held-out driving score rose by 0.14).
    speed_limit_deceleration_mps2: float = 2.0
    #: With an object list (``set_objects``, from perception), each plan is checked against the objects predicted at
    #: constant velocity and braked along its path at the gentlest of these decelerations that keeps it clear
    #: (``planning.collision_guard``). The model does not brake for a lead by itself (README "Driving").
    collision_guard: bool = True
    guard_decelerations_mps2: tuple[float, ...] = (1.0, 2.0, 3.0, 4.5, 6.0, 8.0)
    #: How far the ego's box is grown on every side for the guard's check.
    collision_clearance_m: float = 0.5
    #: The time gap the guard keeps to what the ego follows (the box grown ahead by speed × this), where braking can.
    collision_headway_s: float = 1.0
    #: An object list older than this is not used (WARN): the plans go out unguarded.
    objects_timeout_s: float = 0.5
    #: Objects given without velocities get them from the same id's previous position, if no older than this.
    object_velocity_window_s: float = 1.0
    #: With a route (``set_route``: CARLA's waypoints, a navigation stack's path), each plan's progress is laid along
    #: the route's lane, easing back from the ego's lateral offset over ``route_return_time_s`` of driving (at least
    #: 5 m/s). The model's plans hold the car's heading and do not return to the lane (README "Driving").
    route_keeping: bool = True
    route_return_time_s: float = 3.0
    #: A route the ego is further off than this, or that runs off its heading by more than this, is not followed.
    route_max_offset_m: float = 6.0
    route_max_heading_error_rad: float = 0.8
    #: Along the route, plans are slowed where its bends would need more lateral acceleration than this (braking at
    #: ``speed_limit_deceleration_mps2``): a turn the model does not draw, it does not slow for.
    route_max_lateral_acceleration_mps2: float = 3.0
    #: The ego's box (the guard's footprint; the odometry pose is its rear axle).
    vehicle: VehicleDimensions = field(default_factory=VehicleDimensions)
    #: A last valid plan older than this is not republished: a stop trajectory is.
    last_valid_max_age_s: float = 1.0
    #: A stamp this far behind the newest is a clock reset (bag loop, simulator restart): everything restarts.
    clock_reset_s: float = 1.0
    max_plan_extent_m: float = 200.0
    #: How long a dropped message keeps its input at WARN.
    rejection_memory_s: float = 2.0
    #: Frames closer than this to the last kept one (same size and encoding) only count as arrivals and are not
    #: decoded: the model reads 2 Hz history, and decoding every multi-MB frame of a 30 Hz camera cannot keep up.
    frame_keep_interval_s: float = 0.1

    def __post_init__(self) -> None:
        positive = (
            "planning_rate_hz", "reasoning_rate_hz", "camera_timeout_s", "odometry_timeout_s",
            "speed_limit_deceleration_mps2", "objects_timeout_s", "object_velocity_window_s", "route_return_time_s",
            "route_max_offset_m", "route_max_heading_error_rad", "route_max_lateral_acceleration_mps2",
        )  # fmt: skip
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.reasoning_timeout_s < self.reasoning_warn_s:
            raise ValueError("reasoning_timeout_s must be >= reasoning_warn_s")
        braking_limit = min(self.validator.max_deceleration_mps2, self.validator.stop_deceleration_mps2)
        if self.stop_deceleration_mps2 > braking_limit:
            raise ValueError(
                f"stop_deceleration_mps2 {self.stop_deceleration_mps2} exceeds the validator's braking limit "
                f"{braking_limit}: the stop trajectory must pass validation"
            )
        decelerations = self.guard_decelerations_mps2
        if not decelerations or list(decelerations) != sorted(decelerations) or decelerations[0] <= 0:
            raise ValueError(f"guard_decelerations_mps2 must be positive and ascending, got {decelerations}")
        if decelerations[-1] > self.validator.max_deceleration_mps2:
            raise ValueError(
                f"guard deceleration {decelerations[-1]} exceeds the validator's {self.validator.max_deceleration_mps2}"
                ": a braked plan must pass validation"
            )
        for name in ("collision_clearance_m", "collision_headway_s"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.plan_headings not in PLAN_HEADINGS:
            raise ValueError(f"plan_headings must be one of {', '.join(PLAN_HEADINGS)}, got {self.plan_headings!r}")
        if self.invalid_plan_handling not in INVALID_PLAN_HANDLING:
            raise ValueError(
                f"invalid_plan_handling must be one of {', '.join(INVALID_PLAN_HANDLING)}, "
                f"got {self.invalid_plan_handling!r}"
            )


@dataclass(frozen=True)
class ShapedPlan:
    """The action expert's plan after the core's layers, and what each did: the route fit (None without a route),
    whether the speed limit re-timed it, and the collision guard's result (None without objects)."""

    poses: np.ndarray
    route: RouteFit | None
    speed_limited: bool
    guard: GuardResult | None


def shape_plan(
    poses_ego: np.ndarray,
    dt_s: float,
    pose: np.ndarray,
    speed_mps: float,
    config: OnlineConfig,
    *,
    route_xy: np.ndarray | None = None,
    speed_limit_mps: float | None = None,
    obstacles: Obstacles | None = None,
) -> ShapedPlan:
    """What the planning core does to a plan (ego frame of ``pose``) before validating it, in order: lay it along the
    route ``route_xy [K, 2]`` (the pose's frame; ``planning.route_keeping``), hold it to the speed limit
    (``planning.speed_limit``), brake it for the ``obstacles`` (ego frame; ``planning.collision_guard``), and take the
    headings from the positions (``plan_headings: path``). Each layer is skipped when its input is None."""
    cfg = config
    poses = np.array(poses_ego, dtype=np.float64)
    fit = None
    if route_xy is not None:
        route_ego = world_to_ego(np.column_stack([route_xy, np.zeros(len(route_xy))]), pose)[:, :2]
        try:
            fit = follow_route(
                poses, route_ego, max(speed_mps, 5.0) * cfg.route_return_time_s, cfg.route_max_offset_m,
                cfg.route_max_heading_error_rad, dt_s=dt_s, speed_mps=speed_mps,
                max_lateral_acceleration_mps2=cfg.route_max_lateral_acceleration_mps2,
                curve_deceleration_mps2=cfg.speed_limit_deceleration_mps2,
            )  # fmt: skip
        except (ValueError, shapely.errors.GEOSException) as exc:  # geometry a check missed: plan without the route
            fit = RouteFit(None, float("nan"), float("nan"), f"the route's geometry failed: {exc}")
        if fit.poses is not None:
            poses = fit.poses
    limited = False
    if speed_limit_mps is not None:
        held = limit_speed(poses, dt_s, speed_mps, speed_limit_mps, cfg.speed_limit_deceleration_mps2)
        limited, poses = not np.array_equal(held, poses), held
    guard = None
    if obstacles is not None:
        guard = guard_plan(
            poses, dt_s, speed_mps, obstacles, cfg.guard_decelerations_mps2, cfg.vehicle, cfg.collision_clearance_m,
            cfg.collision_headway_s,
        )  # fmt: skip
        poses = guard.poses
    if cfg.plan_headings == "path":
        poses[:, 2] = path_headings(poses, cfg.validator.min_segment_m)
    return ShapedPlan(poses, fit, limited, guard)


@dataclass(frozen=True)
class PlanOutput:
    """One planning cycle's result. ``poses_ego [N, 3]`` start at ``stamp_s`` (the odometry time planned from); the
    i-th pose is at ``stamp_s + (i+1)·dt_s``. ``origin [3]`` is the ego pose in ``odom_frame`` (None without
    odometry)."""

    stamp_s: float
    poses_ego: np.ndarray
    dt_s: float
    origin: np.ndarray | None
    odom_frame: str
    safe_stop: bool
    stop_reason: str
    reasoning_text: str
    reasoning_age_s: float | None
    planning_ms: float
    #: The validation of the plan the model made this cycle (None for a stop made without one).
    validation: ValidationResult | None = None
    #: "" (the model's plan), "last_valid" (republished after an invalid plan) or "stop".
    fallback: str = ""
    #: How long the cycle waited between opening and this plan (0 for a plan not made through ``plan_due``).
    cycle_delay_ms: float = 0.0


@dataclass(frozen=True)
class ReasoningInputs:
    stamp_s: float
    images: np.ndarray  # [cameras·frames, S, S, 3] uint8, per camera oldest first
    command: str
    speed_mps: float
    acceleration_mps2: float
    history_ego: np.ndarray  # [H, 3]
    generation: int


def _resampled_from(plan: PlanOutput, stamp_s: float, pose: np.ndarray) -> np.ndarray:
    """An earlier plan's path, from ``stamp_s`` on: its world poses at ``stamp_s + (i+1)·dt``, in the ego frame of
    ``pose``. A consumer that pairs plans with their cycle's stamp gets the same path, on time. Past its end the path
    goes on at its last segment's velocity: held there, a plan at 12 m/s republished 0.2 s later would end in a
    10 m/s² stop that the validator rightly refuses."""
    world = np.vstack([plan.origin, ego_to_world(plan.poses_ego, plan.origin)])
    times = plan.stamp_s + np.arange(len(world)) * plan.dt_s
    wanted = stamp_s + np.arange(1, len(plan.poses_ego) + 1) * plan.dt_s
    overrun = int(np.ceil((wanted[-1] - times[-1]) / plan.dt_s - 1e-9))
    if overrun > 0:
        step = np.append(world[-1, :2] - world[-2, :2], 0.0)  # the heading stays
        ahead = np.arange(1, overrun + 1)
        world = np.vstack([world, world[-1] + ahead[:, None] * step])
        times = np.concatenate([times, times[-1] + ahead * plan.dt_s])
    return world_to_ego(interpolate_poses(times, world, wanted), pose)


@dataclass(frozen=True)
class _ObjectList:
    """The newest object list: boxes ``[M, 5]`` (centre x, y, heading, length, width) and velocities ``[M, 2]`` in
    ``frame`` at ``stamp_s``; ``ids`` name them for the next list's velocity estimates."""

    stamp_s: float
    frame: str
    ids: tuple[str, ...]
    boxes: np.ndarray
    velocities: np.ndarray


@dataclass(frozen=True)
class _Route:
    """The newest route: points ``xy [K, 2]`` in driving order in ``frame`` (its arrival is in the route's _Input)."""

    frame: str
    xy: np.ndarray


class _Input:
    """Arrival bookkeeping for one input: last stamp, counts, the last rejection."""

    def __init__(self) -> None:
        self.last_stamp_s: float | None = None
        self.received = 0
        self.rejected = 0
        self.last_rejection: tuple[float, str] | None = None
        self.arrivals: deque[float] = deque(maxlen=20)

    def accept(self, stamp_s: float) -> None:
        self.last_stamp_s = stamp_s
        self.received += 1
        self.arrivals.append(stamp_s)

    def reject(self, stamp_s: float, reason: str) -> None:
        self.rejected += 1
        self.last_rejection = (stamp_s, reason)

    def recent_rejection(self, now_s: float, memory_s: float) -> tuple[float, str] | None:
        """The last rejection (stamp, reason) if it is no older than ``memory_s`` at ``now_s``."""
        if self.last_rejection is not None and now_s - self.last_rejection[0] <= memory_s:
            return self.last_rejection
        return None

    def rate_hz(self) -> float:
        if len(self.arrivals) < 2 or self.arrivals[-1] <= self.arrivals[0]:
            return 0.0
        return (len(self.arrivals) - 1) / (self.arrivals[-1] - self.arrivals[0])

    def values(self) -> dict[str, str]:
        return {"received": str(self.received), "dropped": str(self.rejected), "rate_hz": f"{self.rate_hz():.1f}"}


class OnlinePlanner:
    """SpanVLA on live inputs: feed images, odometry and commands; call ``run_reasoning`` from a worker at the
    reasoning rate and ``plan`` at the planning rate."""

    def __init__(self, runtime: SpanVLARuntime, cameras: list[str], config: OnlineConfig = OnlineConfig()) -> None:
        meta = runtime.meta
        if not cameras:
            raise ValueError("at least one camera is needed")
        if meta["num_images"] % len(cameras):
            raise ValueError(
                f"the model takes {meta['num_images']} images, which {len(cameras)} cameras cannot share evenly: "
                f"configure a camera count that divides {meta['num_images']}"
            )
        self.runtime = runtime
        self.config = config
        self.cameras = list(cameras)
        self.spec = ObservationSpec.from_meta(meta, len(cameras))
        self.frames_per_camera = self.spec.frames_per_camera
        self.image_size = int(meta["image_size"])
        self.num_poses, self.dt_s = int(meta["num_poses"]), float(meta["dt_s"])
        self.history_len, self.history_dt_s = self.spec.history_len, self.spec.history_dt_s
        self._lock = threading.RLock()
        self._camera_inputs = {name: _Input() for name in self.cameras}
        self._odometry_input = _Input()
        self._command_input = _Input()
        self._command = DrivingCommand.UNKNOWN.value
        self._speed_limit_input = _Input()
        self._speed_limit_mps: float | None = None  # held until the next one: maps publish on change
        self._objects_input = _Input()
        self._last_guard: GuardResult | None = None
        self._route_input = _Input()
        self._route: _Route | None = None  # held until the next one: a route is published once (latched)
        self._last_route_fit: RouteFit | None = None
        self._reset_state(None)
        self._reasoning_failure: tuple[float, str] | None = None
        self._events: deque[tuple[float, Level, str, str]] = deque(maxlen=20)
        self.last_plan: PlanOutput | None = None
        self.last_valid_plan: PlanOutput | None = None
        self.counters = {
            "plans": 0, "stop_trajectories": 0, "validator_rejections": 0, "last_valid_republished": 0,
            "speed_limited": 0, "collision_guarded": 0, "route_kept": 0,
        }  # fmt: skip
        #: Per series (``TIMINGS``), the newest samples in ms: planning time, reasoning pass time, age of the reasoning
        #: a plan used, and how long a cycle waited between opening and its plan.
        self.timings: dict[str, deque[float]] = {name: deque(maxlen=TIMING_WINDOW) for name in TIMINGS}
        self._due_s: float | None = None  # the open cycle, waiting for its inputs
        self._last_cycle_s: float | None = None

    def _reset_state(self, now_s: float | None) -> None:
        span = self.spec.frame_span_s + 2.0
        self._frames = {name: deque() for name in self.cameras}
        self._kept: dict[str, tuple[float, tuple]] = {}  # camera → (stamp, layout) of the last stored frame
        self._frame_span_s = span
        self._odometry: deque[np.ndarray] = deque()  # rows (t, x, y, yaw_unwrapped, speed)
        self._odom_frame = ""
        self._objects: _ObjectList | None = None  # perception publishes every cycle: nothing to carry over
        self._reasoning: ReasoningResult | None = None
        self._reasoning_stamp_s: float | None = None
        self._reasoning_started_s: float | None = None
        self._last_reasoned_stamp_s: float | None = None
        self._waiting_since_s = now_s
        self._generation = getattr(self, "_generation", 0) + 1

    def warm_up(self) -> None:
        """One reasoning pass and one plan on blank inputs, so the first real cycle does not pay for lazy setup."""
        images = np.zeros((self.frames_per_camera * len(self.cameras), self.image_size, self.image_size, 3), np.uint8)
        history = np.zeros((self.history_len, 3))
        history[:, 0] = (np.arange(self.history_len) - (self.history_len - 1)) * self.history_dt_s
        result = self.runtime.reason(images, "unknown", 1.0, 0.0, history, 2)
        self.runtime.plan(result, history)

    # --- inputs ----------------------------------------------------------------------------------------------------

    def add_frame(self, camera: str, stamp_s: float, layout: tuple, decode: Callable[[], np.ndarray]) -> None:
        """A camera message arrived: count it (``note_frame``) or, when ``frame_needed``, ``decode()`` it to RGB and
        store it (``add_image``). Raises InputRejected, or whatever ``decode`` raises for an undecodable message."""
        if self.frame_needed(camera, stamp_s, layout):
            self.add_image(camera, stamp_s, decode(), layout)
        else:
            self.note_frame(camera, stamp_s)

    def frame_needed(self, camera: str, stamp_s: float, layout: tuple = ()) -> bool:
        """Whether a frame arriving at ``stamp_s`` should be decoded and stored (``add_image``) or only counted
        (``note_frame``): False within ``frame_keep_interval_s`` after a kept frame of the same ``layout``."""
        with self._lock:
            kept = self._kept.get(camera)
            if kept is None or kept[1] != layout:
                return True
            return not (0.0 <= stamp_s - kept[0] < self.config.frame_keep_interval_s)

    def note_frame(self, camera: str, stamp_s: float) -> None:
        """Count a frame that is not decoded (see ``frame_needed``); raises InputRejected for a bad stamp."""
        with self._lock:
            record = self._camera_inputs[camera]
            try:
                self._check_time(record, stamp_s, f"camera {camera}")
            except InputRejected as exc:
                record.reject(stamp_s if np.isfinite(stamp_s) else 0.0, str(exc))
                raise
            record.accept(stamp_s)

    def add_image(self, camera: str, stamp_s: float, image_rgb: np.ndarray, layout: tuple = ()) -> None:
        """Store a camera frame ``[H, W, 3]`` uint8 RGB (resized to the model's input); raises InputRejected.
        ``layout`` (encoding, size) lets later frames of the same layout skip decoding (``frame_needed``)."""
        record = self._camera_inputs.get(camera)
        if record is None:
            raise InputRejected(f"unknown camera '{camera}' (configured: {self.cameras})")
        image = np.asarray(image_rgb)
        problem = None
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            problem = f"image must be uint8 [H, W, 3], got {image.dtype} {list(image.shape)}"
        elif min(image.shape[:2]) < 1:
            problem = f"image has zero size {list(image.shape)}"
        else:
            small = square_image(image, self.image_size)  # outside the lock: the slowest step of an input
        with self._lock:
            try:
                if problem is not None:
                    raise InputRejected(problem)
                self._check_time(record, stamp_s, f"camera {camera}")
            except InputRejected as exc:
                record.reject(stamp_s if np.isfinite(stamp_s) else 0.0, str(exc))
                raise
            frames = self._frames[camera]
            frames.append((stamp_s, small))
            self._kept[camera] = (stamp_s, layout)
            while frames and frames[0][0] < stamp_s - self._frame_span_s:
                frames.popleft()
            record.accept(stamp_s)
            self._start_waiting(stamp_s)

    def add_odometry(self, stamp_s: float, pose: np.ndarray, speed_mps: float, frame_id: str = "odom") -> None:
        """Store an ego pose ``(x, y, yaw)`` (rear axle, ``frame_id``) and speed; raises InputRejected."""
        with self._lock:
            record = self._odometry_input
            pose = np.asarray(pose, dtype=np.float64)
            try:
                if pose.shape != (3,) or not (np.isfinite(pose).all() and np.isfinite(speed_mps)):
                    raise InputRejected(f"odometry must be finite, got pose {pose.tolist()} speed {speed_mps}")
                if abs(speed_mps) > self.config.max_speed_mps:
                    raise InputRejected(
                        f"odometry speed {speed_mps:.4g} m/s is beyond max_speed_mps {self.config.max_speed_mps:g}"
                    )
                self._check_time(record, stamp_s, "odometry")
            except InputRejected as exc:
                record.reject(stamp_s if np.isfinite(stamp_s) else 0.0, str(exc))
                raise
            if self._odometry:
                last = self._odometry[-1]
                step_m = float(np.hypot(pose[0] - last[1], pose[1] - last[2]))
                dt = stamp_s - last[0]
                turn = abs(float(np.angle(np.exp(1j * (pose[2] - last[3])))))
                if step_m > self.config.odometry_jump_m or step_m > self.config.max_speed_mps * max(dt, 0.05):
                    self._event(stamp_s, Level.WARN, "odometry", f"odometry jumped {step_m:.1f} m: history restarted")
                    self._reset_state(stamp_s)
                elif abs(speed_mps - last[4]) > self.config.max_acceleration_mps2 * max(dt, 0.1):
                    change = f"{last[4]:.1f} → {speed_mps:.1f} m/s in {dt:.2f} s"
                    self._event(
                        stamp_s, Level.WARN, "odometry", f"implausible speed change {change}: history restarted"
                    )
                    self._reset_state(stamp_s)
                elif turn > self.config.max_yaw_rate_radps * max(dt, 0.1):
                    message = f"implausible turn {turn:.2f} rad in {dt:.2f} s: history restarted"
                    self._event(stamp_s, Level.WARN, "odometry", message)
                    self._reset_state(stamp_s)
                elif frame_id != self._odom_frame:
                    self._event(stamp_s, Level.WARN, "odometry", f"odometry frame changed to '{frame_id}'")
                    self._reset_state(stamp_s)
            yaw = pose[2]
            if self._odometry:
                yaw = self._odometry[-1][3] + float(np.angle(np.exp(1j * (pose[2] - self._odometry[-1][3]))))
            self._odometry.append(np.array([stamp_s, pose[0], pose[1], yaw, speed_mps]))
            self._odom_frame = frame_id
            span = self.spec.history_span_s + 1.0
            while len(self._odometry) > 2 and self._odometry[1][0] < stamp_s - span:
                self._odometry.popleft()
            record.accept(stamp_s)
            self._start_waiting(stamp_s)

    def set_command(self, stamp_s: float, text: str) -> None:
        with self._lock:
            command = COMMAND_ALIASES.get(str(text).strip().lower())
            if command is None:
                reason = f"unknown driving command '{str(text)[:40]}' ignored; keeping '{self._command}'"
                self._command_input.reject(stamp_s, reason)
                raise InputRejected(reason)
            self._command = command
            self._command_input.accept(stamp_s)

    def set_speed_limit(self, stamp_s: float, limit_mps: float) -> None:
        """The road's speed limit (m/s) from now on; a value that is not a positive, plausible speed is refused and
        the previous limit kept."""
        with self._lock:
            limit = float(limit_mps)
            if not (np.isfinite(limit) and 0 < limit <= self.config.max_speed_mps):
                kept = "no limit" if self._speed_limit_mps is None else f"{self._speed_limit_mps:.1f} m/s"
                reason = (
                    f"speed limit {limit_mps!r} m/s is not within (0, {self.config.max_speed_mps:g}]: keeping {kept}"
                )
                self._speed_limit_input.reject(stamp_s, reason)
                raise InputRejected(reason)
            self._speed_limit_mps = limit
            self._speed_limit_input.accept(stamp_s)

    def set_route(self, stamp_s: float, frame_id: str, xy: np.ndarray) -> None:
        """The route the ego follows from now on: points ``xy [K, 2]`` in driving order in ``frame_id``, the
        odometry's frame. A route that is not finite, has no length or is in another frame is refused (the previous
        one is kept)."""
        with self._lock:
            try:
                xy = np.asarray(xy, dtype=np.float64)
                if xy.ndim != 2 or xy.shape[1] != 2 or len(xy) < 2:
                    raise InputRejected(f"route: needs at least 2 points [x, y], got shape {xy.shape}")
                if not np.isfinite(xy).all() or np.abs(xy).max() > MAX_EXTENT_M:
                    raise InputRejected(f"route: a point is not finite or lies beyond {MAX_EXTENT_M:.0e} m")
                if np.linalg.norm(np.diff(xy, axis=0), axis=1).sum() < 1.0:
                    raise InputRejected("route: shorter than 1 m")
                if self._odom_frame and frame_id != self._odom_frame:
                    raise InputRejected(
                        f"route is in frame '{frame_id}', odometry in '{self._odom_frame}': no transform here"
                    )
            except InputRejected as exc:
                self._route_input.reject(stamp_s, str(exc))
                raise
            self._route = _Route(frame_id, xy.copy())
            self._route_input.accept(stamp_s)

    def set_objects(
        self,
        stamp_s: float,
        frame_id: str,
        ids: list[str],
        boxes: np.ndarray,
        velocities: np.ndarray | None = None,
    ) -> None:
        """The objects perception reports at ``stamp_s``: ``boxes [M, 5]`` (centre x, y, heading, length, width) and
        ``velocities [M, 2]`` (m/s) in ``frame_id``, the odometry's frame. Without velocities, each object's comes from
        its id's previous position (within ``object_velocity_window_s``), else it is taken as standing. A list that
        cannot be used is refused whole and the previous one ages out."""
        with self._lock:
            try:
                self._check_time(self._objects_input, stamp_s, "objects")
                boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 5)
                ids = tuple(str(i) for i in ids)
                if len(ids) != len(boxes):
                    raise InputRejected(f"objects: {len(ids)} ids for {len(boxes)} boxes")
                if not np.isfinite(boxes).all() or (boxes[:, 3:] <= 0).any() or (boxes[:, 3:] > 100).any():
                    raise InputRejected("objects: a box is not finite or its size is not within (0, 100] m")
                if not len(boxes):  # nothing around: a list without a frame
                    frame_id = self._odom_frame
                elif self._odom_frame and frame_id != self._odom_frame:
                    raise InputRejected(
                        f"objects are in frame '{frame_id}', odometry in '{self._odom_frame}': no transform here"
                    )
                if velocities is None:
                    velocities = self._estimated_velocities(stamp_s, frame_id, ids, boxes)
                velocities = np.asarray(velocities, dtype=np.float64).reshape(-1, 2)
                if len(velocities) != len(boxes) or not np.isfinite(velocities).all():
                    raise InputRejected("objects: velocities must be finite, one [vx, vy] per box")
                if (np.hypot(*velocities.T) > self.config.max_speed_mps).any():
                    raise InputRejected(f"objects: a velocity beyond {self.config.max_speed_mps:g} m/s")
            except InputRejected as exc:
                self._objects_input.reject(stamp_s, str(exc))
                raise
            self._objects = _ObjectList(float(stamp_s), frame_id, ids, boxes, velocities)
            self._objects_input.accept(stamp_s)

    def _estimated_velocities(self, stamp_s: float, frame: str, ids: tuple[str, ...], boxes: np.ndarray) -> np.ndarray:
        velocities = np.zeros((len(boxes), 2))
        previous = self._objects
        if previous is None or previous.frame != frame:
            return velocities
        elapsed = stamp_s - previous.stamp_s
        if not 0 < elapsed <= self.config.object_velocity_window_s:
            return velocities
        index = {name: row for row, name in enumerate(previous.ids)}
        for row, name in enumerate(ids):
            if name in index:
                velocities[row] = (boxes[row, :2] - previous.boxes[index[name], :2]) / elapsed
        return velocities

    def _obstacles(self, stamp_s: float, pose: np.ndarray) -> Obstacles | None:
        """The object list moved on to ``stamp_s`` and put in the ego frame of ``pose``; None when there is none
        young enough (or in another frame)."""
        objects = self._objects
        if objects is None or objects.frame != self._odom_frame:
            return None
        if abs(stamp_s - objects.stamp_s) > self.config.objects_timeout_s:
            return None
        boxes = objects.boxes.copy()
        boxes[:, :2] += (stamp_s - objects.stamp_s) * objects.velocities
        obstacles = Obstacles.in_ego_frame(boxes, objects.velocities, pose)
        # Lists such as CARLA's markers carry the ego too: a box centred on the ego's is the ego.
        local = obstacles.boxes
        return obstacles.without(
            np.hypot(local[:, 0] - self.config.vehicle.rear_axle_to_center_m, local[:, 1]) < EGO_MATCH_M
        )

    def reject(self, source: str, stamp_s: float, reason: str) -> None:
        """Record a message the caller could not even decode (``source``: a camera name, "odometry", "objects" or
        "route")."""
        with self._lock:
            named = {"odometry": self._odometry_input, "objects": self._objects_input, "route": self._route_input}
            record = named.get(source, self._camera_inputs.get(source))
            if record is not None:
                record.reject(stamp_s, reason)

    def _check_time(self, record: _Input, stamp_s: float, what: str) -> None:
        if not np.isfinite(stamp_s):
            raise InputRejected(f"{what}: stamp is not finite")
        last = record.last_stamp_s
        if last is None or stamp_s > last:
            return
        if stamp_s < last - self.config.clock_reset_s:
            self._event(stamp_s, Level.WARN, what, f"time went back {last - stamp_s:.1f} s: all inputs restarted")
            self._reset_state(stamp_s)
            for other in [*self._camera_inputs.values(), self._odometry_input, self._objects_input]:
                other.last_stamp_s = None
            return
        raise InputRejected(f"{what}: stamp {stamp_s:.3f} is not after the previous {last:.3f} (out of order)")

    def _start_waiting(self, stamp_s: float) -> None:
        if self._waiting_since_s is None:
            self._waiting_since_s = stamp_s

    def _event(self, stamp_s: float, level: Level, source: str, message: str) -> None:
        self._events.append((stamp_s, level, source, message))

    # --- state derived from the buffers ----------------------------------------------------------------------------

    def _ego_now(self) -> tuple[float, np.ndarray, float, float, np.ndarray]:
        """(stamp, pose [3], speed, acceleration, history in the ego frame [H, 3]) from the odometry track."""
        ego = ego_inputs(np.array(self._odometry), self.spec)
        return ego.stamp_s, ego.pose, ego.speed_mps, ego.acceleration_mps2, ego.history_ego

    def _frames_for_reasoning(self) -> tuple[float, np.ndarray] | None:
        picks, newest = [], []
        for name in self.cameras:
            frames = self._frames[name]
            if not frames:
                return None
            stamps = np.array([s for s, _ in frames])
            newest.append(stamps[-1])
            picks.extend(frames[i][1] for i in frame_picks(stamps, self.spec))
        return float(min(newest)), np.stack(picks)

    # --- cycles ----------------------------------------------------------------------------------------------------

    def open_cycle(self, cycle_s: float, gap_periods: float = 1.0) -> None:
        """Open a planning cycle at ``cycle_s`` unless one was planned within ``gap_periods`` planning periods before
        it. Odometry arrival opens cycles (plans stay aligned with the inputs, as a synchronous simulator needs); a
        timer at the planning rate with ``gap_periods`` 1.5 covers silent inputs, which then plan a stop."""
        period = 1.0 / self.config.planning_rate_hz
        with self._lock:
            last = self._last_cycle_s
            if last is not None and last <= cycle_s < last + gap_periods * period - 1e-3:
                return
            self._due_s = cycle_s

    def plan_due(self, now_s: float) -> PlanOutput | None:
        """Plan the open cycle if its inputs are in (see ``plan``); None when no cycle is open or it still waits."""
        with self._lock:
            if self._due_s is None:
                return None
            plan = self.plan(now_s, self._due_s)
            if plan is None:
                return None
            delay_ms = 1e3 * (now_s - self._due_s)
            self.timings["cycle_delay_ms"].append(delay_ms)
            self._last_cycle_s, self._due_s = self._due_s, None
            plan = dataclasses.replace(plan, cycle_delay_ms=delay_ms)
            self.last_plan = plan
            return plan

    @property
    def cycle_open(self) -> bool:
        return self._due_s is not None

    # --- reasoning -------------------------------------------------------------------------------------------------

    def reasoning_inputs(self, now_s: float) -> ReasoningInputs | None:
        """What the next reasoning pass needs, when one is due (its period has passed and new frames arrived)."""
        with self._lock:
            if not self._odometry:
                return None
            frames = self._frames_for_reasoning()
            if frames is None:
                return None
            stamp, images = frames
            started = self._reasoning_started_s
            if started is not None and now_s - started < 1.0 / self.config.reasoning_rate_hz - 1e-6:
                return None
            if self._last_reasoned_stamp_s is not None and stamp <= self._last_reasoned_stamp_s:
                return None
            _, _, speed, acceleration, history = self._ego_now()
            self._reasoning_started_s = now_s
            self._last_reasoned_stamp_s = stamp
            return ReasoningInputs(stamp, images, self._command, speed, acceleration, history, self._generation)

    def run_reasoning(self, inputs: ReasoningInputs) -> ReasoningResult:
        """The slow part (VLM prefill + decoding), outside the lock; hand the result to ``set_reasoning``. Its time
        goes to ``timings["reasoning_ms"]``."""
        start = time.perf_counter()
        result = self.runtime.reason(
            inputs.images,
            inputs.command,
            inputs.speed_mps,
            inputs.acceleration_mps2,
            inputs.history_ego,
            self.config.max_reasoning_tokens,
        )
        with self._lock:
            self.timings["reasoning_ms"].append(1e3 * (time.perf_counter() - start))
        return result

    def set_reasoning(self, inputs: ReasoningInputs, result: ReasoningResult) -> bool:
        """Adopt a finished pass (False when the inputs restarted meanwhile, e.g. after an odometry jump)."""
        with self._lock:
            if inputs.generation != self._generation:
                return False
            self._reasoning, self._reasoning_stamp_s = result, inputs.stamp_s
            self._reasoning_failure = None
            return True

    def reasoning_failed(self, stamp_s: float, message: str) -> None:
        with self._lock:
            self._reasoning_failure = (stamp_s, message)

    @property
    def reasoning(self) -> ReasoningResult | None:
        return self._reasoning

    # --- planning --------------------------------------------------------------------------------------------------

    def plan(self, now_s: float, tick_s: float | None = None) -> PlanOutput | None:
        """Plan for the cycle at ``tick_s`` (default ``now_s``): the expert on the newest reasoning and odometry, or a
        stop trajectory when an input is stale or the result is invalid. None means "not yet": this cycle's odometry
        or the first reasoning has not arrived and neither has timed out; call again when an input arrives."""
        cfg = self.config
        tick_s = now_s if tick_s is None else tick_s
        with self._lock:
            start = time.perf_counter()
            self._start_waiting(now_s)
            if not self._odometry:
                if self._waited(now_s) <= cfg.odometry_timeout_s:
                    return None
                return self._stop(now_s, start, "no odometry received")
            t0 = self._odometry[-1][0]
            if now_s - t0 > cfg.odometry_timeout_s:
                return self._stop(now_s, start, f"odometry is {now_s - t0:.2f} s old")
            for name in self.cameras:
                frames = self._frames[name]
                if not frames:
                    if self._waited(now_s) > cfg.camera_timeout_s:
                        return self._stop(now_s, start, f"no image from camera {name}")
                    return None
                if now_s - frames[-1][0] > cfg.camera_timeout_s:
                    return self._stop(now_s, start, f"camera {name} is {now_s - frames[-1][0]:.2f} s old")
            if t0 < tick_s - 0.5 / cfg.planning_rate_hz:
                return None  # this cycle's odometry is on its way
            if self._reasoning is None:
                if self._waited(now_s) <= cfg.reasoning_warn_s:
                    return None
                return self._stop(now_s, start, "no reasoning pass has finished yet")
            age = now_s - self._reasoning_stamp_s
            if age > cfg.reasoning_timeout_s:
                return self._stop(now_s, start, f"the newest reasoning is {age:.1f} s old")
            stamp, pose, speed, _, history = self._ego_now()
            try:
                poses = np.array(self.runtime.plan(self._reasoning, history), dtype=np.float64)  # ours to edit
            except Exception as exc:  # a backend failure must still end in a safe plan
                return self._stop(now_s, start, f"the action expert failed: {exc}")
            if poses.shape != (self.num_poses, 3) or not np.isfinite(poses).all():
                return self._stop(now_s, start, "the action expert returned a non-finite trajectory")
            if np.abs(poses[:, :2]).max() > cfg.max_plan_extent_m:
                return self._stop(now_s, start, f"the plan leaves the {cfg.max_plan_extent_m:.0f} m plausibility box")
            route = self._route
            followed = cfg.route_keeping and route is not None and route.frame == self._odom_frame
            shaped = shape_plan(
                poses, self.dt_s, pose, speed, cfg, route_xy=route.xy if followed else None,
                speed_limit_mps=self._speed_limit_mps,
                obstacles=self._obstacles(stamp, pose) if cfg.collision_guard else None,
            )  # fmt: skip
            poses, self._last_route_fit, self._last_guard = shaped.poses, shaped.route, shaped.guard
            self.counters["route_kept"] += int(shaped.route is not None and shaped.route.poses is not None)
            self.counters["speed_limited"] += int(shaped.speed_limited)
            self.counters["collision_guarded"] += int(shaped.guard is not None and shaped.guard.deceleration_mps2 > 0)
            validation = validate_trajectory(poses, self.dt_s, speed, cfg.validator)
            out = PlanOutput(
                stamp, poses, self.dt_s, pose, self._odom_frame, False, "", self._reasoning.text, age,
                1e3 * (time.perf_counter() - start), validation,
            )  # fmt: skip
            if validation.valid or cfg.invalid_plan_handling == "publish":
                if validation.valid:
                    self.last_valid_plan = out
                else:
                    self.counters["validator_rejections"] += 1
                return self._published(out)
            self.counters["validator_rejections"] += 1
            last = self.last_valid_plan
            if (
                cfg.invalid_plan_handling == "last_valid"
                and last is not None
                and stamp - last.stamp_s <= (cfg.last_valid_max_age_s)
            ):
                poses = _resampled_from(last, stamp, pose)
                if not validate_trajectory(poses, self.dt_s, speed, cfg.validator).valid:
                    # Seen from where the ego is now, the old plan no longer holds either.
                    return self._stop(
                        now_s, start, f"the plan failed validation ({validation.summary()}) and the last valid plan "
                        "no longer fits the ego's state", validation,
                    )  # fmt: skip
                self.counters["last_valid_republished"] += 1
                elapsed_ms = 1e3 * (time.perf_counter() - start)
                return self._published(
                    dataclasses.replace(
                        last, stamp_s=stamp, poses_ego=poses, origin=pose, validation=validation,
                        fallback="last_valid", planning_ms=elapsed_ms,
                    )
                )  # fmt: skip
            return self._stop(now_s, start, f"the plan failed validation: {validation.summary()}", validation)

    def _waited(self, now_s: float) -> float:
        return 0.0 if self._waiting_since_s is None else now_s - self._waiting_since_s

    def _stop(self, now_s: float, start: float, reason: str, validation: ValidationResult | None = None) -> PlanOutput:
        if self._odometry:
            stamp, pose, speed, _, _ = self._ego_now()
        else:
            stamp, pose, speed = now_s, None, 0.0
        # Odometry speeds are bounded when accepted; the clip keeps the stop plan within what the validator allows.
        speed = float(np.clip(speed, 0.0, self.config.max_speed_mps))
        poses = stop_poses(speed, self.num_poses, self.dt_s, self.config.stop_deceleration_mps2)
        age = None if self._reasoning_stamp_s is None else now_s - self._reasoning_stamp_s
        out = PlanOutput(
            stamp, poses, self.dt_s, pose, self._odom_frame, True, reason, "", age,
            1e3 * (time.perf_counter() - start), validation, "stop",
        )  # fmt: skip
        self.counters["stop_trajectories"] += 1
        return self._published(out)

    def _published(self, out: PlanOutput) -> PlanOutput:
        self.counters["plans"] += 1
        self.timings["planning_ms"].append(out.planning_ms)
        if out.reasoning_age_s is not None:
            self.timings["reasoning_age_ms"].append(1e3 * out.reasoning_age_s)
        self.last_plan = out
        return out

    # --- health ----------------------------------------------------------------------------------------------------

    def statuses(self, now_s: float) -> list[Status]:
        """One status per input plus reasoning and planning, each naming its problem."""
        cfg = self.config
        with self._lock:
            out = [
                self._input_status(f"camera {name}", record, now_s, cfg.camera_timeout_s)
                for name, record in self._camera_inputs.items()
            ]
            out.append(self._input_status("odometry", self._odometry_input, now_s, cfg.odometry_timeout_s))
            out.append(self._command_status(now_s))
            out.append(self._speed_limit_status(now_s))
            out.append(self._objects_status(now_s))
            out.append(self._route_status(now_s))
            out.append(self._reasoning_status(now_s))
            plan = self.last_plan
            if plan is None:
                out.append(Status("planning", Level.WARN, "no plan published yet"))
            elif plan.safe_stop:
                out.append(Status("planning", Level.ERROR, f"publishing a stop trajectory: {plan.stop_reason}"))
            else:
                out.append(Status("planning", Level.OK, "planning", {"planning_ms": f"{plan.planning_ms:.1f}"}))
            out.append(self._validation_status())
            return out

    def validation_status(self) -> Status:
        """The last plan's validation: every check's value/limit, the counters, what was done with a failed plan."""
        with self._lock:
            return self._validation_status()

    def _validation_status(self) -> Status:
        values = {name: str(count) for name, count in self.counters.items()}
        plan = self.last_plan
        validation = None if plan is None else plan.validation
        if validation is None:
            return Status("trajectory validation", Level.OK, "no plan validated yet", values)
        values.update({check.name: f"{check.value:.3g}/{check.limit:.3g}" for check in validation.checks})
        if validation.valid:
            return Status("trajectory validation", Level.OK, "the plan passed every check", values)
        handling = {"": "published as is", "last_valid": "republished the last valid plan", "stop": "stopping"}
        message = f"the plan failed validation ({validation.summary()}): {handling[plan.fallback]}"
        return Status("trajectory validation", Level.WARN, message, values)

    def _recent_event(self, source: str, now_s: float) -> tuple[float, str] | None:
        for stamp, _, event_source, message in reversed(self._events):
            if event_source == source and now_s - stamp <= self.config.rejection_memory_s:
                return stamp, message
        return None

    def _input_status(self, name: str, record: _Input, now_s: float, timeout_s: float) -> Status:
        values = record.values()
        if record.last_stamp_s is None:
            if record.last_rejection is not None:
                return Status(name, Level.ERROR, f"every message dropped: {record.last_rejection[1]}", values)
            return Status(name, Level.ERROR, "no message received yet", values)
        age = now_s - record.last_stamp_s
        values["age_s"] = f"{age:.2f}"
        if age > timeout_s:
            return Status(name, Level.ERROR, f"stale: last message {age:.2f} s ago (timeout {timeout_s} s)", values)
        # The newest of the last dropped message and the last restart (jump, clock reset) is shown.
        recent = []
        rejection = record.recent_rejection(now_s, self.config.rejection_memory_s)
        if rejection is not None:
            recent.append((rejection[0], f"dropped a message: {rejection[1]}"))
        event = self._recent_event(name, now_s)
        if event is not None:
            recent.append(event)
        if recent:
            return Status(name, Level.WARN, max(recent)[1], values)
        return Status(name, Level.OK, "receiving", values)

    def _command_status(self, now_s: float) -> Status:
        record = self._command_input
        values = {"command": self._command, **record.values()}
        if (rejection := record.recent_rejection(now_s, self.config.rejection_memory_s)) is not None:
            return Status("command", Level.WARN, rejection[1], values)
        if record.last_stamp_s is None:
            return Status("command", Level.OK, "no command received: planning with 'unknown'", values)
        return Status("command", Level.OK, f"following '{self._command}'", values)

    def _speed_limit_status(self, now_s: float) -> Status:
        record = self._speed_limit_input
        limit = self._speed_limit_mps
        values = {"speed_limit_mps": "none" if limit is None else f"{limit:.2f}", **record.values()}
        if (rejection := record.recent_rejection(now_s, self.config.rejection_memory_s)) is not None:
            return Status("speed limit", Level.WARN, rejection[1], values)
        if limit is None:
            return Status("speed limit", Level.OK, "no speed limit received: plans are not held to one", values)
        return Status("speed limit", Level.OK, f"plans held to {limit:.1f} m/s", values)

    def _objects_status(self, now_s: float) -> Status:
        record, objects, guard = self._objects_input, self._objects, self._last_guard
        values = {"objects": "0" if objects is None else str(len(objects.ids)), **record.values()}
        if guard is not None:
            values["guard_deceleration_mps2"] = f"{guard.deceleration_mps2:.1f}"
        if not self.config.collision_guard:
            return Status("objects", Level.OK, "collision guard off: plans are not checked against objects", values)
        if (rejection := record.recent_rejection(now_s, self.config.rejection_memory_s)) is not None:
            return Status("objects", Level.WARN, f"dropped an object list: {rejection[1]}", values)
        if objects is None:
            return Status("objects", Level.OK, "no object list received: plans are not checked against objects", values)
        age = now_s - objects.stamp_s
        values["age_s"] = f"{age:.2f}"
        if age > self.config.objects_timeout_s:
            return Status("objects", Level.WARN, f"object list {age:.2f} s old: plans go out unchecked", values)
        if guard is not None and guard.unavoidable:
            return Status("objects", Level.WARN, "an object comes at the ego: braking hardest", values)
        if guard is not None and guard.deceleration_mps2 > 0:
            return Status("objects", Level.OK, f"braking at {guard.deceleration_mps2:.1f} m/s² for an object", values)
        return Status("objects", Level.OK, f"plans clear of {len(objects.ids)} objects", values)

    def _route_status(self, now_s: float) -> Status:
        record, route, fit = self._route_input, self._route, self._last_route_fit
        values = {"points": "0" if route is None else str(len(route.xy)), **record.values()}
        if fit is not None and np.isfinite(fit.offset_m):
            values["offset_m"] = f"{fit.offset_m:.2f}"
            values["heading_error_rad"] = f"{fit.heading_error_rad:.3f}"
        if not self.config.route_keeping:
            return Status("route", Level.OK, "route keeping off: plans keep the model's own path", values)
        if (rejection := record.recent_rejection(now_s, self.config.rejection_memory_s)) is not None:
            return Status("route", Level.WARN, f"dropped a route: {rejection[1]}", values)
        if route is None:
            return Status("route", Level.OK, "no route received: plans keep the model's own path", values)
        if route.frame != self._odom_frame:
            return Status("route", Level.WARN, f"the route is in frame '{route.frame}', odometry in "
                          f"'{self._odom_frame}': not followed", values)  # fmt: skip
        if fit is not None and fit.poses is None:
            return Status("route", Level.WARN, f"{fit.reason}: plans keep the model's own path", values)
        return Status("route", Level.OK, "plans follow the route", values)

    def _reasoning_status(self, now_s: float) -> Status:
        cfg = self.config
        if self._reasoning_failure is not None:
            return Status("reasoning", Level.ERROR, f"reasoning failed: {self._reasoning_failure[1]}")
        if self._reasoning is None:
            return Status("reasoning", Level.WARN, "waiting for the first reasoning pass")
        age = now_s - self._reasoning_stamp_s
        values = {"age_s": f"{age:.2f}", "tokens": str(len(self._reasoning.token_ids))}
        if age > cfg.reasoning_timeout_s:
            return Status("reasoning", Level.ERROR, f"the newest reasoning is {age:.1f} s old: stopping", values)
        if age > cfg.reasoning_warn_s:
            return Status("reasoning", Level.WARN, f"the newest reasoning is {age:.1f} s old", values)
        return Status("reasoning", Level.OK, "reasoning", values)
