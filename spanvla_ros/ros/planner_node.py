"""``planner_node``: the SpanVLA planner as a ROS 2 node (``spanvla_planner``).

Inputs: camera images (``sensor_msgs/Image``, or ``CompressedImage`` for topics ending in ``/compressed``; sensor-data
QoS), ``nav_msgs/Odometry`` and a driving command (``std_msgs/String``). Outputs: ``~/output/trajectory``
(``nav_msgs/Path``), ``~/output/reasoning`` (``std_msgs/String``), ``~/output/markers`` (RViz), ``/diagnostics`` and
``~/debug/*_ms`` timings (``std_msgs/Float64``).

Reasoning (VLM prefill + decoding) runs in its own worker thread at the reasoning rate; the action expert runs once
per planning period on the newest reasoning cache and odometry, so a slow reasoning pass never holds a plan back.
Planning cycles open on odometry arrival (keeping plans aligned with the inputs, as a synchronous simulator needs) and
on a timer at the planning rate (which covers silent inputs with a stop trajectory). Callback groups keep each input
topic in order. The executor is single-threaded by default: measured here, rclpy's MultiThreadedExecutor busy-waits a
whole core under camera load, which starved inference on a 2-core machine (`executor_threads` selects it). A
watchdog restarts a hung reasoning worker. Stale or invalid inputs give a stop trajectory and an ERROR diagnostic.
The node imports no torch or TensorRT itself: the backend is loaded by name.

It is a managed (lifecycle) node: ``configure`` loads and warms the backend and creates the subscriptions, the
publishers and the health timer; ``activate`` starts the reasoning worker and planning (paths are published only while
active); ``deactivate`` stops them; ``cleanup`` frees the backend; ``shutdown`` ends the process. With ``autostart``
(default true) the node configures and activates itself, for users without a lifecycle manager.
"""

from __future__ import annotations

import sys
import threading
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

from ..planning.validator import ValidatorConfig
from ..runtime.artefact import resolve_model
from ..runtime.online import INVALID_PLAN_HANDLING, InputRejected, Level, OnlineConfig, OnlinePlanner, Status
from .conversions import (
    ImageConversionError,
    diagnostic_array,
    diagnostic_status,
    image_layout,
    image_to_rgb,
    marker_array,
    odometry_to_pose,
    path_message,
    stamp_seconds,
)
from .parameters import Param, declare
from .processes import StartupError, run_node

NODE_NAME = "spanvla_planner"
BACKENDS = ("torch", "onnxruntime", "tensorrt")

