"""The 14 points where the scorer used to differ from NAVSIM, each on a hand-made scene whose NAVSIM answer is known
and differs from what the old semantics gave (noted per test)."""

import dataclasses

import numpy as np
import pytest

from spanvla_ros.eval import (
    ComfortVersion,
    PreviousPlan,
    ScorerConfig,
    StateIndex,
    history_states,
    initial_state,
    score_trajectories,
    score_trajectory,
    track_poses,
)
from spanvla_ros.eval.comfort import ComfortLimits, comfort_signals
from spanvla_ros.scene import (
    PACIFICA,
    Agent,
    AgentKind,
    Lane,
    MapData,
    VehicleDimensions,
    box_corners,
    lane_union,
    straight_poses,
    straight_road_scene,
)

LANE = 3.5


def lateral_plan(speed, lateral_of_t):
    plan = straight_poses(speed, 10)
    plan[:, 1] = lateral_of_t(np.arange(1, 11) * 0.5)
    return plan


def test_1_human_filter_is_v2_only_and_uses_the_logged_human():
    # Old: the filter used the reference and applied to PDMS too. Human and plan both leave the road: EPDMS passes
    # DAC (the human failed it too), PDMS does not.
    off_road = lateral_plan(10.0, lambda t: -np.clip(t - 1.0, 0, None) * 1.5)
    scene = dataclasses.replace(
        straight_road_scene(num_lanes=2, ego_lane=0, reference_poses_ego=straight_poses(10.0, 10)),
        human_poses_ego=off_road,
    )
    row = score_trajectory(scene, off_road)
    assert row["dac"] == 0.0 and row["pdms"] == 0.0
    assert row["dac_v2"] == 1.0 and row["epdms"] > 0.0


def test_2_simulator_may_reverse_and_steers_up_to_pi_over_3():
    # Old: speed clipped at 0, steering at 0.6 rad. A plan that backs up is driven backwards; a U-turn-tight plan
    # saturates at pi/3.
    start = initial_state(np.zeros(3), 0.0)
    backwards = np.column_stack([-np.arange(1, 11) * 1.0, np.zeros(10), np.zeros(10)])
    states = track_poses(backwards[None], 0.5, start, PACIFICA, 40)[0]
    assert states[:, StateIndex.SPEED].min() < -0.5
    assert states[-1, 0] < -3.0
    theta = np.arange(1, 11) * 0.5 * 1.2  # 1.2 rad/s at 3 m/s: radius 2.5 m, tighter than the car can turn
    tight = np.column_stack([2.5 * np.sin(theta), 2.5 * (1 - np.cos(theta)), theta])
    states = track_poses(tight[None], 0.5, initial_state(np.zeros(3), 3.0), PACIFICA, 40)[0]
    assert states[:, StateIndex.STEERING].max() == pytest.approx(np.pi / 3)


def test_3_pdms_ignores_red_lights_and_gates_progress_by_nc_and_dac_only():
    # Old: a red-light run scored PDMS 0.583 (EP gated by TLC too); in v1.1 it scores 1.0.
    scene = straight_road_scene(red_light_at_x_m=30.0, reference_poses_ego=straight_poses(10.0, 10, accel_mps2=-2.5))
    row = score_trajectory(scene, straight_poses(10.0, 10))
    assert row["tlc"] == 0.0 and row["epdms"] == 0.0
    assert row["pdms"] == 1.0 and row["ep"] == 1.0


def test_4a_a_parked_car_pulling_out_is_a_stopped_track():
    # A car parked by the lane line pulls out into the ego's side. Old: judged by its speed when it hit (moving: a
    # lateral collision in the ego's own lane, not at fault). NAVSIM judges a track by the speed it had when first
    # seen: it was parked, so the collision counts.
    t = np.arange(41) * 0.1
    speed = np.where(t > 1.0, 4.0, 0.0)
    travelled = np.cumsum(speed) * 0.1
    heading = -0.4
    poses = np.column_stack(
        [12.0 + travelled * np.cos(heading), 2 * LANE - 0.6 + travelled * np.sin(heading), np.full_like(t, heading)]
    )
    velocities = np.column_stack([speed * np.cos(heading), speed * np.sin(heading)])
    parked = Agent("parked", AgentKind.VEHICLE, 4.6, 1.9, poses, velocities)
    row = score_trajectory(straight_road_scene(agents=(parked,)), straight_poses(10.0, 10))
    assert row["nc"] == 0.0


