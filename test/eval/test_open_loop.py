"""Open-loop evaluation pairs each frame with the one 0.5 s before it, as NAVSIM's extended comfort does."""

import dataclasses

from spanvla_ros.eval.open_loop import PREVIOUS_FRAME, evaluate_open_loop, observable_scene
from spanvla_ros.planning import ConstantVelocityPlanner, Planner
from spanvla_ros.scene import Trajectory, straight_poses, straight_road_scene


class FlipFlopPlanner(Planner):
    """Cruises on even frames, brakes hard on odd ones: consecutive plans disagree."""

    name = "flip-flop"

    def plan(self, scene):
        if round(scene.metadata["time_s"] / 0.5) % 2 == 0:
            return Trajectory(straight_poses(10.0, 10))
        return Trajectory(straight_poses(10.0, 10, accel_mps2=-3.0))


def paired_scene():
    previous = dataclasses.replace(straight_road_scene(ego_x_m=-5.0), metadata={"time_s": 0.0})
    now = straight_road_scene(ego_x_m=0.0)
    return dataclasses.replace(now, metadata={"time_s": 0.5, PREVIOUS_FRAME: previous})


def test_a_planner_that_changes_its_mind_between_frames_fails_extended_comfort():
    summary = evaluate_open_loop(FlipFlopPlanner(), [paired_scene()], progress=False)
    assert summary["n_paired"] == 1
    assert summary["ec"] == 0.0
    steady = evaluate_open_loop(ConstantVelocityPlanner(), [paired_scene()], progress=False)
    assert steady["ec"] == 1.0


def test_without_a_previous_frame_extended_comfort_is_not_held_against_the_plan():
    scene = dataclasses.replace(straight_road_scene(), metadata={"time_s": 0.5})
    summary = evaluate_open_loop(FlipFlopPlanner(), [scene], progress=False)
    assert summary["n_paired"] == 0 and summary["ec"] == 1.0


def test_the_planner_sees_neither_the_previous_frame_nor_the_logged_futures():
    scene = dataclasses.replace(paired_scene(), human_poses_ego=straight_poses(10.0, 10))
    seen = observable_scene(scene)
    assert PREVIOUS_FRAME not in seen.metadata
    assert seen.human_poses_ego is None and seen.reference_poses_ego is None
