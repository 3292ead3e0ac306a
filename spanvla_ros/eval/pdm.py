"""The PDM scorer with NAVSIM semantics, vectorised over a batch of proposals.

A plan is tracked (LQR + kinematic bicycle, 10 Hz, 4 s) and the simulated motion is scored against the scene's
non-reactive agent futures and map:

* multiplicative: NC (no at-fault collision: 0 for agents, 0.5 for static objects), DAC (drivable area), DDC (driving
  direction: 1 / 0.5 / 0 by metres driven against traffic within 1 s), TLC (no entry into a red-light lane);
* weighted: EP (progress along the route relative to the reference), TTC (no at-fault collision within 0.9 s at
  constant velocity), C (comfort of the plan), LK (lane keeping), HC (comfort including the ego's history), EC
  (extended comfort between consecutive plans).

``PDMS = NC·DAC·(5·TTC + 5·EP + 2·C) / 12`` (v1) and
``EPDMS = NC·DAC·DDC·TLC·(5·EP + 5·TTC + 2·LK + 2·HC + 2·EC) / 16`` (v2). With a reference (expert) plan in the scene,
a sub-metric the reference itself fails is not held against the proposal (NAVSIM's human-penalty filter).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np
import shapely
from scipy.interpolate import CubicSpline

from ..scene import MOVING_AGENT_KINDS, Scene, TrajectoryError, box_corners, ego_to_world, validate_poses, wrap_angle
from ..scene.geometry import FRONT_LEFT, FRONT_RIGHT, REAR_LEFT, REAR_RIGHT
from ..scene.types import TrafficLightState
from .comfort import ComfortLimits, is_comfortable, is_extended_comfortable
from .tracker import NUM_STATES, StateIndex, TrackerConfig, track_poses

#: Every sub-metric the scorer reports, in report order.
METRIC_NAMES = ("nc", "dac", "ddc", "tlc", "ep", "ttc", "lk", "c", "hc", "ec")
#: Sub-metrics the expert-failure filter may neutralise (progress and extended comfort are relative measures).
FILTERED_METRICS = ("nc", "dac", "ddc", "tlc", "ttc", "lk", "c", "hc")


@dataclass(frozen=True)
class ScorerConfig:
    """Weights and thresholds (NAVSIM defaults)."""

    progress_weight: float = 5.0
    ttc_weight: float = 5.0
    comfort_weight: float = 2.0
    lane_keeping_weight: float = 2.0
    history_comfort_weight: float = 2.0
    extended_comfort_weight: float = 2.0
    driving_direction_horizon_s: float = 1.0
    driving_direction_compliance_m: float = 2.0
    driving_direction_violation_m: float = 6.0
    ttc_stopped_speed_mps: float = 5e-3
    collision_stopped_speed_mps: float = 5e-2
    ttc_lookahead_s: tuple[float, ...] = (0.0, 0.3, 0.6, 0.9)
    agent_ahead_angle_deg: float = 30.0
    agent_behind_angle_deg: float = 150.0
    progress_distance_threshold_m: float = 5.0
    lane_keeping_deviation_m: float = 0.5
    lane_keeping_window_s: float = 2.0
    expert_failure_filter: bool = True
    comfort: ComfortLimits = field(default_factory=ComfortLimits)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)


@dataclass(frozen=True)
class PreviousPlan:
    """The plan driven one cycle earlier, for extended comfort: its simulated states ``[T + 1, 7]`` (world frame) and
    how long ago it was made."""

    states: np.ndarray
    elapsed_s: float


@dataclass
class ScoreResult:
    """Per-proposal metrics (arrays ``[B]``), the simulated states ``[B, T + 1, 7]``, raw progress in metres, and
    the reference plan's own metrics when the scene has one."""

    metrics: dict[str, np.ndarray]
    states: np.ndarray
    progress_m: np.ndarray
    reference: dict[str, float] | None = None

    def __len__(self) -> int:
        return len(self.metrics["pdms"])

    def row(self, index: int) -> dict[str, float]:
        """All metrics of one proposal as plain floats (keys ``pdms``, ``epdms``, then ``METRIC_NAMES``)."""
        return {key: float(values[index]) for key, values in self.metrics.items()}

    @property
    def best_index(self) -> int:
        return int(np.argmax(self.metrics["pdms"]))


