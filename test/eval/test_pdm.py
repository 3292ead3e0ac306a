"""The PDM scorer on hand-made scenes whose answers are known."""

import dataclasses

import numpy as np
import pytest

from spanvla_ros.eval import PreviousPlan, ScorerConfig, score_trajectories, score_trajectory
from spanvla_ros.scene import (
    Agent,
    AgentKind,
    EgoState,
    Scene,
    SceneError,
    TrafficLight,
    TrafficLightState,
    TrajectoryError,
    straight_poses,
    straight_road_scene,
)

LANE = 3.5  # the ego drives in lane 1, centred at y = 3.5


def plan_with_lateral(speed, lateral_of_t):
    plan = straight_poses(speed, 10)
    t = np.arange(1, 11) * 0.5
    plan[:, 1] = lateral_of_t(t)
    return plan


def test_lane_following_scores_one_everywhere():
    scene = straight_road_scene(reference_poses_ego=straight_poses(10.0, 10))
    row = score_trajectory(scene, straight_poses(10.0, 10))
    assert row == {key: 1.0 for key in row}


def test_head_on_collision_gives_nc_zero():
    oncoming = Agent.constant_velocity("oncoming", (50.0, LANE, np.pi), 10.0, 41)
    row = score_trajectory(straight_road_scene(agents=(oncoming,)), straight_poses(10.0, 10))
    assert row["nc"] == 0.0
    assert row["pdms"] == 0.0 and row["epdms"] == 0.0


def test_contact_with_a_static_object_gives_nc_half():
    cone = Agent.static("cone", (30.0, LANE, 0.0))
    row = score_trajectory(straight_road_scene(agents=(cone,)), straight_poses(10.0, 10))
    assert row["nc"] == 0.5


def test_hitting_a_parked_vehicle_gives_nc_zero():
    parked = Agent.static("parked", (30.0, LANE, 0.0), 4.8, 2.0, kind=AgentKind.VEHICLE)
    row = score_trajectory(straight_road_scene(agents=(parked,)), straight_poses(10.0, 10))
    assert row["nc"] == 0.0


def test_being_rear_ended_by_a_faster_agent_is_not_at_fault():
    chaser = Agent.constant_velocity("chaser", (-12.0, LANE, 0.0), 20.0, 41)
    row = score_trajectory(straight_road_scene(agents=(chaser,)), straight_poses(10.0, 10))
    assert row["nc"] == 1.0


def test_rear_ending_a_slower_agent_is_at_fault():
    lead = Agent.constant_velocity("lead", (15.0, LANE, 0.0), 3.0, 41)
    row = score_trajectory(straight_road_scene(agents=(lead,)), straight_poses(10.0, 10))
    assert row["nc"] == 0.0 and row["ttc"] == 0.0


def test_sideswipe_by_a_merging_agent_is_not_at_fault_while_the_ego_keeps_its_lane():
    # A car alongside in the left lane veers into the ego's side; the ego stays centred in its own lane.
    t = np.arange(41) * 0.1
    y = 2 * LANE - np.clip(t - 0.5, 0, None) * 1.5
    poses = np.column_stack([1.4 + 10.0 * t, y, np.full_like(t, -0.15)])
    velocities = np.column_stack([np.full_like(t, 10.0), np.where(t > 0.5, -1.5, 0.0)])
    merger = Agent("merger", AgentKind.VEHICLE, 4.8, 2.0, poses, velocities)
    row = score_trajectory(straight_road_scene(agents=(merger,)), straight_poses(10.0, 10))
    assert row["nc"] == 1.0


def test_leaving_the_road_gives_dac_zero():
    scene = straight_road_scene(num_lanes=2, ego_lane=0)
    row = score_trajectory(scene, plan_with_lateral(10.0, lambda t: -np.clip(t - 1.0, 0, None) * 1.5))
    assert row["dac"] == 0.0
    assert row["pdms"] == 0.0


def test_a_4_mps2_stop_fails_comfort_and_a_2_mps2_stop_passes():
    scene = straight_road_scene(ego_speed_mps=16.0)
    hard = score_trajectory(scene, straight_poses(16.0, 10, accel_mps2=-4.0))
    soft = score_trajectory(scene, straight_poses(16.0, 10, accel_mps2=-2.0))
    assert hard["c"] == 0.0
    assert soft["c"] == 1.0


def test_driving_in_the_oncoming_lane_fails_ddc():
    scene = straight_road_scene(num_lanes=1, ego_lane=0, oncoming_lanes=1)
    into_oncoming = plan_with_lateral(10.0, lambda t: np.clip(t * 2.0, 0, LANE))
    assert score_trajectory(scene, into_oncoming)["ddc"] == 0.0
    assert score_trajectory(scene, straight_poses(10.0, 10))["ddc"] == 1.0


