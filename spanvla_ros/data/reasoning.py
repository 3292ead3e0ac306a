"""Reasoning labels in the mReasoning schema, from privileged scene state.

For each sample: the critical components (only agents that affect the ego: type, relative location,
behaviour/impact), the driving decision (longitudinal: keep / accelerate / decelerate / yield / stop; lateral: keep /
nudge / change lane, left or right) read off the target trajectory, and a concise reasoning trace. Easy scenes get the
fast-mode label ("Directly predict the final action"); complex ones (cut-ins, lead braking, merges, oncoming traffic,
lane changes, junctions) a slow-mode chain of thought. Several phrasings per situation, chosen by a seeded RNG.
``decision_consistency`` checks a decision against a trajectory (a reward term for GRPO).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import shapely

from ..scene import AgentKind, Scene, ego_to_world, lane_relation, lateral_offset, line_frame, world_to_ego, wrap_angle
from ..text_format import FAST_MODE_TEXT, THINK_END, THINK_START

LONGITUDINAL = ("keep", "accelerate", "decelerate", "yield", "stop")
LATERAL = ("keep", "nudge_left", "nudge_right", "change_lane_left", "change_lane_right")


@dataclass(frozen=True)
class CriticalComponent:
    type: str  # vehicle, pedestrian, cyclist, static object
    location: str  # ahead, front-left, front-right, left, right, behind, oncoming
    behaviour: str  # braking, cutting in, merging, oncoming, stopped, slower lead, crossing
    distance_m: float

    def text(self) -> str:
        return f"{self.type} {self.location}, {self.behaviour}, {self.distance_m:.0f} m"


@dataclass(frozen=True)
class Decision:
    longitudinal: str
    lateral: str


@dataclass
class ReasoningLabel:
    mode: str  # "fast" or "slow"
    components: list[CriticalComponent] = field(default_factory=list)
    decision: Decision = Decision("keep", "keep")
    trace: str = ""

    def text(self) -> str:
        """The reasoning the VLM is trained to write (before the action token)."""
        if self.mode == "fast":
            return FAST_MODE_TEXT
        components = "; ".join(c.text() for c in self.components) or "none"
        decision = f"{self.decision.longitudinal.replace('_', ' ')}, {self.decision.lateral.replace('_', ' ')}"
        return f"{THINK_START} critical: {components}. decision: {decision}. {self.trace} {THINK_END}"

    def to_dict(self) -> dict:
        return {
            "mode": self.mode,
            "components": [asdict(c) for c in self.components],
            "decision": asdict(self.decision),
            "trace": self.trace,
            "text": self.text(),
        }


#: An agent this close to the ego's axis (ego frame, |y|) is in the ego's lane.
SAME_LANE_HALF_WIDTH_M = 1.8
#: How far ahead a lead counts (a lead beyond it reads as this gap and no closing speed).
LEAD_RANGE_M = 80.0
#: Where the route's heading is read ahead of the ego's projection onto it.
ROUTE_LOOKAHEAD_M = (15.0, 30.0)
#: Each :meth:`DrivingState.vector` entry's typical size, to bring them to one scale for learning.
DRIVING_STATE_UNITS = (2.0, 0.1, 40.0, 5.0, 0.3, 0.3)


@dataclass(frozen=True)
class DrivingState:
    """The state a driving policy needs beyond the ego's own motion, from privileged scene state: where the ego sits
    in its lane, the lead it must not run into, and where the road goes. The closed-loop diagnosis measured that a
    policy given these drives where the camera-based one does not (README, "What the policy lacks")."""

    lane_offset_m: float  # from the nearest lane running the ego's way, positive left (0 when none does)
    lane_heading_error_rad: float  # positive when the ego points left of that lane's direction
    lead_gap_m: float  # to the nearest agent ahead within half a lane of the ego's axis (reference points)
    lead_closing_speed_mps: float  # the ego's speed minus the lead's along the ego's heading (positive: closing)
    route_heading_ahead_rad: tuple[float, ...]  # the route's heading ROUTE_LOOKAHEAD_M ahead, relative to the ego's

    def vector(self) -> np.ndarray:
        return np.array(
            [self.lane_offset_m, self.lane_heading_error_rad, self.lead_gap_m, self.lead_closing_speed_mps,
             *self.route_heading_ahead_rad],
            dtype=np.float64,
        )  # fmt: skip


def driving_state(scene: Scene) -> DrivingState:
    """The :class:`DrivingState` of the ego at the scene's t = 0."""
    ego = scene.ego.pose
    relation = lane_relation(scene.map.lanes, ego)
    heading = np.array([np.cos(ego[2]), np.sin(ego[2])])
    gap, closing = LEAD_RANGE_M, 0.0
    for agent in scene.agents:
        x, y, _ = world_to_ego(agent.poses[:1], ego)[0]
        if 0.0 < x < gap and abs(y) < SAME_LANE_HALF_WIDTH_M:
            gap, closing = float(x), float(scene.ego.speed_mps - agent.velocities_mps[0] @ heading)
    line = scene.route_centerline
    s, _, _ = line_frame(line, ego[:2])
    ahead = []
    for distance in ROUTE_LOOKAHEAD_M:
        point = np.asarray(line.interpolate(min(s + distance, line.length)).coords[0])
        ahead.append(float(wrap_angle(line_frame(line, point)[2] - ego[2])))
    return DrivingState(
        relation.offset_m if relation else 0.0, relation.heading_error_rad if relation else 0.0, gap, closing,
        tuple(ahead),
    )  # fmt: skip


