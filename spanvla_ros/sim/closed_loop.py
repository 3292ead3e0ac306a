"""Closed-loop drives of a planner in the embedded world on seeded episodes, scored CARLA-leaderboard style.

Route completion is measured against an achievable distance: 75 % of what the start lane's speed limit (capped at
25 m/s) covers in the episode, so a planner that drives at a sensible speed without infractions scores near 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..eval.closed_loop import EpisodeMonitor, EpisodeResult, aggregate_episodes
from ..planning import Planner
from ..planning.validator import validate_trajectory
from ..scene import Scene, speed_limit_at
from .world import HighwayWorld, WorldConfig


@dataclass(frozen=True)
class ClosedLoopConfig:
    envs: tuple[str, ...] = ("highway", "merge", "roundabout", "intersection", "two-way", "exit")
    duration_s: float = 15.0
    replan_every_ticks: int = 1
    achievable_fraction: float = 0.75
    max_reference_speed_mps: float = 25.0
    #: The camera's look for sensor-based planners: the renderer's (default) or a held-out one.
    camera_style: str = "default"


def run_episode(
    planner: Planner,
    seed: int,
    config: ClosedLoopConfig = ClosedLoopConfig(),
    on_tick: Callable[[Scene, float], None] | None = None,
    validation: dict[str, int] | None = None,
) -> tuple[EpisodeResult, np.ndarray, Scene]:
    """Drive one seeded episode; return its result, the ego path ``[T, 3]`` and the first scene. With
    ``validation``, every plan is also checked by the node's trajectory validator and the counts are added there
    (``plans``, ``validator_rejections`` and one count per failed check); the drive follows the plans as made."""
    world = episode_world(seed, config)
    scene = first = world.reset(seed)
    monitor = episode_monitor(scene, config)
    path = [scene.ego.pose.copy()]
    plan, plan_tick, origin, tick = None, 0, None, 0
    needs_camera = getattr(planner, "needs_camera", False)
    frames = _CameraFrames(planner, world.config.dt_s, config.camera_style, seed) if needs_camera else None
    while not world.done:
        if frames is not None:
            scene = frames.attach(scene)
        if plan is None or tick - plan_tick >= config.replan_every_ticks:
            plan, plan_tick, origin = planner.plan(scene), tick, world.ego_state[:3]
            if validation is not None:
                _count_validation(validation, validate_trajectory(plan.poses, plan.dt_s, scene.ego.speed_mps))
        scene = world.step(plan, plan_origin=origin, plan_age_s=(tick - plan_tick) * world.config.dt_s)
        tick += 1
        monitor.update(scene, world.time_s)
        path.append(scene.ego.pose.copy())
        if on_tick is not None:
            on_tick(scene, world.time_s)
    return monitor.result(), np.array(path), first


def _count_validation(counts: dict[str, int], result) -> None:
    counts["plans"] = counts.get("plans", 0) + 1
    if not result.valid:
        counts["validator_rejections"] = counts.get("validator_rejections", 0) + 1
        for check in result.failures:
            counts[f"failed_{check.name}"] = counts.get(f"failed_{check.name}", 0) + 1


def episode_world(seed: int, config: ClosedLoopConfig = ClosedLoopConfig()) -> HighwayWorld:
    """The world of episode ``seed``: the scenes take turns by seed."""
    return HighwayWorld(WorldConfig(env=config.envs[seed % len(config.envs)], duration_s=config.duration_s))


def episode_monitor(first: Scene, config: ClosedLoopConfig = ClosedLoopConfig()) -> EpisodeMonitor:
    """The metrics of an episode starting at ``first``, with its achievable route length."""
    speed = min(speed_limit_at(first, config.max_reference_speed_mps), config.max_reference_speed_mps)
    monitor = EpisodeMonitor(
        first.route_centerline_xy, route_length_m=config.achievable_fraction * speed * config.duration_s
    )
    monitor.update(first, 0.0)
    return monitor


def plot_episode(first: Scene, path_states: np.ndarray, result: EpisodeResult, file: str | Path) -> Path:
    """The driven path over the first scene, titled with the episode's driving score."""
    from ..eval.report import plot_scene

    return plot_scene(
        first,
        file,
        tracked_states={"driven": path_states},
        title=f"{first.metadata.get('env')} seed {first.metadata.get('seed')}: DS {result.driving_score:.2f}",
        view_m=max(60.0, float(np.ptp(path_states[:, :2], axis=0).max()) * 1.2),
    )


class _CameraFrames:
    """Renders the front camera every tick and attaches the frame history the planner's artefact reads (oldest
    first)."""

    def __init__(self, planner: Planner, dt_s: float, style_name: str = "default", seed: int = 0) -> None:
        from collections import deque

        from ..observation import ObservationSpec
        from .camera import CameraConfig, FrontCamera
        from .camera_style import episode_style

        meta = planner.runtime.meta
        spec = ObservationSpec.from_meta(meta)
        self.count = spec.frames_per_camera
        self.stride = int(round(spec.frame_dt_s / dt_s))
        self.style, self.rng = episode_style(style_name, seed)
        size = meta["image_size"]
        self.camera = FrontCamera(self.style.camera_config(CameraConfig(width=size, height=size)))
        self.buffer = deque(maxlen=self.stride * (self.count - 1) + 1)

    def attach(self, scene: Scene) -> Scene:
        import dataclasses

        self.buffer.append(self.style.apply(self.camera.render(scene), self.rng))
        picks = [max(len(self.buffer) - 1 - k * self.stride, 0) for k in range(self.count - 1, -1, -1)]
        frames = np.stack([self.buffer[i] for i in picks])
        return dataclasses.replace(scene, metadata={**scene.metadata, "camera_frames": frames})


def evaluate_closed_loop(
    planner: Planner,
    episodes: int,
    seed: int,
    config: ClosedLoopConfig = ClosedLoopConfig(),
    plots_dir: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Aggregate driving score, route completion and collision rate over seeded episodes (per-episode rows too)."""
    results, rows = [], []
    totals: dict[str, int] = {"plans": 0, "validator_rejections": 0}
    for episode_seed in tqdm(
        range(seed, seed + episodes), desc=f"closed-loop {planner.name}", unit="ep", disable=not progress
    ):
        counts: dict[str, int] = {"plans": 0, "validator_rejections": 0}
        result, path, first = run_episode(planner, episode_seed, config, validation=counts)
        results.append(result)
        for key, value in counts.items():
            totals[key] = totals.get(key, 0) + value
        rows.append({"seed": episode_seed, "env": first.metadata.get("env"), **result.to_dict(), "validation": counts})
        if plots_dir is not None:
            plot_episode(first, path, result, Path(plots_dir) / f"episode_{episode_seed}.png")
    summary = aggregate_episodes(results)
    keys = ("episodes", "driving_score", "route_completion", "collision_rate", "off_road_rate", "failures")
    by_env: dict[str, list[EpisodeResult]] = {}
    for result, row in zip(results, rows, strict=True):
        by_env.setdefault(row["env"], []).append(result)
    summary["by_env"] = {
        env: {k: v for k, v in aggregate_episodes(group).items() if k in keys} for env, group in sorted(by_env.items())
    }
    summary.update({"planner": planner.name, "seed": seed, "duration_s": config.duration_s})
    # What planner_node's validator (default limits) would have rejected of these plans.
    summary["validation"] = {**totals, "rejection_rate": totals["validator_rejections"] / max(totals["plans"], 1)}
    summary["episodes_detail"] = rows
    return summary
