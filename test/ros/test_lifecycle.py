"""planner_node as a managed node, driven over DDS by a supervisor's lifecycle service calls: nothing is planned
before activation, plans flow while active, stop on deactivation, the backend is released on cleanup, and shutdown
ends the process."""

import time

import pytest
from ros_helpers import RosProbe, Vehicle, is_stop, start_node, stop_process, wait_for

pytestmark = [pytest.mark.ros, pytest.mark.xdist_group("lifecycle_node")]
NODE = "/spanvla_planner"
PARAMS = {
    "camera_topics": ["/test/camera/image_raw"],
    "odometry_topic": "/test/odom",
    "command_topic": "/test/command",
    "diagnostics_rate_hz": 5.0,
    "autostart": False,
}


class Supervisor:
    """The lifecycle services of planner_node, called from the test probe."""

    def __init__(self, probe: RosProbe) -> None:
        from lifecycle_msgs.srv import ChangeState, GetState

        self.change = probe.node.create_client(ChangeState, f"{NODE}/change_state")
        self.get = probe.node.create_client(GetState, f"{NODE}/get_state")
        wait_for(lambda: self.change.service_is_ready() and self.get.service_is_ready(), 60, "the lifecycle services")

    def _call(self, client, request, what: str):
        future = client.call_async(request)
        wait_for(future.done, 120, what)
        return future.result()

    def state(self) -> str:
        from lifecycle_msgs.srv import GetState

        return self._call(self.get, GetState.Request(), "get_state").current_state.label

    def transition(self, transition_id: int) -> bool:
        from lifecycle_msgs.srv import ChangeState

        request = ChangeState.Request()
        request.transition.id = transition_id
        return self._call(self.change, request, f"transition {transition_id}").success


def _plans(probe) -> int:
    return sum(not is_stop(m) for m in probe.messages(f"{NODE}/output/trajectory"))


def test_configure_activate_deactivate_cleanup_shutdown(tmp_path):
    from diagnostic_msgs.msg import DiagnosticArray
    from lifecycle_msgs.msg import Transition
    from nav_msgs.msg import Path

    log = tmp_path / "planner.log"
    process = start_node("planner_node", PARAMS, log=log)
    probe = RosProbe()
    try:
        probe.collect(Path, f"{NODE}/output/trajectory")
        probe.collect(DiagnosticArray, "/diagnostics")
        supervisor = Supervisor(probe)
        assert supervisor.state() == "unconfigured"

        assert supervisor.transition(Transition.TRANSITION_CONFIGURE), log.read_text()[-2000:]
        assert supervisor.state() == "inactive"
        vehicle = Vehicle(probe, "/test/camera/image_raw")
        vehicle.start()
        wait_for(
            lambda: any("inactive" in s.message for m in probe.messages("/diagnostics") for s in m.status),
            20,
            "an inactive lifecycle diagnostic",
        )
        assert probe.messages(f"{NODE}/output/trajectory") == [], "a path was published before activation"

        assert supervisor.transition(Transition.TRANSITION_ACTIVATE)
        assert supervisor.state() == "active"
        wait_for(lambda: _plans(probe) >= 3, 60, f"plans once active ({log})")

        assert supervisor.transition(Transition.TRANSITION_DEACTIVATE)
        assert supervisor.state() == "inactive"
        time.sleep(0.5)  # paths already in flight
        probe.clear(f"{NODE}/output/trajectory")
        time.sleep(1.5)
        assert probe.messages(f"{NODE}/output/trajectory") == [], "paths kept coming after deactivation"

        assert supervisor.transition(Transition.TRANSITION_CLEANUP)
        assert supervisor.state() == "unconfigured"
        assert "backend released" in log.read_text()
        vehicle.stop()

        assert supervisor.transition(Transition.TRANSITION_UNCONFIGURED_SHUTDOWN)
        assert process.wait(30) == 0
    finally:
        probe.close()
        if process.poll() is None:
            stop_process(process)


def test_autostart_configures_and_activates_without_a_manager(tmp_path):
    from nav_msgs.msg import Path

    log = tmp_path / "planner.log"
    process = start_node("planner_node", {**PARAMS, "autostart": True}, log=log)
    probe = RosProbe()
    try:
        probe.collect(Path, f"{NODE}/output/trajectory")
        supervisor = Supervisor(probe)
        assert supervisor.state() == "active"
        vehicle = Vehicle(probe, "/test/camera/image_raw")
        vehicle.start()
        wait_for(lambda: _plans(probe) >= 3, 60, f"plans ({log})")
        vehicle.stop()
    finally:
        probe.close()
        stop_process(process)
