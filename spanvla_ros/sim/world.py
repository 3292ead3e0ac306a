"""The embedded driving world: highway-env scenes converted to the project's scene model.

Traffic runs highway-env's IDM/MOBIL vehicles; the ego is driven by planned trajectories through the scorer's LQR
tracker and kinematic bicycle (continuous control) at 10 Hz, its state written back into highway-env so the traffic
reacts to it. highway-env's frame has y pointing right of travel; every conversion here flips y (and headings) so the
project's world frame is REP-103 (x forward, y left, heading counter-clockwise).
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely

from ..eval.tracker import NUM_STATES, StateIndex, interpolate_plan, simulate
from ..scene import (
    Agent,
    AgentKind,
    DrivingCommand,
    EgoState,
    Lane,
    MapData,
    Scene,
    Trajectory,
    VehicleDimensions,
    ego_to_world,
    interpolate_poses,
    wrap_angle,
)

#: Our scene names → highway-env environment ids (the fast highway variant: the default one costs ~250 ms a step).
ENVIRONMENTS = {
    "highway": "highway-fast-v0",
    "merge": "merge-v0",
    "roundabout": "roundabout-v0",
    "intersection": "intersection-v0",
    "two-way": "two-way-v0",
    "exit": "exit-v0",
}
#: Extra highway-env settings per scene: traffic density tuned for a 2-core CPU and for scenes with interaction.
ENV_OVERRIDES: dict[str, dict[str, Any]] = {
    "highway": {"lanes_count": 3, "vehicles_count": 15, "vehicles_density": 1.5},
    "exit": {"vehicles_count": 12, "vehicles_density": 1.5},
    "intersection": {"initial_vehicle_count": 6, "spawn_probability": 0.4},
}
#: IDM settings that highway-env's intersection scene writes onto the traffic's vehicle *class* at each reset, a
#: change to the whole process: left alone, every later scene in the process drove the intersection's traffic, so an
#: episode depended on which episodes its worker had run before (the recipe's data varied between runs).
SHARED_TRAFFIC_SETTINGS = ("DISTANCE_WANTED", "COMFORT_ACC_MAX", "COMFORT_ACC_MIN")
#: Each traffic class's own settings, read before any scene changed them.
_TRAFFIC_DEFAULTS: dict[type, dict[str, Any]] = {}
HW_VEHICLE_LENGTH_M, HW_VEHICLE_WIDTH_M = 5.0, 2.0
#: How far ahead (in ticks) the ego's controller fits its speed and curvature profiles (the scorer's 4 s).
REFERENCE_STEPS = 40
EGO_DIMENSIONS = VehicleDimensions(length_m=5.0, width_m=2.0, rear_axle_to_center_m=1.5, wheelbase_m=3.0)


class UnknownEnvironmentError(ValueError):
    """The requested scene kind is not one of ``ENVIRONMENTS``."""


@dataclass(frozen=True)
class WorldConfig:
    """One world: which highway-env scene, its tick rate, length and how the ego's history is kept."""

    env: str = "highway"
    dt_s: float = 0.1
    duration_s: float = 20.0
    horizon_steps: int = 40
    history_len: int = 4
    history_dt_s: float = 0.5
    route_ahead_m: float = 250.0
    env_overrides: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.env not in ENVIRONMENTS:
            raise UnknownEnvironmentError(
                f"unknown environment '{self.env}': choose one of {', '.join(sorted(ENVIRONMENTS))}"
            )


def to_world_xy(xy: np.ndarray) -> np.ndarray:
    """highway-env coordinates ``[..., 2]`` → REP-103 world (flip y)."""
    out = np.array(xy, dtype=np.float64)
    out[..., 1] = -out[..., 1]
    return out


def to_world_heading(heading: float | np.ndarray) -> np.ndarray:
    return wrap_angle(-np.asarray(heading, dtype=np.float64))


