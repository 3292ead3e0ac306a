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
