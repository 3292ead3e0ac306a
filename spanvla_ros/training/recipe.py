"""The embedded default checkpoint's recipe: generate the data, run the three stages, evaluate on held-out scenes,
and write ``models/default`` with the recipe, seed, data manifest hash and evaluation report beside the weights.

Resumable: run it again after an interruption and the data generation continues where it stopped, finished stages
are kept, and an unfinished stage continues from its last checkpoint."""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import yaml

from ..config import config_to_dict
from ..eval import METRIC_NAMES
from ..files import file_sha256
from .config import TrainConfig, load_train_config
from .data import ensure_dataset
from .grpo import grpo
from .sft import can_resume, sft_bridge, sft_vlm, stage_record, trainer_dir

log = logging.getLogger(__name__)


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
    stage1 = _finished(config, "sft_vlm", None) or sft_vlm(config, resume=True, progress=progress)
    stage2 = _finished(config, "sft_bridge", stage1) or sft_bridge(config, init=stage1, resume=True, progress=progress)
    if config.grpo.optim.steps == 0:  # no GRPO: ship the supervised checkpoint
        stage3 = stage2
    else:
        stage3 = _finished(config, "grpo", stage2) or grpo(config, init=stage2, resume=True, progress=progress)
    final, rounds = stage3, []
    for round_index in range(1, config.dagger.rounds + 1):
        final, counts = dagger_round(config, round_index, final, progress)
        rounds.append({"checkpoint": str(final), "data_counts": counts})
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(final, out)
    (out / "recipe.yaml").write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
    manifest = Path(config.data.dir) / "manifest.json"
    record = {
        "seed": config.seed,
        "data_manifest_sha256": file_sha256(manifest),
        "data_counts": reader.manifest["counts"],
        "stages": {"sft_vlm": str(stage1), "sft_bridge": str(stage2), "grpo": str(stage3)},
        "dagger_rounds": rounds,
        "training_seconds": round(time.time() - started, 1),
    }
    record["evaluation"] = evaluate_checkpoint(out, eval_episodes, closed_loop_episodes, progress)
    (out / "training_record.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def dagger_round(config: TrainConfig, index: int, learner: Path, progress: bool) -> tuple[Path, dict[str, Any]]:
    """Round ``index``: drive ``learner`` for DAgger data (``<out>/dagger_<index>/data``), then fine-tune its VLM and
    bridge on the base data plus the rounds so far; returns the new checkpoint and the round's data counts."""
    import dataclasses
    import functools

    from ..data.dataset import read_manifest
    from ..data.generate import ensure_generated
    from ..runtime.planner import DeployedPlanner

    cfg = config.dagger
    root = Path(config.out_dir) / f"dagger_{index}"
    data = root / "data"
    seeds = _round_seeds(cfg, index)
    learner_record = {"learner_sha256": file_sha256(Path(learner) / "model.safetensors"), "seed": cfg.seed}
    for option in ("learner_speed_limit", "learner_collision_guard", "learner_route"):
        if getattr(cfg, option):  # recorded only when on, so that rounds driven before the option still match
            learner_record[option] = True
    record_path = root / "learner.json"
    if root.exists() and (not record_path.is_file() or json.loads(record_path.read_text()) != learner_record):
        log.warning("%s was driven by another learner: the round starts over", root)
        shutil.rmtree(root)
    elif (data / "manifest.json").is_file() and read_manifest(data)["seeds"] != seeds:
        log.warning("%s was driven on other episodes than dagger.episodes/seed ask for: the round starts over", root)
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    record_path.write_text(json.dumps(learner_record) + "\n")
    ensure_generated(
        data,
        episodes=cfg.episodes,
        seed=seeds[0],
        workers=cfg.workers,
        config=config.data.generation,
        progress=progress,
        learner=functools.partial(
            DeployedPlanner.from_name,
            f"model:{learner}",
            map_speed_limit=cfg.learner_speed_limit,
            object_list=cfg.learner_collision_guard,
            route=cfg.learner_route,
        ),
    )
    counts = read_manifest(data)["counts"]
    rounds = tuple(str(Path(config.out_dir) / f"dagger_{k}" / "data") for k in range(1, index + 1))
    round_config = dataclasses.replace(
        config,
        out_dir=str(root),
        data=dataclasses.replace(config.data, extra_dirs=config.data.extra_dirs + rounds, extra_repeat=cfg.repeat),
        sft_vlm=dataclasses.replace(config.sft_vlm, optim=cfg.sft_vlm),
        sft_bridge=dataclasses.replace(
            config.sft_bridge,
            optim=cfg.sft_bridge,
            action_scale="config" if cfg.action_scale == "learner" else "residual",
        ),
    )
    vlm = _finished(round_config, "sft_vlm", learner) or sft_vlm(
        round_config, init=learner, resume=True, progress=progress
    )
    bridge = _finished(round_config, "sft_bridge", vlm) or sft_bridge(
        round_config, init=vlm, resume=True, progress=progress
    )
    return bridge, counts


def _round_seeds(cfg, index: int) -> list[int]:
    """The episode seeds round ``index`` drives."""
    first = cfg.seed + 10_000 * (index - 1)
    return list(range(first, first + cfg.episodes))


def _finished(config: TrainConfig, stage: str, init: Path | None) -> Path | None:
    """The stage's checkpoint when an earlier run of the same recipe, from the same weights, completed all its
    steps."""
    checkpoint = Path(config.out_dir) / stage / "checkpoint"
    steps = getattr(config, stage).optim.steps
    if can_resume(checkpoint, stage_record(config, stage, init)):
        if json.loads((trainer_dir(checkpoint) / "trainer_state.json").read_text()).get("step", 0) >= steps:
            return checkpoint
    return None


def evaluate_checkpoint(
    checkpoint: str | Path, episodes: int, closed_loop_episodes: int, progress: bool = True
) -> dict[str, Any]:
    """Open-loop PDMS/EPDMS on held-out scenes and the closed-loop driving score of a checkpoint (driven through the
    node's planning core at its 10 Hz, as on the car)."""
    from ..data.scenes import evaluation_scenes
    from ..eval.open_loop import evaluate_open_loop
    from ..runtime.planner import DeployedPlanner, RuntimePlanner
    from ..sim.closed_loop import ClosedLoopConfig, evaluate_closed_loop

    planner = RuntimePlanner.from_name(f"model:{checkpoint}")
    scenes = list(evaluation_scenes(episodes))
    open_loop = evaluate_open_loop(planner, scenes, total=len(scenes), progress=progress)
    deployed = DeployedPlanner.from_name(f"model:{checkpoint}")
    closed = evaluate_closed_loop(deployed, closed_loop_episodes, 100_000, ClosedLoopConfig(), progress=progress)
    keep = ("pdms", "epdms", *METRIC_NAMES, "n_scenes", "pdms_by_env")
    return {
        "open_loop": {k: open_loop[k] for k in keep},
        "closed_loop": {
            k: closed[k]
            for k in (
                "episodes",
                "driving_score",
                "route_completion",
                "collision_rate",
                "off_road_rate",
                "failures",
                "infraction_counts",
            )  # fmt: skip
        },
    }
