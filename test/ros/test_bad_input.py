"""Bad input against the running planner_node over DDS. While a good vehicle stream runs, each case sends broken
messages on the same topics. Each case: the node stays up, a diagnostic names the problem, planning resumes, and no
published path is ever non-finite or outside the plausibility box."""

import time

import numpy as np
import pytest
from ros_helpers import (
    SPEED,
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
CAMERA, ODOM, COMMAND, OBJECTS = "/test/camera/image_raw", "/test/odom", "/test/command", "/test/objects"
ROUTE = "/test/route"


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


#: The running Vehicle's start time, so a case can put a message where the vehicle is.
_TRACK: dict[str, float] = {}


def _on_track(now: float, speed: float):
    """Odometry at the vehicle's position with another speed (10 → ``speed`` m/s within milliseconds)."""
    return odometry_message(now + 0.005, SPEED * (now + 0.005 - _TRACK["start"]), 0.0, 0.0, speed)


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
    "finite but impossible speed": ("odometry", _odometry(_set(twist__twist__linear__x=1e9)), "max_speed_mps"),
    "speed step": ("odometry", lambda now: _on_track(now, 60.0), "implausible speed change"),
    "unknown command": ("command", None, "unknown driving command"),
}


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
    from nav_msgs.msg import Odometry, Path
    from sensor_msgs.msg import CompressedImage, Image
    from std_msgs.msg import String
    from visualization_msgs.msg import MarkerArray

    from spanvla_ros.ros.conversions import latched_qos

    log = tmp_path_factory.mktemp("bad_input") / "planner.log"
    process = start_node(
        "planner_node",
        {
            "camera_topics": [CAMERA, "/test/camera2/image/compressed"],
            "odometry_topic": ODOM,
            "command_topic": COMMAND,
            "objects_topic": OBJECTS,
            "route_topic": ROUTE,
            "diagnostics_rate_hz": 5.0,
            "camera_timeout_s": 1.0,
        },
        log=log,
    )
    probe = RosProbe()
    vehicle = None
    try:  # the node process must not outlive a failed start: it would publish into the next tests
        probe.collect(Path, "/spanvla_planner/output/trajectory")
        probe.collect(DiagnosticArray, "/diagnostics")
        probe.collect(DiagnosticStatus, "/spanvla_planner/output/validation_status")
        vehicle = Vehicle(probe, CAMERA, second_camera="/test/camera2/image/compressed")
        vehicle.start()
        _TRACK["start"] = vehicle._start
        publishers = {
            "image": probe.node.create_publisher(Image, CAMERA, 10),
            "compressed": probe.node.create_publisher(CompressedImage, "/test/camera2/image/compressed", 10),
            "odometry": probe.node.create_publisher(Odometry, ODOM, 10),
            "command": probe.node.create_publisher(String, COMMAND, 10),
            "objects": probe.node.create_publisher(MarkerArray, OBJECTS, 10),
            "route": probe.node.create_publisher(Path, ROUTE, latched_qos()),
        }
        wait_for(lambda: _planning(probe), 60, f"the first model plan ({log})")
        yield process, probe, publishers, vehicle, log
    finally:
        if vehicle is not None:
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
    wait_for(lambda: _planning(probe), 60, f"planning to resume after {case}")


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
    wait_for(lambda: _planning(probe), 60, "planning after the flood")