class CollisionType(IntEnum):
    STOPPED_EGO = 0
    STOPPED_TRACK = 1
    ACTIVE_FRONT = 2
    ACTIVE_REAR = 3
    ACTIVE_LATERAL = 4


def score_trajectories(
    scene: Scene,
    poses_ego: np.ndarray,
    dt_s: float = 0.5,
    *,
    previous: PreviousPlan | None = None,
    config: ScorerConfig = ScorerConfig(),
) -> ScoreResult:
    """Score proposals ``[B, N, 3]`` (or one ``[N, 3]``), ego rear-axle frame at plan time, one pose every ``dt_s``.

    Only the first ``scene.horizon_steps * scene.dt_s`` seconds (4 s) are scored; a shorter plan is an error.
    Progress is normalised by the scene's reference plan when it has one, else by the best proposal of the batch (how
    PDM-Closed ranks its own proposals).
    """
    scene.validate()
    poses = np.asarray(poses_ego, dtype=np.float64) if not isinstance(poses_ego, list) else np.asarray(poses_ego)
    if poses.ndim == 2:
        poses = poses[None]
    if poses.ndim != 3 or poses.shape[-1] != 3 or poses.shape[0] == 0 or poses.shape[1] == 0:
        raise TrajectoryError(
            f"proposals must have shape [B, N, 3] or [N, 3] (x, y, heading), got {list(np.shape(poses_ego))}"
        )
    for b in range(len(poses)):
        validate_poses(poses[b], f"proposal {b}")
    num_proposals = len(poses)
    has_reference = scene.reference_poses_ego is not None
    if has_reference:
        reference = _resample(scene.reference_poses_ego, scene.reference_dt_s, dt_s, poses.shape[1])
        poses = np.concatenate([poses, reference[None]], axis=0)

    ego = scene.ego
    states = track_poses(
        ego_to_world(poses, ego.pose),
        dt_s,
        ego.pose,
        ego.speed_mps,
        ego.acceleration_mps2,
        ego.yaw_rate_radps,
        ego.dimensions,
        scene.horizon_steps,
        scene.dt_s,
        config.tracker,
    )
    metrics, progress = _score_states(scene, states, previous, config)
    if has_reference and config.expert_failure_filter:
        for name in FILTERED_METRICS:
            if metrics[name][-1] == 0.0:
                metrics[name][:num_proposals] = 1.0
    gate = metrics["nc"] * metrics["dac"] * metrics["ddc"] * metrics["tlc"]
    gated_progress = progress * gate
    # NAVSIM scores each plan beside the reference: EP = progress / max(progress, reference progress); without a
    # reference, PDM-Closed's rule: relative to the best proposal of the batch.
    normaliser = gated_progress[-1] if has_reference else gated_progress.max()
    denominator = np.maximum(gated_progress, normaliser)
    metrics["ep"] = np.where(
        denominator > config.progress_distance_threshold_m,
        gated_progress / np.maximum(denominator, 1e-9),
        np.where(gate > 0, 1.0, 0.0),
    )
    metrics.update(_aggregate(metrics, config))
    ordered = {key: metrics[key][:num_proposals].copy() for key in ("pdms", "epdms", *METRIC_NAMES)}
    reference_row = {key: float(metrics[key][-1]) for key in ordered} if has_reference else None
    return ScoreResult(ordered, states[:num_proposals], progress[:num_proposals], reference_row)


def _aggregate(m: dict[str, np.ndarray], config: ScorerConfig) -> dict[str, np.ndarray]:
    """PDMS (v1) and EPDMS (v2) from the sub-metrics."""
    v1_weights = (config.ttc_weight, config.progress_weight, config.comfort_weight)
    pdms = (
        m["nc"]
        * m["dac"]
        * (v1_weights[0] * m["ttc"] + v1_weights[1] * m["ep"] + v1_weights[2] * m["c"])
        / sum(v1_weights)
    )
    v2_weights = (
        config.progress_weight,
        config.ttc_weight,
        config.lane_keeping_weight,
        config.history_comfort_weight,
        config.extended_comfort_weight,
    )
    weighted = (
        v2_weights[0] * m["ep"]
        + v2_weights[1] * m["ttc"]
        + v2_weights[2] * m["lk"]
        + v2_weights[3] * m["hc"]
        + v2_weights[4] * m["ec"]
    ) / sum(v2_weights)
    epdms = m["nc"] * m["dac"] * m["ddc"] * m["tlc"] * weighted
    return {"pdms": pdms, "epdms": epdms}