def critical_components(scene: Scene, *, range_m: float = 60.0) -> list[CriticalComponent]:
    """Agents that affect the ego now or within the horizon, nearest first."""
    ego = scene.ego
    out = []
    for agent in scene.agents:
        local = world_to_ego(agent.poses[:1], ego.pose)[0]
        x, y, heading = local
        distance = float(np.hypot(x, y))
        if distance > range_m or x < -8.0:
            continue
        speed = float(np.hypot(*agent.velocities_mps[0]))
        future = world_to_ego(agent.poses_over(scene.horizon_steps + 1), ego.pose)
        lateral_move = float(future[min(20, len(future) - 1), 1] - y)
        speed_later = float(np.hypot(*agent.velocities_mps[min(20, len(agent.velocities_mps) - 1)]))
        kind = "static object" if agent.kind is AgentKind.STATIC_OBJECT else agent.kind.value
        same_lane = abs(y) < SAME_LANE_HALF_WIDTH_M
        oncoming = abs(float(np.arctan2(np.sin(heading), np.cos(heading)))) > 2.4
        if oncoming and x > 0 and distance < 60:
            out.append(CriticalComponent(kind, "oncoming", "oncoming traffic", distance))
        elif same_lane and x > 0:
            if speed < 0.5:
                out.append(CriticalComponent(kind, "ahead", "stopped", distance))
            elif speed_later < speed - 1.5:
                out.append(CriticalComponent(kind, "ahead", "braking", distance))
            elif speed < ego.speed_mps - 2.0 and distance < 40:
                out.append(CriticalComponent(kind, "ahead", "slower lead", distance))
        elif x > -2 and abs(y) < 6.0 and abs(lateral_move) > 1.0 and np.sign(lateral_move) == -np.sign(y):
            side = "front-left" if y > 0 else "front-right"
            behaviour = "merging" if scene.metadata.get("env") == "merge" else "cutting in"
            out.append(CriticalComponent(kind, side, behaviour, distance))
        elif x > 0 and abs(y) > 6.0 and abs(float(np.sin(heading))) > 0.7 and distance < 35:
            out.append(CriticalComponent(kind, "front-left" if y > 0 else "front-right", "crossing", distance))
    return sorted(out, key=lambda c: c.distance_m)[:3]


def route_offset_change(scene: Scene, poses_ego: np.ndarray) -> float:
    """How far the trajectory's end lies left (+) of the route centerline compared with the ego now: lateral motion
    relative to the road, so following a curve is not mistaken for a lane change."""
    line = scene.route_centerline
    end = ego_to_world(np.asarray(poses_ego)[-1:], scene.ego.pose)[0, :2]
    return lateral_offset(line, end)[1] - lateral_offset(line, scene.ego.pose[:2])[1]


