import numpy as np
import pytest

from spanvla_ros.eval.closed_loop import (
    COLLISION_PEDESTRIAN,
    COLLISION_STATIC,
    COLLISION_VEHICLE,
    OFF_ROAD,
    RED_LIGHT,
    EpisodeMonitor,
    aggregate_episodes,
)
from spanvla_ros.scene import Agent, AgentKind, EgoState, Scene, straight_road_scene

LANE = 3.5


def drive(base: Scene, ego_xy: list[tuple[float, float]], agents_at=lambda t: (), route_length_m=100.0):
    """Run a monitor over ego positions sampled every 0.1 s; agents_at(t) gives the agents present at tick t."""
    monitor = EpisodeMonitor(base.route_centerline_xy, route_length_m=route_length_m)
    for i, (x, y) in enumerate(ego_xy):
        ego = EgoState(np.array([x, y, 0.0]), 10.0, 0.0, np.array([[x, y, 0.0]]))
        scene = Scene(base.map, tuple(agents_at(i)), ego, base.route_lane_ids, base.route_centerline_xy)
        monitor.update(scene, i * 0.1)
    return monitor.result()


def straight_drive(distance_m: float, y: float = LANE, start_x: float = 0.0):
    return [(start_x + x, y) for x in np.arange(0.0, distance_m + 1e-9, 1.0)]


def test_clean_drive_scores_its_route_completion():
    result = drive(straight_road_scene(), straight_drive(60.0))
    assert result.infractions == []
    assert result.route_completion == pytest.approx(0.6, abs=0.01)
    assert result.driving_score == pytest.approx(result.route_completion)


@pytest.mark.parametrize(
    "agent, kind, penalty",
    [
        (Agent.static("parked", (30.0, LANE, 0.0), 4.8, 2.0, kind=AgentKind.VEHICLE), COLLISION_VEHICLE, 0.6),
        (Agent.static("barrier", (30.0, LANE, 0.0)), COLLISION_STATIC, 0.65),
        (Agent.static("walker", (30.0, LANE, 0.0), 0.6, 0.6, kind=AgentKind.PEDESTRIAN), COLLISION_PEDESTRIAN, 0.5),
    ],
)
def test_a_collision_is_counted_once_per_contact_and_penalised(agent, kind, penalty):
    result = drive(straight_road_scene(), straight_drive(100.0), agents_at=lambda t: (agent,))
    assert [i.kind for i in result.infractions] == [kind]
    assert result.collided
    assert result.driving_score == pytest.approx(result.route_completion * penalty)


def test_running_a_red_light_costs_0_7():
    result = drive(straight_road_scene(red_light_at_x_m=40.0), straight_drive(100.0))
    assert [i.kind for i in result.infractions] == [RED_LIGHT]
    assert result.driving_score == pytest.approx(0.7 * result.route_completion)


def test_off_road_distance_does_not_count_as_completion():
    path = straight_drive(40.0) + [(40.0 + x, -5.0) for x in np.arange(1.0, 21.0)] + straight_drive(20.0, start_x=61.0)
    result = drive(straight_road_scene(), path)
    assert result.counts()[OFF_ROAD] == 1
    assert result.off_road_m > 15.0
    assert result.route_completion < 0.81 - 0.15


def test_aggregate_reports_collision_rate_and_means():
    clean = drive(straight_road_scene(), straight_drive(50.0))
    crash = drive(
        straight_road_scene(), straight_drive(50.0), agents_at=lambda t: (Agent.static("c", (20.0, LANE, 0.0)),)
    )
    summary = aggregate_episodes([clean, crash])
    assert summary["episodes"] == 2
    assert summary["collision_rate"] == 0.5
    assert summary["driving_score"] == pytest.approx((0.5 + 0.5 * 0.65) / 2, abs=0.01)
    with pytest.raises(ValueError, match="no episodes"):
        aggregate_episodes([])


def test_each_episode_names_what_went_wrong_and_how_far_it_strayed():
    clean = drive(straight_road_scene(), straight_drive(60.0))
    slow = drive(straight_road_scene(), straight_drive(20.0))
    crash = drive(
        straight_road_scene(), straight_drive(50.0), agents_at=lambda t: (Agent.static("c", (20.0, LANE, 0.0)),)
    )
    path = straight_drive(40.0) + [(40.0 + x, -5.0) for x in np.arange(1.0, 21.0)]
    off = drive(straight_road_scene(), path)
    assert [r.failure for r in (clean, slow, crash, off)] == ["none", "stall", "collision", "off_road"]
    assert clean.max_route_offset_m < 0.1 and off.max_route_offset_m > 8.0  # 5 m right of the road vs its lane
    summary = aggregate_episodes([clean, slow, crash, off])
    assert summary["failures"] == {"collision": 1, OFF_ROAD: 1, "wrong_way": 0, RED_LIGHT: 0, "stall": 1, "none": 1}
    assert summary["off_road_rate"] == 0.25


def test_the_paired_bootstrap_brackets_a_known_gain():
    import numpy as np

    from spanvla_ros.benchmarks.drive import paired_bootstrap

    rng = np.random.default_rng(0)
    before = rng.uniform(0.5, 0.9, 300)
    gain = paired_bootstrap(before, before + 0.05 + rng.normal(0, 0.02, 300))
    assert gain["ci95"][0] < 0.05 < gain["ci95"][1] and gain["ci95"][0] > 0.04
    same = paired_bootstrap(before, before)
    assert same["mean"] == 0.0 and same["ci95"] == [0.0, 0.0]


