"""The PDM scorer with NAVSIM's semantics, vectorised over a batch of proposals.

A plan is driven by NAVSIM's simulator (``tracker.py``: linear interpolation, LQR, kinematic bicycle, 10 Hz, 4 s) and
the simulated motion is scored against the scene's non-reactive agent futures and map. Two scores come out of one
simulation, each with the semantics of the NAVSIM release that defines it:

* **PDMS (NAVSIM v1.1)** ``= NC·DAC·(5·TTC + 5·EP + 2·C) / 12``. EP: progress along the route gated by NC·DAC, divided
  by the larger of its own and the reference's gated progress (1 when both are under 5 m, 0 if the plan fails a
  gate); TTC checks every step of the 4 s (agents extrapolated to 4.9 s); C: comfort of the 41 simulated states with
  v1.1's filter windows. No human filter; red lights and driving direction do not count.
* **EPDMS (NAVSIM v2)** ``= NC·DAC·DDC·TLC·(5·EP + 5·TTC + 2·LK + 2·HC + 2·EC) / 16``. EP: the plan's raw progress,
  clipped to 1, over the larger gated (NC·DAC·DDC·TLC) progress of plan and reference; TTC up to t = 3.1 s; DDC outside
  intersections; TLC on on-route red lights; HC: comfort of the logged history followed by the plan with v2's windows;
  EC against the plan of the previous frame. Where the scene carries the logged human trajectory and is not
  synthetic, a multiplier, TTC or LK that the human also fails counts as passed (v2's human-penalty filter).

Sub-metric keys: ``nc dac ep ttc c`` are PDMS's; ``ddc tlc lk hc ec`` and ``nc_v2 dac_v2 ep_v2 ttc_v2`` are EPDMS's
(the ``_v2`` ones differ from PDMS's through the human filter, the EP rule or the TTC horizon).

Written from the semantics of NAVSIM's ``PDMScorer`` (v1.1 and v2 at 0a380a9) and ``pdm_score``; never from their code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import numpy as np
import shapely

from ..scene import (
    MOVING_AGENT_KINDS,
    PACIFICA,
    Scene,
    TrajectoryError,
    VehicleDimensions,
    box_corners,
    ego_to_world,
    validate_poses,
)
from ..scene.geometry import FRONT_LEFT, FRONT_RIGHT
from ..scene.types import TrafficLightState
from .comfort import ComfortLimits, ComfortVersion, is_comfortable, is_extended_comfortable
from .tracker import (
    NUM_STATES,
    StateIndex,
    TrackerConfig,
    initial_state,
    interpolate_plan,
    track_poses,
    wrap_angle_symmetric,
)

#: PDMS (v1.1) sub-metrics, then EPDMS (v2) sub-metrics, in report order.
PDMS_METRICS = ("nc", "dac", "ep", "ttc", "c")
EPDMS_METRICS = ("nc_v2", "dac_v2", "ddc", "tlc", "ep_v2", "ttc_v2", "lk", "hc", "ec")
METRIC_NAMES = PDMS_METRICS + EPDMS_METRICS
#: v2 sub-metrics the human-penalty filter may pass (EP and HC never fail for the human; EC is pairwise).
HUMAN_FILTERED = ("nc_v2", "dac_v2", "ddc", "tlc", "ttc_v2", "lk")


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
    #: v2 checks TTC only while the whole lookahead fits in the horizon (t <= 3.1 s); v1.1 checks every step.
    ttc_v2_last_step: int = 31
    agent_ahead_angle_deg: float = 30.0
    agent_behind_angle_deg: float = 150.0
    progress_distance_threshold_m: float = 5.0
    lane_keeping_deviation_m: float = 0.5
    lane_keeping_window_s: float = 2.0
    #: NAVSIM v2's human-penalty filter (needs ``scene.human_poses_ego``; never on synthetic scenes).
    human_penalty_filter: bool = True
    #: History comfort uses this much logged history (NAVSIM: 1.5 s, sampled at 10 Hz, last sample dropped).
    history_comfort_span_s: float = 1.5
    #: The ego box and wheelbase the plan is simulated and scored with (NAVSIM's Pacifica), whatever the scene's.
    ego: VehicleDimensions = PACIFICA
    comfort: ComfortLimits = field(default_factory=ComfortLimits)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)


@dataclass(frozen=True)
class PreviousPlan:
    """The plan of the previous frame, for extended comfort: its simulated states ``[T + 1, NUM_STATES]`` (world
    frame) and how long before this frame it was made (NAVSIM: 0.5 s)."""

    states: np.ndarray
    elapsed_s: float


@dataclass
class ScoreResult:
    """Per-proposal metrics (arrays ``[B]``), the simulated states ``[B, T + 1, NUM_STATES]``, raw progress in
    metres, and the reference plan's own metrics when the scene has one."""

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
    Each proposal is scored as NAVSIM scores an agent's plan: beside the scene's reference plan (progress is relative
    to it). Without a reference, progress is relative to the best proposal of the batch (how PDM-Closed ranks its
    own proposals). Without ``previous``, EC is 1 (NAVSIM pairs each frame with the one 0.5 s earlier: the open-loop
    evaluation does that).
    """
    scene.validate()
    poses = np.asarray(poses_ego, dtype=np.float64)
    if poses.ndim == 2:
        poses = poses[None]
    if poses.ndim != 3 or poses.shape[-1] != 3 or poses.shape[0] == 0 or poses.shape[1] == 0:
        raise TrajectoryError(
            f"proposals must have shape [B, N, 3] or [N, 3] (x, y, heading), got {list(np.shape(poses_ego))}"
        )
    for b in range(len(poses)):
        validate_poses(poses[b], f"proposal {b}")
    num_proposals = len(poses)
    rows = [ego_to_world(poses, scene.ego.pose)]
    plan_dts = [dt_s]
    reference_row = human_row = None
    if scene.reference_poses_ego is not None:
        reference_row = num_proposals
        rows.append(ego_to_world(scene.reference_poses_ego, scene.ego.pose)[None])
        plan_dts.append(scene.reference_dt_s)
    if scene.human_poses_ego is not None and config.human_penalty_filter and not scene.synthetic:
        human_row = num_proposals + len(rows) - 1
        rows.append(ego_to_world(scene.human_poses_ego, scene.ego.pose)[None])
        plan_dts.append(scene.reference_dt_s)
    states = _simulate_rows(scene, rows, plan_dts, config)

    metrics, progress = _score_states(scene, states, previous, config)
    metrics["ep"], metrics["ep_v2"] = _ego_progress(metrics, progress, num_proposals, reference_row, config)
    for name in ("nc", "dac"):
        metrics[f"{name}_v2"] = metrics[name].copy()
    if human_row is not None:
        for name in HUMAN_FILTERED:
            if metrics[name][human_row] == 0.0:
                metrics[name][:num_proposals] = 1.0
    metrics.update(_aggregate(metrics, config))
    ordered = {key: metrics[key][:num_proposals].copy() for key in ("pdms", "epdms", *METRIC_NAMES)}
    reference = None
    if reference_row is not None:
        reference = {key: float(metrics[key][reference_row]) for key in ordered}
    return ScoreResult(ordered, states[:num_proposals], progress[:num_proposals], reference)


def score_trajectory(scene: Scene, poses_ego: np.ndarray, dt_s: float = 0.5, **kwargs: Any) -> dict[str, float]:
    """Score one plan ``[N, 3]``; return its metrics as a dict (keys ``pdms``, ``epdms`` and ``METRIC_NAMES``)."""
    return score_trajectories(scene, np.asarray(poses_ego)[None], dt_s, **kwargs).row(0)


def _simulate_rows(scene: Scene, rows: list[np.ndarray], plan_dts: list[float], config: ScorerConfig) -> np.ndarray:
    """Drive every plan (proposals, then reference and human) from the logged ego state; ``[B', T + 1, NUM_STATES]``."""
    ego = scene.ego
    start = initial_state(ego.pose, ego.speed_mps, ego.acceleration_mps2, ego.yaw_rate_radps)
    if all(abs(dt - plan_dts[0]) < 1e-12 for dt in plan_dts) and len({r.shape[1] for r in rows}) == 1:
        return track_poses(
            np.concatenate(rows), plan_dts[0], start, config.ego, scene.horizon_steps, scene.dt_s, config.tracker
        )
    return np.concatenate(
        [
            track_poses(r, dt, start, config.ego, scene.horizon_steps, scene.dt_s, config.tracker)
            for r, dt in zip(rows, plan_dts, strict=True)
        ]
    )


def _ego_progress(
    m: dict[str, np.ndarray], progress: np.ndarray, num_proposals: int, reference_row: int | None, config: ScorerConfig
) -> tuple[np.ndarray, np.ndarray]:
    """EP of v1.1 (gated numerator, gate NC·DAC) and of v2 (raw numerator clipped to 1, gate NC·DAC·DDC·TLC).

    Each plan is normalised by the larger of its own and the reference's gated progress (NAVSIM scores the pair);
    without a reference, by the batch's largest."""
    threshold = config.progress_distance_threshold_m
    gate_v1 = m["nc"] * m["dac"]
    gate_v2 = gate_v1 * m["ddc"] * m["tlc"]
    results = []
    for gate, clip_raw in ((gate_v1, False), (gate_v2, True)):
        gated = progress * gate
        if reference_row is not None:
            normaliser = np.maximum(gated, gated[reference_row])
        else:
            normaliser = np.full_like(gated, gated[:num_proposals].max())
        safe = np.maximum(normaliser, 1e-12)
        if clip_raw:
            ep = np.where(normaliser > threshold, np.clip(progress / safe, 0.0, 1.0), 1.0)
        else:
            ep = np.where(normaliser > threshold, gated / safe, np.where(gate == 0.0, 0.0, 1.0))
        results.append(ep)
    return results[0], results[1]


def _aggregate(m: dict[str, np.ndarray], config: ScorerConfig) -> dict[str, np.ndarray]:
    """PDMS (v1.1) and EPDMS (v2) from the sub-metrics."""
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
        v2_weights[0] * m["ep_v2"]
        + v2_weights[1] * m["ttc_v2"]
        + v2_weights[2] * m["lk"]
        + v2_weights[3] * m["hc"]
        + v2_weights[4] * m["ec"]
    ) / sum(v2_weights)
    epdms = m["nc_v2"] * m["dac_v2"] * m["ddc"] * m["tlc"] * weighted
    return {"pdms": pdms, "epdms": epdms}


