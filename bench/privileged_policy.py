"""How well a policy drives when it is handed the driving state the camera-based planner has to read for itself.
Usage:

    python bench/privileged_policy.py OUT.json [DATASET [SAMPLES [EPISODES]]]

For each input set — the ego history alone; + the lane relation; + the lead's gap and closing speed; + the route's
heading ahead (``spanvla_ros.data.reasoning.driving_state``) — a 2-layer MLP is trained on SAMPLES training samples of
the recipe's dataset to predict each pose's correction to the history extrapolation (the flow's starting point, in
per-pose RMS units), then driven closed loop through the embedded world on EPISODES held-out seeds from 100000, reading
the same state from the simulator's scene. No camera: what the data can teach once the state is known, the ceiling a
VLA that states these quantities can aim at."""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch

from spanvla_ros.data.dataset import SampleReader
from spanvla_ros.data.reasoning import DRIVING_STATE_UNITS, driving_state
from spanvla_ros.model.expert import ActionExpertConfig
from spanvla_ros.model.flow import history_initialisation
from spanvla_ros.planning.interface import Planner
from spanvla_ros.scene import Scene, Trajectory, scene_from_dict, world_to_ego
from spanvla_ros.sim.closed_loop import ClosedLoopConfig, evaluate_closed_loop
from spanvla_ros.training.config import TrainConfig
from spanvla_ros.training.data import split_indices

#: How many leading columns of ``DrivingState.vector()`` each input set reads.
INPUT_SETS = {"history": 0, "lane": 2, "lane_lead": 4, "lane_lead_route": 6}
EXPERT = ActionExpertConfig()  # the history and plan the action expert reads and writes, in its units
HISTORY_SCALE = torch.tensor(EXPERT.pose_scale)
STATE_SCALE = torch.tensor(DRIVING_STATE_UNITS)
HISTORY_LEN, NUM_POSES, DT_S = EXPERT.history_len, EXPERT.num_poses, EXPERT.dt_s


def features(history: torch.Tensor, state: torch.Tensor, columns: int) -> torch.Tensor:
    parts = [(history / HISTORY_SCALE).flatten(1)]
    if columns:
        parts.append(state[:, :columns] / STATE_SCALE[:columns])
    return torch.cat(parts, dim=1)


def load(args: tuple[str, list[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    dataset, indices = args
    reader = SampleReader(dataset, verify=False)
    histories, targets, states = [], [], []
    for index in indices:
        sample = reader[index]
        histories.append(sample["ego_history"])
        targets.append(sample["target"])
        states.append(driving_state(scene_from_dict(sample["scene"])).vector())
    return np.stack(histories), np.stack(targets), np.stack(states)


class PrivilegedStatePlanner(Planner):
    name = "privileged-state-mlp"

    def __init__(self, net: torch.nn.Module, scale: torch.Tensor, columns: int) -> None:
        super().__init__()
        self.net, self.scale, self.columns = net, scale, columns

    def plan(self, scene: Scene) -> Trajectory:
        poses = np.asarray(scene.ego.history_poses)[-HISTORY_LEN:]
        poses = np.vstack([np.repeat(poses[:1], HISTORY_LEN - len(poses), axis=0), poses])
        history = torch.tensor(world_to_ego(poses, scene.ego.pose)[None], dtype=torch.float32)
        state = torch.tensor(driving_state(scene).vector()[None], dtype=torch.float32)
        with torch.no_grad():
            correction = self.net(features(history, state, self.columns)).reshape(1, NUM_POSES, 3) * self.scale
            plan = history_initialisation(history, EXPERT.history_dt_s, NUM_POSES, DT_S) + correction
        return Trajectory(plan[0].double().numpy(), DT_S)


def train_and_drive(args: tuple) -> tuple[str, dict]:
    name, columns, histories, targets, states, episodes = args
    torch.set_num_threads(1)
    torch.manual_seed(0)
    history, target = torch.tensor(histories, dtype=torch.float32), torch.tensor(targets, dtype=torch.float32)
    state = torch.tensor(states, dtype=torch.float32)
    start = history_initialisation(history, EXPERT.history_dt_s, NUM_POSES, DT_S)
    scale = (target - start).pow(2).mean(0).sqrt().clamp(min=0.05)
    x, y = features(history, state, columns), ((target - start) / scale).flatten(1)
    held_out = len(x) // 10
    net = torch.nn.Sequential(
        torch.nn.Linear(x.shape[1], 256), torch.nn.GELU(), torch.nn.Linear(256, 256), torch.nn.GELU(),
        torch.nn.Linear(256, NUM_POSES * 3),
    )  # fmt: skip
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(4000):
        batch = torch.randint(held_out, len(x), (128,), generator=generator)
        loss = torch.nn.functional.mse_loss(net(x[batch]), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        plans = net(x[:held_out]).reshape(-1, NUM_POSES, 3) * scale + start[:held_out]
    ade = float((plans[..., :2] - target[:held_out, :, :2]).norm(dim=-1).mean())
    summary = evaluate_closed_loop(
        PrivilegedStatePlanner(net.eval(), scale, columns), episodes, 100000, ClosedLoopConfig(), progress=False
    )
    keys = ("driving_score", "route_completion", "collision_rate", "off_road_rate", "failures", "collisions_by_side")
    row = {"held_out_ade_m": round(ade, 3), **{k: summary[k] for k in keys}}
    row["by_env_driving_score"] = {env: round(v["driving_score"], 3) for env, v in summary["by_env"].items()}
    return name, row


def main(out: str, dataset: str = "runs/train/data", samples: int = 8000, episodes: int = 24) -> None:
    started = time.time()
    reader = SampleReader(dataset, verify=False)
    train, _ = split_indices(reader, TrainConfig().data.validation_fraction)
    chosen = [int(i) for i in np.random.default_rng(0).choice(train, size=min(int(samples), len(train)), replace=False)]
    with ProcessPoolExecutor(2) as pool:
        parts = list(pool.map(load, [(dataset, chosen[0::2]), (dataset, chosen[1::2])]))
        histories, targets, states = (np.concatenate(arrays) for arrays in zip(*parts, strict=True))
        jobs = [(name, cols, histories, targets, states, int(episodes)) for name, cols in INPUT_SETS.items()]
        rows = dict(pool.map(train_and_drive, jobs))
    result = {
        "dataset": dataset,
        "samples": len(chosen),
        "episodes": int(episodes),
        "seed": 100000,
        "input_sets": rows,
        "seconds": round(time.time() - started, 1),
    }
    for name, row in rows.items():
        print(name, json.dumps({k: row[k] for k in ("driving_score", "collision_rate", "off_road_rate")}))
    with open(out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:])
