"""The closed-loop demo end to end, short: sim_node and planner_node as processes over DDS, a report with numbers
and a readable MCAP bag of every topic."""

import json

import pytest

from spanvla_ros.cli import main

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_demo_drives_a_closed_loop_episode_and_reports_it(tmp_path, capsys):
    from rosbags.highlevel import AnyReader

    out = tmp_path / "demo"
    code = main(["demo", "--out", str(out), "--episodes", "1", "--duration", "4", "--seed", "1"])
    report = json.loads((out / "report.json").read_text())
    assert code == 0, (report["problems"], (out / "planner.log").read_text()[-2000:])
    printed = capsys.readouterr().out
    assert "demo OK" in printed and "validator:" in printed
    episode = report["episodes"][0]
    assert episode["ticks"] == 40 and episode["env"] == "merge"  # seed 1 → the second scene
    assert report["late_plans"] <= 4
    assert 0.0 <= report["driving_score"] <= 1.0 and report["route_completion"] > 0.05  # the ego moved
    assert report["plans_scored"] >= 36 and 0.0 <= report["pdms"] <= 1.0
    latency = report["planning_latency_ms"]
    assert latency["n"] >= 36 and 0 < latency["p50"] <= latency["p99"]
    assert (out / "episodes" / "episode_1.png").stat().st_size > 10_000
    # The episode's video: one frame per tick, with the reasoning the planner published drawn under the view.
    import cv2

    assert report["videos"] == [str(out / "episodes" / "episode_1.mp4")]
    capture = cv2.VideoCapture(report["videos"][0])
    frames = 0
    while capture.read()[0]:
        frames += 1
    assert frames == 40
    validation = report["validation"]  # the planner's own counters, read back from the bag
    assert validation["plans"] >= 36 and 0 <= validation["validator_rejections"] <= validation["plans"]
    with AnyReader([out / "bag"]) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
        assert counts["/carla/ego_vehicle/odometry"] >= 40
        assert counts["/spanvla_planner/output/trajectory"] >= 36
        assert counts["/carla/ego_vehicle/rgb_front/image"] >= 30
        path_connection = next(c for c in reader.connections if c.topic == "/spanvla_planner/output/trajectory")
        _, _, raw = next(reader.messages(connections=[path_connection]))
        assert len(reader.deserialize(raw, path_connection.msgtype).poses) == 10
    assert report["bag"]["messages"] == sum(counts.values())
