"""mReasoning-style JSONL export: one record per sample with the image path, the question (prompt), the reasoning,
the trajectory, negatives and their labels."""

from __future__ import annotations

import json
from pathlib import Path

import cv2

from .dataset import SampleReader

QUESTION = (
    "You are driving the ego vehicle. Command: {command}. Ego speed {speed:.1f} m/s, acceleration "
    "{accel:.1f} m/s2. Identify the critical objects, decide, and plan the next 5 seconds."
)


def export_reasoning(dataset_dir: str | Path, out_file: str | Path) -> int:
    reader = SampleReader(dataset_dir)
    out = Path(out_file)
    images_dir = out.with_name(out.stem + "_images")
    images_dir.mkdir(parents=True, exist_ok=True)
    count = 0
    with out.open("w") as stream:
        for index in range(len(reader)):
            sample = reader.sample(index, scene=False)
            image_path = images_dir / f"{sample['token']}.png"
            cv2.imwrite(str(image_path), cv2.cvtColor(sample["images"][-1], cv2.COLOR_RGB2BGR))
            record = {
                "id": sample["token"],
                "image": str(image_path.relative_to(out.parent)),
                "question": QUESTION.format(
                    command=sample["command"], speed=sample["speed_mps"], accel=sample["acceleration_mps2"]
                ),
                "reasoning": sample["reasoning"]["text"],
                "mode": sample["reasoning"]["mode"],
                "decision": sample["reasoning"]["decision"],
                "critical_components": sample["reasoning"]["components"],
                "trajectory": sample["target"].round(3).tolist(),
                "negatives": sample["negatives"].round(3).tolist(),
                "negative_labels": sample["negative_labels"],
                "kind": sample["kind"],
                "recovery": sample["recovery_label"],
            }
            stream.write(json.dumps(record) + "\n")
            count += 1
    return count
