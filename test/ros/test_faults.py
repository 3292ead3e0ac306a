"""Faults in the running planner_node: a reasoning worker that raises or hangs (planning goes on with the last good
cache, diagnostics degrade, the watchdog restarts a hung worker), and a missing or tampered artefact at start-up (a
clear error and a non-zero exit, or the configured fallback backend). The camera stopping mid-drive is covered in
test_planner_node."""

import shutil
import subprocess

import pytest
from ros_helpers import ROOT, RosProbe, Vehicle, is_stop, start_node, stop_process, wait_for

pytestmark = pytest.mark.ros
NODE_PARAMS = {
    "camera_topics": ["/test/camera/image_raw"],
    "odometry_topic": "/test/odom",
    "command_topic": "/test/command",
    "diagnostics_rate_hz": 5.0,
}


def _statuses(probe, name: str):
    return [s for m in probe.messages("/diagnostics") for s in m.status if s.name == f"spanvla_planner: {name}"]


def _drive(params: dict, log, check) -> None:
    """Start planner_node with ``params``, drive it with a good vehicle stream, run ``check(probe, process)``."""
    from diagnostic_msgs.msg import DiagnosticArray
    from nav_msgs.msg import Path

    process = start_node("planner_node", {**NODE_PARAMS, **params}, log=log)
    probe = RosProbe()
    try:
        probe.collect(Path, "/spanvla_planner/output/trajectory")
        probe.collect(DiagnosticArray, "/diagnostics")
        vehicle = Vehicle(probe, "/test/camera/image_raw")
        vehicle.start()
        check(probe, process)
        vehicle.stop()
        assert process.poll() is None, log.read_text()[-2000:]
    finally:
        probe.close()
        stop_process(process)


def _model_plans(probe) -> int:
    return sum(not is_stop(m) for m in probe.messages("/spanvla_planner/output/trajectory"))


def test_a_raising_reasoning_pass_degrades_diagnostics_while_planning_goes_on(tmp_path):
    def check(probe, process):
        wait_for(lambda: any("injected fault" in s.message for s in _statuses(probe, "reasoning")), 40, "the failure")
        failing = [s for s in _statuses(probe, "reasoning") if "injected fault" in s.message]
        assert failing[0].level[0] == 2 and "reasoning failed: RuntimeError" in failing[0].message
        probe.clear("/spanvla_planner/output/trajectory")
        wait_for(lambda: _model_plans(probe) >= 5, 60, "plans on the last good cache")
        probe.clear("/diagnostics")
        wait_for(lambda: any(s.level[0] == 0 for s in _statuses(probe, "reasoning")), 60, "reasoning to recover")

    _drive({"inject_fault": "reasoning_raise"}, tmp_path / "planner.log", check)


def test_a_hung_reasoning_worker_is_restarted_by_the_watchdog(tmp_path):
    def check(probe, process):
        wait_for(lambda: any("hung" in s.message for s in _statuses(probe, "reasoning")), 40, "the watchdog")
        assert "worker restarted" in next(s.message for s in _statuses(probe, "reasoning") if "hung" in s.message)
        backend = _statuses(probe, "backend")[-1]
        assert {kv.key: kv.value for kv in backend.values}["worker_restarts"] == "1"
        probe.clear("/diagnostics")
        wait_for(lambda: any(s.level[0] == 0 for s in _statuses(probe, "reasoning")), 60, "the new worker to reason")
        probe.clear("/spanvla_planner/output/trajectory")
        wait_for(lambda: _model_plans(probe) >= 3, 60, "plans after the restart")

    _drive({"inject_fault": "reasoning_hang", "reasoning_hang_s": 1.0}, tmp_path / "planner.log", check)


def _start_and_wait_exit(params: dict, log, timeout_s: float = 60.0) -> int:
    process = start_node("planner_node", {**NODE_PARAMS, **params}, log=log)
    try:
        return process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        stop_process(process)
        raise AssertionError(f"planner_node kept running with {params}") from None


def test_a_missing_checkpoint_is_a_clear_error_and_a_non_zero_exit(tmp_path):
    log = tmp_path / "planner.log"
    assert _start_and_wait_exit({"checkpoint": str(tmp_path / "nowhere")}, log) == 1
    assert "cannot load backend 'torch'" in log.read_text() and "nowhere" in log.read_text()


def test_a_tampered_checkpoint_is_refused(tmp_path):
    checkpoint = tmp_path / "ckpt"
    shutil.copytree(ROOT / "models" / "default", checkpoint)
    weights = checkpoint / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF
    weights.write_bytes(bytes(data))
    log = tmp_path / "planner.log"
    assert _start_and_wait_exit({"checkpoint": str(checkpoint)}, log) == 1
    assert "sha256" in log.read_text()


def test_a_tampered_export_falls_back_to_the_configured_backend(tmp_path):
    from spanvla_ros.cli import main

    export = tmp_path / "export"
    assert main(["export", "onnx", "--checkpoint", str(ROOT / "models" / "default"), "--out", str(export)]) == 0
    graph = export / "flow.onnx"
    graph.write_bytes(graph.read_bytes()[:-64])  # truncated
    log = tmp_path / "refused.log"
    assert _start_and_wait_exit({"backend": "onnxruntime", "checkpoint": str(export)}, log) == 1
    assert "sha256 does not match" in log.read_text()

    def check(probe, process):
        wait_for(lambda: _model_plans(probe) >= 3, 40, "plans from the fallback backend")
        wait_for(lambda: bool(_statuses(probe, "backend")), 30, "backend diagnostics")
        backend = _statuses(probe, "backend")[-1]
        assert backend.level[0] == 1 and "fallback backend 'torch'" in backend.message
        assert "sha256" in backend.message

    params = {"backend": "onnxruntime", "checkpoint": str(export), "fallback_backend": "torch",
              "fallback_checkpoint": "model:default"}  # fmt: skip
    _drive(params, tmp_path / "fallback.log", check)
