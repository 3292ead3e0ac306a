"""The typed scene model: map, traffic lights, agents, ego, route, command, trajectories.

Everything is plain data in the world (map) frame unless a name says ``_ego``; poses are ``(x, y, heading)`` with
REP-103 axes. Agent futures and traffic-light states are sampled at the scene's ``dt_s`` (10 Hz by default) from t = 0.
This module imports numpy and shapely only: no simulator, no torch, no ROS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any

import numpy as np
import shapely
from shapely.geometry import LineString
from shapely.geometry.base import BaseGeometry

from .errors import SceneError, TrajectoryError
from .geometry import line_frame, wrap_angle


class DrivingCommand(StrEnum):
    LEFT = "left"
    STRAIGHT = "straight"
    RIGHT = "right"
    UNKNOWN = "unknown"


class TrafficLightState(StrEnum):
    RED = "red"
    YELLOW = "yellow"
    GREEN = "green"
    UNKNOWN = "unknown"


class AgentKind(StrEnum):
    VEHICLE = "vehicle"
    PEDESTRIAN = "pedestrian"
    CYCLIST = "cyclist"
    STATIC_OBJECT = "static_object"


#: Kinds whose at-fault collision costs NC 0 (NAVSIM's AGENT_TYPES); a static object costs 0.5.
MOVING_AGENT_KINDS = frozenset({AgentKind.VEHICLE, AgentKind.PEDESTRIAN, AgentKind.CYCLIST})


@dataclass(frozen=True)
class VehicleDimensions:
    """Ego box and bicycle geometry. The ego pose is the rear axle; the box centre lies ``rear_axle_to_center_m``
    ahead."""

    length_m: float = 4.8
    width_m: float = 2.0
    rear_axle_to_center_m: float = 1.4
    wheelbase_m: float = 2.8


#: NAVSIM's ego (nuPlan's Chrysler Pacifica): the box and wheelbase its scores are computed with.
PACIFICA = VehicleDimensions(length_m=5.176, width_m=2.297, rear_axle_to_center_m=1.461, wheelbase_m=3.089)


@dataclass(frozen=True, eq=False)
class Lane:
    """A lane: centerline polyline ``[N, 2]`` in travel order, width, neighbours and flags.

    ``oncoming`` marks lanes travelling against the ego's route direction (two-way roads).
    """

    id: str
    centerline_xy: np.ndarray
    width_m: float
    left_id: str | None = None
    right_id: str | None = None
    successor_ids: tuple[str, ...] = ()
    oncoming: bool = False
    is_intersection: bool = False
    speed_limit_mps: float = 30.0

    @cached_property
    def polygon(self) -> BaseGeometry:
        """The lane surface: the centerline buffered by half the width with flat ends."""
        return LineString(self.centerline_xy).buffer(self.width_m / 2.0, cap_style="flat", join_style="round")

    @cached_property
    def left_boundary(self) -> LineString:
        """The lane's left edge (the centerline offset by half the width)."""
        return LineString(self.centerline_xy).offset_curve(self.width_m / 2.0)


@dataclass(frozen=True, eq=False)
class TrafficLight:
    """A traffic light controlling the lane ``lane_id``; entering that lane while red violates TLC.

    ``future_states[k]`` is the state ``k + 1`` scene steps after t = 0; when shorter than the horizon the last known
    state holds.
    """

    id: str
    lane_id: str
    state: TrafficLightState
    future_states: tuple[TrafficLightState, ...] = ()

    def states_over(self, num_steps: int) -> list[TrafficLightState]:
        """States at steps ``0 .. num_steps - 1``."""
        states = [self.state, *self.future_states][:num_steps]
        return states + [states[-1]] * (num_steps - len(states))


