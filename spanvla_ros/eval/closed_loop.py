"""Closed-loop metrics in the style of the CARLA leaderboard.

An :class:`EpisodeMonitor` watches a drive tick by tick (each tick a :class:`~spanvla_ros.scene.Scene` snapshot whose
ego pose is the car's pose now) and records route progress and infractions: collisions (pedestrian, vehicle, static),
off-road and wrong-way driving, red-light entries. ``driving_score = route_completion × Π penalty^count``; distance
driven off-road or against traffic does not count towards route completion.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import shapely

from ..scene import AgentKind, Scene, TrafficLightState, box_corners, world_to_ego

COLLISION_PEDESTRIAN = "collision_pedestrian"
COLLISION_VEHICLE = "collision_vehicle"
COLLISION_STATIC = "collision_static"
RED_LIGHT = "red_light"
OFF_ROAD = "off_road"
WRONG_WAY = "wrong_way"
#: An episode without infractions that completes less than this share of its route stalled.
STALL_COMPLETION = 0.5
COLLISION_SIDES = ("front", "rear", "left", "right")
FAILURES = ("collision", OFF_ROAD, WRONG_WAY, RED_LIGHT, "stall", "none")


@dataclass(frozen=True)
class InfractionPenalties:
    """Multiplicative penalties per infraction (CARLA leaderboard values)."""

    pedestrian: float = 0.5
    vehicle: float = 0.6
    static: float = 0.65
    red_light: float = 0.7

    def factor(self, kind: str) -> float:
        return {
            COLLISION_PEDESTRIAN: self.pedestrian,
            COLLISION_VEHICLE: self.vehicle,
            COLLISION_STATIC: self.static,
            RED_LIGHT: self.red_light,
        }.get(kind, 1.0)


@dataclass(frozen=True)
class Infraction:
    kind: str
    time_s: float
    x: float
    y: float
    other_id: str = ""
    #: Collisions: where the other box's centre lay from the ego's (ego frame, scaled by the two boxes' half sizes):
    #: ``front`` (the ego ran into it), ``rear`` (it ran into the ego), ``left`` or ``right``; the ego's speed then.
    side: str = ""
    ego_speed_mps: float = 0.0


@dataclass
class EpisodeResult:
    """One drive's outcome; ``collided`` says whether any collision happened."""

    route_completion: float
    driving_score: float
    infraction_penalty: float
    distance_m: float
    duration_s: float
    off_road_m: float
    wrong_way_m: float
    infractions: list[Infraction] = field(default_factory=list)
    #: Lateral error: the ego centre's distance from the route centerline (mean and worst over the ticks).
    mean_route_offset_m: float = 0.0
    max_route_offset_m: float = 0.0

    @property
    def collided(self) -> bool:
        return any(i.kind.startswith("collision") for i in self.infractions)

    @property
    def failure(self) -> str:
        """What went wrong first in importance: ``collision``, ``off_road``, ``wrong_way``, ``red_light``, ``stall``
        (under half the achievable route without an infraction: too slow) or ``none``."""
        counts = self.counts()
        if self.collided:
            return "collision"
        for kind in (OFF_ROAD, WRONG_WAY, RED_LIGHT):
            if counts[kind]:
                return kind
        return "stall" if self.route_completion < STALL_COMPLETION else "none"

    def counts(self) -> dict[str, int]:
        kinds = (COLLISION_PEDESTRIAN, COLLISION_VEHICLE, COLLISION_STATIC, RED_LIGHT, OFF_ROAD, WRONG_WAY)
        return {kind: sum(1 for i in self.infractions if i.kind == kind) for kind in kinds}

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["collided"] = self.collided
        data["counts"] = self.counts()
        data["failure"] = self.failure
        return data


def ego_corners(scene: Scene) -> np.ndarray:
    """The corners ``[4, 2]`` of the ego's box (world frame)."""
    dims = scene.ego.dimensions
    return box_corners(np.asarray(scene.ego.pose)[None], dims.length_m, dims.width_m, dims.rear_axle_to_center_m)[0]


def collision_side(
    scene: Scene, ego_center: np.ndarray, other_pose, other_length_m: float, other_width_m: float
) -> str:
    """Where another box touching the ego lies from it: the dominant axis of the offset between the centres in the
    ego frame, each axis scaled by the sum of the two half sizes along it."""
    center_pose = np.array([*ego_center, scene.ego.pose[2]], dtype=np.float64)
    forward, left = world_to_ego(np.asarray(other_pose[:3], dtype=np.float64), center_pose)[:2]
    dims = scene.ego.dimensions
    along, across = forward / (dims.length_m + other_length_m) * 2, left / (dims.width_m + other_width_m) * 2
    if abs(along) >= abs(across):
        return "front" if along > 0 else "rear"
    return "left" if across > 0 else "right"


def on_road(scene: Scene, corners: np.ndarray) -> bool:
    """Whether a box (its corners ``[4, 2]``) lies inside the drivable area: the off-road rule of the metrics."""
    return bool(shapely.intersects_xy(scene.map.drivable_area, corners[:, 0], corners[:, 1]).all())