def test_crossing_a_red_light_fails_tlc_and_stopping_before_it_passes():
    scene = straight_road_scene(red_light_at_x_m=30.0)
    assert score_trajectory(scene, straight_poses(10.0, 10))["tlc"] == 0.0
    stop = score_trajectory(scene, straight_poses(10.0, 10, accel_mps2=-2.5))  # stops after 20 m
    assert stop["tlc"] == 1.0


def test_a_green_light_may_be_crossed():
    scene = straight_road_scene(red_light_at_x_m=30.0)
    green = tuple(TrafficLight(light.id, light.lane_id, TrafficLightState.GREEN) for light in scene.map.traffic_lights)
    scene = Scene(
        type(scene.map)(scene.map.lanes, scene.map.drivable_area, green),
        scene.agents,
        scene.ego,
        scene.route_lane_ids,
        scene.route_centerline_xy,
    )
    assert score_trajectory(scene, straight_poses(10.0, 10))["tlc"] == 1.0


def test_ep_is_progress_relative_to_the_reference():
    scene = straight_road_scene(ego_speed_mps=8.0, reference_poses_ego=straight_poses(8.0, 10, accel_mps2=1.0))
    result = score_trajectories(scene, straight_poses(8.0, 10, accel_mps2=-1.0)[None])
    reference_progress = score_trajectories(scene, scene.reference_poses_ego[None]).progress_m[0]
    assert reference_progress == pytest.approx(8.0 * 4 + 0.5 * 16, abs=1.0)  # what the reference drives in 4 s
    assert result.metrics["ep"][0] == pytest.approx(result.progress_m[0] / reference_progress)
    assert result.metrics["ep"][0] == pytest.approx(24.0 / 40.0, abs=0.03)
    # NAVSIM's tracker brakes late for a hard stop (its lag and a speed target 1 s ahead): the car rolls ~13 m, not
    # the drawn 10 m, and EP counts what it drove.
    scene_half = straight_road_scene(ego_speed_mps=10.0, reference_poses_ego=straight_poses(10.0, 10))
    hard_stop = score_trajectories(scene_half, straight_poses(10.0, 10, accel_mps2=-5.0)[None])
    assert 10.5 < hard_stop.progress_m[0] < 15.0
    assert hard_stop.metrics["ep"][0] == pytest.approx(hard_stop.progress_m[0] / 40.0, abs=0.01)


def test_progress_under_five_metres_is_not_penalised():
    scene = straight_road_scene(ego_speed_mps=0.0, reference_poses_ego=straight_poses(1.0, 10))
    assert score_trajectory(scene, np.zeros((10, 3)))["ep"] == 1.0


def test_human_filter_passes_in_epdms_only_what_the_logged_human_also_fails():
    # Point 1: v2 filters with the logged human trajectory, on original scenes, and only EPDMS; PDMS has no filter.
    runs_red = straight_poses(10.0, 10)
    scene = straight_road_scene(red_light_at_x_m=30.0, reference_poses_ego=straight_poses(10.0, 10, accel_mps2=-2.5))
    human_ran_it = dataclasses.replace(scene, human_poses_ego=runs_red)
    assert score_trajectory(scene, runs_red)["tlc"] == 0.0
    filtered = score_trajectory(human_ran_it, runs_red)
    assert filtered["tlc"] == 1.0 and filtered["epdms"] > 0.5
    assert score_trajectory(dataclasses.replace(human_ran_it, synthetic=True), runs_red)["tlc"] == 0.0
    off = ScorerConfig(human_penalty_filter=False)
    assert score_trajectory(human_ran_it, runs_red, config=off)["tlc"] == 0.0
    # The PDM-Closed reference never filters: a reference that runs the light holds nothing in force or not.
    reference_ran_it = dataclasses.replace(scene, reference_poses_ego=runs_red)
    assert score_trajectory(reference_ran_it, runs_red)["tlc"] == 0.0
    # Comfort is never filtered: a human who drives uncomfortably does not excuse C or HC.
    hard = straight_poses(16.0, 10, accel_mps2=-4.0)
    lax = dataclasses.replace(straight_road_scene(ego_speed_mps=16.0), human_poses_ego=hard)
    row = score_trajectory(lax, hard)
    assert row["c"] == 0.0 and row["hc"] == 0.0


def test_lane_keeping_fails_when_off_centre_for_more_than_two_seconds():
    scene = straight_road_scene()
    assert score_trajectory(scene, plan_with_lateral(10.0, lambda t: np.clip(t, 0, 1.0)))["lk"] == 0.0
    assert score_trajectory(scene, plan_with_lateral(10.0, lambda t: np.clip(t, 0, 0.3)))["lk"] == 1.0


