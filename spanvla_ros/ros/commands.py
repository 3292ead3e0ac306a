"""The ``spanvla demo`` and ``spanvla replay`` commands (the ROS side of the command line)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_commands(commands) -> None:
    demo = commands.add_parser(
        "demo",
        help="closed-loop demo: sim_node + planner_node over DDS, report in runs/demo",
        description="Start sim_node and planner_node as separate processes talking over DDS on loopback, drive "
        "seeded episodes with the shipped checkpoint, record every topic to an MCAP bag and write report.json, "
        "plots and logs. Exits 0 when every episode finished and the planner kept up.",
    )
    demo.add_argument("--out", type=Path, default=Path("runs/demo"))
    demo.add_argument("--episodes", type=int, default=4)
    demo.add_argument("--duration", type=float, default=15.0, help="sim seconds per episode")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--checkpoint", default="model:default", help="model:default, a checkpoint or export dir")
    demo.add_argument("--backend", default="torch", choices=["torch", "onnxruntime", "tensorrt"])
    demo.add_argument("--real-time-factor", type=float, default=1.0, help="sim seconds per wall second")
    demo.add_argument("--params-file", type=Path, help="ROS parameter YAML (default: config/sim_demo.yaml)")
    demo.add_argument(
        "--no-video", action="store_true", help="skip the per-episode MP4 (camera, plan, top-down inset, reasoning)"
    )
    demo.set_defaults(handler=_demo)

    replay = commands.add_parser(
        "replay",
        help="drive the planner with a ROS 2 bag; write an output bag and a report (ADE/FDE, comfort, latency)",
        description="Topics are auto-detected by type unless named. Deterministic by default (recorded time); "
        "--realtime publishes the bag into DDS with /clock and records what a running planner_node publishes.",
    )
    replay.add_argument("bag", type=Path, help="bag directory or file (sqlite3 or MCAP)")
    replay.add_argument("--checkpoint", default="model:default")
    replay.add_argument("--backend", default="torch", choices=["torch", "onnxruntime", "tensorrt"])
    replay.add_argument("--out", type=Path, required=True)
    replay.add_argument("--camera-topic", action="append", default=[], help="camera topic (repeat for several)")
    replay.add_argument("--odometry-topic")
    replay.add_argument("--command-topic")
    replay.add_argument("--speed-limit-topic", help="std_msgs/Float64 (m/s); default: one whose name has speed_limit")
    replay.add_argument(
        "--objects-topic",
        help="visualization_msgs/MarkerArray of object boxes for the collision guard; default: one named like objects "
        "or /carla/markers",
    )
    replay.add_argument(
        "--route-topic",
        help="nav_msgs/Path of the route for route keeping; default: one whose name has waypoints or route",
    )
    replay.add_argument("--planning-rate", type=float, default=10.0)
    replay.add_argument("--reasoning-rate", type=float, default=2.0)
    replay.add_argument("--storage", choices=["mcap", "sqlite3"], help="output bag storage (default: the input's)")
    replay.add_argument("--realtime", action="store_true", help="publish into DDS and record a running node")
    replay.add_argument("--rate", type=float, default=1.0, help="realtime playback speed")
    replay.add_argument(
        "--threads", type=int, default=1, help="inference threads (deterministic mode; as the node's num_threads)"
    )
    replay.set_defaults(handler=_replay)


def _demo(args: argparse.Namespace) -> int:
    from .demo import DemoConfig, run_demo, summary_text

    report = run_demo(
        DemoConfig(
            out=args.out,
            episodes=args.episodes,
            duration_s=args.duration,
            seed=args.seed,
            checkpoint=args.checkpoint,
            backend=args.backend,
            real_time_factor=args.real_time_factor,
            params_file=args.params_file,
            video=not args.no_video,
        )
    )
    print(summary_text(report))
    print(f"report: {args.out / 'report.json'}")
    return 0 if report["success"] else 1


def _replay(args: argparse.Namespace) -> int:
    from .replay import ReplayConfig, replay

    report = replay(
        ReplayConfig(
            bag=args.bag,
            out=args.out,
            checkpoint=args.checkpoint,
            backend=args.backend,
            camera_topics=tuple(args.camera_topic),
            odometry_topic=args.odometry_topic,
            command_topic=args.command_topic,
            speed_limit_topic=args.speed_limit_topic,
            objects_topic=args.objects_topic,
            route_topic=args.route_topic,
            planning_rate_hz=args.planning_rate,
            reasoning_rate_hz=args.reasoning_rate,
            storage=args.storage,
            realtime=args.realtime,
            rate=args.rate,
            threads=args.threads,
        )
    )
    keys = ("plans", "stop_trajectories", "ade_m", "fde_m", "comfort_rate", "planning_latency_ms", "outputs_bag")
    print(json.dumps({k: report[k] for k in keys}, indent=2))
    if report["plans"] == 0:
        print("replay FAILED: no plan was made (see the log for dropped messages and stop reasons)", file=sys.stderr)
        return 1
    return 0
