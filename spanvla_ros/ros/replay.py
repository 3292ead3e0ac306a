"""Rosbag replay (``spanvla replay``): drive the planner with a recorded ROS 2 bag (sqlite3 or MCAP, read with
``rosbags``) and report how its plans compare with where the vehicle really went.

Deterministic mode (default) feeds the planning core the node runs (:class:`~spanvla_ros.runtime.online.OnlinePlanner`)
through its synchronous driver, at recorded time, never wall-clock: odometry opens planning cycles as in the node, and
the reasoning pass that is due runs to completion before the cycle plans, so two replays give identical plans.
``--realtime`` instead publishes the bag into DDS (with ``/clock``) at its recorded pace and records what a running
``planner_node`` publishes. Both write ``outputs/`` (a bag holding the input topics and the planner's outputs side
by side) and ``report.json``: ADE/FDE against the recorded future odometry, comfort of the plans, latency, plots.
"""

from __future__ import annotations

import importlib
import logging
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..eval.recording import plot_plans_over_track, pose_at, recording_metrics
from ..scene import world_to_ego
from .conversions import (
    ImageConversionError,
    image_layout,
    image_to_rgb,
    latched_qos,
    markers_to_objects,
    odometry_to_pose,
    path_dt_s,
    path_to_poses,
    stamp_seconds,
)

log = logging.getLogger(__name__)

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
ODOMETRY_TYPE = "nav_msgs/msg/Odometry"
COMMAND_TYPE = "std_msgs/msg/String"
SPEED_LIMIT_TYPE = "std_msgs/msg/Float64"
OBJECTS_TYPE = "visualization_msgs/msg/MarkerArray"
ROUTE_TYPE = "nav_msgs/msg/Path"
OUTPUT_PREFIX = "/spanvla_planner"


class ReplayError(ValueError):
    """The bag cannot be replayed (missing, not ROS 2, no camera or odometry topic); the message says which."""


@dataclass(frozen=True)
class ReplayConfig:
    bag: Path
    out: Path
    checkpoint: str = "model:default"
    backend: str = "torch"
    camera_topics: tuple[str, ...] = ()  # () = every image topic, by type
    odometry_topic: str | None = None  # None = the odometry topic, by type
    command_topic: str | None = None  # None = a String topic whose name contains "command", if any
    speed_limit_topic: str | None = None  # None = a Float64 topic whose name contains "speed_limit", if any
    objects_topic: str | None = None  # None = a MarkerArray topic named like "objects" or "/carla/markers", if any
    route_topic: str | None = None  # None = a Path topic whose name contains "waypoints" or "route", if any
    planning_rate_hz: float = 10.0
    reasoning_rate_hz: float = 2.0
    storage: str | None = None  # output bag storage; None = the input's
    realtime: bool = False
    rate: float = 1.0  # realtime playback speed
    #: Inference threads (deterministic mode), bounded like the node's ``num_threads``: unbounded threads on a busy
    #: machine ran 4.6× slower; 0 = the library's default.
    threads: int = 1


@dataclass(frozen=True)
class _Topics:
    cameras: tuple[str, ...]
    odometry: str
    command: str | None
    speed_limit: str | None
    objects: str | None
    route: str | None
    storage: str

    @property
    def inputs(self) -> tuple[str, ...]:
        optional = (self.command, self.speed_limit, self.objects, self.route)
        return tuple(t for t in (*self.cameras, self.odometry, *optional) if t is not None)


