"""What the camera features of checkpoints carry, and how much of it their plans use. Usage:

    python bench/perception_probe.py NAME=CKPT[,NAME=CKPT...] OUT.json [DATASET [TRAIN_SAMPLES [VAL_SAMPLES]]]

On samples of the recipe's dataset (its train/validation split), per road group (straight: highway, merge, exit,
two-way; junction: intersection, roundabout):

* a linear probe (ridge on the standardised, flattened vision-tower output of the sample's frames, fitted on train
  samples, scored on validation samples) for the driving state (``data.reasoning.driving_state``: offset from the lane
  centre, heading error to the lane, the lead's gap and closing speed, the route's heading 30 m ahead) and for the
  correction the expert's plan makes: the target's lateral position at 1 s and 2 s minus the
  history extrapolation's (what the flow must add to its starting point);
* the checkpoint's own plans scored on the same correction (R² of the plan's lateral departure from the extrapolation
  against the target's): on the labelled reasoning's cache, as stage 2 trains it (the decision it states, e.g.
  "change lane left", tells the expert where to go), and on the fast-mode text's (camera, prompt and history only).

A probe R² well above the plan's says the camera features hold the correction and the expert does not read it."""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch

from spanvla_ros.data.dataset import SampleReader
from spanvla_ros.data.reasoning import driving_state
from spanvla_ros.model import SpanVLA
from spanvla_ros.model.flow import history_initialisation
from spanvla_ros.model.vlm import patchify
from spanvla_ros.runtime.artefact import resolve_model
from spanvla_ros.scene import lane_relation, scene_from_dict
from spanvla_ros.text_format import FAST_MODE_TEXT
from spanvla_ros.training.config import TrainConfig
from spanvla_ros.training.data import split_indices
from spanvla_ros.training.sft import context_cache, pad_caches

STRAIGHT = ("highway", "merge", "exit", "two-way")
STATE = (
    "offset_m",
    "heading_error_rad",
    "lead_gap_m",
    "lead_closing_speed_mps",
    "route_heading_15m_rad",
    "route_heading_30m_rad",
)  # the columns of DrivingState.vector()
TARGETS = (*STATE, "correction_1s_m", "correction_2s_m")
RIDGE = 100.0  # on standardised features; 10–1000 changed the R² by < 0.1 in the first runs


def load(reader: SampleReader, indices: np.ndarray) -> dict[str, np.ndarray]:
    """Indices, frames, envs and the probe targets of the samples that have a lane running their way."""
    rows: dict[str, list] = {"index": [], "images": [], "env": [], **{k: [] for k in TARGETS}}
    for index in indices:
        sample = reader[int(index)]
        scene = scene_from_dict(sample["scene"])
        if lane_relation(scene.map.lanes, scene.ego.pose) is None:
            continue
        history = torch.tensor(sample["ego_history"][None], dtype=torch.float32)
        start = history_initialisation(history, 0.5, len(sample["target"]), 0.5)[0].numpy()
        rows["index"].append(int(index))
        rows["images"].append(sample["images"])
        rows["env"].append(sample["env"])
        for name, value in zip(STATE, driving_state(scene).vector(), strict=True):
            rows[name].append(value)
        rows["correction_1s_m"].append(sample["target"][1, 1] - start[1, 1])
        rows["correction_2s_m"].append(sample["target"][3, 1] - start[3, 1])
    return {k: np.asarray(v) for k, v in rows.items()}


def vision_features(model: SpanVLA, images: np.ndarray, batch: int = 64) -> np.ndarray:
    """The vision tower's output for each sample's frames, flattened ``[B, tokens × width]``."""
    config = model.config.vlm
    chunks = []
    with torch.no_grad():
        for start in range(0, len(images), batch):
            pixels, grids = zip(*(patchify(frames, config) for frames in images[start : start + batch]), strict=True)
            embeds = model.image_embeddings(torch.cat(pixels), torch.cat(grids))
            chunks.append(embeds.reshape(len(pixels), -1).float().numpy())
    return np.concatenate(chunks)


def r2(predicted: np.ndarray, truth: np.ndarray) -> float:
    return round(float(1.0 - np.mean((predicted - truth) ** 2) / max(float(np.var(truth)), 1e-12)), 3)


