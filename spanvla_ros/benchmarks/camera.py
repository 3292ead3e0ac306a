"""Front-camera rendering time on a busy highway scene, at 256×256 and at the model's 112×112."""

from __future__ import annotations

import time
from typing import Any

from ..sim import HighwayWorld, WorldConfig
from ..sim.camera import CameraConfig, FrontCamera
from .common import machine_info, median_seconds


def run(repeats: int = 30) -> dict[str, Any]:
    world = HighwayWorld(WorldConfig(env="highway"))
    scene = world.reset(0)
    result: dict[str, Any] = {"benchmark": "camera", "created_unix": time.time(), "agents": len(scene.agents)}
    for size in (256, 112):
        camera = FrontCamera(CameraConfig(width=size, height=size))
        result[f"render_ms_median_{size}"] = 1e3 * median_seconds(lambda c=camera: c.render(scene), repeats=repeats)
    result["repeats"] = repeats
    result["machine"] = machine_info()
    return result
