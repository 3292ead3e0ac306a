"""Scorer throughput: proposals scored per second at batch 1 and batch 64 on a busy three-lane scene."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..eval import score_trajectories
from ..scene import Agent, Scene, straight_poses, straight_road_scene
from .common import machine_info, median_seconds


def benchmark_scene(num_agents: int = 20, seed: int = 0) -> Scene:
    """A three-lane road with ``num_agents`` vehicles around the ego and a reference plan."""
    rng = np.random.default_rng(seed)
    agents = []
    for i in range(num_agents):
        lane = int(rng.integers(0, 3))
        x = float(rng.uniform(-60, 160))
        if abs(x) < 12 and lane == 1:
            x += 30.0
        agents.append(Agent.constant_velocity(f"car_{i}", (x, lane * 3.5, 0.0), float(rng.uniform(6, 14)), 41))
    return straight_road_scene(agents=tuple(agents), reference_poses_ego=straight_poses(10.0, 10))


def proposals(batch: int, seed: int = 0) -> np.ndarray:
    """``[batch, 10, 3]`` plans: speed and lateral-offset variations of straight driving."""
    rng = np.random.default_rng(seed)
    plans = []
    for _ in range(batch):
        plan = straight_poses(float(rng.uniform(6, 14)), 10, accel_mps2=float(rng.uniform(-1.5, 1.0)))
        plan[:, 1] = np.linspace(0, 1, 10) * float(rng.uniform(-3.5, 3.5))
        plans.append(plan)
    return np.stack(plans)


def run(repeats: int = 20) -> dict[str, Any]:
    scene = benchmark_scene()
    batch1, batch64 = proposals(1), proposals(64)
    seconds1 = median_seconds(lambda: score_trajectories(scene, batch1), repeats=repeats)
    seconds64 = median_seconds(lambda: score_trajectories(scene, batch64), repeats=max(repeats // 2, 3))
    return {
        "benchmark": "scorer",
        "created_unix": time.time(),
        "scene": {
            "agents": len(scene.agents),
            "lanes": len(scene.map.lanes),
            "horizon_s": scene.horizon_steps * scene.dt_s,
        },
        "median_s_batch1": seconds1,
        "median_s_batch64": seconds64,
        "proposals_per_s_batch1": 1.0 / seconds1,
        "proposals_per_s_batch64": 64.0 / seconds64,
        "batch64_speedup_per_proposal": (64.0 / seconds64) / (1.0 / seconds1),
        "repeats": repeats,
        "machine": machine_info(),
    }
