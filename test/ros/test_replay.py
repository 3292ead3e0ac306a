"""Rosbag replay on bags this test records from the embedded world (sqlite3 and MCAP): readable output bags, a
report whose ADE is a number, identical plans on a second run, and the realtime mode against a running planner_node."""

import json

import numpy as np
import pytest
from ros_helpers import image_message, odometry_message, start_node, stop_process

from spanvla_ros.cli import main

pytestmark = pytest.mark.ros


def record_drive(path, storage: str, seconds: float = 6.0) -> None:
    """An expert drive of the highway scene: odometry at 10 Hz, the front camera at 10 Hz, the route command, the
    lane's speed limit, the other cars as object markers and the route ahead."""
    from std_msgs.msg import Float64, String

    from spanvla_ros.ros.bag import BagWriter
    from spanvla_ros.ros.conversions import objects_marker_array, route_message
    from spanvla_ros.scene import object_list, speed_limit_at
    from spanvla_ros.sim import ExpertPlanner, HighwayWorld, WorldConfig
    from spanvla_ros.sim.camera import CameraConfig, FrontCamera

    world = HighwayWorld(WorldConfig(env="highway", duration_s=seconds))
    scene = world.reset(3)
    camera = FrontCamera(CameraConfig(width=128, height=128))
    expert = ExpertPlanner()
    t0 = 100.0
    with BagWriter(path, storage) as writer:
        while not world.done:
            t = t0 + world.time_s
            ns = int(round(t * 1e9))
            x, y, yaw = scene.ego.pose
            writer.write("/vehicle/odom", odometry_message(t, x, y, yaw, scene.ego.speed_mps, "map"), ns)
            writer.write("/vehicle/camera/image_raw", image_message(t, camera.render(scene)), ns)
            writer.write("/vehicle/driving_command", String(data=scene.command.value), ns)
            writer.write("/vehicle/speed_limit", Float64(data=speed_limit_at(scene, 30.0)), ns)
            names, boxes, _ = object_list(scene)
            ids = [int("".join(filter(str.isdigit, name)) or index) for index, name in enumerate(names)]
            writer.write("/vehicle/objects", objects_marker_array(t, "map", ids, boxes), ns)
            writer.write("/vehicle/waypoints", route_message(t, "map", scene.route_centerline_xy), ns)
            scene = world.step(expert.plan(scene))


@pytest.fixture(scope="module", params=["sqlite3", "mcap"])
def recorded_bag(request, tmp_path_factory):
    path = tmp_path_factory.mktemp(f"bag_{request.param}") / "drive"
    record_drive(path, request.param)
    return path, request.param


def test_replay_is_deterministic_and_reports_displacement_errors(recorded_bag, tmp_path):
    from rosbags.highlevel import AnyReader

    bag, storage = recorded_bag
    reports = []
    for run in ("first", "second"):
        assert main(["replay", str(bag), "--out", str(tmp_path / run)]) == 0
        reports.append(json.loads((tmp_path / run / "report.json").read_text()))
    first, second = reports
    assert first["topics"] == {
        "cameras": ["/vehicle/camera/image_raw"], "odometry": "/vehicle/odom", "command": "/vehicle/driving_command",
        "speed_limit": "/vehicle/speed_limit", "objects": "/vehicle/objects", "route": "/vehicle/waypoints",
    }  # fmt: skip
    assert first["plans"] >= 35 and first["plans_with_future"] >= 5
    assert first["plan_dt_s"] == 0.5  # the artefact's spacing
    assert isinstance(first["ade_m"], float) and 0.0 <= first["ade_m"] < 20.0
    assert first["fde_m"] >= 0.0 and 0.0 <= first["comfort_rate"] <= 1.0
    assert first["plans_detail"] == second["plans_detail"]  # same bag, same plans
    validation = first["validation"]  # the planning core's counters
    assert validation["plans"] == first["plans"] and validation["stop_trajectories"] == first["stop_trajectories"]
    assert 0 <= validation["validator_rejections"] <= validation["plans"]
    assert 0 <= validation["collision_guarded"] <= validation["plans"]
    # Every plan after the first reasoning is laid along the recorded route (the expert keeps to its lane).
    assert validation["route_kept"] >= validation["plans"] - validation["stop_trajectories"] - 1
    assert first["dropped_messages"] == 0  # the object lists too were taken (in the odometry's frame)
    assert first["ade_m"] == second["ade_m"]
    with AnyReader([tmp_path / "first" / "outputs"]) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
        assert counts["/spanvla_planner/output/trajectory"] == first["plans"]
        assert counts["/vehicle/odom"] == 60 and counts["/spanvla_planner/output/reasoning"] >= 5
        path_connection = next(c for c in reader.connections if c.topic == "/spanvla_planner/output/trajectory")
        poses = [reader.deserialize(raw, path_connection.msgtype) for _, _, raw in reader.messages([path_connection])]
        assert all(len(p.poses) == 10 for p in poses)
    suffix = ".mcap" if storage == "mcap" else ".db3"
    assert any(p.suffix == suffix for p in (tmp_path / "first" / "outputs").iterdir())
    assert (tmp_path / "first" / "replay.png").stat().st_size > 10_000


