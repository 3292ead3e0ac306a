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


def test_ade_and_plans_starting_behind_a_moving_ego_are_reported():
    import numpy as np

    class Behind(Planner):
        name = "behind"

        def plan(self, scene):
            return Trajectory(straight_poses(10.0, 10) - [[8.0, 0.0, 0.0]])  # 8 m behind where it should be

    scene = dataclasses.replace(
        straight_road_scene(ego_x_m=0.0, ego_speed_mps=10.0), reference_poses_ego=straight_poses(10.0, 10)
    )
    ahead = evaluate_open_loop(ConstantVelocityPlanner(), [scene], progress=False)
    behind = evaluate_open_loop(Behind(), [scene], progress=False)
    assert ahead["plans_starting_behind"] == 0 and ahead["ade_m"] < 0.5
    assert behind["plans_starting_behind"] == 1 and np.isclose(behind["ade_m"], 8.0)


def test_frame_ablations_blank_or_swap_what_the_camera_shows():
    import numpy as np
    import pytest

    from spanvla_ros.eval.open_loop import ablate_frames

    scenes = [
        dataclasses.replace(straight_road_scene(), metadata={"camera_frames": np.full((2, 4, 4, 3), k, np.uint8)})
        for k in range(3)
    ]
    assert ablate_frames(scenes, "as-seen") is scenes
    blank = ablate_frames(scenes, "blank")
    assert all((s.metadata["camera_frames"] == 128).all() for s in blank)
    shuffled = ablate_frames(scenes, "shuffled")
    assert [int(s.metadata["camera_frames"][0, 0, 0, 0]) for s in shuffled] == [1, 2, 0]
    with pytest.raises(ValueError, match="unknown frame ablation"):
        ablate_frames(scenes, "upside-down")
