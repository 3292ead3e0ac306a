"""Open-loop evaluation: run a planner on scenes, score each plan, average every sub-metric."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import numpy as np
from tqdm import tqdm

from ..planning import Planner
from ..scene import Scene
from .pdm import METRIC_NAMES, ScorerConfig, score_trajectory


def observable_scene(scene: Scene) -> Scene:
    """What a planner may see at plan time: agents' current states extrapolated at constant velocity (their logged
    futures stay with the scorer) and no reference plan."""
    steps = scene.horizon_steps + 1
    t = np.arange(steps) * scene.dt_s
    agents = []
    for agent in scene.agents:
        pose, velocity = agent.poses[0], agent.velocities_mps[0]
        xy = pose[:2] + t[:, None] * velocity
        poses = np.column_stack([xy, np.full(steps, pose[2])])
        agents.append(dataclasses.replace(agent, poses=poses, velocities_mps=np.tile(velocity, (steps, 1))))
    return dataclasses.replace(scene, agents=tuple(agents), reference_poses_ego=None)


def evaluate_open_loop(
    planner: Planner,
    scenes: Iterable[Scene],
    *,
    config: ScorerConfig = ScorerConfig(),
    progress: bool = True,
    total: int | None = None,
) -> dict[str, Any]:
    """Mean ``pdms``, ``epdms`` and every sub-metric over ``scenes``, with ``n_scenes`` and the per-scene rows."""
    rows: list[dict[str, Any]] = []
    for scene in tqdm(scenes, desc=f"open-loop {planner.name}", unit="scene", disable=not progress, total=total):
        trajectory = planner.plan(observable_scene(scene))
        row = score_trajectory(scene, trajectory.poses, trajectory.dt_s, config=config)
        rows.append({"token": scene.token, **row})
    if not rows:
        raise ValueError("open-loop evaluation got no scenes")
    keys = ("pdms", "epdms", *METRIC_NAMES)
    summary: dict[str, Any] = {"planner": planner.name, "n_scenes": len(rows)}
    summary.update({key: float(np.mean([row[key] for row in rows])) for key in keys})
    by_env: dict[str, list[float]] = {}
    for row in rows:
        by_env.setdefault(row["token"].split("-s")[0], []).append(row["pdms"])
    summary["pdms_by_env"] = {env: {"n": len(v), "pdms": float(np.mean(v))} for env, v in sorted(by_env.items())}
    summary["scenes"] = rows
    return summary
