"""planner_node as a real process over DDS: a test node publishes camera images and odometry; the planner publishes
paths in the configured frame at the stamped time, reasoning, diagnostics and timings; a silent camera gives the stop
trajectory and an ERROR diagnostic, and its return brings planning back."""

import numpy as np
import pytest
from ros_helpers import SPEED, RosProbe, Vehicle, is_stop, levels, start_node, stop_process, wait_for

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def planner(tmp_path_factory):
    log = tmp_path_factory.mktemp("planner") / "planner.log"
    process = start_node(
        "planner_node",
        {
            "camera_topics": ["/test/camera/image_raw"],
            "odometry_topic": "/test/odom",
            "command_topic": "/test/command",
            "speed_limit_topic": "/test/speed_limit",
            "objects_topic": "/test/objects",
            "route_topic": "/test/route",
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
        wait_for(lambda: 0 in levels(test.messages("/diagnostics"), "planning"), 60, "planning OK diagnostics")

        vehicle.camera_on = False
        test.clear("/spanvla_planner/output/trajectory")
        test.clear("/diagnostics")
        wait_for(
            lambda: (
                any(is_stop(m) for m in test.messages("/spanvla_planner/output/trajectory"))
                and 2 in levels(test.messages("/diagnostics"), "camera /test/camera/image_raw")
            ),
            60,
            "a stop for the stale camera",
        )
        wait_for(lambda: 2 in levels(test.messages("/diagnostics"), "camera /test/camera/image_raw"), 30, "ERROR")
        camera = [s for m in test.messages("/diagnostics") for s in m.status if "camera" in s.name and s.level[0] == 2]
        assert "stale" in camera[-1].message
        # The stop the stale camera causes is named by the planning diagnostic (it may trail the camera's ERROR).
        wait_for(
            lambda: any("stop trajectory" in s.message for m in test.messages("/diagnostics") for s in m.status),
            30,
            "a planning diagnostic naming the stop trajectory",
        )

        vehicle.camera_on = True
        test.clear("/diagnostics")
        wait_for(lambda: 0 in levels(test.messages("/diagnostics"), "camera /test/camera/image_raw"), 60, "camera OK")
        test.clear("/spanvla_planner/output/trajectory")
        wait_for(
            lambda: any(not is_stop(m) for m in test.messages("/spanvla_planner/output/trajectory")), 60, "recovery"
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


def test_a_speed_limit_from_the_map_holds_the_paths_to_it(planner):
    """A Float64 limit on the speed-limit topic: the published paths keep to it (the 10 m/s ego comes down at the
    configured 2 m/s²), the diagnostics say so, and a bad limit is named while the last good one holds."""
    from diagnostic_msgs.msg import DiagnosticArray
    from nav_msgs.msg import Path
    from std_msgs.msg import Float64

    from spanvla_ros.ros.conversions import path_to_poses

    process, log = planner
    test = RosProbe()
    try:
        test.collect(Path, "/spanvla_planner/output/trajectory")
        test.collect(DiagnosticArray, "/diagnostics")
        limits = test.node.create_publisher(Float64, "/test/speed_limit", 10)
        vehicle = Vehicle(test, "/test/camera/image_raw")
        vehicle.start()

        def held_to(message: str) -> bool:
            limits.publish(Float64(data=4.0))
            return any(
                message in s.message
                for m in test.messages("/diagnostics")
                for s in m.status
                if s.name == "spanvla_planner: speed limit"
            )

        wait_for(lambda: held_to("plans held to 4.0 m/s"), 60, f"the speed limit in the diagnostics ({log})")
        test.clear("/spanvla_planner/output/trajectory")
        wait_for(
            lambda: sum(not is_stop(m) for m in test.messages("/spanvla_planner/output/trajectory")) >= 3,
            60,
            "paths under the limit",
        )
        bound = (
            np.maximum(4.0, SPEED - 2.0 * (0.5 * np.arange(1, 11) - 0.25)) + 2.0 * 0.5 / 8 + 0.05
        )  # mid-step profile; a·dt/8 where it meets the limit
        for message in [m for m in test.messages("/spanvla_planner/output/trajectory") if not is_stop(m)]:
            _, _, poses = path_to_poses(message)
            steps = np.hypot(*np.diff(np.vstack([np.zeros(2), poses[:, :2]]), axis=0).T) / 0.5
            assert np.all(steps <= bound), steps

        test.clear("/diagnostics")
        limits.publish(Float64(data=float("nan")))
        statuses = lambda: [s for m in test.messages("/diagnostics") for s in m.status]  # noqa: E731
        wait_for(
            lambda: any("keeping 4.0 m/s" in s.message and s.level[0] == 1 for s in statuses()),
            60,
            "a WARN naming the refused limit",
        )
        vehicle.stop()
        assert process.poll() is None, "planner_node died"
    finally:
        test.close()


def test_a_car_standing_ahead_on_the_object_list_brakes_the_paths(planner):
    """CUBE markers on the objects topic (the ego's own box among them, as CARLA's /carla/markers): a car standing in
    the lane ahead makes the published paths brake short of it, and the diagnostics say so; a marker with NaN is
    named in a WARN."""
    import time

    from diagnostic_msgs.msg import DiagnosticArray
    from nav_msgs.msg import Path
    from visualization_msgs.msg import MarkerArray

    from spanvla_ros.ros.conversions import objects_marker_array, path_to_poses

    process, log = planner
    test = RosProbe()
    try:
        test.collect(Path, "/spanvla_planner/output/trajectory")
        test.collect(DiagnosticArray, "/diagnostics")
        objects = test.node.create_publisher(MarkerArray, "/test/objects", 10)
        vehicle = Vehicle(test, "/test/camera/image_raw")
        vehicle.start()
        statuses = lambda: [  # noqa: E731
            s for m in test.messages("/diagnostics") for s in m.status if s.name == "spanvla_planner: objects"
        ]
        placed: list[tuple[float, float]] = []  # (wall time, x) of the parked car, re-placed as the ego nears it

        def publish_objects(bad: bool = False) -> None:
            now = time.time()
            ego_x = SPEED * (now - vehicle._start)
            if not placed or placed[-1][1] < ego_x + 15.0:  # the fake vehicle does not follow the plans
                placed.append((now, ego_x + 45.0))
            boxes = np.array([[ego_x + 1.4, 0.0, 0.0, 4.8, 2.0], [placed[-1][1], 0.0, 0.0, 4.5, 1.9]])
            if bad:
                boxes[1, 0] = np.nan
            objects.publish(objects_marker_array(now, "odom", [0, 7], boxes))

        def braking() -> bool:
            publish_objects()
            return any("braking at" in s.message for s in statuses())

        wait_for(braking, 60, f"the collision guard braking in the diagnostics ({log})")
        test.clear("/spanvla_planner/output/trajectory")
        wait_for(
            lambda: publish_objects() or len(test.messages("/spanvla_planner/output/trajectory")) >= 20,
            60,
            "paths with the car ahead",
        )
        checked = 0
        for message in test.messages("/spanvla_planner/output/trajectory"):
            stamp, _, poses = path_to_poses(message)
            if any(stamp - 1.0 < t <= stamp for t, _ in placed[1:]):
                continue  # the car moved while this plan was made
            car_x = [x for t, x in placed if t <= stamp][-1]
            gap = car_x - SPEED * (stamp - vehicle._start)
            free_end = SPEED * 5.0  # what the model plans without the car (asserted in the first test: > 10 m)
            assert poses[-1, 0] + 3.8 < max(gap - 2.25, 0.0) or poses[-1, 0] < free_end / 4, (gap, poses[-1, 0])
            checked += 1
        assert checked >= 5

        test.clear("/diagnostics")
        wait_for(
            lambda: publish_objects(bad=True) or any(s.level[0] == 1 and "NaN" in s.message for s in statuses()),
            60,
            "a WARN naming the bad object list",
        )
        vehicle.stop()
        assert process.poll() is None, "planner_node died"
    finally:
        test.close()


def test_a_latched_route_puts_the_paths_in_its_lane(planner):
    """A route published once on a transient-local topic before the car moves (as CARLA's waypoint publisher does):
    the paths ease over to its centre line 1.5 m to the ego's right, the diagnostics say so, and a route with NaN is
    named in a WARN."""
    from diagnostic_msgs.msg import DiagnosticArray
    from nav_msgs.msg import Path

    from spanvla_ros.ros.conversions import latched_qos, path_to_poses, route_message

    process, log = planner
    test = RosProbe()
    try:
        test.collect(Path, "/spanvla_planner/output/trajectory")
        test.collect(DiagnosticArray, "/diagnostics")
        routes = test.node.create_publisher(Path, "/test/route", latched_qos())
        lane = np.column_stack([np.arange(-100.0, 5000.0, 2.0), np.full(2550, -1.5)])
        routes.publish(route_message(0.0, "odom", lane))
        vehicle = Vehicle(test, "/test/camera/image_raw")
        vehicle.start()
        statuses = lambda: [  # noqa: E731
            s for m in test.messages("/diagnostics") for s in m.status if s.name == "spanvla_planner: route"
        ]
        wait_for(lambda: any(s.message == "plans follow the route" for s in statuses()), 60, f"route keeping ({log})")
        test.clear("/spanvla_planner/output/trajectory")
        wait_for(
            lambda: sum(not is_stop(m) for m in test.messages("/spanvla_planner/output/trajectory")) >= 5,
            60,
            "paths along the route",
        )
        for message in [m for m in test.messages("/spanvla_planner/output/trajectory") if not is_stop(m)]:
            _, _, poses = path_to_poses(message)
            assert poses[-1, 1] == pytest.approx(-1.5, abs=0.1) and poses[-1, 0] > 10.0, poses

        test.clear("/diagnostics")
        bad = lane.copy()
        bad[3, 1] = np.nan
        wait_for(
            lambda: (
                routes.publish(route_message(0.0, "odom", bad))
                or any(s.level[0] == 1 and "not finite" in s.message for s in statuses())
            ),
            60,
            "a WARN naming the bad route",
        )
        vehicle.stop()
        assert process.poll() is None, "planner_node died"
    finally:
        test.close()