def test_4b_behind_is_tested_before_the_bumpers():
    # A car overlapping the ego's rear-left corner, its centre 140 degrees off the ego's heading: the rear bumper
    # touches it, but NAVSIM asks "behind (> 150 degrees)?" first and then "front bumper?", so it is a lateral
    # collision (old: a rear collision, never at fault).
    from spanvla_ros.eval.pdm import CollisionType, _AgentTracks, _collision_type

    ego_state = initial_state(np.zeros(3), 10.0)
    corners = box_corners(np.zeros(3), PACIFICA.length_m, PACIFICA.width_m, PACIFICA.rear_axle_to_center_m)
    rear_left = corners[1]
    centre = rear_left + np.array([-2.3, 0.9])  # the agent's front-right corner just inside the ego's rear-left
    assert 130 < np.degrees(np.arctan2(centre[1], centre[0])) < 150
    agent = Agent.constant_velocity("a", (centre[0], centre[1], 0.0), 10.0, 41)
    scene = straight_road_scene(agents=(agent,))
    kind = _collision_type(ego_state, corners, _AgentTracks(scene, 41), 0, 0, ScorerConfig())
    assert kind is CollisionType.ACTIVE_LATERAL
    # Overlapping the rear bumper while more than 150 degrees off: a rear collision.
    behind = Agent.constant_velocity("b", (rear_left[0] - 2.3, 0.4, 0.0), 10.0, 41)
    kind = _collision_type(
        ego_state, corners, _AgentTracks(straight_road_scene(agents=(behind,)), 41), 0, 0, ScorerConfig()
    )
    assert kind is CollisionType.ACTIVE_REAR


def test_4c_a_rear_corner_clipped_during_a_lane_change_is_at_fault():
    # The neighbour alongside-behind is clipped while the ego straddles two lanes: lateral, at fault.
    neighbour = Agent.constant_velocity("neighbour", (-3.2, 2 * LANE - 0.3, 0.0), 10.0, 41)
    change = lateral_plan(10.0, lambda t: LANE + 2.0 * np.clip(t / 1.5, 0, 1))
    assert score_trajectory(straight_road_scene(agents=(neighbour,)), change)["nc"] == 0.0


def test_5_lateral_acceleration_is_navsims_zero_unless_asked_for():
    # Old: speed x yaw rate, so a brisk curve failed C. NAVSIM's bicycle reports 0 lateral acceleration: it passes,
    # and the physical option fails it.
    radius, speed = 45.0, 16.0  # 5.7 m/s^2 lateral, 0.36 rad/s
    theta = speed / radius * np.arange(1, 11) * 0.5
    curve = np.column_stack([radius * np.sin(theta), radius * (1 - np.cos(theta)), theta])
    scene = straight_road_scene(ego_speed_mps=speed)
    assert score_trajectory(scene, curve)["c"] == 1.0
    physical = ScorerConfig(comfort=ComfortLimits(physical_lateral_acceleration=True))
    assert score_trajectory(scene, curve, config=physical)["c"] == 0.0
    # v2 moves the longitudinal acceleration to the box centre (d * (w^2 + w')); v1.1 does not.
    states = np.zeros((1, 41, len(StateIndex)))
    states[..., StateIndex.YAW_RATE] = 0.5
    v1 = comfort_signals(states, 0.1, ComfortVersion.V1, 1.461)["lon_accel"]
    v2 = comfort_signals(states, 0.1, ComfortVersion.V2, 1.461)["lon_accel"]
    np.testing.assert_allclose(v1, 0.0)
    np.testing.assert_allclose(v2, 1.461 * 0.25)


def test_6_v2_progress_is_raw_progress_clipped():
    # Old: EP took gated progress, so a plan that ran the red light got EP 0. v2 divides the plan's raw progress by
    # the larger gated progress: against a reference that stops, the red-light run gets EP 1 (clipped).
    scene = straight_road_scene(red_light_at_x_m=30.0, reference_poses_ego=straight_poses(10.0, 10, accel_mps2=-2.5))
    row = score_trajectory(scene, straight_poses(10.0, 10))
    assert row["tlc"] == 0.0
    assert row["ep_v2"] == 1.0


def test_7_driving_direction_is_not_checked_inside_intersections():
    # The junction pieces are taken off the route: inside the junction the ego is in no route lane. Old: that was
    # 15 m against traffic (DDC 0). NAVSIM does not count metres inside an intersection.
    scene = straight_road_scene(red_light_at_x_m=10.0, junction_length_m=30.0)
    scene = dataclasses.replace(
        scene,
        route_lane_ids=tuple(i for i in scene.route_lane_ids if "junction" not in i),
        map=dataclasses.replace(scene.map, traffic_lights=()),
    )
    assert score_trajectory(scene, straight_poses(10.0, 10))["ddc"] == 1.0


def test_8_ttc_horizons_differ_between_v1_1_and_v2():
    # A slow car far ahead: the ego's box, projected 0.9 s ahead, meets it only after 3.1 s. v1.1 checks every step
    # (TTC 0), v2 only while the lookahead fits in the horizon (TTC 1). Old: one horizon for both.
    lead = Agent.constant_velocity("lead", (38.0 + 2.0, LANE, 0.0), 2.0, 51)
    scene = straight_road_scene(agents=(lead,))
    row = score_trajectory(scene, straight_poses(10.0, 10))
    assert row["nc"] == 1.0
    assert row["ttc"] == 0.0 and row["ttc_v2"] == 1.0