def test_a_fuzzer_gets_no_invalid_path_out(running):
    """Seeded hostile messages on every input topic: huge, tiny, NaN and inf numbers, bad quaternions, stamps out of
    order, random image sizes and encodings, random commands, object lists with absurd boxes, frames and marker
    types, routes with absurd, repeated or zigzag points in any frame. The node stays up and every path it publishes
    is finite, inside the plausibility box and spaced as the validator allows."""
    from std_msgs.msg import String

    from spanvla_ros.ros.conversions import objects_marker_array, route_message

    process, probe, publishers, vehicle, log = running
    rng = np.random.default_rng(2026)
    numbers = [0.0, -0.0, 1e-300, -1e9, 1e9, 1e300, float("nan"), float("inf"), -float("inf"), 70.0, 71.0, 3.0]

    def number():
        return float(rng.choice(numbers)) if rng.random() < 0.6 else float(rng.normal(0.0, 100.0))

    sent = 0
    probe.clear("/spanvla_planner/output/trajectory")
    for _ in range(300):
        kinds = ["odometry", "odometry", "image", "compressed", "command", "objects", "route"]
        now, kind = time.time(), rng.choice(kinds)
        if kind == "odometry":
            msg = odometry_message(now + float(rng.choice([0.0, -0.5, 0.01, 5.0])), number(), number(), number(),
                                   number())  # fmt: skip
            msg.pose.pose.orientation.w = float(rng.choice([1.0, 0.0, 2.0, float("nan")]))
            msg.header.frame_id = str(rng.choice(["odom", "map", "", "x" * 300]))
        elif kind == "image":
            size = int(rng.choice([1, 7, 64, 160]))
            msg = image_message(now, rng.integers(0, 255, (size, size, 3), dtype=np.uint8))
            msg.encoding = str(rng.choice(["rgb8", "bgr8", "mono8", "16UC1", "yuv422", "garbage"]))
            msg.step = int(rng.choice([msg.step, 0, 1, 1 << 30]))
        elif kind == "compressed":
            msg = _compressed(rng.integers(0, 255, int(rng.integers(0, 4000)), dtype=np.uint8).tobytes())(now)
        elif kind == "objects":
            count = int(rng.integers(0, 5))
            boxes = np.array([[number() for _ in range(5)] for _ in range(count)]).reshape(-1, 5)
            ids = [int(i) for i in rng.integers(-5, 5, count)]
            msg = objects_marker_array(now + float(rng.choice([0.0, -0.5, 5.0])), str(rng.choice(["odom", "map", ""])),
                                       ids, np.nan_to_num(boxes, nan=0.0, posinf=1e9, neginf=-1e9))  # fmt: skip
            for marker in msg.markers:
                marker.type = int(rng.choice([1, 1, 2, 4]))
                marker.pose.orientation.w = float(rng.choice([1.0, 0.0, float("nan")]))
                marker.scale.x = number()
        elif kind == "route":
            count = int(rng.choice([0, 1, 2, 5, 40]))
            if rng.random() < 0.5:  # near the car, so that it is followed: a zigzag along its way
                x = SPEED * (now - vehicle._start) + np.arange(count) * 2.0 - 20.0
                xy = np.column_stack([x, rng.normal(0.0, 2.0, count)])
            else:
                xy = np.array([[number(), number()] for _ in range(count)]).reshape(-1, 2)
            frame = str(rng.choice(["odom", "odom", "map", ""]))
            msg = route_message(now, frame, np.nan_to_num(xy, nan=0.0, posinf=1e300, neginf=-1e300))
            if count and rng.random() < 0.3:
                msg.poses[0].pose.position.x = float(rng.choice([float("nan"), float("inf")]))
        else:
            msg = String(data="".join(rng.choice(list("abcdefgh \x00é"), int(rng.integers(0, 50)))))
        publishers[kind].publish(msg)
        sent += 1
        time.sleep(0.01)
    assert sent == 300
    assert process.poll() is None, f"planner_node died under the fuzzer: {log.read_text()[-2000:]}"
    wait_for(lambda: _planning(probe), 60, "planning after the fuzzer")
    _assert_every_path_valid(probe)


def _assert_every_path_valid(probe):
    from spanvla_ros.planning.validator import ValidatorConfig
    from spanvla_ros.ros.conversions import path_to_poses

    paths = probe.messages("/spanvla_planner/output/trajectory")
    assert paths
    interval = ValidatorConfig().max_point_interval_m
    for message in paths:
        _, frame, poses = path_to_poses(message)
        assert frame == "base_link" and poses.shape == (10, 3)
        assert np.isfinite(poses).all() and np.abs(poses[:, :2]).max() <= 200.0
        steps = np.hypot(*np.diff(np.vstack([np.zeros(3), poses])[:, :2], axis=0).T)
        assert steps.max() <= interval


def test_no_published_path_is_ever_invalid_and_each_plan_reports_its_validation(running):
    _, probe, _, _, _ = running
    _assert_every_path_valid(probe)
    statuses = probe.messages("/spanvla_planner/output/validation_status")
    assert statuses and all(s.name == "spanvla_planner: trajectory validation" for s in statuses)
    keys = {value.key for value in statuses[-1].values}
    assert {"validator_rejections", "stop_trajectories", "backward_motion", "forward_length"} <= keys