def test_replay_names_missing_topics(recorded_bag, tmp_path, capsys):
    bag, _ = recorded_bag
    assert main(["replay", str(bag), "--out", str(tmp_path), "--odometry-topic", "/nope"]) == 1
    assert "no topic /nope" in capsys.readouterr().err
    assert main(["replay", str(tmp_path / "missing"), "--out", str(tmp_path)]) == 1


@pytest.mark.slow
@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_realtime_replay_records_what_the_running_node_publishes(tmp_path, storage):
    # sqlite3 objects may be used only in the thread that made them: the recorder's callbacks (the spin thread)
    # once crashed a sqlite3 output bag.
    from rosbags.highlevel import AnyReader

    bag = tmp_path / "drive"
    record_drive(bag, storage)
    process = start_node(
        "planner_node",
        {"camera_topics": ["/vehicle/camera/image_raw"], "odometry_topic": "/vehicle/odom",
         "command_topic": "/vehicle/driving_command", "use_sim_time": True},
        log=tmp_path / "planner.log",
    )  # fmt: skip
    try:
        code = main(["replay", str(bag), "--out", str(tmp_path / "rt"), "--realtime"])
    finally:
        stop_process(process)
    assert code == 0, (tmp_path / "planner.log").read_text()[-2000:]
    report = json.loads((tmp_path / "rt" / "report.json").read_text())
    assert report["mode"] == "realtime" and report["plans"] >= 20
    assert report["ade_m"] is not None and np.isfinite(report["ade_m"])
    assert report["planning_latency_ms"]["n"] >= 20
    assert report["plan_dt_s"] == pytest.approx(0.5)  # read from the published paths' pose stamps
    with AnyReader([tmp_path / "rt" / "outputs"]) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
    assert counts["/spanvla_planner/output/trajectory"] >= 20 and counts["/vehicle/odom"] >= 50


def test_a_replay_that_makes_no_plan_exits_non_zero(recorded_bag, tmp_path, capsys):
    from spanvla_ros.ros.bag import BagWriter

    _, storage = recorded_bag
    # Every odometry message reports an implausible 100 m/s: the core drops them all, so no cycle ever opens.
    bag = tmp_path / "implausible"
    frame = np.full((64, 64, 3), 128, np.uint8)
    with BagWriter(bag, storage) as writer:
        for i in range(30):
            t = 50.0 + 0.1 * i
            writer.write("/vehicle/odom", odometry_message(t, 100.0 * i * 0.1, 0.0, 0.0, 100.0, "map"), int(t * 1e9))
            writer.write("/vehicle/camera/image_raw", image_message(t, frame), int(t * 1e9))
    code = main(["replay", str(bag), "--out", str(tmp_path / "none")])
    report = json.loads((tmp_path / "none" / "report.json").read_text())
    assert report["plans"] == 0 and report["dropped_messages"] == 30 and code == 1
    assert "no plan was made" in capsys.readouterr().err


def test_the_replay_benchmark_measures_quiet_and_busy_runs():
    from spanvla_ros.benchmarks.replay import run

    result = run(seconds=3.0, width=320, height=180, camera_hz=10.0, busy_cores=(0, 1))
    for name in ("busy_cores_0", "busy_cores_1"):
        measured = result["runs"][name]
        assert measured["plans"] >= 20 and measured["planning_latency_ms"]["n"] == measured["plans"]
        assert np.isfinite(measured["planning_latency_ms"]["p99"]) and measured["realtime_factor"] > 0
    assert result["planning_p99_busy_over_quiet"] > 0
