"""Running nodes: the shared ``main`` body of every node (init, construct, spin, clean Ctrl-C), and starting node
processes the way ``ros2 run`` would, with the environment this project's ROS processes need."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


@contextmanager
def ros_process_environment(extra: dict[str, str] | None = None) -> Iterator[dict[str, str]]:
    """``ros_environment()`` (plus ``extra``) applied to this process's DDS settings while the block runs, so its
    own rclpy participants match the processes it starts; the previous values come back afterwards."""
    env = {**ros_environment(), **(extra or {})}
    keys = ["ROS_AUTOMATIC_DISCOVERY_RANGE", "AMENT_PREFIX_PATH", *(extra or {})]
    previous = {k: os.environ.get(k) for k in keys}
    os.environ.update({k: env[k] for k in keys})
    try:
        yield env
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class BackgroundNode:
    """An rclpy node in a context of its own, spun by a background thread: a recorder, a load generator, a test
    probe next to the node processes it talks to. Publishing from other threads is fine."""

    def __init__(self, name: str) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._running = threading.Event()
        self._running.set()
        self._thread = threading.Thread(target=self._spin, name=f"{name}-spin", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self._running.is_set() and self.context.ok():
            self._executor.spin_once(timeout_sec=0.05)

    def close(self) -> None:
        import rclpy

        self._running.clear()
        self._thread.join(timeout=5.0)
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)

    def __enter__(self) -> BackgroundNode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
