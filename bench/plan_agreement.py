"""What the deployed planner plans in the states it drives into, against what the expert plans in the same states.
Usage:

    python bench/plan_agreement.py CKPT EPISODES SEED OUT.json [no-speed-limit]

The checkpoint drives closed loop through the node's planning core (as ``spanvla eval closed-loop`` does; with
``no-speed-limit`` the core is not given the lane's limit, so the plans are the model's own); at every
planning cycle the privileged expert also plans from the same scene (its plan is not driven). Per environment and
overall: the speed change each plans over its first second, how often the model brakes where the expert brakes
(by more than ``BRAKING_MPS`` within 1 s), and whether the lateral offset at the horizon goes the same way where the
expert moves sideways by more than ``LATERAL_M``; and where the ego is slow (under ``SLOW_MPS``) and the expert pulls
away (its first second faster by more than ``PULL_AWAY_MPS``), how often the model does too and how far each plan
drives (the stalls at roundabouts and intersections). Low agreement on states the model reached itself says the model
does not read from its inputs what the expert acts on."""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch

from spanvla_ros.planning import Planner
from spanvla_ros.runtime.planner import DeployedPlanner
from spanvla_ros.sim.closed_loop import ClosedLoopConfig, run_episode
from spanvla_ros.sim.expert import ExpertPlanner

BRAKING_MPS = 1.5
LATERAL_M = 2.0
SLOW_MPS = 3.0
PULL_AWAY_MPS = 0.5


class Shadowed(Planner):
    """Drives ``driven``; records, per cycle, its plan and the expert's plan from the same scene."""

    needs_camera = True

    def __init__(self, driven: DeployedPlanner) -> None:
        super().__init__(driven.config)
        self.driven, self.expert, self.name = driven, ExpertPlanner(), driven.name
        self.runtime = driven.runtime  # the closed loop reads the camera size from it
        self.rows: list[tuple[float, ...]] = []

    def plan(self, scene):
        driven, expert = self.driven.plan(scene), self.expert.plan(scene)
        one_s = int(round(1.0 / driven.dt_s)) - 1  # the pose 1 s ahead

        def speed_change(poses: np.ndarray) -> float:
            """The plan's mean speed over its first second minus the ego's speed now."""
            return float(np.hypot(*poses[one_s, :2]) / ((one_s + 1) * driven.dt_s) - scene.ego.speed_mps)

        self.rows.append(
            (speed_change(driven.poses), speed_change(expert.poses), float(driven.poses[-1, 1]),
             float(expert.poses[-1, 1]), float(scene.ego.speed_mps), path_length(driven.poses),
             path_length(expert.poses))
        )  # fmt: skip
        return driven


def path_length(poses: np.ndarray) -> float:
    """How far a plan drives (m), from the ego through its poses."""
    return float(np.hypot(*np.diff(np.vstack([np.zeros(2), poses[:, :2]]), axis=0).T).sum())


def agreement(rows: np.ndarray) -> dict[str, float | int | None]:
    model_dv, expert_dv, model_y, expert_y = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
    ego_speed, model_length, expert_length = rows[:, 4], rows[:, 5], rows[:, 6]
    braking = expert_dv < -BRAKING_MPS
    sideways = np.abs(expert_y) > LATERAL_M
    pulling_away = (ego_speed < SLOW_MPS) & (expert_dv > PULL_AWAY_MPS)
    return {
        "cycles": len(rows),
        "model_speed_change_1s_mps": round(float(model_dv.mean()), 3),
        "expert_speed_change_1s_mps": round(float(expert_dv.mean()), 3),
        "expert_brakes_share": round(float(braking.mean()), 3),
        "model_brakes_where_expert_brakes": round(float((model_dv[braking] < -BRAKING_MPS).mean()), 3)
        if braking.any()
        else None,
        "model_speed_change_where_expert_brakes_mps": round(float(model_dv[braking].mean()), 3)
        if braking.any()
        else None,
        "speed_change_correlation": round(float(np.corrcoef(model_dv, expert_dv)[0, 1]), 3),
        "expert_sideways_share": round(float(sideways.mean()), 3),
        "lateral_same_side_where_expert_moves": round(
            float((np.sign(model_y[sideways]) == np.sign(expert_y[sideways])).mean()), 3
        )
        if sideways.any()
        else None,
        "lateral_end_correlation": round(float(np.corrcoef(model_y, expert_y)[0, 1]), 3),
        "lateral_end_mae_m": round(float(np.abs(model_y - expert_y).mean()), 3),
        "plan_length_m": round(float(model_length.mean()), 2),
        "expert_plan_length_m": round(float(expert_length.mean()), 2),
        "slow_share": round(float((ego_speed < SLOW_MPS).mean()), 3),
        "expert_pulls_away_share": round(float(pulling_away.mean()), 3),
        "model_pulls_away_where_expert_does": round(float((model_dv[pulling_away] > PULL_AWAY_MPS).mean()), 3)
        if pulling_away.any()
        else None,
        "plan_length_where_expert_pulls_away_m": round(float(model_length[pulling_away].mean()), 2)
        if pulling_away.any()
        else None,
        "expert_plan_length_where_it_pulls_away_m": round(float(expert_length[pulling_away].mean()), 2)
        if pulling_away.any()
        else None,
    }


def main(checkpoint: str, episodes: int, seed: int, out: str, speed_limit: bool = True) -> None:
    torch.set_num_threads(1)
    started = time.time()
    spec = checkpoint if ":" in checkpoint else f"model:{checkpoint}"
    driven = DeployedPlanner.from_name(spec, map_speed_limit=speed_limit)
    per_env: dict[str, list[np.ndarray]] = {}
    episode_rows = []
    for episode_seed in range(seed, seed + episodes):
        shadowed = Shadowed(driven)
        result, _, first = run_episode(shadowed, episode_seed, ClosedLoopConfig())
        env = str(first.metadata.get("env"))
        per_env.setdefault(env, []).append(np.array(shadowed.rows))
        episode_rows.append({"seed": episode_seed, "env": env, "driving_score": result.driving_score,
                             "failure": result.failure})  # fmt: skip
        print(episode_seed, env, round(result.driving_score, 3), result.failure, flush=True)
    everything = np.concatenate([r for rows in per_env.values() for r in rows])
    report = {
        "benchmark": "plan_agreement",
        "checkpoint": checkpoint,
        "episodes": episodes,
        "seed": seed,
        "core_speed_limit": speed_limit,
        "braking_mps": BRAKING_MPS,
        "lateral_m": LATERAL_M,
        "slow_mps": SLOW_MPS,
        "pull_away_mps": PULL_AWAY_MPS,
        "overall": agreement(everything),
        "by_env": {env: agreement(np.concatenate(rows)) for env, rows in sorted(per_env.items())},
        "episodes_detail": episode_rows,
        "seconds": round(time.time() - started, 1),
    }
    with open(out, "w") as handle:
        json.dump(report, handle, indent=2)
    print(json.dumps(report["overall"], indent=2))


if __name__ == "__main__":
    if len(sys.argv) not in (5, 6) or sys.argv[5:] not in ([], ["no-speed-limit"]):
        sys.exit(__doc__)
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], speed_limit=sys.argv[5:] == [])