class HighwayWorld:
    """A seeded highway-env world stepped headless at ``dt_s``; ``snapshot()`` gives the current :class:`Scene`."""

    def __init__(self, config: WorldConfig = WorldConfig()) -> None:
        os.environ.setdefault("SDL_VIDEODRIVER", "offscreen")  # "dummy" renders black frames
        import gymnasium as gym
        import highway_env  # noqa: F401  (registers the environments)
        from highway_env.utils import class_from_path

        self.config = config
        overrides = {**ENV_OVERRIDES.get(config.env, {}), **config.env_overrides}
        overrides.update(
            {
                "simulation_frequency": int(round(1.0 / config.dt_s)),
                "policy_frequency": int(round(1.0 / config.dt_s)),
                "duration": config.duration_s,
                "offscreen_rendering": True,
            }
        )
        self.env = gym.make(ENVIRONMENTS[config.env], config=overrides, render_mode="rgb_array")
        self.time_s = 0.0
        self.seed: int | None = None
        self._ego_history: deque[np.ndarray] = deque()
        self._map: MapData | None = None
        self._route_lane_ids: tuple[str, ...] = ()
        self._ego_state = np.zeros(NUM_STATES)
        self._agent_names: dict[int, str] = {}
        self._traffic_class = class_from_path(self.env.unwrapped.config["other_vehicles_type"])
        defaults = {name: getattr(self._traffic_class, name) for name in SHARED_TRAFFIC_SETTINGS}
        self._traffic_settings = _TRAFFIC_DEFAULTS.setdefault(self._traffic_class, defaults)

    # --- lifecycle -------------------------------------------------------------------------------------------------

    def reset(self, seed: int) -> Scene:
        """Reset to ``seed`` (reproducible: same seed, same traffic) and return the first scene."""
        self._use_traffic_settings(_TRAFFIC_DEFAULTS[self._traffic_class])
        self.env.reset(seed=seed)
        # What this scene set (the intersection's own settings, else the defaults), applied again at each step.
        self._traffic_settings = {name: getattr(self._traffic_class, name) for name in SHARED_TRAFFIC_SETTINGS}
        self.seed = seed
        self.time_s = 0.0
        ego = self._ego
        self._ego_state = np.zeros(NUM_STATES)
        self._ego_state[:2] = to_world_xy(ego.position)
        self._ego_state[StateIndex.HEADING] = to_world_heading(ego.heading)
        self._ego_state[StateIndex.SPEED] = ego.speed
        self._agent_names = {}
        route_pairs = {(from_, to) for from_, to, _ in self._route()}
        self._map = convert_map(self.road.network, route_pairs)
        self._route_lane_ids = self._route_lanes()
        # Until the ego has driven for the history span, assume it came at constant speed.
        self._ego_history = deque(
            maxlen=int(round(self.config.history_len * self.config.history_dt_s / self.config.dt_s)) + 1
        )
        steps_back = self._ego_history.maxlen
        for k in range(steps_back - 1, 0, -1):
            back = self._ego_state.copy()
            heading = back[StateIndex.HEADING]
            back[:2] -= back[StateIndex.SPEED] * k * self.config.dt_s * np.array([np.cos(heading), np.sin(heading)])
            self._ego_history.append(back)
        self._ego_history.append(self._ego_state.copy())
        return self.snapshot()

    def step(self, plan: Trajectory, plan_origin: np.ndarray | None = None, plan_age_s: float = 0.0) -> Scene:
        """Advance one tick: track ``plan`` (ego frame of ``plan_origin``, default the current pose, made
        ``plan_age_s`` seconds ago) with the LQR + bicycle for ``dt_s``, move the traffic, return the new scene."""
        dt = self.config.dt_s
        origin = self._ego_state[:3] if plan_origin is None else np.asarray(plan_origin, dtype=np.float64)
        poses_world = ego_to_world(plan.poses, origin)
        poses_world = _remaining_plan(poses_world, plan.dt_s, plan_age_s, self._ego_state[:3])
        state = self._ego_state
        # The scorer's simulator, one tick at a time from the car's full state (its steering carries over); the
        # speed and curvature profiles are fitted to what is left of the plan, up to 4 s of it.
        reference_steps = int(np.clip(round(len(poses_world) * plan.dt_s / dt), 3, REFERENCE_STEPS))
        reference = interpolate_plan(poses_world[None], plan.dt_s, state[:3], reference_steps, dt)
        states = simulate(reference, state, EGO_DIMENSIONS, dt, num_steps=1)
        self._ego_state = states[0, 1].copy()
        road = self.road
        self._use_traffic_settings(self._traffic_settings)  # another world in this process may have changed them
        road.act()
        road.step(dt)
        ego = self._ego
        hw_xy = to_world_xy(self._ego_state[:2])  # the flip is its own inverse
        ego.position = hw_xy
        ego.heading = float(-self._ego_state[StateIndex.HEADING])
        ego.speed = float(self._ego_state[StateIndex.SPEED])
        ego.on_state_update()
        self.time_s += dt
        self._ego_history.append(self._ego_state.copy())
        return self.snapshot()

    def perturb_ego(self, lateral_m: float = 0.0, heading_rad: float = 0.0, speed_scale: float = 1.0) -> Scene:
        """Displace the ego (a recovery start): shift it sideways (positive = left), turn it, scale its speed."""
        state = self._ego_state
        heading = state[StateIndex.HEADING]
        state[0] -= lateral_m * np.sin(heading)
        state[1] += lateral_m * np.cos(heading)
        state[StateIndex.HEADING] = wrap_angle(heading + heading_rad)
        state[StateIndex.SPEED] *= speed_scale
        ego = self._ego
        ego.position = to_world_xy(state[:2])
        ego.heading = float(-state[StateIndex.HEADING])
        ego.speed = float(state[StateIndex.SPEED])
        ego.on_state_update()
        self._ego_history[-1] = state.copy()
        return self.snapshot()

    def _use_traffic_settings(self, settings: dict[str, Any]) -> None:
        for name, value in settings.items():
            setattr(self._traffic_class, name, value)

    @property
    def road(self):
        return self.env.unwrapped.road

    @property
    def _ego(self):
        return self.env.unwrapped.vehicle

    @property
    def ego_state(self) -> np.ndarray:
        """``[NUM_STATES]`` world-frame state of the ego (tracker StateIndex layout)."""
        return self._ego_state.copy()

    @property
    def done(self) -> bool:
        return self.time_s >= self.config.duration_s - 1e-9

    # --- scenes ----------------------------------------------------------------------------------------------------

    def snapshot(self, agent_futures: dict[str, np.ndarray] | None = None) -> Scene:
        """The scene now. Agent futures are highway-env's constant-speed predictions along each vehicle's route
        unless ``agent_futures`` (id → ``[T + 1, 4]`` x, y, heading, speed in world frame) gives logged ones."""
        steps = self.config.horizon_steps + 1
        times = np.arange(steps) * self.config.dt_s
        agents = []
        for vehicle in self.road.vehicles:
            if vehicle is self._ego:
                continue
            agent_id = self._name(vehicle)
            if agent_futures and agent_id in agent_futures:
                future = agent_futures[agent_id]
                poses, speeds = future[:, :3], future[:, 3]
            else:
                positions, headings = _predict(vehicle, times)
                poses = np.column_stack([to_world_xy(np.asarray(positions)), to_world_heading(np.asarray(headings))])
                speeds = np.full(steps, float(vehicle.speed))
            velocities = speeds[:, None] * np.column_stack([np.cos(poses[:, 2]), np.sin(poses[:, 2])])
            length = float(getattr(vehicle, "LENGTH", HW_VEHICLE_LENGTH_M))
            width = float(getattr(vehicle, "WIDTH", HW_VEHICLE_WIDTH_M))
            agents.append(Agent(agent_id, AgentKind.VEHICLE, length, width, poses, velocities))
        state = self._ego_state
        history_stride = int(round(self.config.history_dt_s / self.config.dt_s))
        logged = np.array(list(self._ego_history)[::-1][::history_stride][: self.config.history_len][::-1])
        history = logged[:, :3]
        ego = EgoState(
            pose=state[:3].copy(),
            speed_mps=float(state[StateIndex.SPEED]),
            acceleration_mps2=float(state[StateIndex.ACCELERATION]),
            yaw_rate_radps=float(state[StateIndex.YAW_RATE]),
            history_poses=history,
            history_dt_s=self.config.history_dt_s,
            dimensions=EGO_DIMENSIONS,
            history_speeds_mps=logged[:, StateIndex.SPEED].copy(),
            history_accelerations_mps2=logged[:, StateIndex.ACCELERATION].copy(),
        )
        route_xy = self._route_centerline()
        return Scene(
            map=self._map,
            agents=tuple(agents),
            ego=ego,
            route_lane_ids=self._route_lane_ids,
            route_centerline_xy=route_xy,
            command=self._command(route_xy),
            dt_s=self.config.dt_s,
            horizon_steps=self.config.horizon_steps,
            token=f"{self.config.env}-s{self.seed}-t{self.time_s:05.1f}",
            metadata={"env": self.config.env, "seed": self.seed, "time_s": round(self.time_s, 3)},
        )

    def _name(self, vehicle) -> str:
        """A stable agent id: vehicles are named in order of first appearance, so a seed replays identically."""
        key = id(vehicle)
        if key not in self._agent_names:
            self._agent_names[key] = f"v{len(self._agent_names)}"
        return self._agent_names[key]

    def agent_states(self) -> dict[str, np.ndarray]:
        """Each agent's current ``[x, y, heading, speed]`` (world frame), keyed like the scene's agent ids."""
        out = {}
        for vehicle in self.road.vehicles:
            if vehicle is self._ego:
                continue
            xy = to_world_xy(vehicle.position)
            out[self._name(vehicle)] = np.array(
                [xy[0], xy[1], float(to_world_heading(vehicle.heading)), float(vehicle.speed)]
            )
        return out

    def render_top_down(self) -> np.ndarray:
        """highway-env's own top-down view ``[H, W, 3]`` uint8 (for visualisation)."""
        return self.env.render()

    # --- route -----------------------------------------------------------------------------------------------------

    def _route(self) -> list[tuple]:
        """Lane indices from the ego's current lane along its planned route (highway-env's ``route`` when it has
        one, else straight on through the network), lane ids resolved."""
        ego = self._ego
        network = self.road.network
        current = ego.lane_index
        planned = [(f, t) for f, t, _ in (getattr(ego, "route", None) or [])]
        route = [current]
        while len(route) < 12:
            last = route[-1]
            # Never turn back along the segment just driven (two-way roads list both directions).
            following = {t: g for t, g in network.graph.get(last[1], {}).items() if t != last[0]}
            if not following:
                break
            wanted = [t for f, t in planned if f == last[1] and t in following]
            next_to = wanted[0] if wanted else sorted(following)[0]
            lane_index = min(last[2] or 0, len(following[next_to]) - 1)
            route.append((last[1], next_to, lane_index))
        return route

    def _route_centerline(self) -> np.ndarray:
        network = self.road.network
        ego = self._ego
        route = self._route()
        start_lane = network.get_lane(route[0])
        s0, _ = start_lane.local_coordinates(ego.position)
        points = []
        for s in np.arange(s0 - 40.0, s0 + self.config.route_ahead_m, 2.0):
            position, _ = network.position_heading_along_route(route, s, 0, route[0])
            points.append(position)
        xy = to_world_xy(np.asarray(points))
        keep = np.concatenate([[True], np.linalg.norm(np.diff(xy, axis=0), axis=1) > 1e-3])
        return xy[keep]

    def _route_lanes(self) -> tuple[str, ...]:
        """Lanes the ego may drive in: every lane that does not run against the route's direction. (highway-env
        roads have no turn restrictions, so only oncoming lanes count against driving-direction compliance.)"""
        return tuple(sorted(lane.id for lane in self._map.lanes if not lane.oncoming))

    def _command(self, route_xy: np.ndarray) -> DrivingCommand:
        """left / right / straight from the route's heading change over the next ~60 m."""
        ego_xy = self._ego_state[:2]
        distances = np.linalg.norm(route_xy - ego_xy, axis=1)
        i0 = int(np.argmin(distances))
        i1 = min(i0 + 30, len(route_xy) - 1)
        if i1 <= i0 + 1:
            return DrivingCommand.STRAIGHT
        heading_now = self._ego_state[StateIndex.HEADING]
        delta = route_xy[i1] - route_xy[i1 - 1]
        turn = float(wrap_angle(np.arctan2(delta[1], delta[0]) - heading_now))
        if turn > 0.5:
            return DrivingCommand.LEFT
        if turn < -0.5:
            return DrivingCommand.RIGHT
        return DrivingCommand.STRAIGHT


