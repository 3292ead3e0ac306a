"""Running nodes: the shared ``main`` body of every node (init, construct, spin, clean Ctrl-C), and starting node
processes the way ``ros2 run`` would, with the environment this project's ROS processes need."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


class StartupError(RuntimeError):
    """A node cannot start (artefact missing or tampered, backend unavailable, parameters inconsistent)."""


def run_node(make_node: Callable[[], Any], node_name: str, spin: Callable[[Any], None], args=None) -> int:
    """``rclpy.init``, build the node (a StartupError or ValueError is logged FATAL and gives exit status 1), run
    ``spin(node)``, destroy it; Ctrl-C ends cleanly with status 0."""
    import rclpy
    from rclpy.executors import ExternalShutdownException

    try:
        with rclpy.init(args=args):
            try:
                node = make_node()
            except (StartupError, ValueError) as exc:
                rclpy.logging.get_logger(node_name).fatal(str(exc))
                return 1
            # Everything built so far (the model, imported libraries) lives as long as the node: moving it out of
            # the collector's reach keeps full collections short, which otherwise pause every thread.
            gc.collect()
            gc.freeze()
            try:
                spin(node)
            finally:
                node.destroy_node()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    return 0


def ros_environment() -> dict[str, str]:
    """The environment of every process started here: DDS on loopback only, the venv as ament prefix, one inference
    thread per process (processes share a small CPU), headless rendering."""
    env = dict(os.environ)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    prefixes = [p for p in env.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    if sys.prefix not in prefixes:
        env["AMENT_PREFIX_PATH"] = os.pathsep.join([sys.prefix, *prefixes])
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("SDL_VIDEODRIVER", "offscreen")
    env.setdefault("MPLBACKEND", "Agg")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start_node(module: str, ros_args: list[str], log_file: Path | None, env: dict[str, str] | None = None):
    """``python -m spanvla_ros.ros.<module> --ros-args ...``, output to ``log_file`` (None: discarded)."""
    output = open(log_file, "w") if log_file else subprocess.DEVNULL  # noqa: SIM115 (lives as long as the process)
    return subprocess.Popen(
        [sys.executable, "-m", f"spanvla_ros.ros.{module}", "--ros-args", *ros_args],
        stdout=output,
        stderr=subprocess.STDOUT,
        env=env or ros_environment(),
    )


def stop_node(process: subprocess.Popen, timeout_s: float = 10.0) -> int:
    """Ctrl-C, then kill if it does not exit; the exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def parameter_args(params: dict[str, Any]) -> list[str]:
    """``{"a": 1, "topics": ["/x"]}`` → ``["-p", "a:=1", "-p", "topics:=['/x']"]``."""
    args = []
    for key, value in params.items():
        if isinstance(value, list):
            value = "[" + ",".join(f"'{v}'" for v in value) + "]"
        elif isinstance(value, bool):
            value = str(value).lower()
        args += ["-p", f"{key}:={value}"]
    return args