@pytest.mark.parametrize(
    "agent_xy, side",
    [((5.5, LANE), "front"), ((-3.0, LANE), "rear"), ((1.5, LANE + 2.0), "left"), ((1.5, LANE - 2.0), "right")],
)
def test_a_collision_records_where_the_other_box_was(agent_xy, side):
    """The ego parked at x = 0 (rear axle), a car placed just touching it on each side: the side is the one it is on,
    and the aggregate counts collisions by side."""
    other = Agent.static("other", (*agent_xy, 0.0), 4.8, 2.0, kind=AgentKind.VEHICLE)
    result = drive(straight_road_scene(), [(0.0, LANE)] * 3, agents_at=lambda t: (other,))
    assert [(i.kind, i.side) for i in result.infractions] == [(COLLISION_VEHICLE, side)]
    assert result.infractions[0].ego_speed_mps == 10.0
    counts = aggregate_episodes([result])["collisions_by_side"]
    assert counts == {s: int(s == side) for s in ("front", "rear", "left", "right")}


def test_the_speed_limited_constant_velocity_reference_keeps_to_the_lane_limit():
    """The drive benchmark's reference for the core's speed limit: constant velocity, held to the lane's limit."""
    from spanvla_ros.benchmarks.drive import CoreLayers
    from spanvla_ros.planning import ConstantVelocityPlanner
    from spanvla_ros.scene import speed_limit_at, straight_road_scene

    speed_limited = CoreLayers(ConstantVelocityPlanner(), route=False, guard=False)

    fast = straight_road_scene(ego_speed_mps=40.0)
    limit = speed_limit_at(fast, None)
    assert limit is not None and limit < 40.0
    poses = speed_limited.plan(fast).poses
    speeds = np.diff(np.concatenate([[0.0], poses[:, 0]])) / 0.5
    mid = 0.5 * np.arange(1, 11) - 0.25  # each step's average speed is the braking profile's at its middle
    # The step in which the profile meets the limit averages up to a·dt/8 above both.
    assert np.all(speeds <= np.maximum(limit, 40.0 - 2.0 * mid) + 2.0 * 0.5 / 8 + 1e-9)
    assert speeds[-1] == pytest.approx(max(limit, 40.0 - 2.0 * mid[-1]))
    slow = straight_road_scene(ego_speed_mps=5.0)
    assert np.array_equal(speed_limited.plan(slow).poses, ConstantVelocityPlanner().plan(slow).poses)


def test_the_collision_guard_keeps_constant_velocity_off_the_car_ahead_on_the_highway():
    """Constant velocity runs into slower traffic on the highway; the same planner checked by the core's collision
    guard (the drive benchmark's reference) brakes for it, on the same seeded episodes."""
    from spanvla_ros.benchmarks.drive import CoreLayers
    from spanvla_ros.planning import ConstantVelocityPlanner
    from spanvla_ros.sim.closed_loop import ClosedLoopConfig, run_episode

    config, seeds = ClosedLoopConfig(envs=("highway",), duration_s=12.0), range(4)
    plain = [run_episode(CoreLayers(ConstantVelocityPlanner(), route=False, guard=False), s, config)[0] for s in seeds]
    guarded = [run_episode(CoreLayers(ConstantVelocityPlanner(), route=False), s, config)[0] for s in seeds]
    front = lambda results: sum(  # noqa: E731
        i.side == "front" for r in results for i in r.infractions if i.kind.startswith("collision")
    )
    assert front(plain) >= 2, "the scenario no longer has constant velocity run into anything"
    assert front(guarded) == 0
    assert np.mean([r.route_completion for r in guarded]) > 0.3  # it still drives


def test_a_planner_through_the_core_layers_follows_the_scene_route_in_open_loop():
    """The drive benchmark scores the plans a car would publish: a plan that drifts off the lane comes back to the
    scene's route through the core's layers, and an ego standing behind a parked car is braked for it."""
    import dataclasses

    from spanvla_ros.benchmarks.drive import CoreLayers
    from spanvla_ros.planning import Planner
    from spanvla_ros.scene import Agent, AgentKind, Trajectory, straight_poses, straight_road_scene

    class Drifting(Planner):
        name = "drifting"

        def plan(self, scene):
            return Trajectory(straight_poses(scene.ego.speed_mps, 10, lateral_m=2.0))

    scene = straight_road_scene(ego_speed_mps=10.0)
    layered = CoreLayers(Drifting())
    assert layered.name == "drifting-route-speed-limited-guarded"
    kept = layered.plan(scene).poses
    assert abs(kept[-1, 1]) < 0.05 and Drifting().plan(scene).poses[-1, 1] == 2.0  # back on the lane's centre line
    parked = Agent.static("parked", (25.0, scene.ego.pose[1], 0.0), 4.8, 2.0, kind=AgentKind.VEHICLE)
    braked = layered.plan(dataclasses.replace(scene, agents=(parked,))).poses
    assert braked[-1, 0] + 1.4 + 2.4 < 25.0 - 2.4  # stops short of the parked car's rear