# --- internals ---------------------------------------------------------------------------------------------------


def _score_states(
    scene: Scene, states: np.ndarray, previous: PreviousPlan | None, config: ScorerConfig
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    batch, steps, _ = states.shape
    dims = config.ego
    corners = box_corners(states[..., :3], dims.length_m, dims.width_m, dims.rear_axle_to_center_m)  # [B, T, 4, 2]
    centers = corners.mean(axis=2)  # [B, T, 2]
    areas = _ego_areas(scene, corners, centers, states)

    metrics: dict[str, np.ndarray] = {}
    lookahead_steps = max(int(round(s / scene.dt_s)) for s in config.ttc_lookahead_s)
    agents = _AgentTracks(scene, steps + lookahead_steps)
    metrics["nc"] = _no_at_fault_collision(states, corners, centers, areas, agents, config)
    metrics["dac"] = np.where(areas.non_drivable.any(axis=1), 0.0, 1.0)
    metrics["ddc"] = _driving_direction(centers, areas.oncoming & ~areas.center_in_intersection, scene.dt_s, config)
    metrics["tlc"] = _traffic_light_compliance(scene, corners, steps)
    first_ttc_step = _first_time_to_collision_step(states, corners, centers, areas, agents, scene.dt_s, config)
    metrics["ttc"] = np.where(first_ttc_step < steps, 0.0, 1.0)
    metrics["ttc_v2"] = np.where(first_ttc_step <= config.ttc_v2_last_step, 0.0, 1.0)
    metrics["lk"] = _lane_keeping(scene, centers, areas.center_in_intersection, config)
    metrics["c"] = is_comfortable(states, scene.dt_s, config.comfort, ComfortVersion.V1).astype(np.float64)
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
    rear_axle_in_intersection: np.ndarray  # [B, T] (TTC's exposure test)
    center_in_intersection: np.ndarray  # [B, T] (driving direction and lane keeping)


def _ego_areas(scene: Scene, corners: np.ndarray, centers: np.ndarray, states: np.ndarray) -> _Areas:
    """Where the ego box is, step by step. Membership is NAVSIM's: a point on a polygon's boundary is outside."""
    batch, steps = centers.shape[:2]
    drivable = scene.map.drivable_area
    shapely.prepare(drivable)
    corner_inside = shapely.contains_xy(drivable, corners[..., 0], corners[..., 1])  # [B, T, 4]
    lanes = scene.map.lanes
    route = set(scene.route_lane_ids)
    corners_in_lane = np.zeros((len(lanes), batch, steps, 4), dtype=bool)
    center_in_route = np.zeros((batch, steps), dtype=bool)
    rear_in_intersection = np.zeros((batch, steps), dtype=bool)
    center_in_intersection = np.zeros((batch, steps), dtype=bool)
    for i, lane in enumerate(lanes):
        polygon = lane.polygon
        shapely.prepare(polygon)
        corners_in_lane[i] = shapely.contains_xy(polygon, corners[..., 0], corners[..., 1])
        if lane.id in route:
            center_in_route |= shapely.contains_xy(polygon, centers[..., 0], centers[..., 1])
        if lane.is_intersection:
            rear_in_intersection |= shapely.contains_xy(polygon, states[..., 0], states[..., 1])
            center_in_intersection |= shapely.contains_xy(polygon, centers[..., 0], centers[..., 1])
    lanes_touched = corners_in_lane.any(axis=-1).sum(axis=0)  # [B, T]
    lane_holds_all = corners_in_lane.all(axis=-1).any(axis=0)
    return _Areas(
        non_drivable=~corner_inside.all(axis=-1),
        multiple_lanes=(lanes_touched > 1) & ~lane_holds_all,
        oncoming=~center_in_route,
        rear_axle_in_intersection=rear_in_intersection,
        center_in_intersection=center_in_intersection,
    )


class _AgentTracks:
    """Agent boxes over ``steps`` samples. An agent whose future ends before that
    keeps its last velocity (v1.1's TTC looks 0.9 s past the 4 s horizon)."""

    def __init__(self, scene: Scene, steps: int) -> None:
        agents = scene.agents
        self.count = len(agents)
        self.moving_kind = np.array([a.kind in MOVING_AGENT_KINDS for a in agents], dtype=bool)
        if not agents:
            return
        self.poses = np.stack(
            [_extended_poses(a.poses_over(steps), a.velocities_mps, steps, scene.dt_s) for a in agents]
        )
        # NAVSIM judges "stopped" by an agent's speed when it was first seen (static objects are always stopped).
        self.first_speed = np.array([float(np.hypot(*a.velocities_mps[0])) for a in agents])
        lengths = np.array([a.length_m for a in agents])
        widths = np.array([a.width_m for a in agents])
        self.corners = box_corners(self.poses, lengths[:, None], widths[:, None])  # [A, T, 4, 2]
        self.radius = 0.5 * np.hypot(lengths, widths)  # [A]


def _extended_poses(poses: np.ndarray, velocities: np.ndarray, steps: int, dt_s: float) -> np.ndarray:
    if len(poses) >= steps:
        return poses[:steps]
    extra = np.arange(1, steps - len(poses) + 1) * dt_s
    tail = np.repeat(poses[-1:], len(extra), axis=0)
    tail[:, :2] += extra[:, None] * velocities[min(len(poses), len(velocities)) - 1]
    return np.concatenate([poses, tail])


def _ego_radius(config: ScorerConfig) -> float:
    """Half the ego box diagonal: the bounding circle used to pre-filter collision candidates."""
    return 0.5 * float(np.hypot(config.ego.length_m, config.ego.width_m))


def _candidate_pairs(
    ego_centers: np.ndarray, ego_radius: float, agents: _AgentTracks, time_index: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices (proposal, time, agent) whose bounding circles overlap; ``time_index [T]`` maps ego to agent time."""
    agent_centers = agents.poses[:, time_index, :2].transpose(1, 0, 2)[None]  # [1, T', A, 2]
    dx = ego_centers[:, :, None, 0] - agent_centers[..., 0]
    dy = ego_centers[:, :, None, 1] - agent_centers[..., 1]
    reach = ego_radius + agents.radius[None, None, :] + 1e-6
    b, t, a = np.nonzero(dx * dx + dy * dy <= reach * reach)
    return b, t, a


def _boxes_intersect(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Whether rectangles ``[N, 4, 2]`` (corners front-left, rear-left, rear-right, front-right) overlap or touch,
    pairwise ``[N]``: no edge direction of either box separates their projections (the separating-axis test, which
    answers as shapely's ``intersects`` does for two boxes)."""
    offset = 0.5 * (second[:, 0] + second[:, 2] - first[:, 0] - first[:, 2])  # centre to centre
    half_axes = (
        0.5 * (first[:, 0] - first[:, 1]),
        0.5 * (first[:, 0] - first[:, 3]),
        0.5 * (second[:, 0] - second[:, 1]),
        0.5 * (second[:, 0] - second[:, 3]),
    )
    separated = np.zeros(len(first), dtype=bool)
    for axis in half_axes:

        def extent(v: np.ndarray, axis: np.ndarray = axis) -> np.ndarray:
            return np.abs(v[:, 0] * axis[:, 0] + v[:, 1] * axis[:, 1])

        separated |= extent(offset) > sum(extent(h) for h in half_axes)
    return ~separated


def _relative_angle(ego_state: np.ndarray, agent_xy: np.ndarray) -> float:
    """Angle between the ego's heading and the direction from its rear axle to the agent's centre, in [0, π]."""
    direction = np.arctan2(agent_xy[1] - ego_state[StateIndex.Y], agent_xy[0] - ego_state[StateIndex.X])
    return abs(float(wrap_angle_symmetric(direction - ego_state[StateIndex.HEADING])))


def _no_at_fault_collision(
    states: np.ndarray,
    corners: np.ndarray,
    centers: np.ndarray,
    areas: _Areas,
    agents: _AgentTracks,
    config: ScorerConfig,
) -> np.ndarray:
    batch, steps = centers.shape[:2]
    scores = np.ones(batch)
    if agents.count == 0:
        return scores
    b, t, a = _candidate_pairs(centers, _ego_radius(config), agents, np.arange(steps))
    hit = _boxes_intersect(corners[b, t], agents.corners[a, t])
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
    """NAVSIM's collision classification, in its order: ego stopped, agent stopped (when first seen), agent behind
    (more than 150° off the ego's heading), front bumper touching, otherwise lateral."""
    speed = np.hypot(state[StateIndex.SPEED], state[StateIndex.LATERAL_SPEED])
    if speed <= config.collision_stopped_speed_mps:
        return CollisionType.STOPPED_EGO
    if not agents.moving_kind[agent] or agents.first_speed[agent] <= config.collision_stopped_speed_mps:
        return CollisionType.STOPPED_TRACK
    if _relative_angle(state, agents.poses[agent, step, :2]) > np.deg2rad(config.agent_behind_angle_deg):
        return CollisionType.ACTIVE_REAR
    front = shapely.LineString([corners[FRONT_LEFT], corners[FRONT_RIGHT]])
    if shapely.intersects(front, shapely.Polygon(agents.corners[agent, step])):
        return CollisionType.ACTIVE_FRONT
    return CollisionType.ACTIVE_LATERAL


def _first_time_to_collision_step(
    states: np.ndarray,
    corners: np.ndarray,
    centers: np.ndarray,
    areas: _Areas,
    agents: _AgentTracks,
    dt_s: float,
    config: ScorerConfig,
) -> np.ndarray:
    """The first step ``[B]`` at which the ego box, moved ahead at its current velocity by 0 / 0.3 / 0.6 / 0.9 s,
    meets an agent it would be to blame for (``steps`` when it never does). NAVSIM projects along the heading with
    the speed's magnitude, also when the car reverses."""
    batch, steps = centers.shape[:2]
    first = np.full(batch, steps)
    if agents.count == 0:
        return first
    speed = np.hypot(states[..., StateIndex.SPEED], states[..., StateIndex.LATERAL_SPEED])
    heading = states[..., StateIndex.HEADING]
    velocity = np.stack([np.cos(heading), np.sin(heading)], -1) * speed[..., None]  # [B, T, 2]
    ego_radius = _ego_radius(config)
    hits: list[tuple[int, int, int, int]] = []  # (proposal, time, lookahead order, agent)
    for order, lookahead_s in enumerate(config.ttc_lookahead_s):
        shift = int(round(lookahead_s / dt_s))
        offset = velocity * lookahead_s
        projected_corners = corners + offset[:, :, None, :]
        projected_centers = centers + offset
        b, t, a = _candidate_pairs(projected_centers, ego_radius, agents, np.arange(steps) + shift)
        if len(b) == 0:
            continue
        hit = _boxes_intersect(projected_corners[b, t], agents.corners[a, t + shift])
        hits.extend(zip(b[hit].tolist(), t[hit].tolist(), [order] * int(hit.sum()), a[hit].tolist(), strict=True))
    ahead_tol = np.deg2rad(config.agent_ahead_angle_deg)
    behind_tol = np.deg2rad(config.agent_behind_angle_deg)
    ignored: dict[int, set[int]] = {}
    for pb, pt, order, pa in sorted(hits):
        seen = ignored.setdefault(pb, set())
        if pt >= first[pb] or pa in seen or speed[pb, pt] < config.ttc_stopped_speed_mps:
            continue
        shift = int(round(config.ttc_lookahead_s[order] / dt_s))
        angle = _relative_angle(states[pb, pt], agents.poses[pa, pt + shift, :2])
        exposed = areas.multiple_lanes[pb, pt] or areas.non_drivable[pb, pt] or areas.rear_axle_in_intersection[pb, pt]
        if angle < ahead_tol or (exposed and not angle > behind_tol):
            first[pb] = pt
        else:
            seen.add(pa)
    return first


def _driving_direction(centers: np.ndarray, oncoming: np.ndarray, dt_s: float, config: ScorerConfig) -> np.ndarray:
    """DDC: the most metres driven against traffic within any ``driving_direction_horizon_s`` window."""
    step_length = np.zeros(oncoming.shape)
    step_length[:, 1:] = np.linalg.norm(np.diff(centers, axis=1), axis=-1)
    step_length[~oncoming] = 0.0
    window = int(config.driving_direction_horizon_s / dt_s + 1e-9)
    cumulative = np.concatenate([np.zeros((len(step_length), 1)), np.cumsum(step_length, axis=1)], axis=1)
    ends = np.arange(1, step_length.shape[1] + 1)
    starts = np.maximum(ends - window - 1, 0)
    worst = (cumulative[:, ends] - cumulative[:, starts]).max(axis=1)
    return np.where(
        worst < config.driving_direction_compliance_m,
        1.0,
        np.where(worst < config.driving_direction_violation_m, 0.5, 0.0),
    )


def _traffic_light_compliance(scene: Scene, corners: np.ndarray, steps: int) -> np.ndarray:
    """TLC: the ego box never touches an on-route lane while its light is red."""
    scores = np.ones(corners.shape[0])
    route = set(scene.route_lane_ids)
    ego_polygons = None
    for light in scene.map.traffic_lights:
        if light.lane_id not in route:
            continue
        red = np.array([state is TrafficLightState.RED for state in light.states_over(steps)])
        if not red.any():
            continue
        if ego_polygons is None:
            ego_polygons = shapely.polygons(corners)  # [B, T]
        lane_polygon = scene.map.lane(light.lane_id).polygon
        shapely.prepare(lane_polygon)
        entered = shapely.intersects(lane_polygon, ego_polygons[:, red])
        scores[entered.any(axis=1)] = 0.0
    return scores


def _lane_keeping(scene: Scene, centers: np.ndarray, in_intersection: np.ndarray, config: ScorerConfig) -> np.ndarray:
    """LK: 0 when the centre stays more than the limit off the route centerline for the whole window.

    Steps with the centre inside an intersection neither count nor reset the run (as in NAVSIM).
    """
    line = scene.route_centerline
    deviation = shapely.distance(line, shapely.points(centers))  # [B, T]
    required = int(np.ceil(config.lane_keeping_window_s / scene.dt_s - 1e-9))
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


def history_states(scene: Scene, span_s: float = 1.5) -> np.ndarray:
    """The logged ego history as NAVSIM's history comfort reads it ``[H', NUM_STATES]``: the logged states of the last
    ``span_s`` seconds (including now) interpolated linearly every ``scene.dt_s``, from the oldest up to but
    excluding the last two samples before now (NAVSIM's time grid stops short of t = 0 and drops one more).
    Speeds and accelerations are the logged ones, or estimated from the poses when the scene has none."""
    ego = scene.ego
    poses = np.asarray(ego.history_poses, dtype=np.float64)
    count = min(len(poses), int(round(span_s / ego.history_dt_s)) + 1)
    if count < 2:
        return np.zeros((0, NUM_STATES))
    poses = poses[-count:]
    knots_t = (np.arange(count) - (count - 1)) * ego.history_dt_s
    speeds, accelerations = _history_dynamics(ego, poses)
    t = np.arange(round(knots_t[0] / scene.dt_s), 0) * scene.dt_s
    t = t[:-1]
    reference = interpolate_plan(poses[1:][None], ego.history_dt_s, poses[0], len(t) - 1, scene.dt_s)[0]
    states = np.zeros((len(t), NUM_STATES))
    states[:, :3] = reference
    states[:, StateIndex.SPEED] = np.interp(t, knots_t, speeds[-count:])
    states[:, StateIndex.ACCELERATION] = np.interp(t, knots_t, accelerations[-count:])
    return states


def _history_dynamics(ego: Any, poses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if ego.history_speeds_mps is not None and ego.history_accelerations_mps2 is not None:
        return np.asarray(ego.history_speeds_mps, float), np.asarray(ego.history_accelerations_mps2, float)
    # Estimate: finite-difference velocity projected on the heading; the current values are known exactly.
    dt = ego.history_dt_s
    velocity = np.gradient(poses[:, :2], dt, axis=0)
    speeds = velocity[:, 0] * np.cos(poses[:, 2]) + velocity[:, 1] * np.sin(poses[:, 2])
    speeds[-1] = ego.speed_mps
    accelerations = np.gradient(speeds, dt)
    accelerations[-1] = ego.acceleration_mps2
    return speeds, accelerations


def _history_comfort(scene: Scene, states: np.ndarray, config: ScorerConfig) -> np.ndarray:
    """HC: v2 comfort of the logged history followed by the simulated plan, treated as one 10 Hz sequence."""
    history = history_states(scene, config.history_comfort_span_s)
    combined = np.concatenate([np.broadcast_to(history, (len(states), *history.shape)), states], axis=1)
    return is_comfortable(
        combined, scene.dt_s, config.comfort, ComfortVersion.V2, config.ego.rear_axle_to_center_m
    ).astype(np.float64)


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