PARAMETERS = [
    Param("checkpoint", "model:default", "Model artefact: model:default, a checkpoint directory (torch backend) or an "
          "export directory (onnxruntime, tensorrt)"),
    Param("backend", "torch", "Inference backend", choices=BACKENDS),
    Param("fallback_backend", "", "Backend to start with when `backend` cannot load ('' = none: exit with an error)",
          choices=("", *BACKENDS)),
    Param("fallback_checkpoint", "", "Artefact for the fallback backend ('' = `checkpoint`)"),
    Param("precision", "fp16", "TensorRT engine precision", choices=("fp16", "fp32")),
    Param("device", "cpu", "Where inference runs (torch device / ONNX Runtime provider)", choices=("cpu", "cuda")),
    Param("num_threads", 1, "CPU threads for inference (0 = the library's default)", 0, 64),
    Param("planning_rate_hz", 10.0, "Rate of the action expert (trajectory publication)", 0.5, 50.0),
    Param("reasoning_rate_hz", 2.0, "Highest rate of VLM reasoning passes", 0.1, 20.0),
    Param("flow_steps", 0, "Euler steps of the flow (0 = the artefact's; torch backend only)", 0, 100),
    Param("max_reasoning_tokens", 0, "Token budget of a reasoning pass (0 = the artefact's)", 0, 1024),
    Param("history_length", 0, "Ego history poses (2 Hz) the model reads (0 = the artefact's; else must match it)",
          0, 32),
    Param("output_frame", "base_link", "Frame of the published path: `base_frame` (ego at plan time) or the "
          "odometry's frame (e.g. odom or map)"),
    Param("base_frame", "base_link", "The ego's rear-axle frame id"),
    Param("camera_topics", ["/camera/front/image_raw"], "Camera topics, one per camera, in the model's camera order "
          "(sensor_msgs/Image; CompressedImage when the topic ends in /compressed)"),
    Param("camera_qos", "sensor_data", "Camera subscription QoS: sensor_data (best effort, depth 5; matches any "
          "publisher) or reliable (depth 2; needs a reliable publisher; no transport loss of multi-MB frames)",
          choices=("sensor_data", "reliable")),
    Param("frame_keep_interval_s", 0.1, "Camera frames closer than this to the last decoded one (same encoding and "
          "size) are counted but not decoded; the model reads 2 Hz history", 0.0, 1.0),
    Param("odometry_topic", "/odom", "Ego odometry (nav_msgs/Odometry, rear axle)"),
    Param("command_topic", "/planning/driving_command", "Driving command (std_msgs/String: left, straight, right, "
          "unknown, or a CARLA RoadOption name)"),
    Param("camera_timeout_s", 1.0, "A camera silent this long → stop trajectory + ERROR", 0.05, 60.0),
    Param("odometry_timeout_s", 0.5, "Odometry silent this long → stop trajectory + ERROR", 0.05, 60.0),
    Param("reasoning_warn_s", 3.0, "Plans from a reasoning older than this → WARN", 0.1, 600.0),
    Param("reasoning_timeout_s", 10.0, "Reasoning older than this → stop trajectory + ERROR", 0.1, 600.0),
    Param("reasoning_hang_s", 10.0, "Wall seconds one reasoning pass may take before the watchdog restarts the "
          "worker", 0.5, 600.0),
    Param("stop_deceleration_mps2", 3.0, "Braking of the stop trajectory (at most the validator's stop-check "
          "deceleration, so the stop trajectory passes validation)", 0.5, 8.0),
    Param("invalid_plan_handling", "last_valid", "A plan that fails validation is: published as is (publish), "
          "replaced by the last valid plan while it is younger than last_valid_max_age_s (last_valid), or replaced "
          "by a stop trajectory (stop)", choices=INVALID_PLAN_HANDLING),
    Param("last_valid_max_age_s", 1.0, "Oldest last valid plan republished for an invalid one", 0.0, 10.0),
    Param("max_speed_mps", 70.0, "Odometry faster than this is dropped as implausible", 1.0, 150.0),
    Param("max_acceleration_mps2", 15.0, "A faster speed change between odometry messages restarts the history",
          1.0, 100.0),
    Param("max_yaw_rate_radps", 2.5, "A faster turn between odometry messages restarts the history", 0.1, 20.0),
    Param("wheelbase_m", 2.8, "Vehicle wheelbase for the validator's steering checks", 0.5, 10.0),
    Param("validator_max_curvature_1pm", 0.35, "Validator: tightest curvature of a plan", 0.01, 10.0),
    Param("validator_max_lateral_acceleration_mps2", 9.8, "Validator: highest v²κ of a plan", 0.1, 50.0),
    Param("validator_max_acceleration_mps2", 9.8, "Validator: highest acceleration of a plan", 0.1, 50.0),
    Param("validator_max_deceleration_mps2", 9.8, "Validator: hardest braking of a plan", 0.1, 50.0),
    Param("validator_max_velocity_deviation_mps", 10.0, "Validator: largest gap between the plan's first speed and "
          "the ego's", 0.1, 100.0),
    Param("validator_max_first_pose_deviation_m", 6.0, "Validator: largest gap between the plan's first pose and "
          "where the ego will be", 0.1, 100.0),
    Param("executor_threads", 0, "Executor threads for the callbacks (0/1 = one; reasoning always has its own thread)."
          " rclpy's multi-threaded executor busy-waits a core under load, so one is the default", 0, 16),
    Param("inject_fault", "", "Testing only: 'reasoning_raise' makes reasoning passes 2-4 raise, 'reasoning_hang' "
          "makes pass 2 hang (exercises the watchdog)", choices=("", "reasoning_raise", "reasoning_hang")),
    Param("diagnostics_rate_hz", 1.0, "Rate of /diagnostics (also sent at once when a level changes)", 0.1, 10.0),
    Param("autostart", True, "Configure and activate at start (false: wait for a lifecycle manager's transitions)"),
]  # fmt: skip