@dataclass(frozen=True, eq=False)
class Agent:
    """Another road user or a static object as an oriented box.

    ``poses [T, 3]`` (box centre and heading) and ``velocities_mps [T, 2]`` (world frame) from t = 0 at the scene's
    ``dt_s``; a static object may give a single pose.
    """

    id: str
    kind: AgentKind
    length_m: float
    width_m: float
    poses: np.ndarray
    velocities_mps: np.ndarray

    @property
    def is_static(self) -> bool:
        return self.kind is AgentKind.STATIC_OBJECT

    def poses_over(self, num_steps: int) -> np.ndarray:
        """Poses ``[num_steps, 3]``; a single-pose agent is held in place (static objects, parked cars)."""
        if len(self.poses) == 1:
            return np.repeat(self.poses, num_steps, axis=0)
        return self.poses[:num_steps]

    @classmethod
    def constant_velocity(
        cls,
        id: str,
        pose: tuple[float, float, float],
        speed_mps: float,
        num_steps: int,
        dt_s: float = 0.1,
        kind: AgentKind = AgentKind.VEHICLE,
        length_m: float = 4.8,
        width_m: float = 2.0,
    ) -> Agent:
        """An agent driving straight along its heading at constant speed for ``num_steps`` samples."""
        t = np.arange(num_steps) * dt_s
        x, y, heading = pose
        direction = np.array([np.cos(heading), np.sin(heading)])
        xy = np.array([x, y]) + (speed_mps * t)[:, None] * direction
        poses = np.column_stack([xy, np.full(num_steps, heading)])
        velocities = np.tile(speed_mps * direction, (num_steps, 1))
        return cls(id, kind, length_m, width_m, poses, velocities)

    @classmethod
    def static(
        cls,
        id: str,
        pose: tuple[float, float, float],
        length_m: float = 1.0,
        width_m: float = 1.0,
        kind: AgentKind = AgentKind.STATIC_OBJECT,
    ) -> Agent:
        """A motionless box (a cone, a barrier, or with ``kind=VEHICLE`` a parked car)."""
        return cls(id, kind, length_m, width_m, np.array([pose], dtype=np.float64), np.zeros((1, 2)))


@dataclass(frozen=True, eq=False)
class EgoState:
    """The ego at t = 0: rear-axle pose (world), speed, acceleration, yaw rate, and its pose history.

    ``history_poses [H, 3]`` are world poses sampled every ``history_dt_s`` seconds, oldest first, the last one at
    t = 0 (the current pose): the default 4 poses at 2 Hz span 1.5 s.
    """

    pose: np.ndarray
    speed_mps: float
    acceleration_mps2: float
    history_poses: np.ndarray
    yaw_rate_radps: float = 0.0
    history_dt_s: float = 0.5
    dimensions: VehicleDimensions = field(default_factory=VehicleDimensions)
    #: Logged longitudinal speed and acceleration at each history pose ``[H]`` (NAVSIM's history comfort reads
    #: them); None: estimated from the history poses, with the current speed and acceleration at t = 0.
    history_speeds_mps: np.ndarray | None = None
    history_accelerations_mps2: np.ndarray | None = None

    @property
    def steering_angle_rad(self) -> float:
        """Bicycle steering angle consistent with the yaw rate at the current speed."""
        if abs(self.speed_mps) < 0.2:
            return 0.0
        return float(np.arctan(self.dimensions.wheelbase_m * self.yaw_rate_radps / self.speed_mps))


@dataclass(frozen=True, eq=False)
class MapData:
    """Lanes, the drivable area (any shapely geometry) and traffic lights."""

    lanes: tuple[Lane, ...]
    drivable_area: BaseGeometry
    traffic_lights: tuple[TrafficLight, ...] = ()

    @cached_property
    def lanes_by_id(self) -> dict[str, Lane]:
        return {lane.id: lane for lane in self.lanes}

    def lane(self, lane_id: str) -> Lane:
        try:
            return self.lanes_by_id[lane_id]
        except KeyError:
            raise SceneError(f"no lane with id '{lane_id}' in the map ({len(self.lanes)} lanes)") from None