def select_topics(reader, config: ReplayConfig) -> _Topics:
    """The topics to replay: named ones must exist with the right type; missing names are auto-detected."""
    types = {c.topic: c.msgtype for c in reader.connections}

    def check(topic: str, allowed: tuple[str, ...], what: str) -> str:
        if topic not in types:
            raise ReplayError(f"{config.bag}: no topic {topic} ({what}); topics: {types}")
        if types[topic] not in allowed:
            raise ReplayError(f"{config.bag}: {topic} is {types[topic]}, not {' or '.join(allowed)}")
        return topic

    if config.camera_topics:
        cameras = tuple(check(t, IMAGE_TYPES, "camera") for t in config.camera_topics)
    else:
        cameras = tuple(sorted(t for t, m in types.items() if m in IMAGE_TYPES))
    if not cameras:
        raise ReplayError(f"{config.bag}: no camera topic (sensor_msgs/Image or CompressedImage); topics: {types}")
    if config.odometry_topic:
        odometry = check(config.odometry_topic, (ODOMETRY_TYPE,), "odometry")
    else:
        candidates = sorted(t for t, m in types.items() if m == ODOMETRY_TYPE)
        if not candidates:
            raise ReplayError(f"{config.bag}: no odometry topic (nav_msgs/Odometry); topics: {types}")
        odometry = candidates[0]

    def optional(topic: str | None, msgtype: str, name_parts: tuple[str, ...], what: str) -> str | None:
        """A named topic, checked; else the first of ``msgtype`` whose name contains one of ``name_parts``, if any."""
        if topic:
            return check(topic, (msgtype,), what)
        found = (t for t, m in sorted(types.items()) if m == msgtype and any(part in t for part in name_parts))
        return next(found, None)

    command = optional(config.command_topic, COMMAND_TYPE, ("command",), "command")
    speed_limit = optional(config.speed_limit_topic, SPEED_LIMIT_TYPE, ("speed_limit",), "speed limit")
    objects = optional(config.objects_topic, OBJECTS_TYPE, ("objects", "/carla/markers"), "objects")
    route = optional(config.route_topic, ROUTE_TYPE, ("waypoints", "route"), "route")
    storage = config.storage or _storage_of(Path(config.bag))
    return _Topics(cameras, odometry, command, speed_limit, objects, route, storage)


def _storage_of(bag: Path) -> str:
    files = [bag] if bag.is_file() else list(bag.iterdir())
    return "mcap" if any(f.suffix == ".mcap" for f in files) else "sqlite3"


def _open_reader(bag: Path):
    from rosbags.highlevel import AnyReader

    if not Path(bag).exists():
        raise ReplayError(f"bag not found: {bag}")
    reader = AnyReader([Path(bag)])
    reader.open()
    if not reader.is2:
        reader.close()
        raise ReplayError(f"{bag} is a ROS 1 bag: replay reads ROS 2 bags (convert with `rosbags-convert`)")
    return reader


