"""Test helpers for the ROS layer: a test-side rclpy node spinning in a thread, node processes started like
`ros2 run`, and message builders."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from spanvla_ros.ros.processes import BackgroundNode

SPEED = 10.0

ROOT = Path(__file__).resolve().parents[2]


def start_node(module: str, params: dict | None = None, params_file: Path | None = None, log: Path | None = None):
    """`python -m spanvla_ros.ros.<module> --ros-args ...` with parameters; output to ``log``."""
    from spanvla_ros.ros.processes import parameter_args
    from spanvla_ros.ros.processes import start_node as start

    args = ["--params-file", str(params_file)] if params_file is not None else []
    return start(module, args + parameter_args(params or {}), log)


def stop_process(process: subprocess.Popen, timeout_s: float = 10.0) -> int:
    from spanvla_ros.ros.processes import stop_node

    return stop_node(process, timeout_s)


class RosProbe(BackgroundNode):
    """A test-side node (its own context, spun in the background) that collects messages per topic."""

    def __init__(self, name: str = "spanvla_test") -> None:
        super().__init__(name)
        self.received: dict[str, list] = {}
        self._lock = threading.Lock()

    def collect(self, msg_type, topic: str, qos=10) -> list:
        messages: list = []
        self.received[topic] = messages

        def store(msg) -> None:
            with self._lock:
                messages.append((time.monotonic(), msg))

        self.node.create_subscription(msg_type, topic, store, qos)
        return messages

    def messages(self, topic: str) -> list:
        with self._lock:
            return [m for _, m in self.received[topic]]

    def clear(self, topic: str) -> None:
        with self._lock:
            self.received[topic].clear()


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str, step_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(step_s)


def image_message(stamp_s: float, rgb: np.ndarray, encoding: str = "rgb8", pad: int = 0, frame_id: str = "camera"):
    from builtin_interfaces.msg import Time
    from sensor_msgs.msg import Image

    from spanvla_ros.ros.conversions import seconds_to_stamp

    height, width = rgb.shape[:2]
    channels = 1 if rgb.ndim == 2 else rgb.shape[2]
    row = width * channels * rgb.dtype.itemsize
    data = np.zeros((height, row + pad), np.uint8)
    data[:, :row] = np.frombuffer(np.ascontiguousarray(rgb).tobytes(), np.uint8).reshape(height, row)
    msg = Image(height=height, width=width, encoding=encoding, step=row + pad, is_bigendian=0)
    msg.header.stamp, msg.header.frame_id = seconds_to_stamp(stamp_s, Time), frame_id
    msg.data = data.tobytes()
    return msg


def odometry_message(stamp_s: float, x: float, y: float, yaw: float, speed: float, frame_id: str = "odom"):
    from builtin_interfaces.msg import Time

    from spanvla_ros.ros import conversions

    return conversions.odometry_message(
        conversions.seconds_to_stamp(stamp_s, Time), (x, y, yaw), speed, frame_id, "base_link"
    )


def road_frame(seed: int = 0, size: int = 160) -> np.ndarray:
    """A camera frame of the embedded world's straight road (what the model was trained on)."""
    from spanvla_ros.scene.builders import straight_road_scene
    from spanvla_ros.sim.camera import CameraConfig, FrontCamera

    return FrontCamera(CameraConfig(width=size, height=size)).render(straight_road_scene())


class Vehicle:
    """Publishes odometry at 20 Hz (driving +x at SPEED) and camera frames at 10 Hz (times ``rate_multiplier``),
    stamped with wall time; optionally a second, compressed camera."""

    def __init__(
        self,
        test: RosProbe,
        camera_topic: str,
        compressed: bool = False,
        frame_id: str = "odom",
        second_camera: str | None = None,
    ) -> None:
        from nav_msgs.msg import Odometry
        from sensor_msgs.msg import CompressedImage, Image
        from std_msgs.msg import String

        self.test, self.compressed, self.frame_id = test, compressed, frame_id
        self.camera = test.node.create_publisher(CompressedImage if compressed else Image, camera_topic, 10)
        self.second = test.node.create_publisher(CompressedImage, second_camera, 10) if second_camera else None
        self.odometry = test.node.create_publisher(Odometry, "/test/odom", 10)
        self.command = test.node.create_publisher(String, "/test/command", 10)
        self.camera_on = True
        self.rate_multiplier = 1
        self.stamps: list[float] = []
        self.frame = road_frame()
        self._jpeg = cv2.imencode(".jpg", cv2.cvtColor(self.frame, cv2.COLOR_RGB2BGR))[1].tobytes()
        self._running = True
        self._start = time.time()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        wait_for(lambda: self.odometry.get_subscription_count() > 0, 60, "planner_node to subscribe to odometry")
        wait_for(lambda: self.camera.get_subscription_count() > 0, 60, "planner_node to subscribe to the camera")
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
                self.camera.publish(self._image(now, self.compressed))
                if self.second is not None:
                    self.second.publish(self._image(now, True))
            if k % 20 == 0:
                self.command.publish(String(data="straight"))
            k += 1
            time.sleep(0.05 / self.rate_multiplier)

    def _image(self, now: float, compressed: bool):
        if not compressed:
            return image_message(now, self.frame)
        from builtin_interfaces.msg import Time
        from sensor_msgs.msg import CompressedImage

        from spanvla_ros.ros.conversions import seconds_to_stamp

        msg = CompressedImage(format="jpeg")
        msg.header.stamp = seconds_to_stamp(now, Time)
        msg.data = self._jpeg
        return msg

    def stop(self) -> None:
        self._running = False
        self._thread.join(timeout=2)


def is_stop(path_msg) -> bool:
    from spanvla_ros.planning import stop_poses
    from spanvla_ros.ros.conversions import path_to_poses

    poses = path_to_poses(path_msg)[2]
    expected = stop_poses(SPEED, 10, 0.5, 3.0)
    return bool(np.allclose(poses, expected, atol=0.3))


def levels(diagnostics_msgs, name: str) -> list[int]:
    return [s.level[0] for m in diagnostics_msgs for s in m.status if s.name == f"spanvla_planner: {name}"]
