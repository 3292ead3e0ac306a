"""``planner_node``: the SpanVLA planner as a ROS 2 node (``spanvla_planner``).

Inputs: camera images (``sensor_msgs/Image``, or ``CompressedImage`` for topics ending in ``/compressed``; sensor-data
QoS), ``nav_msgs/Odometry``, a driving command (``std_msgs/String``) and the road's speed limit (``std_msgs/Float64``,
m/s, from the map; plans are re-timed to keep to it). Outputs: ``~/output/trajectory``
(``nav_msgs/Path``), ``~/output/reasoning`` (``std_msgs/String``), ``~/output/markers`` (RViz), ``/diagnostics`` and
``~/debug/*_ms`` timings (``std_msgs/Float64``).

The node is wiring: the planning core (:class:`~spanvla_ros.runtime.online.OnlinePlanner`, run by the
:class:`~spanvla_ros.runtime.drivers.ThreadedDriver`) owns the cycle — input buffers and health, cycles opened by
odometry (and a timer for silent inputs), the reasoning worker at the reasoning rate and its watchdog, validation and
the stop trajectory, timings and counters. The node converts messages, publishes what the core produces and reports
its health. Callback groups keep each input topic in order. The executor is single-threaded by default: measured here,
rclpy's MultiThreadedExecutor busy-waits a whole core under camera load, which starved inference on a 2-core machine
(`executor_threads` selects it). The node imports no torch or TensorRT itself: the backend is loaded by name.

It is a managed (lifecycle) node: ``configure`` loads and warms the backend and creates the subscriptions, the
publishers and the health timer; ``activate`` starts the reasoning worker and planning (paths are published only while
active); ``deactivate`` stops them; ``cleanup`` frees the backend; ``shutdown`` ends the process. With ``autostart``
(default true) the node configures and activates itself, for users without a lifecycle manager.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from nav_msgs.msg import Odometry, Path
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Float64, String
from visualization_msgs.msg import MarkerArray

from ..runtime.drivers import ThreadedDriver
from ..runtime.online import InputRejected, Level, OnlinePlanner, PlanOutput, Status
from ..runtime.pipeline import ReasoningResult
from .conversions import (
    ImageConversionError,
    diagnostic_array,
    diagnostic_status,
    image_layout,
    image_to_rgb,
    latched_qos,
    marker_array,
    markers_to_objects,
    odometry_to_pose,
    path_message,
    path_to_poses,
    stamp_seconds,
)
from .parameters import declare
from .planner_parameters import PARAMETERS, load_runtime, online_config
from .processes import StartupError, run_node

NODE_NAME = "spanvla_planner"
__all__ = ["NODE_NAME", "PARAMETERS", "PlannerNode", "main"]


class PlannerNode(LifecycleNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self.params = declare(self, PARAMETERS)
        self.core: OnlinePlanner | None = None
        self.driver: ThreadedDriver | None = None
        self.active = False
        self.finalized = False
        self.startup_error = ""
        self._entities: list[tuple[str, Any]] = []  # ("publisher" | "subscription" | "timer", handle) to destroy
        self._planning_timer = None
        if self.params["autostart"]:
            if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                raise StartupError(self.startup_error or "configure failed")
            if self.trigger_activate() != TransitionCallbackReturn.SUCCESS:
                raise StartupError("activate failed")

    # --- lifecycle -------------------------------------------------------------------------------------------------

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._configure()
        except (StartupError, ValueError) as exc:
            self.startup_error = str(exc)
            self.get_logger().error(f"configure failed: {exc}")
            self._destroy_entities()
            self.core = self.driver = None
            return TransitionCallbackReturn.FAILURE
        return super().on_configure(state)

    def _configure(self) -> None:
        p = self.params
        runtime, self.backend_name, self.fallback_reason = load_runtime(p, self.get_logger())
        if p["history_length"] and p["history_length"] != runtime.meta["history_len"]:
            raise StartupError(
                f"history_length {p['history_length']} differs from the artefact's {runtime.meta['history_len']}: "
                "set 0 or re-train the model with that history"
            )
        try:
            self.core = OnlinePlanner(runtime, list(p["camera_topics"]), online_config(p))
        except ValueError as exc:
            raise StartupError(str(exc)) from exc
        start = time.perf_counter()
        self.core.warm_up()
        self.get_logger().info(f"backend warmed up in {1e3 * (time.perf_counter() - start):.0f} ms")
        self.driver = ThreadedDriver(
            self.core, self._now, self._publish_plan, self._publish_reasoning, self._on_reasoning_failure,
            p["reasoning_hang_s"], p["inject_fault"],
        )  # fmt: skip

        # Paths, reasoning and markers go out only while active (lifecycle publishers); health always does.
        def lifecycle_publisher(msg_type, topic: str):
            return self._keep("lifecycle_publisher", self.create_lifecycle_publisher(msg_type, topic, 10))

        self.path_pub = lifecycle_publisher(Path, "~/output/trajectory")
        self.reasoning_pub = lifecycle_publisher(String, "~/output/reasoning")
        self.markers_pub = lifecycle_publisher(MarkerArray, "~/output/markers")
        self.validation_pub = lifecycle_publisher(DiagnosticStatus, "~/output/validation_status")
        self.diagnostics_pub = self._keep("publisher", self.create_publisher(DiagnosticArray, "/diagnostics", 10))
        self.debug_pubs = {
            name: lifecycle_publisher(Float64, f"~/debug/{name}")
            for name in ("planning_ms", "reasoning_ms", "reasoning_age_ms", "cycle_delay_ms")
        }
        camera_qos = (
            qos_profile_sensor_data
            if p["camera_qos"] == "sensor_data"
            else QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
        )

        # One group per input keeps each topic's messages in order while topics run in parallel.
        def subscribe(msg_type, topic: str, callback, qos) -> None:
            group = MutuallyExclusiveCallbackGroup()
            self._keep("subscription", self.create_subscription(msg_type, topic, callback, qos, callback_group=group))

        for topic in p["camera_topics"]:
            msg_type = CompressedImage if topic.rstrip("/").endswith("/compressed") else Image
            subscribe(msg_type, topic, lambda msg, name=topic: self._on_image(name, msg), camera_qos)
        subscribe(Odometry, p["odometry_topic"], self._on_odometry, qos_profile_sensor_data)
        command_qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        subscribe(String, p["command_topic"], self._on_command, command_qos)
        subscribe(Float64, p["speed_limit_topic"], self._on_speed_limit, command_qos)
        subscribe(MarkerArray, p["objects_topic"], self._on_objects, qos_profile_sensor_data)
        subscribe(Path, p["route_topic"], self._on_route, latched_qos())
        self._last_levels: dict[str, Level] = {}
        self._keep("timer", self.create_timer(
            1.0 / p["diagnostics_rate_hz"], self._on_housekeeping, callback_group=MutuallyExclusiveCallbackGroup()
        ))  # fmt: skip
        self.get_logger().info(
            f"configured: backend '{self.backend_name}' on {len(p['camera_topics'])} camera(s) × "
            f"{self.core.frames_per_camera} frame(s), {self.core.num_poses} poses every {self.core.dt_s} s, "
            f"output frame '{p['output_frame']}'"
        )

    def _keep(self, kind: str, handle: Any) -> Any:
        self._entities.append((kind, handle))
        return handle

    def _destroy_entities(self) -> None:
        destroy = {
            "lifecycle_publisher": self.destroy_lifecycle_publisher,
            "publisher": self.destroy_publisher,
            "subscription": self.destroy_subscription,
            "timer": self.destroy_timer,
        }
        for kind, handle in reversed(self._entities):
            destroy[kind](handle)
        self._entities = []

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_activate(state)
        self.active = True
        self.driver.start()
        # The timer is the fallback for silent odometry: it opens a cycle only when odometry has not for 1.5 periods.
        self._planning_timer = self.create_timer(
            1.0 / self.params["planning_rate_hz"],
            lambda: self.driver.open_cycle(self._now(), gap_periods=1.5),
            callback_group=MutuallyExclusiveCallbackGroup(),
        )
        self.get_logger().info(f"active: planning at {self.params['planning_rate_hz']} Hz")
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_planning()
        self.get_logger().info("inactive: planning stopped")
        return super().on_deactivate(state)

    def _stop_planning(self) -> None:
        self.active = False
        if self.driver is not None:
            self.driver.stop()
        if self._planning_timer is not None:
            self.destroy_timer(self._planning_timer)
            self._planning_timer = None

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._destroy_entities()
        self.core = self.driver = None  # the backend (model weights, sessions) goes with the core
        self.get_logger().info("cleaned up: backend released")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_planning()
        self._destroy_entities()
        self.core = self.driver = None
        self.finalized = True
        self.get_logger().info("shut down")
        return TransitionCallbackReturn.SUCCESS

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # --- inputs → the core -----------------------------------------------------------------------------------------

    def _on_image(self, camera: str, msg: Image | CompressedImage) -> None:
        if self.core is None:
            return
        stamp = stamp_seconds(msg.header.stamp)
        try:
            self.core.add_frame(camera, stamp, image_layout(msg), lambda: image_to_rgb(msg))
        except ImageConversionError as exc:
            self.core.reject(camera, stamp, str(exc))
            self._warn_throttled(f"camera {camera}: {exc}")
            return
        except InputRejected as exc:
            self._warn_throttled(f"camera {camera}: {exc}")
            return
        self.driver.wake()

    def _on_odometry(self, msg: Odometry) -> None:
        if self.core is None:
            return
        stamp = stamp_seconds(msg.header.stamp)
        try:
            pose, speed = odometry_to_pose(msg)
            self.core.add_odometry(stamp, pose, speed, msg.header.frame_id)
        except InputRejected as exc:
            self._warn_throttled(f"odometry: {exc}")
            return
        except ValueError as exc:
            self.core.reject("odometry", stamp, str(exc))
            self._warn_throttled(f"odometry: {exc}")
            return
        self.driver.open_cycle(stamp)

    def _on_command(self, msg: String) -> None:
        self._set_held_input("set_command", msg.data)

    def _on_speed_limit(self, msg: Float64) -> None:
        self._set_held_input("set_speed_limit", msg.data)

    def _on_objects(self, msg: MarkerArray) -> None:
        if self.core is None:
            return
        try:
            stamp, frame, ids, boxes = markers_to_objects(msg)
            self.core.set_objects(stamp or self._now(), frame, ids, boxes)
        except InputRejected as exc:
            self._warn_throttled(f"objects: {exc}")
        except ValueError as exc:
            self.core.reject("objects", self._now(), str(exc))
            self._warn_throttled(f"objects: {exc}")

    def _on_route(self, msg: Path) -> None:
        if self.core is None:
            return
        try:
            _, frame, poses = path_to_poses(msg)
            self.core.set_route(self._now(), frame, poses[:, :2])
        except InputRejected as exc:
            self._warn_throttled(str(exc))

    def _set_held_input(self, setter: str, value: Any) -> None:
        """An input the core holds until the next one (command, speed limit); a refused one is logged."""
        if self.core is None:
            return
        try:
            getattr(self.core, setter)(self._now(), value)
        except InputRejected as exc:
            self._warn_throttled(str(exc))

    def _warn_throttled(self, text: str) -> None:
        self.get_logger().warning(text, throttle_duration_sec=2.0)

    # --- the core's results → topics ------------------------------------------------------------------------------

    def _publish_plan(self, plan: PlanOutput) -> None:
        self._while_running(self._publish_plan_messages, plan)

    def _publish_reasoning(self, result: ReasoningResult, elapsed_ms: float) -> None:
        self._while_running(self._publish_reasoning_messages, result, elapsed_ms)

    def _while_running(self, publish, *args) -> None:
        """Publish, unless the process is shutting down: Ctrl-C invalidates the context while a cycle may be midway."""
        try:
            publish(*args)
        except Exception:
            if self.context.ok():
                raise

    def _publish_plan_messages(self, plan: PlanOutput) -> None:
        p = self.params
        self.path_pub.publish(path_message(plan, p["output_frame"], p["base_frame"]))
        self.markers_pub.publish(marker_array(plan, p["output_frame"], p["base_frame"]))
        self.debug_pubs["planning_ms"].publish(Float64(data=plan.planning_ms))
        self.debug_pubs["cycle_delay_ms"].publish(Float64(data=plan.cycle_delay_ms))
        if plan.reasoning_age_s is not None:
            self.debug_pubs["reasoning_age_ms"].publish(Float64(data=1e3 * plan.reasoning_age_s))
        self.validation_pub.publish(diagnostic_status(self.core.validation_status(), NODE_NAME))
        if plan.validation is not None and not plan.validation.valid:
            self.get_logger().warning(
                f"plan failed validation ({plan.validation.summary()}): {plan.fallback or 'published as is'}",
                throttle_duration_sec=2.0,
            )
            self._publish_diagnostics(only_on_change=True)
        if plan.safe_stop:
            self.get_logger().error(f"stop trajectory: {plan.stop_reason}", throttle_duration_sec=2.0)
            self._publish_diagnostics(only_on_change=True)

    def _publish_reasoning_messages(self, result: ReasoningResult, elapsed_ms: float) -> None:
        self.reasoning_pub.publish(String(data=result.text))
        self.debug_pubs["reasoning_ms"].publish(Float64(data=float(elapsed_ms)))

    def _on_reasoning_failure(self, message: str) -> None:
        self.get_logger().error(message, throttle_duration_sec=2.0)

    # --- health ----------------------------------------------------------------------------------------------------

    def _on_housekeeping(self) -> None:
        if self.active:
            self.driver.check_worker()
        self._while_running(self._publish_diagnostics)

    def _statuses(self) -> list[Status]:
        statuses = self.core.statuses(self._now())
        if not self.active:
            statuses.append(Status("lifecycle", Level.WARN, "inactive: configured, not planning (activate to plan)"))
        else:
            statuses.append(Status("lifecycle", Level.OK, "active"))
        restarts = {"worker_restarts": str(self.driver.worker_restarts)}
        if self.fallback_reason:
            message = f"running on the fallback backend '{self.backend_name}': {self.fallback_reason}"
            statuses.append(Status("backend", Level.WARN, message, restarts))
        else:
            statuses.append(Status("backend", Level.OK, f"backend '{self.backend_name}'", restarts))
        return statuses

    def _publish_diagnostics(self, only_on_change: bool = False) -> None:
        statuses = self._statuses()
        levels = {s.name: s.level for s in statuses}
        if only_on_change and levels == self._last_levels:
            return
        self._last_levels = levels
        self.diagnostics_pub.publish(diagnostic_array(statuses, self._now(), NODE_NAME))

    def destroy_node(self) -> None:
        if self.driver is not None:
            self.driver.stop()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    import cv2

    # OpenCV's worker pool and the inference library's threads busy-wait against each other on a small CPU.
    cv2.setNumThreads(1)

    def spin(node: PlannerNode) -> None:
        threads = node.params["executor_threads"]
        executor = MultiThreadedExecutor(num_threads=threads) if threads > 1 else SingleThreadedExecutor()
        executor.add_node(node)
        # Until the lifecycle's shutdown transition (or Ctrl-C) ends the node.
        while not node.finalized:
            executor.spin_once(timeout_sec=0.1)

    return run_node(PlannerNode, NODE_NAME, spin, args)


if __name__ == "__main__":
    sys.exit(main())
