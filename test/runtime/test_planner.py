"""SpanVLA as a planner in the evaluation harnesses (open and closed loop) on a tiny untrained checkpoint."""

import numpy as np
import pytest

from spanvla_ros.benchmarks.model import tiny_model
from spanvla_ros.runtime.planner import RuntimePlanner
from spanvla_ros.scene import straight_road_scene
from spanvla_ros.sim.closed_loop import ClosedLoopConfig, run_episode


@pytest.fixture(scope="module")
def planner(tmp_path_factory):
    directory = tmp_path_factory.mktemp("ckpt") / "tiny"
    tiny_model().save(directory)
    return RuntimePlanner.from_name(f"model:{directory}")


def test_model_planner_needs_and_uses_camera_frames(planner):
    scene = straight_road_scene()
    with pytest.raises(ValueError, match="camera frames"):
        planner.plan(scene)
    frames = np.zeros((2, 112, 112, 3), np.uint8)
    import dataclasses

    trajectory = planner.plan(dataclasses.replace(scene, metadata={"camera_frames": frames}))
    assert trajectory.poses.shape == (10, 3) and np.isfinite(trajectory.poses).all()


def test_model_planner_drives_a_closed_loop_episode(planner):
    result, path, first = run_episode(
        planner, 4, ClosedLoopConfig(envs=("two-way",), duration_s=1.0, replan_every_ticks=5)
    )
    assert len(path) == 11 and result.duration_s == pytest.approx(1.0)
    assert result.distance_m > 1.0  # it moved under its own plans


def test_the_deployed_core_plans_every_tick_of_a_drive(planner):
    """Closed loop through the node's planning core: a cycle per 0.1 s tick on the drive's clock, reasoning at 2 Hz,
    every plan validated, the counters of what the core did."""
    from spanvla_ros.runtime.planner import DeployedPlanner

    deployed = DeployedPlanner(planner.runtime, name="deployed")
    passes = []
    run_reasoning = deployed.core.run_reasoning

    def counted(inputs):
        passes.append(inputs.stamp_s)
        return run_reasoning(inputs)

    deployed.core.run_reasoning = counted
    validation = {}
    result, path, first = run_episode(
        deployed, 4, ClosedLoopConfig(envs=("two-way",), duration_s=2.0, replan_every_ticks=1), validation=validation
    )
    assert len(path) == 21 and deployed.counters["plans"] == 20 == validation["plans"]
    assert 4 <= len(passes) <= 5 and np.all(np.diff(passes) >= 0.5 - 1e-9)  # 2 Hz of drive time
    assert deployed.last_output is not None and deployed.last_output.validation is not None
    timings = deployed.core.timings
    assert len(timings["planning_ms"]) == 20 and max(timings["reasoning_age_ms"]) <= 500.0 + 1e-6  # a pass every 0.5 s
    # What the core published passes the validator, whatever the untrained model proposed.
    assert validation.get("validator_rejections", 0) == 0


def test_the_deployed_core_gets_the_lane_speed_limit_of_the_drive(planner):
    """As a car's map would, the drive gives the core the limit of the lane under the ego; the core's plans keep to
    it. Without it (``map_speed_limit=False``, `--no-speed-limit`) nothing is limited."""
    from spanvla_ros.runtime.planner import DeployedPlanner
    from spanvla_ros.scene import speed_limit_at
    from spanvla_ros.sim.closed_loop import episode_world

    config = ClosedLoopConfig(envs=("two-way",), duration_s=1.0, replan_every_ticks=1)
    limit = speed_limit_at(episode_world(4, config).reset(4), None)
    assert limit is not None
    limited = DeployedPlanner(planner.runtime, name="limited")
    run_episode(limited, 4, config)
    assert limited.core._speed_limit_mps == pytest.approx(limit)
    poses = limited.last_output.poses_ego
    steps = np.hypot(*np.diff(np.vstack([np.zeros(2), poses[:, :2]]), axis=0).T) / limited.config.dt_s
    speed = float(limited.core._odometry[-1][4])
    mid = 0.5 * np.arange(1, 11) - 0.25  # each step's average speed is the braking profile's at its middle
    # The step in which the profile meets the limit averages up to a·dt/8 above both; chords of a curved path a hair.
    assert np.all(steps <= np.maximum(limit, speed - 2.0 * mid) + 2.0 * 0.5 / 8 + 0.05)
    free = DeployedPlanner(planner.runtime, name="free", map_speed_limit=False)
    run_episode(free, 4, config)
    assert free.core._speed_limit_mps is None and free.counters["speed_limited"] == 0


def test_the_deployed_core_gets_the_other_road_users_as_its_object_list(planner):
    """As a car's perception would, the drive gives the core every other road user (box and velocity) for its
    collision guard; without it (``object_list=False``, `--no-collision-guard`) the core has no list."""
    from spanvla_ros.runtime.planner import DeployedPlanner
    from spanvla_ros.sim.closed_loop import episode_world

    config = ClosedLoopConfig(envs=("highway",), duration_s=1.0, replan_every_ticks=1)
    last = DeployedPlanner(planner.runtime, name="guarded")
    run_episode(last, 0, config)
    objects = last.core._objects
    assert objects is not None and objects.frame == "map"
    at_start = {agent.id for agent in episode_world(0, config).reset(0).agents}
    assert len(objects.ids) > 0 and len(set(objects.ids) & at_start) >= len(at_start) // 2  # the same road users
    assert np.abs(objects.velocities).max() > 1.0  # the traffic moves, and the list says how
    status = next(s for s in last.core.statuses(objects.stamp_s) if s.name == "objects")
    assert status.values["objects"] == str(len(objects.ids))
    blind = DeployedPlanner(planner.runtime, name="blind", object_list=False)
    run_episode(blind, 0, config)
    assert blind.core._objects is None and blind.counters["collision_guarded"] == 0


def test_the_deployed_core_follows_the_route_of_the_drive(planner):
    """As a car's navigation would, the drive gives the core its route; plans are laid along it and the car keeps to
    its lane. Without it (``route=False``, `--no-route`) the core keeps the model's own paths."""
    from spanvla_ros.runtime.planner import DeployedPlanner

    config = ClosedLoopConfig(envs=("highway",), duration_s=3.0, replan_every_ticks=1)
    kept = DeployedPlanner(planner.runtime, name="route")
    result = run_episode(kept, 0, config)[0]
    route = kept.core._route
    assert route is not None and route.frame == "map" and len(route.xy) > 10
    assert kept.counters["route_kept"] >= kept.counters["plans"] - kept.counters["stop_trajectories"] - 2
    assert abs(kept.core._last_route_fit.offset_m) < 1.0  # in its lane
    assert not any(i.kind == "off_road" for i in result.infractions)
    own = DeployedPlanner(planner.runtime, name="own", route=False)
    run_episode(own, 0, config)
    assert own.core._route is None and own.counters["route_kept"] == 0
