"""Paired evaluation of checkpoints on the drive benchmark's held-out seeds, quicker than `spanvla bench drive`:
open loop as seen and with blank frames (does the plan use the camera?), optionally closed loop through the node's
planning core at 10 Hz, and the reasoning the VLM generates on the recipe's validation episodes (does its decision
agree with the label, as seen and with blank frames?). Usage:

    python bench/checkpoint_eval.py NAME=CKPT[,NAME=CKPT...] SCENES EPISODES OUT.json [DATASET [SAMPLES]]

Each checkpoint after the first is compared with the one before it (paired bootstrap 95 % intervals on PDMS and,
with episodes, on the per-episode driving score)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from spanvla_ros.benchmarks.drive import paired_bootstrap
from spanvla_ros.data.dataset import SampleReader
from spanvla_ros.data.scenes import HELD_OUT_SEED, evaluation_scenes
from spanvla_ros.eval.open_loop import ablate_frames, blank_frames, evaluate_open_loop
from spanvla_ros.model import SpanVLA
from spanvla_ros.runtime.artefact import resolve_model
from spanvla_ros.runtime.planner import DeployedPlanner, RuntimePlanner
from spanvla_ros.sim.closed_loop import ClosedLoopConfig, evaluate_closed_loop
from spanvla_ros.training.config import TrainConfig
from spanvla_ros.training.data import observation, split_indices
from spanvla_ros.training.grpo import parse_decision

DEFAULT_DATASET = "runs/train/data"
CLOSED = (
    "driving_score",
    "route_completion",
    "collision_rate",
    "off_road_rate",
    "mean_route_offset_m",
    "failures",
    "collisions_by_side",
    "by_env",
)


def reasoning_agreement(path: str, samples: list[dict]) -> dict:
    """How often the greedy reasoning's decision (longitudinal, lateral) equals the label on slow-mode samples, as
    seen and with blank frames, and how often the text states a decision at all."""
    model = SpanVLA.load(path).eval()
    result = {}
    for frames in ("seen", "blank"):
        longitudinal = lateral = stated = 0
        for sample in samples:
            images = sample["images"] if frames == "seen" else blank_frames(sample["images"])
            text = model.reason(observation({**sample, "images": images})).text
            decided, label = parse_decision(text), parse_decision(sample["reasoning"]["text"])
            stated += decided is not None
            longitudinal += decided is not None and decided.longitudinal == label.longitudinal
            lateral += decided is not None and decided.lateral == label.lateral
        n = max(len(samples), 1)
        result[frames] = {"decision_stated": stated / n, "longitudinal": longitudinal / n, "lateral": lateral / n}
    result["samples"] = len(samples)
    result["example"] = text
    return result


def slow_mode_validation(dataset: str, count: int) -> list[dict]:
    reader = SampleReader(dataset, verify=False)
    _, validation = split_indices(reader, TrainConfig().data.validation_fraction)
    slow = [i for i in validation if reader.metadata(i)["reasoning"]["mode"] == "slow"]
    chosen = np.random.default_rng(0).choice(slow, size=min(count, len(slow)), replace=False)
    return [reader[int(i)] for i in chosen]


def main(spec: str, scenes: int, episodes: int, out: str, dataset: str = DEFAULT_DATASET, samples: int = 120) -> None:
    torch.set_num_threads(1)
    started = time.time()
    held_out = list(evaluation_scenes(scenes, HELD_OUT_SEED))
    reasoning_samples = slow_mode_validation(dataset, samples) if Path(dataset).is_dir() and samples else []
    result: dict = {"seed": HELD_OUT_SEED, "scenes": scenes, "episodes": episodes, "checkpoints": {}}
    rows = result["checkpoints"]
    for item in spec.split(","):
        name, path = item.split("=", 1)
        planner, row = RuntimePlanner.from_name(path), {"path": path}
        if reasoning_samples:
            row["reasoning"] = reasoning_agreement(resolve_model(path), reasoning_samples)
        for frames, scene_list in (("seen", held_out), ("blank", ablate_frames(held_out, "blank"))):
            summary = evaluate_open_loop(planner, scene_list, total=len(scene_list), progress=False)
            row[frames] = {"pdms": summary["pdms"], "epdms": summary.get("epdms"), "ade_m": summary["ade_m"],
                           "per_scene": [s["pdms"] for s in summary["scenes"]]}  # fmt: skip
        row["blank_minus_seen"] = paired_bootstrap(row["seen"]["per_scene"], row["blank"]["per_scene"])
        if episodes:
            summary = evaluate_closed_loop(DeployedPlanner.from_name(path), episodes, HELD_OUT_SEED,
                                           ClosedLoopConfig(), progress=False)  # fmt: skip
            row["closed_loop"] = {k: summary[k] for k in CLOSED}
            row["closed_loop"]["per_episode_driving_score"] = [e["driving_score"] for e in summary["episodes_detail"]]
        rows[name] = row
    names = list(rows)
    for before, after in zip(names, names[1:], strict=False):
        rows[after]["minus_previous"] = paired_bootstrap(
            rows[before]["seen"]["per_scene"], rows[after]["seen"]["per_scene"]
        )
        if episodes:  # the same episodes: a training seed alone moves the score by ±0.1, so say how sure it is
            rows[after]["closed_loop_minus_previous"] = paired_bootstrap(
                rows[before]["closed_loop"]["per_episode_driving_score"],
                rows[after]["closed_loop"]["per_episode_driving_score"],
            )
    result["seconds"] = round(time.time() - started, 1)
    with open(out, "w") as handle:
        json.dump(result, handle, indent=1)
    print(
        json.dumps({n: {k: v for k, v in r.items() if k not in ("seen", "blank")} for n, r in rows.items()}, indent=1)
    )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], *sys.argv[5:6], *map(int, sys.argv[6:7]))
