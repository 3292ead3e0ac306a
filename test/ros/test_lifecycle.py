"""planner_node as a managed node, driven over DDS by a supervisor's lifecycle service calls: nothing is planned
before activation, plans flow while active, stop on deactivation, the backend is released on cleanup, and shutdown
ends the process."""

import time
from pathlib import Path

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
    """The lifecycle services of planner_node, called from the test probe.

    A service can be reported ready before the server has matched the client's response reader; under load a reply
    is then lost (a CI run waited 120 s on one). So a call that gets no reply is sent again: get_state as it is,
    a transition only after get_state shows it has not already taken effect."""

    TRANSITIONAL = {"configuring", "activating", "deactivating", "cleaningup", "shuttingdown", "errorprocessing"}
    TARGET = {"configure": "inactive", "activate": "active", "deactivate": "inactive", "cleanup": "unconfigured"}

    def __init__(self, probe: RosProbe, log: Path) -> None:
        from lifecycle_msgs.srv import ChangeState, GetState

        self.log = log  # the node's output, shown when it does not answer

        self.change = probe.node.create_client(ChangeState, f"{NODE}/change_state")
        self.get = probe.node.create_client(GetState, f"{NODE}/get_state")
        wait_for(lambda: self.change.service_is_ready() and self.get.service_is_ready(), 60, "the lifecycle services")

    @staticmethod
    def _reply(client, request, attempt_s: float):
        """The response, or None when none came within ``attempt_s``."""
        future = client.call_async(request)
        deadline = time.monotonic() + attempt_s
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.05)
        if future.done():
            return future.result()
        client.remove_pending_request(future)
        return None

    def state(self, attempts: int = 8, attempt_s: float = 15.0) -> str:
        from lifecycle_msgs.srv import GetState

        for _ in range(attempts):
            reply = self._reply(self.get, GetState.Request(), attempt_s)
            if reply is not None:
                return reply.current_state.label
        raise AssertionError(f"no get_state reply in {attempts} tries of {attempt_s} s:\n{self._log_tail()}")

    def transition(self, transition_id: int, label: str, attempts: int = 6, attempt_s: float = 30.0) -> bool:
        from lifecycle_msgs.srv import ChangeState

        request = ChangeState.Request()
        request.transition.id = transition_id
        for attempt in range(attempts):
            if attempt:
                now = self.state()
                while now in self.TRANSITIONAL:  # the request arrived and is still running
                    time.sleep(0.5)
                    now = self.state()
                if now == self.TARGET[label]:
                    return True  # the request arrived; only its reply was lost
            reply = self._reply(self.change, request, attempt_s)
            if reply is not None:
                return reply.success
        tries = f"{attempts} tries of {attempt_s} s"
        raise AssertionError(f"no reply to transition {label} in {tries}:\n{self._log_tail()}")

    def _log_tail(self) -> str:
        return self.log.read_text()[-2000:] if self.log.exists() else "(no node log)"

    def shut_down(self, process, attempts: int = 8, attempt_s: float = 15.0) -> int:
        """Shutdown from unconfigured; the node's exit code (an exited node also answers a lost reply)."""
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        request = ChangeState.Request()
        request.transition.id = Transition.TRANSITION_UNCONFIGURED_SHUTDOWN
        for _ in range(attempts):
            if process.poll() is not None:
                break
            reply = self._reply(self.change, request, attempt_s)
            if reply is not None:
                assert reply.success, "shutdown refused"
                break
        return process.wait(30)


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
        supervisor = Supervisor(probe, log)
        assert supervisor.state() == "unconfigured"

        assert supervisor.transition(Transition.TRANSITION_CONFIGURE, "configure"), log.read_text()[-2000:]
        assert supervisor.state() == "inactive"
        vehicle = Vehicle(probe, "/test/camera/image_raw")
        vehicle.start()
        wait_for(
            lambda: any("inactive" in s.message for m in probe.messages("/diagnostics") for s in m.status),
            20,
            "an inactive lifecycle diagnostic",
        )
        assert probe.messages(f"{NODE}/output/trajectory") == [], "a path was published before activation"

        assert supervisor.transition(Transition.TRANSITION_ACTIVATE, "activate")
        assert supervisor.state() == "active"
        wait_for(lambda: _plans(probe) >= 3, 60, f"plans once active ({log})")

        assert supervisor.transition(Transition.TRANSITION_DEACTIVATE, "deactivate")
        assert supervisor.state() == "inactive"
        time.sleep(0.5)  # paths already in flight
        probe.clear(f"{NODE}/output/trajectory")
        time.sleep(1.5)
        assert probe.messages(f"{NODE}/output/trajectory") == [], "paths kept coming after deactivation"

        assert supervisor.transition(Transition.TRANSITION_CLEANUP, "cleanup")
        assert supervisor.state() == "unconfigured"
        assert "backend released" in log.read_text()
        vehicle.stop()

        assert supervisor.shut_down(process) == 0
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
        supervisor = Supervisor(probe, log)
        assert supervisor.state() == "active"
        vehicle = Vehicle(probe, "/test/camera/image_raw")
        vehicle.start()
        wait_for(lambda: _plans(probe) >= 3, 60, f"plans ({log})")
        vehicle.stop()
    finally:
        probe.close()
        stop_process(process)