def lane_id(index: tuple) -> str:
    return f"{index[0]}:{index[1]}:{index[2]}"


def convert_map(network, route_pairs: set[tuple] = frozenset()) -> MapData:
    """highway-env's road network → lanes (sampled centerlines, widths, neighbours, successors, flags) and the
    drivable area (their union). A lane is oncoming when it runs between the nodes of a route segment the other way."""
    lanes = []
    graph = network.graph
    for from_, tos in graph.items():
        for to, group in tos.items():
            for index, lane in enumerate(group):
                length = float(lane.length)
                s = np.linspace(0.0, length, max(int(length / 2.0), 1) + 1)
                centerline = to_world_xy(np.array([lane.position(si, 0.0) for si in s]))
                successors = tuple(lane_id((to, nxt, min(index, len(g) - 1))) for nxt, g in graph.get(to, {}).items())
                lanes.append(
                    Lane(
                        id=lane_id((from_, to, index)),
                        centerline_xy=centerline,
                        width_m=float(lane.width_at(0.0)),
                        # highway-env numbers lanes from the left of travel.
                        left_id=lane_id((from_, to, index - 1)) if index > 0 else None,
                        right_id=lane_id((from_, to, index + 1)) if index + 1 < len(group) else None,
                        successor_ids=successors,
                        oncoming=(to, from_) in route_pairs,
                        is_intersection=str(from_).startswith("ir") and str(to).startswith("il"),
                        speed_limit_mps=float(lane.speed_limit or 30.0),
                    )
                )
    # Morphological closing fills the slivers where consecutive lane pieces meet at an angle (roundabout entries,
    # junctions); the net margin over the lane surface is 0.3 m.
    drivable = shapely.union_all([lane.polygon for lane in lanes]).buffer(2.0).buffer(-1.7)
    return MapData(tuple(lanes), drivable)