@dataclass(frozen=True, eq=False)
class Scene:
    """One planning moment: the map, the agents' futures, the ego, the route and the command.

    ``route_lane_ids``: lanes the ego may drive in (driving-direction compliance); ``route_centerline_xy [N, 2]``: the
    path progress and lane keeping are measured along. ``reference_poses_ego [K, 3]`` (optional): the expert's plan in
    the ego frame at ``reference_dt_s``, the yardstick for ego progress (NAVSIM's PDM-Closed trajectory).
    ``human_poses_ego [K, 3]`` (optional): what the logged driver did next, at ``reference_dt_s``, for NAVSIM v2's
    human-penalty filter, which applies to original scenes only (``synthetic=False``).
    """

    map: MapData
    agents: tuple[Agent, ...]
    ego: EgoState
    route_lane_ids: tuple[str, ...]
    route_centerline_xy: np.ndarray
    command: DrivingCommand = DrivingCommand.STRAIGHT
    dt_s: float = 0.1
    horizon_steps: int = 40
    reference_poses_ego: np.ndarray | None = None
    reference_dt_s: float = 0.5
    human_poses_ego: np.ndarray | None = None
    synthetic: bool = False
    token: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def route_centerline(self) -> LineString:
        return LineString(self.route_centerline_xy)

    def validate(self) -> Scene:
        """Check the scene and return it; raise SceneError saying what is wrong and what is expected."""
        if not self.map.lanes:
            raise SceneError("the scene's map has no lanes: a scene needs at least the lane the ego drives in")
        if self.map.drivable_area is None or self.map.drivable_area.is_empty:
            raise SceneError("the scene's drivable area is empty: build it from the lane polygons or the road shape")
        if self.dt_s <= 0 or self.horizon_steps < 1:
            raise SceneError(f"bad time sampling: dt_s={self.dt_s}, horizon_steps={self.horizon_steps}")
        for lane in self.map.lanes:
            _check_array(lane.centerline_xy, (None, 2), f"lane '{lane.id}' centerline_xy", min_rows=2)
            if not lane.width_m > 0:
                raise SceneError(f"lane '{lane.id}' has width {lane.width_m}; widths must be positive")
        known = set(self.map.lanes_by_id)
        missing = [lane_id for lane_id in self.route_lane_ids if lane_id not in known]
        if missing:
            raise SceneError(f"route names unknown lane ids {missing}")
        for light in self.map.traffic_lights:
            if light.lane_id not in known:
                raise SceneError(f"traffic light '{light.id}' controls unknown lane '{light.lane_id}'")
        _check_array(self.route_centerline_xy, (None, 2), "route_centerline_xy", min_rows=2)
        ego = self.ego
        _check_array(ego.pose, (3,), "ego.pose")
        if not (np.isfinite(ego.speed_mps) and np.isfinite(ego.acceleration_mps2) and np.isfinite(ego.yaw_rate_radps)):
            raise SceneError("ego speed, acceleration and yaw rate must be finite numbers")
        if ego.history_poses is None or len(np.asarray(ego.history_poses)) == 0:
            raise SceneError("the ego history is empty: give at least the current pose (history_poses [H>=1, 3])")
        _check_array(ego.history_poses, (None, 3), "ego.history_poses", min_rows=1)
        steps = self.horizon_steps + 1
        for agent in self.agents:
            _check_array(agent.poses, (None, 3), f"agent '{agent.id}' poses", min_rows=1)
            _check_array(agent.velocities_mps, (len(agent.poses), 2), f"agent '{agent.id}' velocities_mps")
            if len(agent.poses) != 1 and len(agent.poses) < steps:
                raise SceneError(
                    f"agent '{agent.id}' has {len(agent.poses)} future poses; the horizon needs {steps} "
                    f"(t = 0 .. {self.horizon_steps} at dt {self.dt_s} s) or a single pose for a static box"
                )
            if not (agent.length_m > 0 and agent.width_m > 0):
                raise SceneError(f"agent '{agent.id}' has a non-positive size")
        if self.reference_poses_ego is not None:
            validate_poses(self.reference_poses_ego, "reference_poses_ego", error=SceneError)
        if self.human_poses_ego is not None:
            validate_poses(self.human_poses_ego, "human_poses_ego", error=SceneError)
        history_count = len(np.asarray(ego.history_poses))
        for name in ("history_speeds_mps", "history_accelerations_mps2"):
            values = getattr(ego, name)
            if values is not None:
                _check_array(values, (history_count,), f"ego.{name}")
        return self


