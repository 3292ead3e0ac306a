import numpy as np
import pytest

from spanvla_ros.eval import score_trajectory
from spanvla_ros.planning import ConstantVelocityPlanner, PlannerConfig
from spanvla_ros.scene import Agent, AgentKind, straight_road_scene


def test_constant_velocity_keeps_speed_and_heading():
    scene = straight_road_scene(ego_speed_mps=12.0)
    trajectory = ConstantVelocityPlanner().plan(scene)
    assert trajectory.poses.shape == (10, 3)
    np.testing.assert_allclose(trajectory.poses[:, 0], 12.0 * 0.5 * np.arange(1, 11))
    np.testing.assert_allclose(trajectory.poses[:, 1:], 0.0)


def test_constant_velocity_drives_into_a_stopped_lead_car():
    stopped = Agent.static("stopped", (35.0, 3.5, 0.0), 4.8, 2.0, kind=AgentKind.VEHICLE)
    scene = straight_road_scene(agents=(stopped,))
    trajectory = ConstantVelocityPlanner().plan(scene)
    assert score_trajectory(scene, trajectory.poses, trajectory.dt_s)["nc"] == 0.0


def test_planner_config_is_validated():
    with pytest.raises(ValueError, match="num_poses"):
        PlannerConfig(num_poses=0)
    assert ConstantVelocityPlanner(PlannerConfig(num_poses=8, dt_s=0.5)).plan(straight_road_scene()).poses.shape == (
        8,
        3,
    )
