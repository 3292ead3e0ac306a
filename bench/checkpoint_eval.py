"""Paired evaluation of checkpoints on the drive benchmark's held-out seeds, quicker than `spanvla bench drive`:
open loop as seen and with blank frames (does the plan use the camera?), optionally closed loop through the node's
planning core at 10 Hz. Usage:

    python bench/checkpoint_eval.py NAME=CKPT[,NAME=CKPT...] SCENES EPISODES OUT.json

Each checkpoint after the first is compared with the one before it (paired bootstrap 95 % interval on PDMS)."""

from __future__ import annotations

import json
import sys
import time

import torch

from spanvla_ros.benchmarks.drive import paired_bootstrap
from spanvla_ros.data.scenes import HELD_OUT_SEED, evaluation_scenes
from spanvla_ros.eval.open_loop import ablate_frames, evaluate_open_loop
from spanvla_ros.runtime.planner import DeployedPlanner, RuntimePlanner
from spanvla_ros.sim.closed_loop import ClosedLoopConfig, evaluate_closed_loop

CLOSED = ("driving_score", "route_completion", "collision_rate", "off_road_rate", "mean_route_offset_m", "failures")


def main(spec: str, scenes: int, episodes: int, out: str) -> None:
    torch.set_num_threads(1)
    started = time.time()
    held_out = list(evaluation_scenes(scenes, HELD_OUT_SEED))
    result: dict = {"seed": HELD_OUT_SEED, "scenes": scenes, "episodes": episodes, "checkpoints": {}}
    rows = result["checkpoints"]
    for item in spec.split(","):
        name, path = item.split("=", 1)
        planner, row = RuntimePlanner.from_name(path), {"path": path}
        for frames, scene_list in (("seen", held_out), ("blank", ablate_frames(held_out, "blank"))):
            summary = evaluate_open_loop(planner, scene_list, total=len(scene_list), progress=False)
            row[frames] = {"pdms": summary["pdms"], "epdms": summary.get("epdms"), "ade_m": summary["ade_m"],
                           "per_scene": [s["pdms"] for s in summary["scenes"]]}  # fmt: skip
        row["blank_minus_seen"] = paired_bootstrap(row["seen"]["per_scene"], row["blank"]["per_scene"])
        if episodes:
            summary = evaluate_closed_loop(DeployedPlanner.from_name(path), episodes, HELD_OUT_SEED,
                                           ClosedLoopConfig(), progress=False)  # fmt: skip
            row["closed_loop"] = {k: summary[k] for k in CLOSED}
        rows[name] = row
    names = list(rows)
    for before, after in zip(names, names[1:], strict=False):
        rows[after]["minus_previous"] = paired_bootstrap(
            rows[before]["seen"]["per_scene"], rows[after]["seen"]["per_scene"]
        )
    result["seconds"] = round(time.time() - started, 1)
    with open(out, "w") as handle:
        json.dump(result, handle, indent=1)
    print(
        json.dumps({n: {k: v for k, v in r.items() if k not in ("seen", "blank")} for n, r in rows.items()}, indent=1)
    )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