def test_extended_comfort_compares_consecutive_plans():
    scene = straight_road_scene()
    steady = score_trajectories(scene, straight_poses(10.0, 10)[None])
    previous = PreviousPlan(steady.states[0], elapsed_s=0.0)
    same = score_trajectory(scene, straight_poses(10.0, 10), previous=previous)
    flip = score_trajectory(scene, straight_poses(10.0, 10, accel_mps2=-3.0), previous=previous)
    assert same["ec"] == 1.0
    assert flip["ec"] == 0.0


def test_history_comfort_sees_a_jerky_past():
    scene = straight_road_scene()
    history = scene.ego.history_poses.copy()
    history[:, 0] = [-15.0, -12.0, -3.0, 0.0]  # surging: 6, 18, 6 m/s between history samples
    ego = EgoState(scene.ego.pose, 10.0, 0.0, history)
    jerky = Scene(scene.map, (), ego, scene.route_lane_ids, scene.route_centerline_xy)
    assert score_trajectory(scene, straight_poses(10.0, 10))["hc"] == 1.0
    assert score_trajectory(jerky, straight_poses(10.0, 10))["hc"] == 0.0


def test_scores_are_the_documented_weighted_products():
    rng = np.random.default_rng(3)
    lead = Agent.constant_velocity("lead", (25.0, LANE, 0.0), 6.0, 41)
    scene = straight_road_scene(agents=(lead,), reference_poses_ego=straight_poses(9.0, 10))
    speeds, slopes = rng.uniform(4, 12, 16), rng.uniform(-4, 4, 16)
    proposals = np.stack([plan_with_lateral(v, lambda t, a=a: a * t / 5) for v, a in zip(speeds, slopes, strict=True)])
    result = score_trajectories(scene, proposals)
    m = result.metrics
    np.testing.assert_allclose(m["pdms"], m["nc"] * m["dac"] * (5 * m["ttc"] + 5 * m["ep"] + 2 * m["c"]) / 12)
    np.testing.assert_allclose(
        m["epdms"],
        m["nc_v2"]
        * m["dac_v2"]
        * m["ddc"]
        * m["tlc"]
        * (5 * m["ep_v2"] + 5 * m["ttc_v2"] + 2 * m["lk"] + 2 * m["hc"] + 2 * m["ec"])
        / 16,
    )
    assert len(set(np.round(m["pdms"], 6))) > 2  # the batch really differs


def test_batch_scoring_matches_one_by_one_scoring_against_a_reference():
    cone = Agent.static("cone", (45.0, 0.0, 0.0))
    scene = straight_road_scene(agents=(cone,), reference_poses_ego=straight_poses(10.0, 10))
    proposals = np.stack(
        [straight_poses(10.0, 10), plan_with_lateral(10.0, lambda t: -np.clip(t, 0, 3.5)), straight_poses(6.0, 10)]
    )
    batch = score_trajectories(scene, proposals)
    for i, plan in enumerate(proposals):
        assert batch.row(i) == pytest.approx(score_trajectory(scene, plan))


def test_without_a_reference_progress_is_relative_to_the_best_proposal():
    scene = straight_road_scene()
    result = score_trajectories(scene, np.stack([straight_poses(10.0, 10), straight_poses(10.0, 10, accel_mps2=-2.5)]))
    assert result.metrics["ep"][0] == 1.0
    assert result.metrics["ep"][1] == pytest.approx(result.progress_m[1] / result.progress_m[0])
    assert 0.45 < result.metrics["ep"][1] < 0.6
    assert result.best_index == 0


@pytest.mark.parametrize(
    "poses, message",
    [
        (np.full((10, 3), np.nan), "non-finite"),
        (np.zeros((10, 2)), "shape"),
        (np.zeros((2, 3, 10, 3)), "shape"),
        (np.zeros((0, 10, 3)), "shape"),
        (straight_poses(10.0, 6), "scoring needs at least 4.00 s"),
    ],
)
def test_bad_trajectories_give_clear_errors(poses, message):
    with pytest.raises(TrajectoryError, match=message):
        score_trajectories(straight_road_scene(), poses)


def test_bad_scenes_give_clear_errors():
    scene = straight_road_scene()
    no_history = Scene(
        scene.map,
        (),
        EgoState(scene.ego.pose, 10.0, 0.0, np.zeros((0, 3))),
        scene.route_lane_ids,
        scene.route_centerline_xy,
    )
    with pytest.raises(SceneError, match="history is empty"):
        score_trajectory(no_history, straight_poses(10.0, 10))
    empty_map = Scene(type(scene.map)((), scene.map.drivable_area), (), scene.ego, (), scene.route_centerline_xy)
    with pytest.raises(SceneError, match="no lanes"):
        score_trajectory(empty_map, straight_poses(10.0, 10))