def decision_from_trajectory(
    poses_ego: np.ndarray,
    speed0_mps: float,
    dt_s: float = 0.5,
    components: list[CriticalComponent] | None = None,
    lateral_change_m: float | None = None,
) -> Decision:
    """The decision a trajectory ``[N, 3]`` expresses: speed change over it and lateral displacement at its end
    (``lateral_change_m`` relative to the road when known, else the ego-frame y of the last pose)."""
    poses = np.asarray(poses_ego)
    steps = np.diff(np.vstack([np.zeros(3), poses])[:, :2], axis=0)
    speeds = np.linalg.norm(steps, axis=1) / dt_s
    end_speed = float(np.mean(speeds[-2:]))
    if end_speed < 0.5:
        longitudinal = "stop"
    elif end_speed > speed0_mps + 1.5:
        longitudinal = "accelerate"
    elif end_speed < speed0_mps - 1.5:
        yielding = any(
            c.behaviour in ("merging", "cutting in", "crossing", "oncoming traffic") for c in components or []
        )
        longitudinal = "yield" if yielding else "decelerate"
    else:
        longitudinal = "keep"
    dy = float(poses[-1, 1]) if lateral_change_m is None else lateral_change_m
    if abs(dy) > 2.0:
        lateral = "change_lane_left" if dy > 0 else "change_lane_right"
    elif abs(dy) > 0.6:
        lateral = "nudge_left" if dy > 0 else "nudge_right"
    else:
        lateral = "keep"
    return Decision(longitudinal, lateral)


def decision_consistency(
    decision: Decision, poses_ego: np.ndarray, speed0_mps: float, dt_s: float = 0.5, scene: Scene | None = None
) -> float:
    """1.0 when the trajectory expresses the decision, 0.5 when one of the two axes agrees, else 0.0."""
    lateral = route_offset_change(scene, poses_ego) if scene is not None else None
    observed = decision_from_trajectory(poses_ego, speed0_mps, dt_s, lateral_change_m=lateral)
    slowing = {"decelerate", "yield", "stop"}
    lon_ok = observed.longitudinal == decision.longitudinal or (
        decision.longitudinal in slowing and observed.longitudinal in slowing
    )
    same_side = "keep" not in (observed.lateral, decision.lateral) and (
        observed.lateral.split("_")[-1] == decision.lateral.split("_")[-1]
    )
    lat_ok = observed.lateral == decision.lateral or same_side
    return 0.5 * lon_ok + 0.5 * lat_ok


_PHRASES = {
    "braking": [
        "The lead vehicle is braking, so I slow down and keep a safe gap.",
        "Brake lights ahead: reduce speed early to keep the headway.",
        "The car in front decelerates; I match its speed instead of closing in.",
    ],
    "stopped": [
        "A stopped object blocks the lane ahead; I must stop or go around it.",
        "The lane ahead is blocked by a standing vehicle, so I brake in time.",
    ],
    "slower lead": [
        "The vehicle ahead is slower; I follow at a safe distance or pass when the next lane is free.",
        "A slower car leads; keep the gap, overtake only with room on the side.",
    ],
    "cutting in": [
        "A vehicle is cutting into my lane, so I yield and open the gap.",
        "Someone merges in front of me; ease off to let it in safely.",
    ],
    "merging": [
        "Traffic merges from the ramp; I adapt my speed so it can join.",
        "A car is merging in; I leave it space rather than racing it.",
    ],
    "oncoming traffic": [
        "Oncoming traffic in the opposite lane: stay in my lane and do not overtake now.",
        "There is an oncoming car, so overtaking is unsafe; keep right.",
    ],
    "crossing": [
        "A vehicle crosses my path at the junction; I yield before entering.",
        "Cross traffic at the intersection has priority in the conflict zone; wait for the gap.",
    ],
    "lane_change": [
        "The adjacent lane is free and faster, so I change lanes smoothly.",
        "I move over to the next lane where the gap is large enough.",
    ],
    "default": ["The road ahead is clear; keep lane and speed.", "No conflict ahead; continue steadily."],
}


def label_sample(
    scene: Scene, target_poses_ego: np.ndarray, rng: np.random.Generator, dt_s: float = 0.5
) -> ReasoningLabel:
    """The reasoning label of one sample: components from the scene, decision from the target trajectory."""
    components = critical_components(scene)
    decision = decision_from_trajectory(
        target_poses_ego,
        scene.ego.speed_mps,
        dt_s,
        components,
        lateral_change_m=route_offset_change(scene, target_poses_ego),
    )
    ego_point = shapely.Point(scene.ego.pose[:2])
    near_junction = any(lane.is_intersection and lane.polygon.distance(ego_point) < 25.0 for lane in scene.map.lanes)
    complex_scene = (
        bool(components)
        or near_junction
        or decision.lateral.startswith("change")
        or decision.longitudinal in ("yield", "stop")
    )
    if not complex_scene and decision == Decision("keep", "keep"):
        return ReasoningLabel("fast", [], decision, "")
    if components:
        key = components[0].behaviour
    elif decision.lateral.startswith("change"):
        key = "lane_change"
    else:
        key = "default"
    trace = str(rng.choice(_PHRASES.get(key, _PHRASES["default"])))
    return ReasoningLabel("slow", components, decision, trace)
