"""Bad input against the running planner_node over DDS. While a good vehicle stream runs, each case sends broken
messages on the same topics. Each case: the node stays up, a diagnostic names the problem, planning resumes, and no
published path is ever non-finite or outside the plausibility box."""

import time

import numpy as np
import pytest
from ros_helpers import (
    RosProbe,
    Vehicle,
    image_message,
    is_stop,
    odometry_message,
    road_frame,
    start_node,
    stop_process,
    wait_for,
)

pytestmark = [pytest.mark.ros, pytest.mark.xdist_group("bad_input_node")]
CAMERA, ODOM, COMMAND = "/test/camera/image_raw", "/test/odom", "/test/command"


def _image(mutate):
    def make(now):
        msg = image_message(now, road_frame(size=64))
        mutate(msg)
        return msg

    return make


def _odometry(mutate, dt: float = 0.0):
    def make(now):
        msg = odometry_message(now + dt, 0.0, 0.0, 0.0, 10.0)
        mutate(msg)
        return msg

    return make


def _set(**fields):
    def apply(msg):
        for name, value in fields.items():
            target = msg
            *path, last = name.split("__")
            for part in path:
                target = getattr(target, part)
            setattr(target, last, value)

    return apply


def _compressed(payload: bytes):
    def make(now):
        from builtin_interfaces.msg import Time
        from sensor_msgs.msg import CompressedImage

        from spanvla_ros.ros.conversions import seconds_to_stamp

        msg = CompressedImage(format="jpeg")
        msg.header.stamp = seconds_to_stamp(now, Time)
        msg.data = payload
        return msg

    return make


CASES = {
    # name: (topic kind, message factory, text the diagnostic must contain)
    "wrong encoding": ("image", _image(_set(encoding="32FC7")), "unsupported image encoding"),
    "step too short": ("image", _image(_set(step=10)), "shorter than"),
    "size larger than the data": ("image", _image(_set(height=500)), "bytes"),
    "zero size": ("image", _image(_set(width=0, step=0)), "zero size"),
    "huge dimensions": ("image", _image(_set(width=200_000, height=200_000, step=600_000)), "px limit"),
    "garbage jpeg": ("compressed", _compressed(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4), "cannot decode"),
    "truncated jpeg": ("compressed", _compressed(b"\xff\xd8\xff\xe0\x00\x10JFIF"), "cannot decode"),
    "nan odometry": ("odometry", _odometry(_set(pose__pose__position__x=float("nan"))), "NaN"),
    "inf speed": ("odometry", _odometry(_set(twist__twist__linear__x=float("inf"))), "NaN or inf"),
    "non-unit quaternion": ("odometry", _odometry(_set(pose__pose__orientation__w=2.5)), "unit quaternion"),
    "time going backwards": ("odometry", _odometry(lambda m: None, dt=-0.4), "out of order"),
    "position jump": ("odometry", _odometry(_set(pose__pose__position__x=5000.0), dt=0.01), "jumped"),
    "unknown command": ("command", None, "unknown driving command"),
}


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    from diagnostic_msgs.msg import DiagnosticArray
    from nav_msgs.msg import Odometry, Path
    from sensor_msgs.msg import CompressedImage, Image
    from std_msgs.msg import String

    log = tmp_path_factory.mktemp("bad_input") / "planner.log"
    process = start_node(
        "planner_node",
        {
            "camera_topics": [CAMERA, "/test/camera2/image/compressed"],
            "odometry_topic": ODOM,
            "command_topic": COMMAND,
            "diagnostics_rate_hz": 5.0,
            "camera_timeout_s": 1.0,
        },
        log=log,
    )
    probe = RosProbe()
    probe.collect(Path, "/spanvla_planner/output/trajectory")
    probe.collect(DiagnosticArray, "/diagnostics")
    vehicle = Vehicle(probe, CAMERA, second_camera="/test/camera2/image/compressed")
    vehicle.start()
    publishers = {
        "image": probe.node.create_publisher(Image, CAMERA, 10),
        "compressed": probe.node.create_publisher(CompressedImage, "/test/camera2/image/compressed", 10),
        "odometry": probe.node.create_publisher(Odometry, ODOM, 10),
        "command": probe.node.create_publisher(String, COMMAND, 10),
    }
    wait_for(lambda: _planning(probe), 60, f"the first model plan ({log})")
    yield process, probe, publishers, vehicle, log
    vehicle.stop()
    probe.close()
    stop_process(process)


def _planning(probe) -> bool:
    return any(not is_stop(m) for m in probe.messages("/spanvla_planner/output/trajectory")[-5:])


def _statuses(probe):
    return [s for m in probe.messages("/diagnostics") for s in m.status]


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_named_and_planning_goes_on(running, case):
    from std_msgs.msg import String

    process, probe, publishers, vehicle, log = running
    kind, factory, expected = CASES[case]
    probe.clear("/diagnostics")
    end = time.monotonic() + 0.6
    while time.monotonic() < end:
        message = String(data="warp speed") if kind == "command" else factory(time.time())
        publishers[kind].publish(message)
        time.sleep(0.05)
    wait_for(
        lambda: any(expected in s.message and s.level[0] >= 1 for s in _statuses(probe)),
        5,
        f"a diagnostic containing {expected!r} for {case}: {[s.message for s in _statuses(probe)][-8:]}",
    )
    assert process.poll() is None, f"planner_node died on {case}: {log.read_text()[-2000:]}"
    probe.clear("/spanvla_planner/output/trajectory")
    wait_for(lambda: _planning(probe), 20, f"planning to resume after {case}")


def test_ten_times_the_input_rate_keeps_the_planning_rate(running):
    process, probe, publishers, vehicle, log = running
    probe.clear("/spanvla_planner/output/trajectory")
    vehicle.rate_multiplier = 10  # cameras at 100 Hz, odometry at 200 Hz
    time.sleep(3.0)
    vehicle.rate_multiplier = 1
    paths = probe.messages("/spanvla_planner/output/trajectory")
    assert process.poll() is None
    assert paths, "no plan during the flood"
    # Cycles are gated to the planning period: a flood of odometry does not multiply the plans.
    assert len(paths) <= 1.5 * 10 * 3.0 + 3
    wait_for(lambda: _planning(probe), 20, "planning after the flood")


def test_no_published_path_is_ever_invalid(running):
    from spanvla_ros.ros.conversions import path_to_poses

    _, probe, _, _, _ = running
    for message in probe.messages("/spanvla_planner/output/trajectory"):
        _, frame, poses = path_to_poses(message)
        assert frame == "base_link" and poses.shape == (10, 3)
        assert np.isfinite(poses).all() and np.abs(poses[:, :2]).max() <= 200.0