def replay(config: ReplayConfig) -> dict[str, Any]:
    """Replay ``config.bag``; return the report (also written to ``out/report.json``)."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    if (out / "outputs").exists():
        import shutil

        shutil.rmtree(out / "outputs")
    if config.realtime:
        return _replay_realtime(config, out)
    return _replay_deterministic(config, out)


# --- deterministic -------------------------------------------------------------------------------------------------


def _replay_deterministic(config: ReplayConfig, out: Path) -> dict[str, Any]:
    from std_msgs.msg import Float64, String

    from ..runtime import SpanVLARuntime
    from ..runtime.artefact import resolve_model
    from ..runtime.drivers import SyncDriver
    from ..runtime.online import InputRejected, OnlineConfig, OnlinePlanner
    from .bag import BagWriter
    from .conversions import marker_array, path_message

    runtime = SpanVLARuntime.from_checkpoint_or_export(
        config.backend, resolve_model(config.checkpoint), threads=config.threads
    )
    reader = _open_reader(config.bag)
    try:
        topics = select_topics(reader, config)
        core = OnlinePlanner(
            runtime,
            list(topics.cameras),
            OnlineConfig(planning_rate_hz=config.planning_rate_hz, reasoning_rate_hz=config.reasoning_rate_hz),
        )
        driver = SyncDriver(core)
        wanted = [c for c in reader.connections if c.topic in topics.inputs]
        plans, track, dropped = [], [], 0
        writer = BagWriter(out / "outputs", topics.storage)
        total = sum(c.msgcount for c in wanted)
        for connection, bag_time_ns, raw in tqdm(reader.messages(connections=wanted), total=total, desc="replay"):
            writer.write_raw(connection.topic, connection.msgtype, bag_time_ns, raw)
            msg = reader.deserialize(raw, connection.msgtype)
            # The node's wiring, on the bag's clock: inputs to the core, cycles opened by odometry.
            try:
                if connection.topic == topics.command:
                    core.set_command(bag_time_ns * 1e-9, msg.data)
                    continue
                if connection.topic == topics.speed_limit:
                    core.set_speed_limit(bag_time_ns * 1e-9, msg.data)
                    continue
                if connection.topic == topics.objects:
                    stamp, frame, ids, boxes = markers_to_objects(msg)
                    core.set_objects(stamp or bag_time_ns * 1e-9, frame, ids, boxes)
                    continue
                if connection.topic == topics.route:
                    _, frame, poses = path_to_poses(msg)
                    core.set_route(bag_time_ns * 1e-9, frame, poses[:, :2])
                    continue
                stamp = stamp_seconds(msg.header.stamp)
                if connection.topic in topics.cameras:
                    core.add_frame(connection.topic, stamp, image_layout(msg), lambda m=msg: image_to_rgb(m))
                    continue
                pose, speed = odometry_to_pose(msg)
                core.add_odometry(stamp, pose, speed, msg.header.frame_id)
            except (InputRejected, ImageConversionError, ValueError) as exc:
                dropped += 1
                log.warning("dropped a %s message: %s", connection.topic, exc)
                continue
            track.append((stamp, *pose, speed))
            cycle = driver.cycle(stamp)
            if cycle.reasoning is not None:
                writer.write(f"{OUTPUT_PREFIX}/output/reasoning", String(data=cycle.reasoning.text), bag_time_ns)
                reasoning_ms = Float64(data=core.timings["reasoning_ms"][-1])
                writer.write(f"{OUTPUT_PREFIX}/debug/reasoning_ms", reasoning_ms, bag_time_ns)
            plan = cycle.plan
            if plan is None:
                continue
            plans.append(plan)
            frame = plan.odom_frame or "odom"
            writer.write(
                f"{OUTPUT_PREFIX}/output/trajectory", path_message(plan, "base_link", "base_link"), bag_time_ns
            )
            writer.write(
                f"{OUTPUT_PREFIX}/output/trajectory_{frame}", path_message(plan, frame, "base_link"), bag_time_ns
            )
            writer.write(f"{OUTPUT_PREFIX}/output/markers", marker_array(plan, "base_link", "base_link"), bag_time_ns)
            writer.write(f"{OUTPUT_PREFIX}/debug/planning_ms", Float64(data=plan.planning_ms), bag_time_ns)
        writer.close()
    finally:
        reader.close()
    records = [(p.stamp_s, p.origin, p.poses_ego, p.safe_stop) for p in plans if p.origin is not None]
    return _report(
        config, out, topics, records, np.array(track), list(core.timings["planning_ms"]),
        list(core.timings["reasoning_ms"]), dropped, core.dt_s, dict(core.counters),
    )  # fmt: skip


# --- realtime ------------------------------------------------------------------------------------------------------


def _message_class(msgtype: str):
    package, _, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


def _replay_realtime(config: ReplayConfig, out: Path) -> dict[str, Any]:
    """Publish the bag into DDS at its pace (``/clock`` from the bag's time) and record the node's outputs."""
    from nav_msgs.msg import Path as PathMsg
    from rosgraph_msgs.msg import Clock
    from std_msgs.msg import Float64, String

    from .bag import BagRecorder, BagWriter
    from .conversions import seconds_to_stamp
    from .processes import BackgroundNode, ros_process_environment

    track: list[tuple] = []
    received: list[tuple[float, str, np.ndarray]] = []
    spacing: list[float] = []
    planning_ms: list[float] = []
    reasoning_ms: list[float] = []
    with ros_process_environment(), closing(_open_reader(config.bag)) as reader:
        topics = select_topics(reader, config)
        # The node stops spinning before the writer closes, so no late output meets a closed bag.
        with BagWriter(out / "outputs", topics.storage) as writer, BackgroundNode("spanvla_replay") as player:
            node = player.node
            outputs = {
                f"{OUTPUT_PREFIX}/output/trajectory": PathMsg,
                f"{OUTPUT_PREFIX}/output/reasoning": String,
                f"{OUTPUT_PREFIX}/debug/planning_ms": Float64,
                f"{OUTPUT_PREFIX}/debug/reasoning_ms": Float64,
            }
            BagRecorder(node, outputs, writer)

            def on_path(msg) -> None:
                received.append(path_to_poses(msg))
                spacing.append(path_dt_s(msg))

            node.create_subscription(PathMsg, f"{OUTPUT_PREFIX}/output/trajectory", on_path, 50)
            node.create_subscription(
                Float64, f"{OUTPUT_PREFIX}/debug/planning_ms", lambda m: planning_ms.append(m.data), 50
            )
            node.create_subscription(
                Float64, f"{OUTPUT_PREFIX}/debug/reasoning_ms", lambda m: reasoning_ms.append(m.data), 50
            )
            wanted = [c for c in reader.connections if c.topic in topics.inputs]
            # The node takes the route latched (transient local), as a route publisher sends it.
            qos = {topics.route: latched_qos()}
            publishers = {
                c.topic: node.create_publisher(_message_class(c.msgtype), c.topic, qos.get(c.topic, 10)) for c in wanted
            }
            clock = node.create_publisher(Clock, "/clock", 10)
            _wait_for_subscribers(publishers[topics.odometry], timeout_s=30.0)
            start_wall, start_bag = time.monotonic(), None
            for connection, bag_time_ns, raw in reader.messages(connections=wanted):
                start_bag = bag_time_ns if start_bag is None else start_bag
                time.sleep(max(0.0, start_wall + (bag_time_ns - start_bag) * 1e-9 / config.rate - time.monotonic()))
                clock.publish(Clock(clock=seconds_to_stamp(bag_time_ns * 1e-9, type(Clock().clock))))
                publishers[connection.topic].publish(raw)
                writer.write_raw(connection.topic, connection.msgtype, node.get_clock().now().nanoseconds, raw)
                if connection.topic == topics.odometry:
                    msg = reader.deserialize(raw, connection.msgtype)
                    try:
                        pose, speed = odometry_to_pose(msg)
                        track.append((stamp_seconds(msg.header.stamp), *pose, speed))
                    except ValueError:
                        pass
            time.sleep(2.0)  # the node's last outputs arrive
    track_array = np.array(track)
    records = []
    for stamp, frame, poses in received:
        origin = pose_at(track_array, stamp)
        if origin is None:
            continue
        poses_ego = poses if frame in ("base_link", "ego_vehicle") else world_to_ego(poses, origin)
        records.append((stamp, origin, poses_ego, False))
    dt_s = float(np.median(spacing)) if spacing else 0.5
    return _report(config, out, topics, records, track_array, planning_ms, reasoning_ms, 0, dt_s)


def _wait_for_subscribers(publisher, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while publisher.get_subscription_count() == 0:
        if time.monotonic() > deadline:
            raise ReplayError(f"no node subscribes to {publisher.topic_name} after {timeout_s} s: start planner_node")
        time.sleep(0.1)
    time.sleep(1.0)  # the subscriber's other topics settle too


# --- report --------------------------------------------------------------------------------------------------------


def _report(
    config,
    out,
    topics,
    records,
    track,
    planning_ms,
    reasoning_ms,
    dropped,
    dt_s: float,
    validation: dict | None = None,
) -> dict[str, Any]:
    """The replay's report; ``dt_s``: the plans' pose spacing (the artefact's); ``validation``: the planning core's
    counters (plans, validator_rejections, last_valid_republished, stop_trajectories), known in deterministic mode."""
    from ..eval.report import percentiles, write_json

    metrics = recording_metrics(records, track, dt_s)
    ade = metrics.pop("ade_per_plan")
    report = {
        "bag": str(config.bag),
        "mode": "realtime" if config.realtime else "deterministic",
        "checkpoint": config.checkpoint,
        "backend": config.backend,
        "topics": {
            "cameras": list(topics.cameras),
            "odometry": topics.odometry,
            "command": topics.command,
            "speed_limit": topics.speed_limit,
            "objects": topics.objects,
            "route": topics.route,
        },
        "plans": len(records),
        "plan_dt_s": dt_s,
        "stop_trajectories": sum(int(stopped) for *_, stopped in records),
        "validation": validation,
        **metrics,
        "dropped_messages": dropped,
        "planning_latency_ms": percentiles(list(planning_ms)),
        "reasoning_ms": percentiles(list(reasoning_ms)),
        "outputs_bag": str(out / "outputs"),
        "plots": [str(plot_plans_over_track(records, track, ade, out / "replay.png"))] if records else [],
        "plans_detail": [
            {"stamp_s": round(s, 6), "poses_ego": np.round(p, 6).tolist(), "stop": bool(stop)}
            for s, _, p, stop in records
        ],
    }
    write_json(report, out / "report.json")
    return report
