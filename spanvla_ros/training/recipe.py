"""The embedded default checkpoint's recipe: generate the data, run the three stages, evaluate on held-out scenes,
and write ``models/default`` with the recipe, seed, data manifest hash and evaluation report beside the weights."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import yaml

from ..config import config_to_dict
from ..eval import METRIC_NAMES
from ..files import file_sha256
from .config import load_train_config
from .data import ensure_dataset
from .grpo import grpo
from .sft import sft_bridge, sft_vlm


def run_recipe(
    config_path: str | Path,
    out_dir: str | Path,
    *,
    eval_episodes: int = 40,
    closed_loop_episodes: int = 12,
    progress: bool = True,
) -> dict[str, Any]:
    config = load_train_config(config_path)
    started = time.time()
    reader = ensure_dataset(config.data, progress=progress)
    stage1 = sft_vlm(config, progress=progress)
    stage2 = sft_bridge(config, init=stage1, progress=progress)
    stage3 = grpo(config, init=stage2, progress=progress)
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(stage3, out)
    (out / "recipe.yaml").write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
    manifest = Path(config.data.dir) / "manifest.json"
    record = {
        "seed": config.seed,
        "data_manifest_sha256": file_sha256(manifest),
        "data_counts": reader.manifest["counts"],
        "stages": {"sft_vlm": str(stage1), "sft_bridge": str(stage2), "grpo": str(stage3)},
        "training_seconds": round(time.time() - started, 1),
    }
    record["evaluation"] = evaluate_checkpoint(out, eval_episodes, closed_loop_episodes, progress)
    (out / "training_record.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def evaluate_checkpoint(
    checkpoint: str | Path, episodes: int, closed_loop_episodes: int, progress: bool = True
) -> dict[str, Any]:
    """Open-loop PDMS/EPDMS on held-out scenes and the closed-loop driving score of a checkpoint."""
    from ..data.scenes import evaluation_scenes
    from ..eval.open_loop import evaluate_open_loop
    from ..runtime.planner import RuntimePlanner
    from ..sim.closed_loop import ClosedLoopConfig, evaluate_closed_loop

    planner = RuntimePlanner.from_name(f"model:{checkpoint}")
    scenes = list(evaluation_scenes(episodes))
    open_loop = evaluate_open_loop(planner, scenes, total=len(scenes), progress=progress)
    closed = evaluate_closed_loop(
        planner, closed_loop_episodes, 100_000, ClosedLoopConfig(replan_every_ticks=5), progress=progress
    )
    keep = ("pdms", "epdms", *METRIC_NAMES, "n_scenes", "pdms_by_env")
    return {
        "open_loop": {k: open_loop[k] for k in keep},
        "closed_loop": {
            k: closed[k]
            for k in ("episodes", "driving_score", "route_completion", "collision_rate", "infraction_counts")
        },
    }