def score_trajectory(scene: Scene, poses_ego: np.ndarray, dt_s: float = 0.5, **kwargs: Any) -> dict[str, float]:
    """Score one plan ``[N, 3]``; return its metrics as a dict (keys ``pdms``, ``epdms`` and ``METRIC_NAMES``)."""
    return score_trajectories(scene, np.asarray(poses_ego)[None], dt_s, **kwargs).row(0)


# --- internals ---------------------------------------------------------------------------------------------------


def _resample(poses: np.ndarray, from_dt_s: float, to_dt_s: float, num_poses: int) -> np.ndarray:
    """Resample ego-frame poses ``[K, 3]`` at ``from_dt_s`` to ``num_poses`` poses at ``to_dt_s`` (t = 0 is the
    origin)."""
    if abs(from_dt_s - to_dt_s) < 1e-9 and len(poses) >= num_poses:
        return poses[:num_poses]
    knots_t = np.arange(len(poses) + 1) * from_dt_s
    knots = np.vstack([np.zeros(3), poses])
    knots[:, 2] = np.unwrap(knots[:, 2])
    t = np.minimum(np.arange(1, num_poses + 1) * to_dt_s, knots_t[-1])
    return CubicSpline(knots_t, knots, axis=0)(t)


def _score_states(
    scene: Scene, states: np.ndarray, previous: PreviousPlan | None, config: ScorerConfig
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    batch, steps, _ = states.shape
    dims = scene.ego.dimensions
    corners = box_corners(states[..., :3], dims.length_m, dims.width_m, dims.rear_axle_to_center_m)  # [B, T, 4, 2]
    centers = corners.mean(axis=2)  # [B, T, 2]
    ego_polygons = shapely.polygons(corners)  # [B, T]
    areas = _ego_areas(scene, corners, centers, states)

    metrics: dict[str, np.ndarray] = {}
    agents = _AgentTracks(scene, steps)
    metrics["nc"] = _no_at_fault_collision(states, corners, centers, ego_polygons, areas, agents, config)
    metrics["dac"] = np.where(areas.non_drivable.any(axis=1), 0.0, 1.0)
    metrics["ddc"] = _driving_direction(centers, areas.oncoming, scene.dt_s, config)
    metrics["tlc"] = _traffic_light_compliance(scene, ego_polygons, steps)
    metrics["ttc"] = _time_to_collision(states, corners, centers, areas, agents, scene.dt_s, config)
    metrics["lk"] = _lane_keeping(scene, centers, areas.intersection, config)
    metrics["c"] = is_comfortable(states, scene.dt_s, config.comfort).astype(np.float64)
    metrics["hc"] = _history_comfort(scene, states, config)
    metrics["ec"] = _extended_comfort(states, previous, scene.dt_s, config)
    line = scene.route_centerline
    start = shapely.line_locate_point(line, shapely.points(centers[:, 0]))
    end = shapely.line_locate_point(line, shapely.points(centers[:, -1]))
    progress = np.clip(end - start, 0.0, None)
    return metrics, progress


@dataclass
class _Areas:
    non_drivable: np.ndarray  # [B, T] a corner lies outside the drivable area
    multiple_lanes: np.ndarray  # [B, T] corners in several lanes, no lane holds all four
    oncoming: np.ndarray  # [B, T] centre in no route lane
    intersection: np.ndarray  # [B, T] rear axle inside an intersection lane


def _ego_areas(scene: Scene, corners: np.ndarray, centers: np.ndarray, states: np.ndarray) -> _Areas:
    batch, steps = centers.shape[:2]
    drivable = scene.map.drivable_area
    shapely.prepare(drivable)
    corner_inside = shapely.intersects_xy(drivable, corners[..., 0], corners[..., 1])  # [B, T, 4]
    lanes = scene.map.lanes
    route = set(scene.route_lane_ids)
    corners_in_lane = np.zeros((len(lanes), batch, steps, 4), dtype=bool)
    center_in_route = np.zeros((batch, steps), dtype=bool)
    in_intersection = np.zeros((batch, steps), dtype=bool)
    for i, lane in enumerate(lanes):
        polygon = lane.polygon
        shapely.prepare(polygon)
        corners_in_lane[i] = shapely.intersects_xy(polygon, corners[..., 0], corners[..., 1])
        if lane.id in route:
            center_in_route |= shapely.intersects_xy(polygon, centers[..., 0], centers[..., 1])
        if lane.is_intersection:
            in_intersection |= shapely.intersects_xy(polygon, states[..., 0], states[..., 1])
    lanes_touched = corners_in_lane.any(axis=-1).sum(axis=0)  # [B, T]
    lane_holds_all = corners_in_lane.all(axis=-1).any(axis=0)
    return _Areas(
        non_drivable=~corner_inside.all(axis=-1),
        multiple_lanes=(lanes_touched > 1) & ~lane_holds_all,
        oncoming=~center_in_route,
        intersection=in_intersection,
    )


class _AgentTracks:
    """Agent boxes over the horizon as arrays and shapely polygons."""

    def __init__(self, scene: Scene, steps: int) -> None:
        agents = scene.agents
        self.count = len(agents)
        self.ids = [a.id for a in agents]
        self.moving_kind = np.array([a.kind in MOVING_AGENT_KINDS for a in agents], dtype=bool)
        if not agents:
            return
        self.poses = np.stack([a.poses_over(steps) for a in agents])  # [A, T, 3]
        self.speeds = np.stack([a.speeds_over(steps) for a in agents])  # [A, T]
        lengths = np.array([a.length_m for a in agents])
        widths = np.array([a.width_m for a in agents])
        self.corners = box_corners(self.poses, lengths[:, None], widths[:, None])
        self.polygons = shapely.polygons(self.corners)  # [A, T]
        self.radius = 0.5 * np.hypot(lengths, widths)  # [A]


def _ego_radius(corners: np.ndarray) -> float:
    """Half the ego box diagonal: the bounding circle used to pre-filter collision candidates."""
    return 0.5 * float(np.hypot(*(corners[0, 0, FRONT_LEFT] - corners[0, 0, REAR_RIGHT])))


def _candidate_pairs(
    ego_centers: np.ndarray, ego_radius: float, agents: _AgentTracks, time_index: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices (proposal, time, agent) whose bounding circles overlap; ``time_index [T]`` maps ego to agent time."""
    agent_centers = agents.poses[:, time_index, :2]  # [A, T', 2]
    distance = np.linalg.norm(ego_centers[:, :, None, :] - agent_centers.transpose(1, 0, 2)[None], axis=-1)
    b, t, a = np.nonzero(distance <= ego_radius + agents.radius[None, None, :] + 1e-6)
    return b, t, a


def _no_at_fault_collision(
    states: np.ndarray,
    corners: np.ndarray,
    centers: np.ndarray,
    ego_polygons: np.ndarray,
    areas: _Areas,
    agents: _AgentTracks,
    config: ScorerConfig,
) -> np.ndarray:
    batch, steps = centers.shape[:2]
    scores = np.ones(batch)
    if agents.count == 0:
        return scores
    b, t, a = _candidate_pairs(centers, _ego_radius(corners), agents, np.arange(steps))
    hit = shapely.intersects(ego_polygons[b, t], agents.polygons[a, t])
    b, t, a = b[hit], t[hit], a[hit]
    order = np.lexsort((a, t, b))
    not_at_fault: dict[int, set[int]] = {}
    for i in order:
        pb, pt, pa = int(b[i]), int(t[i]), int(a[i])
        ignored = not_at_fault.setdefault(pb, set())
        if pa in ignored:
            continue
        kind = _collision_type(states[pb, pt], corners[pb, pt], agents, pa, pt, config)
        lateral_at_fault = kind is CollisionType.ACTIVE_LATERAL and (
            areas.multiple_lanes[pb, pt] or areas.non_drivable[pb, pt]
        )
        if kind in (CollisionType.ACTIVE_FRONT, CollisionType.STOPPED_TRACK) or lateral_at_fault:
            scores[pb] = min(scores[pb], 0.0 if agents.moving_kind[pa] else 0.5)
        else:
            ignored.add(pa)
    return scores


def _collision_type(
    state: np.ndarray, corners: np.ndarray, agents: _AgentTracks, agent: int, step: int, config: ScorerConfig
) -> CollisionType:
    """nuPlan's collision classification: who was moving, and which side of the ego touched the agent."""
    if state[StateIndex.SPEED] <= config.collision_stopped_speed_mps:
        return CollisionType.STOPPED_EGO
    if agents.speeds[agent, step] <= config.collision_stopped_speed_mps:
        return CollisionType.STOPPED_TRACK
    polygon = agents.polygons[agent, step]
    front = shapely.LineString([corners[FRONT_LEFT], corners[FRONT_RIGHT]])
    if shapely.intersects(front, polygon):
        return CollisionType.ACTIVE_FRONT
    rear = shapely.LineString([corners[REAR_LEFT], corners[REAR_RIGHT]])
    if shapely.intersects(rear, polygon):
        return CollisionType.ACTIVE_REAR
    return CollisionType.ACTIVE_LATERAL


def _time_to_collision(
    states: np.ndarray,
    corners: np.ndarray,
    centers: np.ndarray,
    areas: _Areas,
    agents: _AgentTracks,
    dt_s: float,
    config: ScorerConfig,
) -> np.ndarray:
    """TTC: project the ego box forward at constant velocity (0 / 0.3 / 0.6 / 0.9 s) and look for an at-fault hit."""
    batch, steps = centers.shape[:2]
    scores = np.ones(batch)
    if agents.count == 0:
        return scores
    speed = states[..., StateIndex.SPEED]
    heading = states[..., StateIndex.HEADING]
    velocity = np.stack([np.cos(heading), np.sin(heading)], -1) * speed[..., None]  # [B, T, 2]
    ego_radius = _ego_radius(corners)
    hits: list[tuple[int, int, int, int]] = []  # (proposal, time, lookahead order, agent)
    for order, lookahead_s in enumerate(config.ttc_lookahead_s):
        shift = int(round(lookahead_s / dt_s))
        valid_steps = steps - shift
        if valid_steps <= 0:
            continue
        offset = velocity[:, :valid_steps] * lookahead_s
        projected_corners = corners[:, :valid_steps] + offset[:, :, None, :]
        projected_centers = centers[:, :valid_steps] + offset
        b, t, a = _candidate_pairs(projected_centers, ego_radius, agents, np.arange(valid_steps) + shift)
        if len(b) == 0:
            continue
        polygons = shapely.polygons(projected_corners[b, t])
        hit = shapely.intersects(polygons, agents.polygons[a, t + shift])
        hits.extend(zip(b[hit].tolist(), t[hit].tolist(), [order] * int(hit.sum()), a[hit].tolist(), strict=True))
    ahead_tol = np.deg2rad(config.agent_ahead_angle_deg)
    behind_tol = np.deg2rad(config.agent_behind_angle_deg)
    ignored: dict[int, set[int]] = {}
    for pb, pt, order, pa in sorted(hits):
        seen = ignored.setdefault(pb, set())
        if pa in seen or speed[pb, pt] < config.ttc_stopped_speed_mps:
            continue
        shift = int(round(config.ttc_lookahead_s[order] / dt_s))
        agent_xy = agents.poses[pa, pt + shift, :2]
        relative = wrap_angle(
            np.arctan2(agent_xy[1] - states[pb, pt, 1], agent_xy[0] - states[pb, pt, 0]) - heading[pb, pt]
        )
        ahead = abs(relative) < ahead_tol
        behind = abs(relative) > behind_tol
        exposed = areas.multiple_lanes[pb, pt] or areas.non_drivable[pb, pt] or areas.intersection[pb, pt]
        if ahead or (exposed and not behind):
            scores[pb] = 0.0
        else:
            seen.add(pa)
    return scores


def _driving_direction(centers: np.ndarray, oncoming: np.ndarray, dt_s: float, config: ScorerConfig) -> np.ndarray:
    """DDC: the most metres driven against traffic within any ``driving_direction_horizon_s`` window."""
    step_length = np.zeros(oncoming.shape)
    step_length[:, 1:] = np.linalg.norm(np.diff(centers, axis=1), axis=-1)
    step_length[~oncoming] = 0.0
    window = int(round(config.driving_direction_horizon_s / dt_s))
    cumulative = np.concatenate([np.zeros((len(step_length), 1)), np.cumsum(step_length, axis=1)], axis=1)
    ends = np.arange(1, step_length.shape[1] + 1)
    starts = np.maximum(ends - window - 1, 0)
    worst = (cumulative[:, ends] - cumulative[:, starts]).max(axis=1)
    return np.where(
        worst < config.driving_direction_compliance_m,
        1.0,
        np.where(worst < config.driving_direction_violation_m, 0.5, 0.0),
    )


def _traffic_light_compliance(scene: Scene, ego_polygons: np.ndarray, steps: int) -> np.ndarray:
    scores = np.ones(ego_polygons.shape[0])
    for light in scene.map.traffic_lights:
        red = np.array([state is TrafficLightState.RED for state in light.states_over(steps)])
        if not red.any():
            continue
        lane_polygon = scene.map.lane(light.lane_id).polygon
        shapely.prepare(lane_polygon)
        entered = shapely.intersects(lane_polygon, ego_polygons[:, red])
        scores[entered.any(axis=1)] = 0.0
    return scores


def _lane_keeping(scene: Scene, centers: np.ndarray, in_intersection: np.ndarray, config: ScorerConfig) -> np.ndarray:
    """LK: 0 when the centre stays more than the limit off the route centerline for the whole window.

    Steps inside an intersection neither count nor reset the run (as in NAVSIM).
    """
    line = scene.route_centerline
    deviation = shapely.distance(line, shapely.points(centers))  # [B, T]
    required = int(np.ceil(config.lane_keeping_window_s / scene.dt_s))
    scores = np.ones(len(centers))
    for b in range(len(centers)):
        run = 0
        for t in range(centers.shape[1]):
            if in_intersection[b, t]:
                continue
            run = run + 1 if deviation[b, t] > config.lane_keeping_deviation_m else 0
            if run >= required:
                scores[b] = 0.0
                break
    return scores


def _history_states(scene: Scene) -> np.ndarray:
    """The ego history ``[H', 7]`` at the scene's dt (spline through the history poses), excluding t = 0."""
    ego = scene.ego
    history = np.asarray(ego.history_poses, dtype=np.float64)
    if len(history) < 2:
        return np.zeros((0, NUM_STATES))
    knots_t = (np.arange(len(history)) - (len(history) - 1)) * ego.history_dt_s
    knots = history.copy()
    knots[:, 2] = np.unwrap(knots[:, 2])
    spline = CubicSpline(knots_t, knots, axis=0)
    t = np.arange(knots_t[0], -1e-9, scene.dt_s)
    t = t[t < -1e-9]
    pose = spline(t)
    velocity = spline(t, 1)
    acceleration = spline(t, 2)
    heading = pose[:, 2]
    states = np.zeros((len(t), NUM_STATES))
    states[:, :3] = pose
    states[:, StateIndex.SPEED] = velocity[:, 0] * np.cos(heading) + velocity[:, 1] * np.sin(heading)
    states[:, StateIndex.ACCELERATION] = acceleration[:, 0] * np.cos(heading) + acceleration[:, 1] * np.sin(heading)
    states[:, StateIndex.YAW_RATE] = velocity[:, 2]
    return states


def _history_comfort(scene: Scene, states: np.ndarray, config: ScorerConfig) -> np.ndarray:
    history = _history_states(scene)
    if len(history) == 0:
        return is_comfortable(states, scene.dt_s, config.comfort).astype(np.float64)
    combined = np.concatenate([np.broadcast_to(history, (len(states), *history.shape)), states], axis=1)
    combined[..., StateIndex.HEADING] = np.unwrap(combined[..., StateIndex.HEADING], axis=1)
    return is_comfortable(combined, scene.dt_s, config.comfort).astype(np.float64)


def _extended_comfort(
    states: np.ndarray, previous: PreviousPlan | None, dt_s: float, config: ScorerConfig
) -> np.ndarray:
    if previous is None:
        return np.ones(len(states))
    prev = np.asarray(previous.states, dtype=np.float64)
    if prev.ndim != 2 or prev.shape[1] != NUM_STATES:
        raise TrajectoryError(f"previous plan states must have shape [T, {NUM_STATES}], got {list(prev.shape)}")
    shift = int(round(previous.elapsed_s / dt_s))
    overlap = min(len(prev) - shift, states.shape[1])
    if shift < 0 or overlap < 3:
        return np.ones(len(states))
    prev_aligned = np.broadcast_to(prev[shift : shift + overlap], (len(states), overlap, NUM_STATES))
    return is_extended_comfortable(prev_aligned, states[:, :overlap], dt_s, config.comfort).astype(np.float64)
