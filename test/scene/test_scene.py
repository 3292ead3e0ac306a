import numpy as np
import pytest
import shapely

from spanvla_ros.scene import (
    Agent,
    AgentKind,
    EgoState,
    MapData,
    Scene,
    SceneError,
    Trajectory,
    TrajectoryError,
    box_corners,
    ego_to_world,
    lane_relation,
    load_scene,
    load_trajectory,
    save_scene,
    save_trajectory,
    straight_poses,
    straight_road_scene,
    world_to_ego,
)


def busy_scene() -> Scene:
    agents = (
        Agent.constant_velocity("car", (30.0, 3.5, 0.0), 8.0, 41),
        Agent.constant_velocity(
            "ped", (40.0, -3.0, np.pi / 2), 1.2, 41, kind=AgentKind.PEDESTRIAN, length_m=0.6, width_m=0.6
        ),
        Agent.static("cone", (60.0, 0.0, 0.3)),
    )
    return straight_road_scene(
        agents=agents, oncoming_lanes=1, red_light_at_x_m=50.0, reference_poses_ego=straight_poses(10.0, 10)
    )


@pytest.mark.parametrize("suffix", [".json", ".npz"])
def test_scene_round_trips_through_files(tmp_path, suffix):
    scene = busy_scene()
    loaded = load_scene(save_scene(scene, tmp_path / f"scene{suffix}"))
    assert loaded.token == scene.token
    assert [lane.id for lane in loaded.map.lanes] == [lane.id for lane in scene.map.lanes]
    assert [lane.oncoming for lane in loaded.map.lanes] == [lane.oncoming for lane in scene.map.lanes]
    assert loaded.map.drivable_area.equals(scene.map.drivable_area)
    assert [light.state for light in loaded.map.traffic_lights] == [light.state for light in scene.map.traffic_lights]
    for a, b in zip(loaded.agents, scene.agents, strict=True):
        assert a.kind is b.kind
        np.testing.assert_array_equal(a.poses, b.poses)
        np.testing.assert_array_equal(a.velocities_mps, b.velocities_mps)
    np.testing.assert_array_equal(loaded.ego.history_poses, scene.ego.history_poses)
    np.testing.assert_array_equal(loaded.reference_poses_ego, scene.reference_poses_ego)
    assert loaded.ego.dimensions == scene.ego.dimensions


def test_npz_scene_is_loaded_without_pickle(tmp_path):
    path = save_scene(busy_scene(), tmp_path / "scene.npz")
    with np.load(path, allow_pickle=False) as archive:
        assert "__document__" in archive
        assert all(archive[key].dtype != object for key in archive)


def test_frame_transforms_are_inverse():
    rng = np.random.default_rng(0)
    poses = rng.normal(size=(20, 3)) * [10, 10, 1]
    ego = np.array([3.0, -2.0, 0.7])
    back = world_to_ego(ego_to_world(poses, ego), ego)
    np.testing.assert_allclose(back[:, :2], poses[:, :2], atol=1e-9)
    np.testing.assert_allclose(np.cos(back[:, 2] - poses[:, 2]), 1.0, atol=1e-9)


def test_box_corners_of_a_rear_axle_pose():
    corners = box_corners(np.array([[0.0, 0.0, np.pi / 2]]), 4.0, 2.0, center_offset_m=1.0)[0]
    # Heading +y: the centre is 1 m ahead (y = 1), front edge at y = 3, left side at x = -1.
    np.testing.assert_allclose(corners, [[-1, 3], [-1, -1], [1, -1], [1, 3]], atol=1e-12)


def test_validation_rejects_a_map_without_lanes():
    scene = straight_road_scene()
    empty = Scene(MapData((), scene.map.drivable_area), (), scene.ego, (), scene.route_centerline_xy)
    with pytest.raises(SceneError, match="no lanes"):
        empty.validate()


def test_validation_rejects_an_empty_drivable_area():
    scene = straight_road_scene()
    bad = Scene(
        MapData(scene.map.lanes, shapely.Polygon()), (), scene.ego, scene.route_lane_ids, scene.route_centerline_xy
    )
    with pytest.raises(SceneError, match="drivable area is empty"):
        bad.validate()


