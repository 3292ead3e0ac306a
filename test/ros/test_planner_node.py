"""planner_node as a real process over DDS: a test node publishes camera images and odometry; the planner publishes
paths in the configured frame at the stamped time, reasoning, diagnostics and timings; a silent camera gives the stop
trajectory and an ERROR diagnostic, and its return brings planning back."""

import threading
import time

import cv2
import numpy as np
import pytest
from ros_helpers import RosProbe, image_message, odometry_message, road_frame, start_node, stop_process, wait_for

from spanvla_ros.planning import stop_poses

pytestmark = pytest.mark.ros
SPEED = 10.0


class Vehicle:
    """Publishes odometry at 20 Hz (driving +x at SPEED) and camera frames at 10 Hz, stamped with wall time."""

    def __init__(self, test: RosProbe, camera_topic: str, compressed: bool = False, frame_id: str = "odom") -> None:
        from nav_msgs.msg import Odometry
        from sensor_msgs.msg import CompressedImage, Image
        from std_msgs.msg import String

        self.test, self.compressed, self.frame_id = test, compressed, frame_id
        self.camera = test.node.create_publisher(CompressedImage if compressed else Image, camera_topic, 10)
        self.odometry = test.node.create_publisher(Odometry, "/test/odom", 10)
        self.command = test.node.create_publisher(String, "/test/command", 10)
        self.camera_on = True
        self.stamps: list[float] = []
        self.frame = road_frame()
        self._running = True
        self._start = time.time()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        wait_for(lambda: self.odometry.get_subscription_count() > 0, 60, "planner_node to subscribe to odometry")
        wait_for(lambda: self.camera.get_subscription_count() > 0, 10, "planner_node to subscribe to the camera")
        time.sleep(0.5)
        self._thread.start()

    def _loop(self) -> None:
        from std_msgs.msg import String

        k = 0
        while self._running:
            now = time.time()
            self.odometry.publish(odometry_message(now, SPEED * (now - self._start), 0.0, 0.0, SPEED, self.frame_id))
            self.stamps.append(round(now, 9))
            if self.camera_on and k % 2 == 0:
                self.camera.publish(self._image(now))
            if k % 20 == 0:
                self.command.publish(String(data="straight"))
            k += 1
            time.sleep(0.05)

    def _image(self, now: float):
        if not self.compressed:
            return image_message(now, self.frame)
        from builtin_interfaces.msg import Time
        from sensor_msgs.msg import CompressedImage

        from spanvla_ros.ros.conversions import seconds_to_stamp

        msg = CompressedImage(format="jpeg")
        msg.header.stamp = seconds_to_stamp(now, Time)
        msg.data = cv2.imencode(".jpg", cv2.cvtColor(self.frame, cv2.COLOR_RGB2BGR))[1].tobytes()
        return msg

    def stop(self) -> None:
        self._running = False
        self._thread.join(timeout=2)


def is_stop(path_msg) -> bool:
    from spanvla_ros.ros.conversions import path_to_poses

    poses = path_to_poses(path_msg)[2]
    expected = stop_poses(SPEED, 10, 0.5, 3.0)
    return bool(np.allclose(poses, expected, atol=0.3))


def levels(diagnostics_msgs, name: str) -> list[int]:
    return [s.level[0] for m in diagnostics_msgs for s in m.status if s.name == f"spanvla_planner: {name}"]


@pytest.fixture(scope="module")
def planner(tmp_path_factory):
    log = tmp_path_factory.mktemp("planner") / "planner.log"
    process = start_node(
        "planner_node",
        {
            "camera_topics": ["/test/camera/image_raw"],
            "odometry_topic": "/test/odom",
            "command_topic": "/test/command",
            "camera_timeout_s": 0.6,
            "diagnostics_rate_hz": 5.0,
        },
        log=log,
    )
    yield process, log
    stop_process(process)


