"""Open-loop evaluation: run a planner on scenes, score each plan, average every sub-metric."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import numpy as np
from tqdm import tqdm

from ..planning import Planner
from ..scene import Scene
from .pdm import METRIC_NAMES, PreviousPlan, ScorerConfig, score_trajectories

#: A scene may keep the frame ``PREVIOUS_FRAME_S`` seconds before it (a Scene) under this metadata key: as NAVSIM
#: pairs each frame with the one 0.5 s earlier, the planner then also plans there and extended comfort compares both.
PREVIOUS_FRAME = "previous_frame"
PREVIOUS_FRAME_S = 0.5


def observable_scene(scene: Scene) -> Scene:
    """What a planner may see at plan time: agents' current states extrapolated at constant velocity (their logged
    futures stay with the scorer), no reference plan, no logged future of the ego and no previous frame."""
    steps = scene.horizon_steps + 1
    t = np.arange(steps) * scene.dt_s
    agents = []
    for agent in scene.agents:
        pose, velocity = agent.poses[0], agent.velocities_mps[0]
        xy = pose[:2] + t[:, None] * velocity
        poses = np.column_stack([xy, np.full(steps, pose[2])])
        agents.append(dataclasses.replace(agent, poses=poses, velocities_mps=np.tile(velocity, (steps, 1))))
    metadata = {key: value for key, value in scene.metadata.items() if key != PREVIOUS_FRAME}
    return dataclasses.replace(
        scene, agents=tuple(agents), reference_poses_ego=None, human_poses_ego=None, metadata=metadata
    )


def previous_plan(planner: Planner, scene: Scene, config: ScorerConfig = ScorerConfig()) -> PreviousPlan | None:
    """The planner's plan on the frame before ``scene`` as the scorer drives it, or None without such a frame."""
    previous = scene.metadata.get(PREVIOUS_FRAME)
    if previous is None:
        return None
    trajectory = planner.plan(observable_scene(previous))
    states = score_trajectories(previous, trajectory.poses[None], trajectory.dt_s, config=config).states[0]
    elapsed = PREVIOUS_FRAME_S
    if "time_s" in scene.metadata and "time_s" in previous.metadata:
        elapsed = float(scene.metadata["time_s"]) - float(previous.metadata["time_s"])
    return PreviousPlan(states, elapsed)


def blank_frames(frames: np.ndarray) -> np.ndarray:
    """Mid-grey frames of the same shape: the camera ablation that shows nothing."""
    return np.full_like(np.asarray(frames), 128)


def ablate_frames(scenes: list[Scene], frames: str) -> list[Scene]:
    """What the camera shows, for measuring whether plans use it: ``as-seen``; ``blank`` (mid-grey frames);
    ``shuffled`` (each scene gets the frames of the scene after it)."""
    if frames == "as-seen":
        return scenes
    if frames not in ("blank", "shuffled"):
        raise ValueError(f"unknown frame ablation {frames!r}: as-seen, blank or shuffled")
    out = []
    for index, scene in enumerate(scenes):
        seen = scene.metadata.get("camera_frames")
        if seen is None:
            out.append(scene)
            continue
        if frames == "blank":
            shown = blank_frames(seen)
        else:
            shown = scenes[(index + 1) % len(scenes)].metadata.get("camera_frames", seen)
        out.append(dataclasses.replace(scene, metadata={**scene.metadata, "camera_frames": shown}))
    return out


#: Above this speed a plan whose first pose lies behind the ego is implausible (it would reverse the car).
FORWARD_SPEED_MPS = 2.0


def _displacement(scene: Scene, poses: np.ndarray) -> dict[str, Any]:
    """ADE/FDE against the scene's reference (the logged drive), and whether the plan starts behind a moving ego."""
    row: dict[str, Any] = {"starts_behind": bool(poses[0, 0] < 0.0 and scene.ego.speed_mps > FORWARD_SPEED_MPS)}
    reference = scene.reference_poses_ego
    if reference is not None:
        n = min(len(reference), len(poses))
        errors = np.hypot(*(np.asarray(poses[:n, :2]) - np.asarray(reference[:n, :2])).T)
        row.update(ade_m=float(errors.mean()), fde_m=float(errors[-1]))
    return row


def evaluate_open_loop(
    planner: Planner,
    scenes: Iterable[Scene],
    *,
    config: ScorerConfig = ScorerConfig(),
    progress: bool = True,
    total: int | None = None,
) -> dict[str, Any]:
    """Mean ``pdms``, ``epdms`` and every sub-metric over ``scenes``, with ``n_scenes``, ``n_paired`` (scenes whose
    extended comfort compared the plan of the previous frame; EC is 1 on the others) and the per-scene rows."""
    rows: list[dict[str, Any]] = []
    paired = 0
    for scene in tqdm(scenes, desc=f"open-loop {planner.name}", unit="scene", disable=not progress, total=total):
        previous = previous_plan(planner, scene, config)
        paired += previous is not None
        trajectory = planner.plan(observable_scene(scene))
        result = score_trajectories(scene, trajectory.poses[None], trajectory.dt_s, previous=previous, config=config)
        rows.append({"token": scene.token, **result.row(0), **_displacement(scene, trajectory.poses)})
    if not rows:
        raise ValueError("open-loop evaluation got no scenes")
    keys = ("pdms", "epdms", *METRIC_NAMES)
    summary: dict[str, Any] = {"planner": planner.name, "n_scenes": len(rows), "n_paired": paired}
    summary.update({key: float(np.mean([row[key] for row in rows])) for key in keys})
    by_env: dict[str, list[float]] = {}
    for row in rows:
        by_env.setdefault(row["token"].split("-s")[0], []).append(row["pdms"])
    summary["pdms_by_env"] = {env: {"n": len(v), "pdms": float(np.mean(v))} for env, v in sorted(by_env.items())}
    measured = [row for row in rows if "ade_m" in row]
    if measured:
        summary["ade_m"] = float(np.mean([row["ade_m"] for row in measured]))
        summary["fde_m"] = float(np.mean([row["fde_m"] for row in measured]))
    summary["plans_starting_behind"] = int(sum(row["starts_behind"] for row in rows))
    summary["scenes"] = rows
    return summary
