import dataclasses

import numpy as np
import pytest

from spanvla_ros.data.reasoning import (
    LEAD_RANGE_M,
    ROUTE_LOOKAHEAD_M,
    Decision,
    critical_components,
    decision_consistency,
    decision_from_trajectory,
    driving_state,
    label_sample,
)
from spanvla_ros.scene import Agent, AgentKind, straight_poses, straight_road_scene
from spanvla_ros.text_format import FAST_MODE_TEXT, THINK_START


def test_empty_road_gets_the_fast_mode_label():
    scene = straight_road_scene()
    label = label_sample(scene, straight_poses(10.0, 10), np.random.default_rng(0))
    assert label.mode == "fast" and label.text() == FAST_MODE_TEXT


def test_braking_lead_gives_a_slow_chain_of_thought_with_the_component():
    t = np.arange(41) * 0.1
    speed = np.maximum(10.0 - 4.0 * t, 0.0)
    x = 20.0 + np.concatenate([[0.0], np.cumsum(speed[:-1] * 0.1)])
    poses = np.column_stack([x, np.full(41, 3.5), np.zeros(41)])
    lead = Agent("lead", AgentKind.VEHICLE, 4.8, 2.0, poses, np.column_stack([speed, np.zeros(41)]))
    scene = straight_road_scene(agents=(lead,))
    components = critical_components(scene)
    assert components and components[0].behaviour == "braking" and components[0].location == "ahead"
    texts = {
        label_sample(scene, straight_poses(10.0, 10, accel_mps2=-2.0), np.random.default_rng(s)).text()
        for s in range(8)
    }
    assert all(text.startswith(THINK_START) and "decelerate" in text for text in texts)
    assert len(texts) > 1  # several phrasings


def test_decisions_and_consistency():
    lane_change = straight_poses(12.0, 10)
    lane_change[:, 1] = np.clip(np.arange(1, 11) * 0.5 - 0.5, 0, 3.5)
    assert decision_from_trajectory(lane_change, 12.0) == Decision("keep", "change_lane_left")
    assert decision_from_trajectory(straight_poses(12.0, 10, accel_mps2=-3.0), 12.0).longitudinal == "stop"
    assert decision_from_trajectory(straight_poses(8.0, 10, accel_mps2=1.0), 8.0).longitudinal == "accelerate"
    assert decision_consistency(Decision("keep", "change_lane_left"), lane_change, 12.0) == 1.0
    assert decision_consistency(Decision("keep", "change_lane_right"), lane_change, 12.0) == 0.5
    assert decision_consistency(Decision("accelerate", "change_lane_right"), lane_change, 12.0) == 0.0


def test_driving_state_reads_lane_lead_and_road_ahead():
    ahead = Agent.constant_velocity("lead", (30.0, 0.3, 0.0), 8.0, 41)
    beside = Agent.constant_velocity("beside", (10.0, 3.5, 0.0), 12.0, 41)  # the next lane: not a lead
    scene = straight_road_scene(num_lanes=2, ego_lane=0, ego_speed_mps=10.0, agents=(ahead, beside))
    state = driving_state(scene)
    assert state.lane_offset_m == pytest.approx(0.0) and state.lane_heading_error_rad == pytest.approx(0.0)
    assert state.lead_gap_m == pytest.approx(30.0) and state.lead_closing_speed_mps == pytest.approx(2.0)
    assert state.route_heading_ahead_rad == pytest.approx((0.0, 0.0))
    assert state.vector().shape == (4 + len(ROUTE_LOOKAHEAD_M),)
    # No lead: the gap reads as the range, nothing closing.
    empty = driving_state(straight_road_scene(num_lanes=2, ego_lane=0, agents=(beside,)))
    assert (empty.lead_gap_m, empty.lead_closing_speed_mps) == (LEAD_RANGE_M, 0.0)


def test_driving_state_sees_the_ego_off_centre_and_turned():
    scene = straight_road_scene(num_lanes=2, ego_lane=0)
    pose = np.array([0.0, 0.5, 0.1])  # 0.5 m left of lane 0's centre, pointing 0.1 rad left
    turned = dataclasses.replace(scene, ego=dataclasses.replace(scene.ego, pose=pose))
    state = driving_state(turned)
    assert state.lane_offset_m == pytest.approx(0.5) and state.lane_heading_error_rad == pytest.approx(0.1)
    assert state.route_heading_ahead_rad == pytest.approx((-0.1, -0.1))  # the road runs 0.1 rad right of the ego