def load_runtime(params: dict[str, Any], log) -> tuple[Any, str, str]:
    """(runtime, backend name, why the primary failed or "") for ``backend`` over ``checkpoint``, or for the fallback
    when configured; raises StartupError."""
    from ..runtime import SpanVLARuntime

    def attempt(backend: str, spec: str):
        options: dict[str, Any] = {"threads": params["num_threads"]}
        if backend == "torch":
            options.update(device=params["device"], flow_steps=params["flow_steps"])
        elif backend == "onnxruntime" and params["device"] == "cpu":
            options["providers"] = ["CPUExecutionProvider"]
        elif backend == "tensorrt":
            options["precision"] = params["precision"]
        return SpanVLARuntime.from_checkpoint_or_export(backend, resolve_model(spec), **options)

    try:
        return attempt(params["backend"], params["checkpoint"]), params["backend"], ""
    except Exception as exc:
        message = f"cannot load backend '{params['backend']}' from '{params['checkpoint']}': {exc}"
        fallback = params["fallback_backend"]
        if not fallback:
            raise StartupError(message) from exc
        log.error(f"{message}; falling back to '{fallback}'")
        try:
            return attempt(fallback, params["fallback_checkpoint"] or params["checkpoint"]), fallback, message
        except Exception as fallback_exc:
            raise StartupError(f"{message}; the fallback '{fallback}' failed too: {fallback_exc}") from fallback_exc