def test_validation_rejects_zero_length_history():
    scene = straight_road_scene()
    ego = EgoState(scene.ego.pose, 10.0, 0.0, np.zeros((0, 3)))
    with pytest.raises(SceneError, match="history is empty"):
        Scene(scene.map, (), ego, scene.route_lane_ids, scene.route_centerline_xy).validate()


def test_validation_rejects_nan_agents_and_short_futures():
    scene = straight_road_scene()
    nan_agent = Agent.constant_velocity("nan", (10.0, 0.0, 0.0), 5.0, 41)
    nan_agent.poses[3, 1] = np.nan
    with pytest.raises(SceneError, match="agent 'nan' poses: contains NaN"):
        Scene(scene.map, (nan_agent,), scene.ego, scene.route_lane_ids, scene.route_centerline_xy).validate()
    short = Agent.constant_velocity("short", (10.0, 0.0, 0.0), 5.0, 10)
    with pytest.raises(SceneError, match="horizon needs 41"):
        Scene(scene.map, (short,), scene.ego, scene.route_lane_ids, scene.route_centerline_xy).validate()


def test_validation_rejects_unknown_route_lane():
    scene = straight_road_scene()
    with pytest.raises(SceneError, match="unknown lane ids"):
        Scene(scene.map, (), scene.ego, ("nowhere",), scene.route_centerline_xy).validate()


def test_load_scene_reports_missing_and_malformed_files(tmp_path):
    with pytest.raises(SceneError, match="not found"):
        load_scene(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(SceneError, match="not valid JSON"):
        load_scene(broken)
    partial = tmp_path / "partial.json"
    partial.write_text('{"format_version": 1, "map": {}}')
    with pytest.raises(SceneError, match="not a valid scene document"):
        load_scene(partial)


@pytest.mark.parametrize(
    "poses, message",
    [
        (np.zeros((10, 2)), "shape \\[N, 3\\]"),
        (np.zeros((0, 3)), "no poses"),
        (np.array([[1.0, np.nan, 0.0]]), "non-finite"),
        (np.array([[1.0, 0.0, np.inf]]), "non-finite"),
    ],
)
def test_trajectory_validation(poses, message):
    with pytest.raises(TrajectoryError, match=message):
        Trajectory(poses)


@pytest.mark.parametrize("suffix", [".json", ".npy"])
def test_trajectory_files_round_trip(tmp_path, suffix):
    trajectory = Trajectory(straight_poses(7.0, 10), 0.5)
    loaded = load_trajectory(save_trajectory(trajectory, tmp_path / f"t{suffix}"))
    np.testing.assert_array_equal(loaded.poses, trajectory.poses)
    assert loaded.dt_s == 0.5


def test_lane_relation_takes_the_nearest_lane_running_the_poses_way():
    scene = straight_road_scene(num_lanes=2, lane_width_m=3.5, oncoming_lanes=1)  # lanes at y = 0, 3.5; oncoming 7
    lanes = scene.map.lanes
    relation = lane_relation(lanes, np.array([20.0, 0.6, 0.05]))
    assert relation.lane_id == "lane_0"
    assert relation.offset_m == pytest.approx(0.6)
    assert relation.heading_error_rad == pytest.approx(0.05)
    # Right of lane_1's centre, pointing right of the road.
    relation = lane_relation(lanes, np.array([20.0, 2.9, -0.1]))
    assert relation.lane_id == "lane_1"
    assert (relation.offset_m, relation.heading_error_rad) == pytest.approx((-0.6, -0.1))
    # Nearest to the oncoming lane's centre, but driving against it: the forward lane is taken.
    relation = lane_relation(lanes, np.array([20.0, 6.5, 0.0]))
    assert relation.lane_id == "lane_1" and relation.offset_m == pytest.approx(3.0)
    # Across the road: no lane runs that way.
    assert lane_relation(lanes, np.array([20.0, 1.0, np.pi / 2])) is None