def test_plans_reasoning_diagnostics_and_stop_on_a_silent_camera(planner):
    from diagnostic_msgs.msg import DiagnosticArray
    from nav_msgs.msg import Path
    from std_msgs.msg import Float64, String

    from spanvla_ros.ros.conversions import path_to_poses

    process, log = planner
    test = RosProbe()
    try:
        paths = test.collect(Path, "/spanvla_planner/output/trajectory")
        reasoning = test.collect(String, "/spanvla_planner/output/reasoning")
        test.collect(DiagnosticArray, "/diagnostics")
        timings = test.collect(Float64, "/spanvla_planner/debug/planning_ms")
        vehicle = Vehicle(test, "/test/camera/image_raw")
        vehicle.start()
        wait_for(lambda: len(paths) >= 15 and len(reasoning) >= 2, 40, f"paths and reasoning (log: {log.read_text()})")
        msgs = test.messages("/spanvla_planner/output/trajectory")
        good = [m for m in msgs if not is_stop(m)]
        assert good, "every path was a stop trajectory"
        stamp, frame, poses = path_to_poses(good[-1])
        assert frame == "base_link" and poses.shape == (10, 3) and np.isfinite(poses).all()
        assert round(stamp, 9) in vehicle.stamps  # stamped with the odometry it planned from
        pose_times = [p.header.stamp.sec + p.header.stamp.nanosec * 1e-9 for p in good[-1].poses]
        assert np.allclose(np.diff([stamp, *pose_times]), 0.5, atol=1e-6)
        assert poses[-1, 0] > 10.0  # keeps driving forward at 10 m/s
        assert all(m.data for m in test.messages("/spanvla_planner/output/reasoning"))
        # Planning runs at its own rate between reasoning passes (10 Hz vs 2 Hz).
        assert len(test.messages("/spanvla_planner/output/trajectory")) > 2 * len(reasoning)
        assert timings and all(t.data > 0 for t in test.messages("/spanvla_planner/debug/planning_ms"))
        wait_for(lambda: 0 in levels(test.messages("/diagnostics"), "planning"), 10, "planning OK diagnostics")

        vehicle.camera_on = False
        test.clear("/spanvla_planner/output/trajectory")
        test.clear("/diagnostics")
        wait_for(lambda: any(is_stop(m) for m in test.messages("/spanvla_planner/output/trajectory")), 10, "a stop")
        wait_for(lambda: 2 in levels(test.messages("/diagnostics"), "camera /test/camera/image_raw"), 5, "ERROR")
        camera = [s for m in test.messages("/diagnostics") for s in m.status if "camera" in s.name and s.level[0] == 2]
        assert "stale" in camera[-1].message
        assert any("stop trajectory" in s.message for m in test.messages("/diagnostics") for s in m.status)

        vehicle.camera_on = True
        test.clear("/diagnostics")
        wait_for(lambda: 0 in levels(test.messages("/diagnostics"), "camera /test/camera/image_raw"), 10, "camera OK")
        test.clear("/spanvla_planner/output/trajectory")
        wait_for(
            lambda: any(not is_stop(m) for m in test.messages("/spanvla_planner/output/trajectory")), 10, "recovery"
        )
        vehicle.stop()
        assert process.poll() is None, "planner_node died"
    finally:
        test.close()


def test_compressed_camera_and_a_path_in_the_odometry_frame(tmp_path):
    from nav_msgs.msg import Path

    from spanvla_ros.ros.conversions import path_to_poses

    process = start_node(
        "planner_node",
        {
            "camera_topics": ["/test/front/image/compressed"],
            "odometry_topic": "/test/odom",
            "command_topic": "/test/command",
            "output_frame": "odom",
        },
        log=tmp_path / "planner.log",
    )
    test = RosProbe()
    try:
        paths = test.collect(Path, "/spanvla_planner/output/trajectory")
        vehicle = Vehicle(test, "/test/front/image/compressed", compressed=True, frame_id="odom")
        vehicle.start()
        wait_for(lambda: any(not is_stop(m) for _, m in paths), 40, "a model path")
        good = [m for m in test.messages("/spanvla_planner/output/trajectory") if not is_stop(m)][-1]
        stamp, frame, poses = path_to_poses(good)
        assert frame == "odom"
        ego_x = SPEED * (stamp - vehicle._start)
        assert poses[0, 0] > ego_x and abs(poses[0, 0] - ego_x) < 15.0  # ahead of the ego, in the odom frame
        vehicle.stop()
    finally:
        test.close()
        stop_process(process)