class PlannerNode(LifecycleNode):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self.params = declare(self, PARAMETERS)
        self.core: OnlinePlanner | None = None
        self.active = False
        self.finalized = False
        self.startup_error = ""
        self._entities: list[tuple[str, Any]] = []  # ("publisher" | "subscription" | "timer", handle) to destroy
        self._planning_timer = None
        self._plan_lock = threading.Lock()
        self._running = False
        self._wake = threading.Event()
        self._worker_generation = 0
        self._pass_started_wall: float | None = None
        self.worker_restarts = 0
        self.reasoning_passes = 0
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
            self.core = None
            return TransitionCallbackReturn.FAILURE
        return super().on_configure(state)

    def _configure(self) -> None:
        p = self.params
        runtime, self.backend_name, self.fallback_reason = load_runtime(p, self.get_logger())
        meta = runtime.meta
        if p["history_length"] and p["history_length"] != meta["history_len"]:
            raise StartupError(
                f"history_length {p['history_length']} differs from the artefact's {meta['history_len']}: "
                "set 0 or re-train the model with that history"
            )
        config = OnlineConfig(
            planning_rate_hz=p["planning_rate_hz"],
            reasoning_rate_hz=p["reasoning_rate_hz"],
            camera_timeout_s=p["camera_timeout_s"],
            odometry_timeout_s=p["odometry_timeout_s"],
            reasoning_warn_s=p["reasoning_warn_s"],
            reasoning_timeout_s=max(p["reasoning_timeout_s"], p["reasoning_warn_s"]),
            stop_deceleration_mps2=p["stop_deceleration_mps2"],
            max_reasoning_tokens=p["max_reasoning_tokens"] or None,
            frame_keep_interval_s=p["frame_keep_interval_s"],
            max_speed_mps=p["max_speed_mps"],
            max_acceleration_mps2=p["max_acceleration_mps2"],
            max_yaw_rate_radps=p["max_yaw_rate_radps"],
            invalid_plan_handling=p["invalid_plan_handling"],
            last_valid_max_age_s=p["last_valid_max_age_s"],
            validator=ValidatorConfig(
                wheelbase_m=p["wheelbase_m"],
                max_curvature_1pm=p["validator_max_curvature_1pm"],
                max_lateral_acceleration_mps2=p["validator_max_lateral_acceleration_mps2"],
                max_acceleration_mps2=p["validator_max_acceleration_mps2"],
                max_deceleration_mps2=p["validator_max_deceleration_mps2"],
                max_velocity_deviation_mps=p["validator_max_velocity_deviation_mps"],
                max_first_pose_deviation_m=p["validator_max_first_pose_deviation_m"],
            ),
        )
        try:
            self.core = OnlinePlanner(runtime, list(p["camera_topics"]), config)
        except ValueError as exc:
            raise StartupError(str(exc)) from exc
        self._warm_up(runtime)

        # Paths, reasoning and markers go out only while active (lifecycle publishers); health always does.
        self.path_pub = self._keep(
            "lifecycle_publisher", self.create_lifecycle_publisher(Path, "~/output/trajectory", 10)
        )
        self.reasoning_pub = self._keep(
            "lifecycle_publisher", self.create_lifecycle_publisher(String, "~/output/reasoning", 10)
        )
        self.markers_pub = self._keep(
            "lifecycle_publisher", self.create_lifecycle_publisher(MarkerArray, "~/output/markers", 10)
        )
        self.validation_pub = self._keep(
            "lifecycle_publisher", self.create_lifecycle_publisher(DiagnosticStatus, "~/output/validation_status", 10)
        )
        self.diagnostics_pub = self._keep("publisher", self.create_publisher(DiagnosticArray, "/diagnostics", 10))
        self.debug_pubs = {
            name: self._keep("lifecycle_publisher", self.create_lifecycle_publisher(Float64, f"~/debug/{name}", 10))
            for name in ("planning_ms", "reasoning_ms", "reasoning_age_ms", "cycle_delay_ms")
        }
        camera_qos = (
            qos_profile_sensor_data
            if p["camera_qos"] == "sensor_data"
            else QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
        )
        # One group per input keeps each topic's messages in order while topics run in parallel.
        for topic in p["camera_topics"]:
            msg_type = CompressedImage if topic.rstrip("/").endswith("/compressed") else Image
            self._keep("subscription", self.create_subscription(
                msg_type, topic, lambda msg, name=topic: self._on_image(name, msg), camera_qos,
                callback_group=MutuallyExclusiveCallbackGroup(),
            ))  # fmt: skip
        self._keep("subscription", self.create_subscription(
            Odometry, p["odometry_topic"], self._on_odometry, qos_profile_sensor_data,
            callback_group=MutuallyExclusiveCallbackGroup(),
        ))  # fmt: skip
        self._keep("subscription", self.create_subscription(
            String, p["command_topic"], self._on_command, QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE),
            callback_group=MutuallyExclusiveCallbackGroup(),
        ))  # fmt: skip
        self._due_s: float | None = None
        self._last_cycle_s: float | None = None
        self._period_s = 1.0 / p["planning_rate_hz"]
        self._last_levels: dict[str, Level] = {}
        self._keep("timer", self.create_timer(
            1.0 / p["diagnostics_rate_hz"], self._on_housekeeping, callback_group=MutuallyExclusiveCallbackGroup()
        ))  # fmt: skip
        self.get_logger().info(
            f"configured: backend '{self.backend_name}' on {len(p['camera_topics'])} camera(s) × "
            f"{self.core.frames_per_camera} frame(s), {self.core.num_poses} poses every {self.core.dt_s} s, "
            f"output frame '{p['output_frame']}'"
        )

    def _warm_up(self, runtime) -> None:
        """One reasoning pass and one plan on blank inputs, so the first real cycle does not pay for lazy setup."""
        import numpy as np

        meta = runtime.meta
        images = np.zeros((meta["num_images"], meta["image_size"], meta["image_size"], 3), dtype=np.uint8)
        history = np.zeros((meta["history_len"], 3))
        history[:, 0] = (np.arange(meta["history_len"]) - (meta["history_len"] - 1)) * meta["history_dt_s"]
        start = time.perf_counter()
        result = runtime.reason(images, "unknown", 1.0, 0.0, history, 2)
        runtime.plan(result, history)
        self.get_logger().info(f"backend warmed up in {1e3 * (time.perf_counter() - start):.0f} ms")

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
        self._running = True
        self.active = True
        self._start_worker()
        self._planning_timer = self.create_timer(
            self._period_s, self._on_planning_timer, callback_group=MutuallyExclusiveCallbackGroup()
        )
        self.get_logger().info(f"active: planning at {self.params['planning_rate_hz']} Hz")
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_planning()
        self.get_logger().info("inactive: planning stopped")
        return super().on_deactivate(state)

    def _stop_planning(self) -> None:
        self.active = False
        self._running = False
        self._worker_generation += 1  # the running worker ends after its pass; its result is dropped
        self._wake.set()
        if self._planning_timer is not None:
            self.destroy_timer(self._planning_timer)
            self._planning_timer = None

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._destroy_entities()
        self.core = None  # the backend (model weights, sessions) goes with the core
        self.get_logger().info("cleaned up: backend released")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_planning()
        self._destroy_entities()
        self.core = None
        self.finalized = True
        self.get_logger().info("shut down")
        return TransitionCallbackReturn.SUCCESS

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # --- inputs ----------------------------------------------------------------------------------------------------

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
        self._wake.set()

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
        self._schedule(stamp)

    def _on_command(self, msg: String) -> None:
        if self.core is None:
            return
        try:
            self.core.set_command(self._now(), msg.data)
        except InputRejected as exc:
            self._warn_throttled(str(exc))

    def _warn_throttled(self, text: str) -> None:
        self.get_logger().warning(text, throttle_duration_sec=2.0)

    # --- planning --------------------------------------------------------------------------------------------------

    def _on_planning_timer(self) -> None:
        # The timer is the fallback for silent odometry: it opens a cycle only when odometry has not for 1.5 periods.
        self._schedule(self._now(), gap_periods=1.5)

    def _schedule(self, cycle_s: float, gap_periods: float = 1.0) -> None:
        """Open a planning cycle at ``cycle_s`` unless one opened within ``gap_periods`` planning periods (odometry
        opens cycles, keeping plans aligned with the inputs; the timer covers silent inputs). Only while active."""
        if not self.active:
            return
        with self._plan_lock:
            last = self._last_cycle_s
            if last is not None and last <= cycle_s < last + gap_periods * self._period_s - 1e-3:
                return
            self._due_s = cycle_s
        self._try_plan()

    def _try_plan(self) -> None:
        """Plan the due cycle once its odometry and a reasoning are in (see OnlinePlanner.plan)."""
        with self._plan_lock:
            if self._due_s is None or not self.active:
                return
            now = self._now()
            plan = self.core.plan(now, self._due_s)
            if plan is None:
                return
            due, self._due_s = self._due_s, None
            self._last_cycle_s = due
        p = self.params
        self.path_pub.publish(path_message(plan, p["output_frame"], p["base_frame"]))
        self.markers_pub.publish(marker_array(plan, p["output_frame"], p["base_frame"]))
        self._debug("planning_ms", plan.planning_ms)
        self._debug("cycle_delay_ms", 1e3 * (now - due))
        if plan.reasoning_age_s is not None:
            self._debug("reasoning_age_ms", 1e3 * plan.reasoning_age_s)
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

    def _debug(self, name: str, value: float) -> None:
        self.debug_pubs[name].publish(Float64(data=float(value)))

    # --- reasoning worker and watchdog -----------------------------------------------------------------------------

    def _start_worker(self) -> None:
        self._worker_generation += 1
        threading.Thread(
            target=self._reasoning_loop, args=(self._worker_generation,), name="spanvla-reasoning", daemon=True
        ).start()

    def _reasoning_loop(self, generation: int) -> None:
        core = self.core
        while self._running and generation == self._worker_generation and core is not None:
            self._wake.wait(timeout=0.05)
            self._wake.clear()
            inputs = core.reasoning_inputs(self._now())
            if inputs is None:
                continue
            self._pass_started_wall = time.monotonic()
            start = time.perf_counter()
            self.reasoning_passes += 1  # counted across worker restarts, so an injected hang happens once
            try:
                self._inject_fault(self.reasoning_passes)
                result = core.run_reasoning(inputs)
            except Exception as exc:  # a failed pass: plans continue on the last good cache
                core.reasoning_failed(self._now(), f"{type(exc).__name__}: {exc}")
                self.get_logger().error(f"reasoning pass failed: {exc}", throttle_duration_sec=2.0)
                continue
            finally:
                if generation == self._worker_generation:
                    self._pass_started_wall = None
            if generation != self._worker_generation:
                return  # the watchdog replaced this worker; its late result is dropped
            elapsed_ms = 1e3 * (time.perf_counter() - start)
            if core.set_reasoning(inputs, result):
                self.reasoning_pub.publish(String(data=result.text))
                self._debug("reasoning_ms", elapsed_ms)
                self._try_plan()

    def _inject_fault(self, pass_number: int) -> None:
        fault = self.params["inject_fault"]
        if fault == "reasoning_raise" and 2 <= pass_number <= 4:
            raise RuntimeError("injected fault (inject_fault: reasoning_raise)")
        if fault == "reasoning_hang" and pass_number == 2:
            time.sleep(3600.0)

    def _check_worker(self) -> None:
        started = self._pass_started_wall
        limit = self.params["reasoning_hang_s"]
        if started is not None and time.monotonic() - started > limit:
            self.worker_restarts += 1
            self._pass_started_wall = None
            self.core.reasoning_failed(
                self._now(), f"a reasoning pass hung for more than {limit} s: worker restarted "
                f"({self.worker_restarts} restart(s))",
            )  # fmt: skip
            self.get_logger().error(f"reasoning worker hung > {limit} s: restarting it")
            self._start_worker()

    # --- health ----------------------------------------------------------------------------------------------------

    def _on_housekeeping(self) -> None:
        if self.active:
            self._check_worker()
        self._publish_diagnostics()

    def _statuses(self) -> list[Status]:
        statuses = self.core.statuses(self._now())
        if not self.active:
            statuses.append(Status("lifecycle", Level.WARN, "inactive: configured, not planning (activate to plan)"))
        else:
            statuses.append(Status("lifecycle", Level.OK, "active"))
        restarts = {"worker_restarts": str(self.worker_restarts)}
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
        self._running = False
        self._worker_generation += 1
        self._wake.set()
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