class EpisodeMonitor:
    """Accumulates closed-loop metrics over the ticks of one episode.

    ``route_length_m``: how far along the route centerline (from the start pose) counts as a completed route.
    """

    def __init__(
        self,
        route_centerline_xy: np.ndarray,
        route_length_m: float | None = None,
        penalties: InfractionPenalties = InfractionPenalties(),
    ) -> None:
        self.route = shapely.LineString(np.asarray(route_centerline_xy, dtype=np.float64))
        self.route_length_m = route_length_m
        self.penalties = penalties
        self.infractions: list[Infraction] = []
        self._start_s: float | None = None
        self._best_s = 0.0
        self._in_contact: set[str] = set()
        self._red_lights_run: set[str] = set()
        self._off_road = False
        self._wrong_way = False
        self._off_road_m = 0.0
        self._wrong_way_m = 0.0
        self._distance_m = 0.0
        self._last_xy: np.ndarray | None = None
        self._first_time: float | None = None
        self._last_time = 0.0
        self._offsets: list[float] = []

    def update(self, scene: Scene, time_s: float) -> list[Infraction]:
        """Record one tick; return the infractions that started at this tick."""
        corners = ego_corners(scene)
        polygon = shapely.Polygon(corners)
        center = corners.mean(axis=0)
        new: list[Infraction] = []

        step_m = 0.0 if self._last_xy is None else float(np.linalg.norm(center - self._last_xy))
        self._distance_m += step_m
        self._last_xy = center
        if self._first_time is None:
            self._first_time = time_s
        self._last_time = time_s

        s = float(shapely.line_locate_point(self.route, shapely.Point(center)))
        self._offsets.append(float(shapely.distance(self.route, shapely.Point(center))))
        if self._start_s is None:
            self._start_s = s
        self._best_s = max(self._best_s, s - self._start_s)

        touching: set[str] = set()
        for agent in scene.agents:
            pose = agent.poses[0]
            agent_box = shapely.Polygon(box_corners(pose[None], agent.length_m, agent.width_m)[0])
            if polygon.intersects(agent_box):
                touching.add(agent.id)
                if agent.id not in self._in_contact:
                    side = collision_side(scene, center, pose, agent.length_m, agent.width_m)
                    kind = _collision_kind(agent.kind)
                    new.append(Infraction(kind, time_s, *center, agent.id, side, float(scene.ego.speed_mps)))
        self._in_contact = touching

        off_road = not on_road(scene, corners)
        if off_road:
            self._off_road_m += step_m
            if not self._off_road:
                new.append(Infraction(OFF_ROAD, time_s, *center))
        self._off_road = off_road

        route = set(scene.route_lane_ids)
        in_route = any(lane.polygon.intersects(shapely.Point(center)) for lane in scene.map.lanes if lane.id in route)
        in_oncoming = any(lane.polygon.intersects(shapely.Point(center)) for lane in scene.map.lanes if lane.oncoming)
        wrong_way = in_oncoming and not in_route
        if wrong_way:
            self._wrong_way_m += step_m
            if not self._wrong_way:
                new.append(Infraction(WRONG_WAY, time_s, *center))
        self._wrong_way = wrong_way

        for light in scene.map.traffic_lights:
            if light.state is TrafficLightState.RED and light.id not in self._red_lights_run:
                if scene.map.lane(light.lane_id).polygon.intersects(polygon):
                    self._red_lights_run.add(light.id)
                    new.append(Infraction(RED_LIGHT, time_s, *center, other_id=light.id))
        self.infractions.extend(new)
        return new

    def result(self) -> EpisodeResult:
        """Route completion, penalties and the driving score so far."""
        length = self.route_length_m
        if length is None:
            length = self.route.length - (self._start_s or 0.0)
        length = max(length, 1e-6)
        discounted = self._best_s - self._off_road_m - self._wrong_way_m
        completion = float(np.clip(discounted / length, 0.0, 1.0))
        penalty = float(np.prod([self.penalties.factor(i.kind) for i in self.infractions])) if self.infractions else 1.0
        return EpisodeResult(
            route_completion=completion,
            driving_score=completion * penalty,
            infraction_penalty=penalty,
            distance_m=self._distance_m,
            duration_s=self._last_time - (self._first_time or 0.0),
            off_road_m=self._off_road_m,
            wrong_way_m=self._wrong_way_m,
            infractions=list(self.infractions),
            mean_route_offset_m=float(np.mean(self._offsets)) if self._offsets else 0.0,
            max_route_offset_m=float(np.max(self._offsets)) if self._offsets else 0.0,
        )


def aggregate_episodes(results: list[EpisodeResult]) -> dict[str, Any]:
    """Means over episodes: ``driving_score``, ``route_completion``, ``collision_rate`` (share of episodes with a
    collision), infraction counts and infractions per km."""
    if not results:
        raise ValueError("no episodes to aggregate")
    counts: dict[str, int] = {}
    for result in results:
        for kind, count in result.counts().items():
            counts[kind] = counts.get(kind, 0) + count
    distance_km = sum(r.distance_m for r in results) / 1000.0
    failures = [r.failure for r in results]
    return {
        "episodes": len(results),
        "driving_score": float(np.mean([r.driving_score for r in results])),
        "route_completion": float(np.mean([r.route_completion for r in results])),
        "infraction_penalty": float(np.mean([r.infraction_penalty for r in results])),
        "collision_rate": float(np.mean([r.collided for r in results])),
        "infraction_counts": counts,
        "infractions_per_km": {k: (v / distance_km if distance_km > 0 else 0.0) for k, v in counts.items()},
        "distance_km": distance_km,
        "off_road_rate": float(np.mean([r.counts()[OFF_ROAD] > 0 for r in results])),
        "failures": {kind: failures.count(kind) for kind in FAILURES},
        "collisions_by_side": {
            side: sum(i.side == side for r in results for i in r.infractions if i.kind.startswith("collision"))
            for side in COLLISION_SIDES
        },
        "mean_route_offset_m": float(np.mean([r.mean_route_offset_m for r in results])),
    }


def _collision_kind(kind: AgentKind) -> str:
    if kind in (AgentKind.PEDESTRIAN, AgentKind.CYCLIST):
        return COLLISION_PEDESTRIAN
    if kind is AgentKind.STATIC_OBJECT:
        return COLLISION_STATIC
    return COLLISION_VEHICLE