def test_9_history_comfort_reads_1_5_s_of_logged_states():
    # NAVSIM: logged states of the last 1.5 s every 0.1 s, the grid stopping short of now and dropping one more
    # sample: 14 states. Old: a spline through the poses. A logged hard brake fails HC while C passes.
    scene = straight_road_scene()
    history = history_states(scene)
    assert len(history) == 14
    np.testing.assert_allclose(history[:, 0], 10.0 * (np.arange(14) * 0.1 - 1.5))
    braking = dataclasses.replace(
        scene.ego, history_speeds_mps=np.array([14.0, 12.0, 11.0, 10.0]), history_accelerations_mps2=np.full(4, -5.0)
    )
    row = score_trajectory(dataclasses.replace(scene, ego=braking), straight_poses(10.0, 10))
    assert row["c"] == 1.0 and row["hc"] == 0.0


def test_10_extended_comfort_pairs_the_previous_frame():
    # NAVSIM pairs each frame with the one 0.5 s earlier; the open-loop evaluation does the same (see
    # test_open_loop). Here: the pairing itself, a plan that flips from the previous one fails.
    scene = straight_road_scene()
    steady = score_trajectories(scene, straight_poses(10.0, 10)[None])
    previous = PreviousPlan(steady.states[0], elapsed_s=0.5)
    assert score_trajectory(scene, straight_poses(10.0, 10), previous=previous)["ec"] == 1.0
    assert score_trajectory(scene, straight_poses(10.0, 10, accel_mps2=-3.0), previous=previous)["ec"] == 0.0


def test_11_only_on_route_red_lights_count():
    # Old: any red light. A red light on the lane next to the ego's (off the route) does not concern it.
    scene = straight_road_scene(num_lanes=2, ego_lane=0, red_light_at_x_m=30.0)
    off_route = tuple(i for i in scene.route_lane_ids if not i.startswith("lane_1"))
    lights = tuple(light for light in scene.map.traffic_lights if light.lane_id.startswith("lane_1"))
    scene = dataclasses.replace(
        scene, route_lane_ids=off_route, map=dataclasses.replace(scene.map, traffic_lights=lights)
    )
    # The ego's box overlaps the neighbouring junction lane when it drives close to the lane line.
    hugging = lateral_plan(10.0, lambda t: np.clip(t, 0, 1.0))
    assert score_trajectory(scene, hugging)["tlc"] == 1.0


def test_12_the_ego_box_is_navsims_pacifica():
    # A cone 1.10 m beside the ego's path: a 2.0 m-wide box passes it, the 2.297 m Pacifica clips it (NC 0.5).
    cone = Agent.static("cone", (30.0, LANE + 1.10 + 0.5, 0.0))
    scene = straight_road_scene(agents=(cone,))
    assert score_trajectory(scene, straight_poses(10.0, 10))["nc"] == 0.5
    narrow = ScorerConfig(ego=VehicleDimensions(length_m=4.8, width_m=2.0, rear_axle_to_center_m=1.4, wheelbase_m=2.8))
    assert score_trajectory(scene, straight_poses(10.0, 10), config=narrow)["nc"] == 1.0


def test_13_lane_keeping_tests_the_intersection_at_the_box_centre():
    # A stopped ego 0.8 m off the centerline, its rear axle before the junction and its box centre inside it. NAVSIM
    # skips steps whose centre is in an intersection: LK 1. Old (rear axle): 41 steps off-centre, LK 0.
    scene = straight_road_scene(ego_speed_mps=0.0, red_light_at_x_m=30.0)
    pose = np.array([30.0 - 0.7, LANE + 0.8, 0.0])
    ego = dataclasses.replace(scene.ego, pose=pose, history_poses=np.repeat(pose[None], 4, axis=0))
    row = score_trajectory(dataclasses.replace(scene, ego=ego), np.tile([0.0, 0.0, 0.0], (10, 1)))
    assert row["lk"] == 1.0


def test_14_a_corner_on_the_road_edge_is_off_the_road():
    # Membership is "contains": a point on the boundary is outside. Old ("intersects"): inside.
    lane = Lane("lane", np.array([[-100.0, 0.0], [300.0, 0.0]]), 3.5)
    states = track_poses(straight_poses(10.0, 10)[None], 0.5, initial_state(np.zeros(3), 10.0), PACIFICA, 40)[0]
    assert np.all(states[:, 1] == 0.0) and np.all(states[:, 2] == 0.0)
    edge = float(box_corners(np.zeros(3), PACIFICA.length_m, PACIFICA.width_m, PACIFICA.rear_axle_to_center_m)[2, 1])
    base = straight_road_scene(num_lanes=1, ego_lane=0)
    for margin, expected in ((0.0, 0.0), (0.01, 1.0)):
        import shapely

        road = shapely.box(-100.0, edge - margin, 300.0, 1.75)
        scene = dataclasses.replace(base, map=MapData((lane,), road), route_lane_ids=("lane",))
        assert score_trajectory(scene, straight_poses(10.0, 10))["dac"] == expected, margin
    assert lane_union  # the default drivable area is the lanes' union; this test draws its own road edge
