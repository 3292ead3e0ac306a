"""How well checkpoints place the first poses of a plan — what a car replanning at 10 Hz drives — against the history
extrapolation the flow starts from, on the recipe's validation episodes (the same samples for every checkpoint).
Usage:

    python bench/near_term_error.py NAME=CKPT[,NAME=CKPT...] OUT.json [DATASET [SAMPLES]]

Per kind (positive, recovery): mean |lateral error| (m) at 0.5, 1.0 and 2.0 s and mean |heading error| (rad) at 0.5
and 1.0 s of the flow's plan on the labelled reasoning's cache, and the same for the extrapolation."""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch

from spanvla_ros.data.dataset import SampleReader
from spanvla_ros.model import SpanVLA
from spanvla_ros.model.flow import history_initialisation
from spanvla_ros.runtime.artefact import resolve_model
from spanvla_ros.training.config import TrainConfig
from spanvla_ros.training.data import split_indices
from spanvla_ros.training.sft import context_cache, pad_caches

POSES = (0, 1, 3)  # 0.5 s, 1.0 s, 2.0 s


def errors(plans: np.ndarray, targets: np.ndarray) -> dict[str, list[float]]:
    return {
        "lateral_m_at_0.5_1_2s": [round(float(np.abs(plans[:, k, 1] - targets[:, k, 1]).mean()), 3) for k in POSES],
        "heading_rad_at_0.5_1s": [round(float(np.abs(plans[:, k, 2] - targets[:, k, 2]).mean()), 4) for k in (0, 1)],
    }


def main(spec: str, out: str, dataset: str = "runs/train/data", count: int = 64) -> None:
    torch.set_num_threads(1)
    started = time.time()
    reader = SampleReader(dataset, verify=False)
    _, validation = split_indices(reader, TrainConfig().data.validation_fraction)
    rng = np.random.default_rng(0)
    chosen = {}
    for kind in ("positive", "recovery"):
        pool = [i for i in validation if reader.metadata(i)["kind"] == kind]
        chosen[kind] = [reader[int(i)] for i in rng.choice(pool, size=min(count, len(pool)), replace=False)]
    result: dict = {"dataset": dataset, "samples_per_kind": count, "kinds": {}}
    for kind, samples in chosen.items():
        history = torch.tensor(np.stack([s["ego_history"] for s in samples]), dtype=torch.float32)
        targets = np.stack([s["target"] for s in samples])
        row = {"history_extrapolation": errors(history_initialisation(history, 0.5, 10, 0.5).numpy(), targets)}
        for item in spec.split(","):
            name, path = item.split("=", 1)
            model = SpanVLA.load(resolve_model(path)).eval()
            with torch.no_grad():
                selected, mask = pad_caches([context_cache(model, s) for s in samples])
                plans = model.flow_sample(model.sparse_kv_layers(selected), history, kv_mask=mask).numpy()
            row[name] = errors(plans, targets)
        result["kinds"][kind] = row
    result["seconds"] = round(time.time() - started, 1)
    with open(out, "w") as handle:
        json.dump(result, handle, indent=1)
    print(json.dumps(result["kinds"], indent=1))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *sys.argv[3:4], *map(int, sys.argv[4:5]))
