"""How well the planner drives, measured side by side with constant velocity and the expert on held-out seeds:

* open loop on held-out scenes (PDMS, EPDMS, ADE; per environment), with the frames as seen, blanked and shuffled
  (whether plans use the camera), the model's and constant velocity's plans through the planning core's layers (what
  a car would publish, given the scene's route, speed limit and road users), and further checkpoints (the training
  ladder) on the same scenes, each difference with a paired bootstrap 95 % interval;
* the recovery subset (the moments after injected displacements);
* camera looks training never saw (ADE against constant velocity; plans whose first pose lies behind a moving ego);
* closed loop through the node's planning core at 10 Hz, all six environments: driving score, collision rate,
  off-road rate and a failure breakdown by environment and kind, each episode's driving score, and the references'
  difference to the model on the same episodes with a paired bootstrap 95 % interval. The core lays the model's
  plans along the route (as the node does with a navigation route), holds them to the lane's speed limit (as with a
  map's) and its collision guard checks them against the other road users (as with perception's object list); so
  that the model's own share shows, the references include constant velocity through the same layers, the model
  without the route, and the model with none of them.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..data.scenes import HELD_OUT_SEED, evaluation_scenes
from ..eval.open_loop import ablate_frames, evaluate_open_loop
from ..planning import ConstantVelocityPlanner, Planner
from ..planning.collision_guard import Obstacles
from ..runtime.online import OnlineConfig, shape_plan
from ..scene import Scene, Trajectory, object_list, speed_limit_at
from ..sim import ExpertPlanner
from ..sim.camera_style import HELD_OUT_STYLES
from ..sim.closed_loop import ClosedLoopConfig, evaluate_closed_loop
from .common import machine_info

OPEN_LOOP_KEYS = ("n_scenes", "pdms", "epdms", "ade_m", "fde_m", "plans_starting_behind", "pdms_by_env")
CLOSED_LOOP_KEYS = (
    "episodes", "driving_score", "route_completion", "collision_rate", "off_road_rate", "failures",
    "infraction_counts", "collisions_by_side", "mean_route_offset_m", "by_env",
)  # fmt: skip


def paired_bootstrap(a: np.ndarray, b: np.ndarray, samples: int = 2000, seed: int = 0) -> dict[str, float]:
    """Mean of ``b − a`` over paired per-scene scores and its bootstrap 95 % interval."""
    diff = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), (samples, len(diff)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"mean": float(diff.mean()), "ci95": [float(low), float(high)]}


class CoreLayers(Planner):
    """Another planner's plans through the planning core's layers (``runtime.online.shape_plan``, the core's defaults),
    each given what a car has: the scene's route (``route``), the lane's speed limit (``speed_limit``) and the other
    road users as an object list (``guard``). Constant velocity through them is the reference that shows what the
    model adds; the model through them in open loop scores the plans a car would publish, one scene at a time."""

    def __init__(self, inner: Planner, *, route: bool = True, speed_limit: bool = True, guard: bool = True) -> None:
        super().__init__(inner.config)
        self.inner = inner
        self.needs_camera = getattr(inner, "needs_camera", False)
        self.route, self.speed_limit, self.guard = route, speed_limit, guard
        layers = [name for name, on in (("route", route), ("speed-limited", speed_limit), ("guarded", guard)) if on]
        self.name = "-".join([inner.name, *layers])

    def plan(self, scene: Scene) -> Trajectory:
        plan = self.inner.plan(scene)
        obstacles = None
        if self.guard:
            _, boxes, velocities = object_list(scene)
            obstacles = Obstacles.in_ego_frame(boxes, velocities, scene.ego.pose)
        shaped = shape_plan(
            plan.poses, plan.dt_s, scene.ego.pose, scene.ego.speed_mps, OnlineConfig(),
            route_xy=scene.route_centerline_xy if self.route else None,
            speed_limit_mps=speed_limit_at(scene, None) if self.speed_limit else None, obstacles=obstacles,
        )  # fmt: skip
        return Trajectory(shaped.poses, plan.dt_s)


def _open_loop(planner, scenes) -> dict[str, Any]:
    summary = evaluate_open_loop(planner, scenes, total=len(scenes), progress=False)
    row = {k: summary[k] for k in OPEN_LOOP_KEYS if k in summary}
    row["per_scene_pdms"] = [s["pdms"] for s in summary["scenes"]]
    return row


def run(
    checkpoint: str,
    *,
    scenes: int = 200,
    recovery_scenes: int = 60,
    style_scenes: int = 40,
    episodes: int = 60,
    ladder: dict[str, str] | None = None,
    seed: int = HELD_OUT_SEED,
) -> dict[str, Any]:
    """``checkpoint`` and each ``ladder`` entry (name → checkpoint path) are scored; see the module docstring."""
    from ..runtime.planner import DeployedPlanner, RuntimePlanner

    started = time.perf_counter()
    model = RuntimePlanner.from_name(checkpoint)
    reference = {"expert": ExpertPlanner(), "constant_velocity": ConstantVelocityPlanner()}
    result: dict[str, Any] = {"benchmark": "drive", "checkpoint": checkpoint, "seed": seed, "machine": machine_info()}

    held_out = list(evaluation_scenes(scenes, seed))
    open_loop = {name: _open_loop(p, held_out) for name, p in {**reference, "model": model}.items()}
    for frames in ("blank", "shuffled"):
        open_loop[f"model_frames_{frames}"] = _open_loop(model, ablate_frames(held_out, frames))
    base = np.array(open_loop["model"]["per_scene_pdms"])
    for name, path in (ladder or {}).items():
        open_loop[f"ladder_{name}"] = _open_loop(RuntimePlanner.from_name(path), held_out)
    names = list(ladder or {})
    for before, after in zip(names, names[1:], strict=False):
        open_loop[f"ladder_{after}"]["gain_over_previous"] = paired_bootstrap(
            open_loop[f"ladder_{before}"]["per_scene_pdms"], open_loop[f"ladder_{after}"]["per_scene_pdms"]
        )
    # What a car would publish, one scene at a time: the plans through the core's layers (route, limit, guard).
    open_loop["model_through_core"] = _open_loop(CoreLayers(model), held_out)
    open_loop["constant_velocity_through_core"] = _open_loop(CoreLayers(reference["constant_velocity"]), held_out)
    for name in (
        "model_frames_blank", "model_frames_shuffled", "constant_velocity", "expert", "model_through_core",
        "constant_velocity_through_core",
    ):  # fmt: skip
        open_loop[name]["minus_model"] = paired_bootstrap(base, open_loop[name]["per_scene_pdms"])
    result["open_loop"] = open_loop

    recovery = list(evaluation_scenes(recovery_scenes, seed, kind="recovery"))
    result["recovery"] = {name: _open_loop(p, recovery) for name, p in {**reference, "model": model}.items()}

    styles: dict[str, Any] = {}
    for style in HELD_OUT_STYLES:
        styled = list(evaluation_scenes(style_scenes, seed, camera_style=style))
        styles[style] = {
            "model": _open_loop(model, styled),
            "constant_velocity": _open_loop(reference["constant_velocity"], styled),
        }
    result["camera_styles"] = styles

    closed: dict[str, Any] = {}
    config = ClosedLoopConfig()
    closed_references: dict[str, Planner] = {
        **reference,
        "constant_velocity_core": CoreLayers(ConstantVelocityPlanner()),
        "model_alone": DeployedPlanner.from_name(checkpoint, map_speed_limit=False, object_list=False, route=False),
        "model_without_route": DeployedPlanner.from_name(checkpoint, route=False),
    }
    for name, planner in {**closed_references, "model": DeployedPlanner.from_name(checkpoint)}.items():
        summary = evaluate_closed_loop(planner, episodes, seed, config, progress=False)
        closed[name] = {k: summary[k] for k in CLOSED_LOOP_KEYS}
        closed[name]["per_episode_driving_score"] = [row["driving_score"] for row in summary["episodes_detail"]]
    for name in closed_references:  # the same episodes: how sure the difference to the model is
        closed[name]["minus_model"] = paired_bootstrap(
            closed["model"]["per_episode_driving_score"], closed[name]["per_episode_driving_score"]
        )
    result["closed_loop"] = closed
    for section in (result["open_loop"], result["recovery"]):
        for row in section.values():
            row.pop("per_scene_pdms", None)
    for style in styles.values():
        for row in style.values():
            row.pop("per_scene_pdms", None)
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result