def _predict(vehicle, times: np.ndarray) -> tuple[list[np.ndarray], list[float]]:
    if hasattr(vehicle, "route"):
        try:
            positions, headings = vehicle.predict_trajectory_constant_speed(times)
            return list(positions), list(headings)
        except (IndexError, KeyError):
            pass  # highway-env's route bookkeeping can point past a road's lanes; predict straight on instead
    direction = np.array([np.cos(vehicle.heading), np.sin(vehicle.heading)])
    return [vehicle.position + vehicle.speed * t * direction for t in times], [vehicle.heading] * len(times)


def _remaining_plan(poses_world: np.ndarray, dt_s: float, age_s: float, current_pose: np.ndarray) -> np.ndarray:
    """A plan made ``age_s`` ago, re-sampled from now: the poses still ahead in time, at the plan's spacing."""
    if age_s <= 1e-9:
        return poses_world
    t = np.arange(1, len(poses_world) + 1) * dt_s - age_s
    keep = t > 1e-6
    if keep.sum() < 2:
        return poses_world[-2:] if len(poses_world) >= 2 else poses_world
    knots_t = np.concatenate([[0.0], t[keep]])
    new_t = np.arange(1, int(knots_t[-1] / dt_s) + 1) * dt_s
    if len(new_t) == 0:
        return poses_world[keep]
    return interpolate_poses(knots_t, np.vstack([current_pose, poses_world[keep]]), new_t)
