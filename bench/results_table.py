#!/usr/bin/env python3
"""Print the README results table (the paper's Fig. 4a on our world) from the JSON results under bench/results/."""

import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
ROWS = [
    ("constant velocity", "constant-velocity", "closed_loop_constant-velocity.json"),
    ("expert (PDM-Closed style)", "expert", "closed_loop_expert.json"),
    ("SpanVLA, SFT only", "model:runs/train/sft_bridge/checkpoint", None),
    ("+ GRPO, positives only", "model:runs/ablations/grpo_positive_only/grpo/checkpoint", None),
    ("+ GRPO, + negatives", "model:runs/ablations/grpo_with_negatives/grpo/checkpoint", None),
    ("+ GRPO, + negatives + recovery (`model:default`)", "model:models/default", "training_record"),
]


def main() -> None:
    open_loop = json.loads((RESULTS / "open_loop.json").read_text())["planners"]
    recovery = json.loads((RESULTS / "open_loop_recovery.json").read_text())["planners"]
    record = json.loads((Path(__file__).parents[1] / "models/default/training_record.json").read_text())
    n = next(iter(open_loop.values()))["n_scenes"]
    m = next(iter(recovery.values()))["n_scenes"]
    print(f"| planner | PDMS ({n} scenes) | EPDMS | PDMS, recovery subset ({m}) | closed-loop driving score | "
          "collision rate |")
    print("|---|---|---|---|---|---|")
    for label, key, closed in ROWS:
        ol, rec = open_loop.get(key), recovery.get(key)
        if closed == "training_record":
            cl = record["evaluation"]["closed_loop"]
        elif closed:
            cl = json.loads((RESULTS / closed).read_text())
        else:
            cl = None
        cells = [f"{ol['pdms']:.3f}" if ol else "—", f"{ol['epdms']:.3f}" if ol else "—",
                 f"{rec['pdms']:.3f}" if rec else "—",
                 f"{cl['driving_score']:.3f} ({cl['episodes']} ep.)" if cl else "—",
                 f"{cl['collision_rate']:.2f}" if cl else "—"]
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