def ridge_probe(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray) -> np.ndarray:
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    a, b = (train_x - mean) / std, (val_x - mean) / std
    y_mean = train_y.mean(0)
    weights = np.linalg.solve(a.T @ a + RIDGE * np.eye(a.shape[1]), a.T @ (train_y - y_mean))
    return b @ weights + y_mean


def plan_corrections(model: SpanVLA, reader: SampleReader, indices: np.ndarray, decision: bool) -> np.ndarray:
    """The lateral departure of the checkpoint's plans from the extrapolation at 1 s and 2 s ``[B, 2]``, on the
    labelled reasoning's cache (``decision``) or on the fast-mode text's (what the plan takes from the camera,
    prompt and history alone)."""
    out = []
    with torch.no_grad():
        for start in range(0, len(indices), 16):
            chunk = indices[start : start + 16]
            samples = [reader[int(i)] for i in chunk]
            if not decision:
                samples = [{**s, "reasoning": {**s["reasoning"], "text": FAST_MODE_TEXT}} for s in samples]
            history = torch.tensor(np.stack([s["ego_history"] for s in samples]), dtype=torch.float32)
            selected, mask = pad_caches([context_cache(model, s) for s in samples])
            plans = model.flow_sample(model.sparse_kv_layers(selected), history, kv_mask=mask).numpy()
            extrapolation = history_initialisation(history, 0.5, plans.shape[1], 0.5).numpy()
            out.append(plans[:, [1, 3], 1] - extrapolation[:, [1, 3], 1])
    return np.concatenate(out)


def main(spec: str, out: str, dataset: str = "runs/train/data", train_count: int = 2400, val_count: int = 600) -> None:
    torch.set_num_threads(1)
    started = time.time()
    reader = SampleReader(dataset, verify=False)
    train, validation = split_indices(reader, TrainConfig().data.validation_fraction)
    rng = np.random.default_rng(0)
    train_idx = rng.choice(train, size=min(int(train_count), len(train)), replace=False)
    val_idx = rng.choice(validation, size=min(int(val_count), len(validation)), replace=False)
    train_data, val_data = load(reader, train_idx), load(reader, val_idx)
    groups = {"straight": np.isin(val_data["env"], STRAIGHT), "junction": ~np.isin(val_data["env"], STRAIGHT)}
    train_groups = {"straight": np.isin(train_data["env"], STRAIGHT), "junction": ~np.isin(train_data["env"], STRAIGHT)}
    result: dict = {
        "dataset": dataset,
        "train_samples": {g: int(m.sum()) for g, m in train_groups.items()},
        "validation_samples": {g: int(m.sum()) for g, m in groups.items()},
        "spread_on_validation": {
            g: {k: round(float(np.std(val_data[k][m])), 4) for k in TARGETS} for g, m in groups.items()
        },
        "checkpoints": {},
    }
    for item in spec.split(","):
        name, path = item.split("=", 1)
        model = SpanVLA.load(resolve_model(path)).eval()
        train_x, val_x = vision_features(model, train_data["images"]), vision_features(model, val_data["images"])
        row: dict = {"probe_r2": {}, "probe_mae": {}, "plan_correction_r2": {}}
        for group, mask in groups.items():
            fit = train_groups[group]
            truth = np.stack([val_data[k][mask] for k in TARGETS], axis=1)
            predicted = ridge_probe(train_x[fit], np.stack([train_data[k][fit] for k in TARGETS], axis=1), val_x[mask])
            row["probe_r2"][group] = {k: r2(predicted[:, j], truth[:, j]) for j, k in enumerate(TARGETS)}
            row["probe_mae"][group] = {
                k: round(float(np.abs(predicted[:, j] - truth[:, j]).mean()), 4) for j, k in enumerate(TARGETS)
            }
        for reasoning, decision in (("labelled", True), ("fast_mode", False)):
            plans = plan_corrections(model, reader, val_data["index"], decision)
            row["plan_correction_r2"][reasoning] = {
                group: {
                    "correction_1s_m": r2(plans[mask, 0], val_data["correction_1s_m"][mask]),
                    "correction_2s_m": r2(plans[mask, 1], val_data["correction_2s_m"][mask]),
                }
                for group, mask in groups.items()
            }
        result["checkpoints"][name] = row
        print(name, json.dumps(row), flush=True)
    result["seconds"] = round(time.time() - started, 1)
    with open(out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:])
