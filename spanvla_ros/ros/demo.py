"""The closed-loop demo (``make demo``, ``spanvla demo``): ``sim_node`` and ``planner_node`` as separate processes
talking over DDS on loopback, seeded episodes driven with the shipped checkpoint, every topic recorded to an MCAP bag,
and a report: ``report.json`` (driving score, route completion, collisions, PDMS of the published plans, planning
latency p50/p99, per-episode rows), per-episode PNGs and a latency plot under the output folder."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

SIM_PREFIX = "/carla/ego_vehicle"
PLANNER = "/spanvla_planner"


@dataclass(frozen=True)
class DemoConfig:
    out: Path = Path("runs/demo")
    episodes: int = 4
    duration_s: float = 15.0
    seed: int = 0
    checkpoint: str = "model:default"
    backend: str = "torch"
    real_time_factor: float = 1.0
    params_file: Path | None = None
    #: Share of ticks whose plan may arrive late (after the sim's wait) before the demo counts as failed.
    max_late_fraction: float = 0.1
    #: Per episode an MP4: the camera with the plan drawn in, a top-down inset and the reasoning text.
    video: bool = True


def recorded_topics() -> dict[str, type]:
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
    from nav_msgs.msg import Odometry, Path
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import CameraInfo, Image
    from std_msgs.msg import Float64, String
    from visualization_msgs.msg import MarkerArray

    topics: dict[str, type] = {
        "/clock": Clock,
        f"{SIM_PREFIX}/rgb_front/image": Image,
        f"{SIM_PREFIX}/rgb_front/camera_info": CameraInfo,
        f"{SIM_PREFIX}/odometry": Odometry,
        f"{SIM_PREFIX}/driving_command": String,
        f"{SIM_PREFIX}/speed_limit": Float64,
        "/carla/markers": MarkerArray,
        f"{SIM_PREFIX}/waypoints": Path,
        f"{PLANNER}/output/trajectory": Path,
        f"{PLANNER}/output/reasoning": String,
        f"{PLANNER}/output/markers": MarkerArray,
        f"{PLANNER}/output/validation_status": DiagnosticStatus,
        "/diagnostics": DiagnosticArray,
        "/sim/episode": String,
    }
    for name in ("planning_ms", "reasoning_ms", "reasoning_age_ms", "cycle_delay_ms"):
        topics[f"{PLANNER}/debug/{name}"] = Float64
    return topics


def default_params_file() -> Path:
    from ..runtime.artefact import SOURCE_ROOT

    candidates = [SOURCE_ROOT / "config" / "sim_demo.yaml"]
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.insert(0, Path(get_package_share_directory("spanvla_ros")) / "config" / "sim_demo.yaml")
    except Exception:  # not installed through ament: the source tree's copy
        pass
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"config/sim_demo.yaml not found in {[str(c) for c in candidates]}")


def run_demo(config: DemoConfig = DemoConfig()) -> dict[str, Any]:
    """Drive the demo; return the report (also written to ``out/report.json``)."""
    from .bag import BagRecorder, BagWriter
    from .processes import BackgroundNode, ros_process_environment, start_node, stop_node

    out = Path(config.out)
    for stale in ("bag", "episodes"):
        shutil.rmtree(out / stale, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    params_file = str(config.params_file or default_params_file())
    episodes_dir = out / "episodes"
    sim_args = [
        "--params-file", params_file, "-p", f"episodes:={config.episodes}", "-p", f"duration_s:={config.duration_s}",
        "-p", f"seed:={config.seed}", "-p", f"output_dir:={episodes_dir.resolve()}",
        "-p", f"real_time_factor:={config.real_time_factor}", "-p", f"video:={str(config.video).lower()}",
    ]  # fmt: skip
    planner_args = ["--params-file", params_file, "-p", f"checkpoint:={config.checkpoint}"]
    planner_args += ["-p", f"backend:={config.backend}"]

    started = time.monotonic()
    with ros_process_environment() as env, BagWriter(out / "bag", "mcap") as writer:
        recorder = BackgroundNode("spanvla_demo_recorder")
        BagRecorder(recorder.node, recorded_topics(), writer)
        planner = start_node("planner_node", planner_args, out / "planner.log", env)
        sim = start_node("sim_node", sim_args, out / "sim.log", env)
        budget_s = 240.0 + 3.0 * config.episodes * config.duration_s / max(config.real_time_factor, 0.2)
        try:
            sim_code = sim.wait(timeout=budget_s)
        except subprocess.TimeoutExpired:
            log.error("the simulator did not finish within %.0f s", budget_s)
            sim_code = stop_node(sim)
        finally:
            planner_code = stop_node(planner)
            time.sleep(0.5)  # the last messages reach the recorder
            recorder.close()
    return build_report(out, config, sim_code, planner_code, time.monotonic() - started)


def _read_float_topics(bag: Path) -> dict[str, list[float]]:
    from rosbags.highlevel import AnyReader

    values: dict[str, list[float]] = {}
    with AnyReader([bag]) as reader:
        wanted = [c for c in reader.connections if c.msgtype == "std_msgs/msg/Float64"]
        for connection, _, raw in reader.messages(connections=wanted):
            values.setdefault(connection.topic, []).append(float(reader.deserialize(raw, connection.msgtype).data))
    return values


def _read_validation(bag: Path) -> dict[str, int]:
    """The planner's counters from its last ``validation_status`` (plans, validator_rejections, last_valid_republished,
    stop_trajectories, speed_limited, collision_guarded, route_kept) and how often each check failed, counted over
    every status in the bag."""
    from rosbags.highlevel import AnyReader

    counters: dict[str, int] = {}
    failed: dict[str, int] = {}
    with AnyReader([bag]) as reader:
        wanted = [c for c in reader.connections if c.topic == f"{PLANNER}/output/validation_status"]
        for connection, _, raw in reader.messages(connections=wanted):
            values = {kv.key: kv.value for kv in reader.deserialize(raw, connection.msgtype).values}
            counters = {k: int(values[k]) for k in VALIDATION_COUNTERS if k in values}
            for name, value in values.items():
                if "/" in value:
                    measured, limit = (float(x) for x in value.split("/"))
                    if measured > limit:
                        failed[name] = failed.get(name, 0) + 1
    return {**counters, **{f"failed_{name}": count for name, count in sorted(failed.items())}}


VALIDATION_COUNTERS = (
    "plans", "validator_rejections", "last_valid_republished", "stop_trajectories", "speed_limited",
    "collision_guarded", "route_kept",
)  # fmt: skip


def _bag_summary(bag: Path) -> dict[str, Any]:
    from rosbags.highlevel import AnyReader

    with AnyReader([bag]) as reader:
        counts: dict[str, int] = {}
        for connection in reader.connections:
            counts[connection.topic] = counts.get(connection.topic, 0) + connection.msgcount
        return {"path": str(bag), "storage": "mcap", "messages": sum(counts.values()), "topics": counts}


def build_report(
    out: Path, config: DemoConfig, sim_code: int | None, planner_code: int | None, wall_s: float
) -> dict[str, Any]:
    from ..eval.report import percentiles, write_json

    rows = []
    for seed in range(config.seed, config.seed + config.episodes):
        file = out / "episodes" / f"episode_{seed}.json"
        if file.is_file():
            rows.append(json.loads(file.read_text()))
    floats = _read_float_topics(out / "bag")
    planning_ms = floats.get(f"{PLANNER}/debug/planning_ms", [])
    round_trip_ms = [v for row in rows for v in row.get("plan_latency_ms", [])]
    ticks = sum(row["ticks"] for row in rows)
    late = sum(row["late_plans"] for row in rows)
    scored = sum(row["plans_scored"] for row in rows)
    problems = []
    if len(rows) < config.episodes:
        problems.append(f"{config.episodes - len(rows)} episode(s) did not finish (see sim.log / planner.log)")
    if ticks and late > config.max_late_fraction * ticks:
        problems.append(f"{late} of {ticks} ticks had no plan in time (limit {config.max_late_fraction:.0%})")
    if sim_code not in (0, None):
        problems.append(f"sim_node exited with {sim_code}")
    if not planning_ms:
        problems.append("the planner published no timing: it did not plan")
    report = {
        "success": not problems,
        "problems": problems,
        "checkpoint": config.checkpoint,
        "backend": config.backend,
        "driving_score": float(np.mean([r["driving_score"] for r in rows])) if rows else 0.0,
        "route_completion": float(np.mean([r["route_completion"] for r in rows])) if rows else 0.0,
        "collisions": int(sum(r["collisions"] for r in rows)),
        "collision_rate": float(np.mean([r["collisions"] > 0 for r in rows])) if rows else 0.0,
        "pdms": float(sum(r["pdms"] * r["plans_scored"] for r in rows) / scored) if scored else 0.0,
        "plans_scored": scored,
        "planning_latency_ms": percentiles(planning_ms),
        "plan_round_trip_ms": percentiles(round_trip_ms),
        "reasoning_ms": percentiles(floats.get(f"{PLANNER}/debug/reasoning_ms", [])),
        "reasoning_age_ms": percentiles(floats.get(f"{PLANNER}/debug/reasoning_age_ms", [])),
        "validation": _read_validation(out / "bag"),
        "ticks": ticks,
        "late_plans": late,
        "sim_exit_code": sim_code,
        "planner_exit_code": planner_code,
        "wall_s": round(wall_s, 1),
        "episodes": [{k: v for k, v in row.items() if k != "plan_latency_ms"} for row in rows],
        "bag": _bag_summary(out / "bag"),
        "plots": sorted(str(p) for p in (out / "episodes").glob("*.png")),
        "videos": sorted(str(p) for p in (out / "episodes").glob("*.mp4")),
    }
    if planning_ms or round_trip_ms:
        report["plots"].append(str(_plot_latency(planning_ms, round_trip_ms, out / "latency.png")))
    write_json(report, out / "report.json")
    return report


def _plot_latency(planning_ms: list[float], round_trip_ms: list[float], path: Path) -> Path:
    import matplotlib.pyplot as plt

    from ..eval.report import save_figure

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    bins = np.linspace(0, max([*planning_ms, *round_trip_ms, 1.0]), 40)
    ax.hist(planning_ms, bins=bins, alpha=0.7, label="action expert (planning_ms)")
    ax.hist(round_trip_ms, bins=bins, alpha=0.5, label="sim tick → plan received")
    ax.set_xlabel("ms")
    ax.set_ylabel("plans")
    ax.legend()
    ax.set_title("planning latency in the closed-loop demo")
    return save_figure(fig, path)


def summary_text(report: dict[str, Any]) -> str:
    lat = report["planning_latency_ms"]
    trip = report["plan_round_trip_ms"]
    validation = report.get("validation", {})
    lines = [
        f"demo {'OK' if report['success'] else 'FAILED'}: {len(report['episodes'])} episode(s), "
        f"{report['ticks']} ticks, {report['late_plans']} late plan(s)",
        f"  driving score {report['driving_score']:.3f}  route completion {report['route_completion']:.3f}  "
        f"collisions {report['collisions']}  PDMS of published plans {report['pdms']:.3f}",
        f"  planning latency p50 {lat['p50']:.1f} ms  p99 {lat['p99']:.1f} ms  |  tick→plan p50 {trip['p50']:.1f} ms  "
        f"p99 {trip['p99']:.1f} ms",
        f"  validator: {validation.get('validator_rejections', 0)} of {validation.get('plans', 0)} plans rejected, "
        f"{validation.get('stop_trajectories', 0)} stop trajectories, {validation.get('speed_limited', 0)} plans held "
        f"to the speed limit, {validation.get('collision_guarded', 0)} braked by the collision guard, "
        f"{validation.get('route_kept', 0)} laid along the route",
        f"  bag: {report['bag']['path']} ({report['bag']['messages']} messages)",
    ]
    if report.get("videos"):
        lines.append(f"  videos: {', '.join(report['videos'])}")
    lines += [f"  problem: {p}" for p in report["problems"]]
    return "\n".join(lines)
