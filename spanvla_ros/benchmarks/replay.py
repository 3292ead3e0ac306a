"""Deterministic bag replay at car scale: a 20 s drive recorded at 1280×720 (JPEG ``CompressedImage`` at 30 Hz,
odometry at 10 Hz), replayed through the planning core on a quiet machine and again with cores kept busy by spinning
processes, side by side in one run. Reports the core's planning latency (p50/p99), the reasoning time, and how fast
the replay ran against the recording's duration."""

from __future__ import annotations

import multiprocessing
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import machine_info


def record_drive(path: Path, seconds: float, width: int, height: int, camera_hz: float, storage: str) -> int:
    """An expert drive of the embedded highway, its camera rendered small and upscaled to ``width``×``height``
    (the planner crops and shrinks it again); returns the number of camera messages."""
    import cv2
    from builtin_interfaces.msg import Time
    from sensor_msgs.msg import CompressedImage

    from ..ros.bag import BagWriter
    from ..ros.conversions import odometry_message, seconds_to_stamp
    from ..sim import ExpertPlanner, HighwayWorld, WorldConfig
    from ..sim.camera import CameraConfig, FrontCamera

    world = HighwayWorld(WorldConfig(env="highway", duration_s=seconds))
    scene = world.reset(7)
    camera = FrontCamera(CameraConfig(width=320, height=180))
    expert = ExpertPlanner()
    per_tick = max(1, int(round(camera_hz * world.config.dt_s)))
    t0, frames = 1000.0, 0
    with BagWriter(path, storage) as writer:
        while not world.done:
            t = t0 + world.time_s
            odometry = odometry_message(seconds_to_stamp(t, Time), scene.ego.pose, scene.ego.speed_mps, "map")
            writer.write("/vehicle/odom", odometry, int(round(t * 1e9)))
            big = cv2.resize(camera.render(scene), (width, height), interpolation=cv2.INTER_LINEAR)
            jpeg = cv2.imencode(".jpg", cv2.cvtColor(big, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])[1]
            for k in range(per_tick):
                stamp = t + k * world.config.dt_s / per_tick
                msg = CompressedImage(format="jpeg", data=jpeg.tobytes())
                msg.header.stamp, msg.header.frame_id = seconds_to_stamp(stamp, Time), "camera"
                writer.write("/vehicle/camera/image_raw/compressed", msg, int(round(stamp * 1e9)))
                frames += 1
            scene = world.step(expert.plan(scene))
    return frames


def _spin() -> None:
    while True:
        pass


def run(
    seconds: float = 20.0,
    width: int = 1280,
    height: int = 720,
    camera_hz: float = 30.0,
    busy_cores: tuple[int, ...] = (0, 1),
    checkpoint: str = "model:default",
    storage: str = "mcap",
) -> dict[str, Any]:
    from ..ros.replay import ReplayConfig, replay

    runs: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="spanvla-bench-replay-") as tmp:
        bag = Path(tmp) / "drive"
        frames = record_drive(bag, seconds, width, height, camera_hz, storage)
        for busy in busy_cores:
            spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(busy)]
            for spinner in spinners:
                spinner.start()
            try:
                start = time.perf_counter()
                report = replay(ReplayConfig(bag=bag, out=Path(tmp) / f"busy{busy}", checkpoint=checkpoint))
                wall_s = time.perf_counter() - start
            finally:
                for spinner in spinners:
                    spinner.terminate()
                    spinner.join()
            runs[f"busy_cores_{busy}"] = {
                "busy_cores": busy,
                "plans": report["plans"],
                "stop_trajectories": report["stop_trajectories"],
                "validation": report["validation"],
                "planning_latency_ms": report["planning_latency_ms"],
                "reasoning_ms": report["reasoning_ms"],
                "ade_m": report["ade_m"],
                "wall_s": wall_s,
                "realtime_factor": seconds / wall_s,
            }
    p99 = {name: r["planning_latency_ms"]["p99"] for name, r in runs.items()}
    return {
        "benchmark": "replay",
        "bag": {
            "seconds": seconds,
            "width": width,
            "height": height,
            "camera_hz": camera_hz,
            "storage": storage,
            "camera_messages": frames,
            "format": "jpeg CompressedImage",
        },  # fmt: skip
        "checkpoint": checkpoint,
        "threads": 1,
        "runs": runs,
        "planning_p99_ms": p99,
        "planning_p99_busy_over_quiet": (
            p99["busy_cores_1"] / p99["busy_cores_0"] if {"busy_cores_0", "busy_cores_1"} <= p99.keys() else None
        ),
        "machine": machine_info(),
        "note": "planning latency: the core's plan() (action expert + validation) per cycle; busy cores run a "
        "spinning process each, started before the replay",
    }
