"""The planner node's parameters (one table: name, default, description, range) and what they configure: the
planning core (``online_config``) and the inference backend with its fallback (``load_runtime``)."""

from __future__ import annotations

from typing import Any

from ..planning.validator import ValidatorConfig
from ..runtime.artefact import resolve_model
from ..runtime.drivers import FAULTS
from ..runtime.online import INVALID_PLAN_HANDLING, PLAN_HEADINGS, OnlineConfig
from ..scene import VehicleDimensions
from .parameters import Param
from .processes import StartupError

BACKENDS = ("torch", "onnxruntime", "tensorrt")

PARAMETERS = [
    Param("checkpoint", "model:default", "Model artefact: model:default, a checkpoint directory (torch backend) or an "
          "export directory (onnxruntime, tensorrt)"),
    Param("backend", "torch", "Inference backend", choices=BACKENDS),
    Param("fallback_backend", "", "Backend to start with when `backend` cannot load ('' = none: exit with an error)",
          choices=("", *BACKENDS)),
    Param("fallback_checkpoint", "", "Artefact for the fallback backend ('' = `checkpoint`)"),
    Param("precision", "fp32", "Inference precision: the torch backend's weights, or the TensorRT engines "
          "(bf16/fp16 on a GPU; fp32 on a CPU)", choices=("fp32", "bf16", "fp16")),
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
    Param("speed_limit_topic", "/planning/speed_limit", "The road's speed limit (std_msgs/Float64, m/s, e.g. from "
          "the map; held until the next message): plans are re-timed along their path to keep to it"),
    Param("speed_limit_deceleration_mps2", 2.0, "How fast a plan brings an ego above the speed limit down to it",
          0.1, 8.0),
    Param("objects_topic", "/perception/objects", "Perceived objects (visualization_msgs/MarkerArray of CUBE markers, "
          "as CARLA-ROS-bridge's /carla/markers: pose = box centre, scale = size, ns/id = identity; velocity from "
          "each id's previous pose): every plan is checked against them and braked along its path when it would "
          "hit one"),
    Param("collision_guard", True, "Check plans against the object list (off: objects are ignored)"),
    Param("collision_clearance_m", 0.5, "Collision guard: how far the ego's box is grown on every side", 0.0, 5.0),
    Param("collision_headway_s", 1.0, "Collision guard: the time gap kept to what the ego follows, where braking "
          "can keep it", 0.0, 5.0),
    Param("collision_guard_max_deceleration_mps2", 8.0, "Collision guard: hardest braking it may add (at most the "
          "validator's)", 1.0, 9.8),
    Param("objects_timeout_s", 0.5, "An object list older than this is not used (WARN)", 0.05, 10.0),
    Param("vehicle_length_m", 4.8, "The ego's box length (collision guard)", 1.0, 30.0),
    Param("vehicle_width_m", 2.0, "The ego's box width (collision guard)", 0.5, 5.0),
    Param("rear_axle_to_center_m", 1.4, "How far the box centre lies ahead of the rear axle (collision guard)",
          -5.0, 15.0),
    Param("route_topic", "/planning/route", "The route to follow (nav_msgs/Path in the odometry frame, driving order, "
          "as CARLA's /carla/<ego>/waypoints; latched or repeated, held until the next): each plan's progress is "
          "laid along the route's lane, easing back from the ego's offset"),
    Param("route_keeping", True, "Lay plans along the route (off: plans keep the model's own path)"),
    Param("route_return_time_s", 3.0, "Route keeping: seconds of driving (at least 5 m/s) over which a plan eases "
          "from the ego's lateral offset back to the route", 0.5, 20.0),
    Param("route_max_offset_m", 6.0, "Route keeping: a route the ego is further off than this is not followed (WARN)",
          0.5, 50.0),
    Param("route_max_lateral_acceleration_mps2", 3.0, "Route keeping: plans are slowed where the route bends too "
          "tightly for their speed (v²κ above this), braking at speed_limit_deceleration_mps2", 0.5, 10.0),
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
    Param("plan_headings", "path", "Headings of the published plan: the direction its positions travel (path), "
          "or the action expert's own (model)", choices=PLAN_HEADINGS),
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
    Param("validator_max_heading_inconsistency_rad", 0.35, "Validator: largest gap between a pose's heading and the "
          "direction its positions travel", 0.01, 3.2),
    Param("validator_max_first_pose_deviation_m", 6.0, "Validator: largest gap between the plan's first pose and "
          "where the ego will be", 0.1, 100.0),
    Param("executor_threads", 0, "Executor threads for the callbacks (0/1 = one; reasoning always has its own thread)."
          " rclpy's multi-threaded executor busy-waits a core under load, so one is the default", 0, 16),
    Param("inject_fault", "", "Testing only: 'reasoning_raise' makes reasoning passes 2-4 raise, 'reasoning_hang' "
          "makes pass 2 hang (exercises the watchdog)", choices=FAULTS),
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
            options.update(device=params["device"], flow_steps=params["flow_steps"], precision=params["precision"])
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


def guard_decelerations(hardest_mps2: float) -> tuple[float, ...]:
    """The collision guard's braking ladder up to ``hardest_mps2``."""
    return tuple(d for d in OnlineConfig().guard_decelerations_mps2 if d < hardest_mps2) + (hardest_mps2,)


def online_config(p: dict[str, Any]) -> OnlineConfig:
    """The planning core's configuration from the node's parameters."""
    return OnlineConfig(
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
        plan_headings=p["plan_headings"],
        last_valid_max_age_s=p["last_valid_max_age_s"],
        speed_limit_deceleration_mps2=p["speed_limit_deceleration_mps2"],
        collision_guard=p["collision_guard"],
        collision_clearance_m=p["collision_clearance_m"],
        collision_headway_s=p["collision_headway_s"],
        guard_decelerations_mps2=guard_decelerations(
            min(p["collision_guard_max_deceleration_mps2"], p["validator_max_deceleration_mps2"])
        ),
        objects_timeout_s=p["objects_timeout_s"],
        route_keeping=p["route_keeping"],
        route_return_time_s=p["route_return_time_s"],
        route_max_offset_m=p["route_max_offset_m"],
        route_max_lateral_acceleration_mps2=p["route_max_lateral_acceleration_mps2"],
        vehicle=VehicleDimensions(
            length_m=p["vehicle_length_m"],
            width_m=p["vehicle_width_m"],
            rear_axle_to_center_m=p["rear_axle_to_center_m"],
            wheelbase_m=p["wheelbase_m"],
        ),
        validator=ValidatorConfig(
            wheelbase_m=p["wheelbase_m"],
            max_curvature_1pm=p["validator_max_curvature_1pm"],
            max_lateral_acceleration_mps2=p["validator_max_lateral_acceleration_mps2"],
            max_acceleration_mps2=p["validator_max_acceleration_mps2"],
            max_deceleration_mps2=p["validator_max_deceleration_mps2"],
            max_velocity_deviation_mps=p["validator_max_velocity_deviation_mps"],
            max_first_pose_deviation_m=p["validator_max_first_pose_deviation_m"],
            max_heading_inconsistency_rad=p["validator_max_heading_inconsistency_rad"],
        ),
    )