@dataclass(frozen=True, eq=False)
class Trajectory:
    """A planned trajectory: ``poses [N, 3]`` in the ego rear-axle frame at plan time, one every ``dt_s`` seconds
    (the first at ``t = dt_s``)."""

    poses: np.ndarray
    dt_s: float = 0.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "poses", validate_poses(self.poses, "trajectory"))
        if not self.dt_s > 0:
            raise TrajectoryError(f"trajectory dt_s must be positive, got {self.dt_s}")

    @property
    def duration_s(self) -> float:
        return len(self.poses) * self.dt_s


def validate_poses(poses: Any, name: str, error: type[ValueError] = TrajectoryError) -> np.ndarray:
    """Return ``poses`` as a float64 ``[N, 3]`` array, or raise ``error`` saying what is wrong."""
    try:
        array = np.asarray(poses, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise error(f"{name}: cannot read poses as numbers ({exc})") from None
    if array.ndim != 2 or array.shape[1] != 3:
        raise error(f"{name}: expected poses of shape [N, 3] (x, y, heading), got shape {list(array.shape)}")
    if len(array) == 0:
        raise error(f"{name}: no poses")
    if not np.isfinite(array).all():
        bad = np.argwhere(~np.isfinite(array))[0]
        raise error(f"{name}: pose {bad[0]} has a non-finite value (NaN or inf) in column {bad[1]}")
    return array


def _check_array(value: Any, shape: tuple[int | None, ...], name: str, min_rows: int = 0) -> None:
    array = np.asarray(value, dtype=np.float64)
    if array.ndim != len(shape) or any(
        want is not None and got != want for got, want in zip(array.shape, shape, strict=True)
    ):
        expected = ["N" if s is None else s for s in shape]
        raise SceneError(f"{name}: expected shape {expected}, got {list(array.shape)}")
    if array.ndim >= 1 and len(array) < min_rows:
        raise SceneError(f"{name}: needs at least {min_rows} rows, got {len(array)}")
    if not np.isfinite(array).all():
        raise SceneError(f"{name}: contains NaN or inf")


def object_list(scene: Scene) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The scene's other road users now, as a perception object list: ids, boxes ``[M, 5]`` (centre x, y, heading,
    length, width) and velocities ``[M, 2]`` (m/s), world frame."""
    agents = scene.agents
    boxes = np.array([[*agent.poses[0][:3], agent.length_m, agent.width_m] for agent in agents]).reshape(-1, 5)
    velocities = np.array(
        [agent.velocities_mps[0] if len(agent.velocities_mps) else (0.0, 0.0) for agent in agents]
    ).reshape(-1, 2)
    return [agent.id for agent in agents], boxes, velocities


def speed_limit_at(scene: Scene, default: float | None) -> float | None:
    """The lowest speed limit of the lanes under the ego (what a car's map gives), or ``default`` off the map."""
    point = shapely.Point(scene.ego.pose[:2])
    limits = [lane.speed_limit_mps for lane in scene.map.lanes if lane.polygon.intersects(point)]
    return float(min(limits)) if limits else default


def lane_union(lanes: tuple[Lane, ...] | list[Lane]) -> BaseGeometry:
    """The union of lane surfaces: the default drivable area of a lane-only map."""
    return shapely.union_all([lane.polygon for lane in lanes])


@dataclass(frozen=True)
class LaneRelation:
    """Where a pose sits in its lane: signed offset from the centerline (m, positive left of the lane's direction)
    and heading error (rad, positive when the pose points left of the lane's direction)."""

    lane_id: str
    offset_m: float
    heading_error_rad: float


def lane_relation(
    lanes: tuple[Lane, ...] | list[Lane], pose: np.ndarray, max_heading_error_rad: float = 0.8
) -> LaneRelation | None:
    """The pose's relation to the nearest lane that runs its way (heading error within ``max_heading_error_rad``, so
    a crossing or oncoming lane is never taken), or None when no lane does."""
    pose = np.asarray(pose, dtype=np.float64)
    best: LaneRelation | None = None
    for lane in lanes:
        _, offset, direction = line_frame(LineString(lane.centerline_xy), pose[:2])
        error = float(wrap_angle(pose[2] - direction))
        if abs(error) <= max_heading_error_rad and (best is None or abs(offset) < abs(best.offset_m)):
            best = LaneRelation(lane.id, offset, error)
    return best
