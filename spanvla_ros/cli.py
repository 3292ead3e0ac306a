"""The ``spanvla`` command: one entry point, a subcommand per job (``spanvla --help``)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path

from .config import ConfigError

log = logging.getLogger("spanvla")


def _positive_int(text: str) -> int:
    """An argparse type: refused at parse time, so a recipe does not find out after hours of training."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except (ValueError, FileNotFoundError, ConfigError, KeyError, RuntimeError) as exc:
        # Library errors carry a message that says what is wrong; show it without a traceback.
        print(f"spanvla: error: {exc}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spanvla",
        description="SpanVLA planning for ROS 2: evaluation, benchmarks and tools.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    eval_parser = commands.add_parser("eval", help="score trajectories and evaluate planners")
    eval_commands = eval_parser.add_subparsers(title="eval commands", metavar="EVAL_COMMAND")

    score = eval_commands.add_parser(
        "score",
        help="score one trajectory in one scene (PDMS, EPDMS and every sub-metric as JSON)",
        description="Track the trajectory with the LQR + bicycle simulation and print PDMS/EPDMS and the sub-metrics "
        "nc, dac, ddc, tlc, ep, ttc, lk, c, hc, ec as JSON.",
    )
    score.add_argument("--scene", required=True, type=Path, help="scene file (.json or .npz)")
    score.add_argument(
        "--trajectory",
        required=True,
        type=Path,
        help="trajectory file: JSON {'poses': [[x, y, heading], ...], 'dt_s': 0.5} or .npy [N, 3]",
    )
    score.add_argument("--dt", type=float, default=0.5, help="pose spacing for .npy or JSON without dt_s (s)")
    score.add_argument("--previous", type=Path, help="the previous cycle's trajectory, for extended comfort (EC)")
    score.add_argument("--previous-elapsed", type=float, default=0.5, help="seconds between the two plans")
    score.add_argument("--config", type=Path, help="scorer config YAML (keys of ScorerConfig); default: built-in")
    score.add_argument("--plot", type=Path, help="also write a PNG of the scene with planned and tracked paths")
    score.add_argument("--out", type=Path, help="also write the JSON to this file")
    score.set_defaults(handler=_eval_score)

    make_scene = eval_commands.add_parser(
        "make-scene", help="write a hand-made example scene (straight road, two-way road, red light)"
    )
    make_scene.add_argument("--kind", choices=["straight", "two-way", "red-light", "traffic"], default="traffic")
    make_scene.add_argument("--out", required=True, type=Path, help="output scene file (.json or .npz)")
    make_scene.set_defaults(handler=_eval_make_scene)

    open_loop = eval_commands.add_parser(
        "open-loop",
        help="run a planner on seeded held-out scenes and report mean PDMS, EPDMS and every sub-metric",
        description="Scenes come from clean expert drives of the embedded world on seeds SEED..SEED+N-1 (held out "
        "from training data); planners see agents' current states only, the scorer the logged futures.",
    )
    open_loop.add_argument(
        "--planner",
        default="expert",
        help="expert | constant-velocity | model:CKPT (model:default), or several separated by commas (same scenes)",
    )
    open_loop.add_argument("--backend", default="torch", help="runtime backend for model planners")
    open_loop.add_argument(
        "--kind",
        choices=["positive", "recovery"],
        default="positive",
        help="clean scenes, or the recovery moments after injected displacements",
    )
    open_loop.add_argument(
        "--camera-style",
        default="default",
        help="the camera's look: default (the renderer's), or a held-out look training never saw "
        "(dusk, overcast, washed_out)",
    )
    open_loop.add_argument(
        "--frames",
        choices=["as-seen", "blank", "shuffled"],
        default="as-seen",
        help="an ablation of what the camera shows model planners: as seen, blank (grey), or another scene's frames",
    )
    open_loop.add_argument("--episodes", type=int, default=20, help="number of seeded episodes")
    open_loop.add_argument("--seed", type=int, default=100_000, help="first episode seed (held-out range)")
    open_loop.add_argument("--scenes-per-episode", type=int, default=1)
    open_loop.add_argument(
        "--min-departure",
        type=float,
        default=3.0,
        help="skip near-trivial moments: the expert departs less than this from constant velocity",
    )
    open_loop.add_argument("--out", type=Path, required=True, help="JSON report (a PNG breakdown is written beside)")
    open_loop.set_defaults(handler=_eval_open_loop)

    closed = eval_commands.add_parser(
        "closed-loop",
        help="drive a planner in the embedded world on seeded episodes: driving score, route completion, collisions",
    )
    closed.add_argument("--planner", default="expert", help="expert | constant-velocity | model:CKPT")
    closed.add_argument("--backend", default="torch", help="runtime backend for model planners")
    closed.add_argument(
        "--replan-every",
        type=int,
        default=None,
        help="ticks (0.1 s) between plans; default 1 (the node's 10 Hz), 5 for --direct model planners (2 Hz)",
    )
    closed.add_argument(
        "--direct",
        action="store_true",
        help="run a model planner's pipeline directly on each scene instead of through the node's planning core",
    )
    closed.add_argument(
        "--plan-headings",
        choices=["path", "model"],
        default="path",
        help="deployed model planners: headings from the plan's positions (the node's default) or the model's",
    )
    closed.add_argument(
        "--no-speed-limit",
        action="store_true",
        help="deployed model planners: do not pass the lane's speed limit to the planning core (as a car without a "
        "map's limits)",
    )
    closed.add_argument(
        "--no-collision-guard",
        action="store_true",
        help="deployed model planners: give the planning core no object list (as a car without perception), so its "
        "collision guard does not check the plans",
    )
    closed.add_argument(
        "--no-route",
        action="store_true",
        help="deployed model planners: give the planning core no route (as a car without navigation), so plans keep "
        "the model's own path",
    )
    closed.add_argument("--camera-style", default="default", help="the camera's look (see eval open-loop)")
    closed.add_argument("--episodes", type=int, default=12)
    closed.add_argument("--seed", type=int, default=100_000, help="first episode seed (held-out range)")
    closed.add_argument("--duration", type=float, default=15.0, help="seconds per episode")
    closed.add_argument("--out", type=Path, required=True, help="JSON report; PNGs of each drive go beside it")
    closed.set_defaults(handler=_eval_closed_loop)

    data = commands.add_parser("data", help="generate and export training data")
    data_commands = data.add_subparsers(title="data commands", metavar="DATA_COMMAND")
    generate = data_commands.add_parser(
        "generate", help="drive seeded episodes and write a dataset (positive, negative and recovery samples)"
    )
    generate.add_argument("--out", type=Path, required=True, help="new dataset directory")
    generate.add_argument("--episodes", type=int, required=True)
    generate.add_argument("--seed", type=int, default=0, help="first episode seed")
    generate.add_argument("--workers", type=int, default=1, help="parallel processes")
    generate.add_argument(
        "--envs",
        default=None,
        help="comma-separated scene kinds (default: highway,merge,roundabout,intersection,two-way,exit)",
    )
    generate.set_defaults(handler=_data_generate)
    dagger = data_commands.add_parser(
        "dagger",
        help="DAgger: drive a checkpoint in the embedded world and label the states it reaches with the expert",
        description="Each episode: after the warm-up the checkpoint drives through the node's planning core; every "
        "0.5 s the state it reached becomes a recovery sample with the expert's plan as target (its own path as the "
        "negative when the scorer marks it down); when it leaves the road the expert takes over and its correction "
        "adds recovery samples. Train on it with data.extra_dirs.",
    )
    dagger.add_argument("--checkpoint", default="model:default", help="the planner that drives (model:CKPT)")
    dagger.add_argument("--out", type=Path, required=True, help="new dataset directory")
    dagger.add_argument("--episodes", type=int, required=True)
    dagger.add_argument("--seed", type=int, default=50_000, help="first episode seed (below the held-out range)")
    dagger.add_argument("--workers", type=int, default=1, help="parallel processes")
    dagger.set_defaults(handler=_data_dagger)
    from_bag = data_commands.add_parser("from-bag", help="turn a ROS 2 bag (camera + odometry) into a dataset")
    from_bag.add_argument("bag", type=Path, help="bag directory or file (sqlite3 or MCAP)")
    from_bag.add_argument("--out", type=Path, required=True)
    from_bag.add_argument("--camera-topic", help="default: the first Image/CompressedImage topic")
    from_bag.add_argument("--odometry-topic", help="default: the first nav_msgs/Odometry topic")
    from_bag.set_defaults(handler=_data_from_bag)
    from_navsim = data_commands.add_parser("from-navsim", help="turn NAVSIM/OpenScene logs into a dataset")
    from_navsim.add_argument("--logs", type=Path, required=True, help="folder of <log>.pkl files")
    from_navsim.add_argument("--sensors", type=Path, required=True, help="the matching sensor_blobs folder")
    from_navsim.add_argument("--out", type=Path, required=True)
    from_navsim.set_defaults(handler=_data_from_navsim)
    export = data_commands.add_parser("export-reasoning", help="write an mReasoning-style JSONL (with PNG images)")
    export.add_argument("--dataset", type=Path, required=True)
    export.add_argument("--out", type=Path, required=True, help="JSONL file; images go to <out>_images/")
    export.set_defaults(handler=_data_export_reasoning)

    train = commands.add_parser("train", help="train SpanVLA: sft-vlm, sft-bridge, grpo (torchrun-ready)")
    train_commands = train.add_subparsers(title="training stages", metavar="STAGE")
    for stage, text in (
        ("sft-vlm", "stage 1: next-token loss on reasoning and action tokens"),
        ("sft-bridge", "stage 2: flow loss of the action expert with the VLM frozen"),
        ("grpo", "stage 3: GRPO with LoRA, negative and recovery rewards"),
    ):
        cmd = train_commands.add_parser(stage, help=text)
        cmd.add_argument("--config", type=Path, default=None, help="training YAML (default: built-in defaults)")
        cmd.add_argument(
            "--init", type=Path, default=None, help="checkpoint to start from (required for sft-bridge and grpo)"
        )
        cmd.add_argument("--resume", action="store_true", help="continue this stage from its last checkpoint")
        if stage == "sft-vlm":
            cmd.add_argument(
                "--strategy",
                choices=["ddp", "fsdp"],
                default=None,
                help="under torchrun: replicate the VLM (ddp) or shard it per decoder layer (fsdp, for a 3B VLM); "
                "default: sft_vlm.strategy of the config",
            )
        cmd.set_defaults(handler=_train, stage=stage)

    recipe = train_commands.add_parser("recipe", help="data + all three stages + evaluation → a shippable checkpoint")
    recipe.add_argument("--config", type=Path, default=Path("config/train_default.yaml"))
    recipe.add_argument("--out", type=Path, default=Path("models/default"))
    recipe.add_argument("--eval-episodes", type=_positive_int, default=40)
    recipe.add_argument("--closed-loop-episodes", type=_positive_int, default=12)
    recipe.set_defaults(handler=_train_recipe)
    evaluate = train_commands.add_parser("evaluate", help="evaluate a checkpoint (open and closed loop)")
    evaluate.add_argument("--checkpoint", type=Path, required=True)
    evaluate.add_argument("--episodes", type=_positive_int, default=40)
    evaluate.add_argument("--closed-loop-episodes", type=_positive_int, default=12)
    evaluate.add_argument("--out", type=Path, required=True)
    evaluate.set_defaults(handler=_train_evaluate)

    export = commands.add_parser("export", help="export ONNX graphs and build TensorRT engines")
    export_commands = export.add_subparsers(title="export commands", metavar="EXPORT_COMMAND")
    onnx_cmd = export_commands.add_parser("onnx", help="export the VLM and action-expert graphs to ONNX")
    onnx_cmd.add_argument("--checkpoint", type=Path, required=True, help="SpanVLA checkpoint directory")
    onnx_cmd.add_argument("--out", type=Path, required=True, help="export directory")
    onnx_cmd.add_argument("--num-images", type=int, default=2, help="cameras × history frames the graphs take")
    onnx_cmd.set_defaults(handler=_export_onnx)
    engines_cmd = export_commands.add_parser(
        "engines", help="build TensorRT engines from an ONNX export (minutes on first build; cached under engines/)"
    )
    engines_cmd.add_argument("--onnx", type=Path, required=True, help="export directory from `spanvla export onnx`")
    engines_cmd.add_argument("--precision", choices=["fp16", "bf16", "fp32"], default="fp16")
    engines_cmd.add_argument("--workspace", type=int, default=4096, help="builder workspace (MB)")
    engines_cmd.add_argument("--engines", type=Path, default=Path("engines"), help="engine cache directory")
    engines_cmd.add_argument("--build-only", action="store_true", help="build and exit (prepare the car)")
    engines_cmd.add_argument("--rebuild", action="store_true", help="ignore cached engines")
    engines_cmd.set_defaults(handler=_export_engines)

    bench = commands.add_parser("bench", help="benchmarks that write JSON results")
    bench_commands = bench.add_subparsers(title="benchmarks", metavar="BENCHMARK")
    scorer = bench_commands.add_parser("scorer", help="PDM scorer throughput at batch 1 and 64")
    scorer.add_argument("--out", type=Path, default=Path("bench/results/scorer.json"), help="JSON output file")
    scorer.add_argument("--repeats", type=int, default=20, help="timed repetitions per batch size")
    scorer.set_defaults(
        handler=_bench_simple, benchmark="scorer", keys=("proposals_per_s_batch1", "proposals_per_s_batch64")
    )
    runtime = bench_commands.add_parser("runtime", help="torch eager vs ONNX Runtime (vs TensorRT) for plan/reason")
    runtime.add_argument("--out", type=Path, default=Path("bench/results/runtime.json"))
    runtime.add_argument("--repeats", type=int, default=20)
    runtime.add_argument(
        "--backend",
        action="append",
        choices=["torch", "onnxruntime", "tensorrt"],
        help="backends to time (default torch and onnxruntime); repeat the flag for several",
    )
    runtime.add_argument("--checkpoint", type=Path, help="checkpoint to export and time (default: the tiny model)")
    runtime.add_argument("--onnx", type=Path, help="reuse this export directory (checked against --checkpoint)")
    runtime.set_defaults(handler=_bench_runtime)
    camera = bench_commands.add_parser("camera", help="front-camera rendering time per frame")
    camera.add_argument("--out", type=Path, default=Path("bench/results/camera.json"), help="JSON output file")
    camera.add_argument("--repeats", type=int, default=30)
    camera.set_defaults(
        handler=_bench_simple, benchmark="camera", keys=("render_ms_median_256", "render_ms_median_112")
    )
    model = bench_commands.add_parser(
        "model", help="SpanVLA latency on this machine: prefill, reasoning tokens/s, flow steps, AR action tokens"
    )
    model.add_argument("--out", type=Path, default=Path("bench/results/model.json"), help="JSON output file")
    model.add_argument("--repeats", type=int, default=15, help="timed repetitions per measurement")
    model.set_defaults(handler=_bench_model)
    replay_bench = bench_commands.add_parser(
        "replay", help="deterministic replay of a 20 s 1280x720 drive, quiet and with cores kept busy"
    )
    replay_bench.add_argument("--out", type=Path, default=Path("bench/results/replay.json"), help="JSON output file")
    replay_bench.add_argument("--seconds", type=float, default=20.0, help="recorded drive length")
    replay_bench.add_argument("--width", type=int, default=1280)
    replay_bench.add_argument("--height", type=int, default=720)
    replay_bench.add_argument("--camera-hz", type=float, default=30.0)
    replay_bench.add_argument(
        "--busy-cores", type=int, nargs="+", default=[0, 1], help="runs with this many spinning processes"
    )
    replay_bench.add_argument("--checkpoint", default="model:default")
    replay_bench.set_defaults(handler=_bench_replay)
    drive = bench_commands.add_parser(
        "drive",
        help="how the planner drives vs constant velocity and the expert: open loop (camera ablations, ladder), "
        "recovery, unseen camera looks, closed loop at 10 Hz",
    )
    drive.add_argument("--out", type=Path, default=Path("bench/results/drive.json"), help="JSON output file")
    drive.add_argument("--checkpoint", default="model:default")
    drive.add_argument("--scenes", type=int, default=200, help="held-out open-loop scenes")
    drive.add_argument("--recovery-scenes", type=int, default=60)
    drive.add_argument("--style-scenes", type=int, default=40, help="scenes per held-out camera look")
    drive.add_argument("--episodes", type=int, default=60, help="closed-loop episodes (all six environments)")
    drive.add_argument(
        "--ladder", default="", help="NAME=CKPT,... checkpoints scored on the same scenes, each against the one before"
    )
    drive.set_defaults(handler=_bench_drive)
    gpu = bench_commands.add_parser(
        "gpu",
        help="a preset's architecture (random weights) through the runtime pipeline and directly: vision, prefill, "
        "decode/token, flow, fast and slow cycles, peak memory",
    )
    gpu.add_argument("--preset", default="tiny", choices=["tiny", "qwen2.5-vl-3b"])
    gpu.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    gpu.add_argument("--images", type=int, default=6, help="cameras × history frames in the prompt")
    gpu.add_argument("--image-size", type=int, default=None, help="image side in pixels (default: the preset's)")
    gpu.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    gpu.add_argument("--repeats", type=int, default=10)
    gpu.add_argument("--slow-tokens", type=int, default=15, help="reasoning tokens of a slow cycle")
    gpu.add_argument("--no-cuda-graphs", action="store_true", help="run decode and flow eagerly on a GPU")
    gpu.add_argument("--num-layers", type=int, default=None, help="override the VLM depth (a quick shape check)")
    gpu.add_argument("--vision-depth", type=int, default=None, help="override the vision tower's depth")
    gpu.add_argument("--out", type=Path, default=Path("bench/results/gpu.json"), help="JSON output file")
    gpu.set_defaults(handler=_bench_gpu)
    soak = bench_commands.add_parser(
        "soak",
        help="planner_node under a 30 Hz 1280x720 camera: planning rate, latency p50/p99, dropped frames, memory",
    )
    soak.add_argument("--out", type=Path, default=Path("bench/results/soak.json"), help="JSON output file")
    soak.add_argument("--duration", type=float, default=600.0, help="seconds of load")
    soak.add_argument("--warmup", type=float, default=60.0, help="seconds excluded from the steady-state numbers")
    soak.add_argument("--camera-hz", type=float, default=30.0)
    soak.add_argument("--width", type=int, default=1280)
    soak.add_argument("--height", type=int, default=720)
    soak.add_argument("--backend", default="torch", choices=["torch", "onnxruntime", "tensorrt"])
    soak.add_argument("--checkpoint", default="model:default")
    soak.add_argument("--camera-qos", default="sensor_data", choices=["sensor_data", "reliable"])
    soak.add_argument(
        "--transports", default="LARGE_DATA", help="FASTDDS_BUILTIN_TRANSPORTS for both processes (DEFAULT: UDP + SHM)"
    )
    soak.set_defaults(handler=_bench_soak)

    from .ros.commands import add_commands

    add_commands(commands)
    return parser


def _eval_score(args: argparse.Namespace) -> int:
    from .config import load_config
    from .eval import PreviousPlan, ScorerConfig, score_trajectories
    from .eval.report import plot_scene, write_json
    from .scene import load_scene, load_trajectory

    config = load_config(ScorerConfig, args.config) if args.config else ScorerConfig()
    scene = load_scene(args.scene)
    trajectory = load_trajectory(args.trajectory, args.dt)
    previous = None
    if args.previous:
        # Track the previous plan from the same start to get the states it would have driven.
        prev_traj = load_trajectory(args.previous, args.dt)
        prev_result = score_trajectories(scene, prev_traj.poses, prev_traj.dt_s, config=config)
        previous = PreviousPlan(prev_result.states[0], args.previous_elapsed)
    result = score_trajectories(scene, trajectory.poses, trajectory.dt_s, previous=previous, config=config)
    row = result.row(0)
    output = {**row, "progress_m": float(result.progress_m[0])}
    if result.reference is not None:
        output["reference"] = result.reference
    text = json.dumps(output, indent=2)
    print(text)
    if args.out:
        write_json(output, args.out)
    if args.plot:
        plans = {"plan": trajectory.poses}
        if scene.reference_poses_ego is not None:
            plans["reference"] = scene.reference_poses_ego
        plot_scene(
            scene,
            args.plot,
            plans_ego=plans,
            tracked_states={"plan": result.states[0]},
            title=f"{scene.token}: PDMS {row['pdms']:.3f}  EPDMS {row['epdms']:.3f}",
        )
    return 0


def _eval_make_scene(args: argparse.Namespace) -> int:
    from .benchmarks.scorer import benchmark_scene
    from .scene import save_scene, straight_poses, straight_road_scene

    reference = straight_poses(10.0, 10)
    if args.kind == "straight":
        scene = straight_road_scene(reference_poses_ego=reference, token="straight")
    elif args.kind == "two-way":
        scene = straight_road_scene(
            num_lanes=1, ego_lane=0, oncoming_lanes=1, reference_poses_ego=reference, token="two_way"
        )
    elif args.kind == "red-light":
        scene = straight_road_scene(
            red_light_at_x_m=35.0, reference_poses_ego=straight_poses(10.0, 10, accel_mps2=-1.6), token="red_light"
        )
    else:
        scene = benchmark_scene()
    save_scene(scene, args.out)
    print(args.out)
    return 0


def _eval_open_loop(args: argparse.Namespace) -> int:
    from .data.scenes import evaluation_scenes
    from .eval import METRIC_NAMES
    from .eval.open_loop import ablate_frames, evaluate_open_loop
    from .eval.report import plot_metric_breakdown, write_json

    planners = [_planner(name.strip(), args.backend) for name in args.planner.split(",")]
    # Scenes are generated once and every planner is scored on the same ones.
    scenes = list(
        evaluation_scenes(
            args.episodes,
            args.seed,
            args.scenes_per_episode,
            min_departure_m=args.min_departure,
            kind=args.kind,
            camera_style=args.camera_style,
        )
    )
    scenes = ablate_frames(scenes, args.frames)
    keys = ("pdms", "epdms", *METRIC_NAMES)
    report = {
        "seed": args.seed,
        "episodes": args.episodes,
        "min_departure_m": args.min_departure,
        "kind": args.kind,
        "camera_style": args.camera_style,
        "frames": args.frames,
        "scene_tokens": [scene.token for scene in scenes],
        "planners": {},
    }
    for planner in planners:
        summary = evaluate_open_loop(planner, scenes, total=len(scenes))
        report["planners"][planner.name] = summary
    if len(planners) == 1:
        report.update({k: v for k, v in report["planners"][planners[0].name].items()})
    write_json(report, args.out)
    rows = {name: {k: s[k] for k in keys} for name, s in report["planners"].items()}
    plot_metric_breakdown(
        rows, args.out.with_suffix(".png"), title=f"open loop, {len(scenes)} scenes, seeds {args.seed}+"
    )
    print(
        json.dumps(
            {name: {"n_scenes": s["n_scenes"], **rows[name]} for name, s in report["planners"].items()}, indent=2
        )
    )
    return 0


def _eval_closed_loop(args: argparse.Namespace) -> int:
    from .eval.report import write_json
    from .sim.closed_loop import ClosedLoopConfig, evaluate_closed_loop

    planner = _planner(
        args.planner,
        args.backend,
        deployed=not args.direct,
        plan_headings=args.plan_headings,
        map_speed_limit=not args.no_speed_limit,
        object_list=not args.no_collision_guard,
        route=not args.no_route,
    )
    replan = args.replan_every or (5 if args.direct and args.planner.startswith("model:") else 1)
    plots = args.out.with_name(args.out.stem + "_plots")
    config = ClosedLoopConfig(duration_s=args.duration, replan_every_ticks=replan, camera_style=args.camera_style)
    summary = evaluate_closed_loop(planner, args.episodes, args.seed, config, plots_dir=plots)
    summary["replan_every_ticks"] = replan
    if hasattr(planner, "counters"):
        from .eval.report import percentiles

        summary["core_counters"] = planner.counters  # what the planning core did: stops, rejections, republished
        summary["planning_latency_ms"] = percentiles(list(planner.core.timings["planning_ms"]))
        summary["reasoning_age_ms"] = percentiles(list(planner.core.timings["reasoning_age_ms"]))
    write_json(summary, args.out)
    keys = ("planner", "episodes", "driving_score", "route_completion", "collision_rate", "off_road_rate", "failures",
            "collisions_by_side")  # fmt: skip
    print(json.dumps({k: summary[k] for k in keys}, indent=2))
    return 0


def _planner(
    name: str,
    backend: str = "torch",
    deployed: bool = False,
    plan_headings: str = "path",
    map_speed_limit: bool = True,
    object_list: bool = True,
    route: bool = True,
):
    """A planner by name; ``deployed``: model planners run through the node's planning core (closed loop), given the
    lane's speed limit unless ``map_speed_limit`` is False, the other road users as an object list unless
    ``object_list`` is False and the route unless ``route`` is False."""
    from .planning import ConstantVelocityPlanner

    if name.startswith("model:"):
        from .runtime.planner import DeployedPlanner, RuntimePlanner

        if deployed:
            from .runtime.online import OnlineConfig

            config = OnlineConfig(plan_headings=plan_headings)
            return DeployedPlanner.from_name(
                _model_path(name),
                backend=backend,
                config=config,
                map_speed_limit=map_speed_limit,
                object_list=object_list,
                route=route,
            )
        return RuntimePlanner.from_name(_model_path(name), backend=backend)
    if name == "constant-velocity":
        return ConstantVelocityPlanner()
    if name == "expert":
        from .sim import ExpertPlanner

        return ExpertPlanner()
    raise ValueError(f"unknown planner '{name}': use expert, constant-velocity or model:CHECKPOINT")


def _model_path(spec: str) -> str:
    """``model:default`` names the shipped checkpoint (the package's share folder, else ./models/default)."""
    from .runtime.artefact import resolve_model

    return f"model:{resolve_model(spec)}"


def _data_generate(args: argparse.Namespace) -> int:
    import dataclasses

    from .data.generate import GenerationConfig, generate_dataset

    config = GenerationConfig()
    if args.envs:
        from .sim import WorldConfig

        envs = tuple(e.strip() for e in args.envs.split(",") if e.strip())
        for env in envs:
            WorldConfig(env=env)  # raises UnknownEnvironmentError with the valid names
        config = dataclasses.replace(config, envs=envs)
    result = generate_dataset(args.out, episodes=args.episodes, seed=args.seed, workers=args.workers, config=config)
    print(
        json.dumps(
            {
                "out": str(args.out),
                "counts": result["counts"],
                "seconds": round(result["seconds"], 1),
                "samples_per_s": round(result["samples_per_s"], 2),
            },
            indent=2,
        )
    )
    return 0


def _data_dagger(args: argparse.Namespace) -> int:
    import functools

    from .data.generate import generate_dataset
    from .runtime.planner import DeployedPlanner

    if not args.checkpoint.startswith("model:"):
        raise ValueError("--checkpoint must name a model (model:default or model:PATH)")
    learner = functools.partial(DeployedPlanner.from_name, _model_path(args.checkpoint))
    result = generate_dataset(args.out, episodes=args.episodes, seed=args.seed, workers=args.workers, learner=learner)
    (args.out / "dagger.json").write_text(json.dumps({"checkpoint": _model_path(args.checkpoint)}, indent=2) + "\n")
    print(json.dumps({"out": str(args.out), "counts": result["counts"], "seconds": round(result["seconds"], 1)}))
    return 0


def _data_from_bag(args: argparse.Namespace) -> int:
    from .data.adapters import samples_from_bag
    from .data.dataset import write_dataset

    samples = samples_from_bag(args.bag, camera_topic=args.camera_topic, odometry_topic=args.odometry_topic)
    manifest = write_dataset(samples, args.out, seeds=[], config={"source": str(args.bag)})
    print(json.dumps({"out": str(args.out), "counts": manifest["counts"]}, indent=2))
    return 0


def _data_from_navsim(args: argparse.Namespace) -> int:
    from .data.adapters import AdapterError, samples_from_navsim_log
    from .data.dataset import write_dataset

    logs = sorted(args.logs.glob("*.pkl"))
    if not logs:
        raise AdapterError(f"no NAVSIM log pickles (*.pkl) in {args.logs}")
    samples = [sample for log in logs for sample in samples_from_navsim_log(log, args.sensors)]
    manifest = write_dataset(samples, args.out, seeds=[], config={"source": str(args.logs)})
    print(json.dumps({"out": str(args.out), "counts": manifest["counts"]}, indent=2))
    return 0


def _data_export_reasoning(args: argparse.Namespace) -> int:
    from .data.export import export_reasoning

    count = export_reasoning(args.dataset, args.out)
    print(f"wrote {count} records to {args.out}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from .training import load_train_config

    config = load_train_config(args.config)
    if getattr(args, "strategy", None):
        config = replace(config, sft_vlm=replace(config.sft_vlm, strategy=args.strategy))
    if args.stage == "sft-vlm":
        from .training.sft import sft_vlm

        out = sft_vlm(config, init=args.init, resume=args.resume)
    else:
        if args.init is None and not args.resume:
            raise ValueError(f"{args.stage} needs --init CHECKPOINT (the previous stage's output)")
        if args.stage == "sft-bridge":
            from .training.sft import sft_bridge

            out = sft_bridge(config, init=args.init, resume=args.resume)
        else:
            from .training.grpo import grpo

            out = grpo(config, init=args.init, resume=args.resume)
    print(out)
    return 0


def _train_recipe(args: argparse.Namespace) -> int:
    from .training.recipe import run_recipe

    record = run_recipe(
        args.config, args.out, eval_episodes=args.eval_episodes, closed_loop_episodes=args.closed_loop_episodes
    )
    print(json.dumps(record["evaluation"], indent=2))
    return 0


def _train_evaluate(args: argparse.Namespace) -> int:
    from .eval.report import write_json
    from .training.recipe import evaluate_checkpoint

    result = evaluate_checkpoint(args.checkpoint, args.episodes, args.closed_loop_episodes)
    write_json(result, args.out)
    print(json.dumps(result, indent=2))
    return 0


def _export_onnx(args: argparse.Namespace) -> int:
    from .model import SpanVLA
    from .runtime.export import export_onnx

    model = SpanVLA.load(args.checkpoint)
    document = export_onnx(model, args.out, num_images=args.num_images, checkpoint_dir=args.checkpoint)
    print(
        json.dumps(
            {"out": str(args.out), "opset": document["opset"], "parity_max_abs": document["parity_max_abs"]}, indent=2
        )
    )
    return 0


def _export_engines(args: argparse.Namespace) -> int:
    from .runtime.backends import BackendUnavailableError
    from .runtime.backends.tensorrt_backend import TensorRTBackend, build_engines

    reason = TensorRTBackend.unavailable_reason()
    if reason is not None:
        raise BackendUnavailableError(f"cannot build TensorRT engines here: {reason}")
    logging.getLogger().setLevel(logging.INFO)
    print("building TensorRT engines: the first build of each graph takes minutes", file=sys.stderr)
    paths = build_engines(args.onnx, args.engines, args.precision, args.workspace, rebuild=args.rebuild)
    print(json.dumps({graph: str(path) for graph, path in paths.items()}, indent=2))
    return 0


def _bench_runtime(args: argparse.Namespace) -> int:
    from .benchmarks.runtime import run
    from .eval.report import write_json

    backends = tuple(args.backend or ("torch", "onnxruntime"))
    if args.onnx and args.checkpoint:
        from .runtime.export import verify_export

        verify_export(args.onnx, args.checkpoint)
    result = run(
        repeats=args.repeats,
        backends=backends,
        checkpoint=str(args.checkpoint) if args.checkpoint else None,
        export_dir=str(args.onnx) if args.onnx else None,
    )
    write_json(result, args.out)
    keys = [k for k in result if k.endswith("_ms_median") or k.endswith("_ratio")]
    print(json.dumps({k: result[k] for k in keys}, indent=2))
    return 0


def _bench_simple(args: argparse.Namespace) -> int:
    """Benchmarks whose only option is the repeat count: run, write the JSON, print the headline keys."""
    import importlib

    from .eval.report import write_json

    result = importlib.import_module(f"spanvla_ros.benchmarks.{args.benchmark}").run(repeats=args.repeats)
    write_json(result, args.out)
    print(json.dumps({k: result[k] for k in args.keys}, indent=2))
    return 0


def _bench_replay(args: argparse.Namespace) -> int:
    from .benchmarks.replay import run
    from .eval.report import write_json

    result = run(args.seconds, args.width, args.height, args.camera_hz, tuple(args.busy_cores), args.checkpoint)
    write_json(result, args.out)
    print(json.dumps({k: result[k] for k in ("planning_p99_ms", "planning_p99_busy_over_quiet")}, indent=2))
    return 0


def _bench_drive(args: argparse.Namespace) -> int:
    from .benchmarks.drive import run
    from .eval.report import write_json

    ladder = dict(item.split("=", 1) for item in args.ladder.split(",") if item)
    result = run(
        _model_path(args.checkpoint),
        scenes=args.scenes,
        recovery_scenes=args.recovery_scenes,
        style_scenes=args.style_scenes,
        episodes=args.episodes,
        ladder={name: _model_path(path) for name, path in ladder.items()},
    )
    write_json(result, args.out)
    brief = {
        "open_loop_pdms": {k: round(v["pdms"], 3) for k, v in result["open_loop"].items()},
        "closed_loop_driving_score": {k: round(v["driving_score"], 3) for k, v in result["closed_loop"].items()},
    }
    print(json.dumps(brief, indent=2))
    return 0


def _bench_soak(args: argparse.Namespace) -> int:
    from .benchmarks.soak import run
    from .eval.report import write_json

    result = run(
        duration_s=args.duration,
        warmup_s=args.warmup,
        camera_hz=args.camera_hz,
        width=args.width,
        height=args.height,
        backend=args.backend,
        checkpoint=args.checkpoint,
        camera_qos=args.camera_qos,
        transports=args.transports,
        log_dir=Path("runs") / "soak",
    )
    write_json(result, args.out)
    keys = ("planning_rate_hz", "planning_ms", "cycle_delay_ms", "frames_published", "frames_not_delivered",
            "frames_dropped_by_node", "rss_mib_after_warmup", "rss_mib_final", "rss_growth_after_warmup")  # fmt: skip
    print(json.dumps({k: result[k] for k in keys}, indent=2))
    return 0 if result["planner_exit_code"] in (0, None) else 1


def _bench_gpu(args: argparse.Namespace) -> int:
    from .benchmarks.gpu import run  # imports neither the scorer nor the simulator: a bare GPU image runs it

    shrink = {"num_layers": args.num_layers, "vision_depth": args.vision_depth}
    if args.vision_depth is not None:
        shrink["fullatt_block_indexes"] = (args.vision_depth - 1,)
    result = run(
        preset=args.preset,
        device=args.device,
        images=args.images,
        image_size=args.image_size,
        precision=args.precision,
        repeats=args.repeats,
        slow_tokens=args.slow_tokens,
        cuda_graphs=False if args.no_cuda_graphs else None,
        **{k: v for k, v in shrink.items() if v is not None},
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    keys = ("vision_ms", "prefill_ms", "decode_ms_per_token", "pipeline_over_direct_decode", "flow_ms",
            "fast_cycle_ms", "slow_cycle_ms", "peak_memory_mb", "graphs")  # fmt: skip
    print(json.dumps({k: result[k] for k in keys}, indent=2))
    return 0


def _bench_model(args: argparse.Namespace) -> int:
    from .benchmarks.model import run
    from .eval.report import write_json

    result = run(repeats=args.repeats)
    write_json(result, args.out)
    keys = (
        "plan_ms_median",
        "ar_waypoints_ms_median",
        "ar_over_flow_ratio",
        "ar50_over_flow50_ratio",
        "reasoning_tokens_per_s",
        "prefill_ms_median",
    )
    print(json.dumps({k: result[k] for k in keys}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
