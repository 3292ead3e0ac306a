import numpy as np

from spanvla_ros.data.reasoning import (
    Decision,
    critical_components,
    decision_consistency,
    decision_from_trajectory,
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
